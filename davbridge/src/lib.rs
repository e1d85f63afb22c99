//! `davbridge`: Cairn's HTTP front end on hyper 1 (HTTP/1.1 and HTTP/2 on one port): WebDAV
//! class 1 and 2 (RFC 4918) under `/dav/`, `/remote.php/webdav/` and
//! `/remote.php/dav/files/USER/` (`dav`); the REST API under `/api/v1` with its OpenAPI
//! document, tus uploads, the change feed and its push channel (`api`); the embedded web UI
//! (`web`); what the Nextcloud and ownCloud clients need besides WebDAV (`nextcloud`); and
//! `/healthz`.
//!
//! Every request is parsed into a `Route` (WebDAV requests into a typed endpoint, REST ones
//! into an `Endpoint`) before anything else happens; handlers never read raw headers.
//! Credentials (Basic, bearer tokens, session cookies) are checked against `store`, cached and
//! throttled in `auth`.

mod api;
mod auth;
mod body;
mod dav;
mod download;
mod error;
mod metrics;
mod nextcloud;
mod web;
mod zip;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use api::ApiDoc;
pub use body::Body;
pub use error::{HttpError, status_of};

/// Options of the HTTP front end.
#[derive(Debug, Clone, Default)]
pub struct BridgeOptions {
    /// Answer `PROPFIND` with `Depth: infinity` (refused with `DAV:propfind-finite-depth`
    /// unless set: a whole tree in one response is a denial-of-service lever).
    pub propfind_infinity: bool,
    /// The bearer token `/metrics` asks for (`None`: loopback clients only).
    pub metrics_token: Option<String>,
    /// When the served TLS certificate expires (seconds since the Unix epoch), for `/metrics`.
    pub tls_expiry: Option<i64>,
}

/// What the front end needs.
pub struct Bridge {
    store: store::Store,
    auth: Arc<auth::Auth>,
    opts: BridgeOptions,
    /// Served over TLS (session cookies are then `Secure`).
    tls: bool,
    /// What `/metrics` exports.
    metrics: metrics::Metrics,
    /// Photo previews for the Nextcloud apps.
    previews: nextcloud::preview::Previews,
}

impl Bridge {
    /// A front end over `store`. Must be called inside a tokio runtime (it listens for
    /// credential changes).
    pub fn new(store: store::Store, opts: BridgeOptions) -> Bridge {
        let auth = auth::Auth::new(store.clone());
        Bridge { store, auth, opts, tls: false, metrics: Default::default(), previews: Default::default() }
    }
}

/// Every request, routed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// `GET /readyz` (and `/healthz`): 200 when the daemon can do its work.
    Ready,
    /// `GET /livez`: 200 while the process serves.
    Live,
    /// `GET /metrics`.
    Metrics,
    /// A WebDAV URL.
    Dav(dav::headers::DavUrl),
    /// The REST API (`/api/v1/...`).
    Api,
    /// The web UI's files.
    Web(&'static web::Asset),
    /// What the Nextcloud clients need besides WebDAV.
    Nextcloud(nextcloud::NcRoute),
    /// Anything else.
    NotFound,
}

impl Route {
    fn parse<B>(req: &Request<B>) -> Result<Route, HttpError> {
        // A fragment never belongs in a request; acting on the URL without it would touch
        // another resource than the one the client named.
        if req.uri().path_and_query().is_some_and(|pq| pq.as_str().contains('#')) {
            return Err(HttpError::new(StatusCode::BAD_REQUEST, "fragment in request URI"));
        }
        let path = req.uri().path();
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            match path {
                "/readyz" | "/healthz" => return Ok(Route::Ready),
                "/livez" => return Ok(Route::Live),
                "/metrics" => return Ok(Route::Metrics),
                _ => {}
            }
        }
        if path == "/api/v1" || path.starts_with("/api/v1/") {
            return Ok(Route::Api);
        }
        if matches!(*req.method(), Method::GET | Method::HEAD)
            && let Some(asset) = web::asset(path)
        {
            return Ok(Route::Web(asset));
        }
        if let Some(nc) = nextcloud::NcRoute::parse(req.method(), path)? {
            return Ok(Route::Nextcloud(nc));
        }
        Ok(match dav::headers::parse_dav_url(path)? {
            Some(url) => Route::Dav(url),
            None => Route::NotFound,
        })
    }
}

