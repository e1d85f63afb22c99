# Shared by run.sh, test.sh and the benches, each of which starts with
#   . "$(dirname "$0")/../scripts/lib.sh"
# Strict mode, the repository root as the working directory, and the helpers below.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# need_pkgs PKG... : install the Debian packages that are missing (as root), or stop with a
# message naming them.
need_pkgs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing ${missing[*]} (apt-get)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        echo "error: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
}

# need_cargo_tools TOOL... : command-line tools published on crates.io (installed with
# `cargo install --locked` into ~/.cargo/bin when missing).
need_cargo_tools() {
    local missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing ${missing[*]} (cargo install --locked)" >&2
    cargo install --locked --quiet "${missing[@]}" >&2
    export PATH="$HOME/.cargo/bin:$PATH"
}

# have_pg_server: the PostgreSQL server binaries are somewhere cairnd looks.
have_pg_server() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

# wait_healthy PORT SECONDS : poll GET /healthz with bash's /dev/tcp (no curl needed). The probe
# runs in a subshell so its redirections never touch the caller's stdout and stderr.
wait_healthy() {
    local port=$1 limit=$2 start=$SECONDS
    while (( SECONDS - start < limit )); do
        if ( exec 3<>"/dev/tcp/127.0.0.1/$port" \
             && printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3 \
             && head -n1 <&3 | grep -q " 200 " ) 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# wait_listening PORT SECONDS : wait until something accepts connections on PORT (for a TLS
# port, which the plain probe of wait_healthy cannot speak to).
wait_listening() {
    local port=$1 limit=$2 start=$SECONDS
    while (( SECONDS - start < limit )); do
        if ( exec 3<>"/dev/tcp/127.0.0.1/$port" ) 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# bench_setup PACKAGE... : what every bench needs first: PostgreSQL's server and the PACKAGEs
# (installed as root), and the release build.
bench_setup() {
    have_pg_server || need_pkgs postgresql
    [ $# -eq 0 ] || need_pkgs "$@"
    cargo build --release --bins --quiet
}

# bench_cairnd NAME PORT [EXT4_MB] : start the release cairnd (managed PostgreSQL, log level
# warn) on 127.0.0.1:PORT with its data in a fresh folder B=${BENCH_DIR:-/tmp}/NAME.XXXXXX; stop
# it and remove B on exit (after `bench_teardown`, if the bench defines one). With EXT4_MB (and
# FS unset or ext4), B is a fresh journaled ext4 of that size (see fresh_ext4; as root), as the
# other benches use. With FUSE_MNT (a folder name), cairnd also mounts at B/FUSE_MNT. Sets B and
# PID; fails with the log if it does not become healthy.
bench_cairnd() {
    B=$(mktemp -d "${BENCH_DIR:-/tmp}/$1.XXXXXX")
    LOOP=
    PID=
    if [ -n "${3:-}" ] && [ "${FS:-ext4}" = ext4 ]; then
        fresh_ext4 "$B" "$3"
    fi
    chmod 755 "$B"
    trap 'if declare -F bench_teardown >/dev/null; then bench_teardown; fi; [ -z "$PID" ] || kill -TERM "$PID" 2>/dev/null; wait 2>/dev/null || true; if [ -n "$LOOP" ]; then drop_ext4 "$B"; rmdir "$B"; else rm -rf "$B" "$B.img"; fi' EXIT
    cat > "$B/cairnd.toml" <<TOML
data_dir = "$B/data"
[http]
listen = "127.0.0.1:$2"
[log]
level = "warn"
TOML
    if [ -n "${FUSE_MNT:-}" ]; then
        printf '[fuse]\nmountpoint = "%s"\n' "$B/$FUSE_MNT" >> "$B/cairnd.toml"
    fi
    target/release/cairnd --config "$B/cairnd.toml" 2>>"$B/log" &
    PID=$!
    wait_healthy "$2" 60 || { cat "$B/log"; exit 1; }
}

# bench_start NAME PORT PACKAGE... : bench_setup PACKAGE..., bench_cairnd NAME PORT, and the
# admin account `bench` (password bench-password-1); sets PORT. For the benches of one server.
bench_start() {
    local name=$1
    PORT=$2
    shift 2
    bench_setup "$@"
    bench_cairnd "$name" "$PORT"
    bench_user bench --admin
}

# sparse_source FILE SIZE : a sparse file of SIZE bytes for the large-upload benches, with a
# little real data at both ends and in the middle, so the stored hash checks placement too.
sparse_source() {
    truncate -s "$2" "$1"
    head -c 1048576 /dev/urandom | dd of="$1" conv=notrunc status=none
    head -c 1048576 /dev/urandom | dd of="$1" bs=1M seek=$(($2 / 2 / 1048576)) conv=notrunc status=none
    head -c 4096 /dev/urandom | dd of="$1" bs=4096 seek=$(($2 / 4096 - 1)) conv=notrunc status=none
}

# bench_user NAME [--admin] : add the account NAME with the password bench-password-1.
bench_user() {
    echo "bench-password-1" | target/release/cairnctl --config "$B/cairnd.toml" user add "$@" --password-stdin >/dev/null
}

# fresh_ext4 DIR SIZE_MB : mount on the empty folder DIR a fresh ext4 with a journal (mkfs.ext4's
# defaults) of SIZE_MB, a sparse image DIR.img on a loop device with direct I/O; sets LOOP.
# drop_ext4 DIR undoes it. Benches run every target on one such file system: a VM's root ext4
# may have no journal, and without one ext4 skips inodes deleted in the last minutes when it
# makes a file, so creates slow down after mass deletes (whoever ran after another's clean-up
# paid for it).
fresh_ext4() {
    truncate -s "$2M" "$1.img"
    mkfs.ext4 -q -F "$1.img"
    LOOP=$(losetup --direct-io=on --find --show "$1.img")
    mount "$LOOP" "$1"
}
drop_ext4() {
    umount "$1" 2>/dev/null || umount -l "$1" || true
    if [ -n "${LOOP:-}" ]; then losetup -d "$LOOP" || true; fi
    rm -f "$1.img"
}
