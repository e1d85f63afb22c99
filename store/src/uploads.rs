//! Resumable uploads (the storage half of tus 1.0): a file arrives in any number of appends,
//! survives dropped connections and restarts, and becomes a file of the user's tree when its
//! last byte arrives.
//!
//! The bytes received so far are a plain file at `.cairn/uploads/<id>`; the row in `uploads`
//! says how many of them are durable (`upload_offset` is only advanced after an fsync, so a
//! crash at any instant loses at most the append in flight, which the client re-sends from the
//! offset the server reports). The announced length is reserved against the quota until the
//! upload completes, is terminated or expires. Completion is an ordinary write commit: the
//! upload file is renamed into place in one transaction with its metadata, the content it
//! replaces becomes a version.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::sync::Mutex;
use std::time::Duration;

use sha2::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::db::Cached;
use crate::disk::{layout, random_hex};
use crate::path::VPath;
use crate::staging::{Content, Staging};
use crate::txn::audit;
use crate::types::{Actor, ContentHash, Timestamp, User};
use crate::types::{WriteOptions, WriteOutcome};
use crate::{Error, ErrorKind, Result, Store, blocking, detached};

/// An upload left alone this long expires (its bytes and its quota reservation go).
pub const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// A resumable upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Its id (32 hex digits), the last segment of its URL.
    pub id: String,
    /// Where the file appears when complete.
    pub path: VPath,
    /// The announced total length.
    pub length: u64,
    /// How many bytes are durably received.
    pub offset: u64,
    /// The metadata the client sent at creation (tus `Upload-Metadata`, verbatim).
    pub metadata: String,
    /// When it expires unless appended to.
    pub expires_at: Timestamp,
    /// The modification time the file gets (the client's), if given.
    pub mtime: Option<Timestamp>,
}

/// A checksum of one append (tus checksum extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// blake3, 32 bytes.
    Blake3(Vec<u8>),
    /// SHA-256, 32 bytes.
    Sha256(Vec<u8>),
}

/// What an append did.
#[derive(Debug, Clone)]
pub enum Appended {
    /// More bytes are expected.
    Partial(Upload),
    /// The last byte arrived and the file is committed.
    Complete(Upload, WriteOutcome),
}

/// In-process state of the uploads being appended to: one request at a time per upload, and
/// the blake3 of the bytes so far while appends follow each other (else the file is hashed at
/// completion). An upload has an entry only while a request holds it or its hash is known.
#[derive(Default)]
pub(crate) struct UploadSlots(Mutex<HashMap<String, Slot>>);

/// The blake3 state of an upload's first `.0` bytes.
type Hashed = (u64, blake3::Hasher);

enum Slot {
    /// A request holds the upload.
    Busy,
    /// Nobody holds it; the hash of its bytes so far is known.
    Idle(Box<Hashed>),
}

/// One request's hold on an upload; dropping it lets the next request in and keeps
/// `hashed` for it.
struct Claim<'a> {
    slots: &'a UploadSlots,
    id: String,
    hashed: Option<Hashed>,
}

impl UploadSlots {
    /// Hold upload `id`, or `Locked` while another request holds it.
    fn claim(&self, id: &str) -> Result<Claim<'_>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let hashed = match map.insert(id.to_owned(), Slot::Busy) {
            None => None,
            Some(Slot::Idle(h)) => Some(*h),
            Some(Slot::Busy) => {
                return Err(Error::new(ErrorKind::Locked, "another request is appending to this upload"));
            }
        };
        Ok(Claim { slots: self, id: id.to_owned(), hashed })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        match self.hashed.take() {
            Some(h) => map.insert(std::mem::take(&mut self.id), Slot::Idle(Box::new(h))),
            None => map.remove(&self.id),
        };
    }
}

const UPLOAD_COLS: &str = "id, path, length, upload_offset, metadata, expires_at, mtime_ns";

