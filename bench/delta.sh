#!/usr/bin/env bash
# Delta transfers: bytes on the wire for edits of a 1 GiB file, Cairn next to rsync, in one run.
# Client A (`cairn sync`) sends each edit up (signature down + delta up), client B brings it
# down (a 226 delta); the server counts the payload bytes (/api/v1/admin/metrics). rsync runs
# the same before/after pair with --no-whole-file and reports its --stats totals.
#
#   bench/delta.sh [SIZE_MIB]     (default 1024)
. "$(dirname "$0")/../scripts/lib.sh"
MIB=${1:-1024}
bench_start cairn-deltabench 18194 rsync curl
URL="http://127.0.0.1:$PORT"
for c in a b; do
    echo "bench-password-1" | target/release/cairn --config-dir "$B/cfg-$c" login "$URL" --user bench --password-stdin --device "$c" >/dev/null
    mkdir -p "$B/$c"
done
counted() { # sum of the server's transfer counters
    curl -sf -u bench:bench-password-1 "$URL/api/v1/admin/metrics" |
        awk '/^cairn_transfer_bytes_total/ {s += $2} END {printf "%.0f", s}'
}
sync_bytes() { # DIR CLIENT: bytes the server counted for one sync
    local before after
    before=$(counted)
    target/release/cairn --config-dir "$B/cfg-$2" sync "$B/$1" >/dev/null
    after=$(counted)
    echo $((after - before))
}
rsync_bytes() { # OLD NEW: rsync's total bytes sent + received turning a copy of OLD into NEW
    cp "$1" "$B/rs-dest.bin"
    rsync --no-whole-file --ignore-times --stats "$2" "$B/rs-dest.bin" |
        awk -F': ' '/^Total bytes sent/ {gsub(/,/, "", $2); s += $2} /^Total bytes received/ {gsub(/,/, "", $2); s += $2} END {print s}'
}

F="$B/a/big.bin"
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$F"
sync_bytes a a >/dev/null
sync_bytes b b >/dev/null

printf '%-34s %14s %14s %14s %8s\n' "edit of a ${MIB} MiB file" "cairn up" "cairn down" "rsync" "up/rsync"
edit() { # NAME COMMAND...
    local name=$1
    shift
    cp "$F" "$B/old.bin"
    "$@"
    local up down rs
    up=$(sync_bytes a a)
    down=$(sync_bytes b b)
    cmp -s "$F" "$B/b/big.bin" || { echo "client B's copy differs after: $name"; exit 1; }
    rs=$(rsync_bytes "$B/old.bin" "$F")
    printf '%-34s %14d %14d %14d %8.2f\n' "$name" "$up" "$down" "$rs" "$(awk -v u="$up" -v r="$rs" 'BEGIN {print u / r}')"
}
edit "1 MiB changed in the middle" sh -c "head -c 1048576 /dev/urandom | dd of='$F' bs=1M seek=$((MIB / 2)) conv=notrunc status=none"
edit "100 bytes inserted at offset 0" sh -c "{ head -c 100 /dev/urandom; cat '$F'; } > '$B/new.bin' && mv '$B/new.bin' '$F'"
edit "10 MiB appended" sh -c "head -c $((10 * 1048576)) /dev/urandom >> '$F'"
echo "(bytes: payload counted by the server — signature down + delta up for 'up', the 226 delta for 'down'; rsync: --stats sent + received, signature included)"
