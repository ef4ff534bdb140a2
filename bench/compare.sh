#!/usr/bin/env bash
# Side-by-side mTLS benchmark: nginx, haproxy and Portcullis terminate
# mutual TLS on 127.0.0.1 and proxy to the same nginx upstream; one load
# generator (bench/loadgen) drives each in turn.
#
# Measures, per proxy: keep-alive throughput and latency, full mTLS
# handshakes per second (no resumption), the proxy's CPU time per request
# and per handshake, and resident memory per idle mTLS connection. Prints
# a summary table, the ratios of Portcullis to each peer, and the same
# summary as markdown at the end (for docs/benchmarks.md).
#
# All processes share the machine's cores: each proxy runs one worker
# (nginx worker_processes 1, haproxy nbthread 1, portcullis --workers 1),
# next to the upstream nginx (one worker) and the load generator (one
# thread by default). CPU time per request does not depend on how much
# CPU the proxy got, so it is the figure to compare on a busy machine.
#
# Usage: bench/compare.sh        (as root on Debian; installs nginx and
#                                 haproxy with apt when missing)
#        bench/compare.sh jwt    (or SCENARIO=jwt): bearer tokens instead;
#                                 see "Scenario jwt" below
# Scenario jwt: haproxy (jwt_verify, ES256) and Portcullis (bearer section)
# both require a valid ES256 JWT in `Authorization: Bearer` on top of
# mTLS, with one worker each, in front of the same nginx upstream. The
# script makes a P-256 key, its JWKS and the tokens (openssl + python3),
# checks that both refuse tampered, foreign-key, expired, wrong-audience
# and wrong-issuer tokens and accept the valid one, then measures
# keep-alive throughput, latency and CPU per request for haproxy,
# Portcullis with one token (answered from its verified-token cache after
# the first request) and Portcullis with a cache of one entry and
# JWT_TOKENS distinct tokens rotated per request (a signature check on
# every request, as haproxy does). Handshake and idle-memory measurements
# are skipped.
# Tunables (environment, defaults in brackets):
#   CONNECTIONS [32]      keep-alive connections
#   ROUNDS [3]            interleaved rounds per measurement (medians are reported)
#   DURATION [5]          seconds of keep-alive load per proxy and round
#   WARMUP [2]            seconds of warm-up per proxy
#   HS_CONNECTIONS [16]   concurrent handshake loops
#   HS_DURATION [3]       seconds of handshake load per proxy and round
#   IDLE_CONNECTIONS [10000]  idle mTLS connections for the memory test
#   IDLE_HOLD [5]         seconds the idle connections are held
#   LOADGEN_THREADS [1]   load generator threads
#   KX [x25519]           key exchange the client offers (x25519, p256, default)
#   BASE_PORT [18400]     first of five consecutive ports on 127.0.0.1
#                         (seven in scenario jwt)
#   KEEP_TMP [0]          1 keeps the temporary directory (configs, logs)
#   SCENARIO [mtls]       mtls (the default run) or jwt; the first argument
#                         overrides it
#   JWT_TOKENS [256]      distinct tokens rotated in the uncached jwt variant
#   ASSERTION_SCOPE [request]  Portcullis's identity_assertion.scope:
#                         request (an ES256 assertion signed per request,
#                         the default) or connection (one per connection,
#                         route and bearer token, reused; docs/operations.md)
# Every server listens on 127.0.0.1 only; nothing leaves the machine.
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
HS_CONNECTIONS=${HS_CONNECTIONS:-16}
HS_DURATION=${HS_DURATION:-3}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
KX=${KX:-x25519}
BASE_PORT=${BASE_PORT:-18400}
KEEP_TMP=${KEEP_TMP:-0}
SCENARIO=${1:-${SCENARIO:-mtls}}
JWT_TOKENS=${JWT_TOKENS:-256}
ASSERTION_SCOPE=${ASSERTION_SCOPE:-request}
case $ASSERTION_SCOPE in
    request | connection) ;;
    *) printf 'compare.sh: ASSERTION_SCOPE must be request or connection\n' >&2; exit 1 ;;
esac

UPSTREAM_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
HAPROXY_PORT=$((BASE_PORT + 2))
PORTCULLIS_PORT=$((BASE_PORT + 3))
PORTCULLIS_ADMIN_PORT=$((BASE_PORT + 4))
NOCACHE_PORT=$((BASE_PORT + 5))
NOCACHE_ADMIN_PORT=$((BASE_PORT + 6))
PROXIES=(nginx haproxy portcullis)
TRUST_DOMAIN=bench.portcullis.test
CLIENT_ID="spiffe://$TRUST_DOMAIN/ns/bench/sa/loadgen"
REQ_PATH=/bench/hello

BENCH_NAME=compare.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case $SCENARIO in
    mtls | jwt) ;;
    *) die "unknown scenario \`$SCENARIO\` (mtls or jwt)" ;;
esac

# --- tools -----------------------------------------------------------------
TOOLS=(nginx:nginx haproxy:haproxy pgrep:procps)
if [ "$SCENARIO" = jwt ]; then TOOLS+=(curl:curl python3:python3 openssl:openssl); fi
install_missing "${TOOLS[@]}"
NGINX=$(command -v nginx)
HAPROXY=$(command -v haproxy)

LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
build_release

