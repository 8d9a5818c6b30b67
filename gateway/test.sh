#!/usr/bin/env bash
# Tries gateway/nginx (nginx + njs verifying jwtd's tokens through the JWKS
# URL) for real: for RS256, ES256, ES384 and PS256 (and EdDSA, which it refuses),
# starts `jwtd serve` and nginx on
# temporary loopback ports (nginx -p <tempdir>, in the foreground, its PID
# tracked), logs in, and checks what the gateway lets through.
#
# Usage: gateway/test.sh      Needs: cargo, curl, python3; nginx and the njs
# module (installed with apt-get when missing, which needs root).
# Loopback only; stops what it started by PID; bounded by
# GATEWAY_DEADLINE seconds (default 900).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

if [[ -z ${GATEWAY_BOUNDED:-} ]]; then
    export GATEWAY_BOUNDED=1
    exec timeout --kill-after=15 "${GATEWAY_DEADLINE:-900}" bash "${BASH_SOURCE[0]}" "$@"
fi

NJS_MODULE=/usr/lib/nginx/modules/ngx_http_js_module.so
PASSWORD='correct horse'
# Short enough to see tokens expire and the JWKS go stale within the test.
ACCESS_LIFETIME=8
JWKS_MAX_AGE=1

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^JWTD_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/jwtd-gateway.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "gateway: interrupted" >&2; exit 143' INT TERM

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
expect() {
    if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1" "got [$2], want [$3]"; fi
}
die() {
    echo "gateway: FAIL: $*" >&2
    exit 1
}

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

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- nginx with njs, and jwtd --------------------------------------------------

if ! command -v nginx >/dev/null || [[ ! -f $NJS_MODULE ]]; then
    echo "== installing nginx and njs (Debian: nginx libnginx-mod-http-js)"
    [[ $(id -u) -eq 0 ]] || die "nginx or its njs module is missing; run as root or install them"
    timeout 300 apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq nginx libnginx-mod-http-js >/dev/null ||
        die "apt-get install nginx libnginx-mod-http-js failed"
fi
echo "== $(nginx -v 2>&1), njs module $NJS_MODULE"

echo "== build jwtd"
(cd "$ROOT" && timeout 1200 cargo build --bin jwtd) || die "cargo build failed"
JWTD=${CARGO_TARGET_DIR:-$ROOT/target}/debug/jwtd

# --- Token helpers (python3 only decodes and re-encodes) ----------------------

claim() {
    python3 - "$1" "$2" <<'PY'
import base64, json, sys
payload = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[sys.argv[2]])
PY
}

# forge TOKEN MODE: the token with its payload or header changed, the
# signature kept (tamper, kid, alg-swap) or dropped (none).
forge() {
    python3 - "$1" "$2" <<'PY'
import base64, json, sys
token, mode = sys.argv[1], sys.argv[2]
h, p, s = token.split(".")
dec = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
enc = lambda obj: base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()
header, claims = dec(h), dec(p)
if mode == "tamper":
    claims["user_id"] = "999999"
    print(f"{h}.{enc(claims)}.{s}")
elif mode == "kid":
    header["kid"] = base64.urlsafe_b64encode(__import__("os").urandom(32)).rstrip(b"=").decode()
    print(f"{enc(header)}.{p}.{s}")
elif mode == "alg-swap":
    header["alg"] = "ES256" if header["alg"] == "RS256" else "RS256"
    print(f"{enc(header)}.{p}.{s}")
elif mode == "none":
    header["alg"] = "none"
    print(f"{enc(header)}.{p}.")
PY
}

# GET the gateway with optional Authorization and extra header; prints
# "STATUS BODY" and leaves the response headers in $WORK/headers.
gw() {
    local auth=${1-} extra=${2-}
    local args=(-sS --max-time 10 -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}')
    [[ -n $auth ]] && args+=(-H "Authorization: $auth")
    [[ -n $extra ]] && args+=(-H "$extra")
    local status
    status=$(curl "${args[@]}" "$GATEWAY/api/anything")
    echo "$status $(tr -d '\n' <"$WORK/body")"
}

challenge_ok() {
    grep -qi '^www-authenticate: Bearer realm="api"' "$WORK/headers"
}

invalid_body() {
    printf '{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken","token_type":"access","message":"%s"}]}' "$1"
}

# Lines of the JWKS log for LOCATION that reached the issuer.
upstream_fetches() {
    grep -c "^$1 .*upstream=[0-9]" "$PREFIX/logs/jwks.log" || true
}

# --- One algorithm -------------------------------------------------------------

