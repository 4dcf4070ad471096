#!/usr/bin/env bash
# Checks deploy/observability/: the Prometheus rules (promtool check + unit
# tests), the Grafana dashboard (valid JSON, panel ids/titles/gridPos/targets,
# PromQL that parses) and that every metric they use is in orderflow's metric
# contract below. Installs Debian's prometheus package if promtool is missing
# (the daemon is never started). Idempotent; starts no long-running process.
# Ends with "observability: N passed, M failed"; exits non-zero on a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=deploy/observability
export PATH="$PATH:/usr/bin:/usr/sbin"

# The metric contract: name and type, exactly as the services export them.
# Keep in step with deploy/observability/README.md and the Rust code.
CONTRACT='
orderflow_events_consumed_total counter
orderflow_events_produced_total counter
orderflow_handler_duration_seconds histogram
orderflow_handler_retries_total counter
orderflow_dead_letters_total counter
orderflow_consumer_lag gauge
orderflow_outbox_backlog gauge
orderflow_outbox_oldest_age_seconds gauge
orderflow_circuit_breaker_state gauge
orderflow_http_requests_total counter
orderflow_http_request_duration_seconds histogram
orderflow_orders_placed_total counter
orderflow_saga_outcomes_total counter
orderflow_saga_duration_seconds histogram
orderflow_sagas_in_flight gauge
orderflow_saga_oldest_in_flight_age_seconds gauge
orderflow_orders_refund_pending gauge
orderflow_step_deadlines_passed_total counter
orderflow_dead_letters_unwritten_total counter
orderflow_unknown_event_types_total counter
orderflow_consumer_in_flight gauge
orderflow_consumer_buffered gauge
orderflow_keys_waiting_for_retry gauge
orderflow_external_calls_in_flight gauge
orderflow_db_batch_items histogram
orderflow_db_batch_fallbacks_total counter
orderflow_outbox_parked_rows gauge
orderflow_outbox_parked_total counter
'
export CONTRACT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
ko() { failed=$((failed + 1)); echo "FAIL - $*"; }
finish() {
  echo "observability: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
policy=""
cleanup() { [ -n "$policy" ] && $sudo rm -f "$policy"; [ -n "${tmp:-}" ] && rm -rf "$tmp"; }
trap cleanup EXIT

apt_install() {
  # Never let the package start its daemons: a policy-rc.d that denies every
  # start, only while installing and only if the machine has none.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
  fi
  $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  local rc=$?
  if [ -n "$policy" ]; then $sudo rm -f "$policy"; policy=""; fi
  return $rc
}

# ---------------------------------------------------------------- tools
if ! command -v promtool >/dev/null; then
  echo "installing Debian's prometheus package for promtool"
  apt_install prometheus
fi
if command -v promtool >/dev/null; then
  ok "promtool available: $(promtool --version 2>&1 | head -1)"
else
  ko "promtool not found after installing prometheus"
  finish
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "installing python3-yaml"
  apt_install python3-yaml
fi
if python3 -c 'import yaml' 2>/dev/null; then ok "python3 with PyYAML"; else ko "python3 with PyYAML"; finish; fi

# ---------------------------------------------------------------- promtool
if out=$(promtool check rules "$dir/rules.yaml" 2>&1); then
  ok "promtool check rules ($(echo "$out" | grep -o '[0-9]* rules found'))"
else
  echo "$out"; ko "promtool check rules $dir/rules.yaml"
fi
if out=$(promtool test rules "$dir/rules.test.yaml" 2>&1); then
  ok "promtool test rules $dir/rules.test.yaml"
else
  echo "$out"; ko "promtool test rules $dir/rules.test.yaml"
fi

# ---------------------------------------------------------------- python checks
tmp=$(mktemp -d)
# Prints "ok <what>" / "FAIL <what>" lines; writes the dashboard's expressions,
# as recording rules, to $tmp/dashboard-exprs.yaml for promtool to parse.
python3 - "$dir" "$tmp" >"$tmp/results" 2>&1 <<'PY'
import json, os, re, sys
import yaml

d, tmp = sys.argv[1], sys.argv[2]
contract = {}
for line in os.environ["CONTRACT"].strip().splitlines():
    name, kind = line.split()
    contract[name] = kind
series_names = set()
for name, kind in contract.items():
    series_names.add(name)
    if kind == "histogram":
        series_names.update({name + "_bucket", name + "_sum", name + "_count"})

def report(good, what, detail=""):
    print(("ok   " if good else "FAIL ") + what + ((": " + detail) if detail and not good else ""))

FUNCTIONS = set("""
abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp
clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month
deg delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join
label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month pi
predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh
sort sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp
vector year
sum min max avg group stddev stdvar count count_values bottomk topk quantile
""".split())
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan"}

def names_in(expr):
    """Metric names and function names an expression uses."""
    e = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    e = re.sub(r'\[[^\]]*\]', ' ', e)
    e = re.sub(r'\{[^}]*\}', ' ', e)
    e = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', e)
    metrics, funcs = set(), set()
    for m in re.finditer(r'\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*|[A-Za-z_:][A-Za-z0-9_:]*|\S', e):
        tok = m.group(0)
        if not re.match(r'[A-Za-z_:]', tok) or tok.lower() in KEYWORDS:
            continue
        if re.match(r'\s*\(', e[m.end():]):
            funcs.add(tok)
        else:
            metrics.add(tok)
    return metrics, funcs

# ------------------------------------------------------------ rules
rules = yaml.safe_load(open(f"{d}/rules.yaml"))
tests = yaml.safe_load(open(f"{d}/rules.test.yaml"))
records, alerts = [], []
for g in rules["groups"]:
    for r in g["rules"]:
        (records if "record" in r else alerts).append(r)
record_names = {r["record"] for r in records}

bad = {}
for r in records + alerts:
    metrics, funcs = names_in(r["expr"])
    unknown = sorted(m for m in metrics if m not in series_names and m not in record_names)
    unknown += sorted(f + "()" for f in funcs if f not in FUNCTIONS)
    if unknown:
        bad[r.get("record") or r.get("alert")] = unknown
report(not bad, f"rules.yaml: the {len(records) + len(alerts)} rules use only contract metrics, their own recording rules and standard functions", str(bad))

test_names = set()
for t in tests["tests"]:
    for s in t.get("input_series", []):
        test_names.add(re.match(r'\s*([A-Za-z_:][A-Za-z0-9_:]*)', s["series"]).group(1))
unknown = sorted(test_names - series_names)
report(not unknown, "rules.test.yaml: input series use only contract metrics", str(unknown))

required = {"OrderflowConsumerLagGrowing", "OrderflowDeadLettersArriving", "OrderflowSagaStuck",
            "OrderflowHttpErrorRateHigh", "OrderflowOutboxNotDraining", "OrderflowCircuitBreakerOpen",
            "OrderflowRefundPending", "OrderflowOutboxRowsParked", "OrderflowDeadLettersUnwritten",
            "OrderflowUnknownEventTypes"}
missing = sorted(required - {a["alert"] for a in alerts})
report(not missing, "rules.yaml: lag, dead-letter, stuck-saga, error-rate, outbox, circuit-breaker, refund, parked-row and upgrade alerts exist", str(missing))

firing, quiet, tested_exprs = set(), set(), []
for t in tests["tests"]:
    for a in t.get("alert_rule_test", []):
        (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
    tested_exprs += [p["expr"] for p in t.get("promql_expr_test", [])]
for a in alerts:
    name = a["alert"]
    lab, ann = a.get("labels", {}), a.get("annotations", {})
    problems = []
    if lab.get("severity") not in ("critical", "warning", "info"):
        problems.append("severity label")
    for k in ("summary", "description"):
        if not ann.get(k):
            problems.append(k)
    if not re.search(r'\$labels|\$value', ann.get("description", "")):
        problems.append("description without $labels/$value")
    if not (ann.get("runbook_url") or ann.get("runbook")):
        problems.append("runbook")
    report(not problems, f"alert {name}: severity, summary, description, runbook", ", ".join(problems))
    report(name in firing and name in quiet, f"alert {name}: unit-tested firing and not firing",
           f"firing={name in firing} not-firing={name in quiet}")
untested = sorted(r for r in record_names if not any(r in e for e in tested_exprs))
report(not untested, f"the {len(record_names)} recording rules each have a promql_expr_test", str(untested))

# ------------------------------------------------------------ dashboard
try:
    dash = json.load(open(f"{d}/dashboard.json"))
    report(True, "dashboard.json is valid JSON")
except Exception as e:
    report(False, "dashboard.json is valid JSON", str(e))
    sys.exit(0)

report(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 38,
       "dashboard schemaVersion >= 38", str(dash.get("schemaVersion")))
ds_vars = [v for v in dash.get("templating", {}).get("list", [])
           if v.get("type") == "datasource" and v.get("name") == "DS_PROMETHEUS" and v.get("query") == "prometheus"]
report(len(ds_vars) == 1, "dashboard has a prometheus datasource variable DS_PROMETHEUS")

def all_panels(ps):
    for p in ps:
        yield p
        yield from all_panels(p.get("panels", []))
panels = list(all_panels(dash.get("panels", [])))
ids = [p.get("id") for p in panels]
dups = sorted({i for i in ids if ids.count(i) > 1}, key=str)
report(panels and not dups and all(isinstance(i, int) for i in ids), f"dashboard: {len(panels)} panels with unique integer ids", str(dups))

problems, exprs = [], []
for p in panels:
    pid = p.get("id")
    gp = p.get("gridPos", {})
    if not p.get("title"):
        problems.append(f"{pid}: no title")
    if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")) or gp.get("x", 0) + gp.get("w", 0) > 24:
        problems.append(f"{pid}: bad gridPos {gp}")
    if p.get("type") == "row":  # rows only group panels: no query of their own
        continue
    if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
        problems.append(f"{pid}: datasource is not ${{DS_PROMETHEUS}}")
    ts = p.get("targets") or []
    if not ts:
        problems.append(f"{pid}: no targets")
    for t in ts:
        if not t.get("expr"):
            problems.append(f"{pid}/{t.get('refId')}: no expr")
        else:
            exprs.append((pid, t.get("refId"), t["expr"]))
report(not problems, "dashboard: every panel has a title and gridPos; every non-row panel has targets with expr on ${DS_PROMETHEUS}", "; ".join(problems))

cells = {}
overlaps = []
for p in panels:
    gp = p.get("gridPos", {})
    if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")):
        continue
    for x in range(gp["x"], gp["x"] + gp["w"]):
        for y in range(gp["y"], gp["y"] + gp["h"]):
            if (x, y) in cells:
                overlaps.append((cells[(x, y)], p["id"]))
            cells[(x, y)] = p["id"]
report(not overlaps, "dashboard: panels do not overlap", str(sorted(set(overlaps))[:5]))

bad = {}
used = set()
for pid, ref, e in exprs:
    metrics, funcs = names_in(e)
    used |= metrics
    unknown = sorted(m for m in metrics if m not in series_names) + sorted(f + "()" for f in funcs if f not in FUNCTIONS)
    if unknown:
        bad[f"{pid}/{ref}"] = unknown
report(exprs and not bad, f"dashboard: the {len(exprs)} queries use only contract metrics and standard functions", str(bad))
for v in dash.get("templating", {}).get("list", []):
    if v.get("type") == "query":
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q or ""
        metrics, _ = names_in(re.sub(r'^\s*label_values\(', '(', q))
        unknown = sorted(m for m in metrics if m not in series_names)
        report(not unknown, f"dashboard variable {v.get('name')} uses only contract metrics", str(unknown))

wanted = {
    "saga funnel (orders placed, outcomes)": ["orderflow_orders_placed_total", "orderflow_saga_outcomes_total"],
    "saga latency percentiles": ["orderflow_saga_duration_seconds_bucket"],
    "consumer lag": ["orderflow_consumer_lag"], "dead letters": ["orderflow_dead_letters_total"],
    "outbox backlog and age": ["orderflow_outbox_backlog", "orderflow_outbox_oldest_age_seconds"],
    "handler latency": ["orderflow_handler_duration_seconds_bucket"],
    "HTTP rate, errors, duration": ["orderflow_http_requests_total", "orderflow_http_request_duration_seconds_bucket"],
    "circuit breakers": ["orderflow_circuit_breaker_state"],
}
missing = [k for k, ms in wanted.items() if not all(m in used for m in ms)]
report(not missing, "dashboard covers saga funnel, saga latency, lag, dead letters, outbox, handler latency, HTTP, circuit breakers", str(missing))
pct = {q for _, _, e in exprs if "orderflow_saga_duration_seconds_bucket" in e
       for q in re.findall(r'histogram_quantile\(\s*([0-9.]+)', e)}
report({"0.5", "0.95", "0.99"} <= pct, "dashboard has saga p50/p95/p99", str(sorted(pct)))

# every dashboard expression, with Grafana's variables filled in, for promtool to parse
subst = lambda e: (e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
                    .replace("$__range", "1h").replace("$job", "orderflow-.*"))
with open(f"{tmp}/dashboard-exprs.yaml", "w") as f:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{pid}_{ref}", "expr": subst(e)} for pid, ref, e in exprs]}]}, f)

# ------------------------------------------------------------ README
readme = open(f"{d}/README.md").read() if os.path.exists(f"{d}/README.md") else ""
missing = [m for m in contract if m not in readme] + [a["alert"] for a in alerts if a["alert"] not in readme]
report(readme and not missing, "README.md documents every contract metric and every alert", str(missing))
print("checks complete")
PY
while IFS= read -r line; do
  case "$line" in
    "ok   "*) ok "${line#ok   }" ;;
    "FAIL "*) ko "${line#FAIL }" ;;
    "checks complete") ;;
    *) echo "$line" ;;
  esac
done <"$tmp/results"
if ! grep -qx 'checks complete' "$tmp/results"; then
  ko "python checks did not complete"
fi

if [ -s "$tmp/dashboard-exprs.yaml" ]; then
  if out=$(promtool check rules "$tmp/dashboard-exprs.yaml" 2>&1); then
    ok "dashboard queries parse as PromQL ($(echo "$out" | grep -o '[0-9]* rules found'))"
  else
    echo "$out"; ko "dashboard queries parse as PromQL"
  fi
fi

finish
