# Sourced by kube.sh and kube-node.sh: background servers kept as
# $RUN/<name>.pid and $RUN/<name>.log. The sourcing script defines `say`
# and `stop` (what to undo when a server does not come up) and sets RUN.

# stop_daemon NAME: SIGTERM, five seconds, then SIGKILL; forgets its pid file.
stop_daemon() {
  local name=$1 pid
  [ -f "$RUN/$name.pid" ] || return 0
  pid=$(cat "$RUN/$name.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
  fi
  rm -f "$RUN/$name.pid"
}

# wait_for NAME SECONDS COMMAND...: until COMMAND succeeds; otherwise the end
# of NAME's log, `stop`, exit 1.
wait_for() {
  local what=$1 secs=$2
  shift 2
  for _ in $(seq $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  say "$what not ready after ${secs}s; its log:"
  tail -30 "$RUN/$what.log" >&2
  stop
  exit 1
}
