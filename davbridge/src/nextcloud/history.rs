//! The Nextcloud DAV endpoints for trash and versions, as the phone apps use them, over
//! Cairn's own trash and versions:
//! - `PROPFIND /remote.php/dav/trashbin/USER/trash` lists deleted items, each named
//!   `<name>.d<trash id>` with `nc:trashbin-filename`, `-original-location` and
//!   `-deletion-time`; `MOVE` of one to `.../trashbin/USER/restore/<item>` restores it where
//!   it was; `DELETE` of one purges it, of `trash` empties the trash.
//! - `PROPFIND /remote.php/dav/versions/USER/versions/<fileid>` lists a file's earlier
//!   contents, each named by its modification time in Unix seconds (Nextcloud's naming);
//!   `GET` of one downloads it; `MOVE` of one to `.../versions/USER/restore/target` makes it
//!   current again (the current content becoming a version).

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use store::{Actor, FileId, Node, Origin, TrashId, User, VPath, Version};

use super::basic_user;
use crate::Bridge;
use crate::body::{self, Body};
use crate::dav::headers::{Depth, href};
use crate::dav::props::{OcCtx, PropCtx};
use crate::dav::xml::{self, NC, PropfindBody, escape};
use crate::download;
use crate::error::HttpError;

type Result<T, E = HttpError> = std::result::Result<T, E>;

/// A URL under `/remote.php/dav/trashbin/` or `/remote.php/dav/versions/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HistoryUrl {
    /// `trashbin/USER/trash[/ITEM]`.
    Trash { user: String, item: Option<String> },
    /// `trashbin/USER/restore/ITEM`: only a MOVE destination.
    TrashRestore { user: String },
    /// `versions/USER/versions/FILEID[/VERSION]`.
    Versions { user: String, file: i64, version: Option<String> },
    /// `versions/USER/restore/target`: only a MOVE destination.
    VersionRestore { user: String },
}

impl HistoryUrl {
    pub(crate) fn parse(
        path: &str,
        segs: &dyn Fn(&str) -> Result<Vec<String>>,
    ) -> Result<Option<HistoryUrl>> {
        let Some(rest) = path.strip_prefix("/remote.php/dav/") else { return Ok(None) };
        let s = segs(rest)?;
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        let own = |u: &str| u.to_owned();
        Ok(match s.as_slice() {
            ["trashbin", u, "trash"] => Some(HistoryUrl::Trash { user: own(u), item: None }),
            ["trashbin", u, "trash", item] => Some(HistoryUrl::Trash { user: own(u), item: Some(own(item)) }),
            ["trashbin", u, "restore", ..] => Some(HistoryUrl::TrashRestore { user: own(u) }),
            ["versions", u, "versions", f, rest @ ..] if rest.len() <= 1 => {
                let file = f.parse().map_err(|_| HttpError::new(StatusCode::NOT_FOUND, "not found"))?;
                Some(HistoryUrl::Versions { user: own(u), file, version: rest.first().map(|v| own(v)) })
            }
            ["versions", u, "restore", ..] => Some(HistoryUrl::VersionRestore { user: own(u) }),
            ["trashbin", ..] | ["versions", ..] => {
                Some(HistoryUrl::Trash { user: String::new(), item: None })
            }
            _ => None,
        })
    }

    fn user(&self) -> &str {
        match self {
            HistoryUrl::Trash { user, .. }
            | HistoryUrl::TrashRestore { user }
            | HistoryUrl::Versions { user, .. }
            | HistoryUrl::VersionRestore { user } => user,
        }
    }
}

fn not_found() -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, "not found")
}

/// The trash id at the end of an item's name (`<name>.d<id>`).
fn trash_id(item: &str) -> Result<TrashId> {
    item.rsplit_once(".d").and_then(|(_, id)| id.parse().ok()).map(TrashId).ok_or_else(not_found)
}

