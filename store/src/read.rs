//! Reading: stat, listings, search, and opening a file's content (racing commits safely).

use std::fs::File;
use std::sync::Arc;

use crate::db::Cached;
use crate::disk::{Disk, layout};
use crate::path::VPath;
use crate::rows::{NODE_COLS, node_from_row};
use crate::types::{FileId, Node, User};
use crate::{Error, ErrorKind, Result, Store, blocking};

impl Store {
    /// The live file or folder at `path`.
    pub async fn stat(&self, user: &User, path: &VPath) -> Result<Node> {
        let ticket = match self.inner.cache.get(user.id, path.as_str()) {
            Ok(Some(node)) => return Ok(node),
            Ok(None) => return Err(Error::not_found(path)),
            Err(ticket) => ticket,
        };
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND path = $2 AND trash_id IS NULL"
                ),
                &[&user.id.0, &path.as_str()],
            )
            .await?;
        let node = row.as_ref().map(node_from_row).transpose()?;
        if let Some(ticket) = ticket {
            self.inner.cache.put(user.id, ticket, path.as_str(), node.as_ref());
        }
        node.ok_or_else(|| Error::not_found(path))
    }

    /// The live file or folder with id `id` (only the user's own).
    pub async fn stat_id(&self, user: &User, id: FileId) -> Result<Node> {
        let ticket = match self.inner.cache.get_id(user.id, id) {
            Ok(node) => return Ok(node),
            Err(ticket) => ticket,
        };
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND id = $2 AND trash_id IS NULL"),
                &[&user.id.0, &id.0],
            )
            .await?
            .ok_or_else(|| Error::not_found(format!("file id {id}")))?;
        let node = node_from_row(&row)?;
        if let Some(ticket) = ticket {
            self.inner.cache.put(user.id, ticket, node.path.as_str(), Some(&node));
        }
        Ok(node)
    }

    /// The entries of the folder at `path`, by name.
    pub async fn list(&self, user: &User, path: &VPath) -> Result<Vec<Node>> {
        Ok(self.children(user, path).await?.as_ref().clone())
    }

    /// [`Store::list`] without the copy: the listing as the cache shares it (a PROPFIND of a
    /// 1,000-entry folder renders it and drops it).
    pub async fn children(&self, user: &User, path: &VPath) -> Result<Arc<Vec<Node>>> {
        let ticket = match self.inner.cache.get_children(user.id, path.as_str()) {
            Ok(children) => return Ok(children),
            Err(ticket) => ticket,
        };
        let dir = self.stat(user, path).await?;
        if !dir.is_dir {
            return Err(Error::new(ErrorKind::NotADirectory, format!("{path} is not a folder")));
        }
        let client = self.inner.pool.get().await?;
        // Byte order whatever the database's collation: the cache inserts into listings in it.
        let rows = client
            .cquery(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE parent_id = $1 AND trash_id IS NULL ORDER BY name COLLATE \"C\""
                ),
                &[&dir.id.0],
            )
            .await?;
        let children = Arc::new(rows.iter().map(node_from_row).collect::<Result<Vec<_>>>()?);
        if let Some(ticket) = ticket {
            self.inner.cache.put_children(user.id, ticket, &dir, &children);
        }
        Ok(children)
    }

    /// Live files and folders whose name contains `needle` (case-insensitive), by path, at most
    /// `limit` of them.
    pub async fn search(&self, user: &User, needle: &str, limit: i64) -> Result<Vec<Node>> {
        // No name contains a NUL (paths refuse control characters), and PostgreSQL text cannot
        // hold one: such a search finds nothing rather than failing in the database.
        if needle.is_empty() || needle.contains('\0') {
            return Ok(Vec::new());
        }
        let pattern = format!(
            "%{}%",
            needle.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
        );
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL AND path <> ''
                       AND lower(name) LIKE $2 ORDER BY path LIMIT $3"
                ),
                &[&user.id.0, &pattern, &limit],
            )
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    /// The bytes of the files at `path` and below it (a folder's recursive size).
    pub async fn tree_size(&self, user: &User, path: &VPath) -> Result<u64> {
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                &format!(
                    "SELECT coalesce(sum(size), 0)::BIGINT FROM nodes WHERE user_id = $1 AND trash_id IS NULL AND NOT is_dir
                       AND {}",
                    match path.is_root() {
                        true => "$2::text IS NOT NULL",
                        false => "path > $2 || '/' AND path < $2 || '0'",
                    }
                ),
                &[&user.id.0, &path.as_str()],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// The folder at `path` and everything below it, by path (for `PROPFIND Depth: infinity`).
    pub async fn list_tree(&self, user: &User, path: &VPath) -> Result<Vec<Node>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                &format!(
                    "SELECT {NODE_COLS} FROM nodes WHERE user_id = $1 AND trash_id IS NULL
                       AND {} ORDER BY path",
                    // Two forms, so that a folder's subtree is an index range (see `subtree!`).
                    match path.is_root() {
                        true => "path <> $2",
                        false => "path > $2 || '/' AND path < $2 || '0'",
                    }
                ),
                &[&user.id.0, &path.as_str()],
            )
            .await?;
        rows.iter().map(node_from_row).collect()
    }

    /// Open the file at `path` for reading (seek for ranges). The metadata query and the open
    /// run at the same time; the database decides what exists. The file is the one its node
    /// describes (see `Reread` in this file).
    pub async fn open_file(&self, user: &User, path: &VPath) -> Result<(Node, File)> {
        let (node, file) = self.open_agreeing(user, path).await?;
        self.check_intact(&node)?;
        Ok((node, file))
    }

    async fn open_agreeing(&self, user: &User, path: &VPath) -> Result<(Node, File)> {
        let rel = layout::user_path(&user.name, path);
        let (node, file) = tokio::join!(self.stat(user, path), self.open_live(&rel));
        let (mut node, mut file) = (live_file(node?, path)?, file);
        let mut reread = Reread::new(&self.inner.placing, &rel);
        loop {
            match file {
                Ok(f) if agrees(&f, &node) => return Ok((node, f)),
                Ok(f) if reread.exhausted() => return Ok((node, f)),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound || reread.exhausted() => {
                    return Err(Error::io(format!("open {rel}"), e));
                }
                _ => reread.wait().await,
            }
            node = live_file(self.stat(user, path).await?, path)?;
            file = self.open_live(&rel).await;
        }
    }

    /// Open `rel` on the blocking pool (the error as the disk gave it: `NotFound` if missing).
    async fn open_live(&self, rel: &str) -> std::io::Result<File> {
        let (store, rel) = (self.clone(), rel.to_owned());
        blocking(move || Ok(store.inner.disk.open_read(&rel)))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }

    /// Like [`Store::open_file`], with the whole content as well when the file is at most
    /// `small` bytes and its bytes are in memory: held by the store (a recently read small file
    /// whose content is unchanged; then there is no open file), or its name and its bytes in the
    /// kernel's caches. That case is served on the calling task (a small GET then costs no trip
    /// to the blocking pool); anything that would wait for the disk is opened on the pool as
    /// usual, without the bytes. Either the file or the bytes, or both, are there.
    pub async fn open_small(
        &self,
        user: &User,
        path: &VPath,
        small: u64,
    ) -> Result<(Node, Option<File>, Option<Vec<u8>>)> {
        let (node, file, bytes) = self.open_small_agreeing(user, path, small).await?;
        self.check_intact(&node)?;
        Ok((node, file, bytes))
    }

    async fn open_small_agreeing(
        &self,
        user: &User,
        path: &VPath,
        small: u64,
    ) -> Result<(Node, Option<File>, Option<Vec<u8>>)> {
        let rel = layout::user_path(&user.name, path);
        let mut reread = Reread::new(&self.inner.placing, &rel);
        loop {
            let node = live_file(self.stat(user, path).await?, path)?;
            if node.size <= small {
                if let Some(bytes) = self.inner.hot.get(&node) {
                    return Ok((node, None, Some(bytes.to_vec())));
                }
                match self.inner.disk.open_read_cached(&rel) {
                    Ok(file) if agrees(&file, &node) || reread.exhausted() => {
                        let bytes = Disk::read_cached(&file, node.size as usize)
                            .map_err(|e| Error::io(format!("read {rel}"), e))?;
                        if let Some(b) = &bytes {
                            self.inner.hot.offer(&node, b);
                        }
                        return Ok((node, Some(file), bytes));
                    }
                    Ok(_) => {
                        reread.wait().await;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !reread.exhausted() => {
                        reread.wait().await;
                        continue;
                    }
                    Err(e) => return Err(Error::io(format!("open {rel}"), e)),
                }
            }
            match self.open_live(&rel).await {
                Ok(f) if agrees(&f, &node) || reread.exhausted() => return Ok((node, Some(f), None)),
                Err(e) if e.kind() != std::io::ErrorKind::NotFound || reread.exhausted() => {
                    return Err(Error::io(format!("open {rel}"), e));
                }
                _ => reread.wait().await,
            }
        }
    }
}

