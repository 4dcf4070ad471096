#!/usr/bin/env bash
# Runs a throwaway PostgreSQL cluster on 127.0.0.1 for orderflow's tests, with
# one database per service owned by the role orderflow.
#
#   tools/scripts/postgres.sh start|stop|restart|status
#
# Environment (defaults in brackets):
#   PG_PORT          [15432]
#   PG_LISTEN        [] another address to listen on besides 127.0.0.1 (the
#                    cluster tier: its node's bridge, 10.244.0.1); clients of
#                    its /24 log in with the password, as from another machine
#   ORDERFLOW_CACHE  [$HOME/.cache/orderflow]
#   PG_DATA          [$ORDERFLOW_CACHE/pg-$PG_PORT] (see below for root)
#   PG_BIN           [found] folder holding initdb, pg_ctl, psql
#   PG_CLEAN         [0] 1: wipe PG_DATA before start (fresh cluster)
#   PG_DURABLE       [0] 1: keep PostgreSQL's durability settings (fsync,
#                    synchronous_commit) as a production server has them; the
#                    default turns them off, since test data is disposable
#
# PostgreSQL refuses to run as root. As root, the server runs as the OS user
# postgres (made by Debian's package) and PG_DATA belongs to it; as any other
# user, the server runs as that user.
set -euo pipefail

PG_PORT=${PG_PORT:-15432}
CACHE_ROOT=${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}
PG_ROLE=orderflow
PG_PASSWORD=orderflow
SERVICES=(order inventory payment shipping notification)
SUPERUSER=postgres

