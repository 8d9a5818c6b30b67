#!/usr/bin/env bash
# Interoperability with clients nobody here wrote.
#
# Builds jwtd and examples/partner, then for each algorithm (RS256, ES256,
# ES384, PS256, EdDSA): starts a
# real `jwtd serve` in a temporary directory on a loopback port, adds a user
# with the CLI, logs in with curl, and verifies the tokens through the LIVE
# JWKS with
#   - Python's PyJWT (PyJWKClient), in a venv (tests/interop/.venv);
#   - node's jose (createRemoteJWKSet + jwtVerify), from package.json;
#   - keys/README.md's snippets for both (exported jwks.json and <kid>.pem);
#   - examples/partner (GET /hello with and without the token);
#   - `jwtd token verify --jwks URL`;
# and checks that every one of them refuses a tampered token. Then, for
# each algorithm, a jwtd with `issuer`, `metrics_bind`, JSON logs and a
# rotation every 4 s:
#   - openid-client discovers it and jose verifies its tokens with the
#     discovered keys and algorithms;
#   - Python's prometheus_client parses /metrics before and after a login,
#     a failed login, a refresh, a reuse and a rotation, and checks what
#     moved and that no request made a label;
#   - every stderr line is a JSON object with the audit events' `event`.
#
# Usage: tests/interop/run.sh            (debug build)
#        INTEROP_PROFILE=release tests/interop/run.sh
# Needs: cargo, curl, python3 (with venv; pip reaches PyPI), node + npm.
# Loopback only; every process it starts is stopped by PID on exit; the
# whole run is bounded by INTEROP_DEADLINE seconds (default 1500).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Bound the whole run, whatever hangs.
if [[ -z ${INTEROP_BOUNDED:-} ]]; then
    export INTEROP_BOUNDED=1
    exec timeout --kill-after=15 "${INTEROP_DEADLINE:-1500}" bash "${BASH_SOURCE[0]}" "$@"
fi

PYJWT_VERSION=2.15.1
PROMETHEUS_CLIENT_VERSION=0.26.0
JOSE_VERSION=$(sed -n 's/.*"jose": *"\([^"]*\)".*/\1/p' "$HERE/package.json")
OPENID_CLIENT_VERSION=$(sed -n 's/.*"openid-client": *"\([^"]*\)".*/\1/p' "$HERE/package.json")
PROFILE=${INTEROP_PROFILE:-debug}
VENV=${INTEROP_VENV:-$HERE/.venv}
PASSWORD='correct horse'

# No inherited configuration: each server gets exactly what we set.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^JWTD_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jwtd-interop.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "interop: interrupted" >&2; exit 143' INT TERM

PASSED=0
FAILED=0
FAILURES=()
pass() {
    PASSED=$((PASSED + 1))
    echo "  ok   $1"
}
fail() {
    FAILED=$((FAILED + 1))
    FAILURES+=("$1")
    echo "  FAIL $1${2:+: $2}"
}
# expect NAME ACTUAL WANTED
expect() {
    if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1" "got [$2], want [$3]"; fi
}
die() {
    echo "interop: FAIL: $*" >&2
    exit 1
}

# Waits (bounded) for a line matching REGEX in FILE; prints the line.
wait_for_line() {
    local file=$1 regex=$2 pid=$3 seconds=${4:-30} i line
    for ((i = 0; i < seconds * 10; i++)); do
        line=$(sed 's/\x1b\[[0-9;]*m//g' "$file" 2>/dev/null | grep -m1 -E "$regex" || true)
        if [[ -n $line ]]; then
            echo "$line"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; return 1; }
        sleep 0.1
    done
    cat "$file" >&2
    return 1
}

# --- Build and install what the checks need ----------------------------------

echo "== build jwtd and examples/partner ($PROFILE)"
BUILD_FLAGS=()
[[ $PROFILE == release ]] && BUILD_FLAGS=(--release)
(cd "$ROOT" && timeout 1200 cargo build "${BUILD_FLAGS[@]}" --bin jwtd --example partner) ||
    die "cargo build failed"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
JWTD=$TARGET/$PROFILE/jwtd
PARTNER=$TARGET/$PROFILE/examples/partner
[[ -x $JWTD && -x $PARTNER ]] || die "no $JWTD or $PARTNER after the build"

