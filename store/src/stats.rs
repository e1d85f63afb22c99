//! What the server's operators watch (read by `/metrics` and `/readyz`): the database's and
//! the data directory's state, and totals over all users. Each call is one cheap query or a few
//! system calls; callers cache the totals between scrapes.

use std::time::Duration;

use crate::db::Cached;
use crate::disk::FsState;
use crate::{Error, ErrorKind, Result, Store};

/// Totals over all users.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Accounts.
    pub users: u64,
    /// Accounts with a quota that have used 90 % of it or more.
    pub users_near_quota: u64,
    /// Bytes of current files, all users.
    pub used_bytes: u64,
    /// Bytes kept as earlier versions.
    pub version_bytes: u64,
    /// Bytes in the trash.
    pub trash_bytes: u64,
    /// Resumable and chunked uploads not yet finished.
    pub uploads_in_progress: u64,
    /// The integrity scrub: a pass is under way.
    pub scrub_running: bool,
    /// Bytes the pass under way has verified.
    pub scrub_pass_bytes: u64,
    /// The end of the last complete pass, or when scrubbing became due if none has completed.
    pub scrub_last_completed_ns: i64,
    /// Damaged contents found, ever (repaired or not).
    pub scrub_corruptions: u64,
    /// Files and versions the last complete pass found missing on disk.
    pub scrub_missing: u64,
    /// Damaged contents still quarantined.
    pub scrub_quarantined: u64,
}

/// The database connection pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    /// Connections open.
    pub open: u64,
    /// Of those, idle.
    pub idle: u64,
    /// The most it opens.
    pub max: u64,
    /// Requests waiting for a connection.
    pub waiting: u64,
}

pub use crate::disk::FsState as DataDirState;

impl Store {
    /// The database answers within `limit`.
    pub async fn ping_within(&self, limit: Duration) -> Result<()> {
        match tokio::time::timeout(limit, self.ping()).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::new(ErrorKind::Database, format!("the database did not answer within {limit:?}")))
            }
        }
    }

    /// The data directory's filesystem: space, inodes, and whether it takes writes (an empty
    /// file is created and removed).
    pub fn data_dir_state(&self) -> Result<FsState> {
        self.inner.disk.fs_state().map_err(|e| Error::io("statvfs", e))
    }

    /// The connection pool's state.
    pub fn pool_state(&self) -> PoolState {
        let s = self.inner.pool.status();
        PoolState {
            open: s.size as u64,
            idle: s.available as u64,
            max: s.max_size as u64,
            waiting: s.waiting as u64,
        }
    }

    /// Totals over all users (one query).
    pub async fn totals(&self) -> Result<Totals> {
        let client = self.inner.pool.get().await?;
        let now = self.clock().now();
        let row = client
            .cquery_one(
                "SELECT (SELECT count(*) FROM users),
                        (SELECT count(*) FROM users WHERE quota_bytes > 0 AND used_bytes * 10 >= quota_bytes * 9),
                        (SELECT coalesce(sum(used_bytes), 0)::BIGINT FROM users),
                        (SELECT coalesce(sum(size), 0)::BIGINT FROM versions),
                        (SELECT coalesce(sum(size), 0)::BIGINT FROM trash),
                        (SELECT count(*) FROM uploads WHERE expires_at > $1)
                      + (SELECT count(*) FROM chunked_uploads WHERE expires_at > $1),
                        s.pass_started IS NOT NULL, s.bytes_done, coalesce(s.last_missing, 0), coalesce(s.last_completed, s.since),
                        (SELECT count(*) FROM scrub_findings),
                        (SELECT count(*) FROM scrub_findings WHERE state = 'quarantined')
                 FROM scrub_state s",
                &[&now.0],
            )
            .await?;
        let n = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        Ok(Totals {
            users: n(0),
            users_near_quota: n(1),
            used_bytes: n(2),
            version_bytes: n(3),
            trash_bytes: n(4),
            uploads_in_progress: n(5),
            scrub_running: row.get(6),
            scrub_pass_bytes: n(7),
            scrub_missing: n(8),
            scrub_last_completed_ns: row.get(9),
            scrub_corruptions: n(10),
            scrub_quarantined: n(11),
        })
    }
}
