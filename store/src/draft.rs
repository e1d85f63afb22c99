//! Drafts: a file's content being edited in place, the way a file system edits it (random
//! writes, truncation, reads of what was just written), for the FUSE mount.
//!
//! A draft is a staging file: empty, or a copy of the current content (a reflink where the
//! backing filesystem shares blocks). Writes go to the draft, never to the live file, so a crash
//! at any instant leaves the old content. Committing a draft is an ordinary write commit: the
//! draft is fsynced and renamed into place in one transaction with its metadata, and the content
//! it replaces becomes a version (copy-on-write versioning). A write past the user's quota (after
//! everything prunable) fails before a byte of it lands.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex};

use crate::batch::Job;
use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{DiskOp, Done};
use crate::ops::insert_file;
use crate::path::VPath;
use crate::quota::Committing;
use crate::rows::{NODE_COLS, node_for_update, node_from_row, parent_dir};
use crate::staging::{Content, SMALL_BODY, Staging};
use crate::txn::{Change, Effects, LockSet, in_txn};
use crate::types::WriteOutcome;
use crate::types::{Actor, ContentHash, ETag, FileId, Node, Timestamp, User};
use crate::{Error, ErrorKind, Result, Store, blocking, detached};

/// An uncommitted new content for an existing file. Dropping it discards it.
pub struct Draft {
    file: File,
    staging: Staging,
    /// The etag of the content the draft started from.
    base: ETag,
    /// Largest size the draft may reach (quota); `None`: no limit.
    limit: Option<u64>,
    state: Mutex<DraftState>,
}

struct DraftState {
    len: u64,
    /// blake3 of the first `.0` bytes, while every write so far has been an append.
    hash: Option<(u64, SeqHasher)>,
    /// Set once committed: the file is now the live content and must not be written.
    spent: bool,
}

impl std::fmt::Debug for Draft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Draft").field("base", &self.base).field("limit", &self.limit).finish()
    }
}

/// What a committed draft becomes.
#[derive(Debug, Clone)]
pub enum DraftOf {
    /// The content of the existing file with this id (wherever it is now).
    File(FileId),
    /// A new file at `path` with an id from [`Store::reserve_file_id`] and permission bits.
    New {
        /// Where the file appears.
        path: VPath,
        /// Its id (the FUSE mount's inode).
        id: FileId,
        /// Permission bits.
        mode: Option<u32>,
    },
}

/// Attribute changes (`chmod`, `utimensat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttrs {
    /// New permission bits (0..=0o7777).
    pub mode: Option<u32>,
    /// New modification time.
    pub mtime: Option<Timestamp>,
}