# 10 000 idle connections need as many descriptors in the client and in
# each server: raise the soft limit to the hard one (children inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((IDLE_CONNECTIONS + 512)) ]; then
    die "open file limit $FD_LIMIT is too low for IDLE_CONNECTIONS=$IDLE_CONNECTIONS"
fi

USED_PORTS=("$UPSTREAM_PORT" "$NGINX_PORT" "$HAPROXY_PORT" "$PORTCULLIS_PORT" "$PORTCULLIS_ADMIN_PORT")
if [ "$SCENARIO" = jwt ]; then USED_PORTS+=("$NOCACHE_PORT" "$NOCACHE_ADMIN_PORT"); fi
require_free_ports "${USED_PORTS[@]}"

# --- cleanup -----------------------------------------------------------------
TMP=$(mktemp -d /tmp/portcullis-compare.XXXXXX)
CLEANUP_DIRS=("$TMP")

# Sum of VmRSS (KiB) of a process and its direct children (nginx workers).
rss_kib() {
    local total=0 p v
    for p in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# --- PKI (the project's own commands) -------------------------------------------
PKI="$TMP/pki"
make_pki "$PKI" "$CLIENT_ID"
cat "$PKI/server.pem" "$PKI/server.key" >"$TMP/haproxy-server.pem"

# --- upstream: nginx with a fixed 200 ------------------------------------------
NGINX_CONNECTIONS=$((IDLE_CONNECTIONS + 2048))
start_upstream "$UPSTREAM_PORT"

# --- measurement helpers ---------------------------------------------------------
# A scenario may set LOADGEN_ARGS_FN to a function that prints extra load
# generator arguments for a proxy, one per line.
LOADGEN_ARGS_FN=""
loadgen() { # proxy args...
    local proxy=$1 extra=()
    shift
    if [ -n "$LOADGEN_ARGS_FN" ]; then
        mapfile -t extra < <("$LOADGEN_ARGS_FN" "$proxy")
    fi
    "$LOADGEN" --url "https://127.0.0.1:${PORT[$proxy]}$REQ_PATH" --sni localhost \
        --ca "$PKI/ca-bundle.pem" --cert "$PKI/loadgen.pem" --key "$PKI/loadgen.key" \
        --threads "$LOADGEN_THREADS" --kx "$KX" "${extra[@]}" "$@"
}

# A run that saw errors or non-2xx answers measured the wrong thing.
check_clean() { # proxy json
    local errors non2xx
    errors=$(field "$2" errors)
    non2xx=$(field "$2" non_2xx)
    if [ "${errors:-1}" != 0 ] || [ "${non2xx:-1}" != 0 ]; then
        die "$1: errors=$errors non_2xx=$non2xx: $2"
    fi
}

declare -A RPS=() P50=() P99=() P999=() CPU_REQ=() UP_CPU=() HS=() HS_P99=() CPU_HS=() KIB=() TLS=() STILL=()

# The machine is shared: rounds interleave the proxies (rotated, see
# bench/lib.sh) and each figure is the median over the rounds. Server CPU
# time per request does not depend on how much CPU the server got. The
# upstream nginx's CPU time per request is measured too: it is what each
# proxy's forwarded requests cost the protected service (Portcullis adds
# its identity assertion and forwarding headers, haproxy one header).

# measure MODE DURATION ARGS...: ROUNDS interleaved runs; sets R_<field>[proxy]
# to space-separated per-round values.
declare -A R_RATE=() R_P50=() R_P99=() R_P999=() R_CPU=() R_UCPU=()
measure() {
    local mode=$1 secs=$2 round p out c0 c1 u0 u1 n rate cpu ucpu
    shift 2
    R_RATE=() R_P50=() R_P99=() R_P999=() R_CPU=() R_UCPU=()
    for ((round = 0; round < ROUNDS; round++)); do
        for p in $(rotated "$round" "${PROXIES[@]}"); do
            c0=$(cpu_us "${PID[$p]}")
            u0=$(cpu_us "${PID[upstream]}")
            out=$(loadgen "$p" "$@" --duration "$secs")
            c1=$(cpu_us "${PID[$p]}")
            u1=$(cpu_us "${PID[upstream]}")
            check_clean "$p" "$out"
            n=$(field "$out" requests)
            cpu=$(awk -v c=$((c1 - c0)) -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? c / n : 0) }')
            ucpu=$(awk -v c=$((u1 - u0)) -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? c / n : 0) }')
            echo "   round $((round + 1)) $p: $out cpu_us_per_iteration=$cpu upstream_cpu_us_per_iteration=$ucpu" >&2
            if [ "$mode" = handshakes ]; then rate=$(field "$out" handshakes_per_s); else rate=$(field "$out" rps); fi
            R_RATE[$p]+="$rate "
            R_P50[$p]+="$(field "$out" p50_us) "
            R_P99[$p]+="$(field "$out" p99_us) "
            R_P999[$p]+="$(field "$out" p999_us) "
            R_CPU[$p]+="$cpu "
            R_UCPU[$p]+="$ucpu "
            TLS[$p]=$(sfield "$out" tls)
        done
    done
}


