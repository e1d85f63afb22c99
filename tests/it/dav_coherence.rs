//! The daemon caches metadata for reads; changes made by another process (`cairnctl`) reach it
//! through PostgreSQL notifications, so WebDAV shows them promptly.

use tests::{alice, eventually, http};

#[test]
fn changes_from_another_process_show_through_webdav() {
    let (env, _d, a) = alice();
    assert_eq!(http(env.port, "PUT", "/dav/f.txt", &a, b"from webdav").status, 201);
    let first = http(env.port, "GET", "/dav/f.txt", &a, b"");
    assert_eq!(first.body, b"from webdav");
    let etag = first.header("etag").unwrap().to_owned();
    // Read it a few times so it is surely cached.
    for _ in 0..3 {
        assert_eq!(http(env.port, "HEAD", "/dav/f.txt", &a, b"").header("etag"), Some(etag.as_str()));
    }

    env.put_ok("alice", "/f.txt", b"from cairnctl");
    eventually("a cairnctl write", || {
        let r = http(env.port, "GET", "/dav/f.txt", &a, b"");
        r.body == b"from cairnctl" && r.header("etag") != Some(etag.as_str())
    });
    env.ctl_ok(&["files", "rm", "alice", "/f.txt"]);
    eventually("a cairnctl delete", || http(env.port, "GET", "/dav/f.txt", &a, b"").status == 404);
    // And in-process changes are visible at once, with no waiting at all.
    assert_eq!(http(env.port, "PUT", "/dav/f.txt", &a, b"again").status, 201);
    assert_eq!(http(env.port, "GET", "/dav/f.txt", &a, b"").body, b"again");
    assert_eq!(http(env.port, "PUT", "/dav/f.txt", &a, b"and again").status, 204);
    assert_eq!(http(env.port, "GET", "/dav/f.txt", &a, b"").body, b"and again");
}

/// Small files recently read are served from memory, by content: every read, whole or in
/// ranges, is the file's current content, whichever process or protocol changed it last.
#[test]
fn small_files_served_from_memory_are_always_current() {
    let (env, _d, a) = alice();
    let first = tests::pattern(3_000, 1);
    let second = tests::pattern(3_000, 2);
    let get = || http(env.port, "GET", "/dav/s.bin", &a, b"").body;
    assert_eq!(http(env.port, "PUT", "/dav/s.bin", &a, &first).status, 201);
    for _ in 0..3 {
        assert!(get() == first);
    }
    // Ranges of held bytes, one and several.
    let r = http(env.port, "GET", "/dav/s.bin", &[a[0], ("Range", "bytes=100-199")], b"");
    assert_eq!(r.status, 206);
    assert!(r.body == first[100..200]);
    let r = http(env.port, "GET", "/dav/s.bin", &[a[0], ("Range", "bytes=0-1,2990-2999")], b"");
    assert_eq!(r.status, 206);
    let ctype = r.header("content-type").unwrap().to_owned();
    let boundary = ctype.split("boundary=").nth(1).expect("a boundary");
    let mut want = Vec::new();
    for (s, e) in [(0usize, 1usize), (2990, 2999)] {
        want.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {s}-{e}/3000\r\n\r\n"
            )
            .as_bytes(),
        );
        want.extend_from_slice(&first[s..=e]);
    }
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(r.body == want, "multipart body:\n{}", String::from_utf8_lossy(&r.body));

    // Changed over WebDAV, then by another process: each read after a change is the change.
    assert_eq!(http(env.port, "PUT", "/dav/s.bin", &a, &second).status, 204);
    assert!(get() == second);
    env.put_ok("alice", "/s.bin", &first);
    eventually("the other process's write served", || get() == first);
    for _ in 0..3 {
        assert!(get() == first);
    }
    // A version restored.
    let versions = env.ctl_json(&["versions", "list", "alice", "/s.bin"]);
    let v = versions
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["blake3"] == tests::b3(&second))
        .expect("a version of the second content");
    env.ctl_ok(&["versions", "restore", "alice", "/s.bin", &v["id"].to_string()]);
    eventually("the restored version served", || get() == second);
}
