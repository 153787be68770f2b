#!/usr/bin/env bash
# The project's test command (README, .ci/run). Starts LocalStack (SQS, Secrets Manager,
# EventBridge) and DynamoDB Local on loopback, runs every test of the workspace in one cargo
# build, and stops the emulators again. Client, step and CLI tests talk real HTTP to the tenant
# simulator; the serverless tests use the real AWS SDK clients against the emulators.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'infra/local-aws.sh stop' EXIT
# An assignment fails under set -e when start fails; eval "$(...)" alone would not.
aws_env=$(infra/local-aws.sh start)
eval "$aws_env"
cargo test --workspace "$@"
