//! A user's change feed with the shares mounted in their tree: their own journal, and for each
//! share its owner's journal below the shared folder, as the recipient sees it (paths rebased
//! onto the mount point). A share's arrival, move and departure are rows of the recipient's own
//! journal (`create`, `move`, `delete` of the mount point, written where mounts change: see
//! `view`), so a client following the feed sees it appear, then what changes in it.
//!
//! A cursor is a position in each journal: `OWN` for a user with no shares, `OWN.NODE-SEQ…`
//! with them (NODE: the shared folder's or file's id; SEQ: the position in its owner's journal).
//! A share mounted since the cursor is followed from its owner's current position (its `create`
//! in the user's journal tells the client to list it). A change inside a share is a change of
//! the recipient's view: one moved into the shared folder from elsewhere in the owner's tree is
//! a `create`, one moved out of it a `delete`.

use std::fmt;

use crate::journal::{Change, ChangePage};
use crate::path::VPath;
use crate::types::FileId;
use crate::view::View;
use crate::{Error, ErrorKind, Result};

/// A position in a user's feed (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedCursor {
    /// In the user's own journal.
    pub own: i64,
    /// In the journal of each mounted share's owner, by shared node.
    pub shares: Vec<(FileId, i64)>,
}

impl FeedCursor {
    /// Parse a cursor an earlier answer gave; `None` if it is not one.
    pub fn parse(s: &str) -> Option<FeedCursor> {
        let mut parts = s.split('.');
        let own: i64 = parts.next()?.parse().ok().filter(|c| *c >= 0)?;
        let mut shares = Vec::new();
        for p in parts {
            let (node, seq) = p.split_once('-')?;
            shares.push((FileId(node.parse().ok()?), seq.parse().ok().filter(|c: &i64| *c >= 0)?));
        }
        Some(FeedCursor { own, shares })
    }

    fn share(&self, node: FileId) -> Option<i64> {
        self.shares.iter().find(|(n, _)| *n == node).map(|(_, s)| *s)
    }
}

impl fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.own)?;
        for (node, seq) in &self.shares {
            write!(f, ".{}-{seq}", node.0)?;
        }
        Ok(())
    }
}

/// A page of a user's feed.
#[derive(Debug, Clone)]
pub struct FeedPage {
    /// Their own changes (oldest first), then each share's, each with the cursor just after it.
    pub changes: Vec<(Change, FeedCursor)>,
    pub cursor: FeedCursor,
    /// More changes are waiting past this page.
    pub more: bool,
}

impl View<'_> {
    /// The feed's cursor now.
    pub async fn feed_cursor(&self) -> Result<FeedCursor> {
        let own = self.store.journal_cursor(self.user).await?;
        let mut shares = Vec::new();
        for m in self.mounts_in_tree().await? {
            shares.push((m.node.id, self.store.journal_cursor(&m.owner).await?));
        }
        Ok(FeedCursor { own, shares })
    }

    /// Up to about `limit` changes after `cursor`: the user's own first, then each share's;
    /// the cursor to ask with next. A position a journal no longer covers is
    /// [`ErrorKind::CursorExpired`] (list everything again).
    pub async fn feed(&self, cursor: &FeedCursor, limit: i64) -> Result<FeedPage> {
        let limit = limit.clamp(1, 10_000);
        // The mounts first: placing a new one writes its `create` into the user's journal.
        let mounts = self.mounts_in_tree().await?;
        let own: ChangePage = self.store.changes_since(self.user, cursor.own, limit).await?;
        // Where each journal stands as the page goes (a share mounted since the cursor starts
        // at its owner's position now: its `create` is in the user's own journal).
        let mut run = FeedCursor { own: cursor.own, shares: Vec::new() };
        let mut owner_now = Vec::new();
        for m in &mounts {
            let now = self.store.journal_cursor(&m.owner).await?;
            owner_now.push(now);
            run.shares.push((m.node.id, cursor.share(m.node.id).unwrap_or(now)));
        }
        let mut more = own.more;
        let mut changes = Vec::new();
        for c in own.changes {
            run.own = c.seq;
            changes.push((c, run.clone()));
        }
        run.own = own.cursor;
        for (k, m) in mounts.iter().enumerate() {
            let after = run.shares[k].1;
            let room = limit - changes.len() as i64;
            if room <= 0 {
                more |= after < owner_now[k];
                continue;
            }
            let page = self.store.changes_since(&m.owner, after, room).await.map_err(|e| match e.kind() {
                ErrorKind::CursorExpired => Error::new(
                    ErrorKind::CursorExpired,
                    format!("the cursor is too old for the share at {}; list everything again", m.at),
                ),
                _ => e,
            })?;
            more |= page.more;
            for c in page.changes {
                run.shares[k].1 = c.seq;
                if let Some(c) = seen_from(c, &m.node.path, &m.at) {
                    changes.push((c, run.clone()));
                }
            }
            run.shares[k].1 = page.cursor;
        }
        let next = run;
        Ok(FeedPage { changes, cursor: next, more })
    }
}

