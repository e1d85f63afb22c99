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
//!
//! A change that is known to come right after the last one the cache saw — its journal
//! sequence numbers follow on without a gap — *patches* its ancestors instead of dropping
//! them: each gets the new etag the change gave it, and the listing of the folder a file was
//! written in gets the file as it is now. The order matters: two writers in one folder commit
//! in one order and may report in the other, and a folder showing the final etag without the
//! earlier writer's file would be a state that never existed (a sync client would remember that
//! etag and miss the file). So a change reported out of order, or after a gap nobody in this
//! process accounts for (another process wrote), drops instead; once every commit this process
//! sent has reported, a gap still open clears the user's tree and the count starts again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::types::{ETag, FileId, Node, UserId};

/// Longest an entry is served.
pub(crate) const TTL: Duration = Duration::from_secs(300);
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
    /// The journal sequence every change up to which is reflected here (`None`: unknown).
    seq: Option<i64>,
    /// Sequence ranges `(before, after]` reported ahead of a gap, dropped rather than patched.
    pending: Vec<(i64, i64)>,
    /// The highest sequence number reported.
    max_seen: i64,
    /// Commits this process sent for the user that have not reported yet.
    in_flight: u32,
    /// Another process changed the tree (or changes may have been missed) since this
    /// process's commits in flight began: a report then cannot vouch for anything it did not
    /// write itself.
    foreign: bool,
}

/// Where a change falls in the user's journal (`before` → `after`), and the etag it gave each
/// of `ancestors`: what patching cached folders instead of dropping them needs.
#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) ancestors: Vec<String>,
    pub(crate) etag: ETag,
}

/// What a committed change did, as the cache needs it.
pub(crate) struct Change<'a> {
    /// Paths changed: each with everything below it and every ancestor.
    pub(crate) paths: &'a [String],
    /// Nodes as the change left them (it holds their paths' locks: nothing newer exists yet).
    pub(crate) fresh: &'a [Node],
    pub(crate) order: Option<&'a Order>,
    /// Folders the change created, empty.
    pub(crate) new_dirs: &'a [String],
}

fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

struct Entry {
    /// `None`: known not to exist.
    node: Option<Node>,
    /// The folder's entries, when listed.
    children: Option<Arc<Vec<Node>>>,
    at: Instant,
}

impl Entry {
    /// What it counts against [`MAX_ENTRIES`]: the node and each listed child.
    fn weight(&self) -> usize {
        1 + self.children.as_ref().map_or(0, |c| c.len())
    }
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
    /// File `entry` at `path`, replacing what was there. Returns (weight added, weight removed).
    fn insert(&mut self, path: &str, entry: Entry) -> (usize, usize) {
        if let Some(n) = &entry.node {
            self.by_id.insert(n.id, path.to_owned());
        }
        let added = entry.weight();
        (added, self.entries.insert(path.to_owned(), entry).map_or(0, |old| old.weight()))
    }

    /// Drop the entry at `path` and its id. Returns its weight.
    fn remove(&mut self, path: &str) -> usize {
        let Some(e) = self.entries.remove(path) else { return 0 };
        if let Some(n) = &e.node
            && self.by_id.get(&n.id).is_some_and(|p| p == path)
        {
            self.by_id.remove(&n.id);
        }
        e.weight()
    }

    /// Drop everything. Returns the weight dropped.
    fn clear(&mut self) -> usize {
        let gone = self.entries.values().map(Entry::weight).sum();
        self.entries.clear();
        self.by_id.clear();
        gone
    }

    /// Drop everything because it may be stale: the journal count starts over too (unlike
    /// [`UserCache::clear`], which only makes room). Returns the weight dropped.
    fn forget(&mut self) -> usize {
        self.seq = None;
        self.pending.clear();
        self.clear()
    }

    /// Log the invalidation that produced generation `g` (`None`: the whole tree).
    fn log_change(&mut self, g: u64, paths: Option<Vec<String>>) {
        self.log.push_back((g, paths));
        while self.log.len() > LOG_LEN {
            self.log.pop_front();
        }
    }

