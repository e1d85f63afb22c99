//! WebDAV over TLS: a self-signed certificate generated once and reused; HTTP/2 through ALPN and
//! HTTP/1.1 both carry uploads and downloads.

use std::process::Command;

use tests::{Env, b3, describe, pattern, require_program};

fn curl(env: &Env, args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sk", "-u", "alice:correct horse battery"])
        .args(args)
        .current_dir(&env.dir)
        .output()
        .unwrap()
}

#[test]
fn https_with_http2_and_http11() {
    require_program("curl", "curl");
    require_program("openssl", "openssl");
    let mut env = Env::new();
    env.enable_tls();
    let daemon = env.start_daemon();
    env.add_user("alice", None);
    let data = pattern(20 << 20, 3);
    std::fs::write(env.dir.join("up.bin"), &data).unwrap();
    let base = format!("https://127.0.0.1:{}/dav", env.port);
    for (flag, version, name) in [("--http2", "2", "h2.bin"), ("--http1.1", "1.1", "h1.bin")] {
        let out = curl(
            &env,
            &[
                flag,
                "-w",
                "%{http_code} %{http_version}",
                "-o",
                "/dev/null",
                "-T",
                "up.bin",
                &format!("{base}/{name}"),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("201 {version}"), "{}", describe(&out));
        let out = curl(
            &env,
            &[flag, "-o", &format!("down-{name}"), "-w", "%{http_code}", &format!("{base}/{name}")],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
        assert_eq!(b3(&std::fs::read(env.dir.join(format!("down-{name}"))).unwrap()), b3(&data));
    }
    // Plain HTTP on the TLS port gets nowhere.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{}/healthz", env.port),
        ])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
    // The certificate is kept and reused across restarts.
    let cert = env.data_dir.join(".cairn/tls/cert.pem");
    let first = std::fs::read(&cert).unwrap();
    assert_eq!(daemon.stop().code(), Some(0));
    let _daemon = env.start_daemon();
    assert_eq!(std::fs::read(&cert).unwrap(), first);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(env.data_dir.join(".cairn/tls/key.pem")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // /metrics says when the served certificate expires: the certificate's own notAfter.
    let out = curl(&env, &[&format!("https://127.0.0.1:{}/metrics", env.port)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("cairn_tls_certificate_expiry_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no expiry in /metrics: {}", describe(&out)));
    let out =
        Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(&cert).output().unwrap();
    let end = String::from_utf8_lossy(&out.stdout).trim().trim_start_matches("notAfter=").to_owned();
    let out = Command::new("date").args(["-u", "-d", &end, "+%s"]).output().unwrap();
    let want: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{end:?}"));
    assert_eq!(expiry, want);
}

/// `cairn login` against a self-signed certificate: refused, naming the certificate's
/// fingerprint exactly as `scripts/run.sh` prints it; with `--fingerprint` it signs in and the
/// client works over TLS trusting that certificate only; a wrong fingerprint is refused.
#[test]
fn cairn_login_pins_a_self_signed_certificate_by_its_fingerprint() {
    let mut env = Env::new();
    env.enable_tls();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    // run.sh's pipeline, run here as run.sh runs it.
    let cert = env.data_dir.join(".cairn/tls/cert.pem");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "sed '/-----/d' '{}' | base64 -d | sha256sum | cut -d' ' -f1 | tr a-f A-F | sed 's/../&:/g; s/:$//'",
            cert.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let fp = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    let url = format!("https://127.0.0.1:{}", env.port);
    let login = |dir: &str, extra: &[&str]| {
        let mut cmd = Command::new(tests::bin("cairn"));
        cmd.env("CAIRN_CLIENT_DIR", env.dir.join(dir))
            .args(["login", &url, "--user", "alice", "--password-stdin", "--device", dir])
            .args(extra);
        tests::output_with_input(&mut cmd, b"correct horse battery\n")
    };
    let refused = login("c1", &[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(&format!("--fingerprint {fp}")), "the refusal names the fingerprint {fp}: {err}");

    let mut wrong = fp.clone().into_bytes();
    wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
    let wrong = String::from_utf8(wrong).unwrap();
    let refused = login("c2", &["--fingerprint", &wrong]);
    assert!(!refused.status.success(), "a wrong fingerprint: {}", describe(&refused));

    let ok = login("c3", &["--fingerprint", &fp]);
    assert!(ok.status.success(), "{}", describe(&ok));
    // The pin is kept: a sync over TLS works.
    let local = env.dir.join("synced");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("over-tls.txt"), b"pinned").unwrap();
    let mut cmd = Command::new(tests::bin("cairn"));
    cmd.env("CAIRN_CLIENT_DIR", env.dir.join("c3")).args(["sync", local.to_str().unwrap()]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "sync over TLS: {}", describe(&out));
    assert_eq!(env.get("alice", "/over-tls.txt"), b"pinned");
    // `--watch` hears the server's push through the pinned channel: a change made on the
    // server arrives well before the once-a-minute round a dead push channel would leave.
    let mut watch = Command::new(tests::bin("cairn"))
        .env("CAIRN_CLIENT_DIR", env.dir.join("c3"))
        .args(["sync", local.to_str().unwrap(), "--watch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    env.put_ok("alice", "/pushed.txt", b"through the push");
    let t = std::time::Instant::now();
    while !local.join("pushed.txt").exists() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(
        std::fs::read(local.join("pushed.txt")).ok().as_deref(),
        Some(&b"through the push"[..]),
        "pushed within 20 s"
    );
}
