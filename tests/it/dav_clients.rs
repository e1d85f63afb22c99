//! Real WebDAV clients against Cairn: rclone, cadaver, and a davfs2 mount.

use std::path::Path;
use std::process::{Command, Stdio};

use tests::{Env, b3, describe, pattern, require_program};

/// Awkward names: spaces, `#`, `%`, emoji, and the same accented name in NFC and NFD forms
/// (in separate folders: the server keeps one normalization, so the two would be one file).
const NAMES: &[&str] = &[
    "with space.txt",
    "hash#name.txt",
    "percent%41%.txt",
    "emoji 🎉 party.txt",
    "nfc/caf\u{e9}.txt",
    "nfd/cafe\u{301}.txt",
    "deep/er/still deeper/file.bin",
    "empty.txt",
];

fn make_tree(root: &Path) {
    for (i, name) in NAMES.iter().enumerate() {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let len = if name.starts_with("empty") { 0 } else { 1000 * (i + 1) * (i + 1) };
        std::fs::write(p, pattern(len, i as u64)).unwrap();
    }
}

fn rclone(env: &Env, args: &[&str]) -> std::process::Output {
    let obscured = Command::new("rclone").args(["obscure", "correct horse battery"]).output().unwrap();
    let pass = String::from_utf8(obscured.stdout).unwrap().trim().to_owned();
    Command::new("rclone")
        .args(args)
        .env("RCLONE_CONFIG", env.dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_CAIRN_TYPE", "webdav")
        .env("RCLONE_CONFIG_CAIRN_URL", format!("http://127.0.0.1:{}/dav/", env.port))
        .env("RCLONE_CONFIG_CAIRN_VENDOR", "other")
        .env("RCLONE_CONFIG_CAIRN_USER", "alice")
        .env("RCLONE_CONFIG_CAIRN_PASS", pass)
        .output()
        .unwrap()
}

#[test]
fn rclone_round_trip_with_awkward_names() {
    require_program("rclone", "rclone");
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    let src = env.dir.join("src");
    make_tree(&src);
    let out = rclone(&env, &["copy", src.to_str().unwrap(), "cairn:tree"]);
    assert!(out.status.success(), "rclone copy: {}", describe(&out));
    let out = rclone(&env, &["check", src.to_str().unwrap(), "cairn:tree"]);
    assert!(out.status.success(), "rclone check: {}", describe(&out));
    let back = env.dir.join("back");
    let out = rclone(&env, &["copy", "cairn:tree", back.to_str().unwrap()]);
    assert!(out.status.success(), "rclone copy back: {}", describe(&out));
    for name in NAMES {
        // What comes back is NFC; the bytes are the same.
        let nfc: String =
            if name.starts_with("nfd/") { "nfd/caf\u{e9}.txt".to_owned() } else { name.to_string() };
        let original = std::fs::read(src.join(name)).unwrap();
        let returned = std::fs::read(back.join(&nfc)).unwrap_or_else(|e| panic!("{nfc}: {e}"));
        assert_eq!(b3(&original), b3(&returned), "{name}");
        // And the server holds exactly these as plain files.
        assert_eq!(b3(&std::fs::read(env.user_dir("alice").join("tree").join(&nfc)).unwrap()), b3(&original));
    }
    env.assert_fsck_clean();
}

#[test]
fn cadaver_scripted_session() {
    require_program("cadaver", "cadaver");
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    // .netrc has no quoting: give cadaver a password without spaces.
    let out = env.ctl_with_input(&["user", "passwd", "alice", "--password-stdin"], b"horse-battery-staple\n");
    assert!(out.status.success(), "{}", describe(&out));
    std::fs::write(env.dir.join(".netrc"), "machine 127.0.0.1 login alice password horse-battery-staple\n")
        .unwrap();
    let local = env.dir.join("local.txt");
    std::fs::write(&local, b"from cadaver\n").unwrap();
    let script = format!(
        "mkcol docs\ncd docs\nput {} note.txt\nmove note.txt renamed.txt\ncopy renamed.txt copy.txt\npropset renamed.txt color blue\npropget renamed.txt color\nlock renamed.txt\nunlock renamed.txt\nget renamed.txt {}\nls\ndelete copy.txt\nquit\n",
        local.display(),
        env.dir.join("fetched.txt").display()
    );
    let out = tests::output_with_input(
        Command::new("cadaver")
            .arg(format!("http://127.0.0.1:{}/dav/", env.port))
            .env("HOME", &env.dir)
            .current_dir(&env.dir),
        script.as_bytes(),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("failed"), "cadaver reported a failure:\n{text}");
    assert!(text.contains("blue"), "propget did not show the value:\n{text}");
    assert_eq!(std::fs::read(env.dir.join("fetched.txt")).unwrap(), b"from cadaver\n");
    assert_eq!(env.get("alice", "/docs/renamed.txt"), b"from cadaver\n");
    let ls = env.ctl_json(&["files", "ls", "alice", "/docs"]);
    let names: Vec<&str> = ls.as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(names, ["/docs/renamed.txt"], "{text}");
}

#[test]
fn davfs2_mount_create_edit_rename_delete() {
    require_program("mount.davfs", "davfs2");
    // SAFETY: geteuid has no preconditions.
    assert!(unsafe { libc::geteuid() } == 0, "the davfs2 test mounts a filesystem and must run as root");
    assert!(Path::new("/dev/fuse").exists(), "davfs2 needs /dev/fuse (FUSE in the kernel)");
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    let mnt = env.dir.join("mnt");
    let cache = env.dir.join("davcache");
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    // mount.davfs drops to the `davfs2` user, which creates its cache below this folder.
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let url = format!("http://127.0.0.1:{}/dav/", env.port);
    let secrets = env.dir.join("secrets");
    std::fs::write(&secrets, format!("{url} alice \"correct horse battery\"\n")).unwrap();
    std::fs::set_permissions(&secrets, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let conf = env.dir.join("davfs2.conf");
    std::fs::write(
        &conf,
        format!(
            "secrets {}\ncache_dir {}\ndelay_upload 0\nuse_locks 1\nask_auth 0\n",
            secrets.display(),
            cache.display()
        ),
    )
    .unwrap();
    let out = Command::new("mount")
        .args(["-t", "davfs", &url, mnt.to_str().unwrap(), "-o", &format!("conf={}", conf.display())])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "mount.davfs: {}", describe(&out));
    let res = std::panic::catch_unwind(|| {
        std::fs::create_dir(mnt.join("folder")).unwrap();
        std::fs::write(mnt.join("folder/a.txt"), b"first").unwrap();
        std::fs::write(mnt.join("b.txt"), b"to be deleted").unwrap();
        std::fs::write(mnt.join("folder/a.txt"), b"edited content").unwrap();
        std::fs::rename(mnt.join("folder/a.txt"), mnt.join("folder/renamed.txt")).unwrap();
        std::fs::remove_file(mnt.join("b.txt")).unwrap();
        let big = pattern(3 << 20, 7);
        std::fs::write(mnt.join("big.bin"), &big).unwrap();
        b3(&big)
    });
    let out = Command::new("umount").arg(&mnt).output().unwrap();
    let big_hash = res.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(out.status.success(), "umount: {}", describe(&out));
    assert_eq!(env.get("alice", "/folder/renamed.txt"), b"edited content");
    assert_eq!(b3(&env.get("alice", "/big.bin")), big_hash);
    let root = env.ctl_json(&["files", "ls", "alice", "/"]);
    let names: Vec<&str> = root.as_array().unwrap().iter().map(|n| n["path"].as_str().unwrap()).collect();
    assert_eq!(names, ["/big.bin", "/folder"]);
    let folder = env.ctl_json(&["files", "ls", "alice", "/folder"]);
    assert_eq!(folder.as_array().unwrap().len(), 1);
    env.assert_fsck_clean();
}
