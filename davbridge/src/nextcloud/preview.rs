//! Previews (thumbnails) of photos, at the URLs the Nextcloud apps ask for them:
//! `/index.php/core/preview?fileId=ID&x=W&y=H[&a=1][&mode=cover]` (Android, the desktop),
//! `/index.php/core/preview.png?file=PATH&x=W&y=H[&a=1]` (iOS) and
//! `/index.php/apps/files/api/v1/thumbnail/W/H/PATH` (older apps).
//!
//! JPEG, PNG, GIF (its first frame) and WebP files up to [`MAX_SOURCE`] are decoded, turned
//! upright as their EXIF orientation says, scaled (with `a=1` to fit within W×H keeping the
//! aspect ratio; otherwise cropped to fill W×H, as Nextcloud does) and sent as JPEG, or PNG
//! when the photo has transparency. Anything else is 404, which the apps show as the file
//! type's icon. Decoding runs on the blocking pool, at most [`WORKERS`] at a time, and the
//! last previews made are kept in memory ([`CACHE_BYTES`]) keyed by content, so scrolling back
//! costs nothing; the apps keep their own copies as well.

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::Mutex;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use store::{ContentHash, FileId, Node, User, VPath};

use super::basic_user;
use crate::Bridge;
use crate::body::{self, Body, hv};
use crate::error::HttpError;

/// Photos larger than this get no preview (a phone's photo is 2–15 MB).
pub(crate) const MAX_SOURCE: u64 = 64 << 20;
/// Previews made at once (each may hold a decoded photo: 4 bytes a pixel).
const WORKERS: usize = 2;
/// Memory for the most recent previews.
const CACHE_BYTES: usize = 32 << 20;
/// The largest side a preview is made at (the apps ask for 256–2048).
const MAX_SIDE: u32 = 2048;

/// Whether Cairn makes previews of `node` (for `nc:has-preview`).
pub(crate) fn has_preview(node: &Node) -> bool {
    !node.is_dir && node.size > 0 && node.size <= MAX_SOURCE && format_of(&node.path).is_some()
}

fn format_of(path: &VPath) -> Option<ImageFormat> {
    let name = path.name();
    let ext = name.rsplit_once('.')?.1;
    match ImageFormat::from_extension(ext)? {
        f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP) => Some(f),
        _ => None,
    }
}

/// The previews in memory and the gate on how many are being made.
pub(crate) struct Previews {
    gate: tokio::sync::Semaphore,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<Key, (Vec<u8>, &'static str)>,
    order: VecDeque<Key>,
    bytes: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    content: ContentHash,
    shape: Shape,
}

/// What was asked: the box, and whether to fit in it or fill it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Shape {
    width: u32,
    height: u32,
    fit: bool,
}

impl Shape {
    /// Within `side`×`side`, keeping the aspect ratio (for a photo grid).
    pub(crate) fn fit(side: u32) -> Shape {
        let side = side.clamp(1, MAX_SIDE);
        Shape { width: side, height: side, fit: true }
    }
}

impl Default for Previews {
    fn default() -> Previews {
        Previews { gate: tokio::sync::Semaphore::new(WORKERS), cache: Mutex::new(Cache::default()) }
    }
}

impl Previews {
    fn get(&self, key: &Key) -> Option<(Vec<u8>, &'static str)> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).map.get(key).cloned()
    }

    fn put(&self, key: Key, value: (Vec<u8>, &'static str)) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if value.0.len() > CACHE_BYTES / 4 || c.map.contains_key(&key) {
            return;
        }
        c.bytes += value.0.len();
        c.order.push_back(key.clone());
        c.map.insert(key, value);
        while c.bytes > CACHE_BYTES {
            let Some(old) = c.order.pop_front() else { break };
            if let Some((b, _)) = c.map.remove(&old) {
                c.bytes -= b.len();
            }
        }
    }
}

/// Which file a preview URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Id(i64),
    Path(String),
}

