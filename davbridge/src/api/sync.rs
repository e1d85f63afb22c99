//! What sync clients need beyond files: the change feed (a page, a long poll, or pushed over a
//! WebSocket), a whole-tree listing with the cursor it was read at, and delta transfers
//! (signatures, deltas up, deltas down). The wire formats are in `davbridge/README.md`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use store::{Change, ContentHash, DeltaFrom, ETag, FeedCursor, FeedPage, Store, User};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::model::*;
use super::{Cx, Fail, Result, hv, json, vpath};
use crate::body::{self, Body};

/// Media type of an rsync signature (librsync format, MD4).
pub(crate) const SIGNATURE_TYPE: &str = "application/vnd.cairn.rsync-signature";
/// Media type of an rsync delta (librsync format).
pub(crate) const DELTA_TYPE: &str = "application/vnd.cairn.rsync-delta";
/// Longest long poll.
const MAX_WAIT: u64 = 60;
/// A delta is sent down only if it is smaller than this share of the file.
const DELTA_PAYS: f64 = 0.9;

fn record(c: &Change, after: &FeedCursor) -> ChangeRecord {
    ChangeRecord {
        cursor: after.to_string(),
        kind: c.kind.clone(),
        id: c.file_id.0,
        is_dir: c.is_dir,
        path: format!("/{}", c.path.as_str()),
        old_path: c.old_path.as_ref().map(|p| format!("/{}", p.as_str())),
        size: c.size,
        etag: c.etag.as_ref().map(|e| e.0.clone()),
        hash: c.content_hash.map(|h| h.to_hex()),
        at: c.at.to_rfc3339(),
        origin: c.origin.map(|o| o.as_str().to_owned()),
    }
}

fn page(p: &FeedPage) -> ChangesPage {
    ChangesPage {
        changes: p.changes.iter().map(|(c, after)| record(c, after)).collect(),
        cursor: p.cursor.to_string(),
        more: p.more,
        shared: false,
    }
}

/// `now` or a number.
async fn parse_cursor(store: &Store, user: &User, raw: &str) -> Result<FeedCursor> {
    if raw == "now" {
        return Ok(store.view(user).feed_cursor().await?);
    }
    FeedCursor::parse(raw).ok_or_else(|| Fail::bad("cursor must be `now` or a cursor from an earlier answer"))
}

/// Wait until `user`'s tree, or the tree of one of `others` (the owners of shares mounted in
/// the user's tree), may have changed (or the notices were interrupted): `true` when it was
/// only theirs.
pub(crate) async fn changed_any(
    rx: &mut broadcast::Receiver<Option<store::ChangeNotice>>,
    user: store::UserId,
    others: &[store::UserId],
) -> bool {
    loop {
        match rx.recv().await {
            Ok(Some(n)) if n.user == user => return false,
            Ok(Some(n)) if others.contains(&n.user) => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => return false,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// Changes after a cursor, oldest first; with `wait`, a long poll.
#[utoipa::path(get, path = "/api/v1/changes", tag = "sync", params(ChangesQuery),
    responses((status = 200, description = "The changes after the cursor (maybe none) and the next cursor", body = ChangesPage),
              (status = 400, description = "Malformed cursor", body = ApiError),
              (status = 410, description = "The cursor has expired: list everything again (`/api/v1/tree`)", body = ApiError)))]
pub(crate) async fn changes(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: ChangesQuery = cx.query()?;
    let cursor = parse_cursor(cx.store, &cx.user, &q.cursor).await?;
    let limit = q.limit.unwrap_or(1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(q.wait.unwrap_or(0).min(MAX_WAIT));
    // Subscribe before reading, so a change committed in between still wakes us.
    let mut rx = cx.store.subscribe_changes();
    let owners = cx.store.view(&cx.user).share_owners().await?;
    loop {
        let p = cx.store.view(&cx.user).feed(&cursor, limit).await?;
        if !p.changes.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(json(StatusCode::OK, &page(&p)));
        }
        let _ = tokio::time::timeout_at(deadline, changed_any(&mut rx, cx.user.id, &owners)).await;
    }
}

/// Everything below a folder (recursively), with the feed cursor it was read at.
#[utoipa::path(get, path = "/api/v1/tree", tag = "sync", params(TreeQuery),
    responses((status = 200, description = "The folder, then everything below it", body = Tree),
              (status = 404, description = "No such folder", body = ApiError),
              (status = 409, description = "Not a folder", body = ApiError)))]
