//! What the mount carries behind its replies (docs/design/storage.md, write-behind and
//! unlink-behind): files created and not yet committed ([`Pending`]), and commits and unlinks
//! on their way ([`Flight`], [`Flights`]). The names unlinked but not yet in the trash are
//! `state::Unlinks`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use store::{Timestamp, VPath};

use crate::Res;
use crate::locks::{lock_cv, may_wait};

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
pub(crate) struct Pending {
    pub(crate) parent: u64,
    pub(crate) path: VPath,
    pub(crate) mode: u32,
    pub(crate) created: Timestamp,
    /// Closed and on its way to the store.
    pub(crate) landing: Option<Landing>,
}

/// A new file's *write-behind* (the mechanism: docs/design/storage.md): closed by its only
/// handle, on its way to the store in `flight`; `size` and `mtime` as closed, which lookups
/// and attributes answer until the flight lands.
#[derive(Clone)]
pub(crate) struct Landing {
    pub(crate) size: u64,
    pub(crate) mtime: Timestamp,
    pub(crate) flight: Arc<Flight>,
}

/// The pending files, by inode and by (folder, name).
#[derive(Default)]
pub(crate) struct PendingSet {
    pub(crate) by_ino: HashMap<u64, Pending>,
    pub(crate) by_name: HashMap<(u64, String), u64>,
}

impl PendingSet {
    pub(crate) fn get(&self, ino: &u64) -> Option<&Pending> {
        self.by_ino.get(ino)
    }
    pub(crate) fn get_mut(&mut self, ino: &u64) -> Option<&mut Pending> {
        self.by_ino.get_mut(ino)
    }
    pub(crate) fn contains_key(&self, ino: &u64) -> bool {
        self.by_ino.contains_key(ino)
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.by_ino.is_empty()
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &Pending)> {
        self.by_ino.iter()
    }
    pub(crate) fn named(&self, parent: u64, name: &str) -> Option<u64> {
        self.by_name.get(&(parent, name.to_owned())).copied()
    }
    pub(crate) fn insert(&mut self, ino: u64, p: Pending) {
        self.by_name.insert((p.parent, p.path.name().to_owned()), ino);
        self.by_ino.insert(ino, p);
    }
    pub(crate) fn remove(&mut self, ino: &u64) -> Option<Pending> {
        let p = self.by_ino.remove(ino)?;
        let key = (p.parent, p.path.name().to_owned());
        if self.by_name.get(&key) == Some(ino) {
            self.by_name.remove(&key);
        }
        Some(p)
    }
}

/// Work carried out behind a reply (a write-behind, see [`Landing`], or an unlink, see
/// `state::Unlinks`), for whoever must wait for it.
#[derive(Default)]
pub(crate) struct Flight {
    /// `None` while in flight, then the result.
    pub(crate) done: Mutex<Option<Res<()>>>,
    pub(crate) cv: Condvar,
}

impl Flight {
    pub(crate) fn wait(&self) -> Res<()> {
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

    pub(crate) fn finish(&self, res: Res<()>) {
        *lock_cv(&self.done) = Some(res);
        self.cv.notify_all();
    }
}

/// Most new files in flight at once: a program creating files faster than they commit waits
/// at `close` for a slot, so the backlog (and what a crash can lose) stays small.
pub(crate) const MAX_FLIGHTS: usize = 128;

/// Most unlinks on their way to the trash at once. An unlink holds no data, so more may wait
/// than new files: a burst of unlinks then goes on while a transaction waits for the disk
/// (seen: the folder's fsync right after 10,000 creates) instead of stalling at 128.
pub(crate) const MAX_UNLINKS: usize = 1024;

/// The count of flights of one kind, for their limit and for unmounting.
pub(crate) struct Flights {
    pub(crate) count: Mutex<usize>,
    pub(crate) cv: Condvar,
    pub(crate) limit: usize,
}

impl Flights {
    pub(crate) fn new(limit: usize) -> Flights {
        Flights { count: Mutex::new(0), cv: Condvar::new(), limit }
    }

    pub(crate) fn begin(&self) {
        may_wait("waiting for a flight slot");
        let mut n = lock_cv(&self.count);
        let _op =
            (*n >= self.limit).then(|| store::watchdog::begin("fuse", "waiting for a write-behind slot"));
        while *n >= self.limit {
            n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    pub(crate) fn end(&self) {
        *lock_cv(&self.count) -= 1;
        self.cv.notify_all();
    }

    /// Wait until every flight has landed (at most `limit`).
    pub(crate) fn drain(&self, limit: Duration) {
        may_wait("draining flights");
        let n = lock_cv(&self.count);
        let _ = self.cv.wait_timeout_while(n, limit, |n| *n > 0);
    }
}
