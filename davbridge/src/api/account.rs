//! Signing in and out, the signed-in user, tokens, and (for admins) accounts.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Response, StatusCode};
use store::{Actor, NewUser, Origin, UserName};

use super::model::*;
use super::{Cx, Fail, Result, SESSION_COOKIE, Via, hv, json, read_json};
use crate::Bridge;
use crate::auth::AuthOutcome;
use crate::body::{self, Body};

/// How long a browser session lasts.
const SESSION_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

fn usage_info(u: store::Usage) -> UsageInfo {
    UsageInfo {
        quota: u.quota,
        used: u.used,
        files: u.files,
        versions: u.versions,
        trash: u.trash,
        uploads: u.uploads,
        available: u.available(),
    }
}

fn session_cookie(bridge: &Bridge, value: &str, max_age: u64) -> hyper::header::HeaderValue {
    let secure = if bridge.tls { "; Secure" } else { "" };
    hv(&format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
}

/// Sign in with a user name and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "account", request_body = SignIn, security(()),
    responses((status = 200, description = "Signed in; the cookie is set", body = Me),
              (status = 401, description = "Wrong user name or password", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn sign_in(
    bridge: &Bridge,
    remote: SocketAddr,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>> {
    let req: SignIn = read_json(headers, body).await?;
    let user = match bridge.auth.password(&req.user, &req.password, remote.ip(), Origin::Rest).await {
        AuthOutcome::User(u) => u,
        AuthOutcome::Denied => {
            return Err(Fail::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "wrong user name or password",
            ));
        }
        AuthOutcome::Throttled => {
            return Err(Fail::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "too many failed sign-ins; wait a minute",
            ));
        }
        AuthOutcome::Unavailable => {
            return Err(Fail::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server cannot check passwords now; try again in a moment",
            ));
        }
    };
    let actor = Actor::user(Origin::Rest, &user, Some(remote.ip().to_string()));
    let session = bridge.store.create_session(&actor, &user, SESSION_TTL).await?;
    let usage = bridge.store.usage(&user).await?;
    let me = Me {
        name: user.name.to_string(),
        is_admin: user.is_admin,
        usage: usage_info(usage),
        csrf: Some(session.csrf),
    };
    let mut res = json(StatusCode::OK, &me);
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(bridge, &session.token, SESSION_TTL.as_secs()));
    Ok(res)
}

/// Sign out: ends the session and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "account",
    responses((status = 204, description = "Signed out")))]
pub(crate) async fn sign_out(cx: &Cx<'_>) -> Result<Response<Body>> {
    if let Via::Session { token, .. } = &cx.via {
        cx.store.end_session(&cx.actor, &cx.user, token).await?;
        cx.bridge.auth.forget_session(token);
    }
    let mut res = body::status(StatusCode::NO_CONTENT);
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(cx.bridge, "", 0));
    Ok(res)
}

/// The signed-in user, their usage, and (with a session) the CSRF token.
#[utoipa::path(get, path = "/api/v1/me", tag = "account",
    responses((status = 200, description = "You", body = Me)))]
pub(crate) async fn me(cx: &Cx<'_>) -> Result<Response<Body>> {
    let usage = cx.store.usage(&cx.user).await?;
    let csrf = match &cx.via {
        Via::Session { csrf, .. } => Some(csrf.clone()),
        _ => None,
    };
    Ok(json(
        StatusCode::OK,
        &Me { name: cx.user.name.to_string(), is_admin: cx.user.is_admin, usage: usage_info(usage), csrf },
    ))
}

/// The user's quota and usage.
#[utoipa::path(get, path = "/api/v1/quota", tag = "account",
    responses((status = 200, description = "Usage", body = UsageInfo)))]
pub(crate) async fn quota(cx: &Cx<'_>) -> Result<Response<Body>> {
    Ok(json(StatusCode::OK, &usage_info(cx.store.usage(&cx.user).await?)))
}

