//! The `fuser::Filesystem` implementation and the mount's lifetime.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, Notifier, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};
use store::{
    Actor, Draft, DraftOf, ETag, ErrorKind, FileId, Node, Origin, Replace, SetAttrs, Store, Timestamp, User,
    UserName, VPath,
};
use tokio::runtime::Handle as Runtime;

use crate::locks::{Leaf, lock_cv, lock_file, may_wait};
use crate::{MountConfig, Owner, errno, xattr};

/// How long the kernel may trust attributes and names without asking (changes made elsewhere
/// are pushed to it at once through the notifier).
const TTL: Duration = Duration::from_secs(10);
const ROOT: u64 = 1;
/// st_blksize: tools size their reads and writes by it; matches max_write.
const BLKSIZE: u32 = 1 << 20;

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
const FLIGHTS_DRAIN: Duration = Duration::from_secs(60);

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

enum Inval {
    Inode(u64),
    Entry(u64, String),
}

/// Sends kernel cache invalidations from a thread of its own: a notification can wait on a
/// kernel lock held by a request that is itself waiting for the runtime.
fn invalidator(notifier: Notifier, rx: mpsc::Receiver<Inval>) {
    while let Ok(job) = rx.recv() {
        let _ = match job {
            Inval::Inode(ino) => notifier.inval_inode(INodeNo(ino), 0, 0),
            Inval::Entry(parent, name) => notifier.inval_entry(INodeNo(parent), OsStr::new(&name)),
        };
    }
}

/// Follow every user's change journal and drop what the kernel caches about changed paths.
async fn watch(sh: Arc<Shared>) {
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
        let users: Vec<Arc<UserCtx>> = {
            let users = sh.users.lock();
            if msgs.contains(&None) {
                users.values().cloned().collect()
            } else {
                users.values().filter(|u| msgs.contains(&Some(u.id))).cloned().collect()
            }
        };
        for u in users {
            if let Err(e) = catch_up(&sh, &u).await {
                tracing::warn!(error = %e, "fuse: reading the change journal failed");
            }
        }
    }
}

async fn catch_up(sh: &Shared, u: &UserCtx) -> store::Result<()> {
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
            let ino = c.file_id.0 as u64 + 1;
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
                        let ino = sh.store.stat(&user, &parent).await.ok().map(|p| ino_of(p.id));
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

/// A handle opened for writing only bypasses the kernel's page cache (`FOPEN_DIRECT_IO`): its
/// writes come to the daemon as they would anyway (no writeback cache), but are not copied into
/// pages nobody reads through it, so a large copy into the mount fills memory once (the backing
/// file's pages), not twice. Nothing can map such a handle; the kernel drops cached pages a
/// direct write overlaps, so other handles' readers see the new bytes.
fn write_only_fopen(flags: i32) -> FopenFlags {
    match OpenFlags(flags).acc_mode() {
        OpenAccMode::O_WRONLY => FopenFlags::FOPEN_DIRECT_IO,
        _ => FopenFlags::empty(),
    }
}

/// An inode the kernel knows.
struct Known {
    ctx: Arc<UserCtx>,
    /// Lookups not yet forgotten.
    lookups: u64,
    /// When an entry reply last gave the kernel its name and attributes (each for [`TTL`]).
    told: Instant,
}

struct Shared {
    store: Store,
    rt: Runtime,
    cfg: MountConfig,
    /// Users seen at the mount root, by name.
    users: Leaf<HashMap<String, Arc<UserCtx>>>,
    /// Inodes the kernel knows, by inode.
    inodes: Leaf<HashMap<u64, Known>>,
    /// Files with open handles.
    open: Leaf<HashMap<u64, Arc<Mutex<OpenFile>>>>,
    handles: Leaf<HashMap<u64, Handle>>,
    /// Paths of folders the kernel asked about: a hint, confirmed through the store's node
    /// cache before use, so a lookup in an unchanged folder costs one query, not two.
    dirs: Leaf<HashMap<u64, VPath>>,
    /// Open files whose live content changed elsewhere: reopen before the next read.
    stale: Leaf<std::collections::HashSet<u64>>,
    /// Files created through the mount and not yet in the store (see [`Pending`]).
    pending: Leaf<PendingSet>,
    unlinks: Leaf<Unlinks>,
    flights: Flights,
    /// Unlinks on their way to the trash.
    unlinking: Flights,
    next_fh: AtomicU64,
    inval: Leaf<mpsc::Sender<Inval>>,
}

struct UserCtx {
    id: store::UserId,
    user: Leaf<User>,
    root: u64,
    owner: Owner,
    /// The change journal position the kernel caches are current with.
    cursor: Leaf<i64>,
    /// When `user` was last read from the database.
    refreshed: Leaf<Instant>,
}

impl UserCtx {
    fn user(&self) -> User {
        self.user.lock().clone()
    }
}

/// The open state of one file, shared by its handles.
#[derive(Default)]
struct OpenFile {
    /// Handles served through this process (reads and writes).
    cached: u32,
    /// Read-only handles the kernel serves from the backing file directly.
    passthrough: u32,
    writers: u32,
    /// The live content, for reads while nothing is written (opened on first read).
    live: Option<Arc<File>>,
    /// Uncommitted writes.
    draft: Option<Draft>,
    /// The file as open or the last commit saw it (saves a query when a draft starts).
    node: Option<Node>,
    /// A version of the pre-open content has been kept already.
    versioned: bool,
    /// A write hit the quota: the open's changes were dropped, and writes fail until every
    /// handle is closed (so no partial content is ever committed).
    over_quota: bool,
    backing: Weak<BackingId>,
}

/// A file created through the mount and not yet committed. `create` gives the kernel an
/// inode (a reserved file id) and an empty draft at once; the file reaches the store when it
/// is first flushed (`close`, `fsync`), in one commit with its content, instead of an empty
/// commit at `create` and a second one at `close`. Until then the mount answers for it
/// itself (lookup, attributes, reads, writes), and anything else that would need it in the
/// store (another open, `chmod`, xattrs, a rename or delete, a listing or `fsync` of its
/// folder) first *settles* it: commits it empty, as `create` used to, keeping the draft.
/// Other front ends see the file from its first flush or settling on; a crash before that
/// loses it, as a crash loses a local file that was never fsynced.
#[derive(Clone)]
struct Pending {
    parent: u64,
    path: VPath,
    mode: u32,
    created: Timestamp,
    /// Closed and on its way to the store.
    landing: Option<Landing>,
}

/// A new file's *write-behind* (the mechanism: docs/design/storage.md): closed by its only
/// handle, on its way to the store in `flight`; `size` and `mtime` as closed, which lookups
/// and attributes answer until the flight lands.
#[derive(Clone)]
struct Landing {
    size: u64,
    mtime: Timestamp,
    flight: Arc<Flight>,
}

/// The pending files, by inode and by (folder, name).
#[derive(Default)]
struct PendingSet {
    by_ino: HashMap<u64, Pending>,
    by_name: HashMap<(u64, String), u64>,
}

impl PendingSet {
    fn get(&self, ino: &u64) -> Option<&Pending> {
        self.by_ino.get(ino)
    }
    fn get_mut(&mut self, ino: &u64) -> Option<&mut Pending> {
        self.by_ino.get_mut(ino)
    }
    fn contains_key(&self, ino: &u64) -> bool {
        self.by_ino.contains_key(ino)
    }
    fn is_empty(&self) -> bool {
        self.by_ino.is_empty()
    }
    fn iter(&self) -> impl Iterator<Item = (&u64, &Pending)> {
        self.by_ino.iter()
    }
    fn named(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_owned())).copied()
    }
    fn insert(&mut self, ino: u64, p: Pending) {
        self.by_name.insert((p.parent, p.path.name().to_owned()), ino);
        self.by_ino.insert(ino, p);
    }
    fn remove(&mut self, ino: &u64) -> Option<Pending> {
        let p = self.by_ino.remove(ino)?;
        let key = (p.parent, p.path.name().to_owned());
        if self.by_name.get(&key) == Some(ino) {
            self.by_name.remove(&key);
        }
        Some(p)
    }
}

