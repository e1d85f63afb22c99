//! The trash: list, restore, purge.

use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{DiskOp, Done};
use crate::ops::ensure_dirs;
use crate::path::VPath;
use crate::rows::purge_trash_item;
use crate::rows::{NODE_COLS, node_for_update, node_from_row};
use crate::txn::{JournalEntry, LockSet, change, in_txn};
use crate::types::{Actor, FileId, Node, Timestamp, TrashId, TrashItem, User};
use crate::{Error, ErrorKind, Result, Store};

impl Store {
    /// The user's trash, newest first.
    pub async fn trash_list(&self, user: &User) -> Result<Vec<TrashItem>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT id, node_id, orig_path, is_dir, size, deleted_at FROM trash WHERE user_id = $1
                 ORDER BY deleted_at DESC, id DESC",
                &[&user.id.0],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TrashItem {
                    id: TrashId(r.get(0)),
                    file_id: FileId(r.get(1)),
                    orig_path: VPath::from_db(r.get(2))?,
                    is_dir: r.get(3),
                    size: r.get::<_, i64>(4) as u64,
                    deleted_at: Timestamp(r.get(5)),
                })
            })
            .collect()
    }

    /// Put a trash item back where it was (or at `to`), with its file ids. Missing parent
    /// folders are recreated; an occupied target is refused.
    pub async fn trash_restore(
        &self,
        actor: &Actor,
        user: &User,
        id: TrashId,
        to: Option<VPath>,
    ) -> Result<Node> {
        change!(self, [store, actor, user], now, LockSet::Tree(user.id), |tx, cx| {
            let row = tx
                .cquery_opt(
                    "SELECT orig_path, node_id, deleted_at FROM trash WHERE id = $1 AND user_id = $2 FOR UPDATE",
                    &[&id.0, &user.id.0],
                )
                .await?
                .ok_or_else(|| Error::not_found(format!("trash item {id}")))?;
            let orig = VPath::from_db(row.get(0))?;
            let node_id: i64 = row.get(1);
            let target = to.clone().unwrap_or_else(|| orig.clone());
            if target.is_root() {
                return Err(Error::new(ErrorKind::InvalidPath, "cannot restore onto the root"));
            }
            if node_for_update(&tx, user.id, &target).await?.is_some() {
                return Err(Error::new(ErrorKind::AlreadyExists, format!("{target} already exists")));
            }
            store.check_vault_restore(cx, &target, &orig, Timestamp(row.get(2))).await?;
            let parent = ensure_dirs(cx, &target.parent().unwrap_or_else(VPath::root)).await?;
            tx.cexecute(
                "UPDATE nodes SET trash_id = NULL, path = $3 || substr(path, char_length($2) + 1) WHERE trash_id = $1",
                &[&id.0, &orig.as_str(), &target.as_str()],
            )
            .await?;
            let row = tx
                .cquery_one(
                    &format!(
                        "UPDATE nodes SET parent_id = $2, name = $3 WHERE id = $1 RETURNING {NODE_COLS}"
                    ),
                    &[&node_id, &parent.0, &target.name()],
                )
                .await?;
            let node = node_from_row(&row)?;
            tx.cexecute("DELETE FROM trash WHERE id = $1", &[&id.0]).await?;
            cx.fx.touch(&target);
            cx.fx.journal.push(JournalEntry::for_node("create", &node));
            cx.fx.ops.push(DiskOp::rename(
                format!("{}/{}", layout::trash_dir(&user.name), id),
                layout::user_path(&user.name, &target),
                Done::FromMissing,
            ));
            cx.fx.audit.push(("trash.restore", Some(target.to_string()), Some(format!("trash item {id}"))));
            node
        })
    }

    /// Delete trash items for good: one, or (with `None`) all. Returns the bytes freed.
    pub async fn trash_purge(&self, actor: &Actor, user: &User, id: Option<TrashId>) -> Result<u64> {
        change!(self, [store, actor, user], now, LockSet::Tree(user.id), |tx, cx| {
            let ids: Vec<i64> = match id {
                Some(id) => {
                    let found = tx
                        .cquery_opt(
                            "SELECT id FROM trash WHERE id = $1 AND user_id = $2",
                            &[&id.0, &user.id.0],
                        )
                        .await?;
                    vec![found.ok_or_else(|| Error::not_found(format!("trash item {id}")))?.get(0)]
                }
                None => tx
                    .cquery("SELECT id FROM trash WHERE user_id = $1", &[&user.id.0])
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            };
            let mut freed = 0i64;
            for tid in &ids {
                freed += purge_trash_item(&tx, &user.name, TrashId(*tid), &mut cx.fx.ops).await?;
            }
            cx.fx.usage_delta -= freed;
            cx.fx.audit.push(("trash.purge", None, Some(format!("{} item(s), {freed} bytes", ids.len()))));
            freed as u64
        })
    }
}
