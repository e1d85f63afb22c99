//! Delta transfers (see the `delta` crate for the format): the rsync signature of a stored
//! content, cached per content hash under `.cairn/signatures`; a new content built from a delta
//! against the current one and committed like any write; and a delta from a content the caller
//! has (an earlier version, named by its etag) to the current one.
//!
//! Stored contents are never changed in place (a write is a new file renamed into place), so
//! memory-mapping one is safe. Everything built from a delta is checked against the blake3 the
//! caller sent before it is committed.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};

use tokio::io::AsyncRead;

use crate::db::Cached;
use crate::disk::layout;
use crate::path::VPath;
use crate::staging::{Content, Staging, pump, seal};
use crate::types::{Actor, ContentHash, ETag, Node, Timestamp, User};
use crate::types::{WriteOptions, WriteOutcome};
use crate::{Error, ErrorKind, Result, Store, blocking, detached};

/// What [`Store::delta_from`] found.
#[derive(Debug)]
pub enum DeltaFrom {
    /// The caller already has the current content.
    Unchanged(Node),
    /// A delta from the caller's content to `node`'s, `len` bytes, in an unlinked file read
    /// from the start.
    Delta { node: Node, delta: File, len: u64 },
    /// No delta: the caller's etag names no content of this file that is still kept, or the
    /// delta would not be smaller than `max_ratio` of the content. Send the whole content.
    Full,
}

impl Store {
    /// The rsync signature of the current content of `path`, with the file it describes.
    pub async fn signature(&self, user: &User, path: &VPath) -> Result<(Node, Vec<u8>)> {
        let (node, file) = self.open_file(user, path).await?;
        let sig = self.signature_of(&node, file).await?;
        Ok((node, sig))
    }