say() { echo "postgres.sh: $*"; }
die() { echo "postgres.sh: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
# util-linux's runuser lives in /usr/sbin, which a non-login PATH may lack.
RUNUSER=$(command -v runuser || echo /usr/sbin/runuser)

# Runs a server-side command (initdb, pg_ctl) as the user that owns the
# cluster. Fd 9 holds our flock lock: the postmaster that pg_ctl leaves
# running must not inherit it, or the lock would live as long as the server.
as_owner() {
  if is_root; then
    "$RUNUSER" -u postgres -- "$@" 9>&-
  else
    "$@" 9>&-
  fi
}

# Whether the OS user postgres can reach DIR (or the place where it will be
# made): every folder above it needs search permission for that user.
postgres_can_reach() {
  local d=$1
  while [ ! -e "$d" ]; do d=$(dirname "$d"); done
  "$RUNUSER" -u postgres -- test -x "$d" 2>/dev/null
}

# The default lies under $HOME, and root's home is mode 700 on Debian: the
# postgres user cannot get into it. Rather than loosen /root's permissions,
# root's default cluster then lives in /var/tmp (kept across reboots).
# An explicit PG_DATA is taken as given.
if [ -n "${PG_DATA:-}" ]; then
  PG_DATA_EXPLICIT=1
else
  PG_DATA_EXPLICIT=0
  PG_DATA=$CACHE_ROOT/pg-$PG_PORT
  if is_root && id postgres >/dev/null 2>&1 && ! postgres_can_reach "$PG_DATA"; then
    PG_DATA=/var/tmp/orderflow/pg-$PG_PORT
  fi
fi
LOG=$PG_DATA/server.log

# Finds the server binaries. Debian keeps them off PATH, in
# /usr/lib/postgresql/<major>/bin; take the newest major installed.
find_pg_bin() {
  if [ -n "${PG_BIN:-}" ]; then
    [ -x "$PG_BIN/pg_ctl" ] || die "PG_BIN=$PG_BIN has no pg_ctl"
    return 0
  fi
  local p d
  if p=$(command -v pg_ctl) && [ -x "$(dirname "$(readlink -f "$p")")/initdb" ]; then
    PG_BIN=$(dirname "$(readlink -f "$p")")
    return 0
  fi
  # An unmatched glob stays literal and fails the -x test below.
  while read -r d; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      PG_BIN=$d
      return 0
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
  return 1
}

install_postgres() {
  say "initdb/pg_ctl not found: installing Debian's postgresql package"
  local sudo=""
  is_root || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

ensure_binaries() {
  find_pg_bin && return 0
  install_postgres
  find_pg_bin || die "postgresql installed, but initdb/pg_ctl are still not to be found"
}

# 0 running, 3 not running, 4 no valid data dir: pg_ctl status's codes.
server_status() {
  [ -f "$PG_DATA/PG_VERSION" ] || return 4
  local rc=0
  as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1 || rc=$?
  return "$rc"
}

psql_admin() {
  # -X: no ~/.psqlrc; TCP because the cluster has no Unix socket (below).
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$SUPERUSER" -d postgres
}

init_cluster() {
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    # A cluster made by another major version will not start with these
    # binaries; it is throwaway data, so say how to start over.
    local have want
    have=$(cat "$PG_DATA/PG_VERSION")
    want=$("$PG_BIN/pg_ctl" -V | awk '{print $3}' | cut -d. -f1)
    [ "$have" = "$want" ] || die "$PG_DATA holds a PostgreSQL $have cluster, binaries are $want: rerun with PG_CLEAN=1"
    return 0
  fi
  if [ -d "$PG_DATA" ] && [ -n "$(ls -A "$PG_DATA")" ]; then
    die "$PG_DATA exists, is not empty and holds no cluster: remove it or rerun with PG_CLEAN=1"
  fi
  say "creating cluster in $PG_DATA"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  is_root && chown postgres:postgres "$PG_DATA"
  # --no-locale: C collation, the same on every machine, and fast.
  # --no-sync: nothing here has to survive a power cut.
  as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U "$SUPERUSER" -A trust -E UTF8 --no-locale --no-sync >"$PG_DATA.initdb.log" 2>&1 \
    || { cat "$PG_DATA.initdb.log" >&2; die "initdb failed"; }
  rm -f "$PG_DATA.initdb.log"
  # Our settings go in a file of their own, rewritten on every start.
  echo "include_if_exists = 'orderflow.conf'" | as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

write_settings() {
  # Trust on loopback: no passwords to manage in tests. From PG_LISTEN's
  # network (Pods of the cluster tier) the password, as a managed server asks.
  as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
# Generated by tools/scripts/postgres.sh on every start: a throwaway test cluster.
local   all  all                trust
host    all  all  127.0.0.1/32  trust
host    all  all  ::1/128       trust
$([ -z "${PG_LISTEN:-}" ] || echo "host    all  all  ${PG_LISTEN%.*}.0/24  scram-sha-256")
EOF
  as_owner tee "$PG_DATA/orderflow.conf" >/dev/null <<EOF
# Generated by tools/scripts/postgres.sh on every start; edit the script instead.
listen_addresses = '127.0.0.1${PG_LISTEN:+,$PG_LISTEN}'
port = $PG_PORT
# TCP only: no socket to collide with a system cluster's, and no socket
# path length limit for a long PG_DATA.
unix_socket_directories = ''
max_connections = 200
$(if [ "${PG_DURABLE:-0}" = 1 ]; then
    echo "# PG_DURABLE=1: durability settings as shipped."
  else
    printf '%s\n' "# Test data is disposable: trade durability for speed." \
      "fsync = off" "synchronous_commit = off" "full_page_writes = off"
  fi)
EOF
}

ensure_role_and_databases() {
  # CREATE DATABASE cannot run inside DO/functions, so the missing ones are
  # generated as statements and run by \gexec. %I quotes "order" (reserved).
  # CREATEDB: test harnesses (e.g. sqlx::test) make a database per test.
  local list
  list=$(printf "'%s'," "${SERVICES[@]}")
  list=${list%,}
  psql_admin <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_ROLE') THEN
    CREATE ROLE $PG_ROLE;
  END IF;
END
\$\$;
ALTER ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
SELECT format('CREATE DATABASE %I OWNER $PG_ROLE', d)
  FROM unnest(ARRAY[$list]) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
EOF
}

print_urls() {
  local s
  for s in "${SERVICES[@]}"; do
    echo "  postgres://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/$s"
  done
}

start() {
  ensure_binaries
  if server_status; then
    say "already running on 127.0.0.1:$PG_PORT (data $PG_DATA)"
    ensure_role_and_databases
    print_urls
    return 0
  fi
  if [ "${PG_CLEAN:-0}" = 1 ]; then
    say "PG_CLEAN=1: wiping $PG_DATA"
    rm -rf "$PG_DATA"
  fi
  if [ "$PG_DATA_EXPLICIT" = 1 ] && is_root && ! postgres_can_reach "$PG_DATA"; then
    die "the OS user postgres cannot reach PG_DATA=$PG_DATA (a folder above it is closed to it)"
  fi
  [ "$PG_DATA" = "/var/tmp/orderflow/pg-$PG_PORT" ] && [ "$PG_DATA_EXPLICIT" = 0 ] \
    && say "$CACHE_ROOT is closed to the postgres user: using $PG_DATA"
  mkdir -p "$(dirname "$PG_DATA")"

  init_cluster
  write_settings
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT (data $PG_DATA)"
  # -w: return once the server accepts connections; -l: its log.
  if ! as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOG" -w -t 60 start >/dev/null; then
    tail -n 30 "$LOG" >&2 || true
    die "PostgreSQL did not start (log: $LOG)"
  fi
  ensure_role_and_databases
  say "ready:"
  print_urls
}

stop() {
  find_pg_bin || { say "not running (PostgreSQL is not installed)"; return 0; }
  if ! server_status; then
    say "not running"
    return 0
  fi
  say "stopping (data $PG_DATA)"
  # fast: roll back open transactions and disconnect clients, no waiting for them.
  as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
  say "stopped"
}

status() {
  if find_pg_bin && server_status; then
    say "running on 127.0.0.1:$PG_PORT (data $PG_DATA)"
    print_urls
    return 0
  fi
  say "not running"
  return 1
}

# One start/stop at a time per cluster: parallel test jobs calling start
# would otherwise race to initdb the same folder.
with_lock() {
  mkdir -p "$(dirname "$PG_DATA")"
  exec 9>"$PG_DATA.lock"
  flock 9
  "$@"
}

case "${1:-}" in
  start) with_lock start ;;
  stop) with_lock stop ;;
  restart) with_lock stop && with_lock start ;;
  status) status ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
