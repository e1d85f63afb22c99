//! The integration-test harness: real PostgreSQL, the real `cairnd` and `cairnctl` binaries.
//!
//! One PostgreSQL serves the whole test process: the server named by `DATABASE_URL` when set,
//! otherwise a throwaway cluster started with the same managed-cluster code `cairnd` uses. Each
//! [`Env`] gets its own database, data directory and config file, so tests run in parallel.
//! A missing component fails the test with a message naming the package to install.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The scratch folder of this test process: `/tmp/cairn-it-<pid>` (short, for Unix sockets, and
/// reachable by the `postgres` user when tests run as root).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir();
        // Leftovers of earlier runs whose process is gone.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("cairn-it-").and_then(|p| p.parse::<u32>().ok())
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("cairn-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch folder");
        dir
    })
}

/// libpq connection string of the shared server, for database `db`.
fn server_conninfo(db: &str) -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return url;
        }
        // The cluster's parent-death signal follows the thread that started it: keep that
        // thread alive for the life of the test process.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let res =
                store::ManagedCluster::start(&scratch().join("pg"), store::ClusterOptions { durable: false });
            match res {
                Ok(cluster) => {
                    let store::DbTarget::Socket { dir, port, user, .. } = cluster.target() else {
                        unreachable!()
                    };
                    tx.send(Ok(format!("host={} port={port} user={user}", dir.display()))).unwrap();
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => tx.send(Err(e.to_string())).unwrap(),
            }
        });
        match rx.recv().unwrap() {
            Ok(s) => s,
            Err(e) => panic!("test PostgreSQL could not start: {e}"),
        }
    });
    if base.contains("://") {
        // A URL: replace its database name.
        let (head, _) = base.rsplit_once('/').expect("DATABASE_URL has a path");
        format!("{head}/{db}")
    } else {
        format!("{base} dbname={db}")
    }
}

/// Run SQL against the shared server's `postgres` database, from a thread of its own (callers
/// may be inside a runtime).
pub fn admin_sql(db: &str, sql: &str) {
    simple_sql(db, sql);
}

/// The first column of the first row of `sql` (an integer) in database `db` of the shared
/// server.
pub fn sql_i64(db: &str, sql: &str) -> i64 {
    let rows = simple_sql(db, sql);
    let first = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    first.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{sql}: no integer in the first row"))
}

/// Run `sql` (simple-query protocol) in database `db` of the shared server, from a thread of
/// its own (callers may be inside a runtime).
fn simple_sql(db: &str, sql: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
    let conninfo = server_conninfo(db);
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, conn) =
                tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(conn);
            client.simple_query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        })
    })
    .join()
    .unwrap()
}

/// Where the workspace's binaries are: next to the test binary's `deps` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the binaries first (cargo build --bins; scripts/test.sh does it)",
        path.display()
    );
    path
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One test's world: a database, a data directory, a config file.
pub struct Env {
    /// The folder holding everything of this test.
    pub dir: PathBuf,
    /// The backing directory.
    pub data_dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The HTTP port cairnd listens on.
    pub port: u16,
    /// The database's connection string (empty for a managed cluster).
    pub conninfo: String,
    /// The database's name (empty for a managed cluster).
    pub db: String,
    /// The daemon speaks HTTPS.
    pub tls: bool,
    /// Where cairnd mounts its FUSE view, if enabled.
    pub mountpoint: Option<PathBuf>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Env {
    /// A fresh world using the shared test PostgreSQL.
    pub fn new() -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let db = format!("cairn_t{n}");
        // Separate statements: a multi-statement query is one transaction, which these refuse.
        admin_sql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
        admin_sql("postgres", &format!("CREATE DATABASE {db}"));
        let conninfo = server_conninfo(&db);
        Env { db, ..Env::with_database(n, Some(conninfo)) }
    }