    /// Drop every entry related to `changed`. Returns the weight dropped.
    fn remove_related(&mut self, changed: &str) -> usize {
        // Ancestors, the root included.
        let mut gone = self.remove("");
        for (i, b) in changed.bytes().enumerate() {
            if b == b'/' {
                gone += self.remove(&changed[..i]);
            }
        }
        gone + self.remove_below(changed)
    }

    /// Apply an in-order change (see the module notes). Returns (weight added, weight removed).
    fn patch(&mut self, ch: &Change<'_>, order: &Order) -> (usize, usize) {
        let is_ancestor = |p: &str| order.ancestors.iter().any(|a| a == p);
        let (mut added, mut gone) = (0, 0);
        for p in ch.paths {
            // A changed folder that is also an ancestor of another change loses only its own
            // entry: what changed below it is listed in `paths` itself.
            gone += if is_ancestor(p) { self.remove(p) } else { self.remove_below(p) };
            // Ancestors the change gave no new etag (none, for the changes `close` records)
            // cannot be patched.
            let mut q = p.as_str();
            while !q.is_empty() {
                q = parent(q);
                if !is_ancestor(q) {
                    gone += self.remove(q);
                }
            }
        }
        for a in &order.ancestors {
            let Some(mut e) = self.entries.remove(a.as_str()) else { continue };
            gone += e.weight();
            let Some(node) = e.node.as_mut() else {
                // Known absent, yet the change found it: forget it (the id index holds no
                // absent entries).
                continue;
            };
            node.etag = order.etag.clone();
            if let Some(children) = e.children.as_mut() {
                let list = Arc::make_mut(children);
                for c in list.iter_mut() {
                    if is_ancestor(c.path.as_str()) {
                        c.etag = order.etag.clone();
                    }
                }
                let mut keep = true;
                for p in ch.paths.iter().filter(|p| !p.is_empty() && parent(p) == a) {
                    let Some(n) = ch.fresh.iter().find(|n| n.path.as_str() == p) else {
                        // Changed without a node to show for it (gone, moved, or left an
                        // ancestor): the listing is read again.
                        keep = false;
                        break;
                    };
                    match list.binary_search_by(|c| c.path.name().as_bytes().cmp(n.path.name().as_bytes())) {
                        Ok(i) => list[i] = n.clone(),
                        Err(i) => list.insert(i, n.clone()),
                    }
                }
                if !keep {
                    e.children = None;
                }
            }
            let (a_in, a_out) = self.insert(a, e);
            added += a_in;
            gone += a_out;
        }
        (added, gone)
    }

    /// Drop the entry at `changed` and everything below it. Returns the weight dropped.
    fn remove_below(&mut self, changed: &str) -> usize {
        let mut gone = self.remove(changed);
        // Everything below: keys in ("changed/", "changed0"), '0' being the byte after '/'.
        let below: Vec<String> = if changed.is_empty() {
            self.entries.keys().cloned().collect()
        } else {
            let lo = format!("{changed}/");
            let hi = format!("{changed}0");
            self.entries.range(lo..hi).map(|(k, _)| k.clone()).collect()
        };
        for k in below {
            gone += self.remove(&k);
        }
        gone
    }
}

