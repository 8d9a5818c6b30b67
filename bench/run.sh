#!/usr/bin/env bash
# bench/run.sh: jwtd under load against the raw crypto ceiling, checked against the targets.
#
#   bench/run.sh                  full run: every algorithm, c=16 and c=64, 10 s per run (~25 min)
#   QUICK=1 bench/run.sh          3 s per run (login 10 s), c=64 only (~7 min after the build)
#
# What it does, all on 127.0.0.1 and bounded in time:
#  1. installs wrk with apt-get if it is missing; builds jwtd (`cargo build
#     --release`) and the helper in bench/ceiling (into the same target/);
#  2. measures the raw ceilings on 2 threads (again at the end; the better is kept) with the helper: aws-lc-rs
#     sign and verify with keys parsed once, per algorithm (RSA 2048), and argon2id
#     hashes/s at jwtd's password cost;
#  3. per algorithm: a temporary database and master key; user `bench`
#     (`jwtd users add`); refresh tokens minted through jwtd's own login path
#     (one login each, without the password hash, as the simplejwt peer's
#     were), on a tmpfs copy of the database, then copied to disk; starts
#     `jwtd serve` on a free loopback port and runs wrk (-t1, fixed duration)
#     on every endpoint at each concurrency; the server's peak RSS per run
#     comes from VmHWM (reset before each run through /proc/PID/clear_refs)
#     and its CPU time from /proc/PID/stat; stops the server by its PID;
#  4. prints one markdown table, each figure checked against its target (bench/README.md),
#     and writes it to bench/results.md.
#
# Settings (environment):
#   BENCH_SECONDS      seconds per wrk run (default 10; 3 with QUICK=1)
#   QUICK=1            3 s runs, one concurrency (64), ceilings 1 x 1 s
#   CONCURRENCY        wrk connections, space-separated (default "16 64")
#   ALGORITHMS         default "RS256 PS256 ES256 ES384 EdDSA"
#   ENDPOINTS          default "healthz jwks jwks_304 verify verify_distinct me refresh login"
#                      (ratios need healthz). verify and me send one token again and again, as a
#                      client does; verify_distinct cycles through 10 000 tokens, more than the
#                      server remembers (4096), so every one is verified in full
#   LOGIN_SECONDS      seconds per login run (default: BENCH_SECONDS, at least 10)
#   WRK_THREADS        wrk -t (default 1, as the peer's runs)
#   REPS               rounds over all endpoints (default 1); each row shows the median round
#                      and the range. Use 3 on a machine that other work shares.
#   CEILING_SECS       seconds per ceiling figure (default 2; 1 with QUICK=1)
#   CEILING_REPS       repetitions per ceiling figure, best kept (default 3; 1 with QUICK=1);
#                      the ceilings are measured before and after the runs, the better kept
#   REFRESH_MINT_RATE  refresh tokens minted per second of a refresh run (default 10000, never
#                      more than 1.2 × half the algorithm's signing ceiling). A run that uses them all
#                      up says "tokens ran out" in its row.
#   JWTD_PASSWORD_HASH_MEMORY / _ITERATIONS / _PARALLELISM
#                      passed to jwtd as they are; the argon2 ceiling uses the same values
#                      (default 12288 KiB, 3, 1: one of OWASP's argon2id settings, jwtd's default)
#   BENCH_TIMEOUT      overall limit in seconds (default 3600); every wrk run has its own
#   PEER=1             also measure simplejwt (bench/peer/run.sh: a venv from PyPI, gunicorn)
#                      right after jwtd, same settings, and add a jwtd ÷ simplejwt table
#   DB=postgres        also measure jwtd on PostgreSQL (bench/postgres.sh starts a throwaway
#                      cluster with PostgreSQL's defaults), with one replica and with two (two
#                      `jwtd serve` on one database, wrk split between them), beside SQLite in
#                      the same run, and add a PostgreSQL table (with PEER=1, simplejwt on
#                      PostgreSQL through psycopg too)
#   PG_ENDPOINTS       endpoints measured on PostgreSQL (default "healthz jwks verify me refresh login")
#   METRICS=1          also measure a second jwtd on the same SQLite database with `metrics_bind`
#                      set (every request counted and timed), each run right after the same run
#                      with it unset, and add a metrics on ÷ off table (target: within 3 %)
#   METRICS_ENDPOINTS  endpoints measured with metrics on (default "healthz verify me")
#   RESULTS            where the table goes (default bench/results.md)
#   KEEP=1             keep the temporary directories (databases, logs, token files)
#
# Needs: cargo, curl, wrk (installed here if missing: apt-get install -y wrk), Linux /proc.
set -euo pipefail

