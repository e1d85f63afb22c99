//! `store`: Cairn's storage engine.
//!
//! Users' files are plain files in the backing directory (`DATA_DIR/files/USER/...`); their
//! metadata (ids, hashes, versions, quota, journal, audit) is in PostgreSQL. Every front end
//! (WebDAV, REST, FUSE, the CLI) calls the same [`Store`] operations, so versioning, quotas, the
//! audit log and the change journal behave the same whichever way a file arrives.
//!
//! This crate knows nothing of HTTP, WebDAV XML or FUSE. See docs/design/storage.md for the
//! durable-write order every mutation follows.

mod atrest;
mod batch;
mod cache;
mod checksums;
mod chunked;
mod datadir;
mod db;
mod delta;
mod disk;
mod draft;
mod error;
mod feed;
mod fsck;
mod groups;
mod hot;
mod intent;
mod journal;
mod links;
mod locks;
mod loginflow;
mod notify;
mod ops;
pub mod path;
mod pgcluster;
mod placing;
mod props;
mod quota;
mod read;
pub mod retention;
mod rows;
mod scan;
mod scrub;
mod sessions;
mod shares;
mod staging;
mod stats;
pub mod telemetry;
mod trash;
mod tree;
mod txn;
mod types;
mod uploads;
mod users;
mod vaults;
mod versions;
mod view;
pub mod watchdog;
mod write;

use crate::db::Cached;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub use atrest::{AtRest, at_rest};
pub use checksums::{ChecksumAlgo, ContentChecksum};
pub use chunked::{Chunk, ChunkedUpload, natural_cmp};
pub use datadir::DataDirLock;
pub use db::{DbTarget, MigrationReport};
pub use delta::DeltaFrom;
pub use draft::{Draft, DraftOf, SetAttrs};
pub use error::{Error, ErrorKind, Result};
pub use feed::{FeedCursor, FeedPage};
pub use fsck::{FsckProblem, FsckReport};
pub use groups::Group;
pub use journal::{Change, ChangePage};
pub use links::{Link, LinkAccess, LinkKey, NewLink};
pub use locks::{Lock, NewLock};
pub use loginflow::{LOGIN_FLOW_TTL, NewLoginFlow};
pub use notify::ChangeNotice;
pub use path::{InvalidPath, UserName, VPath};
pub use pgcluster::{ClusterOptions, ManagedCluster};
pub use props::{DeadProp, PropChange};
pub use retention::RetentionPolicy;
pub use scan::ScanReport;
pub use scrub::{ScrubFinding, ScrubOptions, ScrubStatus};
pub use sessions::{NewSession, Session};
pub use shares::{Incoming, Recipient, Share};
pub use stats::{DataDirState, PoolState, Totals};
pub use tree::Replace;
pub use types::{
    Access, Actor, ContentHash, ETag, FileId, Node, Origin, Role, Timestamp, TrashId, TrashItem, Usage, User,
    UserId, Version, VersionId, WriteOptions, WriteOutcome, civil, format_size, parse_size,
};
pub use uploads::{Appended, Checksum, UPLOAD_TTL, Upload};
pub use users::{AppPassword, AuditRecord, NewUser, UserInfo};
pub use vaults::{Vault, VaultAccount, claimed_vault};
pub use view::{MountPoint, Op, View, allowed};

use disk::Disk;

/// Where time comes from. The daemon uses the system clock; tests set the time instead of
/// sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still at `t` until [`Clock::set`].
    pub fn fixed(t: Timestamp) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(t.0))))
    }

    /// Move a fixed clock (no effect on the system clock).
    pub fn set(&self, t: Timestamp) {
        if let Some(c) = &self.0 {
            c.store(t.0, Ordering::SeqCst);
        }
    }

    /// The current time.
    #[allow(clippy::disallowed_methods)] // The one place the system clock is read.
    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Some(c) => Timestamp(c.load(Ordering::SeqCst)),
            None => Timestamp::from_system(std::time::SystemTime::now()),
        }
    }
}

/// What the engine needs to know.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The backing directory.
    pub data_dir: PathBuf,
    /// How versions thin out with age.
    pub retention: RetentionPolicy,
    /// Where time comes from.
    pub clock: Clock,
    /// Most PostgreSQL connections to hold.
    pub pool_size: usize,
    /// Log small writes (see [`Store::write`]) and sync the backing filesystem this long after
    /// the first one left unsynced; `None`: fsync each write's file and folders before answering.
    pub write_log: Option<std::time::Duration>,
}

