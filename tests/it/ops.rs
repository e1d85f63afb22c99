//! What operators rely on: `/metrics` checked by Prometheus' own tools and scraped by a real
//! Prometheus, the shipped alert rules under `promtool test rules`, and `/livez`/`/readyz`
//! following the database.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tests::{Env, admin_sql, basic, describe, free_port, http, http_get, require_program};

/// The exposition's samples: `name{labels}` → value.
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, series: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(k, _)| k == series)
        .unwrap_or_else(|| panic!("{series} not in the exposition:\n{text}"))
        .1
}

fn sum(text: &str, prefix: &str) -> f64 {
    samples(text).into_iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

#[test]
fn metrics_pass_promtool_and_stay_bounded_with_fifty_users_under_load() {
    require_program("promtool", "prometheus");
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_admin("root");
    let root = basic("root");
    for i in 0..50 {
        let body = format!(r#"{{"name":"user{i}","password":"correct horse battery"}}"#);
        let r = http(
            env.port,
            "POST",
            "/api/v1/admin/users",
            &[("Authorization", &root), ("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // Traffic through every front end, with successes and failures.
    for i in 0..50 {
        let auth = basic(&format!("user{i}"));
        let a = [("Authorization", auth.as_str())];
        assert_eq!(http(env.port, "PUT", "/dav/f.txt", &a, b"x").status, 201);
        assert_eq!(http(env.port, "GET", "/dav/f.txt", &a, b"").status, 200);
        assert_eq!(http(env.port, "PROPFIND", "/dav/", &[a[0], ("Depth", "1")], b"").status, 207);
        assert_eq!(http(env.port, "GET", "/api/v1/files?path=%2F", &a, b"").status, 200);
        assert_eq!(http(env.port, "GET", "/dav/missing", &a, b"").status, 404);
        assert_eq!(
            http(env.port, "GET", &format!("/remote.php/dav/files/user{i}/f.txt"), &a, b"").status,
            200
        );
    }
    assert_eq!(http(env.port, "GET", "/status.php", &[], b"").status, 200);
    assert_eq!(http(env.port, "GET", "/", &[], b"").status, 200);

    let r = http(env.port, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    // Prometheus' own linter: names, units, suffixes, help texts.
    let out = tests::output_with_input(Command::new("promtool").args(["check", "metrics"]), text.as_bytes());
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(), "{}", describe(&out));

    // The shipped dashboard and alert rules name only metrics cairnd exports.
    let scraped = env.dir.join("metrics.txt");
    std::fs::write(&scraped, &text).unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .arg("scripts/check-metric-names.py")
        .arg(&scraped)
        .args(["deploy/monitoring/cairn-dashboard.json", "deploy/monitoring/cairn-rules.yml"])
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    let series = samples(&text).len();
    assert!(series < 1000, "{series} series with 50 users");
    tests::record_figure(&format!(
        "/metrics: {series} series with 52 users after traffic on every front end"
    ));
    // The first start's admin, root, and the fifty.
    assert_eq!(value(&text, "cairn_users"), 52.0);
    assert_eq!(value(&text, "cairn_db_up"), 1.0);
    assert_eq!(value(&text, "cairn_ready"), 1.0);
    assert_eq!(value(&text, r#"cairn_http_requests_total{protocol="webdav",method="PUT",code="2xx"}"#), 50.0);
    assert_eq!(value(&text, r#"cairn_http_requests_total{protocol="webdav",method="GET",code="4xx"}"#), 50.0);
    assert_eq!(
        value(&text, r#"cairn_http_requests_total{protocol="nextcloud",method="GET",code="2xx"}"#),
        1.0
    );
    assert!(
        value(&text, r#"cairn_http_request_duration_seconds_count{protocol="rest",method="GET"}"#) >= 50.0
    );
    assert!(value(&text, "cairn_storage_free_bytes") > 0.0);
    assert!(value(&text, "cairn_storage_size_bytes") >= value(&text, "cairn_storage_free_bytes"));
    assert_eq!(value(&text, "cairn_files_used_bytes"), 50.0);
    assert!(value(&text, "cairn_process_resident_memory_bytes") > 1e6);
    assert!(sum(&text, "cairn_build_info") == 1.0);
    // Nothing in a label names a user, a path or an id.
    assert!(!text.contains("user1") && !text.contains("f.txt"), "{text}");

    // Admins read the same away from the server; others are refused.
    let r = http(env.port, "GET", "/api/v1/admin/metrics", &[("Authorization", &root)], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("cairn_http_requests_total"));
    let r = http(env.port, "GET", "/api/v1/admin/metrics", &[("Authorization", &basic("user1"))], b"");
    assert_eq!(r.status, 403);
}

#[test]
fn a_metrics_token_guards_the_endpoint() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{cfg}[metrics]\ntoken = \"s3cret-metrics-token-0123\"\n")).unwrap();
    let _d = env.start_daemon();
    assert_eq!(
        http(env.port, "GET", "/metrics", &[], b"").status,
        404,
        "without the token, even from loopback"
    );
    let wrong =
        http(env.port, "GET", "/metrics", &[("Authorization", "Bearer s3cret-metrics-token-0124")], b"");
    assert_eq!(wrong.status, 404);
    let ok = http(env.port, "GET", "/metrics", &[("Authorization", "Bearer s3cret-metrics-token-0123")], b"");
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("cairn_db_up 1"), "{}", ok.text());
    // A short token is refused at start-up.
    let short = Env::new();
    let cfg = std::fs::read_to_string(&short.config).unwrap();
    std::fs::write(&short.config, format!("{cfg}[metrics]\ntoken = \"short\"\n")).unwrap();
    let out = Command::new(tests::bin("cairnd")).arg("--config").arg(&short.config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"), "{}", describe(&out));
}

/// A Prometheus server, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_cairnd_under_load_and_fires_the_shipped_alert_on_damage() {
    require_program("prometheus", "prometheus");
    let env = Env::new();
    env.add_user("alice", None);
    let _d = env.start_daemon();
    let port = free_port();
    let config = env.dir.join("prometheus.yml");
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring/cairn-rules.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: cairn\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            rules.canonicalize().unwrap().display(),
            env.port
        ),
    )
    .unwrap();
    // Load beside the scrapes: PUTs and GETs from four clients.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|c| {
            let (stop, port) = (stop.clone(), env.port);
            std::thread::spawn(move || {
                let auth = basic("alice");
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path = format!("/dav/load-{c}-{}.bin", i % 20);
                    let _ = tests::try_http(
                        port,
                        "PUT",
                        &path,
                        &[("Authorization", &auth)],
                        &tests::pattern(8192, i),
                    );
                    let _ = tests::try_http(port, "GET", &path, &[("Authorization", &auth)], b"");
                    i += 1;
                }
            })
        })
        .collect();
    let log = std::fs::File::create(env.dir.join("prometheus.log")).unwrap();
    let _p = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", env.dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = |q: &str| http_get(port, &format!("/api/v1/query?query={q}")).map(|(_, body)| body);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query("up%7Bjob%3D%22cairn%22%7D").unwrap_or_default();
        let ready = query("cairn_ready").unwrap_or_default();
        if up.contains(r#""value":["#) && up.contains(r#","1"]"#) && ready.contains(r#","1"]"#) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape cairnd within 60 s: up={up} ready={ready}\n{}",
            std::fs::read_to_string(env.dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    // One byte of a stored file rots; the scrub finds it, and Prometheus fires the shipped alert.
    env.put_ok("alice", "/photo.jpg", &tests::pattern(100_000, 7));
    tests::rot(&env.user_dir("alice").join("photo.jpg"), 50_000);
    let out = env.ctl(&["scrub", "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    let fired = Instant::now();
    loop {
        let alerts = http_get(port, "/api/v1/alerts").map(|(_, body)| body).unwrap_or_default();
        if alerts.contains(r#""alertname":"CairnScrubFoundDamage""#) && alerts.contains(r#""state":"firing""#)
        {
            break;
        }
        assert!(fired.elapsed() < Duration::from_secs(90), "no CairnScrubFoundDamage alert: {alerts}");
        std::thread::sleep(Duration::from_millis(250));
    }
    tests::record_figure(&format!(
        "Prometheus: CairnScrubFoundDamage firing {:.1} s after a scrub was started over a rotten file",
        fired.elapsed().as_secs_f64()
    ));
}

#[test]
fn shipped_alert_rules_pass_promtool_checks_and_unit_tests() {
    require_program("promtool", "prometheus");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let out =
        Command::new("promtool").arg("check").arg("rules").arg(dir.join("cairn-rules.yml")).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = Command::new("promtool")
        .args(["test", "rules", "cairn-rules.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    // Every rule has a test case that fires it.
    let rules = std::fs::read_to_string(dir.join("cairn-rules.yml")).unwrap();
    let cases = std::fs::read_to_string(dir.join("cairn-rules.test.yml")).unwrap();
    for line in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(cases.contains(&format!("alertname: {line}")), "{line} has no test case");
    }
}

/// Poll `/readyz` (which must answer every time) until it answers `status`, for at most
/// `limit`: how long that took and what it said.
fn readiness_becomes(port: u16, status: u16, limit: Duration, what: &str) -> (Duration, String) {
    let since = Instant::now();
    loop {
        let (s, body) =
            http_get(port, "/readyz").unwrap_or_else(|| panic!("/readyz did not answer after {what}"));
        if s == status {
            return (since.elapsed(), body);
        }
        assert!(since.elapsed() < limit, "/readyz not {status} {limit:?} after {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn readiness_follows_the_database_without_a_restart() {
    let env = Env::new();
    let _d = env.start_daemon();
    assert_eq!(http_get(env.port, "/livez"), Some((200, "ok\n".to_owned())));
    assert_eq!(http_get(env.port, "/readyz").map(|r| r.0), Some(200));
    // The database goes away: it refuses new connections and drops this daemon's.
    admin_sql("postgres", &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", env.db));
    admin_sql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'", env.db),
    );
    let (took_down, down) = readiness_becomes(env.port, 503, Duration::from_secs(5), "losing the database");
    assert!(down.contains("database"), "{down}");
    assert_eq!(http_get(env.port, "/livez").map(|r| r.0), Some(200), "alive all along");
    // It comes back: ready again, with no restart.
    admin_sql("postgres", &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", env.db));
    let (took_up, _) = readiness_becomes(env.port, 200, Duration::from_secs(5), "the database returned");
    assert!(took_down < Duration::from_millis(1500), "readiness took {took_down:?} to notice");
    tests::record_figure(&format!(
        "/readyz: 503 {} ms after the database went away, 200 {} ms after it returned",
        took_down.as_millis(),
        took_up.as_millis()
    ));
    let r = http(env.port, "GET", "/metrics", &[], b"");
    assert_eq!(value(&r.text(), "cairn_db_up"), 1.0);
}

/// A cairnd started by hand (killed on drop).
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Started {
    fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        self.0.wait().unwrap()
    }
}

#[test]
fn systemd_hears_ready_after_readiness_then_watchdog_pings_then_stopping() {
    let env = Env::new();
    let sock_path = env.dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let log = std::fs::File::create(env.dir.join("cairnd.log")).unwrap();
    let d = Started(
        Command::new(tests::bin("cairnd"))
            .arg("--config")
            .arg(&env.config)
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 512];
    let recv = |buf: &mut [u8]| {
        let n = sock.recv(buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(&mut buf), "READY=1\n", "the first word is READY");
    // Ready means ready: the very next request finds it so.
    assert_eq!(http_get(env.port, "/readyz").map(|r| r.0), Some(200));
    // WATCHDOG=1 at half the 0.4 s interval.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(2) {
        if recv(&mut buf) == "WATCHDOG=1\n" {
            pings += 1;
        }
    }
    assert!((6..=14).contains(&pings), "{pings} watchdog pings in 2 s (one per 0.2 s expected)");
    let stopping = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            let n = sock.recv(&mut buf).expect("STOPPING before the socket goes quiet");
            if &buf[..n] == b"STOPPING=1\n" {
                return;
            }
        }
    });
    assert!(d.terminate().success());
    stopping.join().unwrap();
}

/// cairnd serving on `listener` as systemd's socket activation hands it over: the socket as
/// descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` its own pid.
fn activated(env: &Env, listener: &std::net::TcpListener, log: &str) -> Started {
    activated_binary(env, &tests::bin("cairnd"), listener, log)
}

/// [`activated`] with another build of cairnd.
fn activated_binary(
    env: &Env,
    binary: &std::path::Path,
    listener: &std::net::TcpListener,
    log: &str,
) -> Started {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    let log = std::fs::File::create(env.dir.join(log)).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#])
        .arg(binary)
        .arg("--config")
        .arg(&env.config)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: dup2 and fcntl are async-signal-safe; between fork and exec only they run.
    unsafe {
        cmd.pre_exec(move || {
            // Already descriptor 3 (dup2 onto itself would keep close-on-exec): clear the flag.
            let ok = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, libc::fcntl(3, libc::F_GETFD) & !libc::FD_CLOEXEC)
            } else {
                libc::dup2(fd, 3)
            };
            if ok < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Started(cmd.spawn().unwrap())
}

/// Restarts, then an upgrade: the binary replaced by a build whose migration the database has
/// not had yet (the database is taken one migration back under the running daemon, which is
/// what it looks like to the newer build), all under a loop of GETs through one socket.
#[test]
fn restarts_and_an_upgrade_with_a_migration_under_socket_activation_fail_no_request() {
    let env = Env::new();
    env.add_user("alice", None);
    env.put_ok("alice", "/f.txt", b"still here\n");
    // The socket outlives the daemons, as systemd's would.
    let listener = std::net::TcpListener::bind(("127.0.0.1", env.port)).unwrap();
    let mut d = activated(&env, &listener, "cairnd-0.log");
    // Ready, or the reason it is not: a daemon that exited leaves connections queued on the
    // socket unanswered, so ask with a short limit and look at the process.
    let t = Instant::now();
    loop {
        if let Ok(r) = tests::http_within(env.port, "GET", "/readyz", &[], b"", Duration::from_secs(2))
            && r.status == 200
        {
            break;
        }
        if let Some(status) = d.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(env.dir.join("cairnd-0.log")).unwrap_or_default();
            panic!("cairnd exited ({status}) before it was ready:\n{log}");
        }
        assert!(t.elapsed() < Duration::from_secs(60), "not ready after 60 s");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = env.port;
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let auth = basic("alice");
            let (mut ok, mut failed, mut timings) = (0, Vec::new(), Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                match tests::try_http(port, "GET", "/dav/f.txt", &[("Authorization", &auth)], b"") {
                    Some(r) if r.status == 200 && r.body == b"still here\n" => ok += 1,
                    other => failed.push(other.map(|r| r.status)),
                }
                timings.push((t, t.elapsed()));
            }
            (ok, failed, timings)
        })
    };
    // Writes beside the reads: one may be refused while a daemon stops (a write is not
    // idempotent, so it is not retried), but every acknowledged one must be there after.
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let auth = basic("alice");
            let mut acknowledged = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = tests::pattern(4096 + i as usize, i);
                let path = format!("/dav/w-{i}.bin");
                if let Some(r) = tests::try_http(port, "PUT", &path, &[("Authorization", &auth)], &body)
                    && matches!(r.status, 201 | 204)
                {
                    acknowledged.push(i);
                }
                i += 1;
            }
            (acknowledged, i)
        })
    };
    let restarts = Instant::now();
    for round in 1..=3 {
        std::thread::sleep(Duration::from_millis(500));
        assert!(d.terminate().success(), "a graceful stop");
        d = activated(&env, &listener, &format!("cairnd-{round}.log"));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The upgrade: the newest migration taken back, the binary replaced by another file.
    let newer = env.dir.join("cairnd-newer");
    std::fs::copy(tests::bin("cairnd"), &newer).unwrap();
    admin_sql(&env.db, "DROP TABLE scrub_findings");
    admin_sql(&env.db, "DROP TABLE scrub_state");
    admin_sql(&env.db, "DELETE FROM schema_migrations WHERE name = '0008_scrub.sql'");
    let upgrade = Instant::now();
    assert!(d.terminate().success(), "a graceful stop");
    d = activated_binary(&env, &newer, &listener, "cairnd-upgraded.log");
    std::thread::sleep(Duration::from_millis(1_000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, timings) = client.join().unwrap();
    let (written, tried) = writer.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across 3 restarts and an upgrade: {failed:?}",
        failed.len(),
        ok + failed.len()
    );
    assert!(ok > 20, "only {ok} requests");
    assert_eq!(
        tests::sql_i64(&env.db, "SELECT count(*) FROM schema_migrations WHERE name = '0008_scrub.sql'"),
        1,
        "the upgraded daemon applied the migration"
    );
    for i in &written {
        let r = http(env.port, "GET", &format!("/dav/w-{i}.bin"), &[("Authorization", &basic("alice"))], b"");
        assert!(
            r.status == 200 && r.body == tests::pattern(4096 + *i as usize, *i),
            "acknowledged w-{i}.bin lost"
        );
    }
    assert!(written.len() > 20, "only {} of {tried} writes acknowledged", written.len());
    let slowest = |from: Instant, to: Instant| {
        timings.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, d)| *d).max().unwrap_or_default()
    };
    let typical = {
        let mut all: Vec<Duration> = timings.iter().map(|(_, d)| *d).collect();
        all.sort();
        all[all.len() / 2]
    };
    tests::record_figure(&format!(
        "socket activation: 3 restarts and an upgrade with a migration under a GET loop, {ok} requests, 0 failed; \
         median {:.1} ms, slowest {} ms across the restarts, {} ms across the upgrade; {} of {tried} PUTs \
         acknowledged beside them, all intact",
        typical.as_secs_f64() * 1e3,
        slowest(restarts, upgrade).as_millis(),
        slowest(upgrade, Instant::now()).as_millis(),
        written.len()
    ));
    drop(d);
    env.assert_fsck_clean();
}

#[test]
fn the_systemd_units_score_within_their_exposure_limits() {
    require_program("systemd-analyze", "systemd");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash").arg("scripts/systemd-security.sh").current_dir(&root).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().filter(|l| l.contains("exposure")).count(), 2, "{text}");
    assert!(text.contains("the mount is visible on the host"), "{text}");
    tests::record_figure(&format!("systemd-analyze security: {}", text.trim().replace('\n', "; ")));
}

/// The stop flag and the thread of an [`upload_loop`].
type Uploader =
    (std::sync::Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<Vec<(u64, Option<u16>)>>);

/// alice PUTs `up-N.bin` (64 KiB + N bytes of pattern N) until told to stop; each with its
/// status, or none if the connection failed.
fn upload_loop(port: u16) -> Uploader {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let uploader = std::thread::spawn(move || {
        let auth = basic("alice");
        let mut results = Vec::new();
        let mut i = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let body = tests::pattern(64 * 1024 + i as usize, i);
            let r =
                tests::try_http(port, "PUT", &format!("/dav/up-{i}.bin"), &[("Authorization", &auth)], &body);
            results.push((i, r.map(|r| r.status)));
            i += 1;
        }
        results
    });
    (stop, uploader)
}

