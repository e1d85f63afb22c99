//! Commits whose outcome is unknown: the connection went while `COMMIT` was on its way (or
//! right after it, before the intent was carried out). If PostgreSQL committed, the database
//! already shows the change while the disk does not: the intent's renames wait. Start-up would
//! replay them, but the daemon does not restart for a database outage, so they are *settled*
//! here instead, as soon as the database answers: an intent whose row exists is carried out and
//! its row deleted; one whose row does not exist never committed, and its staged files go.
//!
//! The intents are registered before the connection (and with it the locks of the change) is
//! closed, and every later change settles them before its own disk work (in `close_all`, under
//! its locks): a change of the same path, which could only take its locks once the failed
//! one's connection was gone, never has its content overwritten by an older intent carried out
//! after it. A task of its own settles them too, so reads are whole again within moments of
//! the database's return, whether or not anything else is written.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{self, DiskOp};
use crate::{Error, Inner, Result, Store, blocking};

/// How often the settling task tries while the database does not answer.
const RETRY: Duration = Duration::from_millis(200);

/// Intents of commits whose outcome is unknown, oldest first.
#[derive(Default)]
pub(crate) struct Unsettled {
    items: std::sync::Mutex<Vec<(i64, Vec<DiskOp>)>>,
    /// Held while settling (one settler at a time; a change finds them all settled after it).
    settling: tokio::sync::Mutex<()>,
}

impl Unsettled {
    fn items(&self) -> std::sync::MutexGuard<'_, Vec<(i64, Vec<DiskOp>)>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items().is_empty()
    }
}

impl Store {
    /// The commit of `intents` may or may not have happened: settle them once the database
    /// answers. Called while the connection that holds their locks is still open.
    pub(crate) fn unsettled(&self, intents: &[(i64, Vec<DiskOp>)]) {
        if intents.is_empty() {
            return;
        }
        let first = {
            let mut items = self.inner.unsettled.items();
            let first = items.is_empty();
            items.extend(intents.iter().cloned());
            items.sort_by_key(|(id, _)| *id);
            first
        };
        tracing::warn!(
            intents = intents.len(),
            "a commit's outcome is unknown; it is settled when the database answers"
        );
        if first {
            tokio::spawn(settler(Arc::downgrade(&self.inner)));
        }
    }

    /// Settle what is unsettled before a change's own disk work, reading the intents through
    /// its transaction `db` (under its locks). The rows of intents carried out here are deleted
    /// with the next ones (a rollback of this transaction must not keep them).
    pub(crate) async fn settle_before(&self, db: &deadpool_postgres::Object) -> Result<()> {
        if self.inner.unsettled.is_empty() {
            return Ok(());
        }
        let _settling = self.inner.unsettled.settling.lock().await;
        let done = self.settle_with(db).await?;
        self.inner.done_intents.lock().unwrap_or_else(|e| e.into_inner()).extend(&done);
        self.forget_settled(&done);
        Ok(())
    }

    /// One attempt of the settling task: every unsettled intent, and the rows of intents carried
    /// out whose deletion is owed. Returns whether nothing is left.
    async fn settle_now(&self) -> Result<bool> {
        let client = self.inner.pool.get().await?;
        let _settling = self.inner.unsettled.settling.lock().await;
        let done = self.settle_with(&client).await?;
        if !done.is_empty() {
            client.cexecute("DELETE FROM intents WHERE id = ANY($1)", &[&done]).await?;
        }
        self.forget_settled(&done);
        let owed = std::mem::take(&mut *self.inner.done_intents.lock().unwrap_or_else(|e| e.into_inner()));
        if !owed.is_empty()
            && let Err(e) = client.cexecute("DELETE FROM intents WHERE id = ANY($1)", &[&owed]).await
        {
            self.inner.done_intents.lock().unwrap_or_else(|e| e.into_inner()).extend(owed);
            return Err(e);
        }
        Ok(self.inner.unsettled.is_empty())
    }

    /// Carry out the committed intents among the unsettled ones (in order) and drop the staged
    /// files of the others. Returns the ids settled (carried out, or found never committed);
    /// an intent the disk refuses is logged and dropped too, its row left for `fsck`, as
    /// start-up recovery leaves it.
    async fn settle_with(&self, db: &deadpool_postgres::Object) -> Result<Vec<i64>> {
        let items = self.inner.unsettled.items().clone();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
        let rows = db.cquery("SELECT id FROM intents WHERE id = ANY($1)", &[&ids]).await?;
        let committed: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        // The logged writes left so far first: a newer change durable before an older one is
        // carried out could be undone by it at a replay.
        self.flush_with(db).await?;
        let store = self.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            let mut settled = Vec::new();
            for (id, ops) in items {
                if committed.contains(&id) {
                    if let Err(e) = intent::apply(disk, &ops) {
                        tracing::error!(intent = id, error = %e, "a commit of unknown outcome cannot be finished; run cairnctl fsck and scan");
                        store.forget_settled(&[id]);
                        continue;
                    }
                    tracing::info!(intent = id, "a commit of unknown outcome had happened; its disk work is done");
                    settled.push(id);
                } else {
                    for op in &ops {
                        if let DiskOp::Rename { from: staged, .. } | DiskOp::Remove { path: staged } = op
                            && staged.starts_with(layout::STAGING)
                        {
                            let _ = disk.remove(staged);
                        }
                    }
                    store.forget_settled(&[id]);
                }
            }
            Ok::<_, Error>(settled)
        })
        .await
    }

    fn forget_settled(&self, ids: &[i64]) {
        self.inner.unsettled.items().retain(|(id, _)| !ids.contains(id));
    }
}

/// Settles until nothing is left (or the store is gone).
async fn settler(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(RETRY).await;
        let Some(inner) = inner.upgrade() else { return };
        let store = Store { inner };
        match store.settle_now().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "settling commits of unknown outcome: the database does not answer yet")
            }
        }
    }
}
