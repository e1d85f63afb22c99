//! notify_push (the protocol of Nextcloud's push server, which the desktop clients speak): a
//! plain WebSocket at `/push/ws`; the client sends its login name and password as two text
//! frames, the server answers `authenticated` (or `err: Invalid credentials` and closes), then
//! sends `notify_file` whenever something in the user's files changes, through any front end
//! or process: the first change at once, the rest of a burst as one more message at most
//! every [`DEBOUNCE`]. The client reacts by syncing, so a spare message costs one PROPFIND
//! and a missed one a whole poll interval.
//! The credentials are checked again every few seconds: a revoked app password closes it.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::Bridge;
use crate::auth::AuthOutcome;
use crate::body::{self, Body, hv};
use crate::error::HttpError;

/// How long the client has to send its credentials (notify_push's limit).
const AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// After a message, changes within this time are one more message at its end.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the credentials are checked again (a cache hit unless they changed).
const RECHECK: Duration = Duration::from_secs(2);

/// Upgrade `/push/ws` and serve the connection.
pub(crate) fn serve(
    bridge: &std::sync::Arc<Bridge>,
    remote: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let h = req.headers();
    let is_ws = h
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && h.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = h.get(header::SEC_WEBSOCKET_KEY).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(key), true) = (key, is_ws) else {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "a WebSocket handshake is required"));
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let bridge = bridge.clone();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => {
                let ws =
                    tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None)
                        .await;
                session(ws, &bridge, remote).await;
            }
            Err(e) => tracing::debug!(error = %e, "notify_push upgrade failed"),
        }
    });
    let mut res = body::status(StatusCode::SWITCHING_PROTOCOLS);
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        hv(&tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())),
    );
    Ok(res)
}

async fn session<S>(ws: tokio_tungstenite::WebSocketStream<S>, bridge: &Bridge, remote: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    // The two credential frames.
    let creds = tokio::time::timeout(AUTH_TIMEOUT, async {
        let mut texts = Vec::new();
        while texts.len() < 2 {
            match rx.next().await {
                Some(Ok(Message::Text(t))) => texts.push(t.trim().to_owned()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
        Some((texts.remove(0), texts.remove(0)))
    })
    .await;
    let Ok(Some((name, secret))) = creds else { return };
    let check = || bridge.auth.password(&name, &secret, remote.ip(), store::Origin::Dav);
    let user = match check().await {
        AuthOutcome::User(u) => u,
        AuthOutcome::Denied | AuthOutcome::Throttled => {
            let _ = tx.send(Message::text("err: Invalid credentials")).await;
            let _ = tx.close().await;
            return;
        }
        // Not the client's fault: it reconnects and tries again.
        AuthOutcome::Unavailable => {
            let _ = tx.close().await;
            return;
        }
    };
    let mut changes = bridge.store.subscribe_changes();
    let _open = bridge.metrics.push_opened();
    if tx.send(Message::text("authenticated")).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    let mut recheck = tokio::time::interval(RECHECK);
    // The first change is told at once; changes within DEBOUNCE after a message are one more
    // message when that time is up.
    let mut quiet_until = tokio::time::Instant::now();
    let mut pending = false;
    loop {
        // Changes in the shares mounted in the user's tree are theirs to hear of too.
        let shares_moved = bridge.store.shares_changed();
        tokio::pin!(shares_moved);
        shares_moved.as_mut().enable();
        let owners = bridge.store.view(&user).share_owners().await.unwrap_or_default();
        tokio::select! {
            // Shares came or went: look at the owners again.
            () = &mut shares_moved => {}
            _ = crate::api::sync::changed_any(&mut changes, user.id, &owners) => {
                if tokio::time::Instant::now() < quiet_until {
                    pending = true;
                    continue;
                }
                if tx.send(Message::text("notify_file")).await.is_err() {
                    return;
                }
                quiet_until = tokio::time::Instant::now() + DEBOUNCE;
            }
            () = tokio::time::sleep_until(quiet_until), if pending => {
                pending = false;
                if tx.send(Message::text("notify_file")).await.is_err() {
                    return;
                }
                quiet_until = tokio::time::Instant::now() + DEBOUNCE;
            }
            _ = recheck.tick() => {
                if matches!(check().await, AuthOutcome::Denied | AuthOutcome::Throttled) {
                    let _ = tx.send(Message::text("err: Invalid credentials")).await;
                    let _ = tx.close().await;
                    return;
                }
            }
            _ = ping.tick() => {
                if tx.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            msg = rx.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // `listen notify_file_id` and the like: Cairn sends `notify_file` to everyone,
                // which every client version acts on.
                Some(Ok(_)) => {}
            },
        }
    }
}
