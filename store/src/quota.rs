//! How much a user may still write: the quota less usage and reservations, with versions and
//! trash as room, and the bytes of new files between their close and their commit.

use crate::db::Cached;
use crate::types::{User, UserId, room};
use crate::{Result, Store};

/// Bytes of a new file between its close and its commit, counted against its user's quota
/// (see [`Store::write_limit`]) while they are in neither the usage nor a draft.
pub(crate) struct Committing {
    store: Store,
    user: UserId,
    bytes: u64,
}

impl Committing {
    pub(crate) fn new(store: &Store, user: UserId, bytes: u64) -> Committing {
        *store.inner.committing.lock().unwrap_or_else(|e| e.into_inner()).entry(user).or_default() += bytes;
        Committing { store: store.clone(), user, bytes }
    }
}

impl Drop for Committing {
    fn drop(&mut self) {
        let mut all = self.store.inner.committing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = all.get_mut(&self.user) {
            *n -= self.bytes.min(*n);
            if *n == 0 {
                all.remove(&self.user);
            }
        }
    }
}

impl Store {
    /// Most bytes a write may bring now ([`room`], from the database and the bytes committing).
    /// `None`: no limit.
    pub(crate) async fn write_limit(&self, user: &User, replaced: u64) -> Result<Option<u64>> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                "SELECT quota_bytes, used_bytes,
                        (SELECT coalesce(sum(size), 0)::BIGINT FROM versions WHERE user_id = $1)
                      + (SELECT coalesce(sum(size), 0)::BIGINT FROM trash WHERE user_id = $1),
                        (SELECT coalesce(sum(length), 0)::BIGINT FROM uploads WHERE user_id = $1 AND expires_at > $2)
                      + (SELECT coalesce(sum(greatest(total_length, received)), 0)::BIGINT FROM chunked_uploads WHERE user_id = $1 AND expires_at > $2)
                 FROM users WHERE id = $1",
                &[&user.id.0, &self.clock().now().0],
            )
            .await?;
        let Some(quota) = row.get::<_, Option<i64>>(0) else { return Ok(None) };
        let bytes = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        // New files closed through the mount and not yet committed count as used; resumable
        // uploads in progress have their length reserved.
        let used = bytes(1) + self.committing(user.id);
        Ok(Some(room(quota.max(0) as u64, used, bytes(2), bytes(3), replaced)))
    }

    /// Bytes of `user`'s new files closed and not yet committed.
    pub(crate) fn committing(&self, user: UserId) -> u64 {
        self.inner.committing.lock().unwrap_or_else(|e| e.into_inner()).get(&user).copied().unwrap_or(0)
    }
}
