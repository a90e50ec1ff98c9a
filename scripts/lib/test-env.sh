# Sourced by scripts/test and scripts/stress-test: installs what the tests need when it is
# missing (SIPp, baresip, sox, sqlite3, Chromium, puppeteer-core, PostgreSQL, cargo-nextest), starts a throwaway PostgreSQL in a temporary
# directory on a free loopback port, exports DIALBRIDGE_TEST_POSTGRES_URL, and removes it all on
# exit. Leaves `$work` (that temporary directory) and `log` for the caller.

log() { printf '\n== %s\n' "$*"; }

apt_updated=0
need_package() { # need_package COMMAND PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -e "$1" ]; then
    if [ "$apt_updated" = 0 ]; then
      log "apt-get update"
      apt-get update -qq
      apt_updated=1
    fi
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}

need_package sipp sip-tester
need_package baresip baresip-core
# The recording tests' independent reader of the WAV files.
need_package soxi sox
# The recording retention test ages a recording in the database.
need_package sqlite3 sqlite3
# The server tests stop `serve` with kill(1).
need_package kill procps
# The toolbar's tests: Debian's Chromium driven by puppeteer-core (npm, into the tests' own
# folder), with CJK fonts so its screenshots show the labels.
need_package chromium chromium
need_package /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc fonts-noto-cjk
need_package node nodejs
need_package npm npm
browser_tests=crates/dialbridge/tests/browser
if [ ! -f "$browser_tests/node_modules/puppeteer-core/package.json" ]; then
  log "installing puppeteer-core (npm ci in $browser_tests)"
  (cd "$browser_tests" && npm ci --no-audit --no-fund --loglevel=error)
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  need_package /nonexistent/initdb postgresql
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

work=$(mktemp -d)
test_env_cleanup() {
  if [ -f "$work/pg/postmaster.pid" ]; then
    run_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap test_env_cleanup EXIT
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$work"
  run_pg() { runuser -u postgres -- "$@"; }
else
  run_pg() { "$@"; }
fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log "starting a throwaway PostgreSQL on 127.0.0.1:$pg_port"
run_pg "$pg_bin/initdb" -D "$work/pg" -U dialbridge --auth=trust >/dev/null
run_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work -c fsync=off" start >/dev/null

# A fresh, empty database for each run of the suite (the portability test migrates from zero).
fresh_postgres_database() { # fresh_postgres_database NAME
  run_pg "$pg_bin/dropdb" --if-exists -h 127.0.0.1 -p "$pg_port" -U dialbridge "$1"
  run_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U dialbridge "$1"
  export DIALBRIDGE_TEST_POSTGRES_URL="postgres://dialbridge@127.0.0.1:$pg_port/$1"
}
