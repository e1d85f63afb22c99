//! Files and folders: stat, list, read, and the mutations (write, mkdir, delete, move, copy).
//!
//! [`Store::write`] is the one routine that turns a stream into a committed file; copies and
//! restores reuse its commit step. Every mutation follows the order in ARCHITECTURE.md.

use crate::batch::Job;
use crate::db::Cached;
use std::fs::File;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::disk::{Disk, layout};
use crate::intent::{DiskOp, Done};
use crate::path::VPath;
use crate::txn::{
    Effects, JournalEntry, LockSet, Locked, NODE_COLS, Tx, close, insert_node, lock_folders_sql, new_etag,
    node_for_update, node_from_row, parent_dir,
};
use crate::types::{Actor, ContentHash, ETag, FileId, Node, Timestamp, TrashId, User, VersionId};
use crate::{Error, ErrorKind, Result, Store, blocking, detached};

/// SQL: `path` is `$2` or below it (`$2` not the root), as an index range on `(user_id, path)`
/// — from `$2` up to `$2 || '0'`, '0' being the byte after '/' — then the exact test. Written
/// as `path = $2 OR` the descendants' range, the `OR` hides the range from the planner, which
/// then reads every node of the user.
macro_rules! subtree {
    () => {
        "path >= $2 AND path < $2 || '0' AND (path = $2 OR path > $2 || '/')"
    };
}

/// Conditions and details of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Only replace a file whose current etag is this (HTTP If-Match).
    pub if_match: Option<ETag>,
    /// Only create: fail if something exists (HTTP `If-None-Match: *`).
    pub create_only: bool,
    /// The body's announced length: a larger one than the quota allows is refused before a byte
    /// is read, and a body of another length is refused.
    pub expected_len: Option<u64>,
    /// The modification time to give the file (clients preserve their local mtime).
    pub mtime: Option<Timestamp>,
    /// Create missing parent folders instead of failing with Conflict.
    pub create_parents: bool,
}

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

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// The file as it is now.
    pub node: Node,
    /// True if the file did not exist before.
    pub created: bool,
    /// The version the previous content became, if any (and if it was kept).
    pub version: Option<VersionId>,
}

/// Run a transaction under `locks`, close it (usage, journal, audit, intent), commit, carry out
/// the intent, and unlock. `$body` is evaluated inside with `$tx` bound, and yields
/// `(output, Effects)`. The optional `after_commit` block runs once the transaction is closed,
/// just before the commit is sent: from then on whatever the transaction names (its staging
/// files) belongs to its intent, whether or not the commit's answer arrives.
macro_rules! in_txn {
    ($store:expr, $locks:expr, $user:expr, $actor:expr, $now:expr, |$tx:ident| $body:expr) => {
        in_txn!($store, $locks, $user, $actor, $now, |$tx| $body, after_commit {})
    };
    ($store:expr, $locks:expr, $user:expr, $actor:expr, $now:expr, |$tx:ident| $body:expr, after_commit $after:block) => {{
        let locks = $locks;
        let mut locked = Locked::connect($store, locks).await?;
        let res = async {
            let $tx = locked.tx();
            // BEGIN and the locks travel with the body's first queries (see `Locked::open`).
            let (opened, body) = tokio::join!(locked.open(locks), async { Ok::<_, Error>($body) });
            opened?;
            let (out, fx) = body?;
            let intent = close($store, &$tx, $user, $actor, fx, $now).await?;
            Ok::<_, Error>((out, intent))
        }
        .await;
        match res {
            Ok((out, intent)) => {
                $after
                locked.commit($store).await?;
                locked.finish($store, intent).await?;
                Ok(out)
            }
            Err(e) => {
                let _ = locked.finish($store, None).await;
                Err(e)
            }
        }
    }};
}
pub(crate) use in_txn;

/// Removes a staging file unless disarmed: once a transaction that names it commits, it belongs
/// to that transaction's intent and must stay for the replay.
pub(crate) struct Staging {
    pub(crate) store: Store,
    pub(crate) rel: Option<String>,
}

impl Staging {
    /// A new, empty staging file and its guard (blocking).
    pub(crate) fn create(store: &Store) -> Result<(Staging, File)> {
        let (rel, file) = store.inner.disk.create_staging().map_err(|e| Error::io("staging", e))?;
        Ok((Staging { store: store.clone(), rel: Some(rel) }, file))
    }

    /// The staging file's name (until disarmed).
    pub(crate) fn rel(&self) -> &str {
        self.rel.as_deref().expect("a staging file until disarmed")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(rel) = self.rel.take() {
            let _ = self.store.inner.disk.remove(&rel);
        }
    }
}