if [[ -z "${_JWTD_BENCH_BOUNDED:-}" ]]; then
  export _JWTD_BENCH_BOUNDED=1
  exec timeout --foreground --kill-after=20 "${BENCH_TIMEOUT:-3600}" "$0" "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

QUICK=${QUICK:-0}
if [[ "$QUICK" == 1 ]]; then
  secs=${BENCH_SECONDS:-3}
  concurrency=${CONCURRENCY:-64}
  ceiling_secs=${CEILING_SECS:-1}
  ceiling_reps=${CEILING_REPS:-1}
else
  secs=${BENCH_SECONDS:-10}
  concurrency=${CONCURRENCY:-16 64}
  ceiling_secs=${CEILING_SECS:-2}
  ceiling_reps=${CEILING_REPS:-3}
fi
algorithms=${ALGORITHMS:-RS256 PS256 ES256 ES384 EdDSA}
wrk_threads=${WRK_THREADS:-1}
reps=${REPS:-1}
# A login at c=64 takes seconds: its runs last at least 10 s so that many complete.
login_secs=${LOGIN_SECONDS:-$(( secs > 10 ? secs : 10 ))}
mint_rate=${REFRESH_MINT_RATE:-10000}
results=${RESULTS:-$here/results.md}
argon_m=${JWTD_PASSWORD_HASH_MEMORY:-12288}
argon_t=${JWTD_PASSWORD_HASH_ITERATIONS:-3}
argon_p=${JWTD_PASSWORD_HASH_PARALLELISM:-1}
endpoints=${ENDPOINTS:-healthz jwks jwks_304 verify verify_distinct me refresh login}
user=bench
password=bench-password-123
tck=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get)"
  if ! apt-get install -y wrk >/dev/null 2>&1; then
    apt-get update >/dev/null && apt-get install -y wrk >/dev/null
  fi
fi
for tool in cargo curl wrk timeout; do
  command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is required" >&2; exit 1; }
done

log "building jwtd (cargo build --release)"
cargo build --release --quiet
log "building the helper (bench/ceiling)"
cp "$root/Cargo.lock" "$here/ceiling/Cargo.lock"
CARGO_TARGET_DIR="$root/target" cargo build --release --quiet --manifest-path "$here/ceiling/Cargo.toml"
jwtd="$root/target/release/jwtd"
helper="$root/target/release/jwtd-bench"

out="$here/out"
mkdir -p "$out"
runs="$out/runs.tsv"
ceilings="$out/ceilings.tsv"
: > "$runs"
rm -f "$out"/runs_*.tsv

