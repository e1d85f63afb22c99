//! A cache of live nodes by path (and of folder listings), so that hot reads — a GET, a FUSE
//! lookup, a PROPFIND — need no database query. Off unless the daemon turns it on
//! (`Store::enable_cache`); `cairnctl` always reads the database.
//!
//! Correctness rests on per-user generations and an invalidation log. A reader notes the user's
//! generation (its *ticket*) *before* querying and files its answer under it. Every committed
//! change in this process invalidates, at commit, exactly the paths it touched — each changed
//! path with everything below it and every ancestor (whose etags change) — bumps the
//! generation, and logs the paths. An answer is kept only if no change logged since its ticket
//! touched its path, so an entry read before a change can never be served after it. Changes
//! made by other processes arrive through `NOTIFY cairn_changes` and drop the user's whole
//! tree; a lost listener connection clears everything; entries also expire after [`TTL`] as
//! a backstop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::types::{FileId, Node, UserId};

/// Longest an entry is served.
pub(crate) const TTL: Duration = Duration::from_secs(30);
/// Most entries kept (nodes and listed children); beyond this the cache starts over.
const MAX_ENTRIES: usize = 200_000;
/// Invalidations remembered per user for checking late answers.
const LOG_LEN: usize = 256;

#[derive(Default)]
pub(crate) struct NodeCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    enabled: bool,
    /// Bumped by every global clear.
    epoch: u64,
    users: HashMap<UserId, UserCache>,
    /// Nodes and listed children held, against [`MAX_ENTRIES`].
    size: usize,
    /// Users known to hold no WebDAV lock, with the lock generation it was learned under
    /// (locks are only taken in this process: `Store::lock` bumps the generation).
    lock_free: HashMap<UserId, u64>,
    lock_gens: HashMap<UserId, u64>,
}

#[derive(Default)]
struct UserCache {
    generation: u64,
    /// By stored path (`""` is the root).
    entries: BTreeMap<String, Entry>,
    /// Where a file id was last seen (checked against the entry on use).
    by_id: HashMap<FileId, String>,
    /// `(generation it produced, paths invalidated)`, oldest first; `None`: the whole tree.
    log: VecDeque<(u64, Option<Vec<String>>)>,
}

struct Entry {
    /// `None`: known not to exist.
    node: Option<Node>,
    /// The folder's entries, when listed.
    children: Option<Arc<Vec<Node>>>,
    at: Instant,
}

/// A token saying which generation a database read belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
    epoch: u64,
}

/// True if a change at `changed` can alter what is at `path`: the same path, below it, or
/// above it (an ancestor's etag changes with everything inside).
fn related(path: &str, changed: &str) -> bool {
    fn inside(inner: &str, outer: &str) -> bool {
        outer.is_empty()
            || (inner.len() > outer.len()
                && inner.starts_with(outer)
                && inner.as_bytes()[outer.len()] == b'/')
    }
    path == changed || inside(path, changed) || inside(changed, path)
}