impl Store {
    /// The live file or folder at `path`.
    pub async fn stat(&self, user: &User, path: &VPath) -> Result<Node> {
        let ticket = match self.inner.cache.get(user.id, path.as_str()) {
            Ok(Some(node)) => return Ok(node),
            Ok(None) => return Err(Error::not_found(path)),
            Err(ticket) => ticket,
        };
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL"
                ),
                &[&user.id.0, &path.as_str()],
            )
            .await?;
        let node = row.as_ref().map(node_from_row).transpose()?;
        if let Some(ticket) = ticket {
            self.inner.cache.put(user.id, ticket, path.as_str(), node.as_ref());
        }
        node.ok_or_else(|| Error::not_found(path))
    }

    /// The live file or folder with id `id` (only the user's own).
    pub async fn stat_id(&self, user: &User, id: FileId) -> Result<Node> {
        let ticket = match self.inner.cache.get_id(user.id, id) {
            Ok(node) => return Ok(node),
            Err(ticket) => ticket,
        };
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND id = $2 AND trash_id IS NULL"),
                &[&user.id.0, &id.0],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("file id {id}")))?;
        let node = node_from_row(&row)?;
        if let Some(ticket) = ticket {
            self.inner.cache.put(user.id, ticket, node.path.as_str(), Some(&node));
        }
        Ok(node)
    }

    /// The entries of the folder at `path`, by name.
    pub async fn list(&self, user: &User, path: &VPath) -> Result<Vec<Node>> {
        Ok(self.children(user, path).await?.as_ref().clone())
    }

    /// [`Store::list`] without the copy: the listing as the cache shares it (a PROPFIND of a
    /// 1,000-entry folder renders it and drops it).
    pub async fn children(&self, user: &User, path: &VPath) -> Result<Arc<Vec<Node>>> {
        let ticket = match self.inner.cache.get_children(user.id, path.as_str()) {
            Ok(children) => return Ok(children),
            Err(ticket) => ticket,
        };
        let dir = self.stat(user, path).await?;
        if !dir.is_dir {
            return Err(Error::new(ErrorKind::NotADirectory, format!("{path} is not a folder")));
        }
        let client = self.inner.pool.get().await?;
        // Byte order whatever the database's collation: the cache inserts into listings in it.
        let rows = client
            .cquery(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE parent_id = $1 AND trash_id IS NULL ORDER BY name COLLATE \"C\""
                ),
                &[&dir.id.0],
            )
            .await?;
        let children = Arc::new(rows.iter().map(node_from_row).collect::<Result<Vec<_>>>()?);
        if let Some(ticket) = ticket {
            self.inner.cache.put_children(user.id, ticket, &dir, &children);
        }
        Ok(children)
    }

    /// Live files and folders whose name contains `needle` (case-insensitive), by path, at most
    /// `limit` of them.
    pub async fn search(&self, user: &User, needle: &str, limit: i64) -> Result<Vec<Node>> {
        // No name contains a NUL (paths refuse control characters), and PostgreSQL text cannot
        // hold one: such a search finds nothing rather than failing in the database.
        if needle.is_empty() || needle.contains('\0') {
            return Ok(Vec::new());
        }
        let pattern = format!(
            "%{}%",
            needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        );
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL AND path <> ''
                       AND lower(name) LIKE $2 ORDER BY path LIMIT $3"
                ),
                &[&user.id.0, &pattern, &limit],
            )
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    /// The folder at `path` and everything below it, by path (for `PROPFIND Depth: infinity`).
    pub async fn list_tree(&self, user: &User, path: &VPath) -> Result<Vec<Node>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL
                       AND {} ORDER BY path",
                    // Two forms, so that a folder's subtree is an index range (see `subtree!`).
                    match path.is_root() {
                        true => "path <> $2",
                        false => "path > $2 || '/' AND path < $2 || '0'",
                    }
                ),
                &[&user.id.0, &path.as_str()],
            )
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Open the file at `path` for reading (seek for ranges). The metadata query and the open
    /// run at the same time; the database decides what exists. The file is the one its node
    /// describes (see `Reread` in this file).
    pub async fn open_file(&self, user: &User, path: &VPath) -> Result<(Node, File)> {
        let rel = layout::user_path(&user.name, path);
        let (node, file) = tokio::join!(self.stat(user, path), self.open_live(&rel));
        let (mut node, mut file) = (live_file(node?, path)?, file);
        let mut reread = Reread::new();
        loop {
            match file {
                Ok(f) if agrees(&f, &node) => return Ok((node, f)),
                Ok(f) if reread.exhausted() => return Ok((node, f)),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound || reread.exhausted() => {
                    return Err(Error::io(format!("open {rel}"), e));
                }
                _ => reread.wait().await,
            }
            node = live_file(self.stat(user, path).await?, path)?;
            file = self.open_live(&rel).await;
        }
    }

    /// Open `rel` on the blocking pool (the error as the disk gave it: `NotFound` if missing).
    async fn open_live(&self, rel: &str) -> std::io::Result<File> {
        let (store, rel) = (self.clone(), rel.to_owned());
        blocking(move || Ok(store.inner.disk.open_read(&rel)))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }

    /// Like [`Store::open_file`], with the whole content as well when the file is at most
    /// `small` bytes and its bytes are in memory: held by the store (a recently read small file
    /// whose content is unchanged; then there is no open file), or its name and its bytes in the
    /// kernel's caches. That case is served on the calling task (a small GET then costs no trip
    /// to the blocking pool); anything that would wait for the disk is opened on the pool as
    /// usual, without the bytes. Either the file or the bytes, or both, are there.
    pub async fn open_small(
        &self,
        user: &User,
        path: &VPath,
        small: u64,
    ) -> Result<(Node, Option<File>, Option<Vec<u8>>)> {
        let rel = layout::user_path(&user.name, path);
        let mut reread = Reread::new();
        loop {
            let node = live_file(self.stat(user, path).await?, path)?;
            if node.size <= small {
                if let Some(bytes) = self.inner.hot.get(&node) {
                    return Ok((node, None, Some(bytes.to_vec())));
                }
                match self.inner.disk.open_read_cached(&rel) {
                    Ok(file) if agrees(&file, &node) || reread.exhausted() => {
                        let bytes = Disk::read_cached(&file, node.size as usize)
                            .map_err(|e| Error::io(format!("read {rel}"), e))?;
                        if let Some(b) = &bytes {
                            self.inner.hot.offer(&node, b);
                        }
                        return Ok((node, Some(file), bytes));
                    }
                    Ok(_) => {
                        reread.wait().await;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !reread.exhausted() => {
                        reread.wait().await;
                        continue;
                    }
                    Err(e) => return Err(Error::io(format!("open {rel}"), e)),
                }
            }
            match self.open_live(&rel).await {
                Ok(f) if agrees(&f, &node) || reread.exhausted() => return Ok((node, Some(f), None)),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound || reread.exhausted() => {
                    return Err(Error::io(format!("open {rel}"), e));
                }
                _ => reread.wait().await,
            }
        }
    }

    /// Most bytes a write may bring: quota minus usage, plus everything that could be pruned,
    /// plus the replaced content (which may be dropped as a last resort). `None`: no limit.
    pub(crate) async fn write_limit(&self, user: &User, replaced: u64) -> Result<Option<u64>> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                "SELECT quota_bytes, used_bytes,
                        (SELECT coalesce(sum(size), 0)::BIGINT FROM versions WHERE user_id = $1)
                      + (SELECT coalesce(sum(size), 0)::BIGINT FROM trash WHERE user_id = $1),
                        (SELECT coalesce(sum(length), 0)::BIGINT FROM uploads WHERE user_id = $1 AND expires_at > $2)
                 FROM users WHERE id = $1",
                &[&user.id.0, &self.clock().now().0],
            )
            .await?;
        let Some(quota) = row.get::<_, Option<i64>>(0) else { return Ok(None) };
        // New files closed through the mount and not yet committed count as used.
        let used: i64 = row.get::<_, i64>(1) + self.committing(user.id) as i64;
        let prunable: i64 = row.get(2);
        // Resumable uploads in progress have their length reserved.
        let reserved: i64 = row.get(3);
        Ok(Some((quota - used - reserved + prunable + replaced as i64).max(0) as u64))
    }

    /// Write a file from a stream: staged, fsynced, then committed atomically. The previous
    /// content (if any) becomes a version by rename. A failure at any point leaves the old file.
    pub async fn write<R: AsyncRead + Unpin + Send>(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        mut body: R,
        opts: WriteOptions,
    ) -> Result<WriteOutcome> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::IsADirectory, "the root is a folder"));
        }
        // Cheap early refusals, before any byte is read; all are checked again at commit.
        let current = match self.stat(user, path).await {
            Ok(n) => Some(n),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        check_write_preconditions(path, current.as_ref(), &opts)?;
        // Without a quota there is no limit to compute (the commit re-checks the quota from the
        // database anyway, so a quota set a moment ago still holds).
        let limit = match user.quota {
            Some(_) => self.write_limit(user, current.as_ref().map_or(0, |n| n.size)).await?,
            None => None,
        };
        if let (Some(limit), Some(len)) = (limit, opts.expected_len)
            && len > limit
        {
            return Err(Error::quota(len, limit));
        }

        let mut hasher = blake3::Hasher::new();
        let mut check = |chunk: &[u8], n_total: u64| {
            if let Some(l) = limit
                && n_total > l
            {
                return Err(Error::quota_outgrown(l));
            }
            if opts.expected_len.is_some_and(|l| n_total > l) {
                return Err(Error::new(ErrorKind::InvalidInput, "body longer than announced"));
            }
            hasher.update(chunk);
            Ok(())
        };
        // The start of the body is read before anything is staged: a small body then costs one
        // trip to the blocking pool (create, write, fsync) instead of three.
        let mut head = Vec::with_capacity(SMALL_BODY);
        let mut n_head = 0;
        let eof = fill(&mut body, &mut head, SMALL_BODY, &mut n_head, &mut check).await?;
        let mtime = opts.mtime;
        let (staging, n_total, mtime, logged) = if eof {
            // A small body is logged: its bytes go into the commit's intent row, so the staged
            // file needs no fsync of its own (see `crate::intent::apply_deferred`).
            let logged: Option<Arc<[u8]>> = self.inner.write_log.is_some().then(|| head.clone().into());
            let (store, sync) = (self.clone(), logged.is_none());
            let (staging, mtime) = blocking(move || {
                use std::io::Write;
                let (staging, mut file) = Staging::create(&store)?;
                file.write_all(&head).map_err(|e| Error::io("writing staged content", e))?;
                Ok((staging, seal_as(&file, mtime, sync)?))
            })
            .await?;
            (staging, n_head, mtime, logged)
        } else {
            let store = self.clone();
            let (staging, file) = blocking(move || Staging::create(&store)).await?;
            let (n, file) = pump(&mut body, file, staging.rel(), head, &mut check).await?;
            (staging, n, blocking(move || seal(&file, mtime)).await?, None)
        };
        if opts.expected_len.is_some_and(|l| n_total != l) {
            return Err(Error::new(ErrorKind::InvalidInput, "body shorter than announced"));
        }
        let content = Content {
            staging: staging.rel().to_owned(),
            size: n_total,
            mtime,
            hash: ContentHash(*hasher.finalize().as_bytes()),
            logged,
        };

        // Committed with whatever other writes are waiting (group commit), to the end even if
        // this request goes away.
        self.commit_batched(actor, user, path, content, Job::Write(opts), staging).await.map_err(|(e, _)| e)
    }

    /// Commit staged content at `path` (the step `write`, copies and uploads share).
    pub(crate) async fn commit_content(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        content: Content,
        opts: WriteOptions,
        staging: &mut Staging,
    ) -> Result<WriteOutcome> {
        let now = self.clock().now();
        in_txn!(self, LockSet::Path(user.id, path), user, actor, now, |tx| {
            self.write_rows(&tx, actor, user, path, &content, &opts, now).await?
        }, after_commit {
            staging.rel = None;
        })
    }

    /// A write's rows and effects inside its transaction (under the path's lock): the file as
    /// `content` makes it (its folders too with `create_parents`), the old content queued to
    /// become a version, the staged content queued to be renamed into place.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_rows(
        &self,
        tx: &Tx<'_>,
        actor: &Actor,
        user: &User,
        path: &VPath,
        content: &Content,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<(WriteOutcome, Effects)> {
        let mut fx = Effects::new();
        let (old, parent) = if opts.create_parents {
            // The file and its folders in one round trip (pipelined); a failed precondition
            // rolls back any folder created.
            let dir = path.parent().unwrap_or_else(VPath::root);
            let (old, parent) =
                tokio::join!(node_for_update(tx, user.id, path), ensure_dirs(tx, user, &dir, &mut fx, now));
            let old = old?;
            check_write_preconditions(path, old.as_ref(), opts)?;
            (old, parent?)
        } else {
            // Both reads in one round trip (pipelined on the connection).
            let (old, parent) =
                tokio::join!(node_for_update(tx, user.id, path), parent_dir(tx, user.id, path));
            let old = old?;
            check_write_preconditions(path, old.as_ref(), opts)?;
            (old, parent?)
        };
        let out =
            self.put_content(tx, user, &actor.name, path, parent, old, content, true, &mut fx, now).await?;
        fx.put_in_place(content, layout::user_path(&user.name, path));
        fx.audit.push(("file.write", Some(path.to_string()), Some(format!("{} bytes", content.size))));
        Ok((out, fx))
    }

    /// Record `content` as the file at `path` (replacing `old`, which becomes a version if
    /// `keep_version`). The caller queues the rename of the content into place after the ops
    /// queued here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn put_content(
        &self,
        tx: &Tx<'_>,
        user: &User,
        author: &str,
        path: &VPath,
        parent: FileId,
        old: Option<Node>,
        content: &Content,
        keep_version: bool,
        fx: &mut Effects,
        now: Timestamp,
    ) -> Result<WriteOutcome> {
        let etag = new_etag();
        let size = content.size as i64;
        let (node, created, version) = match old {
            Some(old) => {
                // The old bytes move from the file count to the version count (counted by
                // keep_as_version); the file count changes by the difference.
                fx.usage_delta += size - old.size as i64;
                // Without a version, the rename of the new content replaces the old bytes.
                let keep = async {
                    match keep_version {
                        true => self.keep_as_version(tx, user, &old, fx, now).await.map(Some),
                        false => Ok(None),
                    }
                };
                let sql = format!(
                    "UPDATE nodes SET size = $2, mtime_ns = $3, content_hash = $4, etag = $5, modified_by = $6
                     WHERE id = $1 RETURNING {NODE_COLS}"
                );
                let hash: &[u8] = &content.hash.0;
                let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] =
                    &[&old.id.0, &size, &content.mtime.0, &hash, &etag.0, &author];
                let update = tx.cquery_one(&sql, params);
                // One round trip: the version's statements are sent first (join polls in order),
                // so the version takes the old `modified_by` before the update replaces it.
                let (vid, row) = tokio::join!(keep, update);
                let vid = vid?;
                let node = node_from_row(&row?)?;
                fx.wrote("modify", &node);
                (node, false, vid)
            }
            None => (insert_file(tx, None, user, author, parent, path, content, None, fx).await?, true, None),
        };
        Ok(WriteOutcome { node, created, version })
    }

    /// Turn `old`'s current content into a version (queued as a rename onto the version's blob
    /// name) and thin the file's versions by the retention policy.
    pub(crate) async fn keep_as_version(
        &self,
        tx: &Tx<'_>,
        user: &User,
        old: &Node,
        fx: &mut Effects,
        now: Timestamp,
    ) -> Result<VersionId> {
        let hash = old.content_hash.ok_or_else(|| Error::internal("file without a content hash"))?;
        // Both in one round trip; the list, sent second, would include the new version if it
        // were old enough.
        let (size, hash): (i64, &[u8]) = (old.size as i64, &hash.0);
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] =
            &[&user.id.0, &old.id.0, &size, &old.mtime.0, &hash, &old.etag.0, &now.0];
        // Only versions old enough to be thinned (see `retention::thinning_horizon`).
        let horizon = crate::retention::thinning_horizon(&self.inner.cfg.retention, now);
        let by_node: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[&old.id.0, &horizon.0];
        let (inserted, rows) = tokio::join!(
            tx.cquery_one(
                "INSERT INTO versions (user_id, node_id, size, mtime_ns, content_hash, etag, created_at, modified_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT modified_by FROM nodes WHERE id = $2)) RETURNING id",
                params,
            ),
            tx.cquery("SELECT id, created_at FROM versions WHERE node_id = $1 AND created_at <= $2", by_node)
        );
        let vid = VersionId(inserted?.get(0));
        let rows = rows?;
        fx.ops.push(DiskOp::rename(
            layout::user_path(&user.name, &old.path),
            layout::version_blob(&user.name, vid),
            Done::ToExists,
        ));
        fx.last_resort = Some((vid, old.size));
        // A version being restored in this transaction is not up for thinning.
        let all: Vec<(VersionId, Timestamp)> = rows
            .iter()
            .map(|r| (VersionId(r.get(0)), Timestamp(r.get(1))))
            .filter(|(v, _)| !fx.keep_versions.contains(v))
            .collect();
        let expired: Vec<i64> = crate::retention::expired(&self.inner.cfg.retention, &all, now)
            .into_iter()
            .map(|v| v.0)
            .collect();
        if !expired.is_empty() {
            let gone =
                tx.cquery("DELETE FROM versions WHERE id = ANY($1) RETURNING id, size", &[&expired]).await?;
            for r in gone {
                let id = VersionId(r.get(0));
                fx.usage_delta -= r.get::<_, i64>(1);
                fx.ops.push(DiskOp::Remove { path: layout::version_blob(&user.name, id) });
                if fx.last_resort.is_some_and(|(v, _)| v == id) {
                    fx.last_resort = None;
                }
            }
        }
        fx.usage_delta += old.size as i64;
        Ok(vid)
    }

    /// Create an empty file at `path` (its parent must exist; nothing may be there). Cheaper
    /// than [`Store::write`] with an empty body: nothing is staged, the file is created in place
    /// by the intent. For the FUSE mount's `create`, which needs the file id at once.
    pub async fn create_file(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        mode: Option<u32>,
    ) -> Result<Node> {
        self.create_entry(actor, user, path, false, mode, None).await
    }

    /// [`Store::create_file`] giving the file an id reserved with [`Store::reserve_file_id`]
    /// (the FUSE mount told the kernel that inode before the file existed).
    pub async fn create_file_with_id(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        mode: Option<u32>,
        id: FileId,
    ) -> Result<Node> {
        self.create_entry(actor, user, path, false, mode, Some(id)).await
    }

    /// A file id nobody has: for a file that will be created later (with
    /// [`Store::create_file_with_id`] or [`Store::commit_draft`] of a new draft). Ids come from
    /// the database's sequence in blocks, so most calls need no query; an id never used is
    /// simply skipped.
    pub async fn reserve_file_id(&self) -> Result<FileId> {
        if let Some(id) = self.inner.spare_ids.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(FileId(id));
        }
        let client = self.inner.pool.get().await?;
        let rows = client.cquery("SELECT nextval('nodes_id_seq') FROM generate_series(1, 32)", &[]).await?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        // Hand out the lowest first (popped from the end).
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let id = ids.pop().ok_or_else(|| Error::internal("no id from the sequence"))?;
        self.inner.spare_ids.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
        Ok(FileId(id))
    }

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
    async fn create_entry(
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
        let (store, actor, user, path) = (self.clone(), actor.clone(), user.clone(), path.clone());
        detached(async move {
            let now = store.clock().now();
            in_txn!(&store, LockSet::Path(user.id, &path), &user, &actor, now, |tx| {
                let mut fx = Effects::new();
                let parent = free_slot(&tx, user.id, &path).await?;
                let node = match is_dir {
                    true => insert_dir(&tx, &user, parent, &path, mode, &mut fx, now).await?,
                    false => insert_empty_file(&tx, id, &user, parent, &path, mode, &mut fx, now).await?,
                };
                fx.audit.push(match is_dir {
                    true => ("dir.create", Some(path.to_string()), None),
                    false => ("file.write", Some(path.to_string()), Some("0 bytes".to_owned())),
                });
                (node, fx)
            })
        })
        .await
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
        let (store, actor, user, path) = (self.clone(), actor.clone(), user.clone(), path.clone());
        detached(async move {
            let now = store.clock().now();
            in_txn!(&store, LockSet::Tree(user.id), &user, &actor, now, |tx| {
                let mut fx = Effects::new();
                let node =
                    node_for_update(&tx, user.id, &path).await?.ok_or_else(|| Error::not_found(&path))?;
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
                let tid = trash_node(&tx, &user, &node, &mut fx, now).await?;
                fx.audit.push(("delete", Some(path.to_string()), Some(format!("trash item {tid}"))));
                (tid, fx)
            })
        })
        .await
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
        let (store, actor, user) = (self.clone(), actor.clone(), user.clone());
        detached(async move {
            let now = store.clock().now();
            in_txn!(&store, LockSet::Tree(user.id), &user, &actor, now, |tx| {
                let mut fx = Effects::new();
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
                        Some(n) if n.is_dir => answers
                            .push(Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder")))),
                        Some(n) => {
                            doomed.push((answers.len(), n));
                            answers.push(Ok(TrashId(0)));
                        }
                    }
                }
                for (tid, (i, n)) in trash_files(&tx, &user, &doomed, now).await?.into_iter().zip(&doomed) {
                    trashed(&mut fx, &user, n, tid);
                    fx.audit.push(("delete", Some(n.path.to_string()), Some(format!("trash item {tid}"))));
                    answers[*i] = Ok(tid);
                }
                (answers, fx)
            })
        })
        .await
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
        let (store, actor, user, from, to) =
            (self.clone(), actor.clone(), user.clone(), from.clone(), to.clone());
        detached(async move {
            let now = store.clock().now();
            in_txn!(&store, LockSet::Tree(user.id), &user, &actor, now, |tx| {
                let mut fx = Effects::new();
                let src =
                    node_for_update(&tx, user.id, &from).await?.ok_or_else(|| Error::not_found(&from))?;
                let parent = parent_dir(&tx, user.id, &to).await?;
                if let Some(existing) = node_for_update(&tx, user.id, &to).await? {
                    replace.check(&tx, src.is_dir, &existing, &to).await?;
                    trash_node(&tx, &user, &existing, &mut fx, now).await?;
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
                fx.touch(&from);
                fx.touch(&to);
                let mut j = JournalEntry::for_node("move", &node);
                j.old_path = Some(from.clone());
                fx.journal.push(j);
                fx.ops.push(DiskOp::rename(
                    layout::user_path(&user.name, &from),
                    layout::user_path(&user.name, &to),
                    Done::FromMissing,
                ));
                fx.audit.push(("move", Some(from.to_string()), Some(format!("to {to}"))));
                (node, fx)
            })
        })
        .await
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
                let staged = store.stage_copy(&user, &from, &nodes).await?;
                let cleanup = Staging { store: store.clone(), rel: Some(staged.cleanup.clone()) };
                let tx = locked.start_tx().await?;
                let mut fx = Effects::new();
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
                            .put_content(
                                &tx,
                                &user,
                                &actor.name,
                                &to,
                                parent,
                                Some(target),
                                &content,
                                true,
                                &mut fx,
                                now,
                            )
                            .await?
                            .node
                    }
                    existing => {
                        if let Some(target) = existing {
                            trash_node(&tx, &user, &target, &mut fx, now).await?;
                        }
                        insert_copies(&tx, &user, &from, &to, parent, &nodes, &mut fx).await?
                    }
                };
                fx.ops.push(DiskOp::rename(
                    &staged.content,
                    layout::user_path(&user.name, &to),
                    Done::FromMissing,
                ));
                if staged.cleanup != staged.content {
                    fx.ops.push(DiskOp::Remove { path: staged.cleanup.clone() });
                }
                fx.touch(&to);
                fx.audit.push(("copy", Some(from.to_string()), Some(format!("to {to}"))));
                let intent = close(&store, &tx, &user, &actor, fx, now).await?;
                Ok((node, intent, cleanup))
            }
            .await;
            match res {
                Ok((node, intent, mut cleanup)) => {
                    // The staged copy belongs to the intent from the commit on.
                    cleanup.rel = None;
                    locked.commit(&store).await?;
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

/// Content staged and fsynced, ready to commit.
/// Copy a request body into a staging file (opened as `rel`), after `head` (the start of the
/// body, already read and shown to `each`), showing each chunk and the running total to `each`
/// first (an error from it stops the copy). Returns the length and the file, flushed but not
/// yet fsynced.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    body: &mut R,
    file: File,
    rel: &str,
    head: Vec<u8>,
    mut each: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<(u64, File)> {
    // Reads are gathered into 1 MiB batches, and each batch is written on the blocking pool
    // while the next one is read: receiving and writing overlap, and a large upload costs one
    // pool trip per MiB instead of one per network read.
    const BATCH: usize = 1024 * 1024;
    /// A batch being written: gives back the file and the emptied buffer.
    type Writing = tokio::task::JoinHandle<(File, Vec<u8>, std::io::Result<()>)>;
    async fn written(w: Writing, rel: &str) -> Result<(File, Vec<u8>)> {
        let (file, buf, res) = w.await.map_err(|e| Error::internal(format!("write task failed: {e}")))?;
        res.map_err(|e| Error::io(format!("writing {rel}"), e))?;
        Ok((file, buf))
    }
    let mut buf = head;
    buf.reserve(BATCH.saturating_sub(buf.len()));
    let mut spare: Vec<u8> = Vec::with_capacity(BATCH);
    let mut file = Some(file);
    let mut writing: Option<Writing> = None;
    let mut total = buf.len() as u64;
    loop {
        let eof = fill(body, &mut buf, BATCH, &mut total, &mut each).await?;
        if let Some(w) = writing.take() {
            let (f, done) = written(w, rel).await?;
            file = Some(f);
            spare = done;
        }
        if !buf.is_empty() {
            let mut f = file.take().expect("the file is back from the last write");
            let data = std::mem::replace(&mut buf, std::mem::take(&mut spare));
            let at = total - data.len() as u64;
            writing = Some(tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let res = f.write_all(&data);
                if res.is_ok() && data.len() >= BATCH {
                    crate::disk::start_writeback(&f, at, data.len() as u64);
                }
                let mut data = data;
                data.clear();
                (f, data, res)
            }));
        }
        if eof {
            break;
        }
    }
    if let Some(w) = writing.take() {
        file = Some(written(w, rel).await?.0);
    }
    Ok((total, file.expect("the file is back")))
}