# ---------------------------------------------------------------- cleanup
server_tpid=""   # the `timeout` wrapping the server
server_pid=""    # jwtd itself
server2_tpid=""  # the second replica (DB=postgres)
server2_pid=""
work=""
shm=""
cleanup() {
  [[ -n "$work" && -f "$work/server.log" ]] && cp "$work/server.log" "$out/server_${backend:-sqlite}_${alg:-none}.log"
  local pair tpid pid
  for pair in "$server_tpid $server_pid" "$server2_tpid $server2_pid"; do
    read -r tpid pid <<< "$pair"
    if [[ -n "$tpid" ]] && kill -0 "$tpid" 2>/dev/null; then
      kill -TERM "$tpid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$tpid" 2>/dev/null || true
    fi
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  server_tpid="" server_pid="" server2_tpid="" server2_pid=""
  if [[ "${KEEP:-0}" != 1 ]]; then
    [[ -n "$work" ]] && rm -rf "$work"
  elif [[ -n "$work" ]]; then
    log "kept $work"
  fi
  [[ -n "$shm" ]] && rm -rf "$shm"
  work="" shm=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ceilings
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
measure_ceilings() { # FILE
  log "raw ceilings on 2 threads (${ceiling_secs} s x ${ceiling_reps} per figure)"
  "$helper" ceiling --threads 2 --secs "$ceiling_secs" --reps "$ceiling_reps" \
    --argon2 "$argon_m,$argon_t,$argon_p" --algorithms "$algorithms" | tee "$1" >&2
}
measure_ceilings "$out/ceilings_before.tsv"
cp "$out/ceilings_before.tsv" "$ceilings"

# ---------------------------------------------------------------- helpers
cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# run_wrk ENDPOINT ALG CONC URL_PATH [VAR=value ...] : one bounded wrk run, one line in $runs
run_wrk() {
  local endpoint=$1 alg=$2 conc=$3 path=$4
  shift 4
  if ! kill -0 "$server_pid" 2>/dev/null; then
    local status=0
    wait "$server_tpid" || status=$?
    log "jwtd (pid $server_pid) is gone before $endpoint $alg c=$conc (exit status $status); end of its log:"
    tail -n 20 "$work/server.log" >&2
    exit 1
  fi
  local raw="$out/wrk_${backend}${tag:-}_${alg}_${endpoint}_c${conc}_r${rep:-1}.txt" timeout_s=10 duration=$secs
  if [[ "$endpoint" == login ]]; then timeout_s=60; duration=$login_secs; fi
  echo 5 > "/proc/$server_pid/clear_refs" 2>/dev/null || true   # reset VmHWM to the current RSS
  local cpu0 cpu1
  cpu0=$(cpu_ticks "$server_pid")
  env NT="$wrk_threads" "$@" timeout $((duration + timeout_s + 30)) \
    wrk -t"$wrk_threads" -c"$conc" -d"${duration}s" --timeout "${timeout_s}s" -s "$here/load.lua" \
    "http://127.0.0.1:$port$path" > "$raw" 2>&1 || true
  cpu1=$(cpu_ticks "$server_pid")
  local hwm
  hwm=$(awk '/^VmHWM:/{print $2}' "/proc/$server_pid/status")
  local line
  line=$(grep '^RESULT' "$raw" || true)
  if [[ -z "$line" ]]; then
    log "wrk gave no result for $endpoint $alg c=$conc:"; cat "$raw" >&2
    printf '%s\t%s\t%s\t0\t0\t0\t0\t%s\t0\twrk failed\n' "$endpoint" "$alg" "$conc" "$hwm" >> "$runs_file"
    return
  fi
  local _ rps p50 p99 ok bad sockerr used total first
  IFS=$'\t' read -r _ rps p50 p99 ok bad sockerr used total first <<< "$line"
  local note=""
  if [[ "$*" != *CYCLE=1* ]] && (( total > 0 && used >= total )); then note="tokens ran out after $total"; fi
  if (( ok + bad == 0 )); then note="no response completed"; fi
  if (( sockerr > 0 )); then note="${note:+$note; }$sockerr socket errors/timeouts"; fi
  if (( bad > 0 )); then note="${note:+$note; }first: ${first:0:60}"; fi
  local cpu_ms
  cpu_ms=$(awk -v a="$cpu0" -v b="$cpu1" -v t="$tck" -v n=$((ok + bad)) \
    'BEGIN { printf "%.4f", (n > 0 ? (b - a) * 1000 / t / n : 0) }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$endpoint" "$alg" "$conc" "$rps" "$p50" "$p99" "$bad" "$hwm" "$cpu_ms" "$note" >> "$runs_file"
  log "$(printf '%-10s %-8s %s c=%-3s %9s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  VmHWM %s kB  %s' \
    "$backend${tag:-}" "$endpoint" "$alg" "$conc" "$rps" "$p50" "$p99" "$bad" "$hwm" "$note")"
  sleep 1
}

# measure ENDPOINT CONC URL_PATH [VAR=value ...]: one run on this backend's server(s)
measure() {
  if [[ "$backend" == postgres2 ]]; then
    run_pair "$@"
  else
    local endpoint=$1 conc=$2 path=$3
    shift 3
    run_wrk "$endpoint" "$alg" "$conc" "$path" "$@"
  fi
}

# run_endpoint ENDPOINT CONC (uses alg, backend, port, work, access, etag, file)
run_endpoint() {
  local endpoint=$1 conc=$2
  case $endpoint in
    healthz)  measure healthz "$conc" /healthz ;;
    jwks)     measure jwks "$conc" /.well-known/jwks.json ;;
    jwks_304) measure jwks_304 "$conc" /.well-known/jwks.json INM="$etag" EXPECT=304 ;;
    verify)   measure verify "$conc" /api/token/verify/ METHOD=POST BODY="{\"token\":\"$access\"}" ;;
    verify_distinct)
              measure verify_distinct "$conc" /api/token/verify/ METHOD=POST \
                TOKFILE="$work/access_distinct.txt" BODY_TMPL='{"token":"%s"}' CYCLE=1 ;;
    me)       measure me "$conc" /api/me/ AUTH="$access" ;;
    refresh)  measure refresh "$conc" /api/token/refresh/ METHOD=POST \
                TOKFILE="$work/refresh_$file.txt" BODY_TMPL='{"refresh":"%s"}'
              file=$((file + 1)) ;;
    login)    measure login "$conc" /api/token/ METHOD=POST \
                BODY="{\"username\":\"$user\",\"password\":\"$password\"}" ;;
  esac
}