impl StoreConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.into(),
            retention: RetentionPolicy::default(),
            clock: Clock::system(),
            pool_size: 32,
            write_log: None,
        }
    }
}

/// The engine. Cheap to clone; all clones share one pool and one data directory.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    disk: Disk,
    pool: deadpool_postgres::Pool,
    cfg: StoreConfig,
    target: DbTarget,
    cache: cache::NodeCache,
    /// The bytes of small files recently read, by content hash.
    hot: hot::HotFiles,
    /// The one `LISTEN cairn_changes` connection, shared by every watcher in this process.
    changes: std::sync::OnceLock<tokio::sync::broadcast::Sender<Option<notify::ChangeNotice>>>,
    /// Resumable uploads being appended to in this process.
    uploads: uploads::UploadSlots,
    /// Bumped after every credential change this process commits (see
    /// [`Store::credential_generation`]).
    cred_generation: std::sync::atomic::AtomicU64,
    /// Sent with this process's change notices, so that it can tell them from other processes'.
    notice_token: String,
    /// File ids taken from the database's sequence and not yet handed out (see
    /// [`Store::reserve_file_id`]).
    spare_ids: std::sync::Mutex<Vec<i64>>,
    /// Writes waiting to be committed together (see `batch`).
    batcher: batch::Batcher,
    /// Bytes of closed new files on their way to a commit, per user ([`Store::commit_new_draft`]):
    /// counted against the quota until their commit counts them.
    committing: std::sync::Mutex<std::collections::HashMap<UserId, u64>>,
    /// Logged small writes carried out and not yet synced (with `cfg.write_log`).
    write_log: Option<WriteLog>,
    /// [`Store::instance_id`], once read.
    instance: tokio::sync::OnceCell<String>,
    /// Login Flow v2 requests pending (see `loginflow`).
    login_flows: loginflow::LoginFlows,
    /// Intents carried out whose row could not be deleted (the connection went at that
    /// moment): deleted with the next ones (see `txn::lock::Carried`).
    done_intents: std::sync::Mutex<Vec<i64>>,
    /// Intents of commits whose outcome is unknown (see `txn::unsettled`).
    unsettled: txn::Unsettled,
    /// Paths whose committed disk work is under way (see `placing`).
    placing: Arc<placing::Placing>,
    /// Accounts with a vault (see `vaults`).
    vault_users: vaults::VaultUsers,
    /// Content the integrity scrub found damaged: its reads are refused (see `scrub`).
    quarantine: scrub::Quarantine,
    /// Users' share mounts (see `view`).
    mounts: view::MountCache,
}

/// The intents of logged small writes waiting for the next flush.
struct WriteLog {
    pending: std::sync::Mutex<Waiting>,
    /// Held through a flush (sync, then delete), so that a change waiting for one finds
    /// every earlier logged write durable when it gets it.
    flushing: tokio::sync::Mutex<()>,
    /// Wakes the flusher when the first one is left.
    wake: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct Waiting {
    /// The intents' ids.
    ids: Vec<i64>,
    /// Where they put content not yet synced (data directory paths).
    unsynced: std::collections::HashSet<String>,
    /// The same, for the intents of a flush under way.
    syncing: std::collections::HashSet<String>,
}

/// What start-up recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Interrupted commits carried to the end.
    pub intents_replayed: usize,
    /// Interrupted commits the disk no longer allows to finish (see `fsck`).
    pub intents_failed: usize,
    /// Leftover staging files and folders removed.
    pub staging_removed: usize,
    /// Expired or orphaned resumable uploads dropped.
    pub uploads_removed: usize,
}

