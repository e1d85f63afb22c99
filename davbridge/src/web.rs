//! The browser file explorer: static files compiled into the binary (no Node toolchain to
//! build or run the server): `web/index.html`, its stylesheet, and native ES modules loaded by
//! the browser as they are. Everything the page does goes through the public REST API.

use std::sync::OnceLock;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::body::{self, Body};

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    path: &'static str,
    content_type: &'static str,
    data: &'static [u8],
}

/// An ES module of the page (web/NAME).
macro_rules! script {
    ($name:literal) => {
        Asset {
            path: concat!("/", $name),
            content_type: "text/javascript; charset=utf-8",
            data: include_bytes!(concat!("../web/", $name)),
        }
    };
}

static ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", data: include_bytes!("../web/index.html") },
    // A public link's page, at `/s/TOKEN`.
    Asset {
        path: "/link.html",
        content_type: "text/html; charset=utf-8",
        data: include_bytes!("../web/link.html"),
    },
    script!("app.js"),
    script!("api.js"),
    script!("devices.js"),
    script!("dom.js"),
    script!("format.js"),
    script!("link.js"),
    script!("picker.js"),
    script!("push.js"),
    script!("shares.js"),
    script!("tus.js"),
    script!("uploads.js"),
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        data: include_bytes!("../web/app.css"),
    },
    Asset { path: "/favicon.svg", content_type: "image/svg+xml", data: include_bytes!("../web/favicon.svg") },
];

/// The asset served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = match path {
        "/index.html" => "/",
        _ if path.strip_prefix("/s/").is_some_and(|t| !t.is_empty() && !t.contains('/')) => "/link.html",
        _ => path,
    };
    ASSETS.iter().find(|a| a.path == path)
}

fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS.iter().map(|a| format!("\"{}\"", &blake3::hash(a.data).to_hex()[..16])).collect()
    });
    let i = ASSETS.iter().position(|a| std::ptr::eq(a, asset)).expect("an embedded asset");
    &tags[i]
}

/// Serve an asset (revalidated on every load: the ETag changes with each build's content).
pub fn serve(asset: &'static Asset, req: &HeaderMap) -> Response<Body> {
    let tag = etag(asset);
    let fresh = req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains(tag));
    let mut res =
        if fresh { body::status(StatusCode::NOT_MODIFIED) } else { Response::new(body::full(asset.data)) };
    let h = res.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_static(tag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; frame-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to web/ but not to ASSETS would be a module the page cannot load.
    #[test]
    fn every_web_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let path = if name == "index.html" { "/".to_owned() } else { format!("/{name}") };
            assert!(asset(&path).is_some(), "web/{name} is not in ASSETS");
        }
    }
}
