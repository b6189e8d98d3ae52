#!/usr/bin/env bash
# Re-synthesizes the example CDK apps into their committed cloud assemblies
# (examples/<app>/cdk.out), which the cdk-harden tests use as fixtures.
#
# Usage: examples/synth.sh            (from any directory)
#
# Needs node and npm with access to the npm registry; needs no AWS
# credentials: the apps do no context lookups.
#
# Asset payloads bigger than 32 KiB are replaced by a one-line placeholder
# afterwards (file names and directories are kept): cdk-harden never reads
# assets, and this keeps the fixtures small. Nothing else is changed.
set -euo pipefail

EXAMPLES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
APPS=(pipelines shapes secrets)
MAX_ASSET_BYTES=32768
PLACEHOLDER='truncated by examples/synth.sh: asset payload not needed by the tests'

export CDK_DISABLE_CLI_TELEMETRY=true
export CDK_DISABLE_VERSION_CHECK=true

cd "$EXAMPLES_DIR"
npm ci --no-audit --no-fund --loglevel=error

CDK="$EXAMPLES_DIR/node_modules/.bin/cdk"

for app in "${APPS[@]}"; do
  echo "==> synthesizing $app" >&2
  rm -rf "${EXAMPLES_DIR:?}/$app/cdk.out"
  (cd "$EXAMPLES_DIR/$app" && "$CDK" synth --no-notices --quiet -o cdk.out)
  if [[ -e "$EXAMPLES_DIR/$app/cdk.context.json" ]]; then
    echo "error: $app wrote cdk.context.json; the example apps must do no context lookups" >&2
    exit 1
  fi

  # Truncate large asset payloads: any regular file that is, or is inside,
  # an asset.* entry of the assembly.
  find "$EXAMPLES_DIR/$app/cdk.out" -type f -path '*/asset.*' -size +"${MAX_ASSET_BYTES}"c -print0 |
    while IFS= read -r -d '' file; do
      printf '%s\n' "$PLACEHOLDER" >"$file"
      echo "    truncated ${file#"$EXAMPLES_DIR"/}" >&2
    done
done

echo "==> done" >&2
