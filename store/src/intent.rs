//! Intents: the disk work a committed transaction promised, written in that same transaction.
//!
//! The durable-write order (docs/design/storage.md) is: new content staged and fsynced → one
//! PostgreSQL transaction with the metadata *and* an intent row listing the disk operations →
//! the operations → the intent row deleted. A crash after the commit leaves the intent row;
//! start-up replays it. Every operation is therefore idempotent, guarded by a condition that
//! tells "already done" from "not yet done" (e.g. a rename onto a fresh unique name is done
//! once that name exists).

use serde::{Deserialize, Serialize};

use crate::disk::{DirCache, Disk};

/// One step on the backing directory. Paths are relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum DiskOp {
    /// `rename(from, to)`, skipped when `done` says it already happened.
    Rename { from: String, to: String, done: Done },
    /// Create a directory (done if it exists).
    Mkdir { path: String },
    /// Remove a file or tree (done if it is gone).
    Remove { path: String },
    /// Create an empty file with this modification time (done if something exists there: only
    /// a replay of this very op can have put it there). Durable through its folder's fsync.
    CreateFile { path: String, mtime_ns: i64 },
}

/// How to tell that a rename already happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Done {
    /// `to` is a fresh unique name (a version blob, a trash item): done once it exists.
    ToExists,
    /// `from` is a unique name (a staging file, a version blob, a trash item): done once gone.
    FromMissing,
}

impl DiskOp {
    pub(crate) fn rename(from: impl Into<String>, to: impl Into<String>, done: Done) -> DiskOp {
        DiskOp::Rename { from: from.into(), to: to.into(), done }
    }
}

pub(crate) fn encode(ops: &[DiskOp]) -> String {
    serde_json::to_string(ops).expect("disk ops serialize")
}

pub(crate) fn decode(raw: &str) -> crate::Result<Vec<DiskOp>> {
    serde_json::from_str(raw).map_err(|e| crate::Error::internal(format!("unreadable intent: {e}")))
}

fn parent(rel: &str) -> &str {
    crate::disk::split_parent(rel).0
}

/// What a preflight found.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Preflight {
    /// The disk can carry out the operations.
    Ready,
    /// A destination folder is missing on disk: one a concurrent change committed and has not
    /// created yet (the caller waits for it and looks again), or one removed behind Cairn's back.
    FolderMissing,
}

impl Preflight {
    /// `FolderMissing` as the error its client gets.
    pub(crate) fn into_result(self) -> crate::Result<()> {
        match self {
            Preflight::Ready => Ok(()),
            Preflight::FolderMissing => {
                Err(crate::Error::new(crate::ErrorKind::Conflict, "the folder is missing on disk (run scan)"))
            }
        }
    }
}

/// The folders `ops` put things into (as stored on disk), for waiting on their creators.
pub(crate) fn destination_folders(ops: &[DiskOp]) -> Vec<&str> {
    let mut dirs: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            DiskOp::Rename { to, .. } => Some(parent(to)),
            DiskOp::Mkdir { path } | DiskOp::CreateFile { path, .. } => Some(parent(path)),
            DiskOp::Remove { .. } => None,
        })
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs
}

/// Check, before the transaction that promises `ops` commits, that the disk can carry them out:
/// every source exists and every destination folder is reachable without a symlink. A disk
/// changed behind our back (or a planted symlink) then aborts the transaction instead of
/// leaving a promise that cannot be kept.
pub(crate) fn preflight(disk: &Disk, ops: &[DiskOp]) -> crate::Result<Preflight> {
    let mut dirs = DirCache::new(disk);
    // Folders already found (or created by an earlier op): a batch of writes into one folder
    // checks it once.
    let mut ok: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            DiskOp::Rename { from, to, .. } => {
                match dirs.stat(from) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(crate::Error::new(
                            crate::ErrorKind::Conflict,
                            "the entry is missing on disk (run scan)",
                        ));
                    }
                    Err(e) => return Err(crate::Error::io(format!("checking {from}"), e)),
                }
                if !dir_ok(&mut dirs, parent(to), &mut ok)? {
                    return Ok(Preflight::FolderMissing);
                }
            }
            DiskOp::Mkdir { path } => {
                if !dir_ok(&mut dirs, parent(path), &mut ok)? {
                    return Ok(Preflight::FolderMissing);
                }
                ok.push(path);
            }
            DiskOp::Remove { .. } => {}
            DiskOp::CreateFile { path, .. } => {
                if !dir_ok(&mut dirs, parent(path), &mut ok)? {
                    return Ok(Preflight::FolderMissing);
                }
            }
        }
    }
    Ok(Preflight::Ready)
}

