//! Landing what is behind: committing pending files (settling), the write-behind and
//! unlink-behind tasks, and waiting for them where the store must agree first.

use std::ffi::OsStr;
use std::sync::Arc;

use fuser::Errno;
use store::{Actor, Draft, ETag, ErrorKind, Node, VPath};

use crate::behind::{Flight, Landing, Pending};
use crate::locks::lock_file;
use crate::state::{Inval, OpenFile, Shared, Tomb, UserCtx, id_of};
use crate::{Res, errno};

impl Shared {
    /// The pending file `ino` (if it is one), at its folder's current path: the folder may
    /// have moved since (a WebDAV MOVE). `Err(Ok(()))` if the folder is gone.
    pub(crate) fn pending_where(&self, ctx: &UserCtx, ino: u64) -> Result<Option<Pending>, Res<()>> {
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
    pub(crate) fn pending_named(&self, parent: u64, name: &str) -> Option<(u64, Pending)> {
        let pending = self.pending.lock();
        let ino = pending.named(parent, name)?;
        pending.get(&ino).map(|p| (ino, p.clone()))
    }

    /// What the store will hold for the pending file `ino` (its size and time come from the
    /// draft, see `attr`).
    pub(crate) fn pending_node(&self, ino: u64) -> Option<Node> {
        self.pending.lock().get(&ino).map(|p| Node {
            id: id_of(ino),
            path: p.path.clone(),
            is_dir: false,
            size: p.landing.as_ref().map_or(0, |l| l.size),
            mtime: p.landing.as_ref().map_or(p.created, |l| l.mtime),
            content_hash: None,
            etag: ETag(String::new()),
            mode: Some(p.mode),
            access: Default::default(),
        })
    }

    /// Put the pending file `ino` in the store, empty (its draft stays the open's uncommitted
    /// writes). Someone else having taken the name meanwhile leaves it pending: its first
    /// commit then becomes that file's new content.
    pub(crate) fn settle(&self, actor: &Actor, ino: u64) -> Res<()> {
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

    pub(crate) fn settle_locked(&self, actor: &Actor, ino: u64, of: &mut OpenFile) -> Res<()> {
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
    pub(crate) fn flight(&self, ino: u64) -> Option<Arc<Flight>> {
        self.pending.lock().get(&ino).and_then(|p| Some(p.landing.as_ref()?.flight.clone()))
    }

    /// Wait for the pending file `ino` to land if it is on its way: the commit's result.
    pub(crate) fn wait_flight(&self, ino: u64) -> Res<()> {
        self.flight(ino).map_or(Ok(()), |f| f.wait())
    }

    /// Hand the pending file `ino`, closed by its only handle, to a task that commits it (see
    /// [`Landing`]). False if it does not qualify; the caller then commits here and now.
    pub(crate) fn write_behind(
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
    pub(crate) fn land(
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
    pub(crate) fn settle_all(&self, actor: &Actor, which: impl Fn(u64, &Pending) -> bool) -> Res<()> {
        let inos: Vec<u64> =
            self.pending.lock().iter().filter(|(i, p)| which(**i, p)).map(|(i, _)| *i).collect();
        inos.into_iter().try_for_each(|ino| self.settle(actor, ino))
    }

    /// The unlink on its way of `name` in `parent`, if any.
    pub(crate) fn tomb(&self, parent: u64, name: &str) -> Option<Arc<Flight>> {
        self.unlinks.lock().tombs.get(&(parent, name.to_owned())).cloned()
    }

    pub(crate) fn wait_tomb(&self, parent: u64, name: &str) {
        if let Some(f) = self.tomb(parent, name) {
            let _ = f.wait();
        }
    }

    /// Wait for the unlinks on their way in the folders `which` picks.
    pub(crate) fn wait_tombs(&self, which: impl Fn(u64) -> bool) {
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

    /// Unlink the file `name` in `parent` behind the caller's back (see [`Unlinks`](crate::state::Unlinks)).
    pub(crate) fn unlink_behind(
        self: &Arc<Self>,
        actor: &Actor,
        ctx: &Arc<UserCtx>,
        parent: u64,
        path: VPath,
    ) {
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
    pub(crate) async fn unlinker(&self) {
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
    pub(crate) fn settle_in(&self, actor: &Actor, dir: u64) -> Res<()> {
        self.wait_tombs(|parent| parent == dir);
        self.settle_all(actor, |_, p| p.parent == dir)
    }

    /// Settle the pending file `name` in `parent`, if there is one.
    pub(crate) fn settle_named(&self, actor: &Actor, parent: u64, name: &OsStr) -> Res<()> {
        let Some(name) = name.to_str() else { return Ok(()) };
        self.wait_tomb(parent, name);
        match self.pending_named(parent, name) {
            Some((ino, _)) => self.settle(actor, ino),
            None => Ok(()),
        }
    }

    /// Settle every pending file at or below `path` of `ctx`'s user (a folder about to move).
    pub(crate) fn settle_below(&self, actor: &Actor, ctx: &UserCtx, path: &VPath) -> Res<()> {
        // Unlinks on their way are known by folder inode, not path: wait for all of them.
        self.wait_tombs(|_| true);
        self.settle_all(actor, |ino, p| {
            p.path.starts_with(path) && self.ctx(ino).is_ok_and(|u| u.id == ctx.id)
        })
    }
}
