//! A writer killed with SIGKILL at any instant leaves the old file or the new one, never a
//! torn one; after the daemon restarts (replaying interrupted commits, clearing staging),
//! fsck is clean.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use tests::{Env, b3, pattern};

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
