//! `scan`: adopt changes made directly in the backing directory (new files get ids, changed
//! content gets a new hash and etag, removed files leave the database).

use crate::db::Cached;
use std::collections::BTreeMap;
use std::io::Read;

use crate::disk::{Kind, Meta, layout};
use crate::intent::DiskOp;
use crate::ops::ensure_dirs;
use crate::path::VPath;
use crate::rows::{NODE_COLS, insert_node, new_etag, node_from_row};
use crate::txn::{Change, JournalEntry, LockSet, in_txn};
use crate::types::{Actor, ContentHash, Node, Usage, User, VersionId};
use crate::{Error, Result, Store, blocking, detached};

/// What a scan found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Paths new to the database.
    pub added: Vec<VPath>,
    /// Files whose content changed.
    pub modified: Vec<VPath>,
    /// Paths gone from the disk.
    pub removed: Vec<VPath>,
    /// Entries left alone, with the reason (symlinks, invalid names).
    pub skipped: Vec<(String, String)>,
    /// The user's footprint if the scan left them over their quota. The scan adopts what is on
    /// disk whatever the quota (as lowering a quota below the usage does, it leaves the user
    /// over it): their writes that add bytes are refused until they free space or the quota
    /// is raised.
    pub over_quota: Option<Usage>,
}

/// What the disk walk saw for one path.
#[derive(Debug, Clone)]
struct Seen {
    meta: Meta,
    /// Set when the content needs (re)hashing and was hashed.
    hash: Option<ContentHash>,
}

