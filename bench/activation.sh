#!/usr/bin/env bash
# Request latency while signed policy bundles are activated.
#
# Portcullis takes its policy from signed bundles (docs/bundles.md). A new
# bundle is verified, its policy compiled and the snapshot swapped off the
# request path. This script measures what requests see meanwhile: one
# gateway (`portcullis run --workers 1`, mTLS, policy from a bundle of
# RULES generated rules) in front of an nginx upstream, driven by
# bench/loadgen with a client certificate, in three phases:
#
#   steady      keep-alive load, no activation;
#   periodic    the same load while a new revision is installed every
#               ACTIVATE_EVERY seconds with `PUT /admin/policy/bundle`
#               (If-Match: the active revision, admin token);
#   continuous  the same load while new revisions are installed back to
#               back (the next PUT as soon as the previous one returned),
#               so nearly every request of the window runs during an
#               activation: its percentiles are those of requests during
#               activation, not diluted by quiet time.
#
# Each activation's duration is the PUT's wall time (curl %{time_total}:
# upload of the bundle over loopback, parse, SHA-256 of every file, two
# ECDSA P-256 signatures, rollback check, policy compilation, the state
# written with fsync, the snapshot reload and swap). The gateway's CPU time
# is read around every phase, for the whole process and for its request
# thread (with one worker, the thread that serves every request); from the
# steady phase's CPU per request the script estimates the CPU each
# activation costs, and how much of it ran on the request thread, where it
# delays requests directly.
#
# Prints, per phase, the medians over ROUNDS rounds (phases interleaved in
# a rotating order), the ratio p99(during)/p99(steady) against the target
# <= 2.0, the activation times against 100 ms, and a markdown block for
# docs/benchmarks.md.
#
# Every bundle is built and signed with the project's commands (`portcullis
# keys generate`, `bundle build`, `bundle sign`) before the phase that uses
# it, not while load runs; each revision differs in its policy `revision`,
# so every activation compiles and swaps a new policy.
#
# Usage: bench/activation.sh   (as root on Debian; installs nginx, curl and
#                               python3 with apt when missing)
# Tunables (environment, defaults in brackets):
#   RULES [10000]            rules in the generated policy
#   RULES_PER_ROUTE [40]     rules per configured route (the routes are
#                            `bench` plus svc1..svcN, as in the policy's
#                            decision bench: a few dozen rules per service)
#   CONNECTIONS [32]         keep-alive connections
#   DURATION [10]            seconds of load per steady and periodic phase
#   CONTINUOUS_DURATION [5]  seconds of load per continuous phase (0: skip)
#   ACTIVATE_EVERY [1]       seconds between activations in the periodic phase
#   ROUNDS [3]               rounds; figures are medians over rounds
#   IDLE_ACTIVATIONS [5]     activations timed before any load (the cost
#                            of an activation alone, for the 100 ms target)
#   WARMUP [2]               seconds of warm-up load before the first round
#   LOADGEN_THREADS [1]      load generator threads
#   KX [x25519]              key exchange the client offers
#   BASE_PORT [18500]        first of three consecutive ports on 127.0.0.1
#   KEEP_TMP [0]             1 keeps the temporary directory (configs, logs)
#   FORMAT [yaml]            how the bundle's policy is written: yaml, or
#                            json (the same policy; JSON is read by a
#                            faster parser, docs/bundles.md)
#   STATE_PARENT [the temporary directory]  where the gateway's state_dir
#                            (rollback state, installed bundle, both written
#                            with fsync) is created; /dev/shm (tmpfs) shows
#                            what the disk writes cost
# Every server listens on 127.0.0.1 only; nothing leaves the machine.
set -euo pipefail
export LC_ALL=C

RULES=${RULES:-10000}
RULES_PER_ROUTE=${RULES_PER_ROUTE:-40}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10}
CONTINUOUS_DURATION=${CONTINUOUS_DURATION:-5}
ACTIVATE_EVERY=${ACTIVATE_EVERY:-1}
ROUNDS=${ROUNDS:-3}
IDLE_ACTIVATIONS=${IDLE_ACTIVATIONS:-5}
WARMUP=${WARMUP:-2}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
KX=${KX:-x25519}
BASE_PORT=${BASE_PORT:-18500}
KEEP_TMP=${KEEP_TMP:-0}
STATE_PARENT=${STATE_PARENT:-}
FORMAT=${FORMAT:-yaml}

UPSTREAM_PORT=$BASE_PORT
GATEWAY_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
TRUST_DOMAIN=bench.portcullis.test
CLIENT_ID="spiffe://$TRUST_DOMAIN/ns/bench/sa/loadgen"
REQ_PATH=/bench/hello
# No activation starts later than this before the end of a load window, so
# every activation of a phase lies inside the window it is measured in.
ACTIVATION_GUARD_US=400000
# Bound on one PUT: far above the ~0.1 s an activation takes; a stuck
# gateway fails the run instead of hanging it.
PUT_TIMEOUT_S=30
# Bound on waiting for /readyz after start (the first bundle compiles).
READY_TIMEOUT_S=60