fn upload_from_row(row: &tokio_postgres::Row) -> Result<Upload> {
    Ok(Upload {
        id: row.get(0),
        path: VPath::parse(row.get(1))?,
        length: row.get::<_, i64>(2) as u64,
        offset: row.get::<_, i64>(3) as u64,
        metadata: row.get(4),
        expires_at: Timestamp(row.get(5)),
        mtime: row.get::<_, Option<i64>>(6).map(Timestamp),
    })
}

/// Upload ids are ours: 32 lowercase hex digits. Anything else is not an upload.
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("upload {}", if valid_id(id) { id } else { "" }))
}

impl Store {
    /// Start an upload of `length` bytes to `path` (missing parent folders are created at the
    /// end). Refused at once if the quota cannot hold it.
    pub async fn create_upload(
        &self,
        actor: &Actor,
        user: &User,
        path: &VPath,
        length: u64,
        metadata: &str,
        mtime: Option<Timestamp>,
    ) -> Result<Upload> {
        if path.is_root() {
            return Err(Error::new(ErrorKind::IsADirectory, "the root is a folder"));
        }
        if length > i64::MAX as u64 {
            return Err(Error::new(ErrorKind::InvalidInput, "Upload-Length too large"));
        }
        // Into a share: an editor's only (checked again when the last byte commits it).
        let (owner, target) = self.view(user).write_target(path).await?;
        let replaced = match self.stat(&owner, &target).await {
            Ok(n) if n.is_dir => {
                return Err(Error::new(ErrorKind::IsADirectory, format!("{path} is a folder")));
            }
            Ok(n) => n.size,
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if user.quota.is_some()
            && let Some(limit) = self.write_limit(user, replaced).await?
            && length > limit
        {
            return Err(Error::quota(length, limit));
        }
        let id = random_hex(16);
        let rel = layout::upload(&id);
        let store = self.clone();
        blocking(move || {
            store.inner.disk.open_rw(&rel, true).map(drop).map_err(|e| Error::io("creating upload", e))
        })
        .await?;
        let now = self.clock().now();
        let expires = Timestamp(now.0 + UPLOAD_TTL.as_nanos() as i64);
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                &format!(
                    "INSERT INTO uploads (id, user_id, path, length, metadata, mtime_ns, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {UPLOAD_COLS}"
                ),
                &[&id, &user.id.0, &path.as_str(), &(length as i64), &metadata, &mtime.map(|t| t.0), &now.0, &expires.0],
            )
            .await?;
        audit(
            &client,
            Some(user.id),
            actor,
            "upload.create",
            Some(path.as_str()),
            Some(&format!("{length} bytes")),
            now,
        )
        .await?;
        upload_from_row(&row)
    }

    /// The user's upload `id` (`NotFound` for anyone else's, or an expired one).
    pub async fn upload(&self, user: &User, id: &str) -> Result<Upload> {
        if !valid_id(id) {
            return Err(not_found(id));
        }
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                &format!(
                    "SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1 AND user_id = $2 AND expires_at > $3"
                ),
                &[&id, &user.id.0, &self.clock().now().0],
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        upload_from_row(&row)
    }

