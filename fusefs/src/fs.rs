//! The `fuser::Filesystem` implementation: each callback maps its request onto `store` through
//! the shared state and replies.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow,
};
use store::telemetry::{MountOp, mount_op as count};
use store::{ErrorKind, Replace, SetAttrs};

use crate::behind::Pending;
use crate::locks::lock_file;
use crate::state::{
    Handle, ROOT, Shared, TTL, UNHANDLED, actor, create_empty, id_of, name_str, read_full, time_of,
    write_only_fopen,
};
use crate::{errno, xattr};

pub(crate) struct Cairn {
    pub(crate) sh: Arc<Shared>,
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
        count(MountOp::Lookup);
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
            // A share mounted here: its root, under the view's own inode.
            None => match tryr!(reply, sh.mount_at(&ctx, &path)) {
                Some((view, root)) => sh.entry(&view, &root, reply),
                None => negative(reply),
            },
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
        count(MountOp::Getattr);
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
        count(MountOp::Setattr);
        let sh = &self.sh;
        if ino.0 == ROOT {
            return reply.error(Errno::EPERM);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.may(&ctx, store::Op::Write));
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
            tryr!(reply, sh.outside_vault(&ctx, &node.path));
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
                        of.unversioned.insert(UNHANDLED);
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
        count(MountOp::Other);
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
        count(MountOp::Other);
        // Only regular files: devices, FIFOs and sockets have no place in a file store.
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.may(&ctx, store::Op::Write));
        tryr!(reply, sh.outside_vault(&ctx, &path));
        tryr!(reply, sh.settle_named(&actor(req), parent.0, name));
        let node = tryr!(reply, create_empty(sh, &actor(req), &ctx, &path, mode & !umask));
        sh.entry(&ctx, &node, reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        count(MountOp::Mkdir);
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.may(&ctx, store::Op::Write));
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
        count(MountOp::Unlink);
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.may(&ctx, store::Op::Delete));
        tryr!(reply, sh.settle_named(&actor(req), parent.0, name));
        let node = tryr!(reply, sh.stat_path(&ctx, &path).and_then(|n| n.ok_or(Errno::ENOENT)));
        if node.is_dir {
            return reply.error(Errno::EISDIR);
        }
        // A file open through the mount is unlinked here and now (its handles' closes must
        // find it gone); any other behind the reply.
        if !sh.open.lock().contains_key(&ctx.ino(node.id)) {
            sh.unlink_behind(&actor(req), &ctx, parent.0, path);
            return reply.ok();
        }
        let user = ctx.user();
        tryr!(reply, sh.run(sh.store.delete(&actor(req), &user, &path, None)).map_err(|e| errno::of(&e)));
        reply.ok();
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        count(MountOp::Rmdir);
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.may(&ctx, store::Op::Delete));
        let node = tryr!(reply, sh.stat_path(&ctx, &path).and_then(|n| n.ok_or(Errno::ENOENT)));
        if !node.is_dir {
            return reply.error(Errno::ENOTDIR);
        }
        // Files created in it through the mount count, on their way or not; the store checks
        // that it is empty in the transaction that removes it.
        tryr!(reply, sh.settle_in(&actor(req), ctx.ino(node.id)));
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
        count(MountOp::Other);
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
        count(MountOp::Rename);
        let sh = &self.sh;
        if flags.contains(RenameFlags::RENAME_EXCHANGE) || flags.contains(RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        let (ctx, from) = tryr!(reply, sh.child(parent.0, name));
        let (to_ctx, to) = tryr!(reply, sh.child(newparent.0, newname));
        // Another user's tree, or another view of it (a share, or out of one): another device.
        let share = |c: &crate::state::UserCtx| c.view.as_ref().map(|v| v.mount);
        if ctx.id != to_ctx.id || ctx.base != to_ctx.base || share(&ctx) != share(&to_ctx) {
            return reply.error(Errno::EXDEV);
        }
        tryr!(reply, sh.may(&ctx, store::Op::Rename));
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
        count(MountOp::Other);
        // One file id has one path: versions, the journal and sync all name files by path.
        reply.error(Errno::EPERM);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        count(MountOp::Open);
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
        if write {
            tryr!(reply, sh.may(&ctx, store::Op::Write));
            tryr!(reply, sh.outside_vault(&ctx, &node.path));
        }
        let trunc = write && flags.0 & libc::O_TRUNC != 0;
        let of_arc = sh.open_file(ino.0);
        let mut of = lock_file(&of_arc);
        of.begin_open();
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
        // While passthrough readers hold the file, the kernel refuses cached opens of it.
        let fopen = if of.passthrough > 0 { FopenFlags::FOPEN_DIRECT_IO } else { write_only_fopen(flags.0) };
        let fh = sh.new_fh(Handle::File { write, backing: None });
        if write {
            of.writers += 1;
            of.unversioned.insert(fh);
        }
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
        count(MountOp::Read);
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
        count(MountOp::Write);
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
        count(MountOp::Flush);
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
        count(MountOp::Release);
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
            of.unversioned.remove(&fh.0);
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
        count(MountOp::Fsync);
        let sh = &self.sh;
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.wait_flight(ino.0));
        let Some(of_arc) = sh.open.lock().get(&ino.0).cloned() else { return reply.ok() };
        let mut of = lock_file(&of_arc);
        tryr!(reply, sh.commit(&actor(req), &ctx, ino.0, &mut of));
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        count(MountOp::Other);
        let listing = tryr!(reply, self.sh.list(ino.0));
        let fh = self.sh.new_fh(Handle::Dir(listing));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        count(MountOp::Readdir);
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
        count(MountOp::Readdir);
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
        count(MountOp::Other);
        self.sh.handles.lock().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        count(MountOp::Other);
        // Every metadata change is durable when its call returns; files created in the folder
        // and not yet flushed get there now.
        tryr!(reply, self.sh.settle_in(&actor(req), ino.0));
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        count(MountOp::Statfs);
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
        count(MountOp::Xattr);
        let sh = &self.sh;
        let name = tryr!(reply, name_str(name));
        let Some(prop) = name.strip_prefix(xattr::PREFIX).filter(|p| !p.is_empty()) else {
            return reply.error(Errno::ENOTSUP);
        };
        if ino.0 == ROOT {
            return reply.error(Errno::EPERM);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.may(&ctx, store::Op::Write));
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
        count(MountOp::Xattr);
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
        count(MountOp::Xattr);
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
        count(MountOp::Xattr);
        let sh = &self.sh;
        let name = tryr!(reply, name_str(name));
        let Some(prop) = name.strip_prefix(xattr::PREFIX) else { return reply.error(Errno::ENOTSUP) };
        if ino.0 == ROOT {
            return reply.error(Errno::ENODATA);
        }
        let ctx = tryr!(reply, sh.ctx(ino.0));
        tryr!(reply, sh.may(&ctx, store::Op::Write));
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
        count(MountOp::Create);
        let sh = &self.sh;
        let (ctx, path) = tryr!(reply, sh.child(parent.0, name));
        tryr!(reply, sh.may(&ctx, store::Op::Write));
        tryr!(reply, sh.outside_vault(&ctx, &path));
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
        let ino = ctx.ino(id);
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
            // The empty file just created needs no version (its handle is not `unversioned`).
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
        count(MountOp::Other);
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
        count(MountOp::Other);
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

pub(crate) fn sized(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
