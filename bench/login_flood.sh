#!/usr/bin/env bash
# bench/login_flood.sh: the server's memory under a flood of failed logins
# with hostile usernames.
#
#   bench/login_flood.sh
#
# Starts a release `jwtd serve` on a free loopback port with a temporary
# database, reads its RSS (VmRSS), then sends, one connection, in order:
#   1. LONG failed logins whose usernames are 64,000 bytes, all different;
#   2. DISTINCT failed logins whose usernames are valid, 150 characters and
#      all different (each one a new throttle entry);
# and reads the RSS after each burst. Prints one table; exits 1 if the RSS
# grew by more than LIMIT_MIB over the whole flood. Bounded: every request
# has a timeout, the whole script BENCH_TIMEOUT seconds.
#
# Settings (environment): LONG (default 3000), DISTINCT (default 2000),
# LIMIT_MIB (default 48), BENCH_TIMEOUT (default 900), KEEP=1 keeps the
# temporary directory.
set -euo pipefail

if [[ -z "${_JWTD_BENCH_BOUNDED:-}" ]]; then
  export _JWTD_BENCH_BOUNDED=1
  exec timeout --foreground --kill-after=20 "${BENCH_TIMEOUT:-900}" "$0" "$@"
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
long=${LONG:-3000}
distinct=${DISTINCT:-2000}
limit_mib=${LIMIT_MIB:-48}

cargo build --release --quiet
work=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  [[ "${KEEP:-0}" == 1 ]] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

# The throttle must not stop the flood before it has filled the counters:
# the per-address limit is off, per user and per account stay on.
(cd "$work" && JWTD_BIND=127.0.0.1:0 JWTD_LOGIN_FAILURES_PER_ADDRESS=0 \
  exec "$root/target/release/jwtd" serve 2>"$work/serve.log") &
pid=$!
addr=""
for _ in $(seq 1 200); do
  addr=$(grep -o 'addr=[0-9.:]*' "$work/serve.log" | head -1 | cut -d= -f2 || true)
  [[ -n "$addr" ]] && break
  sleep 0.05
done
[[ -n "$addr" ]] || { echo "jwtd did not start: $(cat "$work/serve.log")" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

flood() {
  python3 - "$addr" "$1" "$2" <<'PY'
import http.client, json, sys
host, port = sys.argv[1].rsplit(":", 1)
kind, count = sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(host, int(port), timeout=30)
statuses = {}
for i in range(count):
    if kind == "long":
        name = f"{i:08d}" + "x" * (64_000 - 8)
    else:
        name = f"{i:08d}" + "y" * (150 - 8)
    body = json.dumps({"username": name, "password": "wrong"})
    conn.request("POST", "/api/token/", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    statuses[response.status] = statuses.get(response.status, 0) + 1
print(" ".join(f"{status}x{n}" for status, n in sorted(statuses.items())))
PY
}

start=$(rss_kib)
long_statuses=$(flood long "$long")
after_long=$(rss_kib)
distinct_statuses=$(flood distinct "$distinct")
after_distinct=$(rss_kib)

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
echo "| burst | requests | answers | RSS after (MiB) |"
echo "|---|---|---|---|"
echo "| start | 0 | | $(mib "$start") |"
echo "| 64,000-byte usernames | $long | $long_statuses | $(mib "$after_long") |"
echo "| distinct 150-character usernames | $distinct | $distinct_statuses | $(mib "$after_distinct") |"
grown=$(( after_distinct - start ))
echo
echo "RSS grew by $(mib "$grown") MiB over the flood (limit ${limit_mib} MiB)."
if (( grown > limit_mib * 1024 )); then
  echo "the RSS grew past the limit" >&2
  exit 1
fi
