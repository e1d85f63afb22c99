//! Dead properties: (namespace, name) → value, per file or folder, kept in PostgreSQL. Values
//! are opaque to `store` (the WebDAV front end stores the property's inner XML). They follow
//! the node through moves, are copied with it, and go with it to the trash.

use crate::db::Cached;
use std::collections::HashMap;

use crate::path::VPath;
use crate::txn::audit;
use crate::types::{Actor, FileId, User};
use crate::{Error, ErrorKind, Result, Store};

/// One dead property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    /// XML namespace URI ('' for none).
    pub namespace: String,
    /// Local name.
    pub name: String,
    /// Opaque value.
    pub value: String,
}

/// One change in a property update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropChange {
    /// Set (or replace) a property.
    Set(DeadProp),
    /// Remove a property (absent is fine).
    Remove {
        /// XML namespace URI.
        namespace: String,
        /// Local name.
        name: String,
    },
}

/// Largest value we keep for one property.
pub const MAX_PROP_VALUE: usize = 64 * 1024;
/// Most properties on one node.
pub const MAX_PROPS_PER_NODE: i64 = 256;

impl Store {
    /// The dead properties of several nodes (of `user`) at once.
    pub async fn dead_props(&self, user: &User, ids: &[FileId]) -> Result<HashMap<FileId, Vec<DeadProp>>> {
        let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT p.node_id, p.namespace, p.name, p.value FROM properties p JOIN nodes n ON n.id = p.node_id
                 WHERE n.user_id = $1 AND p.node_id = ANY($2) ORDER BY p.namespace, p.name",
                &[&user.id.0, &ids],
            )
            .await?;
        let mut out: HashMap<FileId, Vec<DeadProp>> = HashMap::new();
        for r in rows {
            out.entry(FileId(r.get(0))).or_default().push(DeadProp {
                namespace: r.get(1),
                name: r.get(2),
                value: r.get(3),
            });
        }
        Ok(out)
    }

    /// Apply property changes to the node at `path`, all or nothing.
    pub async fn patch_props(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        changes: &[PropChange],
    ) -> Result<()> {
        for c in changes {
            if let PropChange::Set(p) = c
                && (p.value.len() > MAX_PROP_VALUE
                    || p.name.is_empty()
                    || p.name.len() > 1024
                    || p.namespace.len() > 1024)
            {
                return Err(Error::new(ErrorKind::InvalidInput, "property too large"));
            }
        }
        let mut client = self.inner.pool.get().await?;
        let tx = client.transaction().await?;
        let node: i64 = tx
            .cquery_opt(
                "SELECT id FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL FOR UPDATE",
                &[&user.id.0, &path.as_str()],
            )
            .await?
            .ok_or_else(|| Error::not_found(path))?
            .get(0);
        for c in changes {
            match c {
                PropChange::Set(p) => {
                    tx.cexecute(
                        "INSERT INTO properties (node_id, namespace, name, value) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (node_id, namespace, name) DO UPDATE SET value = EXCLUDED.value",
                        &[&node, &p.namespace, &p.name, &p.value],
                    )
                    .await?;
                }
                PropChange::Remove { namespace, name } => {
                    tx.cexecute(
                        "DELETE FROM properties WHERE node_id = $1 AND namespace = $2 AND name = $3",
                        &[&node, namespace, name],
                    )
                    .await?;
                }
            }
        }
        let count: i64 =
            tx.cquery_one("SELECT count(*) FROM properties WHERE node_id = $1", &[&node]).await?.get(0);
        if count > MAX_PROPS_PER_NODE {
            return Err(Error::new(ErrorKind::InvalidInput, "too many properties on one resource"));
        }
        audit(&tx, Some(user.id), actor, "props.patch", Some(&path.to_string()), None, self.clock().now())
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