/// Every upload [`upload_loop`] saw acknowledged is there byte for byte; every other was
/// refused with a server error a client retries (never a hang or a dropped connection).
/// Returns the acknowledged ones and the count of refused.
fn check_uploads(port: u16, results: &[(u64, Option<u16>)]) -> (Vec<u64>, usize) {
    let acknowledged: Vec<u64> =
        results.iter().filter(|(_, s)| matches!(s, Some(201 | 204))).map(|(i, _)| *i).collect();
    let refused: Vec<&(u64, Option<u16>)> =
        results.iter().filter(|(_, s)| !matches!(s, Some(201 | 204))).collect();
    assert!(refused.iter().all(|(_, s)| matches!(s, Some(500 | 503))), "{refused:?}");
    assert!(acknowledged.len() > 10, "{} uploads acknowledged", acknowledged.len());
    for i in &acknowledged {
        let want = tests::pattern(64 * 1024 + *i as usize, *i);
        let r = http(port, "GET", &format!("/dav/up-{i}.bin"), &[("Authorization", &basic("alice"))], b"");
        assert_eq!(r.status, 200, "up-{i}.bin");
        assert!(r.body == want, "up-{i}.bin differs");
    }
    (acknowledged, refused.len())
}

#[test]
fn uploads_through_database_outages_keep_every_acknowledged_byte() {
    let env = Env::new();
    env.add_user("alice", None);
    let _d = env.start_daemon();
    let (stop, uploader) = upload_loop(env.port);
    // Three outages: every connection dropped, and new ones refused for half a second, as a
    // PostgreSQL restart does.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        admin_sql("postgres", &format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", env.db));
        admin_sql(
            "postgres",
            &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'", env.db),
        );
        std::thread::sleep(Duration::from_millis(500));
        admin_sql("postgres", &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", env.db));
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = uploader.join().unwrap();
    assert!(results.len() > 10, "{} uploads tried", results.len());
    // Every acknowledged upload is there, byte for byte, with no restart of the daemon.
    readiness_becomes(env.port, 200, Duration::from_secs(5), "the outages");
    let (acknowledged, refused) = check_uploads(env.port, &results);
    tests::record_figure(&format!(
        "database outages: 3 during an upload loop, {} uploads acknowledged and intact, {} refused with 5xx",
        acknowledged.len(),
        refused
    ));
    env.assert_fsck_clean();
}

/// A real PostgreSQL restart (fast shutdown, as `pg_ctl restart -m fast`) of a cluster of the
/// test's own, during a stream of uploads: readiness follows it, the daemon carries on without
/// a restart, and every acknowledged upload is there byte for byte.
#[test]
fn a_postgresql_restart_under_uploads_loses_no_acknowledged_upload() {
    let env = Env::new();
    let pg = env.dir.join("pg");
    let start = || store::ManagedCluster::start(&pg, store::ClusterOptions { durable: true }).unwrap();
    let cluster = start();
    let store::DbTarget::Socket { dir, port, user, dbname } = cluster.target() else { unreachable!() };
    let conninfo = format!("host={} port={port} user={user} dbname={dbname}", dir.display());
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let (head, _) = cfg.split_once("[database]").unwrap();
    std::fs::write(&env.config, format!("{head}[database]\nurl = \"{conninfo}\"\npool_size = 8\n")).unwrap();
    env.add_user("alice", None);
    let d = env.start_daemon();
    let (stop, uploader) = upload_loop(env.port);
    std::thread::sleep(Duration::from_millis(1_000));
    cluster.stop();
    let (noticed, _) = readiness_becomes(env.port, 503, Duration::from_secs(1), "PostgreSQL stopped");
    std::thread::sleep(Duration::from_millis(500));
    let cluster = start();
    let (ready_again, _) = readiness_becomes(env.port, 200, Duration::from_secs(5), "PostgreSQL came back");
    std::thread::sleep(Duration::from_millis(1_000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = uploader.join().unwrap();
    let (acknowledged, refused) = check_uploads(env.port, &results);
    let after = acknowledged.iter().filter(|i| results.len() as u64 - **i < 20).count();
    assert!(after > 0, "no upload acknowledged after the restart: {results:?}");
    tests::record_figure(&format!(
        "PostgreSQL restart under uploads: /readyz 503 {} ms after it stopped, 200 {} ms after it was back; \
         {} uploads acknowledged and intact, {} refused with 5xx",
        noticed.as_millis(),
        ready_again.as_millis(),
        acknowledged.len(),
        refused
    ));
    drop(d);
    env.assert_fsck_clean();
    cluster.stop();
}

/// The data directory's filesystem fails the way ext4 does on an error with
/// `errors=remount-ro`: writes get EROFS while the mount still says read-write. Readiness says
/// so within a second; reads go on.
#[test]
fn readiness_follows_a_filesystem_that_turns_read_only_after_an_error() {
    require_program("mkfs.ext4", "e2fsprogs");
    assert!(unsafe { libc::geteuid() } == 0, "this test needs root (a loop-mounted ext4)");
    let mut env = Env::new();
    let image = env.dir.join("disk.img");
    let mnt = env.dir.join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::File::create(&image).unwrap().set_len(128 << 20).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image));
    run(Command::new("mount").args(["-o", "loop,errors=remount-ro"]).arg(&image).arg(&mnt));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let device = run(Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(&mnt));
    let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", device.trim_start_matches("/dev/"));
    let data = mnt.join("data");
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    let cfg = cfg.replacen(
        &format!("data_dir = \"{}\"", env.data_dir.display()),
        &format!("data_dir = \"{}\"", data.display()),
        1,
    );
    std::fs::write(&env.config, cfg).unwrap();
    env.data_dir = data;
    env.add_user("alice", None);
    env.put_ok("alice", "/kept.txt", b"readable still\n");
    let d = env.start_daemon();
    assert_eq!(http_get(env.port, "/readyz").map(|r| r.0), Some(200));
    std::fs::write(&trigger, b"cairn test\n").unwrap();
    let (noticed, reason) = readiness_becomes(env.port, 503, Duration::from_secs(1), "the filesystem failed");
    assert!(reason.contains("read-only"), "{reason}");
    assert_eq!(http_get(env.port, "/livez").map(|r| r.0), Some(200));
    let r = http(env.port, "GET", "/dav/kept.txt", &[("Authorization", &basic("alice"))], b"");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"readable still\n"[..]));
    let put = http(env.port, "PUT", "/dav/new.txt", &[("Authorization", &basic("alice"))], b"refused\n");
    assert!(put.status >= 500, "a write to a read-only filesystem: {}", put.status);
    tests::record_figure(&format!(
        "data directory turned read-only by an ext4 error: /readyz 503 after {} ms; reads served",
        noticed.as_millis()
    ));
    drop(d);
}
