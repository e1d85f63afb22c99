//! WebDAV (RFC 4918) class 1 and 2. A request is parsed into a [`DavEndpoint`] with every
//! header it needs, then one handler calls `store`.

pub mod headers;
pub(crate) mod props;
pub mod xml;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyDataStream, BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use store::{Actor, ErrorKind, Lock, Node, Origin, PropChange, Replace, Store, User, VPath, WriteOptions};

use self::headers::{Condition, DavUrl, Depth, IfList, href};
use self::props::{
    LIVE, MULTISTATUS_HEAD, MULTISTATUS_TAIL, OcCtx, PropCtx, activelock, content_type, empty_prop_element,
    propstat,
};
use self::xml::{DAV, PropfindBody, QName, escape};
use crate::Bridge;
use crate::auth::AuthOutcome;
use crate::body::{self, Body, hv};
use crate::download;
use crate::error::HttpError;

type Result<T, E = HttpError> = std::result::Result<T, E>;

/// A WebDAV request, parsed.
#[derive(Debug)]
enum DavEndpoint {
    Options,
    Get { head: bool },
    Put,
    Delete { depth: Depth },
    Mkcol,
    Copy { to: DavUrl, depth: Depth, overwrite: bool },
    Move { to: DavUrl, depth: Depth, overwrite: bool },
    Propfind { depth: Depth },
    Proppatch,
    Lock { depth: Depth, timeout: u64 },
    Unlock { token: String },
}

impl DavEndpoint {
    fn parse(method: &Method, h: &HeaderMap) -> Result<DavEndpoint> {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let host = get("host");
        let dest = || -> Result<DavUrl> {
            headers::parse_destination(
                get("destination").ok_or_else(|| bad("Destination header missing"))?,
                host,
            )
        };
        Ok(match method.as_str() {
            "OPTIONS" => DavEndpoint::Options,
            "GET" => DavEndpoint::Get { head: false },
            "HEAD" => DavEndpoint::Get { head: true },
            "PUT" => DavEndpoint::Put,
            "DELETE" => DavEndpoint::Delete { depth: headers::parse_depth(get("depth"), Depth::Infinity)? },
            "MKCOL" => DavEndpoint::Mkcol,
            "COPY" => DavEndpoint::Copy {
                to: dest()?,
                depth: headers::parse_depth(get("depth"), Depth::Infinity)?,
                overwrite: headers::parse_overwrite(get("overwrite"))?,
            },
            "MOVE" => DavEndpoint::Move {
                to: dest()?,
                depth: headers::parse_depth(get("depth"), Depth::Infinity)?,
                overwrite: headers::parse_overwrite(get("overwrite"))?,
            },
            "PROPFIND" => {
                DavEndpoint::Propfind { depth: headers::parse_depth(get("depth"), Depth::Infinity)? }
            }
            "PROPPATCH" => DavEndpoint::Proppatch,
            "LOCK" => DavEndpoint::Lock {
                depth: headers::parse_depth(get("depth"), Depth::Infinity)?,
                timeout: headers::parse_timeout(get("timeout")),
            },
            "UNLOCK" => DavEndpoint::Unlock { token: headers::parse_lock_token(get("lock-token"))? },
            _ => return Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")),
        })
    }
}

fn bad(msg: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, msg)
}

/// One request's context.
struct Ctx<'a> {
    store: &'a Store,
    bridge: &'a Bridge,
    user: User,
    actor: Actor,
    url: DavUrl,
    headers: HeaderMap,
    if_lists: Option<Vec<IfList>>,
}

/// Authenticate, parse, handle.
pub async fn serve(
    bridge: &Arc<Bridge>,
    remote: SocketAddr,
    url: DavUrl,
    req: Request<Incoming>,
) -> Response<Body> {
    let auth_header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let user = match bridge.auth.check(auth_header, remote.ip()).await {
        AuthOutcome::User(u) => u,
        AuthOutcome::Denied => {
            let mut res = body::error_response(&HttpError::new(StatusCode::UNAUTHORIZED, "sign in required"));
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Cairn\", charset=\"UTF-8\""),
            );
            return res;
        }
        AuthOutcome::Throttled => {
            let mut res = body::error_response(&HttpError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed sign-ins",
            ));
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            return res;
        }
        AuthOutcome::Unavailable => return body::dav_unavailable(),
    };
    match handle(bridge, remote, user, url, req).await {
        Ok(res) => res,
        Err(e) => body::error_response(&e),
    }
}

