#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the external validators (cfn-lint and
# checkov, pinned, into target/validators), then every Rust test (unit, integration, property,
# CLI, doc tests) and the benchmark in its quick "does it work" mode.
#
# Usage: scripts/test.sh [extra arguments for the test runner]
set -euo pipefail

repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"

CDK_HARDEN_VALIDATORS="$(scripts/install-validators.sh)"
export CDK_HARDEN_VALIDATORS

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
cargo test --doc --quiet

if [ -x scripts/bench.sh ]; then
  scripts/bench.sh --quick
fi