impl Inner {
    /// File `entry` at `user`'s `path`, starting over if the cache would outgrow
    /// [`MAX_ENTRIES`].
    fn file(&mut self, user: UserId, path: &str, entry: Entry) {
        if self.size + entry.weight() > MAX_ENTRIES {
            for u in self.users.values_mut() {
                u.clear();
            }
            self.size = 0;
        }
        let (added, removed) = self.users.entry(user).or_default().insert(path, entry);
        self.size = (self.size + added).saturating_sub(removed);
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
        if let Some(u) = inner.users.get(&user) {
            if let Some(e) = u.entries.get(path)
                && e.at.elapsed() < TTL
            {
                return Ok(e.node.clone());
            }
            // As its folder's listing has it, or absent if not there (a listing is kept only
            // while exact: changes in order patch it, any other drops it).
            if !path.is_empty()
                && let Some(Entry { children: Some(c), at, .. }) = u.entries.get(parent(path))
                && at.elapsed() < TTL
            {
                let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
                return match c.binary_search_by(|n| n.path.name().as_bytes().cmp(name.as_bytes())) {
                    Ok(i) => Ok(Some(c[i].clone())),
                    Err(_) => Ok(None),
                };
            }
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

    /// Keep what the database said is at `path` (`None`: nothing), unless a change since
    /// `ticket` touched it.
    pub(crate) fn put(&self, user: UserId, ticket: Ticket, path: &str, node: Option<&Node>) {
        let mut inner = self.lock();
        if !NodeCache::current(&inner, user, ticket, path) {
            return;
        }
        // A folder's listing stays with it while it exists.
        let children = node.and(inner.users.get(&user).and_then(|u| u.entries.get(path)?.children.clone()));
        inner.file(user, path, Entry { node: node.cloned(), children, at: Instant::now() });
    }

    /// Keep a folder's listing, unless a change since `ticket` touched the folder. (The entries
    /// are not filed as nodes one by one: in a folder being written to, the listing is dropped
    /// again at once, and the copying would be wasted.)
    pub(crate) fn put_children(&self, user: UserId, ticket: Ticket, dir: &Node, children: &Arc<Vec<Node>>) {
        let mut inner = self.lock();
        if !NodeCache::current(&inner, user, ticket, dir.path.as_str()) {
            return;
        }
        let entry = Entry { node: Some(dir.clone()), children: Some(children.clone()), at: Instant::now() };
        inner.file(user, dir.path.as_str(), entry);
    }

    /// This process is about to commit a change to `user`'s tree; [`NodeCache::committed`]
    /// follows, whatever happens.
    pub(crate) fn committing(&self, user: UserId) {
        let mut inner = self.lock();
        let u = inner.users.entry(user).or_default();
        if u.in_flight == 0 {
            u.foreign = false;
        }
        u.in_flight += 1;
    }

    /// A commit of this process reported: what it changed (`None`: unknown, or it failed and
    /// may or may not have happened). Drops or patches what it touched (see the module
    /// notes), then keeps `fresh`.
    pub(crate) fn committed(&self, user: UserId, change: Option<Change<'_>>) {
        self.apply(user, change, true);
    }

    /// Apply a change to `user`'s tree (`None`: forget the tree); `own`: a commit of this
    /// process reporting.
    fn apply(&self, user: UserId, change: Option<Change<'_>>, own: bool) {
        let mut inner = self.lock();
        let u = inner.users.entry(user).or_default();
        match own {
            true => u.in_flight = u.in_flight.saturating_sub(1),
            false => u.foreign = true,
        }
        u.generation += 1;
        let g = u.generation;
        let Some(ch) = change else {
            let gone = u.forget();
            u.log_change(g, None);
            inner.size = inner.size.saturating_sub(gone);
            return;
        };
        let order = ch.order.filter(|o| o.after > o.before);
        let mut whole = false;
        let mut patched = false;
        let (added, mut gone) = match order {
            Some(o) if u.seq == Some(o.before) && u.pending.is_empty() => {
                u.seq = Some(o.after);
                patched = true;
                u.patch(&ch, o)
            }
            _ => (0, ch.paths.iter().map(|p| u.remove_related(p)).sum()),
        };
        if let Some(o) = order {
            u.max_seen = u.max_seen.max(o.after);
            match u.seq {
                Some(s) if s == o.after => {} // patched just now
                Some(s) if o.before >= s => {
                    // Ahead of a gap: dropped, and counted once the gap fills.
                    u.pending.push((o.before, o.after));
                    while let Some(i) = u.pending.iter().position(|r| Some(r.0) == u.seq) {
                        u.seq = Some(u.pending.swap_remove(i).1);
                    }
                }
                // Behind what was counted already: cannot happen (see `committing`); start over.
                Some(_) => whole = true,
                None => {}
            }
            if u.in_flight == 0 && (u.seq.is_none() || !u.pending.is_empty()) {
                // Everything this process sent has reported and a gap is left (another process
                // wrote, or nothing was known): start over from here.
                whole = true;
            }
            if whole {
                gone += u.clear();
                u.seq = Some(u.max_seen);
                u.pending.clear();
            }
        }
        // A folder this change created is known to be empty (lookups of names in it need no
        // query, see `get`) if the change is the last one to the user's tree: applied in order,
        // or the one the count starts over from, with nothing else of this process in flight
        // and no other process's change heard of since it began (that one could have written
        // into the folder before this report).
        let exact =
            (patched && !whole) || (whole && !u.foreign && order.is_some_and(|o| u.seq == Some(o.after)));
        u.log_change(g, (!whole).then(|| ch.paths.to_vec()));
        inner.size = (inner.size + added).saturating_sub(gone);
        if !inner.enabled {
            return;
        }
        let now = Instant::now();
        for n in ch.fresh {
            let children =
                (exact && ch.new_dirs.iter().any(|d| d == n.path.as_str())).then(|| Arc::new(Vec::new()));
            inner.file(user, n.path.as_str(), Entry { node: Some(n.clone()), children, at: now });
        }
    }

    /// Another process changed `user`'s tree: forget all of it.
    pub(crate) fn bump(&self, user: UserId) {
        self.apply(user, None, false);
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
            u.forget();
            u.foreign = true;
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
            access: Default::default(),
        }
    }

    fn cache() -> NodeCache {
        let c = NodeCache::default();
        c.enable();
        c
    }

    const U: UserId = UserId(1);

    /// Report a change of this process, as `Locked::commit` does.
    fn change(c: &NodeCache, paths: &[&str], fresh: &[Node], order: Option<&Order>) {
        c.committing(U);
        report(c, paths, fresh, order);
    }

    /// The report of a change whose commit began earlier ([`NodeCache::committing`]).
    fn report(c: &NodeCache, paths: &[&str], fresh: &[Node], order: Option<&Order>) {
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        c.committed(U, Some(Change { paths: &paths, fresh, order, new_dirs: &[] }));
    }

    /// Report this process's change that created the empty folder `dir`.
    fn make_dir(c: &NodeCache, dir: Node, order: &Order) {
        c.committing(U);
        report_dir(c, dir, order);
    }

    /// The report of a change creating the empty folder `dir` whose commit began earlier.
    fn report_dir(c: &NodeCache, dir: Node, order: &Order) {
        let paths = [dir.path.as_str().to_owned()];
        c.committed(U, Some(Change { paths: &paths, fresh: &[dir], order: Some(order), new_dirs: &paths }));
    }

    fn order(before: i64, after: i64, ancestors: &[&str], etag: &str) -> Order {
        Order {
            before,
            after,
            ancestors: ancestors.iter().map(|a| (*a).to_owned()).collect(),
            etag: ETag(etag.to_owned()),
        }
    }

    /// Cache the root and `d` (listed: `d/f`, `d/g`) and the root's listing (`d`).
    fn fill(c: &NodeCache) {
        let t = c.get(U, "").unwrap_err().unwrap();
        c.put_children(U, t, &node(1, "", true), &Arc::new(vec![node(2, "d", true)]));
        c.put_children(
            U,
            t,
            &node(2, "d", true),
            &Arc::new(vec![node(3, "d/f", false), node(4, "d/g", false)]),
        );
    }

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
        change(&c, &["a/b"], &[], None);
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
        change(&c, &["a/b"], &[], None);
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
        assert_eq!(c.get(U, "d/g").unwrap().unwrap().id, FileId(3), "as listed");
        let t = c.get(U, "elsewhere/x").unwrap_err().unwrap();
        c.put(U, t, "d/g", Some(&node(3, "d/g", false)));
        change(&c, &["d/f"], &[node(2, "d/f", false)], None);
        assert!(c.get_children(U, "d").is_err());
        assert_eq!(c.get(U, "d/g").unwrap().unwrap().id, FileId(3));
        assert_eq!(c.get_id(U, FileId(2)).unwrap().path.as_str(), "d/f");
        c.clear();
        assert!(c.get_id(U, FileId(3)).is_err());
    }