/// The user's app passwords / tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "account",
    responses((status = 200, description = "Tokens (without secrets)", body = Vec<TokenInfo>)))]
pub(crate) async fn tokens(cx: &Cx<'_>) -> Result<Response<Body>> {
    let list = cx.store.list_app_passwords(&cx.user).await?;
    let out: Vec<TokenInfo> = list
        .into_iter()
        .map(|t| TokenInfo {
            id: t.id,
            label: t.label,
            created_at: t.created_at.to_rfc3339(),
            last_used_at: t.last_used_at.map(|t| t.to_rfc3339()),
        })
        .collect();
    Ok(json(StatusCode::OK, &out))
}

/// Create an app password / token; its secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "account", request_body = NewTokenRequest,
    responses((status = 201, description = "Created", body = NewToken),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn new_token(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    let req: NewTokenRequest = read_json(&cx.headers, body).await?;
    let label = req.label.trim();
    if label.is_empty() || label.chars().count() > 200 || label.chars().any(char::is_control) {
        return Err(Fail::bad("label must have 1 to 200 printable characters"));
    }
    let (info, token) = cx.store.create_app_password(&cx.actor, &cx.user, label).await?;
    Ok(json(StatusCode::CREATED, &NewToken { id: info.id, label: info.label, token }))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "account",
    params(("id" = i64, Path, description = "Token id", minimum = 1)),
    responses((status = 204, description = "Revoked"),
              (status = 404, description = "No such token of yours", body = ApiError)))]
pub(crate) async fn revoke_token(cx: &Cx<'_>, id: i64) -> Result<Response<Body>> {
    cx.store.revoke_app_password(&cx.actor, &cx.user, id).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// A pending Login Flow v2 request (a Nextcloud or ownCloud app signing in): which app asks.
/// The token is the last part of the URL the app opened in the browser.
#[utoipa::path(get, path = "/api/v1/login-flows/{token}", tag = "account",
    params(("token" = String, Path, description = "The login token from the app's URL")),
    responses((status = 200, description = "The app that asks", body = LoginFlowInfo),
              (status = 404, description = "No such pending request (granted, expired or never made)", body = ApiError)))]
pub(crate) async fn login_flow(cx: &Cx<'_>, token: &str) -> Result<Response<Body>> {
    let device = cx.store.login_flow_device(token)?;
    Ok(json(StatusCode::OK, &LoginFlowInfo { device }))
}

/// Grant a pending Login Flow v2 request: an app password named after the app is made and
/// handed to the app at its next poll (it is never shown here).
#[utoipa::path(post, path = "/api/v1/login-flows/{token}", tag = "account",
    params(("token" = String, Path, description = "The login token from the app's URL")),
    responses((status = 204, description = "Granted; the app signs in at its next poll"),
              (status = 404, description = "No such pending request (granted, expired or never made)", body = ApiError)))]
pub(crate) async fn grant_login_flow(cx: &Cx<'_>, token: &str) -> Result<Response<Body>> {
    let device = cx.store.login_flow_device(token)?;
    cx.store.grant_login_flow(&cx.actor, &cx.user, token, &device).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

fn require_admin(cx: &Cx<'_>) -> Result<()> {
    if cx.user.is_admin {
        Ok(())
    } else {
        Err(Fail::new(StatusCode::FORBIDDEN, "forbidden", "administrators only"))
    }
}

fn user_name(raw: &str) -> Result<UserName> {
    UserName::parse(raw).map_err(|e| Fail::bad(e.message().to_owned()))
}

/// Every account with its usage (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin",
    responses((status = 200, description = "Accounts", body = Vec<AdminUser>)))]
pub(crate) async fn admin_users(cx: &Cx<'_>) -> Result<Response<Body>> {
    require_admin(cx)?;
    let users = cx.store.list_users().await?;
    let out: Vec<AdminUser> = users
        .into_iter()
        .map(|u| AdminUser {
            name: u.user.name.to_string(),
            is_admin: u.user.is_admin,
            disabled: u.user.disabled,
            quota: u.user.quota,
            used: u.usage.used,
        })
        .collect();
    Ok(json(StatusCode::OK, &out))
}

