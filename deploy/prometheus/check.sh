#!/usr/bin/env bash
# Validate the Prometheus rules/config and the Grafana dashboard of entra-writeback.
#
# Usage: deploy/prometheus/check.sh [--list-exprs FILE]
#
#   - promtool check rules alerts.yml
#   - promtool test rules alerts_test.yml
#   - promtool check config prometheus.yml
#   - dashboards/entra-writeback.json: parses, every datasource reference is the
#     ${datasource} template variable (no hard-coded uid), job/instance/datasource
#     variables exist, panels and targets are well formed, every metric named is
#     one the service exports, and every expression parses as PromQL (promtool).
#   - --list-exprs FILE: also write every PromQL expression of the dashboard and
#     of the alert rules to FILE, one per line, with the Grafana variables
#     replaced by concrete values ($job/$instance -> .*, $__rate_interval and
#     $__interval -> 1m, $__range -> 1h), ready to send to a Prometheus
#     /api/v1/query endpoint.
#
# Works from any directory. Needs promtool (Debian: apt-get install -y
# --no-install-recommends prometheus) and python3 (PyYAML optional).
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

list_file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --list-exprs)
      if [ $# -lt 2 ] || [ -z "$2" ]; then echo "check.sh: --list-exprs needs a FILE" >&2; exit 2; fi
      list_file="$2"; shift 2 ;;
    --list-exprs=*)
      list_file="${1#--list-exprs=}"
      if [ -z "$list_file" ]; then echo "check.sh: --list-exprs needs a FILE" >&2; exit 2; fi
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "check.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
# FILE is relative to the caller's directory, not to this script's.
if [ -n "$list_file" ] && [ "${list_file#/}" = "$list_file" ]; then
  list_file="$PWD/$list_file"
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dashboard="$repo/dashboards/entra-writeback.json"

for tool in promtool python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check.sh: $tool not found" >&2
    [ "$tool" = promtool ] && echo "  install it with: apt-get install -y --no-install-recommends prometheus" >&2
    exit 1
  fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$here"

echo "== promtool check rules alerts.yml"
promtool check rules alerts.yml
echo "== promtool test rules alerts_test.yml"
promtool test rules alerts_test.yml
echo "== promtool check config prometheus.yml"
promtool check config prometheus.yml

echo "== dashboard $dashboard"
dash_rc=0
if python3 - "$dashboard" "$here/alerts.yml" "$tmp/exprs.txt" "$tmp/dashboard_rules.yml" <<'PY'
import json
import re
import sys

dashboard_path, alerts_path, exprs_out, rules_out = sys.argv[1:5]
errors = []

def err(msg):
    errors.append(msg)

# Metrics the service exports (histograms expand to _bucket/_sum/_count).
COUNTERS_GAUGES = """
build_info graph_requests_total graph_throttled_total graph_retry_after_seconds_total graph_lookups_total
delta_rounds_total last_successful_round_timestamp_seconds changes_enqueued_total
changes_applied_total queue_depth queue_oldest_age_seconds dead_letters dead_letters_total
held_deletes ad_operations_total ad_up retries_total members_skipped_total conflicts_total
managed_groups reconcile_corrections_total deletes_cancelled_total parked_groups quarantined ready
frozen_groups second_writer_detected_total
""".split()
HISTOGRAMS = "delta_round_duration_seconds ad_operation_duration_seconds replication_lag_seconds".split()
KNOWN = {"entra_writeback_" + m for m in COUNTERS_GAUGES}
for h in HISTOGRAMS:
    KNOWN |= {"entra_writeback_%s_%s" % (h, s) for s in ("bucket", "sum", "count")}

DS_VAR_UIDS = {"${datasource}", "$datasource"}

# ---------------------------------------------------------------- dashboard
try:
    with open(dashboard_path, encoding="utf-8") as f:
        dash = json.load(f)
except (OSError, ValueError) as e:
    print("dashboard: cannot parse %s: %s" % (dashboard_path, e), file=sys.stderr)
    sys.exit(1)

if not isinstance(dash, dict):
    print("dashboard: top level is not an object", file=sys.stderr)
    sys.exit(1)