    #[test]
    fn refiling_and_invalidating_keep_the_count_and_the_id_index_exact() {
        let c = cache();
        let t = c.get(U, "a").unwrap_err().unwrap();
        for _ in 0..3 {
            c.put(U, t, "a", Some(&node(1, "a", false)));
        }
        let t = c.get_children(U, "d").unwrap_err().unwrap();
        c.put_children(U, t, &node(2, "d", true), &Arc::new(vec![node(3, "d/x", false)]));
        assert_eq!(c.lock().size, 3);
        change(&c, &["a", "d"], &[], None);
        let inner = c.lock();
        assert_eq!(inner.size, 0);
        assert!(inner.users[&U].by_id.is_empty());
    }

    #[test]
    fn an_in_order_change_patches_etags_and_the_listing() {
        let c = cache();
        // The first change seen sets the count (and starts over: nothing was known).
        change(&c, &["x"], &[], Some(&order(0, 1, &[""], "e0")));
        fill(&c);
        let mut h = node(5, "d/h", false);
        h.etag = ETag("new-h".into());
        let mut f = node(3, "d/f", false);
        f.size = 9;
        change(&c, &["d/f", "d/h"], &[f, h], Some(&order(1, 3, &["", "d"], "E")));
        assert_eq!(c.get(U, "").unwrap().unwrap().etag.0, "E");
        assert_eq!(c.get_children(U, "").unwrap()[0].etag.0, "E");
        let d = c.get_children(U, "d").unwrap();
        let names: Vec<&str> = d.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(names, ["d/f", "d/g", "d/h"]);
        assert_eq!(d[0].size, 9);
        assert_eq!(d[2].etag.0, "new-h");
        assert_eq!(c.get(U, "d").unwrap().unwrap().etag.0, "E");
        // A change with no node to show (a delete) drops the folder's listing, not its node.
        change(&c, &["d/g"], &[], Some(&order(3, 4, &["", "d"], "E2")));
        assert!(c.get_children(U, "d").is_err());
        assert_eq!(c.get(U, "d").unwrap().unwrap().etag.0, "E2");
        let inner = c.lock();
        assert_eq!(inner.size, inner.users[&U].entries.values().map(Entry::weight).sum::<usize>());
    }

