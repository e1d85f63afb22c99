//! Quota: the whole footprint (files + versions + trash) counts; oldest versions and trash are
//! pruned first; only then is a write refused, and a refused write leaves nothing behind.

use serde_json::Value;
use tests::{Env, describe, pattern};

const K: usize = 1024;

fn usage(env: &Env) -> Value {
    env.ctl_json(&["quota", "show", "alice"])
}

#[test]
fn pruning_order_then_refusal() {
    let env = Env::new();
    env.add_user("alice", Some("100KiB"));

    // Oldest first: a trash item (20K), then a version (30K).
    env.put_ok("alice", "/old", &pattern(20 * K, 1));
    env.ctl_ok(&["files", "rm", "alice", "/old"]);
    env.put_ok("alice", "/a", &pattern(30 * K, 2));
    env.put_ok("alice", "/a", &pattern(30 * K, 3));
    let u = usage(&env);
    assert_eq!(
        (u["files"].as_u64(), u["versions"].as_u64(), u["trash"].as_u64()),
        (Some(30 * 1024), Some(30 * 1024), Some(20 * 1024))
    );
    // 80K used, but the version and the trash make room: 70K fit.
    assert_eq!(u["available"], 70 * 1024);

    // 80K used; 40K more needs 20K freed: the trash item goes (it is older), the version stays.
    env.put_ok("alice", "/c", &pattern(40 * K, 4));
    assert_eq!(env.ctl_json(&["trash", "list", "alice"]).as_array().unwrap().len(), 0);
    assert_eq!(env.ctl_json(&["versions", "list", "alice", "/a"]).as_array().unwrap().len(), 1);
    assert_eq!(usage(&env)["used"], 100 * 1024);

    // 30K more: now the version goes.
    env.put_ok("alice", "/d", &pattern(30 * K, 5));
    assert_eq!(env.ctl_json(&["versions", "list", "alice", "/a"]).as_array().unwrap().len(), 0);

    // Nothing left to prune: refused, mid-stream (length unknown on stdin)...
    let out = env.put("alice", "/e", &pattern(10 * K, 6));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("quota exceeded: more than the 0 B free"),
        "{}",
        describe(&out)
    );
    // ...and before a byte is read when the length is known.
    let src = env.dir.join("e.bin");
    std::fs::write(&src, pattern(10 * K, 6)).unwrap();
    let out = env.ctl(&["files", "put", "alice", "/e", "--from", src.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("quota exceeded: 10 KiB needed, 0 B free"),
        "{}",
        describe(&out)
    );

    // Nothing of the refused writes is left: no entry, no staging file, usage unchanged.
    let out = env.ctl(&["files", "stat", "alice", "/e"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!env.user_dir("alice").join("e").exists());
    assert_eq!(std::fs::read_dir(env.data_dir.join(".cairn/staging")).unwrap().count(), 0);
    assert_eq!(usage(&env)["used"], 100 * 1024);
    env.assert_fsck_clean();
}

#[test]
fn overwrite_at_full_quota_drops_the_old_version_rather_than_failing() {
    let env = Env::new();
    env.add_user("alice", Some("100KiB"));
    env.put_ok("alice", "/big", &pattern(60 * K, 1));
    let new = pattern(60 * K, 2);
    env.put_ok("alice", "/big", &new);
    assert_eq!(env.get("alice", "/big"), new);
    assert_eq!(env.ctl_json(&["versions", "list", "alice", "/big"]).as_array().unwrap().len(), 0);
    assert_eq!(usage(&env)["used"], 60 * 1024);
    env.assert_fsck_clean();
}

#[test]
fn quota_set_and_show() {
    let env = Env::new();
    env.add_user("alice", None);
    assert_eq!(usage(&env)["quota"], Value::Null);
    env.ctl_ok(&["quota", "set", "alice", "2GiB"]);
    assert_eq!(usage(&env)["quota"], 2u64 << 30);
    let out = env.ctl(&["quota", "set", "alice", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    env.ctl_ok(&["quota", "set", "alice", "none"]);
    assert_eq!(usage(&env)["quota"], Value::Null);
}

/// The free space is one number, the same in cairnctl, the REST API and WebDAV's
/// quota-available-bytes: what a new file can take, counting versions and trash as room.
#[test]
fn available_space_is_the_same_through_every_front_end() {
    let env = Env::new();
    env.add_user("alice", Some("100KiB"));
    env.put_ok("alice", "/a", &pattern(30 * K, 1));
    env.put_ok("alice", "/a", &pattern(30 * K, 2));
    env.put_ok("alice", "/old", &pattern(20 * K, 3));
    env.ctl_ok(&["files", "rm", "alice", "/old"]);
    let _d = env.start_daemon();
    assert_eq!(usage(&env)["available"], 70 * 1024);
    let text = env.ctl_ok(&["quota", "show", "alice"]);
    assert!(text.contains("; 70 KiB free"), "{text}");
    let rest =
        tests::http(env.port, "GET", "/api/v1/quota", &[("Authorization", &tests::basic("alice"))], b"");
    let rest: Value = serde_json::from_slice(&rest.body).unwrap();
    assert_eq!(rest["available"], 70 * 1024);
    let body =
        br#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><quota-available-bytes/></prop></propfind>"#;
    let res = tests::http(
        env.port,
        "PROPFIND",
        "/dav/",
        &[("Authorization", &tests::basic("alice")), ("Depth", "0")],
        body,
    );
    let xml = res.text();
    assert!(xml.contains(&format!("quota-available-bytes>{}<", 70 * 1024)), "{xml}");
}
