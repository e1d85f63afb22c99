//! Locks and the transaction they hold: advisory lock sets, [`Locked`] (a connection with its
//! locks), [`Tx`], and the commit and intent steps that end it.

use crate::disk::layout;
use crate::intent::{self, DiskOp};
use crate::path::VPath;
use crate::types::{Node, User, UserId};
use crate::{Error, Result, Store, blocking};
use deadpool_postgres::Object;

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
    /// The paths of the committed intent, registered until it is carried out (see `placing`).
    placed: Option<crate::placing::Placed>,
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
    /// The store and the carried-out intents whose rows `tail` deletes.
    done: Option<(Store, Vec<i64>)>,
}

impl Carried {
    /// Send the owed statements and return the connection to the pool.
    pub(crate) async fn release(mut self) -> Result<()> {
        let client = self.client.take().expect("client present until release");
        if let Err(e) = client.batch_execute(&self.tail).await {
            // It may still hold locks: close it instead of pooling it.
            self.requeue_done();
            drop(Object::take(client));
            return Err(e.into());
        }
        Ok(())
    }

    /// The intents were carried out but `tail` did not delete their rows: they go with the next
    /// ones (a replay at start-up would also do).
    fn requeue_done(&mut self) {
        if let Some((store, ids)) = self.done.take() {
            store.inner.done_intents.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
        }
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
            self.requeue_done();
        }
    }
}

/// What a transaction changed, as the node cache needs it.
pub(crate) struct Changed {
    /// Paths changed (`None`: unknown, the whole tree).
    pub(crate) paths: Option<Vec<String>>,
    /// Nodes as the transaction left them.
    pub(crate) fresh: Vec<Node>,
    /// Its place in the journal and the etag its ancestors got.
    pub(crate) order: Option<crate::cache::Order>,
    /// Folders it created, with nothing in them.
    pub(crate) new_dirs: Vec<String>,
}

/// The open transaction of a [`Locked`] connection, through which a mutation's statements run.
/// Statements issued concurrently on it are pipelined (one round trip for several reads).
pub(crate) struct Tx<'a>(&'a Locked);

impl Tx<'_> {
    /// As a generic client, for helpers shared with code outside mutations.
    pub(crate) fn db(&self) -> &Object {
        self.0.client()
    }

    pub(crate) fn record(&self, user: UserId, changed: Changed) {
        self.0.changed.lock().unwrap_or_else(|e| e.into_inner()).push((user, changed));
    }

    pub(crate) fn logged(&self, intent: i64) {
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
pub(crate) fn folder_locks(user: &User, ops: &[DiskOp]) -> String {
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
            placed: None,
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
    /// Mutations commit with `synchronous_commit = off` (set by [`close`](super::close)), so the user's row
    /// lock is released without waiting for the WAL flush; the *barrier* sent behind it then
    /// waits for a flush that covers that commit. Concurrent writers share those flushes (group
    /// commit) instead of queueing one fsync each behind the row lock. Nothing touches the
    /// disk, and nothing is acknowledged, before this returns.
    ///
    /// An error leaves it unknown whether the commit happened: what the transaction promised
    /// (its staging files) is owned by its `intents` either way, which are settled once the
    /// database answers (see `unsettled`); the connection is closed rather than reused.
    pub(crate) async fn commit(&mut self, store: &Store, intents: &[(i64, Vec<DiskOp>)]) -> Result<()> {
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
        self.placed = store.inner.placing.register(intents.iter().flat_map(|(_, ops)| ops));
        let started = std::time::Instant::now();
        let res = self.client().batch_execute(&format!("COMMIT; {BARRIER}")).await;
        crate::telemetry::committed(started.elapsed());
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
            // Before the connection, and with it the locks, goes.
            store.unsettled(intents);
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
        let mut done = None;
        if self.in_tx {
            tail.push_str("ROLLBACK; ");
        }
        if !intents.is_empty() {
            let logged = std::mem::take(self.logged.get_mut().unwrap_or_else(|e| e.into_inner()));
            let deferred =
                store.inner.write_log.is_some() && intents.iter().all(|(id, _)| logged.contains(id));
            if !deferred && let Err(e) = store.flush_with(&client).await {
                // Committed, not carried out: settled once the database answers.
                store.unsettled(&intents);
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
            let applied = applied.await;
            // Readers waiting for these paths look again (see `placing`).
            drop(self.placed.take());
            if let Err(e) = applied {
                drop(Object::take(client));
                return Err(e);
            }
            if deferred {
                // Left before unlocking: the next change of these paths flushes them first.
                store.logged(ids, placed);
            } else {
                // Losing this delete in a crash only means replaying an idempotent intent.
                let mut ids = ids;
                ids.append(&mut store.inner.done_intents.lock().unwrap_or_else(|e| e.into_inner()));
                let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
                tail.push_str(&format!(
                    "BEGIN; SET LOCAL synchronous_commit = off; DELETE FROM intents WHERE id IN ({}); COMMIT; ",
                    list.join(", ")
                ));
                done = Some((store.clone(), ids));
            }
        }
        tail.push_str("SELECT pg_advisory_unlock_all(); ");
        Ok(Carried { client: Some(client), tail, done })
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