/// An owner's change `c` as a recipient of the share rooted at `root` (the owner's path) and
/// mounted at `at` sees it, if it touches the share.
fn seen_from(mut c: Change, root: &VPath, at: &VPath) -> Option<Change> {
    let now = c.path.rebase(root, at);
    let before = c.old_path.as_ref().and_then(|p| p.rebase(root, at));
    match (c.kind.as_str(), now, before) {
        ("move", Some(now), Some(before)) => {
            c.path = now;
            c.old_path = Some(before);
        }
        // Moved in from elsewhere in the owner's tree, or out of the share.
        ("move", Some(now), None) => {
            c.kind = "create".to_owned();
            c.path = now;
            c.old_path = None;
        }
        ("move", None, Some(before)) => {
            c.kind = "delete".to_owned();
            c.path = before;
            c.old_path = None;
        }
        (_, Some(now), _) => {
            c.path = now;
            c.old_path = None;
        }
        _ => return None,
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        for s in ["0", "17", "17.5-3", "17.5-3.90-0"] {
            assert_eq!(FeedCursor::parse(s).unwrap().to_string(), s);
        }
        for s in ["", "-1", "x", "1.", "1.5", "1.5-", "1.5--2", "1.a-2"] {
            assert!(FeedCursor::parse(s).is_none(), "{s:?}");
        }
    }

    #[test]
    fn an_owners_changes_are_seen_below_the_mount() {
        let p = |s: &str| VPath::parse(s).unwrap();
        let change = |kind: &str, path: &str, old: Option<&str>| Change {
            seq: 1,
            at: crate::types::Timestamp(0),
            kind: kind.to_owned(),
            file_id: FileId(9),
            is_dir: false,
            path: p(path),
            old_path: old.map(p),
            size: None,
            etag: None,
            content_hash: None,
            origin: None,
        };
        let (root, at) = (p("/Photos/Family"), p("/Shared/Family (alice)"));
        let seen = |c| {
            seen_from(c, &root, &at).map(|c| (c.kind, c.path.to_string(), c.old_path.map(|o| o.to_string())))
        };
        assert_eq!(
            seen(change("modify", "/Photos/Family/a.jpg", None)),
            Some(("modify".into(), "/Shared/Family (alice)/a.jpg".into(), None))
        );
        assert_eq!(seen(change("modify", "/Photos/other.jpg", None)), None);
        assert_eq!(
            seen(change("move", "/Photos/Family/b.jpg", Some("/Photos/b.jpg"))),
            Some(("create".into(), "/Shared/Family (alice)/b.jpg".into(), None))
        );
        assert_eq!(
            seen(change("move", "/Photos/b.jpg", Some("/Photos/Family/b.jpg"))),
            Some(("delete".into(), "/Shared/Family (alice)/b.jpg".into(), None))
        );
        assert_eq!(
            seen(change("move", "/Photos/Family/c.jpg", Some("/Photos/Family/b.jpg"))),
            Some((
                "move".into(),
                "/Shared/Family (alice)/c.jpg".into(),
                Some("/Shared/Family (alice)/b.jpg".into())
            ))
        );
    }
}
