//! The row-level steps of a mutation that also record what they change (in its
//! [`Change`]'s effects): inserting folders, files and copies, making sure a path's folders
//! exist, moving nodes to the trash.

use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{DiskOp, Done};
use crate::path::VPath;
use crate::rows::{NODE_COLS, insert_node, node_for_update, node_from_row, parent_dir, subtree};
use crate::staging::Content;
use crate::txn::{Change, JournalEntry, Tx, lock_folders_sql};
use crate::types::{ContentHash, FileId, Node, Timestamp, TrashId, User};
use crate::{Error, ErrorKind, Result};

/// Insert a folder row and queue its creation on disk.
pub(crate) async fn insert_dir(
    cx: &mut Change<'_>,
    parent: FileId,
    path: &VPath,
    mode: Option<u32>,
) -> Result<Node> {
    let (tx, user, now, fx) = (cx.tx, cx.user, cx.now, &mut cx.fx);
    let node = insert_node(tx, None, user.id, parent, path, true, 0, now, None, None, mode).await?;
    fx.ops.push(DiskOp::Mkdir { path: layout::user_path(&user.name, path) });
    fx.wrote("create", &node);
    Ok(node)
}

/// For a new entry at `path`: its parent folder's id, or `AlreadyExists` if something is there.
/// Both reads go in one round trip (pipelined on the connection).
pub(crate) async fn free_slot(tx: &Tx<'_>, user: crate::types::UserId, path: &VPath) -> Result<FileId> {
    let (existing, parent) = tokio::join!(node_for_update(tx, user, path), parent_dir(tx, user, path));
    if existing?.is_some() {
        return Err(Error::new(ErrorKind::AlreadyExists, format!("{path} already exists")));
    }
    parent
}

/// Insert the new file `path` holding `content` (with an id reserved for it and permission
/// bits, if given), counting its bytes.
pub(crate) async fn insert_file(
    cx: &mut Change<'_>,
    id: Option<FileId>,
    author: &str,
    parent: FileId,
    path: &VPath,
    content: &Content,
    mode: Option<u32>,
) -> Result<Node> {
    let (tx, user, fx) = (cx.tx, cx.user, &mut cx.fx);
    let (size, mtime, hash) = (content.size, content.mtime, Some(content.hash));
    let node =
        insert_node(tx, id, user.id, parent, path, false, size, mtime, hash, Some(author), mode).await?;
    fx.usage_delta += size as i64;
    fx.wrote("create", &node);
    Ok(node)
}

/// Insert an empty file, created on disk by the intent (no staging: there are no bytes).
pub(crate) async fn insert_empty_file(
    cx: &mut Change<'_>,
    id: Option<FileId>,
    parent: FileId,
    path: &VPath,
    mode: Option<u32>,
) -> Result<Node> {
    let (tx, user, now, fx) = (cx.tx, cx.user, cx.now, &mut cx.fx);
    let empty = ContentHash(*blake3::hash(b"").as_bytes());
    let node = insert_node(tx, id, user.id, parent, path, false, 0, now, Some(empty), None, mode).await?;
    fx.ops.push(DiskOp::CreateFile { path: layout::user_path(&user.name, path), mtime_ns: now.0 });
    fx.wrote("create", &node);
    Ok(node)
}

/// Make sure the folder `dir` and its ancestors exist, creating what is missing.
pub(crate) async fn ensure_dirs(cx: &mut Change<'_>, dir: &VPath) -> Result<FileId> {
    let (tx, user) = (cx.tx, cx.user);
    let mut chain = dir.ancestors();
    chain.reverse();
    chain.push(dir.clone());
    // The whole chain in one round trip, each existing folder locked against deletion and moves.
    let paths: Vec<&str> = chain.iter().map(VPath::as_str).collect();
    let sql = format!(
        "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = ANY($2) AND trash_id IS NULL FOR KEY SHARE"
    );
    let read = || async {
        let rows = tx.cquery(&sql, &[&user.id.0, &paths]).await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let n = node_from_row(r)?;
            found.insert(n.path.clone(), n);
        }
        Ok::<_, Error>(found)
    };
    let mut found = read().await?;
    let missing: Vec<&VPath> = chain.iter().filter(|p| !found.contains_key(*p)).collect();
    if !missing.is_empty() {
        // Another write may be creating them right now: take turns, then look again.
        tx.batch_execute(&lock_folders_sql(user.id, &missing)).await?;
        found = read().await?;
    }
    let mut parent: Option<FileId> = None;
    for p in chain {
        parent = Some(match found.remove(&p) {
            Some(n) if n.is_dir => n.id,
            Some(_) => return Err(Error::new(ErrorKind::Conflict, format!("{p} is not a folder"))),
            None => {
                let Some(parent) = parent else { return Err(Error::internal("user root missing")) };
                insert_dir(cx, parent, &p, None).await?.id
            }
        });
    }
    parent.ok_or_else(|| Error::internal("empty ancestor chain"))
}

