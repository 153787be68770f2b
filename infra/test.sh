#!/usr/bin/env bash
# The project's test command (README, .ci/run): builds the workspace once and runs every test.
# Client, step and CLI tests talk real HTTP to the tenant simulator on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