/// Read `body` into `buf` until it holds `up_to` bytes or the body ends (then `true`), adding
/// what is read to `total` and showing each read and the new total to `each` first.
async fn fill<R: AsyncRead + Unpin>(
    body: &mut R,
    buf: &mut Vec<u8>,
    up_to: usize,
    total: &mut u64,
    each: &mut impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<bool> {
    while buf.len() < up_to {
        let n = body
            .read_buf(buf)
            .await
            .map_err(|e| Error::new(ErrorKind::InvalidInput, "the upload was interrupted").with_source(e))?;
        if n == 0 {
            return Ok(true);
        }
        *total += n as u64;
        each(&buf[buf.len() - n..], *total)?;
    }
    Ok(false)
}

/// Bodies up to this size are read into memory before staging (see [`Store::write`]).
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// Make staged content durable: give it `mtime` (if any), fsync it, and return the
/// modification time it now has (blocking).
pub(crate) fn seal(file: &File, mtime: Option<Timestamp>) -> Result<Timestamp> {
    seal_as(file, mtime, true)
}

/// [`seal`], with the fsync only if `sync`.
fn seal_as(file: &File, mtime: Option<Timestamp>, sync: bool) -> Result<Timestamp> {
    if let Some(t) = mtime {
        file.set_modified(t.to_system()).map_err(|e| Error::io("set mtime", e))?;
    }
    if sync {
        file.sync_all().map_err(|e| Error::io("fsync", e))?;
    }
    let meta = file.metadata().map_err(|e| Error::io("stat", e))?;
    use std::os::unix::fs::MetadataExt;
    Ok(Timestamp(meta.mtime() * 1_000_000_000 + meta.mtime_nsec()))
}

#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub(crate) staging: String,
    pub(crate) size: u64,
    pub(crate) mtime: Timestamp,
    pub(crate) hash: ContentHash,
    /// The bytes, for a small write logged in its intent (staged without an fsync).
    pub(crate) logged: Option<Arc<[u8]>>,
}