# ---------------------------------------------------------------- two replicas
# run_pair ENDPOINT CONC URL_PATH [VAR=value ...]: the endpoint on both
# replicas at once, CONC/2 connections each (a token file split in halves),
# as one line: requests and memory summed, latencies the worse of the two.
run_pair() {
  local endpoint=$1 conc=$2 path=$3
  shift 3
  local half=$(( conc / 2 )) args=("$@") before
  before=$(wc -l < "$runs_file")
  local tokfile="" i
  for i in "${!args[@]}"; do
    if [[ "${args[$i]}" == TOKFILE=* ]]; then tokfile=${args[$i]#TOKFILE=}; fi
  done
  if [[ -n "$tokfile" ]]; then
    local lines
    lines=$(wc -l < "$tokfile")
    head -n $(( lines / 2 )) "$tokfile" > "$tokfile.a"
    tail -n +$(( lines / 2 + 1 )) "$tokfile" > "$tokfile.b"
  fi
  local side
  for side in a b; do
    (
      tag=".$side"
      [[ "$side" == b ]] && { port=$port2; server_pid=$server2_pid; server_tpid=$server2_tpid; }
      run_wrk "$endpoint" "$alg" "$half" "$path" "${args[@]/#TOKFILE=*/TOKFILE=$tokfile.$side}"
    ) &
  done
  wait
  tail -n +$(( before + 1 )) "$runs_file" | awk -F'\t' -v OFS='\t' '
    { rps += $4; p50 = ($5 > p50 ? $5 : p50); p99 = ($6 > p99 ? $6 : p99); bad += $7; hwm += $8; cpu += $9
      note = note ($10 == "" ? "" : (note == "" ? "" : "; ") $10); e = $1; a = $2; c += $3 }
    END { print e, a, c, rps, p50, p99, bad, hwm, cpu / NR, note }' > "$out/pair.tsv"
  head -n "$before" "$runs_file" > "$out/runs_head.tsv"
  cat "$out/runs_head.tsv" "$out/pair.tsv" > "$runs_file"
}

# start_server URL PORT LOG: starts `jwtd serve` on the database at URL
# and waits until it answers; prints "TPID PID" (the `timeout` around it,
# and jwtd), or nothing if it did not start.
start_server() {
  local url=$1 p=$2 logfile=$3 tpid pid=""
  local metrics_bind=""
  [[ "$backend" == metrics ]] && metrics_bind="127.0.0.1:$("$helper" free-port)"
  JWTD_DATABASE_URL="$url" JWTD_BIND="127.0.0.1:$p" JWTD_METRICS_BIND="$metrics_bind" \
    RUST_LOG="${BENCH_SERVER_LOG:-info,sqlx=warn}" \
    timeout -s TERM "$max_life" "$jwtd" serve > "$logfile" 2>&1 &
  tpid=$!
  for _ in $(seq 150); do
    pid=$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null | awk '{print $1}' || true)
    [[ -n "$pid" ]] || pid=$(pgrep -P "$tpid" | head -n1 || true)
    [[ -n "$pid" ]] && curl -fs "http://127.0.0.1:$p/healthz" >/dev/null 2>&1 && break
    kill -0 "$tpid" 2>/dev/null || { cat "$logfile" >&2; return; }
    sleep 0.2
  done
  curl -fs "http://127.0.0.1:$p/healthz" >/dev/null || { log "jwtd did not start"; cat "$logfile" >&2; return; }
  echo "$tpid $pid"
}

