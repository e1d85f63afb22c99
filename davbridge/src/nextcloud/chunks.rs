//! Chunked uploads under `/remote.php/dav/uploads/USER/ID/`: the WebDAV face of `store`'s
//! chunked uploads. `MKCOL` starts one (with `OC-Total-Length` and, in v2, `Destination`),
//! `PUT` sends a chunk, `PROPFIND` lists what arrived (a client resuming), `DELETE` drops a
//! chunk or the whole upload, and `MOVE .file` assembles it at `Destination` as one write,
//! under the conditions and with the mtime and checksum the request carries.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::TryStreamExt;
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use store::{Actor, ErrorKind, FileId, Node, Origin, User, VPath, WriteOptions};

use super::basic_user;
use crate::Bridge;
use crate::body::{self, Body, hv};
use crate::dav::headers::{self, Condition, DavUrl, Depth};
use crate::dav::props::{self, OcCtx, PropCtx};
use crate::dav::xml;
use crate::error::HttpError;

type Result<T, E = HttpError> = std::result::Result<T, E>;

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, msg)
}

fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A length header (`OC-Total-Length`, ...), if present; malformed is a 400.
fn length(h: &HeaderMap, name: &str) -> Result<Option<u64>> {
    get(h, name).map(|v| v.trim().parse::<u64>().map_err(|_| bad(format!("malformed {name}")))).transpose()
}

/// `Destination` as the clients send it: a path, a URL, or (desktop, chunking v2) a URL
/// percent-encoded whole, `http%3A//host%3A8080/...`. It must name the signed-in user's files.
fn destination(h: &HeaderMap, user: &User) -> Result<DavUrl> {
    let raw = get(h, "destination").ok_or_else(|| bad("Destination header missing"))?;
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let decoded;
    let raw = if lower.starts_with("http%3a") || lower.starts_with("https%3a") {
        decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned();
        decoded.as_str()
    } else {
        raw
    };
    let url = headers::parse_destination(raw, get(h, "host"))?;
    if url.user.as_deref().is_some_and(|u| u != user.name.as_str()) {
        return Err(HttpError::new(StatusCode::FORBIDDEN, "Destination is in another user's files"));
    }
    Ok(url)
}

/// Serve `/remote.php/dav/uploads/USER[/ID[/CHUNK]]`.
pub(crate) async fn serve(
    bridge: &Arc<Bridge>,
    remote: SocketAddr,
    owner: String,
    id: Option<String>,
    chunk: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let user = match basic_user(bridge, req.headers(), remote).await {
        Ok(u) => u,
        Err(res) => return Ok(res),
    };
    // Another user's uploads do not exist as far as this user can tell.
    if owner != user.name.as_str() {
        return Err(HttpError::new(StatusCode::NOT_FOUND, "not found"));
    }
    let store = &bridge.store;
    let actor = Actor::user(Origin::Dav, &user, Some(remote.ip().to_string()));
    let method = req.method().as_str().to_owned();
    let prefix = format!("/remote.php/dav/uploads{}", seg(&owner));
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let depth = headers::parse_depth(get(h, "depth"), Depth::One)?;
    match (method.as_str(), id, chunk) {
        ("PROPFIND", None, _) => listing(bridge, &user, &prefix, None, depth, body).await,
        ("MKCOL", Some(id), None) => {
            let total = length(h, "oc-total-length")?;
            let dest = match get(h, "destination") {
                Some(_) => Some(destination(h, &user)?.path),
                None => None,
            };
            match store.create_chunked(&actor, &user, &id, total, dest.as_ref()).await {
                Ok(_) => Ok(body::status(StatusCode::CREATED)),
                // A client resuming announces the transfer again; its chunks stay.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "the upload exists"))
                }
                Err(e) => Err(e.into()),
            }
        }
        ("PROPFIND", Some(id), None) => listing(bridge, &user, &prefix, Some(&id), depth, body).await,
        ("DELETE", Some(id), None) => {
            store.delete_chunked(&actor, &user, &id).await?;
            Ok(body::status(StatusCode::NO_CONTENT))
        }
        ("PUT", Some(id), Some(chunk)) => {
            let len = length(h, "content-length")?;
            let stream = BodyDataStream::new(body).map_err(std::io::Error::other);
            let reader = tokio_util::io::StreamReader::new(stream);
            store.put_chunk(&user, &id, &chunk, reader, len).await?;
            Ok(body::status(StatusCode::CREATED))
        }
        ("DELETE", Some(id), Some(chunk)) => {
            store.delete_chunk(&user, &id, &chunk).await?;
            Ok(body::status(StatusCode::NO_CONTENT))
        }
        ("MOVE", Some(id), Some(chunk)) if chunk == ".file" => assemble(bridge, &actor, &user, &id, h).await,
        ("GET" | "HEAD", Some(_), Some(_)) => {
            Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "chunks cannot be read back"))
        }
        ("PROPFIND", Some(id), Some(chunk)) => {
            let (_, chunks) = store.chunked(&user, &id).await?;
            if !chunks.iter().any(|c| c.name == chunk) {
                return Err(HttpError::new(StatusCode::NOT_FOUND, "no such chunk"));
            }
            listing(bridge, &user, &prefix, Some(&id), depth, body).await
        }
        _ => Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")),
    }
}

