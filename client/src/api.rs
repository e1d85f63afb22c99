//! The server's REST API, as the client uses it.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

/// One entry of `/api/v1/tree`.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    pub path: String,
    pub is_dir: bool,
    pub etag: String,
    pub hash: Option<String>,
    /// Set when it is someone else's, shared with this account.
    #[serde(default)]
    pub shared: Option<Shared>,
}

/// How an entry shared with this account may be used.
#[derive(Debug, Clone, Deserialize)]
pub struct Shared {
    pub owner: String,
    /// `viewer` or `editor`.
    pub role: String,
    /// The shared folder or file itself (where the share is mounted).
    pub mount_point: bool,
}

#[derive(Debug, Deserialize)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

/// Why a conditional request did not happen.
#[derive(Debug)]
pub enum Refused {
    /// The remote changed since we looked (412, or 409 already exists).
    Changed,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the remote changed meanwhile")
    }
}
impl std::error::Error for Refused {}

/// A client trusting the usual roots, or only the certificate `pin` names.
fn builder(pin: Option<[u8; 32]>) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder();
    match pin {
        Some(p) => b.tls_backend_preconfigured(crate::pin::Pinned::new(Some(p)).config()),
        None => b,
    }
}

/// The fingerprint of the certificate `base` presents (to show someone who must decide).
async fn presented(base: &str) -> Option<String> {
    let probe = crate::pin::Pinned::new(None);
    let http = reqwest::Client::builder().tls_backend_preconfigured(probe.config()).build().ok()?;
    let _ = http.get(base).send().await;
    let seen = *probe.seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.as_ref().map(crate::pin::show)
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    pin: Option<[u8; 32]>,
}

