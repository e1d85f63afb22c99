//! One synced folder: scan both sides, plan, carry the plan out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;

use crate::api::{Api, Entry, Refused};
use crate::plan::{self, Action, Kind, Tree};
use crate::state::{Base, State};

/// Where partial downloads live, inside the synced folder (same filesystem: renames are atomic).
pub const TMP_DIR: &str = ".cairn-tmp";
/// Files smaller than this are sent whole (a delta would not pay for its round trips).
const DELTA_MIN: u64 = 64 * 1024;
/// Files up to this size go in one PUT; larger ones through resumable tus uploads.
const PUT_MAX: u64 = 8 << 20;
/// Bytes per tus PATCH.
const CHUNK: u64 = 16 << 20;

pub struct Options {
    pub device: String,
    pub parallel: usize,
    /// Enforce names valid on Windows and case-insensitive uniqueness (automatic on Windows
    /// and macOS).
    pub portable_names: bool,
}

/// What a round did.
#[derive(Debug, Default)]
pub struct Report {
    pub work: usize,
    pub conflicts: Vec<String>,
    /// Remote paths this system cannot hold (with the reason), left alone with all below them.
    pub skipped: Vec<(String, String)>,
    /// Actions that found the other side changed meanwhile (done next round).
    pub deferred: usize,
    pub errors: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

struct Local {
    size: u64,
    mtime_ns: i64,
}

pub struct Engine {
    api: Api,
    root: PathBuf,
    remote: String,
    state: Mutex<State>,
    opts: Options,
}

fn join_remote(root: &str, rel: &str) -> String {
    if root == "/" { format!("/{rel}") } else { format!("{root}/{rel}") }
}

/// A reason `name` cannot be a file name on Windows (and so must not be synced there).
pub fn unportable(name: &str) -> Option<&'static str> {
    const RESERVED: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if name.chars().any(|c| matches!(c, '<' | '>' | ':' | '"' | '\\' | '|' | '?' | '*') || (c as u32) < 32) {
        return Some("contains a character Windows does not allow");
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some("ends with a dot or a space");
    }
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    if RESERVED.contains(&stem.as_str()) {
        return Some("is a reserved device name on Windows");
    }
    None
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The rsync delta turning the content `sig` describes into the file `path` (of `size` bytes),
/// if it is worth sending: under 90 % of the file (`None` otherwise). Computed on the blocking
/// pool.
pub(crate) async fn delta_paying(sig: Vec<u8>, path: PathBuf, size: u64) -> Result<Option<Vec<u8>>> {
    tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>> {
        let f = std::fs::File::open(&path)?;
        let mut out = Vec::new();
        match delta::diff_file(&sig, &f, &mut out, size / 10 * 9) {
            Ok(_) => Ok(Some(out)),
            Err(delta::Error::TooLarge(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await?
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

/// `YYYY-MM-DD HHMMSS` (UTC) for conflict names.
#[allow(clippy::disallowed_methods)] // The client has no store Clock: a conflict is named by the local time.
fn stamp() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

impl Engine {
    pub fn new(api: Api, root: PathBuf, remote: String, state: State, opts: Options) -> Engine {
        let remote = if remote.len() > 1 { remote.trim_end_matches('/').to_owned() } else { "/".to_owned() };
        Engine { api, root, remote, state: Mutex::new(state), opts }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("state lock poisoned")
    }

    fn abs(&self, rel: &str) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(rel.split('/'));
        p
    }

    fn rpath(&self, rel: &str) -> String {
        join_remote(&self.remote, rel)
    }

    fn ignore(&self) -> ignore::gitignore::Gitignore {
        let mut b = ignore::gitignore::GitignoreBuilder::new(&self.root);
        let _ = b.add(self.root.join(".cairnignore"));
        b.build().unwrap_or_else(|_| ignore::gitignore::Gitignore::empty())
    }

    /// The local tree (hashing only files whose size or mtime changed since the last sync).
    fn scan_local(
        &self,
        base: &BTreeMap<String, Base>,
        ig: &ignore::gitignore::Gitignore,
    ) -> Result<(Tree, BTreeMap<String, Local>)> {
        let mut tree = Tree::new();
        let mut meta = BTreeMap::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for ent in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let ent = ent?;
                let Some(name) = ent.file_name().to_str().map(str::to_owned) else {
                    eprintln!("cairn: skipping a name that is not UTF-8 in {}", dir.display());
                    continue;
                };
                if rel.is_empty() && name == TMP_DIR {
                    continue;
                }
                let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                let ft = ent.file_type()?;
                if ig.matched(Path::new(&r), ft.is_dir()).is_ignore() {
                    continue;
                }
                if ft.is_dir() {
                    tree.insert(r.clone(), Kind::Dir);
                    stack.push((ent.path(), r));
                } else if ft.is_file() {
                    let m = match ent.metadata() {
                        Ok(m) => m,
                        Err(_) => continue, // gone meanwhile
                    };
                    let (size, mt) = (m.len(), mtime_ns(&m));
                    let hash = match base.get(&r) {
                        Some(Base { kind: Kind::File(h), size: s, mtime_ns: t, .. })
                            if *s == size && *t == mt =>
                        {
                            h.clone()
                        }
                        _ => match hash_file(&ent.path()) {
                            Ok(h) => h,
                            Err(_) => continue,
                        },
                    };
                    tree.insert(r.clone(), Kind::File(hash));
                    meta.insert(r, Local { size, mtime_ns: mt });
                }
            }
        }
        Ok((tree, meta))
    }

    /// The remote tree, without what this system cannot hold (reported).
    async fn scan_remote(
        &self,
        ig: &ignore::gitignore::Gitignore,
        report: &mut Report,
    ) -> Result<(Tree, BTreeMap<String, Entry>)> {
        let listing = match self.api.tree(&self.remote).await? {
            Some(t) => t,
            None => {
                self.api.mkdir(&self.remote).await?;
                self.api.tree(&self.remote).await?.ok_or_else(|| anyhow!("cannot create {}", self.remote))?
            }
        };
        let prefix = if self.remote == "/" { "/".to_owned() } else { format!("{}/", self.remote) };
        let mut tree = Tree::new();
        let mut entries = BTreeMap::new();
        let mut lower: BTreeMap<String, String> = BTreeMap::new();
        for e in listing.entries {
            let Some(rel) = e.path.strip_prefix(&prefix).map(str::to_owned) else { continue };
            if rel.is_empty() || report.skipped.iter().any(|(s, _)| rel.starts_with(&format!("{s}/"))) {
                continue;
            }
            if (rel == TMP_DIR || rel.starts_with(&format!("{TMP_DIR}/")))
                || ig.matched(Path::new(&rel), e.is_dir).is_ignore()
            {
                continue;
            }
            let name = rel.rsplit('/').next().unwrap_or(&rel);
            if self.opts.portable_names {
                let why = unportable(name).map(str::to_owned).or_else(|| {
                    let key = rel.to_lowercase();
                    match lower.get(&key) {
                        Some(other) => Some(format!("differs only in case from {other}")),
                        None => {
                            lower.insert(key, rel.clone());
                            None
                        }
                    }
                });
                if let Some(why) = why {
                    report.skipped.push((rel, why));
                    continue;
                }
            }
            tree.insert(
                rel.clone(),
                if e.is_dir { Kind::Dir } else { Kind::File(e.hash.clone().unwrap_or_default()) },
            );
            entries.insert(rel, e);
        }
        Ok((tree, entries))
    }

    /// One round: scan, plan, act. Errors of single actions are collected, not fatal.
    pub async fn round(self: &Arc<Self>) -> Result<Report> {
        let mut report = Report::default();
        let ig = self.ignore();
        let (remote, entries) = self.scan_remote(&ig, &mut report).await?;
        let base_full = self.state().base()?;
        let this = self.clone();
        let base_for_scan = base_full.clone();
        let ig2 = ig.clone();
        let (local, meta) =
            tokio::task::spawn_blocking(move || this.scan_local(&base_for_scan, &ig2)).await??;
        let (mut local, mut meta, mut base_full) = (local, meta, base_full);
        self.guard_shares(&mut base_full, &mut local, &mut meta, &entries, &mut report)?;
        let keep =
            |p: &String| !report.skipped.iter().any(|(s, _)| p == s || p.starts_with(&format!("{s}/")));
        let base: Tree =
            base_full.iter().filter(|(p, _)| keep(p)).map(|(p, b)| (p.clone(), b.kind.clone())).collect();
        let local: Tree = local.into_iter().filter(|(p, _)| keep(p)).collect();
        let (device, now) = (self.opts.device.clone(), stamp());
        let actions = plan::plan(&base, &local, &remote, &|p| plan::conflict_name(p, &device, &now));
        report.work = actions.iter().filter(|a| a.is_work()).count();
        let cx = Arc::new(RoundCx { local, meta, entries, base: base_full });

        // Phases in order; the transfers of a phase in parallel.
        let mut i = 0;
        while i < actions.len() {
            let phase = actions[i].phase();
            let j = actions[i..].iter().position(|a| a.phase() != phase).map_or(actions.len(), |k| i + k);
            let batch = &actions[i..j];
            let parallel = if phase == 4 { self.opts.parallel.max(1) } else { 1 };
            let results: Vec<(Action, Result<Moved>)> = futures_util::stream::iter(batch.iter().cloned())
                .map(|a| {
                    let (this, cx) = (self.clone(), cx.clone());
                    async move {
                        let r = this.act(&a, &cx).await;
                        (a, r)
                    }
                })
                .buffered(parallel)
                .collect()
                .await;
            for (a, r) in results {
                match r {
                    Ok(m) => {
                        report.bytes_up += m.up;
                        report.bytes_down += m.down;
                        if let Action::ConflictLocal { copy, .. } = &a {
                            report.conflicts.push(copy.clone());
                        }
                    }
                    Err(e) if e.is::<Refused>() => report.deferred += 1,
                    Err(e) => report.errors.push(format!("{a:?}: {e:#}")),
                }
            }
            i = j;
        }
        // Leftover partial downloads stay for resuming; an empty folder goes.
        let _ = std::fs::remove_dir(self.root.join(TMP_DIR));
        Ok(report)
    }

    /// Before planning, what shares need. A share that left the listing (revoked, or hidden
    /// elsewhere) stops syncing: its local copy is moved aside as `NAME (no longer shared)`,
    /// listed in `.cairnignore`, and kept. In a share this account may only read, a local edit,
    /// new file or folder is moved out to the synced folder's top as a copy of its own (synced
    /// as this account's file), and what was changed or deleted locally comes back from the
    /// server: nothing is lost, and nothing is sent where it would be refused.
    fn guard_shares(
        &self,
        base: &mut BTreeMap<String, Base>,
        local: &mut Tree,
        meta: &mut BTreeMap<String, Local>,
        entries: &BTreeMap<String, Entry>,
        report: &mut Report,
    ) -> Result<()> {
        let mounts: Vec<(&String, &crate::api::Shared)> = entries
            .iter()
            .filter_map(|(p, e)| e.shared.as_ref().filter(|s| s.mount_point).map(|s| (p, s)))
            .collect();
        let seen: Vec<String> = self
            .state()
            .meta("share_mounts")?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let drop_below = |p: &str,
                          base: &mut BTreeMap<String, Base>,
                          local: &mut Tree,
                          meta: &mut BTreeMap<String, Local>| {
            let inside = |q: &String| q == p || q.starts_with(&format!("{p}/"));
            base.retain(|q, _| !inside(q));
            local.retain(|q, _| !inside(q));
            meta.retain(|q, _| !inside(q));
        };
        for gone in seen.iter().filter(|m| !mounts.iter().any(|(p, _)| p == m)) {
            if entries.contains_key(gone) || !self.abs(gone).exists() {
                self.state().forget(gone)?;
                base.retain(|q, _| q != gone && !q.starts_with(&format!("{gone}/")));
                continue;
            }
            let aside = self.free_name(&format!("{gone} (no longer shared)"));
            std::fs::rename(self.abs(gone), self.abs(&aside))
                .with_context(|| format!("moving {gone} aside"))?;
            let mut ignore =
                std::fs::OpenOptions::new().create(true).append(true).open(self.root.join(".cairnignore"))?;
            use std::io::Write;
            writeln!(ignore, "/{aside}")?;
            self.state().forget(gone)?;
            drop_below(gone, base, local, meta);
            eprintln!(
                "cairn: {gone} is no longer shared with you; your local copy is kept as {aside} (not synced)"
            );
            report.conflicts.push(aside);
        }
        let names: Vec<&String> = mounts.iter().map(|(p, _)| *p).collect();
        self.state().set_meta("share_mounts", &serde_json::to_string(&names)?)?;

        let (device, now) = (self.opts.device.clone(), stamp());
        for (root, share) in mounts.iter().filter(|(_, s)| s.role == "viewer") {
            let inside = |q: &String| q == *root || q.starts_with(&format!("{root}/"));
            let paths: Vec<String> = local.keys().chain(base.keys()).filter(|q| inside(q)).cloned().collect();
            let mut moved: Vec<String> = Vec::new();
            for p in paths {
                if moved.iter().any(|m| p.starts_with(&format!("{m}/"))) {
                    continue;
                }
                let (b, l) = (base.get(&p).map(|b| &b.kind), local.get(&p));
                let r = entries.get(&p).map(|e| {
                    if e.is_dir { Kind::Dir } else { Kind::File(e.hash.clone().unwrap_or_default()) }
                });
                if l == b || l == r.as_ref() {
                    continue;
                }
                match l {
                    // Edited or made here: this account's own copy, at the top.
                    Some(k) if !(p == **root && *k == Kind::Dir) => {
                        let name = p.rsplit('/').next().unwrap_or(&p);
                        let copy =
                            self.free_name(&plan::read_only_copy_name(name, &share.owner, &device, &now));
                        std::fs::rename(self.abs(&p), self.abs(&copy))
                            .with_context(|| format!("moving {p} out of a read-only share"))?;
                        eprintln!(
                            "cairn: {p} is in {}'s share, which you may only read: your version is kept as {copy}",
                            share.owner
                        );
                        report.conflicts.push(copy);
                        moved.push(p.clone());
                    }
                    // Deleted here: it comes back.
                    _ => {}
                }
                self.state().forget(&p)?;
                drop_below(&p, base, local, meta);
            }
        }
        Ok(())
    }

    /// `want`, or `want 2`, `want 3`, ... — the first name free in the synced folder.
    fn free_name(&self, want: &str) -> String {
        let mut name = want.to_owned();
        let mut n = 2;
        while self.abs(&name).exists() {
            name = format!("{want} {n}");
            n += 1;
        }
        name
    }

    /// Record `rel` as synced with the local file as it is now and the remote `etag`.
    fn record_file(&self, rel: &str, hash: &str, etag: &str) -> Result<()> {
        let m = std::fs::metadata(self.abs(rel))?;
        self.record_as(rel, hash, etag, m.len(), mtime_ns(&m))
    }

    /// Record `rel` as synced with the content this round hashed: the base keeps the size and
    /// mtime that hash was computed from, so a write after the scan (the file being written
    /// while it was sent, or before it was recorded) differs from the base and is found by the
    /// next scan as a local edit over the stored content — not mistaken for the content we
    /// hashed, and not a conflict with our own upload.
    fn record_scanned(&self, rel: &str, hash: &str, etag: &str, cx: &RoundCx) -> Result<()> {
        match cx.meta.get(rel) {
            Some(l) => self.record_as(rel, hash, etag, l.size, l.mtime_ns),
            None => self.record_file(rel, hash, etag),
        }
    }

    fn record_as(&self, rel: &str, hash: &str, etag: &str, size: u64, mtime_ns: i64) -> Result<()> {
        self.state()
            .set(rel, &Base { kind: Kind::File(hash.to_owned()), etag: etag.to_owned(), size, mtime_ns })
    }

    fn record_dir(&self, rel: &str) -> Result<()> {
        self.state().set(rel, &Base { kind: Kind::Dir, etag: String::new(), size: 0, mtime_ns: 0 })
    }

    /// Is the local item still as scanned?
    fn unchanged_locally(&self, rel: &str, cx: &RoundCx) -> bool {
        let now = std::fs::symlink_metadata(self.abs(rel)).ok();
        match (cx.meta.get(rel), now, cx.local.get(rel)) {
            (Some(l), Some(m), _) => m.is_file() && m.len() == l.size && mtime_ns(&m) == l.mtime_ns,
            (None, Some(m), Some(Kind::Dir)) => m.is_dir(),
            (None, None, None) => true,
            _ => false,
        }
    }

    async fn act(&self, a: &Action, cx: &RoundCx) -> Result<Moved> {
        match a {
            Action::ConflictLocal { path, copy } => {
                let to = self.abs(copy);
                std::fs::rename(self.abs(path), &to).with_context(|| format!("renaming {path} to {copy}"))?;
                self.state().forget(path)?;
                eprintln!("cairn: conflict: both sides changed {path}; the local one is kept as {copy}");
            }
            Action::DeleteLocal(p) => {
                if !self.unchanged_locally(p, cx) {
                    return Err(Refused::Changed.into());
                }
                let abs = self.abs(p);
                if matches!(cx.local.get(p), Some(Kind::Dir)) {
                    std::fs::remove_dir_all(&abs)?;
                } else {
                    std::fs::remove_file(&abs)?;
                }
                self.state().forget(p)?;
            }
            Action::DeleteRemote(p) => {
                self.api.delete(&self.rpath(p)).await?;
                self.state().forget(p)?;
            }
            Action::MkdirLocal(p) => {
                std::fs::create_dir_all(self.abs(p))?;
                self.record_dir(p)?;
            }
            Action::MkdirRemote(p) => {
                self.api.mkdir(&self.rpath(p)).await?;
                self.record_dir(p)?;
            }
            Action::MoveLocal { from, to } => {
                if !self.unchanged_locally(from, cx) || self.abs(to).exists() {
                    return Err(Refused::Changed.into());
                }
                if let Some(parent) = self.abs(to).parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(self.abs(from), self.abs(to))?;
                self.state().forget(from)?;
                if let (Some(Kind::File(h)), Some(e)) =
                    (cx.base.get(from).map(|b| &b.kind), cx.entries.get(to))
                {
                    self.record_file(to, h, &e.etag)?;
                }
            }
            Action::MoveRemote { from, to } => {
                self.api.rename(&self.rpath(from), &self.rpath(to)).await?;
                self.state().forget(from)?;
            }
            Action::Download(p) => return self.download(p, cx).await,
            Action::Upload(p) => return self.upload(p, cx).await,
            Action::Record(p) => match (cx.local.get(p), cx.entries.get(p)) {
                (Some(Kind::Dir), _) => self.record_dir(p)?,
                (Some(Kind::File(h)), Some(e)) => self.record_scanned(p, h, &e.etag, cx)?,
                _ => {}
            },
            Action::Forget(p) => self.state().forget(p)?,
        }
        Ok(Moved::default())
    }

    async fn download(&self, rel: &str, cx: &RoundCx) -> Result<Moved> {
        let e = cx.entries.get(rel).ok_or_else(|| anyhow!("{rel} vanished from the listing"))?;
        let want = e.hash.clone().unwrap_or_default();
        let tmp_dir = self.root.join(TMP_DIR);
        std::fs::create_dir_all(&tmp_dir)?;
        let tmp = tmp_dir.join(format!("{}.{}.part", &blake3::hash(rel.as_bytes()).to_hex()[..16], e.etag));
        // A delta from the content we last synced, when the local file still is that content.
        let base = cx.base.get(rel).filter(|b| {
            matches!((&b.kind, cx.local.get(rel)), (Kind::File(h), Some(Kind::File(l))) if h == l)
                && b.size >= DELTA_MIN
        });
        let abs = self.abs(rel);
        let mut moved = Moved::default();
        let mut done = false;
        // `tmp` is known to hash to `want` (a delta result is checked as it is built).
        let mut verified = false;
        if let Some(b) = base {
            let _ = std::fs::remove_file(&tmp);
            let d = self.api.download(&self.rpath(rel), &tmp, &e.etag, Some((&b.etag, &abs))).await?;
            if let Some(delta) = d.delta {
                moved.down += delta.len() as u64;
                let (abs2, tmp2) = (abs.clone(), tmp.clone());
                let got = tokio::task::spawn_blocking(move || -> Result<String> {
                    let base = std::fs::File::open(&abs2)?;
                    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp2)?);
                    let map = delta::Map::new(&base)?;
                    delta::apply(map.bytes(), &delta, &mut out, u64::MAX)?;
                    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
                    Ok(hash_file(&tmp2)?)
                })
                .await??;
                // The result is the listed content, or no use: then fetch it whole.
                if got == want {
                    (done, verified) = (true, true);
                } else {
                    let _ = std::fs::remove_file(&tmp);
                }
            } else {
                moved.down += std::fs::metadata(&tmp).map_or(0, |m| m.len());
                done = true;
            }
        }
        if !done {
            let d = self.api.download(&self.rpath(rel), &tmp, &e.etag, None).await?;
            moved.down += std::fs::metadata(&tmp).map_or(0, |m| m.len()) - d.resumed_at;
            if d.etag != e.etag {
                let _ = std::fs::remove_file(&tmp);
                return Err(Refused::Changed.into());
            }
        }
        if !verified {
            let got = hash_file(&tmp)?;
            if got != want {
                let _ = std::fs::remove_file(&tmp);
                return Err(anyhow!("downloaded {rel} hashes to {got}, the server said {want}"));
            }
        }
        if !self.unchanged_locally(rel, cx) {
            return Err(Refused::Changed.into());
        }
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&tmp, &abs)?;
        self.record_file(rel, &want, &e.etag)?;
        Ok(moved)
    }

