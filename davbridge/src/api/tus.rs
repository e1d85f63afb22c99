//! tus 1.0 resumable uploads at `/api/v1/uploads/`: core protocol plus the creation,
//! creation-with-upload, termination, checksum (blake3, sha256) and expiration extensions.
//! `Upload-Metadata` must carry `path` (the destination in the user's tree); the file appears
//! there, missing parent folders created, when the last byte arrives. `mtime` (unix seconds)
//! is optional. The bytes and offsets live in `store` (durable across restarts).

use base64::Engine;
use futures_util::TryStreamExt;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use store::{Appended, Checksum, Timestamp, Upload};

use super::model::ApiError;
use super::{Cx, Fail, Result, hv, vpath};
use crate::body::{self, Body};
use crate::download::http_date;

const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,expiration";
const OFFSET_TYPE: &str = "application/offset+octet-stream";

/// Headers every tus response carries.
pub(crate) fn decorate(res: &mut Response<Body>) {
    let h = res.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `OPTIONS`: what this server supports.
pub(crate) fn options() -> Response<Body> {
    let mut res = body::status(StatusCode::NO_CONTENT);
    decorate(&mut res);
    let h = res.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(VERSION));
    h.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    h.insert("tus-checksum-algorithm", HeaderValue::from_static("blake3,sha256"));
    res
}

fn require_version(cx: &Cx<'_>) -> Result<()> {
    match cx.header("tus-resumable") {
        Some(VERSION) => Ok(()),
        _ => Err(Fail::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "Tus-Resumable: 1.0.0 is required (the only version served)",
        )),
    }
}

fn with_upload_headers(res: &mut Response<Body>, up: &Upload) {
    decorate(res);
    let h = res.headers_mut();
    h.insert("upload-offset", hv(&up.offset.to_string()));
    h.insert("upload-length", hv(&up.length.to_string()));
    h.insert("upload-expires", hv(&http_date(up.expires_at)));
}

/// Parse `Upload-Metadata`: comma-separated `key base64value` (value optional).
pub(crate) fn parse_metadata(raw: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = pair.split(' ').filter(|s| !s.is_empty());
        let key = it.next().unwrap_or("");
        let value = it.next().unwrap_or("");
        if it.next().is_some() || key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(Fail::bad("malformed Upload-Metadata"));
        }
        let value = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| Fail::bad(format!("Upload-Metadata {key}: not base64")))?;
        if out.iter().any(|(k, _)| k == key) {
            return Err(Fail::bad(format!("Upload-Metadata {key} given twice")));
        }
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

fn parse_checksum(raw: Option<&str>) -> Result<Option<Checksum>> {
    let Some(raw) = raw else { return Ok(None) };
    let (algo, sum) = raw.trim().split_once(' ').ok_or_else(|| Fail::bad("malformed Upload-Checksum"))?;
    let sum = base64::engine::general_purpose::STANDARD
        .decode(sum.trim())
        .map_err(|_| Fail::bad("Upload-Checksum: not base64"))?;
    if sum.len() != 32 {
        return Err(Fail::bad("Upload-Checksum: wrong length"));
    }
    match algo.to_ascii_lowercase().as_str() {
        "blake3" => Ok(Some(Checksum::Blake3(sum))),
        "sha256" => Ok(Some(Checksum::Sha256(sum))),
        _ => Err(Fail::bad("Upload-Checksum: unsupported algorithm (blake3, sha256)")),
    }
}

fn parse_u64(cx: &Cx<'_>, name: &str) -> Result<Option<u64>> {
    cx.header(name)
        .map(|v| {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Fail::bad(format!("{name} must be a non-negative integer")));
            }
            v.parse::<u64>().map_err(|_| Fail::bad(format!("{name} too large")))
        })
        .transpose()
}

async fn append(cx: &Cx<'_>, id: &str, offset: u64, body: Incoming) -> Result<Appended> {
    let checksum = parse_checksum(cx.header("upload-checksum"))?;
    let stream = BodyDataStream::new(body).map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    cx.store.append_upload(&cx.actor, &cx.user, id, offset, reader, checksum).await.map_err(|e| {
        match e.kind() {
            // tus's own status for a checksum that does not match.
            store::ErrorKind::ChecksumMismatch => {
                Fail::new(StatusCode::from_u16(460).expect("valid"), "checksum_mismatch", e.message())
            }
            _ => e.into(),
        }
    })
}