pub(crate) fn enc(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn check(res: reqwest::Response, what: &str) -> Result<reqwest::Response> {
    let status = res.status();
    if status.is_success() {
        return Ok(res);
    }
    if status == StatusCode::PRECONDITION_FAILED || status == StatusCode::CONFLICT {
        return Err(Refused::Changed.into());
    }
    let body = res.text().await.unwrap_or_default();
    bail!("{what}: HTTP {status}: {body}")
}

impl Api {
    pub fn new(base: &str, token: &str, pin: Option<[u8; 32]>) -> Result<Api> {
        let http = builder(pin)
            .connect_timeout(std::time::Duration::from_secs(10))
            .pool_idle_timeout(std::time::Duration::from_secs(50))
            .build()?;
        Ok(Api { http, base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), pin })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The pinned certificate's fingerprint, if the server is trusted that way.
    pub fn pin(&self) -> Option<[u8; 32]> {
        self.pin
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn req(&self, method: Method, rest: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/v1{rest}", self.base)).bearer_auth(&self.token)
    }

    /// Exchange a password for a device token.
    pub async fn login(
        base: &str,
        user: &str,
        password: &str,
        device: &str,
        pin: Option<[u8; 32]>,
    ) -> Result<String> {
        let http = builder(pin).build()?;
        let res = http
            .post(format!("{}/api/v1/tokens", base.trim_end_matches('/')))
            .basic_auth(user, Some(password))
            .json(&serde_json::json!({ "label": format!("cairn sync on {device}") }))
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) if pin.is_none() && base.starts_with("https:") => {
                let Some(fp) = presented(base).await else {
                    return Err(e).with_context(|| format!("cannot reach {base}"));
                };
                bail!(
                    "{base}: this computer does not trust the server's certificate. Its SHA-256 \
                     fingerprint is {fp}; if that is the fingerprint your server printed (a \
                     self-signed certificate), sign in again with --fingerprint {fp}"
                )
            }
            Err(e) => return Err(e).with_context(|| format!("cannot reach {base}")),
        };
        let v: serde_json::Value = check(res, "sign-in").await?.json().await?;
        v["token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("the server sent no token: {v}"))
    }

    pub async fn tree(&self, root: &str) -> Result<Option<Tree>> {
        let res = self.req(Method::GET, &format!("/tree?path={}", enc(root))).send().await?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(check(res, "listing").await?.json().await?))
    }

    pub async fn mkdir(&self, path: &str) -> Result<()> {
        let res =
            self.req(Method::POST, "/folders").json(&serde_json::json!({ "path": path })).send().await?;
        match check(res, "mkdir").await {
            Ok(_) => Ok(()),
            // Already there (as a folder, we hope: the next round checks).
            Err(e) if e.is::<Refused>() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        let res = self.req(Method::DELETE, &format!("/files?path={}", enc(path))).send().await?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        check(res, "delete").await.map(drop)
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let res = self
            .req(Method::POST, "/move")
            .json(&serde_json::json!({ "from": from, "to": to, "overwrite": false }))
            .send()
            .await?;
        check(res, "move").await.map(drop)
    }

    /// Upload a whole small file; `if_match`: only over that etag, else only if nothing is there.
    pub async fn put(&self, path: &str, local: &Path, if_match: Option<&str>) -> Result<Entry> {
        let data = tokio::fs::read(local).await?;
        let r = match if_match {
            Some(e) => self
                .req(Method::PUT, &format!("/content?path={}", enc(path)))
                .header("If-Match", format!("\"{e}\"")),
            None => self.req(Method::PUT, &format!("/content?path={}&overwrite=false", enc(path))),
        };
        let res = r.body(data).send().await?;
        Ok(check(res, "upload").await?.json().await?)
    }

    pub async fn signature(&self, path: &str) -> Result<(String, Vec<u8>)> {
        let res = self.req(Method::GET, &format!("/signature?path={}", enc(path))).send().await?;
        let res = check(res, "signature").await?;
        let etag = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim_matches('"').to_owned())
            .unwrap_or_default();
        Ok((etag, res.bytes().await?.to_vec()))
    }

    pub async fn put_delta(&self, path: &str, base: &str, delta: Vec<u8>, hash: &str) -> Result<Entry> {
        let res = self
            .req(Method::PUT, &format!("/delta?path={}", enc(path)))
            .header("If-Match", format!("\"{base}\""))
            .header("X-Cairn-Blake3", hash)
            .header("Content-Type", "application/vnd.cairn.rsync-delta")
            .body(delta)
            .send()
            .await?;
        Ok(check(res, "delta upload").await?.json().await?)
    }

    /// Start a tus upload; returns its URL.
    pub async fn tus_create(&self, path: &str, len: u64) -> Result<String> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(path.as_bytes());
        let res = self
            .req(Method::POST, "/uploads/")
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", len.to_string())
            .header("Upload-Metadata", format!("path {b64}"))
            .send()
            .await?;
        let res = check(res, "upload creation").await?;
        let loc = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("no Location"))?;
        Ok(if loc.starts_with("http") { loc.to_owned() } else { format!("{}{loc}", self.base) })
    }

    /// The server's offset of a tus upload, `None` if it is gone.
    pub async fn tus_offset(&self, url: &str) -> Result<Option<u64>> {
        let res =
            self.http.head(url).bearer_auth(&self.token).header("Tus-Resumable", "1.0.0").send().await?;
        if matches!(res.status(), StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Ok(None);
        }
        let res = check(res, "upload offset").await?;
        Ok(res.headers().get("upload-offset").and_then(|v| v.to_str().ok()?.parse().ok()))
    }

    /// Send `chunk` at `offset`; returns the final blake3 header when the upload completed.
    pub async fn tus_patch(&self, url: &str, offset: u64, chunk: Vec<u8>) -> Result<(u64, Option<String>)> {
        let sum = base64::engine::general_purpose::STANDARD.encode(blake3::hash(&chunk).as_bytes());
        let res = self
            .http
            .patch(url)
            .bearer_auth(&self.token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Upload-Checksum", format!("blake3 {sum}"))
            .header("Content-Type", "application/offset+octet-stream")
            .body(chunk)
            .send()
            .await?;
        let res = check(res, "upload").await?;
        let h = |n: &str| res.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let off =
            h("upload-offset").and_then(|v| v.parse().ok()).ok_or_else(|| anyhow!("no Upload-Offset"))?;
        Ok((off, h("x-cairn-blake3")))
    }

    /// A small file's bytes (`None` if there is none at `path`).
    pub async fn get_bytes(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let res = self.req(Method::GET, &format!("/content?path={}", enc(path))).send().await?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(check(res, "download").await?.bytes().await?.to_vec()))
    }

    /// Write `data` at `path`, over whatever is there.
    pub async fn put_bytes(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let res = self.req(Method::PUT, &format!("/content?path={}", enc(path))).body(data).send().await?;
        check(res, "upload").await.map(drop)
    }

    /// The names in the folder `path`.
    pub async fn names(&self, path: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let rest = format!("/files?path={}&limit=5000&offset={}", enc(path), names.len());
            let res = self.req(Method::GET, &rest).send().await?;
            let v: serde_json::Value = check(res, "listing").await?.json().await?;
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            names.extend(entries.iter().filter_map(|e| e["name"].as_str().map(str::to_owned)));
            if entries.is_empty() || names.len() as u64 >= v["total"].as_u64().unwrap_or(0) {
                return Ok(names);
            }
        }
    }

    /// A JSON request to `/api/v1{rest}`; `None` for 404.
    pub async fn json(
        &self,
        method: Method,
        rest: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>> {
        let mut r = self.req(method, rest);
        if let Some(b) = body {
            r = r.json(b);
        }
        let res = r.send().await?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let res = check(res, rest).await?;
        if res.status() == StatusCode::NO_CONTENT {
            return Ok(Some(serde_json::Value::Null));
        }
        Ok(Some(res.json().await?))
    }

    pub async fn stat(&self, path: &str) -> Result<Option<Entry>> {
        let res = self.req(Method::GET, &format!("/stat?path={}", enc(path))).send().await?;
        if res.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(check(res, "stat").await?.json().await?))
    }

    /// Download `path` into `dest` (appending from `dest`'s length when it holds a prefix of
    /// the same etag). With `have` (the etag and file of a content we hold), ask for a delta.
    /// Returns the etag and, for a delta, its bytes.
    pub async fn download(
        &self,
        path: &str,
        dest: &Path,
        etag: &str,
        have: Option<(&str, &Path)>,
    ) -> Result<Download> {
        let mut r = self.req(Method::GET, &format!("/content?path={}", enc(path)));
        let start = tokio::fs::metadata(dest).await.map(|m| m.len()).unwrap_or(0);
        if let Some((base_etag, _)) = have {
            r = r.header("A-IM", "rsync").header("If-None-Match", format!("\"{base_etag}\""));
        } else if start > 0 {
            r = r.header("Range", format!("bytes={start}-")).header("If-Range", format!("\"{etag}\""));
        }
        let res = r.send().await?;
        if res.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // What we hold is not a prefix after all: start over.
            tokio::fs::remove_file(dest).await?;
            return Box::pin(self.download(path, dest, etag, None)).await;
        }
        let res = check(res, "download").await?;
        let got_etag = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim_matches('"').to_owned())
            .unwrap_or_default();
        let status = res.status();
        if status.as_u16() == 226 {
            let delta = res.bytes().await?.to_vec();
            return Ok(Download { etag: got_etag, delta: Some(delta), resumed_at: 0 });
        }
        let append = status == StatusCode::PARTIAL_CONTENT;
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(dest)
            .await?;
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await?;
        f.sync_all().await?;
        Ok(Download { etag: got_etag, delta: None, resumed_at: if append { start } else { 0 } })
    }
}

/// What [`Api::download`] got.
pub struct Download {
    pub etag: String,
    /// A delta from the held content, instead of the content (the caller checks the result
    /// against the hash it listed).
    pub delta: Option<Vec<u8>>,
    pub resumed_at: u64,
}
