//! Browser sessions and bearer tokens: the REST API's ways of signing in besides HTTP Basic.
//!
//! A session is a random cookie value; only its hash is stored, with the user and a CSRF token
//! the page must echo on every state-changing request. A bearer token is an app password used
//! on its own (app passwords are 256-bit random, so the token alone identifies its owner).

use std::time::Duration;

use crate::db::Cached;
use crate::disk::random_hex;
use crate::txn::audit;
use crate::types::{Actor, Timestamp, User};
use crate::users::{USER_COLS, token_hash, user_from_row};
use crate::{Error, ErrorKind, Result, Store};

/// A new session's secrets (returned once; the cookie value is stored hashed).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value.
    pub token: String,
    /// The CSRF token the page sends back in `X-CSRF-Token`.
    pub csrf: String,
    /// When the session ends.
    pub expires_at: Timestamp,
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose session it is.
    pub user: User,
    /// Its CSRF token.
    pub csrf: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

fn denied() -> Error {
    Error::new(ErrorKind::Unauthenticated, "not signed in or the session has ended")
}

impl Store {
    /// Start a session for `user` (already authenticated) lasting `ttl`.
    pub async fn create_session(&self, actor: &Actor, user: &User, ttl: Duration) -> Result<NewSession> {
        let (token, csrf) = (random_hex(32), random_hex(16));
        let now = self.clock().now();
        let expires_at = Timestamp(now.0 + ttl.as_nanos() as i64);
        let client = self.inner.pool.get().await?;
        client
            .cexecute(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&token_hash(&token), &user.id.0, &csrf, &now.0, &expires_at.0],
            )
            .await?;
        // Expired sessions of anyone go when someone signs in: no sweeper needed.
        client.cexecute("DELETE FROM sessions WHERE expires_at < $1", &[&now.0]).await?;
        audit(&client, Some(user.id), actor, "session.create", None, None, now).await?;
        Ok(NewSession { token, csrf, expires_at })
    }

    /// The session a cookie value names, if it is live and its user enabled.
    pub async fn session(&self, token: &str) -> Result<Session> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT {USER_COLS}, s.csrf, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = $1 AND s.expires_at > $2"
                ),
                &[&token_hash(token), &self.clock().now().0],
            )
            .await?
            .ok_or_else(denied)?;
        let user = user_from_row(&row)?;
        if user.disabled {
            return Err(denied());
        }
        Ok(Session { user, csrf: row.get(6), expires_at: Timestamp(row.get(7)) })
    }

    /// End a session (sign-out). Ending an unknown session is not an error.
    pub async fn end_session(&self, actor: &Actor, user: &User, token: &str) -> Result<()> {
        let client = self.inner.pool.get().await?;
        client
            .cexecute(
                "DELETE FROM sessions WHERE token_hash = $1 AND user_id = $2",
                &[&token_hash(token), &user.id.0],
            )
            .await?;
        audit(&client, Some(user.id), actor, "session.end", None, None, self.clock().now()).await
    }

    /// Sign in with a bearer token (an app password on its own).
    pub async fn authenticate_bearer(&self, token: &str) -> Result<User> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "UPDATE app_passwords a SET last_used_at = now() FROM users u
                     WHERE a.token_hash = $1 AND u.id = a.user_id RETURNING {}",
                    USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
                ),
                &[&token_hash(token)],
            )
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "unknown or revoked token"))?;
        let user = user_from_row(&row)?;
        if user.disabled {
            return Err(Error::new(ErrorKind::Unauthenticated, "unknown or revoked token"));
        }
        Ok(user)
    }
}