impl Draft {
    /// Read from the draft (what readers of an open, modified file see).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.file.read_at(buf, offset).map_err(|e| Error::io("draft read", e))
    }

    /// Write `buf` at `offset`; fails with `QuotaExceeded` if the draft would outgrow the quota.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.spent {
            return Err(Error::internal("write to a committed draft"));
        }
        let end = offset + buf.len() as u64;
        if end > st.len
            && let Some(l) = self.limit
            && end > l
        {
            return Err(Error::quota(end, l));
        }
        self.file.write_all_at(buf, offset).map_err(|e| Error::io("draft write", e))?;
        st.hash = match st.hash.take() {
            Some((n, mut h)) if n == offset => {
                h.update(buf, n);
                // Appending: each completed stretch starts for the disk at once (see
                // `start_writeback`), as a large copy into the mount arrives.
                if end / WRITEBACK > offset / WRITEBACK {
                    let from = (offset / WRITEBACK) * WRITEBACK;
                    crate::disk::start_writeback(&self.file, from, end / WRITEBACK * WRITEBACK - from);
                }
                Some((n + buf.len() as u64, h))
            }
            // An overwrite or a hole: hash the whole draft at commit.
            _ => None,
        };
        st.len = st.len.max(end);
        Ok(())
    }

    /// Truncate or extend (with zeros) to `len`.
    pub fn set_len(&self, len: u64) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.spent {
            return Err(Error::internal("truncate of a committed draft"));
        }
        if len > st.len
            && let Some(l) = self.limit
            && len > l
        {
            return Err(Error::quota(len, l));
        }
        self.file.set_len(len).map_err(|e| Error::io("draft truncate", e))?;
        st.hash = match st.hash.take() {
            _ if len == 0 => Some((0, SeqHasher::default())),
            Some((n, h)) if n == len => Some((n, h)),
            _ => None,
        };
        st.len = len;
        Ok(())
    }

    /// The first `len` bytes (the whole of a small draft), for the write log.
    fn bytes(&self, len: u64) -> Result<Arc<[u8]>> {
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, 0).map_err(|e| Error::io("draft read", e))?;
        Ok(buf.into())
    }

    /// Current length.
    pub fn len(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    /// True when the draft is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The draft's modification time (what `stat` shows while the file is being written).
    pub fn mtime(&self) -> Result<Timestamp> {
        let meta = self.file.metadata().map_err(|e| Error::io("draft stat", e))?;
        Ok(Timestamp(meta.mtime() * 1_000_000_000 + meta.mtime_nsec()))
    }

    /// Set the draft's modification time (kept by the commit).
    pub fn set_mtime(&self, t: Timestamp) -> Result<()> {
        self.file.set_modified(t.to_system()).map_err(|e| Error::io("draft mtime", e))
    }

    /// The draft's file, for reading on: after a commit it is the live content; an uncommitted
    /// draft's staging name is removed (the open file stays readable).
    pub fn into_file(self) -> File {
        self.file
    }

    /// Make the bytes durable (unless `!sync`: a logged write) and compute the content hash
    /// (hashing the file again only if the writes were not plain appends).
    fn seal(&self, sync: bool) -> Result<(u64, ContentHash, Timestamp)> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if sync {
            self.file.sync_all().map_err(|e| Error::io("draft fsync", e))?;
        }
        let hash = match st.hash.take().map(|(n, h)| (n, h.finish())) {
            Some((n, Some(h))) if n == st.len => h.finalize(),
            _ => {
                let mut h = blake3::Hasher::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut off = 0u64;
                while off < st.len {
                    let n = self.file.read_at(&mut buf, off).map_err(|e| Error::io("draft hash", e))?;
                    if n == 0 {
                        return Err(Error::internal("draft shorter than its length"));
                    }
                    h.update(&buf[..n]);
                    off += n as u64;
                }
                h.finalize()
            }
        };
        let meta = self.file.metadata().map_err(|e| Error::io("draft stat", e))?;
        let mtime = Timestamp(meta.mtime() * 1_000_000_000 + meta.mtime_nsec());
        Ok((st.len, ContentHash(*hash.as_bytes()), mtime))
    }
}

impl Store {
    /// Start a draft of the file `node`: a copy of its content, or empty (`O_TRUNC`).
    pub async fn begin_draft(&self, user: &User, node: &Node, copy: bool) -> Result<Draft> {
        if node.is_dir {
            return Err(Error::new(ErrorKind::IsADirectory, format!("{} is a folder", node.path)));
        }
        let limit = match user.quota {
            Some(_) => self.write_limit(user, node.size).await?,
            None => None,
        };
        if copy
            && let Some(l) = limit
            && node.size > l
        {
            return Err(Error::quota(node.size, l));
        }
        let store = self.clone();
        let live = layout::user_path(&user.name, &node.path);
        // An emptied file (O_TRUNC) changed now; a copy keeps its time until written.
        let mtime = if copy { node.mtime } else { self.clock().now() };
        let (rel, file) = blocking(move || {
            let (rel, file) = match copy {
                true => store.inner.disk.clone_to_staging(&live),
                false => store.inner.disk.create_staging(),
            }
            .map_err(|e| Error::io("draft", e))?;
            if let Err(e) = file.set_modified(mtime.to_system()) {
                let _ = store.inner.disk.remove(&rel);
                return Err(Error::io("draft mtime", e));
            }
            Ok((rel, file))
        })
        .await?;
        let len = if copy { node.size } else { 0 };
        Ok(Draft {
            file,
            staging: Staging { store: self.clone(), rel: Some(rel) },
            base: node.etag.clone(),
            limit,
            state: Mutex::new(DraftState {
                len,
                hash: (len == 0).then(|| (0, SeqHasher::default())),
                spent: false,
            }),
        })
    }

