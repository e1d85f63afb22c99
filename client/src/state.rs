//! The local state database (SQLite): per synced folder, what both sides had at the last sync
//! (the base of the three-way comparison), unfinished uploads, and a few facts for `status`.

use std::path::Path;

use anyhow::Result;
use rusqlite::{Connection, OptionalExtension, params};

use crate::plan::Kind;

/// What the last sync saw at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub kind: Kind,
    /// The server's etag then.
    pub etag: String,
    /// The local file's size and mtime then (to reuse its hash while they are unchanged).
    pub size: u64,
    pub mtime_ns: i64,
}

pub struct State {
    db: Connection,
}

impl State {
    pub fn open(path: &Path) -> Result<State> {
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS base (
                 path TEXT PRIMARY KEY, is_dir INTEGER NOT NULL, hash TEXT, etag TEXT NOT NULL,
                 size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS uploads (path TEXT PRIMARY KEY, hash TEXT NOT NULL, url TEXT NOT NULL);",
        )?;
        Ok(State { db })
    }

    pub fn base(&self) -> Result<std::collections::BTreeMap<String, Base>> {
        let mut st = self.db.prepare("SELECT path, is_dir, hash, etag, size, mtime_ns FROM base")?;
        let rows = st.query_map([], |r| {
            let kind = if r.get::<_, bool>(1)? {
                Kind::Dir
            } else {
                Kind::File(r.get::<_, Option<String>>(2)?.unwrap_or_default())
            };
            Ok((
                r.get::<_, String>(0)?,
                Base { kind, etag: r.get(3)?, size: r.get::<_, i64>(4)? as u64, mtime_ns: r.get(5)? },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn set(&self, path: &str, b: &Base) -> Result<()> {
        let (is_dir, hash) = match &b.kind {
            Kind::Dir => (true, None),
            Kind::File(h) => (false, Some(h.as_str())),
        };
        self.db.execute(
            "INSERT INTO base (path, is_dir, hash, etag, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (path) DO UPDATE SET is_dir = ?2, hash = ?3, etag = ?4, size = ?5, mtime_ns = ?6",
            params![path, is_dir, hash, b.etag, b.size as i64, b.mtime_ns],
        )?;
        Ok(())
    }

    /// Forget `path` and everything below it.
    pub fn forget(&self, path: &str) -> Result<()> {
        self.db.execute(
            "DELETE FROM base WHERE path = ?1 OR (path > ?2 AND path < ?3)",
            params![path, format!("{path}/"), format!("{path}0")],
        )?;
        Ok(())
    }

    pub fn meta(&self, k: &str) -> Result<Option<String>> {
        Ok(self.db.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0)).optional()?)
    }

    pub fn set_meta(&self, k: &str, v: &str) -> Result<()> {
        self.db.execute(
            "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = ?2",
            params![k, v],
        )?;
        Ok(())
    }

    /// An unfinished upload of this content to this path.
    pub fn upload(&self, path: &str, hash: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .query_row("SELECT url FROM uploads WHERE path = ?1 AND hash = ?2", params![path, hash], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn set_upload(&self, path: &str, hash: &str, url: Option<&str>) -> Result<()> {
        match url {
            Some(u) => self.db.execute(
                "INSERT INTO uploads (path, hash, url) VALUES (?1, ?2, ?3) ON CONFLICT (path) DO UPDATE SET hash = ?2, url = ?3",
                params![path, hash, u],
            )?,
            None => self.db.execute("DELETE FROM uploads WHERE path = ?1", [path])?,
        };
        Ok(())
    }

    pub fn count(&self) -> Result<(u64, u64)> {
        Ok(self.db.query_row(
            "SELECT count(*) FILTER (WHERE NOT is_dir), count(*) FILTER (WHERE is_dir) FROM base",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }
}
