#!/usr/bin/env bash
# Priority under a backlog, on PostgreSQL: LOW low-priority jobs queued (10 ms each), one node
# busy with them, and HIGH high-priority jobs submitted over HTTP one every 20 ms. Printed: the
# high jobs' claim latency (started_at - created_at, both by the database's clock) p50, p99 and
# max, and how many low jobs ran meanwhile.
#
#   source .ci/services.sh && start_postgres        # or PG_URL=postgres://... of your own
#   bash benches/scripts/serve_pg_priority.sh        # 50k low, 200 high, 8 workers
set -euo pipefail
cd "$(dirname "$0")/../.."
URL=${PG_URL:-${WEFT_TEST_PG_URL:?set PG_URL or WEFT_TEST_PG_URL (source .ci/services.sh && start_postgres)}}
LOW=${LOW:-50000}
HIGH=${HIGH:-200}
WORKERS=${WORKERS:-8}
if [ -z "${WEFT_BIN:-}" ]; then
  cargo build --release -p weft-cli --bin weft >&2
fi
BIN=${WEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/weft}
PID=
DIR=$(mktemp -d)
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
q() { PGOPTIONS="-c client_min_messages=warning" psql -qAtX "$1" -c "$2"; }

schema="prio_$$"
q "$URL" "CREATE SCHEMA $schema"
sep='?'; case "$URL" in *\?*) sep='&';; esac
SURL="${URL}${sep}options=-c%20search_path%3D${schema}"
# Default aging (5 s): the backlog ages into the high level during the run, and fresh high
# jobs must still go first.
"$BIN" serve --port 0 --db "$SURL" --workers "$WORKERS" --work-step 10ms 2>"$DIR/err" &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$DIR/err" && break; sleep 0.1; done
BASE=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$DIR/err" | head -1)
q "$SURL" "INSERT INTO weft_jobs (id, type, priority, eff_priority, data, status, created_at)
           SELECT 'low' || i, 'data_analysis', 0, 0, '{\"dataset\":\"d\",\"query\":\"q\",\"rows\":1}',
                  'queued', (extract(epoch from clock_timestamp()) * 1000)::bigint
           FROM generate_series(1, $LOW) AS i"
q "$SURL" "SELECT pg_notify('weft_jobs_$schema', '')" >/dev/null
sleep 1
for i in $(seq "$HIGH"); do
  curl -s -o /dev/null -X POST "$BASE/api/jobs" -H 'content-type: application/json' \
    -d "{\"id\":\"high$i\",\"type\":\"data_analysis\",\"priority\":2,\"data\":{\"dataset\":\"d\",\"query\":\"q\",\"rows\":1}}"
  sleep 0.02
done
while [ "$(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE id LIKE 'high%' AND status <> 'completed'")" != 0 ]; do sleep 0.1; done
q "$SURL" "SELECT 'high claim latency ms: p50=' || percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at)
                  || ' p99=' || percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - created_at)
                  || ' max=' || max(started_at - created_at) || ' (n=' || count(*) || ')'
           FROM weft_jobs WHERE id LIKE 'high%'"
echo "low jobs completed meanwhile: $(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE id LIKE 'low%' AND status = 'completed'") of $LOW; load $(cut -d' ' -f1 /proc/loadavg)"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
q "$URL" "DROP SCHEMA $schema CASCADE"
