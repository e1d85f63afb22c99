//! A user's view of the files: their own tree with what others share with them mounted in it.
//! Front ends that show shares call [`Store::view`] and then the usual operations on it; each
//! resolves the path here — below a mount it becomes the owner's path, checked against the
//! recipient's role by [`allowed`] — and runs in the owner's tree, so quota, versions, trash and
//! journal are the owner's while the audit names the actor. A path that is neither the user's
//! own nor below one of their mounts does not exist for them. See docs/design/sharing.md.
//!
//! Mounts are placed at the root when a recipient first sees a share (`Name`, else
//! `Name (owner)`, `Name (owner 2)`, ...), moved by renaming the mount point, hidden by deleting
//! it. They are cached per user and dropped whenever any process changes a share, a mount or a
//! group's members (`NOTIFY cairn_shares`), so a revoked share is refused on the next request.
//! Whether the shared node is live is not cached: each use reads it (`stat_id`, coherent through
//! the node cache), so the owner trashing the folder suspends the share and restoring it brings
//! it back at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;

use crate::db::Cached;
use crate::locks::{Lock, NewLock};
use crate::path::{UserName, VPath};
use crate::shares::{Incoming, REACHES_USER, Recipient, Share};
use crate::tree::Replace;
use crate::types::{
    Access, Actor, ETag, FileId, Node, Role, TrashId, User, UserId, Version, VersionId, WriteOptions,
    WriteOutcome,
};
use crate::users::{USER_COLS, user_from_row_at};
use crate::{ContentHash, DeltaFrom, Error, ErrorKind, Result, Store, Timestamp};

/// Longest a user's mounts are served from the cache (a backstop: changes drop them at once).
const TTL: Duration = Duration::from_secs(60);

/// What an operation does, for [`allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Stat, list, read, download, list versions.
    Read,
    /// Create, overwrite, make a folder, copy into.
    Write,
    /// Rename or move within the share.
    Rename,
    /// Delete to the owner's trash.
    Delete,
    /// Make an earlier version current again.
    Restore,
}

/// What `role` may do below a share: the one table every front end's answer comes from.
pub fn allowed(role: Role, op: Op) -> bool {
    match op {
        Op::Read => true,
        Op::Write | Op::Rename | Op::Delete | Op::Restore => role == Role::Editor,
    }
}

/// One share as it appears in a recipient's tree.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    /// The shared folder or file.
    node: FileId,
    /// Where it appears for the recipient.
    at: VPath,
    owner: User,
    role: Role,
}

#[derive(Default)]
pub(crate) struct MountCache {
    generation: AtomicU64,
    /// Set once the `LISTEN` connection has reported: until then nothing is cached.
    listening: AtomicBool,
    started: std::sync::OnceLock<()>,
    users: Mutex<HashMap<UserId, CachedMounts>>,
    /// Woken by every bump (see [`Store::shares_changed`]).
    changed: tokio::sync::Notify,
}

/// A user's mounts: the generation and time they were read at.
type CachedMounts = (u64, Instant, Arc<Vec<Mount>>);

impl MountCache {
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }
}

/// Where a path of the view lies.
enum Place {
    Own(VPath),
    Shared(Reach),
}

/// A path below a mount.
struct Reach {
    mount: Mount,
    /// The shared node's path in the owner's tree now.
    root: VPath,
    /// The path in the owner's tree.
    path: VPath,
}

impl Reach {
    fn check(&self, op: Op) -> Result<()> {
        if allowed(self.mount.role, op) {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} shares /{} with you as a viewer: you can read it, not change it",
                self.mount.owner.name, self.mount.at
            ),
        ))
    }

    /// A lock in the owner's tree as the recipient sees it.
    fn outward_lock(&self, mut lock: Lock) -> Lock {
        lock.path = lock.path.rebase(&self.root, &self.mount.at).unwrap_or_else(|| self.mount.at.clone());
        lock
    }

    fn is_mount_point(&self) -> bool {
        self.path == self.root
    }

    /// A node of the owner's tree as the recipient sees it.
    fn outward(&self, mut node: Node) -> Node {
        node.access = Access::Shared {
            role: self.mount.role,
            owner: self.mount.owner.name.clone(),
            mount_point: node.id == self.mount.node,
        };
        if let Some(p) = node.path.rebase(&self.root, &self.mount.at) {
            node.path = p;
        }
        node
    }
}

/// One end of a transfer across a share's boundary: whose tree, the path there, and the share
/// it is reached through (none: the user's own).
struct End<'r> {
    owner: &'r User,
    path: VPath,
    reach: Option<&'r Reach>,
}

impl End<'_> {
    fn outward(&self, node: Node) -> Node {
        match self.reach {
            Some(r) => r.outward(node),
            None => node,
        }
    }
}

/// A share where it is mounted in a user's tree, with its root as the owner's tree has it: for
/// front ends that address the owner's tree themselves below it (the FUSE mount).
#[derive(Debug, Clone)]
pub struct MountPoint {
    /// Where the user sees it.
    pub at: VPath,
    pub owner: User,
    pub role: Role,
    /// The shared folder or file, in its owner's tree.
    pub node: Node,
}

/// A user's view: their tree and their mounts. See the module doc.
pub struct View<'a> {
    pub(crate) store: &'a Store,
    pub(crate) user: &'a User,
}

