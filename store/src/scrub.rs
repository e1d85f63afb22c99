//! The integrity scrub: a slow, steady pass over every live file and every kept version that
//! reads its bytes from the disk and compares their blake3 with the one recorded when they were
//! written.
//!
//! - **Schedule.** One pass at most every [`ScrubOptions::interval`] (30 days by default), the
//!   first one a random 1 to 25 hours after scrubbing became due on this server (so a fresh
//!   install is not read end to end while it is set up). `cairnctl scrub start` asks for a pass
//!   now, `cairnctl scrub pause` holds it (for 24 hours unless said otherwise; `start` lifts it).
//! - **Pace.** At most [`ScrubOptions::rate`] bytes per second over the pass, with a quarter of
//!   a second of credit so the database's share of the work does not lower the rate. Pages are
//!   dropped from the kernel's cache before and after each file (`POSIX_FADV_DONTNEED`): the
//!   scrub reads the disk, not a cached copy, and does not push users' files out of memory.
//! - **Order and resume.** Live files by file id, then versions by version id; the position is
//!   saved at most a second apart, so a restarted daemon goes on from where the last one was.
//! - **Edit or rot.** Backing files are plain files that people and tools may change. A file
//!   whose size or modification time differs from the database was edited on disk: it is
//!   adopted as `scan` adopts it (audited). Same size and time but other bytes is damage. A
//!   mismatch is confirmed before it counts: the database row is unchanged and a second read
//!   gives the same wrong hash (a commit racing the read is not damage).
//! - **On damage** (other bytes, or an I/O error reading them). Reads and copies of the damaged
//!   content are refused at once, in every front end (an I/O error: HTTP 500, `EIO` in the
//!   mount), and an identical copy is looked for — another file or version anywhere with the
//!   same blake3, itself re-read and verified. Found: the damaged file is rewritten from it
//!   (staged, fsynced, renamed into place; audited `scrub.repair`) and reads go on. Not found:
//!   the content stays quarantined (audited `scrub.corruption`) until it is replaced — a write
//!   of a good copy, from a synced computer or a backup, or a restore of a version — or
//!   deleted. The damaged bytes stay where they are for inspection; nothing serves
//!   them. Findings are kept in `scrub_findings` and counted by `/metrics`.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::Cached;
use crate::disk::{Disk, layout};
use crate::path::{UserName, VPath};
use crate::txn::{LockSet, in_txn};
use crate::types::{Actor, ContentHash, Node, Timestamp, VersionId};
use crate::{Error, ErrorKind, Result, Store, blocking};

/// How the daemon scrubs.
#[derive(Debug, Clone)]
pub struct ScrubOptions {
    /// Bytes per second, at most.
    pub rate: u64,
    /// A full pass at most this often.
    pub interval: Duration,
}

impl Default for ScrubOptions {
    fn default() -> ScrubOptions {
        ScrubOptions { rate: 20 << 20, interval: Duration::from_secs(30 * 86_400) }
    }
}

/// Where the scrub stands (`cairnctl scrub status`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubStatus {
    /// When scrubbing became due on this server.
    pub since: Timestamp,
    /// The pass under way, if any.
    pub pass_started: Option<Timestamp>,
    /// Of the pass under way: files (live and versions) and bytes verified so far.
    pub files_done: u64,
    /// See `files_done`.
    pub bytes_done: u64,
    /// What one pass reads now: live files plus versions.
    pub total_files: u64,
    /// See `total_files`.
    pub total_bytes: u64,
    /// The last complete pass: start, end, files and bytes.
    pub last_started: Option<Timestamp>,
    /// See `last_started`.
    pub last_completed: Option<Timestamp>,
    /// See `last_started`.
    pub last_files: Option<u64>,
    /// See `last_started`.
    pub last_bytes: Option<u64>,
    /// Held by `cairnctl scrub pause` until then.
    pub paused_until: Option<Timestamp>,
    /// `cairnctl scrub start` asked for a pass that has not begun.
    pub start_requested: bool,
    /// Every finding so far, repaired or not.
    pub corruptions: u64,
    /// Findings whose content is still quarantined.
    pub quarantined: u64,
}