async fn admin_view(cx: &Cx<'_>, name: &UserName) -> Result<AdminUser> {
    let user = cx.store.user(name).await?;
    let usage = cx.store.usage(&user).await?;
    Ok(AdminUser {
        name: user.name.to_string(),
        is_admin: user.is_admin,
        disabled: user.disabled,
        quota: user.quota,
        used: usage.used,
    })
}

/// Create an account (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", request_body = NewUserRequest,
    responses((status = 201, description = "Created", body = AdminUser),
              (status = 409, description = "The name is taken", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn admin_create(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    require_admin(cx)?;
    let req: NewUserRequest = read_json(&cx.headers, body).await?;
    let name = user_name(&req.name)?;
    let quota = req.quota.as_ref().map(Size::bytes).transpose()?;
    cx.store
        .create_user(&cx.actor, &name, &req.password, NewUser { is_admin: req.is_admin, quota })
        .await
        .map_err(|e| match e.kind() {
            store::ErrorKind::AlreadyExists => Fail::new(StatusCode::CONFLICT, "already_exists", e.message()),
            _ => e.into(),
        })?;
    Ok(json(StatusCode::CREATED, &admin_view(cx, &name).await?))
}

/// Change an account's quota, password or state (admins only).
#[utoipa::path(patch, path = "/api/v1/admin/users/{name}", tag = "admin",
    params(("name" = String, Path, description = "Account name")), request_body = UserChange,
    responses((status = 200, description = "Changed", body = AdminUser),
              (status = 404, description = "No such account", body = ApiError),
              (status = 409, description = "Admins cannot disable themselves", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn admin_change(cx: &Cx<'_>, name: &str, body: Incoming) -> Result<Response<Body>> {
    require_admin(cx)?;
    let req: UserChange = read_json(&cx.headers, body).await?;
    let name = user_name(name)?;
    if req.quota.is_some() && req.unlimited {
        return Err(Fail::bad("give either quota or unlimited"));
    }
    let quota = req.quota.as_ref().map(Size::bytes).transpose()?;
    if name == cx.user.name && req.disabled == Some(true) {
        return Err(Fail::new(StatusCode::CONFLICT, "conflict", "you cannot disable your own account"));
    }
    cx.store.user(&name).await?;
    if let Some(pw) = &req.password {
        cx.store.set_password(&cx.actor, &name, pw).await?;
    }
    if let Some(q) = quota {
        cx.store.set_quota(&cx.actor, &name, Some(q)).await?;
    } else if req.unlimited {
        cx.store.set_quota(&cx.actor, &name, None).await?;
    }
    if let Some(d) = req.disabled {
        cx.store.set_disabled(&cx.actor, &name, d).await?;
    }
    Ok(json(StatusCode::OK, &admin_view(cx, &name).await?))
}

/// Delete an account with all its files (admins only).
#[utoipa::path(delete, path = "/api/v1/admin/users/{name}", tag = "admin",
    params(("name" = String, Path, description = "Account name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such account", body = ApiError),
              (status = 409, description = "Admins cannot delete themselves", body = ApiError)))]
pub(crate) async fn admin_delete(cx: &Cx<'_>, name: &str) -> Result<Response<Body>> {
    require_admin(cx)?;
    let name = user_name(name)?;
    if name == cx.user.name {
        return Err(Fail::new(StatusCode::CONFLICT, "conflict", "you cannot delete your own account"));
    }
    cx.store.delete_user(&cx.actor, &name).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// Every group with its members (admins only).
#[utoipa::path(get, path = "/api/v1/admin/groups", tag = "admin",
    responses((status = 200, description = "Groups, by name", body = Vec<AdminGroup>)))]
pub(crate) async fn admin_groups(cx: &Cx<'_>) -> Result<Response<Body>> {
    require_admin(cx)?;
    let groups: Vec<AdminGroup> = cx
        .store
        .list_groups()
        .await?
        .into_iter()
        .map(|g| AdminGroup { name: g.name, members: g.members })
        .collect();
    Ok(json(StatusCode::OK, &groups))
}

/// Create a group (admins only).
#[utoipa::path(post, path = "/api/v1/admin/groups", tag = "admin", request_body = NewGroupRequest,
    responses((status = 201, description = "Created", body = AdminGroup),
              (status = 400, description = "Not a valid group name", body = ApiError),
              (status = 409, description = "The name is taken", body = ApiError),
              (status = 415, description = "Not JSON", body = ApiError)))]