/// A live file's node, or `IsADirectory`.
fn live_file(node: Node, path: &VPath) -> Result<Node> {
    match node.is_dir {
        true => Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder"))),
        false => Ok(node),
    }
}

/// Whether the open `file` holds what `node` describes (its length: a commit that changed the
/// content gives the node a new length or a new file, see [`Reread`]).
fn agrees(file: &File, node: &Node) -> bool {
    file.metadata().is_ok_and(|m| m.len() == node.size)
}

/// Reading races committing: a commit updates the database first and moves files into place
/// after (the durable-write order's step 6), and the node cache hears of a commit made
/// elsewhere a moment later. A reader in between finds a node over another commit's file (of
/// another length), or no file while the old content moves to the versions. Such a reader looks
/// again until node and file agree: it gets the old content or the new one, never an error.
/// While a commit of this process is placing files at or above the path (see `placing`), it
/// waits for that, however long the machine takes; otherwise it looks again briefly, with
/// growing pauses. Past that limit (a file changed on disk behind the store's back, which
/// `scan` adopts) it takes the file as it is.
struct Reread<'a> {
    pause: std::time::Duration,
    deadline: std::time::Instant,
    /// Not even a commit still placing files is waited for past this.
    hard: std::time::Instant,
    placing: &'a crate::placing::Placing,
    rel: &'a str,
}

impl<'a> Reread<'a> {
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(2);
    const HARD_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

    fn new(placing: &'a crate::placing::Placing, rel: &'a str) -> Reread<'a> {
        let now = std::time::Instant::now();
        Reread {
            pause: std::time::Duration::from_micros(200),
            deadline: now + Reread::LIMIT,
            hard: now + Reread::HARD_LIMIT,
            placing,
            rel,
        }
    }

    fn exhausted(&self) -> bool {
        let now = std::time::Instant::now();
        now >= self.hard || (now >= self.deadline && !self.placing.covers(self.rel))
    }

    async fn wait(&mut self) {
        if self.placing.covers(self.rel) {
            self.placing.settled(self.rel, self.hard).await;
            // The commit is in place: what follows is a fresh race.
            self.deadline = self.deadline.max(std::time::Instant::now() + Reread::LIMIT).min(self.hard);
            return;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(std::time::Duration::from_millis(50));
    }
}
