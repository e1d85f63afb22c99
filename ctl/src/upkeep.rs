//! Keeping the server sound: scan, fsck, status, journal pruning, the audit log.

use std::process::ExitCode;

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
}

impl Report for Status {
    fn human(&self) -> String {
        format!(
            "data dir:  {}\ndaemon:    {}\ndatabase:  {}\nusers:     {}\nstored:    {}",
            self.data_dir.display(),
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
