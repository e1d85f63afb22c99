//! Files, folders, trash, versions and search.

use futures_util::TryStreamExt;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use store::{ETag, Replace, TrashId, VersionId, WriteOptions};

use super::model::*;
use super::{Cx, Fail, Result, hv, json, read_json, read_json_opt, vpath};
use crate::body::Body;
use crate::download;

/// The folder's entries, folders first, sorted and paged.
#[utoipa::path(get, path = "/api/v1/files", tag = "files", params(ListQuery),
    responses((status = 200, description = "One page of the folder", body = Listing),
              (status = 404, description = "No such folder", body = ApiError),
              (status = 409, description = "Not a folder", body = ApiError)))]
pub(crate) async fn list(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: ListQuery = cx.query()?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=5000).contains(&limit) {
        return Err(Fail::bad("limit must be between 1 and 5000"));
    }
    let offset = q.offset.unwrap_or(0);
    if offset > 1_000_000_000 {
        return Err(Fail::bad("offset too large"));
    }
    let path = vpath(q.path.as_deref().unwrap_or("/"))?;
    let folder = cx.store.view(&cx.user).stat(&path).await?;
    if !folder.is_dir {
        return Err(Fail::new(StatusCode::CONFLICT, "not_a_folder", format!("{path} is not a folder")));
    }
    let mut nodes = cx.store.view(&cx.user).list(&path).await?;
    let key = q.sort.unwrap_or_default();
    nodes.sort_by(|a, b| {
        let ord = match key {
            SortKey::Name => a.path.name().to_lowercase().cmp(&b.path.name().to_lowercase()),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Mtime => a.mtime.cmp(&b.mtime),
        }
        .then_with(|| a.path.name().cmp(b.path.name()));
        let ord = if q.order.unwrap_or_default() == SortOrder::Desc { ord.reverse() } else { ord };
        b.is_dir.cmp(&a.is_dir).then(ord)
    });
    let total = nodes.len() as u64;
    let entries = nodes.iter().skip(offset as usize).take(limit as usize).map(entry).collect();
    Ok(json(StatusCode::OK, &Listing { folder: entry(&folder), entries, total, offset, limit }))
}

/// One file or folder.
#[utoipa::path(get, path = "/api/v1/stat", tag = "files", params(PathQuery),
    responses((status = 200, description = "The entry", body = Entry),
              (status = 404, description = "Nothing there", body = ApiError)))]
pub(crate) async fn stat(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: PathQuery = cx.query()?;
    let node = cx.store.view(&cx.user).stat(&vpath(&q.path)?).await?;
    Ok(json(StatusCode::OK, &entry(&node)))
}

pub(crate) fn disposition(name: &str, download: bool) -> HeaderValue {
    const ATTR: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_').remove(b'~');
    let enc = percent_encoding::utf8_percent_encode(name, ATTR);
    let kind = if download { "attachment" } else { "inline" };
    hv(&format!("{kind}; filename*=UTF-8''{enc}"))
}

/// Harden a response carrying user content: never sniffed, and if it is shown in the browser
/// (HTML, SVG) it runs in a sandbox without scripts and without the site's origin.
pub(crate) fn harden(res: &mut Response<Body>) {
    let h = res.headers_mut();
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; media-src 'self'",
        ),
    );
}

/// A file's bytes (with `Range`, `If-None-Match`, `If-Modified-Since`).
#[utoipa::path(get, path = "/api/v1/content", tag = "files", params(ContentQuery),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 226, description = "With `A-IM: rsync` and `If-None-Match: \"<etag>\"` naming a content of this file the server still keeps: \
               an rsync delta from it to the current content (`IM: rsync`, `Delta-Base`, `ETag`, `X-Cairn-Blake3` of the result)", content_type = "application/vnd.cairn.rsync-delta", body = Vec<u8>),
              (status = 304, description = "Not modified"),
              (status = 404, description = "No such file", body = ApiError),
              (status = 409, description = "A folder", body = ApiError),
              (status = 412, description = "If-Match failed", body = ApiError),
              (status = 416, description = "Range not satisfiable")))]
pub(crate) async fn download(cx: &Cx<'_>, head: bool) -> Result<Response<Body>> {
    let q: ContentQuery = cx.query()?;
    let path = vpath(&q.path)?;
    if !head && let Some(res) = super::sync::delta_down(cx, &path).await? {
        return Ok(res);
    }
    let (node, file, bytes) = cx.store.view(&cx.user).open_small(&path, download::SMALL).await?;
    let meta = download::Meta { etag: &node.etag, mtime: node.mtime, size: node.size };
    let res =
        serve_content(cx, meta, download::Source::new(file, bytes), &path, head, q.download.unwrap_or(false))
            .await?;
    if !head
        && let Some(len) =
            res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok())
    {
        cx.bridge.metrics.transferred("down", "full", len);
    }
    Ok(res)
}