/// Damage the scrub found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubFinding {
    /// Its number.
    pub id: i64,
    /// The owner.
    pub user: String,
    /// The file's path when found.
    pub path: String,
    /// Set when the damage is in a kept version.
    pub version: Option<VersionId>,
    /// When.
    pub found_at: Timestamp,
    /// `quarantined`, `repaired` or `resolved`.
    pub state: String,
    /// The recorded blake3, hex.
    pub expected: String,
    /// What the bytes on disk hash to, hex (empty: the disk could not read them).
    pub actual: String,
    /// Where a repair came from.
    pub source: Option<String>,
}

/// Content whose reads are refused: live files by id (with the etag of the damaged content,
/// so a write of new content lifts it) and versions by id.
#[derive(Default)]
pub(crate) struct Quarantine {
    any: AtomicBool,
    held: RwLock<Held>,
}

#[derive(Default)]
struct Held {
    nodes: HashMap<i64, String>,
    versions: HashSet<i64>,
}

impl Quarantine {
    fn node_held(&self, node: &Node) -> bool {
        self.any.load(Ordering::Acquire)
            && self.held.read().unwrap_or_else(|e| e.into_inner()).nodes.get(&node.id.0) == Some(&node.etag.0)
    }

    fn version_held(&self, id: VersionId) -> bool {
        self.any.load(Ordering::Acquire)
            && self.held.read().unwrap_or_else(|e| e.into_inner()).versions.contains(&id.0)
    }

    fn update(&self, f: impl FnOnce(&mut Held)) {
        let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
        f(&mut held);
        self.any.store(!held.nodes.is_empty() || !held.versions.is_empty(), Ordering::Release);
    }
}

/// How often the findings are brought up to date (content replaced since) when idle.
const REFRESH: Duration = Duration::from_secs(30);
/// How often the position is saved, at most.
const CHECKPOINT: Duration = Duration::from_secs(1);
/// Files fetched per query.
const BATCH: i64 = 32;

impl Store {
    /// Refuse reading `node`'s content if the scrub found it damaged.
    pub(crate) fn check_intact(&self, node: &Node) -> Result<()> {
        match self.inner.quarantine.node_held(node) {
            false => Ok(()),
            true => Err(damaged(&node.path.to_string())),
        }
    }

    /// Refuse reading version `id` if the scrub found it damaged.
    pub(crate) fn check_version_intact(&self, id: VersionId, path: &VPath) -> Result<()> {
        match self.inner.quarantine.version_held(id) {
            false => Ok(()),
            true => Err(damaged(&format!("version {id} of {path}"))),
        }
    }