    #[test]
    fn changes_reported_out_of_order_drop_instead_of_patching() {
        let c = cache();
        change(&c, &["x"], &[], Some(&order(0, 1, &[""], "e0")));
        fill(&c);
        // Two commits in flight; the later one reports first.
        c.committing(U);
        c.committing(U);
        let p2 = ["d/g".to_owned()];
        c.committed(
            U,
            Some(Change {
                paths: &p2,
                fresh: &[node(4, "d/g", false)],
                order: Some(&order(2, 3, &["", "d"], "E2")),
                new_dirs: &[],
            }),
        );
        assert!(c.get(U, "d").is_err(), "the folder must not show E2 without the first change");
        assert!(c.get_children(U, "d").is_err());
        fill(&c);
        let p1 = ["d/f".to_owned()];
        c.committed(
            U,
            Some(Change {
                paths: &p1,
                fresh: &[node(3, "d/f", false)],
                order: Some(&order(1, 2, &["", "d"], "E1")),
                new_dirs: &[],
            }),
        );
        assert!(c.get(U, "d").is_err());
        // The gap is filled: the next change patches again.
        fill(&c);
        change(&c, &["d/f"], &[node(3, "d/f", false)], Some(&order(3, 4, &["", "d"], "E3")));
        assert_eq!(c.get(U, "d").unwrap().unwrap().etag.0, "E3");
    }

