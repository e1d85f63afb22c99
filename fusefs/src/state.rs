//! The mount's shared state: users, the inodes the kernel knows, open files and handles,
//! folder listings, the kernel-invalidation channel, and the calls every callback shares
//! (running a store call, attributes, committing an open file's draft).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    BackingId, Errno, FileAttr, FileType, FopenFlags, Generation, INodeNo, Notifier, OpenAccMode, OpenFlags,
    ReplyEntry, Request, TimeOrNow,
};
use store::{
    Actor, Draft, DraftOf, ErrorKind, FileId, Node, Origin, Store, Timestamp, User, UserName, VPath,
};
use tokio::runtime::Handle as Runtime;

use crate::behind::{Flight, Flights, PendingSet};
use crate::locks::{Leaf, lock_file, may_wait};
use crate::{MountConfig, Owner, Res, errno, xattr};

/// How long the kernel may trust attributes and names without asking (changes made elsewhere
/// are pushed to it at once through the notifier).
pub(crate) const TTL: Duration = Duration::from_secs(10);

pub(crate) const ROOT: u64 = 1;

/// st_blksize: tools size their reads and writes by it; matches max_write.
pub(crate) const BLKSIZE: u32 = 1 << 20;

pub(crate) enum Inval {
    Inode(u64),
    Entry(u64, String),
}

/// Sends kernel cache invalidations from a thread of its own: a notification can wait on a
/// kernel lock held by a request that is itself waiting for the runtime.
pub(crate) fn invalidator(notifier: Notifier, rx: mpsc::Receiver<Inval>) {
    while let Ok(job) = rx.recv() {
        let _ = match job {
            Inval::Inode(ino) => notifier.inval_inode(INodeNo(ino), 0, 0),
            Inval::Entry(parent, name) => notifier.inval_entry(INodeNo(parent), OsStr::new(&name)),
        };
    }
}

/// A handle opened for writing only bypasses the kernel's page cache (`FOPEN_DIRECT_IO`): its
/// writes come to the daemon as they would anyway (no writeback cache), but are not copied into
/// pages nobody reads through it, so a large copy into the mount fills memory once (the backing
/// file's pages), not twice. Nothing can map such a handle; the kernel drops cached pages a
/// direct write overlaps, so other handles' readers see the new bytes.
pub(crate) fn write_only_fopen(flags: i32) -> FopenFlags {
    match OpenFlags(flags).acc_mode() {
        OpenAccMode::O_WRONLY => FopenFlags::FOPEN_DIRECT_IO,
        _ => FopenFlags::empty(),
    }
}

/// An inode the kernel knows.
pub(crate) struct Known {
    pub(crate) ctx: Arc<UserCtx>,
    /// Lookups not yet forgotten.
    pub(crate) lookups: u64,
    /// When an entry reply last gave the kernel its name and attributes (each for [`TTL`]).
    pub(crate) told: Instant,
}

pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) rt: Runtime,
    pub(crate) cfg: MountConfig,
    /// Users seen at the mount root, by name.
    pub(crate) users: Leaf<HashMap<String, Arc<UserCtx>>>,
    /// Shares as their recipients see them, by recipient and shared node (see [`ViewOf`]).
    pub(crate) views: Leaf<HashMap<(store::UserId, FileId), Arc<UserCtx>>>,
    /// Inodes the kernel knows, by inode.
    pub(crate) inodes: Leaf<HashMap<u64, Known>>,
    /// Files with open handles.
    pub(crate) open: Leaf<HashMap<u64, Arc<Mutex<OpenFile>>>>,
    pub(crate) handles: Leaf<HashMap<u64, Handle>>,
    /// Paths of folders the kernel asked about: a hint, confirmed through the store's node
    /// cache before use, so a lookup in an unchanged folder costs one query, not two.
    pub(crate) dirs: Leaf<HashMap<u64, VPath>>,
    /// Open files whose live content changed elsewhere: reopen before the next read.
    pub(crate) stale: Leaf<std::collections::HashSet<u64>>,
    /// Files created through the mount and not yet in the store (see [`Pending`](crate::behind::Pending)).
    pub(crate) pending: Leaf<PendingSet>,
    pub(crate) unlinks: Leaf<Unlinks>,
    pub(crate) flights: Flights,
    /// Unlinks on their way to the trash.
    pub(crate) unlinking: Flights,
    /// The next file handle (0 is [`UNHANDLED`], never a handle).
    pub(crate) next_fh: AtomicU64,
    pub(crate) inval: Leaf<mpsc::Sender<Inval>>,
}