/// `/NAME`, percent-encoded as in hrefs.
fn seg(name: &str) -> String {
    headers::href("", &VPath::root().join(name).unwrap_or_else(|_| VPath::root()), false)
}

/// `MOVE .../ID/.file`: assemble at `Destination`. The If header's entity tag (ownCloud and
/// Nextcloud put the destination's last known ETag there) or `If-Match` must match the file
/// being replaced; `Overwrite: F` refuses an existing one; a WebDAV lock on the destination
/// (or on its folder) refuses it (423) unless the If header carries the lock's token.
async fn assemble(
    bridge: &Bridge,
    actor: &Actor,
    user: &User,
    id: &str,
    h: &HeaderMap,
) -> Result<Response<Body>> {
    let dest = destination(h, user)?;
    let mut opts = WriteOptions::default();
    if let Some(im) = get(h, "if-match")
        && im.trim() != "*"
    {
        opts.if_match = Some(store::ETag(headers::etag_value(im).to_owned()));
    }
    // Lock tokens in the If header unlock the destination, as for any WebDAV write.
    let mut tokens = std::collections::HashSet::new();
    if let Some(raw) = get(h, "if") {
        for list in headers::parse_if(raw)? {
            for (negated, c) in list.conditions {
                match (negated, c) {
                    (false, Condition::ETag(e)) => {
                        opts.if_match = Some(store::ETag(headers::etag_value(&e).to_owned()));
                    }
                    (false, Condition::Token(t)) => {
                        tokens.insert(t);
                    }
                    _ => {}
                }
            }
        }
    }
    let parent = crate::dav::parent_of(&dest.path);
    crate::dav::check_locks(&bridge.store, user, &tokens, &[&dest.path, &parent], false).await?;
    opts.create_only = !headers::parse_overwrite(get(h, "overwrite"))?;
    if let Some(mtime) = get(h, "x-oc-mtime") {
        let secs: i64 = mtime.trim().parse().map_err(|_| bad("X-OC-Mtime must be whole seconds"))?;
        opts.mtime = Some(store::Timestamp(secs.saturating_mul(1_000_000_000)));
    }
    if let Some(c) = get(h, "oc-checksum") {
        opts.checksum = store::ContentChecksum::parse(c)?;
    }
    let total = match length(h, "oc-total-length")? {
        Some(n) => Some(n),
        None => length(h, "oc-total-file-length")?,
    };
    let had_mtime = opts.mtime.is_some();
    let out = bridge.store.assemble_chunked(actor, user, id, &dest.path, opts, total).await?;
    let mut res = body::status(if out.created { StatusCode::CREATED } else { StatusCode::NO_CONTENT });
    let instance = bridge.store.instance_id().await?;
    crate::dav::oc_headers(res.headers_mut(), &out.node, &instance);
    if had_mtime {
        res.headers_mut().insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    res.headers_mut().insert(header::CONTENT_LENGTH, hv("0"));
    Ok(res)
}

/// PROPFIND on the uploads folder (nothing listed: uploads are the client's own business) or
/// on one upload (its chunks, by name, with their lengths).
async fn listing(
    bridge: &Bridge,
    user: &User,
    prefix: &str,
    id: Option<&str>,
    depth: Depth,
    body: Incoming,
) -> Result<Response<Body>> {
    let raw = crate::dav::read_xml_body(body).await?;
    let request = xml::parse_propfind(&raw)?;
    let now = bridge.store.clock().now();
    let dir = |path: VPath, mtime| Node {
        id: FileId(0),
        path,
        is_dir: true,
        size: 0,
        mtime,
        content_hash: None,
        etag: store::ETag(format!("{:x}", mtime.0)),
        mode: None,
        access: Default::default(),
    };
    let (prefix, nodes) = match id {
        None => (prefix.to_owned(), vec![dir(VPath::root(), now)]),
        Some(id) => {
            let (_, chunks) = bridge.store.chunked(user, id).await?;
            let mut nodes = vec![dir(VPath::root(), now)];
            for c in chunks {
                let path = VPath::root().join(&c.name).map_err(|e| bad(e.to_string()))?;
                nodes.push(Node {
                    id: FileId(0),
                    path,
                    is_dir: false,
                    size: c.size,
                    mtime: c.mtime,
                    content_hash: None,
                    etag: store::ETag(format!("{:x}-{:x}", c.mtime.0, c.size)),
                    mode: None,
                    access: Default::default(),
                });
            }
            (format!("{prefix}{}", seg(id)), nodes)
        }
    };
    let shown: Vec<&Node> = match depth {
        Depth::Zero => nodes.iter().take(1).collect(),
        _ => nodes.iter().collect(),
    };
    let pc = PropCtx {
        usage: None,
        locks: Default::default(),
        dead: Default::default(),
        prefix,
        now,
        oc: OcCtx { owner: user.name.to_string(), ..Default::default() },
    };
    Ok(crate::dav::multistatus_body(props::render(&request, &shown, &pc)))
}