for key in ("uid", "title", "panels", "templating", "schemaVersion"):
    if key not in dash:
        err("dashboard: missing %r" % key)
if not isinstance(dash.get("schemaVersion"), int) or dash.get("schemaVersion", 0) < 36:
    err("dashboard: schemaVersion should be an integer >= 36, got %r" % dash.get("schemaVersion"))
if "__inputs" in dash:
    err("dashboard: has __inputs (export-for-sharing form); use the datasource variable instead")

# Every "datasource" anywhere must be the template variable; the only other
# thing allowed is Grafana's built-in annotation source.
def walk(node, path):
    if isinstance(node, dict):
        for k, v in node.items():
            p = "%s.%s" % (path, k)
            if k == "datasource":
                builtin = (path.startswith("$.annotations") and isinstance(v, dict)
                           and v.get("uid") in ("-- Grafana --", "grafana"))
                if not builtin and not (isinstance(v, dict) and v.get("type") == "prometheus"
                                        and v.get("uid") in DS_VAR_UIDS):
                    err("%s: datasource must be {\"type\": \"prometheus\", \"uid\": \"${datasource}\"}, got %s"
                        % (p, json.dumps(v)))
            walk(v, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, "%s[%d]" % (path, i))
    elif isinstance(node, str):
        if re.search(r"\$\{?DS_", node):
            err("%s: import-time datasource input %r" % (path, node))

walk(dash, "$")

variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", []) if isinstance(v, dict)}
ds_var = variables.get("datasource")
if not ds_var or ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus":
    err("templating: need a variable 'datasource' of type 'datasource' with query 'prometheus'")
for name in ("job", "instance"):
    if name not in variables:
        err("templating: missing variable %r" % name)

def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))  # collapsed rows nest panels

ids = set()
dash_exprs = []
rule_names = []  # one recording-rule name per dashboard expression
for p in all_panels(dash.get("panels", [])):
    title = p.get("title", "<untitled>")
    pid = p.get("id")
    if pid in ids:
        err("panel %r: duplicate id %r" % (title, pid))
    ids.add(pid)
    gp = p.get("gridPos") or {}
    if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")) or gp.get("x", 0) + gp.get("w", 0) > 24:
        err("panel %r: bad gridPos %r" % (title, gp))
    if p.get("type") == "row":
        continue
    if not p.get("description"):
        err("panel %r: no description" % title)
    if p.get("datasource") is None:
        err("panel %r: no datasource" % title)
    targets = p.get("targets") or []
    if not targets:
        err("panel %r: no targets" % title)
    refids = [t.get("refId") for t in targets]
    if len(set(refids)) != len(refids) or None in refids:
        err("panel %r: missing or duplicate refId %r" % (title, refids))
    for t in targets:
        if t.get("datasource") is None:
            err("panel %r target %s: no datasource" % (title, t.get("refId")))
        if not (t.get("expr") or "").strip():
            err("panel %r target %s: empty expr" % (title, t.get("refId")))
        else:
            dash_exprs.append(("panel %r target %s" % (title, t.get("refId")), t["expr"]))
            rule_names.append(re.sub(r"\W", "_", "dashboard_panel_%s_%s" % (pid, t.get("refId"))))

# The metric selector inside label_values(selector, label) of query variables
# is PromQL too.
for name, v in variables.items():
    if v.get("type") != "query":
        continue
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else (q or "")
    m = re.match(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", q, re.S)
    if m:
        dash_exprs.append(("variable %r" % name, m.group(1)))
        rule_names.append(re.sub(r"\W", "_", "dashboard_variable_%s" % name))
    elif q.strip():
        err("variable %r: unsupported query %r (expected label_values(selector, label))" % (name, q))

# ------------------------------------------------------------------- alerts
def load_rule_exprs(path):
    try:
        import yaml
    except ImportError:
        yaml = None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    if yaml is not None:
        doc = yaml.safe_load(text)
        for g in doc.get("groups", []):
            for r in g.get("rules", []):
                out.append(("rule %s" % (r.get("alert") or r.get("record")), str(r["expr"])))
        return out
    # Fallback without PyYAML: our own file's two shapes, `expr: <one line>`
    # and a `expr: |` block scalar.
    lines = text.split("\n")
    i, name = 0, "?"
    while i < len(lines):
        m = re.match(r"^\s*-?\s*(alert|record):\s*(\S+)", lines[i])
        if m:
            name = m.group(2)
        m = re.match(r"^(\s*)expr:\s*(.*?)\s*$", lines[i])
        if m:
            indent, rest = len(m.group(1)), m.group(2)
            if rest in ("|", "|-", ">", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i])
                    i += 1
                out.append(("rule %s" % name, "\n".join(block)))
                continue
            if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
                rest = rest[1:-1]
            out.append(("rule %s" % name, rest))
        i += 1
    return out