echo "== PyJWT $PYJWT_VERSION in $VENV"
if ! "$VENV/bin/python" -c "
import jwt, cryptography, sys
from importlib.metadata import version
sys.exit(jwt.__version__ != '$PYJWT_VERSION' or version('prometheus_client') != '$PROMETHEUS_CLIENT_VERSION')" 2>/dev/null; then
    timeout 120 python3 -m venv "$VENV" || die "python3 -m venv failed"
    timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "pyjwt[crypto]==$PYJWT_VERSION" "prometheus_client==$PROMETHEUS_CLIENT_VERSION" ||
        die "pip install pyjwt[crypto] prometheus_client failed"
fi
PYTHON=$VENV/bin/python

echo "== jose $JOSE_VERSION and openid-client $OPENID_CLIENT_VERSION in $HERE/node_modules"
installed=$(node -p "require('$HERE/node_modules/jose/package.json').version + ' ' + require('$HERE/node_modules/openid-client/package.json').version" 2>/dev/null || true)
if [[ $installed != "$JOSE_VERSION $OPENID_CLIENT_VERSION" ]]; then
    (cd "$HERE" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
fi

# --- Helpers on tokens ---------------------------------------------------------

# The JSON member NAME of the JSON document on stdin.
json_get() {
    "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# TOKEN with its user_id claim changed; header and signature kept.
tamper() {
    "$PYTHON" - "$1" <<'PY'
import base64, json, sys
header, payload, signature = sys.argv[1].split(".")
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
claims["user_id"] = "999999"
body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
print(f"{header}.{body.decode()}.{signature}")
PY
}

# A claim of TOKEN, read without verifying.
claim() {
    "$PYTHON" - "$1" "$2" <<'PY'
import base64, json, sys
payload = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[sys.argv[2]])
PY
}

# Runs a checker script; counts its "ok"/"FAIL" lines into the summary.
run_checker() {
    local name=$1 out status=0
    shift
    out=$("$@" 2>&1) || status=$?
    echo "$out"
    local ok bad
    ok=$(grep -c '^  ok ' <<<"$out" || true)
    bad=$(grep -c '^  FAIL ' <<<"$out" || true)
    PASSED=$((PASSED + ok))
    FAILED=$((FAILED + bad))
    while IFS= read -r line; do FAILURES+=("${line#  FAIL }"); done < <(grep '^  FAIL ' <<<"$out" || true)
    if [[ $status -ne 0 && $bad -eq 0 ]]; then
        fail "$name" "exited $status without a verdict"
    elif [[ $ok -eq 0 && $bad -eq 0 ]]; then
        fail "$name" "ran no check"
    fi
}

# --- One algorithm -------------------------------------------------------------

interop() {
    local alg=$1 dir=$WORK/$1
    mkdir -p "$dir"
    echo "== $alg: jwtd serve"
    (cd "$dir" && JWTD_ALGORITHM=$alg JWTD_BIND=127.0.0.1:0 exec "$JWTD" serve) \
        >"$dir/serve.out" 2>"$dir/serve.log" &
    local jwtd_pid=$!
    PIDS+=("$jwtd_pid")
    local line addr
    line=$(wait_for_line "$dir/serve.log" 'jwtd listening' "$jwtd_pid" 30) ||
        die "$alg: jwtd serve did not start"
    addr=$(grep -oE 'addr=[0-9.]+:[0-9]+' <<<"$line" | cut -d= -f2)
    [[ $addr == 127.0.0.1:* ]] || die "$alg: not on loopback: $line"
    local base=http://$addr url=http://$addr/.well-known/jwks.json
    echo "   listening on $addr"

    # A user, added with the CLI while the server runs (they share jwtd.db).
    (cd "$dir" && printf '%s\n' "$PASSWORD" |
        JWTD_ALGORITHM=$alg timeout 60 "$JWTD" users add alice --password-stdin) >/dev/null ||
        die "$alg: users add failed"

    local pair access refresh tampered user_id
    pair=$(curl -sS --fail-with-body --max-time 20 -X POST "$base/api/token/" \
        -H 'Content-Type: application/json' \
        -d "{\"username\": \"alice\", \"password\": \"$PASSWORD\"}") || die "$alg: login failed: $pair"
    access=$(json_get access <<<"$pair")
    refresh=$(json_get refresh <<<"$pair")
    tampered=$(tamper "$access")
    user_id=$(claim "$access" user_id)
    expect "$alg: login with curl gives an access token for user 1" "$(claim "$access" token_type)/$user_id" "access/1"

    local headers
    headers=$(curl -sS --max-time 10 -D - -o /dev/null "$url")
    if grep -qi '^cache-control: public, max-age=' <<<"$headers" && grep -qi '^etag: ' <<<"$headers"; then
        pass "$alg: live JWKS has Cache-Control and ETag"
    else
        fail "$alg: live JWKS has Cache-Control and ETag" "$headers"
    fi

    (cd "$dir" && JWTD_ALGORITHM=$alg timeout 60 "$JWTD" keys export --out "$dir/export") >/dev/null ||
        die "$alg: keys export failed"

    echo "-- $alg: PyJWT $PYJWT_VERSION"
    run_checker "$alg: pyjwt_check.py" timeout 120 "$PYTHON" "$HERE/pyjwt_check.py" \
        "$url" "$dir/export" "$alg" "$user_id" "$access" "$refresh" "$tampered"

    echo "-- $alg: jose $JOSE_VERSION"
    run_checker "$alg: jose_check.mjs" timeout 120 env NODE_PATH="$HERE/node_modules" \
        node "$HERE/jose_check.mjs" "$url" "$dir/export" "$alg" "$user_id" "$access" "$refresh" "$tampered"

    echo "-- $alg: jwtd token verify --jwks URL"
    if (cd "$dir" && timeout 60 "$JWTD" token verify "$access" --jwks "$url") >/dev/null 2>&1; then
        pass "$alg: jwtd token verify accepts the access token"
    else
        fail "$alg: jwtd token verify accepts the access token"
    fi
    if (cd "$dir" && timeout 60 "$JWTD" token verify "$tampered" --jwks "$url") >/dev/null 2>&1; then
        fail "$alg: jwtd token verify refuses the tampered token"
    else
        pass "$alg: jwtd token verify refuses the tampered token"
    fi

    echo "-- $alg: examples/partner"
    "$PARTNER" --jwks-url "$url" --bind 127.0.0.1:0 >"$dir/partner.out" 2>"$dir/partner.err" &
    local partner_pid=$!
    PIDS+=("$partner_pid")
    line=$(wait_for_line "$dir/partner.out" 'partner listening on' "$partner_pid" 30) ||
        die "$alg: the partner did not start: $(cat "$dir/partner.err")"
    local hello=http://${line##* }/hello
    local status body
    body=$(curl -sS --max-time 10 -w '\n%{http_code}' "$hello" -H "Authorization: Bearer $access")
    expect "$alg: partner /hello with the token: 200 {\"user_id\":\"1\"}" "${body//$'\n'/ }" '{"user_id":"1"} 200'
    headers=$(curl -sS --max-time 10 -D - -o "$dir/hello.body" "$hello")
    status=$(head -1 <<<"$headers" | awk '{print $2}')
    expect "$alg: partner /hello without a token: 401" "$status" 401
    expect "$alg: partner /hello without a token: simplejwt's body" "$(cat "$dir/hello.body")" \
        '{"detail":"Authentication credentials were not provided."}'
    if grep -qi '^www-authenticate: Bearer realm="api"' <<<"$headers"; then
        pass "$alg: partner 401 carries WWW-Authenticate: Bearer realm=\"api\""
    else
        fail "$alg: partner 401 carries WWW-Authenticate" "$headers"
    fi
    status=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$hello" -H "Authorization: Bearer $tampered")
    expect "$alg: partner /hello with the tampered token: 401" "$status" 401
    status=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$hello" -H "Authorization: Bearer $refresh")
    expect "$alg: partner /hello with the refresh token: 401" "$status" 401

    kill "$partner_pid" "$jwtd_pid" 2>/dev/null || true
    wait "$partner_pid" "$jwtd_pid" 2>/dev/null || true
}

# A free loopback port (the issuer URL must name it before jwtd starts).
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- Operations: discovery, metrics, JSON logs ---------------------------------

operations() {
    local alg=$1 dir=$WORK/ops-$1
    mkdir -p "$dir"
    local port metrics_port
    port=$(free_port)
    metrics_port=$(free_port)
    local base=http://127.0.0.1:$port metrics=http://127.0.0.1:$metrics_port/metrics
    echo "== $alg: jwtd serve with issuer $base, metrics_bind, JSON logs, a rotation every 4 s"
    local settings=(JWTD_ALGORITHM="$alg" JWTD_BIND=127.0.0.1:$port JWTD_ISSUER="$base"
        JWTD_METRICS_BIND=127.0.0.1:$metrics_port JWTD_LOG_FORMAT=json
        JWTD_KEY_ROTATION_INTERVAL=4s JWTD_KEY_PREPUBLISH=1s JWTD_JWKS_MAX_AGE=1s)
    (cd "$dir" && exec env "${settings[@]}" "$JWTD" serve) >"$dir/serve.out" 2>"$dir/serve.log" &
    local jwtd_pid=$!
    PIDS+=("$jwtd_pid")
    wait_for_line "$dir/serve.log" 'jwtd listening' "$jwtd_pid" 30 >/dev/null ||
        die "$alg: jwtd serve did not start"
    (cd "$dir" && printf '%s\n' "$PASSWORD" |
        env "${settings[@]}" timeout 60 "$JWTD" users add alice --password-stdin) >/dev/null ||
        die "$alg: users add failed"

    curl -sS --max-time 10 "$metrics" >"$dir/before.prom" || die "$alg: scraping $metrics failed"
    local pair access refresh tampered second
    pair=$(curl -sS --fail-with-body --max-time 20 -X POST "$base/api/token/" \
        -H 'Content-Type: application/json' \
        -d "{\"username\": \"alice\", \"password\": \"$PASSWORD\"}") || die "$alg: login failed: $pair"
    access=$(json_get access <<<"$pair")
    refresh=$(json_get refresh <<<"$pair")
    tampered=$(tamper "$access")
    curl -sS --max-time 20 -o /dev/null -X POST "$base/api/token/" -d username=alice -d password=wrong
    second=$(curl -sS --fail-with-body --max-time 20 -X POST "$base/api/token/refresh/" \
        -d "refresh=$refresh") || die "$alg: refresh failed: $second"
    # The refreshed-away token again: a reuse.
    curl -sS --max-time 20 -o /dev/null -X POST "$base/api/token/refresh/" -d "refresh=$refresh"
    curl -sS --max-time 10 -o /dev/null --path-as-is "$base/../x?%00"
    curl -sS --max-time 10 -o /dev/null "$base/api/token/%00/x"
    # The next key takes over 4 s after the first was made.
    sleep 6
    curl -sS --max-time 10 "$metrics" >"$dir/after.prom" || die "$alg: scraping $metrics failed"

    echo "-- $alg: openid-client $OPENID_CLIENT_VERSION discovery"
    run_checker "$alg: discovery_check.mjs" timeout 120 env NODE_PATH="$HERE/node_modules" \
        node "$HERE/discovery_check.mjs" "$base" "$alg" "$access" "$tampered"

    echo "-- $alg: prometheus_client $PROMETHEUS_CLIENT_VERSION parses /metrics"
    run_checker "$alg: metrics_check.py" timeout 60 "$PYTHON" "$HERE/metrics_check.py" \
        "$dir/before.prom" "$dir/after.prom" "$alg"
    local status
    status=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$base/metrics")
    expect "$alg: /metrics is not served on bind" "$status" 404

    kill "$jwtd_pid" 2>/dev/null || true
    wait "$jwtd_pid" 2>/dev/null || true
    echo "-- $alg: log_format = json"
    run_checker "$alg: JSON log lines" "$PYTHON" - "$dir/serve.log" "$alg" <<'PY'
import json, sys
path, alg = sys.argv[1:3]
lines = open(path, encoding="utf-8").read().splitlines()
bad, events = [], set()
for line in lines:
    try:
        entry = json.loads(line)
    except ValueError:
        bad.append(line)
        continue
    if not all(key in entry for key in ("timestamp", "level", "target")):
        bad.append(line)
    if "event" in entry:
        events.add(entry["event"])
want = {"login_succeeded", "login_failed", "refresh_reuse_detected", "family_revoked", "key_activated"}
ok = lines and not bad
print(f"  {'ok  ' if ok else 'FAIL'} {alg}: all {len(lines)} stderr lines are JSON objects with timestamp, level, target" + ("" if ok else f": {bad[:3]}"))
missing = want - events
print(f"  {'ok  ' if not missing else 'FAIL'} {alg}: audit events keep their event field" + ("" if not missing else f": missing {sorted(missing)}"))
PY
}

ALGORITHMS=(RS256 ES256 ES384 PS256 EdDSA)
for alg in "${ALGORITHMS[@]}"; do interop "$alg"; done
for alg in "${ALGORITHMS[@]}"; do operations "$alg"; done

echo
echo "== interop summary"
if ((FAILED > 0)); then
    printf '  FAIL %s\n' "${FAILURES[@]}"
fi
echo "interop: $PASSED passed, $FAILED failed"
if ((FAILED > 0 || PASSED == 0)); then
    echo "interop: FAIL"
    exit 1
fi
echo "interop: PASS"