struct StagedCopy {
    /// What to rename into place.
    content: String,
    /// What to remove afterwards (the staging folder around `content`, or `content` itself).
    cleanup: String,
}

/// A live file's node, or `IsADirectory`.
fn live_file(node: Node, path: &VPath) -> Result<Node> {
    match node.is_dir {
        true => Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder"))),
        false => Ok(node),
    }
}

/// Whether the open `file` holds what `node` describes (its length: a commit that changed the
/// content gives the node a new length or a new file, see [`Reread`]).
fn agrees(file: &File, node: &Node) -> bool {
    file.metadata().is_ok_and(|m| m.len() == node.size)
}

/// Reading races committing: a commit updates the database first and moves files into place
/// after (the durable-write order's step 6), and the node cache hears of a commit made
/// elsewhere a moment later. A reader in between finds a node over another commit's file (of
/// another length), or no file while the old content moves to the versions. Such a reader looks
/// again, briefly and with growing pauses, until node and file agree: it gets the old content
/// or the new one, never an error. Past the limit (a file changed on disk behind the store's
/// back, which `scan` adopts) it takes the file as it is.
struct Reread {
    pause: std::time::Duration,
    deadline: std::time::Instant,
}

impl Reread {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

    fn new() -> Reread {
        Reread {
            pause: std::time::Duration::from_micros(200),
            deadline: std::time::Instant::now() + Reread::LIMIT,
        }
    }