/// Work carried out behind a reply (a write-behind, see [`Landing`], or an unlink, see
/// [`Unlinks`]), for whoever must wait for it.
#[derive(Default)]
struct Flight {
    /// `None` while in flight, then the result.
    done: Mutex<Option<Res<()>>>,
    cv: Condvar,
}

impl Flight {
    fn wait(&self) -> Res<()> {
        may_wait("waiting for a flight");
        let mut done = lock_cv(&self.done);
        let _op = done
            .is_none()
            .then(|| store::watchdog::begin("fuse", "waiting for a write-behind or unlink to land"));
        while done.is_none() {
            done = self.cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        done.expect("finished")
    }

    fn finish(&self, res: Res<()>) {
        *lock_cv(&self.done) = Some(res);
        self.cv.notify_all();
    }
}

/// Unlinks carried out behind the caller's back. `unlink` of a file nobody has open through
/// the mount returns once the name is marked gone here; a task moves the files to the trash, all
/// the unlinks waiting at a time in one transaction. Until then lookups of the name are
/// negative, and anything that needs the store to agree (a create, mkdir or rename of the
/// name, a listing, `rmdir` or `fsyncdir` of the folder, a folder moved) waits for it. At most
/// [`MAX_UNLINKS`] are on their way; a failure is logged and the name shows again.
#[derive(Default)]
struct Unlinks {
    /// (folder inode, name) → its flight, until the file is in the trash.
    tombs: HashMap<(u64, String), Arc<Flight>>,
    queue: Vec<Tomb>,
    /// A task is carrying out the queue.
    running: bool,
}

struct Tomb {
    parent: u64,
    name: String,
    path: VPath,
    ctx: Arc<UserCtx>,
    actor: Actor,
    flight: Arc<Flight>,
}

/// Most new files in flight at once: a program creating files faster than they commit waits
/// at `close` for a slot, so the backlog (and what a crash can lose) stays small.
const MAX_FLIGHTS: usize = 128;

/// Most unlinks on their way to the trash at once. An unlink holds no data, so more may wait
/// than new files: a burst of unlinks then goes on while a transaction waits for the disk
/// (seen: the folder's fsync right after 10,000 creates) instead of stalling at 128.
const MAX_UNLINKS: usize = 1024;

/// The count of flights of one kind, for their limit and for unmounting.
struct Flights {
    count: Mutex<usize>,
    cv: Condvar,
    limit: usize,
}

impl Flights {
    fn new(limit: usize) -> Flights {
        Flights { count: Mutex::new(0), cv: Condvar::new(), limit }
    }

