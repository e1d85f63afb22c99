//! Hostile requests: every one refused, nothing outside the user's tree read or written.

use std::time::{Duration, Instant};

use tests::{Env, alice, basic, basic_auth, eventually, http};

#[test]
fn path_escapes_are_refused() {
    let (env, _d, a) = alice();
    for target in [
        "/dav/%2e%2e/%2e%2e/etc/passwd",
        "/dav/%2E%2E/x",
        "/dav/a/..%2F..%2Fescape",
        "/dav/..%5C..%5Cescape",
        "/dav/a%5Cb",
        "/dav/a%00b",
    ] {
        let get = http(env.port, "GET", target, &a, b"");
        assert_eq!(get.status, 400, "GET {target}: {}", get.text());
        assert!(!get.text().contains("root:"), "GET {target} leaked");
        assert_eq!(http(env.port, "PUT", target, &a, b"x").status, 400, "PUT {target}");
    }
    assert!(!env.data_dir.join("files/escape").exists() && !env.data_dir.join("escape").exists());
    assert_eq!(std::fs::read_dir(env.user_dir("alice")).unwrap().count(), 0);
    // Raw `..` in the target (clients normally resolve it; a hostile one sends it).
    assert_eq!(http(env.port, "GET", "/dav/../../etc/passwd", &a, b"").status, 400);
}

#[test]
fn other_users_and_hosts_are_out_of_reach() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    env.add_user("bob", None);
    env.put_ok("bob", "/private.txt", b"bob's");
    let auth = basic("alice");
    let a = [("Authorization", auth.as_str())];
    assert_eq!(http(env.port, "PUT", "/dav/mine.txt", &a, b"alice's").status, 201);
    // Bob's tree through the Nextcloud-style URL: not found for Alice.
    assert_eq!(http(env.port, "GET", "/remote.php/dav/files/bob/private.txt", &a, b"").status, 404);
    assert_eq!(
        http(env.port, "PROPFIND", "/remote.php/dav/files/bob/", &[a[0], ("Depth", "1")], b"").status,
        404
    );
    // Destination into Bob's tree, or to another host: refused, nothing moved.
    for (dest, code) in [
        ("/remote.php/dav/files/bob/stolen.txt".to_owned(), 403),
        (format!("http://127.0.0.1:{}/remote.php/dav/files/bob/stolen.txt", env.port), 403),
        ("http://evil.example/dav/x.txt".to_owned(), 502),
        ("/etc/passwd".to_owned(), 502),
        ("/dav/%2e%2e/x".to_owned(), 400),
    ] {
        for method in ["MOVE", "COPY"] {
            let r = http(env.port, method, "/dav/mine.txt", &[a[0], ("Destination", &dest)], b"");
            assert_eq!(r.status, code, "{method} to {dest}: {}", r.text());
        }
    }
    assert_eq!(env.get("alice", "/mine.txt"), b"alice's");
    assert!(!env.user_dir("bob").join("stolen.txt").exists());
    assert_eq!(env.get("bob", "/private.txt"), b"bob's");
}

#[test]
fn planted_symlink_is_not_followed() {
    let (env, _d, a) = alice();
    let outside = env.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"SECRET").unwrap();
    assert_eq!(http(env.port, "MKCOL", "/dav/d", &a, b"").status, 201);
    assert_eq!(http(env.port, "PUT", "/dav/d/secret.txt", &a, b"mine").status, 201);
    let d = env.user_dir("alice").join("d");
    std::fs::remove_dir_all(&d).unwrap();
    std::os::unix::fs::symlink(&outside, &d).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), env.user_dir("alice").join("link.txt")).unwrap();
    for target in ["/dav/d/secret.txt", "/dav/link.txt"] {
        let r = http(env.port, "GET", target, &a, b"");
        assert!(r.status >= 400, "GET {target}: {}", r.status);
        assert!(!r.text().contains("SECRET"));
    }
    let r = http(env.port, "PUT", "/dav/d/secret.txt", &a, b"overwritten");
    assert!(r.status >= 400, "PUT through a symlink: {}", r.status);
    assert_eq!(std::fs::read(outside.join("secret.txt")).unwrap(), b"SECRET");
}