/// A preview request: the file and the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreviewUrl {
    target: Target,
    shape: Shape,
}

impl PreviewUrl {
    /// Parse `path` (already percent-decoded segments for the thumbnail form) and `query`;
    /// `None` if this is not a preview URL.
    pub(crate) fn parse(path: &str, query: &str) -> Result<Option<PreviewUrl>, HttpError> {
        let q: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let arg = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let side = |v: Option<&str>| -> Result<u32, HttpError> {
            match v {
                None => Ok(256),
                Some(s) => {
                    s.parse::<u32>().ok().filter(|n| *n > 0).map(|n| n.min(MAX_SIDE)).ok_or_else(|| {
                        HttpError::new(StatusCode::BAD_REQUEST, "x and y must be positive numbers")
                    })
                }
            }
        };
        let fit = arg("a") == Some("1") && arg("mode") != Some("cover");
        let target = match path {
            "/index.php/core/preview" | "/index.php/core/preview.png" => match (arg("fileId"), arg("file")) {
                (Some(id), _) => Target::Id(
                    id.parse()
                        .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "fileId must be a number"))?,
                ),
                (None, Some(p)) => Target::Path(p.to_owned()),
                (None, None) => {
                    return Err(HttpError::new(StatusCode::BAD_REQUEST, "fileId or file is required"));
                }
            },
            _ => {
                let Some(rest) = path.strip_prefix("/index.php/apps/files/api/v1/thumbnail/") else {
                    return Ok(None);
                };
                let mut parts = rest.splitn(3, '/');
                let (Some(w), Some(h), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(HttpError::new(StatusCode::NOT_FOUND, "not found"));
                };
                let p = percent_encoding::percent_decode_str(p)
                    .decode_utf8()
                    .map_err(|_| HttpError::new(StatusCode::BAD_REQUEST, "URL is not UTF-8"))?;
                let shape = Shape { width: side(Some(w))?, height: side(Some(h))?, fit: true };
                return Ok(Some(PreviewUrl { target: Target::Path(format!("/{p}")), shape }));
            }
        };
        let shape = Shape { width: side(arg("x"))?, height: side(arg("y"))?, fit };
        Ok(Some(PreviewUrl { target, shape }))
    }
}

/// Serve a preview.
pub(crate) async fn serve(
    bridge: &Bridge,
    remote: SocketAddr,
    url: PreviewUrl,
    req: Request<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let user = match basic_user(bridge, req.headers(), remote).await {
        Ok(u) => u,
        Err(res) => return Ok(res),
    };
    let none = || HttpError::new(StatusCode::NOT_FOUND, "no preview");
    let node = find(bridge, &user, &url.target).await.map_err(|_| none())?;
    let path = node.path.clone();
    let open = async move { bridge.store.view(&user).open_file(&path).await.map(|(_, f)| f) };
    let cache = HeaderValue::from_static("private, max-age=86400");
    respond(bridge, &node, url.shape, req.headers().get(header::IF_NONE_MATCH), cache, open).await
}

/// A preview of `node` (whose bytes `open` opens, only if the preview is not in memory), or
/// 404 if it has none.
pub(crate) async fn respond(
    bridge: &Bridge,
    node: &Node,
    shape: Shape,
    if_none_match: Option<&HeaderValue>,
    cache_control: HeaderValue,
    open: impl std::future::Future<Output = store::Result<std::fs::File>>,
) -> Result<Response<Body>, HttpError> {
    let none = || HttpError::new(StatusCode::NOT_FOUND, "no preview");
    let (Some(content), true) = (node.content_hash, has_preview(node)) else { return Err(none()) };
    let key = Key { content, shape };
    let etag =
        format!("\"{}-{}x{}{}\"", node.etag.0, shape.width, shape.height, if shape.fit { "a" } else { "" });
    if if_none_match.and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok(body::status(StatusCode::NOT_MODIFIED));
    }
    let (bytes, mime) = match bridge.previews.get(&key) {
        Some(hit) => hit,
        None => {
            let _turn = bridge.previews.gate.acquire().await.map_err(|_| none())?;
            let file = open.await.map_err(|_| none())?;
            let format = format_of(&node.path).ok_or_else(none)?;
            let path = node.path.clone();
            let made = tokio::task::spawn_blocking(move || make(file, format, shape))
                .await
                .map_err(|_| none())?
                .map_err(|e| {
                    tracing::debug!(error = %e, path = %path, "no preview");
                    none()
                })?;
            bridge.previews.put(key, made.clone());
            made
        }
    };
    let mut res = Response::new(body::full(bytes));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ETAG, hv(&etag));
    h.insert(header::CACHE_CONTROL, cache_control);
    Ok(res)
}

