//! Files changed directly in the backing directory are picked up by `cairnctl scan`.

use tests::{Env, b3};

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
