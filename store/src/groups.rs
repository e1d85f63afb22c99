//! Groups of accounts, managed by admins (`cairnctl group`, the web UI's admin page). A group's
//! name follows the rules of account names; deleting an account leaves its groups.

use crate::db::Cached;
use crate::path::UserName;
use crate::txn::audit;
use crate::types::Actor;
use crate::{Error, ErrorKind, Result, Store};

/// A group and its members, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its members' account names, sorted.
    pub members: Vec<String>,
}

/// Validate a group name (the rules of account names).
fn group_name(raw: &str) -> Result<String> {
    UserName::parse(raw).map(|n| n.as_str().to_owned()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidInput,
            "invalid group name: use 1-64 of a-z 0-9 . _ -, starting with a letter or digit",
        )
    })
}

fn no_group(name: &str) -> Error {
    Error::not_found(format!("group {name}"))
}

impl Store {
    /// Every group with its members, by name.
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT g.name, coalesce(array_agg(u.name ORDER BY u.name) FILTER (WHERE u.name IS NOT NULL), '{}')
                 FROM groups g
                 LEFT JOIN group_members m ON m.group_id = g.id
                 LEFT JOIN users u ON u.id = m.user_id
                 GROUP BY g.name ORDER BY g.name",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| Group { name: r.get(0), members: r.get(1) }).collect())
    }

    /// One group.
    pub async fn group(&self, name: &str) -> Result<Group> {
        let name = group_name(name)?;
        self.list_groups().await?.into_iter().find(|g| g.name == name).ok_or_else(|| no_group(&name))
    }

    /// The groups `user` belongs to, by name.
    pub async fn groups_of(&self, user: &UserName) -> Result<Vec<String>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id
                 JOIN users u ON u.id = m.user_id WHERE u.name = $1 ORDER BY g.name",
                &[&user.as_str()],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Create an empty group.
    pub async fn create_group(&self, actor: &Actor, name: &str) -> Result<Group> {
        let name = group_name(name)?;
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let made = tx
            .cquery_opt(
                "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &now.0],
            )
            .await?;
        if made.is_none() {
            return Err(Error::new(ErrorKind::AlreadyExists, format!("group {name} exists")));
        }
        audit(&tx, None, actor, "group.create", None, Some(&format!("group {name}")), now).await?;
        tx.commit().await?;
        Ok(Group { name, members: Vec::new() })
    }

    /// Delete a group (its members keep their accounts).
    pub async fn delete_group(&self, actor: &Actor, name: &str) -> Result<()> {
        let name = group_name(name)?;
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        if tx.cexecute("DELETE FROM groups WHERE name = $1", &[&name]).await? == 0 {
            return Err(no_group(&name));
        }
        audit(&tx, None, actor, "group.delete", None, Some(&format!("group {name}")), now).await?;
        crate::notify::shares_changed(&tx).await?;
        tx.commit().await?;
        self.inner.mounts.bump();
        Ok(())
    }

    /// Make `user` a member of the group (already one: nothing changes).
    pub async fn add_group_member(&self, actor: &Actor, group: &str, user: &UserName) -> Result<()> {
        self.change_membership(actor, group, user, true).await
    }

    /// Take `user` out of the group (not a member: nothing changes).
    pub async fn remove_group_member(&self, actor: &Actor, group: &str, user: &UserName) -> Result<()> {
        self.change_membership(actor, group, user, false).await
    }

    async fn change_membership(&self, actor: &Actor, group: &str, user: &UserName, add: bool) -> Result<()> {
        let group = group_name(group)?;
        let now = self.clock().now();
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let gid: i64 = tx
            .cquery_opt("SELECT id FROM groups WHERE name = $1 FOR UPDATE", &[&group])
            .await?
            .ok_or_else(|| no_group(&group))?
            .get(0);
        let uid: i64 = tx
            .cquery_opt("SELECT id FROM users WHERE name = $1", &[&user.as_str()])
            .await?
            .ok_or_else(|| Error::not_found(format!("user {user}")))?
            .get(0);
        let changed = match add {
            true => {
                tx.cexecute(
                    "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&gid, &uid],
                )
                .await?
            }
            false => {
                tx.cexecute("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2", &[&gid, &uid])
                    .await?
            }
        };
        if changed > 0 {
            let (action, detail) = match add {
                true => ("group.add", format!("{user} joins group {group}")),
                false => ("group.remove", format!("{user} leaves group {group}")),
            };
            audit(&tx, Some(crate::types::UserId(uid)), actor, action, None, Some(&detail), now).await?;
            // What is shared with the group reaches the member, or stops reaching them, at once.
            crate::notify::shares_changed(&tx).await?;
        }
        tx.commit().await?;
        self.inner.mounts.bump();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_account_rules() {
        for ok in ["family", "office-2", "a", "x.y_z"] {
            assert_eq!(group_name(ok).unwrap(), ok);
        }
        for bad in ["", "Family", "-x", "a b", "ü", &"a".repeat(65)] {
            let e = group_name(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(e.message().contains("group name"), "{bad:?}");
        }
    }
}