impl UserCache {
    /// Remove every entry related to `changed`. Returns how many nodes went.
    fn remove_related(&mut self, changed: &str) -> usize {
        let mut gone = 0;
        let mut drop_key = |entries: &mut BTreeMap<String, Entry>, key: &str| {
            if let Some(e) = entries.remove(key) {
                gone += 1 + e.children.map_or(0, |c| c.len());
            }
        };
        // Ancestors, the root included.
        drop_key(&mut self.entries, "");
        for (i, b) in changed.bytes().enumerate() {
            if b == b'/' {
                drop_key(&mut self.entries, &changed[..i]);
            }
        }
        drop_key(&mut self.entries, changed);
        // Everything below: keys in ("changed/", "changed0"), '0' being the byte after '/'.
        let below: Vec<String> = if changed.is_empty() {
            self.entries.keys().cloned().collect()
        } else {
            let lo = format!("{changed}/");
            let hi = format!("{changed}0");
            self.entries.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for k in below {
            drop_key(&mut self.entries, &k);
        }
        gone
    }
}

impl NodeCache {
    pub(crate) fn enable(&self) {
        self.lock().enabled = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ticket(inner: &Inner, user: UserId) -> Ticket {
        Ticket { generation: inner.users.get(&user).map_or(0, |u| u.generation), epoch: inner.epoch }
    }

    /// What is at `path`: `Ok(Some)` a cached node, `Ok(None)` known absent; otherwise a ticket
    /// to file the database's answer under (`None`: the cache is off).
    pub(crate) fn get(&self, user: UserId, path: &str) -> Result<Option<Node>, Option<Ticket>> {
        let inner = self.lock();
        if !inner.enabled {
            return Err(None);
        }
        if let Some(e) = inner.users.get(&user).and_then(|u| u.entries.get(path))
            && e.at.elapsed() < TTL
        {
            return Ok(e.node.clone());
        }
        Err(Some(NodeCache::ticket(&inner, user)))
    }

    /// The cached node with id `id`, or a ticket.
    pub(crate) fn get_id(&self, user: UserId, id: FileId) -> Result<Node, Option<Ticket>> {
        let inner = self.lock();
        if !inner.enabled {
            return Err(None);
        }
        if let Some(u) = inner.users.get(&user)
            && let Some(path) = u.by_id.get(&id)
            && let Some(Entry { node: Some(node), at, .. }) = u.entries.get(path)
            && node.id == id
            && at.elapsed() < TTL
        {
            return Ok(node.clone());
        }
        Err(Some(NodeCache::ticket(&inner, user)))
    }

    /// The cached entries of the folder at `path`, or a ticket.
    pub(crate) fn get_children(&self, user: UserId, path: &str) -> Result<Arc<Vec<Node>>, Option<Ticket>> {
        let inner = self.lock();
        if !inner.enabled {
            return Err(None);
        }
        if let Some(Entry { children: Some(c), at, .. }) =
            inner.users.get(&user).and_then(|u| u.entries.get(path))
            && at.elapsed() < TTL
        {
            return Ok(c.clone());
        }
        Err(Some(NodeCache::ticket(&inner, user)))
    }

    /// Whether an answer read under `ticket` about `path` is still current.
    fn current(inner: &Inner, user: UserId, ticket: Ticket, path: &str) -> bool {
        if ticket.epoch != inner.epoch {
            return false;
        }
        let Some(u) = inner.users.get(&user) else { return ticket.generation == 0 };
        if u.generation == ticket.generation {
            return true;
        }
        // Every change since the ticket must be in the log, and none related to `path`.
        let first = u.log.front().map_or(u.generation + 1, |(g, _)| *g);
        if first > ticket.generation + 1 {
            return false;
        }
        u.log.iter().filter(|(g, _)| *g > ticket.generation).all(|(_, paths)| match paths {
            None => false,
            Some(paths) => paths.iter().all(|p| !related(path, p)),
        })
    }

    fn make_room(inner: &mut Inner, n: usize) {
        if inner.size + n > MAX_ENTRIES {
            for u in inner.users.values_mut() {
                u.entries.clear();
                u.by_id.clear();
            }
            inner.size = 0;
        }
        inner.size += n;
    }

    /// Keep what the database said is at `path` (`None`: nothing), unless a change since
    /// `ticket` touched it.
    pub(crate) fn put(&self, user: UserId, ticket: Ticket, path: &str, node: Option<&Node>) {
        let mut inner = self.lock();
        if !NodeCache::current(&inner, user, ticket, path) {
            return;
        }
        NodeCache::make_room(&mut inner, 1);
        let u = inner.users.entry(user).or_default();
        if let Some(n) = node {
            u.by_id.insert(n.id, path.to_owned());
        }
        let e = u.entries.entry(path.to_owned()).or_insert(Entry {
            node: None,
            children: None,
            at: Instant::now(),
        });
        if node.is_none() {
            e.children = None;
        }
        e.node = node.cloned();
        e.at = Instant::now();
    }

    /// Keep a folder's listing, unless a change since `ticket` touched the folder. (The entries
    /// are not filed as nodes one by one: in a folder being written to, the listing is dropped
    /// again at once, and the copying would be wasted.)
    pub(crate) fn put_children(&self, user: UserId, ticket: Ticket, dir: &Node, children: &Arc<Vec<Node>>) {
        let mut inner = self.lock();
        if !NodeCache::current(&inner, user, ticket, dir.path.as_str()) {
            return;
        }
        NodeCache::make_room(&mut inner, 1 + children.len());
        let now = Instant::now();
        let u = inner.users.entry(user).or_default();
        u.by_id.insert(dir.id, dir.path.as_str().to_owned());
        u.entries.insert(
            dir.path.as_str().to_owned(),
            Entry { node: Some(dir.clone()), children: Some(children.clone()), at: now },
        );
    }

    /// A change to `user`'s tree committed in this process: drop everything related to
    /// `paths` (`None`: the whole tree), then keep `fresh` (nodes the change left as they are
    /// now; the change holds their paths' locks, so nothing newer can exist yet).
    pub(crate) fn changed(&self, user: UserId, paths: Option<&[String]>, fresh: &[Node]) {
        let mut inner = self.lock();
        let mut gone = 0;
        {
            let u = inner.users.entry(user).or_default();
            u.generation += 1;
            let g = u.generation;
            match paths {
                Some(paths) => {
                    for p in paths {
                        gone += u.remove_related(p);
                    }
                }
                None => {
                    gone += u
                        .entries
                        .values()
                        .map(|e| 1 + e.children.as_ref().map_or(0, |c| c.len()))
                        .sum::<usize>();
                    u.entries.clear();
                    u.by_id.clear();
                }
            }
            u.log.push_back((g, paths.map(<[String]>::to_vec)));
            while u.log.len() > LOG_LEN {
                u.log.pop_front();
            }
        }
        inner.size = inner.size.saturating_sub(gone);
        if !inner.enabled || paths.is_none() {
            return;
        }
        NodeCache::make_room(&mut inner, fresh.len());
        let now = Instant::now();
        let u = inner.users.entry(user).or_default();
        for n in fresh {
            u.by_id.insert(n.id, n.path.as_str().to_owned());
            u.entries
                .insert(n.path.as_str().to_owned(), Entry { node: Some(n.clone()), children: None, at: now });
        }
    }

    /// Another process changed `user`'s tree: forget all of it.
    pub(crate) fn bump(&self, user: UserId) {
        self.changed(user, None, &[]);
    }

    /// `Ok` if `user` is known to hold no lock; otherwise a generation to pass to
    /// [`NodeCache::set_lock_free`] with a database answer (`None`: the cache is off).
    pub(crate) fn lock_free(&self, user: UserId) -> Result<(), Option<u64>> {
        let inner = self.lock();
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
        let mut inner = self.lock();
        if inner.lock_gens.get(&user).copied().unwrap_or(0) == generation {
            inner.lock_free.insert(user, generation);
        }
    }

    /// `user` took a lock: forget that it held none.
    pub(crate) fn lock_taken(&self, user: UserId) {
        let mut inner = self.lock();
        *inner.lock_gens.entry(user).or_insert(0) += 1;
        inner.lock_free.remove(&user);
    }

    /// Changes may have been missed: forget everything.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for u in inner.users.values_mut() {
            u.entries.clear();
            u.by_id.clear();
        }
        inner.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::VPath;
    use crate::types::{ETag, Timestamp};