/// Whether `dir` is a folder (looked up once per preflight: `ok` lists those found or created).
fn dir_ok<'a>(dirs: &mut DirCache<'_>, dir: &'a str, ok: &mut Vec<&'a str>) -> crate::Result<bool> {
    if dir.is_empty() || ok.contains(&dir) {
        return Ok(true);
    }
    match dirs.stat(dir) {
        Ok(Some(m)) if m.kind == crate::disk::Kind::Dir => {
            ok.push(dir);
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) => Err(crate::Error::io(format!("checking folder {dir}"), e)),
    }
}

/// Carry out `ops` in order, skipping what is done, then fsync every directory touched.
pub(crate) fn apply(disk: &Disk, ops: &[DiskOp]) -> crate::Result<()> {
    apply_with(disk, ops, None)
}

/// Carry out the ops of a logged small write's intent (see [`crate::Store::write`]) without
/// fsyncing their folders: the intent row stays until the whole filesystem is synced, and
/// start-up replays it (after restoring its staged content from the database) if a crash comes
/// first. The one thing made durable here is content moved onto a fresh name (an old file
/// becoming a version): a replay takes an existing fresh name as done, so what it holds must
/// be whole even if it was itself a logged write not yet synced (`unsynced` tells which files
/// may be).
pub(crate) fn apply_deferred(
    disk: &Disk,
    ops: &[DiskOp],
    unsynced: impl Fn(&str) -> bool,
) -> crate::Result<()> {
    apply_with(disk, ops, Some(&unsynced))
}

