//! Changing the tree: mkdir, delete (to the trash), rename and copy, with the rule for what is
//! already at a destination ([`Replace`]).

use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{DiskOp, Done};
use crate::ops::{free_slot, insert_copies, insert_dir, insert_empty_file, trash_files, trash_node, trashed};
use crate::path::VPath;
use crate::rows::{NODE_COLS, node_for_update, node_from_row, parent_dir, subtree};
use crate::staging::{Content, Staging};
use crate::txn::{Change, JournalEntry, LockSet, Locked, Tx, change, close, in_txn};
use crate::types::{Actor, ETag, FileId, Node, TrashId, User};
use crate::{Error, ErrorKind, Result, Store, blocking, detached};

/// What a move or copy does with something already at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Nothing: an existing destination is `AlreadyExists` (WebDAV `Overwrite: F`).
    Nothing,
    /// Whatever is there, a folder with everything in it; it goes to the trash (WebDAV
    /// `Overwrite: T`).
    Anything,
    /// As POSIX `rename(2)`: a file replaces a file and a folder an empty folder; a folder onto
    /// a file is `NotADirectory`, a file onto a folder `IsADirectory`, a folder onto a folder
    /// with entries `NotEmpty`. Checked under the tree lock, so an entry that arrives meanwhile
    /// either makes the move fail or comes after it, never goes to the trash with the folder.
    Posix,
}

impl Replace {
    /// [`Replace::Anything`] if `overwrite`, else [`Replace::Nothing`] (WebDAV's `Overwrite`).
    pub fn overwrite(overwrite: bool) -> Replace {
        if overwrite { Replace::Anything } else { Replace::Nothing }
    }

    /// Whether `src` may replace `existing` at `to`, read in `tx` under the tree lock.
    async fn check(self, tx: &Tx<'_>, src_is_dir: bool, existing: &Node, to: &VPath) -> Result<()> {
        match self {
            Replace::Anything => Ok(()),
            Replace::Nothing => Err(Error::new(ErrorKind::AlreadyExists, format!("{to} already exists"))),
            Replace::Posix => match (src_is_dir, existing.is_dir) {
                (false, false) => Ok(()),
                (true, false) => Err(Error::new(ErrorKind::NotADirectory, format!("{to} is not a folder"))),
                (false, true) => Err(Error::new(ErrorKind::IsADirectory, format!("{to} is a folder"))),
                (true, true) => must_be_empty(tx, existing).await,
            },
        }
    }
}

/// `NotEmpty` unless the folder `dir` has no live entries (read in `tx`, under the tree lock).
async fn must_be_empty(tx: &Tx<'_>, dir: &Node) -> Result<()> {
    let row = tx
        .cquery_one(
            "SELECT EXISTS (SELECT 1 FROM nodes WHERE parent_id = $1 AND trash_id IS NULL)",
            &[&dir.id.0],
        )
        .await?;
    match row.get::<_, bool>(0) {
        true => Err(Error::new(ErrorKind::NotEmpty, format!("{} is not empty", dir.path))),
        false => Ok(()),
    }
}

impl Store {
    /// Create the folder at `path`; its parent must exist.
    pub async fn mkdir(&self, actor: &Actor, user: &User, path: &VPath) -> Result<Node> {
        self.create_entry(actor, user, path, true, None, None).await
    }

    /// [`Store::mkdir`] with permission bits (the FUSE mount's `mkdir`).
    pub async fn mkdir_mode(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        mode: Option<u32>,
    ) -> Result<Node> {
        self.create_entry(actor, user, path, true, mode, None).await
    }

