//! Writing a file's content: [`Store::write`] is the one routine that turns a stream into a
//! committed file; copies, restores and drafts reuse its commit step (`commit_content`,
//! `write_rows`, `put_content`, `keep_as_version`).

use std::sync::Arc;

use tokio::io::AsyncRead;

use crate::batch::Job;
use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{DiskOp, Done};
use crate::ops::{ensure_dirs, insert_file};
use crate::path::VPath;
use crate::rows::{NODE_COLS, new_etag, node_for_update, node_from_row, parent_dir};
use crate::staging::{Content, SMALL_BODY, Staging, fill, pump, seal, seal_as};
use crate::txn::{Change, Effects, LockSet, in_txn};
use crate::types::{
    Actor, ContentHash, FileId, Node, Timestamp, User, VersionId, WriteOptions, WriteOutcome,
};
use crate::{Error, ErrorKind, Result, Store, blocking};

impl Store {
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
        let mut digest = opts.checksum.as_ref().map(|c| c.digester());
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
            if let Some(d) = &mut digest {
                d.update(chunk);
            }
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
        if let (Some(c), Some(d)) = (&opts.checksum, digest) {
            c.verify(d)?;
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
        let checksum = opts.checksum.clone();
        let out = self
            .commit_batched(actor, user, path, content, Job::Write(opts), staging)
            .await
            .map_err(|(e, _)| e)?;
        if let (Some(c), Some(hash)) = (checksum, &out.node.content_hash) {
            self.remember_checksum(hash, &c).await;
        }
        Ok(out)
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
            self.write_rows(Change::new(&tx, user, now), actor, path, &content, &opts).await?
        }, after_commit {
            staging.rel = None;
        })
    }

    /// A write's rows and effects inside its transaction (under the path's lock): the file as
    /// `content` makes it (its folders too with `create_parents`), the old content queued to
    /// become a version, the staged content queued to be renamed into place.
    pub(crate) async fn write_rows(
        &self,
        mut cx: Change<'_>,
        actor: &Actor,
        path: &VPath,
        content: &Content,
        opts: &WriteOptions,
    ) -> Result<(WriteOutcome, Effects)> {
        let (tx, user) = (cx.tx, cx.user);
        let (old, parent) = if opts.create_parents {
            // The file and its folders in one round trip (pipelined); a failed precondition
            // rolls back any folder created.
            let dir = path.parent().unwrap_or_else(VPath::root);
            let (old, parent) = tokio::join!(node_for_update(tx, user.id, path), ensure_dirs(&mut cx, &dir));
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
        let out = self.put_content(&mut cx, &actor.name, path, parent, old, content, true).await?;
        cx.fx.put_in_place(content, layout::user_path(&user.name, path));
        cx.fx.audit.push(("file.write", Some(path.to_string()), Some(format!("{} bytes", content.size))));
        Ok(cx.done(out))
    }

    /// Record `content` as the file at `path` (replacing `old`, which becomes a version if
    /// `keep_version`). The caller queues the rename of the content into place after the ops
    /// queued here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn put_content(
        &self,
        cx: &mut Change<'_>,
        author: &str,
        path: &VPath,
        parent: FileId,
        old: Option<Node>,
        content: &Content,
        keep_version: bool,
    ) -> Result<WriteOutcome> {
        self.check_vault_content(cx, path, content).await?;
        let tx = cx.tx;
        let etag = new_etag();
        let size = content.size as i64;
        let (node, created, version) = match old {
            Some(old) => {
                // The old bytes move from the file count to the version count (counted by
                // keep_as_version); the file count changes by the difference.
                cx.fx.usage_delta += size - old.size as i64;
                // Without a version, the rename of the new content replaces the old bytes.
                let keep = async {
                    match keep_version {
                        true => self.keep_as_version(cx, &old).await.map(Some),
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
                cx.fx.wrote("modify", &node);
                (node, false, vid)
            }
            None => (insert_file(cx, None, author, parent, path, content, None).await?, true, None),
        };
        Ok(WriteOutcome { node, created, version })
    }

    /// Turn `old`'s current content into a version (queued as a rename onto the version's blob
    /// name) and thin the file's versions by the retention policy.
    pub(crate) async fn keep_as_version(&self, cx: &mut Change<'_>, old: &Node) -> Result<VersionId> {
        let (tx, user, now, fx) = (cx.tx, cx.user, cx.now, &mut cx.fx);
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
}

pub(crate) fn check_write_preconditions(
    path: &VPath,
    current: Option<&Node>,
    opts: &WriteOptions,
) -> Result<()> {
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
