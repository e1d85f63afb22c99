//! A small cache of live nodes by path, so a hot GET needs no database query. Off unless the
//! daemon turns it on (`Store::enable_cache`); `cairnctl` always reads the database.
//!
//! Correctness rests on per-user generations: a reader notes the user's generation *before*
//! querying and files its result under it; every committed change to the user's tree bumps the
//! generation (in-process at commit, from other processes through `NOTIFY cairn_changes`, sent
//! by the committing statement itself), so an entry read before a change can never be served
//! after it. A lost listener connection clears everything; entries also expire after
//! [`TTL`] as a backstop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::{Node, UserId};

/// Longest an entry is served.
pub(crate) const TTL: Duration = Duration::from_secs(30);
/// Most entries kept; beyond this the cache starts over.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub(crate) struct NodeCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    enabled: bool,
    /// Bumped by every change; `epoch` by every global clear.
    gens: HashMap<UserId, u64>,
    epoch: u64,
    entries: HashMap<(UserId, String), (Node, u64, u64, Instant)>,
    /// Users known to hold no WebDAV lock, with the lock generation it was learned under
    /// (locks are only taken in this process: `Store::lock` bumps the generation).
    lock_free: HashMap<UserId, u64>,
    lock_gens: HashMap<UserId, u64>,
}

/// A token saying which generation a database read belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    epoch: u64,
}

impl NodeCache {
    pub(crate) fn enable(&self) {
        self.inner.lock().expect("node cache poisoned").enabled = true;
    }

    /// A cached node, or a ticket to file the database's answer under.
    pub(crate) fn get(&self, user: UserId, path: &str) -> Result<Node, Option<Ticket>> {
        let inner = self.inner.lock().expect("node cache poisoned");
        if !inner.enabled {
            return Err(None);
        }
        let generation = inner.gens.get(&user).copied().unwrap_or(0);
        if let Some((node, g, e, at)) = inner.entries.get(&(user, path.to_owned()))
            && *g == generation
            && *e == inner.epoch
            && at.elapsed() < TTL
        {
            return Ok(node.clone());
        }
        Err(Some(Ticket { generation, epoch: inner.epoch }))
    }

    /// Keep `node` unless the user's tree changed since `ticket` was taken.
    pub(crate) fn put(&self, user: UserId, ticket: Ticket, node: &Node) {
        let mut inner = self.inner.lock().expect("node cache poisoned");
        if inner.gens.get(&user).copied().unwrap_or(0) != ticket.generation || inner.epoch != ticket.epoch {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(
            (user, node.path.as_str().to_owned()),
            (node.clone(), ticket.generation, ticket.epoch, Instant::now()),
        );
    }

    /// The user's tree changed.
    pub(crate) fn bump(&self, user: UserId) {
        let mut inner = self.inner.lock().expect("node cache poisoned");
        *inner.gens.entry(user).or_insert(0) += 1;
        inner.entries.retain(|(u, _), _| *u != user);
    }

    /// `Ok` if `user` is known to hold no lock; otherwise a generation to pass to
    /// [`NodeCache::set_lock_free`] with a database answer (`None`: the cache is off).
    pub(crate) fn lock_free(&self, user: UserId) -> Result<(), Option<u64>> {
        let inner = self.inner.lock().expect("node cache poisoned");
        if !inner.enabled {
            return Err(None);
        }
        let generation = inner.lock_gens.get(&user).copied().unwrap_or(0);
        match inner.lock_free.get(&user) {
            Some(g) if *g == generation => Ok(()),
            _ => Err(Some(generation)),
        }
    }

    /// Remember that `user` held no lock, unless a lock was taken since `generation`.
    pub(crate) fn set_lock_free(&self, user: UserId, generation: u64) {
        let mut inner = self.inner.lock().expect("node cache poisoned");
        if inner.lock_gens.get(&user).copied().unwrap_or(0) == generation {
            inner.lock_free.insert(user, generation);
        }
    }

    /// `user` took a lock: forget that it held none.
    pub(crate) fn lock_taken(&self, user: UserId) {
        let mut inner = self.inner.lock().expect("node cache poisoned");
        *inner.lock_gens.entry(user).or_insert(0) += 1;
        inner.lock_free.remove(&user);
    }

    /// Changes may have been missed: forget everything.
    pub(crate) fn clear(&self) {
        let mut inner = self.inner.lock().expect("node cache poisoned");
        inner.epoch += 1;
        inner.entries.clear();
    }
}
