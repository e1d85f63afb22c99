//! The machinery every mutation shares: advisory locks, the closing steps of a transaction
//! (usage and quota with pruning, journal, audit, intent), and applying the intent afterwards.
//!
//! Locking: a single-path change (write, mkdir, version restore) takes the user's lock *shared*
//! and the path's lock exclusive; a change to a tree (delete, move, copy, trash restore, purge)
//! takes the user's lock exclusive. The locks are session-level advisory locks held from before
//! the transaction until the disk work is done, so two changes never interleave their renames.
//! The `UPDATE users` at the end of every transaction takes the user's row lock, which orders
//! commits per user: journal sequence numbers are handed out in commit order.

use crate::db::Cached;
use deadpool_postgres::Object;
use tokio_postgres::Row;

use crate::disk::layout;
use crate::intent::{self, DiskOp, Preflight};
use crate::path::{UserName, VPath};
use crate::types::{Actor, ContentHash, ETag, FileId, Node, Timestamp, User, UserId, VersionId};
use crate::{Error, ErrorKind, Result, Store, blocking};

/// Which advisory locks a mutation holds.
#[derive(Clone, Copy)]
pub(crate) enum LockSet<'a> {
    /// Shared on the user, exclusive on one path.
    Path(UserId, &'a VPath),
    /// Exclusive on the user.
    Tree(UserId),
}

fn key(parts: &[&[u8]]) -> i64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    i64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

fn user_key(user: UserId) -> i64 {
    key(&[b"user", &user.0.to_le_bytes()])
}

fn path_key(user: UserId, path: &VPath) -> i64 {
    key(&[b"path", &user.0.to_le_bytes(), path.as_str().as_bytes()])
}

/// A pooled connection holding advisory locks. `release` unlocks and returns it to the pool;
/// dropping it without `release` closes the connection, which also frees the locks, so a lock
/// can never leak into the pool.
pub(crate) struct Locked {
    client: Option<Object>,
    /// Whose tree the locks are on.
    user: UserId,
    /// A transaction is open (`begin` sent, no commit yet).
    in_tx: bool,
    /// What the transaction changed, for the node cache at commit (one entry per user and
    /// actor closed: a batch of writes closes several).
    changed: std::sync::Mutex<Vec<(UserId, Changed)>>,
    /// Intents of logged small writes (see [`crate::Store::write`]): carried out without
    /// fsyncs and kept until the next flush.
    logged: std::sync::Mutex<Vec<i64>>,
    /// Statements the connection still owes its last user (see [`Carried`]), sent ahead of
    /// this transaction's BEGIN.
    owed: String,
}

/// A connection whose last change is done except for its closing statements (deleting its
/// intents, releasing its advisory locks), kept for the next change instead of spending a
/// round trip on them: the next change sends them ahead of its BEGIN, in the same message. The
/// group commit's leader carries its connection from batch to batch this way.
/// [`Carried::release`] sends them now; dropping it closes the connection (which also frees
/// the locks).
pub(crate) struct Carried {
    client: Option<Object>,
    tail: String,
}

impl Carried {
    /// Send the owed statements and return the connection to the pool.
    pub(crate) async fn release(mut self) -> Result<()> {
        let client = self.client.take().expect("client present until release");
        if let Err(e) = client.batch_execute(&self.tail).await {
            // It may still hold locks: close it instead of pooling it.
            drop(Object::take(client));
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}

/// What a transaction changed, as the node cache needs it.
pub(crate) struct Changed {
    /// Paths changed (`None`: unknown, the whole tree).
    paths: Option<Vec<String>>,
    /// Nodes as the transaction left them.
    fresh: Vec<Node>,
    /// Its place in the journal and the etag its ancestors got.
    order: Option<crate::cache::Order>,
    /// Folders it created, with nothing in them.
    new_dirs: Vec<String>,
}

/// The open transaction of a [`Locked`] connection, through which a mutation's statements run.
/// Statements issued concurrently on it are pipelined (one round trip for several reads).
pub(crate) struct Tx<'a>(&'a Locked);

impl Tx<'_> {
    /// As a generic client, for helpers shared with code outside mutations.
    pub(crate) fn db(&self) -> &Object {
        self.0.client()
    }

    fn record(&self, user: UserId, changed: Changed) {
        self.0.changed.lock().unwrap_or_else(|e| e.into_inner()).push((user, changed));
    }

    fn logged(&self, intent: i64) {
        self.0.logged.lock().unwrap_or_else(|e| e.into_inner()).push(intent);
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.0.client()
    }
}

/// The statement taking `set`'s locks (the keys are integers, so formatting them is safe).
fn lock_sql(set: &LockSet<'_>) -> String {
    match set {
        LockSet::Path(user, path) => format!(
            "SELECT pg_advisory_lock_shared({}), pg_advisory_lock({});",
            user_key(*user),
            path_key(*user, path)
        ),
        LockSet::Tree(user) => format!("SELECT pg_advisory_lock({});", user_key(*user)),
    }
}

/// Opens a mutation's transaction. A mutation reads and writes a handful of rows by key, so a
/// sequential scan is never the right plan for it; but right after a big import the planner's
/// statistics say `nodes` is tiny, and it would scan every node of every user for each write
/// (seen: the ancestors' etag update in `close`) until autovacuum analyzes the table. For the
/// same reason its prepared statements use their generic plans at once: planning them for
/// each execution (PostgreSQL's default for the first five per connection, and for any whose
/// custom plan looks cheaper) cost a third of the database's time per upload.
const BEGIN: &str = "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan;";

/// The statement taking the path locks of folders about to be created by a write that creates
/// its parents, top-down (the order `paths` must be in), the same locks `mkdir` takes: two
/// writes creating the same folder take turns, and the second finds it (committed and on disk,
/// since a change unlocks only once its disk work is done).
pub(crate) fn lock_folders_sql(user: UserId, paths: &[&VPath]) -> String {
    let calls: Vec<String> =
        paths.iter().map(|p| format!("pg_advisory_lock({})", path_key(user, p))).collect();
    format!("SELECT {};", calls.join(", "))
}

