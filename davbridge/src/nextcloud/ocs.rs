//! The OCS API the clients call: capabilities (advertising exactly what Cairn implements), the
//! signed-in user with quota, and harmless answers for the rest they touch. The envelope is
//! v1 (success code 100) or v2 (the HTTP status), JSON or XML as the client asks.

use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::{NC_VERSION, base_url, basic_user};
use crate::Bridge;
use crate::body::{self, Body};

/// Serve `/ocs/v{1,2}.php/<route>`.
pub(crate) async fn serve(
    bridge: &Bridge,
    remote: SocketAddr,
    v2: bool,
    route: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let xml = wants_xml(&req);
    let reply = |status: StatusCode, data: Value| envelope(v2, xml, status, data);
    let method = req.method().clone();
    let has_auth = req.headers().contains_key(header::AUTHORIZATION);
    // Capabilities answer anonymous callers too (the setup wizard asks before signing in),
    // but wrong credentials get their 401 like everywhere else.
    if route == "cloud/capabilities" && method == Method::GET && !has_auth {
        return reply(StatusCode::OK, capabilities(bridge, &req));
    }
    let user = match basic_user(bridge, req.headers(), remote).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    match (method.as_str(), route) {
        ("GET", "cloud/capabilities") => reply(StatusCode::OK, capabilities(bridge, &req)),
        ("GET", "cloud/user") => match user_info(bridge, &user).await {
            Ok(v) => reply(StatusCode::OK, v),
            Err(e) => reply(crate::error::status_of(e.kind()), json!([])),
        },
        ("GET", r) if r.strip_prefix("cloud/users/").is_some_and(|u| u == user.name.as_str()) => {
            match user_info(bridge, &user).await {
                Ok(v) => reply(StatusCode::OK, v),
                Err(e) => reply(crate::error::status_of(e.kind()), json!([])),
            }
        }
        ("GET", "config") => reply(
            StatusCode::OK,
            json!({"version": "1.7", "website": "Cairn", "host": base_url(bridge, &req), "contact": "", "ssl": bridge.tls}),
        ),
        // No sharing API yet: nothing is shared.
        ("GET", "apps/files_sharing/api/v1/shares") => reply(StatusCode::OK, json!([])),
        ("GET", "core/navigation/apps") => reply(StatusCode::OK, json!([])),
        // The apps call this when an account is removed from a device: the device's app
        // password goes with it.
        ("DELETE", "core/apppassword") => {
            let secret = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::auth::parse_basic)
                .map(|(_, s)| s)
                .unwrap_or_default();
            let actor = store::Actor::user(store::Origin::Dav, &user, Some(remote.ip().to_string()));
            match bridge.store.revoke_app_password_secret(&actor, &user, &secret).await {
                Ok(true) => reply(StatusCode::OK, json!([])),
                Ok(false) => reply(StatusCode::FORBIDDEN, json!([])),
                Err(e) => reply(crate::error::status_of(e.kind()), json!([])),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, json!([])),
    }
}

fn wants_xml<B>(req: &Request<B>) -> bool {
    let query = req.uri().query().unwrap_or("");
    for (k, v) in form_urlencoded(query) {
        if k == "format" {
            return v == "xml";
        }
    }
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    !accept.contains("json") && accept.contains("xml")
}

fn form_urlencoded(q: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default()
}

/// The OCS envelope. v1 reports success as 100 (and answers HTTP 200 to everything but a
/// missing credential); v2 mirrors the HTTP status.
fn envelope(v2: bool, xml: bool, status: StatusCode, data: Value) -> Response<Body> {
    let ok = status.is_success();
    let code = match (v2, ok) {
        (false, true) => 100,
        (false, false) if status == StatusCode::NOT_FOUND => 998,
        (false, false) if status == StatusCode::UNAUTHORIZED => 997,
        (false, false) => 999,
        (true, _) => status.as_u16() as u32,
    };
    let message = if ok { "OK" } else { status.canonical_reason().unwrap_or("error") };
    let http = if v2 || status == StatusCode::UNAUTHORIZED { status } else { StatusCode::OK };
    let meta = json!({"status": if ok { "ok" } else { "failure" }, "statuscode": code, "message": message});
    if !xml {
        return super::json(http, &json!({"ocs": {"meta": meta, "data": data}}));
    }
    let mut out = String::from("<?xml version=\"1.0\"?>\n<ocs>");
    to_xml(&mut out, "meta", &meta);
    to_xml(&mut out, "data", &data);
    out.push_str("</ocs>\n");
    let mut res = Response::new(body::full(out));
    *res.status_mut() = http;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    res
}

/// JSON as OCS XML: objects are elements, array items are `<element>`s.
fn to_xml(out: &mut String, name: &str, v: &Value) {
    use crate::dav::xml::escape;
    out.push('<');
    out.push_str(name);
    out.push('>');
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "1" } else { "" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&escape(s)),
        Value::Array(items) => items.iter().for_each(|i| to_xml(out, "element", i)),
        Value::Object(map) => map.iter().for_each(|(k, v)| to_xml(out, k, v)),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// What Cairn implements, and nothing else: a client acts on every key (advertising bulk
/// upload without serving it fails every sync).
fn capabilities<B>(bridge: &Bridge, req: &Request<B>) -> Value {
    let (a, b, c, _) = NC_VERSION;
    let base = base_url(bridge, req);
    let ws = format!("{}/push/ws", base.replacen("http", "ws", 1));
    json!({
        "version": {"major": a, "minor": b, "micro": c, "string": format!("{a}.{b}.{c}"), "edition": "", "extendedSupport": false},
        "capabilities": {
            "core": {"pollinterval": 60, "webdav-root": "remote.php/webdav", "reference-api": false},
            "dav": {"chunking": "1.0"},
            "files": {
                "bigfilechunking": true,
                "blacklisted_files": [],
                "undelete": true,
                "versioning": true,
                "comments": false,
            },
            "checksums": {"supportedTypes": ["SHA1", "MD5", "SHA256"], "preferredUploadType": "SHA1"},
            "files_sharing": {"api_enabled": false},
            "notify_push": {
                "type": ["files"],
                // No `pre_auth`: that is for web sessions, which Cairn's own UI does not need.
                "endpoints": {"websocket": ws},
            },
            // A conflict's losing copy is uploaded by the client that made it, so an edit is
            // never stranded on one device.
            "uploadConflictFiles": true,
        },
    })
}

async fn user_info(bridge: &Bridge, user: &store::User) -> store::Result<Value> {
    let u = bridge.store.usage(user).await?;
    let quota = match u.available() {
        Some(free) => {
            let total = u.used + free;
            json!({"free": free, "used": u.used, "total": total, "quota": u.quota,
                   "relative": if total == 0 { 0.0 } else { (u.used as f64 * 10000.0 / total as f64).round() / 100.0 }})
        }
        None => {
            json!({"free": Value::Null, "used": u.used, "total": Value::Null, "quota": -3, "relative": 0.0})
        }
    };
    Ok(json!({
        "id": user.name.as_str(),
        "display-name": user.name.as_str(),
        "email": Value::Null,
        "enabled": true,
        "quota": quota,
    }))
}