    /// Start a draft of a file that does not exist yet (committed with [`DraftOf::New`]).
    pub async fn begin_new_draft(&self, user: &User) -> Result<Draft> {
        let now = self.clock().now();
        let node = Node {
            id: FileId(0),
            path: VPath::root(),
            is_dir: false,
            size: 0,
            mtime: now,
            content_hash: None,
            etag: ETag(String::new()),
            mode: None,
            access: Default::default(),
        };
        self.begin_draft(user, &node, false).await
    }

    /// Make `draft` the content of `target`. The content a commit replaces becomes a version
    /// if `keep_version`, and always if someone else changed the file since the draft began
    /// (unless it is empty). The draft is spent afterwards: its file is the live file. Fails
    /// with `NotFound` if the file was deleted meanwhile (the draft is then discarded).
    pub async fn commit_draft(
        &self,
        actor: &Actor,
        user: &User,
        target: DraftOf,
        draft: &mut Draft,
        keep_version: bool,
    ) -> Result<Node> {
        // Seal on the blocking pool (fsync, maybe a hash of the whole file).
        let (size, hash, mtime) = tokio::task::block_in_place(|| draft.seal(true))?;
        let content = Content {
            staging: draft.staging.rel.clone().ok_or_else(|| Error::internal("draft already spent"))?,
            size,
            mtime,
            hash,
            logged: None,
        };
        let (store, actor, user, base) = (self.clone(), actor.clone(), user.clone(), draft.base.clone());
        let committed = detached(async move {
            let now = store.clock().now();
            let s = &store;
            let id = match target {
                DraftOf::File(id) => id,
                DraftOf::New { path, id, mode } => {
                    return s.commit_new(&actor, &user, &path, id, mode, content, now, None).await;
                }
            };
            in_txn!(s, LockSet::Tree(user.id), &user, &actor, now, |tx, cx| {
                let old = tx
                    .cquery_opt(
                        &format!(
                            "SELECT {NODE_COLS}, parent_id FROM nodes
                             WHERE id = $1 AND user_id = $2 AND trash_id IS NULL FOR UPDATE"
                        ),
                        &[&id.0, &user.id.0],
                    )
                    .await?
                    .ok_or_else(|| Error::not_found(format!("file id {id}")))?;
                let parent = FileId(old.get::<_, Option<i64>>(8).unwrap_or_default());
                let old = node_from_row(&old)?;
                if old.is_dir {
                    return Err(Error::new(ErrorKind::IsADirectory, format!("{} is a folder", old.path)));
                }
                let path = old.path.clone();
                // An empty content is not worth a version.
                let keep = (keep_version || old.etag != base) && old.size > 0;
                let out = s.put_content(cx, &actor.name, &path, parent, Some(old), &content, keep).await?;
                cx.fx.ops.push(DiskOp::rename(
                    &content.staging,
                    layout::user_path(&user.name, &path),
                    Done::FromMissing,
                ));
                cx.fx.audit.push((
                    "file.write",
                    Some(path.to_string()),
                    Some(format!("{} bytes", content.size)),
                ));
                out.node
            })
        })
        .await;
        match committed {
            Ok(node) => {
                draft.staging.rel = None;
                draft.state.lock().unwrap_or_else(|e| e.into_inner()).spent = true;
                Ok(node)
            }
            Err(e) => Err(e),
        }
    }