async fn handle(
    bridge: &Bridge,
    remote: SocketAddr,
    user: User,
    url: DavUrl,
    req: Request<Incoming>,
) -> Result<Response<Body>> {
    // `/remote.php/dav/files/USER/` must name the signed-in user; another user's tree does not
    // exist as far as this user can tell.
    if url.user.as_deref().is_some_and(|u| u != user.name.as_str()) {
        return Err(HttpError::new(StatusCode::NOT_FOUND, "not found"));
    }
    let (parts, body) = req.into_parts();
    let endpoint = DavEndpoint::parse(&parts.method, &parts.headers)?;
    if let DavEndpoint::Copy { to, .. } | DavEndpoint::Move { to, .. } = &endpoint
        && to.user.as_deref().is_some_and(|u| u != user.name.as_str())
    {
        return Err(HttpError::new(StatusCode::FORBIDDEN, "Destination is in another user's files"));
    }
    let if_lists = match parts.headers.get("if").map(|v| v.to_str()) {
        Some(Ok(raw)) => Some(headers::parse_if(raw)?),
        Some(Err(_)) => return Err(bad("malformed If header")),
        None => None,
    };
    let actor = Actor::user(Origin::Dav, &user, Some(remote.ip().to_string()));
    let ctx = Ctx { store: &bridge.store, bridge, user, actor, url, headers: parts.headers, if_lists };
    match endpoint {
        DavEndpoint::Options => Ok(options()),
        DavEndpoint::Get { head } => get(&ctx, head).await,
        DavEndpoint::Put => put(&ctx, body).await,
        DavEndpoint::Delete { depth } => delete(&ctx, depth).await,
        DavEndpoint::Mkcol => mkcol(&ctx, body).await,
        DavEndpoint::Copy { to, depth, overwrite } => copy_move(&ctx, to, depth, overwrite, false).await,
        DavEndpoint::Move { to, depth, overwrite } => copy_move(&ctx, to, depth, overwrite, true).await,
        DavEndpoint::Propfind { depth } => propfind(&ctx, depth, body).await,
        DavEndpoint::Proppatch => proppatch(&ctx, body).await,
        DavEndpoint::Lock { depth, timeout } => lock(&ctx, depth, timeout, body).await,
        DavEndpoint::Unlock { token } => unlock(&ctx, &token).await,
    }
}

pub(crate) async fn read_xml_body(body: Incoming) -> Result<Bytes> {
    match Limited::new(body, xml::MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))
        }
        Err(_) => Err(bad("could not read the request body")),
    }
}

