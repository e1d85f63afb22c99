//! Group commit of concurrent writes.
//!
//! A write's staged content is committed by the *leader*, a task that runs while writes are
//! waiting. It takes every write queued at that moment (up to [`MAX_BATCH`], one per path) and
//! commits them in one transaction: one round trip opens it, takes all their locks and sends
//! every write's first reads; their statements are pipelined; one closing statement (usage,
//! journal, audit, intent) covers every user and actor, each with its own rows (two, or more,
//! when one user writes through several front ends at once: a statement updates a user's row
//! once); one commit and one WAL flush cover them all; their renames share one trip to the
//! blocking pool and one fsync per folder. Writes that arrive while a batch runs wait for the
//! next one, so the batch size follows the load: a lone write is a batch of one, committed at
//! once.
//!
//! The leader never waits for a lock: a batch takes its locks only if they are all free. If one
//! is taken (a tree change of one of its users, another commit of one of its paths), or anything
//! else fails before the commit — one write's precondition, two writes creating the same
//! folder, a quota that only fits the writes one by one — the transaction rolls back and each
//! write is committed on its own task exactly as it would have been without batching (waiting
//! for its locks, getting its own answer), while the leader goes on. An error at or after the
//! commit leaves the commit's fate unknown: every write of the batch gets it (their staging
//! files belong to the intent either way, as for a single write).
//!
//! The leader keeps its connection from batch to batch: a batch's writes are answered once their
//! renames are done, and the batch's last step (deleting intent rows, unlocking) goes out ahead
//! of the next batch's `BEGIN`, in the message that opens it, or at once when no write waits.
//! Until then its paths stay locked, so nothing changes them between the renames and the
//! unlock. The try-locks are one call of `cairn_try_lock_batch` (schema/0006, compiled once per
//! connection). A write that creates its parent folders takes the path lock of each folder it
//! creates (top-down, as `mkdir` does), so two such writes take turns and the second finds the
//! folder; a preflight that finds a destination folder missing waits for the path locks of the
//! folders it writes into before looking again (a concurrent change may have committed the
//! folder and not yet created it on disk).

use std::collections::{HashSet, VecDeque};

use tokio::sync::oneshot;

use crate::path::VPath;
use crate::quota::Committing;
use crate::staging::{Content, Staging};
use crate::txn::{Carried, Change, Effects, LockSet, Locked, close_all, try_lock_sql_paths};
use crate::types::{Actor, FileId, User, UserId};
use crate::types::{WriteOptions, WriteOutcome};
use crate::{Error, Result, Store};

/// Most writes in one transaction.
const MAX_BATCH: usize = 64;

/// How long a batch of nothing but write-behinds waits for more.
const WRITE_BEHIND_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Leaders at a time. One: measured with 8 clients of small PUTs, one leader committed 1,850
/// files/s and two 1,600 (two leaders make smaller batches, and a batch's cost is mostly per
/// transaction, not per write).
const MAX_LEADERS: usize = 1;

/// The queue of writes waiting for a leader.
#[derive(Default)]
pub(crate) struct Batcher {
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    leaders: usize,
}

/// A staged write waiting to be committed.
struct Queued {
    actor: Actor,
    user: User,
    path: VPath,
    content: Content,
    job: Job,
    staging: Staging,
    reply: oneshot::Sender<Answer>,
}

/// A queued write's answer; a write refused before any commit gets its staged content back
/// (to try again, or to drop).
pub(crate) type Answer = Result<WriteOutcome, (Error, Option<Staging>)>;

/// What a queued write makes of its content.
pub(crate) enum Job {
    /// An ordinary write ([`Store::write`]).
    Write(WriteOptions),
    /// A new file created through the FUSE mount, with its reserved id and permission bits
    /// ([`Store::commit_new_draft`]); its bytes count against the quota until its commit
    /// counts them (dropped right after the commit, so they count twice as briefly as can be).
    New { id: FileId, mode: Option<u32>, counted: Option<Committing> },
}

/// Why a batch did not commit.
enum Failed {
    /// Nothing committed: each write can be committed on its own.
    BeforeCommit(Error),
    /// A lock the batch needs is taken (nothing committed).
    Busy,
    /// The commit may have happened.
    AtCommit(Error),
}

