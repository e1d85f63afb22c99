#!/usr/bin/env bash
# Run Cairn's whole test suite: lints, unit tests, and the integration tests against a real
# PostgreSQL with the real binaries. As root, installs missing Debian packages with apt.
. "$(dirname "$0")/../scripts/lib.sh"

have_pg_server || need_pkgs postgresql
# Real WebDAV clients the integration tests drive (openssl reads the test certificate).
need_pkgs litmus rclone cadaver davfs2 curl openssl
# The Nextcloud and ownCloud desktop clients' command-line syncers (tests/it/nextcloud.rs).
need_pkgs nextcloud-desktop-cmd owncloud-client-cmd
# Prometheus and promtool: /metrics and the shipped alert rules (tests/it/ops.rs).
need_pkgs prometheus
# The FUSE mount's tests: fuse3 (mount tools), and the conformance tools from crates.io.
need_pkgs fuse3
need_cargo_tools pjdfstest fsx
# The web UI's browser tests: Debian's Chromium driven by playwright-core (npm, locked in
# tests/web/package-lock.json); the API's conformance run: schemathesis (PyPI, in a virtualenv
# under target/tools).
command -v chromium >/dev/null || need_pkgs chromium
command -v node >/dev/null && command -v npm >/dev/null || need_pkgs nodejs npm
if [ ! -d tests/web/node_modules/playwright-core ]; then
    echo "==> installing playwright-core (npm ci in tests/web)" >&2
    (cd tests/web && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
if ! command -v schemathesis >/dev/null; then
    if [ ! -x target/tools/venv/bin/schemathesis ]; then
        need_pkgs python3-venv
        echo "==> installing schemathesis (pip, in target/tools/venv)" >&2
        python3 -m venv target/tools/venv
        target/tools/venv/bin/pip install --quiet schemathesis >&2
    fi
    export PATH="$PWD/target/tools/venv/bin:$PATH"
fi
# pjdfstest switches to these accounts (nobody/nogroup exist on Debian).
if [ "$(id -u)" = 0 ] && ! id tests >/dev/null 2>&1; then
    getent group tests >/dev/null || groupadd tests
    useradd -g tests -M -s /usr/sbin/nologin tests
fi
start=$SECONDS

echo "==> architecture: store must not depend on hyper or fuser" >&2
for forbidden in hyper fuser; do
    if cargo tree -p store -e normal -i "$forbidden" 2>/dev/null | grep -q .; then
        echo "error: store depends on $forbidden (see ARCHITECTURE.md, invariants)" >&2
        exit 1
    fi
done

# A missing linter is a skip on a developer's machine and a failure in CI (CI=true), where a
# skipped check would pass unseen.
lint_missing() {
    if [ "${CI:-}" = true ]; then
        echo "error: $1 is not installed (rustup component add $1): CI checks every rule" >&2
        exit 1
    fi
    echo "==> $1 not installed (rustup component add $1): $2 not checked" >&2
}
command -v python3 >/dev/null || need_pkgs python3
echo "==> architecture: no module cycles within a crate (scripts/module-cycles.py)" >&2
python3 scripts/module-cycles.py

if cargo fmt --version >/dev/null 2>&1; then
    echo "==> cargo fmt --check" >&2
    cargo fmt --all -- --check
else
    lint_missing rustfmt formatting
fi
if cargo clippy --version >/dev/null 2>&1; then
    echo "==> cargo clippy (warnings are errors)" >&2
    cargo clippy --workspace --all-targets --quiet -- -D warnings
else
    lint_missing clippy lints
fi
echo "==> cargo doc (warnings are errors, private items too)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --quiet

echo "==> building the binaries the integration tests drive" >&2
cargo build --workspace --bins
rm -f target/test-figures.txt
echo "==> cargo test" >&2
# Not `| tee`: a process a failed test left behind would keep the pipe open and the suite
# would never end. `timeout` (which signals its whole process group) bounds a hung test; the
# tests still running are the ones cargo reported as "running for over 60 seconds".
: >target/test-output.txt
timeout --kill-after=30 "${CAIRN_TEST_TIMEOUT:-2700}" \
    cargo test --workspace --no-fail-fast >target/test-output.txt 2>&1 &
tests_pid=$!
tail -n +1 -f --pid="$tests_pid" target/test-output.txt
status=0
wait "$tests_pid" || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "error: the tests did not finish within ${CAIRN_TEST_TIMEOUT:-2700} s (see 'running for over' above)" >&2
fi

echo
if [ -f target/test-figures.txt ]; then
    echo "Figures measured by the suite:"
    sed 's/^/  /' target/test-figures.txt
fi
passed=$(grep -Eo '^test result: [A-Za-z]+\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "Suite time: $(( SECONDS - start )) s"
echo "$passed passed, $failed failed"
exit "$status"
