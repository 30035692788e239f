#!/usr/bin/env bash
# Runs GoAccess (`--output=json`) and `weft logs --format json` on the same Combined file and
# compares the figures both report: bandwidth, unique visitors (in total and per day), 404 hits,
# and requests per status code. Exits 1 on any difference. Also prints each tool's wall and CPU
# time on the file (one run each: a sanity figure, not a benchmark).
#
# Usage: benches/scripts/goaccess_compare.sh [ACCESS_LOG]
#   Without a file, the fixture of weft-logs' panel tests is used
#   (crates/logs/tests/fixtures/combined-goaccess.log.gz, written by goaccess_fixture.py).
#   WEFT=path/to/weft picks the binary (default: target/release/weft, else target/debug/weft).
# Needs goaccess (Debian: apt-get install goaccess), jq and python3. Not run by CI.
#
# Unique visitors agree when the log's timestamps are in UTC: GoAccess groups by the date as
# written in the log, weft by the UTC date.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=${1:-}
if [ -z "$log" ]; then
    zcat crates/logs/tests/fixtures/combined-goaccess.log.gz > "$tmp/access.log"
    log=$tmp/access.log
fi
weft=${WEFT:-}
if [ -z "$weft" ]; then
    if [ -x target/release/weft ]; then weft=target/release/weft; else weft=target/debug/weft; fi
fi
command -v goaccess >/dev/null || { echo "goaccess is not installed" >&2; exit 2; }
echo "goaccess: $(goaccess --version | head -1); weft: $weft; log: $log ($(wc -l < "$log") lines)"

timed() { # NAME CMD... : runs CMD, prints wall and CPU seconds
    local name=$1; shift
    /usr/bin/time -f "$name: %e s wall, %U s user + %S s sys, %M KB max RSS" "$@"
}
timed goaccess goaccess "$log" --log-format=COMBINED --output="$tmp/goaccess.json" > /dev/null 2> "$tmp/ga.err" || {
    cat "$tmp/ga.err" >&2; exit 2; }
grep -E '^goaccess:' "$tmp/ga.err" || true
timed weft "$weft" logs "$log" --log-format combined --format json --top 1000000 \
    > "$tmp/weft.json" 2> "$tmp/weft.err" || { cat "$tmp/weft.err" >&2; exit 2; }
grep -E '^weft:' "$tmp/weft.err" || true

python3 - "$tmp/goaccess.json" "$tmp/weft.json" <<'PY'
import json, sys
ga = json.load(open(sys.argv[1]))
wf = json.load(open(sys.argv[2]))
p = wf["panels"]
rows = []
def row(name, g, w):
    rows.append((name, g, w, "ok" if g == w else "DIFFERENT"))
row("requests", ga["general"]["valid_requests"], wf["requests"])
row("bandwidth (bytes)", ga["general"]["bandwidth"], p["bandwidth"]["total_bytes"])
row("unique visitors", ga["general"]["unique_visitors"], p["visitors"]["total"])
ga_days = {d["data"]: d["visitors"]["count"] for d in ga["visitors"]["data"]}
for d in p["visitors"]["days"]:
    key = d["day"].replace("-", "")
    row("  visitors " + d["day"], ga_days.pop(key, None), d["visitors"])
for key, n in sorted(ga_days.items()):
    row("  visitors " + key, n, None)
row("404 hits", ga["not_found"]["metadata"]["hits"]["total"]["value"],
    sum(r["requests"] for r in p["not_found"]["rows"]))
ga_status = {}
for cls in ga["status_codes"]["data"]:
    for item in cls.get("items", []):
        ga_status[int(item["data"].split()[0])] = item["hits"]["count"]
wf_status = {s["status"]: s["count"] for s in wf["status_codes"]}
for code in sorted(set(ga_status) | set(wf_status)):
    row("status %d" % code, ga_status.get(code), wf_status.get(code))
width = max(len(r[0]) for r in rows)
print("%-*s  %12s  %12s" % (width, "figure", "goaccess", "weft"))
for name, g, w, verdict in rows:
    print("%-*s  %12s  %12s  %s" % (width, name, g, w, verdict))
bad = [r for r in rows if r[3] != "ok"]
print("all %d figures equal" % len(rows) if not bad else "%d of %d figures differ" % (len(bad), len(rows)))
sys.exit(1 if bad else 0)
PY