fn options() -> Response<Body> {
    let mut res = body::status(StatusCode::OK);
    let h = res.headers_mut();
    h.insert("dav", HeaderValue::from_static("1, 2"));
    h.insert("ms-author-via", HeaderValue::from_static("DAV"));
    h.insert(
        header::ALLOW,
        HeaderValue::from_static(
            "OPTIONS, GET, HEAD, PUT, DELETE, MKCOL, COPY, MOVE, PROPFIND, PROPPATCH, LOCK, UNLOCK",
        ),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    res
}

async fn stat_opt(ctx: &Ctx<'_>, path: &VPath) -> Result<Option<Node>> {
    match ctx.store.view(&ctx.user).stat(path).await {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The headers the Nextcloud clients read after a change: `ETag`, `OC-ETag`, `OC-FileId`.
pub(crate) fn oc_headers(h: &mut HeaderMap, node: &Node, instance: &str) {
    h.insert(header::ETAG, hv(&quoted(node)));
    h.insert("oc-etag", hv(&quoted(node)));
    h.insert("oc-fileid", hv(&props::oc_id(node.id, instance)));
}

fn quoted(node: &Node) -> String {
    format!("\"{}\"", node.etag)
}

async fn get(ctx: &Ctx<'_>, head: bool) -> Result<Response<Body>> {
    let path = &ctx.url.path;
    // One query for the common case: open the file; a folder answers IsADirectory.
    let (node, file, bytes) = match ctx.store.view(&ctx.user).open_small(path, download::SMALL).await {
        Ok(found) => found,
        Err(e) if e.kind() == ErrorKind::IsADirectory => {
            let dir = ctx.store.view(&ctx.user).stat(path).await?;
            return listing(ctx, &dir, head).await;
        }
        Err(e) => return Err(e.into()),
    };
    let meta = download::Meta { etag: &node.etag, mtime: node.mtime, size: node.size };
    download::respond(&ctx.headers, meta, download::Source::new(file, bytes), content_type(path), head).await
}

/// GET on a folder: a plain listing with links (the web UI is its own front end).
async fn listing(ctx: &Ctx<'_>, dir: &Node, head: bool) -> Result<Response<Body>> {
    let entries = ctx.store.view(&ctx.user).list(&dir.path).await?;
    let mut html = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>{0}</title><h1>{0}</h1><ul>",
        escape(&dir.path.to_string())
    );
    for e in entries {
        let name = e.path.name();
        html.push_str(&format!(
            "<li><a href=\"{}\">{}{}</a></li>",
            escape(&href(&ctx.url.prefix, &e.path, e.is_dir)),
            escape(name),
            if e.is_dir { "/" } else { "" }
        ));
    }
    html.push_str("</ul>");
    let len = html.len();
    let mut res = Response::new(if head { body::empty() } else { body::full(html) });
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res.headers_mut().insert(header::CONTENT_LENGTH, hv(&len.to_string()));
    Ok(res)
}

/// Evaluate the If header (RFC 4918 §10.4): false → 412. Returns the lock tokens submitted.
async fn check_if(ctx: &Ctx<'_>) -> Result<HashSet<String>> {
    let Some(lists) = &ctx.if_lists else { return Ok(HashSet::new()) };
    let host = ctx.headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let mut states: HashMap<VPath, (Option<Node>, Vec<Lock>)> = HashMap::new();
    let mut any_true = false;
    let mut submitted = HashSet::new();
    for list in lists {
        for (negated, c) in &list.conditions {
            if let (false, Condition::Token(t)) = (negated, c) {
                submitted.insert(t.clone());
            }
        }
        if any_true {
            continue;
        }
        let path = match &list.resource {
            None => Some(ctx.url.path.clone()),
            Some(tag) => headers::parse_destination(tag, host)
                .ok()
                .filter(|u| u.user.as_deref().is_none_or(|n| n == ctx.user.name.as_str()))
                .map(|u| u.path),
        };
        let Some(path) = path else { continue };
        if !states.contains_key(&path) {
            let node = stat_opt(ctx, &path).await?;
            let locks = ctx.store.view(&ctx.user).locks(&path, false).await?;
            states.insert(path.clone(), (node, locks));
        }
        let (node, locks) = &states[&path];
        let holds = list.conditions.iter().all(|(negated, c)| {
            let v = match c {
                Condition::Token(t) => locks.iter().any(|l| &l.token == t),
                Condition::ETag(e) => node.as_ref().is_some_and(|n| headers::etag_matches(e, &n.etag.0)),
            };
            v != *negated
        });
        any_true |= holds;
    }
    if !any_true {
        return Err(HttpError::new(StatusCode::PRECONDITION_FAILED, "If header precondition failed"));
    }
    Ok(submitted)
}

/// Refuse (423) unless every lock covering `paths` (and, with `below`, locked below the first
/// one) has its token submitted; for shared locks, one of them suffices.
async fn require_unlocked(
    ctx: &Ctx<'_>,
    submitted: &HashSet<String>,
    paths: &[&VPath],
    below: bool,
) -> Result<()> {
    check_locks(ctx.store, &ctx.user, submitted, paths, below).await
}

/// [`require_unlocked`] for the other front doors to the same files (the Nextcloud chunked
/// upload's final MOVE).
pub(crate) async fn check_locks(
    store: &Store,
    user: &User,
    submitted: &HashSet<String>,
    paths: &[&VPath],
    below: bool,
) -> Result<()> {
    if !store.view(user).has_locks().await? {
        return Ok(());
    }
    for (i, path) in paths.iter().enumerate() {
        let locks = store.view(user).locks(path, below && i == 0).await?;
        let exclusive_missing = locks.iter().any(|l| l.exclusive && !submitted.contains(&l.token));
        let shared: Vec<&Lock> = locks.iter().filter(|l| !l.exclusive).collect();
        let shared_missing = !shared.is_empty() && !shared.iter().any(|l| submitted.contains(&l.token));
        if exclusive_missing || shared_missing {
            return Err(HttpError::precondition(
                StatusCode::LOCKED,
                "lock-token-submitted",
                "the resource is locked",
            ));
        }
    }
    Ok(())
}

/// The parent of a path for lock checks (its membership changes when a child comes or goes).
pub(crate) fn parent_of(path: &VPath) -> VPath {
    path.parent().unwrap_or_else(VPath::root)
}

async fn put(ctx: &Ctx<'_>, body: Incoming) -> Result<Response<Body>> {
    let path = &ctx.url.path;
    if path.is_root() {
        return Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "cannot PUT the root"));
    }
    let submitted = check_if(ctx).await?;
    let parent = parent_of(path);
    require_unlocked(ctx, &submitted, &[path, &parent], false).await?;
    let get = |n: &str| ctx.headers.get(n).and_then(|v| v.to_str().ok());
    let mut opts = WriteOptions::default();
    if let Some(im) = get("if-match")
        && im.trim() != "*"
    {
        opts.if_match = Some(store::ETag(headers::etag_value(im).to_owned()));
    }
    opts.create_only = get("if-none-match").is_some_and(|v| v.trim() == "*");
    opts.expected_len = get("content-length").and_then(|v| v.parse().ok());
    if let Some(mtime) = get("x-oc-mtime") {
        let secs: i64 = mtime.trim().parse().map_err(|_| bad("X-OC-Mtime must be whole seconds"))?;
        opts.mtime = Some(store::Timestamp(secs.saturating_mul(1_000_000_000)));
    }
    if let Some(c) = get("oc-checksum") {
        opts.checksum = store::ContentChecksum::parse(c)?;
    }
    // A folder at `path` is refused by `store` (IsADirectory → 405) before the body is read.
    let stream = BodyDataStream::new(body).map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let out = ctx.store.view(&ctx.user).write(&ctx.actor, path, reader, opts.clone()).await?;
    let mut res = body::status(if out.created { StatusCode::CREATED } else { StatusCode::NO_CONTENT });
    oc_headers(res.headers_mut(), &out.node, &ctx.store.instance_id().await?);
    if opts.mtime.is_some() {
        res.headers_mut().insert("x-oc-mtime", HeaderValue::from_static("accepted"));
    }
    Ok(res)
}

