#!/usr/bin/env bash
# Instructions instead of time: runs `cdk-harden apply` once under valgrind's callgrind on a
# generated CDK Pipelines assembly (and the baseline program on a copy of the same), and prints
# how many instructions each ran, on every thread. The counts repeat to within a twentieth of a
# percent from run to run, so two builds can be compared where timing them cannot see a change
# of a few percent. Under valgrind, SHA-256 runs its software path (about 200M instructions at
# 100 stages); natively it uses the CPU's SHA instructions. Each run leaves its profile in
# target/bench/callgrind.NAME.out for `callgrind_annotate`.
#
# Usage: scripts/count.sh [--stages N] [BINARY...]
#   --stages N  the assembly's size (default 100)
#   BINARY      cdk-harden builds to count (default: a release build of this checkout)
# Needs valgrind (Debian: `apt-get install valgrind`).
set -euo pipefail
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$repo"
stages=100
if [[ "${1:-}" == "--stages" ]]; then
  stages="$2"
  shift 2
fi
command -v valgrind >/dev/null || { echo "count.sh: valgrind is not installed" >&2; exit 2; }
cargo build --release --quiet --bin cdk-harden --example bench --example baseline
binaries=("$@")
[[ ${#binaries[@]} -gt 0 ]] || binaries=(target/release/cdk-harden)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
generated="$scratch/generated"
target/release/examples/bench --generate "$stages" "$generated"

# count NAME COMMAND...: instructions of COMMAND on a fresh copy of the assembly (its last
# argument), as callgrind reports them.
count() {
  local name="$1"
  shift
  rm -rf "$scratch/cdk.out"
  cp -R "$generated" "$scratch/cdk.out"
  valgrind --tool=callgrind --callgrind-out-file="target/bench/callgrind.$name.out" \
    "$@" "$scratch/cdk.out" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

printf '%-40s %15s\n' "program ($stages stages)" instructions
printf '%-40s %15s\n' baseline "$(count baseline target/release/examples/baseline)"
for i in "${!binaries[@]}"; do
  bin="${binaries[$i]}"
  printf '%-40s %15s\n' "$bin" \
    "$(count "apply-$i" "$bin" apply --config examples/pipelines/cdk-harden.json)"
done
