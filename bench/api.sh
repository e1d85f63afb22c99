#!/usr/bin/env bash
# REST API latency under load: 50 concurrent users (each with its own account, bearer token and
# keep-alive connection) cycling through list folder, stat, small upload and small download for
# a bounded time against the release build with a managed PostgreSQL. Prints p50/p99/max per
# endpoint and the ratio of the goal (p99 < 10 ms on loopback) to the measured p99 (> 1: met),
# for four loads of SECONDS each:
#   - paced at 20 requests/s per user (1,000/s for 50 users) and at 50/s per user (2,500/s),
#     latency counted from when each request was due (see tests/src/bin/apiload.rs);
#   - a closed loop, each user sending its next request as soon as the last is answered: the
#     machine is saturated, so latency there is mostly the wait in line (50 users / throughput);
#   - the same closed loop with small uploads only, for what a durable upload costs.
# After each, the CPU per request (user + system, from /proc) of cairnd, of its PostgreSQL, of
# the load generator and of the whole machine.
#
#   bench/api.sh [SECONDS] [USERS]        (defaults: 20 s, 50 users)
#
# As root, Cairn's data is on a fresh journaled ext4 on a loop device, as in bench/webdav.sh and
# bench/fuse.sh (FS=dir: a folder of /tmp instead).
. "$(dirname "$0")/../scripts/lib.sh"
bench_setup curl procps
SECS=${1:-20}
USERS=${2:-50}
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
# CPU ticks (1/100 s, user + system) used so far: by cairnd; by its PostgreSQL (the postmaster,
# every process it runs — backends, WAL writer, checkpointer, autovacuum — and those it reaped);
# by the whole machine.
ticks() {
    local pm p pg
    pm=$(head -1 "$B/data/.cairn/pg/data/postmaster.pid")
    pg=$(awk '{print $14+$15+$16+$17}' "/proc/$pm/stat")
    for p in $(pgrep -P "$pm"); do pg=$((pg + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$(awk '{print $14+$15}' "/proc/$PID/stat") $pg $(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)"
}
# run TITLE [ENV...]: one load of SECS, then where the CPU went per request.
run() {
    local title=$1 t0 t1
    shift
    echo "==> $title, $SECS s" >&2
    t0=$(ticks)
    env "$@" target/release/apiload "$PORT" "$SECS" "$B/tokens" | tee "$B/out"
    t1=$(ticks)
    awk -v t0="$t0" -v t1="$t1" -v secs="$SECS" -v cores="$(nproc)" '
        /^requests: / { n = $2 }
        /^load generator cpu ticks: / { gen = $5 }
        END {
            split(t0, a, " "); split(t1, b, " ")
            us = 10000 / n
            printf "CPU per request, us: cairnd %.0f, PostgreSQL %.0f, load generator %.0f, whole machine %.0f (%.0f%% of %d cores busy)\n",
                (b[1] - a[1]) * us, (b[2] - a[2]) * us, gen * us, (b[3] - a[3]) * us, (b[3] - a[3]) / (secs * cores), cores
        }' "$B/out"
    echo
}
for rate in 20 50; do
    run "paced load, $rate requests/s per user" APILOAD_RATE=$rate
done
run "closed loop (saturation)"
# What a durable small upload costs by itself, for reading the closed loop: the mean latency of
# a closed loop is users / throughput (Little's law), and its throughput is the machine's cores
# divided by the CPU per request.
run "closed loop, small uploads only" APILOAD_OPS=2
