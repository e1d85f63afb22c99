//! Encrypted vaults: marking a folder as one, and listing them. The rule that keeps plaintext
//! out of a vault lives in `store` (`store/src/vaults.rs`); the server never sees a key.

use hyper::body::Incoming;
use hyper::{Response, StatusCode};

use super::model::*;
use super::{Cx, Fail, Result, json, read_json, vpath};
use crate::body::Body;

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
    let id: [u8; 16] = hex::decode(&req.id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Fail::new(StatusCode::BAD_REQUEST, "invalid_input", "id: 32 hex digits"))?;
    let vault = cx.store.create_vault(&cx.actor, &cx.user, &vpath(&req.path)?, id).await?;
    Ok(json(StatusCode::CREATED, &entry(vault)))
}