impl Store {
    /// Open the data directory (creating its layout) and connect to the database. Does not
    /// migrate; call [`Store::migrate`].
    pub async fn open(cfg: StoreConfig, db: &DbTarget) -> Result<Store> {
        let data_dir = cfg.data_dir.clone();
        let disk = tokio::task::spawn_blocking(move || Disk::open(&data_dir))
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(|e| Error::io(format!("opening data directory {}", cfg.data_dir.display()), e))?;
        let pool = db::pool(db, cfg.pool_size)?;
        let write_log = cfg.write_log.map(|_| WriteLog {
            pending: Default::default(),
            flushing: Default::default(),
            wake: Default::default(),
        });
        let store = Store {
            inner: Arc::new(Inner {
                disk,
                pool,
                cfg,
                target: db.clone(),
                cache: Default::default(),
                hot: Default::default(),
                changes: Default::default(),
                uploads: Default::default(),
                cred_generation: Default::default(),
                notice_token: disk::random_hex(8),
                spare_ids: Default::default(),
                batcher: Default::default(),
                committing: Default::default(),
                write_log,
                instance: Default::default(),
                login_flows: Default::default(),
                done_intents: Default::default(),
                unsettled: Default::default(),
                placing: Default::default(),
                vault_users: Default::default(),
                quarantine: Default::default(),
                mounts: Default::default(),
            }),
        };
        if let (Some(delay), Some(log)) = (store.inner.cfg.write_log, &store.inner.write_log) {
            tokio::spawn(flusher(Arc::downgrade(&store.inner), log.wake.clone(), delay));
        }
        Ok(store)
    }

    /// Make every logged small write durable on disk and forget its intent (see
    /// [`Store::write`]). The daemon calls this on shutdown; it also runs by itself a moment
    /// after each write, and before any other change is carried out.
    pub async fn flush(&self) -> Result<()> {
        if self.logged_pending() {
            let client = self.inner.pool.get().await?;
            self.flush_with(&client).await?;
        }
        Ok(())
    }

    fn logged_pending(&self) -> bool {
        self.inner
            .write_log
            .as_ref()
            .is_some_and(|log| !log.pending.lock().unwrap_or_else(|e| e.into_inner()).ids.is_empty())
    }

    /// Whether the file at `rel` may hold a logged write's content not yet synced.
    pub(crate) fn unsynced(&self, rel: &str) -> bool {
        self.inner.write_log.as_ref().is_some_and(|log| {
            let w = log.pending.lock().unwrap_or_else(|e| e.into_inner());
            w.unsynced.contains(rel) || w.syncing.contains(rel)
        })
    }

    /// Intents of logged writes carried out (unsynced), which put content at `paths`: left
    /// for the next flush.
    pub(crate) fn logged(&self, ids: Vec<i64>, paths: Vec<String>) {
        let Some(log) = &self.inner.write_log else { return };
        let mut w = log.pending.lock().unwrap_or_else(|e| e.into_inner());
        if w.ids.is_empty() {
            log.wake.notify_one();
        }
        w.ids.extend(ids);
        w.unsynced.extend(paths);
    }

    /// [`Store::flush`] on a connection the caller holds (so that a flush never waits for the
    /// pool while changes waiting for it hold connections): syncfs, then the intents deleted.
    pub(crate) async fn flush_with(&self, client: &deadpool_postgres::Object) -> Result<()> {
        let Some(log) = &self.inner.write_log else { return Ok(()) };
        // Taken even with nothing pending: a flush under way has taken its ids already, and
        // what comes next must wait until they are durable.
        let _flushing = log.flushing.lock().await;
        let ids = {
            let mut w = log.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Still unsynced until the sync below returns.
            w.syncing = std::mem::take(&mut w.unsynced);
            std::mem::take(&mut w.ids)
        };
        if ids.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        let res = async {
            blocking(move || store.inner.disk.sync_all().map_err(|e| Error::io("syncfs", e))).await?;
            // Durable before any later change is carried out (synchronous commit).
            client.cexecute("DELETE FROM intents WHERE id = ANY($1)", &[&ids]).await?;
            Ok(())
        }
        .await;
        let mut w = log.pending.lock().unwrap_or_else(|e| e.into_inner());
        let syncing = std::mem::take(&mut w.syncing);
        if res.is_err() {
            // Left for the next flush (or the replay at start-up).
            w.ids.extend(ids);
            w.unsynced.extend(syncing);
        }
        res
    }

    /// Apply the embedded migrations that are missing (under an advisory lock), refusing an
    /// edited or unknown applied migration.
    pub async fn migrate(&self) -> Result<MigrationReport> {
        db::migrate(&self.inner.pool).await
    }