/// The statement taking, shared, the path locks of the folders of `user`'s tree that `ops` put
/// things into (empty if none).
fn folder_locks(user: &User, ops: &[DiskOp]) -> String {
    let root = layout::user_root(&user.name);
    let calls: Vec<String> = intent::destination_folders(ops)
        .into_iter()
        .filter_map(|dir| dir.strip_prefix(root.as_str())?.strip_prefix('/'))
        .filter_map(|rel| VPath::from_db(rel.to_owned()).ok())
        .map(|p| format!("pg_advisory_lock_shared({})", path_key(user.id, &p)))
        .collect();
    match calls.is_empty() {
        true => String::new(),
        false => format!("SELECT {};", calls.join(", ")),
    }
}

/// The statement taking the locks of several single-path changes at once (a batch of writes)
/// if they are all free, and failing with `lock_not_available` otherwise: every user's lock
/// shared and every path's lock exclusive (`cairn_try_lock_batch`, schema/0006). A batch never
/// waits for a lock, so one busy path or user (a long tree change) never holds up the others'
/// writes; its writes are committed on their own instead, waiting as usual.
pub(crate) fn try_lock_sql_paths(items: &[(UserId, &VPath)]) -> String {
    let mut users: Vec<i64> = items.iter().map(|(u, _)| user_key(*u)).collect();
    let mut paths: Vec<i64> = items.iter().map(|(u, p)| path_key(*u, p)).collect();
    users.sort_unstable();
    users.dedup();
    paths.sort_unstable();
    paths.dedup();
    let list = |keys: &[i64]| keys.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    // A literal (integers only, so formatting them is safe): the call goes in the same simple
    // query as BEGIN, before the statements pipelined behind it.
    format!("SELECT cairn_try_lock_batch('{{{}}}', '{{{}}}');", list(&users), list(&paths))
}

/// After an asynchronous commit: a tiny synchronous commit whose WAL flush covers it.
const BARRIER: &str = "BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT;";

impl Locked {
    /// Take the locks (waiting for them), with no transaction open.
    pub(crate) async fn acquire(store: &Store, set: LockSet<'_>) -> Result<Locked> {
        let mut locked = Locked::connect(store, set).await?;
        locked.in_tx = false;
        // On failure the connection is dropped (closed), with whatever it took.
        locked.client().batch_execute(&lock_sql(&set)).await?;
        Ok(locked)
    }

    /// A connection for a mutation whose transaction [`Locked::open`] opens.
    pub(crate) async fn connect(store: &Store, set: LockSet<'_>) -> Result<Locked> {
        let client = store.inner.pool.get().await?;
        Ok(Locked::with(client, set, String::new()))
    }

    /// [`Locked::connect`] on a carried connection: its owed statements go ahead of the BEGIN
    /// of whichever opening comes next ([`Locked::try_open`] or [`Locked::open`]), in the same
    /// message, so they run before this transaction takes its locks.
    pub(crate) fn connect_carried(mut carried: Carried, set: LockSet<'_>) -> Locked {
        let client = carried.client.take().expect("client present until release");
        Locked::with(client, set, std::mem::take(&mut carried.tail))
    }

    fn with(client: Object, set: LockSet<'_>, owed: String) -> Locked {
        let user = match set {
            LockSet::Path(u, _) | LockSet::Tree(u) => u,
        };
        Locked {
            client: Some(client),
            user,
            in_tx: true,
            changed: Default::default(),
            logged: Default::default(),
            owed,
        }
    }

    /// [`Locked::open`] for a batch, taking the locks of [`try_lock_sql_paths`] only if they
    /// are all free: `Ok(false)` if one is not (the transaction is then aborted, and so is
    /// everything sent behind it; [`Locked::finish`] releases what was taken).
    /// A carried connection's owed statements go first: if one fails, so does the opening (and
    /// [`Locked::finish`] still releases every lock).
    pub(crate) async fn try_open(&self, lock_sql: &str) -> Result<bool> {
        match self.client().batch_execute(&format!("{}{BEGIN} {lock_sql}", self.owed)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Open the transaction, then take the locks. Meant to be sent together with the
    /// transaction's first queries (polled first in a `join!`: the server runs them in order,
    /// so they run under the locks), saving a round trip. BEGIN comes first so that if taking
    /// a lock fails, the transaction is aborted and every query sent behind it fails too:
    /// none can run without the locks, or outside the transaction. The locks are session
    /// locks, held past the commit until [`Locked::finish`]. A carried connection's owed
    /// statements go first, as in [`Locked::try_open`].
    pub(crate) async fn open(&self, set: LockSet<'_>) -> Result<()> {
        let sql = format!("{}{BEGIN} {}", self.owed, lock_sql(&set));
        self.client().batch_execute(&sql).await?;
        Ok(())
    }

    /// Open the transaction on a connection taken with [`Locked::acquire`].
    pub(crate) async fn start_tx(&mut self) -> Result<Tx<'_>> {
        self.client().batch_execute(BEGIN).await?;
        self.in_tx = true;
        Ok(self.tx())
    }

    /// The open transaction.
    pub(crate) fn tx(&self) -> Tx<'_> {
        debug_assert!(self.in_tx, "no transaction open");
        Tx(self)
    }

    pub(crate) fn client(&self) -> &Object {
        self.client.as_ref().expect("client present until release")
    }

