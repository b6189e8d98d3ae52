#!/usr/bin/env bash
# The benchmark, in one command: builds cdk-harden, the baseline program and the driver in
# release mode, generates 100- and 1,000-stage CDK Pipelines assemblies from the example app,
# times both, and prints the ratios of the performance targets.
#
# Usage: scripts/bench.sh [--quick] [--stages 100,1000] [--runs 5] [--scratch DIR]
#   --quick    a 3-stage assembly, one run: checks that the benchmark works (used by the tests)
#   --scratch  where the measured copies go (default target/bench), e.g. a tmpfs such as /dev/shm
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
cargo build --release --quiet --bin cdk-harden --example bench --example baseline
exec target/release/examples/bench \
  --cdk-harden target/release/cdk-harden \
  --baseline target/release/examples/baseline "$@"
