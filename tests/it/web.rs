//! The web UI in a real browser (Playwright driving Debian's Chromium, tests/web/e2e.mjs) and
//! the REST API's conformance to its own OpenAPI document (schemathesis), both against the
//! real daemon.

use std::process::Command;

use serde_json::Value;
use tests::{Env, basic, describe, http, record_figure, require_program};

/// Where test artifacts (screenshots) go: `tests/artifacts/NAME`.
fn artifacts(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn browser_end_to_end() {
    require_program("chromium", "chromium");
    require_program("node", "nodejs");
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    assert!(
        web.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/web (scripts/test.sh does)"
    );
    let env = Env::new();
    env.add_user("alice", None);
    let _d = env.start_daemon();
    let out_dir = artifacts("web");
    let started = std::time::Instant::now();
    let out = Command::new("node")
        .arg(web.join("e2e.mjs"))
        .env("CAIRN_URL", format!("http://127.0.0.1:{}/", env.port))
        .env("CAIRN_USER", "alice")
        .env("CAIRN_PASSWORD", "correct horse battery")
        .env("ARTIFACTS", &out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "browser tests failed (screenshots in {}):\n{}",
        out_dir.display(),
        describe(&out)
    );
    let shots = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(shots >= 10, "expected a screenshot per step, found {shots}");
    record_figure(&format!(
        "web UI end-to-end (Playwright + Chromium): {shots} steps in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    env.assert_fsck_clean();
}

#[test]
fn schemathesis_finds_no_server_errors_and_responses_match_the_spec() {
    require_program("schemathesis", "schemathesis (PyPI; scripts/test.sh installs it in target/tools/venv)");
    let env = Env::new();
    let out = env.ctl_with_input(
        &["user", "add", "admin1", "--admin", "--password-stdin"],
        b"correct horse battery\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    let _d = env.start_daemon();
    let res = http(
        env.port,
        "POST",
        "/api/v1/tokens",
        &[("Authorization", &basic("admin1")), ("Content-Type", "application/json")],
        br#"{"label":"schemathesis"}"#,
    );
    assert_eq!(res.status, 201, "{}", res.text());
    let token = serde_json::from_slice::<Value>(&res.body).unwrap()["token"].as_str().unwrap().to_owned();
    let started = std::time::Instant::now();
    // Left out: revoking tokens (the run would revoke its own and test nothing after), and the
    // tus PATCH, whose application/offset+octet-stream body schemathesis cannot generate (the
    // tus tests in tests/it/api.rs and the browser tests drive it).
    let out = Command::new("schemathesis")
        .args(["run", &format!("http://127.0.0.1:{}/api/v1/openapi.json", env.port)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        ])
        .args(["--max-examples", "40", "--seed", "1", "--generation-with-security-parameters", "false"])
        // The same cases on every machine: no example database carried between runs.
        .args(["--generation-database", "none"])
        // Excluded: revoking the run's own token; the tus PATCH (schemathesis cannot make
        // `application/offset+octet-stream`); the long poll and the WebSocket (a generated
        // `wait` would stall the run; tests/it/sync.rs drives both).
        .args(["--exclude-operation-id", "revoke_token", "--exclude-operation-id", "patch"])
        .args(["--exclude-operation-id", "changes", "--exclude-operation-id", "events"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{}", describe(&out));
    let cases = text.lines().find(|l| l.contains(" generated, ")).unwrap_or("").trim().to_owned();
    record_figure(&format!(
        "schemathesis against /api/v1/openapi.json: {cases} in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    // The database and tree are still sound after the fuzzing.
    env.assert_fsck_clean();
}