pub(crate) struct UserCtx {
    /// Whose tree this is (for a share, its owner's).
    pub(crate) id: store::UserId,
    pub(crate) user: Leaf<User>,
    pub(crate) root: u64,
    pub(crate) owner: Owner,
    /// The change journal position the kernel caches are current with.
    pub(crate) cursor: Leaf<i64>,
    /// When `user` was last read from the database.
    pub(crate) refreshed: Leaf<Instant>,
    /// The high bits of this tree's inodes: 0 for a user's own tree (see [`ViewOf`]).
    pub(crate) base: u64,
    /// Set when this is a share as its recipient sees it.
    pub(crate) view: Option<ViewOf>,
}

/// A share as its recipient sees it, at `MOUNT/RECIPIENT/...`: the owner's files below the
/// shared folder (the bytes exist once, in the owner's tree; the owner's quota counts what is
/// written), under inodes of their own, `VIEW_BIT | recipient << ID_BITS | file id + 1`, for the
/// kernel must never see one folder under two parents. The recipient's role is read again from
/// `store` at every call that reaches the share, so a revoked share is gone at the next call and
/// a viewer's writes are refused by the store's one table (`store::allowed`).
pub(crate) struct ViewOf {
    pub(crate) recipient: User,
    /// The shared folder or file.
    pub(crate) mount: FileId,
    /// The role last read (for the permission bits shown).
    pub(crate) role: Leaf<store::Role>,
}

/// Inodes of shares as their recipients see them have this bit (see [`ViewOf`]).
pub(crate) const VIEW_BIT: u64 = 1 << 62;
/// File ids take the low bits of an inode.
pub(crate) const ID_BITS: u32 = 40;

impl UserCtx {
    pub(crate) fn user(&self) -> User {
        self.user.lock().clone()
    }

    /// The inode of file `id` in this tree.
    pub(crate) fn ino(&self, id: FileId) -> u64 {
        self.base | ino_of(id)
    }
}

/// The handle standing for a change made without one (see [`OpenFile::unversioned`]).
pub(crate) const UNHANDLED: u64 = 0;

/// The open state of one file, shared by its handles.
#[derive(Default)]
pub(crate) struct OpenFile {
    /// Handles served through this process (reads and writes).
    pub(crate) cached: u32,
    /// Read-only handles the kernel serves from the backing file directly.
    pub(crate) passthrough: u32,
    pub(crate) writers: u32,
    /// The live content, for reads while nothing is written (opened on first read).
    pub(crate) live: Option<Arc<File>>,
    /// Uncommitted writes.
    pub(crate) draft: Option<Draft>,
    /// The file as open or the last commit saw it (saves a query when a draft starts).
    pub(crate) node: Option<Node>,
    /// Write handles opened since a commit last kept the content it replaced as a version
    /// ([`UNHANDLED`] for a change made without one, such as `truncate(2)`). While any is
    /// here, the next commit keeps a version: one per open, however many writes, fsyncs and
    /// closes, and whatever order the kernel sends one handle's release and the next one's
    /// open in.
    pub(crate) unversioned: std::collections::HashSet<u64>,
    /// A write hit the quota: the open's changes were dropped, and writes fail until every
    /// handle is closed (so no partial content is ever committed).
    pub(crate) over_quota: bool,
    pub(crate) backing: Weak<BackingId>,
}

