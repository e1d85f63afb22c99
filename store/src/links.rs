//! Public links: one of a user's folders or files, reachable by anyone holding the link's token —
//! 128 random bits, of which only the hash is kept — optionally behind a password (argon2id),
//! until an expiry, for a number of downloads. A token that is unknown, expired, used up,
//! revoked, or whose folder is in the trash is not found, all alike. Every download is audited
//! in the owner's log under the link's number.

use std::fs::File;

use crate::db::Cached;
use crate::path::VPath;
use crate::rows::{NODE_COLS, prefixed};
use crate::txn::audit;
use crate::types::{Actor, FileId, Node, Origin, Timestamp, User};
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
}

const LINK_SELECT: &str =
    "SELECT l.id, l.node_id, n.path, n.trash_id IS NULL, n.is_dir, l.password IS NOT NULL,
        l.expires_at, l.downloads_left, l.created_at FROM links l JOIN nodes n ON n.id = l.node_id";

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
    })
}

fn no_link() -> Error {
    Error::not_found("link")
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
        let node: i64 = client
            .cquery_opt(
                "SELECT id FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL",
                &[&owner.id.0, &path.as_str()],
            )
            .await?
            .ok_or_else(|| Error::not_found(path))?
            .get(0);
        let id: i64 = client
            .cquery_one(
                "INSERT INTO links (owner_id, node_id, token_hash, password, expires_at, downloads_left, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &owner.id.0,
                    &node,
                    &token_hash(&token),
                    &phc,
                    &opts.expires_at.map(|t| t.0),
                    &opts.max_downloads.map(|n| n as i32),
                    &now.0,
                ],
            )
            .await?
            .get(0);
        let detail = format!(
            "link {id}{}{}{}",
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
    /// found. With a password: `Unauthenticated` until the right one is given (the caller
    /// throttles and this audits wrong ones).
    pub async fn open_link(
        &self,
        token: &str,
        password: Option<&str>,
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
                    "SELECT l.id, l.password, {NODE_COLS_N}, {USER_COLS_O}
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
        let root = crate::rows::node_from_row_at(&row, 2)?;
        let owner = user_from_row_at(&row, 2 + NODE_COLS.split(", ").count())?;
        let access = LinkAccess { id, owner, root };
        if let Some(phc) = phc {
            let Some(given) = password.map(str::to_owned) else {
                return Err(Error::new(ErrorKind::Unauthenticated, "this link asks for a password"));
            };
            if !blocking(move || Ok(verify_password(&phc, &given))).await? {
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

    /// The linked folder (or file) at `sub` below the link's root, with its entries; paths
    /// relative to the link's root.
    pub async fn link_list(&self, a: &LinkAccess, sub: &VPath) -> Result<(Node, Vec<Node>)> {
        let path = a.inner(sub)?;
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
        let path = a.inner(sub)?;
        let (node, file) = self.open_file(&a.owner, &path).await.map_err(|e| match e.kind() {
            ErrorKind::NotFound => no_link(),
            _ => e,
        })?;
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
        audit(
            &client,
            Some(a.owner.id),
            &a.actor(remote),
            "link.download",
            Some(path.as_str()),
            Some(&format!("link {}", a.id)),
            now,
        )
        .await?;
        Ok((a.outward(node), file))
    }
}