async fn find(bridge: &Bridge, user: &User, target: &Target) -> store::Result<Node> {
    match target {
        Target::Id(id) => bridge.store.view(user).stat_id(FileId(*id)).await,
        Target::Path(p) => bridge.store.view(user).stat(&VPath::parse(p)?).await,
    }
}

/// Decode, turn upright, scale, encode.
fn make(
    file: std::fs::File,
    format: ImageFormat,
    shape: Shape,
) -> image::ImageResult<(Vec<u8>, &'static str)> {
    // A vault's files are ciphertext: no preview is ever made of one (wherever it is now).
    let mut head = [0u8; 40];
    if std::os::unix::fs::FileExt::read_at(&file, &mut head, 0)
        .is_ok_and(|n| store::claimed_vault(&head[..n]).is_some())
    {
        return Err(image::ImageError::IoError(std::io::Error::other("an encrypted vault file")));
    }
    let mut reader = ImageReader::with_format(std::io::BufReader::new(file), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut img = DynamicImage::from_decoder(decoder)?;
    img.apply_orientation(orientation);
    let scaled = if shape.fit {
        img.thumbnail(shape.width, shape.height)
    } else {
        img.resize_to_fill(shape.width, shape.height, image::imageops::FilterType::Triangle)
    };
    let mut out = Cursor::new(Vec::new());
    if scaled.color().has_alpha() {
        scaled.write_to(&mut out, ImageFormat::Png)?;
        Ok((out.into_inner(), "image/png"))
    } else {
        let rgb = DynamicImage::ImageRgb8(scaled.to_rgb8());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82).encode_image(&rgb)?;
        Ok((out.into_inner(), "image/jpeg"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_apps_urls() {
        let p = PreviewUrl::parse("/index.php/core/preview", "fileId=42&x=512&y=384&a=1").unwrap().unwrap();
        assert_eq!(p.target, Target::Id(42));
        assert_eq!(p.shape, Shape { width: 512, height: 384, fit: true });
        let p = PreviewUrl::parse("/index.php/core/preview", "fileId=42&x=256&y=256&a=1&mode=cover")
            .unwrap()
            .unwrap();
        assert!(!p.shape.fit, "cover fills the box");
        let p = PreviewUrl::parse("/index.php/core/preview.png", "file=/Photos/a%20b.jpg&x=99999&y=64")
            .unwrap()
            .unwrap();
        assert_eq!(p.target, Target::Path("/Photos/a b.jpg".into()));
        assert_eq!(p.shape, Shape { width: MAX_SIDE, height: 64, fit: false });
        let p = PreviewUrl::parse("/index.php/apps/files/api/v1/thumbnail/64/48/Photos/a%20b.jpg", "")
            .unwrap()
            .unwrap();
        assert_eq!(p.target, Target::Path("/Photos/a b.jpg".into()));
        assert!(PreviewUrl::parse("/index.php/core/preview", "x=1").is_err());
        assert!(PreviewUrl::parse("/index.php/core/preview", "fileId=1&x=-3").is_err());
        assert!(PreviewUrl::parse("/index.php/core/other", "").unwrap().is_none());
    }
}
