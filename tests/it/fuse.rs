//! The FUSE mount, driven through the kernel with ordinary file calls: versions, quota,
//! coherence with WebDAV, xattrs as dead properties, crash recovery, pjdfstest and fsx.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tests::{Env, b3, basic, describe, eventually, http, pattern, record_figure, require_program, sql_i64};

fn mounted(quota: Option<&str>) -> (Env, tests::Daemon, PathBuf) {
    mounted_with(quota, "")
}

/// [`mounted`] with `config` appended to the daemon's configuration.
fn mounted_with(quota: Option<&str>, config: &str) -> (Env, tests::Daemon, PathBuf) {
    let mut env = Env::new();
    let mp = env.enable_fuse();
    let cfg = fs::read_to_string(&env.config).unwrap();
    fs::write(&env.config, format!("{cfg}{config}")).unwrap();
    let d = env.start_daemon();
    env.add_user("alice", quota);
    let home = mp.join("alice");
    eventually("the user's folder in the mount", || home.is_dir());
    (env, d, home)
}

/// Write a file through the mount and fsync it: in the store when this returns (a plain close
/// of a new file returns before its commit, see `write-behind` in `fusefs/README.md`).
fn write_synced(p: &Path, data: &[u8]) {
    let mut h = fs::File::create(p).unwrap();
    h.write_all(data).unwrap();
    h.sync_all().unwrap();
}

fn versions(env: &Env, path: &str) -> Vec<serde_json::Value> {
    env.ctl_json(&["versions", "list", "alice", path]).as_array().unwrap().clone()
}

#[test]
fn writes_version_once_per_open_and_restore_is_byte_identical() {
    let (env, _d, home) = mounted(None);
    let f = home.join("doc.bin");
    let v1 = pattern(300_000, 1);
    write_synced(&f, &v1);
    assert_eq!(env.get("alice", "/doc.bin"), v1, "a mount write is the file on the server");
    assert!(versions(&env, "/doc.bin").is_empty(), "a new file has no version");

    // Many writes in one open (no O_TRUNC: copy-on-write of the old content): one version.
    let h = OpenOptions::new().write(true).open(&f).unwrap();
    for i in 0..50u64 {
        h.write_all_at(b"XXXX", i * 4096).unwrap();
    }
    h.sync_all().unwrap();
    h.write_all_at(b"after fsync", 100).unwrap();
    drop(h);
    let mut v2 = v1.clone();
    for i in 0..50usize {
        v2[i * 4096..i * 4096 + 4].copy_from_slice(b"XXXX");
    }
    v2[100..111].copy_from_slice(b"after fsync");
    assert_eq!(fs::read(&f).unwrap(), v2);
    let vs = versions(&env, "/doc.bin");
    assert_eq!(vs.len(), 1, "one version per open, however many writes and fsyncs: {vs:?}");
    assert_eq!(vs[0]["blake3"].as_str(), Some(b3(&v1).as_str()), "{vs:?}");

    // O_TRUNC rewrite: the previous content becomes a version by rename.
    fs::write(&f, b"third").unwrap();
    let vs = versions(&env, "/doc.bin");
    assert_eq!(vs.len(), 2, "{vs:?}");
    assert_eq!(vs[0]["blake3"].as_str(), Some(b3(&v2).as_str()));

    // Restore the first version with cairnctl: the mount shows it at once, byte-identical.
    let oldest = vs[1]["id"].as_i64().unwrap().to_string();
    env.ctl_ok(&["versions", "restore", "alice", "/doc.bin", &oldest]);
    eventually("the restored content through the mount", || fs::read(&f).ok().as_deref() == Some(&v1[..]));

    // A large sequential write is hashed on the side while it arrives: the stored hash is right.
    let big = pattern(24 << 20, 9);
    write_synced(&home.join("big.bin"), &big);
    let st = env.ctl_json(&["files", "stat", "alice", "/big.bin"]);
    assert_eq!(st["blake3"].as_str(), Some(b3(&big).as_str()), "{st}");
    env.assert_fsck_clean();
}

