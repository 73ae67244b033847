#!/usr/bin/env bash
# Lints the AWS SAM template with cfn-lint (PyPI), pinned. The venv is created on the first run
# only, under $VOX_CACHE/venv-cfn (default ~/.cache/voxpersona/venv-cfn); later runs make no
# network access. Extra arguments go to cfn-lint.
#
#   bash infra/aws/lint.sh            # lint infra/aws/template.yaml
set -euo pipefail

CFN_LINT_VERSION=1.58.0
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
CACHE="${VOX_CACHE:-${HOME:-$(cd ~ && pwd)}/.cache/voxpersona}"
VENV="$CACHE/venv-cfn"
STAMP="$VENV/.cfn-lint-$CFN_LINT_VERSION"
PYTHON="${CFN_PYTHON:-python3}"

log() { printf 'lint.sh: %s\n' "$*" >&2; }

if [[ ! -f "$STAMP" || ! -x "$VENV/bin/cfn-lint" ]]; then
    mkdir -p "$CACHE"
    # One installer at a time; a second run waits and then finds it done.
    exec 8>"$CACHE/venv-cfn.lock"
    command -v flock >/dev/null 2>&1 && flock 8
    if [[ ! -f "$STAMP" || ! -x "$VENV/bin/cfn-lint" ]]; then
        log "installing cfn-lint $CFN_LINT_VERSION into $VENV (first run only)"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" || { log "error: could not create a venv with $PYTHON"; exit 1; }
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install --quiet --no-input \
            "cfn-lint==$CFN_LINT_VERSION" >&2 ||
            { rm -rf "$VENV"; log "error: pip install cfn-lint==$CFN_LINT_VERSION failed"; exit 1; }
        touch "$STAMP"
    fi
    exec 8>&-
fi

"$VENV/bin/cfn-lint" "$@" -- "$SCRIPT_DIR/template.yaml"
log "template.yaml passes cfn-lint $CFN_LINT_VERSION"
