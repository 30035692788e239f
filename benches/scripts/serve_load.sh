#!/usr/bin/env bash
# Load benchmark of `weft serve` with wrk (Debian's package: apt-get install -y wrk).
#
#   bash benches/scripts/serve_load.sh                 # 5 s per phase, 64 connections, 2 threads
#   DURATION=10s CONNS=128 bash benches/scripts/serve_load.sh
#   WEFT_BIN=path/to/weft STORES=sqlite bash benches/scripts/serve_load.sh
#   PHASES=accepted STORES="memory sqlite" bash benches/scripts/serve_load.sh   # some phases only
#   PG_URL=postgres://... STORES=postgres bash benches/scripts/serve_load.sh   # a fresh schema per phase
#
# For each store (STORES="memory sqlite": `--in-memory`, and `--db` on a fresh SQLite file with
# the default sync), three phases, each against a fresh server (2 workers, 500 ms jobs, as in
# issue #29):
#   accepted  POST /api/jobs, queue large enough never to fill (every answer should be 202)
#   rejected  POST /api/jobs, queue of 1 already full (every answer should be 503)
#   get       GET /api/jobs/{id} of one finished job
# Each line gives requests/s, p50 and p99 latency, the status-code mix, and the server's CPU
# time (and the SQLite commit thread's) and peak memory (VmHWM) for that phase, with the load average beside it: the machine may
# be shared, so compare phases of one run, not runs of different days.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
STORES=${STORES:-memory sqlite}
PHASES=${PHASES:-accepted rejected get}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 2; }
if [ -z "${WEFT_BIN:-}" ]; then
  cargo build --release -p weft-cli --bin weft >&2
fi
BIN=${WEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/weft}
DIR=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
TICK=$(getconf CLK_TCK)

# Status codes counted per wrk thread, summed at the end; latency percentiles in ms.
cat >"$DIR/report.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, k .. ":" .. v) end
  table.sort(parts)
  io.write(string.format("RESULT %.0f %.2f %.2f %s\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    table.concat(parts, ",")))
end
LUA
cat "$DIR/report.lua" >"$DIR/post.lua"
cat >>"$DIR/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"notification","priority":1,"data":{"recipients":["a@example.org"],"message":"hi","channel":"email"}}'
LUA

# start STORE QUEUE_SIZE: starts a server, sets PID and BASE.
start() {
  local store=$1 queue=$2 args=()
  if [ "$store" = memory ]; then args=(--in-memory)
  elif [ "$store" = postgres ]; then
    local schema="load_$$_$RANDOM" sep='?'
    case "${PG_URL:?PG_URL is needed for STORES=postgres}" in *\?*) sep='&';; esac
    psql -qAtX "$PG_URL" -c "CREATE SCHEMA $schema"
    args=(--db "${PG_URL}${sep}options=-c%20search_path%3D${schema}")
  else rm -f "$DIR"/jobs.db*; args=(--db "$DIR/jobs.db"); fi
  "$BIN" serve --port 0 --workers 2 --work-step 500ms --queue-size "$queue" "${args[@]}" 2>"$DIR/serve.log" &
  PID=$!
  BASE=
  for _ in $(seq 200); do
    BASE=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$DIR/serve.log")
    [ -n "$BASE" ] && break
    sleep 0.05
  done
  [ -n "$BASE" ] || { cat "$DIR/serve.log" >&2; exit 1; }
}

stop() {
  local cpu hwm commit task
  cpu=$(awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$PID/stat")
  hwm=$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$PID/status")
  # The SQLite store's commit thread ("weft-serve-commit", cut to 15 characters by the kernel):
  # its CPU per phase is the steadiest figure on a noisy machine. "-" for the other stores.
  commit=-
  for task in /proc/"$PID"/task/*; do
    case "$(cat "$task/comm" 2>/dev/null)" in
      weft-serve-comm*) commit=$(awk -v t="$TICK" '{printf "%.2f", ($14 + $15) / t}' "$task/stat") ;;
    esac
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true
  PID=
  echo "$cpu $hwm $commit"
}

# phase STORE NAME QUEUE_SIZE SCRIPT PATH [SETUP]: one wrk run against a fresh server.
phase() {
  local store=$1 name=$2 queue=$3 script=$4 path=$5 result server
  start "$store" "$queue"
  if [ -n "${6:-}" ]; then $6; fi
  result=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$script" "$BASE$path" | grep '^RESULT')
  server=$(stop)
  read -r _ rps p50 p99 codes <<<"$result"
  read -r cpu hwm commit <<<"$server"
  printf '| %-6s | %-8s | %8s | %6s ms | %6s ms | %-22s | %6s s | %6s s | %5s MiB | %s |\n' \
    "$store" "$name" "$rps" "$p50" "$p99" "$codes" "$cpu" "$commit" "$hwm" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

post() { curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/api/jobs"; }

fill_queue() {
  # Two jobs run, one waits: the queue of 1 is full for the whole phase.
  for i in 1 2 3; do
    sleep 0.2 # let a worker take the previous job, so all three are accepted
    post "{\"id\":\"fill-$i\",\"type\":\"notification\",\"data\":{\"recipients\":$(printf '["a"%.0s,' $(seq 99))\"a\"],\"message\":\"m\",\"channel\":\"sms\"}}" || true
  done
}

finished_job() {
  post '{"id":"done","type":"notification","data":{"recipients":["a"],"message":"m","channel":"sms"}}'
  for _ in $(seq 100); do
    curl -fs "$BASE/api/jobs/done" | grep -q '"completed"' && return
    sleep 0.1
  done
}

echo "wrk -t$THREADS -c$CONNS -d$DURATION; server: 2 workers, 500 ms jobs; $(nproc) CPUs"
echo '| store | phase | req/s | p50 | p99 | status codes | server CPU | commit thread CPU | peak RSS | load avg |'
echo '|---|---|---:|---:|---:|---|---:|---:|---:|---|'
wanted() { case " $PHASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for store in $STORES; do
  if wanted accepted; then phase "$store" accepted 100000000 "$DIR/post.lua" /api/jobs; fi
  # The shared queue is the table: it has no per-node room to fill.
  if wanted rejected && [ "$store" != postgres ]; then
    phase "$store" rejected 1 "$DIR/post.lua" /api/jobs fill_queue
  fi
  if wanted get; then phase "$store" get 100 "$DIR/report.lua" /api/jobs/done finished_job; fi
done
