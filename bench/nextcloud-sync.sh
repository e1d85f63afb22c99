#!/usr/bin/env bash
# First sync, both ways, with the Nextcloud desktop client's syncer (nextcloudcmd) next to
# Cairn's own client (cairn sync) and rclone (WebDAV), in one run against the release build:
# a tree of FILES small files (1-64 KiB, in folders of 100) plus one file of BIG_MIB MiB.
#   up:   a local tree into an empty account (one account per tool);
#   down: the same tree into an empty local folder.
# Prints seconds per tool and the ratios to rclone (below 1: faster than rclone).
#
#   bench/nextcloud-sync.sh [FILES] [BIG_MIB]        (default 1000 1024)
. "$(dirname "$0")/../scripts/lib.sh"
FILES=${1:-1000}
BIG=${2:-1024}
bench_start cairn-ncsync 18195 nextcloud-desktop-cmd rclone curl
URL="http://127.0.0.1:$PORT"
PW=bench-password-1
for u in nc cairn rc; do bench_user "$u"; done

SRC=$B/src
python3 - "$SRC" "$FILES" "$BIG" <<'PY'
import os, random, sys
root, files, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
for i in range(files):
    d = os.path.join(root, f"folder {i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"file {i:05d}.bin"), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(1024, 65536)))
os.makedirs(os.path.join(root, "big"), exist_ok=True)
with open(os.path.join(root, "big", "video.bin"), "wb") as f:
    for _ in range(big):
        f.write(rnd.randbytes(1 << 20))
PY
bytes=$(du -sb "$SRC" | cut -f1)

secs() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; echo "$(date +%s.%N) - $s" | bc; }
nc_sync() { nextcloudcmd --non-interactive --max-sync-retries 1 -u "$1" -p "$PW" "$2" "$URL"; }
cairn_sync() {
    [ -d "$B/cfg-$1-$3" ] || echo "$PW" | target/release/cairn --config-dir "$B/cfg-$1-$3" login "$URL" --user "$1" --password-stdin --device "$3" >/dev/null
    target/release/cairn --config-dir "$B/cfg-$1-$3" sync "$2"
}
rc() {
    RCLONE_CONFIG=/dev/null RCLONE_WEBDAV_URL="$URL/remote.php/dav/files/rc/" RCLONE_WEBDAV_VENDOR=owncloud \
        RCLONE_WEBDAV_USER=rc RCLONE_WEBDAV_PASS=$(rclone obscure "$PW") rclone --transfers 4 --checkers 8 "$@"
}
for t in nc cairn; do cp -a "$SRC" "$B/up-$t"; done
export HOME=$B/home; mkdir -p "$HOME"
up_nc=$(secs nc_sync nc "$B/up-nc")
up_cairn=$(secs cairn_sync cairn "$B/up-cairn" up)
up_rc=$(secs rc sync "$SRC" :webdav:)
mkdir -p "$B/down-nc" "$B/down-cairn" "$B/down-rc"
down_nc=$(secs nc_sync nc "$B/down-nc")
down_cairn=$(secs cairn_sync cairn "$B/down-cairn" down)
down_rc=$(secs rc sync :webdav: "$B/down-rc")
for t in nc cairn rc; do
    diff -r --exclude='.sync_*' --exclude='.cairn*' "$SRC" "$B/down-$t" >/dev/null || { echo "down-$t differs from the source"; exit 1; }
done
ratio() { echo "scale=2; $1 / $2" | bc; }
printf '%-46s %12s %12s %12s %10s %10s\n' "first sync, $FILES files + $BIG MiB ($((bytes / 1000000)) MB)" nextcloudcmd "cairn sync" rclone "nc/rclone" "cairn/rclone"
printf '%-46s %11.1fs %11.1fs %11.1fs %10s %10s\n' "up (local tree into an empty account)" "$up_nc" "$up_cairn" "$up_rc" "$(ratio "$up_nc" "$up_rc")" "$(ratio "$up_cairn" "$up_rc")"
printf '%-46s %11.1fs %11.1fs %11.1fs %10s %10s\n' "down (the account into an empty folder)" "$down_nc" "$down_cairn" "$down_rc" "$(ratio "$down_nc" "$down_rc")" "$(ratio "$down_cairn" "$down_rc")"
