//! Paths whose committed disk work is still under way in this process.
//!
//! A commit is visible in the database (and the node cache is told) before its files are moved
//! into place: the durable-write order commits first, then carries out the intent. A reader in
//! between finds the new node over the old file (see `Reread` in `read.rs`). Usually the gap is
//! a few renames long; on a loaded machine the barrier behind the commit (the WAL flush) and the
//! renames' fsyncs can stretch it past any fixed patience. So every commit registers the paths
//! its intent touches before it is sent, and drops them once the intent is carried out (or has
//! failed); a reader that finds node and file disagreeing under such a path waits for that
//! instead of guessing. Commits made by other processes are not registered: readers fall back
//! to their bounded rereading.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::intent::DiskOp;

#[derive(Default)]
pub(crate) struct Placing {
    /// Path (relative to the data directory) → how many registrations hold it.
    paths: Mutex<HashMap<String, usize>>,
    settled: tokio::sync::Notify,
}

/// The registration of one commit's paths; dropping it ends it.
pub(crate) struct Placed {
    placing: Arc<Placing>,
    paths: Vec<String>,
}

impl Placing {
    /// Register the paths `intents` touch (every rename's both ends, every created or removed
    /// path); `None` if there are none.
    pub(crate) fn register<'a>(
        self: &Arc<Self>,
        intents: impl IntoIterator<Item = &'a DiskOp>,
    ) -> Option<Placed> {
        let mut paths: Vec<String> = Vec::new();
        for op in intents {
            match op {
                DiskOp::Rename { from, to, .. } => {
                    paths.push(from.clone());
                    paths.push(to.clone());
                }
                DiskOp::Mkdir { path } | DiskOp::Remove { path } | DiskOp::CreateFile { path, .. } => {
                    paths.push(path.clone())
                }
            }
        }
        if paths.is_empty() {
            return None;
        }
        let mut held = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        for p in &paths {
            *held.entry(p.clone()).or_default() += 1;
        }
        Some(Placed { placing: self.clone(), paths })
    }

    /// Whether a registered path is `rel` or one of its ancestors.
    pub(crate) fn covers(&self, rel: &str) -> bool {
        let held = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        !held.is_empty() && held.keys().any(|p| covered(p, rel))
    }

    /// Wait until no registered path covers `rel`, or until `deadline`.
    pub(crate) async fn settled(&self, rel: &str, deadline: Instant) {
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            // Registered before looking, so a drop between the look and the wait still wakes.
            notified.as_mut().enable();
            if !self.covers(rel) {
                return;
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                return;
            }
        }
    }
}

/// `rel` is `p` or lies below it.
fn covered(p: &str, rel: &str) -> bool {
    rel.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Drop for Placed {
    fn drop(&mut self) {
        {
            let mut held = self.placing.paths.lock().unwrap_or_else(|e| e.into_inner());
            for p in &self.paths {
                if let Some(n) = held.get_mut(p) {
                    *n -= 1;
                    if *n == 0 {
                        held.remove(p);
                    }
                }
            }
        }
        self.placing.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_covered_by_itself_and_its_ancestors_only() {
        assert!(covered("u/a", "u/a"));
        assert!(covered("u/a", "u/a/b.txt"));
        assert!(!covered("u/a", "u/ab"));
        assert!(!covered("u/a/b", "u/a"));
    }

    #[tokio::test]
    async fn a_reader_waits_for_the_registration_to_end() {
        let placing = Arc::new(Placing::default());
        let ops = [DiskOp::rename("staging/x", "u/a/f", crate::intent::Done::FromMissing)];
        let placed = placing.register(ops.iter()).expect("paths");
        assert!(placing.covers("u/a/f") && !placing.covers("u/a/g"));
        let p = placing.clone();
        let waiter = tokio::spawn(async move {
            p.settled("u/a/f", Instant::now() + std::time::Duration::from_secs(30)).await;
            Instant::now()
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let dropped = Instant::now();
        drop(placed);
        let woke = waiter.await.expect("waiter");
        assert!(woke >= dropped, "woke before the registration ended");
        assert!(!placing.covers("u/a/f"));
    }
}
