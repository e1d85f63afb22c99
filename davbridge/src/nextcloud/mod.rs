//! The surface the Nextcloud and ownCloud clients need beyond WebDAV (what is built and why:
//! `davbridge/README.md`, "The Nextcloud and ownCloud apps"): discovery (`status.php`, the OCS capabilities and user),
//! Login Flow v2 (`login`), chunked uploads (`chunks`), trash and versions (`history`), the
//! notify_push websocket (`push`), photo previews (`preview`), and safe answers for the optional endpoints the apps touch.
//! Files themselves are plain WebDAV (`dav`), served under `/remote.php/dav/files/USER/` with
//! the `oc:` properties.

mod chunks;
mod history;
pub(crate) mod login;
mod ocs;
pub(crate) mod preview;
mod push;

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use store::User;

use crate::Bridge;
use crate::auth::AuthOutcome;
use crate::body::{self, Body};
use crate::error::HttpError;

/// The Nextcloud version Cairn reports. The clients gate features on it (≥ 16: Login Flow v2;
/// below 20 newer ones warn "unsupported"), so it must look like a current Nextcloud.
pub(crate) const NC_VERSION: (u32, u32, u32, u32) = (30, 0, 4, 1);

/// A request for this surface, routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NcRoute {
    /// `GET /status.php`.
    Status,
    /// `/ocs/v1.php/...` (`v2 == false`) or `/ocs/v2.php/...`; `route` without the prefix.
    Ocs { v2: bool, route: String },
    /// `GET /index.php/204`: the apps' connectivity check.
    NoContent,
    /// `POST /index.php/login/v2`.
    LoginStart,
    /// `POST /index.php/login/v2/poll`.
    LoginPoll,
    /// `GET /index.php/login/v2/flow/TOKEN`: the page where the person grants access.
    LoginPage,
    /// `/remote.php/dav/uploads/USER/ID[/CHUNK]`.
    Uploads { user: String, id: Option<String>, chunk: Option<String> },
    /// `/remote.php/dav/trashbin/USER/...` and `/remote.php/dav/versions/USER/...`.
    History(history::HistoryUrl),
    /// `/push/ws`: notify_push.
    Push,
    /// A photo's preview (`/index.php/core/preview[.png]`, `/index.php/apps/files/api/v1/thumbnail/...`).
    Preview,
    /// Known endpoints Cairn answers 404 (avatars, remote wipe, Login Flow v1).
    NotHere,
}

impl NcRoute {
    /// The route of `path`, if it belongs to this surface.
    pub(crate) fn parse(method: &Method, path: &str) -> Result<Option<NcRoute>, HttpError> {
        let segs = |rest: &str| -> Result<Vec<String>, HttpError> {
            rest.split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "URL is not UTF-8"))
                })
                .collect()
        };
        Ok(Some(match path {
            "/status.php" => NcRoute::Status,
            "/index.php/204" => NcRoute::NoContent,
            "/index.php/login/v2" if method == Method::POST => NcRoute::LoginStart,
            "/index.php/login/v2/poll" if method == Method::POST => NcRoute::LoginPoll,
            "/push/ws" => NcRoute::Push,
            _ => {
                if let Some(rest) = path.strip_prefix("/ocs/v1.php/") {
                    NcRoute::Ocs { v2: false, route: rest.trim_end_matches('/').to_owned() }
                } else if let Some(rest) = path.strip_prefix("/ocs/v2.php/") {
                    NcRoute::Ocs { v2: true, route: rest.trim_end_matches('/').to_owned() }
                } else if path.starts_with("/index.php/login/v2/flow/") {
                    NcRoute::LoginPage
                } else if let Some(rest) = path.strip_prefix("/remote.php/dav/uploads/") {
                    let s = segs(rest)?;
                    match s.as_slice() {
                        [user] => NcRoute::Uploads { user: user.clone(), id: None, chunk: None },
                        [user, id] => {
                            NcRoute::Uploads { user: user.clone(), id: Some(id.clone()), chunk: None }
                        }
                        [user, id, chunk] => NcRoute::Uploads {
                            user: user.clone(),
                            id: Some(id.clone()),
                            chunk: Some(chunk.clone()),
                        },
                        _ => NcRoute::NotHere,
                    }
                } else if path == "/index.php/core/preview"
                    || path == "/index.php/core/preview.png"
                    || path.starts_with("/index.php/apps/files/api/v1/thumbnail/")
                {
                    NcRoute::Preview
                } else if let Some(url) = history::HistoryUrl::parse(path, &segs)? {
                    NcRoute::History(url)
                } else if path.starts_with("/remote.php/dav/avatars/")
                    || path.starts_with("/index.php/avatar/")
                    || path.starts_with("/index.php/core/")
                    || path.starts_with("/index.php/login/flow")
                    || path.starts_with("/index.php/apps/")
                {
                    NcRoute::NotHere
                } else {
                    return Ok(None);
                }
            }
        }))
    }
}

