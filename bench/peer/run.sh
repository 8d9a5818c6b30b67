#!/usr/bin/env bash
# bench/peer/run.sh: the simplejwt peer (Django + DRF + djangorestframework-simplejwt
# on gunicorn), measured the way bench/run.sh measures jwtd, on the same machine.
#
#   bench/peer/run.sh             full run: RS256 and ES256, c=16 and c=64, 10 s per run (~5 min)
#   QUICK=1 bench/peer/run.sh     3 s per run (login 10 s), c=64 only (~2 min)
#
# What it does, all on 127.0.0.1 and bounded in time:
#  1. installs wrk with apt-get if it is missing; makes bench/peer/.venv with the
#     pinned versions of bench/peer/requirements.txt (pip, from PyPI), unless it
#     already has exactly them;
#  2. per algorithm: a temporary directory with a fresh key pair (openssl: RSA 2048 or
#     P-256) and a fresh SQLite database (WAL, synchronous=FULL as jwtd's, on disk);
#     user `bench`; refresh tokens minted by bench/peer/mint.py through simplejwt's
#     RefreshToken.for_user, each recorded as an OutstandingToken as a login does,
#     without the login's password hash; starts gunicorn (sync workers x 2, the
#     reference's best configuration) on a free loopback port and runs wrk (-t1,
#     fixed duration, bench/load.lua) on every endpoint at each concurrency:
#       GET /healthz (a DRF view without authentication), POST /api/token/verify/,
#       GET /api/me/ (Bearer), POST /api/token/refresh/ (rotation + blacklist, every
#       pre-minted token used once), POST /api/token/ (login, PBKDF2, last);
#     peak RSS is the sum of VmHWM over the gunicorn master and its workers (reset
#     before each run through /proc/PID/clear_refs), server CPU their utime+stime;
#     after each run it waits for the workers to go idle (a sync worker still serves
#     the requests wrk left queued in the backlog); stops gunicorn by its PID;
#  3. prints one markdown table and writes it to bench/peer/results.md, and the
#     figures as TSV to bench/peer/results.tsv, one line per run after a header:
#       endpoint alg c rps p50_ms p99_ms non2xx peak_rss_mib cpu_ms_per_req socket_errors note
#     (endpoint names as bench/run.sh's: healthz verify me refresh login).
#
# Settings (environment):
#   BENCH_SECONDS      seconds per wrk run (default 10; 3 with QUICK=1)
#   QUICK=1            3 s runs, one concurrency (64)
#   CONCURRENCY        wrk connections, space-separated (default "16 64")
#   ALGORITHMS         default "RS256 ES256"
#   LOGIN_SECONDS      seconds per login run (default: BENCH_SECONDS, at least 10)
#   WRK_THREADS        wrk -t (default 1)
#   REPS               rounds over all endpoints (default 1); each row shows the median round
#                      and the range, as bench/run.sh's. Use 3 on a machine that other work shares.
#   WORKERS            gunicorn sync workers (default 2)
#   REFRESH_MINT_RATE  refresh tokens minted per second of a refresh run (default 1500,
#                      3 x what the peer does); a run that uses them all says so in its row
#   PEER_SYNCHRONOUS   SQLite synchronous pragma (default FULL, as jwtd; the reference
#                      figures in ../shared/bench used NORMAL)
#   BENCH_TIMEOUT      overall limit in seconds (default 1800); every wrk run has its own
#   RESULTS            where the table goes (default bench/peer/results.md); the TSV goes
#                      next to it, same name with .tsv (RESULTS_TSV overrides)
#   KEEP=1             keep the temporary directories (database, keys, logs, token files)
#   DB=postgres        PostgreSQL instead of SQLite (bench/postgres.sh's throwaway cluster,
#                      PostgreSQL's defaults; psycopg, one persistent connection per worker)
#
# Needs: python3 >= 3.10 with venv, openssl, curl, wrk (installed here if missing), Linux /proc.
set -euo pipefail