    /// The scrub's state, totals and finding counts.
    pub async fn scrub_status(&self) -> Result<ScrubStatus> {
        self.resolve_findings().await?;
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                "SELECT since, pass_started, files_done, bytes_done, last_started, last_completed,
                        last_files, last_bytes, paused_until, start_requested,
                        (SELECT count(*) FROM nodes WHERE NOT is_dir AND trash_id IS NULL)
                          + (SELECT count(*) FROM versions),
                        (SELECT coalesce(sum(size), 0)::BIGINT FROM nodes WHERE NOT is_dir AND trash_id IS NULL)
                          + (SELECT coalesce(sum(size), 0)::BIGINT FROM versions),
                        (SELECT count(*) FROM scrub_findings),
                        (SELECT count(*) FROM scrub_findings WHERE state = 'quarantined')
                 FROM scrub_state",
                &[],
            )
            .await?;
        let t = |i: usize| row.get::<_, Option<i64>>(i).map(Timestamp);
        let n = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.max(0) as u64);
        Ok(ScrubStatus {
            since: Timestamp(row.get(0)),
            pass_started: t(1),
            files_done: n(2).unwrap_or(0),
            bytes_done: n(3).unwrap_or(0),
            last_started: t(4),
            last_completed: t(5),
            last_files: n(6),
            last_bytes: n(7),
            paused_until: t(8).filter(|p| p.0 > self.clock().now().0),
            start_requested: row.get(9),
            total_files: n(10).unwrap_or(0),
            total_bytes: n(11).unwrap_or(0),
            corruptions: n(12).unwrap_or(0),
            quarantined: n(13).unwrap_or(0),
        })
    }

    /// Every finding, newest first.
    pub async fn scrub_findings(&self) -> Result<Vec<ScrubFinding>> {
        self.resolve_findings().await?;
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "SELECT f.id, u.name, f.path, f.version_id, f.found_at, f.state, f.expected, f.actual, f.source
                 FROM scrub_findings f JOIN users u ON u.id = f.user_id ORDER BY f.id DESC",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ScrubFinding {
                id: r.get(0),
                user: r.get(1),
                path: r.get(2),
                version: r.get::<_, Option<i64>>(3).map(VersionId),
                found_at: Timestamp(r.get(4)),
                state: r.get(5),
                expected: hex(r.get(6)),
                actual: hex(r.get(7)),
                source: r.get(8),
            })
            .collect())
    }

    /// Ask for a pass as soon as possible (and lift a pause). A pass under way goes on.
    pub async fn scrub_start(&self, actor: &Actor) -> Result<()> {
        let client = self.inner.pool.get().await?;
        client
            .cexecute(
                "UPDATE scrub_state SET paused_until = NULL, start_requested = pass_started IS NULL",
                &[],
            )
            .await?;
        crate::txn::audit(&client, None, actor, "scrub.start", None, None, self.clock().now()).await
    }

    /// Hold the scrub for `for_` (a pass under way stops within a second and later resumes).
    pub async fn scrub_pause(&self, actor: &Actor, for_: Duration) -> Result<Timestamp> {
        let until =
            Timestamp(self.clock().now().0.saturating_add(for_.as_nanos().min(i64::MAX as u128) as i64));
        let client = self.inner.pool.get().await?;
        client.cexecute("UPDATE scrub_state SET paused_until = $1", &[&until.0]).await?;
        let detail = format!("for {} s", for_.as_secs());
        crate::txn::audit(&client, None, actor, "scrub.pause", None, Some(&detail), self.clock().now())
            .await?;
        Ok(until)
    }

    /// Run the scheduler for ever (the daemon spawns it and drops it at shutdown; a file being
    /// read then stops within one read).
    pub async fn run_scrub(&self, opts: ScrubOptions) {
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(stop.clone());
        let mut pacer = Pacer::new(opts.rate);
        let mut refreshed: Option<Instant> = None;
        loop {
            if refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
                match self.resolve_findings().await {
                    Ok(()) => refreshed = Some(Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "scrub: reading its findings failed"),
                }
            }
            match self.scrub_step(&opts, &stop, &mut pacer).await {
                Ok(true) => {}
                Ok(false) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "scrub: will try again in 10 s");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
    }

    /// One step: start a pass if one is due, or verify the next batch of files. `false` when
    /// there was nothing to do.
    async fn scrub_step(
        &self,
        opts: &ScrubOptions,
        stop: &Arc<AtomicBool>,
        pacer: &mut Pacer,
    ) -> Result<bool> {
        let now = self.clock().now();
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_one(
                "SELECT since, pass_started, phase, after_id, files_done, bytes_done, last_started,
                        paused_until, start_requested, missing FROM scrub_state",
                &[],
            )
            .await?;
        let (since, pass_started): (i64, Option<i64>) = (row.get(0), row.get(1));
        let (phase, mut after, mut files, mut bytes): (i16, i64, i64, i64) =
            (row.get(2), row.get(3), row.get(4), row.get(5));
        let (last_started, paused_until, requested): (Option<i64>, Option<i64>, bool) =
            (row.get(6), row.get(7), row.get(8));
        let mut missing: i64 = row.get(9);
        if paused_until.is_some_and(|p| p > now.0) {
            return Ok(false);
        }
        let Some(started) = pass_started else {
            let due = match last_started {
                Some(last) => last.saturating_add(opts.interval.as_nanos() as i64),
                None => since.saturating_add(first_delay(since)),
            };
            if !requested && now.0 < due {
                return Ok(false);
            }
            client
                .cexecute(
                    "UPDATE scrub_state SET pass_started = $1, phase = 0, after_id = 0, files_done = 0,
                            bytes_done = 0, missing = 0, start_requested = false",
                    &[&now.0],
                )
                .await?;
            tracing::info!("scrub: a pass begins");
            pacer.restart();
            return Ok(true);
        };
        let items = self.scrub_batch(&client, phase, after).await?;
        drop(client);
        if items.is_empty() {
            let client = self.inner.pool.get().await?;
            if phase == 0 {
                client
                    .cexecute(
                        "UPDATE scrub_state SET phase = 1, after_id = 0 WHERE pass_started = $1",
                        &[&started],
                    )
                    .await?;
                return Ok(true);
            }
            client
                .cexecute(
                    "UPDATE scrub_state SET pass_started = NULL, last_started = $1, last_completed = $2,
                            last_files = files_done, last_bytes = bytes_done, last_missing = missing
                     WHERE pass_started = $1",
                    &[&started, &now.0],
                )
                .await?;
            let found: i64 = client
                .cquery_one("SELECT count(*) FROM scrub_findings WHERE found_at >= $1", &[&started])
                .await?
                .get(0);
            let detail = format!("{files} files, {bytes} bytes verified, {found} damaged, {missing} missing");
            crate::txn::audit(&client, None, &Actor::system(), "scrub.pass", None, Some(&detail), now)
                .await?;
            tracing::info!(files, bytes, found, "scrub: pass complete");
            return Ok(true);
        }
        // A pause asked for meanwhile stops the file being read within a second.
        let paused = Arc::new(AtomicBool::new(false));
        let watcher = tokio::spawn({
            let (store, paused) = (self.clone(), paused.clone());
            async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if store.scrub_paused().await.unwrap_or(false) {
                        paused.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        });
        let _stop_watcher = AbortOnDrop(watcher);
        let mut saved = Instant::now();
        for item in items {
            let halt = {
                let (stop, paused) = (stop.clone(), paused.clone());
                move || stop.load(Ordering::Acquire) || paused.load(Ordering::Acquire)
            };
            let store = self.clone();
            let (check, mut p) = (item.clone(), std::mem::replace(pacer, Pacer::new(opts.rate)));
            let (verdict, p) = blocking(move || {
                let v = verify(&store.inner.disk, &check, &mut p, &halt);
                Ok((v, p))
            })
            .await?;
            *pacer = p;
            match verdict? {
                Verdict::Halted => break,
                Verdict::Intact => {}
                Verdict::Missing => {
                    // Not a commit that moved it meanwhile: still the content, still absent.
                    let (store, rel) = (self.clone(), item.rel.clone());
                    if self.item_current(&item).await?
                        && blocking(move || store.inner.disk.stat(&rel).map_err(|e| Error::io("stat", e)))
                            .await?
                            .is_none()
                    {
                        tracing::warn!(user = %item.user, path = %item.path, version = item.version, "scrub: missing on disk");
                        missing += 1;
                    }
                }
                Verdict::Edited => self.adopt_edit(&item).await?,
                Verdict::Damaged(actual) => self.confirm_damage(&item, actual).await?,
            }
            (after, files, bytes) = (item.id, files + 1, bytes + item.size as i64);
            crate::telemetry::scrub_verified(item.size);
            if saved.elapsed() >= CHECKPOINT {
                self.scrub_checkpoint(started, phase, after, files, bytes, missing).await?;
                saved = Instant::now();
            }
        }
        self.scrub_checkpoint(started, phase, after, files, bytes, missing).await?;
        Ok(!paused.load(Ordering::Acquire) && !stop.load(Ordering::Acquire))
    }

    async fn scrub_paused(&self) -> Result<bool> {
        let client = self.inner.pool.get().await?;
        let until: Option<i64> = client.cquery_one("SELECT paused_until FROM scrub_state", &[]).await?.get(0);
        Ok(until.is_some_and(|u| u > self.clock().now().0))
    }

    async fn scrub_checkpoint(
        &self,
        started: i64,
        phase: i16,
        after: i64,
        files: i64,
        bytes: i64,
        missing: i64,
    ) -> Result<()> {
        let client = self.inner.pool.get().await?;
        client
            .cexecute(
                "UPDATE scrub_state SET phase = $2, after_id = $3, files_done = $4, bytes_done = $5, missing = $6
                 WHERE pass_started = $1",
                &[&started, &phase, &after, &files, &bytes, &missing],
            )
            .await?;
        Ok(())
    }

    /// The next files of the pass after `after`.
    async fn scrub_batch(
        &self,
        client: &deadpool_postgres::Client,
        phase: i16,
        after: i64,
    ) -> Result<Vec<Item>> {
        let sql = match phase {
            0 => {
                "SELECT n.id, u.name, n.path, n.size, n.mtime_ns, n.content_hash, n.etag
                 FROM nodes n JOIN users u ON u.id = n.user_id
                 WHERE n.id > $1 AND NOT n.is_dir AND n.trash_id IS NULL AND n.content_hash IS NOT NULL
                 ORDER BY n.id LIMIT $2"
            }
            _ => {
                "SELECT v.id, u.name, n.path, v.size, NULL::BIGINT, v.content_hash, v.etag
                 FROM versions v JOIN users u ON u.id = v.user_id JOIN nodes n ON n.id = v.node_id
                 WHERE v.id > $1 ORDER BY v.id LIMIT $2"
            }
        };
        let rows = client.cquery(sql, &[&after, &BATCH]).await?;
        rows.iter()
            .map(|r| {
                let user = UserName::parse(r.get::<_, &str>(1))?;
                let path = VPath::parse(r.get::<_, &str>(2))
                    .map_err(|e| Error::new(ErrorKind::Internal, format!("stored path: {e}")))?;
                let rel = match phase {
                    0 => layout::user_path(&user, &path),
                    _ => layout::version_blob(&user, VersionId(r.get(0))),
                };
                Ok(Item {
                    version: phase != 0,
                    id: r.get(0),
                    user,
                    path,
                    rel,
                    size: r.get::<_, i64>(3).max(0) as u64,
                    mtime: r.get(4),
                    hash: ContentHash::from_db(r.get(5))?,
                    etag: r.get(6),
                })
            })
            .collect()
    }

    /// A live file whose size or time differs from the database: unless a commit was moving it
    /// into place (look again a moment later), someone edited it on disk; adopt it as `scan` does.
    async fn adopt_edit(&self, item: &Item) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let client = self.inner.pool.get().await?;
        let row = client
            .cquery_opt(
                "SELECT size, mtime_ns, etag FROM nodes WHERE id = $1 AND trash_id IS NULL",
                &[&item.id],
            )
            .await?;
        drop(client);
        let Some(row) = row else { return Ok(()) };
        let (size, mtime, etag): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
        if etag != item.etag {
            return Ok(());
        }
        let (store, rel) = (self.clone(), item.rel.clone());
        let now_on_disk =
            blocking(move || store.inner.disk.stat(&rel).map_err(|e| Error::io("stat", e))).await?;
        if now_on_disk.is_some_and(|m| m.size as i64 != size || m.mtime_ns != mtime) {
            let user = self.user(&item.user).await?;
            let report = self.scan(&Actor::system(), &user).await?;
            tracing::info!(user = %item.user, path = %item.path, ?report, "scrub: a file edited on disk was adopted");
        }
        Ok(())
    }

    /// A hash that differs: make sure it is damage, refuse reads of it, repair it if an
    /// identical copy exists, and record it.
    async fn confirm_damage(&self, item: &Item, actual: Option<ContentHash>) -> Result<()> {
        // Unchanged in the database (a commit racing the read is not damage)...
        if !self.item_current(item).await? {
            return Ok(());
        }
        // ...and the bytes hash to the same wrong value again.
        let (store, again) = (self.clone(), item.clone());
        let second = blocking(move || {
            let never = || false;
            verify(&store.inner.disk, &again, &mut Pacer::unlimited(), &never)
        })
        .await?;
        if second != Verdict::Damaged(actual) {
            return Ok(());
        }
        self.hold(item, true);
        tracing::error!(user = %item.user, path = %item.path, version = item.version, "scrub: damaged content found");
        let source = self.identical_copy(item).await?;
        let user = self.user(&item.user).await?;
        let (store, it, now) = (self.clone(), item.clone(), self.clock().now());
        let repaired = in_txn!(&store, LockSet::Tree(user.id), &user, &Actor::system(), now, |tx, cx| {
            let current = match it.version {
                false => tx
                    .cquery_opt(
                        "SELECT 1 FROM nodes WHERE id = $1 AND etag = $2 AND trash_id IS NULL",
                        &[&it.id, &it.etag],
                    )
                    .await?
                    .is_some(),
                true => tx.cquery_opt("SELECT 1 FROM versions WHERE id = $1", &[&it.id]).await?.is_some(),
            };
            if !current {
                None
            } else {
                let rewritten = match &source {
                    Some((label, from)) => {
                        let (s, from, to, mtime) = (store.clone(), from.clone(), it.rel.clone(), it.mtime);
                        match blocking(move || rewrite(&s.inner.disk, &from, &to, mtime)).await {
                            Ok(()) => Some(label.clone()),
                            Err(e) => {
                                tracing::warn!(error = %e, "scrub: repairing from an identical copy failed");
                                None
                            }
                        }
                    }
                    None => None,
                };
                let (node_id, version_id) = match it.version {
                    false => (Some(it.id), None),
                    true => (None, Some(it.id)),
                };
                tx.cexecute(
                    "INSERT INTO scrub_findings (user_id, node_id, etag, version_id, path, expected, actual, found_at, state, source)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        &user.id.0,
                        &node_id,
                        &node_id.map(|_| it.etag.clone()),
                        &version_id,
                        &it.path.as_str(),
                        &&it.hash.0[..],
                        &actual.as_ref().map_or(&[][..], |a| &a.0[..]),
                        &now.0,
                        &if rewritten.is_some() { "repaired" } else { "quarantined" },
                        &rewritten,
                    ],
                )
                .await?;
                let what = match it.version {
                    false => String::new(),
                    true => format!("version {}: ", it.id),
                };
                let found = match &actual {
                    Some(a) => format!("{} found on disk", hex(&a.0)),
                    None => "the disk cannot read it".to_owned(),
                };
                let detail = format!("{what}blake3 {} expected, {found}", hex(&it.hash.0));
                cx.fx.audit.push(match &rewritten {
                    Some(from) => (
                        "scrub.repair",
                        Some(it.path.to_string()),
                        Some(format!("{detail}; rewritten from {from}")),
                    ),
                    None => (
                        "scrub.corruption",
                        Some(it.path.to_string()),
                        Some(format!(
                            "{detail}; reads refused until a good copy is written or it is deleted"
                        )),
                    ),
                });
                Some(rewritten.is_some())
            }
        })?;
        if repaired != Some(false) {
            // Repaired, or no longer the content it was: reads go on.
            self.hold(item, false);
        }
        Ok(())
    }

    /// Whether the item is still what the database says (same content, still there).
    async fn item_current(&self, item: &Item) -> Result<bool> {
        let client = self.inner.pool.get().await?;
        let row = match item.version {
            false => {
                client
                    .cquery_opt(
                        "SELECT 1 FROM nodes WHERE id = $1 AND etag = $2 AND trash_id IS NULL",
                        &[&item.id, &item.etag],
                    )
                    .await?
            }
            true => client.cquery_opt("SELECT 1 FROM versions WHERE id = $1", &[&item.id]).await?,
        };
        Ok(row.is_some())
    }

    fn hold(&self, item: &Item, held: bool) {
        self.inner.quarantine.update(|h| match (item.version, held) {
            (false, true) => drop(h.nodes.insert(item.id, item.etag.clone())),
            (false, false) => drop(h.nodes.remove(&item.id)),
            (true, true) => drop(h.versions.insert(item.id)),
            (true, false) => drop(h.versions.remove(&item.id)),
        });
    }

    /// Another file or version with the same blake3 whose bytes verify: a label for the audit
    /// log and its place in the data directory.
    async fn identical_copy(&self, item: &Item) -> Result<Option<(String, String)>> {
        let client = self.inner.pool.get().await?;
        let rows = client
            .cquery(
                "(SELECT u.name, n.path, NULL::BIGINT FROM nodes n JOIN users u ON u.id = n.user_id
                  WHERE n.content_hash = $1 AND NOT n.is_dir AND n.trash_id IS NULL AND NOT (n.id = $2 AND NOT $3)
                  LIMIT 8)
                 UNION ALL
                 (SELECT u.name, NULL, v.id FROM versions v JOIN users u ON u.id = v.user_id
                  WHERE v.content_hash = $1 AND NOT (v.id = $2 AND $3) LIMIT 8)",
                &[&&item.hash.0[..], &item.id, &item.version],
            )
            .await?;
        drop(client);
        for r in rows {
            let Ok(user) = UserName::parse(r.get::<_, &str>(0)) else { continue };
            let (rel, label) = match r.get::<_, Option<i64>>(2) {
                Some(v) => (layout::version_blob(&user, VersionId(v)), format!("version {v}")),
                None => {
                    let Ok(path) = VPath::parse(r.get::<_, &str>(1)) else { continue };
                    (layout::user_path(&user, &path), "an identical file".to_owned())
                }
            };
            let (store, candidate, want) = (self.clone(), rel.clone(), item.hash);
            let good =
                blocking(
                    move || Ok(crate::scan::hash_file(&store.inner.disk, &candidate).ok() == Some(want)),
                )
                .await?;
            if good {
                return Ok(Some((label, rel)));
            }
        }
        Ok(None)
    }

    /// Bring the findings up to date and load the quarantine: damaged content that has since
    /// become a version (the file was overwritten) stays quarantined as that version; content
    /// replaced or deleted is resolved.
    pub async fn resolve_findings(&self) -> Result<()> {
        let client = self.inner.pool.get().await?;
        client
            .cexecute(
                "UPDATE scrub_findings f SET version_id = v.id, node_id = NULL, etag = NULL
                 FROM versions v
                 WHERE f.state = 'quarantined' AND f.node_id IS NOT NULL AND v.node_id = f.node_id AND v.etag = f.etag
                   AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = f.node_id AND n.etag = f.etag)",
                &[],
            )
            .await?;
        client
            .cexecute(
                "UPDATE scrub_findings f SET state = 'resolved'
                 WHERE f.state = 'quarantined' AND CASE
                   WHEN f.node_id IS NOT NULL THEN NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = f.node_id AND n.etag = f.etag)
                   ELSE NOT EXISTS (SELECT 1 FROM versions v WHERE v.id = f.version_id) END",
                &[],
            )
            .await?;
        let rows = client
            .cquery("SELECT node_id, etag, version_id FROM scrub_findings WHERE state = 'quarantined'", &[])
            .await?;
        self.inner.quarantine.update(|h| {
            h.nodes.clear();
            h.versions.clear();
            for r in rows {
                match (r.get::<_, Option<i64>>(0), r.get::<_, Option<String>>(1), r.get::<_, Option<i64>>(2))
                {
                    (Some(n), Some(etag), _) => drop(h.nodes.insert(n, etag)),
                    (_, _, Some(v)) => drop(h.versions.insert(v)),
                    _ => {}
                }
            }
        });
        Ok(())
    }
}