pub(crate) async fn tree(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: TreeQuery = cx.query()?;
    let path = vpath(q.path.as_deref().unwrap_or("/"))?;
    // The cursor first: a change after it may or may not be in the listing, and replaying it
    // from the feed is harmless.
    let cursor = cx.store.view(&cx.user).feed_cursor().await?;
    let folder = cx.store.view(&cx.user).stat(&path).await?;
    if !folder.is_dir {
        return Err(Fail::new(StatusCode::CONFLICT, "not_a_folder", format!("{path} is a file")));
    }
    let mut entries = vec![entry(&folder)];
    entries.extend(
        cx.store.view(&cx.user).list_tree(&path).await?.iter().filter(|n| n.path != folder.path).map(entry),
    );
    Ok(json(StatusCode::OK, &Tree { cursor: cursor.to_string(), entries }))
}

/// The change feed pushed over a WebSocket.
#[utoipa::path(get, path = "/api/v1/events", tag = "sync", params(EventsQuery),
    responses((status = 101, description = "Switching to WebSocket: each text message is a `ChangesPage` (the first at once, even if empty); \
               an expired cursor gets one `ApiError` message and close code 4410"),
              (status = 400, description = "Not a WebSocket handshake, or a malformed cursor", body = ApiError),
              (status = 403, description = "Cookie sign-in from another origin", body = ApiError),
              (status = 410, description = "The cursor has expired", body = ApiError)))]
