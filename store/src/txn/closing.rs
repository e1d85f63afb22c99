//! Closing a transaction: its [`Effects`] become usage, journal, audit and the intent, in one
//! statement per transaction (`close`) or per batch (`close_all`); quota pruning.

use super::*;
use crate::db::Cached;
use crate::disk::layout;
use crate::intent::{self, DiskOp, Preflight};
use crate::path::VPath;
use crate::rows::{new_etag, purge_trash_item};
use crate::types::{Actor, ContentHash, ETag, FileId, Node, Timestamp, User, VersionId};
use crate::{Error, ErrorKind, Result, Store, blocking};

/// A change-journal record to append.
pub(crate) struct JournalEntry {
    pub(crate) kind: &'static str,
    pub(crate) node_id: FileId,
    pub(crate) is_dir: bool,
    pub(crate) path: VPath,
    pub(crate) old_path: Option<VPath>,
    pub(crate) size: Option<u64>,
    pub(crate) etag: Option<ETag>,
    pub(crate) hash: Option<ContentHash>,
}

impl JournalEntry {
    pub(crate) fn for_node(kind: &'static str, node: &Node) -> JournalEntry {
        JournalEntry {
            kind,
            node_id: node.id,
            is_dir: node.is_dir,
            path: node.path.clone(),
            old_path: None,
            size: (!node.is_dir).then_some(node.size),
            etag: Some(node.etag.clone()),
            hash: node.content_hash,
        }
    }
}

/// Everything a mutation adds on top of its own row changes.
pub(crate) struct Effects {
    /// Change of the user's footprint (files + versions + trash), in bytes.
    pub(crate) usage_delta: i64,
    pub(crate) journal: Vec<JournalEntry>,
    /// (action, path, detail)
    pub(crate) audit: Vec<(&'static str, Option<String>, Option<String>)>,
    pub(crate) ops: Vec<DiskOp>,
    /// May prune old versions and trash to fit the quota.
    pub(crate) may_prune: bool,
    /// Refuse the change if it leaves the user over quota (a scan does not: the disk holds
    /// the files whatever the quota says, and the database follows the disk).
    pub(crate) enforce_quota: bool,
    /// A version that may go too as a last resort (the one this write just created).
    pub(crate) last_resort: Option<(VersionId, u64)>,
    /// Ids of versions never to prune in this transaction (e.g. the one being restored).
    pub(crate) keep_versions: Vec<VersionId>,
    /// Paths whose ancestors get new etags, at the very end of the transaction.
    touched: Vec<VPath>,
    /// Nodes as the transaction leaves them, for the node cache (unless an ancestor of
    /// something touched: those get new etags at the end).
    fresh: Vec<Node>,
    /// Staged small files whose bytes go into the intent row (a logged write).
    pub(crate) logged: Vec<(String, std::sync::Arc<[u8]>, Timestamp)>,
}

impl Effects {
    pub(crate) fn new() -> Effects {
        Effects {
            usage_delta: 0,
            journal: Vec::new(),
            audit: Vec::new(),
            ops: Vec::new(),
            may_prune: true,
            enforce_quota: true,
            last_resort: None,
            keep_versions: Vec::new(),
            touched: Vec::new(),
            fresh: Vec::new(),
            logged: Vec::new(),
        }
    }

    /// Queue the rename of `content`'s staged file to `to` (the backing path of its file), and
    /// its bytes into the intent row if it is a logged small write.
    pub(crate) fn put_in_place(&mut self, content: &crate::staging::Content, to: String) {
        self.ops.push(DiskOp::rename(&content.staging, to, intent::Done::FromMissing));
        if let Some(bytes) = &content.logged {
            self.logged.push((content.staging.clone(), bytes.clone(), content.mtime));
        }
    }

    /// Add `other`'s effects to these (a batch of writes merges them per user and actor). Only
    /// one write's replaced content can be the last resort of a quota check, so a merge has
    /// none: a batch that does not fit is retried write by write.
    pub(crate) fn absorb(&mut self, other: Effects) {
        self.usage_delta += other.usage_delta;
        self.journal.extend(other.journal);
        self.audit.extend(other.audit);
        self.ops.extend(other.ops);
        self.may_prune &= other.may_prune;
        self.enforce_quota |= other.enforce_quota;
        self.last_resort = None;
        self.keep_versions.extend(other.keep_versions);
        self.touched.extend(other.touched);
        self.fresh.extend(other.fresh);
        self.logged.extend(other.logged);
    }

