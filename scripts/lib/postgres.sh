# A private PostgreSQL cluster for Klaxon: started by scripts/run (persistent, under the project)
# and scripts/test (throwaway, fsync off). initdb refuses root, so as root the cluster runs as
# the `postgres` system user (created if missing).

klaxon_pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] || return 1
  echo "$dir"
}

klaxon_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Runs a command as the cluster's owner.
klaxon_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# klaxon_pg_start DATA_DIR PORT [extra postgres -c options…]: initialises DATA_DIR if needed,
# starts the server on 127.0.0.1:PORT with its socket in DATA_DIR, creates database "klaxon".
klaxon_pg_start() {
  local data=$1 port=$2; shift 2
  local bin; bin=$(klaxon_pg_bin) || { echo "PostgreSQL server binaries not found" >&2; return 1; }
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown postgres "$data"
  chmod 700 "$data"
  if [ ! -f "$data/PG_VERSION" ]; then
    klaxon_pg_as_owner "$bin/initdb" -D "$data" -U klaxon --auth=trust -E UTF8 --locale=C.UTF-8 >"$data/../initdb.log" 2>&1 \
      || { cat "$data/../initdb.log" >&2; return 1; }
  fi
  local opts="-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200"
  for o in "$@"; do opts="$opts -c $o"; done
  if ! klaxon_pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    klaxon_pg_as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w -t 30 start >/dev/null \
      || { tail -n 20 "$data/server.log" >&2; return 1; }
  fi
  "$bin/psql" -h 127.0.0.1 -p "$port" -U klaxon -d postgres -qtAc "SELECT 1 FROM pg_database WHERE datname = 'klaxon'" | grep -q 1 \
    || "$bin/psql" -h 127.0.0.1 -p "$port" -U klaxon -d postgres -qc "CREATE DATABASE klaxon" >/dev/null
}

klaxon_pg_stop() {
  local data=$1
  local bin; bin=$(klaxon_pg_bin) || return 0
  klaxon_pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

# A folder the cluster's owner can reach: DIR when the owner can traverse to it, else one under /var/tmp.
klaxon_pg_reachable_dir() {
  local dir=$1
  mkdir -p "$dir"
  if [ "$(id -u)" -ne 0 ] || runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    echo "$dir"
  else
    local alt="/var/tmp/klaxon-$(echo "$dir" | md5sum | cut -c1-8)"
    mkdir -p "$alt"
    echo "$alt"
  fi
}
