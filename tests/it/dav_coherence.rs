//! The daemon caches metadata for reads; changes made by another process (`cairnctl`) reach it
//! through PostgreSQL notifications, so WebDAV shows them promptly.

use tests::{Env, basic, eventually, http};

#[test]
fn changes_from_another_process_show_through_webdav() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    let auth = basic("alice");
    let a = [("Authorization", auth.as_str())];
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