fn completed_headers(res: &mut Response<Body>, outcome: &Appended) {
    if let Appended::Complete(_, out) = outcome {
        let h = res.headers_mut();
        h.insert(header::ETAG, hv(&format!("\"{}\"", out.node.etag)));
        h.insert("x-cairn-file-id", hv(&out.node.id.to_string()));
        if let Some(hash) = out.node.content_hash {
            h.insert("x-cairn-blake3", hv(&hash.to_hex()));
        }
    }
}

/// Create an upload (and optionally send its first bytes in the same request).
#[utoipa::path(post, path = "/api/v1/uploads/", tag = "uploads",
    params(
        ("Tus-Resumable" = String, Header, description = "Must be 1.0.0"),
        ("Upload-Length" = u64, Header, description = "Total bytes"),
        ("Upload-Metadata" = String, Header, description = "tus metadata; `path` (base64 of the destination, e.g. /docs/a.pdf) is required, `mtime` (base64 of unix seconds) optional"),
    ),
    responses(
        (status = 201, description = "Created; `Location` is the upload's URL",
         headers(("Location" = String), ("Upload-Offset" = u64), ("Upload-Expires" = String), ("Tus-Resumable" = String))),
        (status = 409, description = "A folder is at the path", body = ApiError),
        (status = 412, description = "Unsupported tus version", body = ApiError),
        (status = 460, description = "Checksum mismatch (creation-with-upload)", body = ApiError),
        (status = 413, description = "The quota cannot hold it", body = ApiError)))]
pub(crate) async fn create(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    require_version(cx)?;
    if cx.header("upload-defer-length").is_some() {
        return Err(Fail::bad("Upload-Defer-Length is not supported; send Upload-Length"));
    }
    let length = parse_u64(cx, "upload-length")?.ok_or_else(|| Fail::bad("Upload-Length is required"))?;
    if length > i64::MAX as u64 {
        return Err(Fail::bad("Upload-Length too large"));
    }
    let raw_meta = cx.header("upload-metadata").unwrap_or("");
    let meta = parse_metadata(raw_meta)?;
    let get = |k: &str| meta.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_slice());
    let path = get("path").ok_or_else(|| Fail::bad("Upload-Metadata must carry path"))?;
    let path = vpath(std::str::from_utf8(path).map_err(|_| Fail::bad("path is not UTF-8"))?)?;
    let mtime = match get("mtime") {
        Some(raw) => Some(
            std::str::from_utf8(raw)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|s| (0..=i64::MAX / 1_000_000_000).contains(s))
                .map(|s| Timestamp(s * 1_000_000_000))
                .ok_or_else(|| Fail::bad("mtime must be unix seconds"))?,
        ),
        None => None,
    };
    let up = cx.store.create_upload(&cx.actor, &cx.user, &path, length, raw_meta, mtime).await?;
    let with_body = cx
        .header("content-type")
        .is_some_and(|c| c.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(OFFSET_TYPE));
    let (up, outcome) = if with_body || length == 0 {
        let outcome = append(cx, &up.id, 0, body).await?;
        let up = match &outcome {
            Appended::Partial(u) | Appended::Complete(u, _) => u.clone(),
        };
        (up, Some(outcome))
    } else {
        (up, None)
    };
    let mut res = body::status(StatusCode::CREATED);
    with_upload_headers(&mut res, &up);
    res.headers_mut().insert(header::LOCATION, hv(&format!("/api/v1/uploads/{}", up.id)));
    if let Some(o) = &outcome {
        completed_headers(&mut res, o);
    }
    Ok(res)
}

/// Where an upload stands.
#[utoipa::path(head, path = "/api/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path, description = "Upload id"), ("Tus-Resumable" = String, Header, description = "Must be 1.0.0")),
    responses(
        (status = 200, description = "The offset the server has",
         headers(("Upload-Offset" = u64), ("Upload-Length" = u64), ("Upload-Metadata" = String), ("Upload-Expires" = String))),
        (status = 404, description = "No such upload (or it expired)"),
        (status = 412, description = "Unsupported tus version")))]