/// Move a live node (and its subtree) to the trash: rows marked, content renamed.
pub(crate) async fn trash_node(cx: &mut Change<'_>, node: &Node) -> Result<TrashId> {
    let (tx, user, now) = (cx.tx, cx.user, cx.now);
    // One statement: the subtree's size, the trash item, the nodes moved into it, the locks
    // dropped (all under one snapshot: the sum and the update see the same subtree).
    let tid = TrashId(
        tx.cquery_one(
            concat!(
                "WITH s AS (
                     SELECT coalesce(sum(size), 0)::BIGINT AS size FROM nodes
                     WHERE user_id = $1 AND trash_id IS NULL AND NOT is_dir AND ",
                subtree!(),
                "),
                 t AS (
                     INSERT INTO trash (user_id, node_id, orig_path, is_dir, size, deleted_at)
                     SELECT $1, $3, $2, $4, s.size, $5 FROM s RETURNING id),
                 n AS (
                     UPDATE nodes SET trash_id = (SELECT id FROM t) WHERE user_id = $1 AND trash_id IS NULL AND ",
                subtree!(),
                " RETURNING 1),
                 l AS (DELETE FROM locks WHERE user_id = $1 AND ",
                subtree!(),
                " RETURNING 1)
                 SELECT (SELECT id FROM t), (SELECT count(*) FROM n), (SELECT count(*) FROM l)"
            ),
            &[&user.id.0, &node.path.as_str(), &node.id.0, &node.is_dir, &now.0],
        )
        .await?
        .get(0),
    );
    trashed(cx, node, tid);
    Ok(tid)
}

/// Queue what moving `node` into trash item `tid` changes besides its rows: its ancestors'
/// etags, the journal, and the move on disk.
pub(crate) fn trashed(cx: &mut Change<'_>, node: &Node, tid: TrashId) {
    let (user, fx) = (cx.user, &mut cx.fx);
    fx.touch(&node.path);
    fx.journal.push(JournalEntry::for_node("delete", node));
    fx.ops.push(DiskOp::rename(
        layout::user_path(&user.name, &node.path),
        format!("{}/{}", layout::trash_dir(&user.name), tid),
        Done::ToExists,
    ));
}

/// [`trash_node`] for many files at once (no folders): one statement makes every trash item,
/// moves every row into its item and drops the files' WebDAV locks. The trash item ids come
/// back in the order of `files`; the caller queues the rest ([`trashed`]).
pub(crate) async fn trash_files(
    tx: &Tx<'_>,
    user: &User,
    files: &[(usize, Node)],
    now: Timestamp,
) -> Result<Vec<TrashId>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = files.iter().map(|(_, n)| n.id.0).collect();
    let paths: Vec<&str> = files.iter().map(|(_, n)| n.path.as_str()).collect();
    let sizes: Vec<i64> = files.iter().map(|(_, n)| n.size as i64).collect();
    let rows = tx
        .cquery(
            "WITH d AS (
                 SELECT * FROM unnest($2::bigint[], $3::text[], $4::bigint[]) WITH ORDINALITY AS d(id, path, size, ord)),
             t AS (
                 INSERT INTO trash (user_id, node_id, orig_path, is_dir, size, deleted_at)
                 SELECT $1, d.id, d.path, false, d.size, $5 FROM d ORDER BY d.ord RETURNING id, node_id),
             n AS (UPDATE nodes SET trash_id = t.id FROM t WHERE nodes.id = t.node_id RETURNING 1),
             l AS (DELETE FROM locks WHERE user_id = $1 AND path = ANY($3) RETURNING 1)
             SELECT t.node_id, t.id, (SELECT count(*) FROM n), (SELECT count(*) FROM l) FROM t",
            &[&user.id.0, &ids, &paths, &sizes, &now.0],
        )
        .await?;
    let by_node: std::collections::HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ids.iter()
        .map(|id| {
            by_node
                .get(id)
                .map(|t| TrashId(*t))
                .ok_or_else(|| Error::internal("a file's trash item is missing"))
        })
        .collect()
}

/// Insert rows for a copied subtree (`nodes` is the source, parents first) under `to`.
pub(crate) async fn insert_copies(
    cx: &mut Change<'_>,
    from: &VPath,
    to: &VPath,
    parent: FileId,
    nodes: &[Node],
) -> Result<Node> {
    let (tx, user, fx) = (cx.tx, cx.user, &mut cx.fx);
    let mut ids: std::collections::HashMap<FileId, FileId> = std::collections::HashMap::new();
    let mut by_path: std::collections::HashMap<&VPath, FileId> = std::collections::HashMap::new();
    let mut root_copy = None;
    for n in nodes {
        let new_path = n.path.rebase(from, to).expect("subtree");
        let new_parent = match n.path.parent() {
            Some(pp) if n.path != *from => {
                *by_path.get(&pp).and_then(|old| ids.get(old)).expect("parent first")
            }
            _ => parent,
        };
        let copy = insert_node(
            tx,
            None,
            user.id,
            new_parent,
            &new_path,
            n.is_dir,
            n.size,
            n.mtime,
            n.content_hash,
            None,
            n.mode,
        )
        .await?;
        tx.cexecute(
            "INSERT INTO properties (node_id, namespace, name, value) SELECT $2, namespace, name, value
             FROM properties WHERE node_id = $1",
            &[&n.id.0, &copy.id.0],
        )
        .await?;
        ids.insert(n.id, copy.id);
        by_path.insert(&n.path, n.id);
        if !n.is_dir {
            fx.usage_delta += n.size as i64;
        }
        fx.journal.push(JournalEntry::for_node("create", &copy));
        root_copy.get_or_insert(copy);
    }
    root_copy.ok_or_else(|| Error::internal("empty copy"))
}
