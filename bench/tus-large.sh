#!/usr/bin/env bash
# A very large resumable upload in flat memory: a sparse source file (default 15 GB) sent over
# tus in PATCHes of 1 GiB (curl streams each from the file), against the release build. Prints
# the throughput, cairnd's peak RSS (VmHWM) and whether the stored blake3 matches the source's.
#
#   bench/tus-large.sh [SIZE_GB]          (needs about SIZE_GB of free disk under /tmp)
. "$(dirname "$0")/../scripts/lib.sh"
GB=${1:-15}
bench_start cairn-tusbench 18193 curl b3sum
AUTH="bench:bench-password-1"

SIZE=$((GB * 1000 * 1000 * 1000))
SRC=$B/source.bin
sparse_source "$SRC" "$SIZE"

META="path $(printf /large/source.bin | base64 -w0)"
LOC=$(curl -sf -D - -o /dev/null -u "$AUTH" -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $SIZE" \
    -H "Upload-Metadata: $META" "http://127.0.0.1:$PORT/api/v1/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
CHUNK=$((1024 * 1024 * 1024))
start=$(date +%s.%N)
offset=0
while [ "$offset" -lt "$SIZE" ]; do
    len=$(( SIZE - offset < CHUNK ? SIZE - offset : CHUNK ))
    dd if="$SRC" bs=4M skip="$offset" count="$len" iflag=skip_bytes,count_bytes status=none | curl -sf -o /dev/null -u "$AUTH" -X PATCH \
        -H 'Tus-Resumable: 1.0.0' -H "Upload-Offset: $offset" -H 'Content-Type: application/offset+octet-stream' \
        -H "Content-Length: $len" -T - "http://127.0.0.1:$PORT$LOC"
    offset=$((offset + len))
done
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$PID/status")
stored=$(curl -sf -u "$AUTH" "http://127.0.0.1:$PORT/api/v1/stat?path=/large/source.bin" | sed 's/.*"hash":"\([0-9a-f]*\)".*/\1/')
want=$(b3sum "$SRC" | cut -d" " -f1)
secs=$(echo "$end - $start" | bc)
echo "tus upload of $GB GB in 1 GiB PATCHes: $secs s, $(echo "$SIZE / $secs / 1000000" | bc) MB/s; cairnd peak RSS $rss MiB (limit 150)"
if [ "$stored" = "$want" ]; then echo "blake3 verified: $stored"; else echo "blake3 MISMATCH: stored $stored, source $want"; exit 1; fi
[ "$rss" -lt 150 ] || { echo "RSS over 150 MiB"; exit 1; }