if [[ -z "${_JWTD_PEER_BENCH_BOUNDED:-}" ]]; then
  export _JWTD_PEER_BENCH_BOUNDED=1
  exec timeout --foreground --kill-after=20 "${BENCH_TIMEOUT:-1800}" "$0" "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$here"

die() { echo "bench/peer/run.sh: $*" >&2; exit 1; }
log() { printf '[peer %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  secs=${BENCH_SECONDS:-3}
  concurrency=${CONCURRENCY:-64}
else
  secs=${BENCH_SECONDS:-10}
  concurrency=${CONCURRENCY:-16 64}
fi
algorithms=${ALGORITHMS:-RS256 ES256}
wrk_threads=${WRK_THREADS:-1}
workers=${WORKERS:-2}
reps=${REPS:-1}
login_secs=${LOGIN_SECONDS:-$(( secs > 10 ? secs : 10 ))}
mint_rate=${REFRESH_MINT_RATE:-1500}
export PEER_SYNCHRONOUS=${PEER_SYNCHRONOUS:-FULL}
results=${RESULTS:-$here/results.md}
results_tsv=${RESULTS_TSV:-${results%.md}.tsv}
lua="$root/bench/load.lua"
endpoints="healthz verify me refresh"   # login runs after all of them
user=bench
password=bench-password-123
tck=$(getconf CLK_TCK)

[[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer, not '$secs'"
[[ "$login_secs" =~ ^[1-9][0-9]*$ ]] || die "LOGIN_SECONDS must be a positive integer, not '$login_secs'"
[[ "$mint_rate" =~ ^[1-9][0-9]*$ ]] || die "REFRESH_MINT_RATE must be a positive integer, not '$mint_rate'"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, not '$workers'"
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, not '$reps'"
for c in $concurrency; do [[ "$c" =~ ^[1-9][0-9]*$ ]] || die "CONCURRENCY must list positive integers, not '$c'"; done
for a in $algorithms; do [[ "$a" == RS256 || "$a" == ES256 ]] || die "ALGORITHMS may list RS256 and ES256, not '$a'"; done
[[ -f "$lua" ]] || die "$lua is missing (run this from a jwtd checkout)"

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get)"
  if ! apt-get install -y wrk >/dev/null 2>&1; then
    apt-get update >/dev/null && apt-get install -y wrk >/dev/null
  fi
fi
for tool in python3 openssl curl wrk timeout awk; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "python3 >= 3.10 is required for Django 5.2 (found $(python3 -V 2>&1))"

venv="$here/.venv"
py="$venv/bin/python"
stamp="$venv/.requirements.txt"
if [[ ! -x "$py" ]] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  log "installing the peer into bench/peer/.venv (pip, pinned requirements.txt)"
  t0=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || die "pip install -r bench/peer/requirements.txt failed"
  cp "$here/requirements.txt" "$stamp"
  log "venv ready in $(( $(date +%s) - t0 )) s"
fi
versions=$("$py" - <<'EOF'
import sys
from importlib.metadata import version
names = ["Django", "djangorestframework", "djangorestframework-simplejwt", "PyJWT", "cryptography", "gunicorn"]
print(f"Python {sys.version.split()[0]}, " + ", ".join(f"{n} {version(n)}" for n in names))
EOF
) || die "the venv in bench/peer/.venv is broken (remove it and run again)"

out="$here/out"
mkdir -p "$out"
runs="$out/runs.tsv"
: > "$runs"

# ---------------------------------------------------------------- server processes
server_tpid=""   # the `timeout` wrapping gunicorn
master=""        # the gunicorn master
seen_pids=""     # every gunicorn pid seen (master and workers), killed by PID at the end
work=""

# The master and its live workers.
server_pids() {
  local p
  [[ -n "$master" ]] && kill -0 "$master" 2>/dev/null || return 0
  echo "$master"
  for p in $(cat /proc/"$master"/task/*/children 2>/dev/null); do echo "$p"; done
}

remember_pids() {
  local p
  for p in $(server_pids); do
    [[ " $seen_pids " == *" $p "* ]] || seen_pids="$seen_pids $p"
  done
}

# utime + stime of the master and its workers, in clock ticks
cpu_ticks() {
  local p total=0 t
  for p in $(server_pids); do
    t=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$(( total + t ))
  done
  echo "$total"
}

# sum of VmHWM (kB) of the master and its workers
hwm_kb() {
  local p total=0 t
  for p in $(server_pids); do
    t=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$(( total + ${t:-0} ))
  done
  echo "$total"
}

reset_hwm() {
  local p
  for p in $(server_pids); do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done
}

# Waits until the workers have no work left (wrk leaves requests queued in the
# backlog when it stops; a sync worker still serves them): at most 2 ticks of CPU
# in 0.5 s, for at most 90 s.
wait_idle() {
  local a b
  for _ in $(seq 180); do
    a=$(cpu_ticks); sleep 0.5; b=$(cpu_ticks)
    (( b - a <= 2 )) && return 0
  done
  log "gunicorn still busy after 90 s; going on"
}

stop_server() {
  remember_pids
  if [[ -n "$master" ]] && kill -0 "$master" 2>/dev/null; then
    kill -TERM "$master" 2>/dev/null || true   # gunicorn stops its workers
    for _ in $(seq 50); do kill -0 "$master" 2>/dev/null || break; sleep 0.2; done
  fi
  local p
  for p in $seen_pids; do
    # only if it is still one of our gunicorn processes (the pid was not reused)
    if kill -0 "$p" 2>/dev/null && grep -q gunicorn "/proc/$p/cmdline" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  if [[ -n "$server_tpid" ]] && kill -0 "$server_tpid" 2>/dev/null; then
    kill -TERM "$server_tpid" 2>/dev/null || true
  fi
  [[ -n "$server_tpid" ]] && wait "$server_tpid" 2>/dev/null || true
  server_tpid="" master="" seen_pids=""
}

cleanup() {
  [[ -n "$work" && -f "$work/server.log" ]] && cp "$work/server.log" "$out/server_${alg:-none}.log"
  stop_server
  if [[ "${KEEP:-0}" != 1 ]]; then
    [[ -n "$work" ]] && rm -rf "$work"
  elif [[ -n "$work" ]]; then
    log "kept $work"
  fi
  work=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM
pg_dir=""
if [[ "${DB:-sqlite}" == postgres ]]; then
  # shellcheck source=bench/postgres.sh
  source "$here/../postgres.sh"
  pg_start
  trap 'cleanup; pg_stop' EXIT
fi

# ---------------------------------------------------------------- one wrk run
# run_wrk ENDPOINT ALG CONC URL_PATH [VAR=value ...] : one bounded wrk run, one line in $runs
run_wrk() {
  local endpoint=$1 alg=$2 conc=$3 path=$4
  shift 4
  if [[ -z "$master" ]] || ! kill -0 "$master" 2>/dev/null; then
    log "gunicorn (pid $master) is gone before $endpoint $alg c=$conc; end of its log:"
    tail -n 20 "$work/server.log" >&2
    exit 1
  fi
  local raw="$out/wrk_${alg}_${endpoint}_c${conc}_r${rep:-1}.txt" timeout_s=10 duration=$secs
  if [[ "$endpoint" == login ]]; then timeout_s=60; duration=$login_secs; fi
  remember_pids
  reset_hwm
  local cpu0 cpu1
  cpu0=$(cpu_ticks)
  env NT="$wrk_threads" "$@" timeout $((duration + timeout_s + 30)) \
    wrk -t"$wrk_threads" -c"$conc" -d"${duration}s" --timeout "${timeout_s}s" -s "$lua" \
    "http://127.0.0.1:$port$path" > "$raw" 2>&1 || true
  cpu1=$(cpu_ticks)
  local hwm
  hwm=$(hwm_kb)
  remember_pids
  local line
  line=$(grep '^RESULT' "$raw" || true)
  if [[ -z "$line" ]]; then
    log "wrk gave no result for $endpoint $alg c=$conc:"; cat "$raw" >&2
    printf '%s\t%s\t%s\t0\t0\t0\t0\t%s\t0\t0\twrk failed\n' "$endpoint" "$alg" "$conc" "$hwm" >> "$runs"
    wait_idle
    return
  fi
  local _ rps p50 p99 ok bad sockerr used total first
  IFS=$'\t' read -r _ rps p50 p99 ok bad sockerr used total first <<< "$line"
  local note=""
  if (( total > 0 && used >= total )); then note="tokens ran out after $total"; fi
  if (( ok + bad == 0 )); then note="no response completed"; fi
  if (( sockerr > 0 )); then note="${note:+$note; }$sockerr socket errors/timeouts"; fi
  if (( bad > 0 )); then note="${note:+$note; }first: ${first:0:60}"; fi
  local cpu_ms
  cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$tck" -v n=$((ok + bad)) \
    'BEGIN { printf "%.4f", (n > 0 ? (b - a) * 1000 / t / n : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$endpoint" "$alg" "$conc" "$rps" "$p50" "$p99" "$bad" "$hwm" "$cpu_ms" "$sockerr" "$note" >> "$runs"
  log "$(printf '%-8s %s c=%-3s %9s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  VmHWM %s kB  CPU %s ms/req  %s' \
    "$endpoint" "$alg" "$conc" "$rps" "$p50" "$p99" "$bad" "$hwm" "$cpu_ms" "$note")"
  wait_idle
}

# run_endpoint ENDPOINT CONC (uses alg, work, access, file)
run_endpoint() {
  local endpoint=$1 conc=$2
  case $endpoint in
    healthz) run_wrk healthz "$alg" "$conc" /healthz ;;
    verify)  run_wrk verify "$alg" "$conc" /api/token/verify/ METHOD=POST BODY="{\"token\":\"$access\"}" ;;
    me)      run_wrk me "$alg" "$conc" /api/me/ AUTH="$access" ;;
    refresh) run_wrk refresh "$alg" "$conc" /api/token/refresh/ METHOD=POST \
               TOKFILE="$work/refresh_$file.txt" BODY_TMPL='{"refresh":"%s"}'
             file=$((file + 1)) ;;
    login)   run_wrk login "$alg" "$conc" /api/token/ METHOD=POST \
               BODY="{\"username\":\"$user\",\"password\":\"$password\"}" ;;
  esac
}

# ---------------------------------------------------------------- per algorithm
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
nconc=$(wc -w <<< "$concurrency")
hash_cost=""
for alg in $algorithms; do
  work=$(mktemp -d /tmp/jwtd-peer-bench.XXXXXX)
  if [[ "$alg" == RS256 ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/private.pem" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/private.pem" 2>/dev/null
  fi || die "openssl could not make a $alg key"
  openssl pkey -in "$work/private.pem" -pubout -out "$work/public.pem" || die "openssl could not write the public key"
  export PEER_ALG="$alg" PEER_DB="$work/peer.sqlite3" \
    PEER_PRIVATE_KEY="$work/private.pem" PEER_PUBLIC_KEY="$work/public.pem"
  export DJANGO_SETTINGS_MODULE=peersite.settings PYTHONPATH="$here"
  if [[ -n "$pg_dir" ]]; then
    pg_name="peer_$(tr 'A-Z' 'a-z' <<< "$alg")"
    pg_database "$pg_name" > /dev/null
    export PEER_PG_NAME="$pg_name" PEER_PG_PORT="$pg_port"
    # Minting commits one token at a time: without waiting for the disk.
    pg_sql "$pg_name" "ALTER DATABASE $pg_name SET synchronous_commit = off"
  fi

  per_run=$(( mint_rate * secs ))
  counts=$(for _ in $(seq "$reps"); do for _ in $concurrency; do printf '%s,' "$per_run"; done; done)
  counts=${counts%,}
  log "$alg: database, user $user, $per_run refresh tokens per refresh run"
  facts=$(timeout 600 "$py" "$here/mint.py" --user "$user" --out "$work" --refresh "$counts" <<< "$password") \
    || die "mint.py failed for $alg"
  IFS=$'\t' read -r hasher hash_iter hash_ms <<< "$facts"
  [[ -z "$pg_dir" ]] || pg_sql "$pg_name" "ALTER DATABASE $pg_name RESET synchronous_commit"
  hash_cost="$hasher, $hash_iter iterations: $hash_ms ms per hash"
  access=$(head -n1 "$work/access.txt")

  port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  max_life=$(( 5 * nconc * reps * (secs + login_secs + 100) + 120 ))
  timeout -s TERM "$max_life" "$venv/bin/gunicorn" --chdir "$here" \
    --bind "127.0.0.1:$port" --workers "$workers" --worker-class sync \
    --backlog 2048 --timeout 120 --graceful-timeout 5 --log-level warning \
    peersite.wsgi:application > "$work/server.log" 2>&1 &
  server_tpid=$!
  for _ in $(seq 150); do
    master=$(cat "/proc/$server_tpid/task/$server_tpid/children" 2>/dev/null | awk '{print $1}' || true)
    if [[ -n "$master" ]]; then
      remember_pids
      curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    fi
    kill -0 "$server_tpid" 2>/dev/null || { tail -n 20 "$work/server.log" >&2; die "gunicorn exited at start"; }
    sleep 0.2
  done
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { tail -n 20 "$work/server.log" >&2; die "gunicorn did not start"; }
  # Check the endpoints once per worker (and warm their imports and key parsing).
  for _ in $(seq $(( workers * 4 ))); do
    curl -fs -X POST -H 'Content-Type: application/json' -d "{\"token\":\"$access\"}" \
      "http://127.0.0.1:$port/api/token/verify/" >/dev/null || die "$alg: POST /api/token/verify/ fails before the runs"
    curl -fs -H "Authorization: Bearer $access" "http://127.0.0.1:$port/api/me/" | grep -q "\"username\":\"$user\"" \
      || die "$alg: GET /api/me/ fails before the runs"
  done
  # Rotation and blacklist are on: a refresh token gives a new one once, then is refused as blacklisted.
  probe=$(head -n1 "$work/probe.txt")
  for expect in '200 "refresh"' '401 blacklisted'; do
    got=$(curl -s -o "$work/probe.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      -d "{\"refresh\":\"$probe\"}" "http://127.0.0.1:$port/api/token/refresh/" || true)
    [[ "$got" == "${expect%% *}" ]] && grep -qi "${expect#* }" "$work/probe.out" \
      || die "$alg: refresh token rotation check: got $got $(head -c 100 "$work/probe.out"), expected $expect"
  done
  remember_pids
  log "$alg: gunicorn master pid $master ($workers sync workers:$(server_pids | tail -n +2 | tr '\n' ' ')) on 127.0.0.1:$port"

  # REPS rounds over the endpoints; login, the slowest to drain, always last.
  file=0
  for rep in $(seq "$reps"); do
    for endpoint in $endpoints; do
      for conc in $concurrency; do run_endpoint "$endpoint" "$conc"; done
    done
  done
  for rep in $(seq "$reps"); do
    for conc in $concurrency; do run_endpoint login "$conc"; done
  done
  cleanup
done

# ---------------------------------------------------------------- report
# One row per endpoint, algorithm and concurrency: the median round by req/s (its
# latencies, RSS and CPU), the range of req/s when REPS > 1, non-2xx and socket
# errors summed over the rounds, peak RSS the highest of them.
table=$("$py" - "$runs" "$results_tsv" <<'EOF'
import sys
labels = {"healthz": "GET /healthz (DRF view, no auth)", "verify": "POST /api/token/verify/",
          "me": "GET /api/me/", "refresh": "POST /api/token/refresh/ (rotate + blacklist)",
          "login": "POST /api/token/ (login)"}
groups = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) >= 10:
        groups.setdefault((f[0], f[1], f[2]), []).append(f)
def human(r):
    return f"{r / 1000:.1f} k" if r >= 10000 else (f"{r:.0f}" if r >= 100 else f"{r:.1f}")
def ms(v):
    return f"{v:.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")
print("| endpoint | alg | c | req/s | p50 ms | p99 ms | non-2xx | peak RSS MiB | server CPU ms/req (cores busy) | note |")
print("|---|---|---|---|---|---|---|---|---|---|")
with open(sys.argv[2], "w") as tsv:
    tsv.write("endpoint\talg\tc\trps\tp50_ms\tp99_ms\tnon2xx\tpeak_rss_mib\tcpu_ms_per_req\tsocket_errors\trounds\trps_min\trps_max\tnote\n")
    for (endpoint, alg, c), g in groups.items():
        g.sort(key=lambda f: float(f[3]))
        m = g[len(g) // 2]
        rps, p50, p99, cpu = float(m[3]), float(m[4]), float(m[5]), float(m[8])
        bad = sum(int(f[6]) for f in g)
        sockerr = sum(int(f[9]) for f in g)
        rss = max(int(f[7]) for f in g) / 1024
        lo, hi = float(g[0][3]), float(g[-1][3])
        note = "; ".join(f[10] for f in g if len(f) > 10 and f[10])
        rate = human(rps) + (f" ({human(lo)}–{human(hi)})" if len(g) > 1 else "")
        print(f"| {labels.get(endpoint, endpoint)} | {alg} | {c} | {rate} | {ms(p50)} | {ms(p99)} | {bad} | "
              f"{rss:.1f} | {cpu:.3f} ({cpu * rps / 1000:.2f}) | {note} |")
        tsv.write("\t".join([endpoint, alg, c, m[3], m[4], m[5], str(bad), f"{rss:.1f}", m[8], str(sockerr),
                             str(len(g)), g[0][3], g[-1][3], note]) + "\n")
EOF
) || die "could not write the report from $runs"

cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
nonzero=$(awk -F'\t' '$7 > 0 || $10 > 0 { n++ } END { print n + 0 }' "$runs")
{
  echo "# simplejwt peer benchmark results"
  echo
  echo "\`bench/peer/run.sh\`$([[ "$QUICK" == 1 ]] && echo " (QUICK=1)"), $(date -u +'%Y-%m-%d %H:%M UTC')."
  echo "$(nproc) CPUs ($cpu), $(uname -sr); $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}')."
  echo "$versions."
  if [[ -n "$pg_dir" ]]; then
    echo "gunicorn sync workers × $workers on 127.0.0.1; PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') through psycopg (PostgreSQL's defaults,"
    echo "one persistent connection per worker); DEBUG off, JSON renderer only;"
  else
    echo "gunicorn sync workers × $workers on 127.0.0.1; SQLite on disk (WAL, synchronous=$PEER_SYNCHRONOUS,"
    echo "BEGIN IMMEDIATE, one persistent connection per worker); DEBUG off, JSON renderer only;"
  fi
  echo "token_blacklist, ROTATE_REFRESH_TOKENS and BLACKLIST_AFTER_ROTATION on; ACCESS_TOKEN_LIFETIME 1 h"
  echo "(pre-minted tokens outlive the run); fresh RSA-2048 / P-256 keys per algorithm."
  echo "Login hashes with Django's default hasher ($hash_cost on this machine,"
  echo "so about $(awk -v m="${hash_ms:-0}" -v n="$(nproc)" 'BEGIN { printf "%.1f", (m > 0 ? n * 1000 / m : 0) }') logins/s on $(nproc) cores at most)."
  echo "wrk -t$wrk_threads for $secs s per run (login $login_secs s) at c = $concurrency with bench/load.lua, $reps round(s)"
  echo "(rows: median round, req/s range in brackets), on the same cores as the server; each refresh"
  echo "run uses its own $per_run pre-minted tokens, each once. Peak RSS is the sum of VmHWM over the"
  echo "gunicorn master and its workers (pages they share count once per process), reset before each"
  echo "run; server CPU is their user+system time per response, and in brackets the cores it kept busy."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the machine)."
  echo
  echo "$table"
  echo
  echo "Runs with non-2xx responses or socket errors: $nonzero."
} > "$results"
cat "$results"
log "written to ${results#"$root"/} and ${results_tsv#"$root"/}"