async fn delete(ctx: &Ctx<'_>, depth: Depth) -> Result<Response<Body>> {
    let path = &ctx.url.path;
    let node = ctx.store.view(&ctx.user).stat(path).await?;
    if node.is_dir && depth != Depth::Infinity {
        return Err(bad("DELETE of a folder needs Depth: infinity"));
    }
    let submitted = check_if(ctx).await?;
    let parent = parent_of(path);
    require_unlocked(ctx, &submitted, &[path, &parent], true).await?;
    ctx.store.view(&ctx.user).delete(&ctx.actor, path, None).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

async fn mkcol(ctx: &Ctx<'_>, body: Incoming) -> Result<Response<Body>> {
    let path = &ctx.url.path;
    let has_body =
        ctx.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|l| l != "0")
            || ctx.headers.contains_key(header::TRANSFER_ENCODING);
    if has_body {
        let bytes = read_xml_body(body).await?;
        if !bytes.is_empty() {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "MKCOL with a body is not supported",
            ));
        }
    }
    if stat_opt(ctx, path).await?.is_some() {
        return Err(HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "already exists"));
    }
    let submitted = check_if(ctx).await?;
    let parent = parent_of(path);
    require_unlocked(ctx, &submitted, &[path, &parent], false).await?;
    let made = ctx.store.view(&ctx.user).mkdir(&ctx.actor, path).await?;
    let mut res = body::status(StatusCode::CREATED);
    oc_headers(res.headers_mut(), &made, &ctx.store.instance_id().await?);
    Ok(res)
}

