//! The REST API under `/api/v1` (JSON) and resumable uploads (tus 1.0) under
//! `/api/v1/uploads/`. A request is routed to a typed [`Endpoint`] first; then it is
//! authenticated (session cookie with a CSRF token, `Authorization: Bearer`, or Basic as WebDAV
//! takes it); then one handler calls `store`. Errors are `{"error": {"code", "message"}}` with a
//! stable code. The OpenAPI 3.1 document at `/api/v1/openapi.json` is generated from the
//! handlers' annotations and the types in [`model`].

mod account;
mod files;
mod links;
pub mod model;
mod shares;
pub(crate) mod sync;
mod tus;
mod vaults;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use store::{Actor, ErrorKind, Origin, Store, User, VPath};
use utoipa::OpenApi;

use self::model::{ApiError, ErrorBody};
use crate::Bridge;
use crate::auth::{AuthOutcome, SessionCheck};
pub(crate) use crate::body::hv;
use crate::body::{self, Body};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "cairn_session";
/// Largest JSON request body.
const MAX_JSON: usize = 64 * 1024;

/// A failure, as the API reports it.
#[derive(Debug)]
pub(crate) struct Fail {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Fail {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Fail {
        Fail { status, code, message: message.into() }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Fail {
        Fail::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    fn response(&self) -> Response<Body> {
        let body =
            ApiError { error: ErrorBody { code: self.code.to_owned(), message: self.message.clone() } };
        json(self.status, &body)
    }
}

/// The status and code for each kind of `store` failure. Exhaustive on purpose.
pub(crate) fn code_of(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        ErrorKind::NotADirectory => (StatusCode::CONFLICT, "not_a_folder"),
        ErrorKind::IsADirectory => (StatusCode::CONFLICT, "is_a_folder"),
        ErrorKind::NotEmpty => (StatusCode::CONFLICT, "not_empty"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        ErrorKind::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        ErrorKind::Locked => (StatusCode::LOCKED, "locked"),
        // A client-side condition (their quota), so a 4xx: 413, as tus clients expect for "too large".
        ErrorKind::QuotaExceeded => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        ErrorKind::InvalidPath => (StatusCode::BAD_REQUEST, "invalid_path"),
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_input"),
        ErrorKind::ChecksumMismatch => (StatusCode::BAD_REQUEST, "checksum_mismatch"),
        ErrorKind::CursorExpired => (StatusCode::GONE, "cursor_expired"),
        ErrorKind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        ErrorKind::PermissionDenied => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        ErrorKind::Setup | ErrorKind::Io | ErrorKind::Internal => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
        ErrorKind::Database => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
    }
}

impl From<store::Error> for Fail {
    fn from(e: store::Error) -> Fail {
        let (status, code) = code_of(e.kind());
        if status.is_server_error() {
            tracing::error!(error = %e, "api request failed");
        }
        Fail { status, code, message: e.message().to_owned() }
    }
}

impl From<store::InvalidPath> for Fail {
    fn from(e: store::InvalidPath) -> Fail {
        Fail::new(StatusCode::BAD_REQUEST, "invalid_path", e.to_string())
    }
}

pub(crate) type Result<T, E = Fail> = std::result::Result<T, E>;

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("API types serialize");
    let mut res = Response::new(body::full(bytes));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Every API endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    OpenApi,
    SignIn,
    SignOut,
    Me,
    Tokens,
    NewToken,
    RevokeToken(i64),
    LoginFlow(String),
    GrantLoginFlow(String),
    List,
    Stat,
    Download {
        head: bool,
    },
    Upload,
    Mkdir,
    Move,
    Copy,
    Delete,
    Trash,
    TrashEmpty,
    TrashRestore(i64),
    TrashPurge(i64),
    Shares,
    Share,
    RevokeShare(i64),
    SharesIncoming,
    Vaults,
    NewVault,
    VaultAccount,
    SetVaultAccount,
    VaultKeys(String),
    Links,
    NewLink,
    RevokeLink(i64),
    /// A public link's endpoint, by token.
    Public(String, links::PublicOp),
    Versions,
    VersionContent(i64),
    VersionRestore(i64),
    Search,
    Quota,
    AdminUsers,
    AdminCreate,
    AdminChange(String),
    AdminDelete(String),
    AdminGroups,
    AdminGroupCreate,
    AdminGroupDelete(String),
    AdminGroupAdd(String, String),
    AdminGroupRemove(String, String),
    TusOptions,
    TusCreate,
    TusHead(String),
    TusPatch(String),
    TusDelete(String),
    Changes,
    Tree,
    Events,
    Signature,
    PutDelta,
    Metrics,
}

/// Routing failures: no such resource, or not with this method.
enum NoRoute {
    NotFound,
    Method(&'static str),
}

impl Endpoint {
    /// `rest` is the path after `/api/v1`.
    fn parse(method: &Method, rest: &str) -> std::result::Result<Endpoint, NoRoute> {
        use Endpoint as E;
        let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let m = method.as_str();
        let id = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0).ok_or(NoRoute::NotFound);
        let pick = |allow: &'static str, found: Option<Endpoint>| found.ok_or(NoRoute::Method(allow));
        Ok(match segs.as_slice() {
            ["openapi.json"] => pick("GET", (m == "GET").then_some(E::OpenApi))?,
            ["session"] => pick(
                "POST, DELETE",
                match m {
                    "POST" => Some(E::SignIn),
                    "DELETE" => Some(E::SignOut),
                    _ => None,
                },
            )?,
            ["me"] => pick("GET", (m == "GET").then_some(E::Me))?,
            ["tokens"] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::Tokens),
                    "POST" => Some(E::NewToken),
                    _ => None,
                },
            )?,
            ["tokens", t] => {
                let t = id(t)?;
                pick("DELETE", (m == "DELETE").then_some(E::RevokeToken(t)))?
            }
            ["login-flows", t] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::LoginFlow(t.to_string())),
                    "POST" => Some(E::GrantLoginFlow(t.to_string())),
                    _ => None,
                },
            )?,
            ["files"] => pick(
                "GET, DELETE",
                match m {
                    "GET" => Some(E::List),
                    "DELETE" => Some(E::Delete),
                    _ => None,
                },
            )?,
            ["stat"] => pick("GET", (m == "GET").then_some(E::Stat))?,
            ["content"] => pick(
                "GET, HEAD, PUT",
                match m {
                    "GET" => Some(E::Download { head: false }),
                    "HEAD" => Some(E::Download { head: true }),
                    "PUT" => Some(E::Upload),
                    _ => None,
                },
            )?,
            ["folders"] => pick("POST", (m == "POST").then_some(E::Mkdir))?,
            ["move"] => pick("POST", (m == "POST").then_some(E::Move))?,
            ["copy"] => pick("POST", (m == "POST").then_some(E::Copy))?,
            ["trash"] => pick(
                "GET, DELETE",
                match m {
                    "GET" => Some(E::Trash),
                    "DELETE" => Some(E::TrashEmpty),
                    _ => None,
                },
            )?,
            ["trash", t] => {
                let t = id(t)?;
                pick("DELETE", (m == "DELETE").then_some(E::TrashPurge(t)))?
            }
            ["trash", t, "restore"] => {
                let t = id(t)?;
                pick("POST", (m == "POST").then_some(E::TrashRestore(t)))?
            }
            ["versions"] => pick("GET", (m == "GET").then_some(E::Versions))?,
            ["versions", v, "content"] => {
                let v = id(v)?;
                pick("GET", (m == "GET").then_some(E::VersionContent(v)))?
            }
            ["versions", v, "restore"] => {
                let v = id(v)?;
                pick("POST", (m == "POST").then_some(E::VersionRestore(v)))?
            }
            ["shares"] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::Shares),
                    "POST" => Some(E::Share),
                    _ => None,
                },
            )?,
            ["vaults"] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::Vaults),
                    "POST" => Some(E::NewVault),
                    _ => None,
                },
            )?,
            ["vault", "account"] => pick(
                "GET, PUT",
                match m {
                    "GET" => Some(E::VaultAccount),
                    "PUT" => Some(E::SetVaultAccount),
                    _ => None,
                },
            )?,
            ["vault", "keys", user] if !user.is_empty() => {
                let user = decoded(user)?;
                pick("GET", (m == "GET").then_some(E::VaultKeys(user)))?
            }
            ["shares", "incoming"] => pick("GET", (m == "GET").then_some(E::SharesIncoming))?,
            ["shares", t] => {
                let t = id(t)?;
                pick("DELETE", (m == "DELETE").then_some(E::RevokeShare(t)))?
            }
            ["links"] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::Links),
                    "POST" => Some(E::NewLink),
                    _ => None,
                },
            )?,
            ["links", t] => {
                let t = id(t)?;
                pick("DELETE", (m == "DELETE").then_some(E::RevokeLink(t)))?
            }
            ["public", t, rest @ ..] if !t.is_empty() => {
                let (op, method): (_, &'static str) = match rest {
                    [] => (links::PublicOp::List, "GET"),
                    ["content"] => (links::PublicOp::Content, "GET"),
                    ["preview"] => (links::PublicOp::Preview, "GET"),
                    ["zip"] => (links::PublicOp::Zip, "GET"),
                    ["upload"] => (links::PublicOp::Upload, "POST"),
                    _ => return Err(NoRoute::NotFound),
                };
                pick(method, (m == method).then(|| E::Public(t.to_string(), op)))?
            }
            ["search"] => pick("GET", (m == "GET").then_some(E::Search))?,
            ["changes"] => pick("GET", (m == "GET").then_some(E::Changes))?,
            ["tree"] => pick("GET", (m == "GET").then_some(E::Tree))?,
            ["events"] => pick("GET", (m == "GET").then_some(E::Events))?,
            ["signature"] => pick("GET", (m == "GET").then_some(E::Signature))?,
            ["delta"] => pick("PUT", (m == "PUT").then_some(E::PutDelta))?,
            ["admin", "metrics"] => pick("GET", (m == "GET").then_some(E::Metrics))?,
            ["quota"] => pick("GET", (m == "GET").then_some(E::Quota))?,
            ["admin", "users"] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::AdminUsers),
                    "POST" => Some(E::AdminCreate),
                    _ => None,
                },
            )?,
            ["admin", "groups"] => pick(
                "GET, POST",
                match m {
                    "GET" => Some(E::AdminGroups),
                    "POST" => Some(E::AdminGroupCreate),
                    _ => None,
                },
            )?,
            ["admin", "groups", name] if !name.is_empty() => {
                let name = decoded(name)?;
                pick("DELETE", (m == "DELETE").then_some(E::AdminGroupDelete(name)))?
            }
            ["admin", "groups", group, "members", user] if !group.is_empty() && !user.is_empty() => {
                let (group, user) = (decoded(group)?, decoded(user)?);
                pick(
                    "PUT, DELETE",
                    match m {
                        "PUT" => Some(E::AdminGroupAdd(group, user)),
                        "DELETE" => Some(E::AdminGroupRemove(group, user)),
                        _ => None,
                    },
                )?
            }
            ["admin", "users", name] if !name.is_empty() => {
                let name = percent_encoding::percent_decode_str(name)
                    .decode_utf8()
                    .map_err(|_| NoRoute::NotFound)?
                    .into_owned();
                pick(
                    "PATCH, DELETE",
                    match m {
                        "PATCH" => Some(E::AdminChange(name)),
                        "DELETE" => Some(E::AdminDelete(name)),
                        _ => None,
                    },
                )?
            }
            ["uploads"] | ["uploads", ""] => pick(
                "OPTIONS, POST",
                match m {
                    "OPTIONS" => Some(E::TusOptions),
                    "POST" => Some(E::TusCreate),
                    _ => None,
                },
            )?,
            ["uploads", u] => {
                let u = (*u).to_owned();
                pick(
                    "HEAD, PATCH, DELETE, OPTIONS",
                    match m {
                        "HEAD" => Some(E::TusHead(u)),
                        "PATCH" => Some(E::TusPatch(u)),
                        "DELETE" => Some(E::TusDelete(u)),
                        "OPTIONS" => Some(E::TusOptions),
                        _ => None,
                    },
                )?
            }
            _ => return Err(NoRoute::NotFound),
        })
    }

    /// Reachable without signing in.
    fn is_public(&self) -> bool {
        matches!(self, Endpoint::OpenApi | Endpoint::SignIn | Endpoint::TusOptions | Endpoint::Public(..))
    }
}

