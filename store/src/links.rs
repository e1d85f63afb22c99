//! Public links: one of a user's folders or files, reachable by anyone holding the link's token —
//! 128 random bits, of which only the hash is kept — optionally behind a password (argon2id),
//! until an expiry, for a number of downloads. A token that is unknown, expired, used up,
//! revoked, or whose folder is in the trash is not found, all alike. Every download, zip and
//! upload is audited in the owner's log under the link's number.
//!
//! A password, once given, earns a *grant*: a keyed hash of the token under a key derived from
//! the stored password hash, which the visitor's browser keeps (a cookie) so that its pictures
//! and downloads need not carry the password. Changing the password or revoking the link ends
//! every grant; nothing is stored for them.
//!
//! An *upload-only* link to a folder shows nothing of what is in it: its visitor can only send
//! files into it, each under a name not yet taken (never replacing anything), counted against
//! the owner's quota.

use std::fs::File;

use crate::db::Cached;
use crate::path::VPath;
use crate::rows::{NODE_COLS, prefixed};
use crate::txn::audit;
use crate::types::{Actor, FileId, Node, Origin, Timestamp, User, WriteOptions};
use crate::users::{USER_COLS, hash_password, token_hash, user_from_row_at, verify_password};
use crate::{Error, ErrorKind, Result, Store, blocking};

/// What a new link allows.
#[derive(Debug, Clone, Default)]
pub struct NewLink {
    /// Asked before anything is shown (at least 8 characters).
    pub password: Option<String>,
    /// After this the link is not found.
    pub expires_at: Option<Timestamp>,
    /// Downloads of files through the link, after which it is not found.
    pub max_downloads: Option<u32>,
    /// Visitors may only send files into the folder, and see nothing in it.
    pub upload_only: bool,
}

/// A link as its owner sees it (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    /// The folder or file, and where it is now (`None` while in the trash: the link is off).
    pub node: FileId,
    pub path: Option<VPath>,
    pub is_dir: bool,
    pub has_password: bool,
    pub expires_at: Option<Timestamp>,
    /// `None`: no limit.
    pub downloads_left: Option<u32>,
    pub upload_only: bool,
    pub created_at: Timestamp,
}

/// An opened link: what it reaches, for [`Store::link_list`] and [`Store::link_download`].
#[derive(Debug, Clone)]
pub struct LinkAccess {
    /// The link's number (its audit name is `link:ID`).
    pub id: i64,
    owner: User,
    /// The linked folder or file as it is now.
    pub root: Node,
    /// Visitors may only send files (see the module's doc).
    pub upload_only: bool,
    /// What keeps the visitor in without the password (see the module's doc), if it has one.
    pub grant: Option<String>,
}

