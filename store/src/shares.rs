//! Shares, the owner's side: share a folder or file with an account or a group as viewer or
//! editor, change the role, revoke; list what one shares and what is shared with one. How a
//! share is reached from the recipient's tree is `view`.

use crate::db::Cached;
use crate::path::{UserName, VPath};
use crate::txn::audit;
use crate::types::{Actor, FileId, Role, Timestamp, User};
use crate::{Error, ErrorKind, Result, Store};

/// Who a share is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// One account.
    User(UserName),
    /// Every member of a group, as it is at each moment.
    Group(String),
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::User(u) => write!(f, "user {u}"),
            Recipient::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// A share as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Its number.
    pub id: i64,
    /// The shared folder or file, and where it is now in the owner's tree (`None` while it is
    /// in the trash: the share is suspended).
    pub node: FileId,
    /// See `node`.
    pub path: Option<VPath>,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// Who it is for.
    pub recipient: Recipient,
    /// What they may do.
    pub role: Role,
    /// When it was made.
    pub created_at: Timestamp,
}

/// A share as a recipient sees it (direct and group shares of one node merged, the higher role
/// winning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The owner's account.
    pub owner: UserName,
    /// The shared folder or file.
    pub node: FileId,
    /// Its name (the last part of its path in the owner's tree).
    pub name: String,
    /// Whether it is a folder.
    pub is_dir: bool,
    /// The recipient's role.
    pub role: Role,
    /// The groups it comes through (empty: shared with the account directly only).
    pub via_groups: Vec<String>,
}

/// Whether share `s` reaches account `$1` — directly or through a group it belongs to now — and
/// is not its own: the one definition of who a share is for.
pub(crate) const REACHES_USER: &str = "s.owner_id <> $1
    AND (s.user_id = $1 OR s.group_id IN (SELECT group_id FROM group_members WHERE user_id = $1))";

/// A share with its node's path and state and its recipient's name; callers add the `WHERE`.
const SHARE_SELECT: &str =
    "SELECT s.id, s.node_id, n.path, n.trash_id IS NULL, n.is_dir, u.name, g.name, s.role, s.created_at
     FROM shares s JOIN nodes n ON n.id = s.node_id
     LEFT JOIN users u ON u.id = s.user_id LEFT JOIN groups g ON g.id = s.group_id";

fn share_from_row(r: &tokio_postgres::Row) -> Result<Share> {
    let live: bool = r.get(3);
    let recipient = match (r.get::<_, Option<&str>>(5), r.get::<_, Option<String>>(6)) {
        (Some(u), _) => Recipient::User(UserName::parse(u)?),
        (None, Some(g)) => Recipient::Group(g),
        (None, None) => return Err(Error::internal("a share without a recipient")),
    };
    Ok(Share {
        id: r.get(0),
        node: FileId(r.get(1)),
        path: match live {
            true => Some(
                VPath::parse(r.get::<_, &str>(2))
                    .map_err(|e| Error::internal(format!("stored path: {e}")))?,
            ),
            false => None,
        },
        is_dir: r.get(4),
        recipient,
        role: Role::parse(r.get(7))?,
        created_at: Timestamp(r.get(8)),
    })
}

