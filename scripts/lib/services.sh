# shellcheck shell=bash
# Shared bootstrap for scripts/up, scripts/test and scripts/down (sourced, not run).
#
# sw_ensure_all [--rabbitmq]: python venv + Postgres + Redis (+ RabbitMQ: started with --rabbitmq,
# else only detected), then exports
#   SATWORKS_DATABASE_URL, SATWORKS_REDIS_URL            (the app)
#   SATWORKS_TEST_PG_URL, SATWORKS_TEST_REDIS_URL        (the tests)
#   SATWORKS_TEST_AMQP_URL                               (only if RabbitMQ answers)
# Variables already set by the caller are kept. Servers on the standard ports are
# used when they answer (trust auth); otherwise project-local ones are started
# from .local/ (see scripts/down). Overridable knobs:
#   SATWORKS_PYTHON                   python interpreter used to create .venv
#   SATWORKS_PG_PROBE_PORT=5432       SATWORKS_LOCAL_PG_PORT=54329
#   SATWORKS_REDIS_PROBE_PORT=6379    SATWORKS_LOCAL_REDIS_PORT=63799
#   SATWORKS_AMQP_PROBE_PORT=5672     SATWORKS_NO_RABBITMQ=1 (scripts/test: do not install/start it)

SW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SW_LOCAL=$SW_ROOT/.local
SW_VENV=$SW_ROOT/.venv
SW_HOST=127.0.0.1
SW_PG_PROBE_PORT=${SATWORKS_PG_PROBE_PORT:-5432}
SW_LOCAL_PG_PORT=${SATWORKS_LOCAL_PG_PORT:-54329}
SW_REDIS_PROBE_PORT=${SATWORKS_REDIS_PROBE_PORT:-6379}
SW_LOCAL_REDIS_PORT=${SATWORKS_LOCAL_REDIS_PORT:-63799}
SW_AMQP_PROBE_PORT=${SATWORKS_AMQP_PROBE_PORT:-5672}
SW_PG_DIR=$SW_LOCAL/pg          # data/, run/ (unix socket), log; see sw_pg_resolve_dir
SW_REDIS_DIR=$SW_LOCAL/redis    # redis.pid, redis.log
SW_APT_UPDATED=${SW_APT_UPDATED:-}

# Say which command failed when `set -e` stops a script (also inside functions).
set -E
trap 'printf "ERROR: exit %s from: %s\n" "$?" "$BASH_COMMAND" >&2' ERR

sw_log() { printf '==> %s\n' "$*" >&2; }
sw_die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# sw_port_open HOST PORT: something accepts TCP connections there.
# shellcheck disable=SC2016  # $1/$2 expand inside the child bash
sw_port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }

# sw_as_root CMD...: run as root (sudo when we are not root).
sw_as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

sw_apt_install() {
  command -v apt-get >/dev/null || sw_die "please install: $* (no apt-get here)"
  if [[ -z $SW_APT_UPDATED ]]; then
    sw_log "apt-get update"
    sw_as_root apt-get update -qq
    SW_APT_UPDATED=1
  fi
  sw_log "apt-get install $*"
  # Wait for another apt/dpkg run (other checkouts on the machine) instead of failing at once.
  sw_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "$@" >/dev/null
}

