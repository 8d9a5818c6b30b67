# bench/postgres.sh: a throwaway PostgreSQL for bench/run.sh and bench/peer/run.sh (sourced).
#
#   pg_start           initdb into a temporary folder and start the server on a free
#                      port on 127.0.0.1 (as the `postgres` user when run as root:
#                      PostgreSQL refuses root); PostgreSQL's defaults otherwise
#                      (fsync and synchronous_commit on, as in production)
#   pg_database NAME   creates database NAME; prints its URL
#   pg_stop            stops the server (fast shutdown) and deletes the folder
#
# Needs Debian's postgresql package (installed here with apt-get if missing).

pg_dir=""
pg_port=""

pg_start() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  if [[ -z "$bin" ]]; then
    apt-get install -y postgresql >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y postgresql >/dev/null; }
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  pg_bin=$bin
  pg_dir=$(mktemp -d /tmp/jwtd-bench-pg.XXXXXX)
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local as=()
  if [[ $(id -u) == 0 ]]; then
    chown postgres: "$pg_dir"
    as=(runuser -u postgres --)
  fi
  (cd "$pg_dir" && "${as[@]}" "$bin/initdb" --no-sync --auth=trust --username=jwtd -D "$pg_dir/data" >/dev/null)
  (cd "$pg_dir" && "${as[@]}" "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200" start >/dev/null)
  pg_as=("${as[@]}")
}

pg_database() {
  "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U jwtd "$1"
  echo "postgres://jwtd@127.0.0.1:$pg_port/$1"
}

pg_sql() { # DATABASE SQL
  "$pg_bin/psql" -qAt -h 127.0.0.1 -p "$pg_port" -U jwtd -d "$1" -c "$2"
}

pg_stop() {
  [[ -n "$pg_dir" ]] || return 0
  (cd "$pg_dir" && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1) || true
  rm -rf "$pg_dir"
  pg_dir=""
}
