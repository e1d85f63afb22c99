//! Write locks on paths (WebDAV class 2), kept in PostgreSQL so they survive restarts. `store`
//! keeps the table and its conflict rules; which request must present which token is the
//! front end's protocol business.

use crate::db::Cached;
use crate::path::VPath;
use crate::txn::audit;
use crate::types::{Actor, Timestamp, User};
use crate::{Error, ErrorKind, Result, Store};

/// One lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The lock token (an `urn:uuid:` URI).
    pub token: String,
    /// The locked path (root of the lock).
    pub path: VPath,
    /// Covers everything below `path` too.
    pub depth_infinite: bool,
    /// Exclusive (else shared).
    pub exclusive: bool,
    /// The client's owner XML, returned verbatim.
    pub owner: Option<String>,
    /// When it lapses unless refreshed.
    pub expires_at: Timestamp,
}

/// A lock request.
#[derive(Debug, Clone)]
pub struct NewLock {
    /// Cover everything below too.
    pub depth_infinite: bool,
    /// Exclusive (else shared).
    pub exclusive: bool,
    /// Owner XML.
    pub owner: Option<String>,
    /// Seconds until it lapses.
    pub timeout_secs: u64,
}

const LOCK_COLS: &str = "token, path, depth_inf, exclusive, owner_xml, expires_at";

fn lock_from_row(r: &tokio_postgres::Row) -> Result<Lock> {
    Ok(Lock {
        token: r.get(0),
        path: VPath::from_db(r.get(1))?,
        depth_infinite: r.get(2),
        exclusive: r.get(3),
        owner: r.get(4),
        expires_at: Timestamp(r.get(5)),
    })
}

/// SQL condition: lock row covers `$2` (on it, or depth-infinity on an ancestor).
const COVERS: &str = "(path = $2 OR (depth_inf AND (path = '' OR starts_with($2, path || '/'))))";
/// SQL condition: lock row is on `$2` or below it.
const BELOW: &str = "(path = $2 OR $2 = '' OR starts_with(path, $2 || '/'))";

impl Store {
    /// Live locks that cover `path` (on it, or depth-infinity on an ancestor); with `and_below`,
    /// also those on anything below it.
    pub async fn locks(&self, user: &User, path: &VPath, and_below: bool) -> Result<Vec<Lock>> {
        let client = self.inner.pool.get().await?;
        let now = self.clock().now();
        let cond = if and_below { format!("({COVERS} OR {BELOW})") } else { COVERS.to_owned() };
        let rows = client
            .cquery(
                &format!("SELECT {LOCK_COLS} FROM locks WHERE user_id = $1 AND {cond} AND expires_at > $3 ORDER BY path"),
                &[&user.id.0, &path.as_str(), &now.0],
            )
            .await?;
        rows.iter().map(lock_from_row).collect()
    }

    /// Whether the user holds any live lock at all (lets front ends skip lock checks).
    pub async fn has_locks(&self, user: &User) -> Result<bool> {
        // In the daemon, "no locks" is remembered until this process takes one (no other
        // process takes locks), saving a query on every WebDAV write.
        let generation = match self.inner.cache.lock_free(user.id) {
            Ok(()) => return Ok(false),
            Err(g) => g,
        };
        let client = self.inner.pool.get().await?;
        let now = self.clock().now();
        let has = client
            .cquery_opt(
                "SELECT 1 FROM locks WHERE user_id = $1 AND expires_at > $2 LIMIT 1",
                &[&user.id.0, &now.0],
            )
            .await?
            .is_some();
        if let (false, Some(g)) = (has, generation) {
            self.inner.cache.set_lock_free(user.id, g);
        }
        Ok(has)
    }

    /// Take a lock on `path`. Fails with `Locked` when it conflicts with a live lock (an
    /// exclusive lock conflicts with any other; shared locks only with exclusive ones).
    pub async fn lock(&self, actor: &Actor, user: &User, path: &VPath, req: NewLock) -> Result<Lock> {
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        // Serialize lock changes per user.
        tx.cexecute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user.id.0]).await?;
        tx.cexecute("DELETE FROM locks WHERE user_id = $1 AND expires_at <= $2", &[&user.id.0, &now.0])
            .await?;
        let cond = if req.depth_infinite { format!("({COVERS} OR {BELOW})") } else { COVERS.to_owned() };
        let conflicts = tx
            .cquery(
                &format!("SELECT exclusive FROM locks WHERE user_id = $1 AND {cond}"),
                &[&user.id.0, &path.as_str()],
            )
            .await?;
        if conflicts.iter().any(|r| req.exclusive || r.get::<_, bool>(0)) {
            return Err(Error::new(ErrorKind::Locked, format!("{path} is locked")));
        }
        let token = format!("urn:uuid:{}", uuid_v4());
        let expires =
            Timestamp(now.0.saturating_add((req.timeout_secs as i64).saturating_mul(1_000_000_000)));
        let row = tx
            .cquery_one(
                &format!(
                    "INSERT INTO locks (token, user_id, path, depth_inf, exclusive, owner_xml, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {LOCK_COLS}"
                ),
                &[
                    &token,
                    &user.id.0,
                    &path.as_str(),
                    &req.depth_infinite,
                    &req.exclusive,
                    &req.owner,
                    &expires.0,
                ],
            )
            .await?;
        audit(&tx, Some(user.id), actor, "lock", Some(&path.to_string()), None, now).await?;
        tx.commit().await?;
        // Before the lock is acknowledged: from here on, writes check it.
        self.inner.cache.lock_taken(user.id);
        lock_from_row(&row)
    }

    /// Extend the lock `token`, which must cover `path`.
    pub async fn refresh_lock(
        &self,
        user: &User,
        path: &VPath,
        token: &str,
        timeout_secs: u64,
    ) -> Result<Lock> {
        let now = self.clock().now();
        let expires = Timestamp(now.0.saturating_add((timeout_secs as i64).saturating_mul(1_000_000_000)));
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "UPDATE locks SET expires_at = $4 WHERE user_id = $1 AND token = $3 AND {COVERS} AND expires_at > $5
                     RETURNING {LOCK_COLS}"
                ),
                &[&user.id.0, &path.as_str(), &token, &expires.0, &now.0],
            )
            .await?
            .ok_or_else(|| Error::new(ErrorKind::PreconditionFailed, "no such lock on this resource"))?;
        lock_from_row(&row)
    }

    /// Remove the lock `token`, which must cover `path` and belong to `user`.
    pub async fn unlock(&self, actor: &Actor, user: &User, path: &VPath, token: &str) -> Result<()> {
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let n = client
            .cexecute(
                &format!("DELETE FROM locks WHERE user_id = $1 AND token = $3 AND {COVERS}"),
                &[&user.id.0, &path.as_str(), &token],
            )
            .await?;
        if n == 0 {
            return Err(Error::new(ErrorKind::Conflict, "no such lock on this resource"));
        }
        audit(&client, Some(user.id), actor, "unlock", Some(&path.to_string()), None, now).await?;
        Ok(())
    }
}

/// A random (version 4) UUID, as text.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}
