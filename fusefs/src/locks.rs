//! The mount's locks, and the one rule that keeps them from closing a circle with the runtime.
//!
//! The kernel's requests run on FUSE threads, which wait on the tokio runtime for `store`
//! (`Shared::run`); tasks on the runtime (the journal watcher, write-behind, unlinks) use the
//! mount's shared state too. A runtime task that blocks on a lock stops a runtime worker, and a
//! FUSE thread holding that lock while it waits on the runtime then waits for a worker that
//! never comes: with every worker so stopped, the daemon answers nothing, for good. So:
//!
//! - **Leaf locks** ([`Leaf`]: the shared maps and small fields) are held for a map operation
//!   only: never across a wait of any kind (the runtime, a flight, a condition, a file's lock).
//!   Runtime tasks take leaf locks only, so they never wait for long.
//! - **A file's lock** ([`lock_file`]: an open file's state) may be held across waits on the
//!   runtime (a commit holds it), so it is never taken on the runtime, nor while a leaf lock
//!   is held. A leaf lock may be taken under it.
//!
//! Debug builds check both at every wait ([`may_wait`]): a leaf guard held there panics with
//! what was about to wait, whatever the timing, so the suite finds a violation the first time
//! the code runs rather than the one time in four hundred that the race is lost.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

thread_local! {
    /// Leaf guards alive on this thread.
    static HELD: Cell<u32> = const { Cell::new(0) };
}

/// A lock held only for a map operation (see the module doc).
#[derive(Default)]
pub(crate) struct Leaf<T>(Mutex<T>);

impl<T> Leaf<T> {
    pub(crate) fn new(value: T) -> Leaf<T> {
        Leaf(Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> LeafGuard<'_, T> {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        HELD.with(|h| h.set(h.get() + 1));
        LeafGuard(guard)
    }
}

pub(crate) struct LeafGuard<'a, T>(MutexGuard<'a, T>);

impl<T> Drop for LeafGuard<'_, T> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get() - 1));
    }
}

impl<T> Deref for LeafGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for LeafGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Called before anything that may wait (on the runtime, a flight, a file's lock): no leaf
/// lock may be held here (checked in debug builds).
#[track_caller]
pub(crate) fn may_wait(what: &str) {
    if cfg!(debug_assertions) {
        let held = HELD.with(Cell::get);
        assert!(
            held == 0,
            "fuse: {what} while holding {held} leaf lock(s): a runtime task may be waiting for one"
        );
    }
}

/// Lock an open file's state: never on the runtime, never under a leaf lock (checked in debug
/// builds).
#[track_caller]
pub(crate) fn lock_file<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    may_wait("locking an open file");
    if cfg!(debug_assertions) {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "fuse: an open file's lock taken on the runtime (its holder may be waiting on the runtime)"
        );
    }
    match m.try_lock() {
        Ok(g) => g,
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            let _op = store::watchdog::begin("fuse", "waiting for an open file's lock");
            m.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

/// Lock a mutex that guards a condition variable (a flight's result, the flight count); the
/// caller waits on it only through [`may_wait`]-checked paths.
pub(crate) fn lock_cv<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_under_a_leaf_lock_panics_in_debug_builds() {
        let leaf = Leaf::new(1);
        may_wait("nothing held");
        let caught = std::panic::catch_unwind(|| {
            let _g = leaf.lock();
            may_wait("a test wait");
        });
        assert_eq!(caught.is_err(), cfg!(debug_assertions));
        // The guard dropped while unwinding: waiting is allowed again.
        may_wait("after the guard");
        let file = Mutex::new(0);
        drop(lock_file(&file));
        let caught = std::panic::catch_unwind(|| {
            let _g = leaf.lock();
            drop(lock_file(&file));
        });
        assert_eq!(caught.is_err(), cfg!(debug_assertions));
    }

    #[test]
    fn a_file_lock_on_the_runtime_panics_in_debug_builds() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let file = Mutex::new(0);
        let caught = std::panic::catch_unwind(|| rt.block_on(async { drop(lock_file(&file)) }));
        assert_eq!(caught.is_err(), cfg!(debug_assertions));
    }
}
