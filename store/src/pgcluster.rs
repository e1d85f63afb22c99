//! The managed PostgreSQL cluster: a private server under `DATA_DIR/.cairn/pg`, reachable only
//! through a Unix socket in a directory only its owner can enter.
//!
//! Synchronous on purpose: `cairnd` and `cairnctl` start it before they build their runtime, and
//! the test harness from a thread of its own. The server is our child; it gets SIGINT (fast
//! shutdown) when its parent thread dies, so a killed `cairnd` does not leave it behind, and it
//! runs in its own process group so a terminal's Ctrl-C reaches `cairnd`, which then shuts the
//! database down last.
//!
//! As root, the cluster runs as the `postgres` system user (PostgreSQL refuses to run as root).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::db::DbTarget;
use crate::{Error, ErrorKind, Result};

const PORT: u16 = 5432;
/// The role and database the managed cluster holds.
const ROLE: &str = "cairn";
const DB: &str = "cairn";
const PACKAGE_HINT: &str = "install the Debian package `postgresql` (apt-get install postgresql), \
     or point Cairn at an existing server with [database] url";

/// How the cluster is run.
#[derive(Debug, Clone, Copy)]
pub struct ClusterOptions {
    /// fsync and synchronous commit on (always, outside throwaway test clusters).
    pub durable: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions { durable: true }
    }
}

/// A running managed cluster. Stopped by [`ManagedCluster::stop`] or on drop.
#[derive(Debug)]
pub struct ManagedCluster {
    dir: PathBuf,
    child: Option<Child>,
}

/// Where the PostgreSQL server binaries are.
#[derive(Debug, Clone)]
struct PgBin {
    initdb: PathBuf,
    postgres: PathBuf,
}

fn find_binaries() -> Result<PgBin> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("CAIRN_PG_BIN") {
        candidates.push(PathBuf::from(dir));
    }
    // Debian keeps server binaries off PATH, one folder per major version: prefer the newest.
    if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    for dir in candidates {
        let (initdb, postgres) = (dir.join("initdb"), dir.join("postgres"));
        if initdb.is_file() && postgres.is_file() {
            return Ok(PgBin { initdb, postgres });
        }
    }
    Err(Error::new(
        ErrorKind::Setup,
        format!("PostgreSQL server binaries (initdb, postgres) not found: {PACKAGE_HINT}"),
    ))
}

/// The system account the cluster runs as when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    // SAFETY: getpwnam returns a pointer into static storage or NULL; we copy the two ids out at
    // once and call nothing else in between. Single use at start-up.
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        return Err(Error::new(
            ErrorKind::Setup,
            format!("running as root, the managed cluster needs the system user `postgres`: {PACKAGE_HINT}"),
        ));
    }
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn setup_err(msg: impl Into<String>, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Setup, msg).with_source(e)
}

impl ManagedCluster {
    /// The socket directory of the cluster under `dir`, for connecting to one another process
    /// (a running `cairnd`) started.
    pub fn target_for(dir: &Path) -> DbTarget {
        DbTarget::Socket { dir: dir.join("run"), port: PORT, user: ROLE.to_owned(), dbname: DB.to_owned() }
    }

