//! Accounts: creation, credentials (argon2id PHC strings; hashed app passwords), quota, usage.

use crate::db::Cached;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::disk::layout;
use crate::intent::DiskOp;
use crate::path::UserName;
use crate::rows::new_etag;
use crate::txn::audit;
use crate::types::{Actor, Timestamp, Usage, User, UserId};
use crate::{Error, ErrorKind, Result, Store, blocking};

/// A new account's settings.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// May manage other users.
    pub is_admin: bool,
    /// `None`: no limit.
    pub quota: Option<u64>,
}

/// A user with their usage, for listings.
#[derive(Debug, Clone)]
pub struct UserInfo {
    /// The account.
    pub user: User,
    /// Its footprint.
    pub usage: Usage,
}

/// An app password or device token (never the secret itself).
#[derive(Debug, Clone)]
pub struct AppPassword {
    /// Its id (for revoking).
    pub id: i64,
    /// What the user called it.
    pub label: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
}

pub(crate) const USER_COLS: &str = "id, name, is_admin, disabled, quota_bytes, cred_epoch";

pub(crate) fn user_from_row(row: &tokio_postgres::Row) -> Result<User> {
    user_from_row_at(row, 0)
}

/// A user from `row`'s columns `at..` (laid out as [`USER_COLS`]).
pub(crate) fn user_from_row_at(row: &tokio_postgres::Row, at: usize) -> Result<User> {
    Ok(User {
        id: UserId(row.get(at)),
        name: UserName::parse(row.get(at + 1))?,
        is_admin: row.get(at + 2),
        disabled: row.get(at + 3),
        quota: row.get::<_, Option<i64>>(at + 4).map(|q| q as u64),
        cred_epoch: row.get(at + 5),
    })
}

pub(crate) fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::internal(format!("random: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::internal(format!("salt: {e}")))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::internal(format!("argon2: {e}")))?
        .to_string())
}

pub(crate) fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

pub(crate) fn check_password_strength(password: &str) -> Result<()> {
    if password.chars().count() < 8 {
        return Err(Error::new(ErrorKind::InvalidInput, "password too short: use at least 8 characters"));
    }
    if password.len() > 1024 {
        return Err(Error::new(ErrorKind::InvalidInput, "password too long"));
    }
    Ok(())
}

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    blake3::hash(token.as_bytes()).as_bytes().to_vec()
}