async fn copy_move(
    ctx: &Ctx<'_>,
    to: DavUrl,
    depth: Depth,
    overwrite: bool,
    is_move: bool,
) -> Result<Response<Body>> {
    let from = &ctx.url.path;
    let dest = &to.path;
    if from == dest {
        return Err(HttpError::new(StatusCode::FORBIDDEN, "source and destination are the same"));
    }
    let src = ctx.store.view(&ctx.user).stat(from).await?;
    if src.is_dir && depth == Depth::One {
        return Err(bad("Depth: 1 is not allowed for COPY or MOVE"));
    }
    if is_move && src.is_dir && depth != Depth::Infinity {
        return Err(bad("MOVE of a folder needs Depth: infinity"));
    }
    let submitted = check_if(ctx).await?;
    let dest_parent = parent_of(dest);
    if is_move {
        let from_parent = parent_of(from);
        require_unlocked(ctx, &submitted, &[from, &from_parent], true).await?;
    }
    require_unlocked(ctx, &submitted, &[dest, &dest_parent], true).await?;
    let existed = stat_opt(ctx, dest).await?;
    if existed.is_some() && !overwrite {
        return Err(HttpError::new(StatusCode::PRECONDITION_FAILED, "the destination exists"));
    }
    if stat_opt(ctx, &dest_parent).await?.is_none_or(|p| !p.is_dir) {
        return Err(HttpError::new(StatusCode::CONFLICT, "the destination's folder does not exist"));
    }
    let res = if is_move {
        ctx.store.view(&ctx.user).rename(&ctx.actor, from, dest, Replace::overwrite(overwrite)).await
    } else if src.is_dir && depth == Depth::Zero {
        // A shallow copy: the folder and its properties, none of its members.
        if existed.is_some() {
            ctx.store.view(&ctx.user).delete(&ctx.actor, dest, None).await?;
        }
        let made = ctx.store.view(&ctx.user).mkdir(&ctx.actor, dest).await?;
        let props = ctx.store.dead_props(&ctx.user, &[src.id]).await?;
        let changes: Vec<PropChange> = props.into_values().flatten().map(PropChange::Set).collect();
        if !changes.is_empty() {
            ctx.store.patch_props(&ctx.actor, &ctx.user, dest, &changes).await?;
        }
        Ok(made)
    } else {
        ctx.store.view(&ctx.user).copy(&ctx.actor, from, dest, Replace::overwrite(overwrite)).await
    };
    let node = res?;
    let mut res = body::status(if existed.is_some() { StatusCode::NO_CONTENT } else { StatusCode::CREATED });
    oc_headers(res.headers_mut(), &node, &ctx.store.instance_id().await?);
    Ok(res)
}

fn multistatus(responses: &str) -> Response<Body> {
    multistatus_body(format!("{MULTISTATUS_HEAD}{responses}{MULTISTATUS_TAIL}"))
}

/// A 207 of `xml`, a whole document (starting with [`MULTISTATUS_HEAD`]).
pub(crate) fn multistatus_body(xml: String) -> Response<Body> {
    let mut res = Response::new(body::full(xml));
    *res.status_mut() = StatusCode::MULTI_STATUS;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    res
}