impl Store {
    /// Share `owner`'s folder or file at `path` with `to` as `role`; shared with them already:
    /// the role changes. Not the root, not with oneself.
    pub async fn share(
        &self,
        actor: &Actor,
        owner: &User,
        path: &VPath,
        to: &Recipient,
        role: Role,
    ) -> Result<Share> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::InvalidInput, "share a folder or file, not your whole tree"));
        }
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let node: i64 = tx
            .cquery_opt(
                "SELECT id FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL FOR SHARE",
                &[&owner.id.0, &path.as_str()],
            )
            .await?
            .ok_or_else(|| Error::not_found(path))?
            .get(0);
        let (user_id, group_id): (Option<i64>, Option<i64>) = match to {
            Recipient::User(name) => {
                if name == &owner.name {
                    return Err(Error::new(ErrorKind::InvalidInput, "you cannot share with yourself"));
                }
                let id = tx
                    .cquery_opt("SELECT id FROM users WHERE name = $1", &[&name.as_str()])
                    .await?
                    .ok_or_else(|| Error::not_found(format!("user {name}")))?
                    .get(0);
                (Some(id), None)
            }
            Recipient::Group(name) => {
                let id = tx
                    .cquery_opt("SELECT id FROM groups WHERE name = $1", &[name])
                    .await?
                    .ok_or_else(|| Error::not_found(format!("group {name}")))?
                    .get(0);
                (None, Some(id))
            }
        };
        let existing: Option<(i64, String)> = tx
            .cquery_opt(
                "SELECT id, role FROM shares WHERE node_id = $1
                   AND user_id IS NOT DISTINCT FROM $2 AND group_id IS NOT DISTINCT FROM $3 FOR UPDATE",
                &[&node, &user_id, &group_id],
            )
            .await?
            .map(|r| (r.get(0), r.get(1)));
        let (id, action) = match existing {
            Some((id, old)) if old == role.as_str() => (id, None),
            Some((id, _)) => {
                tx.cexecute("UPDATE shares SET role = $2 WHERE id = $1", &[&id, &role.as_str()]).await?;
                (id, Some("share.change"))
            }
            None => {
                let id: i64 = tx
                    .cquery_one(
                        "INSERT INTO shares (owner_id, node_id, user_id, group_id, role, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        &[&owner.id.0, &node, &user_id, &group_id, &role.as_str(), &now.0],
                    )
                    .await?
                    .get(0);
                (id, Some("share.create"))
            }
        };
        if let Some(action) = action {
            let detail = format!("share {id} with {to} as {}", role.as_str());
            audit(&tx, Some(owner.id), actor, action, Some(path.as_str()), Some(&detail), now).await?;
        }
        let share =
            share_from_row(&tx.cquery_one(&format!("{SHARE_SELECT} WHERE s.id = $1"), &[&id]).await?)?;
        crate::notify::shares_changed(&tx).await?;
        tx.commit().await?;
        self.inner.mounts.bump();
        Ok(share)
    }

    /// Every share `owner` made, by path.
    pub async fn shares_by(&self, owner: &User) -> Result<Vec<Share>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(&format!("{SHARE_SELECT} WHERE s.owner_id = $1 ORDER BY n.path, s.id"), &[&owner.id.0])
            .await?;
        rows.iter().map(share_from_row).collect()
    }

    /// End one of `owner`'s shares. Someone else's share, or none: not found.
    pub async fn revoke_share(&self, actor: &Actor, owner: &User, id: i64) -> Result<()> {
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let share = tx
            .cquery_opt(&format!("{SHARE_SELECT} WHERE s.id = $1 AND s.owner_id = $2"), &[&id, &owner.id.0])
            .await?
            .map(|r| share_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::not_found(format!("share {id}")))?;
        tx.cexecute("DELETE FROM shares WHERE id = $1", &[&id]).await?;
        let detail = format!("share {id} with {}", share.recipient);
        let path = share.path.as_ref().map(|p| p.as_str().to_owned());
        audit(&tx, Some(owner.id), actor, "share.revoke", path.as_deref(), Some(&detail), now).await?;
        crate::notify::shares_changed(&tx).await?;
        tx.commit().await?;
        self.inner.mounts.bump();
        Ok(())
    }

    /// What is shared with `user`, directly or through their groups, by owner and name; shares
    /// whose node is in its owner's trash are left out.
    pub async fn shared_with(&self, user: &User) -> Result<Vec<Incoming>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                &format!(
                    "SELECT o.name, n.id, n.name, n.is_dir,
                        CASE WHEN bool_or(s.role = 'editor') THEN 'editor' ELSE 'viewer' END,
                        coalesce(array_agg(DISTINCT g.name) FILTER (WHERE g.name IS NOT NULL), '{{}}')
                     FROM shares s
                     JOIN nodes n ON n.id = s.node_id AND n.trash_id IS NULL
                     JOIN users o ON o.id = s.owner_id
                     LEFT JOIN groups g ON g.id = s.group_id
                     WHERE {REACHES_USER}
                     GROUP BY o.name, n.id, n.name, n.is_dir
                     ORDER BY o.name, n.name, n.id"
                ),
                &[&user.id.0],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Incoming {
                    owner: UserName::parse(r.get::<_, &str>(0))?,
                    node: FileId(r.get(1)),
                    name: r.get(2),
                    is_dir: r.get(3),
                    role: Role::parse(r.get(4))?,
                    via_groups: r.get(5),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_order() {
        assert_eq!(Role::parse("viewer").unwrap(), Role::Viewer);
        assert_eq!(Role::parse("editor").unwrap(), Role::Editor);
        assert_eq!(Role::parse("owner").unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(Role::Editor > Role::Viewer);
    }
}
