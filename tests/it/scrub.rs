//! The integrity scrub against a running daemon: bytes changed behind its back with the file's
//! size and time kept (rot) are found in one pass, repaired from an identical copy or
//! quarantined, audited, counted in `/metrics`, and never served; a file edited on disk is
//! adopted, not flagged; a killed scrub resumes where it stopped; the pace holds the cap.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Env, basic, describe, http, rot};

fn with_scrub(env: &Env, rate: &str) {
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str(&format!("[scrub]\nrate = \"{rate}\"\n"));
    std::fs::write(&env.config, cfg).unwrap();
}

fn status(env: &Env) -> Value {
    env.ctl_json(&["scrub", "status"])
}

/// Ask for a pass and wait for it to complete; returns the status after it.
fn full_pass(env: &Env, limit: Duration) -> Value {
    let before = status(env)["last_completed"].clone();
    let out = env.ctl(&["scrub", "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    let t = Instant::now();
    loop {
        let st = status(env);
        if st["last_completed"] != before && !st["last_completed"].is_null() && st["running"] == false {
            return st;
        }
        assert!(t.elapsed() < limit, "no complete pass after {limit:?}: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let r = http(port, "GET", "/metrics", &[], b"");
    r.text().lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn rot_is_found_in_one_pass_repaired_or_quarantined_and_never_served_and_edits_are_adopted() {
    let env = Env::new();
    with_scrub(&env, "256MiB");
    env.add_user("alice", None);
    env.add_user("bob", None);
    let d = env.start_daemon();
    let auth = [("Authorization", basic("alice"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let photo = tests::pattern(3 << 20, 1);
    let shared = tests::pattern(200_000, 2);
    let old = tests::pattern(50_000, 3);
    env.put_ok("alice", "/photo.jpg", &photo);
    env.put_ok("alice", "/copy-a.bin", &shared);
    env.put_ok("bob", "/copy-b.bin", &shared);
    env.put_ok("alice", "/notes.txt", b"first draft\n");
    // A version whose blob rots, with no other copy of it anywhere.
    env.put_ok("alice", "/report.doc", &old);
    env.put_ok("alice", "/report.doc", b"second edition\n");
    // The file is read once before, so the store's and the kernel's caches hold good bytes.
    assert_eq!(http(env.port, "GET", "/dav/photo.jpg", &auth, b"").body, photo);

    let dir = env.user_dir("alice");
    rot(&dir.join("photo.jpg"), 2_000_000);
    rot(&dir.join("copy-a.bin"), 7);
    let versions = env.data_dir.join(".cairn/versions/alice");
    let blob = std::fs::read_dir(&versions).unwrap().next().unwrap().unwrap().path();
    rot(&blob, 100);
    // Edited on disk, as someone with a shell would: size and time change.
    std::fs::write(dir.join("notes.txt"), b"first draft, edited over ssh\n").unwrap();

    let st = full_pass(&env, Duration::from_secs(60));
    // Four live files and one version of alice, one of bob: all read.
    assert_eq!(st["last_files"], 6, "{st}");
    assert_eq!(st["corruptions"], 3, "{st}");
    assert_eq!(st["quarantined"], 2, "{st}");
    let findings = st["findings"].as_array().unwrap();
    let find =
        |path: &str| findings.iter().find(|f| f["path"] == path).unwrap_or_else(|| panic!("{path}: {st}"));
    assert_eq!(find("photo.jpg")["state"], "quarantined");
    assert_eq!(find("photo.jpg")["expected"], tests::b3(&photo));
    assert_ne!(find("photo.jpg")["actual"], tests::b3(&photo));
    assert_eq!(find("copy-a.bin")["state"], "repaired");
    assert_eq!(find("copy-a.bin")["source"], "an identical file");
    assert_eq!(find("report.doc")["state"], "quarantined");
    assert!(find("report.doc")["version"].is_i64());
    assert!(!findings.iter().any(|f| f["path"] == "notes.txt"), "an edit is not damage: {st}");

    // The damaged bytes are served by no front end; the repaired file is whole again, on disk too.
    assert_eq!(http(env.port, "GET", "/dav/photo.jpg", &auth, b"").status, 500);
    let ranged = http(env.port, "GET", "/dav/photo.jpg", &[auth[0], ("Range", "bytes=1999990-2000010")], b"");
    assert_eq!(ranged.status, 500);
    assert_eq!(http(env.port, "GET", "/api/v1/content?path=%2Fphoto.jpg", &auth, b"").status, 500);
    let copy =
        http(env.port, "COPY", "/dav/photo.jpg", &[auth[0], ("Destination", "/dav/photo-copy.jpg")], b"");
    assert!(copy.status >= 500, "a copy would carry the damaged bytes: {}", copy.status);
    assert_eq!(http(env.port, "GET", "/dav/photo-copy.jpg", &auth, b"").status, 404);
    let vid = find("report.doc")["version"].as_i64().unwrap();
    let v = http(env.port, "GET", &format!("/api/v1/versions/{vid}/content?path=%2Freport.doc"), &auth, b"");
    assert_eq!(v.status, 500, "a damaged version");
    let restore =
        http(env.port, "POST", &format!("/api/v1/versions/{vid}/restore?path=%2Freport.doc"), &auth, b"");
    assert!(restore.status >= 500, "restoring a damaged version: {}", restore.status);
    assert_eq!(http(env.port, "GET", "/dav/copy-a.bin", &auth, b"").body, shared);
    assert_eq!(std::fs::read(dir.join("copy-a.bin")).unwrap(), shared);
    // The edit was adopted as scan adopts it.
    assert_eq!(http(env.port, "GET", "/dav/notes.txt", &auth, b"").body, b"first draft, edited over ssh\n");

    // Audited, and counted where Prometheus looks.
    let audit = env.ctl_json(&["audit", "--limit", "50"]);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|r| r["action"].as_str()).collect();
    for want in ["scrub.corruption", "scrub.repair", "scan", "scrub.pass", "scrub.start"] {
        assert!(actions.contains(&want), "no {want} in the audit log: {actions:?}");
    }
    let t = Instant::now();
    while metric(env.port, "cairn_scrub_quarantined_files") != Some(2.0) {
        assert!(t.elapsed() < Duration::from_secs(20), "metric not raised");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(metric(env.port, "cairn_scrub_corruptions_total"), Some(3.0));
    assert!(
        metric(env.port, "cairn_scrub_verified_bytes_total").unwrap()
            >= (photo.len() + 2 * shared.len()) as f64
    );

    // A good copy written from a client lifts the quarantine at once.
    let put = http(env.port, "PUT", "/dav/photo.jpg", &auth, &photo);
    assert!(put.status == 204 || put.status == 201, "{}", put.status);
    assert_eq!(http(env.port, "GET", "/dav/photo.jpg", &auth, b"").body, photo);
    // The damaged content it replaced is a version now, and stays quarantined as one.
    let st = status(&env);
    assert_eq!(st["quarantined"], 2, "{st}");
    let photo_finding = st["findings"].as_array().unwrap().iter().find(|f| f["path"] == "photo.jpg").cloned();
    assert!(photo_finding.is_some_and(|f| f["version"].is_i64() && f["state"] == "quarantined"), "{st}");
    // Deleting the files and emptying the trash drops the damaged versions: nothing is left
    // quarantined, and everything is consistent.
    assert_eq!(http(env.port, "DELETE", "/dav/report.doc", &auth, b"").status, 204);
    assert_eq!(http(env.port, "DELETE", "/dav/photo.jpg", &auth, b"").status, 204);
    let out = env.ctl(&["trash", "purge", "alice", "--all"]);
    assert!(out.status.success(), "{}", describe(&out));
    let st = status(&env);
    assert_eq!(st["quarantined"], 0, "{st} {}", describe(&env.ctl(&["trash", "list", "alice"])));
    drop(d);
    env.assert_fsck_clean();
}

#[test]
fn a_killed_scrub_resumes_where_it_stopped_and_the_pace_holds_the_cap() {
    const RATE: f64 = 8.0 * 1024.0 * 1024.0;
    let env = Env::new();
    with_scrub(&env, "8MiB");
    env.add_user("alice", None);
    let d = env.start_daemon();
    for i in 0..12 {
        env.put_ok("alice", &format!("/f{i:02}.bin"), &tests::pattern(4 << 20, i));
    }
    // An uninterrupted pass: its rate, start to end, within 10 % of the cap.
    let st = full_pass(&env, Duration::from_secs(60));
    assert_eq!(st["last_bytes"].as_u64(), Some(48 << 20), "{st}");
    let rate = st["last_rate"].as_f64().unwrap();
    let took = (48 << 20) as f64 / rate;
    assert!((rate - RATE).abs() <= RATE * 0.10, "{:.2} MiB/s against a cap of 8 MiB/s", rate / 1048576.0);
    tests::record_figure(&format!(
        "scrub: 48 MiB at a cap of 8 MiB/s took {:.2} s, {:.2} MiB/s ({:+.1} %)",
        took,
        rate / 1048576.0,
        (rate / RATE - 1.0) * 100.0
    ));

    // A pause holds the pass; start lifts it.
    let out = env.ctl(&["scrub", "start"]);
    assert!(out.status.success(), "{}", describe(&out));
    wait_for(&env, "the pass to get going", |st| {
        st["running"] == true && st["files_done"].as_u64().unwrap_or(0) >= 2
    });
    let out = env.ctl(&["scrub", "pause", "--for", "1h"]);
    assert!(out.status.success(), "{}", describe(&out));
    std::thread::sleep(Duration::from_millis(2_500));
    let held = status(&env)["bytes_done"].clone();
    std::thread::sleep(Duration::from_millis(1_500));
    let st = status(&env);
    assert_eq!(st["bytes_done"], held, "the pass went on while paused: {st}");
    assert!(st["paused_until"].is_string(), "{st}");
    let out = env.ctl(&["scrub", "start"]);
    assert!(out.status.success(), "{}", describe(&out));

    // Killed midway: the next daemon goes on from the saved position, not from the start.
    wait_for(&env, "more of the pass", |st| {
        st["running"] == true && st["files_done"].as_u64().unwrap_or(0) >= 6
    });
    d.kill();
    let saved = status(&env);
    let done_before = saved["files_done"].as_u64().unwrap();
    assert!(saved["running"] == true && done_before >= 5, "{saved}");
    let d2 = env.start_daemon();
    wait_for(&env, "the pass to complete", |st| st["running"] == false);
    let st = status(&env);
    assert_eq!(st["last_files"], 12, "every file counted once: {st}");
    let read_after = metric(env.port, "cairn_scrub_verified_bytes_total").unwrap();
    let left = ((12 - done_before) * (4 << 20)) as f64;
    assert!(
        read_after <= left + (4 << 20) as f64,
        "the restarted daemon read {read_after} bytes; {left} were left when the first was killed"
    );
    drop(d2);
    env.assert_fsck_clean();
}

fn wait_for(env: &Env, what: &str, mut ok: impl FnMut(&Value) -> bool) {
    let t = Instant::now();
    loop {
        let st = status(env);
        if ok(&st) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "waiting for {what}: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
