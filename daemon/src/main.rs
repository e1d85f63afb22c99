//! `cairnd`: read the config, attach the data directory and database, serve until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use daemon::{Config, Role};

/// Cairn's server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The TOML config file.
    #[arg(long, env = "CAIRN_CONFIG")]
    config: PathBuf,
}

fn main() -> ExitCode {
    // SAFETY: first thing, before any thread starts.
    let listen_fds = match unsafe { daemon::systemd::take_listen_fds() } {
        Ok(fds) => fds,
        Err(e) => {
            eprintln!("cairnd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let args = Args::parse();
    let cfg = match Config::load(&args.config) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("cairnd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    store::watchdog::start(cfg.log_slow);
    match real_main(cfg, &listen_fds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cairnd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(cfg: Config, listen_fds: &[std::os::fd::RawFd]) -> anyhow::Result<()> {
    tracing::info!(?cfg, "starting");
    let attached = daemon::attach(&cfg, Role::Daemon)?;
    // A stolen disk reads as it is unless the disk is encrypted (README: Encryption at rest).
    match store::at_rest(&cfg.data_dir) {
        at @ (store::AtRest::Encrypted { .. } | store::AtRest::InMemory) => {
            tracing::info!("data directory at rest: {}", at.describe())
        }
        at => tracing::warn!("data directory at rest: {}", at.describe()),
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the runtime")?;
    let res = rt.block_on(async {
        let store = daemon::open_store(&cfg, &attached).await?;
        let lock = attached.lock.as_ref().expect("the daemon owns the data directory");
        let recovered = store.recover(lock).await.context("recovering after the last run")?;
        if recovered != store::RecoveryReport::default() {
            tracing::info!(?recovered, "finished what the last run left");
        }
        daemon::bootstrap_admin(&cfg, &store).await?;
        store.enable_cache();
        // Content the scrub found damaged is refused from the first request on.
        store.resolve_findings().await.context("reading the integrity scrub's findings")?;
        let mount = match &cfg.fuse {
            Some(fc) => {
                let m = fusefs::Mount::start(store.clone(), fc.clone()).with_context(|| {
                    format!(
                        "mounting FUSE at {} (needs /dev/fuse and root, package fuse3)",
                        fc.mountpoint.display()
                    )
                })?;
                Some(m)
            }
            None => None,
        };
        let listener = daemon::systemd::listener(listen_fds, cfg.listen).await?;
        let tls = cfg.tls.as_ref().map(|src| daemon::tls::server_config(src, &cfg.data_dir)).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut bridge_options = cfg.bridge_options();
        let tls = tls.map(|(config, expiry)| {
            bridge_options.tls_expiry = expiry;
            config
        });
        tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
        // Ready when the database answers and the data directory takes writes.
        store.ping_within(std::time::Duration::from_secs(5)).await.context("the database does not answer")?;
        if let Err(why) = store.data_dir_state()?.writable() {
            anyhow::bail!("the data directory {} {why}", cfg.data_dir.display());
        }
        daemon::systemd::ready();
        let watchdog = daemon::systemd::spawn_watchdog();
        let shutdown = async {
            shutdown_signal().await;
            daemon::systemd::stopping();
        };
        let res =
            daemon::run(store.clone(), bridge_options, cfg.scrub.clone(), listener, tls, shutdown).await;
        if let Some(w) = watchdog {
            w.abort();
        }
        if let Some(m) = mount {
            // Unmount before the runtime goes: in-flight requests wait on it.
            if let Err(e) = tokio::task::block_in_place(|| m.unmount()) {
                tracing::warn!(error = %e, "unmounting FUSE");
            }
        }
        // Logged small writes synced now rather than replayed at the next start.
        if let Err(e) = store.flush().await {
            tracing::warn!(error = %e, "flushing logged writes (the next start replays them)");
        }
        res
    });
    // Close every database connection before stopping the managed cluster.
    drop(rt);
    if let Some(cluster) = attached.cluster {
        cluster.stop();
    }
    tracing::info!("stopped");
    res
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