# --- scenario jwt: bearer tokens, haproxy jwt_verify vs Portcullis ----------------
JWT_ISS=https://idp.bench
JWT_AUD=https://api.bench
JWT_KID=k1
# Tokens both proxies must refuse (besides a request without a token).
JWT_MUST_REFUSE=(tampered_payload other_key expired wrong_aud wrong_iss alg_hs256 no_exp)
# Tokens on which the two verifiers differ by design; printed, not enforced.
JWT_INFO=(not_yet_valid unknown_kid duplicate_aud aud_array)

# Writes the key pair, the JWKS and the tokens to DIR with the openssl
# command line; python3 (standard library only) does the JSON, base64url
# and the DER -> r||s conversion of openssl's ECDSA signatures.
make_jwt_material() { # dir
    local d=$1
    mkdir -p "$d"
    openssl ecparam -genkey -name prime256v1 -noout -out "$d/ec.key"
    openssl pkey -in "$d/ec.key" -out "$d/key.pem"            # PKCS#8
    openssl pkey -in "$d/key.pem" -pubout -out "$d/pub.pem"    # for haproxy
    openssl pkey -pubin -in "$d/pub.pem" -outform DER -out "$d/pub.der"
    openssl ecparam -genkey -name prime256v1 -noout -out "$d/other-ec.key"
    openssl pkey -in "$d/other-ec.key" -out "$d/other.pem"     # a key nobody trusts
    cat >"$d/jwt.py" <<'PY'
import base64, json, subprocess, sys

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def der_len(d, i):
    n = d[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    return int.from_bytes(d[i + 1:i + 1 + k], "big"), i + 1 + k

def jose_sig(der):
    # ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r||s, 32 bytes each
    if der[0] != 0x30:
        raise ValueError("signature is not a DER sequence")
    _, i = der_len(der, 1)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("signature part is not a DER integer")
        n, i = der_len(der, i + 1)
        v = der[i:i + n].lstrip(b"\0")
        if len(v) > 32:
            raise ValueError("signature integer over 32 bytes")
        out += v.rjust(32, b"\0")
        i += n
    return out

def compact(obj, dup=None):
    text = json.dumps(obj, separators=(",", ":"))
    if dup:  # a second member of the same name after the first
        text = text[:-1] + "," + json.dumps(dup[0]) + ":" + json.dumps(dup[1]) + "}"
    return b64u(text.encode())

def token(key, header, claims, dup=None):
    signing_input = compact(header) + "." + compact(claims, dup)
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                         input=signing_input.encode(), capture_output=True, check=True).stdout
    return signing_input + "." + b64u(jose_sig(der))

cmd = sys.argv[1]
if cmd == "jwks":  # jwks PUB_DER KID
    der = open(sys.argv[2], "rb").read()
    point = der[-65:]  # SubjectPublicKeyInfo ends with the uncompressed point 04||x||y
    if len(point) != 65 or point[0] != 4:
        raise ValueError("not an uncompressed P-256 point")
    print(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": b64u(point[1:33]),
                                "y": b64u(point[33:]), "kid": sys.argv[3], "use": "sig",
                                "alg": "ES256"}]}))
elif cmd == "tokens":  # tokens KEY OTHER_KEY ISS AUD KID OUTDIR N
    key, other, iss, aud, kid, out, n = sys.argv[2:9]
    hdr = {"alg": "ES256", "typ": "JWT", "kid": kid}
    far = 4102444800  # 2100-01-01
    claims = {"iss": iss, "aud": aud, "sub": "bench-user", "iat": 1700000000, "exp": far}
    valid = token(key, hdr, claims)
    h, _, sig = valid.split(".")
    cases = {
        "valid": valid,
        # the signature of `valid` on a payload naming another subject
        "tampered_payload": h + "." + compact(dict(claims, sub="admin")) + "." + sig,
        "other_key": token(other, hdr, claims),
        "expired": token(key, hdr, dict(claims, exp=1700000600)),
        "wrong_aud": token(key, hdr, dict(claims, aud="https://other.bench")),
        "wrong_iss": token(key, hdr, dict(claims, iss="https://evil.bench")),
        "alg_hs256": token(key, dict(hdr, alg="HS256"), claims),
        "no_exp": token(key, hdr, {k: v for k, v in claims.items() if k != "exp"}),
        "not_yet_valid": token(key, hdr, dict(claims, nbf=far - 3600)),
        "unknown_kid": token(key, dict(hdr, kid=kid + "-unknown"), claims),
        "duplicate_aud": token(key, hdr, claims, dup=("aud", "https://other.bench")),
        "aud_array": token(key, hdr, dict(claims, aud=["https://other.bench", aud])),
    }
    for name, t in cases.items():
        with open(f"{out}/{name}.hdr", "w") as f:
            f.write(f"authorization: Bearer {t}\n")
    # distinct valid tokens (by jti) for the uncached variant
    with open(f"{out}/rotating.txt", "w") as f:
        for i in range(int(n)):
            f.write("Bearer " + token(key, hdr, dict(claims, jti=f"bench-{i}")) + "\n")
else:
    sys.exit(f"unknown command {cmd}")
PY
    python3 "$d/jwt.py" jwks "$d/pub.der" "$JWT_KID" >"$d/jwks.json"
    python3 "$d/jwt.py" tokens "$d/key.pem" "$d/other.pem" "$JWT_ISS" "$JWT_AUD" "$JWT_KID" \
        "$d" "$JWT_TOKENS"
}