/// Serve user content: the shared GET logic, then a filename and the hardening headers.
async fn serve_content(
    cx: &Cx<'_>,
    meta: download::Meta<'_>,
    src: download::Source,
    path: &store::VPath,
    head: bool,
    attachment: bool,
) -> Result<Response<Body>> {
    let mut res = download::respond(&cx.headers, meta, src, download::content_type(path.name()), head)
        .await
        .map_err(|e| {
            // The shared GET logic fails on a bad Range (4xx) or a failed read (5xx).
            let code = if e.status.is_server_error() { "internal" } else { "invalid_input" };
            Fail::new(e.status, code, e.message)
        })?;
    res.headers_mut().insert(header::CONTENT_DISPOSITION, disposition(path.name(), attachment));
    harden(&mut res);
    Ok(res)
}

/// Upload a whole file in the body (for large files prefer tus at `/api/v1/uploads/`).
#[utoipa::path(put, path = "/api/v1/content", tag = "files", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "Replaced", body = Entry),
              (status = 201, description = "Created", body = Entry),
              (status = 409, description = "A folder is there, or it exists and overwrite is false", body = ApiError),
              (status = 412, description = "If-Match failed", body = ApiError),
              (status = 413, description = "Over quota", body = ApiError)))]
pub(crate) async fn upload(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let q: UploadQuery = cx.query()?;
    let path = vpath(&q.path)?;
    if path.is_root() {
        return Err(Fail::new(StatusCode::CONFLICT, "is_a_folder", "the root is a folder"));
    }
    let mut opts = WriteOptions { create_parents: true, ..WriteOptions::default() };
    opts.create_only = !q.overwrite.unwrap_or(true);
    if let Some(im) = cx.header("if-match")
        && im.trim() != "*"
    {
        opts.if_match = Some(ETag(crate::dav::headers::etag_value(im).to_owned()));
    }
    opts.expected_len = cx.header("content-length").and_then(|v| v.parse().ok());
    let metrics = &cx.bridge.metrics;
    let stream = BodyDataStream::new(body)
        .inspect_ok(|b| metrics.transferred("up", "full", b.len() as u64))
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let out = cx.store.view(&cx.user).write(&cx.actor, &path, reader, opts).await.map_err(|e| {
        if e.kind() == store::ErrorKind::AlreadyExists {
            Fail::new(StatusCode::CONFLICT, "already_exists", e.message())
        } else {
            e.into()
        }
    })?;
    let mut res = json(if out.created { StatusCode::CREATED } else { StatusCode::OK }, &entry(&out.node));
    res.headers_mut().insert(header::ETAG, hv(&format!("\"{}\"", out.node.etag)));
    Ok(res)
}