async fn handle(
    bridge: Arc<Bridge>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = std::time::Instant::now();
    let _counted = bridge.metrics.begin();
    let method = req.method().clone();
    let uri_path = req.uri().path().to_owned();
    let parsed = Route::parse(&req);
    let protocol = match &parsed {
        Ok(Route::Ready | Route::Live) => metrics::Protocol::health,
        Ok(Route::Metrics) => metrics::Protocol::metrics,
        Ok(Route::Dav(_)) => metrics::Protocol::webdav,
        Ok(Route::Api) if uri_path.starts_with("/api/v1/uploads") => metrics::Protocol::tus,
        Ok(Route::Api) => metrics::Protocol::rest,
        Ok(Route::Web(_)) => metrics::Protocol::web,
        Ok(Route::Nextcloud(_)) => metrics::Protocol::nextcloud,
        Ok(Route::NotFound) | Err(_) => metrics::Protocol::other,
    };
    // Until its answer's head is ready (a body streams on its own).
    let op = store::watchdog::begin("request", format!("{method} {uri_path}"));
    let res = op.scope(route(&bridge, remote, parsed, req)).await;
    drop(op);
    let took = started.elapsed();
    bridge.metrics.answered(protocol, metrics::MethodLabel::of(&method), res.status().as_u16(), took);
    tracing::debug!(%method, path = %uri_path, status = res.status().as_u16(), ms = took.as_millis() as u64, "request");
    Ok(res)
}

async fn route(
    bridge: &Arc<Bridge>,
    remote: SocketAddr,
    parsed: Result<Route, HttpError>,
    req: Request<Incoming>,
) -> Response<Body> {
    match parsed {
        Ok(Route::Ready) => match metrics::readiness(bridge).await {
            Ok(()) => body::text(StatusCode::OK, "ok\n"),
            Err(why) => {
                tracing::warn!(%why, "not ready");
                let mut res = Response::new(body::full(format!("not ready: {why}\n")));
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                res
            }
        },
        Ok(Route::Live) => body::text(StatusCode::OK, "ok\n"),
        Ok(Route::Metrics) => metrics::serve(bridge, remote, req.headers()).await,
        Ok(Route::Dav(url)) => dav::serve(bridge, remote, url, req).await,
        Ok(Route::Api) => api::serve(bridge, remote, req).await,
        Ok(Route::Web(asset)) => web::serve(asset, req.headers()),
        Ok(Route::Nextcloud(nc)) => nextcloud::serve(bridge, remote, nc, req).await,
        Ok(Route::NotFound) => body::text(StatusCode::NOT_FOUND, "not found\n"),
        Err(e) => body::error_response(&e),
    }
}

/// How long a stopping server waits for the first request of connections it has just
/// accepted before closing idle ones.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// Serve HTTP on `listener` (over TLS when `tls` is given) until `shutdown` resolves, then
/// stop accepting, let in-flight requests finish (up to 30 s) and return.
pub async fn serve(
    bridge: Bridge,
    listener: TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut bridge = bridge;
    bridge.tls = tls.is_some();
    let bridge = Arc::new(bridge);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        // Large flow-control windows: the defaults were measured capping TLS uploads near 77 MB/s.
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(1 << 20);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => {
                bridge.metrics.draining.store(true, std::sync::atomic::Ordering::Relaxed);
                break;
            }
        };
        let _ = stream.set_nodelay(true);
        let bridge = bridge.clone();
        let service = hyper::service::service_fn(move |req| handle(bridge.clone(), remote, req));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let io = match acceptor {
                None => tokio_util::either::Either::Left(stream),
                Some(acceptor) => {
                    // The handshake runs in the connection's task, never in the accept loop.
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                        Ok(Ok(s)) => tokio_util::either::Either::Right(s),
                        Ok(Err(e)) => return tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            };
            let res = watcher
                .watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned())
                .await;
            if let Err(e) = res {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // A connection accepted just before the signal may not have had its first request read:
    // graceful shutdown would close it as idle, and its client would get no answer at all
    // (seen once in 8,532 requests across restarts). A moment lets those requests be read;
    // then they are in flight and finish.
    tokio::time::sleep(FIRST_REQUEST_GRACE).await;
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => tracing::warn!("connections still open after 30 s; closing"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let req = |m: Method, p: &str| Request::builder().method(m).uri(p).body(()).unwrap();
        assert_eq!(Route::parse(&req(Method::GET, "/healthz")).unwrap(), Route::Ready);
        assert_eq!(Route::parse(&req(Method::GET, "/readyz")).unwrap(), Route::Ready);
        assert_eq!(Route::parse(&req(Method::GET, "/livez")).unwrap(), Route::Live);
        assert_eq!(Route::parse(&req(Method::GET, "/metrics")).unwrap(), Route::Metrics);
        assert_eq!(Route::parse(&req(Method::POST, "/healthz")).unwrap(), Route::NotFound);
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(matches!(Route::parse(&req(propfind, "/dav/x")).unwrap(), Route::Dav(_)));
        assert_eq!(Route::parse(&req(Method::GET, "/elsewhere")).unwrap(), Route::NotFound);
        assert_eq!(Route::parse(&req(Method::GET, "/dav/%2e%2e/x")).unwrap_err().status, 400);
    }
}