    /// The signature of `file`, whose content is `node`'s: from the cache, or computed (and
    /// cached only if the bytes read hash to the node's content hash).
    async fn signature_of(&self, node: &Node, file: File) -> Result<Vec<u8>> {
        let Some(hash) = node.content_hash else {
            return Err(Error::new(ErrorKind::IsADirectory, format!("{} is a folder", node.path)));
        };
        let size = node.size;
        let store = self.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            let rel = layout::signature(&hash);
            if let Ok(mut f) = disk.open_read(&rel) {
                let mut sig = Vec::new();
                if f.read_to_end(&mut sig).is_ok() && delta::signature_block_size(&sig).is_ok() {
                    return Ok(sig);
                }
            }
            let mut reader = HashingReader {
                inner: std::io::BufReader::with_capacity(1 << 20, file),
                hasher: blake3::Hasher::new(),
            };
            let sig =
                delta::signature(&mut reader, size).map_err(|e| Error::io("reading for a signature", e))?;
            if *reader.hasher.finalize().as_bytes() != hash.0 {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "the file changed while its signature was computed; retry",
                ));
            }
            // A cache: written without fsync, replaced atomically; a lost one is recomputed.
            let (mut staged, mut f) = Staging::create(&store)?;
            if f.write_all(&sig).is_ok() && disk.rename(staged.rel(), &rel).is_ok() {
                staged.rel = None;
            }
            Ok(sig)
        })
        .await
    }

    /// Commit, as the new content of the file at `path`, the result of applying the delta read
    /// from `body` to its current content, which must have etag `base`. The result must hash to
    /// `expected`, or nothing changes ([`ErrorKind::ChecksumMismatch`]). Quota, versions,
    /// journal and audit are those of any write.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_delta<R: AsyncRead + Unpin + Send>(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        base: &ETag,
        mut body: R,
        expected: ContentHash,
        mtime: Option<Timestamp>,
    ) -> Result<WriteOutcome> {
        let (node, base_file) = self.open_file(user, path).await?;
        if &node.etag != base {
            return Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!("{path} is no longer at etag {}", base.0),
            ));
        }
        let limit = match user.quota {
            Some(_) => self.write_limit(user, node.size).await?,
            None => None,
        };
        // The delta is spooled first (it is read in any order while applying).
        let store = self.clone();
        let (delta_staging, file) = blocking(move || Staging::create(&store)).await?;
        let cap = limit.map(|l| l.saturating_add(l / 16).saturating_add(1 << 20));
        let (_, delta_file) = pump(&mut body, file, delta_staging.rel(), Vec::new(), |_, received| {
            if let (Some(c), Some(l)) = (cap, limit)
                && received > c
            {
                return Err(Error::quota_outgrown(l));
            }
            Ok(())
        })
        .await?;

        let store = self.clone();
        let base_tag = base.0.clone();
        let (content, staging) = blocking(move || {
            let (staging, out) = Staging::create(&store)?;
            let mut writer = HashingWriter {
                inner: BufWriter::with_capacity(1 << 20, out),
                hasher: blake3::Hasher::new(),
                len: 0,
            };
            match delta::apply_files(&base_file, &delta_file, &mut writer, limit.unwrap_or(u64::MAX)) {
                Ok(()) => {}
                Err(delta::Error::Io(e)) => return Err(Error::io("applying a delta", e)),
                Err(delta::Error::TooLarge(_)) => {
                    return Err(Error::quota_outgrown(limit.unwrap_or(u64::MAX)));
                }
                Err(e) => return Err(Error::new(ErrorKind::InvalidInput, e.to_string())),
            }
            let (hash, size) = (ContentHash(*writer.hasher.finalize().as_bytes()), writer.len);
            if hash != expected {
                return Err(Error::new(
                    ErrorKind::ChecksumMismatch,
                    format!(
                        "the delta applied to {base_tag} gives blake3 {}, not {}",
                        hash.to_hex(),
                        expected.to_hex()
                    ),
                ));
            }
            let out =
                writer.inner.into_inner().map_err(|e| Error::io("writing the result", e.into_error()))?;
            let mtime = seal(&out, mtime)?;
            Ok((Content { staging: staging.rel().to_owned(), size, mtime, hash, logged: None }, staging))
        })
        .await?;
        drop(delta_staging);
        let opts = WriteOptions { if_match: Some(node.etag.clone()), ..WriteOptions::default() };
        let (store, actor, user, path) = (self.clone(), actor.clone(), user.clone(), path.clone());
        detached(async move {
            let mut staging = staging;
            store.commit_content(&actor, &user, &path, content, opts, &mut staging).await
        })
        .await
    }

    /// A delta from the content of `path` that had etag `have` (the current one, or a version
    /// still kept) to the current content, if it is smaller than `max_ratio` of the content.
    pub async fn delta_from(
        &self,
        user: &User,
        path: &VPath,
        have: &ETag,
        max_ratio: f64,
    ) -> Result<DeltaFrom> {
        let (node, current) = self.open_file(user, path).await?;
        if &node.etag == have {
            return Ok(DeltaFrom::Unchanged(node));
        }
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                "SELECT id, size, content_hash FROM versions WHERE node_id = $1 AND user_id = $2 AND etag = $3
                 ORDER BY created_at DESC LIMIT 1",
                &[&node.id.0, &user.id.0, &have.0],
            )
            .await?;
        drop(client);
        let Some(row) = row else { return Ok(DeltaFrom::Full) };
        let (vid, vsize) = (crate::types::VersionId(row.get(0)), row.get::<_, i64>(1) as u64);
        let vhash = ContentHash::from_db(row.get(2))?;
        let store = self.clone();
        let vrel = layout::version_blob(&user.name, vid);
        let vfile =
            blocking(move || store.inner.disk.open_read(&vrel).map_err(|e| Error::io("open version", e)))
                .await?;
        let mut vnode = node.clone();
        (vnode.size, vnode.content_hash) = (vsize, Some(vhash));
        let sig = self.signature_of(&vnode, vfile).await?;
        let max = (node.size as f64 * max_ratio) as u64;
        let store = self.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            let (rel, file) = disk.create_staging().map_err(|e| Error::io("staging", e))?;
            // Unlinked at once: the handle is all the caller needs.
            drop(Staging { store: store.clone(), rel: Some(rel) });
            let mut out = BufWriter::with_capacity(1 << 20, file);
            match delta::diff_file(&sig, &current, &mut out, max) {
                Ok(len) => {
                    let mut file =
                        out.into_inner().map_err(|e| Error::io("writing a delta", e.into_error()))?;
                    file.rewind().map_err(|e| Error::io("rewind", e))?;
                    Ok(DeltaFrom::Delta { node, delta: file, len })
                }
                Err(delta::Error::TooLarge(_)) => Ok(DeltaFrom::Full),
                Err(delta::Error::Io(e)) => Err(Error::io("computing a delta", e)),
                Err(e) => Err(Error::new(ErrorKind::Internal, e.to_string())),
            }
        })
        .await
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Store {
    /// Remove cached signatures written more than `older_than` ago (they are recomputed on
    /// demand; this keeps the cache from keeping signatures of contents long gone).
    pub async fn expire_signatures(&self, older_than: std::time::Duration) -> Result<usize> {
        let store = self.clone();
        blocking(move || {
            let disk = &store.inner.disk;
            let cutoff = crate::disk::wall_now().0 - older_than.as_nanos().min(i64::MAX as u128) as i64;
            let mut removed = 0;
            for (name, meta) in
                disk.read_dir(layout::SIGNATURES).map_err(|e| Error::io("listing signatures", e))?
            {
                if meta.mtime_ns < cutoff {
                    let rel = format!("{}/{}", layout::SIGNATURES, String::from_utf8_lossy(&name));
                    disk.remove(&rel).map_err(|e| Error::io("removing a signature", e))?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}