/// Create a folder (and any missing parents).
#[utoipa::path(post, path = "/api/v1/folders", tag = "files", request_body = NewFolder,
    responses((status = 201, description = "Created", body = Entry),
              (status = 409, description = "Something is already there", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn mkdir(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let req: NewFolder = read_json(&cx.headers, body).await?;
    let path = vpath(&req.path)?;
    if path.is_root() {
        return Err(Fail::new(StatusCode::CONFLICT, "already_exists", "the root exists"));
    }
    // Create the missing ancestors first (each an ordinary mkdir).
    for anc in path.ancestors().into_iter().rev().skip(1) {
        match cx.store.view(&cx.user).stat(&anc).await {
            Ok(n) if n.is_dir => {}
            Ok(_) => return Err(Fail::new(StatusCode::CONFLICT, "not_a_folder", format!("{anc} is a file"))),
            Err(e) if e.kind() == store::ErrorKind::NotFound => {
                match cx.store.view(&cx.user).mkdir(&cx.actor, &anc).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == store::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let node = cx.store.view(&cx.user).mkdir(&cx.actor, &path).await?;
    Ok(json(StatusCode::CREATED, &entry(&node)))
}

/// Move or rename (ids are kept).
#[utoipa::path(post, path = "/api/v1/move", tag = "files", request_body = Transfer,
    responses((status = 200, description = "Moved", body = Entry),
              (status = 404, description = "No source", body = ApiError),
              (status = 409, description = "The destination exists, has no parent, or is inside the source", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError),
              (status = 423, description = "Locked (WebDAV lock)", body = ApiError)))]
pub(crate) async fn move_(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    transfer(cx, body, true).await
}

/// Copy a file or a folder with everything below it (new ids).
#[utoipa::path(post, path = "/api/v1/copy", tag = "files", request_body = Transfer,
    responses((status = 201, description = "Copied", body = Entry),
              (status = 404, description = "No source", body = ApiError),
              (status = 409, description = "The destination exists, has no parent, or is inside the source", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError),
              (status = 413, description = "Over quota", body = ApiError)))]
pub(crate) async fn copy(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    transfer(cx, body, false).await
}

pub(crate) async fn transfer(cx: &Cx<'_>, body: Incoming, is_move: bool) -> Result<Response<Body>> {
    let req: Transfer = read_json(&cx.headers, body).await?;
    let (from, to) = (vpath(&req.from)?, vpath(&req.to)?);
    if from.is_root() || to.is_root() {
        return Err(Fail::new(StatusCode::CONFLICT, "conflict", "the root cannot be moved or replaced"));
    }
    if cx.store.view(&cx.user).has_locks().await? {
        // WebDAV locks hold for every front end: a locked source or destination is refused.
        for p in [&from, &to] {
            if !cx.store.view(&cx.user).locks(p, true).await?.is_empty() {
                return Err(Fail::new(StatusCode::LOCKED, "locked", format!("{p} is locked")));
            }
        }
    }
    let res = if is_move {
        cx.store.view(&cx.user).rename(&cx.actor, &from, &to, Replace::overwrite(req.overwrite)).await
    } else {
        cx.store.view(&cx.user).copy(&cx.actor, &from, &to, Replace::overwrite(req.overwrite)).await
    };
    let node = res.map_err(|e| match e.kind() {
        store::ErrorKind::AlreadyExists => Fail::new(StatusCode::CONFLICT, "already_exists", e.message()),
        _ => e.into(),
    })?;
    Ok(json(if is_move { StatusCode::OK } else { StatusCode::CREATED }, &entry(&node)))
}

/// Move a file or folder to the trash.
#[utoipa::path(delete, path = "/api/v1/files", tag = "files", params(PathQuery),
    responses((status = 200, description = "In the trash", body = Trashed),
              (status = 404, description = "Nothing there", body = ApiError),
              (status = 409, description = "The root", body = ApiError),
              (status = 423, description = "Locked (WebDAV lock)", body = ApiError)))]
pub(crate) async fn delete(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: PathQuery = cx.query()?;
    let path = vpath(&q.path)?;
    if path.is_root() {
        return Err(Fail::new(StatusCode::CONFLICT, "conflict", "the root cannot be deleted"));
    }
    if cx.store.view(&cx.user).has_locks().await?
        && !cx.store.view(&cx.user).locks(&path, true).await?.is_empty()
    {
        return Err(Fail::new(StatusCode::LOCKED, "locked", format!("{path} is locked")));
    }
    let id = cx.store.view(&cx.user).delete(&cx.actor, &path, None).await?;
    Ok(json(StatusCode::OK, &Trashed { trash_id: id.map(|id| id.0) }))
}

/// What is in the trash, newest first.
#[utoipa::path(get, path = "/api/v1/trash", tag = "trash",
    responses((status = 200, description = "Trash items", body = Vec<TrashEntry>)))]
pub(crate) async fn trash(cx: &Cx<'_>) -> Result<Response<Body>> {
    let items = cx.store.trash_list(&cx.user).await?;
    let out: Vec<TrashEntry> = items
        .iter()
        .map(|t| TrashEntry {
            id: t.id.0,
            file_id: t.file_id.0,
            path: format!("/{}", t.orig_path.as_str()),
            name: t.orig_path.name().to_owned(),
            is_dir: t.is_dir,
            size: t.size,
            deleted_at: t.deleted_at.to_rfc3339(),
        })
        .collect();
    Ok(json(StatusCode::OK, &out))
}

/// Empty the trash.
#[utoipa::path(delete, path = "/api/v1/trash", tag = "trash",
    responses((status = 200, description = "Emptied", body = Purged)))]
pub(crate) async fn trash_empty(cx: &Cx<'_>) -> Result<Response<Body>> {
    let bytes = cx.store.trash_purge(&cx.actor, &cx.user, None).await?;
    Ok(json(StatusCode::OK, &Purged { bytes }))
}

/// Put a trash item back (where it was, or at `to`).
#[utoipa::path(post, path = "/api/v1/trash/{id}/restore", tag = "trash",
    params(("id" = i64, Path, description = "Trash item id", minimum = 1)),
    request_body(content = Option<RestoreTo>, description = "Optional new location"),
    responses((status = 200, description = "Restored", body = Entry),
              (status = 404, description = "No such trash item", body = ApiError),
              (status = 409, description = "Something is in the way, or the parent is gone", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError),
              (status = 413, description = "Over quota", body = ApiError)))]
