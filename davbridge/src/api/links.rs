//! Public links: their owner makes, lists and revokes them; anyone with a link's token lists
//! and downloads what it reaches (a file, a preview, a folder as a zip), or sends files into an
//! upload-only link's folder, giving its password if it has one (throttled as sign-ins are).
//! A right password earns a grant kept in a cookie scoped to the link's URLs, so the link's
//! page can show pictures and start downloads without it. What a token reaches, and whether it
//! still does, is decided in `store` (`links`); the page itself is `web/link.html` at `/s/TOKEN`.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;

use futures_util::TryStreamExt;

use super::model::*;
use super::{Cx, Fail, Result, json, read_json, vpath};
use crate::Bridge;
use crate::body::{self, Body, hv};
use crate::download;

fn link_entry(l: store::Link) -> LinkEntry {
    LinkEntry {
        id: l.id,
        file_id: l.node.0,
        path: l.path.map(|p| format!("/{}", p.as_str())),
        is_dir: l.is_dir,
        has_password: l.has_password,
        expires_at: l.expires_at.map(|t| t.to_rfc3339()),
        downloads_left: l.downloads_left,
        upload_only: l.upload_only,
        created_at: l.created_at.to_rfc3339(),
    }
}

/// Your public links, newest first (their tokens are shown only when made).
#[utoipa::path(get, path = "/api/v1/links", tag = "links",
    responses((status = 200, description = "Your links", body = Vec<LinkEntry>)))]
pub(crate) async fn list(cx: &Cx<'_>) -> Result<Response<Body>> {
    let links: Vec<LinkEntry> = cx.store.links_by(&cx.user).await?.into_iter().map(link_entry).collect();
    Ok(json(StatusCode::OK, &links))
}

/// Make a public link to one of your folders or files. The answer carries its token, once.
#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = NewLinkRequest,
    responses((status = 201, description = "Made; keep the token: it is not shown again", body = NewLinkAnswer),
              (status = 400, description = "A short password, an expiry in the past, no downloads, your root", body = ApiError),
              (status = 404, description = "Nothing of yours there", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn create(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let req: NewLinkRequest = read_json(&cx.headers, body).await?;
    let path = vpath(&req.path)?;
    let expires_at = match req.expires_at {
        Some(s) if s > 0 && s < i64::MAX / 1_000_000_000 => Some(store::Timestamp(s * 1_000_000_000)),
        Some(_) => return Err(Fail::bad("expires_at: unix seconds")),
        None => None,
    };
    let opts = store::NewLink {
        password: req.password,
        expires_at,
        max_downloads: req.max_downloads,
        upload_only: req.upload_only,
    };
    let (link, token) = cx.store.create_link(&cx.actor, &cx.user, &path, opts).await?;
    let (url, page) = (format!("/api/v1/public/{token}"), format!("/s/{token}"));
    Ok(json(StatusCode::CREATED, &NewLinkAnswer { link: link_entry(link), token, url, page }))
}

/// End one of your links: it answers 404 at once.
#[utoipa::path(delete, path = "/api/v1/links/{id}", tag = "links",
    params(("id" = i64, Path, description = "Link id")),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "No link of yours with that id", body = ApiError)))]
pub(crate) async fn revoke(cx: &Cx<'_>, id: i64) -> Result<Response<Body>> {
    cx.store.revoke_link(&cx.actor, &cx.user, id).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// Where below a link's folder.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicQuery {
    /// Below the linked folder (`/`, the default, is the link itself).
    pub path: Option<String>,
}

/// A preview's place and size.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicPreviewQuery {
    /// Below the linked folder (`/`, the default, is the link itself).
    pub path: Option<String>,
    /// The longest side, in pixels (default 256, at most 2048).
    pub size: Option<u32>,
}

/// The name of a file sent into an upload-only link.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicUploadQuery {
    /// The file's name (no folders).
    pub name: String,
}

/// What a visitor asks of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublicOp {
    List,
    Content,
    Preview,
    Zip,
    Upload,
}

