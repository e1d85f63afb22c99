//! The mount's lifetime: mounting, the journal watcher that pushes changes made elsewhere to
//! the kernel, and unmounting (after the last write-behinds land).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use fuser::MountOption;
use store::{Origin, Store, VPath};
use tokio::runtime::Handle as Runtime;

use crate::MountConfig;
use crate::behind::{Flights, MAX_FLIGHTS, MAX_UNLINKS, PendingSet};
use crate::fs::Cairn;
use crate::locks::Leaf;
use crate::state::{Inval, Shared, Unlinks, UserCtx, invalidator};

/// A mounted file system; dropping it unmounts.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    mountpoint: std::path::PathBuf,
    watcher: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("mountpoint", &self.mountpoint).finish()
    }
}

impl Mount {
    /// Mount `store` at `cfg.mountpoint`. Must be called from a tokio runtime (multi-threaded):
    /// the kernel's requests run on their own threads and wait on the runtime for `store`.
    pub fn start(store: Store, cfg: MountConfig) -> io::Result<Mount> {
        let rt = Runtime::current();
        let mountpoint = cfg.mountpoint.clone();
        crate::recover_stale(&mountpoint)?;
        std::fs::create_dir_all(&mountpoint)?;
        let (inval_tx, inval_rx) = mpsc::channel::<Inval>();
        let shared = Arc::new(Shared {
            store: store.clone(),
            rt: rt.clone(),
            cfg: cfg.clone(),
            users: Leaf::new(HashMap::new()),
            views: Leaf::new(HashMap::new()),
            inodes: Leaf::new(HashMap::new()),
            open: Leaf::new(HashMap::new()),
            handles: Leaf::new(HashMap::new()),
            stale: Leaf::new(Default::default()),
            pending: Leaf::new(PendingSet::default()),
            unlinks: Leaf::new(Unlinks::default()),
            flights: Flights::new(MAX_FLIGHTS),
            unlinking: Flights::new(MAX_UNLINKS),
            dirs: Leaf::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            inval: Leaf::new(inval_tx),
        });
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("cairn".into()),
            MountOption::Subtype("cairn".into()),
            MountOption::DefaultPermissions,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::CUSTOM("allow_other".into()),
        ];
        config.n_threads = Some(cfg.threads.max(1));
        config.clone_fd = cfg.threads > 1;
        let session = fuser::Session::new(Cairn { sh: shared.clone() }, &mountpoint, &config)?;
        let notifier = session.notifier();
        std::thread::Builder::new()
            .name("fuse-inval".into())
            .spawn(move || invalidator(notifier, inval_rx))?;
        let session = session.spawn()?;
        let watcher = rt.spawn(watch(shared.clone()));
        tracing::info!(mountpoint = %mountpoint.display(), "FUSE mount ready");
        Ok(Mount { session: Some(session), mountpoint, watcher, shared })
    }

    /// Unmount, wait for the request loops to end and for the files closed just before to
    /// reach the store (blocking; not on a runtime thread unless in `block_in_place`).
    pub fn unmount(mut self) -> io::Result<()> {
        self.watcher.abort();
        let res = match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        };
        self.shared.flights.drain(FLIGHTS_DRAIN);
        self.shared.unlinking.drain(FLIGHTS_DRAIN);
        res
    }
}

/// How long unmounting waits for the last write-behind commits.
pub(crate) const FLIGHTS_DRAIN: Duration = Duration::from_secs(60);

impl Drop for Mount {
    fn drop(&mut self) {
        self.watcher.abort();
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
            self.shared.flights.drain(FLIGHTS_DRAIN);
            self.shared.unlinking.drain(FLIGHTS_DRAIN);
        }
    }
}

/// Follow every user's change journal and drop what the kernel caches about changed paths.
pub(crate) async fn watch(sh: Arc<Shared>) {
    // What came through the mount, the kernel already knows (see `catch_up`): such a change
    // costs no journal read; the next read covers it.
    let mut rx = sh.store.watch_changes(Some(Origin::Fuse));
    while let Some(first) = rx.recv().await {
        // Gather what arrives within a few milliseconds, so a burst of changes (a file copy
        // into the mount) costs one journal read, not one per change.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let mut msgs = vec![first];
        while let Ok(m) = rx.try_recv() {
            msgs.push(m);
        }
        // Users' own trees, and shares as their recipients see them (a share's inodes are the
        // recipient's own, so the owner's changes are sent for them too).
        let users: Vec<Arc<UserCtx>> = {
            let (users, views) = (sh.users.lock(), sh.views.lock());
            let all = users.values().chain(views.values());
            all.filter(|u| msgs.contains(&None) || msgs.contains(&Some(u.id))).cloned().collect()
        };
        for u in users {
            if let Err(e) = catch_up(&sh, &u).await {
                tracing::warn!(error = %e, "fuse: reading the change journal failed");
            }
        }
    }
}

pub(crate) async fn catch_up(sh: &Shared, u: &UserCtx) -> store::Result<()> {
    let user = u.user();
    loop {
        let after = *u.cursor.lock();
        let changes = sh.store.changes(&user, after, 500).await?;
        let Some(last) = changes.last().map(|c| c.seq) else { return Ok(()) };
        let tx = sh.inval.lock().clone();
        let mut parents: HashMap<VPath, Option<u64>> = HashMap::new();
        // The kernel already knows what came through the mount; invalidating it anyway would
        // detach whatever is mounted on a folder we just created.
        for c in changes.iter().filter(|c| c.origin != Some(Origin::Fuse)) {
            let ino = u.ino(c.file_id);
            if c.is_dir && c.kind != "create" {
                sh.dirs.lock().clear();
            }
            let _ = tx.send(Inval::Inode(ino));
            // Never wait for an open file's lock here: its holder may be waiting on this runtime.
            if sh.open.lock().contains_key(&ino) {
                sh.stale.lock().insert(ino);
            }
            for path in std::iter::once(&c.path).chain(c.old_path.as_ref()) {
                let Some(parent) = path.parent() else { continue };
                let ino = match parents.get(&parent) {
                    Some(ino) => *ino,
                    None => {
                        let ino = sh.store.stat(&user, &parent).await.ok().map(|p| u.ino(p.id));
                        parents.insert(parent, ino);
                        ino
                    }
                };
                if let Some(ino) = ino {
                    let _ = tx.send(Inval::Entry(ino, path.name().to_owned()));
                }
            }
        }
        *u.cursor.lock() = last;
    }
}