pub(crate) async fn trash_restore(cx: &Cx<'_>, id: i64, body: Incoming) -> Result<Response<Body>> {
    let req: RestoreTo = read_json_opt(&cx.headers, body).await?;
    let to = req.to.as_deref().map(vpath).transpose()?;
    let node =
        cx.store.trash_restore(&cx.actor, &cx.user, TrashId(id), to).await.map_err(|e| match e.kind() {
            store::ErrorKind::AlreadyExists => Fail::new(StatusCode::CONFLICT, "already_exists", e.message()),
            _ => e.into(),
        })?;
    Ok(json(StatusCode::OK, &entry(&node)))
}

/// Delete one trash item for good.
#[utoipa::path(delete, path = "/api/v1/trash/{id}", tag = "trash",
    params(("id" = i64, Path, description = "Trash item id", minimum = 1)),
    responses((status = 200, description = "Gone", body = Purged),
              (status = 404, description = "No such trash item", body = ApiError)))]
pub(crate) async fn trash_purge(cx: &Cx<'_>, id: i64) -> Result<Response<Body>> {
    let bytes = cx.store.trash_purge(&cx.actor, &cx.user, Some(TrashId(id))).await?;
    Ok(json(StatusCode::OK, &Purged { bytes }))
}

/// Earlier contents of a file, newest first.
#[utoipa::path(get, path = "/api/v1/versions", tag = "versions", params(PathQuery),
    responses((status = 200, description = "Versions", body = Vec<VersionEntry>),
              (status = 404, description = "No such file", body = ApiError),
              (status = 409, description = "A folder", body = ApiError)))]
pub(crate) async fn versions(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: PathQuery = cx.query()?;
    let list = cx.store.view(&cx.user).versions(&vpath(&q.path)?).await?;
    let out: Vec<VersionEntry> = list
        .into_iter()
        .map(|v| VersionEntry {
            id: v.id.0,
            file_id: v.file_id.0,
            size: v.size,
            mtime: v.mtime.to_rfc3339(),
            replaced_at: v.created_at.to_rfc3339(),
            etag: v.etag.0,
            hash: v.content_hash.to_hex(),
            author: v.author,
        })
        .collect();
    Ok(json(StatusCode::OK, &out))
}

/// The bytes of an earlier content.
#[utoipa::path(get, path = "/api/v1/versions/{id}/content", tag = "versions",
    params(("id" = i64, Path, description = "Version id", minimum = 1), ContentQuery),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "Not modified"),
              (status = 404, description = "No such version of this file", body = ApiError),
              (status = 409, description = "A folder", body = ApiError),
              (status = 412, description = "If-Match failed", body = ApiError),
              (status = 416, description = "Range not satisfiable")))]
pub(crate) async fn version_content(cx: &Cx<'_>, id: i64) -> Result<Response<Body>> {
    let q: ContentQuery = cx.query()?;
    let path = vpath(&q.path)?;
    let (v, file) = cx.store.view(&cx.user).open_version(&path, VersionId(id)).await?;
    let meta = download::Meta { etag: &v.etag, mtime: v.mtime, size: v.size };
    serve_content(cx, meta, download::Source::new(Some(file), None), &path, false, q.download.unwrap_or(true))
        .await
}

/// Make an earlier content current again (the current one becomes a version).
#[utoipa::path(post, path = "/api/v1/versions/{id}/restore", tag = "versions",
    params(("id" = i64, Path, description = "Version id", minimum = 1), PathQuery),
    responses((status = 200, description = "Restored", body = Entry),
              (status = 404, description = "No such version of this file", body = ApiError),
              (status = 409, description = "A folder", body = ApiError),
              (status = 413, description = "Over quota", body = ApiError)))]
pub(crate) async fn version_restore(cx: &Cx<'_>, id: i64) -> Result<Response<Body>> {
    let q: PathQuery = cx.query()?;
    let node = cx.store.view(&cx.user).restore_version(&cx.actor, &vpath(&q.path)?, VersionId(id)).await?;
    Ok(json(StatusCode::OK, &entry(&node)))
}

/// Files and folders whose name contains a text.
#[utoipa::path(get, path = "/api/v1/search", tag = "files", params(SearchQuery),
    responses((status = 200, description = "Matches, by path", body = Vec<Entry>)))]
pub(crate) async fn search(cx: &Cx<'_>) -> Result<Response<Body>> {
    let q: SearchQuery = cx.query()?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Fail::bad("limit must be between 1 and 1000"));
    }
    if q.q.is_empty() || q.q.chars().count() > 255 {
        return Err(Fail::bad("q must have 1 to 255 characters"));
    }
    let found = cx.store.search(&cx.user, &q.q, limit as i64).await?;
    Ok(json(StatusCode::OK, &found.iter().map(entry).collect::<Vec<_>>()))
}