/// Answer a visit to a link.
pub(crate) async fn public(v: &Visit<'_>, op: PublicOp, body: Incoming) -> Result<Response<Body>> {
    match op {
        PublicOp::List => public_list(v).await,
        PublicOp::Content => public_content(v).await,
        PublicOp::Preview => public_preview(v).await,
        PublicOp::Zip => public_zip(v).await,
        PublicOp::Upload => public_upload(v, body).await,
    }
}

/// The cookie holding a link's grant (scoped to the link's own URLs).
const GRANT_COOKIE: &str = "cairn_link";

/// A visit to a link: the request's parts the public endpoints read.
pub(crate) struct Visit<'a> {
    pub bridge: &'a Bridge,
    pub token: &'a str,
    pub headers: &'a HeaderMap,
    pub query: &'a str,
    pub remote: SocketAddr,
}

impl Visit<'_> {
    fn query<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(self.query).map_err(|e| Fail::bad(format!("bad query: {e}")))
    }

    fn remote(&self) -> Option<String> {
        Some(self.remote.ip().to_string())
    }

    /// Open the link with the `X-Link-Password` header (throttled and audited like a sign-in)
    /// or the grant cookie; a wrong or missing password is 401, anything else not there 404.
    async fn open(&self) -> Result<store::LinkAccess> {
        let password = self.headers.get("x-link-password").and_then(|v| v.to_str().ok());
        let grant = super::cookie(self.headers, GRANT_COOKIE);
        let key = match (password, grant) {
            (Some(p), _) => store::LinkKey::Password(p),
            (None, Some(g)) => store::LinkKey::Grant(g),
            (None, None) => store::LinkKey::None,
        };
        let ip_key = format!("link-ip:{}", self.remote.ip());
        let token_key = format!("link:{}", &blake3::hash(self.token.as_bytes()).to_hex()[..16]);
        let guessing = !matches!(key, store::LinkKey::None);
        if guessing && !self.bridge.auth.gate(&[&ip_key, &token_key]).await {
            let refused = self.bridge.auth.count_refusal(format!("refused-{token_key}"));
            if refused == 1 || refused % 1000 == 0 {
                let (store, token, remote) =
                    (self.bridge.store.clone(), self.token.to_owned(), self.remote());
                if let Err(e) = store.audit_link_throttled(&token, refused, remote).await {
                    tracing::warn!(error = %e, "could not audit a throttled link");
                }
            }
            return Err(Fail::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "too many wrong passwords; try again later",
            ));
        }
        match self.bridge.store.open_link(self.token, key, self.remote()).await {
            Ok(a) => Ok(a),
            Err(e) if e.kind() == store::ErrorKind::Unauthenticated => {
                if guessing {
                    self.bridge.auth.count_failure(vec![ip_key, token_key]);
                }
                Err(Fail::new(StatusCode::UNAUTHORIZED, "password_required", e.message()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The opened link and the path below it that the query names.
    async fn open_at(&self) -> Result<(store::LinkAccess, store::VPath)> {
        let q: PublicQuery = self.query()?;
        let a = self.open().await?;
        Ok((a, vpath(q.path.as_deref().unwrap_or("/"))?))
    }

    /// After a right password: the grant cookie, so the page's pictures and downloads need not
    /// carry the password (for a day, or until the password changes or the link ends).
    fn keep_grant(&self, a: &store::LinkAccess, res: &mut Response<Body>) {
        if let (Some(grant), true) = (&a.grant, self.headers.contains_key("x-link-password")) {
            let secure = if self.bridge.tls { "; Secure" } else { "" };
            let cookie = format!(
                "{GRANT_COOKIE}={grant}; Path=/api/v1/public/{}; HttpOnly; SameSite=Lax; Max-Age=86400{secure}",
                self.token
            );
            res.headers_mut().insert(header::SET_COOKIE, hv(&cookie));
        }
    }
}

/// What a link shows: the linked folder (or file) at `path`, with its entries (none for an
/// upload-only link). A right `X-Link-Password` also sets the link's grant cookie.
#[utoipa::path(get, path = "/api/v1/public/{token}", tag = "links", security(()),
    params(("token" = String, Path, description = "The link's token"), PublicQuery,
           ("X-Link-Password" = Option<String>, Header, description = "The link's password, if it has one")),
    responses((status = 200, description = "The folder or file and what is in it", body = PublicListing),
              (status = 401, description = "The link asks for a password, or it was wrong", body = ApiError),
              (status = 404, description = "No such link (or expired, used up, revoked), or nothing there", body = ApiError),
              (status = 429, description = "Too many wrong passwords", body = ApiError)))]
pub(crate) async fn public_list(v: &Visit<'_>) -> Result<Response<Body>> {
    let (a, sub) = v.open_at().await?;
    let (folder, entries) = v.bridge.store.link_list(&a, &sub).await?;
    let name = a.root.path.name().to_owned();
    let listing = PublicListing {
        name,
        folder: entry(&folder),
        entries: entries.iter().map(entry).collect(),
        upload_only: a.upload_only,
    };
    let mut res = json(StatusCode::OK, &listing);
    v.keep_grant(&a, &mut res);
    Ok(res)
}

/// Download a file through a link (counts against its download limit).
#[utoipa::path(get, path = "/api/v1/public/{token}/content", tag = "links", security(()),
    params(("token" = String, Path, description = "The link's token"), PublicQuery,
           ("X-Link-Password" = Option<String>, Header, description = "The link's password, if it has one")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, description = "The link asks for a password, or it was wrong", body = ApiError),
              (status = 404, description = "No such link or file", body = ApiError),
              (status = 429, description = "Too many wrong passwords", body = ApiError)))]