impl OpenFile {
    /// A first handle opens the file: the last open's quota failure does not carry over, even if
    /// its state outlived it (a call such as `getattr` held it while the last handle closed,
    /// so it stayed in the map).
    pub(crate) fn begin_open(&mut self) {
        if self.cached == 0 && self.passthrough == 0 && self.draft.is_none() {
            self.over_quota = false;
        }
    }
}

pub(crate) enum Handle {
    File { write: bool, backing: Option<Arc<BackingId>> },
    Dir(Listing),
}

/// What an open folder lists, taken when it is opened.
#[derive(Clone)]
pub(crate) enum Listing {
    /// The mount root: one folder per user.
    Users(Vec<DirEnt>),
    /// A user's folder as the store's cache shares it; each entry's attributes are made only
    /// if the kernel asks for them. Then the shares mounted in it (a user's own folder).
    Folder(Arc<UserCtx>, Arc<Vec<Node>>, Arc<Vec<ViewEnt>>),
}

/// A share mounted in a folder: its view, its root as the owner has it, its name here.
pub(crate) struct ViewEnt {
    pub(crate) ctx: Arc<UserCtx>,
    pub(crate) node: Node,
    pub(crate) name: String,
}

#[derive(Clone)]
pub(crate) struct DirEnt {
    pub(crate) ino: u64,
    pub(crate) name: String,
    pub(crate) attr: FileAttr,
    pub(crate) ctx: Arc<UserCtx>,
}

impl Listing {
    pub(crate) fn len(&self) -> usize {
        match self {
            Listing::Users(v) => v.len(),
            Listing::Folder(_, v, m) => v.len() + m.len(),
        }
    }

    /// Entry `k`: (inode, name, kind).
    pub(crate) fn entry(&self, k: usize) -> (u64, &str, FileType) {
        match self {
            Listing::Users(v) => (v[k].ino, &v[k].name, FileType::Directory),
            Listing::Folder(_, v, m) if k >= v.len() => {
                let e = &m[k - v.len()];
                let kind = if e.node.is_dir { FileType::Directory } else { FileType::RegularFile };
                (e.ctx.ino(e.node.id), &e.name, kind)
            }
            Listing::Folder(ctx, v, _) => {
                let n = &v[k];
                (
                    ctx.ino(n.id),
                    n.path.name(),
                    if n.is_dir { FileType::Directory } else { FileType::RegularFile },
                )
            }
        }
    }

    /// Entry `k`'s attributes and user.
    pub(crate) fn attr(&self, sh: &Shared, k: usize) -> (FileAttr, &Arc<UserCtx>) {
        match self {
            Listing::Users(v) => (v[k].attr, &v[k].ctx),
            Listing::Folder(_, v, m) if k >= v.len() => {
                let e = &m[k - v.len()];
                (sh.attr(&e.ctx, &e.node), &e.ctx)
            }
            Listing::Folder(ctx, v, _) => (sh.attr(ctx, &v[k]), ctx),
        }
    }
}

pub(crate) fn ts(t: Timestamp) -> SystemTime {
    if t.0 >= 0 { UNIX_EPOCH + Duration::from_nanos(t.0 as u64) } else { UNIX_EPOCH }
}

pub(crate) fn ino_of(id: FileId) -> u64 {
    id.0 as u64 + 1
}

pub(crate) fn id_of(ino: u64) -> FileId {
    FileId((ino & ((1 << ID_BITS) - 1)) as i64 - 1)
}

pub(crate) fn actor(req: &Request) -> Actor {
    Actor { origin: Origin::Fuse, name: format!("uid {}", req.uid()), remote: None }
}

/// The actor for settling a pending file where no request says who (a listing).
pub(crate) fn fuse_actor() -> Actor {
    Actor { origin: Origin::Fuse, name: "fuse".to_owned(), remote: None }
}

pub(crate) fn name_str(name: &OsStr) -> Res<&str> {
    name.to_str().ok_or(Errno::EINVAL)
}