    /// A fresh world whose cairnd manages its own PostgreSQL under the data directory.
    pub fn managed() -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        Env::with_database(n, None)
    }

    fn with_database(n: usize, conninfo: Option<String>) -> Env {
        let dir = scratch().join(format!("t{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data_dir = dir.join("data");
        let port = free_port();
        let mut toml =
            format!("data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n", data_dir.display());
        if let Some(c) = &conninfo {
            toml.push_str(&format!("[database]\nurl = \"{c}\"\npool_size = 8\n"));
        }
        let config = dir.join("cairnd.toml");
        std::fs::write(&config, toml).unwrap();
        Env {
            dir,
            data_dir,
            config,
            port,
            conninfo: conninfo.unwrap_or_default(),
            db: String::new(),
            tls: false,
            mountpoint: None,
        }
    }

    /// A `cairnctl` command with this config.
    pub fn ctl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("cairnctl"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd
    }

    /// Run `cairnctl`, feeding `stdin`.
    pub fn ctl_with_input(&self, args: &[&str], stdin: &[u8]) -> Output {
        output_with_input(&mut self.ctl_cmd(args), stdin)
    }

    /// Run `cairnctl` with empty stdin.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_with_input(args, b"")
    }

    /// Run `cairnctl` and demand success; returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "cairnctl {args:?} failed: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run `cairnctl --json` and parse the output.
    pub fn ctl_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ctl_ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("cairnctl {args:?}: bad JSON ({e}): {text}"))
    }

    /// Create a user with a known password (and optional quota).
    pub fn add_user(&self, name: &str, quota: Option<&str>) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        if let Some(q) = quota {
            args.extend(["--quota", q]);
        }
        let out = self.ctl_with_input(&args, b"correct horse battery\n");
        assert!(out.status.success(), "user add: {}", describe(&out));
    }

    /// Add an administrator (password `correct horse battery`, no quota).
    pub fn add_admin(&self, name: &str) {
        let out = self.ctl_with_input(
            &["user", "add", name, "--admin", "--password-stdin"],
            b"correct horse battery\n",
        );
        assert!(out.status.success(), "user add --admin: {}", describe(&out));
    }

    /// Write a file through cairnctl.
    pub fn put(&self, user: &str, path: &str, content: &[u8]) -> Output {
        self.ctl_with_input(&["files", "put", user, path], content)
    }

    /// Write a file through cairnctl, demanding success.
    pub fn put_ok(&self, user: &str, path: &str, content: &[u8]) {
        let out = self.put(user, path, content);
        assert!(out.status.success(), "put {path}: {}", describe(&out));
    }

    /// Read a file through cairnctl.
    pub fn get(&self, user: &str, path: &str) -> Vec<u8> {
        let out = self.ctl(&["files", "get", user, path]);
        assert!(out.status.success(), "get {path}: {}", describe(&out));
        out.stdout
    }

    /// `fsck` must report a clean data directory.
    pub fn assert_fsck_clean(&self) {
        let out = self.ctl(&["--json", "fsck", "--verify"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert!(out.status.success() && report["clean"] == true, "fsck not clean: {}", describe(&out));
    }

    /// The user's tree on disk.
    pub fn user_dir(&self, user: &str) -> PathBuf {
        self.data_dir.join("files").join(user)
    }

    /// Turn on TLS with a self-signed certificate.
    pub fn enable_tls(&mut self) {
        let cfg = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, cfg.replacen("[http]\n", "[http]\ntls = \"self-signed\"\n", 1)).unwrap();
        self.tls = true;
    }

    /// Have cairnd mount its FUSE view (at `DIR/mnt`); returns the mount point.
    pub fn enable_fuse(&mut self) -> PathBuf {
        require_fuse();
        let mp = self.dir.join("mnt");
        let mut cfg = std::fs::read_to_string(&self.config).unwrap();
        cfg.push_str(&format!("[fuse]\nmountpoint = \"{}\"\n", mp.display()));
        std::fs::write(&self.config, cfg).unwrap();
        self.mountpoint = Some(mp.clone());
        mp
    }

    /// Start cairnd and wait for /healthz.
    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with_env(&[])
    }

    /// [`Env::start_daemon`] with `vars` set in its environment (e.g. `TOKIO_WORKER_THREADS`).
    pub fn start_daemon_with_env(&self, vars: &[(&str, &str)]) -> Daemon {
        let log_path = self.dir.join(format!("cairnd-{}.log", COUNTER.fetch_add(1, Ordering::SeqCst)));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(bin("cairnd"))
            .envs(vars.iter().copied())
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn cairnd");
        let mut daemon = Daemon {
            child,
            port: self.port,
            tls: self.tls,
            mountpoint: self.mountpoint.clone(),
            log: log_path,
        };
        daemon.wait_healthy(Duration::from_secs(60));
        daemon
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// Run `cmd` with `input` on its stdin; its stdout and stderr captured.
pub fn output_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// stdout + stderr + status, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running cairnd; killed (SIGKILL) on drop unless stopped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    port: u16,
    tls: bool,
    mountpoint: Option<PathBuf>,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

impl Daemon {
    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Poll /healthz until 200, panicking with the reason if the process exits or time runs out.
    pub fn wait_healthy(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("cairnd exited before becoming healthy: {status}");
            }
            let healthy = if self.tls {
                Command::new("curl")
                    .args(["-skf", "-o", "/dev/null", &format!("https://127.0.0.1:{}/healthz", self.port)])
                    .status()
                    .is_ok_and(|s| s.success())
            } else {
                http_get(self.port, "/healthz").is_some_and(|(code, _)| code == 200)
            };
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "cairnd not healthy after {limit:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// SIGKILL and wait.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL and wait, leaving a FUSE mount dead in place (as a crash would).
    pub fn kill_leaving_mount(mut self) {
        self.mountpoint = None;
        self.kill();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A daemon stuck with its mount's requests unanswered cannot exit once killed while any
        // of its threads waits on that mount: abort the connection first (a deadlock then
        // fails its test instead of hanging the suite).
        if let Some(mp) = &self.mountpoint {
            abort_fuse(mp);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A killed server leaves its FUSE mount behind (dead): detach it.
        if let Some(mp) = &self.mountpoint {
            let _ = Command::new("umount").arg("-l").arg(mp).stderr(Stdio::null()).status();
        }
    }
}

/// Abort the FUSE connection of the mount at `mountpoint` (its requests fail with ENOTCONN),
/// found through `/proc/self/mountinfo` without touching the mount itself.
pub fn abort_fuse(mountpoint: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return };
    // Fields: id, parent, major:minor, root, mount point, ...; the minor is the connection.
    let minor = info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.len() > 4 && Path::new(f[4]) == mountpoint).then(|| f[2].split(':').nth(1).map(str::to_owned))?
    });
    let Some(minor) = minor else { return };
    let connections = Path::new("/sys/fs/fuse/connections");
    if !connections.join(&minor).exists() {
        let _ = Command::new("mount")
            .args(["-t", "fusectl", "none"])
            .arg(connections)
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::write(connections.join(&minor).join("abort"), "1");
}