pub(crate) async fn serve(
    bridge: &Arc<Bridge>,
    remote: SocketAddr,
    url: HistoryUrl,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    let user = match basic_user(bridge, req.headers(), remote).await {
        Ok(u) => u,
        Err(res) => return Ok(res),
    };
    if url.user() != user.name.as_str() {
        return Err(not_found());
    }
    let actor = Actor::user(Origin::Dav, &user, Some(remote.ip().to_string()));
    let store = &bridge.store;
    let method = req.method().as_str().to_owned();
    let dest = req.headers().get("destination").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let depth = crate::dav::headers::parse_depth(
        req.headers().get("depth").and_then(|v| v.to_str().ok()),
        Depth::One,
    )?;
    let (parts, body) = req.into_parts();
    match (method.as_str(), url) {
        ("PROPFIND", HistoryUrl::Trash { item, .. }) => {
            let request = xml::parse_propfind(&crate::dav::read_xml_body(body).await?)?;
            let mut items = store.trash_list(&user).await?;
            if let Some(item) = &item {
                let id = trash_id(item)?;
                items.retain(|t| t.id == id);
                if items.is_empty() {
                    return Err(not_found());
                }
            }
            let prefix = format!("/remote.php/dav/trashbin{}", seg(user.name.as_str()));
            let mut out = String::from(crate::dav::props::MULTISTATUS_HEAD);
            if item.is_none() {
                out.push_str(&collection(&format!("{prefix}/trash/")));
            }
            if item.is_some() || depth != Depth::Zero {
                let instance = store.instance_id().await?;
                for t in &items {
                    let name = format!("{}.d{}", t.orig_path.name(), t.id.0);
                    let node = Node {
                        id: t.file_id,
                        path: VPath::root()
                            .join(&name)
                            .map_err(|e| HttpError::new(StatusCode::BAD_REQUEST, e.to_string()))?,
                        is_dir: t.is_dir,
                        size: if t.is_dir { 0 } else { t.size },
                        mtime: t.deleted_at,
                        content_hash: None,
                        etag: store::ETag(format!("t{}", t.id.0)),
                        mode: None,
                        access: Default::default(),
                    };
                    let parent = t.orig_path.parent().unwrap_or_else(VPath::root);
                    let extra = [
                        ("trashbin-filename", escape(t.orig_path.name())),
                        ("trashbin-original-location", escape(t.orig_path.as_str().trim_start_matches('/'))),
                        ("trashbin-deletion-time", (t.deleted_at.0 / 1_000_000_000).to_string()),
                        ("trashbin-original-folder", escape(parent.as_str().trim_start_matches('/'))),
                    ];
                    out.push_str(&entry(
                        &request,
                        &node,
                        &format!("{prefix}/trash"),
                        &instance,
                        &user,
                        &extra,
                    ));
                }
            }
            out.push_str(crate::dav::props::MULTISTATUS_TAIL);
            Ok(crate::dav::multistatus_body(out))
        }
        ("MOVE", HistoryUrl::Trash { item: Some(item), .. }) => {
            let dest =
                dest.ok_or_else(|| HttpError::new(StatusCode::BAD_REQUEST, "Destination header missing"))?;
            let restore = format!("/remote.php/dav/trashbin{}/restore/", seg(user.name.as_str()));
            if !percent_decoded_path(&dest).contains(&*percent_decoded_path(&restore)) {
                return Err(HttpError::new(StatusCode::FORBIDDEN, "a trash item can only be restored"));
            }
            store.trash_restore(&actor, &user, trash_id(&item)?, None).await?;
            Ok(body::status(StatusCode::CREATED))
        }
        ("DELETE", HistoryUrl::Trash { item, .. }) => {
            let id = item.as_deref().map(trash_id).transpose()?;
            store.trash_purge(&actor, &user, id).await?;
            Ok(body::status(StatusCode::NO_CONTENT))
        }
        ("PROPFIND", HistoryUrl::Versions { file, version, .. }) => {
            let request = xml::parse_propfind(&crate::dav::read_xml_body(body).await?)?;
            let node = store.view(&user).stat_id(FileId(file)).await?;
            let mut versions = store.view(&user).versions(&node.path).await?;
            let prefix = format!("/remote.php/dav/versions{}/versions/{file}", seg(user.name.as_str()));
            if let Some(v) = &version {
                let v = pick(&versions, v)?.clone();
                versions = vec![v];
            }
            let mut out = String::from(crate::dav::props::MULTISTATUS_HEAD);
            if version.is_none() {
                out.push_str(&collection(&format!("{prefix}/")));
            }
            if version.is_some() || depth != Depth::Zero {
                let instance = store.instance_id().await?;
                for v in &versions {
                    let vnode = Node {
                        id: node.id,
                        path: VPath::root().join(&name_of(v)).expect("digits are a name"),
                        is_dir: false,
                        size: v.size,
                        mtime: v.mtime,
                        content_hash: Some(v.content_hash),
                        etag: v.etag.clone(),
                        mode: None,
                        access: Default::default(),
                    };
                    let extra = [("version-author", escape(v.author.as_deref().unwrap_or("")))];
                    out.push_str(&entry(&request, &vnode, &prefix, &instance, &user, &extra));
                }
            }
            out.push_str(crate::dav::props::MULTISTATUS_TAIL);
            Ok(crate::dav::multistatus_body(out))
        }
        (m @ ("GET" | "HEAD"), HistoryUrl::Versions { file, version: Some(v), .. }) => {
            let node = store.view(&user).stat_id(FileId(file)).await?;
            let versions = store.view(&user).versions(&node.path).await?;
            let v = pick(&versions, &v)?;
            let (v, f) = store.view(&user).open_version(&node.path, v.id).await?;
            let meta = download::Meta { etag: &v.etag, mtime: v.mtime, size: v.size };
            download::respond(
                &parts.headers,
                meta,
                download::Source::new(Some(f), None),
                download::content_type(node.path.name()),
                m == "HEAD",
            )
            .await
        }
        ("MOVE", HistoryUrl::Versions { file, version: Some(v), .. }) => {
            let node = store.view(&user).stat_id(FileId(file)).await?;
            let versions = store.view(&user).versions(&node.path).await?;
            let v = pick(&versions, &v)?;
            store.view(&user).restore_version(&actor, &node.path, v.id).await?;
            Ok(body::status(StatusCode::CREATED))
        }
        ("PROPFIND", HistoryUrl::TrashRestore { .. } | HistoryUrl::VersionRestore { .. }) => {
            Ok(crate::dav::multistatus_body(format!(
                "{}{}",
                crate::dav::props::MULTISTATUS_HEAD,
                crate::dav::props::MULTISTATUS_TAIL
            )))
        }
        _ => Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")),
    }
}

