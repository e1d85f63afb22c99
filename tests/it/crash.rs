//! A writer killed with SIGKILL at any instant leaves the old file or the new one, never a
//! torn one; after the daemon restarts (replaying interrupted commits, clearing staging),
//! fsck is clean.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use tests::{Env, b3, basic, http, pattern, sql_i64};

#[test]
fn sigkill_mid_write_never_tears_a_file() {
    let env = Env::new();
    let mut daemon = env.start_daemon();
    env.add_user("alice", None);
    let old = pattern(3 << 20, 1);
    let new = pattern(3 << 20, 2);
    env.put_ok("alice", "/file.bin", &old);

    let mut outcomes = Vec::new();
    // Kill at many points: mid-stream, after the last byte, during and after the commit.
    for (round, delay_ms) in [0u64, 2, 5, 10, 20, 40, 80, 150].into_iter().enumerate() {
        let mut child = env
            .ctl_cmd(&["files", "put", "alice", "/file.bin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let body = if round % 2 == 0 { new.clone() } else { old.clone() };
        // Half the rounds stop mid-stream; the others send everything first.
        let full = round % 3 != 0;
        let writer = std::thread::spawn(move || {
            let n = if full { body.len() } else { body.len() / 2 };
            let _ = stdin.write_all(&body[..n]);
            if !full {
                std::thread::sleep(Duration::from_secs(5));
            }
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let _ = writer.join();

        let now = env.get("alice", "/file.bin");
        let h = b3(&now);
        assert!(h == b3(&old) || h == b3(&new), "round {round}: torn file ({} bytes)", now.len());
        outcomes.push(if h == b3(&old) { "old" } else { "new" });

        // Restart the daemon: it replays what the killed writer committed and clears staging.
        daemon.kill();
        daemon = env.start_daemon();
        assert_eq!(std::fs::read_dir(env.data_dir.join(".cairn/staging")).unwrap().count(), 0);
        let after = env.get("alice", "/file.bin");
        assert!(b3(&after) == b3(&old) || b3(&after) == b3(&new));
        env.assert_fsck_clean();
    }
    eprintln!("crash outcomes: {outcomes:?}");
}

/// A small write is answered once its bytes are in the database with its commit (the write
/// log), before the backing filesystem is synced. A crash that loses what was not yet synced
/// must not lose the write: the next start rewrites it from the log. Here the sync never comes
/// before the SIGKILL, and the disk is then made to look as a power cut may leave it: one file
/// gone, the rename that turned the old content into a version undone.
#[test]
fn small_writes_the_disk_lost_come_back_from_the_write_log() {
    let env = Env::new();
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{cfg}[storage]\nwrite_log_ms = 60000\n")).unwrap();
    let daemon = env.start_daemon();
    env.add_user("alice", None);
    let auth = basic("alice");
    let put = |path: &str, body: &[u8]| {
        let r = http(env.port, "PUT", &format!("/dav{path}"), &[("Authorization", &auth)], body);
        assert!(r.status == 201 || r.status == 204, "PUT {path}: {} {}", r.status, r.text());
    };
    assert_eq!(http(env.port, "MKCOL", "/dav/docs", &[("Authorization", &auth)], b"").status, 201);
    let b = pattern(40_000, 3);
    put("/docs/a.txt", b"first version of a");
    put("/docs/a.txt", b"second version of a");
    put("/docs/b.bin", &b);
    let logged = "SELECT count(*) FROM intents WHERE logged_data IS NOT NULL";
    assert_eq!(sql_i64(&env.db, logged), 3, "each small write waits in the log for the sync");
    daemon.kill();

    let docs = env.user_dir("alice").join("docs");
    std::fs::remove_file(docs.join("b.bin")).unwrap();
    let vdir = env.data_dir.join(".cairn/versions/alice");
    let blobs: Vec<_> = std::fs::read_dir(&vdir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), b"first version of a");
    std::fs::rename(&blobs[0], docs.join("a.txt")).unwrap();

    let daemon = env.start_daemon();
    assert_eq!(sql_i64(&env.db, "SELECT count(*) FROM intents"), 0);
    assert_eq!(env.get("alice", "/docs/a.txt"), b"second version of a");
    assert_eq!(env.get("alice", "/docs/b.bin"), b);
    env.assert_fsck_clean();
    let versions = env.ctl_json(&["versions", "list", "alice", "/docs/a.txt"]);
    let id = versions[0]["id"].as_i64().expect("the first content is a version").to_string();
    env.ctl_ok(&["versions", "restore", "alice", "/docs/a.txt", &id]);
    assert_eq!(env.get("alice", "/docs/a.txt"), b"first version of a");

    // A clean stop syncs and forgets the log: nothing is left to replay.
    put("/docs/c.txt", b"written just before the stop");
    assert_eq!(sql_i64(&env.db, logged), 1);
    assert!(daemon.stop().success());
    assert_eq!(sql_i64(&env.db, "SELECT count(*) FROM intents"), 0);
    assert_eq!(std::fs::read(docs.join("c.txt")).unwrap(), b"written just before the stop");
}
