#!/usr/bin/env bash
# Install the external template validators (cfn-lint and checkov) into a
# Python virtual environment at <repo>/target/validators.
#
# Usage: scripts/install-validators.sh [--force]
#
#   --force   rebuild the virtual environment even if it is up to date
#
# Environment:
#   PYTHON    interpreter used to create the venv (default: python3, >= 3.10)
#
# Both tools are pinned to exact versions and share one venv (they install
# together without dependency conflicts on Python 3.10+). A stamp file records
# the pinned versions, the interpreter version and the venv location; when it
# matches, pip is not run at all, so a repeated call is a fast no-op.
#
# Progress messages go to stderr. The last (and only) line on stdout is the
# venv's bin directory, so callers can do:
#   VALIDATORS_BIN="$(scripts/install-validators.sh)"
#   "$VALIDATORS_BIN/cfn-lint" --version
#   "$VALIDATORS_BIN/checkov" --version

set -euo pipefail

CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
VENV_DIR="$REPO_ROOT/target/validators"
BIN_DIR="$VENV_DIR/bin"
STAMP_FILE="$VENV_DIR/.cdk-harden-validators.stamp"
LOCK_FILE="$REPO_ROOT/target/.validators.lock"
PYTHON="${PYTHON:-python3}"

log() { printf 'install-validators: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; set PYTHON to a Python >= 3.10 interpreter"
py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
case "$py_version" in
    2.*|3.[0-9].*) die "Python >= 3.10 is required (cfn-lint $CFN_LINT_VERSION), found $py_version" ;;
esac

expected_stamp="cfn-lint==$CFN_LINT_VERSION
checkov==$CHECKOV_VERSION
python==$py_version
venv=$VENV_DIR"

is_current() {
    [[ -f "$STAMP_FILE" ]] \
        && [[ "$(cat "$STAMP_FILE")" == "$expected_stamp" ]] \
        && [[ -x "$BIN_DIR/python" && -x "$BIN_DIR/cfn-lint" && -x "$BIN_DIR/checkov" ]]
}

# Fast path: nothing to do, no lock needed.
if [[ "$force" -eq 0 ]] && is_current; then
    log "cfn-lint $CFN_LINT_VERSION and checkov $CHECKOV_VERSION already installed"
    printf '%s\n' "$BIN_DIR"
    exit 0
fi

mkdir -p "$REPO_ROOT/target"

# Serialize concurrent installs (e.g. parallel test processes) when flock exists.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    flock 9
    # Another process may have finished the install while we waited.
    if [[ "$force" -eq 0 ]] && is_current; then
        log "cfn-lint $CFN_LINT_VERSION and checkov $CHECKOV_VERSION already installed"
        printf '%s\n' "$BIN_DIR"
        exit 0
    fi
fi

log "creating venv at $VENV_DIR (python $py_version)"
rm -rf "$VENV_DIR"
"$PYTHON" -m venv "$VENV_DIR" \
    || die "could not create a venv (on Debian/Ubuntu: apt-get install python3-venv)"

log "installing cfn-lint==$CFN_LINT_VERSION checkov==$CHECKOV_VERSION (takes about a minute)"
"$BIN_DIR/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "cfn-lint==$CFN_LINT_VERSION" "checkov==$CHECKOV_VERSION" >&2
"$BIN_DIR/python" -m pip check >&2 || die "pip reports broken requirements in $VENV_DIR"

# Smoke-test both entry points before declaring success.
got_cfn_lint="$("$BIN_DIR/cfn-lint" --version 2>&1 | tail -n 1)"
got_checkov="$("$BIN_DIR/checkov" --version 2>&1 | tail -n 1)"
[[ "$got_cfn_lint" == "cfn-lint $CFN_LINT_VERSION" ]] \
    || die "unexpected 'cfn-lint --version' output: $got_cfn_lint"
[[ "$got_checkov" == "$CHECKOV_VERSION" ]] \
    || die "unexpected 'checkov --version' output: $got_checkov"

printf '%s\n' "$expected_stamp" > "$STAMP_FILE.tmp"
mv -f "$STAMP_FILE.tmp" "$STAMP_FILE"
log "installed cfn-lint $CFN_LINT_VERSION and checkov $CHECKOV_VERSION"
printf '%s\n' "$BIN_DIR"