    async fn upload(&self, rel: &str, cx: &RoundCx) -> Result<Moved> {
        let abs = self.abs(rel);
        // A conflict copy was named this round: hash it now.
        let hash = match cx.local.get(rel) {
            Some(Kind::File(h)) => h.clone(),
            _ => hash_file(&abs).with_context(|| format!("reading {rel}"))?,
        };
        let hash = &hash;
        let size = std::fs::metadata(&abs)?.len();
        let remote = cx.entries.get(rel);
        let rpath = self.rpath(rel);
        let mut moved = Moved::default();
        // Over a content we know (the base): a delta, if it pays.
        let known = remote.filter(|r| cx.base.get(rel).is_some_and(|b| b.etag == r.etag) && !r.is_dir);
        if let Some(r) = known.filter(|_| size >= DELTA_MIN) {
            let (etag, sig) = self.api.signature(&rpath).await?;
            moved.down += sig.len() as u64;
            if etag != r.etag {
                return Err(Refused::Changed.into());
            }
            let delta = delta_paying(sig, abs.clone(), size).await?;
            if let Some(delta) = delta {
                moved.up += delta.len() as u64;
                let entry = self.api.put_delta(&rpath, &r.etag, delta, hash).await?;
                return self.uploaded(rel, hash, &entry, cx, moved);
            }
        }
        let if_match = remote.map(|r| r.etag.as_str());
        if size <= PUT_MAX {
            moved.up += size;
            let entry = self.api.put(&rpath, &abs, if_match).await?;
            return self.uploaded(rel, hash, &entry, cx, moved);
        }
        // Large: tus, resuming an upload of this same content if one was started.
        let existing = self.state().upload(rel, hash)?;
        let (url, mut offset) = match existing {
            Some(url) => match self.api.tus_offset(&url).await? {
                Some(off) => {
                    eprintln!("cairn: resuming the upload of {rel} at byte {off}");
                    (url, off)
                }
                None => (self.new_upload(rel, hash, &rpath, size).await?, 0),
            },
            None => (self.new_upload(rel, hash, &rpath, size).await?, 0),
        };
        let mut file = tokio::fs::File::open(&abs).await?;
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        while offset < size {
            let n = CHUNK.min(size - offset);
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let mut chunk = vec![0u8; n as usize];
            file.read_exact(&mut chunk).await?;
            let (next, _) = self.api.tus_patch(&url, offset, chunk).await?;
            moved.up += next - offset;
            offset = next;
        }
        self.state().set_upload(rel, hash, None)?;
        let entry = self.api.stat(&rpath).await?.ok_or_else(|| anyhow!("{rpath} missing after upload"))?;
        self.uploaded(rel, hash, &entry, cx, moved)
    }

