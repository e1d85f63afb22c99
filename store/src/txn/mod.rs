//! The machinery every mutation shares: advisory locks, the closing steps of a transaction
//! (usage and quota with pruning, journal, audit, intent), and applying the intent afterwards.
//!
//! Locking: a single-path change (write, mkdir, version restore) takes the user's lock *shared*
//! and the path's lock exclusive; a change to a tree (delete, move, copy, trash restore, purge)
//! takes the user's lock exclusive. The locks are session-level advisory locks held from before
//! the transaction until the disk work is done, so two changes never interleave their renames.
//! The `UPDATE users` at the end of every transaction takes the user's row lock, which orders
//! commits per user: journal sequence numbers are handed out in commit order.

mod audit;
mod closing;
mod lock;
mod unsettled;

pub(crate) use audit::*;
pub(crate) use closing::*;
pub(crate) use lock::*;
pub(crate) use unsettled::Unsettled;

/// Run a transaction under `locks`, close it (usage, journal, audit, intent), commit, carry out
/// the intent, and unlock. `$body` is evaluated inside with `$tx` bound, and yields
/// `(output, Effects)`; written `|tx, cx|`, it also gets the mutation's [`Change`] as `cx` and
/// yields the output alone. The optional `after_commit` block runs once the transaction is closed,
/// just before the commit is sent: from then on whatever the transaction names (its staging
/// files) belongs to its intent, whether or not the commit's answer arrives.
macro_rules! in_txn {
    ($store:expr, $locks:expr, $user:expr, $actor:expr, $now:expr, |$tx:ident, $cx:ident| $body:expr) => {
        in_txn!($store, $locks, $user, $actor, $now, |$tx| {
            let mut change = $crate::txn::Change::new(&$tx, $user, $now);
            let $cx = &mut change;
            let out = $body;
            change.done(out)
        })
    };
    ($store:expr, $locks:expr, $user:expr, $actor:expr, $now:expr, |$tx:ident| $body:expr) => {
        in_txn!($store, $locks, $user, $actor, $now, |$tx| $body, after_commit {})
    };
    ($store:expr, $locks:expr, $user:expr, $actor:expr, $now:expr, |$tx:ident| $body:expr, after_commit $after:block) => {{
        let locks = $locks;
        let mut locked = $crate::txn::Locked::connect($store, locks).await?;
        let res = async {
            let $tx = locked.tx();
            // BEGIN and the locks travel with the body's first queries (see `Locked::open`).
            let (opened, body) = tokio::join!(locked.open(locks), async { Ok::<_, $crate::Error>($body) });
            opened?;
            let (out, fx) = body?;
            let intent = $crate::txn::close($store, &$tx, $user, $actor, fx, $now).await?;
            Ok::<_, $crate::Error>((out, intent))
        }
        .await;
        match res {
            Ok((out, intent)) => {
                $after
                locked.commit($store, intent.as_slice()).await?;
                locked.finish($store, intent).await?;
                Ok(out)
            }
            Err(e) => {
                let _ = locked.finish($store, None).await;
                Err(e)
            }
        }
    }};
}
pub(crate) use in_txn;

/// A whole mutation as a task of its own (`detached`: a client that goes away cannot cut it
/// short): `self`, `actor`, `user` and the other named values are cloned into the task (as
/// `store`, `actor`, `user`, ...), `now` is read from the store's clock, and the body runs in
/// [`in_txn!`] under `locks` with `tx` and `cx`.
macro_rules! change {
    ($this:expr, [$store:ident, $actor:ident, $user:ident $(, $v:ident)*], $now:ident, $locks:expr, |$tx:ident, $cx:ident| $body:expr) => {{
        let ($store, $actor, $user $(, $v)*) = ($this.clone(), $actor.clone(), $user.clone() $(, $v.clone())*);
        $crate::detached(async move {
            let $now = $store.clock().now();
            $crate::txn::in_txn!(&$store, $locks, &$user, &$actor, $now, |$tx, $cx| $body)
        })
        .await
    }};
}
pub(crate) use change;
