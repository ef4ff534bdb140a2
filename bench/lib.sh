# Shared helpers of the benchmark scripts (bench/compare.sh,
# bench/activation.sh). Sourced, not run. The sourcing script sets
# BENCH_NAME (for messages) before sourcing, and TMP once it has made its
# temporary directory.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

# install_missing CMD:PACKAGE...: installs (apt, as root) the packages whose
# command is missing from PATH and /usr/sbin.
install_missing() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] \
            || need+=("${pair#*:}")
    done
    if [ ${#need[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || die "need root to install ${need[*]}"
        log "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    export PATH="$PATH:/usr/sbin:/sbin"
}

# Builds portcullis and portcullis-loadgen in release mode; sets PORTCULLIS
# and LOADGEN to the binaries.
build_release() {
    log "building portcullis and portcullis-loadgen (release)"
    (cd "$ROOT" && cargo build --release --quiet -p portcullis -p portcullis-loadgen)
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    PORTCULLIS="$target/release/portcullis"
    LOADGEN="$target/release/portcullis-loadgen"
    if [ ! -x "$PORTCULLIS" ] || [ ! -x "$LOADGEN" ]; then
        die "release binaries missing in $target/release"
    fi
}

# require_free_ports PORT...: stops if something listens on one of them.
require_free_ports() {
    local p
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            die "port $p on 127.0.0.1 is in use; set BASE_PORT"
        fi
    done
}

# Processes to stop on exit (name -> pid) and directories to remove
# (unless KEEP_TMP=1).
declare -A PID=()
CLEANUP_DIRS=()
cleanup() {
    local p
    for p in "${PID[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PID[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "kept ${CLEANUP_DIRS[*]}"
    elif [ ${#CLEANUP_DIRS[@]} -gt 0 ]; then
        rm -rf "${CLEANUP_DIRS[@]}"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port what
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$2 did not listen on 127.0.0.1:$1 (logs in $TMP; KEEP_TMP=1 keeps them)"
}

# make_pki DIR CLIENT_SPIFFE_ID: a CA, a server certificate for localhost
# and 127.0.0.1, and the load generator's client certificate, made with the
# project's own commands.
make_pki() {
    log "creating a PKI in $1"
    mkdir -p "$1"
    "$PORTCULLIS" pki init "$1" >/dev/null
    "$PORTCULLIS" pki issue --dir "$1" --name server --server --dns localhost --ip 127.0.0.1 >/dev/null
    "$PORTCULLIS" pki issue --dir "$1" --name loadgen --spiffe-id "$2" >/dev/null
}

# Numeric / string field of a one-line JSON object.
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
sfield() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" <<<"$1"; }

# CPU time (µs) used so far by a process and its direct children (nginx
# workers), all threads including those that have exited: utime + stime
# from /proc/PID/stat, in clock ticks.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
cpu_us() {
    local total=0 p t
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + ${t:-0}))
    done
    echo $((total * TICK_US))
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
maximum() { printf '%s\n' "$@" | sort -g | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
verdict() { if "$@"; then echo "met"; else echo "NOT met"; fi; }

# rotated ROUND ITEM...: the items, starting at position ROUND (mod their
# number). The machine is shared: rounds interleave what they measure in a
# rotating order so a burst of outside load does not land on one only.
rotated() {
    local round=$1 i
    shift
    for ((i = 0; i < $#; i++)); do
        local k=$(((i + round) % $# + 1))
        echo "${!k}"
    done
}

# --- nginx (the upstream, and a peer in compare.sh) ------------------------------
# Worker connections: NGINX_CONNECTIONS (default 4096); with FD_LIMIT set,
# also worker_rlimit_nofile.
nginx_common() { # name
    echo "worker_processes 1;"
    echo "pid $TMP/$1.pid;"
    echo "error_log $TMP/$1.error.log warn;"
    if [ -n "${FD_LIMIT:-}" ]; then echo "worker_rlimit_nofile $FD_LIMIT;"; fi
    echo "events { worker_connections ${NGINX_CONNECTIONS:-4096}; }"
}
nginx_http_common() { # name
    cat <<EOF
    access_log off;
    client_body_temp_path $TMP/$1-body;
    proxy_temp_path $TMP/$1-proxy;
    fastcgi_temp_path $TMP/$1-fastcgi;
    uwsgi_temp_path $TMP/$1-uwsgi;
    scgi_temp_path $TMP/$1-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
EOF
}
start_nginx() { # name: runs $TMP/NAME.conf in the foreground, stopped on exit
    "$NGINX" -p "$TMP/" -e "$TMP/$1.error.log" -c "$TMP/$1.conf" -g 'daemon off;' \
        >"$TMP/$1.out" 2>&1 &
    PID[$1]=$!
}

# start_upstream PORT: nginx answering `200 ok` to every request.
start_upstream() {
    {
        nginx_common upstream
        cat <<EOF
http {
$(nginx_http_common upstream)
    server {
        listen 127.0.0.1:$1;
        location / {
            default_type text/plain;
            return 200 "ok\n";
        }
    }
}
EOF
    } >"$TMP/upstream.conf"
    start_nginx upstream
    wait_port "$1" "upstream nginx"
}

# gateway_listener_yaml PORT: the gateway's `listeners:` section, mTLS
# required against the PKI of make_pki ($PKI) and TRUST_DOMAIN. The idle
# timeout is set well above the memory test's hold time.
gateway_listener_yaml() {
    cat <<EOF
listeners:
  - name: public
    bind: 127.0.0.1:$1
    tls:
      cert: $PKI/server.pem
      key: $PKI/server.key
      client_ca: $PKI/ca-bundle.pem
      client_auth: required
      spiffe_trust_domains: [$TRUST_DOMAIN]
    limits: { max_connections: 20000 }
    timeouts: { idle: 120s }
EOF
}