impl Batcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add to `batch` the queued writes in arrival order, at most one per path (a second write
    /// to a path waits for the next batch, which sees the first). Still empty: the leader leaves,
    /// unless it is `holding` locks of its last batch (it releases them, then looks again).
    fn take(&self, batch: &mut Vec<Queued>, holding: bool) {
        let mut st = self.lock();
        let mut seen: HashSet<(UserId, VPath)> = batch.iter().map(|q| (q.user.id, q.path.clone())).collect();
        let mut rest = VecDeque::new();
        while let Some(q) = st.queue.pop_front() {
            if batch.len() < MAX_BATCH && seen.insert((q.user.id, q.path.clone())) {
                batch.push(q);
            } else {
                rest.push_back(q);
            }
        }
        st.queue = rest;
        if batch.is_empty() && !holding {
            st.leaders -= 1;
        }
    }
}

impl Store {
    /// Commit staged content at `path` together with whatever other writes are waiting (see
    /// the module notes). Runs to the end even if the caller stops waiting.
    pub(crate) async fn commit_batched(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        content: Content,
        job: Job,
        staging: Staging,
    ) -> Answer {
        let (reply, answer) = oneshot::channel();
        let queued = Queued {
            actor: actor.clone(),
            user: user.clone(),
            path: path.clone(),
            content,
            job,
            staging,
            reply,
        };
        let lead = {
            let mut st = self.inner.batcher.lock();
            st.queue.push_back(queued);
            let lead = st.leaders < MAX_LEADERS;
            st.leaders += lead as usize;
            lead
        };
        if lead {
            let store = self.clone();
            tokio::spawn(async move { store.lead().await });
        }
        crate::watchdog::waiting("the group commit", answer)
            .await
            .unwrap_or_else(|_| Err((Error::internal("the write's commit was dropped"), None)))
    }

    async fn lead(&self) {
        // The last batch's connection, still holding its locks (see `Carried`): the next batch
        // releases them in the message that opens it, saving a round trip per batch. With no
        // next batch at hand, they are released at once.
        let mut carried: Option<Carried> = None;
        loop {
            let mut batch = Vec::new();
            self.inner.batcher.take(&mut batch, carried.is_some());
            if batch.is_empty() {
                match carried.take() {
                    Some(c) => {
                        release(c).await;
                        continue;
                    }
                    None => return,
                }
            }
            // Nobody waits for a write-behind (the mount's `close` has returned): a moment's
            // wait lets the files closed right after it share its transaction.
            if batch.len() < MAX_BATCH && batch.iter().all(|q| matches!(q.job, Job::New { .. })) {
                if let Some(c) = carried.take() {
                    release(c).await;
                }
                tokio::time::sleep(WRITE_BEHIND_LINGER).await;
                self.inner.batcher.take(&mut batch, false);
            }
            let op = crate::watchdog::begin("commit", format!("a batch of {} writes", batch.len()));
            let (res, next) = op.scope(self.try_batch(&mut batch, carried.take())).await;
            drop(op);
            carried = next;
            match res {
                Ok(outs) => {
                    for (q, out) in batch.into_iter().zip(outs) {
                        let _ = q.reply.send(Ok(out));
                    }
                }
                // A write's own refusal (a precondition, a missing folder, the quota).
                Err(Failed::BeforeCommit(e)) if batch.len() == 1 => {
                    let q = batch.pop().expect("one");
                    let _ = q.reply.send(Err((e, Some(q.staging))));
                }
                Err(Failed::BeforeCommit(e)) => {
                    tracing::debug!(error = %e, writes = batch.len(), "a batch of writes is committed one by one");
                    self.one_by_one(batch);
                }
                Err(Failed::Busy) => self.one_by_one(batch),
                Err(Failed::AtCommit(e)) => {
                    tracing::error!(error = %e, writes = batch.len(), "a batch of writes failed at commit");
                    for q in batch {
                        let _ = q.reply.send(Err((Error::new(e.kind(), e.message()), None)));
                    }
                }
            }
        }
    }

    /// Commit each write on its own, each in its own task (waiting for its locks as usual),
    /// while the leader goes on with the next batch.
    fn one_by_one(&self, batch: Vec<Queued>) {
        for mut q in batch {
            let store = self.clone();
            tokio::spawn(async move {
                let res = match q.job {
                    Job::Write(opts) => {
                        store
                            .commit_content(&q.actor, &q.user, &q.path, q.content, opts, &mut q.staging)
                            .await
                    }
                    Job::New { id, mode, counted: _counted } => {
                        let now = store.clock().now();
                        let staging = Some(&mut q.staging);
                        let res =
                            store.commit_new(&q.actor, &q.user, &q.path, id, mode, q.content, now, staging);
                        res.await.map(|node| WriteOutcome { node, created: true, version: None })
                    }
                };
                let _ = q.reply.send(res.map_err(|e| (e, Some(q.staging))));
            });
        }
    }

