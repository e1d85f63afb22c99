//! Telling running processes what another one changed, through PostgreSQL LISTEN/NOTIFY: a
//! `cairnctl user passwd` reaches the daemon's credential cache this way.

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;

use crate::types::{Origin, UserId};
use crate::{Result, Store};

const CHANNEL: &str = "cairn_credentials";
/// Sent by every committed change to a user's tree (see `txn::close`).
const CHANGES: &str = "cairn_changes";
/// Sent whenever a share, a share's mount or a group's membership changes (see `view`).
pub(crate) const SHARES: &str = "cairn_shares";

/// Announce, in the transaction that changes them, that shares, mounts or groups changed.
pub(crate) async fn shares_changed(client: &impl deadpool_postgres::GenericClient) -> Result<()> {
    client.execute("SELECT pg_notify($1, '')", &[&SHARES]).await?;
    Ok(())
}

/// Announce (at commit) that `user`'s credentials changed.
pub(crate) async fn credentials_changed(
    client: &impl deadpool_postgres::GenericClient,
    user: UserId,
) -> Result<()> {
    client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &user.0.to_string()]).await?;
    Ok(())
}

impl Store {
    /// A number that changes, before the call that made it returns, whenever this process
    /// commits a credential change (password, status, app password, deletion). A cache that
    /// reads it before asking the database and keeps an entry only while it is unchanged
    /// never serves a credential this process has revoked. Other processes' changes arrive
    /// through [`Store::watch_credentials`].
    pub fn credential_generation(&self) -> u64 {
        self.inner.cred_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Call after committing a credential change.
    pub(crate) fn credentials_committed(&self) {
        self.inner.cred_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A stream of credential changes: `Some(user)` when that user's password, app passwords or
    /// status changed; `None` when notifications may have been missed (after a reconnect), so
    /// the receiver should forget everything it cached.
    pub fn watch_credentials(&self) -> mpsc::UnboundedReceiver<Option<UserId>> {
        self.watch(CHANNEL, |payload, _| payload.parse().ok().map(UserId))
    }

    /// Tree-change notices straight from the process's one `LISTEN` connection: `Some(notice)`
    /// after each committed change to that user's files (read what changed with
    /// [`Store::changes`]); `None`, or a `Lagged` error, when some may have been missed. Must be
    /// called inside a tokio runtime.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Option<ChangeNotice>> {
        self.inner
            .changes
            .get_or_init(|| {
                let (tx, _) = broadcast::channel(1024);
                let mut source = self.watch(CHANGES, parse_notice);
                let fan = tx.clone();
                let store = self.clone();
                tokio::spawn(async move {
                    while let Some(notice) = source.recv().await {
                        // The node cache first: its own commits updated it precisely at
                        // commit; another process's change drops the user's whole tree.
                        match &notice {
                            Some(n) if n.own.is_some() => {}
                            Some(n) => store.inner.cache.bump(n.user),
                            None => store.inner.cache.clear(),
                        }
                        let _ = fan.send(notice);
                    }
                });
                tx
            })
            .subscribe()
    }

    /// [`Store::subscribe_changes`] as an unbounded stream of the users whose trees changed, in
    /// which falling behind reads as `None` (may have missed changes), leaving out this
    /// process's own changes through `skip` (a front end that knows what it did itself). Must
    /// be called inside a tokio runtime.
    pub fn watch_changes(&self, skip: Option<Origin>) -> mpsc::UnboundedReceiver<Option<UserId>> {
        let mut feed = self.subscribe_changes();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let change = match feed.recv().await {
                    Ok(Some(n)) if skip.is_some() && n.own == skip => continue,
                    Ok(change) => change.map(|n| n.user),
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(change).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Serve `stat` from a cache kept coherent with every process's changes (see `cache`).
    /// For the daemon; must be called inside a tokio runtime.
    pub fn enable_cache(&self) {
        // The one LISTEN connection keeps the cache coherent (see `subscribe_changes`).
        drop(self.subscribe_changes());
        self.inner.cache.enable();
    }

    /// Notifications on `channel`, each payload read with `parse` (given this process's token);
    /// `None` when some may have been missed (a payload `parse` rejects counts as such).
    pub(crate) fn watch<T: Send + 'static>(
        &self,
        channel: &'static str,
        parse: fn(&str, &str) -> Option<T>,
    ) -> mpsc::UnboundedReceiver<Option<T>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&store, channel, parse, &tx).await {
                    tracing::warn!(error = %e, channel, "notifications interrupted; reconnecting");
                }
                if tx.send(None).is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
        rx
    }
}

/// A tree-change notification: whose tree changed, and whether this process sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeNotice {
    /// Whose tree changed.
    pub user: UserId,
    /// The front end the change came through, if this process made it; `None`: another
    /// process did.
    pub own: Option<Origin>,
}

/// Parse a tree-change payload `USER_ID TOKEN ORIGIN` (the token of the process that sent it,
/// the front end it came through).
fn parse_notice(payload: &str, own_token: &str) -> Option<ChangeNotice> {
    let mut words = payload.split(' ');
    let user = UserId(words.next()?.parse().ok()?);
    let own = (words.next() == Some(own_token)).then(|| words.next().and_then(Origin::parse));
    // An own change from an unknown front end still counts as own (the cache knows it).
    Some(ChangeNotice { user, own: own.map(|o| o.unwrap_or(Origin::Daemon)) })
}

async fn listen<T: Send + 'static>(
    store: &Store,
    channel: &str,
    parse: fn(&str, &str) -> Option<T>,
    tx: &mpsc::UnboundedSender<Option<T>>,
) -> Result<()> {
    let cfg = store.inner.target.pg_config()?;
    let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await?;
    let (msg_tx, mut msg_rx) = mpsc::unbounded_channel();
    let token = store.inner.notice_token.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if msg_tx.send(parse(n.payload(), &token)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    // Everything before LISTEN may have been missed.
    if tx.send(None).is_err() {
        return Ok(());
    }
    while let Some(notice) = msg_rx.recv().await {
        if tx.send(notice).is_err() {
            break;
        }
    }
    driver.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_tell_own_changes_and_their_front_end() {
        let n = parse_notice("7 tok fuse", "tok").unwrap();
        assert_eq!(n, ChangeNotice { user: UserId(7), own: Some(Origin::Fuse) });
        // Another process's change, whatever front end it came through.
        assert_eq!(parse_notice("7 other dav", "tok").unwrap().own, None);
        // An own change from a front end this build does not know is still own.
        assert_eq!(parse_notice("7 tok", "tok").unwrap().own, Some(Origin::Daemon));
        assert_eq!(parse_notice("x tok dav", "tok"), None);
    }
}