pub(crate) async fn events(
    cx: &Cx<'_>,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<Body>> {
    let q: EventsQuery = cx.query()?;
    let key = cx.header("sec-websocket-key").map(str::to_owned);
    let is_ws = cx.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && cx.header("sec-websocket-version") == Some("13");
    let (Some(key), true, Some(upgrade)) = (key, is_ws, upgrade) else {
        return Err(Fail::bad(
            "a WebSocket handshake (Upgrade: websocket, Sec-WebSocket-Version: 13) is required",
        ));
    };
    // A browser sends the cookie with a WebSocket opened by any site: accept it only from ours.
    if matches!(cx.via, super::Via::Session { .. }) {
        let host = cx.header("host").unwrap_or("");
        let origin = cx.header("origin").unwrap_or("");
        let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
        if origin_host != host {
            return Err(Fail::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a WebSocket signed in by cookie must come from this site",
            ));
        }
    }
    let cursor = parse_cursor(cx.store, &cx.user, q.cursor.as_deref().unwrap_or("now")).await?;
    // Refuse an expired cursor before switching protocols.
    cx.store.view(&cx.user).feed(&cursor, 1).await?;
    let (store, user, rx) = (cx.store.clone(), cx.user.clone(), cx.store.subscribe_changes());
    let open = cx.bridge.metrics.push_opened();
    tokio::spawn(async move {
        let _open = open;
        match upgrade.await {
            Ok(upgraded) => {
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                push(ws, store, user, cursor, rx).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut res = body::status(StatusCode::SWITCHING_PROTOCOLS);
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, hv(&accept));
    Ok(res)
}

/// Send every change after `cursor`, then each new one as it commits, until the client goes.
async fn push<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    store: Store,
    user: User,
    mut cursor: FeedCursor,
    mut rx: broadcast::Receiver<Option<store::ChangeNotice>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut incoming) = ws.split();
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    let mut first = true;
    loop {
        // Drain everything new (in pages), then wait.
        loop {
            let p = match store.view(&user).feed(&cursor, 1000).await {
                Ok(p) => p,
                Err(e) => {
                    let (status, code) = super::code_of(e.kind());
                    let msg =
                        serde_json::json!({"error": {"code": code, "message": e.message()}}).to_string();
                    let _ = tx.send(Message::text(msg)).await;
                    let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: (4000 + status.as_u16()).into(),
                        reason: code.into(),
                    };
                    let _ = tx.send(Message::Close(Some(close))).await;
                    return;
                }
            };
            if p.changes.is_empty() && !first {
                break;
            }
            first = false;
            cursor = p.cursor.clone();
            let text = serde_json::to_string(&page(&p)).expect("API types serialize");
            if tx.send(Message::text(text)).await.is_err() {
                return;
            }
            if !p.more {
                break;
            }
        }
        // The owners of the shares mounted now (the list is cached; a share coming or going
        // shows in the next wait).
        let shares_moved = store.shares_changed();
        tokio::pin!(shares_moved);
        shares_moved.as_mut().enable();
        let owners = store.view(&user).share_owners().await.unwrap_or_default();
        tokio::select! {
            // Shares came or went: look at the owners again.
            () = &mut shares_moved => {}
            shared = changed_any(&mut rx, user.id, &owners) => {
                if shared {
                    let p = ChangesPage { changes: Vec::new(), cursor: cursor.to_string(), more: false, shared: true };
                    let text = serde_json::to_string(&p).expect("API types serialize");
                    if tx.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
            }
            _ = ping.tick() => {
                if tx.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The rsync signature of a file's current content (librsync format, MD4, block size about
/// twice the square root of the size, 8-byte strong sums).
#[utoipa::path(get, path = "/api/v1/signature", tag = "sync", params(PathQuery),
    responses((status = 200, description = "The signature; `ETag` names the content it describes", content_type = "application/vnd.cairn.rsync-signature", body = Vec<u8>),
              (status = 404, description = "No such file", body = ApiError),
              (status = 409, description = "A folder, or the file changed while read (retry)", body = ApiError)))]
pub(crate) async fn signature(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: PathQuery = cx.query()?;
    let (node, sig) = cx.store.view(&cx.user).signature(&vpath(&q.path)?).await?;
    cx.bridge.metrics.transferred("down", "signature", sig.len() as u64);
    let mut res = Response::new(body::full(sig));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SIGNATURE_TYPE));
    h.insert(header::ETAG, hv(&format!("\"{}\"", node.etag)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn etag_of(raw: &str) -> ETag {
    ETag(crate::dav::headers::etag_value(raw).to_owned())
}

fn blake3_of(raw: Option<&str>) -> Result<ContentHash> {
    let raw = raw.ok_or_else(|| Fail::bad("X-Cairn-Blake3 (the blake3 of the result, hex) is required"))?;
    let bytes = hex::decode(raw.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or_else(|| Fail::bad("X-Cairn-Blake3 must be 64 hex digits"))?;
    Ok(ContentHash(bytes.try_into().expect("32 bytes")))
}

/// Upload a delta against the file's current content: the result becomes the new content.
#[utoipa::path(put, path = "/api/v1/delta", tag = "sync", params(PathQuery, DeltaHeaders),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "An rsync delta (librsync format) against the content `If-Match` names; any Content-Type is accepted"),
    responses((status = 200, description = "Applied and committed (the old content is a version)", body = Entry),
              (status = 400, description = "Malformed delta, or the result's blake3 differs (`checksum_mismatch`): nothing changed", body = ApiError),
              (status = 404, description = "No such file", body = ApiError),
              (status = 409, description = "A folder", body = ApiError),
              (status = 412, description = "The file is no longer at the `If-Match` etag", body = ApiError),
              (status = 413, description = "Over quota", body = ApiError),
              (status = 428, description = "`If-Match` missing", body = ApiError)))]
pub(crate) async fn put_delta(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let q: PathQuery = cx.query()?;
    let path = vpath(&q.path)?;
    let Some(base) = cx.header("if-match").map(etag_of) else {
        return Err(Fail::new(
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
            "If-Match: the etag of the base is required",
        ));
    };
    let expected = blake3_of(cx.header("x-cairn-blake3"))?;
    let metrics = &cx.bridge.metrics;
    let stream = BodyDataStream::new(body)
        .inspect_ok(|b| metrics.transferred("up", "delta", b.len() as u64))
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let out = cx.store.view(&cx.user).write_delta(&cx.actor, &path, &base, reader, expected, None).await?;
    let mut res = json(StatusCode::OK, &entry(&out.node));
    res.headers_mut().insert(header::ETAG, hv(&format!("\"{}\"", out.node.etag)));
    Ok(res)
}

/// `GET /api/v1/content` with `A-IM: rsync` and `If-None-Match: "<etag the client has>"`: a
/// `226 IM Used` delta from that content to the current one, when the server still has it and
/// the delta pays; `None` to answer normally (200 full body, or 304).
pub(crate) async fn delta_down(cx: &Cx<'_>, path: &store::VPath) -> Result<Option<Response<Body>>> {
    let wants =
        cx.header("a-im").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("rsync")));
    let have = cx.header("if-none-match").filter(|v| !v.contains(',') && v.trim() != "*").map(etag_of);
    let (true, Some(have), None) = (wants, have, cx.header("range")) else { return Ok(None) };
    match cx.store.view(&cx.user).delta_from(path, &have, DELTA_PAYS).await? {
        DeltaFrom::Unchanged(_) | DeltaFrom::Full => Ok(None),
        DeltaFrom::Delta { node, delta, len } => {
            cx.bridge.metrics.transferred("down", "delta", len);
            let mut res = Response::new(body::file_range(delta, 0, len).await.map_err(|e| {
                Fail::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("reading a delta: {e}"))
            })?);
            *res.status_mut() = StatusCode::from_u16(226).expect("226 is a status");
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(DELTA_TYPE));
            h.insert(header::CONTENT_LENGTH, hv(&len.to_string()));
            h.insert(header::ETAG, hv(&format!("\"{}\"", node.etag)));
            h.insert("im", HeaderValue::from_static("rsync"));
            h.insert("delta-base", hv(&format!("\"{}\"", have.0)));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Some(hash) = node.content_hash {
                h.insert("x-cairn-blake3", hv(&hash.to_hex()));
            }
            Ok(Some(res))
        }
    }
}
