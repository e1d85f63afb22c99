#!/usr/bin/env bash
# Encrypted vaults: one core's CEF throughput next to raw AES-256-GCM, the storage overhead, and
# the bytes an in-place 1 MiB edit of a large vault file moves — next to the same edit of a plain
# file through `cairn sync` and to rsync — in one run. Also checks the pulled file byte for byte.
#
#   bench/vault.sh [SIZE_MIB]     (default 1024)
. "$(dirname "$0")/../scripts/lib.sh"
MIB=${1:-1024}
bench_start cairn-vaultbench 18196 rsync curl
cargo build --release --quiet -p vault --example throughput
target/release/examples/throughput 256

URL="http://127.0.0.1:$PORT"
cairn() { target/release/cairn --config-dir "$B/cfg" "$@"; }
echo "bench-password-1" | cairn login "$URL" --user bench --password-stdin --device bench >/dev/null
echo "a long bench passphrase" | cairn vault enroll >/dev/null
cairn vault create /V >/dev/null
mkdir -p "$B/v" "$B/p"
head -c $((MIB * 1024 * 1024)) /dev/urandom > "$B/v/big.bin"
cp "$B/v/big.bin" "$B/p/big.bin"

t0=$(date +%s.%N)
cairn vault push "$B/v" /V >/dev/null
t1=$(date +%s.%N)
cairn sync "$B/p" --remote /plain >/dev/null
stored=$(stat -c %s "$B"/data/files/bench/V/f-*)
plain=$((MIB * 1024 * 1024))
echo
echo "a ${MIB} MiB file:"
awk -v s="$stored" -v p="$plain" 'BEGIN {printf "  stored as %d bytes: overhead %.4f %% (%d bytes)\n", s, (s - p) / p * 100, s - p}'
awk -v t0="$t0" -v t1="$t1" -v m="$MIB" 'BEGIN {printf "  first push (encrypt + upload, one client): %.1f s, %.0f MB/s\n", t1 - t0, m * 1.048576 / (t1 - t0)}'

counted() {
    curl -sf -u bench:bench-password-1 "$URL/api/v1/admin/metrics" |
        awk '/^cairn_transfer_bytes_total/ {s += $2} END {printf "%.0f", s}'
}
cp "$B/p/big.bin" "$B/old.bin"
head -c 1048576 /dev/urandom > "$B/edit.bin"
for f in "$B/v/big.bin" "$B/p/big.bin"; do
    dd if="$B/edit.bin" of="$f" bs=1M seek=$((MIB / 2)) conv=notrunc status=none
done
before=$(counted)
out=$(cairn vault push "$B/v" /V)
vault_moved=$(($(counted) - before))
before=$(counted)
cairn sync "$B/p" --remote /plain >/dev/null
plain_moved=$(($(counted) - before))
cp "$B/old.bin" "$B/rs-dest.bin"
rs=$(rsync --no-whole-file --ignore-times --stats "$B/p/big.bin" "$B/rs-dest.bin" |
    awk -F': ' '/^Total bytes sent/ {gsub(/,/, "", $2); s += $2} /^Total bytes received/ {gsub(/,/, "", $2); s += $2} END {print s}')
echo
echo "1 MiB changed in the middle of the ${MIB} MiB file (bytes on the wire, signature included):"
printf '  %-32s %12d  (%.2f MiB)  [%s]\n' "vault push (ciphertext delta)" "$vault_moved" "$(awk -v b="$vault_moved" 'BEGIN {print b / 1048576}')" "$out"
printf '  %-32s %12d  (%.2f MiB)\n' "cairn sync (plain file delta)" "$plain_moved" "$(awk -v b="$plain_moved" 'BEGIN {print b / 1048576}')"
printf '  %-32s %12d  (%.2f MiB)\n' "rsync --no-whole-file" "$rs" "$(awk -v b="$rs" 'BEGIN {print b / 1048576}')"

t0=$(date +%s.%N)
cairn vault pull /V "$B/out" >/dev/null
t1=$(date +%s.%N)
cmp "$B/v/big.bin" "$B/out/big.bin" || { echo "the pulled file differs"; exit 1; }
awk -v t0="$t0" -v t1="$t1" -v m="$MIB" 'BEGIN {printf "\npull (download + verify + decrypt, one client): %.1f s, %.0f MB/s; byte-identical\n", t1 - t0, m * 1.048576 / (t1 - t0)}'