/// Every open that changes a file keeps the content it replaced, however the previous open of
/// that file ended. Seen once in a fresh-clone run: an open's state outlived it (a kernel
/// `getattr` held it while the last handle closed), and the next open took its "already
/// versioned" for its own, so the edit replaced the old content without a version.
#[test]
fn each_open_versions_the_content_it_replaces_while_others_stat_the_file() {
    let (env, _d, home) = mounted(None);
    let rounds = 25;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (home, stop) = (home.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..rounds {
                    let _ = fs::metadata(home.join(format!("f{i}")));
                }
            }
        })
    };
    for i in 0..rounds {
        let f = home.join(format!("f{i}"));
        write_synced(&f, &pattern(10_000, i as u64));
        let h = OpenOptions::new().write(true).open(&f).unwrap();
        h.write_all_at(b"edit", 0).unwrap();
        drop(h);
        let vs = versions(&env, &format!("/f{i}"));
        assert_eq!(vs.len(), 1, "round {i}: the edited file keeps its first content as a version");
        assert_eq!(vs[0]["blake3"].as_str(), Some(b3(&pattern(10_000, i as u64)).as_str()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap();
}

#[test]
fn quota_is_edquot_and_leaves_nothing_partial() {
    let (env, _d, home) = mounted(Some("1M"));
    let keep = pattern(400_000, 2);
    fs::write(home.join("keep.bin"), &keep).unwrap();
    let st = rustix::fs::statvfs(&home).unwrap();
    assert_eq!(st.f_blocks * st.f_frsize, 1 << 20, "statfs reports the quota as the size");

    // A new file past the quota: EDQUOT, and the file holds nothing of what was written.
    let mut h = fs::File::create(home.join("big.bin")).unwrap();
    let chunk = pattern(100_000, 3);
    let mut err = None;
    for _ in 0..20 {
        if let Err(e) = h.write_all(&chunk) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("a write past the quota fails");
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    drop(h);
    assert_eq!(fs::metadata(home.join("big.bin")).unwrap().len(), 0, "nothing partial committed");

    // Overwriting an existing file past the quota keeps the old content, with no version.
    let h = OpenOptions::new().write(true).open(home.join("keep.bin")).unwrap();
    let res = (|| -> std::io::Result<()> {
        for i in 0..20u64 {
            h.write_all_at(&chunk, 400_000 + i * 100_000)?;
        }
        h.sync_all()
    })();
    assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EDQUOT));
    drop(h);
    assert_eq!(fs::read(home.join("keep.bin")).unwrap(), keep);
    assert!(versions(&env, "/keep.bin").is_empty());
    let usage = env.ctl_json(&["quota", "show", "alice"]);
    assert_eq!(usage["used"].as_u64(), Some(400_000), "{usage}");
    env.assert_fsck_clean();
}

#[test]
fn webdav_and_mount_see_each_other_at_once() {
    let (env, _d, home) = mounted(None);
    let auth = basic("alice");
    let a = [("Authorization", auth.as_str())];
    // Read through the mount first, so the kernel has it cached.
    assert_eq!(http(env.port, "PUT", "/dav/shared.txt", &a, b"one").status, 201);
    eventually("a WebDAV PUT in the mount", || {
        fs::read(home.join("shared.txt")).ok().as_deref() == Some(b"one")
    });
    assert_eq!(fs::read(home.join("shared.txt")).unwrap(), b"one");
    let start = Instant::now();
    assert_eq!(http(env.port, "PUT", "/dav/shared.txt", &a, b"two, longer").status, 204);
    eventually("a WebDAV overwrite in the mount", || {
        fs::read(home.join("shared.txt")).ok().as_deref() == Some(b"two, longer")
    });
    record_figure(&format!("fuse: WebDAV PUT -> visible through the mount in {:?}", start.elapsed()));
    assert_eq!(http(env.port, "DELETE", "/dav/shared.txt", &a, b"").status, 204);
    eventually("a WebDAV delete in the mount", || !home.join("shared.txt").exists());

    // The other way: a new file closed in the mount is in PROPFIND moments later (its commit
    // runs behind the close), and at once after an fsync.
    fs::create_dir(home.join("dir")).unwrap();
    let start = Instant::now();
    fs::write(home.join("dir/from-mount.txt"), b"hello").unwrap();
    let propfind = || {
        let r =
            http(env.port, "PROPFIND", "/dav/dir/", &[("Authorization", auth.as_str()), ("Depth", "1")], b"");
        assert_eq!(r.status, 207);
        r.text()
    };
    eventually("a mount write in PROPFIND", || propfind().contains("/dav/dir/from-mount.txt"));
    record_figure(&format!("fuse: new file closed in the mount -> in PROPFIND in {:?}", start.elapsed()));
    assert_eq!(http(env.port, "GET", "/dav/dir/from-mount.txt", &a, b"").body, b"hello");
    write_synced(&home.join("dir/synced.txt"), b"durable");
    assert!(propfind().contains("/dav/dir/synced.txt"), "an fsynced file is in PROPFIND at once");
    fs::rename(home.join("dir/from-mount.txt"), home.join("moved.txt")).unwrap();
    assert_eq!(http(env.port, "GET", "/dav/moved.txt", &a, b"").body, b"hello");
    let id_before = env.ctl_json(&["files", "stat", "alice", "/moved.txt"])["id"].clone();
    fs::write(home.join("moved.txt"), b"edited").unwrap();
    assert_eq!(env.ctl_json(&["files", "stat", "alice", "/moved.txt"])["id"], id_before, "same file id");

    // A folder the mount knows, moved over WebDAV: its contents follow it in the mount.
    fs::write(home.join("dir/inner.txt"), b"inside").unwrap();
    let dest = format!("http://127.0.0.1:{}/dav/renamed/", env.port);
    let r =
        http(env.port, "MOVE", "/dav/dir/", &[("Authorization", auth.as_str()), ("Destination", &dest)], b"");
    assert_eq!(r.status, 201);
    eventually("a WebDAV folder move in the mount", || {
        fs::read(home.join("renamed/inner.txt")).ok().as_deref() == Some(b"inside")
            && !home.join("dir").exists()
    });
    fs::write(home.join("renamed/new.txt"), b"made after the move").unwrap();
    eventually("a file made in the moved folder", || {
        http(env.port, "GET", "/dav/renamed/new.txt", &a, b"").body == b"made after the move"
    });
}

/// Each name in the mount's folder `dir` with its size, as `ls -l` gets them.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), e.metadata().unwrap().len())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_listing_right_after_another_shows_what_changed_elsewhere() {
    let (env, _d, home) = mounted(None);
    let auth = basic("alice");
    let a = [("Authorization", auth.as_str())];
    let dir = home.join("list");
    fs::create_dir(&dir).unwrap();
    for (name, body) in [("a.txt", &b"1"[..]), ("b.txt", b"22"), ("c.txt", b"333")] {
        fs::write(dir.join(name), body).unwrap();
    }
    let before = vec![("a.txt".into(), 1), ("b.txt".into(), 2), ("c.txt".into(), 3)];
    assert_eq!(listing(&dir), before);
    // The kernel knows every entry now, so the next listing comes without attributes: what
    // WebDAV changes meanwhile must show all the same.
    assert_eq!(http(env.port, "PUT", "/dav/list/a.txt", &a, b"longer now").status, 204);
    let dest = format!("http://127.0.0.1:{}/dav/list/b2.txt", env.port);
    let r = http(env.port, "MOVE", "/dav/list/b.txt", &[a[0], ("Destination", &dest)], b"");
    assert_eq!(r.status, 201);
    assert_eq!(http(env.port, "PUT", "/dav/list/d.txt", &a, b"4444").status, 201);
    let after = vec![("a.txt".into(), 10), ("b2.txt".into(), 2), ("c.txt".into(), 3), ("d.txt".into(), 4)];
    eventually("WebDAV's changes in a listing of the mount", || listing(&dir) == after);
    assert_eq!(listing(&dir), after, "and in the listing after that");
    fs::write(dir.join("c.txt"), b"through the mount").unwrap();
    assert_eq!(listing(&dir)[2], ("c.txt".into(), 17), "a write through the mount, listed at once");
}

