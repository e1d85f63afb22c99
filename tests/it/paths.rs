//! Hostile names are refused at the edge with a clear error, and nothing is created; a symlink
//! planted in the backing directory is never followed.

use tests::{Env, describe};

#[test]
fn hostile_paths_are_refused_and_create_nothing() {
    let env = Env::new();
    env.add_user("alice", None);
    let cases: &[(&str, &str)] = &[
        ("/../escape.txt", "parent segment"),
        ("/a/../../b", "parent segment"),
        ("/./x", "'.' segment"),
        ("/a//b", "empty segment"),
        ("/back\\slash", "backslash"),
        ("/ctl\u{1}char", "control character"),
        ("/new\nline", "control character"),
        (&format!("/{}", "n".repeat(256)), "longer than 255 bytes"),
    ];
    for (path, reason) in cases {
        let out = env.put("alice", path, b"x");
        assert_eq!(out.status.code(), Some(2), "{path:?}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(reason), "{path:?}: expected {reason:?} in {err}");
    }
    // Nothing landed anywhere: the user's tree is empty and nothing escaped beside it.
    assert_eq!(std::fs::read_dir(env.user_dir("alice")).unwrap().count(), 0);
    assert!(!env.data_dir.join("files/escape.txt").exists());
    assert!(!env.data_dir.join("escape.txt").exists());
    let listing = env.ctl_json(&["files", "ls", "alice", "/"]);
    assert_eq!(listing.as_array().unwrap().len(), 0);
    env.assert_fsck_clean();
}

#[test]
fn unicode_names_are_one_normalization() {
    let env = Env::new();
    env.add_user("alice", None);
    let nfd = "/cafe\u{301}.txt";
    let nfc = "/caf\u{e9}.txt";
    env.put_ok("alice", nfd, b"first");
    env.put_ok("alice", nfc, b"second");
    let listing = env.ctl_json(&["files", "ls", "alice", "/"]);
    let names: Vec<&str> = listing.as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(names, [nfc]);
    assert_eq!(env.get("alice", nfd), b"second");
    // On disk the name is NFC too.
    assert!(env.user_dir("alice").join("caf\u{e9}.txt").is_file());
    // Awkward but legal names work.
    for name in ["/with space.txt", "/#hash%25.txt", "/emoji 🎉.txt", "/...", "/.hidden"] {
        env.put_ok("alice", name, name.as_bytes());
        assert_eq!(env.get("alice", name), name.as_bytes());
    }
    env.assert_fsck_clean();
}

#[test]
fn planted_symlinks_are_never_followed() {
    let env = Env::new();
    env.add_user("alice", None);
    let outside = env.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("passwd"), b"SECRET").unwrap();

    // A tracked folder replaced on disk by a symlink to a folder outside the tree.
    env.ctl_ok(&["files", "mkdir", "alice", "/d"]);
    env.put_ok("alice", "/d/passwd", b"mine");
    let d = env.user_dir("alice").join("d");
    std::fs::remove_dir_all(&d).unwrap();
    std::os::unix::fs::symlink(&outside, &d).unwrap();

    let out = env.ctl(&["files", "get", "alice", "/d/passwd"]);
    assert!(!out.status.success(), "read through a symlink: {}", describe(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SECRET"));
    let out = env.put("alice", "/d/passwd", b"overwritten");
    assert!(!out.status.success(), "write through a symlink: {}", describe(&out));
    assert_eq!(std::fs::read(outside.join("passwd")).unwrap(), b"SECRET");

    // A symlink planted as a new entry: scan reports and skips it, never adopts it.
    std::os::unix::fs::symlink(outside.join("passwd"), env.user_dir("alice").join("link")).unwrap();
    let report = env.ctl_json(&["scan", "alice"]);
    let skipped = report[0]["skipped"].to_string();
    assert!(skipped.contains("/link"), "{report}");
    let out = env.ctl(&["files", "get", "alice", "/link"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SECRET"));
}