    async fn new_upload(&self, rel: &str, hash: &str, rpath: &str, size: u64) -> Result<String> {
        let url = self.api.tus_create(rpath, size).await?;
        self.state().set_upload(rel, hash, Some(&url))?;
        Ok(url)
    }

    fn uploaded(&self, rel: &str, hash: &str, entry: &Entry, cx: &RoundCx, moved: Moved) -> Result<Moved> {
        let stored = entry
            .hash
            .as_deref()
            .ok_or_else(|| anyhow!("the server did not say what it stored for {rel}"))?;
        if stored == hash {
            // If the file changed after the scan, the next round finds it changed against this
            // base and sends it over this etag.
            self.record_scanned(rel, hash, &entry.etag, cx)?;
        } else {
            // The file changed between the scan and the read that sent it: the server holds
            // bytes of this file all the same, so they are the base; an mtime no file has makes
            // the next round hash the file again and send what differs. (Recording nothing would
            // make the next round see both sides changed from the old base: a false conflict.)
            self.record_as(rel, stored, &entry.etag, 0, i64::MIN)?;
        }
        Ok(moved)
    }

    /// Note the time of a sync that left both sides equal.
    pub fn mark_synced(&self) -> Result<()> {
        self.state().set_meta("synced_at", &stamp())
    }

    /// Number of files and folders in the base.
    pub fn counts(&self) -> Result<(u64, u64)> {
        self.state().count()
    }
}

struct RoundCx {
    local: Tree,
    meta: BTreeMap<String, Local>,
    entries: BTreeMap<String, Entry>,
    base: BTreeMap<String, Base>,
}

#[derive(Default)]
struct Moved {
    up: u64,
    down: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unportable_names() {
        assert!(unportable("a:b").is_some());
        assert!(unportable("CON.txt").is_some());
        assert!(unportable("trailing.").is_some());
        assert!(unportable("ok name (1).txt").is_none());
        assert!(unportable("console.txt").is_none());
    }

    #[test]
    fn stamps() {
        let s = stamp();
        assert_eq!(s.len(), 17, "{s}");
        assert!(s.starts_with("20"), "{s}");
    }
}
