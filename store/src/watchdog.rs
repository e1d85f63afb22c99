//! Operations in flight, and a watchdog that logs those that take too long.
//!
//! Every front end registers what it is doing ([`begin`]: an HTTP request, a FUSE call's wait,
//! a batch of commits), and runs it inside the operation's [`Op::scope`]; the store marks where
//! such an operation waits ([`waiting`]: the database, the disk, the group commit). A thread
//! of its own (not a runtime task: it must speak when the runtime is stuck) looks every quarter
//! of the threshold and logs each operation older than the threshold, with what it was last seen
//! waiting on, again each time its age doubles, and once more when it ends. A request that
//! hangs thus names itself and its wait in the log within seconds, instead of a client's
//! time-out minutes later with nothing said.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

struct Entry {
    kind: &'static str,
    what: Cow<'static, str>,
    started: Instant,
    /// What it was last seen waiting on (`""`: working).
    stage: Mutex<&'static str>,
    /// The age at which it is next reported (doubles at each report; 0 while unreported).
    reported: AtomicU64,
}

struct Registry {
    next: AtomicU64,
    shards: [Mutex<HashMap<u64, Arc<Entry>>>; SHARDS],
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        next: AtomicU64::new(0),
        shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An operation in flight, until dropped.
pub struct Op {
    id: u64,
    entry: Arc<Entry>,
}

tokio::task_local! {
    static CURRENT: Arc<Entry>;
}

/// Register an operation: `kind` (`"request"`, `"fuse"`, `"commit"`) and what it is (a method
/// and path, a FUSE wait). Cheap: one short lock of one of 16 shards, and no allocation for a
/// static `what`.
pub fn begin(kind: &'static str, what: impl Into<Cow<'static, str>>) -> Op {
    let reg = registry();
    let id = reg.next.fetch_add(1, Ordering::Relaxed);
    let entry = Arc::new(Entry {
        kind,
        what: what.into(),
        started: Instant::now(),
        stage: Mutex::new(""),
        reported: AtomicU64::new(0),
    });
    lock(&reg.shards[id as usize % SHARDS]).insert(id, entry.clone());
    Op { id, entry }
}

impl Op {
    /// Run `f` as this operation: [`waiting`] inside it marks this operation's waits.
    pub async fn scope<F: Future>(&self, f: F) -> F::Output {
        CURRENT.scope(self.entry.clone(), f).await
    }

    /// Mark this operation as waiting on `stage` (`""`: working again), from outside a scope
    /// (a thread waiting on a lock or a condition).
    pub fn set_stage(&self, stage: &'static str) {
        *lock(&self.entry.stage) = stage;
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        lock(&registry().shards[self.id as usize % SHARDS]).remove(&self.id);
        if self.entry.reported.load(Ordering::Relaxed) > 0 {
            tracing::warn!(
                kind = self.entry.kind,
                what = %self.entry.what,
                secs = self.entry.started.elapsed().as_secs_f64(),
                "watchdog: a slow operation ended"
            );
        }
    }
}

/// Await `f`, marking the operation in whose scope this runs (if any) as waiting on `stage`
/// meanwhile.
pub async fn waiting<F: Future>(stage: &'static str, f: F) -> F::Output {
    let entry = CURRENT.try_with(|e| e.clone()).ok();
    let before = entry.as_ref().map(|e| std::mem::replace(&mut *lock(&e.stage), stage));
    let out = f.await;
    if let (Some(e), Some(before)) = (entry, before) {
        *lock(&e.stage) = before;
    }
    out
}

/// A report of one operation older than the threshold.
#[derive(Debug, Clone)]
pub struct Stuck {
    pub kind: &'static str,
    pub what: String,
    pub age: Duration,
    pub waiting_on: &'static str,
}

/// Operations older than `threshold` that are due a report (first past the threshold, then at
/// each doubling of their age), oldest first.
pub fn due(threshold: Duration) -> Vec<Stuck> {
    let now = Instant::now();
    let mut out = Vec::new();
    for shard in &registry().shards {
        for e in lock(shard).values() {
            let age = now.duration_since(e.started);
            let next = match e.reported.load(Ordering::Relaxed) {
                0 => threshold,
                n => Duration::from_millis(n),
            };
            if age >= next {
                e.reported.store((age.as_millis() as u64 * 2).max(1), Ordering::Relaxed);
                out.push(Stuck { kind: e.kind, what: e.what.to_string(), age, waiting_on: *lock(&e.stage) });
            }
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.age));
    out
}

/// Start the watchdog thread (once per process): every `threshold / 4` it logs the operations
/// [`due`] a report.
pub fn start(threshold: Duration) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("watchdog".into()).spawn(move || {
            loop {
                std::thread::sleep(threshold / 4);
                for s in due(threshold) {
                    tracing::warn!(
                        kind = s.kind,
                        what = %s.what,
                        secs = s.age.as_secs(),
                        waiting_on = if s.waiting_on.is_empty() { "nothing named (working)" } else { s.waiting_on },
                        "watchdog: an operation is taking too long"
                    );
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the watchdog thread could not start");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_old_operation_is_reported_with_its_wait_then_at_each_doubling() {
        let op = begin("request", "GET /unit-test-watchdog");
        let stage =
            op.scope(waiting("the database", async { *lock(&CURRENT.with(|e| e.clone()).stage) })).await;
        assert_eq!(stage, "the database");
        assert_eq!(*lock(&op.entry.stage), "", "the stage is restored after the wait");
        op.set_stage("an open file's lock");
        let mine =
            |v: Vec<Stuck>| v.into_iter().filter(|s| s.what == "GET /unit-test-watchdog").collect::<Vec<_>>();
        assert!(mine(due(Duration::from_secs(60))).is_empty(), "young operations are not reported");
        std::thread::sleep(Duration::from_millis(30));
        let first = mine(due(Duration::from_millis(20)));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].kind, first[0].waiting_on), ("request", "an open file's lock"));
        assert!(mine(due(Duration::from_millis(20))).is_empty(), "not again before its age doubles");
        std::thread::sleep(first[0].age + Duration::from_millis(10));
        assert_eq!(mine(due(Duration::from_millis(20))).len(), 1);
        drop(op);
        std::thread::sleep(Duration::from_millis(100));
        assert!(mine(due(Duration::from_millis(1))).is_empty(), "an ended operation is gone");
    }
}