# Portcullis with mTLS, the bearer section, a policy that grants the bench
# route to token holders only, and audit to a file.
write_portcullis_jwt() { # name port admin_port cache_entries(empty: default)
    local cache=""
    [ -n "$4" ] && cache="  cache_entries: $4"
    cat >"$TMP/$1.yaml" <<EOF
$(gateway_listener_yaml "$2")
routes:
  - name: bench
    path_prefix: /bench
    upstream:
      url: http://127.0.0.1:$UPSTREAM_PORT
policy:
  file: $TMP/policy-jwt.yaml
admin:
  bind: 127.0.0.1:$3
audit:
  dest: $TMP/$1-audit.log
identity_assertion:
  scope: $ASSERTION_SCOPE
bearer:
$cache
  issuers:
    - issuer: $JWT_ISS
      audiences: [$JWT_AUD]
      jwks_file: $JWT/jwks.json
      algorithms: [ES256]
EOF
    "$PORTCULLIS" config check "$TMP/$1.yaml" >"$TMP/$1.check" 2>&1 \
        || die "$1 rejects its configuration: $(cat "$TMP/$1.check")"
}

# Status code of one request carrying the token of CASE (none: no token).
jwt_status() { # port case
    local hdr=()
    [ "$2" != none ] && hdr=(-H "@$JWT/$2.hdr")
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$PKI/ca-bundle.pem" \
        --cert "$PKI/loadgen.pem" --key "$PKI/loadgen.key" "${hdr[@]}" \
        "https://127.0.0.1:$1$REQ_PATH" || true
}

# Sum of portcullis_bearer_tokens_total samples with result=RESULT.
bearer_count() { # admin_port result
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" \
        | awk -v r="result=\"$2\"" 'index($0, "portcullis_bearer_tokens_total{") == 1 && index($0, r) { s += $NF } END { printf "%d\n", s }'
}

jwt_loadgen_args() { # proxy
    case $1 in
        haproxy | portcullis) printf '%s\n' --header "$(cat "$JWT/valid.hdr")" ;;
        portcullis-nocache) printf '%s\n' --rotate-header "authorization:$JWT/rotating.txt" ;;
    esac
}

run_jwt() {
    JWT="$TMP/jwt"
    LOADGEN_ARGS_FN=jwt_loadgen_args
    log "making an ES256 key, its JWKS and $JWT_TOKENS + 12 tokens in $JWT"
    make_jwt_material "$JWT" 2>"$TMP/jwt.err" || die "token material: $(cat "$TMP/jwt.err")"

    # haproxy: the mTLS setup of the default run, plus the token checks
    # haproxy 2.6 can express: JOSE `alg`, signature with the one public
    # key, `iss`, `aud` (a single string) and `exp` (no leeway).
    cat >"$TMP/haproxy-jwt.cfg" <<EOF
global
    nbthread 1
    # No idle-connection test here: the keep-alive load needs few.
    maxconn 4096
    pidfile $TMP/haproxy-jwt.pid
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    timeout http-request 30s
    timeout http-keep-alive 300s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $TMP/haproxy-server.pem ca-file $PKI/ca-bundle.pem verify required alpn http/1.1
    http-request set-var(txn.bearer) req.hdr(authorization),word(2," ")
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('\$.alg') -m str ES256 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("ES256","$JWT/pub.pem") -m int 1 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $JWT_ISS }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str $JWT_AUD }
    http-request set-var(txn.now) date
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.exp','int'),sub(txn.now) -m int gt 0 }
    http-request del-header authorization
    http-request set-header X-Client-DN %{+Q}[ssl_c_s_dn]
    default_backend be
backend be
    http-reuse always
    server up 127.0.0.1:$UPSTREAM_PORT
EOF
    "$HAPROXY" -c -q -f "$TMP/haproxy-jwt.cfg" >"$TMP/haproxy-jwt.check" 2>&1 \
        || die "haproxy rejects its configuration: $(cat "$TMP/haproxy-jwt.check")"
    "$HAPROXY" -db -f "$TMP/haproxy-jwt.cfg" >"$TMP/haproxy-jwt.out" 2>&1 &
    PID[haproxy]=$!

    cat >"$TMP/policy-jwt.yaml" <<EOF
revision: "bench-jwt-1"
roles:
  user: {}
bindings:
  - { role: user, issuer: "$JWT_ISS" }
