#!/usr/bin/env bash
# Load benchmark of `weft serve` with wrk (Debian's package): submitting jobs, and polling them.
#
#   bash benches/scripts/serve_load.sh            # 10 s per phase, 64 connections, 2 threads
#   DURATION=30s CONNS=128 bash benches/scripts/serve_load.sh
#
# Builds the release binary, starts it on 127.0.0.1 with a fresh SQLite database, runs
#   1. POST /api/jobs (notification jobs, fast simulated work, queue large enough not to fill)
#   2. GET /api/jobs/{id} on the jobs just submitted
# and prints requests/s and latency percentiles (wrk --latency).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-18080}
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk" >&2; exit 2; }
# WEFT_BIN=path/to/weft skips the build (e.g. a binary copied out of a shared target dir).
if [ -z "${WEFT_BIN:-}" ]; then
  cargo build --release -p weft-apps --bin weft >&2
fi
BIN=${WEFT_BIN:-${CARGO_TARGET_DIR:-target}/release/weft}
DIR=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
"$BIN" serve --port "$PORT" --db "$DIR/jobs.db" --work-step 1ms --queue-size 1000000 --workers 2 2>"$DIR/serve.log" &
PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

cat >"$DIR/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"notification","priority":1,"data":{"recipients":["a@example.org"],"message":"hi","channel":"email"}}'
LUA
cat >"$DIR/get.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/jobs/poll-" .. (n % 1000))
end
LUA

echo "== POST /api/jobs ($DURATION, $CONNS connections)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$DIR/post.lua" "http://127.0.0.1:$PORT/api/jobs"

for i in $(seq 0 999); do
  curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d "{\"id\":\"poll-$i\",\"type\":\"notification\",\"data\":{\"recipients\":[\"a\"],\"message\":\"m\",\"channel\":\"sms\"}}" \
    "http://127.0.0.1:$PORT/api/jobs"
done
echo "== GET /api/jobs/{id} ($DURATION, $CONNS connections)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$DIR/get.lua" "http://127.0.0.1:$PORT"
curl -fs "http://127.0.0.1:$PORT/metrics" | grep -E '^weft_(jobs_accepted_total|pool_jobs_total\{outcome="completed"\})'
