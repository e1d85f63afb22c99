//! Shares: what you share and with whom, and what is shared with you. Who may do what below a
//! share is decided in `store` (`View`); these endpoints only carry the requests.

use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use store::{Recipient, Role, UserName};

use super::model::*;
use super::{Cx, Fail, Result, json, read_json, vpath};
use crate::body::{self, Body};

fn share_entry(s: store::Share) -> ShareEntry {
    let (user, group) = match s.recipient {
        Recipient::User(u) => (Some(u.as_str().to_owned()), None),
        Recipient::Group(g) => (None, Some(g)),
    };
    ShareEntry {
        id: s.id,
        file_id: s.node.0,
        path: s.path.map(|p| format!("/{}", p.as_str())),
        is_dir: s.is_dir,
        user,
        group,
        role: s.role.as_str().to_owned(),
        created_at: s.created_at.to_rfc3339(),
    }
}

/// The shares you made, by path.
#[utoipa::path(get, path = "/api/v1/shares", tag = "shares",
    responses((status = 200, description = "Your shares", body = Vec<ShareEntry>)))]
pub(crate) async fn list(cx: &Cx<'_>) -> Result<Response<Body>> {
    let shares: Vec<ShareEntry> = cx.store.shares_by(&cx.user).await?.into_iter().map(share_entry).collect();
    Ok(json(StatusCode::OK, &shares))
}

/// Share a folder or file of yours with an account or a group, or change the role of a share.
#[utoipa::path(post, path = "/api/v1/shares", tag = "shares", request_body = NewShare,
    responses((status = 201, description = "Shared", body = ShareEntry),
              (status = 400, description = "Not a role, both or neither of user and group, your root, yourself", body = ApiError),
              (status = 403, description = "Shared with you: only its owner shares it further", body = ApiError),
              (status = 404, description = "No such file, folder, account or group", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn create(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let req: NewShare = read_json(&cx.headers, body).await?;
    let bad = |m: &str| Fail::new(StatusCode::BAD_REQUEST, "invalid_input", m);
    let to = match (req.user, req.group) {
        (Some(u), None) => Recipient::User(UserName::parse(&u).map_err(|e| bad(e.message()))?),
        (None, Some(g)) => Recipient::Group(g),
        _ => return Err(bad("name exactly one of user and group")),
    };
    let role = Role::parse(&req.role).map_err(|e| bad(e.message()))?;
    let share = cx.store.view(&cx.user).share(&cx.actor, &vpath(&req.path)?, &to, role).await?;
    Ok(json(StatusCode::CREATED, &share_entry(share)))
}

/// End a share you made: its recipients lose access at once.
#[utoipa::path(delete, path = "/api/v1/shares/{id}", tag = "shares",
    params(("id" = i64, Path, description = "Share id")),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "No share of yours with that id", body = ApiError)))]
pub(crate) async fn revoke(cx: &Cx<'_>, id: i64) -> Result<Response<Body>> {
    cx.store.revoke_share(&cx.actor, &cx.user, id).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// What others share with you, and where it is in your tree.
#[utoipa::path(get, path = "/api/v1/shares/incoming", tag = "shares",
    responses((status = 200, description = "Shared with you", body = Vec<IncomingShare>)))]
pub(crate) async fn incoming(cx: &Cx<'_>) -> Result<Response<Body>> {
    let list: Vec<IncomingShare> = cx
        .store
        .view(&cx.user)
        .incoming()
        .await?
        .into_iter()
        .map(|(i, at)| IncomingShare {
            owner: i.owner.as_str().to_owned(),
            name: i.name,
            is_dir: i.is_dir,
            role: i.role.as_str().to_owned(),
            via_groups: i.via_groups,
            path: at.map(|p| format!("/{}", p.as_str())),
        })
        .collect();
    Ok(json(StatusCode::OK, &list))
}