rules:
  - id: bench-allow
    effect: allow
    roles: [user]
    route: bench
    methods: [GET]
    path: /bench/**
EOF
    write_portcullis_jwt portcullis "$PORTCULLIS_PORT" "$PORTCULLIS_ADMIN_PORT" ""
    write_portcullis_jwt portcullis-nocache "$NOCACHE_PORT" "$NOCACHE_ADMIN_PORT" 1
    local p
    for p in portcullis portcullis-nocache; do
        RUST_LOG=${RUST_LOG:-warn} "$PORTCULLIS" run --config "$TMP/$p.yaml" --workers 1 \
            --ready-file "$TMP/$p.ready" >"$TMP/$p.out" 2>&1 &
        PID[$p]=$!
    done
    PROXIES=(haproxy portcullis portcullis-nocache)
    declare -gA PORT=([haproxy]=$HAPROXY_PORT [portcullis]=$PORTCULLIS_PORT [portcullis-nocache]=$NOCACHE_PORT)
    declare -gA ADMIN=([portcullis]=$PORTCULLIS_ADMIN_PORT [portcullis-nocache]=$NOCACHE_ADMIN_PORT)
    for p in "${PROXIES[@]}"; do wait_port "${PORT[$p]}" "$p"; done
    for p in portcullis portcullis-nocache; do wait_port "${ADMIN[$p]}" "$p admin"; done

    # --- sanity: both verify for real ---------------------------------------------
    log "checking that every proxy accepts the valid token and refuses bad ones"
    declare -gA STATUS=()
    local c code
    for c in valid none "${JWT_MUST_REFUSE[@]}" "${JWT_INFO[@]}"; do
        for p in "${PROXIES[@]}"; do
            STATUS[$c,$p]=$(jwt_status "${PORT[$p]}" "$c")
        done
        printf '   %-17s haproxy %s  portcullis %s  portcullis-nocache %s\n' "$c" \
            "${STATUS[$c,haproxy]}" "${STATUS[$c,portcullis]}" "${STATUS[$c,portcullis-nocache]}" >&2
    done
    for p in "${PROXIES[@]}"; do
        [ "${STATUS[valid,$p]}" = 200 ] || die "$p answers ${STATUS[valid,$p]} to the valid token"
        for c in none "${JWT_MUST_REFUSE[@]}"; do
            code=${STATUS[$c,$p]}
            [ "$code" = 401 ] || [ "$code" = 403 ] \
                || die "$p answers $code to the token case \`$c\`; it must refuse it"
        done
    done

    # --- keep-alive load ------------------------------------------------------------
    for p in "${PROXIES[@]}"; do
        log "$p: warm-up ${WARMUP}s"
        out=$(loadgen "$p" --connections "$CONNECTIONS" --duration "$WARMUP")
        check_clean "$p" "$out"
    done
    declare -A V0=() C0=()
    for p in portcullis portcullis-nocache; do
        V0[$p]=$(bearer_count "${ADMIN[$p]}" verified)
        C0[$p]=$(bearer_count "${ADMIN[$p]}" cached)
    done
    log "keep-alive with a bearer token: $CONNECTIONS connections, $ROUNDS rounds of ${DURATION}s per proxy"
    measure keepalive "$DURATION" --connections "$CONNECTIONS"
    # Signature checks per accepted token during the measurement, from
    # Portcullis's own counters; haproxy has no cache and checks every one.
    declare -A SIG=([haproxy]="1 (no cache)")
    local v c2
    for p in portcullis portcullis-nocache; do
        v=$(($(bearer_count "${ADMIN[$p]}" verified) - ${V0[$p]}))
        c2=$(($(bearer_count "${ADMIN[$p]}" cached) - ${C0[$p]}))
        SIG[$p]=$(awk -v v="$v" -v c="$c2" 'BEGIN { if (v + c > 0) printf "%.4f", v / (v + c); else print "n/a" }')
        echo "   $p: $v tokens verified, $c2 answered from the cache" >&2
    done
    for p in "${PROXIES[@]}"; do
        # shellcheck disable=SC2086 # word splitting of the round lists is wanted
        {
            RPS[$p]=$(median ${R_RATE[$p]})
            P50[$p]=$(median ${R_P50[$p]})
            P99[$p]=$(median ${R_P99[$p]})
            P999[$p]=$(median ${R_P999[$p]})
            CPU_REQ[$p]=$(median ${R_CPU[$p]})
            UP_CPU[$p]=$(median ${R_UCPU[$p]})
        }
    done

    # --- summary ----------------------------------------------------------------------
    local tp_cached tp_nocache
    tp_cached=$(ratio "${RPS[portcullis]}" "${RPS[haproxy]}")
    tp_nocache=$(ratio "${RPS[portcullis-nocache]}" "${RPS[haproxy]}")
    local target_cached target_nocache
    target_cached=$(verdict le 3.0 "$tp_cached")
    target_nocache=$(verdict le 3.0 "$tp_nocache")
    local cpu haproxy_v openssl_v rustc_v load_end
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    haproxy_v=$("$HAPROXY" -v | head -1 | awk '{ print $3 }')
    openssl_v=$(openssl version 2>/dev/null || echo unknown)
    rustc_v=$(rustc --version)
    load_end=$(cut -d' ' -f1-3 /proc/loadavg)

    echo
    echo "Bearer JWT (ES256) over mTLS keep-alive (127.0.0.1, one worker per proxy; medians of $ROUNDS rounds)"
    local fmt='%-19s %9s %7s %7s %8s %10s %15s %16s\n'
    # shellcheck disable=SC2059 # the format is a variable on purpose
    printf "$fmt" proxy rps p50_us p99_us p999_us cpu_us/req upstream_us/req sig_checks/token
    for p in "${PROXIES[@]}"; do
        # shellcheck disable=SC2059
        printf "$fmt" "$p" "${RPS[$p]}" "${P50[$p]}" "${P99[$p]}" "${P999[$p]}" "${CPU_REQ[$p]}" "${UP_CPU[$p]}" "${SIG[$p]}"
    done
    echo
    for p in portcullis portcullis-nocache; do
        echo "$p / haproxy: throughput $(ratio "${RPS[$p]}" "${RPS[haproxy]}")x," \
            "p99 $(ratio "${P99[$p]}" "${P99[haproxy]}")x," \
            "CPU per request $(ratio "${CPU_REQ[$p]}" "${CPU_REQ[haproxy]}")x"
    done
    echo "portcullis: one token on every request, answered from the verified-token cache;"
    echo "portcullis-nocache: cache_entries 1 and $JWT_TOKENS tokens rotated per request, a signature check per request;"
    echo "haproxy: jwt_verify checks the signature on every request."
    echo "Portcullis identity_assertion.scope: $ASSERTION_SCOPE"
    echo "target: throughput >= 3.0x haproxy: cached $target_cached (${tp_cached}x);" \
        "without the cache $target_nocache (${tp_nocache}x)"

    echo
    echo "---- markdown ----"
    echo "Command: \`bench/compare.sh jwt\` (ASSERTION_SCOPE=$ASSERTION_SCOPE CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS DURATION=$DURATION" \
        "WARMUP=$WARMUP LOADGEN_THREADS=$LOADGEN_THREADS KX=$KX JWT_TOKENS=$JWT_TOKENS)"
    echo
    echo "| machine | |"
    echo "|---|---|"
    echo "| \`nproc\` | $(nproc) |"
    echo "| CPU | $cpu |"
    echo "| load average before / after | $LOAD_START / $load_end |"
    echo "| haproxy | $haproxy_v |"
    echo "| OpenSSL (haproxy) | $openssl_v |"
    echo "| rustc (Portcullis: rustls + aws-lc-rs) | $rustc_v |"
    echo "| TLS negotiated | haproxy: ${TLS[haproxy]}; portcullis: ${TLS[portcullis]} |"
    echo
    echo "| proxy | requests/s | p50 (µs) | p99 (µs) | p99.9 (µs) | proxy CPU per request (µs) | upstream CPU per request (µs) | signature checks per token |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PROXIES[@]}"; do
        echo "| $p | ${RPS[$p]} | ${P50[$p]} | ${P99[$p]} | ${P999[$p]} | ${CPU_REQ[$p]} | ${UP_CPU[$p]} | ${SIG[$p]} |"
    done
    echo
    echo "| ÷ haproxy | throughput | p99 latency | CPU per request |"
    echo "|---|---:|---:|---:|"
    for p in portcullis portcullis-nocache; do
        echo "| $p | $(ratio "${RPS[$p]}" "${RPS[haproxy]}")× | $(ratio "${P99[$p]}" "${P99[haproxy]}")× | $(ratio "${CPU_REQ[$p]}" "${CPU_REQ[haproxy]}")× |"
    done
    echo
    echo "| token | haproxy | portcullis | portcullis-nocache |"
    echo "|---|---:|---:|---:|"
    for c in valid none "${JWT_MUST_REFUSE[@]}" "${JWT_INFO[@]}"; do
        echo "| \`$c\` | ${STATUS[$c,haproxy]} | ${STATUS[$c,portcullis]} | ${STATUS[$c,portcullis-nocache]} |"
    done
    echo
    echo "| target | result |"
    echo "|---|---|"
    echo "| throughput ≥ 3× haproxy (one token, cached) | $target_cached (${tp_cached}×) |"
    echo "| throughput ≥ 3× haproxy (signature checked on every request) | $target_nocache (${tp_nocache}×) |"
}

if [ "$SCENARIO" = jwt ]; then
    run_jwt
    exit 0
fi

# --- (a) nginx: TLS, ssl_verify_client on, keep-alive to the upstream ------------
{
    nginx_common nginx
    cat <<EOF
http {
$(nginx_http_common nginx)
    upstream backend {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        server_name localhost;
        ssl_certificate $PKI/server.pem;
        ssl_certificate_key $PKI/server.key;
        ssl_client_certificate $PKI/ca-bundle.pem;
        ssl_verify_client on;
        ssl_verify_depth 3;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Client-DN \$ssl_client_s_dn;
        }
    }
}
EOF
} >"$TMP/nginx.conf"
start_nginx nginx

# --- (b) haproxy: TLS, verify required, http-reuse to the upstream ----------------
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((IDLE_CONNECTIONS + 2048))
    # maxconn reserves a descriptor for a server connection per client
    # connection; idle clients need none, so run under the lower limit.
    no strict-limits
    pidfile $TMP/haproxy.pid
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 30s
    timeout http-request 30s
    timeout http-keep-alive 300s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $TMP/haproxy-server.pem ca-file $PKI/ca-bundle.pem verify required alpn http/1.1
    http-request set-header X-Client-DN %{+Q}[ssl_c_s_dn]
    default_backend be
backend be
    http-reuse always
    server up 127.0.0.1:$UPSTREAM_PORT
EOF
"$HAPROXY" -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy.check" 2>&1 \
    || die "haproxy rejects its configuration: $(cat "$TMP/haproxy.check")"
"$HAPROXY" -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.out" 2>&1 &
PID[haproxy]=$!

# --- (c) Portcullis: mTLS, policy allowing the client's SPIFFE ID, audit to a file --
cat >"$TMP/policy.yaml" <<EOF
revision: "bench-1"
roles:
  client: {}
bindings:
  - { role: client, spiffe_id: "$CLIENT_ID" }
rules:
  - id: bench-allow
    effect: allow
    roles: [client]
    route: bench
    methods: [GET]
    path: /bench/**
EOF
cat >"$TMP/portcullis.yaml" <<EOF
$(gateway_listener_yaml "$PORTCULLIS_PORT")
routes:
  - name: bench
    path_prefix: /bench
    upstream:
      url: http://127.0.0.1:$UPSTREAM_PORT
policy:
  file: $TMP/policy.yaml
admin:
  bind: 127.0.0.1:$PORTCULLIS_ADMIN_PORT
identity_assertion:
  scope: $ASSERTION_SCOPE
audit:
  dest: $TMP/audit.log
EOF
"$PORTCULLIS" config check "$TMP/portcullis.yaml" >"$TMP/portcullis.check" 2>&1 \
    || die "portcullis rejects its configuration: $(cat "$TMP/portcullis.check")"
RUST_LOG=${RUST_LOG:-warn} "$PORTCULLIS" run --config "$TMP/portcullis.yaml" --workers 1 \
    --ready-file "$TMP/portcullis.ready" >"$TMP/portcullis.out" 2>&1 &
PID[portcullis]=$!

declare -A PORT=([nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [portcullis]=$PORTCULLIS_PORT)
for p in "${PROXIES[@]}"; do wait_port "${PORT[$p]}" "$p"; done

# --- keep-alive throughput and latency ----------------------------------------------
for p in "${PROXIES[@]}"; do
    log "$p: warm-up ${WARMUP}s"
    out=$(loadgen "$p" --connections "$CONNECTIONS" --duration "$WARMUP")
    check_clean "$p" "$out"
done
log "keep-alive: $CONNECTIONS connections, $ROUNDS rounds of ${DURATION}s per proxy"
measure keepalive "$DURATION" --connections "$CONNECTIONS"
for p in "${PROXIES[@]}"; do
    # shellcheck disable=SC2086 # word splitting of the round lists is wanted
    {
        RPS[$p]=$(median ${R_RATE[$p]})
        P50[$p]=$(median ${R_P50[$p]})
        P99[$p]=$(median ${R_P99[$p]})
        P999[$p]=$(median ${R_P999[$p]})
        CPU_REQ[$p]=$(median ${R_CPU[$p]})
        UP_CPU[$p]=$(median ${R_UCPU[$p]})
    }
done

# --- full mTLS handshakes ----------------------------------------------------------
for p in "${PROXIES[@]}"; do
    loadgen "$p" --handshakes --connections "$HS_CONNECTIONS" --duration 1 >/dev/null
done
log "handshakes: $HS_CONNECTIONS loops of new connection + full mTLS handshake + one request, $ROUNDS rounds of ${HS_DURATION}s per proxy"
measure handshakes "$HS_DURATION" --handshakes --connections "$HS_CONNECTIONS"
for p in "${PROXIES[@]}"; do
    # shellcheck disable=SC2086
    {
        HS[$p]=$(median ${R_RATE[$p]})
        HS_P99[$p]=$(median ${R_P99[$p]})
        CPU_HS[$p]=$(median ${R_CPU[$p]})
    }
done

# --- memory per idle mTLS connection -------------------------------------------------
idle_rss() { # proxy
    local p=$1 before after out lg line
    before=$(rss_kib "${PID[$p]}")
    out="$TMP/idle-$p.out"
    : >"$out"
    loadgen "$p" --idle "$IDLE_CONNECTIONS" --hold "$IDLE_HOLD" >"$out" 2>"$TMP/idle-$p.err" &
    lg=$!
    PID[loadgen]=$lg
    line=""
    for _ in $(seq 1 1200); do
        line=$(grep -m1 '"mode":"idle"' "$out" || true)
        [ -n "$line" ] && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$line" ] || die "$p: idle connections did not open: $(cat "$TMP/idle-$p.err")"
    sleep 1
    after=$(rss_kib "${PID[$p]}")
    wait "$lg" || die "$p: load generator failed: $(cat "$TMP/idle-$p.err")"
    unset 'PID[loadgen]'
    echo "   $line" >&2
    echo "   $(grep '"mode":"idle_done"' "$out")" >&2
    check_clean "$p" "$line"
    STILL[$p]=$(sed -n 's/.*"still_open":\([0-9]*\).*/\1/p' "$out")
    local opened
    opened=$(field "$line" requests)
    KIB[$p]=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN { printf "%.1f", (a - b) / n }')
    echo "   RSS before ${before} KiB, with $opened idle connections ${after} KiB" >&2
}
for p in "${PROXIES[@]}"; do
    log "$p: $IDLE_CONNECTIONS idle mTLS connections held ${IDLE_HOLD}s"
    idle_rss "$p"
    # Let the server release the closed connections before the next one.
    sleep 1