    /// Append `body` at `offset` (which must be the server's offset). Bytes that arrive before
    /// the connection drops are kept (unless a checksum was given: then the append is all or
    /// nothing). The last byte commits the file.
    pub async fn append_upload<R: AsyncRead + Unpin + Send>(
        &self,
        actor: &Actor,
        user: &User,
        id: &str,
        offset: u64,
        mut body: R,
        checksum: Option<Checksum>,
    ) -> Result<Appended> {
        if !valid_id(id) {
            return Err(not_found(id));
        }
        // Read the upload only once held: an append finishing just before must be seen.
        let mut claim = self.inner.uploads.claim(id)?;
        let up = self.upload(user, id).await?;
        if offset != up.offset {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("Upload-Offset {offset} does not match the server's offset {}", up.offset),
            ));
        }
        let rel = layout::upload(id);
        let store = self.clone();
        let rel2 = rel.clone();
        // Bytes past the durable offset (an append cut short by a crash) are dropped.
        let file = blocking(move || {
            let f = store.inner.disk.open_rw(&rel2, false).map_err(|e| Error::io("opening upload", e))?;
            f.set_len(offset).map_err(|e| Error::io("truncating upload", e))?;
            Ok(f)
        })
        .await?;
        let mut file = tokio::fs::File::from_std(file);
        file.seek(SeekFrom::Start(offset)).await.map_err(|e| Error::io("seeking upload", e))?;
        let mut whole = match claim.hashed.take() {
            Some((n, h)) if n == offset => Some(h),
            _ if offset == 0 => Some(blake3::Hasher::new()),
            _ => None,
        };
        let mut part_b3 = matches!(checksum, Some(Checksum::Blake3(_))).then(blake3::Hasher::new);
        let mut part_sha = matches!(checksum, Some(Checksum::Sha256(_))).then(sha2::Sha256::new);
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = offset;
        let mut failure = None;
        loop {
            let n = match body.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    failure = Some(
                        Error::new(ErrorKind::InvalidInput, "the upload was interrupted").with_source(e),
                    );
                    break;
                }
            };
            if pos + n as u64 > up.length {
                failure = Some(Error::new(ErrorKind::InvalidInput, "more bytes than Upload-Length"));
                break;
            }
            if let Err(e) = file.write_all(&buf[..n]).await {
                failure = Some(Error::io("writing upload", e));
                break;
            }
            if let Some(h) = whole.as_mut() {
                h.update(&buf[..n]);
            }
            if let Some(h) = part_b3.as_mut() {
                h.update(&buf[..n]);
            }
            if let Some(h) = part_sha.as_mut() {
                h.update(&buf[..n]);
            }
            pos += n as u64;
        }
        let sums_ok = match &checksum {
            None => true,
            Some(Checksum::Blake3(want)) => {
                part_b3.map(|h| h.finalize().as_bytes().to_vec()).as_ref() == Some(want)
            }
            Some(Checksum::Sha256(want)) => part_sha.map(|h| h.finalize().to_vec()).as_ref() == Some(want),
        };
        let keep = match (&failure, checksum.is_some()) {
            (Some(_), true) => offset,
            (None, true) if !sums_ok => offset,
            _ => pos,
        };
        file.flush().await.map_err(|e| Error::io("flushing upload", e))?;
        let file = file.into_std().await;
        blocking(move || {
            if keep != pos {
                file.set_len(keep).map_err(|e| Error::io("truncating upload", e))?;
            }
            file.sync_data().map_err(|e| Error::io("fsync upload", e))
        })
        .await?;
        if keep != offset {
            let now = self.clock().now();
            let client = self.inner.pool.get().await?;
            client
                .cexecute(
                    "UPDATE uploads SET upload_offset = $3, expires_at = $4 WHERE id = $1 AND user_id = $2",
                    &[&id, &user.id.0, &(keep as i64), &(now.0 + UPLOAD_TTL.as_nanos() as i64)],
                )
                .await?;
        }
        claim.hashed = if keep == pos { whole.map(|h| (pos, h)) } else { None };
        if let Some(e) = failure {
            return Err(e);
        }
        if !sums_ok {
            return Err(Error::new(
                ErrorKind::ChecksumMismatch,
                "Upload-Checksum does not match the bytes received",
            ));
        }
        let up = Upload { offset: keep, ..up };
        if keep < up.length {
            return Ok(Appended::Partial(up));
        }
        let hash = claim.hashed.take().map(|(_, h)| h);
        let out = self.complete_upload(actor, user, &up, hash).await?;
        Ok(Appended::Complete(up, out))
    }

    /// Commit a fully received upload at its path; the upload is gone afterwards either way.
    async fn complete_upload(
        &self,
        actor: &Actor,
        user: &User,
        up: &Upload,
        hash: Option<blake3::Hasher>,
    ) -> Result<WriteOutcome> {
        let mtime = up.mtime;
        let rel = layout::upload(&up.id);
        let store = self.clone();
        let rel2 = rel.clone();
        let (hash, mtime) = blocking(move || {
            let hash = match hash {
                Some(h) => ContentHash(*h.finalize().as_bytes()),
                None => crate::scan::hash_file(&store.inner.disk, &rel2)?,
            };
            let f = store.inner.disk.open_rw(&rel2, false).map_err(|e| Error::io("opening upload", e))?;
            // The bytes are durable already (each append is fsynced); this covers the mtime.
            Ok((hash, crate::staging::seal(&f, mtime)?))
        })
        .await?;
        let content = Content { staging: rel.clone(), size: up.length, mtime, hash, logged: None };
        let (store, actor, user, path, id) =
            (self.clone(), actor.clone(), user.clone(), up.path.clone(), up.id.clone());
        detached(async move {
            let mut staging = Staging { store: store.clone(), rel: Some(rel) };
            let opts = WriteOptions { create_parents: true, ..WriteOptions::default() };
            // The path as the user sees it: below a share it lands in the owner's tree.
            let res = match store.view(&user).write_target(&path).await {
                Ok((owner, target)) => {
                    store.commit_content(&actor, &owner, &target, content, opts, &mut staging).await
                }
                Err(e) => Err(e),
            };
            drop(staging);
            let client = store.inner.pool.get().await?;
            client.cexecute("DELETE FROM uploads WHERE id = $1", &[&id]).await?;
            res
        })
        .await
    }

    /// Terminate the user's upload `id`: its bytes and its reservation go.
    pub async fn delete_upload(&self, actor: &Actor, user: &User, id: &str) -> Result<()> {
        if !valid_id(id) {
            return Err(not_found(id));
        }
        let mut claim = self.inner.uploads.claim(id)?;
        let up = self.upload(user, id).await?;
        // Its hash goes with it.
        claim.hashed = None;
        let client = self.inner.pool.get().await?;
        client.cexecute("DELETE FROM uploads WHERE id = $1 AND user_id = $2", &[&id, &user.id.0]).await?;
        audit(
            &client,
            Some(user.id),
            actor,
            "upload.delete",
            Some(up.path.as_str()),
            None,
            self.clock().now(),
        )
        .await?;
        drop(client);
        let store = self.clone();
        let rel = layout::upload(id);
        blocking(move || store.inner.disk.remove(&rel).map_err(|e| Error::io("removing upload", e))).await?;
        Ok(())
    }

    /// Drop expired uploads, upload files without a row (a crash between creating the file
    /// and recording it) and rows without a file (a completion committed just before a crash).
    /// Returns how many uploads went.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let chunked = self.expire_chunked().await?;
        let client = self.inner.pool.get().await?;
        let now = self.clock().now();
        let expired: Vec<String> = client
            .cquery("DELETE FROM uploads WHERE expires_at <= $1 RETURNING id", &[&now.0])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let live: std::collections::HashSet<String> =
            client.cquery("SELECT id FROM uploads", &[]).await?.iter().map(|r| r.get(0)).collect();
        drop(client);
        let store = self.clone();
        let (gone_files, missing) = blocking(move || {
            let disk = &store.inner.disk;
            let entries = disk.read_dir(layout::UPLOADS).map_err(|e| Error::io("listing uploads", e))?;
            let mut seen = std::collections::HashSet::new();
            let mut removed = 0;
            for (name, _) in entries {
                let name = String::from_utf8_lossy(&name).into_owned();
                if live.contains(&name) {
                    seen.insert(name);
                    continue;
                }
                // Leave a file whose row is being written right now (created a moment ago).
                if !expired.contains(&name)
                    && let Ok(Some(meta)) = disk.stat(&layout::upload(&name))
                    && crate::disk::wall_now().0 - meta.mtime_ns < 60_000_000_000
                {
                    continue;
                }
                disk.remove(&layout::upload(&name)).map_err(|e| Error::io("removing upload", e))?;
                removed += 1;
            }
            let missing: Vec<String> = live.into_iter().filter(|id| !seen.contains(id)).collect();
            Ok((removed, missing))
        })
        .await?;
        if !missing.is_empty() {
            let client = self.inner.pool.get().await?;
            client.cexecute("DELETE FROM uploads WHERE id = ANY($1)", &[&missing]).await?;
        }
        Ok(gone_files + missing.len() + chunked)
    }
}
