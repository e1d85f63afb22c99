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

/// `cairnctl status` and the start-up log say whether the data directory's disk is encrypted
/// at rest, as util-linux sees the same device (`lsblk`: a `crypt` device at or below it).
#[test]
fn status_and_the_start_up_log_say_whether_the_data_directory_is_encrypted_at_rest() {
    use std::os::unix::fs::MetadataExt;
    tests::require_program("lsblk", "util-linux");
    let env = Env::new();
    let d = env.start_daemon();
    let st = env.ctl_json(&["status"]);
    let dev = std::fs::metadata(&env.data_dir).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    // `lsblk -s`: each device with what it sits on as its children.
    let out =
        std::process::Command::new("lsblk").args(["-J", "-s", "-o", "KNAME,TYPE,MAJ:MIN"]).output().unwrap();
    assert!(out.status.success(), "lsblk: {}", describe(&out));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devno = format!("{major}:{minor}");
    let top = all["blockdevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["maj:min"] == devno.as_str())
        .unwrap_or_else(|| panic!("lsblk does not list the data directory's device {devno}: {all}"));
    fn any_crypt(d: &serde_json::Value) -> bool {
        d["type"] == "crypt" || d["children"].as_array().is_some_and(|c| c.iter().any(any_crypt))
    }
    let kname = top["kname"].as_str().unwrap().to_owned();
    let encrypted = any_crypt(top);
    let text = top.to_string();
    let want = if encrypted { "encrypted" } else { "not_encrypted" };
    assert_eq!(st["at_rest"]["state"], want, "status: {st}; lsblk: {text}");
    assert_eq!(st["at_rest"]["device"], kname.as_str(), "{st}");
    let human = env.ctl_ok(&["status"]);
    let line = human.lines().find(|l| l.starts_with("at rest:")).unwrap_or_else(|| panic!("{human}"));
    let log = d.log_text();
    let said = line.trim_start_matches("at rest:").trim();
    assert!(
        log.contains(&format!("data directory at rest: {said}")),
        "the start-up log says {said:?}:\n{log}"
    );
    if !encrypted {
        assert!(said.starts_with("NOT encrypted") && log.contains("WARN"), "{said}");
    }
}
