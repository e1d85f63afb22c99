//! Content on its way in: a staging file guarded until its transaction commits, a request body
//! pumped into it, and the seal (mtime, fsync) that makes it durable before the commit names it.

use std::fs::File;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::types::{ContentHash, Timestamp};
use crate::{Error, ErrorKind, Result, Store};

/// Removes a staging file unless disarmed: once a transaction that names it commits, it belongs
/// to that transaction's intent and must stay for the replay.
pub(crate) struct Staging {
    pub(crate) store: Store,
    pub(crate) rel: Option<String>,
}

impl Staging {
    /// A new, empty staging file and its guard (blocking).
    pub(crate) fn create(store: &Store) -> Result<(Staging, File)> {
        let (rel, file) = store.inner.disk.create_staging().map_err(|e| Error::io("staging", e))?;
        Ok((Staging { store: store.clone(), rel: Some(rel) }, file))
    }

    /// The staging file's name (until disarmed).
    pub(crate) fn rel(&self) -> &str {
        self.rel.as_deref().expect("a staging file until disarmed")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(rel) = self.rel.take() {
            let _ = self.store.inner.disk.remove(&rel);
        }
    }
}

/// Content staged and fsynced, ready to commit.
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub(crate) staging: String,
    pub(crate) size: u64,
    pub(crate) mtime: Timestamp,
    pub(crate) hash: ContentHash,
    /// The bytes, for a small write logged in its intent (staged without an fsync).
    pub(crate) logged: Option<Arc<[u8]>>,
}

/// Bodies up to this size are read into memory before staging (see [`Store::write`]).
pub(crate) const SMALL_BODY: usize = 64 * 1024;

/// Copy a request body into a staging file (opened as `rel`), after `head` (the start of the
/// body, already read and shown to `each`), showing each chunk and the running total to `each`
/// first (an error from it stops the copy). Returns the length and the file, flushed but not
/// yet fsynced.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    body: &mut R,
    file: File,
    rel: &str,
    head: Vec<u8>,
    mut each: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<(u64, File)> {
    // Reads are gathered into 1 MiB batches, and each batch is written on the blocking pool
    // while the next one is read: receiving and writing overlap, and a large upload costs one
    // pool trip per MiB instead of one per network read.
    const BATCH: usize = 1024 * 1024;
    /// A batch being written: gives back the file and the emptied buffer.
    type Writing = tokio::task::JoinHandle<(File, Vec<u8>, std::io::Result<()>)>;
    async fn written(w: Writing, rel: &str) -> Result<(File, Vec<u8>)> {
        let (file, buf, res) = w.await.map_err(|e| Error::internal(format!("write task failed: {e}")))?;
        res.map_err(|e| Error::io(format!("writing {rel}"), e))?;
        Ok((file, buf))
    }
    let mut buf = head;
    buf.reserve(BATCH.saturating_sub(buf.len()));
    let mut spare: Vec<u8> = Vec::with_capacity(BATCH);
    let mut file = Some(file);
    let mut writing: Option<Writing> = None;
    let mut total = buf.len() as u64;
    loop {
        let eof = fill(body, &mut buf, BATCH, &mut total, &mut each).await?;
        if let Some(w) = writing.take() {
            let (f, done) = written(w, rel).await?;
            file = Some(f);
            spare = done;
        }
        if !buf.is_empty() {
            let mut f = file.take().expect("the file is back from the last write");
            let data = std::mem::replace(&mut buf, std::mem::take(&mut spare));
            let at = total - data.len() as u64;
            writing = Some(tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let res = f.write_all(&data);
                if res.is_ok() && data.len() >= BATCH {
                    crate::disk::start_writeback(&f, at, data.len() as u64);
                }
                let mut data = data;
                data.clear();
                (f, data, res)
            }));
        }
        if eof {
            break;
        }
    }
    if let Some(w) = writing.take() {
        file = Some(written(w, rel).await?.0);
    }
    Ok((total, file.expect("the file is back")))
}

/// Read `body` into `buf` until it holds `up_to` bytes or the body ends (then `true`), adding
/// what is read to `total` and showing each read and the new total to `each` first.
pub(crate) async fn fill<R: AsyncRead + Unpin>(
    body: &mut R,
    buf: &mut Vec<u8>,
    up_to: usize,
    total: &mut u64,
    each: &mut impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<bool> {
    while buf.len() < up_to {
        let n = body
            .read_buf(buf)
            .await
            .map_err(|e| Error::new(ErrorKind::InvalidInput, "the upload was interrupted").with_source(e))?;
        if n == 0 {
            return Ok(true);
        }
        *total += n as u64;
        each(&buf[buf.len() - n..], *total)?;
    }
    Ok(false)
}

/// Make staged content durable: give it `mtime` (if any), fsync it, and return the
/// modification time it now has (blocking).
pub(crate) fn seal(file: &File, mtime: Option<Timestamp>) -> Result<Timestamp> {
    seal_as(file, mtime, true)
}

/// [`seal`], with the fsync only if `sync`.
pub(crate) fn seal_as(file: &File, mtime: Option<Timestamp>, sync: bool) -> Result<Timestamp> {
    if let Some(t) = mtime {
        file.set_modified(t.to_system()).map_err(|e| Error::io("set mtime", e))?;
    }
    if sync {
        file.sync_all().map_err(|e| Error::io("fsync", e))?;
    }
    let meta = file.metadata().map_err(|e| Error::io("stat", e))?;
    use std::os::unix::fs::MetadataExt;
    Ok(Timestamp(meta.mtime() * 1_000_000_000 + meta.mtime_nsec()))
}
