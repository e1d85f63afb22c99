//! WebDAV locks live in PostgreSQL: they survive a restart and bind every front end alike.

use tests::{alice, http};

const LOCKINFO: &[u8] = br#"<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>tester</D:owner></D:lockinfo>"#;

#[test]
fn locks_survive_a_restart() {
    let (env, daemon, a) = alice();
    assert_eq!(http(env.port, "PUT", "/dav/doc.txt", &a, b"v1").status, 201);
    let lock = http(env.port, "LOCK", "/dav/doc.txt", &[a[0], ("Timeout", "Second-3600")], LOCKINFO);
    assert_eq!(lock.status, 200, "{}", lock.text());
    let token = lock.header("lock-token").unwrap().trim_matches(['<', '>']).to_owned();

    assert_eq!(daemon.stop().code(), Some(0));
    let _daemon = env.start_daemon();

    // Still locked: a write without the token is refused, with it accepted.
    assert_eq!(http(env.port, "PUT", "/dav/doc.txt", &a, b"v2").status, 423);
    assert_eq!(http(env.port, "DELETE", "/dav/doc.txt", &a, b"").status, 423);
    let if_header = format!("(<{token}>)");
    assert_eq!(http(env.port, "PUT", "/dav/doc.txt", &[a[0], ("If", &if_header)], b"v2").status, 204);
    let pf = http(
        env.port,
        "PROPFIND",
        "/dav/doc.txt",
        &[a[0], ("Depth", "0")],
        br#"<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#,
    );
    assert!(pf.text().contains(&token) && pf.text().contains("tester"), "{}", pf.text());
    // The lock binds every URL alias of the tree.
    assert_eq!(http(env.port, "PUT", "/remote.php/webdav/doc.txt", &a, b"v3").status, 423);
    let unlock_header = format!("<{token}>");
    assert_eq!(
        http(env.port, "UNLOCK", "/dav/doc.txt", &[a[0], ("Lock-Token", &unlock_header)], b"").status,
        204
    );
    assert_eq!(http(env.port, "PUT", "/dav/doc.txt", &a, b"v3").status, 204);
    assert_eq!(env.get("alice", "/doc.txt"), b"v3");
}