/// How the request signed in.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    Password,
    Bearer,
    Session { token: String, csrf: String },
}

/// One authenticated request's context.
pub(crate) struct Cx<'a> {
    pub(crate) bridge: &'a Bridge,
    pub(crate) store: &'a Store,
    pub(crate) user: User,
    pub(crate) actor: Actor,
    pub(crate) via: Via,
    pub(crate) headers: HeaderMap,
    pub(crate) query: String,
}

impl Cx<'_> {
    /// The query string as `T`.
    pub(crate) fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(&self.query).map_err(|e| Fail::bad(format!("bad query: {e}")))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A path from the client (`/docs/a.txt`).
pub(crate) fn vpath(raw: &str) -> Result<VPath> {
    Ok(VPath::parse(raw)?)
}

/// Read a JSON body (small, bounded).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
) -> Result<T> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        return Err(Fail::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    let bytes = read_small(body).await?;
    serde_json::from_slice(&bytes).map_err(|e| Fail::bad(format!("bad JSON body: {e}")))
}

/// Read a JSON body that may be absent (empty means the default).
pub(crate) async fn read_json_opt<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Incoming,
) -> Result<T> {
    let declared_empty = headers.get(header::CONTENT_LENGTH).is_some_and(|v| v == "0")
        || (!headers.contains_key(header::CONTENT_LENGTH)
            && !headers.contains_key(header::TRANSFER_ENCODING));
    if declared_empty {
        return Ok(T::default());
    }
    read_json(headers, body).await
}

