//! The daemon process: health, start-up time with a managed cluster, one owner per data
//! directory, clean shutdown.

use std::time::Instant;

use tests::{Env, bin, describe, http_get, record_figure};

#[test]
fn managed_cluster_start_to_healthy() {
    let env = Env::managed();
    let t0 = Instant::now();
    let daemon = env.start_daemon();
    let first = t0.elapsed();
    // The first admin exists, with a generated password in a private file.
    let pw_file = env.data_dir.join(".cairn/initial-admin-password");
    let pw = std::fs::read_to_string(&pw_file).unwrap();
    assert_eq!(pw.trim().len(), 20);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o777, 0o600);
    let users = env.ctl_json(&["user", "list"]);
    assert_eq!(users[0]["name"], "admin");
    assert_eq!(users[0]["admin"], true);
    // cairnctl works beside the running daemon, through its cluster.
    assert!(env.ctl_ok(&["status"]).contains("running"));
    assert_eq!(daemon.stop().code(), Some(0));
    // No PostgreSQL left running on the data directory.
    assert!(!env.data_dir.join(".cairn/pg/data/postmaster.pid").exists(), "postgres still running");

    let t1 = Instant::now();
    let daemon = env.start_daemon();
    let second = t1.elapsed();
    assert_eq!(daemon.stop().code(), Some(0));
    // cairnctl works without a daemon too, starting the cluster for itself.
    assert!(env.ctl_ok(&["status"]).contains("not running"));
    record_figure(&format!(
        "cairnd start -> /healthz 200 with a managed cluster: first start (initdb) {:.2} s, restart {:.2} s",
        first.as_secs_f64(),
        second.as_secs_f64()
    ));
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let env = Env::new();
    let _first = env.start_daemon();
    let out = std::process::Command::new(bin("cairnd")).arg("--config").arg(&env.config).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by cairnd"), "{}", describe(&out));
    // The first one still serves.
    assert_eq!(http_get(env.port, "/healthz").map(|r| r.0), Some(200));
}

#[test]
fn health_and_unknown_paths() {
    let env = Env::new();
    let _d = env.start_daemon();
    assert_eq!(http_get(env.port, "/healthz"), Some((200, "ok\n".to_owned())));
    assert_eq!(http_get(env.port, "/nope").map(|r| r.0), Some(404));
}

#[test]
fn bad_config_is_a_clear_error() {
    let env = Env::new();
    std::fs::write(&env.config, "data_dir = \"/tmp/x\"\n[http]\nlisen = \"1.2.3.4:5\"\n").unwrap();
    let out = std::process::Command::new(bin("cairnd")).arg("--config").arg(&env.config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `lisen`"), "{}", describe(&out));
}