rule_exprs = load_rule_exprs(alerts_path)
if not rule_exprs:
    err("alerts: no rule expressions found in %s" % alerts_path)

# ------------------------------------------------------------- substitution
INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h",
             "__range_s": "3600", "__range_ms": "3600000", "__interval_ms": "60000"}

def concrete(where, expr):
    e = expr
    # $job / $instance only ever as the whole value of a regex matcher.
    e = re.sub(r'=~\s*"\$\{?(job|instance)(?::\w+)?\}?"', '=~".*"', e)
    e = re.sub(r"\$\{?(__\w+?)\}?(?![\w])",
               lambda m: INTERVALS.get(m.group(1), m.group(0)), e)
    if "$" in e:
        err("%s: template variable left after substitution (job/instance must be used as "
            "=~\"$var\"): %s" % (where, e))
    if "#" in e:
        err("%s: contains '#' (PromQL comment?) which cannot be flattened to one line" % where)
    e = re.sub(r"\s*\n\s*", " ", e.strip())
    return e

exprs = []
for where, e in dash_exprs + rule_exprs:
    c = concrete(where, e)
    for metric in re.findall(r"\bentra_writeback_\w+", c):
        if metric not in KNOWN:
            err("%s: unknown metric %s" % (where, metric))
    exprs.append((where, c))

# De-duplicated, in dashboard-then-rules order.
seen, unique = set(), []
for where, c in exprs:
    if c not in seen:
        seen.add(c)
        unique.append(c)
with open(exprs_out, "w", encoding="utf-8") as f:
    f.write("".join(c + "\n" for c in unique))

# Dashboard expressions as recording rules so promtool parses them; a parse
# error names the rule, i.e. the panel id and refId (or the variable).
with open(rules_out, "w", encoding="utf-8") as f:
    f.write("groups:\n  - name: dashboard-exprs\n    rules:\n")
    for name, (where, c) in zip(rule_names, exprs[: len(dash_exprs)]):
        f.write("      # %s\n" % where)
        f.write("      - record: %s\n        expr: %s\n" % (name, json.dumps(c)))

if errors:
    for e in errors:
        print("  ERROR: " + e, file=sys.stderr)
    sys.exit(1)
npanels = sum(1 for p in all_panels(dash.get("panels", [])) if p.get("type") != "row")
print("  SUCCESS: %d panels, %d dashboard expressions, %d rule expressions, %d unique"
      % (npanels, len(dash_exprs), len(rule_exprs), len(unique)))
PY
then :; else dash_rc=1; fi

# Parse the dashboard expressions with promtool even when the checks above
# failed, so that every problem is reported in one run.
if [ -s "$tmp/dashboard_rules.yml" ]; then
  echo "== promtool check rules (dashboard expressions as recording rules)"
  if ! promtool check rules "$tmp/dashboard_rules.yml" 2>&1 | sed "s|$tmp/||"; then
    dash_rc=1
  fi
fi
if [ "$dash_rc" -ne 0 ]; then
  echo "check.sh: dashboard checks FAILED" >&2
  exit 1
fi

if [ -n "$list_file" ]; then
  cp "$tmp/exprs.txt" "$list_file"
  echo "== wrote $(wc -l <"$list_file") expressions to $list_file"
fi
echo "== all checks passed"
