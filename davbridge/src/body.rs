//! Response bodies: small buffers, and files streamed from disk in fixed-size chunks so a 4 GiB
//! download costs the same memory as a 4 KiB one.

use std::io::SeekFrom;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{HttpError, sabre_exception};

/// Every response body.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

const CHUNK: usize = 256 * 1024;

/// A header value from text (text that is not a valid header value becomes `invalid`; callers
/// only pass values they built from safe parts).
pub fn hv(s: &str) -> hyper::header::HeaderValue {
    hyper::header::HeaderValue::from_str(s)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("invalid"))
}

/// A body from bytes.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|never| match never {}).boxed_unsync()
}

/// No body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// `res` as a 503 with `Retry-After`, for when credentials cannot be checked (the database is
/// away).
pub fn unavailable(res: Response<Body>) -> Response<Body> {
    let mut res = res;
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut().insert(header::RETRY_AFTER, hyper::header::HeaderValue::from_static("5"));
    res
}

/// [`unavailable`] with the WebDAV error body (WebDAV and the Nextcloud endpoints).
pub fn dav_unavailable() -> Response<Body> {
    unavailable(error_response(&HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "credentials cannot be checked now; try again",
    )))
}

/// A plain-text response.
pub fn text(status: StatusCode, msg: &'static str) -> Response<Body> {
    let mut res = Response::new(full(msg));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, "text/plain; charset=utf-8".parse().expect("static"));
    res
}

/// A response with no body.
pub fn status(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(empty());
    *res.status_mut() = status;
    res
}

/// An error as the Sabre-style XML body WebDAV clients (Nextcloud's among them) parse.
pub fn error_response(e: &HttpError) -> Response<Body> {
    let pre = e.precondition.map(|p| format!("<d:{p}/>")).unwrap_or_default();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:error xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\">{pre}<s:exception>{}</s:exception><s:message>{}</s:message></d:error>\n",
        crate::dav::xml::escape(sabre_exception(e.status)),
        crate::dav::xml::escape(&e.message)
    );
    let mut res = Response::new(full(xml));
    *res.status_mut() = e.status;
    res.headers_mut().insert(header::CONTENT_TYPE, "application/xml; charset=utf-8".parse().expect("static"));
    res
}

/// `len` bytes of `file` from `start`: streamed, or for small ranges read in one `pread`
/// (one trip to the blocking pool instead of a reader task and a channel).
pub async fn file_range(file: std::fs::File, start: u64, len: u64) -> std::io::Result<Body> {
    if len > CHUNK as u64 {
        return Ok(file_parts(file, vec![(Bytes::new(), start, len)], Bytes::new()));
    }
    let data = tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, start).map(|()| buf)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(full(data))
}

/// Stream several pieces: for each, a prefix (part headers), then `len` bytes from `start`;
/// then a trailer. Reads happen in a task feeding a small channel, so memory stays flat.
pub fn file_parts(file: std::fs::File, parts: Vec<(Bytes, u64, u64)>, trailer: Bytes) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::spawn(async move {
        let mut file = tokio::fs::File::from_std(file);
        for (prefix, start, len) in parts {
            if !prefix.is_empty() && tx.send(Ok(prefix)).await.is_err() {
                return;
            }
            if let Err(e) = file.seek(SeekFrom::Start(start)).await {
                let _ = tx.send(Err(e)).await;
                return;
            }
            let mut left = len;
            while left > 0 {
                let want = left.min(CHUNK as u64) as usize;
                let mut buf = vec![0u8; want];
                match file.read_exact(&mut buf).await {
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                left -= want as u64;
                if tx.send(Ok(Bytes::from(buf))).await.is_err() {
                    return;
                }
            }
        }
        if !trailer.is_empty() {
            let _ = tx.send(Ok(trailer)).await;
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    StreamBody::new(stream.map(|r| r.map(Frame::data))).boxed_unsync()
}