BENCH_NAME=activation.sh
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for v in RULES RULES_PER_ROUTE CONNECTIONS DURATION CONTINUOUS_DURATION ROUNDS IDLE_ACTIVATIONS WARMUP BASE_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not \`${!v}\`"
done
[[ $ACTIVATE_EVERY =~ ^[0-9]+([.][0-9]+)?$ ]] || die "ACTIVATE_EVERY must be a number of seconds"
[ "$RULES" -ge 2 ] || die "RULES must be at least 2"
[ "$RULES_PER_ROUTE" -ge 1 ] || die "RULES_PER_ROUTE must be at least 1"
[ "$DURATION" -ge 2 ] || die "DURATION must be at least 2 seconds"
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
case $FORMAT in
    yaml) FORMAT_NAME=YAML ;;
    json) FORMAT_NAME=JSON ;;
    *) die "FORMAT must be yaml or json, not \`$FORMAT\`" ;;
esac

# --- tools -----------------------------------------------------------------
install_missing nginx:nginx curl:curl python3:python3 pgrep:procps
NGINX=$(command -v nginx)

LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)
build_release
require_free_ports "$UPSTREAM_PORT" "$GATEWAY_PORT" "$ADMIN_PORT"

# --- cleanup -----------------------------------------------------------------
TMP=$(mktemp -d /tmp/portcullis-activation.XXXXXX)
STATE_DIR="$TMP/bundle-state"
if [ -n "$STATE_PARENT" ]; then
    STATE_DIR=$(mktemp -d "$STATE_PARENT/portcullis-activation-state.XXXXXX") \
        || die "cannot create a state directory in \`$STATE_PARENT\`"
fi
STATE_FS=$(findmnt -n -o FSTYPE -T "$(dirname "$STATE_DIR")" 2>/dev/null | head -1)
STATE_FS=${STATE_FS:-unknown}
CLEANUP_DIRS=("$TMP" "$STATE_DIR")

# Microseconds since the epoch (bash 5).
now_us() {
    local t=$EPOCHREALTIME
    echo $((10#${t/./}))
}

# CPU time (µs) of a process's main thread, from the scheduler's
# nanosecond count. With `--workers 1` the gateway serves every request on
# its main thread (a current-thread runtime); an activation runs on a
# low-priority thread of its own and the snapshot load on a blocking-pool
# thread.
main_thread_cpu_us() {
    local t
    t=$(awk '{ printf "%d", $1 / 1000 }' "/proc/$1/task/$1/schedstat" 2>/dev/null || echo 0)
    echo "${t:-0}"
}

count_over() { # limit values...: how many values exceed limit
    local lim=$1
    shift
    printf '%s\n' "$@" | awk -v l="$lim" '$1 > l { n++ } END { print n + 0 }'
}

# --- PKI (the project's own commands) -------------------------------------------
PKI="$TMP/pki"
make_pki "$PKI" "$CLIENT_ID"

# --- upstream: nginx with a fixed 200 ------------------------------------------
start_upstream "$UPSTREAM_PORT"

# --- signing keys, trust root, policy generator -----------------------------------
ROUTES=$(((RULES + RULES_PER_ROUTE - 1) / RULES_PER_ROUTE))
KEYS="$TMP/keys"
mkdir -p "$KEYS"
log "two ECDSA P-256 signing keys and a 2-of-2 trust root in $KEYS"
for k in ops-1 ops-2; do
    "$PORTCULLIS" keys generate --alg ecdsa-p256 --out "$KEYS/$k.pem" \
        --public-out "$KEYS/$k.pub.pem" >/dev/null 2>"$TMP/keys.err" \
        || die "keys generate: $(cat "$TMP/keys.err")"
done

cat >"$TMP/gen.py" <<'PY'
import datetime, json, sys

ROLES = ["reader", "writer", "admin", "auditor", "billing", "support", "ops", "ci"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
RESOURCES = ["orders", "invoices", "users", "items", "reports", "events"]

def route(i):
    # Route 0 is the one the load generator calls.
    return "bench" if i == 0 else f"svc{i}"

def pick(xs, i):
    return xs[i % len(xs)]

cmd = sys.argv[1]
if cmd == "root":  # root PUB1 PUB2: a 2-of-2 trust root valid from an hour ago for a week
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    keys = []
    for n, path in enumerate(sys.argv[2:4], start=1):
        keys.append({"id": f"ops-{n}", "alg": "ecdsa-p256", "public_key": open(path).read(),
                     "not_before": fmt(now - datetime.timedelta(hours=1)),
                     "not_after": fmt(now + datetime.timedelta(days=7))})
    print(json.dumps({"format": "portcullis-trust-root-v1", "version": 1, "threshold": 2,
                      "keys": keys}, indent=2))
elif cmd == "routes":  # routes N UPSTREAM_URL: the configuration's routes
    n, url = int(sys.argv[2]), sys.argv[3]
    for r in range(n):
        print(f"  - name: {route(r)}\n    path_prefix: /{route(r)}\n    upstream:\n      url: {url}")
elif cmd == "policy-json":  # policy-json RULES ROUTES CLIENT_ID: the same policy as JSON,
    # the members after `{"revision": ...` (a leading comma, the closing brace)
    n, routes, client = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    roles = {"reader": {}, "writer": {"inherits": ["reader"]}, "admin": {"inherits": ["writer"]},
             "auditor": {}, "billing": {"inherits": ["reader"]}, "support": {"inherits": ["reader"]},
             "ops": {"inherits": ["admin"]}, "ci": {"inherits": ["writer"]}, "client": {}}
    bindings = [{"role": "reader", "spiffe_id_prefix": "spiffe://example.org/tenant"},
                {"role": "client", "spiffe_id": client}]
    for i in range(max(n // 10, 4)):
        bindings.append({"role": pick(ROLES, i), "spiffe_id": f"spiffe://example.org/ns/n{i}/sa/w{i}"})
    rules = []
    for i in range(n - 1):
        r = i % routes
        res = pick(RESOURCES, i // routes)
        version = i // (routes * len(RESOURCES))
        rule = {"id": f"r{i}", "effect": "deny" if i % 13 == 12 else "allow",
                "roles": [pick(ROLES, i), pick(ROLES, i // 3 + 1)], "route": route(r),
                "methods": [pick(METHODS, i)],
                "path": f"/{route(r)}/api/v{version}/{res}/{{tenant}}/items/{{id}}"}
        if i % 5 == 0:
            rule["when"] = {"source_ip": ["10.0.0.0/8", "2001:db8::/32"]}
        elif i % 5 == 1:
            rule["when"] = {"equal": {"tenant": "spiffe.segment[1]"}}
        elif i % 5 == 2:
            rule["when"] = {"time": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00",
                                     "to": "18:00", "tz": "Europe/Berlin"}}
        rules.append(rule)
    rules.append({"id": "bench-allow", "effect": "allow", "roles": ["client"], "route": "bench",
                  "methods": ["GET", "HEAD"], "path": "/bench/**"})
    body = json.dumps({"roles": roles, "bindings": bindings, "rules": rules}, separators=(",", ":"))
    print("," + body[1:])
elif cmd == "policy":  # policy RULES ROUTES CLIENT_ID: the policy after its revision line
    # The shape of the policy crate's decision bench (roles with
    # inheritance, prefix and exact bindings, `{param}` patterns, some
    # conditions, one rule in 13 a deny), on the configured routes; the
    # last rule allows the load generator on /bench/**.
    n, routes, client = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    out = ["roles:",
           "  reader: {}", "  writer: { inherits: [reader] }", "  admin: { inherits: [writer] }",
           "  auditor: {}", "  billing: { inherits: [reader] }", "  support: { inherits: [reader] }",
           "  ops: { inherits: [admin] }", "  ci: { inherits: [writer] }", "  client: {}",
           "bindings:",
           '  - { role: reader, spiffe_id_prefix: "spiffe://example.org/tenant" }',
           f'  - {{ role: client, spiffe_id: "{client}" }}']
    for i in range(max(n // 10, 4)):
        out.append(f'  - {{ role: {pick(ROLES, i)}, spiffe_id: "spiffe://example.org/ns/n{i}/sa/w{i}" }}')
    out.append("rules:")
    for i in range(n - 1):
        r = i % routes
        res = pick(RESOURCES, i // routes)
        version = i // (routes * len(RESOURCES))
        effect = "deny" if i % 13 == 12 else "allow"
        line = (f"  - {{ id: r{i}, effect: {effect}, roles: [{pick(ROLES, i)}, {pick(ROLES, i // 3 + 1)}], "
                f"route: {route(r)}, methods: [{pick(METHODS, i)}], "
                f'path: "/{route(r)}/api/v{version}/{res}/{{tenant}}/items/{{id}}"')
        if i % 5 == 0:
            line += ', when: { source_ip: ["10.0.0.0/8", "2001:db8::/32"] }'
        elif i % 5 == 1:
            line += ', when: { equal: { tenant: "spiffe.segment[1]" } }'
        elif i % 5 == 2:
            line += (', when: { time: { days: [mon, tue, wed, thu, fri], from: "08:00", '
                     'to: "18:00", tz: Europe/Berlin } }')
        out.append(line + " }")
    out.append("  - { id: bench-allow, effect: allow, roles: [client], route: bench, "
               "methods: [GET, HEAD], path: /bench/** }")
    print("\n".join(out))
else:
    sys.exit(f"unknown command {cmd}")
PY
python3 "$TMP/gen.py" root "$KEYS/ops-1.pub.pem" "$KEYS/ops-2.pub.pem" >"$KEYS/trust-root.json"
if [ "$FORMAT" = json ]; then
    python3 "$TMP/gen.py" policy-json "$RULES" "$ROUTES" "$CLIENT_ID" >"$TMP/policy-body"
else
    python3 "$TMP/gen.py" policy "$RULES" "$ROUTES" "$CLIENT_ID" >"$TMP/policy-body"
fi
POLICY_BYTES=$(($(wc -c <"$TMP/policy-body") + 40))

# build_bundle REV: signed bundle $BUNDLES/REV.tar whose policy revision
# is `bench-activation-REV` (built and signed with the project's commands).
BUNDLES="$TMP/bundles"
mkdir -p "$BUNDLES"
build_bundle() {
    local rev=$1 dir="$TMP/src-$1" tar="$BUNDLES/$1.tar"
    mkdir -p "$dir"
    if [ "$FORMAT" = json ]; then
        {
            printf '{"revision": "bench-activation-%s"' "$rev"
            cat "$TMP/policy-body"
        } >"$dir/policy.json"
    else
        {
            echo "revision: \"bench-activation-$rev\""
            cat "$TMP/policy-body"
        } >"$dir/policy.yaml"
    fi
    "$PORTCULLIS" bundle build "$dir" --revision "$rev" --out "$tar" \
        >/dev/null 2>"$TMP/build.err" || die "bundle build $rev: $(cat "$TMP/build.err")"
    local k
    for k in ops-1 ops-2; do
        "$PORTCULLIS" bundle sign "$tar" --key-id "$k" --key "$KEYS/$k.pem" \
            >/dev/null 2>"$TMP/sign.err" || die "bundle sign $rev $k: $(cat "$TMP/sign.err")"
    done
    rm -rf "$dir"
}
# Bundles are built ahead of the phase that installs them; NEXT_BUILT is
# the highest revision built so far.
NEXT_BUILT=0
build_up_to() { # revision
    local r
    for ((r = NEXT_BUILT + 1; r <= $1; r++)); do build_bundle "$r"; done
    if [ "$1" -gt "$NEXT_BUILT" ]; then NEXT_BUILT=$1; fi
}

log "generating a policy of $RULES rules on $ROUTES routes and bundle revision 1"
T0=$(now_us)
build_bundle 1
NEXT_BUILT=1
BUILD_MS=$((($(now_us) - T0) / 1000))
BUNDLE_BYTES=$(wc -c <"$BUNDLES/1.tar")
"$PORTCULLIS" bundle verify "$BUNDLES/1.tar" --trust-root "$KEYS/trust-root.json" \
    >"$TMP/verify.out" 2>&1 || die "bundle 1 does not verify: $(cat "$TMP/verify.out")"
log "bundle 1: $BUNDLE_BYTES bytes, built and signed in ${BUILD_MS} ms"

# --- the gateway ---------------------------------------------------------------
head -c 48 /dev/urandom | base64 -w0 >"$KEYS/admin-token"
chmod 600 "$KEYS/admin-token"
printf 'Authorization: Bearer %s\n' "$(cat "$KEYS/admin-token")" >"$KEYS/admin-auth.hdr"
chmod 600 "$KEYS/admin-auth.hdr"

# The source file stays at revision 1 and is polled only hourly: every
# later revision arrives through the admin API, the path measured here.
{
    cat <<EOF
$(gateway_listener_yaml "$GATEWAY_PORT")
routes:
EOF
    python3 "$TMP/gen.py" routes "$ROUTES" "http://127.0.0.1:$UPSTREAM_PORT"
    cat <<EOF
policy:
  bundle:
    file: $BUNDLES/1.tar
    trust_root: $KEYS/trust-root.json
    state_dir: $STATE_DIR
    poll_interval: 1h
    max_age: 24h
admin:
  bind: 127.0.0.1:$ADMIN_PORT
  token_file: $KEYS/admin-token
audit:
  dest: $TMP/audit.log
EOF
} >"$TMP/portcullis.yaml"
# Not `portcullis config check`: it loads the installed policy from
# state_dir, which exists only once a bundle has been activated. A bad
# configuration shows as the gateway exiting while we wait for /readyz.
RUST_LOG=${RUST_LOG:-warn} "$PORTCULLIS" run --config "$TMP/portcullis.yaml" --workers 1 \
    >"$TMP/portcullis.out" 2>&1 &
PID[portcullis]=$!
wait_port "$ADMIN_PORT" "portcullis admin"

readyz() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/readyz" || true; }
# jq-free reads of the /readyz JSON: top-level `ready`, `policy.revision`.
is_ready() { python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1]).get("ready") is True else 1)' "$1" 2>/dev/null; }
policy_revision() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])["policy"]["revision"])' "$1" 2>/dev/null || true; }
log "waiting for /readyz (bundle 1 verified and compiled)"
ready=""
for _ in $(seq 1 $((READY_TIMEOUT_S * 10))); do
    ready=$(readyz)
    is_ready "$ready" && break
    kill -0 "${PID[portcullis]}" 2>/dev/null || die "portcullis exited: $(tail -5 "$TMP/portcullis.out")"
    sleep 0.1
done
is_ready "$ready" || die "not ready after ${READY_TIMEOUT_S}s: $ready"
[ "$(policy_revision "$ready")" = bench-activation-1 ] || die "/readyz shows another policy: $ready"
wait_port "$GATEWAY_PORT" "portcullis"

bench_status() { # path
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$PKI/ca-bundle.pem" \
        --cert "$PKI/loadgen.pem" --key "$PKI/loadgen.key" \
        --resolve "localhost:$GATEWAY_PORT:127.0.0.1" "https://localhost:$GATEWAY_PORT$1" || true
}

# put_bundle FILE IF_MATCH [auth]: prints "<status> <seconds>"; body in $TMP/put.out.
put_bundle() {
    local auth=(-H "@$KEYS/admin-auth.hdr")
    [ "${3:-auth}" = noauth ] && auth=()
    curl -s -o "$TMP/put.out" -w '%{http_code} %{time_total}' --max-time "$PUT_TIMEOUT_S" \
        -X PUT --data-binary "@$1" -H 'Content-Type: application/x-tar' -H 'Expect:' \
        -H "If-Match: \"$2\"" "${auth[@]}" \
        "http://127.0.0.1:$ADMIN_PORT/admin/policy/bundle" || echo "000 0"
}

# --- sanity: the policy decides, the admin API guards activation -------------------
log "checking the policy and the admin API before measuring"
code=$(bench_status "$REQ_PATH")
[ "$code" = 200 ] || die "GET $REQ_PATH answered $code, expected 200 (the policy allows the load generator)"
code=$(bench_status "/svc1/api/v0/orders/t/items/1")
[ "$code" = 403 ] || die "GET on svc1 answered $code, expected 403 (no rule grants it to the load generator)"
build_up_to 2
code=$(put_bundle "$BUNDLES/2.tar" 1 noauth | cut -d" " -f1)
[ "$code" = 401 ] || die "PUT without the admin token answered $code, expected 401"
code=$(put_bundle "$BUNDLES/2.tar" 0 | cut -d" " -f1)
[ "$code" = 412 ] || die "PUT with a stale If-Match answered $code, expected 412"
cp "$BUNDLES/2.tar" "$TMP/tampered.tar"
# One byte of the policy changed after signing (inside the first rule).
# The rule id's `r`: at offset 4 of `id: r0,`, or 6 of `"id":"r0"`.
if [ "$FORMAT" = json ]; then
    pat='"id":"r0"' skip=6
else
    pat='id: r0,' skip=4
fi
off=$(grep -abo "$pat" "$TMP/tampered.tar" | head -1 | cut -d: -f1 || true)
[ -n "$off" ] || die "could not find the first rule in bundle 2"
printf 'X' | dd of="$TMP/tampered.tar" bs=1 seek=$((off + skip)) conv=notrunc status=none
code=$(put_bundle "$TMP/tampered.tar" 1 | cut -d" " -f1)
[ "$code" = 422 ] || die "PUT of a tampered bundle answered $code, expected 422: $(cat "$TMP/put.out")"
grep -q tampered_file "$TMP/put.out" || die "tampered bundle refused for another reason: $(cat "$TMP/put.out")"
CUR_REV=1
log "sanity passed: 200 allowed, 403 not granted, PUT 401 without token, 412 stale If-Match, 422 tampered"

# --- activation ------------------------------------------------------------------
# activate: installs revision CUR_REV+1 (already built); appends its wall
# time in ms to ACT_MS.
ACT_MS=()
activate() {
    local next=$((CUR_REV + 1)) r code secs
    r=$(put_bundle "$BUNDLES/$next.tar" "$CUR_REV")
    read -r code secs <<<"$r"
    [ "$code" = 200 ] || die "activation of revision $next answered $code: $(cat "$TMP/put.out")"
    grep -q '"changed":true' "$TMP/put.out" || die "revision $next was not activated: $(cat "$TMP/put.out")"
    CUR_REV=$next
    rm -f "$BUNDLES/$next.tar"
    ACT_MS+=("$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')")
}

loadgen_bg() { # seconds outfile
    "$LOADGEN" --url "https://127.0.0.1:$GATEWAY_PORT$REQ_PATH" --sni localhost \
        --ca "$PKI/ca-bundle.pem" --cert "$PKI/loadgen.pem" --key "$PKI/loadgen.key" \
        --threads "$LOADGEN_THREADS" --kx "$KX" --connections "$CONNECTIONS" \
        --duration "$1" >"$2" 2>"$2.err" &
    PID[loadgen]=$!
}
# loadgen_wait OUTFILE: waits for the load generator; its report line goes
# to LG_OUT. A run with errors or non-2xx answers measured the wrong thing.
LG_OUT=""
loadgen_wait() {
    wait "${PID[loadgen]}" || die "load generator failed: $(cat "$1.err")"
    unset 'PID[loadgen]'
    LG_OUT=$(cat "$1")
    local errors non2xx
    errors=$(field "$LG_OUT" errors)
    non2xx=$(field "$LG_OUT" non_2xx)
    if [ "${errors:-1}" != 0 ] || [ "${non2xx:-1}" != 0 ]; then
        die "errors=$errors non_2xx=$non2xx during the load: $LG_OUT"
    fi
}

sleep_until() { # epoch µs
    local d=$(($1 - $(now_us)))
    if [ "$d" -gt 0 ]; then sleep "$(awk -v d="$d" 'BEGIN { printf "%.6f", d / 1e6 }')"; fi
}

EVERY_US=$(awk -v s="$ACTIVATE_EVERY" 'BEGIN { printf "%d", s * 1e6 }')
[ "$EVERY_US" -gt 0 ] || die "ACTIVATE_EVERY must be above 0"
PERIODIC_COUNT=0
for ((t = EVERY_US / 2; t + ACTIVATION_GUARD_US < DURATION * 1000000; t += EVERY_US)); do
    PERIODIC_COUNT=$((PERIODIC_COUNT + 1))
done

# run_phase NAME: one measured window; sets OUT (loadgen report), CPU and
# CPU_MAIN (gateway CPU µs in the window: all threads, the request thread),
# N_ACT and PHASE_ACT (activation times).
run_phase() {
    local name=$1 secs=$DURATION start end next c0 c1 m0 m1 first gw=${PID[portcullis]}
    [ "$name" = continuous ] && secs=$CONTINUOUS_DURATION
    first=${#ACT_MS[@]}
    case $name in
        periodic) build_up_to $((CUR_REV + PERIODIC_COUNT)) ;;
        continuous)
            # Enough bundles for back-to-back activations as fast as the
            # fastest one seen so far (100 ms before any was seen), plus a few.
            local fastest=100
            if [ ${#ACT_MS[@]} -gt 0 ]; then
                fastest=$(minimum "${ACT_MS[@]}" | awk '{ printf "%d", ($1 < 20 ? 20 : $1) }')
            fi
            build_up_to $((CUR_REV + secs * 1000 / fastest + 3))
            ;;
    esac
    c0=$(cpu_us "$gw")
    m0=$(main_thread_cpu_us "$gw")
    start=$(now_us)
    end=$((start + secs * 1000000))
    loadgen_bg "$secs" "$TMP/phase.out"
    case $name in
        periodic)
            for ((next = start + EVERY_US / 2; next + ACTIVATION_GUARD_US < end; next += EVERY_US)); do
                sleep_until "$next"
                activate
            done
            ;;
        continuous)
            while [ $(($(now_us) + ACTIVATION_GUARD_US)) -lt "$end" ]; do
                [ "$CUR_REV" -lt "$NEXT_BUILT" ] || {
                    log "continuous: ran out of prepared bundles; the rest of the window is without activation"
                    break
                }
                activate
            done
            ;;
    esac
    loadgen_wait "$TMP/phase.out"
    OUT=$LG_OUT
    c1=$(cpu_us "$gw")
    m1=$(main_thread_cpu_us "$gw")
    CPU=$((c1 - c0))
    CPU_MAIN=$((m1 - m0))
    PHASE_ACT=("${ACT_MS[@]:$first}")
    N_ACT=${#PHASE_ACT[@]}
}

PHASES=(steady periodic)
[ "$CONTINUOUS_DURATION" -gt 0 ] && PHASES+=(continuous)

IDLE_ACT=()
if [ "$IDLE_ACTIVATIONS" -gt 0 ]; then
    log "$IDLE_ACTIVATIONS activations without load"
    build_up_to $((CUR_REV + IDLE_ACTIVATIONS))
    for ((i = 0; i < IDLE_ACTIVATIONS; i++)); do
        activate
        sleep 0.2
    done
    IDLE_ACT=("${ACT_MS[@]}")
    echo "   without load: activation_ms=[${IDLE_ACT[*]}]" >&2
fi

log "warm-up ${WARMUP}s"
loadgen_bg "$WARMUP" "$TMP/warmup.out"
loadgen_wait "$TMP/warmup.out"

declare -A R_RPS=() R_P50=() R_P99=() R_P999=() R_CPU=() R_COVER=() R_RATIO=()
# Gateway CPU per activation, estimated per round as the phase's CPU
# minus its requests at the steady phase's CPU per request, divided by the
# activations: all threads (R_ACT_CPU) and the request thread (R_ACT_MAIN).
declare -A R_ACT_CPU=() R_ACT_MAIN=()
declare -A ALL_ACT=()
log "$ROUNDS rounds of: steady ${DURATION}s, periodic ${DURATION}s (a revision every ${ACTIVATE_EVERY}s)$([ "$CONTINUOUS_DURATION" -gt 0 ] && echo ", continuous ${CONTINUOUS_DURATION}s (back to back)"); $CONNECTIONS connections"
for ((round = 0; round < ROUNDS; round++)); do
    declare -A RP99=() RN=() RC=() RM=() RA=()
    for ph in $(rotated "$round" "${PHASES[@]}"); do
        run_phase "$ph"
        n=$(field "$OUT" requests)
        cpu=$(awk -v c="$CPU" -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? c / n : 0) }')
        secs=$DURATION
        [ "$ph" = continuous ] && secs=$CONTINUOUS_DURATION
        act_sum=0
        if [ "$N_ACT" -gt 0 ]; then
            act_sum=$(printf '%s\n' "${PHASE_ACT[@]}" | awk '{ s += $1 } END { printf "%.1f", s }')
            ALL_ACT[$ph]+="${PHASE_ACT[*]} "
        fi
        cover=$(awk -v a="$act_sum" -v s="$secs" 'BEGIN { printf "%.0f", a / (s * 10) }')
        echo "   round $((round + 1)) $ph: $OUT gateway_cpu_us_per_request=$cpu" \
            "gateway_cpu_ms=$((CPU / 1000)) request_thread_cpu_ms=$((CPU_MAIN / 1000)) activations=$N_ACT" \
            "activation_ms=[${PHASE_ACT[*]:-}] window_covered_by_activation=${cover}%" >&2
        R_RPS[$ph]+="$(field "$OUT" rps) "
        R_P50[$ph]+="$(field "$OUT" p50_us) "
        R_P99[$ph]+="$(field "$OUT" p99_us) "
        R_P999[$ph]+="$(field "$OUT" p999_us) "
        R_CPU[$ph]+="$cpu "
        R_COVER[$ph]+="$cover "
        RP99[$ph]=$(field "$OUT" p99_us)
        RN[$ph]=$n RC[$ph]=$CPU RM[$ph]=$CPU_MAIN RA[$ph]=$N_ACT
    done
    for ph in "${PHASES[@]}"; do
        [ "$ph" = steady ] && continue
        R_RATIO[$ph]+="$(ratio "${RP99[$ph]}" "${RP99[steady]}") "
        [ "${RA[$ph]}" -gt 0 ] || continue
        R_ACT_CPU[$ph]+="$(awk -v c="${RC[$ph]}" -v n="${RN[$ph]}" -v sc="${RC[steady]}" -v sn="${RN[steady]}" -v a="${RA[$ph]}" \
            'BEGIN { printf "%.1f", (c - n * sc / sn) / a / 1000 }') "
        R_ACT_MAIN[$ph]+="$(awk -v c="${RM[$ph]}" -v n="${RN[$ph]}" -v sc="${RM[steady]}" -v sn="${RN[steady]}" -v a="${RA[$ph]}" \
            'BEGIN { printf "%.1f", (c - n * sc / sn) / a / 1000 }') "
    done
    unset RP99 RN RC RM RA
done

# The gateway runs the last revision installed.
ready=$(readyz)
[ "$(policy_revision "$ready")" = "bench-activation-$CUR_REV" ] \
    || die "after the run /readyz does not show policy revision bench-activation-$CUR_REV: $ready"
code=$(bench_status "$REQ_PATH")
[ "$code" = 200 ] || die "after the run GET $REQ_PATH answered $code"

# --- summary -------------------------------------------------------------------------
declare -A RPS=() P50=() P99=() P999=() CPUR=() COVER=() RATIO=() ACT_CPU=() ACT_MAIN=()
for ph in "${PHASES[@]}"; do
    # shellcheck disable=SC2086 # word splitting of the round lists is wanted
    {
        RPS[$ph]=$(median ${R_RPS[$ph]})
        P50[$ph]=$(median ${R_P50[$ph]})
        P99[$ph]=$(median ${R_P99[$ph]})
        P999[$ph]=$(median ${R_P999[$ph]})
        CPUR[$ph]=$(median ${R_CPU[$ph]})
        COVER[$ph]=$(median ${R_COVER[$ph]})
        [ "$ph" = steady ] || RATIO[$ph]=$(median ${R_RATIO[$ph]})
        ACT_CPU[$ph]=$(median ${R_ACT_CPU[$ph]:-})
        ACT_MAIN[$ph]=$(median ${R_ACT_MAIN[$ph]:-})
    }
done
# shellcheck disable=SC2206 # the lists hold plain numbers
ACT_P=(${ALL_ACT[periodic]:-})
# shellcheck disable=SC2206
ACT_C=(${ALL_ACT[continuous]:-})
ACT_ALL=("${ACT_P[@]}" "${ACT_C[@]}")
act_line() { # values...
    [ $# -gt 0 ] || { echo "n/a"; return; }
    echo "$# activations: min $(minimum "$@") ms, median $(median "$@") ms, max $(maximum "$@") ms, over 100 ms: $(count_over 100 "$@")"
}
ACT_MED=$(median "${ACT_ALL[@]}")
ACT_MAX=$(maximum "${ACT_ALL[@]}")
ACT_OVER=$(count_over 100 "${ACT_ALL[@]}")
TARGET_ACT_MED=$(verdict le "$ACT_MED" 100)
if [ ${#IDLE_ACT[@]} -gt 0 ]; then
    IDLE_MED=$(median "${IDLE_ACT[@]}")
    TARGET_ACT_IDLE=$(verdict le "$IDLE_MED" 100)
fi
TARGET_ACT_ALL=$(verdict le "$ACT_MAX" 100)
# The verdict uses the median of the per-round ratios: each round's
# steady phase is the reference measured next to its activation phases.
RATIO_P=${RATIO[periodic]}
TARGET_P=$(verdict le "$RATIO_P" 2.0)
if [ -n "${P99[continuous]:-}" ]; then
    RATIO_C=${RATIO[continuous]}
    TARGET_C=$(verdict le "$RATIO_C" 2.0)
fi

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
RUSTC_V=$(rustc --version)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
TLS=$(sfield "$OUT" tls)
ACTIVATIONS=$((CUR_REV - 1))

{
    echo
    echo "Latency during bundle activation (127.0.0.1, portcullis --workers 1, $RULES rules on $ROUTES routes in $FORMAT_NAME, bundle $BUNDLE_BYTES bytes; medians of $ROUNDS rounds)"
    fmt='%-11s %9s %7s %7s %8s %11s %12s %10s\n'
    # shellcheck disable=SC2059 # the format is a variable on purpose
    printf "$fmt" phase rps p50_us p99_us p999_us cpu_us/req p99/steady activ_cov
    for ph in "${PHASES[@]}"; do
        # shellcheck disable=SC2059
        printf "$fmt" "$ph" "${RPS[$ph]}" "${P50[$ph]}" "${P99[$ph]}" "${P999[$ph]}" "${CPUR[$ph]}" \
            "${RATIO[$ph]:-1.00}" "${COVER[$ph]}%"
    done
    echo
    [ ${#IDLE_ACT[@]} -gt 0 ] && echo "activation (PUT wall time), no load:    $(act_line "${IDLE_ACT[@]}")"
    echo "activation (PUT wall time), periodic:   $(act_line "${ACT_P[@]}")"
    [ ${#ACT_C[@]} -gt 0 ] && echo "activation (PUT wall time), continuous: $(act_line "${ACT_C[@]}")"
    for ph in periodic continuous; do
        [ -n "${R_ACT_CPU[$ph]:-}" ] || continue
        echo "gateway CPU per activation ($ph, estimate): ${ACT_CPU[$ph]} ms, of which ${ACT_MAIN[$ph]} ms on the request thread"
    done
    echo "p99 ÷ steady per round: periodic [${R_RATIO[periodic]% }]$([ -n "${R_RATIO[continuous]:-}" ] && echo "; continuous [${R_RATIO[continuous]% }]");" \
        "ratio of the medians: periodic $(ratio "${P99[periodic]}" "${P99[steady]}")$([ -n "${P99[continuous]:-}" ] && echo ", continuous $(ratio "${P99[continuous]}" "${P99[steady]}")")"
    echo "target p99(during) <= 2.0x p99(steady), median of rounds: periodic $TARGET_P (${RATIO_P}x)$([ -n "${RATIO_C:-}" ] && echo "; continuous $TARGET_C (${RATIO_C}x)")"
    [ -n "${IDLE_MED:-}" ] && echo "target activation < 100 ms without load (median): $TARGET_ACT_IDLE (${IDLE_MED} ms)"
    echo "target activation < 100 ms under load: median $TARGET_ACT_MED (${ACT_MED} ms); every activation $TARGET_ACT_ALL (max ${ACT_MAX} ms, $ACT_OVER of ${#ACT_ALL[@]} over)"
    echo "load average before / after: $LOAD_START / $LOAD_END; state_dir on $STATE_FS"
}

echo
echo "---- markdown ----"
echo "Command: \`bench/activation.sh\` (RULES=$RULES RULES_PER_ROUTE=$RULES_PER_ROUTE CONNECTIONS=$CONNECTIONS" \
    "DURATION=$DURATION CONTINUOUS_DURATION=$CONTINUOUS_DURATION ACTIVATE_EVERY=$ACTIVATE_EVERY" \
    "ROUNDS=$ROUNDS IDLE_ACTIVATIONS=$IDLE_ACTIVATIONS WARMUP=$WARMUP LOADGEN_THREADS=$LOADGEN_THREADS KX=$KX FORMAT=$FORMAT)"
echo
echo "| machine | |"
echo "|---|---|"
echo "| \`nproc\` | $(nproc) |"
echo "| CPU | $CPU_MODEL |"
echo "| load average before / after | $LOAD_START / $LOAD_END |"
echo "| rustc (Portcullis: rustls + aws-lc-rs) | $RUSTC_V |"
echo "| TLS negotiated | $TLS |"
echo "| policy | $RULES rules on $ROUTES routes, $POLICY_BYTES bytes of $FORMAT_NAME; bundle $BUNDLE_BYTES bytes, 2 ECDSA P-256 signatures (2-of-2 trust root) |"
echo "| gateway state_dir | $STATE_FS |"
echo "| activations | $ACTIVATIONS revisions installed with \`PUT /admin/policy/bundle\`, every one 200 |"
echo
echo "| phase | requests/s | p50 (µs) | p99 (µs) | p99.9 (µs) | gateway CPU per request (µs) | p99 ÷ steady (median of rounds) | window covered by activations |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for ph in "${PHASES[@]}"; do
    echo "| $ph | ${RPS[$ph]} | ${P50[$ph]} | ${P99[$ph]} | ${P999[$ph]} | ${CPUR[$ph]} | ${RATIO[$ph]:-1.00} | ${COVER[$ph]} % |"
done
echo
echo "| activation | count | PUT wall time: min | median | max | over 100 ms | gateway CPU per activation | of it on the request thread |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
if [ ${#IDLE_ACT[@]} -gt 0 ]; then
    set -- "${IDLE_ACT[@]}"
    echo "| without load | $# | $(minimum "$@") ms | $(median "$@") ms | $(maximum "$@") ms | $(count_over 100 "$@") | | |"
fi
for ph in periodic continuous; do
    if [ "$ph" = periodic ]; then set -- "${ACT_P[@]}"; else set -- "${ACT_C[@]}"; fi
    [ $# -gt 0 ] || continue
    echo "| $ph | $# | $(minimum "$@") ms | $(median "$@") ms | $(maximum "$@") ms | $(count_over 100 "$@") | ${ACT_CPU[$ph]} ms | ${ACT_MAIN[$ph]} ms |"
done
echo
echo "| target | result |"
echo "|---|---|"
echo "| p99 during activation ≤ 2× steady (periodic: a revision every ${ACTIVATE_EVERY} s) | $TARGET_P (${RATIO_P}×; rounds: ${R_RATIO[periodic]% }) |"
if [ -n "${RATIO_C:-}" ]; then
    echo "| p99 during activation ≤ 2× steady (continuous: back to back) | $TARGET_C (${RATIO_C}×; rounds: ${R_RATIO[continuous]% }) |"
fi
if [ -n "${IDLE_MED:-}" ]; then
    echo "| activation < 100 ms without load (median) | $TARGET_ACT_IDLE (${IDLE_MED} ms) |"
fi
echo "| activation < 100 ms under load (median) | $TARGET_ACT_MED (${ACT_MED} ms) |"
echo "| activation < 100 ms under load (every one) | $TARGET_ACT_ALL (max ${ACT_MAX} ms; $ACT_OVER of ${#ACT_ALL[@]} over) |"
