#!/usr/bin/env bash
# Build and run Cairn with a managed local PostgreSQL.
#
#   scripts/run.sh [DATA_DIR]
#
# DATA_DIR defaults to /var/lib/cairn as root (the managed PostgreSQL runs as the `postgres`
# user and must reach it) and ./cairn-data otherwise. CAIRN_LISTEN sets the HTTP address
# (default 127.0.0.1:8080); an address beyond loopback gets TLS with a self-signed certificate
# whose SHA-256 fingerprint is printed (`cairn login --fingerprint` pins it). CAIRN_MOUNT=/srv/cairn (as root, with /dev/fuse) also mounts the
# FUSE view of every user's files there. The first start creates the user `admin` and prints
# its password.
. "$(dirname "$0")/../scripts/lib.sh"

have_pg_server || need_pkgs postgresql
echo "==> building (cargo build --release)" >&2
cargo build --release --bins

if [ "$(id -u)" = 0 ]; then default_dir=/var/lib/cairn; else default_dir=$PWD/cairn-data; fi
data_dir=${1:-${CAIRN_DATA_DIR:-$default_dir}}
mkdir -p "$data_dir"
data_dir=$(cd "$data_dir" && pwd)
listen=${CAIRN_LISTEN:-127.0.0.1:8080}
config=$data_dir/cairnd.toml
if [ ! -f "$config" ]; then
    cat > "$config" <<TOML
# Cairn server configuration; every key is described in README.md.
data_dir = "$data_dir"

[http]
listen = "$listen"
TOML
    case "$listen" in
        127.*|localhost:*|'[::1]':*) ;;
        # Reachable from elsewhere: passwords must not cross the network in clear.
        *) sed -i 's/^\[http\]$/[http]\ntls = "self-signed"/' "$config" ;;
    esac
    if [ -n "${CAIRN_MOUNT:-}" ]; then
        need_pkgs fuse3
        printf '\n[fuse]\nmountpoint = "%s"\n' "$CAIRN_MOUNT" >> "$config"
    fi
    echo "==> wrote $config" >&2
fi
port=$(sed -n 's/^listen = ".*:\([0-9]*\)"/\1/p' "$config" | head -n1)

target/release/cairnd --config "$config" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; exit' INT TERM
scheme=http
grep -q '^tls = ' "$config" && scheme=https
if [ "$scheme" = https ]; then ready() { wait_listening "$@"; }; else ready() { wait_healthy "$@"; }; fi
if ! ready "$port" 120; then
    echo "error: cairnd did not become healthy; see the messages above" >&2
    kill -TERM $pid 2>/dev/null || true
    exit 1
fi
pw_file=$data_dir/.cairn/initial-admin-password
echo
host=${listen%:*}
case "$host" in 0.0.0.0|'[::]') host=$(hostname) ;; esac
echo "Cairn is running at $scheme://$host:$port/  (data in $data_dir)"
cert=$data_dir/.cairn/tls/cert.pem
if [ "$scheme" = https ] && [ -f "$cert" ]; then
    fp=$(sed '/-----/d' "$cert" | base64 -d | sha256sum | cut -d' ' -f1 | tr a-f A-F | sed 's/../&:/g; s/:$//')
    echo "TLS certificate (self-signed), SHA-256 fingerprint:"
    echo "    $fp"
    echo "Check it when your browser asks; sync clients pin it: cairn login $scheme://$host:$port --fingerprint $fp ..."
fi
if [ -f "$pw_file" ]; then
    echo "First admin: user 'admin', password '$(cat "$pw_file")' (also in $pw_file)"
fi
mount_point=$(sed -n 's/^mountpoint = "\(.*\)"/\1/p' "$config" | head -n1)
if [ -n "$mount_point" ]; then
    echo "FUSE mount:  $mount_point/USER/ (every user's files, versioned and under quota)"
fi
echo "Admin CLI:   target/release/cairnctl --config $config status"
echo "Stop with Ctrl-C."
wait $pid
