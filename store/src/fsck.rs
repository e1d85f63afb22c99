//! `fsck`: compare the database with the backing directory and report every disagreement.
//! It changes nothing; `scan` adopts outside changes, start-up recovery finishes interrupted
//! commits.

use crate::db::Cached;
use std::collections::{BTreeMap, BTreeSet};

use crate::disk::{Kind, layout};
use crate::path::{UserName, VPath};
use crate::rows::{NODE_COLS, node_from_row};
use crate::scan::hash_file;
use crate::types::{ContentHash, Node};
use crate::{Error, Result, Store, blocking};

/// One disagreement between the database and the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckProblem {
    /// The account it concerns (empty for data-directory-wide problems).
    pub user: String,
    /// Short machine-readable kind, e.g. `missing`, `untracked`, `size`, `hash`, `usage`.
    pub kind: &'static str,
    /// Human explanation, naming the path.
    pub detail: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Users checked.
    pub users: usize,
    /// Files and folders checked.
    pub nodes: usize,
    /// Version blobs checked.
    pub versions: usize,
    /// Everything that disagrees. Empty means clean.
    pub problems: Vec<FsckProblem>,
}

impl Store {
    /// Check every user (or one). With `verify_hashes`, read every file and compare its blake3.
    pub async fn fsck(&self, only: Option<&UserName>, verify_hashes: bool) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let client = self.inner.pool.get().await?;
        // A running daemon keeps the intents of logged small writes for a moment (until its
        // next sync): give it a few seconds to drop them before calling any interrupted.
        let mut pending: i64 = 0;
        for attempt in 0..30 {
            pending = client.cquery_one("SELECT count(*) FROM intents", &[]).await?.get(0);
            if pending == 0 || attempt == 29 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if pending > 0 {
            report.problems.push(FsckProblem {
                user: String::new(),
                kind: "intent",
                detail: format!(
                    "{pending} interrupted commit(s) not yet replayed (start cairnd to finish them)"
                ),
            });
        }
        let users = match only {
            Some(name) => vec![self.user(name).await?],
            None => self.list_users().await?.into_iter().map(|i| i.user).collect(),
        };
        for user in users {
            report.users += 1;
            let u = user.name.to_string();
            let problem = |kind: &'static str, detail: String| FsckProblem { user: u.clone(), kind, detail };
            let rows = client
                .cquery(
                    &format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL"),
                    &[&user.id.0],
                )
                .await?;
            let nodes: BTreeMap<VPath, Node> =
                rows.iter().map(|r| node_from_row(r).map(|n| (n.path.clone(), n))).collect::<Result<_>>()?;
            report.nodes += nodes.len();
            let versions: Vec<(i64, i64, Vec<u8>)> = client
                .cquery("SELECT id, size, content_hash FROM versions WHERE user_id = $1", &[&user.id.0])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            report.versions += versions.len();
            let trash: Vec<i64> = client
                .cquery("SELECT id FROM trash WHERE user_id = $1", &[&user.id.0])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let row = client
                .cquery_one(
                    "SELECT used_bytes,
                       (SELECT coalesce(sum(size), 0)::BIGINT FROM nodes WHERE user_id = $1 AND trash_id IS NULL AND NOT is_dir)
                     + (SELECT coalesce(sum(size), 0)::BIGINT FROM versions WHERE user_id = $1)
                     + (SELECT coalesce(sum(size), 0)::BIGINT FROM trash WHERE user_id = $1)
                     FROM users WHERE id = $1",
                    &[&user.id.0],
                )
                .await?;
            let (recorded, actual): (i64, i64) = (row.get(0), row.get(1));
            if recorded != actual {
                report.problems.push(problem(
                    "usage",
                    format!("recorded usage {recorded} bytes, but files + versions + trash hold {actual}"),
                ));
            }

            let store = self.clone();
            let name = user.name.clone();
            let found =
                blocking(move || check_disk(&store, &name, &nodes, &versions, &trash, verify_hashes)).await?;
            report.problems.extend(found.into_iter().map(|(kind, detail)| problem(kind, detail)));
        }
        Ok(report)
    }
}