    #[test]
    fn a_gap_nobody_here_accounts_for_starts_over() {
        let c = cache();
        change(&c, &["x"], &[], Some(&order(0, 1, &[""], "e0")));
        fill(&c);
        c.put(U, c.get(U, "x/elsewhere").unwrap_err().unwrap(), "x/elsewhere", None);
        // Another process wrote sequence 2; this change is 3.
        change(&c, &["d/f"], &[node(3, "d/f", false)], Some(&order(2, 3, &["", "d"], "E")));
        assert!(c.get(U, "x/elsewhere").is_err(), "the whole tree goes");
        assert_eq!(c.get(U, "d/f").unwrap().unwrap().id, FileId(3), "fresh nodes are kept");
        fill(&c);
        change(&c, &["d/f"], &[node(3, "d/f", false)], Some(&order(3, 4, &["", "d"], "E4")));
        assert_eq!(c.get(U, "d").unwrap().unwrap().etag.0, "E4");
        // Another process's notice forgets the count as well.
        c.bump(U);
        fill(&c);
        change(&c, &["d/f"], &[node(3, "d/f", false)], Some(&order(4, 5, &["", "d"], "E5")));
        assert!(c.get(U, "d").is_err());
    }

    #[test]
    fn a_listed_or_new_empty_folder_answers_for_absent_names() {
        let c = cache();
        change(&c, &["x"], &[], Some(&order(0, 1, &[""], "e0")));
        fill(&c);
        assert_eq!(c.get(U, "d/nothing").unwrap(), None, "not in the listing of d");
        assert_eq!(c.get(U, "d/f").unwrap().unwrap().id, FileId(3), "as listed");
        assert!(c.get(U, "d/f/x").is_err(), "d/f has no listing");

        // A folder created in order is known empty; a file written into it then is listed.
        make_dir(&c, node(5, "d/new", true), &order(1, 2, &["", "d"], "E2"));
        assert_eq!(c.get(U, "d/new/a").unwrap(), None);
        change(&c, &["d/new/a"], &[node(6, "d/new/a", false)], Some(&order(2, 3, &["", "d", "d/new"], "E3")));
        assert_eq!(c.get(U, "d/new/a").unwrap().unwrap().id, FileId(6));
        assert_eq!(c.get(U, "d/new/b").unwrap(), None);

        // Reported out of order (sequence 4 never reported here, its commit still in flight):
        // not known empty.
        c.committing(U);
        make_dir(&c, node(7, "late", true), &order(4, 5, &[""], "E5"));
        assert!(c.get(U, "late/a").is_err(), "a folder created after a gap is not known empty");
    }

    #[test]
    fn a_folder_made_when_the_count_starts_over_is_known_empty() {
        // Nothing known yet (as after a start, or after another process wrote): the change the
        // count starts over from vouches for the folder it created.
        let c = cache();
        make_dir(&c, node(5, "new", true), &order(7, 8, &[""], "E8"));
        assert_eq!(c.get(U, "new/a").unwrap(), None);
        change(&c, &["new/a"], &[node(6, "new/a", false)], Some(&order(8, 9, &["", "new"], "E9")));
        assert_eq!(c.get(U, "new/a").unwrap().unwrap().id, FileId(6));

        // Another process changed the tree while the commit was in flight: it may have written
        // into the folder before the report, so the folder is not known empty.
        let c = cache();
        c.committing(U);
        c.bump(U);
        report_dir(&c, node(7, "x", true), &order(3, 4, &[""], "E4"));
        assert!(c.get(U, "x/a").is_err(), "not known empty after another process's change");

        // A later change of this process reported first (it may have written into the folder):
        // the folder's change is not the last one, so it is not known empty.
        let c = cache();
        c.committing(U);
        c.committing(U);
        report(&c, &["y/a"], &[], Some(&order(4, 5, &["", "y"], "E5")));
        report_dir(&c, node(8, "y", true), &order(3, 4, &[""], "E4"));
        assert!(c.get(U, "y/a").is_err(), "not known empty when a later change reported first");
    }
}
