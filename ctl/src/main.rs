//! `cairnctl`: the admin CLI. It links `store` and calls the same operations the daemon does, so
//! it works whether or not `cairnd` runs; it contains no SQL. Human tables by default, `--json`
//! for scripts.
//!
//! Exit codes: 0 success; 1 the operation failed (or `fsck` found problems); 2 bad usage or
//! input (invalid path, unknown user, bad size).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use daemon::{Config, Role};
use serde_json::{Value, json};
use store::{Actor, ErrorKind, Node, Store, UserName, VPath};

/// Administer a Cairn server: users, quotas, versions, trash, consistency.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server's TOML config file.
    #[arg(long, env = "CAIRN_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// App passwords / device tokens (for WebDAV and other clients; the secret is shown once).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Storage limits.
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Earlier contents of files.
    #[command(subcommand)]
    Versions(VersionsCmd),
    /// Deleted items.
    #[command(subcommand)]
    Trash(TrashCmd),
    /// A user's files (for restores and scripted fixes; changes are versioned and journaled).
    #[command(subcommand)]
    Files(FilesCmd),
    /// Adopt changes made directly in the backing directory (all users, or one).
    Scan { user: Option<String> },
    /// Report every disagreement between the database and the backing directory.
    Fsck {
        user: Option<String>,
        /// Also read every file and compare its blake3 hash.
        #[arg(long)]
        verify: bool,
    },
    /// Apply pending database migrations.
    Migrate,
    /// Show the server's state.
    Status,
    /// Drop change-journal records older than DAYS (the daemon keeps 90); sync clients whose
    /// cursor is older then list everything again.
    PruneJournal {
        #[arg(long)]
        days: u64,
    },
    /// Show the newest audit-log records.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
enum UserCmd {
    /// Create an account (the password comes from stdin, or is generated and printed).
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// e.g. 50MiB (binary: KiB, MiB, GiB, TiB, or K, M, G, T) or 50MB (decimal: kB, MB, GB, TB); no limit if omitted.
        #[arg(long)]
        quota: Option<String>,
        #[arg(long)]
        admin: bool,
    },
    /// List accounts with their usage.
    List,
    /// Set a new password (from stdin, or generated and printed).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Refuse sign-ins for an account.
    Disable { name: String },
    /// Allow sign-ins again.
    Enable { name: String },
    /// Delete an account with all its files, versions and trash.
    Delete {
        name: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Make an app password for USER; prints the secret once.
    Add {
        user: String,
        #[arg(long, default_value = "cairnctl")]
        label: String,
    },
    /// List USER's app passwords (never the secrets).
    List { user: String },
    /// Revoke one of USER's app passwords; clients using it are signed out at once.
    Revoke { user: String, id: i64 },
}

