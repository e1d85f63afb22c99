//! Overwrites keep the old content as a version; restoring gives the bytes back exactly.

use tests::{Env, b3, pattern};

#[test]
fn overwrite_creates_versions_and_restore_is_byte_identical() {
    let env = Env::new();
    env.add_user("alice", None);
    let contents: Vec<Vec<u8>> = (0..4).map(|i| pattern(100_000 + i * 777, i as u64)).collect();
    for c in &contents {
        env.put_ok("alice", "/doc.bin", c);
    }
    assert_eq!(env.get("alice", "/doc.bin"), contents[3]);
    let versions = env.ctl_json(&["versions", "list", "alice", "/doc.bin"]);
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 3, "{versions:?}");
    // Newest first, each with the hash of the content it held.
    for (v, c) in versions.iter().zip(contents[..3].iter().rev()) {
        assert_eq!(v["blake3"], b3(c));
        assert_eq!(v["size"], c.len());
    }
    let file_id = env.ctl_json(&["files", "stat", "alice", "/doc.bin"])["id"].clone();
    assert!(versions.iter().all(|v| v["file_id"] == file_id));

    // Restore the oldest: it becomes current, byte for byte; what was current is now a version.
    let oldest = versions[2]["id"].as_i64().unwrap().to_string();
    env.ctl_ok(&["versions", "restore", "alice", "/doc.bin", &oldest]);
    assert_eq!(env.get("alice", "/doc.bin"), contents[0]);
    let after = env.ctl_json(&["versions", "list", "alice", "/doc.bin"]);
    let hashes: Vec<&str> = after.as_array().unwrap().iter().map(|v| v["blake3"].as_str().unwrap()).collect();
    assert!(hashes.contains(&b3(&contents[3]).as_str()), "the replaced content was kept");
    assert!(!hashes.contains(&b3(&contents[0]).as_str()), "the restored version left the list");
    assert_eq!(env.ctl_json(&["files", "stat", "alice", "/doc.bin"])["id"], file_id, "same file id");

    // Version blobs are plain files in the data directory.
    let blob = env.data_dir.join(".cairn/versions/alice").join(after[0]["id"].as_i64().unwrap().to_string());
    assert_eq!(b3(&std::fs::read(blob).unwrap()), after[0]["blake3"].as_str().unwrap());
    env.assert_fsck_clean();
}

#[test]
fn restoring_a_version_of_another_file_is_refused() {
    let env = Env::new();
    env.add_user("alice", None);
    env.put_ok("alice", "/a", b"a1");
    env.put_ok("alice", "/a", b"a2");
    env.put_ok("alice", "/b", b"b1");
    let va = env.ctl_json(&["versions", "list", "alice", "/a"])[0]["id"].as_i64().unwrap().to_string();
    let out = env.ctl(&["versions", "restore", "alice", "/b", &va]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.get("alice", "/b"), b"b1");
    env.assert_fsck_clean();
}
