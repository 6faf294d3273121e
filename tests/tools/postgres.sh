#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests, from Debian's
# packages: a temp data directory, run as a non-root user (initdb refuses
# root), password authentication over TCP and TLS with a CA of its own.
#
#   eval "$(bash tests/tools/postgres.sh start)"   # prints the exports below
#   cargo test --locked                            # the PostgreSQL tests run
#   bash tests/tools/postgres.sh stop
#
# `start` prints
#   export TS_PRINCIPALS_TEST_PG='postgres://tsp:…@127.0.0.1:PORT/postgres?sslmode=disable'
#   export TS_PRINCIPALS_TEST_PG_CA=DIR/ca.pem   # the CA of the server's certificate
# Set TS_PRINCIPALS_PG_DIR / TS_PRINCIPALS_PG_PORT to change where and on which port.
set -euo pipefail

dir=${TS_PRINCIPALS_PG_DIR:-${TMPDIR:-/tmp}/ts-principals-pg}
port=${TS_PRINCIPALS_PG_PORT:-54329}

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
  if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$found" ] && [ -x "$found/pg_ctl" ]; then
    echo "$found"
  fi
}

# Runs a command as the server's user: `postgres` (Debian's package creates
# it) or `nobody`, when we are root; as ourselves otherwise.
as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif id postgres >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    runuser -u nobody -- "$@"
  fi
}

owner() {
  if [ "$(id -u)" -ne 0 ]; then id -un
  elif id postgres >/dev/null 2>&1; then echo postgres
  else echo nobody
  fi
}

start() {
  local bin
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      log "installing PostgreSQL from Debian's packages"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >&2
      bin=$(find_bin)
    fi
    if [ -z "$bin" ]; then
      log "PostgreSQL is not installed (Debian: apt-get install postgresql)"
      exit 1
    fi
  fi
  stop_quietly "$bin"
  rm -rf "$dir"
  mkdir -p "$dir"
  local password
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  printf '%s\n' "$password" >"$dir/password"
  if command -v openssl >/dev/null; then
    # A CA and a server certificate for 127.0.0.1 and localhost signed by it.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ts-principals test CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >"$dir/ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 2 -extfile "$dir/ext" -out "$dir/server.crt" >/dev/null 2>&1
    chmod 600 "$dir/server.key"
  fi
  chown -R "$(owner)" "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U tsp --pwfile="$dir/password" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  local options="-h 127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off"
  if [ -f "$dir/server.crt" ]; then
    options="$options -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$options" -w -t 60 start >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
  log "$("$bin/pg_ctl" --version | sed "s/^pg_ctl //") on 127.0.0.1:$port (data in $dir)"
  echo "export TS_PRINCIPALS_TEST_PG='postgres://tsp:$password@127.0.0.1:$port/postgres?sslmode=disable'"
  if [ -f "$dir/ca.pem" ]; then
    echo "export TS_PRINCIPALS_TEST_PG_CA='$dir/ca.pem'"
  fi
}

stop_quietly() {
  local bin=$1
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
}

stop() {
  local bin
  bin=$(find_bin)
  if [ -n "$bin" ]; then
    stop_quietly "$bin"
  fi
  rm -rf "$dir"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
