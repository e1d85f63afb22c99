//! Chunked uploads (the Nextcloud clients' "NG" and v2 protocols): a client names a transfer,
//! sends its chunks in any order, concurrently, over as many connections and days as it needs,
//! then asks for them to be assembled at a path of its tree.
//!
//! A transfer is a row in `chunked_uploads` and a folder `.cairn/chunks/<id>` holding one file
//! per chunk, each written to a temporary name, fsynced and renamed into place, so a chunk the
//! server acknowledged survives a crash and a chunk cut off midway never appears. The quota
//! holds the larger of the announced total and the bytes received until the transfer is
//! assembled, deleted or expires ([`UPLOAD_TTL`] after its last chunk). Assembly concatenates
//! the chunks in natural order (`2` before `10`, whatever the padding) into a staging file,
//! hashing them on the way (flat memory at any size), checks the total and the client's
//! checksum, and commits an ordinary write: versioned, journaled, under the write's
//! conditions. Any refusal keeps the chunks, so the client may try again.

use std::cmp::Ordering;
use std::io::{Read, Write};

use tokio::io::AsyncRead;

use crate::db::Cached;
use crate::disk::{layout, random_hex};
use crate::path::VPath;
use crate::staging::{Content, Staging};
use crate::txn::audit;
use crate::types::{Actor, ContentHash, Timestamp, User, WriteOptions, WriteOutcome};
use crate::uploads::UPLOAD_TTL;
use crate::{Error, ErrorKind, Result, Store, blocking, detached};

/// A chunked upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedUpload {
    /// The client's name for it (its transfer id).
    pub name: String,
    /// The total length the client announced, if it did.
    pub total_length: Option<u64>,
    /// Where the client said the file goes, if it did (v2).
    pub destination: Option<VPath>,
    /// Bytes in the chunks received so far.
    pub received: u64,
    /// When it expires unless a chunk arrives.
    pub expires_at: Timestamp,
    /// Its folder's name on disk.
    id: String,
}

/// One chunk received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The client's name for it.
    pub name: String,
    /// Its length.
    pub size: u64,
    /// When it arrived.
    pub mtime: Timestamp,
}

/// Transfer ids and chunk names: a single path segment of letters, digits, `.`, `_` and `-`,
/// not starting with a dot (so never `.file`, the name of the assembled file).
fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    match valid_name(name) {
        true => Ok(()),
        false => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("invalid {what} {name:?}: letters, digits, '.', '_' and '-', not starting with '.'"),
        )),
    }
}

