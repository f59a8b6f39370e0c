#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the multi-worker study test.
#
#   eval "$(.ci/postgres.sh)"      # or: . .ci/postgres.sh
#
# Installs Debian's postgresql when no server binaries are found, initialises
# a cluster in $HARNESS_PG_DIR (default /tmp/harness-pg) owned by the postgres
# user (PostgreSQL refuses to run as root), starts it on $HARNESS_PG_PORT
# (default 55432) with trust authentication on localhost only, creates the
# database harness_test, and prints
#     export HARNESS_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/harness_test
# on stdout (everything else goes to stderr). Running it again reuses a
# server that is already up. Stop it with: pg_ctl -D "$HARNESS_PG_DIR" stop
set -euo pipefail

PG_DIR=${HARNESS_PG_DIR:-/tmp/harness-pg}
PG_PORT=${HARNESS_PG_PORT:-55432}
PG_DB=harness_test

say() { echo "postgres.sh: $*" >&2; }

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
    say "installing Debian's postgresql"
    if [ "$(id -u)" != 0 ]; then
        say "not root: install postgresql yourself (sudo apt-get install postgresql)"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
BIN=$(pg_bin)

# As root, run the server as the postgres user; otherwise as ourselves.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
    as_pg() { runuser -u postgres -- "$@"; }
    SUPERUSER=postgres
else
    as_pg() { "$@"; }
    SUPERUSER=$(id -un)
fi

if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        say "initialising a cluster in $PG_DIR"
        mkdir -p "$PG_DIR"
        [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
        chmod 700 "$PG_DIR"
        as_pg "$BIN/initdb" -D "$PG_DIR" -U "$SUPERUSER" -A trust -E UTF8 >/dev/null
    fi
    say "starting the server on 127.0.0.1:$PG_PORT"
    as_pg "$BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=100" start >&2
fi

if ! as_pg "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$SUPERUSER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
    as_pg "$BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$SUPERUSER" "$PG_DB"
fi

HARNESS_TEST_POSTGRES_URL="postgresql://$SUPERUSER@127.0.0.1:$PG_PORT/$PG_DB"
export HARNESS_TEST_POSTGRES_URL
say "ready: $HARNESS_TEST_POSTGRES_URL"
echo "export HARNESS_TEST_POSTGRES_URL=$HARNESS_TEST_POSTGRES_URL"