impl Store {
    /// Create an account with an empty tree.
    pub async fn create_user(
        &self,
        actor: &Actor,
        name: &UserName,
        password: &str,
        opts: NewUser,
    ) -> Result<User> {
        check_password_strength(password)?;
        let pw = password.to_owned();
        let phc = blocking(move || hash_password(&pw)).await?;
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        if tx.cquery_opt("SELECT 1 FROM users WHERE name = $1", &[&name.as_str()]).await?.is_some() {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("user {name} already exists")));
        }
        let row = tx
            .cquery_one(
                &format!(
                    "INSERT INTO users (name, password_hash, is_admin, quota_bytes) VALUES ($1, $2, $3, $4)
                     RETURNING {USER_COLS}"
                ),
                &[&name.as_str(), &phc, &opts.is_admin, &opts.quota.map(|q| q as i64)],
            )
            .await?;
        let user = user_from_row(&row)?;
        tx.cexecute(
            "INSERT INTO nodes (user_id, parent_id, name, path, is_dir, size, mtime_ns, etag)
             VALUES ($1, NULL, '', '', true, 0, $2, $3)",
            &[&user.id.0, &now.0, &new_etag().0],
        )
        .await?;
        let detail = format!("admin={} quota={:?}", opts.is_admin, opts.quota);
        audit(&tx, Some(user.id), actor, "user.create", None, Some(&detail), now).await?;
        tx.commit().await?;
        let store = self.clone();
        let n = name.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            for dir in [layout::user_root(&n), layout::versions_dir(&n), layout::trash_dir(&n)] {
                disk.mkdir_all(&dir).map_err(|e| Error::io(format!("mkdir {dir}"), e))?;
            }
            Ok(())
        })
        .await?;
        Ok(user)
    }

    /// The account called `name`.
    pub async fn user(&self, name: &UserName) -> Result<User> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(&format!("SELECT {USER_COLS} FROM users WHERE name = $1"), &[&name.as_str()])
            .await?
            .ok_or_else(|| Error::not_found(format!("user {name}")))?;
        user_from_row(&row)
    }

    /// Every account with its usage, by name.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>> {
        let client = self.inner.pool.get().await?;
        let rows = client.cquery(&format!("SELECT {USER_COLS} FROM users ORDER BY name"), &[]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let user = user_from_row(row)?;
            let usage = self.usage(&user).await?;
            out.push(UserInfo { user, usage });
        }
        Ok(out)
    }

    /// How many accounts exist.
    pub async fn user_count(&self) -> Result<i64> {
        let client = self.inner.pool.get().await?;
        Ok(client.cquery_one("SELECT count(*) FROM users", &[]).await?.get(0))
    }

    /// Check a user's password (argon2id; about 40 ms, off the async workers). A wrong name, a
    /// wrong password and a disabled account all give `Unauthenticated`.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<User> {
        let denied = || Error::new(ErrorKind::Unauthenticated, "wrong user name or password");
        let client = self.inner.pool.get().await?;
        let row = match UserName::parse(name) {
            Ok(n) => {
                client
                    .cquery_opt(
                        &format!("SELECT {USER_COLS}, password_hash FROM users WHERE name = $1"),
                        &[&n.as_str()],
                    )
                    .await?
            }
            Err(_) => None,
        };
        drop(client);
        let phc: Option<String> = row.as_ref().map(|r| r.get(6));
        let pw = password.to_owned();
        // Verify against a dummy hash for unknown names so timing does not reveal which exist.
        let ok = blocking(move || {
            Ok(match phc {
                Some(phc) => verify_password(&phc, &pw),
                None => {
                    let _ = verify_password(DUMMY_HASH, &pw);
                    false
                }
            })
        })
        .await?;
        let Some(row) = row.filter(|_| ok) else { return Err(denied()) };
        let user = user_from_row(&row)?;
        if user.disabled {
            return Err(denied());
        }
        Ok(user)
    }

    /// Set a new password; cached credentials of the user stop working.
    pub async fn set_password(&self, actor: &Actor, name: &UserName, password: &str) -> Result<()> {
        check_password_strength(password)?;
        let pw = password.to_owned();
        let phc = blocking(move || hash_password(&pw)).await?;
        self.update_user(actor, name, "user.passwd", None, |tx, id| {
            Box::pin(async move {
                tx.cexecute(
                    "UPDATE users SET password_hash = $2, cred_epoch = cred_epoch + 1 WHERE id = $1",
                    &[&id.0, &phc],
                )
                .await?;
                // A new password signs every browser out.
                tx.cexecute("DELETE FROM sessions WHERE user_id = $1", &[&id.0]).await?;
                Ok(())
            })
        })
        .await
    }

    /// Disable or re-enable an account.
    pub async fn set_disabled(&self, actor: &Actor, name: &UserName, disabled: bool) -> Result<()> {
        let action = if disabled { "user.disable" } else { "user.enable" };
        self.update_user(actor, name, action, None, |tx, id| {
            Box::pin(async move {
                tx.cexecute(
                    "UPDATE users SET disabled = $2, cred_epoch = cred_epoch + 1 WHERE id = $1",
                    &[&id.0, &disabled],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Set (or with `None` remove) the quota.
    pub async fn set_quota(&self, actor: &Actor, name: &UserName, quota: Option<u64>) -> Result<()> {
        let detail = format!("quota={quota:?}");
        self.update_user(actor, name, "quota.set", Some(detail), |tx, id| {
            Box::pin(async move {
                tx.cexecute(
                    "UPDATE users SET quota_bytes = $2 WHERE id = $1",
                    &[&id.0, &quota.map(|q| q as i64)],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn update_user(
        &self,
        actor: &Actor,
        name: &UserName,
        action: &str,
        detail: Option<String>,
        f: impl for<'a> FnOnce(
            &'a deadpool_postgres::Transaction<'a>,
            UserId,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>,
    ) -> Result<()> {
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .cquery_opt("SELECT id FROM users WHERE name = $1 FOR UPDATE", &[&name.as_str()])
            .await?
            .ok_or_else(|| Error::not_found(format!("user {name}")))?
            .get(0);
        f(&tx, UserId(id)).await?;
        crate::notify::credentials_changed(&tx, UserId(id)).await?;
        audit(&tx, Some(UserId(id)), actor, action, None, detail.as_deref(), self.clock().now()).await?;
        tx.commit().await?;
        self.credentials_committed();
        Ok(())
    }

    /// Delete an account with all its files, versions and trash.
    pub async fn delete_user(&self, actor: &Actor, name: &UserName) -> Result<()> {
        let user = self.user(name).await?;
        let now = self.clock().now();
        let mut locked = crate::txn::Locked::acquire(self, crate::txn::LockSet::Tree(user.id)).await?;
        let res = async {
            let tx = locked.start_tx().await?;
            tx.cexecute("DELETE FROM users WHERE id = $1", &[&user.id.0]).await?;
            crate::notify::credentials_changed(tx.db(), user.id).await?;
            audit(
                tx.db(),
                None,
                actor,
                "user.delete",
                None,
                Some(&format!("user {name} (id {})", user.id)),
                now,
            )
            .await?;
            let ops = vec![
                DiskOp::Remove { path: layout::user_root(name) },
                DiskOp::Remove { path: layout::versions_dir(name) },
                DiskOp::Remove { path: layout::trash_dir(name) },
            ];
            let id: i64 = tx
                .cquery_one(
                    "INSERT INTO intents (user_id, ops) VALUES ($1, $2) RETURNING id",
                    &[&user.id.0, &crate::intent::encode(&ops)],
                )
                .await?
                .get(0);
            Ok((id, ops))
        }
        .await;
        match res {
            Ok(intent) => {
                let committed = locked.commit(self, std::slice::from_ref(&intent)).await;
                self.credentials_committed();
                committed?;
                locked.finish(self, Some(intent)).await
            }
            Err(e) => {
                let _ = locked.finish(self, None).await;
                Err(e)
            }
        }
    }

    /// The user's footprint.
    pub async fn usage(&self, user: &User) -> Result<Usage> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                "SELECT quota_bytes, used_bytes,
                   (SELECT coalesce(sum(size), 0)::BIGINT FROM nodes WHERE user_id = $1 AND trash_id IS NULL AND NOT is_dir),
                   (SELECT coalesce(sum(size), 0)::BIGINT FROM versions WHERE user_id = $1),
                   (SELECT coalesce(sum(size), 0)::BIGINT FROM trash WHERE user_id = $1),
                   (SELECT coalesce(sum(length), 0)::BIGINT FROM uploads WHERE user_id = $1 AND expires_at > $2)
                      + (SELECT coalesce(sum(greatest(total_length, received)), 0)::BIGINT FROM chunked_uploads WHERE user_id = $1 AND expires_at > $2)
                 FROM users WHERE id = $1",
                &[&user.id.0, &self.clock().now().0],
            )
            .await?;
        Ok(Usage {
            quota: row.get::<_, Option<i64>>(0).map(|q| q as u64),
            used: row.get::<_, i64>(1) as u64,
            files: row.get::<_, i64>(2) as u64,
            versions: row.get::<_, i64>(3) as u64,
            trash: row.get::<_, i64>(4) as u64,
            uploads: row.get::<_, i64>(5) as u64,
        })
    }

    /// Make an app password / device token. The secret is returned once and stored hashed.
    pub async fn create_app_password(
        &self,
        actor: &Actor,
        user: &User,
        label: &str,
    ) -> Result<(AppPassword, String)> {
        let token = crate::disk::random_hex(32);
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                "INSERT INTO app_passwords (user_id, label, token_hash) VALUES ($1, $2, $3) RETURNING id",
                &[&user.id.0, &label, &token_hash(&token)],
            )
            .await?;
        audit(&client, Some(user.id), actor, "app_password.create", None, Some(label), now).await?;
        Ok((
            AppPassword { id: row.get(0), label: label.to_owned(), created_at: now, last_used_at: None },
            token,
        ))
    }

    /// Sign in with an app password / device token.
    pub async fn authenticate_token(&self, name: &str, token: &str) -> Result<User> {
        let denied = || Error::new(ErrorKind::Unauthenticated, "wrong user name or password");
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                "UPDATE app_passwords a SET last_used_at = now() FROM users u
                 WHERE a.token_hash = $2 AND u.id = a.user_id AND u.name = $1
                 RETURNING u.id, u.name, u.is_admin, u.disabled, u.quota_bytes, u.cred_epoch",
                &[&name, &token_hash(token)],
            )
            .await?
            .ok_or_else(denied)?;
        let user = user_from_row(&row)?;
        if user.disabled {
            return Err(denied());
        }
        Ok(user)
    }

    /// The user's app passwords.
    pub async fn list_app_passwords(&self, user: &User) -> Result<Vec<AppPassword>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT id, label, (extract(epoch from created_at) * 1e9)::BIGINT,
                        (extract(epoch from last_used_at) * 1e9)::BIGINT
                 FROM app_passwords WHERE user_id = $1 ORDER BY id",
                &[&user.id.0],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AppPassword {
                id: r.get(0),
                label: r.get(1),
                created_at: Timestamp(r.get(2)),
                last_used_at: r.get::<_, Option<i64>>(3).map(Timestamp),
            })
            .collect())
    }

    /// Revoke one of the user's app passwords.
    pub async fn revoke_app_password(&self, actor: &Actor, user: &User, id: i64) -> Result<()> {
        let client = self.inner.pool.get().await?;
        let n = client
            .cexecute("DELETE FROM app_passwords WHERE id = $1 AND user_id = $2", &[&id, &user.id.0])
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("app password {id}")));
        }
        client.cexecute("UPDATE users SET cred_epoch = cred_epoch + 1 WHERE id = $1", &[&user.id.0]).await?;
        self.credentials_committed();
        crate::notify::credentials_changed(&client, user.id).await?;
        audit(
            &client,
            Some(user.id),
            actor,
            "app_password.revoke",
            None,
            Some(&id.to_string()),
            self.clock().now(),
        )
        .await?;
        Ok(())
    }

    /// Revoke the user's app password whose secret is `token` (a client signing itself out).
    /// `false` if `token` is not one of the user's app passwords.
    pub async fn revoke_app_password_secret(&self, actor: &Actor, user: &User, token: &str) -> Result<bool> {
        let client = self.inner.pool.get().await?;
        let id: Option<i64> = client
            .cquery_opt(
                "SELECT id FROM app_passwords WHERE user_id = $1 AND token_hash = $2",
                &[&user.id.0, &token_hash(token)],
            )
            .await?
            .map(|r| r.get(0));
        drop(client);
        match id {
            Some(id) => self.revoke_app_password(actor, user, id).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Record a failed sign-in (the front ends throttle; this keeps the trail).
    pub async fn audit_auth_failure(&self, actor: &Actor, name: &str) -> Result<()> {
        let client = self.inner.pool.get().await?;
        let user: Option<i64> =
            client.cquery_opt("SELECT id FROM users WHERE name = $1", &[&name]).await?.map(|r| r.get(0));
        audit(
            &client,
            user.map(UserId),
            actor,
            "auth.failure",
            None,
            Some(&format!("user {name:?}")),
            self.clock().now(),
        )
        .await
    }

    /// The newest `limit` audit records, newest first: (time, actor, origin, action, path, detail).
    pub async fn audit_tail(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT at, actor, origin, action, path, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRecord {
                at: Timestamp(r.get(0)),
                actor: r.get(1),
                origin: r.get(2),
                action: r.get(3),
                path: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }
}

/// One line of the audit log.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// Through which front end.
    pub origin: String,
    /// What (`file.write`, `delete`, `auth.failure`, ...).
    pub action: String,
    /// On which path, if any.
    pub path: Option<String>,
    /// More.
    pub detail: Option<String>,
}

/// An argon2id hash of a random string, verified against when the user name is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0n2Qw1Ahj6zQHbKj0XqGZb0w9pp3Ii9vWlW/1Q9kGmI";
