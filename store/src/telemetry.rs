//! Counters the engine and the FUSE mount bump as they work, read by `/metrics`: commits and the
//! time their `COMMIT` took (the WAL flush), writes committed together by the group commit,
//! mount operations by kind, and bytes the integrity scrub verified. Process-wide atomics: a bump costs one relaxed add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A kind of FUSE operation, as `/metrics` labels it (a fixed set, so the series stay bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum MountOp {
    /// `lookup`.
    Lookup,
    /// `getattr`.
    Getattr,
    /// `setattr` (truncate, times, mode).
    Setattr,
    /// `readdir` and `readdirplus`.
    Readdir,
    /// `open`.
    Open,
    /// `read`.
    Read,
    /// `write`.
    Write,
    /// `flush`.
    Flush,
    /// `release`.
    Release,
    /// `fsync`.
    Fsync,
    /// `create`.
    Create,
    /// `mkdir`.
    Mkdir,
    /// `unlink`.
    Unlink,
    /// `rmdir`.
    Rmdir,
    /// `rename`.
    Rename,
    /// Extended attributes: set, get, list, remove.
    Xattr,
    /// `statfs`.
    Statfs,
    /// Everything else (links, special files, directory handles, ioctl, fallocate).
    Other,
}

impl MountOp {
    /// Every kind, in label order.
    pub const ALL: [MountOp; 18] = [
        MountOp::Lookup,
        MountOp::Getattr,
        MountOp::Setattr,
        MountOp::Readdir,
        MountOp::Open,
        MountOp::Read,
        MountOp::Write,
        MountOp::Flush,
        MountOp::Release,
        MountOp::Fsync,
        MountOp::Create,
        MountOp::Mkdir,
        MountOp::Unlink,
        MountOp::Rmdir,
        MountOp::Rename,
        MountOp::Xattr,
        MountOp::Statfs,
        MountOp::Other,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            MountOp::Lookup => "lookup",
            MountOp::Getattr => "getattr",
            MountOp::Setattr => "setattr",
            MountOp::Readdir => "readdir",
            MountOp::Open => "open",
            MountOp::Read => "read",
            MountOp::Write => "write",
            MountOp::Flush => "flush",
            MountOp::Release => "release",
            MountOp::Fsync => "fsync",
            MountOp::Create => "create",
            MountOp::Mkdir => "mkdir",
            MountOp::Unlink => "unlink",
            MountOp::Rmdir => "rmdir",
            MountOp::Rename => "rename",
            MountOp::Xattr => "xattr",
            MountOp::Statfs => "statfs",
            MountOp::Other => "other",
        }
    }
}

static MOUNT_OPS: [AtomicU64; 18] = [const { AtomicU64::new(0) }; 18];
static COMMITS: AtomicU64 = AtomicU64::new(0);
static COMMIT_NANOS: AtomicU64 = AtomicU64::new(0);
static BATCHES: AtomicU64 = AtomicU64::new(0);
static BATCHED_WRITES: AtomicU64 = AtomicU64::new(0);
static SCRUB_VERIFIED: AtomicU64 = AtomicU64::new(0);

/// Count one mount operation.
pub fn mount_op(op: MountOp) {
    MOUNT_OPS[op as usize].fetch_add(1, Ordering::Relaxed);
}

/// A `COMMIT` that took `took`.
pub(crate) fn committed(took: Duration) {
    COMMITS.fetch_add(1, Ordering::Relaxed);
    COMMIT_NANOS.fetch_add(took.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
}

/// A group commit of `writes` writes.
pub(crate) fn batch(writes: usize) {
    BATCHES.fetch_add(1, Ordering::Relaxed);
    BATCHED_WRITES.fetch_add(writes as u64, Ordering::Relaxed);
}

/// `n` bytes read and checked by the scrub.
pub(crate) fn scrub_verified(n: u64) {
    SCRUB_VERIFIED.fetch_add(n, Ordering::Relaxed);
}

/// The counters now.
#[derive(Debug, Clone)]
pub struct Telemetry {
    /// Transactions committed.
    pub commits: u64,
    /// Seconds spent in their `COMMIT` statements.
    pub commit_seconds: f64,
    /// Group commits, and the writes they carried.
    pub batches: u64,
    /// See `batches`.
    pub batched_writes: u64,
    /// Mount operations by kind, in [`MountOp::ALL`] order.
    pub mount_ops: [(MountOp, u64); 18],
    /// Bytes the integrity scrub read and checked.
    pub scrub_verified: u64,
}

/// Read every counter.
pub fn snapshot() -> Telemetry {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Telemetry {
        commits: get(&COMMITS),
        commit_seconds: get(&COMMIT_NANOS) as f64 / 1e9,
        batches: get(&BATCHES),
        batched_writes: get(&BATCHED_WRITES),
        mount_ops: MountOp::ALL.map(|op| (op, get(&MOUNT_OPS[op as usize]))),
        scrub_verified: get(&SCRUB_VERIFIED),
    }
}
