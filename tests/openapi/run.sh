#!/usr/bin/env bash
# jwtd against its own OpenAPI document, with schemathesis.
#
# Builds jwtd, starts a real `jwtd serve` (with an `issuer`, so that
# discovery answers) in a temporary directory on a loopback port, adds a
# user with the CLI, and
#   - walks the real flows (login, refresh, verify, blacklist, sliding,
#     me, logout-all, JWKS, probes, and the 400, 401, 405, 413, 415 and 429
#     answers) with flows_check.py, checking each answer against the
#     document (schemathesis's made-up tokens never reach a success);
#   - logs in with curl and runs schemathesis (pinned, in a venv:
#     tests/openapi/.venv) on every operation
# of GET /openapi.json with that user's access token as the bearer: every
# check (no 5xx, status codes, content types, headers and bodies as
# documented, schema-valid bodies accepted, invalid ones refused, 405 with
# Allow on undocumented methods, protected views refusing no or bad
# credentials), a bounded number of examples per operation and a time
# budget. The access token lives an hour so that it outlasts the run.
#
# Usage: tests/openapi/run.sh            (debug build)
#        OPENAPI_PROFILE=release tests/openapi/run.sh
# Needs: cargo, curl, python3 (with venv; pip reaches PyPI).
# Loopback only; the jwtd it starts is stopped by PID on exit; the whole
# run is bounded by OPENAPI_DEADLINE seconds (default 900), schemathesis
# by OPENAPI_FUZZ_SECONDS (default 180).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Bound the whole run, whatever hangs.
if [[ -z ${OPENAPI_BOUNDED:-} ]]; then
    export OPENAPI_BOUNDED=1
    exec timeout --kill-after=15 "${OPENAPI_DEADLINE:-900}" bash "${BASH_SOURCE[0]}" "$@"
fi

SCHEMATHESIS_VERSION=4.32.5
# What flows_check.py imports, pinned too (the versions schemathesis brings).
JSONSCHEMA_RS_VERSION=0.60.3
REQUESTS_VERSION=2.34.2
PROFILE=${OPENAPI_PROFILE:-debug}
VENV=${OPENAPI_VENV:-$HERE/.venv}
FUZZ_SECONDS=${OPENAPI_FUZZ_SECONDS:-180}
EXAMPLES=${OPENAPI_EXAMPLES:-50}
PASSWORD='correct horse'

# No inherited configuration: the server gets exactly what we set.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^JWTD_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jwtd-openapi.XXXXXX")
JWTD_PID=
cleanup() {
    if [[ -n $JWTD_PID ]]; then
        kill "$JWTD_PID" 2>/dev/null || true
        wait "$JWTD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "openapi: interrupted" >&2; exit 143' INT TERM

die() {
    echo "openapi: FAIL: $*" >&2
    exit 1
}

echo "== build jwtd ($PROFILE)"
BUILD_FLAGS=()
[[ $PROFILE == release ]] && BUILD_FLAGS=(--release)
(cd "$ROOT" && timeout 1200 cargo build "${BUILD_FLAGS[@]}" --bin jwtd) || die "cargo build failed"
JWTD=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/jwtd
[[ -x $JWTD ]] || die "no $JWTD after the build"

echo "== schemathesis $SCHEMATHESIS_VERSION in $VENV"
if [[ $("$VENV/bin/python" -c "from importlib.metadata import version; print(version('schemathesis'))" 2>/dev/null) != "$SCHEMATHESIS_VERSION" ]]; then
    timeout 120 python3 -m venv "$VENV" || die "python3 -m venv failed"
    timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION" "jsonschema_rs==$JSONSCHEMA_RS_VERSION" \
        "requests==$REQUESTS_VERSION" || die "pip install schemathesis failed"
fi

PYTHON=$VENV/bin/python
# A free loopback port: the issuer URL names it before jwtd starts.
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$port
echo "== jwtd serve on $BASE"
SETTINGS=(JWTD_BIND=127.0.0.1:$port JWTD_ISSUER=$BASE JWTD_ACCESS_TOKEN_LIFETIME=1h)
(cd "$WORK" && exec env "${SETTINGS[@]}" "$JWTD" serve) >"$WORK/serve.out" 2>"$WORK/serve.log" &
JWTD_PID=$!
for ((i = 0; i < 300; i++)); do
    sed 's/\x1b\[[0-9;]*m//g' "$WORK/serve.log" | grep -q 'jwtd listening' && break
    kill -0 "$JWTD_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; die "jwtd serve exited"; }
    sleep 0.1
done
curl -sS --fail --max-time 10 -o /dev/null "$BASE/livez" || { cat "$WORK/serve.log" >&2; die "jwtd serve did not start"; }

(cd "$WORK" && printf '%s\n' "$PASSWORD" |
    env "${SETTINGS[@]}" timeout 60 "$JWTD" users add alice --password-stdin) >/dev/null ||
    die "users add failed"

echo "== real flows, each answer against the document"
timeout 120 "$PYTHON" "$HERE/flows_check.py" "$BASE" alice "$PASSWORD" || die "flows_check.py failed"

pair=$(curl -sS --fail-with-body --max-time 20 -X POST "$BASE/api/token/" \
    -H 'Content-Type: application/json' \
    -d "{\"username\": \"alice\", \"password\": \"$PASSWORD\"}") || die "login failed: $pair"
access=$("$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["access"])' <<<"$pair")

echo "== schemathesis: every operation, every check, $EXAMPLES examples each, at most $FUZZ_SECONDS s"
status=0
(cd "$WORK" && timeout --kill-after=10 $((FUZZ_SECONDS + 120)) "$VENV/bin/schemathesis" run \
    "$BASE/openapi.json" \
    --checks all \
    --max-examples "$EXAMPLES" \
    --max-time "$FUZZ_SECONDS" \
    --request-timeout 30 \
    --workers 2 \
    --seed "${OPENAPI_SEED:-20261203}" \
    --header "Authorization: Bearer $access") || status=$?

kill -0 "$JWTD_PID" 2>/dev/null || die "jwtd exited during the run"
errors=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/serve.log" | grep -E ' ERROR |panicked' || true)
[[ -z $errors ]] || die "jwtd logged an internal error or a panic: $(head -5 <<<"$errors")"
if ((status != 0)); then
    die "schemathesis found failures (exit $status)"
fi
echo "openapi: PASS"