    /// A new empty file or folder at `path`, with optional permission bits (and a reserved id
    /// for a file).
    pub(crate) async fn create_entry(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        is_dir: bool,
        mode: Option<u32>,
        id: Option<FileId>,
    ) -> Result<Node> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::AlreadyExists, "the root exists"));
        }
        change!(self, [store, actor, user, path], now, LockSet::Path(user.id, &path), |tx, cx| {
            let parent = free_slot(&tx, user.id, &path).await?;
            store.check_vault_entry(cx, &path, is_dir, None).await?;
            let node = match is_dir {
                true => insert_dir(cx, parent, &path, mode).await?,
                false => insert_empty_file(cx, id, parent, &path, mode).await?,
            };
            cx.fx.audit.push(match is_dir {
                true => ("dir.create", Some(path.to_string()), None),
                false => ("file.write", Some(path.to_string()), Some("0 bytes".to_owned())),
            });
            node
        })
    }

    /// Move the file or folder at `path` (with everything below it) to the trash.
    pub async fn delete(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        if_match: Option<ETag>,
    ) -> Result<TrashId> {
        self.delete_node(actor, user, path, if_match, false).await
    }

    /// Remove the empty folder at `path` (to the trash, as any delete; POSIX `rmdir`): a file is
    /// `NotADirectory`, a folder with entries `NotEmpty`. Checked under the tree lock, so an
    /// entry that arrives meanwhile either makes this fail or comes after it.
    pub async fn remove_dir(&self, actor: &Actor, user: &User, path: &VPath) -> Result<TrashId> {
        self.delete_node(actor, user, path, None, true).await
    }

    async fn delete_node(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        if_match: Option<ETag>,
        empty_dir: bool,
    ) -> Result<TrashId> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::PermissionDenied, "the root cannot be deleted"));
        }
        change!(self, [store, actor, user, path], now, LockSet::Tree(user.id), |tx, cx| {
            let node = node_for_update(&tx, user.id, &path).await?.ok_or_else(|| Error::not_found(&path))?;
            if let Some(tag) = &if_match
                && tag != &node.etag
            {
                return Err(Error::new(ErrorKind::PreconditionFailed, "the file has changed (etag)"));
            }
            if empty_dir {
                if !node.is_dir {
                    return Err(Error::new(ErrorKind::NotADirectory, format!("{path} is not a folder")));
                }
                must_be_empty(&tx, &node).await?;
            }
            let tid = trash_node(cx, &node).await?;
            cx.fx.audit.push(("delete", Some(path.to_string()), Some(format!("trash item {tid}"))));
            tid
        })
    }

    /// Move the files at `paths` to the trash in one transaction (the FUSE mount's unlinks,
    /// issued in a row and carried out behind them). Each path gets its own answer: its trash
    /// item, `NotFound`, or `IsADirectory` (nothing done for it); an error for the whole
    /// transaction leaves every file where it was.
    pub async fn delete_files(
        &self,
        actor: &Actor,
        user: &User,
        paths: Vec<VPath>,
    ) -> Result<Vec<Result<TrashId>>> {
        change!(self, [store, actor, user], now, LockSet::Tree(user.id), |tx, cx| {
            // Every file's row in one statement, then every move to the trash in another.
            let wanted: Vec<&str> = paths.iter().map(|p| p.as_str()).collect();
            let rows = tx
                .cquery(
                    &format!(
                        // Each path by its full key, then the rows by id: as `path =
                        // ANY($2)`, the generic plan scans all the user's nodes.
                        "SELECT {NODE_COLS} FROM nodes WHERE id = ANY(ARRAY(
                             SELECT (SELECT id FROM nodes WHERE user_id = $1 AND path = a.p AND trash_id IS NULL)
                             FROM unnest($2::text[]) AS a(p)))
                         FOR UPDATE"
                    ),
                    &[&user.id.0, &wanted],
                )
                .await?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let n = node_from_row(row)?;
                found.insert(n.path.as_str().to_owned(), n);
            }
            let mut answers: Vec<Result<TrashId>> = Vec::with_capacity(paths.len());
            let mut doomed = Vec::new();
            // A path named twice is found once: the second time it is already gone.
            for path in &paths {
                match found.remove(path.as_str()) {
                    None => answers.push(Err(Error::not_found(path))),
                    Some(n) if n.is_dir => {
                        answers.push(Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder"))))
                    }
                    Some(n) => {
                        doomed.push((answers.len(), n));
                        answers.push(Ok(TrashId(0)));
                    }
                }
            }
            for (tid, (i, n)) in trash_files(&tx, &user, &doomed, now).await?.into_iter().zip(&doomed) {
                trashed(cx, n, tid);
                cx.fx.audit.push(("delete", Some(n.path.to_string()), Some(format!("trash item {tid}"))));
                answers[*i] = Ok(tid);
            }
            answers
        })
    }

    /// Move or rename `from` to `to`. An existing `to` is replaced (and goes to the trash) as
    /// `replace` allows. File ids are kept.
    pub async fn rename(
        &self,
        actor: &Actor,
        user: &User,
        from: &VPath,
        to: &VPath,
        replace: Replace,
    ) -> Result<Node> {
        check_move(from, to)?;
        change!(self, [store, actor, user, from, to], now, LockSet::Tree(user.id), |tx, cx| {
            let src = node_for_update(&tx, user.id, &from).await?.ok_or_else(|| Error::not_found(&from))?;
            let parent = parent_dir(&tx, user.id, &to).await?;
            store.check_vault_entry(cx, &to, src.is_dir, Some(&from)).await?;
            if let Some(existing) = node_for_update(&tx, user.id, &to).await? {
                replace.check(&tx, src.is_dir, &existing, &to).await?;
                trash_node(cx, &existing).await?;
            }
            tx.cexecute(
                concat!(
                    "UPDATE nodes SET path = $3 || substr(path, char_length($2) + 1)
                     WHERE user_id = $1 AND trash_id IS NULL AND ",
                    subtree!()
                ),
                &[&user.id.0, &from.as_str(), &to.as_str()],
            )
            .await?;
            let row = tx
                .cquery_one(
                    &format!(
                        "UPDATE nodes SET parent_id = $2, name = $3 WHERE id = $1 RETURNING {NODE_COLS}"
                    ),
                    &[&src.id.0, &parent.0, &to.name()],
                )
                .await?;
            let node = node_from_row(&row)?;
            // Locks belong to the source's URLs and do not travel with a move (RFC 4918 §7.5).
            tx.cexecute(
                concat!("DELETE FROM locks WHERE user_id = $1 AND ", subtree!()),
                &[&user.id.0, &from.as_str()],
            )
            .await?;
            cx.fx.touch(&from);
            cx.fx.touch(&to);
            let mut j = JournalEntry::for_node("move", &node);
            j.old_path = Some(from.clone());
            cx.fx.journal.push(j);
            cx.fx.ops.push(DiskOp::rename(
                layout::user_path(&user.name, &from),
                layout::user_path(&user.name, &to),
                Done::FromMissing,
            ));
            cx.fx.audit.push(("move", Some(from.to_string()), Some(format!("to {to}"))));
            node
        })
    }

    /// Copy `from` (a file, or a folder with everything below it) to `to`. New ids for the
    /// copies. An existing file at `to` keeps its id and its old content becomes a version; an
    /// existing folder goes to the trash. Both as `replace` allows.
    pub async fn copy(
        &self,
        actor: &Actor,
        user: &User,
        from: &VPath,
        to: &VPath,
        replace: Replace,
    ) -> Result<Node> {
        check_move(from, to)?;
        let (store, actor, user, from, to) =
            (self.clone(), actor.clone(), user.clone(), from.clone(), to.clone());
        detached(async move {
            let now = store.clock().now();
            let mut locked = Locked::acquire(&store, LockSet::Tree(user.id)).await?;
            // Under the tree lock nothing changes below `from`: stage the copy, then commit it.
            let res = async {
                let rows = locked
                    .client()
                    .cquery(
                        &format!(
                            concat!(
                                "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL AND ",
                                subtree!(),
                                " ORDER BY path"
                            ),
                            NODE_COLS = NODE_COLS
                        ),
                        &[&user.id.0, &from.as_str()],
                    )
                    .await?;
                let nodes: Vec<Node> = rows.iter().map(node_from_row).collect::<Result<_>>()?;
                let Some(root) = nodes.first().cloned() else { return Err(Error::not_found(&from)) };
                // A copy of damaged bytes would carry the good hash: refused like a read.
                for n in nodes.iter().filter(|n| !n.is_dir) {
                    store.check_intact(n)?;
                }
                let staged = store.stage_copy(&user, &from, &nodes).await?;
                let cleanup = Staging { store: store.clone(), rel: Some(staged.cleanup.clone()) };
                let tx = locked.start_tx().await?;
                let mut cx = Change::new(&tx, &user, now);
                let parent = parent_dir(&tx, user.id, &to).await?;
                let existing = node_for_update(&tx, user.id, &to).await?;
                if let Some(target) = &existing {
                    replace.check(&tx, root.is_dir, target, &to).await?;
                }
                let node = match existing {
                    Some(target) if !target.is_dir && !root.is_dir => {
                        let content = Content {
                            staging: staged.content.clone(),
                            size: root.size,
                            mtime: root.mtime,
                            hash: root.content_hash.ok_or_else(|| Error::internal("file without hash"))?,
                            logged: None,
                        };
                        store
                            .put_content(&mut cx, &actor.name, &to, parent, Some(target), &content, true)
                            .await?
                            .node
                    }
                    existing => {
                        store.check_vault_entry(&cx, &to, root.is_dir, Some(&from)).await?;
                        if let Some(target) = existing {
                            trash_node(&mut cx, &target).await?;
                        }
                        insert_copies(&mut cx, &from, &to, parent, &nodes).await?
                    }
                };
                cx.fx.ops.push(DiskOp::rename(
                    &staged.content,
                    layout::user_path(&user.name, &to),
                    Done::FromMissing,
                ));
                if staged.cleanup != staged.content {
                    cx.fx.ops.push(DiskOp::Remove { path: staged.cleanup.clone() });
                }
                cx.fx.touch(&to);
                cx.fx.audit.push(("copy", Some(from.to_string()), Some(format!("to {to}"))));
                let intent = close(&store, &tx, &user, &actor, cx.fx, now).await?;
                Ok((node, intent, cleanup))
            }
            .await;
            match res {
                Ok((node, intent, mut cleanup)) => {
                    // The staged copy belongs to the intent from the commit on.
                    cleanup.rel = None;
                    locked.commit(&store, intent.as_slice()).await?;
                    locked.finish(&store, intent).await?;
                    Ok(node)
                }
                Err(e) => {
                    let _ = locked.finish(&store, None).await;
                    Err(e)
                }
            }
        })
        .await
    }

    /// Copy the listed nodes (a subtree as in the database, parents first) into staging.
    async fn stage_copy(&self, user: &User, from: &VPath, nodes: &[Node]) -> Result<StagedCopy> {
        let store = self.clone();
        let user_name = user.name.clone();
        let from = from.clone();
        let nodes = nodes.to_vec();
        blocking(move || {
            let disk = &store.inner.disk;
            let root = &nodes[0];
            if !root.is_dir {
                let src = layout::user_path(&user_name, &from);
                let staged = disk.copy_to_staging(&src).map_err(|e| Error::io(format!("copy {src}"), e))?;
                return Ok(StagedCopy { content: staged.clone(), cleanup: staged });
            }
            let dir = disk.create_staging_dir().map_err(|e| Error::io("staging", e))?;
            let base = format!("{dir}/c");
            for n in &nodes {
                let rel = n.path.rebase(&from, &VPath::root()).expect("subtree");
                let dst = if rel.is_root() { base.clone() } else { format!("{base}/{}", rel.as_str()) };
                if n.is_dir {
                    disk.mkdir(&dst).map_err(|e| Error::io(format!("mkdir {dst}"), e))?;
                } else {
                    let src = layout::user_path(&user_name, &n.path);
                    let staged =
                        disk.copy_to_staging(&src).map_err(|e| Error::io(format!("copy {src}"), e))?;
                    disk.rename(&staged, &dst).map_err(|e| Error::io(format!("rename to {dst}"), e))?;
                }
            }
            disk.fsync_dir(&base).map_err(|e| Error::io("fsync", e))?;
            Ok(StagedCopy { content: base, cleanup: dir })
        })
        .await
    }
}

struct StagedCopy {
    /// What to rename into place.
    content: String,
    /// What to remove afterwards (the staging folder around `content`, or `content` itself).
    cleanup: String,
}

fn check_move(from: &VPath, to: &VPath) -> Result<()> {
    if from.is_root() || to.is_root() {
        return Err(Error::new(ErrorKind::PermissionDenied, "the root cannot be moved or replaced"));
    }
    if from == to {
        return Err(Error::new(ErrorKind::Conflict, "source and destination are the same"));
    }
    if to.starts_with(from) {
        return Err(Error::new(ErrorKind::Conflict, "cannot move or copy a folder into itself"));
    }
    if from.starts_with(to) {
        return Err(Error::new(ErrorKind::Conflict, "cannot replace a folder with something inside it"));
    }
    Ok(())
}