pub(crate) async fn admin_group_create(cx: &Cx<'_>, body: Incoming) -> Result<Response<Body>> {
    require_admin(cx)?;
    let req: NewGroupRequest = read_json(&cx.headers, body).await?;
    let g = cx.store.create_group(&cx.actor, &req.name).await.map_err(|e| match e.kind() {
        store::ErrorKind::AlreadyExists => Fail::new(StatusCode::CONFLICT, "already_exists", e.message()),
        _ => e.into(),
    })?;
    Ok(json(StatusCode::CREATED, &AdminGroup { name: g.name, members: g.members }))
}

/// Delete a group; its members keep their accounts and files (admins only).
#[utoipa::path(delete, path = "/api/v1/admin/groups/{name}", tag = "admin",
    params(("name" = String, Path, description = "Group name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such group", body = ApiError)))]
pub(crate) async fn admin_group_delete(cx: &Cx<'_>, name: &str) -> Result<Response<Body>> {
    require_admin(cx)?;
    cx.store.delete_group(&cx.actor, name).await?;
    Ok(body::status(StatusCode::NO_CONTENT))
}

/// Add an account to a group; already a member is fine (admins only).
#[utoipa::path(put, path = "/api/v1/admin/groups/{name}/members/{user}", tag = "admin",
    params(("name" = String, Path, description = "Group name"), ("user" = String, Path, description = "Account name")),
    responses((status = 200, description = "The group now", body = AdminGroup),
              (status = 404, description = "No such group or account", body = ApiError)))]
pub(crate) async fn admin_group_add(cx: &Cx<'_>, group: &str, user: &str) -> Result<Response<Body>> {
    admin_group_member(cx, group, user, true).await
}

/// Take an account out of a group; not a member is fine (admins only).
#[utoipa::path(delete, path = "/api/v1/admin/groups/{name}/members/{user}", tag = "admin",
    params(("name" = String, Path, description = "Group name"), ("user" = String, Path, description = "Account name")),
    responses((status = 200, description = "The group now", body = AdminGroup),
              (status = 404, description = "No such group or account", body = ApiError)))]
pub(crate) async fn admin_group_remove(cx: &Cx<'_>, group: &str, user: &str) -> Result<Response<Body>> {
    admin_group_member(cx, group, user, false).await
}

async fn admin_group_member(cx: &Cx<'_>, group: &str, user: &str, add: bool) -> Result<Response<Body>> {
    require_admin(cx)?;
    let user = user_name(user)?;
    match add {
        true => cx.store.add_group_member(&cx.actor, group, &user).await?,
        false => cx.store.remove_group_member(&cx.actor, group, &user).await?,
    }
    let g = cx.store.group(group).await?;
    Ok(json(StatusCode::OK, &AdminGroup { name: g.name, members: g.members }))
}

/// Server metrics in the Prometheus text format (admins only).
#[utoipa::path(get, path = "/api/v1/admin/metrics", tag = "admin",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
              (status = 403, description = "Not an admin", body = ApiError)))]
pub(crate) async fn metrics(cx: &Cx<'_>) -> Result<Response<Body>> {
    require_admin(cx)?;
    Ok(crate::metrics::exposition(cx.bridge).await)
}
