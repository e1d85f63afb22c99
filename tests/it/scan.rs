//! Files changed directly in the backing directory are picked up by `cairnctl scan`.

use tests::{Env, b3, describe, pattern, sql_i64};

#[test]
fn scan_adopts_outside_changes() {
    let env = Env::new();
    env.add_user("alice", None);
    env.put_ok("alice", "/keep.txt", b"same");
    env.put_ok("alice", "/edit.txt", b"before");
    env.put_ok("alice", "/gone.txt", b"bye");
    let edit_id = env.ctl_json(&["files", "stat", "alice", "/edit.txt"])["id"].clone();

    let root = env.user_dir("alice");
    std::fs::create_dir_all(root.join("new/deeper")).unwrap();
    std::fs::write(root.join("new/deeper/n.txt"), b"brand new").unwrap();
    std::fs::write(root.join("edit.txt"), b"after, longer").unwrap();
    std::fs::remove_file(root.join("gone.txt")).unwrap();

    // fsck sees the drift before the scan...
    let out = env.ctl(&["--json", "fsck"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> =
        report["problems"].as_array().unwrap().iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"untracked") && kinds.contains(&"missing") && kinds.contains(&"size"),
        "{kinds:?}"
    );

    let report = env.ctl_json(&["scan", "alice"]);
    let r = &report[0];
    assert_eq!(r["added"], serde_json::json!(["/new", "/new/deeper", "/new/deeper/n.txt"]));
    assert_eq!(r["modified"], serde_json::json!(["/edit.txt"]));
    assert_eq!(r["removed"], serde_json::json!(["/gone.txt"]));

    let edit = env.ctl_json(&["files", "stat", "alice", "/edit.txt"]);
    assert_eq!(edit["id"], edit_id, "a changed file keeps its id");
    assert_eq!(edit["blake3"], b3(b"after, longer"));
    let new = env.ctl_json(&["files", "stat", "alice", "/new/deeper/n.txt"]);
    assert_eq!(new["blake3"], b3(b"brand new"));
    assert_eq!(env.ctl_json(&["quota", "show", "alice"])["used"], (4 + 13 + 9) as u64);
    // ...and is clean after it; a second scan finds nothing.
    env.assert_fsck_clean();
    let again = env.ctl_json(&["scan", "alice"]);
    assert_eq!(
        again[0]["added"].as_array().unwrap().len() + again[0]["modified"].as_array().unwrap().len(),
        0
    );
}

/// Files put back by hand are adopted even when they leave the user over quota: the disk
/// holds them whatever the quota says, and the database must follow it. The user is then over
/// quota, as after an admin lowers a quota below the usage: writes that add bytes are refused
/// until space is freed.
#[test]
fn scan_adopts_files_beyond_the_quota() {
    let env = Env::new();
    env.add_user("alice", Some("100"));
    env.put_ok("alice", "/a.txt", &[b'a'; 40]);
    let restored = pattern(300, 7);
    std::fs::create_dir_all(env.user_dir("alice").join("old")).unwrap();
    std::fs::write(env.user_dir("alice").join("old/restored.bin"), &restored).unwrap();

    let report = env.ctl_json(&["scan", "alice"]);
    assert_eq!(report[0]["added"], serde_json::json!(["/old", "/old/restored.bin"]));
    assert_eq!(report[0]["over_quota"], serde_json::json!({"used": 340, "quota": 100}));
    assert_eq!(env.ctl_json(&["files", "stat", "alice", "/old/restored.bin"])["blake3"], b3(&restored));
    assert_eq!(env.ctl_json(&["quota", "show", "alice"])["used"], 340);
    env.assert_fsck_clean();
    let text = env.ctl_ok(&["scan", "alice"]);
    assert!(text.contains("over quota: 340 B used of 100 B"), "{text}");

    // Over quota: a write that adds bytes is refused, and nothing of it stays.
    let out = env.put("alice", "/more.txt", b"more");
    assert!(!out.status.success(), "a write over quota succeeded");
    assert!(describe(&out).contains("quota"), "{}", describe(&out));
    assert!(!env.user_dir("alice").join("more.txt").exists());

    // Deleting the restored file and emptying the trash brings the user back under it.
    env.ctl_ok(&["files", "rm", "alice", "/old/restored.bin"]);
    env.ctl_ok(&["trash", "purge", "alice", "--all"]);
    env.put_ok("alice", "/more.txt", b"more");
    assert_eq!(env.ctl_json(&["scan", "alice"])[0]["over_quota"], serde_json::Value::Null);
    assert_eq!(env.ctl_json(&["quota", "show", "alice"])["used"], 44);
    env.assert_fsck_clean();
}

/// A change to one file reads only its own rows, however big the user's tree: deleting one of
/// 3,000 freshly imported files (planner statistics that know nothing of them, as after any
/// big import) reads a handful of `nodes` rows, not all of them (PostgreSQL's own counters).
#[test]
fn deleting_one_file_of_a_big_fresh_tree_reads_only_its_rows() {
    let env = Env::new();
    env.add_user("alice", None);
    let dir = env.user_dir("alice").join("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..3000 {
        std::fs::write(dir.join(format!("f{i:04}")), b"x").unwrap();
    }
    assert_eq!(env.ctl_json(&["scan", "alice"])[0]["added"].as_array().unwrap().len(), 3001);
    // Rows of `nodes` read so far (sequential scans and index fetches); a backend reports its
    // counts when it ends, so wait until the figure settles.
    let read = || {
        let q = "SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::bigint
                 FROM pg_stat_user_tables WHERE relname = 'nodes'";
        let mut last = sql_i64(&env.db, q);
        loop {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = sql_i64(&env.db, q);
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = read();
    env.ctl_ok(&["files", "rm", "alice", "/many/f1500"]);
    let rows = read() - before;
    assert!(rows < 200, "deleting one file read {rows} rows of nodes");
    assert!(!dir.join("f1500").exists());
}