#[test]
fn xattrs_are_dead_properties() {
    let (env, _d, home) = mounted(None);
    let f = home.join("tagged.txt");
    fs::write(&f, b"x").unwrap();
    xattr_set(&f, "user.color", b"blue & green");
    let auth = basic("alice");
    let body = br#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><color xmlns="urn:cairn:xattr"/></prop></propfind>"#;
    let r = http(
        env.port,
        "PROPFIND",
        "/dav/tagged.txt",
        &[("Authorization", auth.as_str()), ("Depth", "0")],
        body,
    );
    assert!(r.text().contains("blue &amp; green"), "{}", r.text());
    let patch = br#"<?xml version="1.0"?><propertyupdate xmlns="DAV:"><set><prop><size xmlns="urn:cairn:xattr">10</size></prop></set></propertyupdate>"#;
    assert_eq!(
        http(env.port, "PROPPATCH", "/dav/tagged.txt", &[("Authorization", auth.as_str())], patch).status,
        207
    );
    assert_eq!(xattr_get(&f, "user.size").as_deref(), Some(&b"10"[..]));
    assert_eq!(xattr_get(&f, "user.color").as_deref(), Some(&b"blue & green"[..]));
    xattr_set(&f, "user.bin", &[0, 159, 255]);
    assert_eq!(xattr_get(&f, "user.bin").as_deref(), Some(&[0u8, 159, 255][..]));
    assert_eq!(xattr_get(&f, "user.missing"), None);
}

fn xattr_set(p: &Path, name: &str, value: &[u8]) {
    let r = rustix::fs::setxattr(p, name, value, rustix::fs::XattrFlags::empty());
    r.unwrap_or_else(|e| panic!("setxattr {name}: {e}"));
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::getxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("getxattr {name}: {e}"),
    }
}