    /// One transaction for the whole batch (the steps of `in_txn!`, for many writes), on the
    /// last batch's connection if `carried`. A committed batch hands its connection on, its
    /// locks still held (see [`Carried`]).
    async fn try_batch(
        &self,
        batch: &mut [Queued],
        carried: Option<Carried>,
    ) -> (Result<Vec<WriteOutcome>, Failed>, Option<Carried>) {
        let set = LockSet::Path(batch[0].user.id, &batch[0].path);
        let locked = match carried {
            Some(c) => Locked::connect_carried(c, set),
            None => match Locked::connect(self, set).await {
                Ok(l) => l,
                Err(e) => return (Err(Failed::BeforeCommit(e)), None),
            },
        };
        self.try_batch_on(locked, batch).await
    }

    async fn try_batch_on(
        &self,
        mut locked: Locked,
        batch: &mut [Queued],
    ) -> (Result<Vec<WriteOutcome>, Failed>, Option<Carried>) {
        let now = self.clock().now();
        let lock_sql = try_lock_sql_paths(&batch.iter().map(|q| (q.user.id, &q.path)).collect::<Vec<_>>());
        let res = async {
            let tx = locked.tx();
            let rows = batch.iter().map(|q| async {
                match &q.job {
                    Job::Write(opts) => {
                        self.write_rows(Change::new(&tx, &q.user, now), &q.actor, &q.path, &q.content, opts)
                            .await
                    }
                    Job::New { id, mode, .. } => {
                        let cx = Change::new(&tx, &q.user, now);
                        self.new_rows(cx, &q.actor, &q.path, *id, *mode, &q.content).await
                    }
                }
            });
            // BEGIN and the locks first, then every write's first reads, in one round trip.
            let (opened, written) =
                tokio::join!(locked.try_open(&lock_sql), futures_util::future::join_all(rows));
            if !opened.map_err(Failed::BeforeCommit)? {
                return Err(Failed::Busy);
            }
            let mut outs = Vec::with_capacity(batch.len());
            // Effects merged per user and actor (the audit log and the journal name the actor).
            let mut groups: Vec<(usize, Effects)> = Vec::new();
            for (i, w) in written.into_iter().enumerate() {
                let (out, fx) = w.map_err(Failed::BeforeCommit)?;
                outs.push(out);
                match groups.iter_mut().find(|(j, _)| same_group(&batch[*j], &batch[i])) {
                    Some((_, merged)) => merged.absorb(fx),
                    None => groups.push((i, fx)),
                }
            }
            // One closing statement for all users, or one per round when a user has several
            // groups (several actors): a statement updates each user's row once.
            let mut rounds: Vec<Vec<(&User, &Actor, Effects)>> = Vec::new();
            for (j, fx) in groups {
                let user = &batch[j].user;
                let round = match rounds.iter().position(|r| r.iter().all(|(u, _, _)| u.id != user.id)) {
                    Some(r) => r,
                    None => {
                        rounds.push(Vec::new());
                        rounds.len() - 1
                    }
                };
                rounds[round].push((user, &batch[j].actor, fx));
            }
            let closes = rounds.into_iter().map(|round| close_all(self, &tx, round, now));
            let intents = futures_util::future::try_join_all(closes).await.map_err(Failed::BeforeCommit)?;
            Ok((outs, intents.into_iter().flatten().flatten().collect::<Vec<_>>()))
        }
        .await;
        match res {
            Ok((outs, intents)) => {
                // From here the staged files belong to the intents.
                for q in batch.iter_mut() {
                    q.staging.rel = None;
                }
                if let Err(e) = locked.commit(self, &intents).await {
                    return (Err(Failed::AtCommit(e)), None);
                }
                crate::telemetry::batch(batch.len());
                for q in batch.iter_mut() {
                    if let Job::New { counted, .. } = &mut q.job {
                        *counted = None;
                    }
                }
                match locked.finish_carrying(self, intents).await {
                    Ok(carried) => (Ok(outs), Some(carried)),
                    Err(e) => (Err(Failed::AtCommit(e)), None),
                }
            }
            Err(e) => {
                let _ = locked.finish(self, None).await;
                (Err(e), None)
            }
        }
    }
}

/// Send a carried connection's owed statements (a failure closes it, freeing its locks, and
/// leaves any intent row it did not delete to the next start-up's replay).
async fn release(carried: Carried) {
    if let Err(e) = carried.release().await {
        tracing::warn!(error = %e, "releasing a batch's locks failed; its connection was closed");
    }
}

fn same_group(a: &Queued, b: &Queued) -> bool {
    a.user.id == b.user.id && a.actor == b.actor
}