    /// Give every ancestor of `path` a new etag when the transaction closes.
    pub(crate) fn touch(&mut self, path: &VPath) {
        self.touched.push(path.clone());
    }

    /// `node` was created or rewritten as it is now: journal it as `kind`, touch its
    /// ancestors, and hand it to the node cache at commit.
    pub(crate) fn wrote(&mut self, kind: &'static str, node: &Node) {
        self.journal.push(JournalEntry::for_node(kind, node));
        self.touch(&node.path);
        self.fresh.push(node.clone());
    }
}

/// One mutation inside its transaction: the transaction, whose tree it changes, its time, and
/// what it records ([`Effects`], closed with the transaction by [`close`]). The steps of a
/// mutation (`ops`, the write and draft rows) take it instead of the five values apart.
pub(crate) struct Change<'a> {
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) user: &'a User,
    pub(crate) now: Timestamp,
    pub(crate) fx: Effects,
}

impl<'a> Change<'a> {
    pub(crate) fn new(tx: &'a Tx<'a>, user: &'a User, now: Timestamp) -> Change<'a> {
        Change { tx, user, now, fx: Effects::new() }
    }

    /// The mutation's answer with its effects, as a transaction body yields them.
    pub(crate) fn done<T>(self, out: T) -> (T, Effects) {
        (out, self.fx)
    }
}

/// Close a mutation's transaction: usage (pruning to fit the quota), journal, audit and intent.
/// Returns the intent to carry out after commit.
pub(crate) async fn close(
    store: &Store,
    tx: &Tx<'_>,
    user: &User,
    actor: &Actor,
    fx: Effects,
    now: Timestamp,
) -> Result<Option<(i64, Vec<DiskOp>)>> {
    let mut intents = close_all(store, tx, vec![(user, actor, fx)], now).await?;
    Ok(intents.pop().flatten())
}

/// [`close`] for several users' changes in one transaction (a batch of writes), each with its
/// own actor and effects, in one statement: the cost of a statement of six parts (binding,
/// starting its executor) is paid once, not once per user, and the disk is preflighted in one
/// trip to the blocking pool. The users must differ (the statement updates each user's row
/// once). Returns each one's intent, in order.
pub(crate) async fn close_all(
    store: &Store,
    tx: &Tx<'_>,
    groups: Vec<(&User, &Actor, Effects)>,
    now: Timestamp,
) -> Result<Vec<Option<(i64, Vec<DiskOp>)>>> {
    debug_assert!(
        groups.iter().enumerate().all(|(i, (u, _, _))| groups[..i].iter().all(|(v, _, _)| v.id != u.id)),
        "close_all: one group per user"
    );
    // The ancestors of what each group touched get a new etag (one per group).
    let ancestors: Vec<Vec<String>> = groups
        .iter()
        .map(|(_, _, fx)| {
            let mut a: Vec<&str> = fx.touched.iter().flat_map(path_ancestors).collect();
            a.sort_unstable();
            a.dedup();
            a.into_iter().map(str::to_owned).collect()
        })
        .collect();
    let etags: Vec<ETag> = groups.iter().map(|_| new_etag()).collect();
    let changed: Vec<Changed> = groups
        .iter()
        .zip(&ancestors)
        .map(|((_, _, fx), a)| changed_by(fx, &a.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    // Commits of unknown outcome are settled before this change's disk work (see `unsettled`).
    store.settle_before(tx.db()).await?;
    let rows = {
        // The disk is checked while the statement below runs (both must succeed before the
        // commit): a failed check rolls the transaction back.
        // Every group's operations, copied for each trip to the blocking pool.
        let all_ops =
            || -> Vec<DiskOp> { groups.iter().flat_map(|(_, _, fx)| fx.ops.iter().cloned()).collect() };
        let preflight = async {
            let ops = all_ops();
            if ops.is_empty() {
                return Ok(());
            }
            let s = store.clone();
            match blocking(move || intent::preflight(&s.inner.disk, &ops)).await? {
                Preflight::Ready => Ok(()),
                Preflight::FolderMissing => {
                    // The folder may be one a concurrent change has committed and not yet
                    // created on disk (this transaction read it committed). Every change that
                    // creates a folder beside others' writes (mkdir, a write creating its
                    // parents) holds that folder's path lock until its disk work is done: wait
                    // for those, then look again. A folder still missing was removed behind
                    // Cairn's back.
                    for (user, _, fx) in &groups {
                        let keys = folder_locks(user, &fx.ops);
                        if !keys.is_empty() {
                            tx.batch_execute(&keys).await?;
                        }
                    }
                    let (s, ops) = (store.clone(), all_ops());
                    blocking(move || intent::preflight(&s.inner.disk, &ops)).await?.into_result()
                }
            }
        };
        let mut g = Columns::default();
        for (k, ((user, actor, fx), anc)) in groups.iter().zip(&ancestors).enumerate() {
            let grp = k as i64 + 1;
            g.user.push(user.id.0);
            g.delta.push(fx.usage_delta);
            g.n_journal.push(fx.journal.len() as i64);
            g.actor.push(actor.name.as_str());
            g.origin.push(actor.origin.as_str());
            g.ops.push((!fx.ops.is_empty()).then(|| intent::encode(&fx.ops)));
            g.etag.push(etags[k].0.as_str());
            for (ord, j) in fx.journal.iter().enumerate() {
                g.j_grp.push(grp);
                g.j_ord.push(ord as i64 + 1);
                g.j_kind.push(j.kind);
                g.j_node.push(j.node_id.0);
                g.j_dir.push(j.is_dir);
                g.j_path.push(j.path.as_str());
                g.j_old.push(j.old_path.as_ref().map(|p| p.as_str()));
                g.j_size.push(j.size.map(|s| s as i64));
                g.j_etag.push(j.etag.as_ref().map(|e| e.0.as_str()));
                g.j_hash.push(j.hash.as_ref().map(|h| &h.0[..]));
            }
            for (action, path, detail) in &fx.audit {
                g.a_grp.push(grp);
                g.a_action.push(action);
                g.a_path.push(path.as_deref());
                g.a_detail.push(audit_detail(actor, detail.as_deref()));
            }
            for a in anc {
                g.e_grp.push(grp);
                g.e_path.push(a.as_str());
            }
            for (staging, data, mtime) in &fx.logged {
                g.l_grp.push(grp);
                g.l_staging.push(staging.as_str());
                g.l_data.push(&data[..]);
                g.l_mtime.push(mtime.0);
            }
        }
        let token = store.inner.notice_token.as_str();
        let params: &[&(dyn tokio_postgres::types::ToSql + Sync)] = &[
            &g.user,
            &g.delta,
            &g.n_journal,
            &g.actor,
            &g.origin,
            &g.ops,
            &g.etag,
            &now.0,
            &g.j_ord,
            &g.j_kind,
            &g.j_node,
            &g.j_dir,
            &g.j_path,
            &g.j_old,
            &g.j_size,
            &g.j_etag,
            &g.j_hash,
            &g.a_action,
            &g.a_path,
            &g.a_detail,
            &g.e_path,
            &g.l_staging,
            &g.l_data,
            &g.l_mtime,
            &token,
            // Only CLOSE_ALL_SQL tells the groups' rows apart.
            &g.j_grp,
            &g.a_grp,
            &g.e_grp,
            &g.l_grp,
        ];
        let statement = match groups.len() {
            1 => tx.cquery(CLOSE_ONE_SQL, &params[..25]),
            _ => tx.cquery(CLOSE_ALL_SQL, params),
        };
        let (checked, rows) = tokio::join!(preflight, statement);
        checked?;
        rows?
    };
    if rows.len() != groups.len() {
        return Err(Error::new(ErrorKind::NotFound, "the account is gone"));
    }
    let mut out = Vec::with_capacity(groups.len());
    for ((((user, actor, mut fx), row), (mut changed, anc)), etag) in
        groups.into_iter().zip(rows).zip(changed.into_iter().zip(ancestors)).zip(etags)
    {
        let n_journal = fx.journal.len() as i64;
        let mut used: i64 = row.get(1);
        let quota: Option<i64> = row.get(2);
        let seq: i64 = row.get(3);
        let mut intent_id: Option<i64> = row.get(4);
        changed.order =
            Some(crate::cache::Order { before: seq - n_journal, after: seq, ancestors: anc, etag });
        tx.record(user.id, changed);
        if let Some(quota) = quota
            && used > quota
            && fx.usage_delta > 0
            && fx.enforce_quota
        {
            // The slow path: make room, or refuse (the transaction then rolls back entirely).
            let mut extra = Effects::new();
            extra.keep_versions = fx.keep_versions.clone();
            extra.last_resort = fx.last_resort.take();
            if fx.may_prune {
                used -= prune(tx, user, used - quota, &mut extra).await?;
            }
            if used > quota
                && let Some((vid, size)) = extra.last_resort.take()
            {
                // Keeping the replaced content as a version does not fit: drop it instead.
                tx.cexecute("DELETE FROM versions WHERE id = $1", &[&vid.0]).await?;
                extra.ops.push(DiskOp::Remove { path: layout::version_blob(&user.name, vid) });
                used -= size as i64;
                extra.audit.push((
                    "version.prune",
                    None,
                    Some(format!("version {vid} dropped to fit quota")),
                ));
            }
            if used > quota {
                let over = (used - quota) as u64;
                return Err(Error::new(
                    ErrorKind::QuotaExceeded,
                    format!(
                        "quota exceeded: {} over the {} quota",
                        crate::format_size(over),
                        crate::format_size(quota as u64)
                    ),
                ));
            }
            tx.cexecute("UPDATE users SET used_bytes = $2 WHERE id = $1", &[&user.id.0, &used]).await?;
            for (action, path, detail) in &extra.audit {
                audit(tx.db(), Some(user.id), actor, action, path.as_deref(), detail.as_deref(), now).await?;
            }
            fx.ops.extend(extra.ops);
            let encoded = intent::encode(&fx.ops);
            intent_id = Some(match intent_id {
                Some(id) => {
                    tx.cexecute("UPDATE intents SET ops = $2 WHERE id = $1", &[&id, &encoded]).await?;
                    id
                }
                None => tx
                    .cquery_one(
                        "INSERT INTO intents (user_id, ops) VALUES ($1, $2) RETURNING id",
                        &[&user.id.0, &encoded],
                    )
                    .await?
                    .get(0),
            });
        }
        if let Some(id) = intent_id
            && !fx.logged.is_empty()
        {
            tx.logged(id);
        }
        out.push(intent_id.map(|id| (id, fx.ops)));
    }
    Ok(out)
}

/// The parameters of [`CLOSE_ALL_SQL`] (and, but for the group columns, of [`CLOSE_ONE_SQL`]):
/// one entry per group (a user's changes) in the first columns; the rest are rows of all
/// groups, each naming its group (1-based).
#[derive(Default)]
struct Columns<'a> {
    user: Vec<i64>,
    delta: Vec<i64>,
    n_journal: Vec<i64>,
    actor: Vec<&'a str>,
    origin: Vec<&'a str>,
    ops: Vec<Option<String>>,
    etag: Vec<&'a str>,
    j_grp: Vec<i64>,
    j_ord: Vec<i64>,
    j_kind: Vec<&'a str>,
    j_node: Vec<i64>,
    j_dir: Vec<bool>,
    j_path: Vec<&'a str>,
    j_old: Vec<Option<&'a str>>,
    j_size: Vec<Option<i64>>,
    j_etag: Vec<Option<&'a str>>,
    j_hash: Vec<Option<&'a [u8]>>,
    a_grp: Vec<i64>,
    a_action: Vec<&'a str>,
    a_path: Vec<Option<&'a str>>,
    a_detail: Vec<Option<String>>,
    e_grp: Vec<i64>,
    e_path: Vec<&'a str>,
    l_grp: Vec<i64>,
    l_staging: Vec<&'a str>,
    l_data: Vec<&'a [u8]>,
    l_mtime: Vec<i64>,
}

/// One statement for everything that needs the users' row locks (usage, journal sequence)
/// and the ancestors' row locks: the locks are then held for this statement and the commit
/// only, not for a round trip per row. Answers one row per group, in order. Its parameters are
/// arrays: the first seven have an entry per group (a user's changes), the others are rows of
/// all groups, `$26`-`$29` naming each row's group (1-based).
const CLOSE_ALL_SQL: &str = "WITH g AS (
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
              WITH ORDINALITY AS g(user_id, delta, n, actor, origin, ops, etag, idx)),
     u AS (
         UPDATE users SET used_bytes = used_bytes + g.delta, journal_seq = journal_seq + g.n
         FROM g WHERE users.id = g.user_id
         RETURNING users.id, used_bytes, quota_bytes, journal_seq),
     j AS (
         INSERT INTO journal (user_id, seq, at, kind, node_id, is_dir, path, old_path, size, etag, content_hash, origin)
         SELECT g.user_id, u.journal_seq - g.n + t.ord, $8, t.kind, t.node, t.dir, t.path, t.old, t.size, t.etag, t.hash, g.origin
         FROM unnest($26::bigint[], $9::bigint[], $10::text[], $11::bigint[], $12::bool[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bytea[])
              AS t(grp, ord, kind, node, dir, path, old, size, etag, hash)
         JOIN g ON g.idx = t.grp JOIN u ON u.id = g.user_id),
     a AS (
         INSERT INTO audit_log (at, user_id, actor, origin, action, path, detail)
         SELECT $8, g.user_id, g.actor, g.origin, t.action, t.path, t.detail
         FROM unnest($27::bigint[], $18::text[], $19::text[], $20::text[]) AS t(grp, action, path, detail)
         JOIN g ON g.idx = t.grp),
     -- Each ancestor by its full key, then by id: written as `path = ANY(...)`, or as a join
     -- with `nodes`, a planner that thinks the users have few nodes (statistics from before a
     -- big import) scans all of them for every write. Each group is another user, so a node's
     -- user names its group.
     e AS (
         UPDATE nodes SET etag = (SELECT g.etag FROM g WHERE g.user_id = nodes.user_id)
         WHERE id = ANY(ARRAY(
             SELECT (SELECT id FROM nodes WHERE user_id = g.user_id AND path = t.p AND trash_id IS NULL)
             FROM unnest($28::bigint[], $21::text[]) AS t(grp, p) JOIN g ON g.idx = t.grp))),
     l AS (
         SELECT l.grp, array_agg(l.staging ORDER BY l.ord) AS staging, array_agg(l.data ORDER BY l.ord) AS data,
                array_agg(l.mtime ORDER BY l.ord) AS mtime
         FROM unnest($29::bigint[], $22::text[], $23::bytea[], $24::bigint[])
              WITH ORDINALITY AS l(grp, staging, data, mtime, ord)
         GROUP BY l.grp),
     i AS (
         INSERT INTO intents (user_id, ops, logged_staging, logged_data, logged_mtime)
         SELECT g.user_id, g.ops, l.staging, l.data, l.mtime
         FROM g LEFT JOIN l ON l.grp = g.idx WHERE g.ops IS NOT NULL
         RETURNING id, user_id)
     -- Commit asynchronously: durability comes from the barrier in `Locked::commit`, after the
     -- row locks are released.
     SELECT g.idx, u.used_bytes, u.quota_bytes, u.journal_seq, i.id,
            set_config('synchronous_commit', 'off', true),
            -- Delivered at commit: other processes drop their cached nodes of these users (this
            -- one knows what changed; the token tells it its own notices).
            pg_notify('cairn_changes', g.user_id::text || ' ' || $25 || ' ' || g.origin)
     FROM g JOIN u ON u.id = g.user_id LEFT JOIN i ON i.user_id = g.user_id
     ORDER BY g.idx";

/// [`CLOSE_ALL_SQL`] for one group (a lone change, or a batch of one user's), with the same
/// parameters but the last four: the same rows written, by a plan without the joins and the
/// grouping that tell groups apart. Starting a statement's executor, node by node, is a good
/// part of its cost (15% of the database's CPU in a profile of small writes one at a time); with
/// `CLOSE_ALL_SQL` for one group, one client writing small files in a row lost 8-25% of its
/// rate, with this statement nothing measurable.
/// A unit test checks that both write the same tables and columns.
const CLOSE_ONE_SQL: &str = "WITH u AS (
         UPDATE users SET used_bytes = used_bytes + ($2::bigint[])[1], journal_seq = journal_seq + ($3::bigint[])[1]
         WHERE id = ($1::bigint[])[1] RETURNING used_bytes, quota_bytes, journal_seq),
     j AS (
         INSERT INTO journal (user_id, seq, at, kind, node_id, is_dir, path, old_path, size, etag, content_hash, origin)
         SELECT ($1::bigint[])[1], (SELECT journal_seq FROM u) - ($3::bigint[])[1] + t.ord, $8, t.kind, t.node, t.dir, t.path, t.old, t.size, t.etag, t.hash, ($5::text[])[1]
         FROM unnest($9::bigint[], $10::text[], $11::bigint[], $12::bool[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bytea[])
              AS t(ord, kind, node, dir, path, old, size, etag, hash)),
     a AS (
         INSERT INTO audit_log (at, user_id, actor, origin, action, path, detail)
         SELECT $8, ($1::bigint[])[1], ($4::text[])[1], ($5::text[])[1], t.action, t.path, t.detail
         FROM unnest($18::text[], $19::text[], $20::text[]) AS t(action, path, detail)),
     e AS (
         UPDATE nodes SET etag = ($7::text[])[1] WHERE id = ANY(ARRAY(
             SELECT (SELECT id FROM nodes WHERE user_id = ($1::bigint[])[1] AND path = t.p AND trash_id IS NULL)
             FROM unnest($21::text[]) AS t(p)))),
     i AS (
         INSERT INTO intents (user_id, ops, logged_staging, logged_data, logged_mtime)
         SELECT ($1::bigint[])[1], ($6::text[])[1], nullif($22::text[], '{}'), nullif($23::bytea[], '{}'), nullif($24::bigint[], '{}')
         WHERE ($6::text[])[1] IS NOT NULL
         RETURNING id)
     SELECT 1::bigint, used_bytes, quota_bytes, journal_seq, (SELECT id FROM i),
            set_config('synchronous_commit', 'off', true),
            pg_notify('cairn_changes', ($1::bigint[])[1]::text || ' ' || $25 || ' ' || ($5::text[])[1])
     FROM u";

/// The cache's view of what `fx` changes: every journaled path (old and new) and every touched
/// path; nodes left fresh unless their etag changes at the end as an ancestor.
fn changed_by(fx: &Effects, ancestors: &[&str]) -> Changed {
    let mut paths: Vec<String> = fx
        .journal
        .iter()
        .flat_map(|j| std::iter::once(&j.path).chain(j.old_path.as_ref()))
        .chain(fx.touched.iter())
        .map(|p| p.as_str().to_owned())
        .collect();
    paths.sort_unstable();
    paths.dedup();
    let fresh: Vec<Node> =
        fx.fresh.iter().filter(|n| !ancestors.contains(&n.path.as_str())).cloned().collect();
    // Created here and left empty: nothing else this change journaled lies inside.
    let new_dirs = fx
        .journal
        .iter()
        .filter(|j| j.kind == "create" && j.is_dir && fresh.iter().any(|n| n.path == j.path))
        .filter(|j| !fx.journal.iter().any(|k| k.path.starts_with(&j.path) && k.path != j.path))
        .map(|j| j.path.as_str().to_owned())
        .collect();
    Changed { paths: (!paths.is_empty()).then_some(paths), fresh, order: None, new_dirs }
}

/// Free at least `need` bytes by deleting the oldest versions and trash items, oldest first.
/// Returns the bytes freed (possibly less than `need` when nothing is left to prune).
async fn prune(tx: &Tx<'_>, user: &User, need: i64, fx: &mut Effects) -> Result<i64> {
    let keep: Vec<i64> =
        fx.keep_versions.iter().chain(fx.last_resort.as_ref().map(|(v, _)| v)).map(|v| v.0).collect();
    let mut freed = 0i64;
    while freed < need {
        let rows = tx
            .cquery(
                "SELECT 'v' AS kind, id, created_at AS at FROM versions
                   WHERE user_id = $1 AND NOT (id = ANY($2))
                     AND node_id NOT IN (SELECT id FROM nodes WHERE user_id = $1 AND trash_id IS NOT NULL)
                 UNION ALL
                 SELECT 't', id, deleted_at FROM trash WHERE user_id = $1
                 ORDER BY at, id LIMIT 64",
                &[&user.id.0, &keep],
            )
            .await?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            if freed >= need {
                break;
            }
            let kind: &str = row.get(0);
            let id: i64 = row.get(1);
            freed += if kind == "v" {
                let Some(r) =
                    tx.cquery_opt("DELETE FROM versions WHERE id = $1 RETURNING size", &[&id]).await?
                else {
                    continue;
                };
                fx.ops.push(DiskOp::Remove { path: layout::version_blob(&user.name, VersionId(id)) });
                fx.audit.push(("version.prune", None, Some(format!("version {id} pruned for quota"))));
                r.get::<_, i64>(0)
            } else {
                let size = purge_trash_item(tx, &user.name, crate::TrashId(id), &mut fx.ops).await?;
                fx.audit.push(("trash.prune", None, Some(format!("trash item {id} pruned for quota"))));
                size
            };
        }
    }
    Ok(freed)
}

/// The ancestors of `path` as stored paths, the root (`""`) included: sync clients find
/// changes by walking down from the root while etags differ.
fn path_ancestors(path: &VPath) -> Vec<&str> {
    let s = path.as_str();
    let mut out = vec![""];
    for (i, b) in s.bytes().enumerate() {
        if b == b'/' {
            out.push(&s[..i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{CLOSE_ALL_SQL, CLOSE_ONE_SQL};

    /// What a statement writes: each `INSERT INTO t (columns)` and each `UPDATE t SET` with the
    /// columns it sets, and the side effects it calls, in order.
    fn writes(sql: &str) -> Vec<String> {
        let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut out = Vec::new();
        let mut rest = flat.as_str();
        while let Some(i) = rest.find("INSERT INTO ").into_iter().chain(rest.find("UPDATE ")).min() {
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("INSERT INTO ") {
                let (table, r) = r.split_once(" (").expect("INSERT INTO t (columns)");
                let (cols, r) = r.split_once(')').expect("a column list");
                out.push(format!("insert {table} ({cols})"));
                rest = r;
            } else {
                let r = &rest["UPDATE ".len()..];
                let (table, r) = r.split_once(" SET ").expect("UPDATE t SET");
                let end =
                    [" FROM ", " WHERE "].iter().filter_map(|k| r.find(k)).min().expect("FROM or WHERE");
                // The assigned columns: each name before an `=` at the top level of the list.
                let (mut cols, mut depth, mut word) = (Vec::new(), 0, String::new());
                for c in r[..end].chars() {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        '=' if depth == 0 => {
                            cols.push(word.split(',').next_back().unwrap_or("").trim().to_owned())
                        }
                        ',' if depth == 0 => word.clear(),
                        _ => {}
                    }
                    if depth == 0 && c != '=' {
                        word.push(c);
                    }
                }
                out.push(format!("update {table} set {}", cols.join(", ")));
                rest = &r[end..];
            }
        }
        for call in ["set_config('synchronous_commit', 'off', true)", "pg_notify('cairn_changes'"] {
            if flat.contains(call) {
                out.push(call.to_owned());
            }
        }
        out
    }

    /// The two closing statements are kept apart for speed (see `CLOSE_ONE_SQL`); they must
    /// write the same rows, so a column added to one and not the other fails here.
    #[test]
    fn close_one_writes_what_close_all_writes() {
        let all = writes(CLOSE_ALL_SQL);
        assert_eq!(all, writes(CLOSE_ONE_SQL));
        let tables = ["users", "journal", "audit_log", "nodes", "intents"];
        for t in tables {
            assert!(all.iter().any(|w| w.contains(&format!(" {t} "))), "{t} missing from {all:#?}");
        }
        assert_eq!(all.len(), tables.len() + 2, "{all:#?}");
    }
}