/// A file created through the mount reaches the store in one commit, with its content, when
/// it is first closed; whatever needs it in the store before that (a listing of its folder,
/// chmod, rename, unlink) puts it there first, and someone else creating the same name in
/// between loses nothing.
#[test]
fn a_new_file_reaches_the_store_whole_after_close() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _d, home) = mounted(None);
    let auth = basic("alice");
    let a = [("Authorization", auth.as_str())];
    let journal = |path: &str| -> Vec<String> {
        let r = http(env.port, "GET", "/api/v1/changes?cursor=0&limit=1000", &a, b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let page: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        page["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["path"].as_str() == Some(path))
            .map(|c| c["kind"].as_str().unwrap().to_owned())
            .collect()
    };

    // Written and closed: one "create" with the content, no empty file before it.
    let mut h = fs::File::create(home.join("one.txt")).unwrap();
    h.write_all(b"first content").unwrap();
    assert_eq!(fs::metadata(home.join("one.txt")).unwrap().len(), 13, "stat of the open new file");
    drop(h);
    assert_eq!(fs::metadata(home.join("one.txt")).unwrap().len(), 13, "stat of the closed new file");
    eventually("the closed file in the store", || {
        http(env.port, "GET", "/dav/one.txt", &a, b"").body == b"first content"
    });
    assert_eq!(journal("/one.txt"), ["create"]);
    assert!(versions(&env, "/one.txt").is_empty());

    // Listing its folder while it is open shows it (empty in the store until the close).
    let mut h = fs::File::create(home.join("listed.txt")).unwrap();
    h.write_all(b"listed").unwrap();
    let names: Vec<String> =
        fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.contains(&"listed.txt".to_owned()), "{names:?}");
    assert_eq!(http(env.port, "GET", "/dav/listed.txt", &a, b"").status, 200);
    drop(h);
    assert_eq!(http(env.port, "GET", "/dav/listed.txt", &a, b"").body, b"listed");
    assert!(versions(&env, "/listed.txt").is_empty(), "the empty stand-in needs no version");

    // chmod and rename while open; the content lands under the new name with the mode.
    let mut h = fs::File::create(home.join("moving.txt")).unwrap();
    h.write_all(b"moved while open").unwrap();
    fs::set_permissions(home.join("moving.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::rename(home.join("moving.txt"), home.join("moved.txt")).unwrap();
    drop(h);
    assert_eq!(http(env.port, "GET", "/dav/moved.txt", &a, b"").body, b"moved while open");
    assert_eq!(http(env.port, "GET", "/dav/moving.txt", &a, b"").status, 404);
    assert_eq!(fs::metadata(home.join("moved.txt")).unwrap().permissions().mode() & 0o7777, 0o600);

    // Unlinked while open: the close brings nothing back.
    let mut h = fs::File::create(home.join("gone.txt")).unwrap();
    h.write_all(b"never kept").unwrap();
    fs::remove_file(home.join("gone.txt")).unwrap();
    drop(h);
    assert!(!home.join("gone.txt").exists());
    assert_eq!(http(env.port, "GET", "/dav/gone.txt", &a, b"").status, 404);

    // WebDAV creates the same name while the mount's new file is open: the close writes over
    // it and its content is kept as a version.
    let mut h = fs::File::create(home.join("race.txt")).unwrap();
    h.write_all(b"from the mount").unwrap();
    assert_eq!(http(env.port, "PUT", "/dav/race.txt", &a, b"from webdav").status, 201);
    drop(h);
    eventually("the mount's content over WebDAV's", || {
        http(env.port, "GET", "/dav/race.txt", &a, b"").body == b"from the mount"
    });
    let vs = versions(&env, "/race.txt");
    assert_eq!(vs.len(), 1, "{vs:?}");
    assert_eq!(vs[0]["blake3"].as_str(), Some(b3(b"from webdav").as_str()), "{vs:?}");
    eventually("the mount shows the file's content", || {
        fs::read(home.join("race.txt")).ok().as_deref() == Some(&b"from the mount"[..])
    });

    // Its folder moved over WebDAV while it is open: the close puts it in the folder's new place.
    fs::create_dir(home.join("box")).unwrap();
    let mut h = fs::File::create(home.join("box/inside.txt")).unwrap();
    h.write_all(b"follows its folder").unwrap();
    let dest = format!("http://127.0.0.1:{}/dav/moved-box/", env.port);
    let r =
        http(env.port, "MOVE", "/dav/box/", &[("Authorization", auth.as_str()), ("Destination", &dest)], b"");
    assert_eq!(r.status, 201);
    drop(h);
    eventually("the file in its folder's new place", || {
        http(env.port, "GET", "/dav/moved-box/inside.txt", &a, b"").body == b"follows its folder"
    });
    // Its folder deleted over WebDAV: the close succeeds and brings nothing back.
    fs::create_dir(home.join("doomed")).unwrap();
    let mut h = fs::File::create(home.join("doomed/lost.txt")).unwrap();
    h.write_all(b"gone with its folder").unwrap();
    assert_eq!(http(env.port, "DELETE", "/dav/doomed/", &a, b"").status, 204);
    drop(h);
    // (Its commit runs behind the close: give it time to bring something back if it would.)
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(http(env.port, "GET", "/dav/doomed/lost.txt", &a, b"").status, 404);
    env.assert_fsck_clean();
}

#[test]
fn an_open_handle_keeps_reading_what_it_opened() {
    let (_env, _d, home) = mounted(None);
    fs::write(home.join("a"), b"old content of a").unwrap();
    fs::write(home.join("b"), b"new").unwrap();
    let mut h = fs::File::open(home.join("a")).unwrap();
    fs::rename(home.join("b"), home.join("a")).unwrap();
    let mut s = String::new();
    h.read_to_string(&mut s).unwrap();
    assert_eq!(s, "old content of a");
    assert_eq!(fs::read(home.join("a")).unwrap(), b"new");
    // Timestamps: an explicit mtime is kept; UTIME_OMIT leaves it.
    let t = rustix::fs::Timespec { tv_sec: 1_000_000_000, tv_nsec: 123_456_789 };
    let omit = rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT as _ };
    let times = rustix::fs::Timestamps { last_access: omit, last_modification: t };
    rustix::fs::utimensat(rustix::fs::CWD, home.join("a"), &times, rustix::fs::AtFlags::empty()).unwrap();
    let m = fs::metadata(home.join("a")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_000_000_000, 123_456_789));
    let times = rustix::fs::Timestamps { last_access: omit, last_modification: omit };
    rustix::fs::utimensat(rustix::fs::CWD, home.join("a"), &times, rustix::fs::AtFlags::empty()).unwrap();
    assert_eq!(fs::metadata(home.join("a")).unwrap().mtime(), 1_000_000_000);
    // chmod is kept; chown to someone else is outside the mount's policy.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(home.join("a"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(fs::metadata(home.join("a")).unwrap().permissions().mode() & 0o7777, 0o600);
    let e = std::os::unix::fs::chown(home.join("a"), Some(4242), None).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
}

