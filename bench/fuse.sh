#!/usr/bin/env bash
# The FUSE mount: Cairn vs bindfs (Debian bindfs, a FUSE mirror of a plain directory) vs the
# native directory, in one run on the same filesystem. Prints each figure and its ratio to
# native (> 1 means faster than native, for rates and for times alike).
#
#   bench/fuse.sh                      (as root: installs bindfs fuse3 if missing)
#   SIZE_MB=1024 FILES=2000 RUNS=1 bench/fuse.sh   (a quicker run)
#   FS=dir bench/fuse.sh               (in BENCH_DIR, default /var/tmp, as it is)
#
# By default the three share a fresh ext4 file system with a journal (mkfs.ext4's defaults, as
# a Debian install has), on a loop device with direct I/O in an image under BENCH_DIR: a
# journal-less ext4 (this VM's root) skips inodes deleted in the last minutes when it makes a
# file, so creates after the runs' mass deletes got up to 15x slower, by run order rather than
# by file system (native: 0.28 s for 10,000 creates, 3.5-5 s right after 10,000 unlinks).
#
# Large writes end with fsync (conv=fsync) everywhere: Cairn commits a file durably at close,
# so comparing against page-cache-only writes would measure something else. Cold reads drop
# the page cache first. Cairn runs the release build with a managed PostgreSQL; unlinks on
# Cairn go to the trash (that is the product).
. "$(dirname "$0")/../scripts/lib.sh"
[ "$(id -u)" = 0 ] || { echo "bench/fuse.sh must run as root (mounts, drop_caches)" >&2; exit 1; }
bench_setup bindfs fuse3 python3
SIZE_MB=${SIZE_MB:-4096}
FILES=${FILES:-10000}
RUNS=${RUNS:-3}

# The three side by side in B (room for one large file of each at a time, the database and the
# small files); cairnd mounts at B/mnt.
bench_teardown() { umount -l "$B/bindfs" 2>/dev/null || true; }
BENCH_DIR=${BENCH_DIR:-/var/tmp} FUSE_MNT=mnt bench_cairnd cairn-fuse-bench 18191 $((SIZE_MB * 3 + 8192))
mkdir -p "$B/native" "$B/bind-src" "$B/bindfs"
bindfs "$B/bind-src" "$B/bindfs"
bench_user bench
for _ in $(seq 100); do [ -d "$B/mnt/bench" ] && break; sleep 0.1; done

now() { date +%s.%N; }
cairnctl_() { target/release/cairnctl --config "$B/cairnd.toml" "$@"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# large DIR: prints "write_MBps cold_MBps warm_MBps" for one run
large() {
    local d=$1 t0 t1 w c h
    rm -f "$d/big"
    drop_caches
    t0=$(now); dd if=/dev/zero of="$d/big" bs=1M count="$SIZE_MB" conv=fsync status=none; t1=$(now)
    w=$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)
    drop_caches
    t0=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; t1=$(now)
    c=$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)
    t0=$(now); dd if="$d/big" of=/dev/null bs=1M status=none; t1=$(now)
    h=$(echo "$SIZE_MB / ($t1 - $t0)" | bc -l)
    rm -f "$d/big"
    # Cairn's rm goes to the trash: empty it, so that runs do not fill the disk.
    case "$d" in "$B/mnt/"*) cairnctl_ trash purge bench --all >/dev/null ;; esac
    echo "$w $c $h"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# small DIR: prints "create_s stat_s unlink_s list_s" for one run
small() {
    local d=$1
    mkdir -p "$d/small"
    python3 - "$d/small" "$FILES" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
names = [os.path.join(d, f"f{i:05}") for i in range(n)]
t = time.perf_counter()
for p in names:
    with open(p, "wb") as f:
        f.write(b"x")
create = time.perf_counter() - t
t = time.perf_counter()
for p in names:
    os.stat(p)
stat = time.perf_counter() - t
t = time.perf_counter()
with os.scandir(d) as it:
    count = sum(1 for e in it if e.stat().st_size >= 0)
assert count == n, count
listing = time.perf_counter() - t
t = time.perf_counter()
for p in names:
    os.unlink(p)
unlink = time.perf_counter() - t
print(f"{create:.3f} {stat:.3f} {unlink:.3f} {listing:.3f}")
PY
    rmdir "$d/small"
}