async fn read_small(body: Incoming) -> Result<Bytes> {
    match Limited::new(body, MAX_JSON).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Fail::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "request body too large"))
        }
        Err(_) => Err(Fail::bad("could not read the request body")),
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Who is asking: Bearer, then Basic, then the session cookie.
async fn authenticate(
    bridge: &Bridge,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> std::result::Result<(User, Via), Response<Body>> {
    let denied = |msg: &str| {
        let mut res = Fail::new(StatusCode::UNAUTHORIZED, "unauthenticated", msg).response();
        // No `WWW-Authenticate: Basic` here: browsers would pop up their own sign-in dialog.
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"Cairn\""));
        res
    };
    let unavailable = || {
        body::unavailable(
            Fail::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "credentials cannot be checked now; try again",
            )
            .response(),
        )
    };
    let throttled = || {
        let mut res =
            Fail::new(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many failed sign-ins").response();
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        res
    };
    if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = auth.trim().split_once(' ').unwrap_or((auth, ""));
        let outcome = if scheme.eq_ignore_ascii_case("bearer") {
            (bridge.auth.bearer(rest.trim(), remote.ip()).await, Via::Bearer)
        } else if scheme.eq_ignore_ascii_case("basic") {
            (bridge.auth.check(Some(auth), remote.ip()).await, Via::Password)
        } else {
            return Err(denied("unsupported Authorization scheme"));
        };
        return match outcome {
            (AuthOutcome::User(u), via) => Ok((u, via)),
            (AuthOutcome::Denied, _) => Err(denied("wrong credentials")),
            (AuthOutcome::Throttled, _) => Err(throttled()),
            (AuthOutcome::Unavailable, _) => Err(unavailable()),
        };
    }
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        return match bridge.auth.session(token, remote.ip()).await {
            SessionCheck::Valid(user, csrf) => Ok((user, Via::Session { token: token.to_owned(), csrf })),
            SessionCheck::Invalid => Err(denied("the session has ended; sign in again")),
            SessionCheck::Unavailable => Err(unavailable()),
        };
    }
    Err(denied("sign in required"))
}