# ---------------------------------------------------------------- python / venv
sw_find_python() {
  local py
  for py in ${SATWORKS_PYTHON:-} python3 python3.13 python3.12 python3.11; do
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

sw_ensure_venv() {
  local py stamp want
  if [[ ! -x $SW_VENV/bin/python ]] || ! "$SW_VENV/bin/python" -c '' 2>/dev/null; then
    py=$(sw_find_python) || { sw_apt_install python3 python3-venv; py=$(sw_find_python); } ||
      sw_die "need python3 >= 3.11 with venv"
    sw_log "creating .venv with $py ($("$py" -V 2>&1))"
    rm -rf "$SW_VENV"
    "$py" -m venv "$SW_VENV"
  fi
  [[ -f $SW_ROOT/pyproject.toml ]] || sw_die "no pyproject.toml in $SW_ROOT"
  stamp=$SW_VENV/.satworks-install-stamp
  want=$(cat "$SW_ROOT/pyproject.toml" <("$SW_VENV/bin/python" -V 2>&1) | sha256sum | cut -d' ' -f1)
  if [[ $(cat "$stamp" 2>/dev/null) != "$want" || ! -x $SW_VENV/bin/satworks ]]; then
    # dev: tests and linters; up: honcho, which runs the Procfile (./scripts/up).
    sw_log "pip install -e '.[dev,up]' (pyproject.toml changed or first run)"
    "$SW_VENV/bin/python" -m pip install -q --disable-pip-version-check -e "${SW_ROOT}[dev,up]"
    echo "$want" >"$stamp"
  else
    sw_log "venv: up to date ($SW_VENV)"
  fi
  # An editable install leaves satworks' own modules uncompiled; with PYTHONDONTWRITEBYTECODE set, every
  # process (each worker of a pool, each test's subprocess) then compiled them again as it started. A
  # wheel is compiled when installed; this does the same (only files changed since, by their mtime).
  "$SW_VENV/bin/python" -m compileall -q "$SW_ROOT/satworks" >/dev/null ||
    sw_log "compileall: some modules did not compile (ruff and the tests will say which)"
  export VIRTUAL_ENV=$SW_VENV PATH=$SW_VENV/bin:$PATH
}

# ---------------------------------------------------------------- postgres
# sw_pg_usable PORT: a Postgres on $SW_HOST:PORT lets user postgres in without a password.
sw_pg_usable() {
  local port=$1
  sw_port_open "$SW_HOST" "$port" || return 1
  if command -v psql >/dev/null; then
    psql -h "$SW_HOST" -p "$port" -U postgres -d postgres -w -Atqc 'select 1' >/dev/null 2>&1
  elif "$SW_VENV/bin/python" -c 'import psycopg' 2>/dev/null; then
    "$SW_VENV/bin/python" -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' \
      "postgresql://postgres@$SW_HOST:$port/postgres" 2>/dev/null
  fi # neither client available: an open port will have to do
}

sw_pg_bindir() { { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null || true; } | sort -V | tail -n1; }

# Postgres refuses to run as root: when root, run its tools as the postgres OS user.
sw_pg_run() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# .local/pg may be a link to /var/tmp/satworks-pg-<hash> (see sw_start_local_pg).
sw_pg_resolve_dir() { SW_PG_DIR=$(readlink -f "$SW_LOCAL/pg" 2>/dev/null || echo "$SW_LOCAL/pg"); }

sw_start_local_pg() {
  local bin data sock real
  bin=$(sw_pg_bindir)
  if [[ -z $bin ]]; then
    # Install the server without Debian's auto-created "main" cluster on 5432 (its
    # auth is not trust); we run our own cluster below.
    sw_apt_install postgresql-common
    sw_as_root sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf
    sw_apt_install postgresql postgresql-client
    bin=$(sw_pg_bindir)
    [[ -n $bin ]] || sw_die "postgresql installed but no /usr/lib/postgresql/*/bin found"
  fi
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    # The server runs as OS user postgres, which cannot reach a repo under e.g. /root:
    # then the cluster lives in /var/tmp/satworks-pg-<hash>, linked from .local/pg.
    if [[ ! -e $SW_LOCAL/pg ]] && ! runuser -u postgres -- test -x "$SW_ROOT"; then
      real=/var/tmp/satworks-pg-$(sha256sum <<<"$SW_ROOT" | cut -c1-12)
      sw_log "postgres: user postgres cannot reach $SW_ROOT; the cluster goes to $real"
      mkdir -p "$real"
      ln -s "$real" "$SW_LOCAL/pg"
    fi
  fi
  sw_pg_resolve_dir
  sock=$SW_PG_DIR/run data=$SW_PG_DIR/data
  mkdir -p "$SW_PG_DIR" "$sock"
  if [[ $EUID -eq 0 ]]; then chown -R postgres: "$SW_PG_DIR"; fi
  chmod 700 "$SW_PG_DIR"
  if [[ ! -f $data/PG_VERSION ]]; then
    sw_log "initdb $data"
    sw_pg_run "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
    # Throwaway dev/test cluster: durability off for speed.
    {
      echo "listen_addresses = '$SW_HOST'"
      echo "port = $SW_LOCAL_PG_PORT"
      if [[ ${#sock} -lt 90 ]]; then echo "unix_socket_directories = '$sock'"; else echo "unix_socket_directories = ''"; fi
      echo "max_connections = 200"
      echo "fsync = off"
      echo "synchronous_commit = off"
      echo "full_page_writes = off"
    } | sw_pg_run tee -a "$data/postgresql.conf" >/dev/null
  fi
  if sw_pg_usable "$SW_LOCAL_PG_PORT"; then
    sw_log "postgres: project-local cluster already running ($data)"
  else
    sw_log "postgres: starting project-local cluster on $SW_HOST:$SW_LOCAL_PG_PORT ($data)"
    sw_pg_run "$bin/pg_ctl" -D "$data" -l "$SW_PG_DIR/log" -w -t 60 start >/dev/null ||
      { tail -n 20 "$SW_PG_DIR/log" >&2; sw_die "could not start postgres (log: $SW_PG_DIR/log)"; }
  fi
}

sw_ensure_postgres() {
  local port
  if [[ -n ${SATWORKS_DATABASE_URL:-} ]]; then
    sw_log "postgres: using SATWORKS_DATABASE_URL from the environment"
    # Admin URL for the tests: same server, database "postgres", plain libpq scheme.
    : "${SATWORKS_TEST_PG_URL:=$(sed -E 's#^postgresql\+[a-z0-9]+://#postgresql://#; s#^([a-z+]+://[^/?]*)(/[^?]*)?#\1/postgres#' <<<"$SATWORKS_DATABASE_URL")}"
    export SATWORKS_TEST_PG_URL
    return
  fi
  if sw_pg_usable "$SW_PG_PROBE_PORT"; then
    port=$SW_PG_PROBE_PORT
    sw_log "postgres: using the server on $SW_HOST:$port"
  else
    if sw_port_open "$SW_HOST" "$SW_PG_PROBE_PORT"; then
      sw_log "postgres: $SW_HOST:$SW_PG_PROBE_PORT answers but does not let user postgres in without a password; not using it"
    fi
    sw_start_local_pg
    port=$SW_LOCAL_PG_PORT
    sw_pg_usable "$port" || sw_die "project-local postgres on port $port does not accept connections"
  fi
  export SATWORKS_DATABASE_URL="postgresql+psycopg://postgres@$SW_HOST:$port/satworks"
  export SATWORKS_TEST_PG_URL="${SATWORKS_TEST_PG_URL:-postgresql://postgres@$SW_HOST:$port/postgres}"
}

# ---------------------------------------------------------------- redis
# sw_redis_usable PORT: answers PING with +PONG (no auth needed).
# shellcheck disable=SC2016
sw_redis_usable() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && read -r line <&3 && [[ $line == +PONG* ]]' \
    _ "$SW_HOST" "$1" 2>/dev/null
}

sw_start_local_redis() {
  mkdir -p "$SW_REDIS_DIR"
  if sw_redis_usable "$SW_LOCAL_REDIS_PORT"; then
    sw_log "redis: project-local server already running on $SW_HOST:$SW_LOCAL_REDIS_PORT"
    return
  fi
  sw_log "redis: starting project-local server on $SW_HOST:$SW_LOCAL_REDIS_PORT"
  redis-server --bind "$SW_HOST" --port "$SW_LOCAL_REDIS_PORT" --save "" --appendonly no \
    --daemonize yes --dir "$SW_REDIS_DIR" --pidfile "$SW_REDIS_DIR/redis.pid" \
    --logfile "$SW_REDIS_DIR/redis.log"
  for _ in $(seq 50); do sw_redis_usable "$SW_LOCAL_REDIS_PORT" && return; sleep 0.1; done
  tail -n 20 "$SW_REDIS_DIR/redis.log" >&2
  sw_die "could not start redis (log: $SW_REDIS_DIR/redis.log)"
}

sw_ensure_redis() {
  local port
  if [[ -n ${SATWORKS_REDIS_URL:-} ]]; then
    sw_log "redis: using SATWORKS_REDIS_URL from the environment"
    : "${SATWORKS_TEST_REDIS_URL:=$(sed -E 's#^(rediss?://[^/?]*)(/[0-9]*)?#\1/13#' <<<"$SATWORKS_REDIS_URL")}"
    export SATWORKS_TEST_REDIS_URL
    return
  fi
  # (A fresh apt install of redis-server may start the system service on 6379.)
  sw_redis_usable "$SW_REDIS_PROBE_PORT" || command -v redis-server >/dev/null || sw_apt_install redis-server
  if sw_redis_usable "$SW_REDIS_PROBE_PORT"; then
    port=$SW_REDIS_PROBE_PORT
    sw_log "redis: using the server on $SW_HOST:$port"
  else
    sw_start_local_redis
    port=$SW_LOCAL_REDIS_PORT
  fi
  export SATWORKS_REDIS_URL="redis://$SW_HOST:$port/11"
  export SATWORKS_TEST_REDIS_URL="${SATWORKS_TEST_REDIS_URL:-redis://$SW_HOST:$port/13}"
}

# ---------------------------------------------------------------- rabbitmq
# sw_amqp_usable URL: an AMQP broker at URL accepts a login (pika from .venv; an open port without it).
sw_amqp_usable() {
  if "$SW_VENV/bin/python" -c 'import pika' 2>/dev/null; then
    timeout 15 "$SW_VENV/bin/python" -c '
import sys, pika
params = pika.URLParameters(sys.argv[1])
params.socket_timeout = params.blocked_connection_timeout = 5
pika.BlockingConnection(params).close()' "$1" >/dev/null 2>&1
  else
    sw_port_open "$SW_HOST" "$SW_AMQP_PROBE_PORT"
  fi
}

# sw_rabbitmq_env: the environment the server and its tools share. Debian's default node name is
# rabbit@<short hostname>; where that name does not resolve (some containers) the node could not start.
sw_rabbitmq_env() {
  local name
  if grep -qs '^[[:space:]]*NODENAME=' /etc/rabbitmq/rabbitmq-env.conf || [[ -n ${RABBITMQ_NODENAME:-} ]]; then
    return
  fi
  name=$(hostname -s 2>/dev/null || true)
  if [[ -z $name ]] || ! getent hosts "$name" >/dev/null; then
    export RABBITMQ_NODENAME=rabbit@localhost
  fi
}

sw_start_rabbitmq() {
  local url=$1 i
  sw_rabbitmq_env
  # A node that runs but does not accept logins yet is booting (e.g. started by the package's
  # postinst): wait for it rather than start a second one.
  if sw_as_root env ${RABBITMQ_NODENAME:+RABBITMQ_NODENAME=$RABBITMQ_NODENAME} \
    timeout 20 rabbitmqctl -q status >/dev/null 2>&1; then
    sw_log "rabbitmq: node running, waiting for it to accept connections"
  else
    sw_log "rabbitmq: starting the server (rabbitmq-server -detached)"
    sw_as_root env ${RABBITMQ_NODENAME:+RABBITMQ_NODENAME=$RABBITMQ_NODENAME} rabbitmq-server -detached ||
      sw_die "rabbitmq-server -detached failed (logs: /var/log/rabbitmq/)"
  fi
  for i in $(seq 120); do
    if sw_amqp_usable "$url"; then
      sw_log "rabbitmq: up after ${i} tries"
      return
    fi
    sleep 0.5 # boot poll interval, bounded by the loop
  done
  sw_as_root sh -c 'tail -n 20 /var/log/rabbitmq/*.log' >&2 2>/dev/null || true
  sw_die "rabbitmq did not accept connections within 60 s (logs: /var/log/rabbitmq/)"
}

# sw_ensure_rabbitmq: use the RabbitMQ on $SW_AMQP_PROBE_PORT, or install and start it (Debian's
# package, guest/guest, reachable from localhost only). SATWORKS_NO_RABBITMQ=1 only detects: its
# tests then skip (and fail under CI=true).
sw_ensure_rabbitmq() {
  local url="amqp://guest:guest@$SW_HOST:$SW_AMQP_PROBE_PORT/%2F"
  if [[ -n ${SATWORKS_TEST_AMQP_URL:-} ]]; then
    sw_log "rabbitmq: using SATWORKS_TEST_AMQP_URL from the environment"
    return
  fi
  if ! sw_amqp_usable "$url"; then
    if [[ -n ${SATWORKS_NO_RABBITMQ:-} ]]; then
      sw_log "rabbitmq: not running and SATWORKS_NO_RABBITMQ set: AMQP tests will skip (fail under CI=true)"
      return
    fi
    if sw_port_open "$SW_HOST" "$SW_AMQP_PROBE_PORT" && ! command -v rabbitmqctl >/dev/null; then
      sw_die "something on $SW_HOST:$SW_AMQP_PROBE_PORT refuses guest/guest and is not a local RabbitMQ; set SATWORKS_TEST_AMQP_URL"
    fi
    command -v rabbitmq-server >/dev/null || sw_apt_install rabbitmq-server
    sw_start_rabbitmq "$url"
  else
    sw_log "rabbitmq: using the server on $SW_HOST:$SW_AMQP_PROBE_PORT"
  fi
  export SATWORKS_TEST_AMQP_URL=$url
}

# sw_detect_amqp: export SATWORKS_TEST_AMQP_URL when a RabbitMQ answers; start nothing.
sw_detect_amqp() {
  if [[ -n ${SATWORKS_TEST_AMQP_URL:-} ]]; then
    sw_log "rabbitmq: using SATWORKS_TEST_AMQP_URL from the environment"
  elif sw_port_open "$SW_HOST" "$SW_AMQP_PROBE_PORT"; then
    export SATWORKS_TEST_AMQP_URL="amqp://guest:guest@$SW_HOST:$SW_AMQP_PROBE_PORT/%2F"
    sw_log "rabbitmq: found on $SW_HOST:$SW_AMQP_PROBE_PORT"
  else
    sw_log "rabbitmq: not running (optional for the stack; ./scripts/test starts it)"
  fi
}

# ---------------------------------------------------------------- chromium (browser tests)
# The draw verification page is tested in Debian's headless Chromium through Playwright
# (which cannot download its own browser here). SATWORKS_TEST_CHROMIUM overrides the path.
sw_ensure_chromium() {
  local bin=${SATWORKS_TEST_CHROMIUM:-/usr/bin/chromium}
  mkdir -p "$SW_LOCAL"
  exec 9>"$SW_LOCAL/bootstrap.lock" # one apt-get at a time (see sw_ensure_all)
  flock 9
  if [[ -x $bin ]]; then
    sw_log "chromium: $bin"
  else
    sw_apt_install chromium
    [[ -x $bin ]] || sw_die "chromium installed but $bin is missing"
  fi
  flock -u 9
  exec 9>&-
  export SATWORKS_TEST_CHROMIUM=$bin
}

# ---------------------------------------------------------------- prometheus (promtool + server binary)
# The monitoring tests run promtool and a throwaway Prometheus server on free ports (tests/monitoring/).
# Debian's `prometheus` package brings both; installing it also enables and starts a system-wide server
# on :9090 (systemd, or sysvinit where no policy-rc.d forbids it). satworks needs only the binaries, and
# deploy/README.md runs its own server on :9090: so a server that our install started is stopped and
# disabled again. A server that was there before is left alone.
sw_ensure_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    sw_log "prometheus: $(promtool --version 2>&1 | head -n1)"
    return
  fi
  if ! command -v apt-get >/dev/null && [[ ${CI:-} != true ]]; then
    sw_log "prometheus: not installed and no apt-get; the promtool/Prometheus tests will skip"
    return
  fi
  mkdir -p "$SW_LOCAL"
  exec 9>"$SW_LOCAL/bootstrap.lock"
  flock 9
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then sw_apt_install prometheus; fi
  flock -u 9
  exec 9>&-
  command -v promtool >/dev/null || sw_die "prometheus installed but no promtool on PATH"
  if [[ -d /run/systemd/system ]]; then
    if systemctl is-active --quiet prometheus; then
      sw_log "prometheus: stopping the system service the package started (start it with: systemctl enable --now prometheus)"
      sw_as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  elif [[ -x /etc/init.d/prometheus ]] && sw_as_root /etc/init.d/prometheus status >/dev/null 2>&1; then
    sw_log "prometheus: stopping the system service the package started"
    sw_as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    sw_as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
  sw_log "prometheus: $(promtool --version 2>&1 | head -n1)"
}

# ---------------------------------------------------------------- all
# sw_ensure_all [--rabbitmq]: with --rabbitmq (scripts/test), RabbitMQ is installed/started too.
sw_ensure_all() {
  mkdir -p "$SW_LOCAL"
  # One bootstrap at a time (e.g. scripts/up and scripts/test started together).
  exec 9>"$SW_LOCAL/bootstrap.lock"
  flock 9
  sw_ensure_venv
  sw_ensure_postgres
  sw_ensure_redis
  if [[ ${1:-} == --rabbitmq ]]; then sw_ensure_rabbitmq; else sw_detect_amqp; fi
  flock -u 9
  exec 9>&-
  sw_log "SATWORKS_DATABASE_URL=$SATWORKS_DATABASE_URL"
  sw_log "SATWORKS_REDIS_URL=$SATWORKS_REDIS_URL"
}

# ---------------------------------------------------------------- stop (scripts/down)
sw_stop_local() {
  local bin pid
  sw_pg_resolve_dir
  bin=$(sw_pg_bindir)
  if [[ -n $bin && -f $SW_PG_DIR/data/postmaster.pid ]] &&
    sw_pg_run "$bin/pg_ctl" -D "$SW_PG_DIR/data" status >/dev/null 2>&1; then
    sw_log "postgres: stopping project-local cluster"
    sw_pg_run "$bin/pg_ctl" -D "$SW_PG_DIR/data" -m fast -w stop >/dev/null || true
  else
    sw_log "postgres: no project-local cluster running"
  fi
  pid=$(cat "$SW_REDIS_DIR/redis.pid" 2>/dev/null || true)
  if [[ -n $pid ]] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
    sw_log "redis: stopping project-local server (pid $pid)"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  else
    sw_log "redis: no project-local server running"
  fi
  rm -f "$SW_REDIS_DIR/redis.pid"
}