# The runs take turns (native, bindfs, Cairn, native, ...), so that this VM's disk and
# memory, which drift over minutes (and ext4's inode allocation, slower for a while after
# mass deletes), weigh on the three alike; each figure is the median of RUNS runs.
declare -A W C H CR ST UN LS dirs
dirs=([native]="$B/native" [bindfs]="$B/bindfs" [cairn]="$B/mnt/bench")
for r in $(seq "$RUNS"); do
    for t in native bindfs cairn; do
        echo "large files, run $r of $RUNS: $t ($SIZE_MB MiB)..." >&2
        read -r w c h < <(large "${dirs[$t]}")
        W[$t]+="$w "; C[$t]+="$c "; H[$t]+="$h "
    done
done
for r in $(seq "$RUNS"); do
    for t in native bindfs cairn; do
        echo "small files, run $r of $RUNS: $t ($FILES files)..." >&2
        read -r cr st un ls_ < <(small "${dirs[$t]}")
        CR[$t]+="$cr "; ST[$t]+="$st "; UN[$t]+="$un "; LS[$t]+="$ls_ "
    done
done
# fig TARGET: the medians, "write cold warm create stat unlink list"
fig() {
    local t=$1 a
    for a in W C H CR ST UN LS; do
        local -n arr=$a
        # shellcheck disable=SC2086
        printf '%s ' "$(median ${arr[$t]})"
    done
    echo
}
read -r nw nc nh ncr nst nun nls < <(fig native)
read -r bw bc_ bh bcr bst bun bls < <(fig bindfs)
read -r cw cc ch ccr cst cun cls < <(fig cairn)

ratio() { echo "$1 / $2" | bc -l | xargs printf "%.2fx"; }      # rate: higher is better
tratio() { echo "$2 / $1" | bc -l | xargs printf "%.2fx"; }     # time: lower is better
printf "\n%-40s %10s %10s %10s %9s %9s\n" "" "native" "bindfs" "Cairn" "bindfs" "Cairn"
printf "%-40s %10s %10s %10s %9s %9s\n" "" "" "" "" "/native" "/native"
row() { printf "%-40s %10s %10s %10s %9s %9s\n" "$1" "$2" "$3" "$4" "$5" "$6"; }
row "sequential write ${SIZE_MB} MiB, MB/s (fsync)" "$(printf %.0f "$nw")" "$(printf %.0f "$bw")" "$(printf %.0f "$cw")" "$(ratio "$bw" "$nw")" "$(ratio "$cw" "$nw")"
row "sequential read cold, MB/s" "$(printf %.0f "$nc")" "$(printf %.0f "$bc_")" "$(printf %.0f "$cc")" "$(ratio "$bc_" "$nc")" "$(ratio "$cc" "$nc")"
row "sequential read warm, MB/s" "$(printf %.0f "$nh")" "$(printf %.0f "$bh")" "$(printf %.0f "$ch")" "$(ratio "$bh" "$nh")" "$(ratio "$ch" "$nh")"
row "create $FILES small files, s" "$ncr" "$bcr" "$ccr" "$(tratio "$bcr" "$ncr")" "$(tratio "$ccr" "$ncr")"
row "stat $FILES files, s" "$nst" "$bst" "$cst" "$(tratio "$bst" "$nst")" "$(tratio "$cst" "$nst")"
row "unlink $FILES files, s" "$nun" "$bun" "$cun" "$(tratio "$bun" "$nun")" "$(tratio "$cun" "$nun")"
row "list a $FILES-entry folder (+stat), s" "$nls" "$bls" "$cls" "$(tratio "$bls" "$nls")" "$(tratio "$cls" "$nls")"