#[test]
fn hostile_bodies_and_headers() {
    let (env, _d, a) = alice();
    assert_eq!(http(env.port, "PUT", "/dav/f.txt", &a, &vec![b'x'; 100_000]).status, 201);
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]><D:propfind xmlns:D=\"DAV:\"><D:prop><D:x>&lol9;</D:x></D:prop></D:propfind>",
        (1..10)
            .map(|i| format!(
                "<!ENTITY lol{i} \"{}\">",
                format!("&lol{};", if i == 1 { String::new() } else { (i - 1).to_string() }).repeat(10)
            ))
            .collect::<String>()
    );
    let xxe = "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><D:propfind xmlns:D=\"DAV:\"><D:prop><D:x>&x;</D:x></D:prop></D:propfind>";
    for (name, body) in [("billion laughs", laughs.as_bytes()), ("external entity", xxe.as_bytes())] {
        let t = Instant::now();
        let r = http(env.port, "PROPFIND", "/dav/f.txt", &[a[0], ("Depth", "0")], body);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(t.elapsed() < Duration::from_secs(1), "{name} took {:?}", t.elapsed());
        assert!(!r.text().contains("root:"));
        let r = http(env.port, "PROPPATCH", "/dav/f.txt", &a, body);
        assert_eq!(r.status, 400, "{name} PROPPATCH");
    }
    let huge = format!(
        "<D:propfind xmlns:D=\"DAV:\"><D:prop>{}</D:prop></D:propfind>",
        "<D:getetag/>".repeat(200_000)
    );
    assert_eq!(
        http(env.port, "PROPFIND", "/dav/f.txt", &[a[0], ("Depth", "0")], huge.as_bytes()).status,
        413
    );
    // Thousands of ranges: refused, not thousands of parts.
    let ranges = format!("bytes={}", (0..5000).map(|i| format!("{i}-{i}")).collect::<Vec<_>>().join(","));
    let r = http(env.port, "GET", "/dav/f.txt", &[a[0], ("Range", &ranges)], b"");
    assert_eq!(r.status, 416, "{}", r.status);
    // A few ranges are served as multipart.
    let r = http(env.port, "GET", "/dav/f.txt", &[a[0], ("Range", "bytes=0-1,10-11")], b"");
    assert_eq!(r.status, 206);
    assert!(r.header("content-type").unwrap().starts_with("multipart/byteranges"));
    // PROPFIND Depth: infinity is refused with the precondition element.
    let r = http(env.port, "PROPFIND", "/dav/", &[a[0], ("Depth", "infinity")], b"");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("propfind-finite-depth"), "{}", r.text());
}

#[test]
fn unlock_with_someone_elses_token_is_refused() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    env.add_user("bob", None);
    let (aa, ba) = (basic("alice"), basic("bob"));
    let a = [("Authorization", aa.as_str())];
    let b = [("Authorization", ba.as_str())];
    assert_eq!(http(env.port, "PUT", "/dav/shared-name.txt", &a, b"alice").status, 201);
    assert_eq!(http(env.port, "PUT", "/dav/shared-name.txt", &b, b"bob").status, 201);
    let lockinfo = br#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let lock = http(env.port, "LOCK", "/dav/shared-name.txt", &b, lockinfo);
    assert_eq!(lock.status, 200);
    let bobs = lock.header("lock-token").unwrap().to_owned();
    let r = http(env.port, "UNLOCK", "/dav/shared-name.txt", &[a[0], ("Lock-Token", &bobs)], b"");
    assert_eq!(r.status, 409, "{}", r.text());
    // Bob's lock still holds for Bob's file; Alice's file was never locked.
    assert_eq!(http(env.port, "PUT", "/dav/shared-name.txt", &b, b"x").status, 423);
    assert_eq!(http(env.port, "PUT", "/dav/shared-name.txt", &a, b"x").status, 204);
    // Alice cannot use Bob's token to write to Bob's tree either: it is not reachable.
    let if_h = format!("({bobs})");
    assert_eq!(
        http(env.port, "PUT", "/remote.php/dav/files/bob/shared-name.txt", &[a[0], ("If", &if_h)], b"x")
            .status,
        404
    );
}

#[test]
fn failed_sign_ins_are_throttled_and_audited() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    let wrong = format!("Basic {}", "YWxpY2U6d3Jvbmc="); // alice:wrong
    assert_eq!(http(env.port, "PROPFIND", "/dav/", &[("Depth", "0")], b"").status, 401);
    // A guesser working in parallel: every attempt is refused, then the name is locked out.
    let port = env.port;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let wrong = wrong.clone();
            std::thread::spawn(move || {
                (0..3)
                    .map(|_| {
                        http(port, "PROPFIND", "/dav/", &[("Authorization", &wrong), ("Depth", "0")], b"")
                            .status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    let t = Instant::now();
    let last = http(env.port, "PROPFIND", "/dav/", &[("Authorization", &wrong), ("Depth", "0")], b"").status;
    assert_eq!(last, 429);
    assert!(t.elapsed() < Duration::from_millis(500), "429 is immediate");
    let audit = env.ctl_json(&["audit", "--limit", "100"]);
    let failures = audit.as_array().unwrap().iter().filter(|r| r["action"] == "auth.failure").count();
    assert!(failures >= 20, "{failures} failures audited");
    // The right password from the locked-out user name is still refused while throttled...
    let ok = basic("alice");
    let r = http(env.port, "PROPFIND", "/dav/", &[("Authorization", &ok), ("Depth", "0")], b"");
    assert_eq!(r.status, 429);
}

#[test]
fn app_passwords_sign_in_and_revocation_takes_effect_at_once() {
    let env = Env::new();
    let _d = env.start_daemon();
    env.add_user("alice", None);
    let made = env.ctl_json(&["token", "add", "alice", "--label", "phone"]);
    let secret = made["secret"].as_str().unwrap().to_owned();
    let id = made["id"].as_i64().unwrap().to_string();
    let auth = basic_auth("alice", &secret);
    let r = http(env.port, "PROPFIND", "/dav/", &[("Authorization", &auth), ("Depth", "0")], b"");
    assert_eq!(r.status, 207, "{}", r.text());
    let listed = env.ctl_json(&["token", "list", "alice"]);
    assert_eq!(listed[0]["label"], "phone");
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    assert!(!listed.to_string().contains(&secret), "secrets are never listed");
    // Revoked: refused at once, even though the daemon had it cached.
    env.ctl_ok(&["token", "revoke", "alice", &id]);
    eventually("the revocation", || {
        http(env.port, "PROPFIND", "/dav/", &[("Authorization", &auth), ("Depth", "0")], b"").status == 401
    });
}