    fn node(id: i64, path: &str, is_dir: bool) -> Node {
        Node {
            id: FileId(id),
            path: VPath::from_db(path.to_owned()).unwrap(),
            is_dir,
            size: 0,
            mtime: Timestamp(0),
            content_hash: None,
            etag: ETag(format!("e{id}")),
            mode: None,
        }
    }

    fn cache() -> NodeCache {
        let c = NodeCache::default();
        c.enable();
        c
    }

    const U: UserId = UserId(1);

    #[test]
    fn related_paths() {
        assert!(related("a/b", "a/b"));
        assert!(related("a/b/c", "a/b"));
        assert!(related("a", "a/b"));
        assert!(related("", "a/b"));
        assert!(related("a/b", ""));
        assert!(!related("a/bc", "a/b"));
        assert!(!related("a/b", "a/bc"));
        assert!(!related("x", "a/b"));
    }

    #[test]
    fn a_change_drops_the_path_what_is_below_and_ancestors_only() {
        let c = cache();
        let t = c.get(U, "a").unwrap_err().unwrap();
        for (i, p) in ["", "a", "a/b", "a/b/c", "a/bc", "x"].iter().enumerate() {
            c.put(U, t, p, Some(&node(i as i64, p, true)));
        }
        c.changed(U, Some(&["a/b".to_owned()]), &[]);
        for gone in ["", "a", "a/b", "a/b/c"] {
            assert!(c.get(U, gone).is_err(), "{gone} should be gone");
        }
        for kept in ["a/bc", "x"] {
            assert!(c.get(U, kept).unwrap().is_some(), "{kept} should stay");
        }
    }

    #[test]
    fn a_late_answer_about_a_changed_path_is_not_kept() {
        let c = cache();
        let t = c.get(U, "a/b").unwrap_err().unwrap();
        c.changed(U, Some(&["a/b".to_owned()]), &[]);
        c.put(U, t, "a/b", Some(&node(1, "a/b", false)));
        assert!(c.get(U, "a/b").is_err());
        // An unrelated path read under the same ticket is still good.
        c.put(U, t, "x", None);
        assert_eq!(c.get(U, "x").unwrap(), None);
        // A whole-tree change spoils every older ticket.
        let t2 = c.get(U, "y").unwrap_err().unwrap();
        c.bump(U);
        c.put(U, t2, "y", None);
        assert!(c.get(U, "y").is_err());
    }

    #[test]
    fn listings_go_with_any_change_inside_and_ids_resolve() {
        let c = cache();
        let t = c.get_children(U, "d").unwrap_err().unwrap();
        let dir = node(1, "d", true);
        c.put_children(U, t, &dir, &Arc::new(vec![node(2, "d/f", false), node(3, "d/g", false)]));
        assert_eq!(c.get_children(U, "d").unwrap().len(), 2);
        assert_eq!(c.get_id(U, FileId(1)).unwrap().path.as_str(), "d");
        let t = c.get(U, "d/g").unwrap_err().unwrap();
        c.put(U, t, "d/g", Some(&node(3, "d/g", false)));
        c.changed(U, Some(&["d/f".to_owned()]), &[node(2, "d/f", false)]);
        assert!(c.get_children(U, "d").is_err());
        assert_eq!(c.get(U, "d/g").unwrap().unwrap().id, FileId(3));
        assert_eq!(c.get_id(U, FileId(2)).unwrap().path.as_str(), "d/f");
        c.clear();
        assert!(c.get_id(U, FileId(3)).is_err());
    }
}
