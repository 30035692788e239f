#!/usr/bin/env bash
# Loopback benchmark of `weft download` against curl (issue 7), both fetching the same files
# from the same fixture server (crates/download/tests/fixture, run as the `download_fixture`
# example) in the same hyperfine run:
#   - 1,000 files of 16 KiB at 64 at a time,
#   - 4 files of 256 MiB, all at once;
# then (when aria2c is installed) one 256 MiB file from a route that paces each response to
# 20 MB/s, as mirrors and CDNs limit each connection: `weft download --split 8` against one
# connection (`--split 1`) and against `aria2c -x 8 -s 8`.
# Files are written to a tmpfs (/dev/shm) so the downloaders, not the disk, are measured.
# Prints hyperfine's tables, each tool's CPU time (user + sys, mean over the runs; on a small
# machine the client's CPU competes with the fixture server's), the load average, and how many
# connections each tool opened (counted by the fixture server).
#
# Then the same two cases as interleaved pairs (weft, curl, weft, curl...; PAIRS=N, default 12),
# which a drift in the host's speed cannot bias.
#
# Usage: benches/scripts/download.sh [RUNS_SMALL] [RUNS_BIG]    (needs hyperfine and curl)
#        ONLY=split benches/scripts/download.sh                  (only the paced 256 MiB case)
#        ONLY=cpu benches/scripts/download.sh                    (only the CPU pairs, needs perf;
#                                                                  WEFT_ARGS="--threads 1" adds flags to weft's)
#        ONLY=tls benches/scripts/download.sh                    (only 1,000 small files over TLS)
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=""
for tool in hyperfine curl sha256sum python3; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "download.sh: cannot run, missing:$missing (the comparison needs hyperfine and curl;" >&2
    echo "  on Debian: apt-get install hyperfine curl)" >&2
    exit 2