/// FUSE tests need root (to mount with allow_other) and the kernel's /dev/fuse.
pub fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: FUSE tests need the fuse kernel module (and Debian package fuse3)"
    );
    // SAFETY: geteuid has no preconditions.
    assert!(unsafe { libc::geteuid() } == 0, "FUSE tests must run as root (cairnd mounts with allow_other)");
}

/// A minimal HTTP/1.1 GET on loopback: (status, body), or None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    try_http(port, "GET", path, &[], b"").map(|r| (r.status, r.text()))
}

/// Poll until `check` holds (a notification takes a moment to travel), at most two seconds.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !check() {
        assert!(Instant::now() < deadline, "{what} not seen after 2 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// blake3 hex of bytes.
pub fn b3(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// Deterministic pseudo-random bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// A small deterministic random source (xorshift64) for randomized tests; seed it odd.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Append a measured figure to `target/test-figures.txt` (printed by scripts/test.sh).
pub fn record_figure(line: &str) {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_owned();
    let mut f =
        std::fs::OpenOptions::new().create(true).append(true).open(target.join("test-figures.txt")).unwrap();
    writeln!(f, "{line}").unwrap();
}

/// A response from [`http`].
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The prologue of most HTTP tests in one line: a fresh environment, the user `alice` (no
/// quota), a started daemon, and her `Authorization` header. Bind all three (`let (env, _d, a)`):
/// the daemon stops before the environment goes.
pub fn alice() -> (Env, Daemon, [(&'static str, &'static str); 1]) {
    let env = Env::new();
    env.add_user("alice", None);
    let daemon = env.start_daemon();
    let auth: &'static str = Box::leak(basic("alice").into_boxed_str());
    (env, daemon, [("Authorization", auth)])
}

/// Basic credentials of the test users made by [`Env::add_user`].
pub fn basic(user: &str) -> String {
    basic_auth(user, "correct horse battery")
}

/// An `Authorization: Basic` value for `user` and `secret`.
pub fn basic_auth(user: &str, secret: &str) -> String {
    let raw = format!("{user}:{secret}");
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in raw.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// One raw HTTP/1.1 request on loopback (`Connection: close`). `target` is sent exactly as
/// given, so tests can send what a hostile client would.
/// [`http`] as `user` (Basic auth), with a JSON content type (for the REST calls that take one).
pub fn call_as(port: u16, user: &str, method: &str, target: &str, body: &[u8]) -> HttpResponse {
    let auth = basic(user);
    http(port, method, target, &[("Authorization", &auth), ("Content-Type", "application/json")], body)
}

/// `owner` shares their folder or file at `path` with the account `with` as `role`; the share's id.
pub fn share_with(port: u16, owner: &str, path: &str, with: &str, role: &str) -> i64 {
    let body = serde_json::json!({"path": path, "user": with, "role": role}).to_string();
    let r = call_as(port, owner, "POST", "/api/v1/shares", body.as_bytes());
    assert_eq!(r.status, 201, "sharing {path} with {with}: {}", r.text());
    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["id"].as_i64().unwrap()
}

pub fn http(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    try_http(port, method, target, headers, body).unwrap_or_else(|| panic!("no answer to {method} {target}"))
}

/// [`http`], or None when nothing answers (for polling a server that is starting).
pub fn try_http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<HttpResponse> {
    http_once(port, method, target, headers, body, Duration::from_secs(120))
}

/// [`http`], answered within `limit` or an error saying how long it waited (for tests that
/// fail on a server holding a request, rather than wait two minutes for it).
pub fn http_within(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<HttpResponse, String> {
    let started = Instant::now();
    let res = http_once(port, method, target, headers, body, limit);
    let took = started.elapsed();
    match res {
        Some(r) if took < limit => Ok(r),
        Some(r) => Err(format!("{method} {target} answered {} after {took:?} (limit {limit:?})", r.status)),
        None => Err(format!("no answer to {method} {target} within {took:?} (limit {limit:?})")),
    }
}

fn http_once(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Option<HttpResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.set_write_timeout(Some(limit)).ok()?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST" | "PROPFIND" | "PROPPATCH" | "LOCK") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    // A server may answer before the whole body is sent (413 at the headers) and close: the
    // rest of the body then fails to go out, and the answer is still there to read.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    Some(HttpResponse { status, headers, body })
}

/// Fail with the package to install when a client program is missing.
pub fn require_program(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    assert!(
        found,
        "{program} is not installed: install the Debian package `{package}` (scripts/test.sh does as root)"
    );
}

/// Peak resident memory of a process, in bytes (VmHWM).
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Flip one byte at `at` and put the modification time back, as a failing disk would.
pub fn rot(file: &Path, at: u64) {
    use std::io::{Seek, SeekFrom};
    let mtime = std::fs::metadata(file).unwrap().modified().unwrap();
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(file).unwrap();
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut byte).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[byte[0] ^ 0x20]).unwrap();
    f.sync_all().unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(mtime)).unwrap();
}
