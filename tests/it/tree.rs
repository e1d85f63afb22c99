//! Move, copy, delete to trash, restore, purge; ids stable across renames and restarts.

use tests::{Env, describe};

fn id(env: &Env, path: &str) -> i64 {
    env.ctl_json(&["files", "stat", "alice", path])["id"].as_i64().unwrap()
}

#[test]
fn move_copy_delete_and_trash() {
    let env = Env::new();
    env.add_user("alice", None);
    env.ctl_ok(&["files", "mkdir", "alice", "/a"]);
    env.ctl_ok(&["files", "mkdir", "alice", "/a/sub"]);
    env.put_ok("alice", "/a/sub/f.txt", b"deep");
    env.put_ok("alice", "/a/g.txt", b"shallow");
    let f_id = id(&env, "/a/sub/f.txt");

    // Move a folder: everything below follows, with its ids; the disk agrees.
    env.ctl_ok(&["files", "mv", "alice", "/a", "/b"]);
    assert_eq!(id(&env, "/b/sub/f.txt"), f_id);
    assert_eq!(std::fs::read(env.user_dir("alice").join("b/sub/f.txt")).unwrap(), b"deep");
    assert!(!env.user_dir("alice").join("a").exists());

    // Into itself: refused.
    let out = env.ctl(&["files", "mv", "alice", "/b", "/b/sub/x"]);
    assert!(!out.status.success());

    // Copy: new ids, same bytes.
    env.ctl_ok(&["files", "cp", "alice", "/b", "/c"]);
    assert_ne!(id(&env, "/c/sub/f.txt"), f_id);
    assert_eq!(env.get("alice", "/c/sub/f.txt"), b"deep");

    // Overwrite rules: refused without --overwrite, versioned with it (file onto file).
    env.put_ok("alice", "/x.txt", b"x");
    let out = env.ctl(&["files", "cp", "alice", "/b/g.txt", "/x.txt"]);
    assert!(!out.status.success(), "{}", describe(&out));
    let x_id = id(&env, "/x.txt");
    env.ctl_ok(&["files", "cp", "alice", "/b/g.txt", "/x.txt", "--overwrite"]);
    assert_eq!(env.get("alice", "/x.txt"), b"shallow");
    assert_eq!(id(&env, "/x.txt"), x_id);
    assert_eq!(env.ctl_json(&["versions", "list", "alice", "/x.txt"]).as_array().unwrap().len(), 1);

    // Move over an existing file: the replaced one goes to the trash, recoverable.
    env.put_ok("alice", "/y.txt", b"y");
    env.ctl_ok(&["files", "mv", "alice", "/x.txt", "/y.txt", "--overwrite"]);
    assert_eq!(id(&env, "/y.txt"), x_id);
    let trash = env.ctl_json(&["trash", "list", "alice"]);
    assert_eq!(trash[0]["path"], "/y.txt");

    // Delete a folder to the trash, then restore it with its ids.
    env.ctl_ok(&["files", "rm", "alice", "/b"]);
    assert!(!env.user_dir("alice").join("b").exists());
    let out = env.ctl(&["files", "stat", "alice", "/b/sub/f.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let trash = env.ctl_json(&["trash", "list", "alice"]);
    let item = trash.as_array().unwrap().iter().find(|t| t["path"] == "/b").unwrap();
    assert_eq!(item["size"], 4 + 7);
    let tid = item["id"].as_i64().unwrap().to_string();
    env.ctl_ok(&["trash", "restore", "alice", &tid]);
    assert_eq!(id(&env, "/b/sub/f.txt"), f_id);
    assert_eq!(env.get("alice", "/b/sub/f.txt"), b"deep");

    // Restore onto an occupied name is refused; --to picks another.
    env.ctl_ok(&["files", "rm", "alice", "/c/g.txt"]);
    env.put_ok("alice", "/c/g.txt", b"newer");
    let tid = env.ctl_json(&["trash", "list", "alice"])[0]["id"].as_i64().unwrap().to_string();
    let out = env.ctl(&["trash", "restore", "alice", &tid]);
    assert!(!out.status.success());
    env.ctl_ok(&["trash", "restore", "alice", &tid, "--to", "/c/g (restored).txt"]);
    assert_eq!(env.get("alice", "/c/g (restored).txt"), b"shallow");

    // Purge empties the trash and frees the space.
    env.ctl_ok(&["trash", "purge", "alice", "--all"]);
    assert_eq!(env.ctl_json(&["trash", "list", "alice"]).as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read_dir(env.data_dir.join(".cairn/trash/alice")).unwrap().count(), 0);
    env.assert_fsck_clean();
}

#[test]
fn ids_survive_rename_and_restart() {
    let env = Env::new();
    let daemon = env.start_daemon();
    env.add_user("alice", None);
    env.put_ok("alice", "/report.txt", b"v1");
    let before = id(&env, "/report.txt");
    env.ctl_ok(&["files", "mkdir", "alice", "/archive"]);
    env.ctl_ok(&["files", "mv", "alice", "/report.txt", "/archive/report-2026.txt"]);
    assert_eq!(daemon.stop().code(), Some(0), "clean shutdown on SIGTERM");
    let _daemon = env.start_daemon();
    assert_eq!(id(&env, "/archive/report-2026.txt"), before);
    env.put_ok("alice", "/archive/report-2026.txt", b"v2");
    assert_eq!(id(&env, "/archive/report-2026.txt"), before, "an overwrite keeps the id");
    env.assert_fsck_clean();
}

#[test]
fn users_are_isolated_and_deletable() {
    let env = Env::new();
    env.add_user("alice", None);
    env.add_user("bob", None);
    env.put_ok("alice", "/mine.txt", b"alice's");
    let out = env.ctl(&["files", "get", "bob", "/mine.txt"]);
    assert_eq!(out.status.code(), Some(2));
    let out = env.ctl(&["user", "delete", "alice"]);
    assert!(!out.status.success(), "delete needs --yes");
    env.ctl_ok(&["user", "delete", "alice", "--yes"]);
    assert!(!env.user_dir("alice").exists());
    let users = env.ctl_json(&["user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 1);
    env.assert_fsck_clean();
}