    fn exhausted(&self) -> bool {
        std::time::Instant::now() >= self.deadline
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(std::time::Duration::from_millis(50));
    }
}

fn check_write_preconditions(path: &VPath, current: Option<&Node>, opts: &WriteOptions) -> Result<()> {
    if current.is_some_and(|n| n.is_dir) {
        return Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder")));
    }
    if let Some(tag) = &opts.if_match
        && current.is_none_or(|n| &n.etag != tag)
    {
        return Err(Error::new(ErrorKind::PreconditionFailed, "the file has changed (etag)"));
    }
    if opts.create_only && current.is_some() {
        return Err(Error::new(ErrorKind::PreconditionFailed, format!("{path} already exists")));
    }
    Ok(())
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

/// Insert a folder row and queue its creation on disk.
async fn insert_dir(
    tx: &Tx<'_>,
    user: &User,
    parent: FileId,
    path: &VPath,
    mode: Option<u32>,
    fx: &mut Effects,
    now: Timestamp,
) -> Result<Node> {
    let node = insert_node(tx, None, user.id, parent, path, true, 0, now, None, None, mode).await?;
    fx.ops.push(DiskOp::Mkdir { path: layout::user_path(&user.name, path) });
    fx.wrote("create", &node);
    Ok(node)
}

/// For a new entry at `path`: its parent folder's id, or `AlreadyExists` if something is there.
/// Both reads go in one round trip (pipelined on the connection).
async fn free_slot(tx: &Tx<'_>, user: crate::types::UserId, path: &VPath) -> Result<FileId> {
    let (existing, parent) = tokio::join!(node_for_update(tx, user, path), parent_dir(tx, user, path));
    if existing?.is_some() {
        return Err(Error::new(ErrorKind::AlreadyExists, format!("{path} already exists")));
    }
    parent
}

/// Insert the new file `path` holding `content` (with an id reserved for it and permission
/// bits, if given), counting its bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_file(
    tx: &Tx<'_>,
    id: Option<FileId>,
    user: &User,
    author: &str,
    parent: FileId,
    path: &VPath,
    content: &Content,
    mode: Option<u32>,
    fx: &mut Effects,
) -> Result<Node> {
    let (size, mtime, hash) = (content.size, content.mtime, Some(content.hash));
    let node =
        insert_node(tx, id, user.id, parent, path, false, size, mtime, hash, Some(author), mode).await?;
    fx.usage_delta += size as i64;
    fx.wrote("create", &node);
    Ok(node)
}