pub(crate) async fn head(cx: &Cx<'_>, id: &str) -> Result<Response<Body>> {
    require_version(cx)?;
    let up = cx.store.upload(&cx.user, id).await?;
    let mut res = body::status(StatusCode::OK);
    with_upload_headers(&mut res, &up);
    if !up.metadata.is_empty() {
        res.headers_mut().insert("upload-metadata", hv(&up.metadata));
    }
    Ok(res)
}

/// Append bytes at the server's offset; the last byte commits the file.
#[utoipa::path(patch, path = "/api/v1/uploads/{id}", tag = "uploads",
    params(
        ("id" = String, Path, description = "Upload id"),
        ("Tus-Resumable" = String, Header, description = "Must be 1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Must equal the server's offset"),
        ("Upload-Checksum" = Option<String>, Header, description = "`blake3 <base64>` or `sha256 <base64>` of this request's bytes"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Appended", headers(("Upload-Offset" = u64), ("Upload-Expires" = String))),
        (status = 404, description = "No such upload (or it expired)", body = ApiError),
        (status = 409, description = "Upload-Offset is not the server's offset", body = ApiError),
        (status = 412, description = "Unsupported tus version", body = ApiError),
        (status = 415, description = "Not application/offset+octet-stream", body = ApiError),
        (status = 423, description = "Another request is appending", body = ApiError),
        (status = 460, description = "Checksum mismatch; nothing was appended", body = ApiError),
        (status = 413, description = "Over quota at completion", body = ApiError)))]
pub(crate) async fn patch(cx: &Cx<'_>, id: &str, body: Incoming) -> Result<Response<Body>> {
    require_version(cx)?;
    let ctype = cx.header("content-type").unwrap_or("");
    if !ctype.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(OFFSET_TYPE) {
        return Err(Fail::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "PATCH needs Content-Type: application/offset+octet-stream",
        ));
    }
    let offset = parse_u64(cx, "upload-offset")?.ok_or_else(|| Fail::bad("Upload-Offset is required"))?;
    let outcome = append(cx, id, offset, body).await?;
    let up = match &outcome {
        Appended::Partial(u) | Appended::Complete(u, _) => u.clone(),
    };
    cx.bridge.metrics.transferred("up", "tus", up.offset.saturating_sub(offset));
    let mut res = body::status(StatusCode::NO_CONTENT);
    with_upload_headers(&mut res, &up);
    completed_headers(&mut res, &outcome);
    Ok(res)
}

/// Terminate an upload: its bytes and its quota reservation go.
#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "uploads",
    params(("id" = String, Path, description = "Upload id"), ("Tus-Resumable" = String, Header, description = "Must be 1.0.0")),
    responses(
        (status = 204, description = "Terminated"),
        (status = 404, description = "No such upload", body = ApiError),
        (status = 412, description = "Unsupported tus version", body = ApiError),
        (status = 423, description = "Another request is appending", body = ApiError)))]
pub(crate) async fn delete(cx: &Cx<'_>, id: &str) -> Result<Response<Body>> {
    require_version(cx)?;
    cx.store.delete_upload(&cx.actor, &cx.user, id).await?;
    let mut res = body::status(StatusCode::NO_CONTENT);
    decorate(&mut res);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata() {
        let m = parse_metadata("path L2RvY3MvYS5wZGY=,is_confidential, mtime MTcwMDAwMDAwMA==").unwrap();
        assert_eq!(m[0], ("path".into(), b"/docs/a.pdf".to_vec()));
        assert_eq!(m[1], ("is_confidential".into(), vec![]));
        assert_eq!(m[2].1, b"1700000000".to_vec());
        assert!(parse_metadata("path !!!").is_err());
        assert!(parse_metadata("path a b").is_err());
        assert!(parse_metadata("a YQ==,a YQ==").is_err());
    }

    #[test]
    fn checksums() {
        let b3 = base64::engine::general_purpose::STANDARD.encode(blake3::hash(b"x").as_bytes());
        assert!(matches!(parse_checksum(Some(&format!("blake3 {b3}"))).unwrap(), Some(Checksum::Blake3(_))));
        assert!(parse_checksum(Some(&format!("md5 {b3}"))).is_err());
        assert!(parse_checksum(Some("sha256 YQ==")).is_err());
        assert_eq!(parse_checksum(None).unwrap(), None);
    }
}