    /// Commit the open transaction and make it durable, in one round trip.
    ///
    /// Mutations commit with `synchronous_commit = off` (set by [`close`]), so the user's row
    /// lock is released without waiting for the WAL flush; the *barrier* sent behind it then
    /// waits for a flush that covers that commit. Concurrent writers share those flushes (group
    /// commit) instead of queueing one fsync each behind the row lock. Nothing touches the
    /// disk, and nothing is acknowledged, before this returns.
    ///
    /// An error leaves it unknown whether the commit happened: callers treat what the
    /// transaction promised (its staging files) as owned by its intent either way, and the
    /// connection is closed rather than reused.
    pub(crate) async fn commit(&mut self, store: &Store) -> Result<()> {
        self.in_tx = false;
        // One report per close; none recorded: the user's tree changed in unknown ways.
        let mut changed: Vec<(UserId, Option<Changed>)> =
            std::mem::take(self.changed.get_mut().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|(u, c)| (u, Some(c)))
                .collect();
        if changed.is_empty() {
            changed.push((self.user, None));
        }
        for (u, _) in &changed {
            store.inner.cache.committing(*u);
        }
        let res = self.client().batch_execute(&format!("COMMIT; {BARRIER}")).await;
        // Cached nodes are stale from the commit on (if it happened).
        for (u, c) in &changed {
            let change = match c {
                Some(Changed { paths: Some(paths), fresh, order, new_dirs }) if res.is_ok() => {
                    Some(crate::cache::Change { paths, fresh, order: order.as_ref(), new_dirs })
                }
                _ => None,
            };
            store.inner.cache.committed(*u, change);
        }
        if let Err(e) = res {
            if let Some(client) = self.client.take() {
                drop(Object::take(client));
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// After a mutation: carry out its committed intent, delete the intent row, and unlock. An
    /// open (failed) transaction is rolled back first.
    pub(crate) async fn finish(self, store: &Store, intent: Option<(i64, Vec<DiskOp>)>) -> Result<()> {
        self.finish_all(store, intent.into_iter().collect()).await
    }

    /// [`Locked::finish`] for a transaction with several intents (a batch of writes): all their
    /// operations in one trip to the blocking pool, so a folder written to by several of them
    /// is fsynced once.
    ///
    /// Intents of logged small writes only (see [`crate::Store::write`]) are carried out without
    /// fsyncs and left for the next flush. Anything else first flushes those left so far: a
    /// replay must never carry out an older intent after a newer change that is already durable.
    pub(crate) async fn finish_all(self, store: &Store, intents: Vec<(i64, Vec<DiskOp>)>) -> Result<()> {
        self.finish_carrying(store, intents).await?.release().await
    }

    /// [`Locked::finish_all`] up to its last round trip: the disk work is done (and the logged
    /// intents are left for the next flush), but the intent rows are not yet deleted nor the
    /// locks released; the connection is handed back with those statements owed.
    pub(crate) async fn finish_carrying(
        mut self,
        store: &Store,
        intents: Vec<(i64, Vec<DiskOp>)>,
    ) -> Result<Carried> {
        let Some(client) = self.client.take() else {
            return Err(Error::internal("the connection was lost at commit"));
        };
        let mut tail = String::new();
        if self.in_tx {
            tail.push_str("ROLLBACK; ");
        }
        if !intents.is_empty() {
            let logged = std::mem::take(self.logged.get_mut().unwrap_or_else(|e| e.into_inner()));
            let deferred =
                store.inner.write_log.is_some() && intents.iter().all(|(id, _)| logged.contains(id));
            if !deferred && let Err(e) = store.flush_with(&client).await {
                drop(Object::take(client));
                return Err(e);
            }
            let ids: Vec<i64> = intents.iter().map(|(id, _)| *id).collect();
            let ops: Vec<DiskOp> = intents.into_iter().flat_map(|(_, ops)| ops).collect();
            // Where the logged content goes (and any other content put in place: only more
            // fsyncs if it is moved on before the flush).
            let placed: Vec<String> = match deferred {
                true => ops
                    .iter()
                    .filter_map(|op| match op {
                        DiskOp::Rename { to, done: intent::Done::FromMissing, .. } => Some(to.clone()),
                        _ => None,
                    })
                    .collect(),
                false => Vec::new(),
            };
            let s = store.clone();
            // On failure the intent row stays and start-up replays it; the connection closes
            // on drop, releasing the locks.
            let applied = blocking(move || match deferred {
                true => intent::apply_deferred(&s.inner.disk, &ops, |rel| s.unsynced(rel)),
                false => intent::apply(&s.inner.disk, &ops),
            });
            if let Err(e) = applied.await {
                drop(Object::take(client));
                return Err(e);
            }
            if deferred {
                // Left before unlocking: the next change of these paths flushes them first.
                store.logged(ids, placed);
            } else {
                // Losing this delete in a crash only means replaying an idempotent intent.
                let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                tail.push_str(&format!(
                    "BEGIN; SET LOCAL synchronous_commit = off; DELETE FROM intents WHERE id IN ({}); COMMIT; ",
                    ids.join(", ")
                ));
            }
        }
        tail.push_str("SELECT pg_advisory_unlock_all(); ");
        Ok(Carried { client: Some(client), tail })
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Detach from the pool: the connection closes and the server drops its locks.
            drop(Object::take(client));
        }
    }
}

/// A change-journal record to append.
pub(crate) struct JournalEntry {
    pub(crate) kind: &'static str,
    pub(crate) node_id: FileId,
    pub(crate) is_dir: bool,
    pub(crate) path: VPath,
    pub(crate) old_path: Option<VPath>,
    pub(crate) size: Option<u64>,
    pub(crate) etag: Option<ETag>,
    pub(crate) hash: Option<ContentHash>,
}

impl JournalEntry {
    pub(crate) fn for_node(kind: &'static str, node: &Node) -> JournalEntry {
        JournalEntry {
            kind,
            node_id: node.id,
            is_dir: node.is_dir,
            path: node.path.clone(),
            old_path: None,
            size: (!node.is_dir).then_some(node.size),
            etag: Some(node.etag.clone()),
            hash: node.content_hash,
        }
    }
}

/// Everything a mutation adds on top of its own row changes.
pub(crate) struct Effects {
    /// Change of the user's footprint (files + versions + trash), in bytes.
    pub(crate) usage_delta: i64,
    pub(crate) journal: Vec<JournalEntry>,
    /// (action, path, detail)
    pub(crate) audit: Vec<(&'static str, Option<String>, Option<String>)>,
    pub(crate) ops: Vec<DiskOp>,
    /// May prune old versions and trash to fit the quota.
    pub(crate) may_prune: bool,
    /// Refuse the change if it leaves the user over quota (a scan does not: the disk holds
    /// the files whatever the quota says, and the database follows the disk).
    pub(crate) enforce_quota: bool,
    /// A version that may go too as a last resort (the one this write just created).
    pub(crate) last_resort: Option<(VersionId, u64)>,
    /// Ids of versions never to prune in this transaction (e.g. the one being restored).
    pub(crate) keep_versions: Vec<VersionId>,
    /// Paths whose ancestors get new etags, at the very end of the transaction.
    touched: Vec<VPath>,
    /// Nodes as the transaction leaves them, for the node cache (unless an ancestor of
    /// something touched: those get new etags at the end).
    fresh: Vec<Node>,
    /// Staged small files whose bytes go into the intent row (a logged write).
    pub(crate) logged: Vec<(String, std::sync::Arc<[u8]>, Timestamp)>,
}

impl Effects {
    pub(crate) fn new() -> Effects {
        Effects {
            usage_delta: 0,
            journal: Vec::new(),
            audit: Vec::new(),
            ops: Vec::new(),
            may_prune: true,
            enforce_quota: true,
            last_resort: None,
            keep_versions: Vec::new(),
            touched: Vec::new(),
            fresh: Vec::new(),
            logged: Vec::new(),
        }
    }

    /// Queue the rename of `content`'s staged file to `to` (the backing path of its file), and
    /// its bytes into the intent row if it is a logged small write.
    pub(crate) fn put_in_place(&mut self, content: &crate::files::Content, to: String) {
        self.ops.push(DiskOp::rename(&content.staging, to, intent::Done::FromMissing));
        if let Some(bytes) = &content.logged {
            self.logged.push((content.staging.clone(), bytes.clone(), content.mtime));
        }
    }

    /// Add `other`'s effects to these (a batch of writes merges them per user and actor). Only
    /// one write's replaced content can be the last resort of a quota check, so a merge has
    /// none: a batch that does not fit is retried write by write.
    pub(crate) fn absorb(&mut self, other: Effects) {
        self.usage_delta += other.usage_delta;
        self.journal.extend(other.journal);
        self.audit.extend(other.audit);
        self.ops.extend(other.ops);
        self.may_prune &= other.may_prune;
        self.enforce_quota |= other.enforce_quota;
        self.last_resort = None;
        self.keep_versions.extend(other.keep_versions);
        self.touched.extend(other.touched);
        self.fresh.extend(other.fresh);
        self.logged.extend(other.logged);
    }

    /// Give every ancestor of `path` a new etag when the transaction closes.
    pub(crate) fn touch(&mut self, path: &VPath) {
        self.touched.push(path.clone());
    }

    /// `node` was created or rewritten as it is now: journal it as `kind`, touch its
    /// ancestors, and hand it to the node cache at commit.
    pub(crate) fn wrote(&mut self, kind: &'static str, node: &Node) {
        self.journal.push(JournalEntry::for_node(kind, node));
        self.touch(&node.path);
        self.fresh.push(node.clone());
    }
}

/// Close a mutation's transaction: usage (pruning to fit the quota), journal, audit and intent.
/// Returns the intent to carry out after commit.
pub(crate) async fn close(
    store: &Store,
    tx: &Tx<'_>,
    user: &User,
    actor: &Actor,
    fx: Effects,
    now: Timestamp,
) -> Result<Option<(i64, Vec<DiskOp>)>> {
    let mut intents = close_all(store, tx, vec![(user, actor, fx)], now).await?;
    Ok(intents.pop().flatten())
}

/// [`close`] for several users' changes in one transaction (a batch of writes), each with its
/// own actor and effects, in one statement: the cost of a statement of six parts (binding,
/// starting its executor) is paid once, not once per user, and the disk is preflighted in one
/// trip to the blocking pool. The users must differ (the statement updates each user's row
/// once). Returns each one's intent, in order.
pub(crate) async fn close_all(
    store: &Store,
    tx: &Tx<'_>,
    groups: Vec<(&User, &Actor, Effects)>,
    now: Timestamp,
) -> Result<Vec<Option<(i64, Vec<DiskOp>)>>> {
    debug_assert!(
        groups.iter().enumerate().all(|(i, (u, _, _))| groups[..i].iter().all(|(v, _, _)| v.id != u.id)),
        "close_all: one group per user"
    );
    // The ancestors of what each group touched get a new etag (one per group).
    let ancestors: Vec<Vec<String>> = groups
        .iter()
        .map(|(_, _, fx)| {
            let mut a: Vec<&str> = fx.touched.iter().flat_map(path_ancestors).collect();
            a.sort_unstable();
            a.dedup();
            a.into_iter().map(str::to_owned).collect()
        })
        .collect();
    let etags: Vec<ETag> = groups.iter().map(|_| new_etag()).collect();
    let changed: Vec<Changed> = groups
        .iter()
        .zip(&ancestors)
        .map(|((_, _, fx), a)| changed_by(fx, &a.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    let rows = {
        // The disk is checked while the statement below runs (both must succeed before the
        // commit): a failed check rolls the transaction back.
        // Every group's operations, copied for each trip to the blocking pool.
        let all_ops =
            || -> Vec<DiskOp> { groups.iter().flat_map(|(_, _, fx)| fx.ops.iter().cloned()).collect() };
        let preflight = async {
            let ops = all_ops();
            if ops.is_empty() {
                return Ok(());
            }
            let s = store.clone();
            match blocking(move || intent::preflight(&s.inner.disk, &ops)).await? {
                Preflight::Ready => Ok(()),
                Preflight::FolderMissing => {
                    // The folder may be one a concurrent change has committed and not yet
                    // created on disk (this transaction read it committed). Every change that
                    // creates a folder beside others' writes (mkdir, a write creating its
                    // parents) holds that folder's path lock until its disk work is done: wait
                    // for those, then look again. A folder still missing was removed behind
                    // Cairn's back.
                    for (user, _, fx) in &groups {
                        let keys = folder_locks(user, &fx.ops);
                        if !keys.is_empty() {
                            tx.batch_execute(&keys).await?;
                        }
                    }
                    let (s, ops) = (store.clone(), all_ops());
                    blocking(move || intent::preflight(&s.inner.disk, &ops)).await?.into_result()
                }
            }
        };
        let mut g = Columns::default();
        for (k, ((user, actor, fx), anc)) in groups.iter().zip(&ancestors).enumerate() {
            let grp = k as i64 + 1;
            g.user.push(user.id.0);
            g.delta.push(fx.usage_delta);
            g.n_journal.push(fx.journal.len() as i64);
            g.actor.push(actor.name.as_str());
            g.origin.push(actor.origin.as_str());
            g.ops.push((!fx.ops.is_empty()).then(|| intent::encode(&fx.ops)));
            g.etag.push(etags[k].0.as_str());
            for (ord, j) in fx.journal.iter().enumerate() {
                g.j_grp.push(grp);
                g.j_ord.push(ord as i64 + 1);
                g.j_kind.push(j.kind);
                g.j_node.push(j.node_id.0);
                g.j_dir.push(j.is_dir);
                g.j_path.push(j.path.as_str());
                g.j_old.push(j.old_path.as_ref().map(|p| p.as_str()));
                g.j_size.push(j.size.map(|s| s as i64));
                g.j_etag.push(j.etag.as_ref().map(|e| e.0.as_str()));
                g.j_hash.push(j.hash.as_ref().map(|h| &h.0[..]));
            }
            for (action, path, detail) in &fx.audit {
                g.a_grp.push(grp);
                g.a_action.push(action);
                g.a_path.push(path.as_deref());
                g.a_detail.push(audit_detail(actor, detail.as_deref()));
            }
            for a in anc {
                g.e_grp.push(grp);
                g.e_path.push(a.as_str());
            }
            for (staging, data, mtime) in &fx.logged {
                g.l_grp.push(grp);
                g.l_staging.push(staging.as_str());
                g.l_data.push(&data[..]);
                g.l_mtime.push(mtime.0);
            }
        }
        let token = store.inner.notice_token.as_str();
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[
            &g.user,
            &g.delta,
            &g.n_journal,
            &g.actor,
            &g.origin,
            &g.ops,
            &g.etag,
            &now.0,
            &g.j_ord,
            &g.j_kind,
            &g.j_node,
            &g.j_dir,
            &g.j_path,
            &g.j_old,
            &g.j_size,
            &g.j_etag,
            &g.j_hash,
            &g.a_action,
            &g.a_path,
            &g.a_detail,
            &g.e_path,
            &g.l_staging,
            &g.l_data,
            &g.l_mtime,
            &token,
            // Only CLOSE_ALL_SQL tells the groups' rows apart.
            &g.j_grp,
            &g.a_grp,
            &g.e_grp,
            &g.l_grp,
        ];
        let statement = match groups.len() {
            1 => tx.cquery(CLOSE_ONE_SQL, &params[..25]),
            _ => tx.cquery(CLOSE_ALL_SQL, params),
        };
        let (checked, rows) = tokio::join!(preflight, statement);
        checked?;
        rows?
    };
    if rows.len() != groups.len() {
        return Err(Error::new(ErrorKind::NotFound, "the account is gone"));
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((((user, actor, mut fx), row), (mut changed, anc)), etag) in
        groups.into_iter().zip(rows).zip(changed.into_iter().zip(ancestors)).zip(etags)
    {
        let n_journal = fx.journal.len() as i64;
        let mut used: i64 = row.get(1);
        let quota: Option<i64> = row.get(2);
        let seq: i64 = row.get(3);
        let mut intent_id: Option<i64> = row.get(4);
        changed.order =
            Some(crate::cache::Order { before: seq - n_journal, after: seq, ancestors: anc, etag });
        tx.record(user.id, changed);
        if let Some(quota) = quota
            && used > quota
            && fx.usage_delta > 0
            && fx.enforce_quota
        {
            // The slow path: make room, or refuse (the transaction then rolls back entirely).
            let mut extra = Effects::new();
            extra.keep_versions = fx.keep_versions.clone();
            extra.last_resort = fx.last_resort.take();
            if fx.may_prune {
                used -= prune(tx, user, used - quota, &mut extra).await?;
            }
            if used > quota
                && let Some((vid, size)) = extra.last_resort.take()
            {
                // Keeping the replaced content as a version does not fit: drop it instead.
                tx.cexecute("DELETE FROM versions WHERE id = $1", &[&vid.0]).await?;
                extra.ops.push(DiskOp::Remove { path: layout::version_blob(&user.name, vid) });
                used -= size as i64;
                extra.audit.push((
                    "version.prune",
                    None,
                    Some(format!("version {vid} dropped to fit quota")),
                ));
            }
            if used > quota {
                let over = (used - quota) as u64;
                return Err(Error::new(
                    ErrorKind::QuotaExceeded,
                    format!(
                        "quota exceeded: {} over the {} quota",
                        crate::format_size(over),
                        crate::format_size(quota as u64)
                    ),
                ));
            }
            tx.cexecute("UPDATE users SET used_bytes = $2 WHERE id = $1", &[&user.id.0, &used]).await?;
            for (action, path, detail) in &extra.audit {
                audit(tx.db(), Some(user.id), actor, action, path.as_deref(), detail.as_deref(), now).await?;
            }
            fx.ops.extend(extra.ops);
            let encoded = intent::encode(&fx.ops);
            intent_id = Some(match intent_id {
                Some(id) => {
                    tx.cexecute("UPDATE intents SET ops = $2 WHERE id = $1", &[&id, &encoded]).await?;
                    id
                }
                None => tx
                    .cquery_one(
                        "INSERT INTO intents (user_id, ops) VALUES ($1, $2) RETURNING id",
                        &[&user.id.0, &encoded],
                    )
                    .await?
                    .get(0),
            });
        }
        if let Some(id) = intent_id
            && !fx.logged.is_empty()
        {
            tx.logged(id);
        }
        out.push(intent_id.map(|id| (id, fx.ops)));
    }
    Ok(out)
}

/// The parameters of [`CLOSE_ALL_SQL`] (and, but for the group columns, of [`CLOSE_ONE_SQL`]):
/// one entry per group (a user's changes) in the first columns; the rest are rows of all
/// groups, each naming its group (1-based).
#[derive(Default)]
struct Columns<'a> {
    user: Vec<i64>,
    delta: Vec<i64>,
    n_journal: Vec<i64>,
    actor: Vec<&'a str>,
    origin: Vec<&'a str>,
    ops: Vec<Option<String>>,
    etag: Vec<&'a str>,
    j_grp: Vec<i64>,
    j_ord: Vec<i64>,
    j_kind: Vec<&'a str>,
    j_node: Vec<i64>,
    j_dir: Vec<bool>,
    j_path: Vec<&'a str>,
    j_old: Vec<Option<&'a str>>,
    j_size: Vec<Option<i64>>,
    j_etag: Vec<Option<&'a str>>,
    j_hash: Vec<Option<&'a [u8]>>,
    a_grp: Vec<i64>,
    a_action: Vec<&'a str>,
    a_path: Vec<Option<&'a str>>,
    a_detail: Vec<Option<String>>,
    e_grp: Vec<i64>,
    e_path: Vec<&'a str>,
    l_grp: Vec<i64>,
    l_staging: Vec<&'a str>,
    l_data: Vec<&'a [u8]>,
    l_mtime: Vec<i64>,
}

/// One statement for everything that needs the users' row locks (usage, journal sequence)
/// and the ancestors' row locks: the locks are then held for this statement and the commit
/// only, not for a round trip per row. Answers one row per group, in order. Its parameters are
/// arrays: the first seven have an entry per group (a user's changes), the others are rows of
/// all groups, `$26`-`$29` naming each row's group (1-based).
const CLOSE_ALL_SQL: &str = "WITH g AS (
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
              WITH ORDINALITY AS g(user_id, delta, n, actor, origin, ops, etag, idx)),
     u AS (
         UPDATE users SET used_bytes = used_bytes + g.delta, journal_seq = journal_seq + g.n
         FROM g WHERE users.id = g.user_id
         RETURNING users.id, used_bytes, quota_bytes, journal_seq),
     j AS (
         INSERT INTO journal (user_id, seq, at, kind, node_id, is_dir, path, old_path, size, etag, content_hash, origin)
         SELECT g.user_id, u.journal_seq - g.n + t.ord, $8, t.kind, t.node, t.dir, t.path, t.old, t.size, t.etag, t.hash, g.origin
         FROM unnest($26::bigint[], $9::bigint[], $10::text[], $11::bigint[], $12::bool[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bytea[])
              AS t(grp, ord, kind, node, dir, path, old, size, etag, hash)
         JOIN g ON g.idx = t.grp JOIN u ON u.id = g.user_id),
     a AS (
         INSERT INTO audit_log (at, user_id, actor, origin, action, path, detail)
         SELECT $8, g.user_id, g.actor, g.origin, t.action, t.path, t.detail
         FROM unnest($27::bigint[], $18::text[], $19::text[], $20::text[]) AS t(grp, action, path, detail)
         JOIN g ON g.idx = t.grp),
     -- Each ancestor by its full key, then by id: written as `path = ANY(...)`, or as a join
     -- with `nodes`, a planner that thinks the users have few nodes (statistics from before a
     -- big import) scans all of them for every write. Each group is another user, so a node's
     -- user names its group.
     e AS (
         UPDATE nodes SET etag = (SELECT g.etag FROM g WHERE g.user_id = nodes.user_id)
         WHERE id = ANY(ARRAY(
             SELECT (SELECT id FROM nodes WHERE user_id = g.user_id AND path = t.p AND trash_id IS NULL)
             FROM unnest($28::bigint[], $21::text[]) AS t(grp, p) JOIN g ON g.idx = t.grp))),
     l AS (
         SELECT l.grp, array_agg(l.staging ORDER BY l.ord) AS staging, array_agg(l.data ORDER BY l.ord) AS data,
                array_agg(l.mtime ORDER BY l.ord) AS mtime
         FROM unnest($29::bigint[], $22::text[], $23::bytea[], $24::bigint[])
              WITH ORDINALITY AS l(grp, staging, data, mtime, ord)
         GROUP BY l.grp),
     i AS (
         INSERT INTO intents (user_id, ops, logged_staging, logged_data, logged_mtime)
         SELECT g.user_id, g.ops, l.staging, l.data, l.mtime
         FROM g LEFT JOIN l ON l.grp = g.idx WHERE g.ops IS NOT NULL
         RETURNING id, user_id)
     -- Commit asynchronously: durability comes from the barrier in `Locked::commit`, after the
     -- row locks are released.
     SELECT g.idx, u.used_bytes, u.quota_bytes, u.journal_seq, i.id,
            set_config('synchronous_commit', 'off', true),
            -- Delivered at commit: other processes drop their cached nodes of these users (this
            -- one knows what changed; the token tells it its own notices).
            pg_notify('cairn_changes', g.user_id::text || ' ' || $25 || ' ' || g.origin)
     FROM g JOIN u ON u.id = g.user_id LEFT JOIN i ON i.user_id = g.user_id
     ORDER BY g.idx";

/// [`CLOSE_ALL_SQL`] for one group (a lone change, or a batch of one user's), with the same
/// parameters but the last four: the same rows written, by a plan without the joins and the
/// grouping that tell groups apart. Starting a statement's executor, node by node, is a good
/// part of its cost (15% of the database's CPU in a profile of small writes one at a time); with
/// `CLOSE_ALL_SQL` for one group, one client writing small files in a row lost 8-25% of its
/// rate, with this statement nothing measurable.
/// A unit test checks that both write the same tables and columns.
const CLOSE_ONE_SQL: &str = "WITH u AS (
         UPDATE users SET used_bytes = used_bytes + ($2::bigint[])[1], journal_seq = journal_seq + ($3::bigint[])[1]
         WHERE id = ($1::bigint[])[1] RETURNING used_bytes, quota_bytes, journal_seq),
     j AS (
         INSERT INTO journal (user_id, seq, at, kind, node_id, is_dir, path, old_path, size, etag, content_hash, origin)
         SELECT ($1::bigint[])[1], (SELECT journal_seq FROM u) - ($3::bigint[])[1] + t.ord, $8, t.kind, t.node, t.dir, t.path, t.old, t.size, t.etag, t.hash, ($5::text[])[1]
         FROM unnest($9::bigint[], $10::text[], $11::bigint[], $12::bool[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bytea[])
              AS t(ord, kind, node, dir, path, old, size, etag, hash)),
     a AS (
         INSERT INTO audit_log (at, user_id, actor, origin, action, path, detail)
         SELECT $8, ($1::bigint[])[1], ($4::text[])[1], ($5::text[])[1], t.action, t.path, t.detail
         FROM unnest($18::text[], $19::text[], $20::text[]) AS t(action, path, detail)),
     e AS (
         UPDATE nodes SET etag = ($7::text[])[1] WHERE id = ANY(ARRAY(
             SELECT (SELECT id FROM nodes WHERE user_id = ($1::bigint[])[1] AND path = t.p AND trash_id IS NULL)
             FROM unnest($21::text[]) AS t(p)))),
     i AS (
         INSERT INTO intents (user_id, ops, logged_staging, logged_data, logged_mtime)
         SELECT ($1::bigint[])[1], ($6::text[])[1], nullif($22::text[], '{}'), nullif($23::bytea[], '{}'), nullif($24::bigint[], '{}')
         WHERE ($6::text[])[1] IS NOT NULL
         RETURNING id)
     SELECT 1::bigint, used_bytes, quota_bytes, journal_seq, (SELECT id FROM i),
            set_config('synchronous_commit', 'off', true),
            pg_notify('cairn_changes', ($1::bigint[])[1]::text || ' ' || $25 || ' ' || ($5::text[])[1])
     FROM u";

/// The cache's view of what `fx` changes: every journaled path (old and new) and every touched
/// path; nodes left fresh unless their etag changes at the end as an ancestor.
fn changed_by(fx: &Effects, ancestors: &[&str]) -> Changed {
    let mut paths: Vec<String> = fx
        .journal
        .iter()
        .flat_map(|j| std::iter::once(&j.path).chain(j.old_path.as_ref()))
        .chain(fx.touched.iter())
        .map(|p| p.as_str().to_owned())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let fresh: Vec<Node> =
        fx.fresh.iter().filter(|n| !ancestors.contains(&n.path.as_str())).cloned().collect();
    // Created here and left empty: nothing else this change journaled lies inside.
    let new_dirs = fx
        .journal
        .iter()
        .filter(|j| j.kind == "create" && j.is_dir && fresh.iter().any(|n| n.path == j.path))
        .filter(|j| !fx.journal.iter().any(|k| k.path.starts_with(&j.path) && k.path != j.path))
        .map(|j| j.path.as_str().to_owned())
        .collect();
    Changed { paths: (!paths.is_empty()).then_some(paths), fresh, order: None, new_dirs }
}

fn audit_detail(actor: &Actor, detail: Option<&str>) -> Option<String> {
    match (&actor.remote, detail) {
        (Some(remote), Some(d)) => Some(format!("{d} (from {remote})")),
        (Some(remote), None) => Some(format!("from {remote}")),
        (None, d) => d.map(str::to_owned),
    }
}

/// Write one audit record.
pub(crate) async fn audit(
    tx: &impl deadpool_postgres::GenericClient,
    user: Option<UserId>,
    actor: &Actor,
    action: &str,
    path: Option<&str>,
    detail: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    let detail = audit_detail(actor, detail);
    tx.cexecute(
        "INSERT INTO audit_log (at, user_id, actor, origin, action, path, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&now.0, &user.map(|u| u.0), &actor.name, &actor.origin.as_str(), &action, &path, &detail],
    )
    .await?;
    Ok(())
}

/// Free at least `need` bytes by deleting the oldest versions and trash items, oldest first.
/// Returns the bytes freed (possibly less than `need` when nothing is left to prune).
async fn prune(tx: &Tx<'_>, user: &User, need: i64, fx: &mut Effects) -> Result<i64> {
    let keep: Vec<i64> =
        fx.keep_versions.iter().chain(fx.last_resort.as_ref().map(|(v, _)| v)).map(|v| v.0).collect();
    let mut freed = 0i64;
    while freed < need {
        let rows = tx
            .cquery(
                "SELECT 'v' AS kind, id, created_at AS at FROM versions
                   WHERE user_id = $1 AND NOT (id = ANY($2))
                     AND node_id NOT IN (SELECT id FROM nodes WHERE user_id = $1 AND trash_id IS NOT NULL)
                 UNION ALL
                 SELECT 't', id, deleted_at FROM trash WHERE user_id = $1
                 ORDER BY at, id LIMIT 64",
                &[&user.id.0, &keep],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if freed >= need {
                break;
            }
            let kind: &str = row.get(0);
            let id: i64 = row.get(1);
            freed += if kind == "v" {
                let Some(r) =
                    tx.cquery_opt("DELETE FROM versions WHERE id = $1 RETURNING size", &[&id]).await?
                else {
                    continue;
                };
                fx.ops.push(DiskOp::Remove { path: layout::version_blob(&user.name, VersionId(id)) });
                fx.audit.push(("version.prune", None, Some(format!("version {id} pruned for quota"))));
                r.get::<_, i64>(0)
            } else {
                let size = purge_trash_item(tx, &user.name, crate::TrashId(id), &mut fx.ops).await?;
                fx.audit.push(("trash.prune", None, Some(format!("trash item {id} pruned for quota"))));
                size
            };
        }
    }
    Ok(freed)
}

/// Delete a trash item's rows (its nodes and their versions go with it) and queue removal of
/// its content and version blobs. Returns the bytes it held.
pub(crate) async fn purge_trash_item(
    tx: &Tx<'_>,
    user: &UserName,
    id: crate::TrashId,
    ops: &mut Vec<DiskOp>,
) -> Result<i64> {
    let versions = tx
        .cquery(
            "SELECT v.id, v.size FROM versions v JOIN nodes n ON n.id = v.node_id WHERE n.trash_id = $1",
            &[&id.0],
        )
        .await?;
    let Some(row) = tx.cquery_opt("DELETE FROM trash WHERE id = $1 RETURNING size", &[&id.0]).await? else {
        return Ok(0);
    };
    let mut size: i64 = row.get(0);
    for v in versions {
        size += v.get::<_, i64>(1);
        ops.push(DiskOp::Remove { path: layout::version_blob(user, VersionId(v.get(0))) });
    }
    ops.push(DiskOp::Remove { path: format!("{}/{}", layout::trash_dir(user), id) });
    Ok(size)
}

/// Columns for [`node_from_row`].
pub(crate) const NODE_COLS: &str = "id, path, is_dir, size, mtime_ns, content_hash, etag, mode";

pub(crate) fn node_from_row(row: &Row) -> Result<Node> {
    Ok(Node {
        id: FileId(row.get(0)),
        path: VPath::from_db(row.get(1))?,
        is_dir: row.get(2),
        size: row.get::<_, i64>(3) as u64,
        mtime: Timestamp(row.get(4)),
        content_hash: row.get::<_, Option<&[u8]>>(5).map(ContentHash::from_db).transpose()?,
        etag: ETag(row.get(6)),
        mode: row.get::<_, Option<i32>>(7).map(|m| m as u32),
    })
}

/// Insert a live node with a fresh etag (and permission bits, if given).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_node(
    tx: &Tx<'_>,
    id: Option<FileId>,
    user: UserId,
    parent: FileId,
    path: &VPath,
    is_dir: bool,
    size: u64,
    mtime: Timestamp,
    hash: Option<ContentHash>,
    author: Option<&str>,
    mode: Option<u32>,
) -> Result<Node> {
    let row = tx
        .cquery_one(
            &format!(
                "INSERT INTO nodes (id, user_id, parent_id, name, path, is_dir, size, mtime_ns, content_hash, etag, modified_by, mode)
                 VALUES (COALESCE($12, nextval('nodes_id_seq')), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 RETURNING {NODE_COLS}"
            ),
            &[
                &user.0,
                &parent.0,
                &path.name(),
                &path.as_str(),
                &is_dir,
                &(size as i64),
                &mtime.0,
                &hash.as_ref().map(|h| &h.0[..]),
                &new_etag().0,
                &author,
                &mode.map(|m| (m & 0o7777) as i32),
                &id.map(|i| i.0),
            ],
        )
        .await?;
    node_from_row(&row)
}

/// A fresh entity tag.
pub(crate) fn new_etag() -> ETag {
    ETag(crate::disk::random_hex(8))
}

/// The ancestors of `path` as stored paths, the root (`""`) included: sync clients find
/// changes by walking down from the root while etags differ.
fn path_ancestors(path: &VPath) -> Vec<&str> {
    let s = path.as_str();
    let mut out = vec![""];
    for (i, b) in s.bytes().enumerate() {
        if b == b'/' {
            out.push(&s[..i]);
        }
    }
    out
}

/// The live node at `path`, locked for update.
pub(crate) async fn node_for_update(tx: &Tx<'_>, user: UserId, path: &VPath) -> Result<Option<Node>> {
    tx.cquery_opt(
        &format!(
            "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL FOR UPDATE"
        ),
        &[&user.0, &path.as_str()],
    )
    .await?
    .map(|r| node_from_row(&r))
    .transpose()
}

/// The live node at `path`, locked against deletion and moves but not against concurrent
/// writes inside it (`FOR KEY SHARE`): for parents of what a transaction changes.
pub(crate) async fn node_for_share(tx: &Tx<'_>, user: UserId, path: &VPath) -> Result<Option<Node>> {
    tx.cquery_opt(
        &format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL FOR KEY SHARE"),
        &[&user.0, &path.as_str()],
    )
    .await?
    .map(|r| node_from_row(&r))
    .transpose()
}

/// The live directory that is `path`'s parent, or a Conflict error.
pub(crate) async fn parent_dir(tx: &Tx<'_>, user: UserId, path: &VPath) -> Result<FileId> {
    let parent = path.parent().ok_or_else(|| Error::new(ErrorKind::InvalidPath, "the root has no parent"))?;
    match node_for_share(tx, user, &parent).await? {
        Some(n) if n.is_dir => Ok(n.id),
        Some(_) => Err(Error::new(ErrorKind::Conflict, format!("{parent} is not a folder"))),
        None => Err(Error::new(ErrorKind::Conflict, format!("folder {parent} does not exist"))),
    }
}

#[cfg(test)]
mod tests {
    use super::{CLOSE_ALL_SQL, CLOSE_ONE_SQL};

    /// What a statement writes: each `INSERT INTO t (columns)` and each `UPDATE t SET` with the
    /// columns it sets, and the side effects it calls, in order.
    fn writes(sql: &str) -> Vec<String> {
        let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut out = Vec::new();
        let mut rest = flat.as_str();
        while let Some(i) = rest.find("INSERT INTO ").into_iter().chain(rest.find("UPDATE ")).min() {
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("INSERT INTO ") {
                let (table, r) = r.split_once(" (").expect("INSERT INTO t (columns)");
                let (cols, r) = r.split_once(')').expect("a column list");
                out.push(format!("insert {table} ({cols})"));
                rest = r;
            } else {
                let r = &rest["UPDATE ".len()..];
                let (table, r) = r.split_once(" SET ").expect("UPDATE t SET");
                let end =
                    [" FROM ", " WHERE "].iter().filter_map(|k| r.find(k)).min().expect("FROM or WHERE");
                // The assigned columns: each name before an `=` at the top level of the list.
                let (mut cols, mut depth, mut word) = (Vec::new(), 0, String::new());
                for c in r[..end].chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        '=' if depth == 0 => {
                            cols.push(word.split(',').next_back().unwrap_or("").trim().to_owned())
                        }
                        ',' if depth == 0 => word.clear(),
                        _ => {}
                    }
                    if depth == 0 && c != '=' {
                        word.push(c);
                    }
                }
                out.push(format!("update {table} set {}", cols.join(", ")));
                rest = &r[end..];
            }
        }
        for call in ["set_config('synchronous_commit', 'off', true)", "pg_notify('cairn_changes'"] {
            if flat.contains(call) {
                out.push(call.to_owned());
            }
        }
        out
    }

    /// The two closing statements are kept apart for speed (see `CLOSE_ONE_SQL`); they must
    /// write the same rows, so a column added to one and not the other fails here.
    #[test]
    fn close_one_writes_what_close_all_writes() {
        let all = writes(CLOSE_ALL_SQL);
        assert_eq!(all, writes(CLOSE_ONE_SQL));
        let tables = ["users", "journal", "audit_log", "nodes", "intents"];
        for t in tables {
            assert!(all.iter().any(|w| w.contains(&format!(" {t} "))), "{t} missing from {all:#?}");
        }
        assert_eq!(all.len(), tables.len() + 2, "{all:#?}");
    }
}