impl Store {
    /// `user`'s files with what is shared with them (see `view`).
    pub fn view<'a>(&'a self, user: &'a User) -> View<'a> {
        View { store: self, user }
    }

    /// Resolves when shares, mounts or group memberships may have changed (in any process): a
    /// long-lived follower of a user's shares (a push channel) looks at them again. Take it
    /// (pinned and `enable`d) before reading the shares, so a change in between is not missed.
    pub fn shares_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.listen_for_shares();
        self.inner.mounts.changed.notified()
    }

    /// Start the `LISTEN` that drops cached mounts when another process changes shares.
    fn listen_for_shares(&self) {
        let cache = &self.inner.mounts;
        cache.started.get_or_init(|| {
            let mut rx = self.watch(crate::notify::SHARES, |_, _| Some(()));
            let weak = Arc::downgrade(&self.inner);
            tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    let Some(inner) = weak.upgrade() else { return };
                    inner.mounts.bump();
                    inner.mounts.listening.store(true, Ordering::Release);
                }
            });
        });
    }

    /// `user`'s mounts, placing any share they have not seen yet.
    async fn mounts_of(&self, user: &User) -> Result<Arc<Vec<Mount>>> {
        self.listen_for_shares();
        let cache = &self.inner.mounts;
        let generation = cache.generation.load(Ordering::Acquire);
        let listening = cache.listening.load(Ordering::Acquire);
        if listening
            && let Some((g, at, mounts)) = cache.users.lock().unwrap_or_else(|e| e.into_inner()).get(&user.id)
            && *g == generation
            && at.elapsed() < TTL
        {
            return Ok(mounts.clone());
        }
        let mounts = Arc::new(self.load_mounts(user).await?);
        if listening {
            cache
                .users
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user.id, (generation, Instant::now(), mounts.clone()));
        }
        Ok(mounts)
    }

    async fn load_mounts(&self, user: &User) -> Result<Vec<Mount>> {
        let client = self.inner.pool.get().await?;
        // Mounts of shares that no longer reach the user go (one shared again later is placed
        // afresh), and so do mounts whose place the user's own file or folder has taken since
        // (made where the view does not look, e.g. the FUSE mount): placed again beside it,
        // never hiding it.
        let gone = client
            .cquery(
                &format!(
                    "DELETE FROM share_mounts m WHERE m.user_id = $1 AND (
                     NOT EXISTS (SELECT 1 FROM shares s WHERE s.node_id = m.node_id AND {REACHES_USER})
                     OR EXISTS (SELECT 1 FROM nodes n WHERE n.user_id = $1 AND n.path = m.path AND n.trash_id IS NULL))
                     RETURNING m.node_id, m.path,
                       EXISTS (SELECT 1 FROM shares s WHERE s.node_id = m.node_id AND {REACHES_USER})"
                ),
                &[&user.id.0],
            )
            .await?;
        // A share that went leaves the user's feed; one whose place their own file took comes
        // back beside it (its `create` then), and that name is their own file's.
        for r in &gone {
            if let (Some(at), false) = (r.get::<_, Option<String>>(1), r.get::<_, bool>(2)) {
                journal_mount(
                    &client,
                    user,
                    "delete",
                    FileId(r.get(0)),
                    &VPath::from_db(at)?,
                    None,
                    self.clock().now(),
                )
                .await?;
            }
        }
        let query = format!(
            "WITH incoming AS (
                 SELECT s.node_id, s.owner_id, bool_or(s.role = 'editor') AS editor
                 FROM shares s WHERE {REACHES_USER}
                 GROUP BY s.node_id, s.owner_id)
             SELECT i.node_id, i.editor, m.user_id IS NOT NULL, m.path, n.name, {OWNER}
             FROM incoming i
             JOIN nodes n ON n.id = i.node_id
             JOIN users o ON o.id = i.owner_id
             LEFT JOIN share_mounts m ON m.user_id = $1 AND m.node_id = i.node_id
             ORDER BY i.node_id",
            OWNER = crate::rows::prefixed("o", USER_COLS),
        );
        let mut placed_any = false;
        for _ in 0..2 {
            let rows = client.cquery(&query, &[&user.id.0]).await?;
            let mut mounts = Vec::new();
            let mut unplaced = Vec::new();
            for r in &rows {
                let owner = user_from_row_at(r, 5)?;
                let node = FileId(r.get(0));
                let role = if r.get(1) { Role::Editor } else { Role::Viewer };
                match (r.get::<_, bool>(2), r.get::<_, Option<String>>(3)) {
                    (true, Some(at)) => mounts.push(Mount { node, at: VPath::from_db(at)?, owner, role }),
                    (true, None) => {} // hidden by the recipient
                    // Placed even while in the owner's trash (then it is not shown): the
                    // cached mounts need not change when she restores it.
                    (false, _) => unplaced.push((node, r.get::<_, String>(4), owner.name)),
                }
            }
            if unplaced.is_empty() || placed_any {
                return Ok(mounts);
            }
            for (node, name, owner) in unplaced {
                self.place_mount(user, node, &name, &owner, &mounts).await?;
            }
            placed_any = true;
        }
        Err(Error::internal("placing share mounts did not settle"))
    }

    /// Put a share the user has not seen at a free name in their root.
    async fn place_mount(
        &self,
        user: &User,
        node: FileId,
        name: &str,
        owner: &UserName,
        mounts: &[Mount],
    ) -> Result<()> {
        let client = self.inner.pool.get().await?;
        for n in 1..100 {
            let candidate = match n {
                1 => name.to_owned(),
                2 => format!("{name} ({owner})"),
                _ => format!("{name} ({owner} {})", n - 1),
            };
            let Ok(at) = VPath::root().join(&candidate) else { continue };
            if mounts.iter().any(|m| m.at == at) {
                continue;
            }
            let own = client
                .cquery_opt(
                    "SELECT 1 FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL",
                    &[&user.id.0, &at.as_str()],
                )
                .await?;
            if own.is_some() {
                continue;
            }
            let inserted = client
                .cexecute(
                    "INSERT INTO share_mounts (user_id, node_id, path) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&user.id.0, &node.0, &at.as_str()],
                )
                .await?;
            if inserted == 1 {
                journal_mount(&client, user, "create", node, &at, None, self.clock().now()).await?;
                crate::notify::shares_changed(&client).await?;
                self.inner.mounts.bump();
                return Ok(());
            }
            // Taken meanwhile (another request placed it, or the name): look again.
            let placed = client
                .cquery_opt(
                    "SELECT 1 FROM share_mounts WHERE user_id = $1 AND node_id = $2",
                    &[&user.id.0, &node.0],
                )
                .await?;
            if placed.is_some() {
                return Ok(());
            }
        }
        Err(Error::new(ErrorKind::AlreadyExists, format!("no free name for the share {name} from {owner}")))
    }

    /// Change where `user` sees the share mounted at `from` (`to`: `None` hides it).
    async fn move_mount(&self, user: &User, node: FileId, to: Option<&VPath>) -> Result<()> {
        let client = self.inner.pool.get().await?;
        let was = client
            .cquery_opt(
                "UPDATE share_mounts m SET path = $3
                 FROM (SELECT path FROM share_mounts WHERE user_id = $1 AND node_id = $2 FOR UPDATE) o
                 WHERE m.user_id = $1 AND m.node_id = $2 RETURNING o.path",
                &[&user.id.0, &node.0, &to.map(VPath::as_str)],
            )
            .await?
            .and_then(|r| r.get::<_, Option<String>>(0));
        let now = self.clock().now();
        match (was.map(VPath::from_db).transpose()?, to) {
            (Some(was), Some(to)) => journal_mount(&client, user, "move", node, to, Some(&was), now).await?,
            (Some(was), None) => journal_mount(&client, user, "delete", node, &was, None, now).await?,
            (None, Some(to)) => journal_mount(&client, user, "create", node, to, None, now).await?,
            (None, None) => {}
        }
        crate::notify::shares_changed(&client).await?;
        self.inner.mounts.bump();
        Ok(())
    }
}

