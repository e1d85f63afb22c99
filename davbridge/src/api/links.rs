//! Public links: their owner makes, lists and revokes them; anyone with a link's token lists
//! and downloads what it reaches, giving its password if it has one (throttled as sign-ins
//! are). What a token reaches, and whether it still does, is decided in `store` (`links`).

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;

use super::model::*;
use super::{Cx, Fail, Result, json, read_json, vpath};
use crate::Bridge;
use crate::body::{self, Body};
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
    let opts = store::NewLink { password: req.password, expires_at, max_downloads: req.max_downloads };
    let (link, token) = cx.store.create_link(&cx.actor, &cx.user, &path, opts).await?;
    let url = format!("/api/v1/public/{token}");
    Ok(json(StatusCode::CREATED, &NewLinkAnswer { link: link_entry(link), token, url }))
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

/// Open the link `token` with the `X-Link-Password` header, throttled and audited like a
/// sign-in; a wrong or missing password is 401, anything else not there 404.
async fn open(
    bridge: &Bridge,
    token: &str,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> Result<store::LinkAccess> {
    let password = headers.get("x-link-password").and_then(|v| v.to_str().ok());
    let ip_key = format!("link-ip:{}", remote.ip());
    let token_key = format!("link:{}", &blake3::hash(token.as_bytes()).to_hex()[..16]);
    if password.is_some() && !bridge.auth.gate(&[&ip_key, &token_key]).await {
        return Err(Fail::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "too many wrong passwords; try again later",
        ));
    }
    match bridge.store.open_link(token, password, Some(remote.ip().to_string())).await {
        Ok(a) => Ok(a),
        Err(e) if e.kind() == store::ErrorKind::Unauthenticated => {
            if password.is_some() {
                bridge.auth.count_failure(vec![ip_key, token_key]);
            }
            Err(Fail::new(StatusCode::UNAUTHORIZED, "password_required", e.message()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A visit to a link: the request's parts the public endpoints read.
pub(crate) struct Visit<'a> {
    pub bridge: &'a Bridge,
    pub token: &'a str,
    pub headers: &'a HeaderMap,
    pub query: &'a str,
    pub remote: SocketAddr,
}

impl Visit<'_> {
    /// The opened link and the path below it that the query names.
    async fn open(&self) -> Result<(store::LinkAccess, store::VPath)> {
        let q: PublicQuery =
            serde_urlencoded::from_str(self.query).map_err(|e| Fail::bad(format!("bad query: {e}")))?;
        let a = open(self.bridge, self.token, self.headers, self.remote).await?;
        Ok((a, vpath(q.path.as_deref().unwrap_or("/"))?))
    }
}

/// What a link shows: the linked folder (or file) at `path`, with its entries.
#[utoipa::path(get, path = "/api/v1/public/{token}", tag = "links", security(()),
    params(("token" = String, Path, description = "The link's token"), PublicQuery,
           ("X-Link-Password" = Option<String>, Header, description = "The link's password, if it has one")),
    responses((status = 200, description = "The folder or file and what is in it", body = PublicListing),
              (status = 401, description = "The link asks for a password, or it was wrong", body = ApiError),
              (status = 404, description = "No such link (or expired, used up, revoked), or nothing there", body = ApiError),
              (status = 429, description = "Too many wrong passwords", body = ApiError)))]
pub(crate) async fn public_list(v: &Visit<'_>) -> Result<Response<Body>> {
    let (a, sub) = v.open().await?;
    let (folder, entries) = v.bridge.store.link_list(&a, &sub).await?;
    let name = a.root.path.name().to_owned();
    Ok(json(
        StatusCode::OK,
        &PublicListing { name, folder: entry(&folder), entries: entries.iter().map(entry).collect() },
    ))
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
    let (a, sub) = v.open().await?;
    let (bridge, headers) = (v.bridge, v.headers);
    let (node, file) =
        bridge.store.link_download(&a, &sub, Some(v.remote.ip().to_string())).await.map_err(|e| {
            match e.kind() {
                store::ErrorKind::IsADirectory => {
                    Fail::new(StatusCode::NOT_FOUND, "not_found", "a folder, not a file")
                }
                _ => e.into(),
            }
        })?;
    let meta = download::Meta { etag: &node.etag, mtime: node.mtime, size: node.size };
    // The whole file (ranges would count as downloads each).
    let mut plain = HeaderMap::new();
    if let Some(v) = headers.get(header::ACCEPT_ENCODING) {
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
