#!/usr/bin/env bash
# Builds the four Lambda functions for arm64 (provided.al2023) with cargo-lambda and zig, and
# zips each bootstrap. Needs `cargo lambda` on PATH (pip install cargo-lambda ziglang).
set -euo pipefail
cd "$(dirname "$0")/.."
FUNCTIONS=(intake discovery removal verification)
args=()
for f in "${FUNCTIONS[@]}"; do args+=(--bin "revoke365-$f"); done
cargo lambda build --release --arm64 --output-format zip "${args[@]}"
for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/revoke365-$f/bootstrap.zip"
  [ -s "$zip" ] || { echo "package: $zip missing" >&2; exit 1; }
  echo "revoke365-$f: $(stat -c %s "$zip") bytes zipped"
done
