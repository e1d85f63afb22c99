//! The litmus WebDAV suite (basic, copymove, props, locks, http) against `/dav/`: zero failures,
//! and no warning but the one explained in davbridge/README.md.

use std::process::Command;

use tests::{Env, record_figure, require_program};

#[test]
fn litmus_passes_every_suite() {
    require_program("litmus", "litmus");
    let env = Env::new();
    let _daemon = env.start_daemon();
    env.add_user("lit", None);
    let out = Command::new("litmus")
        .arg(format!("http://127.0.0.1:{}/dav/", env.port))
        .args(["lit", "correct horse battery"])
        .current_dir(&env.dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut figures = Vec::new();
    for suite in ["basic", "copymove", "props", "locks", "http"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("summary for `{suite}'")))
            .unwrap_or_else(|| panic!("suite {suite} did not run:\n{text}"));
        assert!(line.contains(" 0 failed") && line.contains("100.0%"), "{line}\n{text}");
        let counts =
            line.split(": of ").nth(1).unwrap_or(line).split(" tests").next().unwrap_or("?").to_owned();
        figures.push(format!("{suite} {counts}/{counts}"));
    }
    assert!(!text.contains("FAIL"), "{text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARNING")).collect();
    assert!(
        warnings.iter().all(|w| w.contains("Request-URI including fragment")),
        "unexplained litmus warnings: {warnings:?}"
    );
    record_figure(&format!("litmus against /dav/: {} passed, 0 failed", figures.join(", ")));
}