# ---------------------------------------------------------------- per algorithm and database
backends=sqlite
if [[ "${DB:-sqlite}" == postgres ]]; then
  # shellcheck source=bench/postgres.sh
  source "$here/postgres.sh"
  pg_start
  log "PostgreSQL on 127.0.0.1:$pg_port ($("$pg_bin/postgres" --version))"
  backends="sqlite postgres postgres2"
  trap 'cleanup; pg_stop' EXIT
fi
pg_endpoints=${PG_ENDPOINTS:-healthz jwks verify me refresh login}
metrics_endpoints=${METRICS_ENDPOINTS:-healthz verify me}
nconc=$(wc -w <<< "$concurrency")
for alg in $algorithms; do
 for backend in $backends; do
  work=$(mktemp -d /tmp/jwtd-bench.XXXXXX)
  if [[ -d /dev/shm && -w /dev/shm ]]; then shm=$(mktemp -d /dev/shm/jwtd-bench.XXXXXX); else shm="$work/mint"; mkdir -p "$shm"; fi
  port=$("$helper" free-port)
  export JWTD_MASTER_KEY_FILE="$work/master.key"
  export JWTD_ALGORITHM="$alg"
  # Tokens minted before the runs must outlive them; the lifetime costs nothing per request.
  export JWTD_ACCESS_TOKEN_LIFETIME=1h
  export JWTD_ROTATE_REFRESH_TOKENS=true JWTD_BLACKLIST_AFTER_ROTATION=true
  if [[ "$backend" == sqlite ]]; then
    runs_file=$runs
    run_endpoints=$endpoints
  else
    runs_file="$out/runs_$backend.tsv"
    [[ "$alg" == "${algorithms%% *}" ]] && : > "$runs_file"
    run_endpoints=$pg_endpoints
  fi

  # Refresh tokens per run: enough for the run at the expected ceiling.
  rate=$mint_rate
  sign=$(awk -F'\t' -v name="${alg}_sign" '$1==name{print int($3)}' "$ceilings")
  if [[ -n "$sign" ]]; then
    cap=$(( sign * 6 / 10 ))   # 1.2 x half the signing ceiling
    (( cap < rate )) && rate=$cap
  fi
  per_run=$(( rate * secs ))
  [[ " $run_endpoints " == *" refresh "* ]] || per_run=0
  counts=$(for _ in $(seq "$reps"); do for _ in $concurrency; do printf '%s,' "$per_run"; done; done)
  counts=${counts%,}

  log "$alg on $backend: database, user, $per_run refresh tokens per refresh run"
  if [[ "$backend" == sqlite ]]; then
    # Minted on tmpfs, then copied to disk.
    database="sqlite://$work/jwtd.db"
    JWTD_DATABASE_URL="sqlite://$shm/jwtd.db" "$jwtd" users add "$user" --password-stdin <<< "$password" >/dev/null
    JWTD_DATABASE_URL="sqlite://$shm/jwtd.db" "$helper" mint --user "$user" --out "$work" --refresh "$counts" --distinct 10000
    cp "$shm"/jwtd.db* "$work"/
  else
    name="jwtd_$(tr 'A-Z' 'a-z' <<< "$alg")_$backend"
    database=$(pg_database "$name")
    # Minting commits one login at a time: without waiting for the disk.
    pg_sql "$name" "ALTER DATABASE $name SET synchronous_commit = off"
    JWTD_DATABASE_URL="$database" "$jwtd" users add "$user" --password-stdin <<< "$password" >/dev/null
    JWTD_DATABASE_URL="$database" "$helper" mint --user "$user" --out "$work" --refresh "$counts" --distinct 10000
    pg_sql "$name" "ALTER DATABASE $name RESET synchronous_commit"
  fi
  rm -rf "$shm"; shm=""
  access=$(head -n1 "$work/access.txt")

  max_life=$(( 7 * nconc * reps * (secs + login_secs + 70) + 120 ))
  read -r server_tpid server_pid < <(start_server "$database" "$port" "$work/server.log")
  [[ -n "$server_pid" ]] || exit 1
  log "$alg on $backend: jwtd pid $server_pid on 127.0.0.1:$port"
  if [[ "$backend" == postgres2 ]]; then
    port2=$("$helper" free-port)
    read -r server2_tpid server2_pid < <(start_server "$database" "$port2" "$work/server2.log")
    [[ -n "$server2_pid" ]] || exit 1
    log "$alg on $backend: second replica, pid $server2_pid on 127.0.0.1:$port2"
  fi
  metrics_on=0
  if [[ "${METRICS:-0}" == 1 && "$backend" == sqlite ]]; then
    # A second server on the same database, with metrics on; each of its
    # runs follows the same run on the first, so drift hits both alike.
    port2=$("$helper" free-port)
    read -r server2_tpid server2_pid < <(backend=metrics start_server "$database" "$port2" "$work/server2.log")
    [[ -n "$server2_pid" ]] || exit 1
    metrics_on=1
    log "$alg: jwtd with metrics_bind, pid $server2_pid on 127.0.0.1:$port2"
  fi
  etag=$(curl -fsI "http://127.0.0.1:$port/.well-known/jwks.json" | awk 'tolower($1) == "etag:" { sub(/\r$/, ""); print $2 }')
  [[ -n "$etag" ]] || { log "no ETag on the JWKS"; exit 1; }

  # REPS rounds over the endpoints (login, which leaves the most memory
  # behind, always last); each row of the table is the median round.
  file=0
  for rep in $(seq "$reps"); do
    for endpoint in $run_endpoints; do
      [[ "$endpoint" == login ]] && continue
      for conc in $concurrency; do
        run_endpoint "$endpoint" "$conc"
        if [[ "$metrics_on" == 1 && " $metrics_endpoints " == *" $endpoint "* ]]; then
          (
            port=$port2 server_pid=$server2_pid server_tpid=$server2_tpid
            runs_file="$out/runs_metrics.tsv" backend=metrics
            run_endpoint "$endpoint" "$conc"
          )
        fi
      done
    done
  done
  if [[ " $run_endpoints " == *" login "* ]]; then
    for rep in $(seq "$reps"); do
      for conc in $concurrency; do run_endpoint login "$conc"; done
    done
  fi
  cleanup
 done