done

# --- summary -------------------------------------------------------------------------

TP_HAPROXY=$(ratio "${RPS[portcullis]}" "${RPS[haproxy]}")
TARGET_TP=$(verdict le 1.0 "$TP_HAPROXY")
TARGET_P99=$(verdict le "${P99[portcullis]}" "${P99[haproxy]}")
TARGET_RSS=$(verdict le "${KIB[portcullis]}" 16)

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
NGINX_V=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
HAPROXY_V=$("$HAPROXY" -v | head -1 | awk '{ print $3 }')
OPENSSL_V=$(openssl version 2>/dev/null || echo unknown)
RUSTC_V=$(rustc --version)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo
    echo "Side-by-side mTLS benchmark (127.0.0.1, one worker per proxy; medians of $ROUNDS rounds)"
    fmt='%-11s %9s %7s %7s %8s %10s %15s %12s %9s %9s %9s\n'
    # shellcheck disable=SC2059 # the format is a variable on purpose
    printf "$fmt" proxy rps p50_us p99_us p999_us cpu_us/req upstream_us/req handshakes/s hs_p99_us cpu_us/hs KiB/idle
    for p in "${PROXIES[@]}"; do
        # shellcheck disable=SC2059
        printf "$fmt" "$p" "${RPS[$p]}" "${P50[$p]}" "${P99[$p]}" "${P999[$p]}" "${CPU_REQ[$p]}" "${UP_CPU[$p]}" \
            "${HS[$p]}" "${HS_P99[$p]}" "${CPU_HS[$p]}" "${KIB[$p]}"
    done
    echo
    for peer in nginx haproxy; do
        echo "portcullis / $peer: throughput $(ratio "${RPS[portcullis]}" "${RPS[$peer]}")x," \
            "p99 $(ratio "${P99[portcullis]}" "${P99[$peer]}")x," \
            "CPU per request $(ratio "${CPU_REQ[portcullis]}" "${CPU_REQ[$peer]}")x," \
            "upstream CPU per request $(ratio "${UP_CPU[portcullis]}" "${UP_CPU[$peer]}")x," \
            "handshakes/s $(ratio "${HS[portcullis]}" "${HS[$peer]}")x," \
            "memory per idle connection $(ratio "${KIB[portcullis]}" "${KIB[$peer]}")x"
    done
    echo "targets: throughput >= 1.0x haproxy: $TARGET_TP; p99 <= haproxy: $TARGET_P99;" \
        "<= 16 KiB per idle connection: $TARGET_RSS"
}