/// A version's name: its modification time in Unix seconds.
fn name_of(v: &Version) -> String {
    (v.mtime.0.div_euclid(1_000_000_000)).to_string()
}

/// The version named `name` (the newest, if two share a second).
fn pick<'a>(versions: &'a [Version], name: &str) -> Result<&'a Version> {
    versions.iter().filter(|v| name_of(v) == name).max_by_key(|v| v.created_at).ok_or_else(not_found)
}

fn seg(name: &str) -> String {
    href("", &VPath::root().join(name).unwrap_or_else(|_| VPath::root()), false)
}

fn percent_decoded_path(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn collection(href: &str) -> String {
    format!(
        "<D:response><D:href>{}</D:href><D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop>\
         <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>",
        escape(href)
    )
}

/// One entry: the node's properties as PROPFIND renders them, plus the `nc:` extras.
fn entry(
    request: &PropfindBody,
    node: &Node,
    prefix: &str,
    instance: &str,
    user: &User,
    extra: &[(&str, String)],
) -> String {
    let pc = PropCtx {
        usage: None,
        locks: Default::default(),
        dead: Default::default(),
        prefix: prefix.to_owned(),
        now: store::Timestamp(0),
        oc: OcCtx { instance: instance.to_owned(), owner: user.name.to_string(), ..Default::default() },
    };
    // Render the ordinary properties, then put the extras asked for into the found propstat.
    let asked = |local: &str| match request {
        PropfindBody::Props(names) => names.iter().any(|q| q.ns == NC && q.local == local),
        _ => true,
    };
    let mut extras = String::new();
    for (name, value) in extra {
        if asked(name) {
            extras.push_str(&format!("<nc:{name}>{value}</nc:{name}>"));
        }
    }
    let request = match request {
        PropfindBody::Props(names) => PropfindBody::Props(
            names
                .iter()
                .filter(|q| !(q.ns == NC && extra.iter().any(|(n, _)| *n == q.local)))
                .cloned()
                .collect(),
        ),
        other => other.clone(),
    };
    let doc = crate::dav::props::render(&request, &[node], &pc);
    let body = doc
        .strip_prefix(crate::dav::props::MULTISTATUS_HEAD)
        .and_then(|d| d.strip_suffix(crate::dav::props::MULTISTATUS_TAIL))
        .unwrap_or(&doc)
        .to_owned();
    if extras.is_empty() {
        return body;
    }
    match body.find("<D:propstat><D:prop>") {
        Some(i) if body[i..].contains("HTTP/1.1 200") => {
            let at = i + "<D:propstat><D:prop>".len();
            format!("{}{extras}{}", &body[..at], &body[at..])
        }
        _ => body.replacen("</D:href>", &format!("</D:href><D:propstat><D:prop>{extras}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"), 1),
    }
}