/// Record in `user`'s own journal that a share's mount point `kind` (`create`, `move` from `old`,
/// `delete`) at `at`, and wake whoever follows their tree: a client following the feed sees the
/// share arrive, move and go (see `feed`).
async fn journal_mount(
    client: &deadpool_postgres::Object,
    user: &User,
    kind: &str,
    node: FileId,
    at: &VPath,
    old: Option<&VPath>,
    now: crate::types::Timestamp,
) -> Result<()> {
    client
        .cexecute(
            "WITH u AS (UPDATE users SET journal_seq = journal_seq + 1 WHERE id = $1 RETURNING journal_seq)
             INSERT INTO journal (user_id, seq, at, kind, node_id, is_dir, path, old_path, size, etag, content_hash, origin)
             SELECT $1, u.journal_seq, $2, $3, n.id, n.is_dir, $5, $6,
                    CASE WHEN n.is_dir THEN NULL ELSE n.size END, n.etag, n.content_hash, NULL
             FROM u, nodes n WHERE n.id = $4",
            &[&user.id.0, &now.0, &kind, &node.0, &at.as_str(), &old.map(VPath::as_str)],
        )
        .await?;
    client.cexecute("SELECT pg_notify('cairn_changes', $1)", &[&format!("{} - -", user.id.0)]).await?;
    Ok(())
}

/// The combined etag of a folder of the user's own and the mounts below it: changes when the
/// folder or any shared tree below it changes, so clients that compare folder etags descend.
fn combined_etag(own: &ETag, below: &[ETag]) -> ETag {
    let mut h = blake3::Hasher::new();
    h.update(own.0.as_bytes());
    for e in below {
        h.update(b"\0");
        h.update(e.0.as_bytes());
    }
    ETag(h.finalize().to_hex()[..16].to_owned())
}