fn damaged(what: &str) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "{what} is damaged on the server's disk (the integrity scrub found it): it is not served; \
             write a good copy or restore a version"
        ),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random 1 to 25 hours, fixed per server (from `since`).
fn first_delay(since: i64) -> i64 {
    const HOUR: i64 = 3_600_000_000_000;
    let spread = blake3::hash(&since.to_le_bytes()).as_bytes()[0] as i64 * 24 * HOUR / 256;
    HOUR + spread
}

/// One file or version to verify.
#[derive(Debug, Clone)]
struct Item {
    version: bool,
    id: i64,
    user: UserName,
    path: VPath,
    rel: String,
    size: u64,
    /// The recorded modification time (live files; versions are never edited).
    mtime: Option<i64>,
    hash: ContentHash,
    etag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Intact,
    /// Gone from the disk (`fsck` reports it; a commit may also have moved it meanwhile).
    Missing,
    /// Size or time differs: changed on disk outside Cairn.
    Edited,
    /// Other bytes (`Some` of their hash), or unreadable (`None`: an I/O error, which is how a
    /// disk with checksums or a failing sector reports damage).
    Damaged(Option<ContentHash>),
    /// Stopped by shutdown or a pause.
    Halted,
}

/// Read `item` from the disk (not the page cache) at the pacer's rate and compare its hash.
fn verify(disk: &Disk, item: &Item, pacer: &mut Pacer, halt: &dyn Fn() -> bool) -> Result<Verdict> {
    let mut file = match disk.open_read(&item.rel) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Missing),
        // The disk failing to read it is damage; anything else in the way (a folder or a
        // symlink put there, permissions) is a change on disk, which `scan` sorts out.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EIO | libc::EBADMSG | libc::EUCLEAN | libc::ENODATA)
            ) =>
        {
            tracing::warn!(error = %e, path = %item.rel, "scrub: cannot open");
            return Ok(Verdict::Damaged(None));
        }
        Err(_) if !item.version => return Ok(Verdict::Edited),
        Err(_) => return Ok(Verdict::Missing),
    };
    let meta = file.metadata().map_err(|e| Error::io("fstat", e))?;
    let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    if !item.version && (meta.len() != item.size || item.mtime.is_some_and(|m| m != mtime)) {
        return Ok(Verdict::Edited);
    }
    let drop_cache = |f: &std::fs::File| {
        let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed);
    };
    drop_cache(&file);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if halt() {
            return Ok(Verdict::Halted);
        }
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, path = %item.rel, "scrub: cannot read");
                return Ok(Verdict::Damaged(None));
            }
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if !pacer.take(n as u64, halt) {
            return Ok(Verdict::Halted);
        }
    }
    drop_cache(&file);
    let actual = ContentHash(*hasher.finalize().as_bytes());
    Ok(if actual == item.hash { Verdict::Intact } else { Verdict::Damaged(Some(actual)) })
}