fn apply_with(disk: &Disk, ops: &[DiskOp], deferred: Option<&dyn Fn(&str) -> bool>) -> crate::Result<()> {
    let mut dirs = DirCache::new(disk);
    let mut touched: Vec<&str> = Vec::new();
    for op in ops {
        match op {
            DiskOp::Rename { from, to, done } => {
                if *done == Done::ToExists
                    && let Some(unsynced) = deferred
                    && unsynced(from)
                {
                    match dirs.fsync_file(from) {
                        // Gone: a replay, and moved already.
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                        res => res.map_err(|e| crate::Error::io(format!("fsync {from}"), e))?,
                    }
                }
                // The rename is tried first (the first time, it is never done yet); only a
                // refusal asks whether a replay finds it done. Onto a fresh name (`ToExists`)
                // nothing may be replaced: something there means done.
                let fresh = *done == Done::ToExists;
                let res = match dirs.rename(from, to, !fresh) {
                    Err(e) if fresh && e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        let done_before = match done {
                            Done::ToExists => dirs.exists(to),
                            Done::FromMissing => dirs.exists(from).map(|e| !e),
                        };
                        match done_before {
                            Ok(true) => Ok(()),
                            Ok(false) => Err(e),
                            Err(e) => Err(e),
                        }
                    }
                    res => res,
                };
                res.map_err(|e| crate::Error::io(format!("rename {from} -> {to}"), e))?;
                touched.push(parent(from));
                touched.push(parent(to));
            }
            DiskOp::Mkdir { path } => {
                disk.mkdir(path).map_err(|e| crate::Error::io(format!("mkdir {path}"), e))?;
                touched.push(parent(path));
            }
            DiskOp::Remove { path } => {
                disk.remove(path).map_err(|e| crate::Error::io(format!("remove {path}"), e))?;
                dirs.forget(path);
                touched.push(parent(path));
            }
            DiskOp::CreateFile { path, mtime_ns } => {
                disk.create_empty(path, *mtime_ns)
                    .map_err(|e| crate::Error::io(format!("create {path}"), e))?;
                touched.push(parent(path));
            }
        }
    }
    if deferred.is_some() {
        return Ok(());
    }
    touched.sort_unstable();
    touched.dedup();
    // Staging needs no fsync: a rename out of it that a crash undoes leaves a staging file,
    // which start-up removes (the content is already in place, the intent replays nothing).
    touched.retain(|d| *d != crate::disk::layout::STAGING && !d.starts_with(".cairn/staging/"));
    for dir in touched {
        match dirs.fsync_dir(dir) {
            Ok(()) => {}
            // A directory that a later op removed (a purged trash item) needs no fsync.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(crate::Error::io(format!("fsync {dir}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(disk: &Disk) -> Vec<String> {
        let mut out = Vec::new();
        for dir in ["files/u", ".cairn/versions/u", ".cairn/staging"] {
            for (name, _) in disk.read_dir(dir).unwrap() {
                let name = String::from_utf8(name).unwrap();
                let content = std::fs::read_to_string(disk.abs(&format!("{dir}/{name}"))).unwrap();
                out.push(format!("{dir}/{name}={content}"));
            }
        }
        out
    }

    /// A write that replaces a file, replayed from every point a crash could leave it at,
    /// ends in the same state.
    #[test]
    fn replay_is_idempotent_from_every_prefix() {
        let ops = vec![
            DiskOp::rename("files/u/a", ".cairn/versions/u/7", Done::ToExists),
            DiskOp::rename(".cairn/staging/s.part", "files/u/a", Done::FromMissing),
        ];
        let mut finals = Vec::new();
        for crash_after in 0..=ops.len() {
            let tmp = std::env::temp_dir().join(format!("cairn-intent-{}-{crash_after}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            let disk = Disk::open(&tmp).unwrap();
            disk.mkdir_all("files/u").unwrap();
            disk.mkdir_all(".cairn/versions/u").unwrap();
            std::fs::write(disk.abs("files/u/a"), "old").unwrap();
            std::fs::write(disk.abs(".cairn/staging/s.part"), "new").unwrap();
            apply(&disk, &ops[..crash_after]).unwrap();
            // Start-up replays the whole intent, twice for good measure.
            apply(&disk, &ops).unwrap();
            apply(&disk, &ops).unwrap();
            finals.push(tree(&disk));
            std::fs::remove_dir_all(&tmp).unwrap();
        }
        assert_eq!(finals[0], ["files/u/a=new", ".cairn/versions/u/7=old"]);
        assert!(finals.iter().all(|f| f == &finals[0]), "{finals:?}");
    }

    #[test]
    fn create_file_replays_without_harm() {
        let tmp = std::env::temp_dir().join(format!("cairn-intent-create-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let disk = Disk::open(&tmp).unwrap();
        disk.mkdir_all("files/u").unwrap();
        let ops = vec![DiskOp::CreateFile { path: "files/u/e".into(), mtime_ns: 1_700_000_000_123_456_789 }];
        assert_eq!(preflight(&disk, &ops).unwrap(), Preflight::Ready);
        apply(&disk, &ops).unwrap();
        std::fs::write(disk.abs("files/u/e"), "").unwrap();
        apply(&disk, &ops).unwrap();
        let meta = disk.stat("files/u/e").unwrap().unwrap();
        assert_eq!((meta.kind, meta.size), (crate::disk::Kind::File, 0));
        std::fs::remove_dir_all(&tmp).unwrap();
        // Its folder must exist.
        let missing = vec![DiskOp::CreateFile { path: "files/nobody/e".into(), mtime_ns: 0 }];
        let disk = Disk::open(&tmp).unwrap();
        assert_eq!(preflight(&disk, &missing).unwrap(), Preflight::FolderMissing);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn ops_round_trip_as_json() {
        let ops = vec![
            DiskOp::Mkdir { path: "files/u/d".into() },
            DiskOp::Remove { path: ".cairn/trash/u/3".into() },
            DiskOp::rename("a", "b", Done::FromMissing),
            DiskOp::CreateFile { path: "files/u/e".into(), mtime_ns: 1_700_000_000_123_456_789 },
        ];
        assert_eq!(decode(&encode(&ops)).unwrap(), ops);
    }
}