/// Insert an empty file, created on disk by the intent (no staging: there are no bytes).
#[allow(clippy::too_many_arguments)]
async fn insert_empty_file(
    tx: &Tx<'_>,
    id: Option<FileId>,
    user: &User,
    parent: FileId,
    path: &VPath,
    mode: Option<u32>,
    fx: &mut Effects,
    now: Timestamp,
) -> Result<Node> {
    let empty = ContentHash(*blake3::hash(b"").as_bytes());
    let node = insert_node(tx, id, user.id, parent, path, false, 0, now, Some(empty), None, mode).await?;
    fx.ops.push(DiskOp::CreateFile { path: layout::user_path(&user.name, path), mtime_ns: now.0 });
    fx.wrote("create", &node);
    Ok(node)
}

/// Make sure the folder `dir` and its ancestors exist, creating what is missing.
pub(crate) async fn ensure_dirs(
    tx: &Tx<'_>,
    user: &User,
    dir: &VPath,
    fx: &mut Effects,
    now: Timestamp,
) -> Result<FileId> {
    let mut chain = dir.ancestors();
    chain.reverse();
    chain.push(dir.clone());
    // The whole chain in one round trip, each existing folder locked against deletion and moves.
    let paths: Vec<&str> = chain.iter().map(VPath::as_str).collect();
    let sql = format!(
        "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = ANY($2) AND trash_id IS NULL FOR KEY SHARE"
    );
    let read = || async {
        let rows = tx.cquery(&sql, &[&user.id.0, &paths]).await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let n = node_from_row(r)?;
            found.insert(n.path.clone(), n);
        }
        Ok::<_, Error>(found)
    };
    let mut found = read().await?;
    let missing: Vec<&VPath> = chain.iter().filter(|p| !found.contains_key(*p)).collect();
    if !missing.is_empty() {
        // Another write may be creating them right now: take turns, then look again.
        tx.batch_execute(&lock_folders_sql(user.id, &missing)).await?;
        found = read().await?;
    }
    let mut parent: Option<FileId> = None;
    for p in chain {
        parent = Some(match found.remove(&p) {
            Some(n) if n.is_dir => n.id,
            Some(_) => return Err(Error::new(ErrorKind::Conflict, format!("{p} is not a folder"))),
            None => {
                let Some(parent) = parent else { return Err(Error::internal("user root missing")) };
                insert_dir(tx, user, parent, &p, None, fx, now).await?.id
            }
        });
    }
    parent.ok_or_else(|| Error::internal("empty ancestor chain"))
}