done

# ---------------------------------------------------------------- the peer
# simplejwt on gunicorn, measured the same way in the same run (PEER=1).
peer_md="$out/peer.md"
peer_pg_md="$out/peer_pg.md"
rm -f "$peer_md" "${peer_md%.md}.tsv" "$peer_pg_md" "${peer_pg_md%.md}.tsv"
# The peer's setup makes RS256 and ES256 keys only.
peer_algorithms=$(for a in $algorithms; do [[ "$a" == RS256 || "$a" == ES256 ]] && printf '%s ' "$a"; done; true)
peer_algorithms=${peer_algorithms% }
if [[ "${PEER:-0}" == 1 && -z "$peer_algorithms" ]]; then
  log "PEER=1 needs RS256 or ES256 among ALGORITHMS; no simplejwt column"
elif [[ "${PEER:-0}" == 1 ]]; then
  log "the simplejwt peer, measured the same way (bench/peer/run.sh)"
  BENCH_SECONDS=$secs CONCURRENCY="$concurrency" ALGORITHMS="$peer_algorithms" REPS=$reps \
    LOGIN_SECONDS=$login_secs WRK_THREADS=$wrk_threads QUICK=$QUICK RESULTS="$peer_md" DB=sqlite \
    "$here/peer/run.sh" >&2 || log "the peer run failed; the table has no simplejwt column"
  if [[ "${DB:-sqlite}" == postgres ]]; then
    log "the simplejwt peer on PostgreSQL"
    BENCH_SECONDS=$secs CONCURRENCY="$concurrency" ALGORITHMS="$peer_algorithms" REPS=$reps \
      LOGIN_SECONDS=$login_secs WRK_THREADS=$wrk_threads QUICK=$QUICK RESULTS="$peer_pg_md" DB=postgres \
      "$here/peer/run.sh" >&2 || log "the peer run on PostgreSQL failed; the PostgreSQL table has no simplejwt column"
  fi
fi

# ---------------------------------------------------------------- report
# Again after the runs; each ceiling is the better of the two, so a burst of
# load from elsewhere during one measurement does not lower it.
measure_ceilings "$out/ceilings_after.tsv"
awk -F'\t' -v OFS='\t' '{ if (!($1 in best) || $3 > best[$1]) { best[$1] = $3; t[$1] = $2 }; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
  END { for (i = 1; i <= n; i++) print order[i], t[order[i]], best[order[i]] }' \
  "$out/ceilings_before.tsv" "$out/ceilings_after.tsv" > "$ceilings"
