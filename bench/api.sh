#!/usr/bin/env bash
# REST API latency under load: 50 concurrent users (each with its own account, bearer token and
# keep-alive connection) cycling through list folder, stat, small upload and small download for
# a bounded time against the release build with a managed PostgreSQL. Prints p50/p99/max per
# endpoint and the ratio of the goal (p99 < 10 ms on loopback) to the measured p99 (> 1: met),
# for three loads of SECONDS each:
#   - paced at 20 requests/s per user (1,000/s for 50 users) and at 50/s per user (2,500/s),
#     latency counted from when each request was due (see tests/src/bin/apiload.rs);
#   - a closed loop, each user sending its next request as soon as the last is answered: the
#     machine is saturated, so latency there is mostly the wait in line (50 users / throughput).
#
#   bench/api.sh [SECONDS] [USERS]        (defaults: 20 s, 50 users)
#
# As root, Cairn's data is on a fresh journaled ext4 on a loop device, as in bench/webdav.sh and
# bench/fuse.sh (FS=dir: a folder of /tmp instead).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
have_pg_server || need_pkgs postgresql
need_pkgs curl
SECS=${1:-20}
USERS=${2:-50}
cargo build --release --bins --quiet
cargo build --release --quiet -p tests --bin apiload

PORT=18191
bench_cairnd cairn-apibench "$PORT" $([ "$(id -u)" = 0 ] && echo 8192)

echo "==> $USERS users, each with 20 small files" >&2
: > "$B/tokens"
for i in $(seq 1 "$USERS"); do
    echo "password-$i-long" | target/release/cairnctl --config "$B/cairnd.toml" user add "u$i" --password-stdin >/dev/null
    tok=$(curl -sf -u "u$i:password-$i-long" -H 'Content-Type: application/json' -d '{"label":"bench"}' \
        "http://127.0.0.1:$PORT/api/v1/tokens" | sed 's/.*"token":"\([0-9a-f]*\)".*/\1/')
    echo "u$i $tok" >> "$B/tokens"
    for k in $(seq 0 19); do
        head -c 4096 /dev/urandom | curl -sf -o /dev/null -X PUT --data-binary @- -H "Authorization: Bearer $tok" \
            "http://127.0.0.1:$PORT/api/v1/content?path=/bench/f$k"
    done
done
for rate in 20 50; do
    echo "==> paced load, $rate requests/s per user, $SECS s" >&2
    APILOAD_RATE=$rate target/release/apiload "$PORT" "$SECS" "$B/tokens"
    echo
done
echo "==> closed loop (saturation), $SECS s" >&2
target/release/apiload "$PORT" "$SECS" "$B/tokens"
