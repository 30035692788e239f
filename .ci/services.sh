#!/usr/bin/env bash
# Real services for the test suite, sourced by .ci/run (or by hand: `source .ci/services.sh`).
#
# - PostgreSQL: installs Debian's `postgresql` when missing, starts a throwaway cluster as the
#   `postgres` user on a free loopback port in a temporary directory, exports WEFT_TEST_PG_URL,
#   and stops and removes it when the sourcing shell exits.
# - Chromium: installs Debian's `chromium` when missing and exports WEFT_TEST_CHROMIUM.
#
# WEFT_TEST_REQUIRE_SERVICES=1 tells the tests that skipping is a failure (CI sets it); locally a
# test without its service prints a loud "SKIPPED" line instead.

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "services: need root to apt-get install $*; install it or export the URL yourself" >&2
        return 1
    fi
    if [ -z "${WEFT_APT_UPDATED:-}" ]; then
        apt-get update -qq
        WEFT_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

start_postgres() {
    if [ -n "${WEFT_TEST_PG_URL:-}" ]; then
        echo "services: using WEFT_TEST_PG_URL from the environment"
        return 0
    fi
    if [ -z "$(pg_bin_dir)" ] || [ ! -x "$(pg_bin_dir)/initdb" ]; then
        apt_install postgresql
    fi
    local bin port dir
    bin="$(pg_bin_dir)"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    dir="$(mktemp -d /tmp/weft-pg.XXXXXX)"
    chown postgres:postgres "$dir"
    WEFT_PG_DIR="$dir"
    WEFT_PG_BIN="$bin"
    su postgres -s /bin/sh -c "'$bin/initdb' -D '$dir/data' -A trust -U postgres --no-sync -E UTF8" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; return 1; }
    # fsync off: a throwaway cluster for tests; max_connections sized for several nodes under test.
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -o \"-p $port -k '$dir' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300\" start" >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    export WEFT_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
    trap stop_services EXIT
    echo "services: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $WEFT_TEST_PG_URL"
}

stop_services() {
    if [ -n "${WEFT_PG_DIR:-}" ] && [ -d "$WEFT_PG_DIR/data" ]; then
        su postgres -s /bin/sh -c "'$WEFT_PG_BIN/pg_ctl' -D '$WEFT_PG_DIR/data' -m immediate -w stop" >/dev/null 2>&1 || true
        rm -rf "$WEFT_PG_DIR"
    fi
}

find_chromium() {
    command -v chromium || command -v chromium-browser || command -v google-chrome || true
}

setup_chromium() {
    if [ -n "${WEFT_TEST_CHROMIUM:-}" ]; then
        return 0
    fi
    if [ -z "$(find_chromium)" ]; then
        apt_install chromium fonts-dejavu-core
    fi
    WEFT_TEST_CHROMIUM="$(find_chromium)"
    export WEFT_TEST_CHROMIUM
    echo "services: Chromium at $WEFT_TEST_CHROMIUM"
}