gateway() {
    local alg=$1 dir=$WORK/$1
    mkdir -p "$dir"
    echo "== $alg: jwtd serve (access tokens ${ACCESS_LIFETIME}s, JWKS max-age ${JWKS_MAX_AGE}s)"
    (cd "$dir" && JWTD_ALGORITHM=$alg JWTD_BIND=127.0.0.1:0 \
        JWTD_ACCESS_TOKEN_LIFETIME=${ACCESS_LIFETIME}s JWTD_JWKS_MAX_AGE=${JWKS_MAX_AGE}s \
        exec "$JWTD" serve) >"$dir/serve.out" 2>"$dir/serve.log" &
    local jwtd_pid=$!
    PIDS+=("$jwtd_pid")
    local line issuer
    line=$(wait_for_line "$dir/serve.log" 'jwtd listening' "$jwtd_pid" 30) || die "$alg: jwtd did not start"
    issuer=$(grep -oE 'addr=[0-9.]+:[0-9]+' <<<"$line" | cut -d= -f2)
    (cd "$dir" && printf '%s\n' "$PASSWORD" | JWTD_ALGORITHM=$alg timeout 60 "$JWTD" users add alice --password-stdin) \
        >/dev/null || die "$alg: users add failed"

    # nginx: the committed config, with temporary ports.
    PREFIX=$dir/nginx
    mkdir -p "$PREFIX/logs" "$PREFIX/temp" "$PREFIX/cache"
    local gw_port backend_port
    gw_port=$(free_port)
    backend_port=$(free_port)
    sed -e "s/127\.0\.0\.1:8000;/$issuer;/" \
        -e "s/127\.0\.0\.1:8080;/127.0.0.1:$gw_port;/" \
        -e "s/127\.0\.0\.1:8081;/127.0.0.1:$backend_port;/" \
        "$HERE/nginx/nginx.conf" >"$PREFIX/nginx.conf"
    cp "$HERE/nginx/jwt.js" "$PREFIX/jwt.js"
    local globals='daemon off;'
    [[ $(id -u) -eq 0 ]] && globals+=" user root root;"
    nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -t -q -e "$PREFIX/logs/error.log" -g "$globals" ||
        die "$alg: nginx -t refused the configuration: $(cat "$PREFIX/logs/error.log")"
    nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -g "$globals" \
        >"$PREFIX/logs/stdout" 2>&1 &
    local nginx_pid=$!
    PIDS+=("$nginx_pid")
    GATEWAY=http://127.0.0.1:$gw_port
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s --max-time 1 -o /dev/null "$GATEWAY/" && break
        kill -0 "$nginx_pid" 2>/dev/null || die "$alg: nginx exited: $(cat "$PREFIX/logs/error.log")"
        sleep 0.1
    done
    echo "   jwtd on $issuer, gateway on 127.0.0.1:$gw_port, demo backend on 127.0.0.1:$backend_port"

    local pair access refresh logged_in_at
    pair=$(curl -sS --fail-with-body --max-time 20 -X POST "http://$issuer/api/token/" \
        -H 'Content-Type: application/json' \
        -d "{\"username\": \"alice\", \"password\": \"$PASSWORD\"}") || die "$alg: login failed: $pair"
    logged_in_at=$(date +%s)
    access=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])' <<<"$pair")
    refresh=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh"])' <<<"$pair")

    if [[ $alg == EdDSA ]]; then
        # njs's WebCrypto has no Ed25519: the gateway refuses what it cannot check.
        expect "EdDSA: a genuine token is refused: 401" "$(gw "Bearer $access")" \
            "401 $(invalid_body 'Token is invalid')"
        expect "EdDSA: the issuer itself accepts it: 200" \
            "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "http://$issuer/api/me/")" 200
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        return
    fi
    expect "$alg: valid access token: 200, the backend sees its user_id" \
        "$(gw "Bearer $access")" '200 {"user_id":"1"}'
    expect "$alg: a client's own X-User-Id is replaced" \
        "$(gw "Bearer $access" 'X-User-Id: 42')" '200 {"user_id":"1"}'

    expect "$alg: no token: 401" "$(gw)" \
        '401 {"detail":"Authentication credentials were not provided."}'
    if challenge_ok; then pass "$alg: 401 carries WWW-Authenticate: Bearer realm=\"api\""; else
        fail "$alg: 401 carries WWW-Authenticate" "$(cat "$WORK/headers")"
    fi
    expect "$alg: another scheme: 401" "$(gw 'Basic x')" \
        '401 {"detail":"Authentication credentials were not provided."}'
    expect "$alg: two values after Bearer: 401" "$(gw 'Bearer a b')" \
        '401 {"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}'
    expect "$alg: garbage: 401" "$(gw 'Bearer garbage')" "401 $(invalid_body 'Token is invalid')"
    expect "$alg: tampered token: 401" "$(gw "Bearer $(forge "$access" tamper)")" \
        "401 $(invalid_body 'Token is invalid')"
    expect "$alg: header naming the other algorithm: 401" "$(gw "Bearer $(forge "$access" alg-swap)")" \
        "401 $(invalid_body 'Token is invalid')"
    expect "$alg: alg none: 401" "$(gw "Bearer $(forge "$access" none)")" \
        "401 $(invalid_body 'Token is invalid')"
    expect "$alg: refresh token: 401" "$(gw "Bearer $refresh")" \
        "401 $(invalid_body 'Token has wrong type')"
    if challenge_ok; then pass "$alg: token 401s carry WWW-Authenticate too"; else
        fail "$alg: token 401s carry WWW-Authenticate" "$(cat "$WORK/headers")"
    fi

    # Unknown kids: each looks in /_jwks_refresh, which reaches the issuer
    # at most once per 30 s.
    local refused=0 n
    for ((n = 0; n < 20; n++)); do
        [[ $(gw "Bearer $(forge "$access" kid)") == 401\ * ]] && refused=$((refused + 1))
    done
    expect "$alg: 20 random kids: all 401" "$refused" 20
    expect "$alg: 20 random kids: one JWKS fetch (cooldown 30 s)" "$(upstream_fetches /_jwks_refresh)" 1

    # Cached: a burst of requests within max-age costs at most one fetch.
    local before after
    sleep 1.2
    before=$(upstream_fetches /_jwks)
    for ((n = 0; n < 20; n++)); do gw "Bearer $access" >/dev/null; done
    after=$(upstream_fetches /_jwks)
    if ((after - before <= 2)); then
        pass "$alg: 20 verifications, $((after - before)) JWKS fetch(es): cached"
    else
        fail "$alg: JWKS cached" "$((after - before)) fetches for 20 requests"
    fi
    # Revalidated: once stale, nginx asks with If-None-Match and gets 304.
    if grep -q '^/_jwks .*upstream=304' "$PREFIX/logs/jwks.log"; then
        pass "$alg: stale JWKS revalidated with If-None-Match: 304"
    else
        fail "$alg: stale JWKS revalidated with a 304" "$(cat "$PREFIX/logs/jwks.log")"
    fi

    # The issuer stopped: the stale JWKS keeps verifying (a fresh token, so
    # that its lifetime covers the wait).
    local fresh
    fresh=$(curl -sS --fail-with-body --max-time 20 -X POST "http://$issuer/api/token/" \
        -H 'Content-Type: application/json' \
        -d "{\"username\": \"alice\", \"password\": \"$PASSWORD\"}") || die "$alg: login failed: $fresh"
    fresh=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])' <<<"$fresh")
    kill "$jwtd_pid"
    wait "$jwtd_pid" 2>/dev/null || true
    sleep 1.5
    expect "$alg: issuer stopped, JWKS stale: valid token still 200" \
        "$(gw "Bearer $fresh")" '200 {"user_id":"1"}'
    expect "$alg: issuer stopped: tampered token still 401" \
        "$(gw "Bearer $(forge "$fresh" tamper)")" "401 $(invalid_body 'Token is invalid')"

    # Expired: wait out the access token's lifetime.
    local wait_s=$((logged_in_at + ACCESS_LIFETIME + 1 - $(date +%s)))
    ((wait_s > 0)) && sleep "$wait_s"
    expect "$alg: expired access token: 401" "$(gw "Bearer $access")" \
        "401 $(invalid_body 'Token is expired')"

    # Errors other than failing to reach the stopped issuer.
    local errors
    errors=$(grep -E '\[(error|crit|alert|emerg)\]' "$PREFIX/logs/error.log" | grep -v 'connect() failed' || true)
    if [[ -z $errors ]]; then
        pass "$alg: nginx logged no error (but reaching the stopped issuer)"
    else
        fail "$alg: nginx logged errors" "$errors"
    fi

    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
}

gateway RS256
gateway ES256
gateway ES384
gateway PS256
gateway EdDSA

echo
echo "== gateway summary"
if ((FAILED > 0)); then printf '  FAIL %s\n' "${FAILURES[@]}"; fi
echo "gateway: $PASSED passed, $FAILED failed"
if ((FAILED > 0 || PASSED == 0)); then
    echo "gateway: FAIL"
    exit 1
fi
echo "gateway: PASS"