fn check_disk(
    store: &Store,
    user: &UserName,
    nodes: &BTreeMap<VPath, Node>,
    versions: &[(i64, i64, Vec<u8>)],
    trash: &[i64],
    verify: bool,
) -> Result<Vec<(&'static str, String)>> {
    let disk = &store.inner.disk;
    let mut out = Vec::new();
    for (path, node) in nodes {
        let rel = layout::user_path(user, path);
        let meta = match disk.stat(&rel) {
            Ok(Some(m)) => m,
            Ok(None) => {
                out.push(("missing", format!("{path} is in the database but not on disk")));
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                out.push(("missing", format!("{path} is in the database but not on disk")));
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                out.push((
                    "symlink",
                    format!("{path}: a symlink on disk where the database has a real entry"),
                ));
                continue;
            }
            Err(e) => return Err(Error::io(format!("stat {rel}"), e)),
        };
        match (node.is_dir, meta.kind) {
            (true, Kind::Dir) => {}
            (false, Kind::File) => {
                if meta.size != node.size {
                    out.push((
                        "size",
                        format!("{path}: {} bytes on disk, {} in the database", meta.size, node.size),
                    ));
                } else if meta.mtime_ns != node.mtime.0 {
                    out.push(("mtime", format!("{path}: modified on disk outside Cairn (run scan)")));
                }
                if verify && node.content_hash != Some(hash_file(disk, &rel)?) {
                    out.push(("hash", format!("{path}: content does not match its blake3 hash")));
                }
            }
            (_, kind) => out.push((
                "type",
                format!(
                    "{path}: database says {}, disk has {kind:?}",
                    if node.is_dir { "folder" } else { "file" }
                ),
            )),
        }
        if node.is_dir && meta.kind == Kind::Dir {
            let entries = disk.read_dir(&rel).map_err(|e| Error::io(format!("listing {rel}"), e))?;
            for (raw, _) in entries {
                let tracked = String::from_utf8(raw.clone())
                    .ok()
                    .and_then(|n| path.join(&n).ok().filter(|p| p.name() == n))
                    .is_some_and(|p| nodes.contains_key(&p));
                if !tracked {
                    let shown = format!("{path}/{}", String::from_utf8_lossy(&raw)).replacen("//", "/", 1);
                    out.push(("untracked", format!("{shown} is on disk but not in the database (run scan)")));
                }
            }
        }
    }

    let blobs: BTreeSet<String> = list_names(disk, &layout::versions_dir(user))?;
    let mut referenced = BTreeSet::new();
    for (id, size, hash) in versions {
        let rel = layout::version_blob(user, crate::VersionId(*id));
        referenced.insert(id.to_string());
        match disk.stat(&rel) {
            Ok(Some(m)) if m.kind == Kind::File && m.size == *size as u64 => {
                if verify && ContentHash::from_db(hash).ok() != Some(hash_file(disk, &rel)?) {
                    out.push(("hash", format!("version {id}: content does not match its blake3 hash")));
                }
            }
            Ok(Some(m)) => {
                out.push(("version", format!("version {id}: blob has {} bytes, expected {size}", m.size)))
            }
            _ => out.push(("version", format!("version {id}: blob missing"))),
        }
    }
    for orphan in blobs.difference(&referenced) {
        out.push(("orphan", format!("version blob {orphan} has no version record")));
    }

    let items: BTreeSet<String> = list_names(disk, &layout::trash_dir(user))?;
    let known: BTreeSet<String> = trash.iter().map(|t| t.to_string()).collect();
    for missing in known.difference(&items) {
        out.push(("trash", format!("trash item {missing} is missing on disk")));
    }
    for orphan in items.difference(&known) {
        out.push(("orphan", format!("trash entry {orphan} has no trash record")));
    }
    Ok(out)
}

fn list_names(disk: &crate::disk::Disk, rel: &str) -> Result<BTreeSet<String>> {
    match disk.read_dir(rel) {
        Ok(entries) => {
            Ok(entries.into_iter().map(|(n, _)| String::from_utf8_lossy(&n).into_owned()).collect())
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(BTreeSet::new()),
        Err(e) => Err(Error::io(format!("listing {rel}"), e)),
    }
}