/// Move a live node (and its subtree) to the trash: rows marked, content renamed.
pub(crate) async fn trash_node(
    tx: &Tx<'_>,
    user: &User,
    node: &Node,
    fx: &mut Effects,
    now: Timestamp,
) -> Result<TrashId> {
    // One statement: the subtree's size, the trash item, the nodes moved into it, the locks
    // dropped (all under one snapshot: the sum and the update see the same subtree).
    let tid = TrashId(
        tx.cquery_one(
            concat!(
                "WITH s AS (
                     SELECT coalesce(sum(size), 0)::BIGINT AS size FROM nodes
                     WHERE user_id = $1 AND trash_id IS NULL AND NOT is_dir AND ",
                subtree!(),
                "),
                 t AS (
                     INSERT INTO trash (user_id, node_id, orig_path, is_dir, size, deleted_at)
                     SELECT $1, $3, $2, $4, s.size, $5 FROM s RETURNING id),
                 n AS (
                     UPDATE nodes SET trash_id = (SELECT id FROM t) WHERE user_id = $1 AND trash_id IS NULL AND ",
                subtree!(),
                " RETURNING 1),
                 l AS (DELETE FROM locks WHERE user_id = $1 AND ",
                subtree!(),
                " RETURNING 1)
                 SELECT (SELECT id FROM t), (SELECT count(*) FROM n), (SELECT count(*) FROM l)"
            ),
            &[&user.id.0, &node.path.as_str(), &node.id.0, &node.is_dir, &now.0],
        )
        .await?
        .get(0),
    );
    trashed(fx, user, node, tid);
    Ok(tid)
}

/// Queue what moving `node` into trash item `tid` changes besides its rows: its ancestors'
/// etags, the journal, and the move on disk.
fn trashed(fx: &mut Effects, user: &User, node: &Node, tid: TrashId) {
    fx.touch(&node.path);
    fx.journal.push(JournalEntry::for_node("delete", node));
    fx.ops.push(DiskOp::rename(
        layout::user_path(&user.name, &node.path),
        format!("{}/{}", layout::trash_dir(&user.name), tid),
        Done::ToExists,
    ));
}

/// [`trash_node`] for many files at once (no folders): one statement makes every trash item,
/// moves every row into its item and drops the files' WebDAV locks. The trash item ids come
/// back in the order of `files`; the caller queues the rest ([`trashed`]).
async fn trash_files(
    tx: &Tx<'_>,
    user: &User,
    files: &[(usize, Node)],
    now: Timestamp,
) -> Result<Vec<TrashId>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = files.iter().map(|(_, n)| n.id.0).collect();
    let paths: Vec<&str> = files.iter().map(|(_, n)| n.path.as_str()).collect();
    let sizes: Vec<i64> = files.iter().map(|(_, n)| n.size as i64).collect();
    let rows = tx
        .cquery(
            "WITH d AS (
                 SELECT * FROM unnest($2::bigint[], $3::text[], $4::bigint[]) WITH ORDINALITY AS d(id, path, size, ord)),
             t AS (
                 INSERT INTO trash (user_id, node_id, orig_path, is_dir, size, deleted_at)
                 SELECT $1, d.id, d.path, false, d.size, $5 FROM d ORDER BY d.ord RETURNING id, node_id),
             n AS (UPDATE nodes SET trash_id = t.id FROM t WHERE nodes.id = t.node_id RETURNING 1),
             l AS (DELETE FROM locks WHERE user_id = $1 AND path = ANY($3) RETURNING 1)
             SELECT t.node_id, t.id, (SELECT count(*) FROM n), (SELECT count(*) FROM l) FROM t",
            &[&user.id.0, &ids, &paths, &sizes, &now.0],
        )
        .await?;
    let by_node: std::collections::HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ids.iter()
        .map(|id| {
            by_node
                .get(id)
                .map(|t| TrashId(*t))
                .ok_or_else(|| Error::internal("a file's trash item is missing"))
        })
        .collect()
}