/// Replace `to` with a verified copy of `from`: staged, given `mtime`, fsynced, renamed.
fn rewrite(disk: &Disk, from: &str, to: &str, mtime: Option<i64>) -> Result<()> {
    let staged = disk.copy_to_staging(from).map_err(|e| Error::io("copying for a repair", e))?;
    let res = (|| {
        if let Some(m) = mtime {
            disk.set_mtime(&staged, m)?;
        }
        disk.open_read(&staged)?.sync_all()?;
        disk.rename(&staged, to)?;
        disk.fsync_dir(crate::disk::split_parent(to).0)
    })();
    if res.is_err() {
        let _ = disk.remove(&staged);
    }
    res.map_err(|e| Error::io("repairing", e))
}

/// Bytes per second over a pass, with [`Pacer::CREDIT`] of slack.
struct Pacer {
    rate: u64,
    start: Instant,
    bytes: u64,
}

impl Pacer {
    const CREDIT: Duration = Duration::from_millis(250);

    fn new(rate: u64) -> Pacer {
        Pacer { rate: rate.max(1), start: Instant::now(), bytes: 0 }
    }

    fn unlimited() -> Pacer {
        Pacer::new(u64::MAX)
    }

    fn restart(&mut self) {
        (self.start, self.bytes) = (Instant::now(), 0);
    }

