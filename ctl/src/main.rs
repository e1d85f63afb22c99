//! `cairnctl`: the admin CLI. It links `store` and calls the same operations the daemon does, so
//! it works whether or not `cairnd` runs; it contains no SQL. Human tables by default, `--json`
//! for scripts.
//!
//! Exit codes: 0 success; 1 the operation failed (or `fsck` found problems); 2 bad usage or
//! input (invalid path, unknown user, bad size).

mod content;
mod output;
mod upkeep;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use daemon::{Config, Role};
use store::{Actor, ErrorKind, Store, UserName, VPath};

use crate::content::{FilesCmd, TrashCmd, VersionsCmd};
use crate::upkeep::ScrubCmd;
use crate::users::{GroupCmd, QuotaCmd, TokenCmd, UserCmd};

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
    /// Groups of accounts (shares can name a group).
    #[command(subcommand)]
    Group(GroupCmd),
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
    /// The integrity scrub: re-reads every file and version and checks its blake3.
    #[command(subcommand)]
    Scrub(ScrubCmd),
    /// Show the newest audit-log records.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
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
            return upkeep::migrated(args.json, &report);
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

pub(crate) fn user_name(raw: &str) -> anyhow::Result<UserName> {
    Ok(UserName::parse(raw)?)
}

pub(crate) fn vpath(raw: &str) -> anyhow::Result<VPath> {
    VPath::parse(raw).map_err(|e| anyhow::Error::from(store::Error::from(e)))
}

pub(crate) async fn user(store: &Store, raw: &str) -> anyhow::Result<store::User> {
    Ok(store.user(&user_name(raw)?).await?)
}

pub(crate) fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((daemon::random_password(), true));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    Ok((pw, false))
}

/// Run one command (the database is migrated and, without a daemon, recovered).
async fn run(
    cfg: &Config,
    store: &Store,
    attached: &daemon::Attached,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let actor = Actor::ctl();
    let j = args.json;
    match &args.cmd {
        Cmd::User(cmd) => users::user_cmd(store, &actor, j, cmd).await,
        Cmd::Group(cmd) => users::group_cmd(store, &actor, j, cmd).await,
        Cmd::Token(cmd) => users::token_cmd(store, &actor, j, cmd).await,
        Cmd::Quota(cmd) => users::quota_cmd(store, &actor, j, cmd).await,
        Cmd::Versions(cmd) => content::versions_cmd(store, &actor, j, cmd).await,
        Cmd::Trash(cmd) => content::trash_cmd(store, &actor, j, cmd).await,
        Cmd::Files(cmd) => content::files_cmd(store, &actor, j, cmd).await,
        Cmd::Scan { user } => upkeep::scan(store, &actor, j, user.as_deref()).await,
        Cmd::Fsck { user, verify } => upkeep::fsck(store, j, user.as_deref(), *verify).await,
        Cmd::Migrate => unreachable!("handled before recovery"),
        Cmd::Status => upkeep::status(cfg, store, attached, j).await,
        Cmd::PruneJournal { days } => upkeep::prune_journal(store, j, *days).await,
        Cmd::Scrub(cmd) => upkeep::scrub(store, &actor, j, cmd).await,
        Cmd::Audit { limit } => upkeep::audit(store, j, *limit).await,
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
