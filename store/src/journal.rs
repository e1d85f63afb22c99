//! Reading the per-user change journal. Sequence numbers are handed out under the user's row
//! lock at commit, so a reader that has seen `seq = n` has seen every change up to `n`.

use crate::db::Cached;
use crate::error::{Error, ErrorKind};
use crate::path::VPath;
use crate::types::{ContentHash, ETag, FileId, Origin, Timestamp, User};
use crate::{Result, Store};

/// One change to a user's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The cursor after this change.
    pub seq: i64,
    /// When it committed.
    pub at: Timestamp,
    /// `create`, `modify`, `move` or `delete`.
    pub kind: String,
    /// The file or folder.
    pub file_id: FileId,
    /// Folder or file.
    pub is_dir: bool,
    /// Where it is now (for `delete`: where it was).
    pub path: VPath,
    /// For `move`: where it was.
    pub old_path: Option<VPath>,
    /// New size (files).
    pub size: Option<u64>,
    /// New etag.
    pub etag: Option<ETag>,
    /// New content hash (files).
    pub content_hash: Option<ContentHash>,
    /// The front end that made the change (`None` for changes recorded before it was kept).
    pub origin: Option<Origin>,
}

impl Store {
    /// The newest cursor of `user`'s journal (0 before any change).
    pub async fn journal_cursor(&self, user: &User) -> Result<i64> {
        let client = self.inner.pool.get().await?;
        Ok(client.cquery_one("SELECT journal_seq FROM users WHERE id = $1", &[&user.id.0]).await?.get(0))
    }

    /// Up to `limit` changes after cursor `after`, oldest first.
    pub async fn changes(&self, user: &User, after: i64, limit: i64) -> Result<Vec<Change>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT seq, at, kind, node_id, is_dir, path, old_path, size, etag, content_hash, origin FROM journal
                 WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&user.id.0, &after, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Change {
                    seq: r.get(0),
                    at: Timestamp(r.get(1)),
                    kind: r.get(2),
                    file_id: FileId(r.get(3)),
                    is_dir: r.get(4),
                    path: VPath::from_db(r.get(5))?,
                    old_path: r.get::<_, Option<String>>(6).map(VPath::from_db).transpose()?,
                    size: r.get::<_, Option<i64>>(7).map(|s| s as u64),
                    etag: r.get::<_, Option<String>>(8).map(ETag),
                    content_hash: r.get::<_, Option<&[u8]>>(9).map(ContentHash::from_db).transpose()?,
                    origin: r.get::<_, Option<&str>>(10).and_then(Origin::parse),
                })
            })
            .collect()
    }

    /// The change feed: up to `limit` changes after `cursor`, in order, and the cursor to ask
    /// with next. A cursor the journal no longer covers (pruned, or from before the account
    /// was recreated) is [`ErrorKind::CursorExpired`].
    pub async fn changes_since(&self, user: &User, cursor: i64, limit: i64) -> Result<ChangePage> {
        let client = self.inner.pool.get().await?;
        // Rows are inserted in the transaction that advances journal_seq, so when a snapshot
        // sees seq n it sees every row up to n.
        let row = client
            .cquery_one("SELECT journal_seq, journal_floor FROM users WHERE id = $1", &[&user.id.0])
            .await?;
        let (seq, floor): (i64, i64) = (row.get(0), row.get(1));
        drop(client);
        if cursor < floor || cursor > seq {
            return Err(Error::new(
                ErrorKind::CursorExpired,
                format!("cursor {cursor} is outside the journal ({floor}..={seq}); list everything again"),
            ));
        }
        let limit = limit.clamp(1, 10_000);
        let mut changes = self.changes(user, cursor, limit + 1).await?;
        let more = changes.len() as i64 > limit;
        changes.truncate(limit as usize);
        let next = changes.last().map_or(cursor, |c| c.seq);
        Ok(ChangePage { changes, cursor: next, more })
    }

    /// Drop journal rows older than `keep`; cursors before them then expire. Returns the rows
    /// dropped.
    pub async fn prune_journal(&self, keep: std::time::Duration) -> Result<u64> {
        let client = self.inner.pool.get().await?;
        let before = self.clock().now().0 - keep.as_nanos().min(i64::MAX as u128) as i64;
        let row = client
            .cquery_one(
                "WITH d AS (DELETE FROM journal WHERE at < $1 RETURNING user_id, seq),
                      m AS (SELECT user_id, max(seq) AS mx, count(*) AS n FROM d GROUP BY user_id),
                      u AS (UPDATE users SET journal_floor = greatest(journal_floor, m.mx)
                            FROM m WHERE users.id = m.user_id RETURNING 1)
                 SELECT coalesce(sum(n), 0)::BIGINT FROM m",
                &[&before],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}

/// One page of the change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePage {
    /// The changes, oldest first.
    pub changes: Vec<Change>,
    /// Ask with this cursor next (the last change's `seq`, or the cursor asked with).
    pub cursor: i64,
    /// More changes are waiting past this page.
    pub more: bool,
}
