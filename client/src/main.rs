//! `cairn`: keeps a local folder and a folder on a Cairn server the same.
//!
//! `cairn login` trades the password for a device token; `cairn sync DIR` makes both sides
//! agree (once, or with `--watch` for as long as it runs); `cairn status` shows what is synced.
//! Client state (the token, one SQLite database per synced folder) lives in the config
//! directory: `--config-dir`, `CAIRN_CLIENT_DIR`, or the platform's config folder.

mod api;
mod engine;
mod pin;
mod plan;
mod state;
mod vault;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(name = "cairn", version, about = "Sync a folder with a Cairn server")]
struct Cli {
    /// Where the client keeps its token and state.
    #[arg(long, global = true, env = "CAIRN_CLIENT_DIR")]
    config_dir: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sign in: the password is exchanged for a device token (the password is not stored).
    Login {
        /// The server, e.g. `https://cairn.example.org`.
        url: String,
        #[arg(long)]
        user: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// This device's name (in conflict copies and the server's token list).
        #[arg(long)]
        device: Option<String>,
        /// Trust only the certificate with this SHA-256 fingerprint (a server with a
        /// self-signed certificate prints it; compare before you pass it).
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Make LOCAL_DIR and the remote folder the same.
    Sync {
        local_dir: PathBuf,
        /// The folder on the server (default: everything).
        #[arg(long, default_value = "/")]
        remote: String,
        /// Keep syncing: local changes as they happen, remote ones as the server pushes them.
        #[arg(long)]
        watch: bool,
        /// With --watch: find local changes by scanning every 2 s instead of through the
        /// system's file events (which network file systems do not deliver).
        #[arg(long, requires = "watch")]
        poll: bool,
        /// Transfers at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Skip (and report) remote names Windows cannot hold or that differ only in case
        /// (always on for Windows and macOS).
        #[arg(long)]
        portable_names: bool,
    },
    /// Show the account and the synced folders.
    Status,
    /// Encrypted vaults: folders the server stores only as ciphertext.
    Vault {
        #[command(subcommand)]
        cmd: VaultCmd,
    },
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Make this account's vault keys (passphrase on stdin); prints the emergency kit.
    Enroll {
        /// Replace keys made before (vaults made with them stay closed).
        #[arg(long)]
        replace: bool,
    },
    /// On another device: open the account's vault keys (passphrase on stdin).
    Unlock {
        /// The kit secret, from the emergency kit.
        #[arg(long)]
        kit: String,
    },
    /// A forgotten passphrase: stdin has the recovery key, then the new passphrase; prints a
    /// new emergency kit.
    Recover,
    /// Make REMOTE (a new or empty folder) a vault of yours.
    Create { remote: String },
    /// Encrypt LOCAL into the vault REMOTE (which then holds exactly LOCAL's tree).
    Push { local: PathBuf, remote: String },
    /// Check and decrypt the vault REMOTE into LOCAL.
    Pull { remote: String, local: PathBuf },
    /// Give USER the vault's keys and access to its folder; prints the safety number to
    /// compare with them in person.
    Share {
        remote: String,
        user: String,
        /// They may write too (else read only).
        #[arg(long)]
        writer: bool,
    },
    /// Take USER out of the vault: a new key that only the others hold.
    Remove { remote: String, user: String },
    /// The vault's members, each with the safety number to compare with them.
    Members { remote: String },
    /// Decrypt a copy of a vault's folder with the emergency kit alone (no server): the
    /// recovery key on stdin.
    OpenCopy {
        copy: PathBuf,
        out: PathBuf,
        /// The emergency kit, as printed by `enroll` or `recover`.
        #[arg(long)]
        kit_file: PathBuf,
    },
}

#[derive(Serialize, Deserialize)]
struct Config {
    server: String,
    user: String,
    device: String,
    token: String,
    /// The server certificate's pinned SHA-256 fingerprint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
}

impl Config {
    fn api(&self) -> Result<api::Api> {
        let pin = self.fingerprint.as_deref().map(pin::parse).transpose()?;
        api::Api::new(&self.server, &self.token, pin)
    }
}

fn config_dir(arg: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = arg {
        return Ok(d);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("APPDATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| anyhow!("no config directory: pass --config-dir or set CAIRN_CLIENT_DIR"))?;
    Ok(base.join("cairn"))
}

fn load(dir: &Path) -> Result<Config> {
    let raw = std::fs::read(dir.join("config.json"))
        .with_context(|| format!("not signed in ({}): run `cairn login` first", dir.display()))?;
    Ok(serde_json::from_slice(&raw)?)
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        use std::io::Write;
        let mut f = o.open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn hostname() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".into())
}

/// The state database of one (local folder, remote folder) pair.
fn state_path(dir: &Path, local: &Path, remote: &str) -> PathBuf {
    let key = blake3::hash(format!("{}\0{remote}", local.display()).as_bytes()).to_hex();
    dir.join("folders").join(format!("{}.db", &key[..16]))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cairn: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let dir = config_dir(cli.config_dir)?;
    match cli.cmd {
        Cmd::Login { url, user, password_stdin, device, fingerprint } => {
            if !password_stdin {
                bail!("pass the password on stdin with --password-stdin");
            }
            let mut pw = String::new();
            std::io::stdin().read_to_string(&mut pw)?;
            let pw = pw.lines().next().unwrap_or("").to_owned();
            let device = device.unwrap_or_else(hostname);
            let pin = fingerprint.as_deref().map(pin::parse).transpose()?;
            let token = api::Api::login(&url, &user, &pw, &device, pin).await?;
            std::fs::create_dir_all(&dir)?;
            let fingerprint = pin.as_ref().map(pin::show);
            let cfg =
                Config { server: url.trim_end_matches('/').to_owned(), user, device, token, fingerprint };
            write_private(&dir.join("config.json"), &serde_json::to_vec_pretty(&cfg)?)?;
            println!("signed in to {} as {} (device {})", cfg.server, cfg.user, cfg.device);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sync { local_dir, remote, watch, poll, parallel, portable_names } => {
            let cfg = load(&dir)?;
            std::fs::create_dir_all(&local_dir)?;
            let local = std::fs::canonicalize(&local_dir)?;
            let remote = if remote.starts_with('/') { remote } else { format!("/{remote}") };
            let db = state_path(&dir, &local, &remote);
            std::fs::create_dir_all(db.parent().expect("has a parent"))?;
            let st = state::State::open(&db)?;
            st.set_meta("local", &local.display().to_string())?;
            st.set_meta("remote", &remote)?;
            let api = cfg.api()?;
            let portable_names = portable_names || cfg!(any(windows, target_os = "macos"));
            let opts = engine::Options { device: cfg.device.clone(), parallel, portable_names };
            let engine = Arc::new(engine::Engine::new(api.clone(), local.clone(), remote, st, opts));
            if watch {
                watch_loop(&engine, &api, &local, poll).await
            } else {
                Ok(if sync_until_settled(&engine).await? { ExitCode::SUCCESS } else { ExitCode::from(1) })
            }
        }
        Cmd::Vault { cmd } => vault_cmd(&dir, cmd).await,
        Cmd::Status => {
            let cfg = load(&dir)?;
            println!("server: {}\nuser:   {}\ndevice: {}", cfg.server, cfg.user, cfg.device);
            let folders = dir.join("folders");
            for ent in std::fs::read_dir(&folders).into_iter().flatten().flatten() {
                if ent.path().extension().is_some_and(|e| e == "db") {
                    let st = state::State::open(&ent.path())?;
                    let (files, dirs) = st.count()?;
                    println!(
                        "{} <-> {}: {files} files, {dirs} folders, last synced {}",
                        st.meta("local")?.unwrap_or_default(),
                        st.meta("remote")?.unwrap_or_default(),
                        st.meta("synced_at")?.unwrap_or_else(|| "never".into())
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn stdin_lines(n: usize) -> Result<Vec<String>> {
    let mut all = String::new();
    std::io::stdin().read_to_string(&mut all)?;
    let lines: Vec<String> = all.lines().take(n).map(str::to_owned).collect();
    if lines.len() < n {
        bail!("expected {n} line(s) on stdin");
    }
    Ok(lines)
}

async fn vault_cmd(dir: &Path, cmd: VaultCmd) -> Result<ExitCode> {
    if let VaultCmd::OpenCopy { copy, out, kit_file } = cmd {
        let kit = std::fs::read_to_string(&kit_file)?;
        let recovery = stdin_lines(1)?.remove(0);
        let n = vault::open_copy(&copy, &kit, &recovery, &out).await?;
        println!("decrypted {n} files into {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = load(dir)?;
    let api = cfg.api()?;
    let dev = vault::Device::new(dir, &cfg.user);
    match cmd {
        VaultCmd::Enroll { replace } => {
            let pass = stdin_lines(1)?.remove(0);
            print!("{}", vault::enroll(&api, &dev, &pass, replace).await?);
        }
        VaultCmd::Unlock { kit } => {
            let pass = stdin_lines(1)?.remove(0);
            vault::unlock(&api, &dev, &pass, &kit).await?;
            println!("vault keys open on this device");
        }
        VaultCmd::Recover => {
            let lines = stdin_lines(2)?;
            print!("{}", vault::recover(&api, &dev, &lines[0], &lines[1]).await?);
        }
        VaultCmd::Create { remote } => {
            let id = vault::create(&api, &dev, &remote).await?;
            println!("{remote} is a vault (id {id})");
        }
        VaultCmd::Push { local, remote } => {
            let p = vault::push(&api, &dev, &local, &remote).await?;
            println!("{} files sent ({} bytes), {} unchanged", p.sent, p.bytes, p.unchanged);
        }
        VaultCmd::Pull { remote, local } => {
            let n = vault::pull(&api, &dev, &remote, &local).await?;
            println!("decrypted {n} files into {}", local.display());
        }
        VaultCmd::Share { remote, user, writer } => {
            let n = vault::share(&api, &dev, &remote, &user, writer).await?;
            println!("{remote} shared with {user}. Compare this safety number with {user} in person:\n{n}");
        }
        VaultCmd::Remove { remote, user } => {
            let epoch = vault::remove(&api, &dev, &remote, &user).await?;
            println!("{user} removed from {remote}; new files use key epoch {epoch}");
        }
        VaultCmd::Members { remote } => print!("{}", vault::members(&api, &dev, &remote).await?),
        VaultCmd::OpenCopy { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Rounds until one has nothing left to do. `true` when both sides agree.
async fn sync_until_settled(engine: &Arc<engine::Engine>) -> Result<bool> {
    let started = Instant::now();
    let (mut up, mut down) = (0, 0);
    for _ in 0..10 {
        let r = engine.round().await?;
        up += r.bytes_up;
        down += r.bytes_down;
        for (path, why) in &r.skipped {
            eprintln!("cairn: not synced here: {path}: {why}");
        }
        for e in &r.errors {
            eprintln!("cairn: error: {e}");
        }
        if r.work == 0 && r.errors.is_empty() && r.deferred == 0 {
            let (files, dirs) = engine.counts()?;
            engine.mark_synced()?;
            println!(
                "in sync: {files} files, {dirs} folders; {up} bytes up, {down} bytes down in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(true);
        }
        if !r.errors.is_empty() && r.work == r.errors.len() {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Sync, then again whenever something changes locally (file system events) or remotely (the
/// server's push), until killed.
async fn watch_loop(
    engine: &Arc<engine::Engine>,
    api: &api::Api,
    local: &Path,
    poll: bool,
) -> Result<ExitCode> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let _watcher = watch_local(local, tx.clone(), poll);
    tokio::spawn(push_listener(api.clone(), tx));
    loop {
        if let Err(e) = sync_until_settled(engine).await {
            eprintln!("cairn: sync failed (retrying): {e:#}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        // Wait for a reason, then let a burst of events settle.
        if let Ok(None) = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        while rx.try_recv().is_ok() {}
    }
}

/// Send "local" on `tx` for every change below `local` (outside the client's scratch folder):
/// through inotify, or by scanning every 2 s when asked to (`poll`) or when the system refuses
/// another inotify instance or watch (its limits are per user and shared by every program).
fn watch_local(
    local: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<&'static str>,
    poll: bool,
) -> Box<dyn notify::Watcher> {
    use notify::Watcher;
    let handler = || {
        let (tmp, tx) = (local.join(engine::TMP_DIR), tx.clone());
        move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev
                && ev.paths.iter().any(|p| !p.starts_with(&tmp))
            {
                let _ = tx.send("local");
            }
        }
    };
    if !poll {
        let native = notify::recommended_watcher(handler()).and_then(|mut w| {
            w.watch(local, notify::RecursiveMode::Recursive)?;
            Ok(w)
        });
        match native {
            Ok(w) => return Box::new(w),
            Err(e) => eprintln!(
                "cairn: cannot watch {} for changes ({e}); checking it every 2 s instead \
                 (on Linux, raise sysctl fs.inotify.max_user_instances or max_user_watches)",
                local.display()
            ),
        }
    }
    let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
    let mut w = notify::PollWatcher::new(handler(), config).expect("a poll watcher needs no system resource");
    if let Err(e) = w.watch(local, notify::RecursiveMode::Recursive) {
        eprintln!("cairn: cannot scan {} for changes ({e}); syncing every 60 s", local.display());
    }
    Box::new(w)
}

/// Follow the server's change push; each batch of changes (and each reconnect) asks for a round.
async fn push_listener(api: api::Api, tx: tokio::sync::mpsc::UnboundedSender<&'static str>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ws_base = api.base().replacen("http", "ws", 1);
    let mut delay = Duration::from_millis(500);
    loop {
        let attempt = async {
            let mut req = format!("{ws_base}/api/v1/events?cursor=now").into_client_request()?;
            req.headers_mut().insert("authorization", format!("Bearer {}", api.token()).parse()?);
            // A pinned server's push channel trusts the same certificate only.
            let connector = api.pin().map(|p| {
                tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
                    pin::Pinned::new(Some(p)).config_alpn(&[b"http/1.1"]),
                ))
            });
            let (mut ws, _) =
                tokio_tungstenite::connect_async_tls_with_config(req, None, false, connector).await?;
            let mut first = true;
            while let Some(msg) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = msg? {
                    let v: serde_json::Value = serde_json::from_str(&t)?;
                    // Changes in the feed, or in a share mounted in the tree (not in the feed).
                    let has = v["changes"].as_array().is_some_and(|c| !c.is_empty()) || v["shared"] == true;
                    // The first message (after a reconnect) may hide missed changes: sync.
                    if has || first {
                        let _ = tx.send("remote");
                    }
                    first = false;
                }
            }
            anyhow::Ok(())
        };
        match attempt.await {
            Ok(()) => delay = Duration::from_millis(500),
            Err(_) => delay = (delay * 2).min(Duration::from_secs(30)),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}
