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