    /// This server's identity, made once when its database was created: the suffix of the
    /// file ids Nextcloud clients see (`oc:id`).
    pub async fn instance_id(&self) -> Result<String> {
        let id = self
            .inner
            .instance
            .get_or_try_init(|| async {
                let client = self.inner.pool.get().await?;
                Ok::<_, Error>(client.cquery_one("SELECT id FROM instance", &[]).await?.get::<_, String>(0))
            })
            .await?;
        Ok(id.clone())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        let client = self.inner.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// The backing directory.
    pub fn data_dir(&self) -> &Path {
        self.inner.disk.root()
    }

    /// (total, available) bytes of the filesystem holding the backing directory.
    pub fn disk_space(&self) -> Result<(u64, u64)> {
        self.inner.disk.space().map_err(|e| Error::io("statvfs", e))
    }

    /// The clock this store reads.
    pub fn clock(&self) -> &Clock {
        &self.inner.cfg.clock
    }

    /// Finish what a crash interrupted: replay committed intents, remove staging leftovers.
    /// Only the process holding the [`DataDirLock`] may call this (it removes uploads in
    /// progress).
    pub async fn recover(&self, _lock: &DataDirLock) -> Result<RecoveryReport> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery("SELECT id, ops, logged_staging, logged_data, logged_mtime FROM intents ORDER BY id", &[])
            .await?;
        let mut report = RecoveryReport::default();
        for row in rows {
            let id: i64 = row.get(0);
            let ops = intent::decode(row.get(1))?;
            // A logged small write's staged content, as it was acknowledged: its file may have
            // lost unsynced pages, or never have reached the disk.
            let logged: Vec<((String, Vec<u8>), i64)> = row
                .get::<_, Option<Vec<String>>>(2)
                .unwrap_or_default()
                .into_iter()
                .zip(row.get::<_, Option<Vec<Vec<u8>>>>(3).unwrap_or_default())
                .zip(row.get::<_, Option<Vec<i64>>>(4).unwrap_or_default())
                .collect();
            let store = self.clone();
            let replay = move || {
                let disk = &store.inner.disk;
                for ((staging, data), mtime) in &logged {
                    disk.restore_staging(staging, data, *mtime)
                        .map_err(|e| Error::io(format!("restoring {staging}"), e))?;
                }
                intent::apply(disk, &ops)
            };
            match blocking(replay).await {
                Ok(()) => {
                    client.cexecute("DELETE FROM intents WHERE id = $1", &[&id]).await?;
                    report.intents_replayed += 1;
                }
                // The disk was changed so that the promise cannot be kept. Keep the record
                // (fsck reports it; `scan` of the user realigns the database and clears it)
                // rather than refuse to start.
                Err(e) => {
                    tracing::error!(intent = id, error = %e, "an interrupted commit cannot be finished; run cairnctl fsck and scan");
                    report.intents_failed += 1;
                }
            }
        }
        let store = self.clone();
        report.staging_removed = blocking(move || {
            let disk = &store.inner.disk;
            let entries =
                disk.read_dir(disk::layout::STAGING).map_err(|e| Error::io("listing staging", e))?;
            for (name, _) in &entries {
                let name = String::from_utf8_lossy(name);
                disk.remove(&disk::layout::staging(&name)).map_err(|e| Error::io("removing staging", e))?;
            }
            Ok(entries.len())
        })
        .await?;
        report.uploads_removed = self.expire_uploads().await?;
        Ok(report)
    }
}

/// Run blocking filesystem work off the async workers, re-raising a panic. Called outside any
/// task on a multi-threaded runtime — a thread of its own driving one future with
/// `Handle::block_on`, like the FUSE request loops — it runs right here instead: blocking that
/// thread holds up nobody, and a trip to the pool would cost two thread wake-ups.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    if tokio::task::try_id().is_none()
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
    {
        return tokio::task::block_in_place(f);
    }
    match crate::watchdog::waiting("the disk (blocking pool)", tokio::task::spawn_blocking(f)).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::internal(format!("blocking task failed: {e}"))),
    }
}

/// Run a mutation to its end even if the caller stops waiting: once the metadata commits, the
/// disk work must follow, and a dropped request must not cut it short.
pub(crate) async fn detached<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(fut).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::internal(format!("task failed: {e}"))),
    }
}

/// Flush logged small writes a moment after the first one is left unsynced, so that many share
/// one syncfs. Ends with the store.
async fn flusher(inner: std::sync::Weak<Inner>, wake: Arc<tokio::sync::Notify>, delay: std::time::Duration) {
    loop {
        wake.notified().await;
        tokio::time::sleep(delay).await;
        let Some(inner) = inner.upgrade() else { return };
        let store = Store { inner };
        if let Err(e) = store.flush().await {
            tracing::error!(error = %e, "flushing logged writes (they stay logged)");
            // Tried again after the delay.
            wake.notify_one();
        }
    }
}