table=$("$helper" report --ceilings "$ceilings" --runs "$runs")
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || commit="$commit + uncommitted changes"
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
  echo "# jwtd benchmark results"
  echo
  echo "\`bench/run.sh\`$([[ "$QUICK" == 1 ]] && echo " (QUICK=1)"), $(date -u +'%Y-%m-%d %H:%M UTC'), jwtd $commit."
  echo "$(nproc) CPUs ($cpu), $(uname -sr); $(wrk --version 2>&1 | head -n1 | awk '{print $1, $2}'), $(rustc --version | awk '{print $1, $2}')."
  echo "wrk -t$wrk_threads for $secs s per run at c = $concurrency, $reps round(s) (rows: median, range in brackets),"
  echo "on the same cores as the server; loopback only. Ceilings: best of $ceiling_reps × $ceiling_secs s before and as many after the runs."
  echo "jwtd defaults except access_token_lifetime = 1h (pre-minted tokens outlive the run);"
  echo "rotation and blacklist on; SQLite on disk; argon2id m=$argon_m KiB, t=$argon_t, p=$argon_p."
  echo "non-2xx for the If-None-Match row counts responses other than 304. Peak RSS is VmHWM,"
  echo "reset before each run; server CPU is its user+system time per response, and in brackets"
  echo "the cores it kept busy (the rest of the 2 cores went to wrk and the kernel)."
  echo "Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (other processes share the machine)."
  echo
  echo "$table"
  if [[ -s "$out/runs_metrics.tsv" ]]; then
    echo
    echo "## Metrics on, same run"
    echo
    echo "A second jwtd on the same SQLite database with \`metrics_bind\` set (every request counted"
    echo "and timed), each run right after the same run above with it unset. Medians as above."
    echo
    echo "| endpoint | alg | c | metrics off req/s | metrics on req/s | on ÷ off | target |"
    echo "|---|---|---|---|---|---|---|"
    awk -F'\t' -v off="$runs" '
      function median(list,   n, v, i, j, t) {
        n = split(list, v, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n ? v[int((n + 1) / 2)] : 0 }
      BEGIN { while ((getline line < off) > 0) { split(line, f, "\t"); s[f[1] FS f[2] FS f[3]] = s[f[1] FS f[2] FS f[3]] " " f[4] } }
      { k = $1 FS $2 FS $3; p[k] = p[k] " " $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
      END {
        for (i = 1; i <= n; i++) {
          k = order[i]; split(k, f, FS); on = median(p[k]); o = median(s[k]); r = o > 0 ? on / o : 0
          printf "| %s | %s | %s | %.0f | %.0f | %.3f | within 3 %%: %s |\n", f[1], f[2], f[3], o, on, r, (r >= 0.97 ? "met" : "missed")
        }
      }' "$out/runs_metrics.tsv"
  fi
  if [[ -s "$out/runs_postgres.tsv" ]]; then
    echo
    echo "## PostgreSQL, same run"
    echo
    echo "The same endpoints with jwtd on PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') (bench/postgres.sh: PostgreSQL's defaults, fsync and"
    echo "synchronous_commit on, on the same disk and cores), one replica, then two replicas on one database"
    echo "with wrk's connections split between them (the figures summed). Medians as above."
    echo
    echo "| endpoint | alg | c | SQLite req/s | PostgreSQL req/s | two replicas req/s | PostgreSQL ÷ SQLite | two ÷ SQLite | simplejwt on PostgreSQL req/s | target |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' -v sqlite="$runs" -v two="$out/runs_postgres2.tsv" -v ceil="$ceilings" -v peer="${peer_pg_md%.md}.tsv" '
      function median(list,   n, v, i, j, t) {
        n = split(list, v, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n ? v[int((n + 1) / 2)] : 0 }
      BEGIN {
        while ((getline line < sqlite) > 0) { split(line, f, "\t"); s[f[1] FS f[2] FS f[3]] = s[f[1] FS f[2] FS f[3]] " " f[4] }
        while ((getline line < two) > 0) { split(line, f, "\t"); d[f[1] FS f[2] FS f[3]] = d[f[1] FS f[2] FS f[3]] " " f[4] }
        while ((getline line < ceil) > 0) { split(line, f, "\t"); if (f[1] ~ /^argon2id/) argon = f[3] }
        while ((getline line < peer) > 0) { split(line, f, "\t"); if (f[1] != "endpoint") q[f[1] FS f[2] FS f[3]] = f[4] }
      }
      { k = $1 FS $2 FS $3; p[k] = p[k] " " $4; if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
      END {
        for (i = 1; i <= n; i++) {
          k = order[i]; split(k, f, FS); pg = median(p[k]); lite = median(s[k]); both = median(d[k])
          r1 = lite > 0 ? pg / lite : 0; r2 = lite > 0 ? both / lite : 0
          sj = (k in q) ? q[k] + 0 : 0
          if (f[1] == "refresh") target = sprintf("≥ 0.5 × SQLite: %s%s", r1 >= 0.5 ? "met" : "missed", \
            sj > 0 ? sprintf("; ≥ 10 × simplejwt: %.0f ×, %s", pg / sj, pg / sj >= 10 ? "met" : "missed") : "")
          else if (f[1] == "login") target = sprintf("≥ 0.85 × argon2 ceiling (%.0f/s): %.2f, %s", argon, argon > 0 ? pg / argon : 0, argon > 0 && pg / argon >= 0.85 ? "met" : "missed")
          else if (f[1] == "healthz") target = "reference"
          else target = sprintf("within 5 %% of SQLite: %s", r1 >= 0.95 ? "met" : "missed")
          printf "| %s | %s | %s | %.0f | %.0f | %.0f | %.2f | %.2f | %s | %s |\n", f[1], f[2], f[3], lite, pg, both, r1, r2, (sj > 0 ? sprintf("%.0f", sj) : "–"), target
        }
      }' "$out/runs_postgres.tsv"
  fi
  if [[ -s "${peer_md%.md}.tsv" ]]; then
    echo
    echo "## Against simplejwt, same run"
    echo
    echo "simplejwt 5.5.1 on gunicorn (sync × 2), set up and measured by bench/peer/run.sh with the"
    echo "same wrk script, durations and concurrency, after jwtd's runs (its own table: below)."
    echo
    echo "| endpoint | alg | c | jwtd req/s | simplejwt req/s | jwtd ÷ simplejwt | p99 ms jwtd / simplejwt | peak RSS MiB jwtd / simplejwt |"
    echo "|---|---|---|---|---|---|---|---|"
    # jwtd's median round per endpoint, algorithm and concurrency (in the
    # order they ran), then the peer's row.
    sort -t$'\t' -k1,1 -k2,2 -k3,3n -k4,4g "$runs" | awk -F'\t' '
      { key = $1 FS $2 FS $3; n[key]++; row[key, n[key]] = $0; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
      END { for (i = 1; i <= k; i++) { key = order[i]; print row[key, int(n[key] / 2) + 1] } }' > "$out/medians.tsv"
    awk -F'\t' '!seen[$1 FS $2 FS $3]++' "$runs" | while IFS=$'\t' read -r e a c _; do
      awk -F'\t' -v e="$e" -v a="$a" -v c="$c" '$1 == e && $2 == a && $3 == c' "$out/medians.tsv"
    done |
      awk -F'\t' -v peer="${peer_md%.md}.tsv" '
        BEGIN { while ((getline line < peer) > 0) { split(line, f, "\t"); if (f[1] == "endpoint") continue
                  k = f[1] FS f[2] FS f[3]; prps[k] = f[4]; pp99[k] = f[6]; prss[k] = f[8] } }
        { k = ($1 == "verify_distinct" ? "verify" : $1) FS $2 FS $3 }   # the peer has one verify row
        k in prps {
          name = $1 == "healthz" ? "GET /healthz (peer: a DRF view)" : $1 == "verify" ? "POST /api/token/verify/" : \
                 $1 == "verify_distinct" ? "POST /api/token/verify/, jwtd: a token not seen recently" : \
                 $1 == "me" ? "GET /api/me/" : $1 == "refresh" ? "POST /api/token/refresh/ (rotate + blacklist)" : \
                 $1 == "login" ? "POST /api/token/ (login; peer: PBKDF2 1M, jwtd: argon2id)" : $1
          ratio = prps[k] > 0 ? sprintf("%.0f ×", $4 / prps[k]) : "–"
          printf "| %s | %s | %s | %.0f | %.0f | %s | %.2f / %.1f | %.1f / %.1f |\n", name, $2, $3, $4, prps[k], ratio, $6, pp99[k], $8 / 1024, prss[k]
        }'
    echo
    sed -n '/^| endpoint/,$p' "$peer_md"
  fi
} > "$results"
cat "$results"
log "written to ${results#"$root"/}"
