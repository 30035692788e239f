#!/usr/bin/env bash
# Chaos run of `weft serve` on PostgreSQL: 3 nodes drain JOBS jobs of 10-50 ms while a random
# node is killed with SIGKILL every KILL_EVERY seconds and restarted, KILLS times; then the run
# waits for every job to end and counts.
#
#   source .ci/services.sh && start_postgres        # or PG_URL=postgres://... of your own
#   bash benches/scripts/serve_pg_chaos.sh           # 20k jobs, 3 nodes, 6 kills, every 3 s
#   KILLS=0 bash benches/scripts/serve_pg_chaos.sh   # the control run: no kills
#
# Accepted jobs are inserted up front (one INSERT; the HTTP path is serve_load.sh's business).
# Leases are short for the run (LEASE=3s, --sweep-interval 1s), so a killed node's jobs come
# back within about 4 s instead of the default 40 s. Printed at the end:
#   lost        accepted jobs not in a final state when the run gave up waiting (must be 0)
#   final       jobs per final state
#   reclaimed   extra claims (sum of attempts - 1): an upper bound on duplicate executions,
#               since a job claimed by a node that died may not have started yet
#   bound       the jobs the killed nodes could hold at once: kills x (2 x workers)
# A run passes when lost is 0, no job is dead, and reclaimed <= bound (0 without kills).
set -euo pipefail
cd "$(dirname "$0")/../.."
URL=${PG_URL:-${WEFT_TEST_PG_URL:?set PG_URL or WEFT_TEST_PG_URL (source .ci/services.sh && start_postgres)}}
JOBS=${JOBS:-20000}
NODES=${NODES:-3}
WORKERS=${WORKERS:-8}
KILLS=${KILLS:-6}
KILL_EVERY=${KILL_EVERY:-3}
TIMEOUT=${TIMEOUT:-300}
LEASE=${LEASE:-3s}
command -v psql >/dev/null || PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
if [ -z "${WEFT_BIN:-}" ]; then
  cargo build --release -p weft-cli --bin weft >&2
fi
BIN=${WEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/weft}
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done' EXIT
q() { PGOPTIONS="-c client_min_messages=warning" psql -qAtX "$1" -c "$2"; }

schema="chaos_$$"
q "$URL" "CREATE SCHEMA $schema"
sep='?'; case "$URL" in *\?*) sep='&';; esac
SURL="${URL}${sep}options=-c%20search_path%3D${schema}"
LOGS=$(mktemp -d)
node() {
  RUST_LOG=weft_serve=info "$BIN" serve --port 0 --db "$SURL" --workers "$WORKERS" --work-step 10ms \
    --lease "$LEASE" --sweep-interval 1s --max-attempts 20 >/dev/null 2>>"$LOGS/nodes.log" &
  echo $!
}
# The first node creates the schema; the jobs go in once it exists.
PIDS=("$(node)")
for _ in $(seq 100); do
  [ "$(q "$SURL" "SELECT count(*) FROM pg_tables WHERE schemaname = '$schema' AND tablename = 'weft_jobs'")" = 1 ] && break
  sleep 0.1
done
# rows 1000..5000: 1 to 5 steps of 10 ms.
q "$SURL" "INSERT INTO weft_jobs (id, type, priority, eff_priority, data, status, created_at)
           SELECT 'c' || i, 'data_analysis', i % 3, i % 3,
                  json_build_object('dataset', 'd', 'query', 'q', 'rows', 1000 * (1 + i % 5))::jsonb,
                  'queued', (extract(epoch from clock_timestamp()) * 1000)::bigint
           FROM generate_series(1, $JOBS) AS i"
q "$SURL" "SELECT pg_notify('weft_jobs_$schema', '')" >/dev/null
for _ in $(seq 2 "$NODES"); do PIDS+=("$(node)"); done
start=$(date +%s)

kills=0
while [ "$kills" -lt "$KILLS" ]; do
  sleep "$KILL_EVERY"
  left=$(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE status IN ('queued', 'running')")
  [ "$left" = 0 ] && break
  i=$(( RANDOM % NODES ))
  kill -9 "${PIDS[$i]}"; wait "${PIDS[$i]}" 2>/dev/null || true
  kills=$(( kills + 1 ))
  echo "kill $kills: node $i (pid ${PIDS[$i]}) with $left jobs unfinished" >&2
  sleep 0.5
  PIDS[$i]=$(node)
done
while [ $(( $(date +%s) - start )) -lt "$TIMEOUT" ]; do
  [ "$(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE status IN ('queued', 'running')")" = 0 ] && break
  sleep 0.5
done
wall=$(( $(date +%s) - start ))
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
PIDS=()
lost=$(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE status IN ('queued', 'running')")
final=$(q "$SURL" "SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM weft_jobs GROUP BY status ORDER BY status) s")
reclaimed=$(q "$SURL" "SELECT coalesce(sum(attempts - 1), 0) FROM weft_jobs")
stored=$(q "$SURL" "SELECT count(*) FROM weft_jobs")
# Warnings and errors the nodes logged (late heartbeats, jobs no longer a node's, failed claims).
grep -hE 'WARN|ERROR' "$LOGS/nodes.log" | sed -E 's/^[^ ]+ +//; s/(job|pid|node)[^ ]*=[^ ]*/\1=_/g' | sort | uniq -c | sed 's/^/nodes: /' >&2 || true
rm -rf "$LOGS"
echo "jobs=$JOBS stored=$stored nodes=$NODES workers=$WORKERS kills=$kills wall_s=$wall lost=$lost final: $final reclaimed=$reclaimed bound=$(( kills * 2 * WORKERS )) load=$(cut -d' ' -f1 /proc/loadavg)"
q "$URL" "DROP SCHEMA $schema CASCADE"