    /// Initialize (first time) and start the cluster under `dir`, and wait until the `cairn`
    /// database accepts connections. Must not be called from inside a tokio runtime.
    pub fn start(dir: &Path, opts: ClusterOptions) -> Result<ManagedCluster> {
        let bin = find_binaries()?;
        let run_as = run_as()?;
        let run_dir = dir.join("run");
        let socket = run_dir.join(format!(".s.PGSQL.{PORT}"));
        if socket.as_os_str().len() >= 100 {
            return Err(Error::new(
                ErrorKind::Setup,
                format!(
                    "the data directory's path is too long for a Unix socket ({}); \
                     use a shorter data_dir or set [database] url",
                    socket.display()
                ),
            ));
        }
        for d in [dir, run_dir.as_path()] {
            fs::create_dir_all(d).map_err(|e| setup_err(format!("creating {}", d.display()), e))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o700))
                .map_err(|e| setup_err(format!("chmod {}", d.display()), e))?;
            if let Some(r) = run_as {
                std::os::unix::fs::chown(d, Some(r.uid), Some(r.gid))
                    .map_err(|e| setup_err(format!("chown {}", d.display()), e))?;
            }
        }
        if let Some(r) = run_as {
            check_reachable(dir, r)?;
        }
        let pgdata = dir.join("data");
        if !pgdata.join("PG_VERSION").is_file() {
            initdb(&bin, dir, run_as, opts)?;
        }
        stop_stale(&pgdata)?;

        let log_path = dir.join("postgres.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| setup_err(format!("opening {}", log_path.display()), e))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        if let Some(r) = run_as {
            let _ = std::os::unix::fs::chown(&log_path, Some(r.uid), Some(r.gid));
        }
        let mut cmd = Command::new(&bin.postgres);
        // The service manager's socket is cairnd's: PostgreSQL (built with systemd support)
        // would otherwise announce itself there as if it were the service.
        cmd.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        cmd.arg("-D")
            .arg(&pgdata)
            .arg("-k")
            .arg(&run_dir)
            .args(["-p", &PORT.to_string()])
            .args(["-c", "listen_addresses="])
            .args(["-c", "unix_socket_permissions=0700"])
            .args(["-c", "max_connections=200"])
            .args(["-c", "shared_buffers=128MB"])
            // No JIT: it needs writable and executable memory (refused under systemd's
            // MemoryDenyWriteExecute) and does not pay for a file server's short queries.
            .args(["-c", "jit=off"]);
        if !opts.durable {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| setup_err("log file", e))?)
            .stderr(log)
            .process_group(0);
        if let Some(r) = run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        // SAFETY: prctl is async-signal-safe; it only sets the parent-death signal of the child.
        // It runs after the uid change, which would otherwise reset it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| setup_err(format!("starting {}", bin.postgres.display()), e))?;
        let mut cluster = ManagedCluster { dir: dir.to_owned(), child: Some(child) };
        if let Err(e) = cluster.wait_ready(&log_path, log_start) {
            cluster.stop_inner();
            return Err(e);
        }
        Ok(cluster)
    }

    /// How to connect to this cluster.
    pub fn target(&self) -> DbTarget {
        ManagedCluster::target_for(&self.dir)
    }

    fn wait_ready(&mut self, log_path: &Path, log_start: u64) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup_err("building a runtime", e))?;
        let target = self.target();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut admin_cfg = target.pg_config()?;
        admin_cfg.dbname("postgres");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::new(
                    ErrorKind::Setup,
                    format!(
                        "PostgreSQL exited at start-up ({status}); its log says:\n{}",
                        log_tail(log_path, log_start)
                    ),
                ));
            }
            let res = rt.block_on(async {
                let (client, conn) = admin_cfg.connect(tokio_postgres::NoTls).await?;
                let conn = tokio::spawn(conn);
                let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DB]).await?;
                if exists.is_none() {
                    client.batch_execute(&format!("CREATE DATABASE {DB}")).await?;
                }
                drop(client);
                let _ = conn.await;
                Ok::<(), tokio_postgres::Error>(())
            });
            match res {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(Error::new(ErrorKind::Setup, "PostgreSQL did not become ready in 120 s")
                        .with_source(e));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }

    /// Fast shutdown: disconnect clients, checkpoint, exit.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = child.id() as i32;
        // SAFETY: signalling our own child process, whose pid we still hold (not yet reaped).
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGQUIT) };
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for ManagedCluster {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn initdb(bin: &PgBin, dir: &Path, run_as: Option<RunAs>, opts: ClusterOptions) -> Result<()> {
    // Initialize beside the final place and rename, so a crash mid-initdb leaves no half cluster.
    let tmp = dir.join("data.init");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| setup_err(format!("removing {}", tmp.display()), e))?;
    }
    let mut cmd = Command::new(&bin.initdb);
    cmd.arg("-D").arg(&tmp).args(["-U", ROLE, "-A", "trust", "-E", "UTF8", "--locale=C"]);
    if !opts.durable {
        cmd.arg("--no-sync");
    }
    cmd.stdin(Stdio::null()).current_dir(dir);
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    let out = cmd.output().map_err(|e| setup_err(format!("running {}", bin.initdb.display()), e))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Setup,
            format!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    let data = dir.join("data");
    fs::rename(&tmp, &data).map_err(|e| setup_err("moving the new cluster into place", e))?;
    Ok(())
}

/// A postmaster left running by a killed owner (it gets SIGINT from the kernel when its parent
/// dies, but may still be shutting down): ask it to stop and wait. We hold the data directory's
/// lock, so no live owner uses it.
fn stop_stale(pgdata: &Path) -> Result<()> {
    let Ok(pidfile) = fs::read_to_string(pgdata.join("postmaster.pid")) else { return Ok(()) };
    let Some(pid) = pidfile.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else { return Ok(()) };
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "postgres" {
        return Ok(()); // Stale file; PostgreSQL itself handles it.
    }
    // SAFETY: plain signal to a process we identified as a postgres postmaster.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "a PostgreSQL server (pid {pid}) still runs on {} and did not stop",
                    pgdata.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// As root, the `postgres` user must be able to enter every folder above the cluster.
fn check_reachable(dir: &Path, r: RunAs) -> Result<()> {
    for anc in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(anc) else { continue };
        let mode = meta.mode();
        let ok = if meta.uid() == r.uid {
            mode & 0o100 != 0
        } else if meta.gid() == r.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(Error::new(
                ErrorKind::Setup,
                format!(
                    "the managed PostgreSQL runs as the system user `postgres`, which cannot enter {} \
                     (mode {:o}); put data_dir somewhere it can reach (e.g. /var/lib/cairn) \
                     or set [database] url",
                    anc.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

fn log_tail(path: &Path, from: u64) -> String {
    let mut out = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.take(8192).read_to_string(&mut out);
    }
    out
}