impl Store {
    /// Reconcile the database with what is on disk for `user`.
    pub async fn scan(&self, actor: &Actor, user: &User) -> Result<ScanReport> {
        let (store, actor, user) = (self.clone(), actor.clone(), user.clone());
        detached(async move {
            let now = store.clock().now();
            let mut report: ScanReport = in_txn!(&store, LockSet::Tree(user.id), &user, &actor, now, |tx| {
                let rows = tx
                    .cquery(&format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL"), &[
                        &user.id.0,
                    ])
                    .await?;
                let db: BTreeMap<VPath, Node> =
                    rows.iter().map(|r| node_from_row(r).map(|n| (n.path.clone(), n))).collect::<Result<_>>()?;
                let (seen, skipped) = store.walk(&user, &db).await?;
                let mut report = ScanReport { skipped, ..Default::default() };
                let mut cx = Change::new(&tx, &user, now);
                cx.fx.may_prune = false;
                cx.fx.enforce_quota = false;

                // Removals first (deepest first), so a file replaced by a folder is re-added cleanly.
                for (path, node) in db.iter().rev() {
                    if path.is_root() {
                        continue;
                    }
                    let kind_matches = seen.get(path).is_some_and(|s| (s.meta.kind == Kind::Dir) == node.is_dir);
                    if kind_matches {
                        continue;
                    }
                    let versions = tx
                        .cquery("DELETE FROM versions WHERE node_id = $1 RETURNING id, size", &[&node.id.0])
                        .await?;
                    for v in versions {
                        cx.fx.usage_delta -= v.get::<_, i64>(1);
                        cx.fx.ops.push(DiskOp::Remove { path: layout::version_blob(&user.name, VersionId(v.get(0))) });
                    }
                    tx.cexecute("DELETE FROM properties WHERE node_id = $1", &[&node.id.0]).await?;
                    tx.cexecute("DELETE FROM nodes WHERE id = $1", &[&node.id.0]).await?;
                    cx.fx.usage_delta -= node.size as i64;
                    cx.fx.touch(path);
                    cx.fx.journal.push(JournalEntry::for_node("delete", node));
                    report.removed.push(path.clone());
                }
                for (path, s) in &seen {
                    let existing = db.get(path).filter(|n| (s.meta.kind == Kind::Dir) == n.is_dir);
                    match existing {
                        Some(node) if node.is_dir => {}
                        Some(node) => {
                            let Some(hash) = s.hash else { continue };
                            let changed = Some(hash) != node.content_hash;
                            let etag = if changed { new_etag() } else { node.etag.clone() };
                            let row = tx
                                .cquery_one(
                                    &format!(
                                        "UPDATE nodes SET size = $2, mtime_ns = $3, content_hash = $4, etag = $5
                                         WHERE id = $1 RETURNING {NODE_COLS}"
                                    ),
                                    &[&node.id.0, &(s.meta.size as i64), &s.meta.mtime_ns, &&hash.0[..], &etag.0],
                                )
                                .await?;
                            cx.fx.usage_delta += s.meta.size as i64 - node.size as i64;
                            if changed {
                                let updated = node_from_row(&row)?;
                                cx.fx.touch(path);
                                cx.fx.journal.push(JournalEntry::for_node("modify", &updated));
                                report.modified.push(path.clone());
                            }
                        }
                        None => {
                            let parent = ensure_dirs(&mut cx, &path.parent().unwrap_or_else(VPath::root)).await?;
                            let is_dir = s.meta.kind == Kind::Dir;
                            let size = if is_dir { 0 } else { s.meta.size };
                            let mtime = crate::types::Timestamp(s.meta.mtime_ns);
                            let node = insert_node(&tx, None, user.id, parent, path, is_dir, size, mtime, s.hash, None, None).await?;
                            if !is_dir {
                                cx.fx.usage_delta += s.meta.size as i64;
                            }
                            cx.fx.touch(path);
                            cx.fx.journal.push(JournalEntry::for_node("create", &node));
                            report.added.push(path.clone());
                        }
                    }
                }
                // ensure_dirs queues mkdirs for folders it created: they exist already.
                cx.fx.ops.retain(|op| !matches!(op, DiskOp::Mkdir { .. }));
                // Interrupted commits recovery could not finish are moot now that the database
                // follows the disk. Logged small writes waiting for their sync are not
                // interrupted: every one of this user's is carried out on disk already (none
                // can be carried out meanwhile, under the tree lock), but maybe not synced, and
                // it may be another process's (cairnctl scans beside a running cairnd, whose
                // pending syncs this process knows nothing of). One syncfs makes them all
                // durable before their rows go. (Not this process's flush: it would delete
                // every user's logged intents inside this transaction, which may roll back.)
                let s = store.clone();
                blocking(move || s.inner.disk.sync_all().map_err(|e| Error::io("syncfs", e))).await?;
                tx.cexecute("DELETE FROM intents WHERE user_id = $1", &[&user.id.0]).await?;
                let detail = format!(
                    "{} added, {} modified, {} removed, {} skipped",
                    report.added.len(),
                    report.modified.len(),
                    report.removed.len(),
                    report.skipped.len()
                );
                cx.fx.audit.push(("scan", None, Some(detail)));
                cx.done(report)
            })?;
            let usage = store.usage(&user).await?;
            if usage.quota.is_some_and(|q| usage.used > q) {
                report.over_quota = Some(usage);
            }
            Ok(report)
        })
        .await
    }

    /// Walk the user's tree on disk. Files that are new, or whose size or mtime differ from the
    /// database, are hashed.
    async fn walk(
        &self,
        user: &User,
        db: &BTreeMap<VPath, Node>,
    ) -> Result<(BTreeMap<VPath, Seen>, Vec<(String, String)>)> {
        let known: BTreeMap<VPath, (u64, i64, bool)> =
            db.iter().map(|(p, n)| (p.clone(), (n.size, n.mtime.0, n.is_dir))).collect();
        let store = self.clone();
        let name = user.name.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            let mut seen = BTreeMap::new();
            let mut skipped = Vec::new();
            let mut stack = vec![VPath::root()];
            while let Some(dir) = stack.pop() {
                let rel = layout::user_path(&name, &dir);
                let entries = disk.read_dir(&rel).map_err(|e| Error::io(format!("listing {rel}"), e))?;
                for (raw, meta) in entries {
                    let shown = format!("{}/{}", dir, String::from_utf8_lossy(&raw)).replacen("//", "/", 1);
                    let Ok(text) = String::from_utf8(raw) else {
                        skipped.push((shown, "name is not UTF-8".to_owned()));
                        continue;
                    };
                    let path = match dir.join(&text) {
                        Ok(p) if p.name() == text => p,
                        Ok(_) => {
                            skipped.push((shown, "name is not in Unicode NFC".to_owned()));
                            continue;
                        }
                        Err(e) => {
                            skipped.push((shown, e.to_string()));
                            continue;
                        }
                    };
                    match meta.kind {
                        Kind::Other => {
                            skipped.push((shown, "not a regular file or folder (symlink?)".to_owned()))
                        }
                        Kind::Dir => {
                            stack.push(path.clone());
                            seen.insert(path, Seen { meta, hash: None });
                        }
                        Kind::File => {
                            let unchanged = known.get(&path).is_some_and(|&(size, mtime, is_dir)| {
                                !is_dir && size == meta.size && mtime == meta.mtime_ns
                            });
                            let hash = if unchanged {
                                None
                            } else {
                                let rel = layout::user_path(&name, &path);
                                Some(hash_file(disk, &rel)?)
                            };
                            seen.insert(path, Seen { meta, hash });
                        }
                    }
                }
            }
            Ok((seen, skipped))
        })
        .await
    }
}

/// blake3 of a file in the backing directory.
pub(crate) fn hash_file(disk: &crate::disk::Disk, rel: &str) -> Result<ContentHash> {
    let mut file = disk.open_read(rel).map_err(|e| Error::io(format!("open {rel}"), e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(format!("read {rel}"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(ContentHash(*hasher.finalize().as_bytes()))
}