async fn propfind(ctx: &Ctx<'_>, depth: Depth, body: Incoming) -> Result<Response<Body>> {
    if depth == Depth::Infinity && !ctx.bridge.opts.propfind_infinity {
        return Err(HttpError::precondition(
            StatusCode::FORBIDDEN,
            "propfind-finite-depth",
            "PROPFIND with Depth: infinity is not allowed",
        ));
    }
    let raw = read_xml_body(body).await?;
    let request = xml::parse_propfind(&raw)?;
    let node = ctx.store.view(&ctx.user).stat(&ctx.url.path).await?;
    let below: Arc<Vec<Node>> = match depth {
        _ if !node.is_dir => Arc::default(),
        Depth::Zero => Arc::default(),
        Depth::One => ctx.store.view(&ctx.user).children(&node.path).await?,
        Depth::Infinity => Arc::new(ctx.store.view(&ctx.user).list_tree(&node.path).await?),
    };
    let nodes: Vec<&Node> = std::iter::once(&node).chain(below.iter()).collect();
    let wants = |local: &str| match &request {
        PropfindBody::Props(names) => names.iter().any(|q| q.ns == DAV && q.local == local),
        PropfindBody::AllProp(inc) => {
            LIVE.iter().any(|(n, all)| *n == local && *all)
                || inc.iter().any(|q| q.ns == DAV && q.local == local)
        }
        PropfindBody::PropName => false,
    };
    let usage = if wants("quota-available-bytes") || wants("quota-used-bytes") {
        Some(ctx.store.usage(&ctx.user).await?)
    } else {
        None
    };
    let mut locks = HashMap::new();
    if wants("lockdiscovery") && ctx.store.view(&ctx.user).has_locks().await? {
        for n in &nodes {
            let ls: Vec<Lock> = ctx.store.view(&ctx.user).locks(&n.path, false).await?;
            locks.insert(n.path.clone(), ls);
        }
    }
    let ids: Vec<store::FileId> = nodes.iter().map(|n| n.id).collect();
    let dead = ctx.store.dead_props(&ctx.user, &ids).await?;
    let oc = oc_ctx(ctx, &request, &nodes, depth).await?;
    let pc = PropCtx { usage, locks, dead, prefix: ctx.url.prefix.clone(), now: ctx.store.clock().now(), oc };
    Ok(multistatus_body(props::render(&request, &nodes, &pc)))
}

/// What the `oc:` properties a PROPFIND names need (nothing when it names none).
async fn oc_ctx(ctx: &Ctx<'_>, request: &PropfindBody, nodes: &[&Node], depth: Depth) -> Result<OcCtx> {
    let PropfindBody::Props(names) = request else { return Ok(OcCtx::default()) };
    let wants = |local: &str| names.iter().any(|q| q.ns == xml::OC && q.local == local);
    if !names.iter().any(|q| q.ns == xml::OC || q.ns == xml::NC) {
        return Ok(OcCtx::default());
    }
    let mut oc = OcCtx { owner: ctx.user.name.to_string(), ..Default::default() };
    if wants("id") {
        oc.instance = ctx.store.instance_id().await?;
    }
    if wants("checksums") {
        let hashes: Vec<store::ContentHash> = nodes.iter().filter_map(|n| n.content_hash).collect();
        oc.checksums = ctx.store.checksums(&hashes).await?;
    }
    // A folder's recursive size costs a walk of its subtree: given for the folder asked about
    // (the clients ask Depth 0 before syncing a new folder), not for every folder listed.
    if wants("size") && depth == Depth::Zero && nodes[0].is_dir {
        oc.tree_sizes.insert(nodes[0].id, ctx.store.view(&ctx.user).tree_size(&nodes[0].path).await?);
    }
    Ok(oc)
}

async fn proppatch(ctx: &Ctx<'_>, body: Incoming) -> Result<Response<Body>> {
    let path = &ctx.url.path;
    let node = ctx.store.view(&ctx.user).stat(path).await?;
    let submitted = check_if(ctx).await?;
    require_unlocked(ctx, &submitted, &[path], false).await?;
    let raw = read_xml_body(body).await?;
    let items = xml::parse_proppatch(&raw)?;
    let protected = |q: &QName| q.ns == DAV && LIVE.iter().any(|(n, _)| *n == q.local);
    let resp = |inner: String| {
        format!(
            "<D:response><D:href>{}</D:href>{inner}</D:response>",
            escape(&href(&ctx.url.prefix, path, node.is_dir))
        )
    };
    if items.iter().any(|i| protected(&i.name)) {
        // All or nothing: the protected ones fail, the others fail by dependency.
        let (mut forbidden, mut failed) = (String::new(), String::new());
        for i in &items {
            if protected(&i.name) { &mut forbidden } else { &mut failed }
                .push_str(&empty_prop_element(&i.name));
        }
        let mut inner = propstat(&forbidden, StatusCode::FORBIDDEN);
        if !failed.is_empty() {
            inner.push_str(&propstat(&failed, StatusCode::FAILED_DEPENDENCY));
        }
        return Ok(multistatus(&resp(inner)));
    }
    let changes: Vec<PropChange> = items
        .iter()
        .map(|i| {
            if i.set {
                PropChange::Set(store::DeadProp {
                    namespace: i.name.ns.clone(),
                    name: i.name.local.clone(),
                    value: i.value.clone(),
                })
            } else {
                PropChange::Remove { namespace: i.name.ns.clone(), name: i.name.local.clone() }
            }
        })
        .collect();
    ctx.store.patch_props(&ctx.actor, &ctx.user, path, &changes).await?;
    let names: String = items.iter().map(|i| empty_prop_element(&i.name)).collect();
    Ok(multistatus(&resp(propstat(&names, StatusCode::OK))))
}