/// Route, authenticate, check CSRF, handle.
pub async fn serve(bridge: &Arc<Bridge>, remote: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix("/api/v1").unwrap_or("");
    let endpoint = match Endpoint::parse(&parts.method, rest) {
        Ok(e) => e,
        Err(NoRoute::NotFound) => {
            return Fail::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").response();
        }
        Err(NoRoute::Method(allow)) => {
            let mut res =
                Fail::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed here")
                    .response();
            res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
            return res;
        }
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    if endpoint.is_public() {
        let res = match endpoint {
            Endpoint::OpenApi => Ok(openapi_response()),
            Endpoint::SignIn => account::sign_in(bridge, remote, &parts.headers, body).await,
            Endpoint::Public(t, op) => {
                let visit =
                    links::Visit { bridge, token: &t, headers: &parts.headers, query: &query, remote };
                links::public(&visit, op, body).await
            }
            _ => Ok(tus::options()),
        };
        return res.unwrap_or_else(|e| e.response());
    }
    let (user, via) = match authenticate(bridge, &parts.headers, remote).await {
        Ok(found) => found,
        Err(res) => return res,
    };
    // A cookie rides along with any request the browser makes, so a state change must also
    // carry the CSRF token the page read from `/me` (a cross-site form cannot).
    if let Via::Session { csrf, .. } = &via
        && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if sent.is_none_or(|s| !constant_time_eq(s.as_bytes(), csrf.as_bytes())) {
            return Fail::new(StatusCode::FORBIDDEN, "csrf", "missing or wrong X-CSRF-Token").response();
        }
    }
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let actor = Actor::user(Origin::Rest, &user, Some(remote.ip().to_string()));
    let cx = Cx { bridge, store: &bridge.store, user, actor, via, headers: parts.headers, query };
    let is_tus = matches!(
        endpoint,
        Endpoint::TusCreate | Endpoint::TusHead(_) | Endpoint::TusPatch(_) | Endpoint::TusDelete(_)
    );
    let res = match endpoint {
        Endpoint::SignOut => account::sign_out(&cx).await,
        Endpoint::Me => account::me(&cx).await,
        Endpoint::Tokens => account::tokens(&cx).await,
        Endpoint::NewToken => account::new_token(&cx, body).await,
        Endpoint::RevokeToken(id) => account::revoke_token(&cx, id).await,
        Endpoint::LoginFlow(token) => account::login_flow(&cx, &token).await,
        Endpoint::GrantLoginFlow(token) => account::grant_login_flow(&cx, &token).await,
        Endpoint::List => files::list(&cx).await,
        Endpoint::Stat => files::stat(&cx).await,
        Endpoint::Download { head } => files::download(&cx, head).await,
        Endpoint::Upload => files::upload(&cx, body).await,
        Endpoint::Mkdir => files::mkdir(&cx, body).await,
        Endpoint::Move => files::move_(&cx, body).await,
        Endpoint::Copy => files::copy(&cx, body).await,
        Endpoint::Delete => files::delete(&cx).await,
        Endpoint::Trash => files::trash(&cx).await,
        Endpoint::TrashEmpty => files::trash_empty(&cx).await,
        Endpoint::TrashRestore(id) => files::trash_restore(&cx, id, body).await,
        Endpoint::TrashPurge(id) => files::trash_purge(&cx, id).await,
        Endpoint::Versions => files::versions(&cx).await,
        Endpoint::VersionContent(id) => files::version_content(&cx, id).await,
        Endpoint::VersionRestore(id) => files::version_restore(&cx, id).await,
        Endpoint::Search => files::search(&cx).await,
        Endpoint::Shares => shares::list(&cx).await,
        Endpoint::Share => shares::create(&cx, body).await,
        Endpoint::RevokeShare(id) => shares::revoke(&cx, id).await,
        Endpoint::SharesIncoming => shares::incoming(&cx).await,
        Endpoint::Vaults => vaults::list(&cx).await,
        Endpoint::NewVault => vaults::create(&cx, body).await,
        Endpoint::VaultAccount => vaults::account(&cx).await,
        Endpoint::SetVaultAccount => vaults::set_account(&cx, body).await,
        Endpoint::VaultKeys(user) => vaults::keys(&cx, &user).await,
        Endpoint::Links => links::list(&cx).await,
        Endpoint::NewLink => links::create(&cx, body).await,
        Endpoint::RevokeLink(id) => links::revoke(&cx, id).await,
        Endpoint::Quota => account::quota(&cx).await,
        Endpoint::AdminUsers => account::admin_users(&cx).await,
        Endpoint::AdminCreate => account::admin_create(&cx, body).await,
        Endpoint::AdminChange(name) => account::admin_change(&cx, &name, body).await,
        Endpoint::AdminDelete(name) => account::admin_delete(&cx, &name).await,
        Endpoint::AdminGroups => account::admin_groups(&cx).await,
        Endpoint::AdminGroupCreate => account::admin_group_create(&cx, body).await,
        Endpoint::AdminGroupDelete(name) => account::admin_group_delete(&cx, &name).await,
        Endpoint::AdminGroupAdd(g, u) => account::admin_group_add(&cx, &g, &u).await,
        Endpoint::AdminGroupRemove(g, u) => account::admin_group_remove(&cx, &g, &u).await,
        Endpoint::TusCreate => tus::create(&cx, body).await,
        Endpoint::TusHead(id) => tus::head(&cx, &id).await,
        Endpoint::TusPatch(id) => tus::patch(&cx, &id, body).await,
        Endpoint::TusDelete(id) => tus::delete(&cx, &id).await,
        Endpoint::Changes => sync::changes(&cx).await,
        Endpoint::Tree => sync::tree(&cx).await,
        Endpoint::Events => sync::events(&cx, upgrade).await,
        Endpoint::Signature => sync::signature(&cx).await,
        Endpoint::PutDelta => sync::put_delta(&cx, body).await,
        Endpoint::Metrics => account::metrics(&cx).await,
        Endpoint::OpenApi | Endpoint::SignIn | Endpoint::TusOptions | Endpoint::Public(..) => {
            unreachable!("public endpoints")
        }
    };
    res.unwrap_or_else(|e| {
        let mut r = e.response();
        if is_tus {
            tus::decorate(&mut r);
        }
        r
    })
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn REST API",
        description = "Files, trash, versions, search, quota, tokens and accounts of a Cairn server. \
Authenticate with `Authorization: Bearer <app password>`, HTTP Basic (account or app password), \
or the browser session cookie from `POST /api/v1/session` (state changes then need `X-CSRF-Token`). \
Resumable uploads use tus 1.0 at `/api/v1/uploads/`. Sync clients follow the change feed \
(`/api/v1/changes`, or pushed at `/api/v1/events`) and move deltas: `GET /api/v1/signature`, \
`PUT /api/v1/delta`, and `GET /api/v1/content` with `A-IM: rsync` (answered `226 IM Used`)."
    ),
    paths(
        account::sign_in, account::sign_out, account::me, account::tokens, account::new_token,
        account::revoke_token, account::login_flow, account::grant_login_flow, account::quota,
        files::list, files::stat, files::download, files::upload, files::mkdir, files::move_,
        files::copy, files::delete, files::trash, files::trash_empty, files::trash_restore,
        files::trash_purge, files::versions, files::version_content, files::version_restore,
        files::search, shares::list, shares::create, shares::revoke, shares::incoming,
        vaults::list, vaults::create, vaults::account, vaults::set_account, vaults::keys,
        links::list, links::create, links::revoke, links::public_list, links::public_content,
        links::public_preview, links::public_zip, links::public_upload,
        account::admin_users, account::admin_create, account::admin_change, account::admin_delete,
        account::admin_groups, account::admin_group_create, account::admin_group_delete,
        account::admin_group_add, account::admin_group_remove,
        tus::create, tus::head, tus::patch, tus::delete,
        sync::changes, sync::tree, sync::events, sync::signature, sync::put_delta, account::metrics,
    ),
    components(schemas(ApiError, ErrorBody)),
    modifiers(&Security),
    security(("bearer" = []), ("basic" = []), ("session" = [])),
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
        // Every authenticated operation can also answer these.
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let err = |desc: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(desc)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ApiError")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
            ]
            .into_iter()
            .flatten()
            {
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.is_empty() || s.iter().all(|r| r == &Default::default()));
                let mut add = vec![
                    ("400", "Malformed request"),
                    ("429", "Too many failed sign-ins"),
                    ("503", "The database is unavailable"),
                ];
                if !public {
                    add.push(("401", "Not signed in"));
                    add.push(("403", "Not allowed (or missing X-CSRF-Token with a session)"));
                    add.push(("413", "Request body too large, or over quota"));
                }
                for (code, desc) in add {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| err(desc));
                }
            }
        }
    }
}