pub(crate) async fn public_content(v: &Visit<'_>) -> Result<Response<Body>> {
    let (a, sub) = v.open_at().await?;
    let (node, file) =
        v.bridge.store.link_download(&a, &sub, v.remote()).await.map_err(|e| match e.kind() {
            store::ErrorKind::IsADirectory => {
                Fail::new(StatusCode::NOT_FOUND, "not_found", "a folder, not a file")
            }
            _ => e.into(),
        })?;
    let meta = download::Meta { etag: &node.etag, mtime: node.mtime, size: node.size };
    // The whole file (ranges would count as downloads each).
    let mut plain = HeaderMap::new();
    if let Some(v) = v.headers.get(header::ACCEPT_ENCODING) {
        plain.insert(header::ACCEPT_ENCODING, v.clone());
    }
    let mut res = download::respond(
        &plain,
        meta,
        download::Source::new(Some(file), None),
        download::content_type(node.path.name()),
        false,
    )
    .await
    .map_err(|e| Fail::new(e.status, "internal", e.message))?;
    res.headers_mut().insert(header::CONTENT_DISPOSITION, super::files::disposition(node.path.name(), true));
    super::files::harden(&mut res);
    Ok(res)
}

/// A picture's preview through a link (JPEG, PNG, GIF, WebP; not counted as a download).
#[utoipa::path(get, path = "/api/v1/public/{token}/preview", tag = "links", security(()),
    params(("token" = String, Path, description = "The link's token"), PublicPreviewQuery,
           ("X-Link-Password" = Option<String>, Header, description = "The link's password, if it has one")),
    responses((status = 200, description = "A JPEG (or PNG) within size×size", content_type = "image/jpeg", body = Vec<u8>),
              (status = 304, description = "Not changed (If-None-Match)"),
              (status = 401, description = "The link asks for a password, or it was wrong", body = ApiError),
              (status = 404, description = "No such link or file, or no preview of it", body = ApiError)))]
pub(crate) async fn public_preview(v: &Visit<'_>) -> Result<Response<Body>> {
    let q: PublicPreviewQuery = v.query()?;
    let a = v.open().await?;
    let sub = vpath(q.path.as_deref().unwrap_or("/"))?;
    let (node, file) = v.bridge.store.link_read(&a, &sub).await.map_err(|e| match e.kind() {
        store::ErrorKind::IsADirectory => {
            Fail::new(StatusCode::NOT_FOUND, "not_found", "a folder has no preview")
        }
        _ => e.into(),
    })?;
    let shape = crate::nextcloud::preview::Shape::fit(q.size.unwrap_or(256));
    let cache = header::HeaderValue::from_static("private, no-cache");
    crate::nextcloud::preview::respond(
        v.bridge,
        &node,
        shape,
        v.headers.get(header::IF_NONE_MATCH),
        cache,
        async { Ok(file) },
    )
    .await
    .map_err(|e| Fail::new(e.status, "not_found", e.message))
}

