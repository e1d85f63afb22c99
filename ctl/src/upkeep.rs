//! Keeping the server sound: scan, fsck, status, journal pruning, the audit log.

use std::process::ExitCode;

use clap::Subcommand;
use daemon::Config;
use serde::Serialize;
use store::Store;

use crate::output::{Report, Row, out, said};
use crate::{user, user_name};

/// One user's `scan`.
#[derive(Serialize)]
struct Scanned {
    user: String,
    added: Vec<String>,
    modified: Vec<String>,
    removed: Vec<String>,
    skipped: Vec<Skipped>,
    over_quota: Option<Over>,
}
#[derive(Serialize)]
struct Skipped {
    path: String,
    reason: String,
}
#[derive(Serialize)]
struct Over {
    used: u64,
    quota: Option<u64>,
}

/// `scan`: every user scanned.
#[derive(Serialize)]
#[serde(transparent)]
struct Scans(Vec<Scanned>);

impl Report for Scans {
    fn human(&self) -> String {
        let mut s = String::new();
        for r in &self.0 {
            s.push_str(&format!(
                "{}: {} added, {} modified, {} removed, {} skipped\n",
                r.user,
                r.added.len(),
                r.modified.len(),
                r.removed.len(),
                r.skipped.len()
            ));
            for p in &r.added {
                s.push_str(&format!("  + {p}\n"));
            }
            for p in &r.modified {
                s.push_str(&format!("  ~ {p}\n"));
            }
            for p in &r.removed {
                s.push_str(&format!("  - {p}\n"));
            }
            for k in &r.skipped {
                s.push_str(&format!("  ! {}: {}\n", k.path, k.reason));
            }
            if let Some(u) = &r.over_quota {
                s.push_str(&format!(
                    "  ! over quota: {} used of {}; writes that add bytes are refused until \
                     files are deleted (and the trash emptied) or the quota is raised\n",
                    store::format_size(u.used),
                    store::format_size(u.quota.unwrap_or(0))
                ));
            }
        }
        s.trim_end().to_owned()
    }
}

/// `fsck`.
#[derive(Serialize)]
struct Checked {
    users: u64,
    nodes: u64,
    versions: u64,
    clean: bool,
    problems: Vec<Problem>,
}
#[derive(Serialize)]
struct Problem {
    user: String,
    kind: String,
    detail: String,
}

impl Report for Checked {
    fn human(&self) -> String {
        let mut s =
            format!("checked {} user(s), {} entries, {} versions: ", self.users, self.nodes, self.versions);
        if self.problems.is_empty() {
            s.push_str("clean");
        } else {
            s.push_str(&format!("{} problem(s)", self.problems.len()));
            for p in &self.problems {
                s.push_str(&format!("\n  [{}] {}: {}", p.kind, p.user, p.detail));
            }
        }
        s
    }
}

/// `status`.
#[derive(Serialize)]
struct Status {
    data_dir: std::path::PathBuf,
    daemon_running: bool,
    database: String,
    users: usize,
    used: u64,
    /// Whether the data directory's disk is encrypted (see README: Encryption at rest).
    at_rest: store::AtRest,
}

impl Report for Status {
    fn human(&self) -> String {
        format!(
            "data dir:  {}\nat rest:   {}\ndaemon:    {}\ndatabase:  {}\nusers:     {}\nstored:    {}",
            self.data_dir.display(),
            self.at_rest.describe(),
            if self.daemon_running { "running" } else { "not running" },
            self.database,
            self.users,
            store::format_size(self.used)
        )
    }
}

/// A line of `audit`.
#[derive(Serialize)]
struct Audited {
    at: String,
    actor: String,
    origin: String,
    action: String,
    path: Option<String>,
    detail: Option<String>,
}

impl Row for Audited {
    const HEADER: &'static [&'static str] = &["AT", "ACTOR", "VIA", "ACTION", "PATH", "DETAIL"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.at.clone(),
            self.actor.clone(),
            self.origin.clone(),
            self.action.clone(),
            self.path.clone().unwrap_or_default(),
            self.detail.clone().unwrap_or_default(),
        ]
    }
}

#[derive(Serialize)]
struct Removed {
    removed: u64,
}

/// `migrate`.
#[derive(Serialize)]
pub(crate) struct Migrated {
    applied: Vec<String>,
    already: usize,
}

impl Report for Migrated {
    fn human(&self) -> String {
        if self.applied.is_empty() {
            format!("up to date ({} migrations)", self.already)
        } else {
            format!("applied: {}", self.applied.join(", "))
        }
    }
}

