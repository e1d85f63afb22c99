//! Serving a file's bytes (GET/HEAD) for every front end: validators, conditional requests,
//! single and multiple byte ranges, streamed with flat memory.

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use store::{ETag, Timestamp};

use crate::body::{self, Body, hv};
use crate::dav::headers;
use crate::error::HttpError;

/// What a response says about the bytes it serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub(crate) etag: &'a ETag,
    pub(crate) mtime: Timestamp,
    pub(crate) size: u64,
}

pub(crate) fn http_date(t: Timestamp) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.secs().max(0) as u64))
}

fn read_error(e: std::io::Error) -> HttpError {
    tracing::error!(error = %e, "reading a file failed");
    HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
}

/// `If-Match`/`If-None-Match`/`If-(Un)Modified-Since` for GET and HEAD (RFC 9110 §13.2.2).
pub(crate) fn get_preconditions(h: &HeaderMap, node: &Meta<'_>) -> Option<StatusCode> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if let Some(im) = get("if-match")
        && im.trim() != "*"
        && !im.split(',').any(|t| headers::etag_matches(t, &node.etag.0))
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(ius) = get("if-unmodified-since").and_then(|d| httpdate::parse_http_date(d).ok())
        && Timestamp::from_system(ius).secs() < node.mtime.secs()
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(inm) = get("if-none-match") {
        if inm.trim() == "*" || inm.split(',').any(|t| headers::etag_matches(t, &node.etag.0)) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let Some(ims) = get("if-modified-since").and_then(|d| httpdate::parse_http_date(d).ok())
        && node.mtime.secs() <= Timestamp::from_system(ims).secs()
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// The media type for a file named `name`, by its extension as `Path::extension` finds it
/// (without parsing a `Path`: a PROPFIND or a REST listing asks once per entry).
pub(crate) fn content_type(name: &str) -> &'static str {
    let ext = name.rfind('.').filter(|&i| i > 0).map(|i| &name[i + 1..]);
    ext.and_then(|e| mime_guess::from_ext(e).first_raw()).unwrap_or("application/octet-stream")
}

/// Files up to this size are read whole when they are in memory (see [`store::Store::open_small`]).
pub(crate) const SMALL: u64 = 64 * 1024;

/// The bytes to serve: the open file, or its whole content when it was small and at hand, or
/// both (see [`store::Store::open_small`]).
pub(crate) struct Source {
    pub(crate) file: Option<std::fs::File>,
    pub(crate) bytes: Option<Bytes>,
}

impl Source {
    pub(crate) fn new(file: Option<std::fs::File>, bytes: Option<Vec<u8>>) -> Source {
        Source { file, bytes: bytes.map(Bytes::from) }
    }

    fn file(self) -> Result<std::fs::File, HttpError> {
        self.file.ok_or_else(|| {
            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "neither the file nor its bytes are at hand")
        })
    }

    /// A body of `len` bytes from `start`.
    async fn range(self, start: u64, len: u64) -> Result<Body, HttpError> {
        match &self.bytes {
            Some(b) if start + len <= b.len() as u64 => {
                Ok(body::full(b.slice(start as usize..(start + len) as usize)))
            }
            _ => body::file_range(self.file()?, start, len).await.map_err(read_error),
        }
    }

    /// A multipart body: each part's head, then its bytes, then the trailer.
    fn parts(self, parts: Vec<(Bytes, u64, u64)>, trailer: Bytes) -> Result<Body, HttpError> {
        match &self.bytes {
            Some(b) if parts.iter().all(|(_, s, n)| s + n <= b.len() as u64) => {
                let mut out = Vec::new();
                for (head, s, n) in &parts {
                    out.extend_from_slice(head);
                    out.extend_from_slice(&b[*s as usize..(s + n) as usize]);
                }
                out.extend_from_slice(&trailer);
                Ok(body::full(Bytes::from(out)))
            }
            _ => Ok(body::file_parts(self.file()?, parts, trailer)),
        }
    }
}

/// Answer a GET or HEAD of `src` (honouring the request's conditions and Range).
pub(crate) async fn respond(
    h: &HeaderMap,
    meta: Meta<'_>,
    src: Source,
    ctype: &str,
    head: bool,
) -> Result<Response<Body>, HttpError> {
    let mut res = body::status(StatusCode::OK);
    {
        let h = res.headers_mut();
        h.insert(header::ETAG, hv(&format!("\"{}\"", meta.etag)));
        h.insert(header::LAST_MODIFIED, hv(&http_date(meta.mtime)));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Some(code) = get_preconditions(h, &meta) {
        *res.status_mut() = code;
        return Ok(res);
    }
    // If-Range: serve ranges only while the client's copy is current.
    let if_range_ok = h
        .get("if-range")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ir| headers::etag_matches(ir, &meta.etag.0) || ir.trim() == http_date(meta.mtime));
    let range_header = h.get(header::RANGE).and_then(|v| v.to_str().ok()).filter(|_| if_range_ok);
    let ranges = match headers::parse_range(range_header, meta.size) {
        Ok(r) => r,
        Err(mut e) => {
            if e.status == StatusCode::RANGE_NOT_SATISFIABLE {
                let mut r = body::error_response(&e);
                r.headers_mut().insert(header::CONTENT_RANGE, hv(&format!("bytes */{}", meta.size)));
                return Ok(r);
            }
            e.message = format!("bad Range: {}", e.message);
            return Err(e);
        }
    };
    match ranges {
        None => {
            res.headers_mut().insert(header::CONTENT_TYPE, hv(ctype));
            res.headers_mut().insert(header::CONTENT_LENGTH, hv(&meta.size.to_string()));
            if !head {
                *res.body_mut() = src.range(0, meta.size).await?;
            }
        }
        Some(r) if r.len() == 1 => {
            let (s, e) = r[0];
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            res.headers_mut().insert(header::CONTENT_TYPE, hv(ctype));
            res.headers_mut().insert(header::CONTENT_RANGE, hv(&format!("bytes {s}-{e}/{}", meta.size)));
            res.headers_mut().insert(header::CONTENT_LENGTH, hv(&(e - s + 1).to_string()));
            if !head {
                *res.body_mut() = src.range(s, e - s + 1).await?;
            }
        }
        Some(r) => {
            let boundary = format!("cairn{}", &meta.etag.0);
            let mut parts = Vec::with_capacity(r.len());
            let mut total = 0u64;
            for (s, e) in &r {
                let head = format!(
                    "\r\n--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {s}-{e}/{}\r\n\r\n",
                    meta.size
                );
                total += head.len() as u64 + (e - s + 1);
                parts.push((Bytes::from(head), *s, e - s + 1));
            }
            let trailer = format!("\r\n--{boundary}--\r\n");
            total += trailer.len() as u64;
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            res.headers_mut()
                .insert(header::CONTENT_TYPE, hv(&format!("multipart/byteranges; boundary={boundary}")));
            res.headers_mut().insert(header::CONTENT_LENGTH, hv(&total.to_string()));
            if !head {
                *res.body_mut() = src.parts(parts, Bytes::from(trailer))?;
            }
        }
    }
    Ok(res)
}
