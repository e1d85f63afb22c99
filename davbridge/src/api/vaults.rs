//! Encrypted vaults: marking a folder as one, and listing them. The rule that keeps plaintext
//! out of a vault lives in `store` (`store/src/vaults.rs`); the server never sees a key.

use hyper::body::Incoming;
use hyper::{Response, StatusCode};

use base64::Engine;

use super::model::*;
use super::{Cx, Fail, Result, json, read_json, vpath};
use crate::body::{self, Body};

fn bad(m: &str) -> Fail {
    Fail::new(StatusCode::BAD_REQUEST, "invalid_input", m)
}

/// `N` bytes given as hex digits (a vault id, a public key).
fn hex_bytes<const N: usize>(raw: &str, what: &str) -> Result<[u8; N]> {
    hex::decode(raw)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(&format!("{what}: {} hex digits", N * 2)))
}

fn entry(v: store::Vault) -> VaultEntry {
    VaultEntry {
        path: format!("/{}", v.path.as_str()),
        id: hex::encode(v.id),
        created_at: v.created.to_rfc3339(),
    }
}

/// Your vaults, by path.
#[utoipa::path(get, path = "/api/v1/vaults", tag = "vaults",
    responses((status = 200, description = "Your vaults", body = Vec<VaultEntry>)))]
pub(crate) async fn list(cx: &Cx<'_>) -> Result<Response<Body>> {
    let list: Vec<VaultEntry> = cx.store.vaults(&cx.user).await?.into_iter().map(entry).collect();
    Ok(json(StatusCode::OK, &list))
}

/// Make an empty folder of yours an encrypted vault. From then on every file written into it
/// must be one of that vault's encrypted objects: plaintext is refused with 403 by every front
/// end (WebDAV, REST, tus, the Nextcloud apps, the FUSE mount), and so is a move or copy into it
/// from outside.
#[utoipa::path(post, path = "/api/v1/vaults", tag = "vaults", request_body = NewVault,
    responses((status = 201, description = "The folder is a vault", body = VaultEntry),
              (status = 400, description = "Not 32 hex digits, or your root", body = ApiError),
              (status = 404, description = "No such folder of yours", body = ApiError),
              (status = 409, description = "Not empty, a file, inside a vault or holding one, or a vault already", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn create(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let req: NewVault = read_json(&cx.headers, body).await?;
    let id: [u8; 16] = hex_bytes(&req.id, "id")?;
    let vault = cx.store.create_vault(&cx.actor, &cx.user, &vpath(&req.path)?, id).await?;
    Ok(json(StatusCode::CREATED, &entry(vault)))
}

/// Your vault keys, as your devices stored them (wrapped; 404 before you enrolled).
#[utoipa::path(get, path = "/api/v1/vault/account", tag = "vaults",
    responses((status = 200, description = "Your wrapped vault keys", body = VaultAccountBody),
              (status = 404, description = "Not enrolled yet", body = ApiError)))]
pub(crate) async fn account(cx: &Cx<'_>) -> Result<Response<Body>> {
    let a = cx.store.vault_account(&cx.user).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(json(
        StatusCode::OK,
        &VaultAccountBody {
            passphrase_blob: b64.encode(&a.passphrase_blob),
            recovery_blob: b64.encode(&a.recovery_blob),
            x25519: hex::encode(a.x25519),
            ed25519: hex::encode(a.ed25519),
        },
    ))
}

/// Store (or replace) your vault keys: the seed wrapped on your device twice, and its public
/// keys. The server checks that each blob is a wrapped account blob of its kind, never more.
#[utoipa::path(put, path = "/api/v1/vault/account", tag = "vaults", request_body = VaultAccountBody,
    responses((status = 204, description = "Stored"),
              (status = 400, description = "Not base64 or hex, or not wrapped account blobs", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn set_account(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let req: VaultAccountBody = read_json(&cx.headers, body).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let blob = |raw: &str, what: &str| b64.decode(raw).map_err(|_| bad(&format!("{what}: base64")));
    let account = store::VaultAccount {
        passphrase_blob: blob(&req.passphrase_blob, "passphrase_blob")?,
        recovery_blob: blob(&req.recovery_blob, "recovery_blob")?,
        x25519: hex_bytes(&req.x25519, "x25519")?,
        ed25519: hex_bytes(&req.ed25519, "ed25519")?,
    };
    cx.store.set_vault_account(&cx.actor, &cx.user, &account).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// Another account's public vault keys (404 if there is no such account or it has not
/// enrolled: the same answer).
#[utoipa::path(get, path = "/api/v1/vault/keys/{user}", tag = "vaults",
    params(("user" = String, Path, description = "Account name")),
    responses((status = 200, description = "Their public keys", body = VaultKeys),
              (status = 404, description = "No such account with vault keys", body = ApiError)))]
pub(crate) async fn keys(cx: &Cx<'_>, user: &str) -> Result<Response<Body>> {
    let none = || Fail::new(StatusCode::NOT_FOUND, "not_found", format!("vault keys of {user}"));
    let name = store::UserName::parse(user).map_err(|_| none())?;
    let (x, e) = cx.store.vault_public_keys(&name).await?;
    Ok(json(
        StatusCode::OK,
        &VaultKeys { user: name.as_str().to_owned(), x25519: hex::encode(x), ed25519: hex::encode(e) },
    ))
}