impl View<'_> {
    async fn place(&self, path: &VPath) -> Result<Place> {
        let mounts = self.store.mounts_of(self.user).await?;
        let Some(m) = mounts.iter().find(|m| path.starts_with(&m.at)) else {
            return Ok(Place::Own(path.clone()));
        };
        // In the owner's trash: suspended, as if not there.
        let root = match self.store.stat_id(&m.owner, m.node).await {
            Ok(n) => n.path,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::not_found(path)),
            Err(e) => return Err(e),
        };
        let owner_path =
            path.rebase(&m.at, &root).ok_or_else(|| Error::internal("rebasing below a mount"))?;
        Ok(Place::Shared(Reach { mount: m.clone(), root, path: owner_path }))
    }

    /// The live mounts strictly below `dir` with their shared node as the recipient sees it.
    async fn mounts_below(&self, dir: &VPath) -> Result<Vec<(Reach, Node)>> {
        let mounts = self.store.mounts_of(self.user).await?;
        let mut out = Vec::new();
        for m in mounts.iter().filter(|m| m.at.starts_with(dir) && &m.at != dir) {
            let node = match self.store.stat_id(&m.owner, m.node).await {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let reach = Reach { mount: m.clone(), root: node.path.clone(), path: node.path.clone() };
            let node = reach.outward(node);
            out.push((reach, node));
        }
        Ok(out)
    }

    /// `node` (a folder of the user's own) with its etag combined with the mounts below it.
    fn fold_etag(mut node: Node, below: &[(Reach, Node)]) -> Node {
        let etags: Vec<ETag> = below
            .iter()
            .filter(|(r, _)| r.mount.at.starts_with(&node.path))
            .map(|(_, n)| n.etag.clone())
            .collect();
        if node.is_dir && !etags.is_empty() {
            node.etag = combined_etag(&node.etag, &etags);
        }
        node
    }

    /// The shares mounted directly in the user's own folder `dir` (those in the owner's trash
    /// are not there).
    pub async fn mounts_in(&self, dir: &VPath) -> Result<Vec<MountPoint>> {
        self.live_mounts(|at| at.parent().as_ref() == Some(dir)).await
    }

    /// Every share mounted in the user's tree (not those hidden or in the owner's trash).
    pub(crate) async fn mounts_in_tree(&self) -> Result<Vec<MountPoint>> {
        self.live_mounts(|_| true).await
    }

    /// The mounts whose place `wanted` accepts, with their shared node as its owner has it;
    /// only those are looked up (a FUSE listing asks for one folder's at every call).
    async fn live_mounts(&self, wanted: impl Fn(&VPath) -> bool) -> Result<Vec<MountPoint>> {
        let mounts = self.store.mounts_of(self.user).await?;
        let mut out = Vec::new();
        for m in mounts.iter().filter(|m| wanted(&m.at)) {
            match self.store.stat_id(&m.owner, m.node).await {
                Ok(node) => {
                    out.push(MountPoint { at: m.at.clone(), owner: m.owner.clone(), role: m.role, node })
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The user's role in the share of `node` (a shared folder or file itself) while it reaches
    /// them and is mounted; otherwise not found, as for anything not theirs.
    pub async fn mount_role(&self, node: FileId) -> Result<Role> {
        let mounts = self.store.mounts_of(self.user).await?;
        mounts
            .iter()
            .find(|m| m.node == node)
            .map(|m| m.role)
            .ok_or_else(|| Error::not_found(format!("file id {node}")))
    }

    /// The file or folder at `path`.
    pub async fn stat(&self, path: &VPath) -> Result<Node> {
        match self.place(path).await? {
            Place::Own(p) => {
                let node = self.store.stat(self.user, &p).await?;
                if !node.is_dir {
                    return Ok(node);
                }
                let below = self.mounts_below(&p).await?;
                Ok(Self::fold_etag(node, &below))
            }
            Place::Shared(r) => Ok(r.outward(self.store.stat(&r.mount.owner, &r.path).await?)),
        }
    }

    /// The live file or folder with id `id`, if it is the user's or below one of their mounts.
    pub async fn stat_id(&self, id: FileId) -> Result<Node> {
        match self.store.stat_id(self.user, id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            other => return other,
        }
        for (reach, _) in self.mounts_below(&VPath::root()).await? {
            if let Ok(node) = self.store.stat_id(&reach.mount.owner, id).await
                && node.path.starts_with(&reach.root)
            {
                return Ok(reach.outward(node));
            }
        }
        Err(Error::not_found(format!("file id {id}")))
    }

    /// The entries of the folder at `path`, by name.
    pub async fn children(&self, path: &VPath) -> Result<Arc<Vec<Node>>> {
        match self.place(path).await? {
            Place::Own(p) => {
                let own = self.store.children(self.user, &p).await?;
                let below = self.mounts_below(&p).await?;
                if below.is_empty() {
                    return Ok(own);
                }
                let mut out: Vec<Node> = own
                    .iter()
                    .filter(|n| !below.iter().any(|(r, _)| r.mount.at == n.path))
                    .map(|n| Self::fold_etag(n.clone(), &below))
                    .collect();
                for (r, n) in &below {
                    if r.mount.at.parent().as_ref() == Some(&p) {
                        out.push(n.clone());
                    }
                }
                out.sort_by(|a, b| a.path.name().as_bytes().cmp(b.path.name().as_bytes()));
                Ok(Arc::new(out))
            }
            Place::Shared(r) => {
                let list = self.store.children(&r.mount.owner, &r.path).await?;
                Ok(Arc::new(list.iter().map(|n| r.outward(n.clone())).collect()))
            }
        }
    }

    /// [`View::children`], owned.
    pub async fn list(&self, path: &VPath) -> Result<Vec<Node>> {
        Ok(self.children(path).await?.as_ref().clone())
    }

    /// The folder at `path` and everything below it, by path.
    pub async fn list_tree(&self, path: &VPath) -> Result<Vec<Node>> {
        match self.place(path).await? {
            Place::Own(p) => {
                let own = self.store.list_tree(self.user, &p).await?;
                let below = self.mounts_below(&p).await?;
                if below.is_empty() {
                    return Ok(own);
                }
                let mut out: Vec<Node> = own
                    .into_iter()
                    .filter(|n| !below.iter().any(|(r, _)| n.path.starts_with(&r.mount.at)))
                    .map(|n| Self::fold_etag(n, &below))
                    .collect();
                for (r, n) in &below {
                    out.push(n.clone());
                    if n.is_dir {
                        let inner = self.store.list_tree(&r.mount.owner, &r.root).await?;
                        out.extend(inner.into_iter().map(|n| r.outward(n)));
                    }
                }
                out.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
                Ok(out)
            }
            Place::Shared(r) => {
                let list = self.store.list_tree(&r.mount.owner, &r.path).await?;
                Ok(list.into_iter().map(|n| r.outward(n)).collect())
            }
        }
    }

    /// The bytes of the files at `path` and below it.
    pub async fn tree_size(&self, path: &VPath) -> Result<u64> {
        match self.place(path).await? {
            Place::Own(p) => {
                let mut size = self.store.tree_size(self.user, &p).await?;
                for (r, n) in self.mounts_below(&p).await? {
                    size += match n.is_dir {
                        true => self.store.tree_size(&r.mount.owner, &r.root).await?,
                        false => n.size,
                    };
                }
                Ok(size)
            }
            Place::Shared(r) => self.store.tree_size(&r.mount.owner, &r.path).await,
        }
    }

    /// Open the file at `path` for reading.
    pub async fn open_file(&self, path: &VPath) -> Result<(Node, std::fs::File)> {
        match self.place(path).await? {
            Place::Own(p) => self.store.open_file(self.user, &p).await,
            Place::Shared(r) => {
                let (node, file) = self.store.open_file(&r.mount.owner, &r.path).await?;
                Ok((r.outward(node), file))
            }
        }
    }

    /// See [`Store::open_small`].
    pub async fn open_small(
        &self,
        path: &VPath,
        small: u64,
    ) -> Result<(Node, Option<std::fs::File>, Option<Vec<u8>>)> {
        match self.place(path).await? {
            Place::Own(p) => self.store.open_small(self.user, &p, small).await,
            Place::Shared(r) => {
                let (node, file, bytes) = self.store.open_small(&r.mount.owner, &r.path, small).await?;
                Ok((r.outward(node), file, bytes))
            }
        }
    }

    /// Write a file (see [`Store::write`]); in a share, an editor's write counts against the
    /// owner's quota.
    pub async fn write<R: AsyncRead + Unpin + Send>(
        &self,
        actor: &Actor,
        path: &VPath,
        body: R,
        opts: WriteOptions,
    ) -> Result<WriteOutcome> {
        match self.place(path).await? {
            Place::Own(p) => self.store.write(actor, self.user, &p, body, opts).await,
            Place::Shared(r) => {
                r.check(Op::Write)?;
                let mut out = self
                    .store
                    .write(actor, &r.mount.owner, &r.path, body, opts)
                    .await
                    .map_err(|e| owners_quota(e, &r))?;
                out.node = r.outward(out.node);
                Ok(out)
            }
        }
    }

    /// See [`Store::write_delta`].
    #[allow(clippy::too_many_arguments)]
    pub async fn write_delta<R: AsyncRead + Unpin + Send>(
        &self,
        actor: &Actor,
        path: &VPath,
        base: &ETag,
        body: R,
        expected: ContentHash,
        mtime: Option<Timestamp>,
    ) -> Result<WriteOutcome> {
        match self.place(path).await? {
            Place::Own(p) => self.store.write_delta(actor, self.user, &p, base, body, expected, mtime).await,
            Place::Shared(r) => {
                r.check(Op::Write)?;
                let mut out = self
                    .store
                    .write_delta(actor, &r.mount.owner, &r.path, base, body, expected, mtime)
                    .await
                    .map_err(|e| owners_quota(e, &r))?;
                out.node = r.outward(out.node);
                Ok(out)
            }
        }
    }

    /// See [`Store::signature`].
    pub async fn signature(&self, path: &VPath) -> Result<(Node, Vec<u8>)> {
        match self.place(path).await? {
            Place::Own(p) => self.store.signature(self.user, &p).await,
            Place::Shared(r) => {
                let (node, sig) = self.store.signature(&r.mount.owner, &r.path).await?;
                Ok((r.outward(node), sig))
            }
        }
    }

    /// See [`Store::delta_from`].
    pub async fn delta_from(&self, path: &VPath, have: &ETag, max_ratio: f64) -> Result<DeltaFrom> {
        match self.place(path).await? {
            Place::Own(p) => self.store.delta_from(self.user, &p, have, max_ratio).await,
            Place::Shared(r) => {
                Ok(match self.store.delta_from(&r.mount.owner, &r.path, have, max_ratio).await? {
                    DeltaFrom::Unchanged(n) => DeltaFrom::Unchanged(r.outward(n)),
                    DeltaFrom::Delta { node, delta, len } => {
                        DeltaFrom::Delta { node: r.outward(node), delta, len }
                    }
                    DeltaFrom::Full => DeltaFrom::Full,
                })
            }
        }
    }

    /// Where a write to `path` lands — the user's own tree, or the owner's below a share (an
    /// editor's) — for writes that arrive in pieces (tus and chunked uploads) and commit later.
    pub(crate) async fn write_target(&self, path: &VPath) -> Result<(User, VPath)> {
        match self.place(path).await? {
            Place::Own(p) => Ok((self.user.clone(), p)),
            Place::Shared(r) => {
                r.check(Op::Write)?;
                Ok((r.mount.owner.clone(), r.path.clone()))
            }
        }
    }

    /// Create the folder at `path`.
    pub async fn mkdir(&self, actor: &Actor, path: &VPath) -> Result<Node> {
        match self.place(path).await? {
            Place::Own(p) => self.store.mkdir(actor, self.user, &p).await,
            Place::Shared(r) if r.is_mount_point() => {
                Err(Error::new(ErrorKind::AlreadyExists, format!("{path} exists")))
            }
            Place::Shared(r) => {
                r.check(Op::Write)?;
                Ok(r.outward(
                    self.store
                        .mkdir(actor, &r.mount.owner, &r.path)
                        .await
                        .map_err(|e| owners_quota(e, &r))?,
                ))
            }
        }
    }

    /// Delete the file or folder at `path` to its owner's trash. A mount point is hidden
    /// instead (the share stays; nothing of the owner's is touched): `None`.
    pub async fn delete(
        &self,
        actor: &Actor,
        path: &VPath,
        if_match: Option<ETag>,
    ) -> Result<Option<TrashId>> {
        match self.place(path).await? {
            Place::Own(p) => {
                let id = self.store.delete(actor, self.user, &p, if_match).await?;
                // Mounts placed inside the deleted folder go with it (hidden).
                for (r, _) in self.mounts_below(&p).await? {
                    self.store.move_mount(self.user, r.mount.node, None).await?;
                }
                Ok(Some(id))
            }
            Place::Shared(r) if r.is_mount_point() => {
                if let Some(want) = if_match {
                    let node = self.store.stat(&r.mount.owner, &r.path).await?;
                    if node.etag != want {
                        return Err(Error::new(ErrorKind::PreconditionFailed, format!("{path} changed")));
                    }
                }
                self.store.move_mount(self.user, r.mount.node, None).await?;
                Ok(None)
            }
            Place::Shared(r) => {
                r.check(Op::Delete)?;
                Ok(Some(self.store.delete(actor, &r.mount.owner, &r.path, if_match).await?))
            }
        }
    }

    /// Move or rename. Within the user's own tree or within one owner's shares (an editor's); a
    /// mount point moves within the user's own tree (only their view changes); between the
    /// user's files and a share, or two owners' shares, a copy then a delete (see `copy_across`).
    pub async fn rename(&self, actor: &Actor, from: &VPath, to: &VPath, replace: Replace) -> Result<Node> {
        let (src, dst) = (self.place(from).await?, self.place(to).await?);
        match (src, dst) {
            (Place::Own(f), Place::Own(t)) => {
                let below = self.mounts_below(&f).await?;
                let node = self.store.rename(actor, self.user, &f, &t, replace).await?;
                for (r, _) in below {
                    if let Some(at) = r.mount.at.rebase(&f, &t) {
                        self.store.move_mount(self.user, r.mount.node, Some(&at)).await?;
                    }
                }
                Ok(node)
            }
            (Place::Shared(r), Place::Own(t)) if r.is_mount_point() => {
                if t.is_root() || self.store.stat(self.user, &t).await.is_ok() {
                    return Err(Error::new(ErrorKind::AlreadyExists, format!("{to} exists")));
                }
                if let Some(parent) = t.parent() {
                    let dir =
                        self.store.stat(self.user, &parent).await.map_err(|_| {
                            Error::new(ErrorKind::Conflict, format!("{parent} does not exist"))
                        })?;
                    if !dir.is_dir {
                        return Err(Error::new(ErrorKind::Conflict, format!("{parent} is not a folder")));
                    }
                }
                self.store.move_mount(self.user, r.mount.node, Some(&t)).await?;
                let node = self.store.stat(&r.mount.owner, &r.path).await?;
                let moved = Reach {
                    mount: Mount { at: t, ..r.mount.clone() },
                    root: r.root.clone(),
                    path: r.path.clone(),
                };
                Ok(moved.outward(node))
            }
            (Place::Shared(a), Place::Shared(b))
                if a.mount.owner.id == b.mount.owner.id && !a.is_mount_point() && !b.is_mount_point() =>
            {
                a.check(Op::Rename)?;
                b.check(Op::Write)?;
                Ok(b.outward(self.store.rename(actor, &a.mount.owner, &a.path, &b.path, replace).await?))
            }
            (src, dst) => {
                // Across a share's boundary: a copy into the destination's owner, then the
                // source to its owner's trash.
                let from_end = self.end(&src, from, Op::Rename).await?;
                let to_end = self.end(&dst, to, Op::Write).await?;
                let node = self.copy_across(actor, &from_end, &to_end, replace).await?;
                self.store.delete(actor, from_end.owner, &from_end.path, None).await?;
                Ok(to_end.outward(node))
            }
        }
    }

    /// Copy within the user's own tree or within one share (an editor's); across a share's
    /// boundary, file by file into the destination's owner.
    pub async fn copy(&self, actor: &Actor, from: &VPath, to: &VPath, replace: Replace) -> Result<Node> {
        match (self.place(from).await?, self.place(to).await?) {
            (Place::Own(f), Place::Own(t)) => self.store.copy(actor, self.user, &f, &t, replace).await,
            (Place::Shared(a), Place::Shared(b))
                if a.mount.owner.id == b.mount.owner.id && !b.is_mount_point() =>
            {
                b.check(Op::Write)?;
                Ok(b.outward(
                    self.store
                        .copy(actor, &b.mount.owner, &a.path, &b.path, replace)
                        .await
                        .map_err(|e| owners_quota(e, &b))?,
                ))
            }
            (src, dst) => {
                let from_end = self.end(&src, from, Op::Read).await?;
                let to_end = self.end(&dst, to, Op::Write).await?;
                let node = self.copy_across(actor, &from_end, &to_end, replace).await?;
                Ok(to_end.outward(node))
            }
        }
    }

    /// One end of a transfer across a share's boundary, checked for `op`. A share's mount point
    /// itself is not moved or replaced this way (it moves within the user's own files only).
    async fn end<'p>(&'p self, place: &'p Place, path: &VPath, op: Op) -> Result<End<'p>> {
        match place {
            Place::Own(p) => {
                if op != Op::Read && !self.mounts_below(p).await?.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!("{path} holds a share: move the share out of it first"),
                    ));
                }
                Ok(End { owner: self.user, path: p.clone(), reach: None })
            }
            Place::Shared(r) if r.is_mount_point() && op != Op::Read => Err(Error::new(
                ErrorKind::Conflict,
                format!("{path} is a share: it moves only within your own files"),
            )),
            Place::Shared(r) => {
                r.check(op)?;
                Ok(End { owner: &r.mount.owner, path: r.path.clone(), reach: Some(r) })
            }
        }
    }

    /// Copy `from` into another owner's tree at `to`: each file streamed through
    /// [`Store::write`] (the destination owner's quota, versions and audit, the actor named), each
    /// folder made. Folders before what is in them; a failure leaves the source whole.
    async fn copy_across(
        &self,
        actor: &Actor,
        from: &End<'_>,
        to: &End<'_>,
        replace: Replace,
    ) -> Result<Node> {
        let src = self.store.stat(from.owner, &from.path).await?;
        if to.owner.id == from.owner.id && to.path.starts_with(&from.path) {
            return Err(Error::new(ErrorKind::Conflict, "a folder cannot go inside itself"));
        }
        match self.store.stat(to.owner, &to.path).await {
            Ok(existing) => match (replace, src.is_dir, existing.is_dir) {
                (Replace::Nothing, ..) => {
                    return Err(Error::new(ErrorKind::AlreadyExists, format!("{} already exists", to.path)));
                }
                // A file onto a file: the old content becomes a version.
                (Replace::Anything | Replace::Posix, false, false) => {}
                (Replace::Posix, true, false) => {
                    return Err(Error::new(ErrorKind::NotADirectory, format!("{} is not a folder", to.path)));
                }
                (Replace::Posix, false, true) => {
                    return Err(Error::new(ErrorKind::IsADirectory, format!("{} is a folder", to.path)));
                }
                _ => {
                    if replace == Replace::Posix && !self.store.children(to.owner, &to.path).await?.is_empty()
                    {
                        return Err(Error::new(ErrorKind::NotEmpty, format!("{} is not empty", to.path)));
                    }
                    self.store.delete(actor, to.owner, &to.path, None).await?;
                }
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let quota = |e: Error| match to.reach {
            Some(r) => owners_quota(e, r),
            None => e,
        };
        if !src.is_dir {
            return self.copy_file(actor, from.owner, &src, to.owner, &to.path).await.map_err(quota);
        }
        self.store.mkdir(actor, to.owner, &to.path).await.map_err(quota)?;
        let mut below = self.store.list_tree(from.owner, &from.path).await?;
        below.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
        for n in below {
            let at = n.path.rebase(&from.path, &to.path).ok_or_else(|| Error::internal("rebasing a copy"))?;
            match n.is_dir {
                true => self.store.mkdir(actor, to.owner, &at).await.map(drop).map_err(quota)?,
                false => {
                    self.copy_file(actor, from.owner, &n, to.owner, &at).await.map(drop).map_err(quota)?
                }
            }
        }
        self.store.stat(to.owner, &to.path).await
    }

    async fn copy_file(
        &self,
        actor: &Actor,
        from: &User,
        node: &Node,
        to: &User,
        at: &VPath,
    ) -> Result<Node> {
        let (n, file) = self.store.open_file(from, &node.path).await?;
        let opts = WriteOptions { expected_len: Some(n.size), mtime: Some(n.mtime), ..Default::default() };
        Ok(self.store.write(actor, to, at, tokio::fs::File::from_std(file), opts).await?.node)
    }

    /// The earlier contents of the file at `path`, newest first.
    pub async fn versions(&self, path: &VPath) -> Result<Vec<Version>> {
        match self.place(path).await? {
            Place::Own(p) => self.store.versions(self.user, &p).await,
            Place::Shared(r) => self.store.versions(&r.mount.owner, &r.path).await,
        }
    }

    /// Open one earlier content of the file at `path`.
    pub async fn open_version(&self, path: &VPath, id: VersionId) -> Result<(Version, std::fs::File)> {
        match self.place(path).await? {
            Place::Own(p) => self.store.open_version(self.user, &p, id).await,
            Place::Shared(r) => self.store.open_version(&r.mount.owner, &r.path, id).await,
        }
    }

    /// Make version `id` of `path` current again.
    pub async fn restore_version(&self, actor: &Actor, path: &VPath, id: VersionId) -> Result<Node> {
        match self.place(path).await? {
            Place::Own(p) => self.store.restore_version(actor, self.user, &p, id).await,
            Place::Shared(r) => {
                r.check(Op::Restore)?;
                Ok(r.outward(self.store.restore_version(actor, &r.mount.owner, &r.path, id).await?))
            }
        }
    }
}

impl View<'_> {
    /// Share the user's folder or file at `path` (see [`Store::share`]). Only the owner shares:
    /// a path below a mount is refused (the recipient sees it, so not "not found").
    pub async fn share(&self, actor: &Actor, path: &VPath, to: &Recipient, role: Role) -> Result<Share> {
        match self.place(path).await? {
            Place::Own(p) => self.store.share(actor, self.user, &p, to, role).await,
            Place::Shared(r) => Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("only {} can share /{} further", r.mount.owner.name, r.mount.at),
            )),
        }
    }

    /// The accounts whose trees are mounted in the user's (for following their changes).
    pub async fn share_owners(&self) -> Result<Vec<UserId>> {
        let mut ids: Vec<UserId> =
            self.store.mounts_of(self.user).await?.iter().map(|m| m.owner.id).collect();
        ids.sort_by_key(|u| u.0);
        ids.dedup();
        Ok(ids)
    }

    /// What is shared with the user, each with where it is mounted in their tree (`None`:
    /// hidden by them).
    pub async fn incoming(&self) -> Result<Vec<(Incoming, Option<VPath>)>> {
        let mounts = self.store.mounts_of(self.user).await?;
        let list = self.store.shared_with(self.user).await?;
        Ok(list
            .into_iter()
            .map(|i| {
                let at = mounts.iter().find(|m| m.node == i.node).map(|m| m.at.clone());
                (i, at)
            })
            .collect())
    }
}

