#!/usr/bin/env bash
# Drain benchmark of `weft serve` on PostgreSQL: JOBS no-op jobs already queued, drained by 1, 2
# and 3 nodes on one database.
#
#   source .ci/services.sh && start_postgres        # or PG_URL=postgres://... of your own
#   bash benches/scripts/serve_pg_drain.sh           # 100k jobs, nodes 1 2 3, 8 workers each
#   JOBS=20000 NODES="1 3" WORKERS=4 bash benches/scripts/serve_pg_drain.sh
#   APALIS=1 bash benches/scripts/serve_pg_drain.sh  # then apalis-postgres on the same cluster
#
# Each run gets a fresh schema; the jobs are inserted with one INSERT ... generate_series (the
# HTTP path is serve_load.sh's business), then the nodes start and the clock runs until every
# job is completed. A job is a data_analysis of one page with --work-step 0ms: a no-op, so the
# figure is the queue's own cost (claim, hand-off to the pool, fenced completion, group commit).
# Printed per run: jobs/s, wall time, the nodes' CPU time and PostgreSQL's (the postmaster's
# children, so a cluster of its own is best), both per job, and the load average: the machine
# may be shared, so compare the rows of one run.
#
# APALIS=1 adds, after weft's rows, the same drain with apalis-postgres (benches/apalis-compare,
# a crate outside the workspace): for each count of nodes, a fresh database on the same cluster,
# JOBS jobs queued through apalis' own push, then that many `apalis-compare work` processes with
# WORKERS jobs in flight each (apalis' concurrency layer), timed until every job is `Done`.
# APALIS_BATCH sets apalis' fetch batch (its default is 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
URL=${PG_URL:-${WEFT_TEST_PG_URL:?set PG_URL or WEFT_TEST_PG_URL (source .ci/services.sh && start_postgres)}}
JOBS=${JOBS:-100000}
NODES=${NODES:-1 2 3}
WORKERS=${WORKERS:-8}
command -v psql >/dev/null || PATH="$PATH:$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
if [ -z "${WEFT_BIN:-}" ]; then
  cargo build --release -p weft-cli --bin weft >&2
fi
BIN=${WEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/weft}
if [ -n "${APALIS:-}" ] && [ -z "${APALIS_BIN:-}" ]; then
  (cd benches/apalis-compare && cargo build --release >&2)
fi
APALIS_BIN=${APALIS_BIN:-benches/apalis-compare/target/release/apalis-compare}
TICK=$(getconf CLK_TCK)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

q() { PGOPTIONS="-c client_min_messages=warning" psql -qAtX "$1" -c "$2"; }
# CPU ticks (user + system) of the given pids.
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | awk '{s += $1} END {print s + 0}'; }
# The postmaster serving URL, and its children (backends, walwriter, ...).
PM=$(head -1 "$(q "$URL" "SHOW data_directory")/postmaster.pid" 2>/dev/null || true)
pg_ticks() { [ -n "$PM" ] && ticks $(pgrep -P "$PM") || echo 0; }

printf "%-8s %-6s %8s %9s %10s %12s %12s %s\n" queue nodes jobs jobs/s wall_s node_cpu_us pg_cpu_us load
# One row: queue nodes start end node_ticks pg_ticks.
row() {
  awk -v who="$1" -v n="$2" -v jobs="$JOBS" -v s="$3" -v e="$4" -v nc="$5" -v pc="$6" \
      -v tick="$TICK" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
    wall = e - s
    printf "%-8s %-6d %8d %9.0f %10.2f %12.1f %12.1f %s\n", who, n, jobs, jobs / wall, wall,
      nc / tick * 1e6 / jobs, pc / tick * 1e6 / jobs, load
  }'
}
for n in $NODES; do
  schema="drain_${n}_$$"
  q "$URL" "CREATE SCHEMA $schema"
  sep='?'; case "$URL" in *\?*) sep='&';; esac
  SURL="${URL}${sep}options=-c%20search_path%3D${schema}"
  # One node creates the schema, then goes away before the jobs exist.
  "$BIN" serve --port 0 --db "$SURL" >/dev/null 2>&1 & p=$!
  for _ in $(seq 100); do
    [ "$(q "$SURL" "SELECT count(*) FROM pg_tables WHERE schemaname = '$schema' AND tablename = 'weft_jobs'")" = 1 ] && break
    sleep 0.1
  done
  kill "$p"; wait "$p" 2>/dev/null || true
  q "$SURL" "INSERT INTO weft_jobs (id, type, priority, eff_priority, data, status, created_at)
             SELECT 'd' || i, 'data_analysis', i % 3, i % 3,
                    '{\"dataset\":\"d\",\"query\":\"q\",\"rows\":1}', 'queued',
                    (extract(epoch from clock_timestamp()) * 1000)::bigint
             FROM generate_series(1, $JOBS) AS i"
  pg0=$(pg_ticks)
  start=$(date +%s.%N)
  PIDS=()
  for _ in $(seq "$n"); do
    "$BIN" serve --port 0 --db "$SURL" --workers "$WORKERS" --work-step 0ms >/dev/null 2>&1 &
    PIDS+=($!)
  done
  while [ "$(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE status = 'completed'")" != "$JOBS" ]; do
    sleep 0.1
  done
  end=$(date +%s.%N)
  node_cpu=$(ticks "${PIDS[@]}")
  pg_cpu=$(( $(pg_ticks) - pg0 ))
  for p in "${PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  PIDS=()
  dup=$(q "$SURL" "SELECT count(*) FROM weft_jobs WHERE attempts <> 1")
  [ "$dup" = 0 ] || echo "WARNING: $dup jobs were claimed more than once" >&2
  row weft "$n" "$start" "$end" "$node_cpu" "$pg_cpu"
  q "$URL" "DROP SCHEMA $schema CASCADE"
done

[ -n "${APALIS:-}" ] || exit 0
for n in $NODES; do
  db="apalis_drain_${n}_$$"
  q "$URL" "CREATE DATABASE $db"
  # The URL with its database replaced (postgres://user@host:port/DB?params).
  AURL=$(echo "$URL" | sed -E "s#^(postgres(ql)?://[^/]*/)[^?]*#\\1$db#")
  "$APALIS_BIN" prepare "$AURL" "$JOBS"
  pg0=$(pg_ticks)
  start=$(date +%s.%N)
  PIDS=()
  for _ in $(seq "$n"); do
    "$APALIS_BIN" work "$AURL" "$WORKERS" >/dev/null 2>&1 &
    PIDS+=($!)
  done
  while [ "$(q "$AURL" "SELECT count(*) FROM apalis.jobs WHERE status = 'Done'")" != "$JOBS" ]; do
    sleep 0.1
  done
  end=$(date +%s.%N)
  node_cpu=$(ticks "${PIDS[@]}")
  pg_cpu=$(( $(pg_ticks) - pg0 ))
  for p in "${PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
  PIDS=()
  dup=$(q "$AURL" "SELECT count(*) FROM apalis.jobs WHERE attempts > 1")
  [ "$dup" = 0 ] || echo "WARNING: apalis ran $dup jobs more than once" >&2
  row apalis "$n" "$start" "$end" "$node_cpu" "$pg_cpu"
  q "$URL" "DROP DATABASE $db"
done