/// Natural order: runs of digits compare as numbers (`2` < `10` < `0011`), the rest bytewise.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let run = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (ra, rb) = (run(a), run(b));
                let trim = |s: &[u8]| {
                    let z = s.iter().take_while(|&&c| c == b'0').count();
                    s[z.min(s.len().saturating_sub(1))..].to_vec()
                };
                let (na, nb) = (trim(&a[..ra]), trim(&b[..rb]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(&nb)).then_with(|| ra.cmp(&rb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (&a[ra..], &b[rb..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

const COLS: &str = "id, name, total_length, destination, received, expires_at";

fn from_row(row: &tokio_postgres::Row) -> Result<ChunkedUpload> {
    Ok(ChunkedUpload {
        id: row.get(0),
        name: row.get(1),
        total_length: row.get::<_, Option<i64>>(2).map(|n| n as u64),
        destination: row.get::<_, Option<&str>>(3).map(VPath::parse).transpose()?,
        received: row.get::<_, i64>(4) as u64,
        expires_at: Timestamp(row.get(5)),
    })
}

fn not_found(name: &str) -> Error {
    Error::not_found(format!("upload {name}"))
}

/// The chunks in `dir` (blocking), in natural order; temporary files are not chunks.
fn list_chunks(store: &Store, dir: &str) -> Result<Vec<Chunk>> {
    let entries = store.inner.disk.read_dir(dir).map_err(|e| Error::io("listing chunks", e))?;
    let mut chunks: Vec<Chunk> = entries
        .into_iter()
        .filter_map(|(name, meta)| {
            let name = String::from_utf8(name).ok()?;
            valid_name(&name).then_some(Chunk { name, size: meta.size, mtime: Timestamp(meta.mtime_ns) })
        })
        .collect();
    chunks.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(chunks)
}

impl Store {
    /// Start the chunked upload `name` (the client's transfer id). With the total length
    /// announced, a quota that cannot hold it refuses at once. `AlreadyExists` if the user has
    /// an upload of that name (its chunks stay: clients re-announce a transfer they resume).
    pub async fn create_chunked(
        &self,
        actor: &Actor,
        user: &User,
        name: &str,
        total_length: Option<u64>,
        destination: Option<&VPath>,
    ) -> Result<ChunkedUpload> {
        check_name("upload id", name)?;
        if total_length.is_some_and(|n| n > i64::MAX as u64) {
            return Err(Error::new(ErrorKind::InvalidInput, "total length too large"));
        }
        if let (Some(total), true) = (total_length, user.quota.is_some()) {
            let replaced = match destination {
                Some(p) => self.stat(user, p).await.map(|n| n.size).unwrap_or(0),
                None => 0,
            };
            if let Some(limit) = self.write_limit(user, replaced).await?
                && total > limit
            {
                return Err(Error::quota(total, limit));
            }
        }
        let id = random_hex(16);
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "INSERT INTO chunked_uploads (id, user_id, name, total_length, destination, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, name) DO NOTHING RETURNING {COLS}"
                ),
                &[
                    &id,
                    &user.id.0,
                    &name,
                    &total_length.map(|n| n as i64),
                    &destination.map(|p| p.as_str()),
                    &now.0,
                    &(now.0 + UPLOAD_TTL.as_nanos() as i64),
                ],
            )
            .await?
            .ok_or_else(|| Error::new(ErrorKind::AlreadyExists, format!("upload {name} exists")))?;
        let up = from_row(&row)?;
        let store = self.clone();
        let dir = layout::chunks(&up.id);
        blocking(move || store.inner.disk.mkdir(&dir).map_err(|e| Error::io("creating upload folder", e)))
            .await?;
        let detail = total_length.map(|n| format!("{n} bytes, chunked"));
        audit(
            &client,
            Some(user.id),
            actor,
            "upload.create",
            destination.map(|p| p.as_str()),
            detail.as_deref(),
            now,
        )
        .await?;
        Ok(up)
    }

    /// The user's chunked upload `name` and its chunks (`NotFound` for anyone else's, or an
    /// expired one).
    pub async fn chunked(&self, user: &User, name: &str) -> Result<(ChunkedUpload, Vec<Chunk>)> {
        let up = self.chunked_row(user, name).await?;
        let (store, dir) = (self.clone(), layout::chunks(&up.id));
        let chunks = blocking(move || list_chunks(&store, &dir)).await?;
        Ok((up, chunks))
    }

    async fn chunked_row(&self, user: &User, name: &str) -> Result<ChunkedUpload> {
        if !valid_name(name) {
            return Err(not_found(name));
        }
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT {COLS} FROM chunked_uploads WHERE user_id = $1 AND name = $2 AND expires_at > $3"
                ),
                &[&user.id.0, &name, &self.clock().now().0],
            )
            .await?
            .ok_or_else(|| not_found(name))?;
        from_row(&row)
    }

    /// Receive chunk `chunk` of upload `name` (replacing a chunk of that name). `len` is the
    /// announced length: a body of another length is refused, as is one the quota cannot hold.
    pub async fn put_chunk<R: AsyncRead + Unpin + Send>(
        &self,
        user: &User,
        name: &str,
        chunk: &str,
        mut body: R,
        len: Option<u64>,
    ) -> Result<Chunk> {
        check_name("chunk name", chunk)?;
        let up = self.chunked_row(user, name).await?;
        let dir = layout::chunks(&up.id);
        let rel = format!("{dir}/{chunk}");
        let (store, rel2) = (self.clone(), rel.clone());
        let replaced =
            blocking(move || Ok(store.inner.disk.stat(&rel2).ok().flatten().map_or(0, |m| m.size))).await?;
        // What this chunk may bring: the room left, plus what the upload has reserved and not
        // yet received, plus the chunk it replaces.
        let allowance = match user.quota {
            Some(_) => self
                .write_limit(user, 0)
                .await?
                .map(|room| room + up.total_length.unwrap_or(0).saturating_sub(up.received) + replaced),
            None => None,
        };
        if let (Some(a), Some(l)) = (allowance, len)
            && l > a
        {
            return Err(Error::quota(l, a));
        }
        let tmp = format!("{dir}/.part-{}", random_hex(8));
        let (store, tmp2) = (self.clone(), tmp.clone());
        let file = blocking(move || {
            store.inner.disk.open_rw(&tmp2, true).map_err(|e| Error::io("creating chunk", e))
        })
        .await?;
        let guard = Staging { store: self.clone(), rel: Some(tmp.clone()) };
        let check = |_: &[u8], n: u64| {
            if let Some(a) = allowance
                && n > a
            {
                return Err(Error::quota_outgrown(a));
            }
            if len.is_some_and(|l| n > l) {
                return Err(Error::new(ErrorKind::InvalidInput, "chunk longer than announced"));
            }
            Ok(())
        };
        let (n, file) = crate::staging::pump(&mut body, file, &tmp, Vec::new(), check).await?;
        if len.is_some_and(|l| n != l) {
            return Err(Error::new(ErrorKind::InvalidInput, "chunk shorter than announced"));
        }
        let (store, dir2) = (self.clone(), dir.clone());
        let (received, mtime) = blocking(move || {
            file.sync_all().map_err(|e| Error::io("fsync chunk", e))?;
            store.inner.disk.rename(&tmp, &rel).map_err(|e| Error::io("placing chunk", e))?;
            store.inner.disk.fsync_dir(&dir2).map_err(|e| Error::io("fsync upload folder", e))?;
            let chunks = list_chunks(&store, &dir2)?;
            let mtime = chunks.iter().find(|c| c.name == chunk_name(&rel)).map_or(Timestamp(0), |c| c.mtime);
            Ok((chunks.iter().map(|c| c.size).sum::<u64>(), mtime))
        })
        .await?;
        let mut guard = guard;
        guard.rel = None;
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        client
            .cexecute(
                "UPDATE chunked_uploads SET received = $2, expires_at = $3 WHERE id = $1",
                &[&up.id, &(received as i64), &(now.0 + UPLOAD_TTL.as_nanos() as i64)],
            )
            .await?;
        Ok(Chunk { name: chunk.to_owned(), size: n, mtime })
    }

    /// Remove one chunk (clients drop chunks they will send again).
    pub async fn delete_chunk(&self, user: &User, name: &str, chunk: &str) -> Result<()> {
        let up = self.chunked_row(user, name).await?;
        if !valid_name(chunk) {
            return Err(Error::not_found(format!("chunk {chunk}")));
        }
        let (store, dir) = (self.clone(), layout::chunks(&up.id));
        let chunk = chunk.to_owned();
        let received = blocking(move || {
            let rel = format!("{dir}/{chunk}");
            if store.inner.disk.stat(&rel).map_err(|e| Error::io("chunk", e))?.is_none() {
                return Err(Error::not_found(format!("chunk {chunk}")));
            }
            store.inner.disk.remove(&rel).map_err(|e| Error::io("removing chunk", e))?;
            Ok(list_chunks(&store, &dir)?.iter().map(|c| c.size).sum::<u64>())
        })
        .await?;
        let client = self.inner.pool.get().await?;
        client
            .cexecute("UPDATE chunked_uploads SET received = $2 WHERE id = $1", &[&up.id, &(received as i64)])
            .await?;
        Ok(())
    }

    /// Abandon upload `name`: its chunks and its reservation go.
    pub async fn delete_chunked(&self, actor: &Actor, user: &User, name: &str) -> Result<()> {
        let up = self.chunked_row(user, name).await?;
        let client = self.inner.pool.get().await?;
        client.cexecute("DELETE FROM chunked_uploads WHERE id = $1", &[&up.id]).await?;
        audit(
            &client,
            Some(user.id),
            actor,
            "upload.delete",
            up.destination.as_ref().map(|p| p.as_str()),
            None,
            self.clock().now(),
        )
        .await?;
        drop(client);
        let (store, dir) = (self.clone(), layout::chunks(&up.id));
        blocking(move || store.inner.disk.remove(&dir).map_err(|e| Error::io("removing upload", e))).await
    }

    /// Assemble upload `name` into the file at `path`, under `opts` (conditions, mtime,
    /// checksum). `total` (or the length announced at creation) must be the chunks' sum.
    /// On success the upload is gone; on any refusal its chunks stay.
    pub async fn assemble_chunked(
        &self,
        actor: &Actor,
        user: &User,
        name: &str,
        path: &VPath,
        opts: WriteOptions,
        total: Option<u64>,
    ) -> Result<WriteOutcome> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::IsADirectory, "the root is a folder"));
        }
        let (up, chunks) = self.chunked(user, name).await?;
        let sum: u64 = chunks.iter().map(|c| c.size).sum();
        if let Some(want) = total.or(up.total_length)
            && want != sum
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("chunks on server do not sum up to {want} but to {sum} bytes"),
            ));
        }
        // The path as the user sees it: below a share (an editor's) it lands in the owner's tree.
        let (owner, target) = self.view(user).write_target(path).await?;
        // Refuse early what the commit would refuse, before copying a large file.
        let current = match self.stat(&owner, &target).await {
            Ok(n) => Some(n),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        crate::write::check_write_preconditions(path, current.as_ref(), &opts)?;
        let (store, dir, checksum, mtime) =
            (self.clone(), layout::chunks(&up.id), opts.checksum.clone(), opts.mtime);
        let (staging, content) = blocking(move || {
            let (staging, mut out) = Staging::create(&store)?;
            let mut hasher = blake3::Hasher::new();
            let mut digest = checksum.as_ref().map(|c| c.digester());
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            for c in &chunks {
                let rel = format!("{dir}/{}", c.name);
                let mut f = store.inner.disk.open_read(&rel).map_err(|e| Error::io("reading chunk", e))?;
                loop {
                    let n = f.read(&mut buf).map_err(|e| Error::io("reading chunk", e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    if let Some(d) = &mut digest {
                        d.update(&buf[..n]);
                    }
                    out.write_all(&buf[..n]).map_err(|e| Error::io("assembling upload", e))?;
                    if size / (8 << 20) != (size + n as u64) / (8 << 20) {
                        crate::disk::start_writeback(&out, size & !((8 << 20) - 1), 8 << 20);
                    }
                    size += n as u64;
                }
            }
            if let (Some(c), Some(d)) = (&checksum, digest) {
                c.verify(d)?;
            }
            let mtime = crate::staging::seal(&out, mtime)?;
            let content = Content {
                staging: staging.rel().to_owned(),
                size,
                mtime,
                hash: ContentHash(*hasher.finalize().as_bytes()),
                logged: None,
            };
            Ok((staging, content))
        })
        .await?;
        let (store, actor, user, path, checksum) =
            (self.clone(), actor.clone(), owner, target, opts.checksum.clone());
        // To the end even if the request goes away: the commit and the upload's removal.
        detached(async move {
            let mut staging = staging;
            let hash = content.hash;
            let out = store.commit_content(&actor, &user, &path, content, opts, &mut staging).await?;
            drop(staging);
            let client = store.inner.pool.get().await?;
            client.cexecute("DELETE FROM chunked_uploads WHERE id = $1", &[&up.id]).await?;
            drop(client);
            if let Some(c) = &checksum {
                store.remember_checksum(&hash, c).await;
            }
            let (s, dir) = (store.clone(), layout::chunks(&up.id));
            if let Err(e) =
                blocking(move || s.inner.disk.remove(&dir).map_err(|e| Error::io("removing upload", e))).await
            {
                tracing::warn!(error = %e, "could not remove an assembled upload's chunks (expiry will)");
            }
            Ok(out)
        })
        .await
    }

    /// Drop expired chunked uploads, and chunk folders without a row. Returns how many went.
    pub(crate) async fn expire_chunked(&self) -> Result<usize> {
        let client = self.inner.pool.get().await?;
        let now = self.clock().now();
        let expired: std::collections::HashSet<String> = client
            .cquery("DELETE FROM chunked_uploads WHERE expires_at <= $1 RETURNING id", &[&now.0])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let live: std::collections::HashSet<String> =
            client.cquery("SELECT id FROM chunked_uploads", &[]).await?.iter().map(|r| r.get(0)).collect();
        drop(client);
        let store = self.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            let mut removed = 0;
            for (name, meta) in disk.read_dir(layout::CHUNKS).map_err(|e| Error::io("listing uploads", e))? {
                let name = String::from_utf8_lossy(&name).into_owned();
                // A folder made a moment ago may be waiting for its row.
                let young = crate::disk::wall_now().0 - meta.mtime_ns < 60_000_000_000;
                if live.contains(&name) || (young && !expired.contains(&name)) {
                    continue;
                }
                disk.remove(&layout::chunks(&name)).map_err(|e| Error::io("removing upload", e))?;
                removed += 1;
            }
            Ok(removed)
        })
        .await
    }
}

fn chunk_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec!["10", "2", "0000000000000001", "1", "00001", "3-4", "3-10", "a", "b2", "b10"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["1", "00001", "0000000000000001", "2", "3-4", "3-10", "10", "a", "b2", "b10"]);
    }

    #[test]
    fn names() {
        for ok in ["4138558282", "0000000000000001", "00001-00010", "a1b2c3d4-uuid", "x.y_z"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".file", "..", "a/b", "a b", "%2e", &"1".repeat(129)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