/// A handle opened for writing only bypasses the kernel's page cache (see `write_only_fopen`):
/// a reader holding cached pages of the file reads its bytes, not the pages it cached.
#[test]
fn a_write_only_handle_is_seen_by_readers_holding_cached_pages() {
    let (env, _d, home) = mounted(None);
    let f = home.join("shared.bin");
    let (a, b) = (pattern(300_000, 1), pattern(100_000, 2));
    write_synced(&f, &a);
    // Read and write: cached (a read-only open may be passthrough, which caches nothing).
    let mut reader = OpenOptions::new().read(true).write(true).open(&f).unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert!(got == a);
    let writer = OpenOptions::new().write(true).open(&f).unwrap();
    writer.write_all_at(&b, 50_000).unwrap();
    let mut window = vec![0u8; 200_000];
    reader.read_exact_at(&mut window, 0).unwrap();
    assert!(window[..50_000] == a[..50_000], "before the write");
    assert!(window[50_000..150_000] == b[..], "the reader sees the write-only handle's bytes");
    assert!(window[150_000..] == a[150_000..200_000], "after the write");
    drop(writer);
    drop(reader);
    let mut want = a.clone();
    want[50_000..150_000].copy_from_slice(&b);
    assert!(fs::read(&f).unwrap() == want);
    eventually("the write in the store", || env.get("alice", "/shared.bin") == want);
}

/// A small file closed through the mount is logged as a small WebDAV write is: its commit is
/// durable in the database's log before the disk has it, and a restart after a crash that lost
/// it from the disk puts it back. A large one is fsynced before its commit, as before.
#[test]
fn small_files_closed_in_the_mount_come_back_from_the_write_log() {
    let (env, d, home) = mounted_with(None, "[storage]\nwrite_log_ms = 60000\n");
    let small = pattern(10_000, 7);
    let large = pattern(200_000, 8);
    // The large one first: any commit not logged syncs and forgets the log before it. Each
    // is closed (its commit runs behind the close), then opened again, which waits for it.
    for (name, body) in [("large.bin", &large), ("small.bin", &small)] {
        fs::write(home.join(name), body).unwrap();
        fs::File::open(home.join(name)).unwrap();
    }
    let logged = "SELECT count(*) FROM intents WHERE logged_data IS NOT NULL";
    assert_eq!(sql_i64(&env.db, logged), 1, "the small file waits in the log for the sync");
    d.kill_leaving_mount();

    // As a power cut may leave the disk: the small file's rename into place lost.
    fs::remove_file(env.user_dir("alice").join("small.bin")).unwrap();
    let _d = env.start_daemon();
    assert_eq!(sql_i64(&env.db, "SELECT count(*) FROM intents"), 0);
    assert_eq!(env.get("alice", "/small.bin"), small);
    assert_eq!(env.get("alice", "/large.bin"), large);
    eventually("the mount after a restart", || home.join("small.bin").is_file());
    assert_eq!(fs::read(home.join("small.bin")).unwrap(), small);
    env.assert_fsck_clean();
}