fn openapi_response() -> Response<Body> {
    static DOC: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let bytes = DOC.get_or_init(|| {
        Bytes::from(ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes"))
    });
    let mut res = Response::new(body::full(bytes.clone()));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// A percent-encoded path segment as text.
fn decoded(segment: &str) -> std::result::Result<String, NoRoute> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| NoRoute::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind: a stable snake_case code, one per kind among the caller's failures (clients
    /// branch on it), `internal` or `busy` for the server's; the status in the same class as
    /// WebDAV's for the same kind, and always 4xx for the caller's.
    #[test]
    fn every_kind_has_a_code_and_a_status_of_its_class() {
        let mut seen = std::collections::HashMap::new();
        for &kind in store::ErrorKind::ALL {
            let (status, code) = code_of(kind);
            assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            // WebDAV's one exception (507 for a full quota) is not REST's: 413.
            if kind != store::ErrorKind::QuotaExceeded {
                assert_eq!(
                    status.is_server_error(),
                    crate::error::status_of(kind).is_server_error(),
                    "{kind:?}: REST {status}, WebDAV {}",
                    crate::error::status_of(kind)
                );
            }
            if kind.is_server_side() {
                assert!(status.is_server_error() && ["internal", "busy"].contains(&code), "{kind:?}");
            } else {
                assert!(status.is_client_error(), "{kind:?} → {status}");
                if let Some(other) = seen.insert(code, kind) {
                    panic!("{kind:?} and {other:?} share the code {code}");
                }
            }
        }
    }

    #[test]
    fn routes() {
        let p = |m: &str, path: &str| Endpoint::parse(&Method::from_bytes(m.as_bytes()).unwrap(), path).ok();
        assert_eq!(p("GET", "/files"), Some(Endpoint::List));
        assert_eq!(p("DELETE", "/files"), Some(Endpoint::Delete));
        assert_eq!(p("POST", "/trash/12/restore"), Some(Endpoint::TrashRestore(12)));
        assert_eq!(p("POST", "/trash/-1/restore"), None);
        assert_eq!(p("POST", "/trash/x/restore"), None);
        assert_eq!(p("PATCH", "/uploads/abc"), Some(Endpoint::TusPatch("abc".into())));
        assert_eq!(p("OPTIONS", "/uploads/"), Some(Endpoint::TusOptions));
        assert_eq!(p("PATCH", "/admin/users/b%C3%B6b"), Some(Endpoint::AdminChange("böb".into())));
        assert_eq!(p("GET", "/admin/groups"), Some(Endpoint::AdminGroups));
        assert_eq!(p("GET", "/shares/incoming"), Some(Endpoint::SharesIncoming));
        assert_eq!(p("DELETE", "/shares/7"), Some(Endpoint::RevokeShare(7)));
        assert_eq!(p("POST", "/shares"), Some(Endpoint::Share));
        assert_eq!(p("DELETE", "/shares/incoming"), None);
        assert_eq!(p("DELETE", "/admin/groups/family"), Some(Endpoint::AdminGroupDelete("family".into())));
        assert_eq!(
            p("PUT", "/admin/groups/family/members/b%C3%B6b"),
            Some(Endpoint::AdminGroupAdd("family".into(), "böb".into()))
        );
        assert_eq!(
            p("DELETE", "/admin/groups/family/members/bob"),
            Some(Endpoint::AdminGroupRemove("family".into(), "bob".into()))
        );
        assert_eq!(p("POST", "/admin/groups/family/members/bob"), None);
        assert!(matches!(Endpoint::parse(&Method::PUT, "/files"), Err(NoRoute::Method("GET, DELETE"))));
        assert!(matches!(Endpoint::parse(&Method::GET, "/nope"), Err(NoRoute::NotFound)));
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; cairn_session=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn openapi_is_3_1_and_covers_every_endpoint() {
        let doc: serde_json::Value = serde_json::from_str(&ApiDoc::openapi().to_json().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for p in [
            "/api/v1/files",
            "/api/v1/content",
            "/api/v1/trash/{id}/restore",
            "/api/v1/uploads/",
            "/api/v1/uploads/{id}",
        ] {
            assert!(doc["paths"].get(p).is_some(), "{p} missing from the spec");
        }
        assert!(doc["paths"]["/api/v1/files"]["get"]["responses"].get("401").is_some());
    }
}