/// The base URL the client reached us at (`http://host:port`), for the URLs we hand out.
pub(crate) fn base_url<B>(bridge: &Bridge, req: &Request<B>) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{}://{host}", if bridge.tls { "https" } else { "http" })
}

/// Authenticate with HTTP Basic: the user, or the 401/429 to answer.
pub(crate) async fn basic_user(
    bridge: &Bridge,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> Result<User, Response<Body>> {
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match bridge.auth.check(auth_header, remote.ip()).await {
        AuthOutcome::User(u) => Ok(u),
        AuthOutcome::Denied => Err(unauthorized()),
        AuthOutcome::Unavailable => Err(body::dav_unavailable()),
        AuthOutcome::Throttled => {
            let mut res = body::error_response(&HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed sign-ins",
            ));
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            Err(res)
        }
    }
}

pub(crate) fn unauthorized() -> Response<Body> {
    let mut res = body::error_response(&HttpError::new(StatusCode::UNAUTHORIZED, "sign in required"));
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Cairn\", charset=\"UTF-8\""),
    );
    res
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    // Compact on purpose: the desktop client finds `"statuscode":200` by a text match.
    let mut res = Response::new(body::full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    res
}

/// Serve one request of this surface.
pub(crate) async fn serve(
    bridge: &Arc<Bridge>,
    remote: SocketAddr,
    route: NcRoute,
    req: Request<Incoming>,
) -> Response<Body> {
    let res = match route {
        NcRoute::Status => Ok(status()),
        NcRoute::NoContent => Ok(body::status(StatusCode::NO_CONTENT)),
        NcRoute::Ocs { v2, route } => Ok(ocs::serve(bridge, remote, v2, &route, req).await),
        NcRoute::LoginStart => login::start(bridge, &req),
        NcRoute::LoginPoll => login::poll(bridge, req).await,
        NcRoute::LoginPage => Ok(crate::web::serve(crate::web::asset("/").expect("the page"), req.headers())),
        NcRoute::Uploads { user, id, chunk } => chunks::serve(bridge, remote, user, id, chunk, req).await,
        NcRoute::History(url) => history::serve(bridge, remote, url, req).await,
        NcRoute::Push => push::serve(bridge, remote, req),
        NcRoute::Preview => {
            match preview::PreviewUrl::parse(req.uri().path(), req.uri().query().unwrap_or("")) {
                Ok(Some(url)) => preview::serve(bridge, remote, url, req).await,
                Ok(None) => Ok(body::text(StatusCode::NOT_FOUND, "not found\n")),
                Err(e) => Err(e),
            }
        }
        NcRoute::NotHere => Ok(body::text(StatusCode::NOT_FOUND, "not found\n")),
    };
    res.unwrap_or_else(|e| body::error_response(&e))
}

fn status() -> Response<Body> {
    let (a, b, c, d) = NC_VERSION;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "installed": true,
            "maintenance": false,
            "needsDbUpgrade": false,
            "version": format!("{a}.{b}.{c}.{d}"),
            "versionstring": format!("{a}.{b}.{c}"),
            "edition": "",
            "productname": "Nextcloud",
            "extendedSupport": false,
        }),
    )
}