#[test]
fn killed_mid_write_the_mount_comes_back_and_fsck_is_clean() {
    let (env, d, home) = mounted(None);
    let old = pattern(1 << 20, 5);
    fs::write(home.join("f.bin"), &old).unwrap();

    // The writer is a process of its own: every close of a descriptor of the file commits what
    // was written so far (POSIX close), and a descriptor held by a thread of this test process
    // would be inherited, and closed at exec, by whatever another test spawns meanwhile.
    let mut writer = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=100000", "conv=notrunc", "status=none"])
        .arg(format!("of={}", home.join("f.bin").display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(writer.try_wait().unwrap().is_none(), "the writer was writing when the server died");
    d.kill_leaving_mount();
    assert!(!writer.wait().unwrap().success(), "the writer's writes failed with the server gone");

    // The dead mount is recovered by the next start.
    let _d = env.start_daemon();
    eventually("the mount after a restart", || home.join("f.bin").is_file());
    assert_eq!(
        fs::read(home.join("f.bin")).unwrap(),
        old,
        "the uncommitted writes are gone, the old file stays"
    );
    write_synced(&home.join("after.txt"), b"works");
    assert_eq!(env.get("alice", "/after.txt"), b"works");
    env.assert_fsck_clean();
}

/// Files created and closed in a row are committed behind the closes (write-behind): each
/// lands whole, once, visible to a listing right after; a graceful stop right after the last
/// close loses none of them; and bytes on their way count against the quota, so a burst of
/// new files cannot overrun it.
#[test]
fn files_closed_in_a_row_land_whole_and_survive_a_stop() {
    let (env, d, home) = mounted(None);
    env.add_user("bob", Some("1M"));
    fs::create_dir(home.join("many")).unwrap();
    let content = |i: usize| format!("file {i} ").repeat(i % 50 + 1).into_bytes();
    let start = Instant::now();
    for i in 0..300 {
        fs::write(home.join(format!("many/f{i:03}")), content(i)).unwrap();
    }
    record_figure(&format!("fuse: 300 small files created and closed in {:?}", start.elapsed()));
    let listed = fs::read_dir(home.join("many")).unwrap().count();
    assert_eq!(listed, 300, "a listing right after the closes shows every file");
    let r = http(
        env.port,
        "PROPFIND",
        "/dav/many/",
        &[("Authorization", basic("alice").as_str()), ("Depth", "1")],
        b"",
    );
    assert_eq!(r.text().matches("<D:response>").count(), 301, "the listing waited for every commit");
    for i in 0..300 {
        fs::write(home.join(format!("many/g{i:03}")), content(i)).unwrap();
    }
    assert!(d.stop().success(), "cairnd stops cleanly");

    let _d = env.start_daemon();
    eventually("the mount after a restart", || home.join("many").is_dir());
    for i in 0..300 {
        for f in ["f", "g"] {
            let path = format!("/many/{f}{i:03}");
            assert_eq!(env.get("alice", &path), content(i), "{path}");
        }
    }
    let r = http(
        env.port,
        "GET",
        "/api/v1/changes?cursor=0&limit=1000",
        &[("Authorization", basic("alice").as_str())],
        b"",
    );
    let page: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let changes: Vec<(&str, &str)> = page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["path"].as_str().is_some_and(|p| p.starts_with("/many/")))
        .map(|c| (c["kind"].as_str().unwrap(), c["path"].as_str().unwrap()))
        .collect();
    let others: Vec<_> = changes.iter().filter(|(k, _)| *k != "create").collect();
    assert!(others.is_empty(), "only creates: {others:?}");
    assert_eq!(changes.len(), 600, "one change per file");

    // Unlinks in a row go to the trash behind the replies: the names are gone at once, a name
    // made again right after its unlink is the new file, and a listing shows exactly the rest.
    for i in 0..300 {
        fs::remove_file(home.join(format!("many/f{i:03}"))).unwrap();
        assert!(!home.join(format!("many/f{i:03}")).exists());
    }
    fs::write(home.join("many/f007"), b"made again").unwrap();
    let names = fs::read_dir(home.join("many")).unwrap().count();
    assert_eq!(names, 301, "300 g files and f007 made again");
    assert_eq!(fs::read(home.join("many/f007")).unwrap(), b"made again");
    let trash = env.ctl_json(&["trash", "list", "alice"]);
    assert_eq!(trash.as_array().unwrap().len(), 300, "every unlinked file is in the trash");
    write_synced(&home.join("many/f007"), b"made again, synced");
    assert_eq!(env.get("alice", "/many/f007"), b"made again, synced");

    // 1 MiB of quota, 40 new files of 50,000 bytes in a row: the files that fit land whole,
    // the first that does not fails with EDQUOT and is left empty, and usage stays in bounds.
    let bob = home.with_file_name("bob");
    eventually("bob's folder in the mount", || bob.is_dir());
    let chunk = pattern(50_000, 7);
    let mut written = 0;
    let err = (0..40)
        .find_map(|i| {
            let res = fs::File::create(bob.join(format!("q{i:02}"))).and_then(|mut h| h.write_all(&chunk));
            if res.is_ok() {
                written += 1;
            }
            res.err()
        })
        .expect("a write past the quota fails");
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    assert!((15..=20).contains(&written), "{written} files of 50,000 bytes in 1 MiB");
    assert_eq!(fs::read_dir(&bob).unwrap().count(), written + 1, "the refused file is there, empty");
    for i in 0..written {
        assert_eq!(fs::read(bob.join(format!("q{i:02}"))).unwrap(), chunk);
    }
    assert_eq!(fs::metadata(bob.join(format!("q{written:02}"))).unwrap().len(), 0);
    let usage = env.ctl_json(&["quota", "show", "bob"]);
    assert_eq!(usage["used"].as_u64(), Some(written as u64 * 50_000), "{usage}");
    env.assert_fsck_clean();
}

/// pjdfstest (the Rust rewrite) against the mount; expected failures are listed with their
/// reasons in fusefs/README.md and read from fusefs/pjdfstest-expected.txt.
#[test]
fn pjdfstest_conformance() {
    require_program("pjdfstest", "pjdfstest (cargo install --locked pjdfstest; scripts/test.sh does it)");
    for (user, group) in [("nobody", "nogroup"), ("tests", "tests")] {
        let ok = Command::new("id").arg(user).output().unwrap().status.success()
            && Command::new("getent").args(["group", group]).output().unwrap().status.success();
        assert!(ok, "pjdfstest needs the user {user} and group {group} (scripts/test.sh creates them)");
    }
    let (env, _d, home) = mounted(None);
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fusefs/pjdfstest-expected.txt"),
    )
    .unwrap();
    let names: Vec<String> = expected
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l:?}"))
        .collect();
    let config = env.dir.join("pjdfstest.toml");
    fs::write(
        &config,
        format!(
            "[features]\nposix_fallocate = {{}}\nutimensat = {{}}\nutime_now = {{}}\n\n[settings]\nnaptime = 0.05\n\
             allow_remount = false\nexpected_failures = [{}]\n\n[dummy_auth]\n\
             entries = [[\"nobody\", \"nogroup\"], [\"tests\", \"tests\"]]\n",
            names.join(", ")
        ),
    )
    .unwrap();
    let dir = home.join("pjd");
    fs::create_dir(&dir).unwrap();
    // The test users must reach the folder.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("pjdfstest").arg("-c").arg(&config).arg("-p").arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text.lines().find(|l| l.starts_with("Summary:")).unwrap_or("no summary").to_owned();
    record_figure(&format!("fuse: pjdfstest {summary}"));
    let unexpected: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(
        out.status.success() && unexpected.is_empty(),
        "unexpected failures {unexpected:?}\n{summary}\n{}",
        describe(&out)
    );
}