    fn begin(&self) {
        may_wait("waiting for a flight slot");
        let mut n = lock_cv(&self.count);
        let _op =
            (*n >= self.limit).then(|| store::watchdog::begin("fuse", "waiting for a write-behind slot"));
        while *n >= self.limit {
            n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    fn end(&self) {
        *lock_cv(&self.count) -= 1;
        self.cv.notify_all();
    }

    /// Wait until every flight has landed (at most `limit`).
    fn drain(&self, limit: Duration) {
        may_wait("draining flights");
        let n = lock_cv(&self.count);
        let _ = self.cv.wait_timeout_while(n, limit, |n| *n > 0);
    }
}

enum Handle {
    File { write: bool, backing: Option<Arc<BackingId>> },
    Dir(Listing),
}

/// What an open folder lists, taken when it is opened.
#[derive(Clone)]
enum Listing {
    /// The mount root: one folder per user.
    Users(Vec<DirEnt>),
    /// A user's folder as the store's cache shares it; each entry's attributes are made only
    /// if the kernel asks for them.
    Folder(Arc<UserCtx>, Arc<Vec<Node>>),
}

#[derive(Clone)]
struct DirEnt {
    ino: u64,
    name: String,
    attr: FileAttr,
    ctx: Arc<UserCtx>,
}

impl Listing {
    fn len(&self) -> usize {
        match self {
            Listing::Users(v) => v.len(),
            Listing::Folder(_, v) => v.len(),
        }
    }

    /// Entry `k`: (inode, name, kind).
    fn entry(&self, k: usize) -> (u64, &str, FileType) {
        match self {
            Listing::Users(v) => (v[k].ino, &v[k].name, FileType::Directory),
            Listing::Folder(_, v) => {
                let n = &v[k];
                (
                    ino_of(n.id),
                    n.path.name(),
                    if n.is_dir { FileType::Directory } else { FileType::RegularFile },
                )
            }
        }
    }

    /// Entry `k`'s attributes and user.
    fn attr(&self, sh: &Shared, k: usize) -> (FileAttr, &Arc<UserCtx>) {
        match self {
            Listing::Users(v) => (v[k].attr, &v[k].ctx),
            Listing::Folder(ctx, v) => (sh.attr(ctx, &v[k]), ctx),
        }
    }
}

struct Cairn {
    sh: Arc<Shared>,
}

type Res<T> = Result<T, Errno>;

fn ts(t: Timestamp) -> SystemTime {
    if t.0 >= 0 { UNIX_EPOCH + Duration::from_nanos(t.0 as u64) } else { UNIX_EPOCH }
}

fn ino_of(id: FileId) -> u64 {
    id.0 as u64 + 1
}

fn id_of(ino: u64) -> FileId {
    FileId(ino as i64 - 1)
}

fn actor(req: &Request) -> Actor {
    Actor { origin: Origin::Fuse, name: format!("uid {}", req.uid()), remote: None }
}

/// The actor for settling a pending file where no request says who (a listing).
fn fuse_actor() -> Actor {
    Actor { origin: Origin::Fuse, name: "fuse".to_owned(), remote: None }
}

fn name_str(name: &OsStr) -> Res<&str> {
    name.to_str().ok_or(Errno::EINVAL)
}

impl Shared {
    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        may_wait("waiting on the runtime");
        let op = store::watchdog::begin("fuse", "a call waiting on the store");
        self.rt.block_on(op.scope(f))
    }

    fn user_ctx(&self, name: &str) -> Res<Arc<UserCtx>> {
        if let Some(u) = self.users.lock().get(name) {
            return Ok(u.clone());
        }
        let uname = UserName::parse(name).map_err(|_| Errno::ENOENT)?;
        let (user, root, cursor) = self
            .run(async {
                let user = self.store.user(&uname).await?;
                let root = self.store.stat(&user, &VPath::root()).await?;
                let cursor = self.store.journal_cursor(&user).await?;
                Ok::<_, store::Error>((user, root, cursor))
            })
            .map_err(|e| errno::of(&e))?;
        let owner = self.cfg.owners.get(name).copied().unwrap_or(self.cfg.owner);
        let ctx = Arc::new(UserCtx {
            id: user.id,
            user: Leaf::new(user),
            root: ino_of(root.id),
            owner,
            cursor: Leaf::new(cursor),
            refreshed: Leaf::new(Instant::now()),
        });
        Ok(self.users.lock().entry(name.to_owned()).or_insert(ctx).clone())
    }

    /// The user an inode belongs to.
    fn ctx(&self, ino: u64) -> Res<Arc<UserCtx>> {
        self.inodes.lock().get(&ino).map(|k| k.ctx.clone()).ok_or(Errno::ESTALE)
    }

    /// Record that the kernel learned of `ino` once more.
    fn remember(&self, ino: u64, ctx: &Arc<UserCtx>) {
        let now = Instant::now();
        let mut inodes = self.inodes.lock();
        let k = inodes.entry(ino).or_insert_with(|| Known { ctx: ctx.clone(), lookups: 0, told: now });
        k.lookups += 1;
        k.told = now;
    }

    /// Whether the kernel was told the name and attributes of every entry of `listing` lately
    /// enough that it still holds them for a while (changes since reach it through the
    /// notifier). Then a listing need not send them again.
    fn told_lately(&self, listing: &Listing) -> bool {
        let now = Instant::now();
        let inodes = self.inodes.lock();
        (0..listing.len()).all(|k| {
            inodes.get(&listing.entry(k).0).is_some_and(|known| now.duration_since(known.told) < TTL / 2)
        })
    }

    fn node(&self, ctx: &UserCtx, ino: u64) -> Res<Node> {
        let user = ctx.user();
        self.run(self.store.stat_id(&user, id_of(ino))).map_err(|e| errno::of(&e))
    }

    fn attr(&self, ctx: &UserCtx, node: &Node) -> FileAttr {
        let ino = ino_of(node.id);
        let (mut size, mut mtime) = (node.size, node.mtime);
        if !node.is_dir
            && let Some(of) = self.opened(ino)
        {
            if let Some(d) = &lock_file(&of).draft {
                size = d.len();
                mtime = d.mtime().unwrap_or(mtime);
            }
            self.forget_open(ino, of);
        }
        let t = ts(mtime);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: if node.is_dir { FileType::Directory } else { FileType::RegularFile },
            perm: node.mode.unwrap_or(if node.is_dir { 0o755 } else { 0o644 }) as u16,
            nlink: if node.is_dir { 2 } else { 1 },
            uid: ctx.owner.uid,
            gid: ctx.owner.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    fn root_attr(&self) -> FileAttr {
        FileAttr {
            ino: INodeNo(ROOT),
            size: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    /// The user and path of `name` in the folder `parent` (not the mount root).
    fn child(&self, parent: u64, name: &OsStr) -> Res<(Arc<UserCtx>, VPath)> {
        if parent == ROOT {
            return Err(Errno::EPERM);
        }
        let ctx = self.ctx(parent)?;
        // The folder's last known path, confirmed through the store's node cache (exact for
        // changes made in this process, free while the user's tree is unchanged).
        let cached = self.dirs.lock().get(&parent).cloned();
        let confirmed = cached.filter(|p| {
            let user = ctx.user();
            self.run(self.store.stat(&user, p)).is_ok_and(|n| n.is_dir && ino_of(n.id) == parent)
        });
        let dir_path = match confirmed {
            Some(p) => p,
            None => {
                let dir = self.node(&ctx, parent)?;
                if !dir.is_dir {
                    return Err(Errno::ENOTDIR);
                }
                let mut dirs = self.dirs.lock();
                if dirs.len() >= 100_000 {
                    dirs.clear();
                }
                dirs.insert(parent, dir.path.clone());
                dir.path
            }
        };
        let name = name_str(name)?;
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let path = dir_path.join(name).map_err(|e| match e {
            store::InvalidPath::NameTooLong | store::InvalidPath::PathTooLong => Errno::ENAMETOOLONG,
            _ => Errno::EINVAL,
        })?;
        Ok((ctx, path))
    }

    fn stat_path(&self, ctx: &UserCtx, path: &VPath) -> Res<Option<Node>> {
        let user = ctx.user();
        match self.run(self.store.stat(&user, path)) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(errno::of(&e)),
        }
    }

    /// The open state of `ino`, made if there is none. Give it back through
    /// [`Shared::forget_open`] unless a handle keeps it (see there).
    fn open_file(&self, ino: u64) -> Arc<Mutex<OpenFile>> {
        self.open.lock().entry(ino).or_default().clone()
    }

    /// The open state of `ino`, if it has one.
    fn opened(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        self.open.lock().get(&ino).cloned()
    }

    /// Give back `of`, the open state of `ino` taken without a handle, and drop it if no handle
    /// uses it any more. Whoever gives back the last reference drops it: then nobody else can
    /// hold or wait for its lock (references are taken under the map's lock), so this never
    /// waits under the map's lock. A reference kept by a handle's call is given back by the
    /// handle's `release`.
    fn forget_open(&self, ino: u64, of: Arc<Mutex<OpenFile>>) {
        drop(of);
        let mut open = self.open.lock();
        let Some(entry) = open.get(&ino) else { return };
        if Arc::strong_count(entry) > 1 {
            return;
        }
        let idle =
            entry.try_lock().is_ok_and(|of| of.cached == 0 && of.passthrough == 0 && of.draft.is_none());
        if idle {
            open.remove(&ino);
            self.stale.lock().remove(&ino);
        }
    }

    /// Start a draft of `ino` if there is none (a copy of the content unless `empty`).
    fn ensure_draft(&self, ctx: &UserCtx, ino: u64, of: &mut OpenFile, empty: bool) -> Res<()> {
        if of.over_quota {
            return Err(Errno::EDQUOT);
        }
        if of.draft.is_some() {
            return Ok(());
        }
        // Written on through a copy of a handle whose close sent the file on its way.
        let _ = self.wait_flight(ino);
        // Changed elsewhere since we saw it: look again.
        let known = of.node.take().filter(|_| !self.stale.lock().contains(&ino));
        let user = self.user_for_write(ctx);
        let draft = self
            .run(async {
                let node = match known {
                    Some(n) => n,
                    None => self.store.stat_id(&user, id_of(ino)).await?,
                };
                self.store.begin_draft(&user, &node, !empty).await
            })
            .map_err(|e| errno::of(&e))?;
        of.draft = Some(draft);
        Ok(())
    }

    /// `ctx`'s user, read again if it is more than a second old (the quota may have changed).
    fn user_for_write(&self, ctx: &UserCtx) -> User {
        if ctx.refreshed.lock().elapsed() > Duration::from_secs(1) {
            let name = ctx.user().name;
            if let Ok(fresh) = self.run(self.store.user(&name)) {
                *ctx.user.lock() = fresh;
                *ctx.refreshed.lock() = Instant::now();
            }
        }
        ctx.user()
    }

    /// Commit `of`'s draft, if any. A file deleted meanwhile loses the draft (as POSIX loses the
    /// writes to an unlinked file); a failed commit keeps it for the next attempt.
    fn commit(&self, actor: &Actor, ctx: &UserCtx, ino: u64, of: &mut OpenFile) -> Res<()> {
        let Some(mut draft) = of.draft.take() else {
            // A new file whose writes were dropped (quota) still exists, empty.
            return self.settle_locked(actor, ino, of);
        };
        let user = ctx.user();
        let keep = !of.versioned;
        let pending = match self.pending_where(ctx, ino) {
            Ok(p) => p,
            Err(Ok(())) => {
                // Its folder was deleted meanwhile: the file went with it (as POSIX loses the
                // writes to an unlinked file).
                self.pending.lock().remove(&ino);
                return Ok(());
            }
            Err(Err(e)) => {
                of.draft = Some(draft);
                return Err(e);
            }
        };
        let target = match &pending {
            Some(p) => DraftOf::New { path: p.path.clone(), id: id_of(ino), mode: Some(p.mode) },
            // The id the file had when opened (a new file that met another of its name
            // became that one).
            None => DraftOf::File(of.node.as_ref().map_or(id_of(ino), |n| n.id)),
        };
        match self.run(self.store.commit_draft(actor, &user, target, &mut draft, keep)) {
            Ok(node) => {
                if let Some(p) = pending {
                    self.pending.lock().remove(&ino);
                    if node.id != id_of(ino) {
                        // Someone created the name meanwhile and this content went into that
                        // file: the kernel must look the name up again.
                        let _ = self.inval.lock().send(Inval::Entry(p.parent, p.path.name().to_owned()));
                    }
                }
                of.versioned = true;
                of.node = Some(node);
                of.live = Some(Arc::new(draft.into_file()));
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => {
                of.draft = Some(draft);
                Err(errno::of(&e))
            }
        }
    }

    /// The pending file `ino` (if it is one), at its folder's current path: the folder may
    /// have moved since (a WebDAV MOVE). `Err(Ok(()))` if the folder is gone.
    fn pending_where(&self, ctx: &UserCtx, ino: u64) -> Result<Option<Pending>, Res<()>> {
        let Some(mut p) = self.pending.lock().get(&ino).cloned() else { return Ok(None) };
        let user = ctx.user();
        let dir = match self.run(self.store.stat_id(&user, id_of(p.parent))) {
            Ok(d) if d.is_dir => d,
            Ok(_) => return Err(Ok(())),
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Ok(())),
            Err(e) => return Err(Err(errno::of(&e))),
        };
        if dir.path != p.path.parent().unwrap_or_else(VPath::root) {
            p.path = dir.path.join(p.path.name()).map_err(|_| Err(Errno::ENAMETOOLONG))?;
            if let Some(q) = self.pending.lock().get_mut(&ino) {
                q.path = p.path.clone();
            }
        }
        Ok(Some(p))
    }

    /// The pending file `name` in the folder `parent`, if any.
    fn pending_named(&self, parent: u64, name: &str) -> Option<(u64, Pending)> {
        let pending = self.pending.lock();
        let ino = pending.named(parent, name)?;
        pending.get(&ino).map(|p| (ino, p.clone()))
    }

    /// What the store will hold for the pending file `ino` (its size and time come from the
    /// draft, see `attr`).
    fn pending_node(&self, ino: u64) -> Option<Node> {
        self.pending.lock().get(&ino).map(|p| Node {
            id: id_of(ino),
            path: p.path.clone(),
            is_dir: false,
            size: p.landing.as_ref().map_or(0, |l| l.size),
            mtime: p.landing.as_ref().map_or(p.created, |l| l.mtime),
            content_hash: None,
            etag: ETag(String::new()),
            mode: Some(p.mode),
        })
    }

    /// Put the pending file `ino` in the store, empty (its draft stays the open's uncommitted
    /// writes). Someone else having taken the name meanwhile leaves it pending: its first
    /// commit then becomes that file's new content.
    fn settle(&self, actor: &Actor, ino: u64) -> Res<()> {
        if self.pending.lock().is_empty() {
            return Ok(());
        }
        if let Some(f) = self.flight(ino) {
            // On its way: it is in the store (or lost) once the flight lands.
            let _ = f.wait();
            return Ok(());
        }
        let of_arc = self.open_file(ino);
        let mut of = lock_file(&of_arc);
        let res = self.settle_locked(actor, ino, &mut of);
        drop(of);
        self.forget_open(ino, of_arc);
        res
    }

    fn settle_locked(&self, actor: &Actor, ino: u64, of: &mut OpenFile) -> Res<()> {
        let ctx = self.ctx(ino)?;
        let p = match self.pending_where(&ctx, ino) {
            // A flight puts it in the store.
            Ok(Some(p)) if p.landing.is_some() => return Ok(()),
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(Ok(())) => {
                // Its folder was deleted meanwhile: the file went with it (the open's writes
                // go on into the draft and are dropped at its commit, as for any deleted file).
                self.pending.lock().remove(&ino);
                return Ok(());
            }
            Err(Err(e)) => return Err(e),
        };
        let user = ctx.user();
        match self.run(self.store.create_file_with_id(actor, &user, &p.path, Some(p.mode), id_of(ino))) {
            Ok(node) => {
                self.pending.lock().remove(&ino);
                of.node = Some(node);
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(errno::of(&e)),
        }
    }

    /// The pending file `ino`'s flight, if it is on its way to the store.
    fn flight(&self, ino: u64) -> Option<Arc<Flight>> {
        self.pending.lock().get(&ino).and_then(|p| Some(p.landing.as_ref()?.flight.clone()))
    }

    /// Wait for the pending file `ino` to land if it is on its way: the commit's result.
    fn wait_flight(&self, ino: u64) -> Res<()> {
        self.flight(ino).map_or(Ok(()), |f| f.wait())
    }

    /// Hand the pending file `ino`, closed by its only handle, to a task that commits it (see
    /// [`Landing`]). False if it does not qualify; the caller then commits here and now.
    fn write_behind(
        self: &Arc<Self>,
        actor: &Actor,
        ctx: &Arc<UserCtx>,
        ino: u64,
        of: &mut OpenFile,
    ) -> bool {
        let Some(draft) = of.draft.as_ref() else { return false };
        if of.cached + of.passthrough != 1 || of.over_quota {
            return false;
        }
        if self.pending.lock().get(&ino).is_none_or(|p| p.landing.is_some()) {
            return false;
        }
        let mtime = draft.mtime().unwrap_or_else(|_| self.store.clock().now());
        let flight = Arc::new(Flight::default());
        self.flights.begin();
        let pending = match self.pending.lock().get_mut(&ino) {
            Some(p) => {
                p.landing = Some(Landing { size: draft.len(), mtime, flight: flight.clone() });
                p.clone()
            }
            None => {
                self.flights.end();
                return false;
            }
        };
        let draft = of.draft.take().expect("checked above");
        // Made here, not in the task: its bytes count against the quota from now on.
        let landing = self.land(actor, ctx, ino, &pending, draft);
        let sh = self.clone();
        self.rt.spawn(async move {
            let res = landing.await;
            let p = sh.pending.lock().remove(&ino);
            if let Err(e) = res {
                tracing::warn!(
                    ino,
                    errno = e.code(),
                    "fuse: a file closed through the mount could not be committed; its content is lost"
                );
                let tx = sh.inval.lock().clone();
                let _ = tx.send(Inval::Inode(ino));
                if let Some(p) = p {
                    let _ = tx.send(Inval::Entry(p.parent, p.path.name().to_owned()));
                }
            }
            flight.finish(res);
            sh.flights.end();
        });
        true
    }

    /// The commit of a flight's draft as the new file in its folder, wherever the folder is
    /// then (a folder deleted meanwhile took the file with it). The draft's bytes count against
    /// the quota from this call on (see `Store::commit_new_draft`).
    fn land(
        self: &Arc<Self>,
        actor: &Actor,
        ctx: &UserCtx,
        ino: u64,
        p: &Pending,
        draft: Draft,
    ) -> impl std::future::Future<Output = Res<()>> + Send + 'static {
        let (parent, name) = (p.parent, p.path.name().to_owned());
        let commit = self.store.commit_new_draft(
            actor,
            &ctx.user(),
            id_of(parent),
            &name,
            id_of(ino),
            Some(p.mode),
            draft,
        );
        let sh = self.clone();
        async move {
            match commit.await {
                Ok(node) => {
                    if node.id != id_of(ino) {
                        // Someone created the name meanwhile and this content went into that
                        // file: the kernel must look the name up again.
                        let _ = sh.inval.lock().send(Inval::Entry(parent, name));
                    }
                    Ok(())
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(e) => Err(errno::of(&e)),
            }
        }
    }

    /// Settle every pending file `which` picks.
    fn settle_all(&self, actor: &Actor, which: impl Fn(u64, &Pending) -> bool) -> Res<()> {
        let inos: Vec<u64> =
            self.pending.lock().iter().filter(|(i, p)| which(**i, p)).map(|(i, _)| *i).collect();
        inos.into_iter().try_for_each(|ino| self.settle(actor, ino))
    }

    /// The unlink on its way of `name` in `parent`, if any.
    fn tomb(&self, parent: u64, name: &str) -> Option<Arc<Flight>> {
        self.unlinks.lock().tombs.get(&(parent, name.to_owned())).cloned()
    }

    fn wait_tomb(&self, parent: u64, name: &str) {
        if let Some(f) = self.tomb(parent, name) {
            let _ = f.wait();
        }
    }

    /// Wait for the unlinks on their way in the folders `which` picks.
    fn wait_tombs(&self, which: impl Fn(u64) -> bool) {
        let flights: Vec<Arc<Flight>> = {
            let u = self.unlinks.lock();
            if u.tombs.is_empty() {
                return;
            }
            u.tombs.iter().filter(|((parent, _), _)| which(*parent)).map(|(_, f)| f.clone()).collect()
        };
        for f in flights {
            let _ = f.wait();
        }
    }

    /// Unlink the file `name` in `parent` behind the caller's back (see [`Unlinks`]).
    fn unlink_behind(self: &Arc<Self>, actor: &Actor, ctx: &Arc<UserCtx>, parent: u64, path: VPath) {
        self.unlinking.begin();
        let flight = Arc::new(Flight::default());
        let name = path.name().to_owned();
        let tomb = Tomb {
            parent,
            name: name.clone(),
            path,
            ctx: ctx.clone(),
            actor: actor.clone(),
            flight: flight.clone(),
        };
        let start = {
            let mut u = self.unlinks.lock();
            u.tombs.insert((parent, name), flight);
            u.queue.push(tomb);
            !std::mem::replace(&mut u.running, true)
        };
        if start {
            let sh = self.clone();
            self.rt.spawn(async move { sh.unlinker().await });
        }
    }

    /// Carry out the queued unlinks, all that are waiting at a time in one transaction per user
    /// and actor, until none is left.
    async fn unlinker(&self) {
        loop {
            let batch = {
                let mut u = self.unlinks.lock();
                if u.queue.is_empty() {
                    u.running = false;
                    return;
                }
                std::mem::take(&mut u.queue)
            };
            let mut groups: Vec<Vec<Tomb>> = Vec::new();
            for t in batch {
                match groups.iter_mut().find(|g| g[0].ctx.id == t.ctx.id && g[0].actor == t.actor) {
                    Some(g) => g.push(t),
                    None => groups.push(vec![t]),
                }
            }
            for group in groups {
                let user = group[0].ctx.user();
                let paths = group.iter().map(|t| t.path.clone()).collect();
                let answers = self.store.delete_files(&group[0].actor, &user, paths).await;
                for (i, t) in group.into_iter().enumerate() {
                    let res = match &answers {
                        Ok(a) => match &a[i] {
                            Ok(_) => Ok(()),
                            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                            Err(e) => Err(errno::of(e)),
                        },
                        Err(e) => Err(errno::of(e)),
                    };
                    if let Err(e) = res {
                        tracing::warn!(path = %t.path, errno = e.code(), "fuse: a file unlinked through the mount could not be moved to the trash; it is back");
                        let _ = self.inval.lock().send(Inval::Entry(t.parent, t.name.clone()));
                    }
                    {
                        let mut u = self.unlinks.lock();
                        let key = (t.parent, t.name);
                        if u.tombs.get(&key).is_some_and(|f| Arc::ptr_eq(f, &t.flight)) {
                            u.tombs.remove(&key);
                        }
                    }
                    t.flight.finish(res);
                    self.unlinking.end();
                }
            }
        }
    }

    /// Settle the pending files in the folder `dir` (about to be listed, removed or fsynced).
    fn settle_in(&self, actor: &Actor, dir: u64) -> Res<()> {
        self.wait_tombs(|parent| parent == dir);
        self.settle_all(actor, |_, p| p.parent == dir)
    }

    /// Settle the pending file `name` in `parent`, if there is one.
    fn settle_named(&self, actor: &Actor, parent: u64, name: &OsStr) -> Res<()> {
        let Some(name) = name.to_str() else { return Ok(()) };
        self.wait_tomb(parent, name);
        match self.pending_named(parent, name) {
            Some((ino, _)) => self.settle(actor, ino),
            None => Ok(()),
        }
    }

    /// Settle every pending file at or below `path` of `ctx`'s user (a folder about to move).
    fn settle_below(&self, actor: &Actor, ctx: &UserCtx, path: &VPath) -> Res<()> {
        // Unlinks on their way are known by folder inode, not path: wait for all of them.
        self.wait_tombs(|_| true);
        self.settle_all(actor, |ino, p| {
            p.path.starts_with(path) && self.ctx(ino).is_ok_and(|u| u.id == ctx.id)
        })
    }

    fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, h);
        fh
    }

    fn list(&self, ino: u64) -> Res<Listing> {
        if ino == ROOT {
            let infos = self.run(self.store.list_users()).map_err(|e| errno::of(&e))?;
            let mut out = Vec::new();
            for info in infos {
                let name = info.user.name.as_str().to_owned();
                let ctx = self.user_ctx(&name)?;
                let root = self.node(&ctx, ctx.root)?;
                out.push(DirEnt { ino: ctx.root, attr: self.attr(&ctx, &root), name, ctx });
            }
            return Ok(Listing::Users(out));
        }
        let ctx = self.ctx(ino)?;
        self.settle_in(&fuse_actor(), ino)?;
        let dir = self.node(&ctx, ino)?;
        let user = ctx.user();
        let nodes = self.run(self.store.children(&user, &dir.path)).map_err(|e| errno::of(&e))?;
        Ok(Listing::Folder(ctx, nodes))
    }

    /// The extended attributes of file `id`: (name without `user.`, stored value).
    fn xattrs(&self, ctx: &UserCtx, id: FileId) -> Res<Vec<(String, String)>> {
        let user = ctx.user();
        let mut props = self.run(self.store.dead_props(&user, &[id])).map_err(|e| errno::of(&e))?;
        Ok(props
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.namespace == xattr::NAMESPACE)
            .map(|p| (p.name, p.value))
            .collect())
    }

    fn entry(&self, ctx: &Arc<UserCtx>, node: &Node, reply: ReplyEntry) {
        let attr = self.attr(ctx, node);
        self.remember(attr.ino.0, ctx);
        reply.entry(&TTL, &attr, Generation(0));
    }
}

fn time_of(t: TimeOrNow, clock: &store::Clock) -> Timestamp {
    match t {
        TimeOrNow::SpecificTime(st) => Timestamp::from_system(st),
        TimeOrNow::Now => clock.now(),
    }
}

macro_rules! tryr {
    ($reply:ident, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(errno) => return $reply.error(errno),
        }
    };
}

impl Filesystem for Cairn {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let wanted = InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_MAX_PAGES;
        let _ = config.add_capabilities(wanted & config.capabilities());
        if self.sh.cfg.passthrough
            && config.capabilities().contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
        {
            let _ = config.set_max_stack_depth(2);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let sh = &self.sh;
        if parent.0 == ROOT {
            let ctx = tryr!(reply, name_str(name).and_then(|n| sh.user_ctx(n)));
            let root = tryr!(reply, sh.node(&ctx, ctx.root));
            return sh.entry(&ctx, &root, reply);
        }
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        let negative = |reply: ReplyEntry| {
            // A negative entry (inode 0): the kernel remembers the absence for the TTL, so a
            // create does not ask twice; a create elsewhere invalidates it through the journal.
            let mut absent = sh.root_attr();
            absent.ino = INodeNo(0);
            reply.entry(&TTL, &absent, Generation(0));
        };
        if sh.tomb(parent.0, path.name()).is_some() {
            return negative(reply);
        }
        if let Some(node) = sh.pending_named(parent.0, path.name()).and_then(|(ino, _)| sh.pending_node(ino))
        {
            return sh.entry(&ctx, &node, reply);
        }
        match tryr!(reply, sh.stat_path(&ctx, &path)) {
            Some(node) => sh.entry(&ctx, &node, reply),
            None => negative(reply),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut inodes = self.sh.inodes.lock();
        if let Some(k) = inodes.get_mut(&ino.0) {
            k.lookups = k.lookups.saturating_sub(nlookup);
            if k.lookups == 0 {
                inodes.remove(&ino.0);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let sh = &self.sh;
        if ino.0 == ROOT {
            return reply.attr(&TTL, &sh.root_attr());
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        if let Some(node) = sh.pending_node(ino.0) {
            return reply.attr(&TTL, &sh.attr(&ctx, &node));
        }
        let node = tryr!(reply, sh.node(&ctx, ino.0));
        reply.attr(&TTL, &sh.attr(&ctx, &node));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let sh = &self.sh;
        if ino.0 == ROOT {
            return reply.error(Errno::EPERM);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        // Ownership is the mount's policy: "changing" it to what it is succeeds, nothing else.
        if uid.is_some_and(|u| u != ctx.owner.uid) || gid.is_some_and(|g| g != ctx.owner.gid) {
            return reply.error(Errno::EPERM);
        }
        let actor = actor(req);
        tryr!(reply, sh.settle(&actor, ino.0));
        let node = tryr!(reply, sh.node(&ctx, ino.0));
        let mut mtime = mtime.map(|t| time_of(t, sh.store.clock()));
        if let Some(size) = size {
            if node.is_dir {
                return reply.error(Errno::EISDIR);
            }
            let of_arc = sh.open_file(ino.0);
            let res = {
                let mut of = lock_file(&of_arc);
                let res = sh.ensure_draft(&ctx, ino.0, &mut of, size == 0).and_then(|()| {
                    let d = of.draft.as_ref().expect("draft");
                    d.set_len(size).map_err(|e| errno::of(&e))?;
                    if let Some(t) = mtime.take() {
                        d.set_mtime(t).map_err(|e| errno::of(&e))?;
                    } else {
                        let _ = d.set_mtime(sh.store.clock().now());
                    }
                    Ok(())
                });
                // truncate(2) on a file nobody has open: commit at once.
                match res {
                    Ok(()) if of.cached == 0 && of.passthrough == 0 => {
                        sh.commit(&actor, &ctx, ino.0, &mut of)
                    }
                    other => other,
                }
            };
            sh.forget_open(ino.0, of_arc);
            tryr!(reply, res);
        }
        if let Some(t) = mtime
            && let Some(of_arc) = sh.opened(ino.0)
        {
            let res = match &lock_file(&of_arc).draft {
                Some(d) => d.set_mtime(t).map(|()| true).map_err(|e| errno::of(&e)),
                None => Ok(false),
            };
            sh.forget_open(ino.0, of_arc);
            if tryr!(reply, res) {
                mtime = None;
            }
        }
        let node = if mode.is_some() || mtime.is_some() {
            let user = ctx.user();
            let attrs = SetAttrs { mode: mode.map(|m| m & 0o7777), mtime };
            tryr!(
                reply,
                sh.run(sh.store.set_attrs(&actor, &user, id_of(ino.0), attrs)).map_err(|e| errno::of(&e))
            )
        } else {
            tryr!(reply, sh.node(&ctx, ino.0))
        };
        reply.attr(&TTL, &sh.attr(&ctx, &node));
    }

    fn readlink(&self, _req: &Request, _ino: INodeNo, reply: ReplyData) {
        reply.error(Errno::EINVAL);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Only regular files: devices, FIFOs and sockets have no place in a file store.
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.settle_named(&actor(req), parent.0, name));
        let node = tryr!(reply, create_empty(sh, &actor(req), &ctx, &path, mode & !umask));
        sh.entry(&ctx, &node, reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.settle_named(&actor(req), parent.0, name));
        let user = ctx.user();
        let node = tryr!(
            reply,
            sh.run(sh.store.mkdir_mode(&actor(req), &user, &path, Some(mode & !umask & 0o7777)))
                .map_err(|e| errno::of(&e))
        );
        sh.entry(&ctx, &node, reply);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.settle_named(&actor(req), parent.0, name));
        let node = tryr!(reply, sh.stat_path(&ctx, &path).and_then(|n| n.ok_or(Errno::ENOENT)));
        if node.is_dir {
            return reply.error(Errno::EISDIR);
        }
        // A file open through the mount is unlinked here and now (its handles' closes must
        // find it gone); any other behind the reply.
        if !sh.open.lock().contains_key(&ino_of(node.id)) {
            sh.unlink_behind(&actor(req), &ctx, parent.0, path);
            return reply.ok();
        }
        let user = ctx.user();
        tryr!(reply, sh.run(sh.store.delete(&actor(req), &user, &path, None)).map_err(|e| errno::of(&e)));
        reply.ok();
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        let node = tryr!(reply, sh.stat_path(&ctx, &path).and_then(|n| n.ok_or(Errno::ENOENT)));
        if !node.is_dir {
            return reply.error(Errno::ENOTDIR);
        }
        // Files created in it through the mount count, on their way or not; the store checks
        // that it is empty in the transaction that removes it.
        tryr!(reply, sh.settle_in(&actor(req), ino_of(node.id)));
        let user = ctx.user();
        let res = sh.run(sh.store.remove_dir(&actor(req), &user, &path));
        sh.dirs.lock().clear();
        match res {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        // Symlinks would point outside what Cairn versions and syncs; refused like on FAT.
        reply.error(Errno::EPERM);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let sh = &self.sh;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let (ctx, from) = tryr!(reply, sh.child(parent.0, name));
        let (to_ctx, to) = tryr!(reply, sh.child(newparent.0, newname));
        if ctx.id != to_ctx.id {
            return reply.error(Errno::EXDEV);
        }
        let who = actor(req);
        tryr!(reply, sh.settle_named(&who, parent.0, name));
        tryr!(reply, sh.settle_named(&who, newparent.0, newname));
        let src = tryr!(reply, sh.stat_path(&ctx, &from).and_then(|n| n.ok_or(Errno::ENOENT)));
        if src.is_dir {
            tryr!(reply, sh.settle_below(&who, &ctx, &from));
        }
        if from == to {
            return reply.ok();
        }
        if to.starts_with(&from) {
            return reply.error(Errno::EINVAL);
        }
        if from.starts_with(&to) {
            // The destination is a folder holding the source.
            return reply.error(Errno::ENOTEMPTY);
        }
        let replace = match flags.contains(RenameFlags::RENAME_NOREPLACE) {
            true => Replace::Nothing,
            false => Replace::Posix,
        };
        if replace == Replace::Posix
            && src.is_dir
            && tryr!(reply, sh.stat_path(&ctx, &to)).is_some_and(|d| d.is_dir)
        {
            // Files created in it through the mount count, on their way or not; the store checks
            // that it is empty in the transaction that replaces it.
            tryr!(reply, sh.settle_below(&who, &ctx, &to));
        }
        let user = ctx.user();
        let res = sh.run(sh.store.rename(&who, &user, &from, &to, replace)).map_err(|e| errno::of(&e));
        // A moved folder takes every cached path below it along (and a replaced one is gone).
        if src.is_dir || res.is_err() {
            sh.dirs.lock().clear();
        }
        tryr!(reply, res);
        reply.ok();
    }

    fn link(&self, _req: &Request, _ino: INodeNo, _newparent: INodeNo, _newname: &OsStr, reply: ReplyEntry) {
        // One file id has one path: versions, the journal and sync all name files by path.
        reply.error(Errno::EPERM);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let sh = &self.sh;
        if ino.0 == ROOT {
            return reply.error(Errno::EISDIR);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.settle(&actor(req), ino.0));
        let node = tryr!(reply, sh.node(&ctx, ino.0));
        if node.is_dir {
            return reply.error(Errno::EISDIR);
        }
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let trunc = write && flags.0 & libc::O_TRUNC != 0;
        let of_arc = sh.open_file(ino.0);
        let mut of = lock_file(&of_arc);
        if of.draft.is_none() {
            of.node = Some(node.clone());
        }
        if !write && sh.cfg.passthrough && of.cached == 0 && of.draft.is_none() {
            let backing = match of.backing.upgrade() {
                Some(b) => Some(b),
                None => {
                    let user = ctx.user();
                    match sh.run(sh.store.open_file(&user, &node.path)) {
                        Ok((_, file)) => reply.open_backing(&file).ok().map(Arc::new),
                        Err(e) => return reply.error(errno::of(&e)),
                    }
                }
            };
            if let Some(b) = backing {
                of.backing = Arc::downgrade(&b);
                of.passthrough += 1;
                let fh = sh.new_fh(Handle::File { write: false, backing: Some(b.clone()) });
                return reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &b);
            }
        }
        if trunc {
            let res = match &of.draft {
                Some(d) => d.set_len(0).map_err(|e| errno::of(&e)),
                None => sh.ensure_draft(&ctx, ino.0, &mut of, true),
            };
            if let Err(e) = res {
                drop(of);
                sh.forget_open(ino.0, of_arc);
                return reply.error(e);
            }
        }
        of.cached += 1;
        if write {
            of.writers += 1;
        }
        // While passthrough readers hold the file, the kernel refuses cached opens of it.
        let fopen = if of.passthrough > 0 { FopenFlags::FOPEN_DIRECT_IO } else { write_only_fopen(flags.0) };
        let fh = sh.new_fh(Handle::File { write, backing: None });
        reply.opened(FileHandle(fh), fopen);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let sh = &self.sh;
        let of_arc = sh.open_file(ino.0);
        let mut buf = vec![0u8; size as usize];
        let file = {
            let mut of = lock_file(&of_arc);
            if let Some(d) = &of.draft {
                let n = tryr!(
                    reply,
                    read_full(|b, o| d.read_at(b, o).map_err(|e| errno::of(&e)), &mut buf, offset)
                );
                return reply.data(&buf[..n]);
            }
            if sh.stale.lock().remove(&ino.0) {
                of.live = None;
            }
            match &of.live {
                Some(f) => f.clone(),
                None => {
                    let _ = sh.wait_flight(ino.0);
                    let ctx = tryr!(reply, sh.ctx(ino.0));
                    let node = tryr!(reply, sh.node(&ctx, ino.0));
                    let user = ctx.user();
                    let (_, f) = tryr!(
                        reply,
                        sh.run(sh.store.open_file(&user, &node.path)).map_err(|e| errno::of(&e))
                    );
                    let f = Arc::new(f);
                    of.live = Some(f.clone());
                    f
                }
            }
        };
        let n = tryr!(reply, read_full(|b, o| file.read_at(b, o).map_err(Errno::from), &mut buf, offset));
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let sh = &self.sh;
        let ctx = tryr!(reply, sh.ctx(ino.0));
        let of_arc = sh.open_file(ino.0);
        let mut of = lock_file(&of_arc);
        let res = sh.ensure_draft(&ctx, ino.0, &mut of, false).and_then(|()| {
            let d = of.draft.as_ref().expect("draft");
            d.write_at(data, offset).map_err(|e| errno::of(&e))
        });
        if res == Err(Errno::EDQUOT) {
            of.draft = None;
            of.over_quota = true;
        }
        tryr!(reply, res);
        reply.written(data.len() as u32);
    }

    fn flush(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        let sh = &self.sh;
        let ctx = tryr!(reply, sh.ctx(ino.0));
        let Some(of_arc) = sh.open.lock().get(&ino.0).cloned() else { return reply.ok() };
        let mut of = lock_file(&of_arc);
        if sh.write_behind(&actor(req), &ctx, ino.0, &mut of) {
            return reply.ok();
        }
        tryr!(reply, sh.commit(&actor(req), &ctx, ino.0, &mut of));
        reply.ok();
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let sh = &self.sh;
        let handle = sh.handles.lock().remove(&fh.0);
        let Some(Handle::File { write, backing }) = handle else { return reply.ok() };
        let mut res = Ok(());
        let Some(of_arc) = sh.opened(ino.0) else { return reply.ok() };
        {
            let mut of = lock_file(&of_arc);
            if backing.is_some() {
                of.passthrough -= 1;
            } else {
                of.cached -= 1;
            }
            if write {
                of.writers -= 1;
            }
            if of.writers == 0 && (of.draft.is_some() || sh.pending.lock().contains_key(&ino.0)) {
                res = match sh.ctx(ino.0) {
                    Ok(ctx) => sh.commit(&actor(req), &ctx, ino.0, &mut of),
                    Err(e) => Err(e),
                };
                if let Err(e) = res {
                    // Nobody is left to retry; the old content stays.
                    tracing::warn!(ino = ino.0, errno = e.code(), "fuse: changes dropped at close");
                    of.draft = None;
                }
            }
        }
        sh.forget_open(ino.0, of_arc);
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Durable when it returns: a flight landed, a draft committed.
    fn fsync(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let sh = &self.sh;
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.wait_flight(ino.0));
        let Some(of_arc) = sh.open.lock().get(&ino.0).cloned() else { return reply.ok() };
        let mut of = lock_file(&of_arc);
        tryr!(reply, sh.commit(&actor(req), &ctx, ino.0, &mut of));
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let listing = tryr!(reply, self.sh.list(ino.0));
        let fh = self.sh.new_fh(Handle::Dir(listing));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let handles = self.sh.handles.lock();
        let Some(Handle::Dir(listing)) = handles.get(&fh.0) else { return reply.error(Errno::EBADF) };
        let mut i = offset;
        if i == 0 {
            if reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            i = 1;
        }
        if i == 1 {
            if reply.add(ino, 2, FileType::Directory, "..") {
                return reply.ok();
            }
            i = 2;
        }
        for k in i as usize - 2..listing.len() {
            let (e_ino, name, kind) = listing.entry(k);
            if reply.add(INodeNo(e_ino), k as u64 + 3, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let sh = &self.sh;
        let ctx = if ino.0 == ROOT { None } else { Some(tryr!(reply, sh.ctx(ino.0))) };
        // A copy (the folder's listing is shared): attributes lock open files, and `open` holds
        // its file's lock while it adds a handle, so none is made under the handles' lock.
        let listing = match sh.handles.lock().get(&fh.0) {
            Some(Handle::Dir(listing)) => listing.clone(),
            _ => return reply.error(Errno::EBADF),
        };
        let listing = &listing;
        let dot = match &ctx {
            None => sh.root_attr(),
            Some(c) => match sh.node(c, ino.0) {
                Ok(n) => sh.attr(c, &n),
                Err(e) => return reply.error(e),
            },
        };
        let mut i = offset;
        if i == 0 {
            if reply.add(ino, 1, ".", &TTL, &dot, Generation(0)) {
                return reply.ok();
            }
            i = 1;
        }
        if i == 1 {
            if reply.add(ino, 2, "..", &TTL, &dot, Generation(0)) {
                return reply.ok();
            }
            i = 2;
            // The kernel asks with attributes at the start of every listing. When it holds every
            // entry already (a folder just filled or looked through), sending them all again
            // costs it a dentry lookup and an attribute update each: answer with the dots alone,
            // and it reads on without attributes (READDIRPLUS_AUTO) from the next call.
            if offset == 0 && sh.told_lately(listing) {
                return reply.ok();
            }
        }
        for k in i as usize - 2..listing.len() {
            let (e_ino, name, _) = listing.entry(k);
            let (attr, owner) = listing.attr(sh, k);
            if reply.add(INodeNo(e_ino), k as u64 + 3, name, &TTL, &attr, Generation(0)) {
                break;
            }
            // A readdirplus entry counts as a lookup.
            sh.remember(e_ino, owner);
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.sh.handles.lock().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Every metadata change is durable when its call returns; files created in the folder
        // and not yet flushed get there now.
        tryr!(reply, self.sh.settle_in(&actor(req), ino.0));
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let sh = &self.sh;
        const BS: u64 = 4096;
        let quota = match sh.ctx(ino.0) {
            Ok(ctx) if ino.0 != ROOT => {
                let user = ctx.user();
                let usage = tryr!(reply, sh.run(sh.store.usage(&user)).map_err(|e| errno::of(&e)));
                usage.quota.map(|q| (q, usage.used))
            }
            _ => None,
        };
        let (total, free) = match quota {
            Some((q, used)) => (q, q.saturating_sub(used)),
            None => tryr!(reply, sh.store.disk_space().map_err(|e| errno::of(&e))),
        };
        reply.statfs(
            total / BS,
            free / BS,
            free / BS,
            u64::MAX >> 1,
            u64::MAX >> 1,
            BS as u32,
            255,
            BS as u32,
        );
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let sh = &self.sh;
        let name = tryr!(reply, name_str(name));
        let Some(prop) = name.strip_prefix(xattr::PREFIX).filter(|p| !p.is_empty()) else {
            return reply.error(Errno::ENOTSUP);
        };
        if ino.0 == ROOT {
            return reply.error(Errno::EPERM);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.settle(&actor(req), ino.0));
        let node = tryr!(reply, sh.node(&ctx, ino.0));
        if flags & (libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
            let exists = tryr!(reply, sh.xattrs(&ctx, node.id)).iter().any(|(n, _)| n == prop);
            if flags & libc::XATTR_CREATE != 0 && exists {
                return reply.error(Errno::EEXIST);
            }
            if flags & libc::XATTR_REPLACE != 0 && !exists {
                return reply.error(Errno::ENODATA);
            }
        }
        let change = store::PropChange::Set(store::DeadProp {
            namespace: xattr::NAMESPACE.into(),
            name: prop.into(),
            value: xattr::encode(value),
        });
        let user = ctx.user();
        match sh.run(sh.store.patch_props(&actor(req), &user, &node.path, &[change])) {
            Ok(()) => reply.ok(),
            Err(e) if e.kind() == ErrorKind::InvalidInput => reply.error(Errno::E2BIG),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let sh = &self.sh;
        let name = tryr!(reply, name_str(name));
        // security.capability is asked on every write: answer without a query.
        let Some(prop) = name.strip_prefix(xattr::PREFIX) else { return reply.error(Errno::ENODATA) };
        if ino.0 == ROOT {
            return reply.error(Errno::ENODATA);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        let attrs = tryr!(reply, sh.xattrs(&ctx, id_of(ino.0)));
        let Some((_, value)) = attrs.iter().find(|(n, _)| n == prop) else {
            return reply.error(Errno::ENODATA);
        };
        sized(reply, size, &xattr::decode(value));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let sh = &self.sh;
        if ino.0 == ROOT {
            return sized(reply, size, &[]);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        let mut out = Vec::new();
        for (name, _) in tryr!(reply, sh.xattrs(&ctx, id_of(ino.0))) {
            out.extend_from_slice(xattr::PREFIX.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        sized(reply, size, &out);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let sh = &self.sh;
        let name = tryr!(reply, name_str(name));
        let Some(prop) = name.strip_prefix(xattr::PREFIX) else { return reply.error(Errno::ENOTSUP) };
        if ino.0 == ROOT {
            return reply.error(Errno::ENODATA);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.settle(&actor(req), ino.0));
        let node = tryr!(reply, sh.node(&ctx, ino.0));
        if !tryr!(reply, sh.xattrs(&ctx, node.id)).iter().any(|(n, _)| n == prop) {
            return reply.error(Errno::ENODATA);
        }
        let change = store::PropChange::Remove { namespace: xattr::NAMESPACE.into(), name: prop.into() };
        let user = ctx.user();
        match sh.run(sh.store.patch_props(&actor(req), &user, &node.path, &[change])) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno::of(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        sh.wait_tomb(parent.0, path.name());
        if sh.pending_named(parent.0, path.name()).is_some()
            || tryr!(reply, sh.stat_path(&ctx, &path)).is_some()
        {
            return reply.error(Errno::EEXIST);
        }
        // The file reaches the store at its first flush (see `Pending`).
        let user = sh.user_for_write(&ctx);
        let (id, draft) = tryr!(
            reply,
            sh.run(async {
                Ok::<_, store::Error>((
                    sh.store.reserve_file_id().await?,
                    sh.store.begin_new_draft(&user).await?,
                ))
            })
            .map_err(|e| errno::of(&e))
        );
        let ino = ino_of(id);
        let p = Pending {
            parent: parent.0,
            path,
            mode: mode & !umask & 0o7777,
            created: sh.store.clock().now(),
            landing: None,
        };
        sh.pending.lock().insert(ino, p);
        let node = sh.pending_node(ino).expect("just inserted");
        let write = OpenFlags(flags).acc_mode() != OpenAccMode::O_RDONLY;
        {
            let of_arc = sh.open_file(ino);
            let mut of = lock_file(&of_arc);
            of.cached += 1;
            if write {
                of.writers += 1;
            }
            // The empty file just created needs no version.
            of.versioned = true;
            of.draft = Some(draft);
        }
        let attr = sh.attr(&ctx, &node);
        sh.remember(ino, &ctx);
        let fh = sh.new_fh(Handle::File { write, backing: None });
        reply.created(&TTL, &attr, Generation(0), FileHandle(fh), write_only_fopen(flags));
    }

    /// No device controls: `ENOTTY`, quietly (programs ask every file whether it is a
    /// terminal; fuser's default would log a warning for each).
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let sh = &self.sh;
        // Plain allocation (mode 0) and KEEP_SIZE; punching holes and collapsing ranges are not
        // offered (they would need the backing filesystem's support and change no semantics).
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        let of_arc = sh.open_file(ino.0);
        let mut of = lock_file(&of_arc);
        let end = offset.saturating_add(length);
        let res = if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
            Ok(())
        } else {
            sh.ensure_draft(&ctx, ino.0, &mut of, false).and_then(|()| {
                let d = of.draft.as_ref().expect("draft");
                if end > d.len() { d.set_len(end).map_err(|e| errno::of(&e)) } else { Ok(()) }
            })
        };
        drop(of);
        tryr!(reply, res);
        reply.ok();
    }
}

/// Create an empty file (committed at once: the kernel needs its inode now).
fn create_empty(sh: &Shared, actor: &Actor, ctx: &UserCtx, path: &VPath, mode: u32) -> Res<Node> {
    let user = ctx.user();
    sh.run(sh.store.create_file(actor, &user, path, Some(mode & 0o7777))).map_err(|e| errno::of(&e))
}

fn read_full(
    mut read_at: impl FnMut(&mut [u8], u64) -> Res<usize>,
    buf: &mut [u8],
    offset: u64,
) -> Res<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = read_at(&mut buf[n..], offset + n as u64)?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

fn sized(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