    /// Commit `content` as the new file `path` with the reserved `id`; if someone created
    /// `path` meanwhile, as that file's new content (its old content kept as a version).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_new(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        id: FileId,
        mode: Option<u32>,
        content: Content,
        now: Timestamp,
        mut staging: Option<&mut Staging>,
    ) -> Result<Node> {
        in_txn!(self, LockSet::Path(user.id, path), user, actor, now, |tx| {
            let (out, fx) = self.new_rows(Change::new(&tx, user, now), actor, path, id, mode, &content).await?;
            (out.node, fx)
        }, after_commit {
            if let Some(s) = staging.as_mut() {
                s.rel = None;
            }
        })
    }

    /// A new file's rows and effects inside its transaction (under the path's lock): the file
    /// `id` at `path`, or, if someone created `path` meanwhile, that file with this content
    /// (its old content queued to become a version); the content queued to be renamed into
    /// place.
    pub(crate) async fn new_rows(
        &self,
        mut cx: Change<'_>,
        actor: &Actor,
        path: &VPath,
        id: FileId,
        mode: Option<u32>,
        content: &Content,
    ) -> Result<(WriteOutcome, Effects)> {
        let (tx, user) = (cx.tx, cx.user);
        let (old, parent) = tokio::join!(node_for_update(tx, user.id, path), parent_dir(tx, user.id, path));
        let out = match old? {
            Some(old) if old.is_dir => {
                return Err(Error::new(ErrorKind::AlreadyExists, format!("{path} is a folder")));
            }
            Some(old) => {
                let keep = old.size > 0;
                self.put_content(&mut cx, &actor.name, path, parent?, Some(old), content, keep).await?
            }
            None => {
                self.check_vault_content(&cx, path, content).await?;
                let node = insert_file(&mut cx, Some(id), &actor.name, parent?, path, content, mode).await?;
                WriteOutcome { node, created: true, version: None }
            }
        };
        cx.fx.put_in_place(content, layout::user_path(&user.name, path));
        cx.fx.audit.push(("file.write", Some(path.to_string()), Some(format!("{} bytes", content.size))));
        Ok(cx.done(out))
    }

    /// Commit a closed new file's draft as the file `id` named `name` in the folder `parent`
    /// (as [`DraftOf::New`] does), together with whatever other writes are waiting (group
    /// commit, see `batch.rs`): the FUSE mount's write-behind of files created and closed in a
    /// row. The folder is found by id, so a folder moved meanwhile gets the file in its new
    /// place; a folder deleted meanwhile is `NotFound` (the file went with it).
    ///
    /// The draft's bytes count against the user's quota from this call on, not from the first
    /// poll of the future: a caller that hands the future to a task and returns (the mount's
    /// `close`) leaves no moment where the next file could be granted the same bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_new_draft(
        &self,
        actor: &Actor,
        user: &User,
        parent: FileId,
        name: &str,
        id: FileId,
        mode: Option<u32>,
        draft: Draft,
    ) -> impl Future<Output = Result<Node>> + Send + use<> {
        let mut counted = Some(Committing::new(self, user.id, draft.len()));
        let (store, actor, user, name) = (self.clone(), actor.clone(), user.clone(), name.to_owned());
        async move {
            // A small file is logged, as a small write is (see `Store::write`): its bytes go into
            // the commit's intent row, so the draft needs no fsync of its own.
            let log = store.inner.write_log.is_some() && draft.len() <= SMALL_BODY as u64;
            let (mut draft, (size, hash, mtime), logged) = blocking(move || {
                let sealed = draft.seal(!log)?;
                let logged = match log {
                    true => Some(draft.bytes(sealed.0)?),
                    false => None,
                };
                Ok((draft, sealed, logged))
            })
            .await?;
            let mut staging = Staging { store: store.clone(), rel: draft.staging.rel.take() };
            draft.state.lock().unwrap_or_else(|e| e.into_inner()).spent = true;
            drop(draft);
            let content = Content { staging: staging.rel().to_owned(), size, mtime, hash, logged };
            let mut tries = 0;
            loop {
                let dir = store.stat_id(&user, parent).await?;
                if !dir.is_dir {
                    return Err(Error::not_found(format!("folder id {parent}")));
                }
                let path =
                    dir.path.join(&name).map_err(|e| Error::new(ErrorKind::InvalidPath, e.to_string()))?;
                let job = Job::New { id, mode, counted: counted.take() };
                match store.commit_batched(&actor, &user, &path, content.clone(), job, staging).await {
                    Ok(out) => return Ok(out.node),
                    // The folder moved between the look and the commit: look again.
                    Err((e, Some(s))) if e.kind() == ErrorKind::Conflict && s.rel.is_some() && tries < 3 => {
                        tries += 1;
                        staging = s;
                        counted = Some(Committing::new(&store, user.id, size));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
    }

    /// Change the permission bits or modification time of the file or folder `id`.
    pub async fn set_attrs(&self, actor: &Actor, user: &User, id: FileId, attrs: SetAttrs) -> Result<Node> {
        if attrs.mode.is_some_and(|m| m > 0o7777) {
            return Err(Error::new(ErrorKind::InvalidInput, "bad mode"));
        }
        let (store, actor, user) = (self.clone(), actor.clone(), user.clone());
        detached(async move {
            let now = store.clock().now();
            let node: Node = in_txn!(&store, LockSet::Tree(user.id), &user, &actor, now, |tx, cx| {
                let row = tx
                    .cquery_opt(
                        &format!(
                            "UPDATE nodes SET mode = coalesce($3, mode), mtime_ns = coalesce($4, mtime_ns)
                             WHERE id = $1 AND user_id = $2 AND trash_id IS NULL RETURNING {NODE_COLS}"
                        ),
                        &[&id.0, &user.id.0, &attrs.mode.map(|m| m as i32), &attrs.mtime.map(|t| t.0)],
                    )
                    .await?
                    .ok_or_else(|| Error::not_found(format!("file id {id}")))?;
                let node = node_from_row(&row)?;
                cx.fx.touch(&node.path);
                cx.fx.audit.push(("attrs", Some(node.path.to_string()), None));
                node
            })
            .map_err(|e: Error| e)?;
            if let Some(t) = attrs.mtime {
                // The native file mirrors the metadata; the database is the truth if this fails.
                let rel = layout::user_path(&user.name, &node.path);
                let s = store.clone();
                let _ =
                    blocking(move || s.inner.disk.set_mtime(&rel, t.0).map_err(|e| Error::io("mtime", e)))
                        .await;
            }
            Ok(node)
        })
        .await
    }
}

/// blake3 of a stream of appends: inline while small, then on a thread of its own so that
/// hashing a large file overlaps with receiving it (a bounded queue keeps memory flat).
#[derive(Default)]
struct SeqHasher {
    /// The hasher was lost (no thread could be started): the commit hashes the file again.
    lost: bool,
    inline: Option<blake3::Hasher>,
    thread: Option<(std::sync::mpsc::SyncSender<Vec<u8>>, std::thread::JoinHandle<blake3::Hasher>)>,
}

/// An appended draft is handed to the disk in stretches of this many bytes.
const WRITEBACK: u64 = 8 << 20;

/// Appends beyond this many bytes are hashed on the hashing thread.
const INLINE_HASH_LIMIT: u64 = 8 << 20;

impl SeqHasher {
    /// Add `buf`, which starts at byte `at` of the stream.
    fn update(&mut self, buf: &[u8], at: u64) {
        if self.lost {
            return;
        }
        if let Some((tx, _)) = &self.thread {
            if tx.send(buf.to_vec()).is_err() {
                self.lost = true;
            }
            return;
        }
        let h = self.inline.get_or_insert_with(blake3::Hasher::new);
        h.update(buf);
        if at + buf.len() as u64 > INLINE_HASH_LIMIT {
            let mut h = self.inline.take().expect("inline hasher");
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(32);
            let spawned = std::thread::Builder::new().name("draft-hash".into()).spawn(move || {
                while let Ok(chunk) = rx.recv() {
                    h.update(&chunk);
                }
                h
            });
            match spawned {
                Ok(handle) => self.thread = Some((tx, handle)),
                Err(_) => self.lost = true,
            }
        }
    }

    /// The hasher with everything added, or `None` if it was lost (the caller rehashes).
    fn finish(self) -> Option<blake3::Hasher> {
        if self.lost {
            return None;
        }
        match self.thread {
            Some((tx, handle)) => {
                drop(tx);
                handle.join().ok()
            }
            None => Some(self.inline.unwrap_or_default()),
        }
    }
}