/// fsx (the Rust port): random reads, writes, mmap, truncate, fallocate, copy_file_range and
/// close/reopen on one file, checked against a model of its content.
#[test]
fn fsx_three_seeds() {
    require_program("fsx", "fsx (cargo install --locked fsx; scripts/test.sh does it)");
    let (env, _d, home) = mounted(None);
    let config = env.dir.join("fsx.toml");
    fs::write(
        &config,
        "flen = 262144\n[weights]\nclose_open = 1\nread = 10\nwrite = 10\nmapread = 10\nmapwrite = 10\n\
         invalidate = 1\ntruncate = 2\nfsync = 1\nfdatasync = 1\nposix_fallocate = 1\nsendfile = 1\n\
         copy_file_range = 1\n",
    )
    .unwrap();
    for seed in ["11", "22", "33"] {
        let start = Instant::now();
        let out = Command::new("fsx")
            .args([
                "-f",
                config.to_str().unwrap(),
                "-N",
                "10000",
                "-S",
                seed,
                "-P",
                env.dir.to_str().unwrap(),
            ])
            .arg(home.join(format!("fsx{seed}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "fsx seed {seed}: {}", describe(&out));
        record_figure(&format!("fuse: fsx seed {seed}, 10000 ops: {:?}", start.elapsed()));
    }
}

/// `/metrics` counts what the mount does, by kind, and the commits it causes.
#[test]
fn metrics_count_mount_operations_and_commits() {
    let (env, _d, home) = mounted(None);
    let scrape = || tests::http(env.port, "GET", "/metrics", &[], b"").text();
    let value = |text: &str, series: &str| -> f64 {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
    };
    let before = scrape();
    for i in 0..20 {
        write_synced(&home.join(format!("m{i}.txt")), b"counted\n");
    }
    for i in 0..5 {
        fs::remove_file(home.join(format!("m{i}.txt"))).unwrap();
    }
    // Unlinks land behind the calls (write-behind): wait until the server no longer has them.
    let auth = tests::basic("alice");
    let t = std::time::Instant::now();
    for i in 0..5 {
        let path = format!("/dav/m{i}.txt");
        while tests::http(env.port, "GET", &path, &[("Authorization", &auth)], b"").status != 404 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "{path} still on the server after 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let after = scrape();
    let grew = |series: &str| value(&after, series) - value(&before, series);
    assert!(grew("cairn_fuse_operations_total{op=\"create\"}") >= 20.0, "{after}");
    assert!(grew("cairn_fuse_operations_total{op=\"unlink\"}") >= 5.0, "{after}");
    assert!(grew("cairn_fuse_operations_total{op=\"write\"}") >= 20.0, "{after}");
    // Creates and unlinks commit, some of them together (group commit, one commit per unlink batch).
    assert!(grew("cairn_db_commits_total") >= 5.0, "{after}");
    assert!(grew("cairn_db_commit_seconds_total") > 0.0, "{after}");
}

/// Shares in the mount, as a table: each recipient's folder shows what is shared with them
/// (the owner's bytes, stored once), with the role's answer for every operation — an editor
/// reads, writes, renames and deletes; a viewer reads and gets `EACCES` for every change; a
/// stranger finds nothing (`ENOENT`, as for a name that never existed) — then an editor
/// filling the share meets the owner's quota (`EDQUOT`, nothing partial), and a revoked share
/// is refused at the next open.
#[test]
fn shares_appear_in_each_recipients_folder_with_their_role() {
    let (env, _d, home) = mounted(Some("2M"));
    let mp = home.parent().unwrap().to_owned();
    for u in ["bob", "carol", "zed"] {
        env.add_user(u, None);
        eventually("the user's folder in the mount", || mp.join(u).is_dir());
    }
    fs::create_dir(home.join("Family")).unwrap();
    let roles = ["owner", "editor", "viewer", "stranger"];
    for r in roles {
        write_synced(&home.join(format!("Family/{r}.txt")), b"hello");
        write_synced(&home.join(format!("Family/{r}-del.txt")), b"x");
        fs::create_dir(home.join(format!("Family/{r}-dir"))).unwrap();
    }
    tests::share_with(env.port, "alice", "/Family", "bob", "editor");
    let carol_share = tests::share_with(env.port, "alice", "/Family", "carol", "viewer");
    let dir_of = |role: &str| match role {
        "owner" => home.join("Family"),
        "editor" => mp.join("bob/Family"),
        "viewer" => mp.join("carol/Family"),
        _ => mp.join("zed/Family"),
    };
    eventually("bob's view of the share", || dir_of("editor").join("owner.txt").is_file());
    let code = |r: std::io::Result<()>| r.err().and_then(|e| e.raw_os_error()).unwrap_or(0);
    type OpFn = fn(&Path, &str) -> std::io::Result<()>;
    let ops: [(&str, OpFn); 8] = [
        ("list", |d, r| {
            let names: Vec<String> =
                fs::read_dir(d)?.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            assert!(names.contains(&format!("{r}.txt")), "{names:?}");
            Ok(())
        }),
        ("read", |d, r| {
            assert_eq!(fs::read(d.join(format!("{r}.txt")))?, b"hello");
            Ok(())
        }),
        ("write a new file", |d, r| {
            let mut h = fs::File::create(d.join(format!("{r}-new.txt")))?;
            h.write_all(b"new")?;
            h.sync_all()
        }),
        ("overwrite", |d, r| {
            let mut h = OpenOptions::new().write(true).truncate(true).open(d.join(format!("{r}.txt")))?;
            h.write_all(b"hello again")?;
            h.sync_all()
        }),
        ("make a folder", |d, r| fs::create_dir(d.join(format!("{r}-made")))),
        ("rename inside", |d, r| fs::rename(d.join(format!("{r}-dir")), d.join(format!("{r}-moved")))),
        ("delete a file", |d, r| fs::remove_file(d.join(format!("{r}-del.txt")))),
        ("set an xattr", |d, r| {
            let p =
                std::ffi::CString::new(d.join(format!("{r}-del.txt")).into_os_string().into_encoded_bytes())
                    .unwrap();
            let rc = unsafe { libc::setxattr(p.as_ptr(), c"user.tag".as_ptr(), b"x".as_ptr().cast(), 1, 0) };
            if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        }),
    ];
    let expect = |role: &str, op: &str| -> i32 {
        match (role, op) {
            ("stranger", _) => libc::ENOENT,
            ("viewer", "list" | "read") => 0,
            ("viewer", _) => libc::EACCES,
            // Deleted by the step before.
            (_, "set an xattr") => libc::ENOENT,
            _ => 0,
        }
    };
    let mut wrong = Vec::new();
    let mut cases = 0;
    for role in roles {
        for (op, f) in &ops {
            let got = code(f(&dir_of(role), role));
            cases += 1;
            if got != expect(role, op) {
                wrong.push(format!("{role} / {op}: errno {got}, expected {}", expect(role, op)));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cases} cases:\n{}", wrong.len(), wrong.join("\n"));
    // What bob wrote is alice's, in her tree, byte for byte.
    assert_eq!(fs::read(home.join("Family/editor-new.txt")).unwrap(), b"new");
    assert_eq!(fs::read(home.join("Family/editor.txt")).unwrap(), b"hello again");
    assert!(home.join("Family/editor-moved").is_dir());
    assert_eq!(fs::read(home.join("Family/viewer.txt")).unwrap(), b"hello", "the viewer changed nothing");

    // bob fills the share: alice's quota (2M) says no, and nothing partial is left.
    let used = env.ctl_json(&["quota", "show", "alice"])["used"].as_u64().unwrap();
    let mut h = fs::File::create(dir_of("editor").join("big.bin")).unwrap();
    let chunk = pattern(250_000, 5);
    let err = (0..12).find_map(|_| h.write_all(&chunk).err()).expect("the quota stops the writes");
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    drop(h);
    eventually("the empty file", || fs::metadata(home.join("Family/big.bin")).is_ok_and(|m| m.len() == 0));
    assert_eq!(env.ctl_json(&["quota", "show", "alice"])["used"].as_u64().unwrap(), used);

    // carol's share is revoked: her next open is refused, and her folder no longer lists it.
    let r = http(
        env.port,
        "DELETE",
        &format!("/api/v1/shares/{carol_share}"),
        &[("Authorization", &basic("alice"))],
        b"",
    );
    assert_eq!(r.status, 204);
    eventually("carol's open refused", || fs::read(dir_of("viewer").join("viewer.txt")).is_err());
    let names: Vec<String> = fs::read_dir(mp.join("carol"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.contains(&"Family".to_owned()), "{names:?}");
    record_figure(&format!(
        "FUSE mount: shares as their recipients see them, {cases} role × operation cases answered as expected"
    ));
    env.assert_fsck_clean();
}