/// WebDAV locks: a lock on a shared path is taken, seen and enforced in the owner's tree, so the
/// owner and every member see one lock. Taking one is a change (an editor's).
impl View<'_> {
    /// Whether the user or the owner of any share mounted in their tree holds a live lock (a
    /// quick test before looking for the locks covering a path).
    pub async fn has_locks(&self) -> Result<bool> {
        if self.store.has_locks(self.user).await? {
            return Ok(true);
        }
        for m in self.store.mounts_of(self.user).await?.iter() {
            if self.store.has_locks(&m.owner).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The live locks covering `path` (and, with `and_below`, those below it), paths as the
    /// user sees them (a lock the owner holds above the share shows at the mount point).
    pub async fn locks(&self, path: &VPath, and_below: bool) -> Result<Vec<Lock>> {
        match self.place(path).await? {
            Place::Own(p) => self.store.locks(self.user, &p, and_below).await,
            Place::Shared(r) => {
                let locks = self.store.locks(&r.mount.owner, &r.path, and_below).await?;
                Ok(locks.into_iter().map(|l| r.outward_lock(l)).collect())
            }
        }
    }

    /// Lock `path` (see [`Store::lock`]).
    pub async fn lock(&self, actor: &Actor, path: &VPath, req: NewLock) -> Result<Lock> {
        match self.place(path).await? {
            Place::Own(p) => self.store.lock(actor, self.user, &p, req).await,
            Place::Shared(r) => {
                r.check(Op::Write)?;
                Ok(r.outward_lock(self.store.lock(actor, &r.mount.owner, &r.path, req).await?))
            }
        }
    }

    /// Extend a lock on `path` (see [`Store::refresh_lock`]).
    pub async fn refresh_lock(&self, path: &VPath, token: &str, timeout_secs: u64) -> Result<Lock> {
        match self.place(path).await? {
            Place::Own(p) => self.store.refresh_lock(self.user, &p, token, timeout_secs).await,
            Place::Shared(r) => Ok(
                r.outward_lock(self.store.refresh_lock(&r.mount.owner, &r.path, token, timeout_secs).await?)
            ),
        }
    }

    /// Release a lock on `path` (see [`Store::unlock`]).
    pub async fn unlock(&self, actor: &Actor, path: &VPath, token: &str) -> Result<()> {
        match self.place(path).await? {
            Place::Own(p) => self.store.unlock(actor, self.user, &p, token).await,
            Place::Shared(r) => self.store.unlock(actor, &r.mount.owner, &r.path, token).await,
        }
    }
}

/// A quota error in a share names whose quota it is.
fn owners_quota(e: Error, r: &Reach) -> Error {
    match e.kind() {
        ErrorKind::QuotaExceeded => Error::new(
            ErrorKind::QuotaExceeded,
            format!("{} (the quota of {}, who owns this shared folder)", e.message(), r.mount.owner.name),
        ),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_read_and_editors_change() {
        for op in [Op::Read, Op::Write, Op::Rename, Op::Delete, Op::Restore] {
            assert!(allowed(Role::Editor, op), "{op:?}");
            assert_eq!(allowed(Role::Viewer, op), op == Op::Read, "{op:?}");
        }
    }

    #[test]
    fn combined_etags_change_with_any_part() {
        let (a, b) = (ETag("0123456789abcdef".into()), ETag("fedcba9876543210".into()));
        let e = combined_etag(&a, std::slice::from_ref(&b));
        assert_eq!(e.0.len(), 16);
        assert_ne!(e, combined_etag(&a, std::slice::from_ref(&a)));
        assert_ne!(e, combined_etag(&b, std::slice::from_ref(&b)));
        assert_eq!(e, combined_etag(&a, &[b]));
    }
}
