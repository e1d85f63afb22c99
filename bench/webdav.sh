#!/usr/bin/env bash
# WebDAV throughput and latency: Cairn vs nginx (Debian nginx-extras: dav + dav_ext) vs Apache
# mod_dav (Debian apache2), all on loopback in one run. Prints each figure and Cairn's ratio to
# each peer (> 1 means Cairn is ahead, for rates and for latencies alike).
#
#   bench/webdav.sh            (as root: installs nginx-extras apache2 wrk curl if missing)
#
# By default the three share a fresh ext4 with a journal on a loop device (see fresh_ext4 in
# scripts/lib.sh; as root); FS=dir runs them in a folder of /tmp instead.
#
# Cairn runs the release build with a managed PostgreSQL and checks Basic auth on every
# request; the peers run without authentication (which only favours them). Cairn answers a PUT
# only once it is durable; the peers never fsync. For scale, the last lines give what the disk
# does with 1 GiB written to a new file and fsynced (dd conv=fsync).
. "$(dirname "$0")/../scripts/lib.sh"
bench_setup nginx-extras apache2 wrk curl

FS=${FS:-ext4}
B=$(mktemp -d /tmp/cairn-bench.XXXXXX)
LOOP=
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "$LOOP" ]; then
        drop_ext4 "$B"
        rmdir "$B"
    else
        rm -rf "$B"
    fi
}
trap cleanup EXIT
if [ "$FS" = ext4 ]; then
    # Room for Cairn's files and versions (each 1 GiB upload over a name keeps the last as a
    # version), each peer's files, the source file and the disk line's files.
    fresh_ext4 "$B" 28672
fi
chmod 755 "$B"
C_PORT=18181 N_PORT=18182 A_PORT=18183
USER_PW="bench:bench-password-1"
AUTH="Authorization: Basic $(printf %s "$USER_PW" | base64 -w0)"

# --- Cairn -------------------------------------------------------------------------------
mkdir -p "$B/cairn"
cat > "$B/cairn/cairnd.toml" <<EOF
data_dir = "$B/cairn/data"
[http]
listen = "127.0.0.1:$C_PORT"
[log]
level = "warn"
EOF
start_cairn() {
    target/release/cairnd --config "$B/cairn/cairnd.toml" 2>>"$B/cairn/log" &
    CAIRN_PID=$!
    PIDS+=("$CAIRN_PID")
}
start_cairn
wait_healthy $C_PORT 60 || { cat "$B/cairn/log"; exit 1; }
echo "bench-password-1" | target/release/cairnctl --config "$B/cairn/cairnd.toml" user add bench --password-stdin >/dev/null

# --- nginx -------------------------------------------------------------------------------
mkdir -p "$B/nginx/www" "$B/nginx/tmp"
cat > "$B/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;
user root;
worker_processes 2;
pid $B/nginx/nginx.pid;
error_log $B/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    client_max_body_size 0;
    client_body_temp_path $B/nginx/tmp;
    server {
        listen 127.0.0.1:$N_PORT;
        root $B/nginx/www;
        location / {
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
        }
    }
}
EOF
nginx -c "$B/nginx/nginx.conf" -p "$B/nginx" -g 'daemon off;' &
PIDS+=($!)

# --- Apache ------------------------------------------------------------------------------
mkdir -p "$B/apache/www" "$B/apache/lock"
chown -R www-data:www-data "$B/apache/www" "$B/apache/lock"
M=/usr/lib/apache2/modules
cat > "$B/apache/httpd.conf" <<EOF
ServerName localhost
Listen 127.0.0.1:$A_PORT
PidFile $B/apache/httpd.pid
ErrorLog $B/apache/error.log
User www-data
Group www-data
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule dav_module $M/mod_dav.so
LoadModule dav_fs_module $M/mod_dav_fs.so
DavLockDB $B/apache/lock/DavLock
DocumentRoot $B/apache/www
LimitRequestBody 0
<Directory $B/apache/www>
    Dav On
    Require all granted
</Directory>
EOF
apache2 -f "$B/apache/httpd.conf" -DFOREGROUND &
PIDS+=($!)
wait_healthy_any() { # PORT: any HTTP answer
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
    return 1
}
wait_healthy_any $N_PORT || { cat "$B/nginx/error.log"; exit 1; }
wait_healthy_any $A_PORT || { cat "$B/apache/error.log"; exit 1; }