/// A folder through a link as one zip, streamed as it is made (counts as one download).
#[utoipa::path(get, path = "/api/v1/public/{token}/zip", tag = "links", security(()),
    params(("token" = String, Path, description = "The link's token"), PublicQuery,
           ("X-Link-Password" = Option<String>, Header, description = "The link's password, if it has one")),
    responses((status = 200, description = "A zip of the folder (stored, ZIP64 where needed)", content_type = "application/zip", body = Vec<u8>),
              (status = 401, description = "The link asks for a password, or it was wrong", body = ApiError),
              (status = 404, description = "No such link or folder", body = ApiError)))]
pub(crate) async fn public_zip(v: &Visit<'_>) -> Result<Response<Body>> {
    let (a, sub) = v.open_at().await?;
    let (folder, nodes) =
        v.bridge.store.link_zip(&a, &sub, v.remote()).await.map_err(|e| match e.kind() {
            store::ErrorKind::NotADirectory => {
                Fail::new(StatusCode::NOT_FOUND, "not_found", "a file, not a folder")
            }
            _ => e.into(),
        })?;
    let top = match folder.path.is_root() {
        true => a.root.path.name().to_owned(),
        false => folder.path.name().to_owned(),
    };
    let a = std::sync::Arc::new(a);
    let mut entries = vec![crate::zip::Entry { name: format!("{top}/"), mtime: folder.mtime, file: None }];
    for n in nodes {
        let Some(rel) = n.path.rebase(&folder.path, &store::VPath::root()) else { continue };
        let name = format!("{top}/{}{}", rel.as_str(), if n.is_dir { "/" } else { "" });
        let file: Option<Box<dyn FnOnce() -> crate::zip::Opening + Send>> = match n.is_dir {
            true => None,
            false => {
                let (store, a, path) = (v.bridge.store.clone(), a.clone(), n.path.clone());
                Some(Box::new(move || {
                    Box::pin(async move {
                        store.link_read(&a, &path).await.map(|(_, f)| f).map_err(std::io::Error::other)
                    })
                }))
            }
        };
        entries.push(crate::zip::Entry { name, mtime: n.mtime, file });
    }
    let mut res = Response::new(crate::zip::stream(entries));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/zip"));
    h.insert(header::CONTENT_DISPOSITION, super::files::disposition(&format!("{top}.zip"), true));
    super::files::harden(&mut res);
    Ok(res)
}

/// Send a file into an upload-only link's folder: saved under its name, or `NAME (2)` and so
/// on if that is taken (nothing is replaced); the owner's quota counts it.
#[utoipa::path(post, path = "/api/v1/public/{token}/upload", tag = "links", security(()),
    params(("token" = String, Path, description = "The link's token"), PublicUploadQuery,
           ("X-Link-Password" = Option<String>, Header, description = "The link's password, if it has one")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Saved", body = PublicUpload),
              (status = 400, description = "A name with folders in it", body = ApiError),
              (status = 401, description = "The link asks for a password, or it was wrong", body = ApiError),
              (status = 403, description = "The link does not take uploads", body = ApiError),
              (status = 404, description = "No such link", body = ApiError),
              (status = 409, description = "A file of that name arrived at the same moment; send it again", body = ApiError),
              (status = 413, description = "Over the owner's quota", body = ApiError)))]
pub(crate) async fn public_upload(v: &Visit<'_>, body: Incoming) -> Result<Response<Body>> {
    let q: PublicUploadQuery = v.query()?;
    let a = v.open().await?;
    let expected_len = v.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let metrics = &v.bridge.metrics;
    let stream = http_body_util::BodyDataStream::new(body)
        .inspect_ok(|b| metrics.transferred("up", "full", b.len() as u64))
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let node = v.bridge.store.link_upload(&a, &q.name, reader, expected_len, v.remote()).await?;
    let mut res =
        json(StatusCode::CREATED, &PublicUpload { name: node.path.name().to_owned(), size: node.size });
    v.keep_grant(&a, &mut res);
    Ok(res)
}