/// Insert rows for a copied subtree (`nodes` is the source, parents first) under `to`.
async fn insert_copies(
    tx: &Tx<'_>,
    user: &User,
    from: &VPath,
    to: &VPath,
    parent: FileId,
    nodes: &[Node],
    fx: &mut Effects,
) -> Result<Node> {
    let mut ids: std::collections::HashMap<FileId, FileId> = std::collections::HashMap::new();
    let mut by_path: std::collections::HashMap<&VPath, FileId> = std::collections::HashMap::new();
    let mut root_copy = None;
    for n in nodes {
        let new_path = n.path.rebase(from, to).expect("subtree");
        let new_parent = match n.path.parent() {
            Some(pp) if n.path != *from => {
                *by_path.get(&pp).and_then(|old| ids.get(old)).expect("parent first")
            }
            _ => parent,
        };
        let copy = insert_node(
            tx,
            None,
            user.id,
            new_parent,
            &new_path,
            n.is_dir,
            n.size,
            n.mtime,
            n.content_hash,
            None,
            n.mode,
        )
        .await?;
        tx.cexecute(
            "INSERT INTO properties (node_id, namespace, name, value) SELECT $2, namespace, name, value
             FROM properties WHERE node_id = $1",
            &[&n.id.0, &copy.id.0],
        )
        .await?;
        ids.insert(n.id, copy.id);
        by_path.insert(&n.path, n.id);
        if !n.is_dir {
            fx.usage_delta += n.size as i64;
        }
        fx.journal.push(JournalEntry::for_node("create", &copy));
        root_copy.get_or_insert(copy);
    }
    root_copy.ok_or_else(|| Error::internal("empty copy"))
}