fn lock_response(lock: &Lock, prefix: &str, now: store::Timestamp, status: StatusCode) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>{}</D:lockdiscovery></D:prop>\n",
        activelock(lock, prefix, now)
    );
    let mut res = Response::new(body::full(xml));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    res.headers_mut().insert("lock-token", hv(&format!("<{}>", lock.token)));
    res
}

async fn lock(ctx: &Ctx<'_>, depth: Depth, timeout: u64, body: Incoming) -> Result<Response<Body>> {
    let path = &ctx.url.path;
    if depth == Depth::One {
        return Err(bad("LOCK takes Depth: 0 or infinity"));
    }
    let raw = read_xml_body(body).await?;
    let info = xml::parse_lockinfo(&raw)?;
    let submitted = check_if(ctx).await?;
    let Some(info) = info else {
        // A refresh: the If header names the lock.
        for token in &submitted {
            if let Ok(l) = ctx.store.view(&ctx.user).refresh_lock(path, token, timeout).await {
                return Ok(lock_response(&l, &ctx.url.prefix, ctx.store.clock().now(), StatusCode::OK));
            }
        }
        return Err(HttpError::new(
            StatusCode::PRECONDITION_FAILED,
            "no lock to refresh: name it in an If header",
        ));
    };
    let existing = stat_opt(ctx, path).await?;
    if existing.is_none() {
        let parent = parent_of(path);
        if stat_opt(ctx, &parent).await?.is_none_or(|p| !p.is_dir) {
            return Err(HttpError::new(StatusCode::CONFLICT, "the parent folder does not exist"));
        }
        require_unlocked(ctx, &submitted, &[&parent], false).await?;
    }
    let req = store::NewLock {
        depth_infinite: depth == Depth::Infinity,
        exclusive: info.exclusive,
        owner: info.owner,
        timeout_secs: timeout,
    };
    let lock = ctx.store.view(&ctx.user).lock(&ctx.actor, path, req).await?;
    if existing.is_some() {
        return Ok(lock_response(&lock, &ctx.url.prefix, ctx.store.clock().now(), StatusCode::OK));
    }
    // Locking an unmapped URL creates an empty resource (RFC 4918 §7.3).
    let opts = WriteOptions { create_only: true, expected_len: Some(0), ..Default::default() };
    if let Err(e) = ctx.store.view(&ctx.user).write(&ctx.actor, path, tokio::io::empty(), opts).await {
        let _ = ctx.store.view(&ctx.user).unlock(&ctx.actor, path, &lock.token).await;
        return Err(e.into());
    }
    Ok(lock_response(&lock, &ctx.url.prefix, ctx.store.clock().now(), StatusCode::CREATED))
}

async fn unlock(ctx: &Ctx<'_>, token: &str) -> Result<Response<Body>> {
    match ctx.store.view(&ctx.user).unlock(&ctx.actor, &ctx.url.path, token).await {
        Ok(()) => Ok(body::status(StatusCode::NO_CONTENT)),
        Err(e) if e.kind() == ErrorKind::Conflict => Err(HttpError::precondition(
            StatusCode::CONFLICT,
            "lock-token-matches-request-uri",
            "no such lock on this resource",
        )),
        Err(e) => Err(e.into()),
    }
}
