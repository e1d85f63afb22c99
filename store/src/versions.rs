//! Earlier contents of files: list, read, restore.

use crate::db::Cached;
use std::fs::File;

use crate::disk::layout;
use crate::intent::{DiskOp, Done};
use crate::path::VPath;
use crate::rows::{NODE_COLS, new_etag, node_for_update, node_from_row};
use crate::txn::{JournalEntry, LockSet, change, in_txn};
use crate::types::{Actor, ContentHash, ETag, FileId, Node, Timestamp, User, Version, VersionId};
use crate::{Error, ErrorKind, Result, Store, blocking};

const VERSION_COLS: &str = "id, node_id, size, mtime_ns, content_hash, etag, created_at, modified_by";

fn version_from_row(row: &tokio_postgres::Row) -> Result<Version> {
    Ok(Version {
        id: VersionId(row.get(0)),
        file_id: FileId(row.get(1)),
        size: row.get::<_, i64>(2) as u64,
        mtime: Timestamp(row.get(3)),
        content_hash: ContentHash::from_db(row.get(4))?,
        etag: ETag(row.get(5)),
        created_at: Timestamp(row.get(6)),
        author: row.get(7),
    })
}

impl Store {
    /// The earlier contents of the file at `path`, newest first.
    pub async fn versions(&self, user: &User, path: &VPath) -> Result<Vec<Version>> {
        let node = self.stat(user, path).await?;
        if node.is_dir {
            return Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder")));
        }
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                &format!(
                    "SELECT {VERSION_COLS} FROM versions WHERE node_id = $1 ORDER BY created_at DESC, id DESC"
                ),
                &[&node.id.0],
            )
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Open one earlier content of the file at `path`.
    pub async fn open_version(&self, user: &User, path: &VPath, id: VersionId) -> Result<(Version, File)> {
        let node = self.stat(user, path).await?;
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT {VERSION_COLS} FROM versions WHERE id = $1 AND node_id = $2 AND user_id = $3"
                ),
                &[&id.0, &node.id.0, &user.id.0],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("version {id} of {path}")))?;
        let version = version_from_row(&row)?;
        self.check_version_intact(id, path)?;
        let rel = layout::version_blob(&user.name, id);
        let store = self.clone();
        let file = blocking(move || {
            store.inner.disk.open_read(&rel).map_err(|e| Error::io(format!("open {rel}"), e))
        })
        .await?;
        Ok((version, file))
    }

    /// Make version `id` the current content of `path` again. The content it replaces becomes
    /// a version itself, so nothing is lost; both moves are renames.
    pub async fn restore_version(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        id: VersionId,
    ) -> Result<Node> {
        change!(self, [store, actor, user, path], now, LockSet::Path(user.id, &path), |tx, cx| {
            let node = node_for_update(&tx, user.id, &path).await?.ok_or_else(|| Error::not_found(&path))?;
            if node.is_dir {
                return Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder")));
            }
            let row = tx
                .cquery_opt(
                    &format!("SELECT {VERSION_COLS} FROM versions WHERE id = $1 AND node_id = $2 FOR UPDATE"),
                    &[&id.0, &node.id.0],
                )
                .await?
                .ok_or_else(|| Error::not_found(format!("version {id} of {path}")))?;
            let version = version_from_row(&row)?;
            store.check_version_intact(id, &path)?;
            cx.fx.keep_versions.push(id);
            store.keep_as_version(cx, &node).await?;
            // The restored content stops being a version: its bytes move from the
            // version count to the file count.
            tx.cexecute("DELETE FROM versions WHERE id = $1", &[&id.0]).await?;
            cx.fx.usage_delta -= version.size as i64;
            cx.fx.usage_delta += version.size as i64 - node.size as i64;
            let row = tx
                .cquery_one(
                    &format!(
                        "UPDATE nodes SET size = $2, mtime_ns = $3, content_hash = $4, etag = $5
                         WHERE id = $1 RETURNING {NODE_COLS}"
                    ),
                    &[
                        &node.id.0,
                        &(version.size as i64),
                        &version.mtime.0,
                        &&version.content_hash.0[..],
                        &new_etag().0,
                    ],
                )
                .await?;
            let restored = node_from_row(&row)?;
            cx.fx.ops.push(DiskOp::rename(
                layout::version_blob(&user.name, id),
                layout::user_path(&user.name, &path),
                Done::FromMissing,
            ));
            cx.fx.touch(&path);
            cx.fx.journal.push(JournalEntry::for_node("modify", &restored));
            cx.fx.audit.push(("version.restore", Some(path.to_string()), Some(format!("version {id}"))));
            restored
        })
    }
}
