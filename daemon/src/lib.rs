//! `daemon`: configuration and wiring for `cairnd` (and the start-up steps `cairnctl` shares).
//! It decides nothing: `store` owns the data, `davbridge` the HTTP front end.

pub mod config;
pub mod systemd;
pub mod tls;

use std::future::Future;

use anyhow::Context;
pub use config::{Config, parse_duration};
use store::{ClusterOptions, DataDirLock, DbTarget, ManagedCluster, Store};
use tokio::net::TcpListener;

/// Who is starting up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `cairnd`: must own the data directory.
    Daemon,
    /// `cairnctl`: owns the data directory while no daemon runs, else works beside the daemon.
    Admin,
}

/// The data directory and database, attached to.
pub struct Attached {
    /// Held when this process owns the data directory.
    pub lock: Option<DataDirLock>,
    /// The managed cluster this process started (stopped when dropped).
    pub cluster: Option<ManagedCluster>,
    /// Where the database is.
    pub target: DbTarget,
}

/// Take the data directory and make the database reachable. Synchronous: call it before
/// building the tokio runtime (the managed cluster's parent-death signal follows this thread).
pub fn attach(cfg: &Config, role: Role) -> anyhow::Result<Attached> {
    let holder = match role {
        Role::Daemon => "cairnd",
        Role::Admin => "cairnctl",
    };
    let lock = match (role, DataDirLock::try_acquire(&cfg.data_dir, holder)?) {
        (_, Ok(lock)) => Some(lock),
        (Role::Daemon, Err(current)) => anyhow::bail!(
            "data directory {} is in use by {current}; refusing to start a second server on it",
            cfg.data_dir.display()
        ),
        (Role::Admin, Err(_)) => None,
    };
    if let Some(target) = &cfg.database {
        return Ok(Attached { lock, cluster: None, target: target.clone() });
    }
    let dir = cfg.managed_pg_dir();
    if lock.is_none() {
        // A running cairnd owns the cluster; talk to it through its socket.
        return Ok(Attached { lock, cluster: None, target: ManagedCluster::target_for(&dir) });
    }
    let cluster = ManagedCluster::start(&dir, ClusterOptions::default())?;
    let target = cluster.target();
    Ok(Attached { lock, cluster: Some(cluster), target })
}

/// Connect `store` and bring the schema up to date.
pub async fn open_store(cfg: &Config, attached: &Attached) -> anyhow::Result<Store> {
    let store = Store::open(cfg.store_config(), &attached.target).await?;
    let report = store.migrate().await.context("migrating the database")?;
    if !report.applied.is_empty() {
        tracing::info!(applied = ?report.applied, "database migrated");
    }
    Ok(store)
}

/// Where the first admin's generated password is written (mode 0600).
pub fn initial_password_file(cfg: &Config) -> std::path::PathBuf {
    cfg.data_dir.join(".cairn/initial-admin-password")
}

/// On a fresh installation, create the user `admin` with a random password, written to
/// [`initial_password_file`].
pub async fn bootstrap_admin(cfg: &Config, store: &Store) -> anyhow::Result<()> {
    if store.user_count().await? > 0 {
        return Ok(());
    }
    let password = random_password();
    let name = store::UserName::parse("admin")?;
    store
        .create_user(
            &store::Actor::system(),
            &name,
            &password,
            store::NewUser { is_admin: true, quota: None },
        )
        .await?;
    let path = initial_password_file(cfg);
    write_private(&path, &format!("{password}\n")).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(file = %path.display(), "created the first admin user `admin`; its password is in the file");
    Ok(())
}

/// Write a file only its owner can read, durably.
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// 20 characters from an unambiguous alphabet (~114 bits).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf).expect("the OS random source failed");
        // Rejection sampling keeps the distribution uniform.
        for b in buf {
            let limit = 256 - 256 % ALPHABET.len();
            if (b as usize) < limit && out.len() < 20 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// Serve until `shutdown` resolves.
pub async fn run(
    store: Store,
    opts: davbridge::BridgeOptions,
    scrub: Option<store::ScrubOptions>,
    listener: TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Hourly housekeeping: abandoned resumable uploads expire (start-up recovery did the first
    // sweep), the change journal keeps JOURNAL_KEEP (older cursors expire), cached signatures
    // are recomputed after SIGNATURE_KEEP.
    const DAY: u64 = 86_400;
    const JOURNAL_KEEP: std::time::Duration = std::time::Duration::from_secs(90 * DAY);
    const SIGNATURE_KEEP: std::time::Duration = std::time::Duration::from_secs(30 * DAY);
    let sweeper = store.clone();
    let sweep = tokio::spawn(async move {
        let every = std::time::Duration::from_secs(3600);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            match sweeper.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired resumable uploads removed"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
            }
            if let Err(e) = sweeper.prune_journal(JOURNAL_KEEP).await {
                tracing::warn!(error = %e, "pruning the change journal failed");
            }
            if let Err(e) = sweeper.expire_signatures(SIGNATURE_KEEP).await {
                tracing::warn!(error = %e, "expiring cached signatures failed");
            }
        }
    });
    let scrubber = scrub.map(|opts| {
        let store = store.clone();
        tokio::spawn(async move { store.run_scrub(opts).await })
    });
    let res = davbridge::serve(davbridge::Bridge::new(store, opts), listener, tls, shutdown).await;
    sweep.abort();
    if let Some(s) = scrubber {
        s.abort();
    }
    res?;
    Ok(())
}