    /// Account `n` bytes read; sleep until the rate allows them. `false` if `halt` said stop.
    fn take(&mut self, n: u64, halt: &dyn Fn() -> bool) -> bool {
        let spent = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if self.start.elapsed() > spent + Pacer::CREDIT {
            // Idle time (between passes, a pause, the database's share) earns no more credit.
            self.start = Instant::now() - spent - Pacer::CREDIT;
        }
        self.bytes += n;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let mut left = due.saturating_sub(self.start.elapsed());
        while !left.is_zero() {
            if halt() {
                return false;
            }
            let nap = left.min(Duration::from_millis(100));
            std::thread::sleep(nap);
            left -= nap;
        }
        true
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_holds_the_rate_and_earns_no_credit_while_idle() {
        let mut p = Pacer::new(10 << 20);
        let never = || false;
        let t = Instant::now();
        for _ in 0..20 {
            assert!(p.take(1 << 20, &never));
        }
        // 20 MiB at 10 MiB/s: 2 s, less the quarter second of credit at most.
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(1_700) && took < Duration::from_millis(2_600), "{took:?}");
        std::thread::sleep(Duration::from_millis(600));
        let t = Instant::now();
        for _ in 0..5 {
            assert!(p.take(1 << 20, &never));
        }
        assert!(t.elapsed() >= Duration::from_millis(200), "idle time became credit: {:?}", t.elapsed());
    }

    #[test]
    fn a_halt_stops_the_pacer_within_its_nap() {
        let mut p = Pacer::new(1);
        let t = Instant::now();
        assert!(!p.take(1 << 20, &|| t.elapsed() > Duration::from_millis(150)));
        assert!(t.elapsed() < Duration::from_millis(400));
    }

    #[test]
    fn the_first_pass_comes_between_one_and_twenty_five_hours() {
        for since in [0_i64, 1, 1_765_000_000_000_000_000, i64::MAX / 3] {
            let d = first_delay(since);
            assert!((3_600_000_000_000..=25 * 3_600_000_000_000).contains(&d), "{d}");
        }
    }
}