/// What a visitor proves to open a link that has a password.
#[derive(Debug, Clone, Copy)]
pub enum LinkKey<'a> {
    None,
    Password(&'a str),
    /// A grant a password earned earlier.
    Grant(&'a str),
}

const LINK_SELECT: &str =
    "SELECT l.id, l.node_id, n.path, n.trash_id IS NULL, n.is_dir, l.password IS NOT NULL,
        l.expires_at, l.downloads_left, l.created_at, l.upload_only FROM links l JOIN nodes n ON n.id = l.node_id";

fn link_from_row(r: &tokio_postgres::Row) -> Result<Link> {
    Ok(Link {
        id: r.get(0),
        node: FileId(r.get(1)),
        path: match r.get::<_, bool>(3) {
            true => Some(VPath::from_db(r.get(2))?),
            false => None,
        },
        is_dir: r.get(4),
        has_password: r.get(5),
        expires_at: r.get::<_, Option<i64>>(6).map(Timestamp),
        downloads_left: r.get::<_, Option<i32>>(7).map(|n| n as u32),
        created_at: Timestamp(r.get(8)),
        upload_only: r.get(9),
    })
}

fn no_link() -> Error {
    Error::not_found("link")
}

/// The grant a link's password earns (see the module's doc).
fn grant_of(phc: &str, token: &str) -> blake3::Hash {
    blake3::keyed_hash(
        &blake3::derive_key("cairn 2026-12 public link grant", phc.as_bytes()),
        token.as_bytes(),
    )
}

impl LinkAccess {
    /// The path in the owner's tree of `sub`, named below the link's root (`/` is the root).
    fn inner(&self, sub: &VPath) -> Result<VPath> {
        match (sub.is_root(), self.root.is_dir) {
            (true, _) => Ok(self.root.path.clone()),
            (false, false) => Err(no_link()),
            (false, true) => {
                VPath::parse(&format!("{}/{}", self.root.path.as_str(), sub.as_str())).map_err(|_| no_link())
            }
        }
    }

    /// A node of the owner's tree as the visitor sees it: below the link's root (a linked file
    /// is `/NAME`).
    fn outward(&self, mut n: Node) -> Node {
        n.path = match (self.root.is_dir, n.path.rebase(&self.root.path, &VPath::root())) {
            (true, Some(p)) => p,
            _ => VPath::root().join(self.root.path.name()).unwrap_or_else(|_| VPath::root()),
        };
        n
    }

    fn actor(&self, remote: Option<String>) -> Actor {
        Actor { origin: Origin::Rest, name: format!("link:{}", self.id), remote }
    }
}

impl Store {
    /// Make a public link to `owner`'s folder or file at `path`; returns it with its token (shown
    /// once: only its hash is kept).
    pub async fn create_link(
        &self,
        actor: &Actor,
        owner: &User,
        path: &VPath,
        opts: NewLink,
    ) -> Result<(Link, String)> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::InvalidInput, "link a folder or file, not your whole tree"));
        }
        let now = self.clock().now();
        if opts.expires_at.is_some_and(|t| t.0 <= now.0) {
            return Err(Error::new(ErrorKind::InvalidInput, "the expiry is in the past"));
        }
        if opts.max_downloads == Some(0) || opts.max_downloads.is_some_and(|n| n > i32::MAX as u32) {
            return Err(Error::new(ErrorKind::InvalidInput, "allow at least one download"));
        }
        let phc = match opts.password.clone() {
            Some(p) => {
                crate::users::check_password_strength(&p)?;
                Some(blocking(move || hash_password(&p)).await?)
            }
            None => None,
        };
        let token = crate::disk::random_hex(16);
        let client = self.inner.pool.get().await?;
        let node = client
            .cquery_opt(
                "SELECT id, is_dir FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL",
                &[&owner.id.0, &path.as_str()],
            )
            .await?
            .ok_or_else(|| Error::not_found(path))?;
        let (node, is_dir): (i64, bool) = (node.get(0), node.get(1));
        if opts.upload_only && !is_dir {
            return Err(Error::new(ErrorKind::InvalidInput, "an upload-only link is to a folder"));
        }
        let id: i64 = client
            .cquery_one(
                "INSERT INTO links (owner_id, node_id, token_hash, password, expires_at, downloads_left, created_at, upload_only)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                &[
                    &owner.id.0,
                    &node,
                    &token_hash(&token),
                    &phc,
                    &opts.expires_at.map(|t| t.0),
                    &opts.max_downloads.map(|n| n as i32),
                    &now.0,
                    &opts.upload_only,
                ],
            )
            .await?
            .get(0);
        let detail = format!(
            "link {id}{}{}{}{}",
            if opts.upload_only { ", upload only" } else { "" },
            if phc.is_some() { ", password" } else { "" },
            opts.expires_at.map_or(String::new(), |t| format!(", until {}", t.to_rfc3339())),
            opts.max_downloads.map_or(String::new(), |n| format!(", {n} downloads")),
        );
        audit(&client, Some(owner.id), actor, "link.create", Some(path.as_str()), Some(&detail), now).await?;
        let link =
            link_from_row(&client.cquery_one(&format!("{LINK_SELECT} WHERE l.id = $1"), &[&id]).await?)?;
        Ok((link, token))
    }

    /// The links `owner` made, newest first.
    pub async fn links_by(&self, owner: &User) -> Result<Vec<Link>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(&format!("{LINK_SELECT} WHERE l.owner_id = $1 ORDER BY l.id DESC"), &[&owner.id.0])
            .await?;
        rows.iter().map(link_from_row).collect()
    }

    /// End one of `owner`'s links at once (someone else's: not found).
    pub async fn revoke_link(&self, actor: &Actor, owner: &User, id: i64) -> Result<()> {
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let n =
            client.cexecute("DELETE FROM links WHERE id = $1 AND owner_id = $2", &[&id, &owner.id.0]).await?;
        if n == 0 {
            return Err(Error::not_found(format!("link {id}")));
        }
        audit(&client, Some(owner.id), actor, "link.revoke", None, Some(&format!("link {id}")), now).await?;
        Ok(())
    }

    /// Open the link with `token`. Unknown, expired, used up, revoked or in the trash: not
    /// found. With a password: `Unauthenticated` until the right one (or a grant it earned) is
    /// given (the caller throttles and this audits wrong ones).
    pub async fn open_link(
        &self,
        token: &str,
        key: LinkKey<'_>,
        remote: Option<String>,
    ) -> Result<LinkAccess> {
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(no_link());
        }
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT l.id, l.password, l.upload_only, {NODE_COLS_N}, {USER_COLS_O}
                     FROM links l JOIN nodes n ON n.id = l.node_id AND n.trash_id IS NULL
                     JOIN users o ON o.id = l.owner_id
                     WHERE l.token_hash = $1 AND (l.expires_at IS NULL OR l.expires_at > $2)
                       AND (l.downloads_left IS NULL OR l.downloads_left > 0)",
                    NODE_COLS_N = prefixed("n", NODE_COLS),
                    USER_COLS_O = prefixed("o", USER_COLS),
                ),
                &[&token_hash(token), &now.0],
            )
            .await?
            .ok_or_else(no_link)?;
        let id: i64 = row.get(0);
        let phc: Option<String> = row.get(1);
        let upload_only: bool = row.get(2);
        let root = crate::rows::node_from_row_at(&row, 3)?;
        let owner = user_from_row_at(&row, 3 + NODE_COLS.split(", ").count())?;
        let mut access = LinkAccess { id, owner, root, upload_only, grant: None };
        if let Some(phc) = phc {
            let grant = grant_of(&phc, token);
            let right = match key {
                LinkKey::None => {
                    return Err(Error::new(ErrorKind::Unauthenticated, "this link asks for a password"));
                }
                // Compared in constant time (`Hash`'s equality).
                LinkKey::Grant(g) => blake3::Hash::from_hex(g).is_ok_and(|g| g == grant),
                LinkKey::Password(p) => {
                    let given = p.to_owned();
                    blocking(move || Ok(verify_password(&phc, &given))).await?
                }
            };
            if right {
                access.grant = Some(grant.to_hex().to_string());
            } else {
                let actor = access.actor(remote);
                audit(
                    &client,
                    Some(access.owner.id),
                    &actor,
                    "link.password_wrong",
                    None,
                    Some(&format!("link {id}")),
                    now,
                )
                .await?;
                return Err(Error::new(ErrorKind::Unauthenticated, "wrong password for this link"));
            }
        }
        Ok(access)
    }

    /// Audit attempts on the link with `token` refused while it is locked out after wrong
    /// passwords (`refused` so far in this lockout; the caller writes one row per thousand).
    pub async fn audit_link_throttled(
        &self,
        token: &str,
        refused: u32,
        remote: Option<String>,
    ) -> Result<()> {
        let client = self.inner.pool.get().await?;
        let Some(row) = client
            .cquery_opt("SELECT id, owner_id FROM links WHERE token_hash = $1", &[&token_hash(token)])
            .await?
        else {
            return Ok(());
        };
        let (id, owner): (i64, i64) = (row.get(0), row.get(1));
        let actor = Actor { origin: Origin::Rest, name: format!("link:{id}"), remote };
        let detail = format!("link {id}, {refused} attempts refused while locked out after wrong passwords");
        audit(
            &client,
            Some(crate::UserId(owner)),
            &actor,
            "link.throttled",
            None,
            Some(&detail),
            self.clock().now(),
        )
        .await
    }

    /// The entries of an upload-only link are not shown; its files are not served.
    fn readable(a: &LinkAccess) -> Result<()> {
        match a.upload_only {
            true => Err(no_link()),
            false => Ok(()),
        }
    }

    /// Count one download of the link (the last one allowed ends it) and audit it.
    async fn count_download(
        &self,
        a: &LinkAccess,
        path: &VPath,
        what: &str,
        remote: Option<String>,
    ) -> Result<()> {
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let counted = client
            .cexecute(
                "UPDATE links SET downloads_left = downloads_left - 1
                 WHERE id = $1 AND (downloads_left IS NULL OR downloads_left > 0)",
                &[&a.id],
            )
            .await?;
        if counted == 0 {
            return Err(no_link());
        }
        let detail = format!("link {}{what}", a.id);
        audit(
            &client,
            Some(a.owner.id),
            &a.actor(remote),
            "link.download",
            Some(path.as_str()),
            Some(&detail),
            now,
        )
        .await
    }

    /// The linked folder (or file) at `sub` below the link's root, with its entries; paths
    /// relative to the link's root.
    pub async fn link_list(&self, a: &LinkAccess, sub: &VPath) -> Result<(Node, Vec<Node>)> {
        let path = a.inner(sub)?;
        if a.upload_only {
            return match sub.is_root() {
                true => Ok((a.outward(a.root.clone()), Vec::new())),
                false => Err(no_link()),
            };
        }
        let node = self.stat(&a.owner, &path).await.map_err(|_| no_link())?;
        let children = match node.is_dir {
            true => self.list(&a.owner, &path).await?.into_iter().map(|n| a.outward(n)).collect(),
            false => Vec::new(),
        };
        Ok((a.outward(node), children))
    }

    /// Open the file at `sub` below the link's root for download: counts one download (the last
    /// one allowed ends the link) and is audited under the link's name.
    pub async fn link_download(
        &self,
        a: &LinkAccess,
        sub: &VPath,
        remote: Option<String>,
    ) -> Result<(Node, File)> {
        let (node, file) = self.link_read(a, sub).await?;
        self.count_download(a, &a.inner(sub)?, "", remote).await?;
        Ok((node, file))
    }

    /// Open the file at `sub` below the link's root without counting a download (its preview,
    /// a file of a zip already counted).
    pub async fn link_read(&self, a: &LinkAccess, sub: &VPath) -> Result<(Node, File)> {
        Self::readable(a)?;
        let path = a.inner(sub)?;
        let (node, file) = self.open_file(&a.owner, &path).await.map_err(|e| match e.kind() {
            ErrorKind::NotFound => no_link(),
            _ => e,
        })?;
        Ok((a.outward(node), file))
    }

    /// Everything below the folder at `sub` (paths relative to the link's root, parents first),
    /// for a zip of it: counts as one download, audited.
    pub async fn link_zip(
        &self,
        a: &LinkAccess,
        sub: &VPath,
        remote: Option<String>,
    ) -> Result<(Node, Vec<Node>)> {
        Self::readable(a)?;
        let path = a.inner(sub)?;
        let folder = self.stat(&a.owner, &path).await.map_err(|_| no_link())?;
        if !folder.is_dir {
            return Err(Error::new(ErrorKind::NotADirectory, "a zip is of a folder"));
        }
        let nodes = self.list_tree(&a.owner, &path).await?;
        self.count_download(a, &path, ", zip", remote).await?;
        Ok((a.outward(folder), nodes.into_iter().map(|n| a.outward(n)).collect()))
    }

    /// Send a file named `name` into an upload-only link's folder: under that name if it is
    /// free, else `name (2)`, `name (3)`, ... (nothing is ever replaced); the owner's quota
    /// counts it. Audited under the link's name.
    pub async fn link_upload<R: tokio::io::AsyncRead + Unpin + Send>(
        &self,
        a: &LinkAccess,
        name: &str,
        body: R,
        expected_len: Option<u64>,
        remote: Option<String>,
    ) -> Result<Node> {
        if !a.upload_only {
            return Err(Error::new(ErrorKind::PermissionDenied, "this link does not take uploads"));
        }
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::new(ErrorKind::InvalidInput, "a file name, without folders"));
        }
        let first = a.root.path.join(name)?;
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
            _ => (name, String::new()),
        };
        let mut path = first.clone();
        let mut n = 1;
        while self.stat(&a.owner, &path).await.is_ok() {
            n += 1;
            if n > 1000 {
                return Err(Error::new(ErrorKind::AlreadyExists, "too many files of that name"));
            }
            path = a.root.path.join(&format!("{stem} ({n}){ext}"))?;
        }
        let actor = a.actor(remote);
        let opts = WriteOptions { create_only: true, expected_len, ..WriteOptions::default() };
        let out = self.write(&actor, &a.owner, &path, body, opts).await?;
        let client = self.inner.pool.get().await?;
        let detail = format!("link {}, {} bytes", a.id, out.node.size);
        audit(
            &client,
            Some(a.owner.id),
            &actor,
            "link.upload",
            Some(path.as_str()),
            Some(&detail),
            self.clock().now(),
        )
        .await?;
        Ok(a.outward(out.node))
    }
}
