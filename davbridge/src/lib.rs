//! `davbridge`: Cairn's HTTP front end on hyper 1 (HTTP/1.1 and HTTP/2 on one port).
//!
//! Today it serves `GET /healthz`; WebDAV, the REST API and the web UI are their own issues and
//! will route through [`Endpoint`] the same way: every request is parsed into an endpoint first,
//! then handled.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// What the front end needs.
#[derive(Clone)]
pub struct Bridge {
    store: store::Store,
}

impl Bridge {
    /// A front end over `store`.
    pub fn new(store: store::Store) -> Bridge {
        Bridge { store }
    }
}

/// Every request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// `GET /healthz`: 200 when the database answers.
    Health,
    /// Anything else.
    NotFound,
}

impl Endpoint {
    fn parse<B>(req: &Request<B>) -> Endpoint {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/healthz") => Endpoint::Health,
            _ => Endpoint::NotFound,
        }
    }
}

type Body = Full<Bytes>;

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("static"));
    res
}

async fn handle(bridge: Arc<Bridge>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let endpoint = Endpoint::parse(&req);
    let res = match endpoint {
        Endpoint::Health => match bridge.store.ping().await {
            Ok(()) => text(StatusCode::OK, "ok\n"),
            Err(e) => {
                tracing::warn!(error = %e, "health check: database unavailable");
                text(StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
            }
        },
        Endpoint::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    tracing::debug!(?endpoint, status = res.status().as_u16(), "request");
    Ok(res)
}

/// Serve HTTP on `listener` until `shutdown` resolves, then stop accepting, let in-flight
/// requests finish (up to 30 s) and return.
pub async fn serve(
    bridge: Bridge,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let bridge = Arc::new(bridge);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        // Large flow-control windows: the defaults cap bulk uploads far below the link speed.
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(16 << 20);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let bridge = bridge.clone();
        let service = hyper::service::service_fn(move |req| handle(bridge.clone(), req));
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
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
    fn endpoints() {
        let req = |m: Method, p: &str| Request::builder().method(m).uri(p).body(()).unwrap();
        assert_eq!(Endpoint::parse(&req(Method::GET, "/healthz")), Endpoint::Health);
        assert_eq!(Endpoint::parse(&req(Method::HEAD, "/healthz")), Endpoint::Health);
        assert_eq!(Endpoint::parse(&req(Method::POST, "/healthz")), Endpoint::NotFound);
        assert_eq!(Endpoint::parse(&req(Method::GET, "/healthz/x")), Endpoint::NotFound);
    }
}