pub(crate) fn time_of(t: TimeOrNow, clock: &store::Clock) -> Timestamp {
    match t {
        TimeOrNow::SpecificTime(st) => Timestamp::from_system(st),
        TimeOrNow::Now => clock.now(),
    }
}

impl Shared {
    pub(crate) fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        may_wait("waiting on the runtime");
        let op = store::watchdog::begin("fuse", "a call waiting on the store");
        self.rt.block_on(op.scope(f))
    }

    pub(crate) fn user_ctx(&self, name: &str) -> Res<Arc<UserCtx>> {
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
            base: 0,
            view: None,
        });
        Ok(self.users.lock().entry(name.to_owned()).or_insert(ctx).clone())
    }

    /// The user an inode belongs to.
    pub(crate) fn ctx(&self, ino: u64) -> Res<Arc<UserCtx>> {
        self.inodes.lock().get(&ino).map(|k| k.ctx.clone()).ok_or(Errno::ESTALE)
    }

    /// Record that the kernel learned of `ino` once more.
    pub(crate) fn remember(&self, ino: u64, ctx: &Arc<UserCtx>) {
        let now = Instant::now();
        let mut inodes = self.inodes.lock();
        let k = inodes.entry(ino).or_insert_with(|| Known { ctx: ctx.clone(), lookups: 0, told: now });
        k.lookups += 1;
        k.told = now;
    }

    /// Whether the kernel was told the name and attributes of every entry of `listing` lately
    /// enough that it still holds them for a while (changes since reach it through the
    /// notifier). Then a listing need not send them again.
    pub(crate) fn told_lately(&self, listing: &Listing) -> bool {
        let now = Instant::now();
        let inodes = self.inodes.lock();
        (0..listing.len()).all(|k| {
            inodes.get(&listing.entry(k).0).is_some_and(|known| now.duration_since(known.told) < TTL / 2)
        })
    }

    pub(crate) fn node(&self, ctx: &UserCtx, ino: u64) -> Res<Node> {
        self.role_in(ctx)?;
        let user = ctx.user();
        self.run(self.store.stat_id(&user, id_of(ino))).map_err(|e| errno::of(&e))
    }

    pub(crate) fn attr(&self, ctx: &UserCtx, node: &Node) -> FileAttr {
        let ino = ctx.ino(node.id);
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
            perm: {
                let perm = node.mode.unwrap_or(if node.is_dir { 0o755 } else { 0o644 }) as u16;
                // A viewer's share shows no write permission (the store refuses writes anyway).
                match &ctx.view {
                    Some(v) if !store::allowed(*v.role.lock(), store::Op::Write) => perm & !0o222,
                    _ => perm,
                }
            },
            nlink: if node.is_dir { 2 } else { 1 },
            uid: ctx.owner.uid,
            gid: ctx.owner.gid,
            rdev: 0,
            blksize: BLKSIZE,
            flags: 0,
        }
    }

    pub(crate) fn root_attr(&self) -> FileAttr {
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
    pub(crate) fn child(&self, parent: u64, name: &OsStr) -> Res<(Arc<UserCtx>, VPath)> {
        if parent == ROOT {
            return Err(Errno::EPERM);
        }
        let ctx = self.ctx(parent)?;
        self.role_in(&ctx)?;
        // The folder's last known path, confirmed through the store's node cache (exact for
        // changes made in this process, free while the user's tree is unchanged).
        let cached = self.dirs.lock().get(&parent).cloned();
        let confirmed = cached.filter(|p| {
            let user = ctx.user();
            self.run(self.store.stat(&user, p)).is_ok_and(|n| n.is_dir && ctx.ino(n.id) == parent)
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

    pub(crate) fn stat_path(&self, ctx: &UserCtx, path: &VPath) -> Res<Option<Node>> {
        let user = ctx.user();
        match self.run(self.store.stat(&user, path)) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(errno::of(&e)),
        }
    }

    /// The open state of `ino`, made if there is none. Give it back through
    /// [`Shared::forget_open`] unless a handle keeps it (see there).
    pub(crate) fn open_file(&self, ino: u64) -> Arc<Mutex<OpenFile>> {
        self.open.lock().entry(ino).or_default().clone()
    }

    /// The open state of `ino`, if it has one.
    pub(crate) fn opened(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        self.open.lock().get(&ino).cloned()
    }

    /// Give back `of`, the open state of `ino` taken without a handle, and drop it if no handle
    /// uses it any more. Whoever gives back the last reference drops it: then nobody else can
    /// hold or wait for its lock (references are taken under the map's lock), so this never
    /// waits under the map's lock. A reference kept by a handle's call is given back by the
    /// handle's `release`.
    pub(crate) fn forget_open(&self, ino: u64, of: Arc<Mutex<OpenFile>>) {
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
    pub(crate) fn ensure_draft(&self, ctx: &UserCtx, ino: u64, of: &mut OpenFile, empty: bool) -> Res<()> {
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
    pub(crate) fn user_for_write(&self, ctx: &UserCtx) -> User {
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
    pub(crate) fn commit(&self, actor: &Actor, ctx: &UserCtx, ino: u64, of: &mut OpenFile) -> Res<()> {
        let Some(mut draft) = of.draft.take() else {
            // A new file whose writes were dropped (quota) still exists, empty.
            return self.settle_locked(actor, ino, of);
        };
        let user = ctx.user();
        let keep = !of.unversioned.is_empty();
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
                of.unversioned.clear();
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

    pub(crate) fn new_fh(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, h);
        fh
    }

    pub(crate) fn list(&self, ino: u64) -> Res<Listing> {
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
        let mounts = self.mounts_in(&ctx, &dir.path)?;
        Ok(Listing::Folder(ctx, nodes, Arc::new(mounts)))
    }

    /// The shares mounted in `ctx`'s own folder `dir`, each with its view.
    pub(crate) fn mounts_in(&self, ctx: &UserCtx, dir: &VPath) -> Res<Vec<ViewEnt>> {
        if ctx.view.is_some() {
            return Ok(Vec::new());
        }
        let user = ctx.user();
        let mounts = self.run(self.store.view(&user).mounts_in(dir)).map_err(|e| errno::of(&e))?;
        let mut out = Vec::new();
        for m in mounts {
            if let Some(view) = self.view_ctx(ctx, &m)? {
                out.push(ViewEnt { ctx: view, name: m.at.name().to_owned(), node: m.node });
            }
        }
        Ok(out)
    }

    /// The share mounted at `path` in `ctx`'s own tree, if one is: its view and its root.
    pub(crate) fn mount_at(&self, ctx: &UserCtx, path: &VPath) -> Res<Option<(Arc<UserCtx>, Node)>> {
        let Some(dir) = path.parent() else { return Ok(None) };
        let found = self.mounts_in(ctx, &dir)?.into_iter().find(|e| e.name == path.name());
        Ok(found.map(|e| (e.ctx, e.node)))
    }

    /// The view of share `m` for the user of `recipient` (made on first use).
    fn view_ctx(&self, recipient: &UserCtx, m: &store::MountPoint) -> Res<Option<Arc<UserCtx>>> {
        // Room in an inode for the recipient's id (four million accounts).
        if recipient.id.0 < 0 || recipient.id.0 as u64 >= 1 << (62 - ID_BITS) {
            return Ok(None);
        }
        let key = (recipient.id, m.node.id);
        if let Some(v) = self.views.lock().get(&key) {
            if let Some(view) = &v.view {
                *view.role.lock() = m.role;
            }
            return Ok(Some(v.clone()));
        }
        let cursor = self.run(self.store.journal_cursor(&m.owner)).map_err(|e| errno::of(&e))?;
        let base = VIEW_BIT | (recipient.id.0 as u64) << ID_BITS;
        let ctx = Arc::new(UserCtx {
            id: m.owner.id,
            user: Leaf::new(m.owner.clone()),
            root: base | ino_of(m.node.id),
            owner: recipient.owner,
            cursor: Leaf::new(cursor),
            refreshed: Leaf::new(Instant::now()),
            base,
            view: Some(ViewOf { recipient: recipient.user(), mount: m.node.id, role: Leaf::new(m.role) }),
        });
        Ok(Some(self.views.lock().entry(key).or_insert(ctx).clone()))
    }

    /// For a share's inode: the recipient's role, read again (ENOENT once the share no longer
    /// reaches them, or is in its owner's trash). A user's own tree: `None`.
    pub(crate) fn role_in(&self, ctx: &UserCtx) -> Res<Option<store::Role>> {
        let Some(v) = &ctx.view else { return Ok(None) };
        let role = self.run(self.store.view(&v.recipient).mount_role(v.mount)).map_err(|e| errno::of(&e))?;
        *v.role.lock() = role;
        Ok(Some(role))
    }

    /// Refuse `op` in a share whose recipient's role does not allow it (`EACCES`), by the
    /// store's table; a user's own tree allows everything.
    /// Refuse writing into an encrypted vault (`EPERM`): the mount is a plaintext front end,
    /// and a new file's bytes reach the store only after `close` has returned, too late to
    /// report the store's refusal (see `store/src/vaults.rs`). Reading a vault's ciphertext
    /// works as for any file.
    pub(crate) fn outside_vault(&self, ctx: &UserCtx, path: &store::VPath) -> Res<()> {
        match self.run(self.store.in_vault(&ctx.user(), path)) {
            Ok(false) => Ok(()),
            Ok(true) => Err(Errno::EPERM),
            Err(e) => Err(errno::of(&e)),
        }
    }

    pub(crate) fn may(&self, ctx: &UserCtx, op: store::Op) -> Res<()> {
        match self.role_in(ctx)? {
            Some(role) if !store::allowed(role, op) => Err(Errno::EACCES),
            _ => Ok(()),
        }
    }

    /// The extended attributes of file `id`: (name without `user.`, stored value).
    pub(crate) fn xattrs(&self, ctx: &UserCtx, id: FileId) -> Res<Vec<(String, String)>> {
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

    pub(crate) fn entry(&self, ctx: &Arc<UserCtx>, node: &Node, reply: ReplyEntry) {
        let attr = self.attr(ctx, node);
        self.remember(attr.ino.0, ctx);
        reply.entry(&TTL, &attr, Generation(0));
    }
}

/// Unlinks carried out behind the caller's back. `unlink` of a file nobody has open through
/// the mount returns once the name is marked gone here; a task moves the files to the trash, all
/// the unlinks waiting at a time in one transaction. Until then lookups of the name are
/// negative, and anything that needs the store to agree (a create, mkdir or rename of the
/// name, a listing, `rmdir` or `fsyncdir` of the folder, a folder moved) waits for it. At most
/// [`MAX_UNLINKS`](crate::behind::MAX_UNLINKS) are on their way; a failure is logged and the name shows again.
#[derive(Default)]
pub(crate) struct Unlinks {
    /// (folder inode, name) → its flight, until the file is in the trash.
    pub(crate) tombs: HashMap<(u64, String), Arc<Flight>>,
    pub(crate) queue: Vec<Tomb>,
    /// A task is carrying out the queue.
    pub(crate) running: bool,
}

pub(crate) struct Tomb {
    pub(crate) parent: u64,
    pub(crate) name: String,
    pub(crate) path: VPath,
    pub(crate) ctx: Arc<UserCtx>,
    pub(crate) actor: Actor,
    pub(crate) flight: Arc<Flight>,
}

/// Create an empty file (committed at once: the kernel needs its inode now).
pub(crate) fn create_empty(sh: &Shared, actor: &Actor, ctx: &UserCtx, path: &VPath, mode: u32) -> Res<Node> {
    let user = ctx.user();
    sh.run(sh.store.create_file(actor, &user, path, Some(mode & 0o7777))).map_err(|e| errno::of(&e))
}

pub(crate) fn read_full(
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