pub(crate) fn migrated(j: bool, report: &store::MigrationReport) -> anyhow::Result<ExitCode> {
    out(j, &Migrated { applied: report.applied.clone(), already: report.already })
}

pub(crate) async fn scan(
    store: &Store,
    actor: &store::Actor,
    j: bool,
    only: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let users: Vec<store::User> = match only {
        Some(u) => vec![user(store, u).await?],
        None => store.list_users().await?.into_iter().map(|i| i.user).collect(),
    };
    let mut all = Vec::new();
    for u in users {
        let r = store.scan(actor, &u).await?;
        let paths = |v: &[store::VPath]| v.iter().map(|p| p.to_string()).collect();
        all.push(Scanned {
            user: u.name.to_string(),
            added: paths(&r.added),
            modified: paths(&r.modified),
            removed: paths(&r.removed),
            skipped: r
                .skipped
                .iter()
                .map(|(p, why)| Skipped { path: p.to_string(), reason: why.to_string() })
                .collect(),
            over_quota: r.over_quota.map(|u| Over { used: u.used, quota: u.quota }),
        });
    }
    out(j, &Scans(all))
}

pub(crate) async fn fsck(
    store: &Store,
    j: bool,
    only: Option<&str>,
    verify: bool,
) -> anyhow::Result<ExitCode> {
    let only = only.map(user_name).transpose()?;
    let r = store.fsck(only.as_ref(), verify).await?;
    let checked = Checked {
        users: r.users as u64,
        nodes: r.nodes as u64,
        versions: r.versions as u64,
        clean: r.problems.is_empty(),
        problems: r
            .problems
            .iter()
            .map(|p| Problem { user: p.user.to_string(), kind: p.kind.to_string(), detail: p.detail.clone() })
            .collect(),
    };
    out(j, &checked)?;
    Ok(if checked.clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(crate) async fn status(
    cfg: &Config,
    store: &Store,
    attached: &daemon::Attached,
    j: bool,
) -> anyhow::Result<ExitCode> {
    let users = store.list_users().await?;
    let database = match &cfg.database {
        Some(_) => "external ([database] url)".to_owned(),
        None => format!("managed cluster in {}", cfg.managed_pg_dir().display()),
    };
    out(
        j,
        &Status {
            data_dir: cfg.data_dir.clone(),
            daemon_running: attached.lock.is_none(),
            database,
            users: users.len(),
            used: users.iter().map(|i| i.usage.used).sum(),
            at_rest: store::at_rest(&cfg.data_dir),
        },
    )
}

pub(crate) async fn prune_journal(store: &Store, j: bool, days: u64) -> anyhow::Result<ExitCode> {
    let n = store.prune_journal(std::time::Duration::from_secs(days * 86_400)).await?;
    out(j, &said(Removed { removed: n }, format!("removed {n} journal record(s)")))
}

pub(crate) async fn audit(store: &Store, j: bool, limit: i64) -> anyhow::Result<ExitCode> {
    let rows: Vec<Audited> = store
        .audit_tail(limit)
        .await?
        .into_iter()
        .map(|r| Audited {
            at: r.at.to_rfc3339(),
            actor: r.actor,
            origin: r.origin,
            action: r.action,
            path: r.path,
            detail: r.detail,
        })
        .collect();
    out(j, &rows)
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScrubCmd {
    /// Progress of the pass under way, the last complete pass, and every finding.
    Status,
    /// Begin a pass now (and lift a pause); the daemon runs it.
    Start,
    /// Hold the scrub (the pass under way resumes where it stopped).
    Pause {
        /// For how long (e.g. 6h, 2d).
        #[arg(long = "for", default_value = "24h")]
        for_: String,
    },
}

/// `scrub status`.
#[derive(Serialize)]
struct ScrubReport {
    running: bool,
    pass_started: Option<String>,
    files_done: u64,
    bytes_done: u64,
    total_files: u64,
    total_bytes: u64,
    last_started: Option<String>,
    last_completed: Option<String>,
    last_files: Option<u64>,
    last_bytes: Option<u64>,
    /// Bytes per second of the last complete pass.
    last_rate: Option<u64>,
    paused_until: Option<String>,
    start_requested: bool,
    corruptions: u64,
    quarantined: u64,
    findings: Vec<Finding>,
}
#[derive(Serialize)]
struct Finding {
    id: i64,
    user: String,
    path: String,
    version: Option<i64>,
    found_at: String,
    state: String,
    expected: String,
    actual: String,
    source: Option<String>,
}

impl Report for ScrubReport {
    fn human(&self) -> String {
        let size = store::format_size;
        let mut s = match &self.pass_started {
            Some(at) => format!(
                "pass under way since {at}: {} of {} files, {} of {}",
                self.files_done,
                self.total_files,
                size(self.bytes_done),
                size(self.total_bytes)
            ),
            None => {
                format!("no pass under way ({} files, {} to read)", self.total_files, size(self.total_bytes))
            }
        };
        if let Some(p) = &self.paused_until {
            s.push_str(&format!("\npaused until {p} (cairnctl scrub start resumes)"));
        } else if self.start_requested {
            s.push_str("\na pass was asked for and begins within seconds");
        }
        match (&self.last_completed, self.last_files, self.last_bytes) {
            (Some(at), Some(f), Some(b)) => s.push_str(&format!(
                "\nlast complete pass: {at}, {f} files, {}{}",
                size(b),
                self.last_rate.map(|r| format!(" at {}/s", size(r))).unwrap_or_default()
            )),
            _ => s.push_str("\nno complete pass yet"),
        }
        s.push_str(&format!("\ndamaged: {} found, {} quarantined", self.corruptions, self.quarantined));
        for f in &self.findings {
            let what = match f.version {
                Some(v) => format!("{} (version {v})", f.path),
                None => f.path.clone(),
            };
            let state = match (&f.state[..], &f.source) {
                ("repaired", Some(src)) => format!("repaired from {src}"),
                ("quarantined", _) => "quarantined: reads refused; write a good copy (from a synced computer or a backup) or restore a version".to_owned(),
                (other, _) => other.to_owned(),
            };
            s.push_str(&format!("\n  #{} {} {}:{what}: {state}", f.id, f.found_at, f.user));
        }
        s
    }
}

pub(crate) async fn scrub(
    store: &Store,
    actor: &store::Actor,
    j: bool,
    cmd: &ScrubCmd,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ScrubCmd::Status => {
            let st = store.scrub_status().await?;
            let findings = store.scrub_findings().await?;
            let at = |t: Option<store::Timestamp>| t.map(|t| t.to_rfc3339());
            let last_rate = match (st.last_started, st.last_completed, st.last_bytes) {
                (Some(a), Some(b), Some(bytes)) if b.0 > a.0 => {
                    Some((bytes as f64 / ((b.0 - a.0) as f64 / 1e9)) as u64)
                }
                _ => None,
            };
            out(
                j,
                &ScrubReport {
                    running: st.pass_started.is_some(),
                    pass_started: at(st.pass_started),
                    files_done: st.files_done,
                    bytes_done: st.bytes_done,
                    total_files: st.total_files,
                    total_bytes: st.total_bytes,
                    last_started: at(st.last_started),
                    last_completed: at(st.last_completed),
                    last_files: st.last_files,
                    last_bytes: st.last_bytes,
                    last_rate,
                    paused_until: at(st.paused_until),
                    start_requested: st.start_requested,
                    corruptions: st.corruptions,
                    quarantined: st.quarantined,
                    findings: findings
                        .into_iter()
                        .map(|f| Finding {
                            id: f.id,
                            user: f.user,
                            path: f.path,
                            version: f.version.map(|v| v.0),
                            found_at: f.found_at.to_rfc3339(),
                            state: f.state,
                            expected: f.expected,
                            actual: f.actual,
                            source: f.source,
                        })
                        .collect(),
                },
            )
        }
        ScrubCmd::Start => {
            store.scrub_start(actor).await?;
            out(
                j,
                &said(
                    Paused { paused_until: None },
                    "a scrub pass begins within seconds (the daemon runs it)",
                ),
            )
        }
        ScrubCmd::Pause { for_ } => {
            let d = daemon::parse_duration(for_).map_err(|e| {
                store::Error::new(store::ErrorKind::InvalidInput, format!("--for {for_:?}: {e:#}"))
            })?;
            let until = store.scrub_pause(actor, d).await?;
            out(
                j,
                &said(
                    Paused { paused_until: Some(until.to_rfc3339()) },
                    format!("scrub paused until {}", until.to_rfc3339()),
                ),
            )
        }
    }
}

#[derive(Serialize)]
struct Paused {
    paused_until: Option<String>,
}
