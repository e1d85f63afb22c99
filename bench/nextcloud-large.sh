#!/usr/bin/env bash
# A very large file uploaded the way the Nextcloud apps do (chunked upload v2: MKCOL, PUT of
# each chunk, MOVE .file with OC-Total-Length and OC-Checksum), against the release build: a
# sparse source (default 15 GB) in chunks of 1 GiB streamed by curl. Prints the throughput,
# the assembly time, cairnd's peak RSS (VmHWM), and whether the stored blake3 matches.
#
#   bench/nextcloud-large.sh [SIZE_GB]    (needs about 2 x SIZE_GB of free disk under /tmp:
#                                          the chunks, then the assembled file)
. "$(dirname "$0")/../scripts/lib.sh"
GB=${1:-15}
bench_start cairn-ncbench 18194 curl b3sum
AUTH="bench:bench-password-1"
DAV="http://127.0.0.1:$PORT/remote.php/dav"

SIZE=$((GB * 1000 * 1000 * 1000))
SRC=$B/source.bin
sparse_source "$SRC" "$SIZE"
sha1=$(sha1sum "$SRC" | cut -d" " -f1)

curl -sf -u "$AUTH" -X MKCOL "$DAV/files/bench/large" >/dev/null
UP="$DAV/uploads/bench/bench-$$"
DEST="$DAV/files/bench/large/source.bin"
curl -sf -u "$AUTH" -X MKCOL -H "Destination: $DEST" -H "OC-Total-Length: $SIZE" "$UP" >/dev/null
CHUNK=$((1024 * 1024 * 1024))
start=$(date +%s.%N)
offset=0 n=1
while [ "$offset" -lt "$SIZE" ]; do
    len=$(( SIZE - offset < CHUNK ? SIZE - offset : CHUNK ))
    dd if="$SRC" bs=4M skip="$offset" count="$len" iflag=skip_bytes,count_bytes status=none | curl -sf -o /dev/null \
        -u "$AUTH" -X PUT -H "Destination: $DEST" -H "OC-Total-Length: $SIZE" -H "Content-Length: $len" \
        -T - "$UP/$(printf %05d $n)"
    offset=$((offset + len)) n=$((n + 1))
done
sent=$(date +%s.%N)
curl -sf -o /dev/null -u "$AUTH" -X MOVE -H "Destination: $DEST" -H "OC-Total-Length: $SIZE" \
    -H "OC-Checksum: SHA1:$sha1" -H "X-OC-Mtime: 1700000000" "$UP/.file" || { echo "assembly refused"; exit 1; }
end=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print int($2/1024)}' "/proc/$PID/status")
stored=$(curl -sf -u "$AUTH" "http://127.0.0.1:$PORT/api/v1/stat?path=/large/source.bin" | sed 's/.*"hash":"\([0-9a-f]*\)".*/\1/')
want=$(b3sum "$SRC" | cut -d" " -f1)
chunks=$(echo "$sent - $start" | bc)
total=$(echo "$end - $start" | bc)
echo "chunked upload of $GB GB in 1 GiB chunks: chunks sent in $chunks s ($(echo "$SIZE / $chunks / 1000000" | bc) MB/s), assembled and committed by $total s ($(echo "$SIZE / $total / 1000000" | bc) MB/s overall); cairnd peak RSS $rss MiB (limit 150)"
if [ "$stored" = "$want" ]; then echo "blake3 verified: $stored (and the client's SHA1 was checked on assembly)"; else echo "blake3 MISMATCH: stored $stored, source $want"; exit 1; fi
[ "$rss" -lt 150 ] || { echo "RSS over 150 MiB"; exit 1; }