echo
echo "---- markdown ----"
echo "Command: \`bench/compare.sh\` (CONNECTIONS=$CONNECTIONS ROUNDS=$ROUNDS DURATION=$DURATION" \
    "WARMUP=$WARMUP HS_CONNECTIONS=$HS_CONNECTIONS HS_DURATION=$HS_DURATION" \
    "IDLE_CONNECTIONS=$IDLE_CONNECTIONS IDLE_HOLD=$IDLE_HOLD LOADGEN_THREADS=$LOADGEN_THREADS KX=$KX" \
    "ASSERTION_SCOPE=$ASSERTION_SCOPE)"
echo
echo "| machine | |"
echo "|---|---|"
echo "| \`nproc\` | $(nproc) |"
echo "| CPU | $CPU |"
echo "| load average before / after | $LOAD_START / $LOAD_END |"
echo "| nginx | $NGINX_V |"
echo "| haproxy | $HAPROXY_V |"
echo "| OpenSSL (nginx, haproxy) | $OPENSSL_V |"
echo "| rustc (Portcullis: rustls + aws-lc-rs) | $RUSTC_V |"
echo "| TLS negotiated | nginx: ${TLS[nginx]}; haproxy: ${TLS[haproxy]}; portcullis: ${TLS[portcullis]} |"
echo
echo "| proxy | requests/s | p50 (µs) | p99 (µs) | p99.9 (µs) | proxy CPU per request (µs) | upstream CPU per request (µs) | full mTLS handshakes/s | proxy CPU per handshake (µs) | RSS per idle mTLS connection (KiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in "${PROXIES[@]}"; do
    echo "| $p | ${RPS[$p]} | ${P50[$p]} | ${P99[$p]} | ${P999[$p]} | ${CPU_REQ[$p]} | ${UP_CPU[$p]} | ${HS[$p]} | ${CPU_HS[$p]} | ${KIB[$p]} |"
