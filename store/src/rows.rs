//! Node rows: the columns a [`Node`] is read from, and the SQL every module shares to insert,
//! lock and look up nodes inside a transaction.

use crate::db::Cached;
use crate::disk::layout;
use crate::intent::DiskOp;
use crate::path::{UserName, VPath};
use crate::txn::Tx;
use crate::types::{ContentHash, ETag, FileId, Node, Timestamp, UserId, VersionId};
use crate::{Error, ErrorKind, Result};
use tokio_postgres::Row;

/// SQL: `path` is `$2` or below it (`$2` not the root), as an index range on `(user_id, path)`
/// — from `$2` up to `$2 || '0'`, '0' being the byte after '/' — then the exact test. Written
/// as `path = $2 OR` the descendants' range, the `OR` hides the range from the planner, which
/// then reads every node of the user.
macro_rules! subtree {
    () => {
        "path >= $2 AND path < $2 || '0' AND (path = $2 OR path > $2 || '/')"
    };
}

pub(crate) use subtree;

/// Columns for [`node_from_row`].
pub(crate) const NODE_COLS: &str = "id, path, is_dir, size, mtime_ns, content_hash, etag, mode";

/// `cols` (a comma-separated column list such as [`NODE_COLS`]) with each column qualified by
/// `table`, for queries that join several tables.
pub(crate) fn prefixed(table: &str, cols: &str) -> String {
    cols.split(", ").map(|c| format!("{table}.{c}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn node_from_row(row: &Row) -> Result<Node> {
    node_from_row_at(row, 0)
}

/// A node from `row`'s columns `at..` (laid out as [`NODE_COLS`]).
pub(crate) fn node_from_row_at(row: &Row, at: usize) -> Result<Node> {
    Ok(Node {
        id: FileId(row.get(at)),
        path: VPath::from_db(row.get(at + 1))?,
        is_dir: row.get(at + 2),
        size: row.get::<_, i64>(at + 3) as u64,
        mtime: Timestamp(row.get(at + 4)),
        content_hash: row.get::<_, Option<&[u8]>>(at + 5).map(ContentHash::from_db).transpose()?,
        etag: ETag(row.get(at + 6)),
        mode: row.get::<_, Option<i32>>(at + 7).map(|m| m as u32),
        access: crate::types::Access::Own,
    })
}

/// Insert a live node with a fresh etag (and permission bits, if given).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_node(
    tx: &Tx<'_>,
    id: Option<FileId>,
    user: UserId,
    parent: FileId,
    path: &VPath,
    is_dir: bool,
    size: u64,
    mtime: Timestamp,
    hash: Option<ContentHash>,
    author: Option<&str>,
    mode: Option<u32>,
) -> Result<Node> {
    let row = tx
        .cquery_one(
            &format!(
                "INSERT INTO nodes (id, user_id, parent_id, name, path, is_dir, size, mtime_ns, content_hash, etag, modified_by, mode)
                 VALUES (COALESCE($12, nextval('nodes_id_seq')), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 RETURNING {NODE_COLS}"
            ),
            &[
                &user.0,
                &parent.0,
                &path.name(),
                &path.as_str(),
                &is_dir,
                &(size as i64),
                &mtime.0,
                &hash.as_ref().map(|h| &h.0[..]),
                &new_etag().0,
                &author,
                &mode.map(|m| (m & 0o7777) as i32),
                &id.map(|i| i.0),
            ],
        )
        .await?;
    node_from_row(&row)
}

/// A fresh entity tag.
pub(crate) fn new_etag() -> ETag {
    ETag(crate::disk::random_hex(8))
}

/// The live node at `path`, locked for update.
pub(crate) async fn node_for_update(tx: &Tx<'_>, user: UserId, path: &VPath) -> Result<Option<Node>> {
    tx.cquery_opt(
        &format!(
            "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL FOR UPDATE"
        ),
        &[&user.0, &path.as_str()],
    )
    .await?
    .map(|r| node_from_row(&r))
    .transpose()
}

/// The live node at `path`, locked against deletion and moves but not against concurrent
/// writes inside it (`FOR KEY SHARE`): for parents of what a transaction changes.
pub(crate) async fn node_for_share(tx: &Tx<'_>, user: UserId, path: &VPath) -> Result<Option<Node>> {
    tx.cquery_opt(
        &format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL FOR KEY SHARE"),
        &[&user.0, &path.as_str()],
    )
    .await?
    .map(|r| node_from_row(&r))
    .transpose()
}

/// The live directory that is `path`'s parent, or a Conflict error.
pub(crate) async fn parent_dir(tx: &Tx<'_>, user: UserId, path: &VPath) -> Result<FileId> {
    let parent = path.parent().ok_or_else(|| Error::new(ErrorKind::InvalidPath, "the root has no parent"))?;
    match node_for_share(tx, user, &parent).await? {
        Some(n) if n.is_dir => Ok(n.id),
        Some(_) => Err(Error::new(ErrorKind::Conflict, format!("{parent} is not a folder"))),
        None => Err(Error::new(ErrorKind::Conflict, format!("folder {parent} does not exist"))),
    }
}

/// Delete a trash item's rows (its nodes and their versions go with it) and queue removal of
/// its content and version blobs. Returns the bytes it held.
pub(crate) async fn purge_trash_item(
    tx: &Tx<'_>,
    user: &UserName,
    id: crate::TrashId,
    ops: &mut Vec<DiskOp>,
) -> Result<i64> {
    let versions = tx
        .cquery(
            "SELECT v.id, v.size FROM versions v JOIN nodes n ON n.id = v.node_id WHERE n.trash_id = $1",
            &[&id.0],
        )
        .await?;
    let Some(row) = tx.cquery_opt("DELETE FROM trash WHERE id = $1 RETURNING size", &[&id.0]).await? else {
        return Ok(0);
    };
    let mut size: i64 = row.get(0);
    for v in versions {
        size += v.get::<_, i64>(1);
        ops.push(DiskOp::Remove { path: layout::version_blob(user, VersionId(v.get(0))) });
    }
    ops.push(DiskOp::Remove { path: format!("{}/{}", layout::trash_dir(user), id) });
    Ok(size)
}