declare -A URL=([cairn]="http://127.0.0.1:$C_PORT/dav" [nginx]="http://127.0.0.1:$N_PORT" [apache]="http://127.0.0.1:$A_PORT")
hdr() { if [ "$1" = cairn ]; then printf '%s' "$AUTH"; else printf 'X-Bench: 1'; fi; }

echo "==> preparing 1 GiB of random data" >&2
head -c 1G /dev/urandom > "$B/1g.bin"
head -c 4096 /dev/urandom > "$B/4k.bin"
printf 'small file\n' > "$B/small.txt"

declare -A R
put_gib() { # NAME -> MB/s (uploads over the same name, so each run replaces the last)
    curl -s -o /dev/null -H "$(hdr "$1")" -T "$B/1g.bin" -w '%{speed_upload}' "${URL[$1]}/gib.bin" | awk '{printf "%.0f", $1/1e6}'
}
get_gib() {
    curl -s -H "$(hdr "$1")" -T "$B/1g.bin" -o /dev/null "${URL[$1]}/get.bin"
    curl -s -o /dev/null -H "$(hdr "$1")" -w '%{speed_download}' "${URL[$1]}/get.bin" | awk '{printf "%.0f", $1/1e6}'
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
# What the disk itself does with 1 GiB written to a new file and fsynced, measured as the PUTs
# are (three in a row, median; the files stay, as Cairn keeps each replaced upload as a
# version): the ceiling of a durable PUT. Cairn answers a PUT once its data is on disk; nginx
# and Apache answer once it is in the page cache, so their PUT figures can pass this line.
echo "==> the disk: 1 GiB written to a new file and fsynced (dd conv=fsync), median of 3" >&2
d=()
for i in 1 2 3; do
    sync
    d+=("$(dd if="$B/1g.bin" of="$B/dd-$i.bin" bs=1M conv=fsync 2>&1 | awk '/copied/ {for (f = 1; f <= NF; f++) if ($f == "s,") printf "%.0f", 1073741824 / $(f - 1) / 1e6}')")
done
R[disk]=$(median3 "${d[@]}")
for s in cairn nginx apache; do
    echo "==> $s: 1 GiB PUT and GET, median of 3 (single runs swing with the page cache)" >&2
    p=(); g=()
    for _ in 1 2 3; do
        sync; p+=("$(put_gib $s)")
        sync; g+=("$(get_gib $s)")
    done
    R[$s,put]=$(median3 "${p[@]}")
    R[$s,get]=$(median3 "${g[@]}")
done

for s in cairn nginx apache; do
    echo "==> $s: 4 KiB GETs, 50 connections, 10 s (wrk)" >&2
    curl -s -o /dev/null -H "$(hdr $s)" -T "$B/4k.bin" "${URL[$s]}/4k.bin"
    R[$s,rps]=$(wrk -t2 -c50 -d10s -H "$(hdr $s)" "${URL[$s]}/4k.bin" | awk '/Requests\/sec/ {printf "%.0f", $2}')
done

small_puts() { # NAME -> files/s: 2,000 PUTs from 8 keep-alive clients of 250 each
    local s=$1
    curl -s -o /dev/null -H "$(hdr $s)" -X MKCOL "${URL[$s]}/small/" || true
    local t0 t1
    t0=$(date +%s.%N)
    for c in $(seq 1 8); do
        args=()
        for i in $(seq 1 250); do args+=(-o /dev/null -T "$B/small.txt" "${URL[$s]}/small/c$c-f$i.txt"); done
        curl -s -o /dev/null -H "$(hdr $s)" "${args[@]}" &
    done
    wait
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", 2000/(b-a)}'
}
for s in cairn nginx apache; do
    echo "==> $s: 2,000 small-file PUTs, 8 keep-alive clients" >&2
    # Each server starts from the same state of the filesystem: written back, and nothing
    # deleted in the last 5 s. On ext4 without a journal, creating a file walks past every
    # inode deleted in the last 5 s (300 s while its inode table is not yet written back), so
    # whoever ran just after the 1 GiB overwrites and the previous run's clean-up paid for them.
    sync; sleep 6
    R[$s,small]=$(small_puts $s)
done

propfind_lat() { # NAME -> "p50 p99" in ms for PROPFIND Depth 1 (allprop) on a 1,000-entry folder
    local s=$1
    curl -s -o /dev/null -H "$(hdr $s)" -X MKCOL "${URL[$s]}/thousand/" || true
    args=()
    for i in $(seq 1 1000); do args+=(-o /dev/null -T "$B/small.txt" "${URL[$s]}/thousand/entry-$i.txt"); done
    curl -s -o /dev/null -H "$(hdr $s)" "${args[@]}"
    body='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
    args=()
    for i in $(seq 1 200); do
        [ $i -gt 1 ] && args+=(--next)
        args+=(-s -o /dev/null -w '%{http_code} %{time_total}\n' -X PROPFIND -H "$(hdr $s)" -H "Depth: 1"
               -H "Content-Type: application/xml" --data "$body" "${URL[$s]}/thousand/")
    done
    # Every answer must be a 207 multistatus, or the figure means nothing.
    curl "${args[@]}" | awk '$1 != 207 { print "PROPFIND answered " $1 > "/dev/stderr"; exit 1 } { print $2 }' | sort -n | awk '{v[NR]=$1} END {printf "%.1f %.1f", v[int(NR*0.5)]*1000, v[int(NR*0.99)]*1000}'
}
for s in cairn nginx apache; do
    echo "==> $s: PROPFIND Depth 1 on 1,000 entries, 200 requests" >&2
    read -r R[$s,p50] R[$s,p99] <<< "$(propfind_lat $s)"
done

echo "==> Cairn over TLS (self-signed)" >&2
kill -TERM "$CAIRN_PID"; wait "$CAIRN_PID" 2>/dev/null || true
sed -i 's/^\[http\]$/[http]\ntls = "self-signed"/' "$B/cairn/cairnd.toml"
start_cairn
for _ in $(seq 1 100); do curl -sk -o /dev/null "https://127.0.0.1:$C_PORT/healthz" && break; sleep 0.1; done
TLS_URL="https://127.0.0.1:$C_PORT/dav"
for v in 1.1 2; do
    R[tls$v,put]=$(curl -sk --http$v -o /dev/null -H "$AUTH" -T "$B/1g.bin" -w '%{speed_upload}' "$TLS_URL/tls-$v.bin" | awk '{printf "%.0f", $1/1e6}')
    R[tls$v,get]=$(curl -sk --http$v -o /dev/null -H "$AUTH" -w '%{speed_download}' "$TLS_URL/tls-$v.bin" | awk '{printf "%.0f", $1/1e6}')
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a/b; else print "-" }'; }
echo
printf '%-44s %10s %10s %10s %12s %12s\n' "WebDAV, loopback" cairn nginx apache "vs nginx" "vs apache"
row() { # label key higher-is-better(1|0)
    local c=${R[cairn,$2]} n=${R[nginx,$2]} a=${R[apache,$2]}
    if [ "$3" = 1 ]; then
        printf '%-44s %10s %10s %10s %12s %12s\n' "$1" "$c" "$n" "$a" "$(ratio "$c" "$n")" "$(ratio "$c" "$a")"
    else
        printf '%-44s %10s %10s %10s %12s %12s\n' "$1" "$c" "$n" "$a" "$(ratio "$n" "$c")" "$(ratio "$a" "$c")"
    fi
}
row "1 GiB PUT (MB/s)" put 1
row "1 GiB GET (MB/s)" get 1
row "4 KiB GET, 50 connections (req/s)" rps 1
row "small-file PUT, 8 clients (files/s)" small 1
row "PROPFIND D1 allprop, 1,000 entries p50 (ms)" p50 0
row "PROPFIND D1 allprop, 1,000 entries p99 (ms)" p99 0
echo
echo "Cairn over TLS: HTTP/1.1 PUT ${R[tls1.1,put]} MB/s, GET ${R[tls1.1,get]} MB/s; HTTP/2 PUT ${R[tls2,put]} MB/s, GET ${R[tls2,get]} MB/s"
echo "The disk, 1 GiB to a new file and fsynced (dd conv=fsync): ${R[disk]} MB/s; Cairn's 1 GiB PUT is $(ratio "${R[cairn,put]}" "${R[disk]}") of it"
echo "(Cairn answers a PUT once it is durable, after an fsync or a PostgreSQL commit; the peers do not fsync)"
echo "(ratios > 1 mean Cairn is ahead; Cairn authenticates every request, the peers do not)"