done
echo
echo "| Portcullis ÷ peer | throughput | p99 latency | CPU per request | upstream CPU per request | handshakes/s | CPU per handshake | memory per idle connection |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for peer in nginx haproxy; do
    echo "| ÷ $peer | $(ratio "${RPS[portcullis]}" "${RPS[$peer]}")× | $(ratio "${P99[portcullis]}" "${P99[$peer]}")× | $(ratio "${CPU_REQ[portcullis]}" "${CPU_REQ[$peer]}")× | $(ratio "${UP_CPU[portcullis]}" "${UP_CPU[$peer]}")× | $(ratio "${HS[portcullis]}" "${HS[$peer]}")× | $(ratio "${CPU_HS[portcullis]}" "${CPU_HS[$peer]}")× | $(ratio "${KIB[portcullis]}" "${KIB[$peer]}")× |"
done
echo
echo "| target | result |"
echo "|---|---|"
echo "| throughput ≥ 1.0× haproxy | $TARGET_TP (${TP_HAPROXY}×) |"
echo "| p99 ≤ haproxy's | $TARGET_P99 (${P99[portcullis]} µs vs ${P99[haproxy]} µs) |"
echo "| ≤ 16 KiB RSS per idle mTLS connection | $TARGET_RSS (${KIB[portcullis]} KiB) |"
echo
echo "Idle connections still open at the end of the hold: nginx ${STILL[nginx]}," \
    "haproxy ${STILL[haproxy]}, portcullis ${STILL[portcullis]} (of $IDLE_CONNECTIONS)."
