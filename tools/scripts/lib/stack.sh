# The dev stack for the scripts that measure it (bench.sh, profile.sh,
# cpu-budget.sh): sourced, not run. `orderflow dev` from the binaries in
# $STACK_BIN, on ports from $STACK_PORT, its data in $STACK_DATA.
#
#   stack_start [orderflow dev options]   starts it; sets STACK_PID, GATEWAY,
#                                         PAYMENT, BOOTSTRAP, REGISTRY and
#                                         exports ORDERFLOW_DEV_ISSUER
#   stack_stop                            stops it (safe to call twice)
#   stack_warm_up                         500 orders, so caches, pools and
#                                         consumer assignments are settled
#   stack_pids                            "component pid" per process: the dev
#                                         process (broker, registry, issuer) as
#                                         "dev", then each service
#   stack_cpu                             "component ticks" per process: CPU
#                                         (user + system) used so far
#   cpu_ms_per N BEFORE AFTER             per-component ms of CPU per unit of
#                                         N between two stack_cpu files, and
#                                         the total: "gateway 0.28, … total 3.66"

STACK_PID=""
STACK_LOG=""

stack_start() {
  STACK_LOG="$STACK_DATA.log"
  "$STACK_BIN/orderflow" dev --port "$STACK_PORT" --data-dir "$STACK_DATA" "$@" >"$STACK_LOG" 2>&1 &
  STACK_PID=$!
  for _ in $(seq 1 600); do
    grep -q "orderflow is running" "$STACK_LOG" && break
    kill -0 "$STACK_PID" 2>/dev/null || { cat "$STACK_LOG"; return 1; }
    sleep 0.2
  done
  grep -q "orderflow is running" "$STACK_LOG" || { echo "the stack did not start"; tail -50 "$STACK_LOG"; return 1; }
  GATEWAY="http://127.0.0.1:$STACK_PORT"
  REGISTRY="http://127.0.0.1:$((STACK_PORT + 1))"
  PAYMENT="http://127.0.0.1:$((STACK_PORT + 4))"
  # `orderflow load` takes its customers' tokens from the stack's dev issuer.
  export ORDERFLOW_DEV_ISSUER="http://127.0.0.1:$((STACK_PORT + 7))"
  BOOTSTRAP=$(sed -n 's/^  kafka *//p' "$STACK_LOG" | head -1)
}

stack_stop() {
  if [ -n "$STACK_PID" ]; then
    kill -TERM "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || true
  fi
  STACK_PID=""
  [ -n "$STACK_LOG" ] && rm -f "$STACK_LOG"
}

stack_warm_up() {
  "$STACK_BIN/orderflow" load --gateway "$GATEWAY" --orders 500 --concurrency 64 >/dev/null
}

stack_pids() {
  local pid exe
  echo "dev $STACK_PID"
  for pid in $(pgrep -P "$STACK_PID"); do
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    case "$exe" in
      */orderflow-*) echo "${exe##*/orderflow-} $pid" ;;
    esac
  done
}

stack_cpu() {
  local name pid
  stack_pids | while read -r name pid; do
    echo "$name $(awk '{ print $14 + $15 }' "/proc/$pid/stat")"
  done
}

cpu_ms_per() {
  local n=$1 before=$2 after=$3
  join <(sort "$before") <(sort "$after") |
    awk -v n="$n" -v hz="$(getconf CLK_TCK)" '
      { ms[$1] = ($3 - $2) * 1000 / hz / n; total += ms[$1] }
      END {
        split("dev gateway order inventory payment shipping notification", order, " ")
        for (i = 1; i <= 7; i++) if (order[i] in ms) printf "%s %.2f, ", order[i], ms[order[i]]
        printf "total %.2f", total
      }'
}