#[derive(Debug, Subcommand)]
enum QuotaCmd {
    /// Set a quota: 50MiB (binary: KiB, MiB, GiB, TiB, or K, M, G, T), 50MB (decimal: kB, MB, GB, TB), or `none` for no limit.
    Set { name: String, size: String },
    /// Show quota and usage.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
enum VersionsCmd {
    /// List a file's earlier contents, newest first.
    List { user: String, path: String },
    /// Make an earlier content current again (the current one becomes a version).
    Restore { user: String, path: String, version: i64 },
}

#[derive(Debug, Subcommand)]
enum TrashCmd {
    /// List deleted items, newest first.
    List { user: String },
    /// Put an item back (where it was, or at --to).
    Restore {
        user: String,
        id: i64,
        #[arg(long)]
        to: Option<String>,
    },
    /// Delete items for good: one id, or --all.
    Purge {
        user: String,
        id: Option<i64>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum FilesCmd {
    /// List a folder.
    Ls {
        user: String,
        #[arg(default_value = "/")]
        path: String,
    },
    /// Show one file or folder.
    Stat { user: String, path: String },
    /// Write a file from stdin (or --from FILE); the old content becomes a version.
    Put {
        user: String,
        path: String,
        #[arg(long)]
        from: Option<PathBuf>,
        /// Create missing parent folders.
        #[arg(long, short)]
        parents: bool,
    },
    /// Print a file to stdout (or --to FILE).
    Get {
        user: String,
        path: String,
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Create a folder.
    Mkdir { user: String, path: String },
    /// Move to the trash.
    Rm { user: String, path: String },
    /// Move or rename.
    Mv {
        user: String,
        from: String,
        to: String,
        #[arg(long)]
        overwrite: bool,
    },
    /// Copy.
    Cp {
        user: String,
        from: String,
        to: String,
        #[arg(long)]
        overwrite: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairnctl: {e:#}");
            let kind = e.chain().find_map(|c| c.downcast_ref::<store::Error>()).map(store::Error::kind);
            ExitCode::from(kind.map_or(1, exit_code))
        }
    }
}

/// cairnctl's error table: 2 when the command named something wrong (a bad path, size or name,
/// or nothing there), 1 for every other failure.
fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidPath | ErrorKind::InvalidInput | ErrorKind::NotFound => 2,
        ErrorKind::AlreadyExists
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::NotEmpty
        | ErrorKind::Conflict
        | ErrorKind::PreconditionFailed
        | ErrorKind::Locked
        | ErrorKind::QuotaExceeded
        | ErrorKind::ChecksumMismatch
        | ErrorKind::CursorExpired
        | ErrorKind::Unauthenticated
        | ErrorKind::PermissionDenied
        | ErrorKind::Busy
        | ErrorKind::Setup
        | ErrorKind::Io
        | ErrorKind::Database
        | ErrorKind::Internal => 1,
    }
}

fn real_main(args: Args) -> anyhow::Result<ExitCode> {
    let config_path =
        args.config.clone().context("no config file: pass --config FILE or set CAIRN_CONFIG")?;
    let cfg = Config::load(&config_path)?;
    let attached = daemon::attach(&cfg, Role::Admin)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let res = rt.block_on(async {
        // A command ends right after its work: no write log, whose flush would come later.
        let store =
            Store::open(store::StoreConfig { write_log: None, ..cfg.store_config() }, &attached.target)
                .await?;
        let report = store.migrate().await.context("migrating the database")?;
        if let Cmd::Migrate = args.cmd {
            return out(args.json, json!({"applied": report.applied, "already": report.already}), || {
                if report.applied.is_empty() {
                    format!("up to date ({} migrations)", report.already)
                } else {
                    format!("applied: {}", report.applied.join(", "))
                }
            });
        }
        if let Some(lock) = &attached.lock {
            // No daemon runs: finish whatever a crash interrupted before touching anything.
            store.recover(lock).await?;
        }
        run(&cfg, &store, &attached, &args).await
    });
    drop(rt);
    if let Some(cluster) = attached.cluster {
        cluster.stop();
    }
    res
}

fn user_name(raw: &str) -> anyhow::Result<UserName> {
    Ok(UserName::parse(raw)?)
}

fn vpath(raw: &str) -> anyhow::Result<VPath> {
    VPath::parse(raw).map_err(|e| anyhow::Error::from(store::Error::from(e)))
}

async fn user(store: &Store, raw: &str) -> anyhow::Result<store::User> {
    Ok(store.user(&user_name(raw)?).await?)
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((daemon::random_password(), true));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    Ok((pw, false))
}

/// Print `value` as JSON, or the human text.
fn out(json_mode: bool, value: Value, human: impl FnOnce() -> String) -> anyhow::Result<ExitCode> {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        text.push('\n');
        text.push_str(&line(row));
    }
    text
}

fn node_json(n: &Node) -> Value {
    json!({
        "id": n.id.0,
        "path": n.path.to_string(),
        "type": if n.is_dir { "dir" } else { "file" },
        "size": n.size,
        "mtime": n.mtime.to_rfc3339(),
        "mtime_ns": n.mtime.0,
        "etag": n.etag.0,
        "blake3": n.content_hash.map(|h| h.to_hex()),
    })
}

fn node_row(n: &Node) -> Vec<String> {
    vec![
        n.id.to_string(),
        if n.is_dir { "dir".into() } else { "file".into() },
        if n.is_dir { "-".into() } else { store::format_size(n.size) },
        n.mtime.to_rfc3339(),
        n.path.to_string(),
    ]
}

fn quota_text(q: Option<u64>) -> String {
    q.map_or_else(|| "none".to_owned(), store::format_size)
}

async fn run(
    cfg: &Config,
    store: &Store,
    attached: &daemon::Attached,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let actor = Actor::ctl();
    let j = args.json;
    match &args.cmd {
        Cmd::User(UserCmd::Add { name, password_stdin, quota, admin }) => {
            let name = user_name(name)?;
            let quota = quota.as_deref().map(store::parse_size).transpose()?;
            let (password, generated) = read_password(*password_stdin)?;
            let u = store
                .create_user(&actor, &name, &password, store::NewUser { is_admin: *admin, quota })
                .await?;
            out(
                j,
                json!({"id": u.id.0, "name": u.name.as_str(), "admin": u.is_admin, "quota": u.quota,
                          "password": generated.then_some(&password)}),
                || {
                    let mut s =
                        format!("created user {} (id {}, quota {})", u.name, u.id, quota_text(u.quota));
                    if generated {
                        s.push_str(&format!("\npassword: {password}"));
                    }
                    s
                },
            )
        }
        Cmd::User(UserCmd::List) => {
            let users = store.list_users().await?;
            let value = users
                .iter()
                .map(|i| {
                    json!({"id": i.user.id.0, "name": i.user.name.as_str(), "admin": i.user.is_admin,
                    "disabled": i.user.disabled, "quota": i.usage.quota, "used": i.usage.used,
                    "files": i.usage.files, "versions": i.usage.versions, "trash": i.usage.trash})
                })
                .collect();
            out(j, Value::Array(value), || {
                table(
                    &["ID", "NAME", "ADMIN", "DISABLED", "USED", "QUOTA"],
                    users
                        .iter()
                        .map(|i| {
                            vec![
                                i.user.id.to_string(),
                                i.user.name.to_string(),
                                i.user.is_admin.to_string(),
                                i.user.disabled.to_string(),
                                store::format_size(i.usage.used),
                                quota_text(i.usage.quota),
                            ]
                        })
                        .collect(),
                )
            })
        }
        Cmd::User(UserCmd::Passwd { name, password_stdin }) => {
            let name = user_name(name)?;
            let (password, generated) = read_password(*password_stdin)?;
            store.set_password(&actor, &name, &password).await?;
            out(j, json!({"name": name.as_str(), "password": generated.then_some(&password)}), || {
                if generated {
                    format!("new password for {name}: {password}")
                } else {
                    format!("password of {name} changed")
                }
            })
        }
        Cmd::User(UserCmd::Disable { name }) | Cmd::User(UserCmd::Enable { name }) => {
            let disable = matches!(args.cmd, Cmd::User(UserCmd::Disable { .. }));
            let name = user_name(name)?;
            store.set_disabled(&actor, &name, disable).await?;
            out(j, json!({"name": name.as_str(), "disabled": disable}), || {
                format!("{name} {}", if disable { "disabled" } else { "enabled" })
            })
        }
        Cmd::User(UserCmd::Delete { name, yes }) => {
            let name = user_name(name)?;
            if !yes {
                anyhow::bail!(
                    "deleting {name} removes all their files, versions and trash for good; add --yes"
                );
            }
            store.delete_user(&actor, &name).await?;
            out(j, json!({"deleted": name.as_str()}), || format!("deleted user {name}"))
        }
        Cmd::Token(TokenCmd::Add { user: u, label }) => {
            let u = user(store, u).await?;
            let (tok, secret) = store.create_app_password(&actor, &u, label).await?;
            out(
                j,
                json!({"id": tok.id, "label": tok.label, "user": u.name.as_str(), "secret": secret}),
                || format!("app password {} for {} ({}): {secret}", tok.id, u.name, tok.label),
            )
        }
        Cmd::Token(TokenCmd::List { user: u }) => {
            let u = user(store, u).await?;
            let toks = store.list_app_passwords(&u).await?;
            let value = toks
                .iter()
                .map(|t| {
                    json!({"id": t.id, "label": t.label, "created_at": t.created_at.to_rfc3339(),
                    "last_used_at": t.last_used_at.map(|l| l.to_rfc3339())})
                })
                .collect();
            out(j, Value::Array(value), || {
                table(
                    &["ID", "LABEL", "CREATED", "LAST USED"],
                    toks.iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                t.label.clone(),
                                t.created_at.to_rfc3339(),
                                t.last_used_at.map_or_else(|| "never".to_owned(), |l| l.to_rfc3339()),
                            ]
                        })
                        .collect(),
                )
            })
        }
        Cmd::Token(TokenCmd::Revoke { user: u, id }) => {
            let u = user(store, u).await?;
            store.revoke_app_password(&actor, &u, *id).await?;
            out(j, json!({"revoked": id}), || format!("revoked app password {id} of {}", u.name))
        }
        Cmd::Quota(QuotaCmd::Set { name, size }) => {
            let name = user_name(name)?;
            let quota = if size == "none" { None } else { Some(store::parse_size(size)?) };
            store.set_quota(&actor, &name, quota).await?;
            out(j, json!({"name": name.as_str(), "quota": quota}), || {
                format!("quota of {name}: {}", quota_text(quota))
            })
        }
        Cmd::Quota(QuotaCmd::Show { name }) => {
            let u = user(store, name).await?;
            let usage = store.usage(&u).await?;
            out(
                j,
                json!({"name": u.name.as_str(), "quota": usage.quota, "used": usage.used, "files": usage.files,
                          "versions": usage.versions, "trash": usage.trash, "available": usage.available()}),
                || {
                    let free = usage.available().map_or(String::new(), |a| {
                        format!("; {} free (versions and trash make room)", store::format_size(a))
                    });
                    format!(
                        "{}: {} used of {} (files {}, versions {}, trash {}){free}",
                        u.name,
                        store::format_size(usage.used),
                        quota_text(usage.quota),
                        store::format_size(usage.files),
                        store::format_size(usage.versions),
                        store::format_size(usage.trash)
                    )
                },
            )
        }
        Cmd::Versions(VersionsCmd::List { user: u, path }) => {
            let u = user(store, u).await?;
            let versions = store.versions(&u, &vpath(path)?).await?;
            let value = versions
                .iter()
                .map(|v| json!({"id": v.id.0, "file_id": v.file_id.0, "size": v.size, "mtime": v.mtime.to_rfc3339(),
                    "created_at": v.created_at.to_rfc3339(), "etag": v.etag.0, "blake3": v.content_hash.to_hex()}))
                .collect();
            out(j, Value::Array(value), || {
                table(
                    &["ID", "SIZE", "REPLACED AT", "BLAKE3"],
                    versions
                        .iter()
                        .map(|v| {
                            vec![
                                v.id.to_string(),
                                store::format_size(v.size),
                                v.created_at.to_rfc3339(),
                                v.content_hash.to_hex()[..16].to_owned(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        Cmd::Versions(VersionsCmd::Restore { user: u, path, version }) => {
            let u = user(store, u).await?;
            let node = store.restore_version(&actor, &u, &vpath(path)?, store::VersionId(*version)).await?;
            out(j, node_json(&node), || format!("restored version {version} of {}", node.path))
        }
        Cmd::Trash(TrashCmd::List { user: u }) => {
            let u = user(store, u).await?;
            let items = store.trash_list(&u).await?;
            let value = items
                .iter()
                .map(|t| json!({"id": t.id.0, "file_id": t.file_id.0, "path": t.orig_path.to_string(),
                    "type": if t.is_dir { "dir" } else { "file" }, "size": t.size, "deleted_at": t.deleted_at.to_rfc3339()}))
                .collect();
            out(j, Value::Array(value), || {
                table(
                    &["ID", "TYPE", "SIZE", "DELETED AT", "PATH"],
                    items
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.to_string(),
                                if t.is_dir { "dir".into() } else { "file".into() },
                                store::format_size(t.size),
                                t.deleted_at.to_rfc3339(),
                                t.orig_path.to_string(),
                            ]
                        })
                        .collect(),
                )
            })
        }
        Cmd::Trash(TrashCmd::Restore { user: u, id, to }) => {
            let u = user(store, u).await?;
            let to = to.as_deref().map(vpath).transpose()?;
            let node = store.trash_restore(&actor, &u, store::TrashId(*id), to).await?;
            out(j, node_json(&node), || format!("restored {}", node.path))
        }
        Cmd::Trash(TrashCmd::Purge { user: u, id, all }) => {
            let u = user(store, u).await?;
            if id.is_none() && !all {
                anyhow::bail!("name a trash item id, or pass --all to empty the trash");
            }
            let freed = store.trash_purge(&actor, &u, id.map(store::TrashId)).await?;
            out(j, json!({"freed": freed}), || format!("freed {}", store::format_size(freed)))
        }
        Cmd::Files(cmd) => files(store, &actor, j, cmd).await,
        Cmd::Scan { user: only } => {
            let users: Vec<store::User> = match only {
                Some(u) => vec![user(store, u).await?],
                None => store.list_users().await?.into_iter().map(|i| i.user).collect(),
            };
            let mut all = Vec::new();
            for u in users {
                let r = store.scan(&actor, &u).await?;
                all.push((u.name.to_string(), r));
            }
            let value = all
                .iter()
                .map(|(u, r)| json!({"user": u,
                    "added": r.added.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "modified": r.modified.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "removed": r.removed.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "skipped": r.skipped.iter().map(|(p, why)| json!({"path": p, "reason": why})).collect::<Vec<_>>(),
                    "over_quota": r.over_quota.map(|u| json!({"used": u.used, "quota": u.quota}))}))
                .collect();
            out(j, Value::Array(value), || {
                let mut s = String::new();
                for (u, r) in &all {
                    s.push_str(&format!(
                        "{u}: {} added, {} modified, {} removed, {} skipped\n",
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
                    for (p, why) in &r.skipped {
                        s.push_str(&format!("  ! {p}: {why}\n"));
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
            })
        }
        Cmd::Fsck { user: only, verify } => {
            let only = only.as_deref().map(user_name).transpose()?;
            let r = store.fsck(only.as_ref(), *verify).await?;
            let value = json!({"users": r.users, "nodes": r.nodes, "versions": r.versions, "clean": r.problems.is_empty(),
                "problems": r.problems.iter().map(|p| json!({"user": p.user, "kind": p.kind, "detail": p.detail})).collect::<Vec<_>>()});
            out(j, value, || {
                let mut s =
                    format!("checked {} user(s), {} entries, {} versions: ", r.users, r.nodes, r.versions);
                if r.problems.is_empty() {
                    s.push_str("clean");
                } else {
                    s.push_str(&format!("{} problem(s)", r.problems.len()));
                    for p in &r.problems {
                        s.push_str(&format!("\n  [{}] {}: {}", p.kind, p.user, p.detail));
                    }
                }
                s
            })?;
            Ok(if r.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Cmd::Migrate => unreachable!("handled before recovery"),
        Cmd::Status => {
            let users = store.list_users().await?;
            let used: u64 = users.iter().map(|i| i.usage.used).sum();
            let daemon_running = attached.lock.is_none();
            let db = match &cfg.database {
                Some(_) => "external ([database] url)".to_owned(),
                None => format!("managed cluster in {}", cfg.managed_pg_dir().display()),
            };
            out(
                j,
                json!({"data_dir": cfg.data_dir, "daemon_running": daemon_running, "database": db,
                          "users": users.len(), "used": used}),
                || {
                    format!(
                        "data dir:  {}\ndaemon:    {}\ndatabase:  {db}\nusers:     {}\nstored:    {}",
                        cfg.data_dir.display(),
                        if daemon_running { "running" } else { "not running" },
                        users.len(),
                        store::format_size(used)
                    )
                },
            )
        }
        Cmd::PruneJournal { days } => {
            let n = store.prune_journal(std::time::Duration::from_secs(days * 86_400)).await?;
            out(j, json!({"removed": n}), || format!("removed {n} journal record(s)"))
        }
        Cmd::Audit { limit } => {
            let records = store.audit_tail(*limit).await?;
            let value = records
                .iter()
                .map(|r| {
                    json!({"at": r.at.to_rfc3339(), "actor": r.actor, "origin": r.origin, "action": r.action,
                    "path": r.path, "detail": r.detail})
                })
                .collect();
            out(j, Value::Array(value), || {
                table(
                    &["AT", "ACTOR", "VIA", "ACTION", "PATH", "DETAIL"],
                    records
                        .iter()
                        .map(|r| {
                            vec![
                                r.at.to_rfc3339(),
                                r.actor.clone(),
                                r.origin.clone(),
                                r.action.clone(),
                                r.path.clone().unwrap_or_default(),
                                r.detail.clone().unwrap_or_default(),
                            ]
                        })
                        .collect(),
                )
            })
        }
    }
}

async fn files(store: &Store, actor: &Actor, j: bool, cmd: &FilesCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        FilesCmd::Ls { user: u, path } => {
            let u = user(store, u).await?;
            let nodes = store.list(&u, &vpath(path)?).await?;
            out(j, Value::Array(nodes.iter().map(node_json).collect()), || {
                table(&["ID", "TYPE", "SIZE", "MODIFIED", "PATH"], nodes.iter().map(node_row).collect())
            })
        }
        FilesCmd::Stat { user: u, path } => {
            let u = user(store, u).await?;
            let n = store.stat(&u, &vpath(path)?).await?;
            out(j, node_json(&n), || table(&["ID", "TYPE", "SIZE", "MODIFIED", "PATH"], vec![node_row(&n)]))
        }
        FilesCmd::Put { user: u, path, from, parents } => {
            let u = user(store, u).await?;
            let path = vpath(path)?;
            let opts = store::WriteOptions { create_parents: *parents, ..Default::default() };
            let outcome = match from {
                Some(file) => {
                    let f = tokio::fs::File::open(file)
                        .await
                        .with_context(|| format!("opening {}", file.display()))?;
                    let len = f.metadata().await?.len();
                    store
                        .write(actor, &u, &path, f, store::WriteOptions { expected_len: Some(len), ..opts })
                        .await?
                }
                None => store.write(actor, &u, &path, tokio::io::stdin(), opts).await?,
            };
            out(
                j,
                json!({"file": node_json(&outcome.node), "created": outcome.created,
                          "version": outcome.version.map(|v| v.0)}),
                || {
                    format!(
                        "{} {} ({})",
                        if outcome.created { "created" } else { "replaced" },
                        outcome.node.path,
                        store::format_size(outcome.node.size)
                    )
                },
            )
        }
        FilesCmd::Get { user: u, path, to } => {
            let u = user(store, u).await?;
            let (_, file) = store.open_file(&u, &vpath(path)?).await?;
            let mut src = tokio::fs::File::from_std(file);
            match to {
                Some(dest) => {
                    let mut dst = tokio::fs::File::create(dest)
                        .await
                        .with_context(|| format!("creating {}", dest.display()))?;
                    tokio::io::copy(&mut src, &mut dst).await?;
                }
                None => {
                    tokio::io::copy(&mut src, &mut tokio::io::stdout()).await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FilesCmd::Mkdir { user: u, path } => {
            let u = user(store, u).await?;
            let n = store.mkdir(actor, &u, &vpath(path)?).await?;
            out(j, node_json(&n), || format!("created folder {}", n.path))
        }
        FilesCmd::Rm { user: u, path } => {
            let u = user(store, u).await?;
            let path = vpath(path)?;
            let tid = store.delete(actor, &u, &path, None).await?;
            out(j, json!({"trash_id": tid.0}), || format!("moved {path} to the trash (item {tid})"))
        }
        FilesCmd::Mv { user: u, from, to, overwrite } => {
            let u = user(store, u).await?;
            let n = store
                .rename(actor, &u, &vpath(from)?, &vpath(to)?, store::Replace::overwrite(*overwrite))
                .await?;
            out(j, node_json(&n), || format!("moved to {}", n.path))
        }
        FilesCmd::Cp { user: u, from, to, overwrite } => {
            let u = user(store, u).await?;
            let n = store
                .copy(actor, &u, &vpath(from)?, &vpath(to)?, store::Replace::overwrite(*overwrite))
                .await?;
            out(j, node_json(&n), || format!("copied to {}", n.path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind: a failure of the server is never blamed on the command line (exit 2 means
    /// "fix what you typed").
    #[test]
    fn every_kind_has_an_exit_code() {
        for &kind in ErrorKind::ALL {
            let code = exit_code(kind);
            assert!(code == 1 || code == 2, "{kind:?} → {code}");
            if kind.is_server_side() {
                assert_eq!(code, 1, "{kind:?}");
            }
        }
    }
}