fi
RUNS_SMALL=${1:-10}
RUNS_BIG=${2:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=$(mktemp -d /dev/shm/weft-download-bench.XXXXXX)
# Copy the binaries out at once: a target directory shared with other worktrees may rebuild
# `weft` from other sources while the benchmark runs.
BIN=$WORK/bin
# PREBUILT=DIR uses `weft` and `download_fixture` already built from this tree instead.
if [ -n "${PREBUILT:-}" ]; then
    mkdir -p "$BIN" && cp "$PREBUILT/weft" "$PREBUILT/download_fixture" "$BIN/"
fi
for _ in 1 2 3; do
    [ -n "${PREBUILT:-}" ] && break
    cargo build --release -p weft-cli --bin weft -p weft-download --example download_fixture
    mkdir -p "$BIN"
    cp "$CARGO_TARGET_DIR/release/weft" "$CARGO_TARGET_DIR/release/examples/download_fixture" "$BIN/"
    "$BIN/weft" download --help >/dev/null 2>&1 && break
done
"$BIN/weft" download --help >/dev/null
"$BIN/download_fixture" >"$WORK/addr" &
FIXTURE=$!
trap 'kill $FIXTURE 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do [ -s "$WORK/addr" ] && break; sleep 0.1; done
ADDR=$(cat "$WORK/addr")
echo "fixture on $ADDR, work dir $WORK"

: >"$WORK/small.txt"
: >"$WORK/small.curl"
for i in $(seq 0 999); do
    echo "http://$ADDR/gen/16384/f$i.bin" >>"$WORK/small.txt"
    printf 'url = "http://%s/gen/16384/f%d.bin"\noutput = "%s/out/f%d.bin"\n' "$ADDR" "$i" "$WORK" "$i" >>"$WORK/small.curl"
done
: >"$WORK/big.txt"
: >"$WORK/big.curl"
for i in 0 1 2 3; do
    echo "http://$ADDR/gen/268435456/big$i.bin" >>"$WORK/big.txt"
    printf 'url = "http://%s/gen/268435456/big%d.bin"\noutput = "%s/out/big%d.bin"\n' "$ADDR" "$i" "$WORK" "$i" >>"$WORK/big.curl"
done

PREPARE="rm -rf $WORK/out && mkdir $WORK/out"

# One 256 MiB file paced to 20 MB/s per response: split against one connection and aria2c.
split_case() {
    if ! command -v aria2c >/dev/null 2>&1; then
        echo "== paced 256 MiB file: skipped (no aria2c; apt-get install aria2)"
        return
    fi
    local url="http://$ADDR/throttle/20000000/268435456/paced.bin"
    echo "load: $(uptime)"
    echo "== 1 file x 256 MiB, each connection paced to 20 MB/s"
    hyperfine --runs 1 --prepare "$PREPARE" --export-json "$WORK/one.json" \
        -n "weft download --split 1" "$BIN/weft download $url -o $WORK/out --split 1 --no-progress >/dev/null"
    hyperfine --runs "${RUNS_SPLIT:-3}" --prepare "$PREPARE" --export-markdown "$WORK/split.md" --export-json "$WORK/split.json" \
        -n "weft download --split 8" "$BIN/weft download $url -o $WORK/out --split 8 --per-host 8 --no-progress >/dev/null" \
        -n "aria2c -x 8 -s 8" "aria2c -x 8 -s 8 -q --file-allocation=none -d $WORK/out -o paced.bin $url"
    cat "$WORK/split.md"
    python3 - "$WORK/one.json" "$WORK/split.json" <<'PY'
import json, sys
one = json.load(open(sys.argv[1]))["results"][0]
w, a = json.load(open(sys.argv[2]))["results"]
cpu = lambda r: (r["user"] + r["system"]) * 1000
print(f"  one connection {one['mean']:.2f} s (cpu {cpu(one):.0f} ms); split 8 {w['mean']:.2f} s "
      f"(cpu {cpu(w):.0f} ms); aria2c {a['mean']:.2f} s (cpu {cpu(a):.0f} ms)")
print(f"  one / split 8: {one['mean'] / w['mean']:.2f}x; split 8 / aria2c: wall {w['mean'] / a['mean']:.2f}, "
      f"cpu {cpu(w) / cpu(a):.2f}")
PY
    rm -rf "$WORK/out" && mkdir "$WORK/out"
    "$BIN/weft" download "$url" -o "$WORK/out" --split 8 --per-host 8 --no-progress >/dev/null
    weft_sum=$(sha256sum <"$WORK/out/paced.bin")
    rm -rf "$WORK/out" && mkdir "$WORK/out"
    curl -s "http://$ADDR/gen/268435456/x" -o "$WORK/out/whole.bin"
    [ "$weft_sum" = "$(sha256sum <"$WORK/out/whole.bin")" ] && echo "check: split file identical" \
        || { echo "check FAILED: split file differs"; exit 1; }
    echo "load: $(uptime)"
}
# CPU time per byte against curl (needs perf): one 256 MiB file over one connection, and the
# 4 x 256 MiB case, as interleaved pairs (weft, curl, weft, curl...; CPU_PAIRS=N, default 9),
# each process measured by `perf stat` (task-clock, page faults, context switches).
cpu_case() {
    if ! command -v perf >/dev/null 2>&1; then
        echo "== CPU pairs: skipped (no perf; apt-get install linux-perf)"
        return
    fi
    local one="http://$ADDR/gen/268435456/one.bin"
    measure() { # prints "task-clock-ms page-faults context-switches"
        rm -rf "$WORK/out" && mkdir "$WORK/out"
        perf stat -x, -e task-clock,page-faults,context-switches -o "$WORK/perf.txt" "$@" >/dev/null 2>&1
        awk -F, '/task-clock/{t=$1} /page-faults/{f=$1} /context-switches/{c=$1} END{printf "%.0f %d %d", t, f, c}' "$WORK/perf.txt"
    }
    echo "load: $(uptime)"
    for case in one four; do
        local w="" c=""
        for _ in $(seq "${CPU_PAIRS:-9}"); do
            if [ "$case" = one ]; then
                w="$w|$(measure "$BIN/weft" download "$one" -o "$WORK/out" --split 1 --no-progress ${WEFT_ARGS:-})"
                c="$c|$(measure curl -s "$one" -o "$WORK/out/one.bin")"
            else
                w="$w|$(measure "$BIN/weft" download -i "$WORK/big.txt" -o "$WORK/out" -j 4 --per-host 4 --split 1 --no-progress ${WEFT_ARGS:-})"
                c="$c|$(measure curl --parallel --parallel-max 4 -s -K "$WORK/big.curl")"
            fi
        done
        python3 - "$case" "$w" "$c" <<'PY'
import statistics as s, sys
case, w, c = sys.argv[1], *[[list(map(float, x.split())) for x in a.split("|") if x] for a in sys.argv[2:4]]
med = lambda rs, i: s.median(r[i] for r in rs)
name = "1 x 256 MiB, one connection" if case == "one" else "4 x 256 MiB, -j 4 --split 1"
print(f"== {name}, {len(w)} interleaved pairs (perf stat)")
for tool, rs in (("weft", w), ("curl", c)):
    print(f"  {tool}: cpu median {med(rs, 0):.0f} ms {[int(r[0]) for r in rs]}, "
          f"page faults {med(rs, 1):.0f}, context switches {med(rs, 2):.0f}")
print(f"  weft / curl cpu {med(w, 0) / med(c, 0):.2f}; weft lower in {sum(a[0] < b[0] for a, b in zip(w, c))}/{len(w)} pairs")
PY
    done
    echo "load: $(uptime)"
}
# 1,000 x 16 KiB over TLS from a second fixture (`download_fixture --tls`, ALPN h2 and
# http/1.1): weft over HTTP/2 (one connection) and with --http1.1, against curl with and
# without HTTP/2 (curl multiplexes its parallel transfers over h2 by default).
tls_case() {
    "$BIN/download_fixture" --tls "$WORK/ca.pem" >"$WORK/tls_addr" &
    TLS_FIXTURE=$!
    for _ in $(seq 100); do [ -s "$WORK/tls_addr" ] && break; sleep 0.1; done
    local tls_addr
    tls_addr=$(cat "$WORK/tls_addr")
    : >"$WORK/tls.txt"
    : >"$WORK/tls.curl"
    for i in $(seq 0 999); do
        echo "https://$tls_addr/gen/16384/t$i.bin" >>"$WORK/tls.txt"
        printf 'url = "https://%s/gen/16384/t%d.bin"\noutput = "%s/out/t%d.bin"\n' "$tls_addr" "$i" "$WORK" "$i" >>"$WORK/tls.curl"
    done
    echo "load: $(uptime)"
    echo "== 1,000 files x 16 KiB over TLS, 64 at a time"
    hyperfine --warmup 1 --runs "${RUNS_TLS:-10}" --prepare "$PREPARE" --export-markdown "$WORK/tls.md" --export-json "$WORK/tls.json" \
        -n "weft download (h2)" "$BIN/weft download -i $WORK/tls.txt -o $WORK/out -j 64 --per-host 64 --cacert $WORK/ca.pem --no-progress >/dev/null" \
        -n "curl --parallel (h2)" "curl --parallel --parallel-max 64 -s --cacert $WORK/ca.pem -K $WORK/tls.curl" \
        -n "weft download --http1.1" "$BIN/weft download -i $WORK/tls.txt -o $WORK/out -j 64 --per-host 64 --cacert $WORK/ca.pem --http1.1 --no-progress >/dev/null" \
        -n "curl --parallel --http1.1" "curl --parallel --parallel-max 64 -s --http1.1 --cacert $WORK/ca.pem -K $WORK/tls.curl"
    cat "$WORK/tls.md"
    python3 - "$WORK/tls.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"  {r['command']:<26} wall {r['mean']*1000:8.1f} ms (min {r['min']*1000:.1f})  cpu {(r['user'] + r['system'])*1000:8.1f} ms")
PY
    tls_connections() {
        local before after
        rm -rf "$WORK/out" && mkdir "$WORK/out"
        before=$(curl -s --cacert "$WORK/ca.pem" "https://$tls_addr/stats/connections")
        eval "$1" >/dev/null 2>&1
        after=$(curl -s --cacert "$WORK/ca.pem" "https://$tls_addr/stats/connections")
        echo $((after - before - 1))
    }
    echo "connections: weft h2 $(tls_connections "$BIN/weft download -i $WORK/tls.txt -o $WORK/out -j 64 --per-host 64 --cacert $WORK/ca.pem --no-progress"), " \
        "weft --http1.1 $(tls_connections "$BIN/weft download -i $WORK/tls.txt -o $WORK/out -j 64 --per-host 64 --cacert $WORK/ca.pem --http1.1 --no-progress"), " \
        "curl h2 $(tls_connections "curl --parallel --parallel-max 64 -s --cacert $WORK/ca.pem -K $WORK/tls.curl"), " \
        "curl --http1.1 $(tls_connections "curl --parallel --parallel-max 64 -s --http1.1 --cacert $WORK/ca.pem -K $WORK/tls.curl")"
    echo "load: $(uptime)"
    kill "$TLS_FIXTURE" 2>/dev/null
}
if [ "${ONLY:-}" = split ]; then
    split_case
    exit 0
fi
if [ "${ONLY:-}" = tls ]; then
    tls_case
    exit 0
fi
if [ "${ONLY:-}" = cpu ]; then
    cpu_case
    exit 0
fi
# Mean wall and CPU (user + sys) time per command of a hyperfine JSON export, and weft / curl.
summary() {
    python3 - "$1" <<'PY'
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
for r in rs:
    print(f"  {r['command']:<24} wall {r['mean']*1000:8.1f} ms (min {r['min']*1000:.1f})  "
          f"cpu {(r['user'] + r['system'])*1000:8.1f} ms")
w, c = rs[0], rs[1]
print(f"  weft / curl: wall {w['mean']/c['mean']:.2f}, cpu {(w['user']+w['system'])/(c['user']+c['system']):.2f}")
PY
}
# Connections each tool opens for a list, counted by the fixture server.
connections() {
    local before after
    rm -rf "$WORK/out" && mkdir "$WORK/out"
    before=$(curl -s "http://$ADDR/stats/connections")
    eval "$1" >/dev/null 2>&1
    after=$(curl -s "http://$ADDR/stats/connections")
    # The second stats request is a connection of its own.
    echo $((after - before - 1))
}
echo "load: $(uptime)"
echo "== 1,000 files x 16 KiB, 64 at a time"
hyperfine --warmup 1 --runs "$RUNS_SMALL" --prepare "$PREPARE" --export-markdown "$WORK/small.md" --export-json "$WORK/small.json" \
    -n "weft download -j 64" "$BIN/weft download -i $WORK/small.txt -o $WORK/out -j 64 --per-host 64 --no-progress >/dev/null" \
    -n "curl --parallel-max 64" "curl --parallel --parallel-max 64 -s -K $WORK/small.curl"
echo "== 4 files x 256 MiB, all at once"
hyperfine --warmup 1 --runs "$RUNS_BIG" --prepare "$PREPARE" --export-markdown "$WORK/big.md" --export-json "$WORK/big.json" \
    -n "weft download -j 4" "$BIN/weft download -i $WORK/big.txt -o $WORK/out -j 4 --per-host 4 --no-progress >/dev/null" \
    -n "curl --parallel-max 4" "curl --parallel --parallel-max 4 -s -K $WORK/big.curl"
cat "$WORK/small.md" "$WORK/big.md"
echo "small:"; summary "$WORK/small.json"
echo "big:"; summary "$WORK/big.json"
echo "load: $(uptime)"
WEFT_SMALL="$BIN/weft download -i $WORK/small.txt -o $WORK/out -j 64 --per-host 64 --no-progress"
CURL_SMALL="curl --parallel --parallel-max 64 -s -K $WORK/small.curl"
echo "connections for the 1,000 files: weft $(connections "$WEFT_SMALL"), curl $(connections "$CURL_SMALL")"

# Interleaved pairs (PAIRS=N, default 12): weft then curl, N times, so a drift in the host's
# speed hits both tools alike (hyperfine above runs all of one tool's runs, then the other's).
PAIRS=${PAIRS:-12}
pair_ms() {
    rm -rf "$WORK/out" && mkdir "$WORK/out"
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}
for size in small big; do
    jobs=64
    [ "$size" = big ] && jobs=4
    w=""
    c=""
    for _ in $(seq "$PAIRS"); do
        w="$w $(pair_ms "$BIN/weft" download -i "$WORK/$size.txt" -o "$WORK/out" -j $jobs --per-host $jobs --no-progress)"
        c="$c $(pair_ms curl --parallel --parallel-max $jobs -s -K "$WORK/$size.curl")"
    done
    python3 - "$size" "$w" "$c" <<'PY'
import statistics as s, sys
size, w, c = sys.argv[1], [int(x) for x in sys.argv[2].split()], [int(x) for x in sys.argv[3].split()]
print(f"{size}, {len(w)} interleaved pairs: median weft {s.median(w):.0f} ms, curl {s.median(c):.0f} ms, "
      f"weft/curl {s.median(w) / s.median(c):.2f}; weft faster in {sum(a < b for a, b in zip(w, c))}/{len(w)} pairs")
PY
done
echo "load: $(uptime)"

# Both tools must have produced the same, complete files.
rm -rf "$WORK/out" && mkdir "$WORK/out"
"$BIN/weft" download -i "$WORK/big.txt" -o "$WORK/out" -j 4 --per-host 4 --no-progress >/dev/null
weft_sum=$(cat "$WORK/out"/big*.bin | sha256sum)
rm -rf "$WORK/out" && mkdir "$WORK/out"
curl --parallel --parallel-max 4 -s -K "$WORK/big.curl"
curl_sum=$(cat "$WORK/out"/big*.bin | sha256sum)
[ "$weft_sum" = "$curl_sum" ] && echo "check: weft and curl files are identical" || { echo "check FAILED: files differ"; exit 1; }

split_case
