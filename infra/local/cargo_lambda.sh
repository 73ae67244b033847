#!/usr/bin/env bash
# Prints the path of a cargo-lambda to run: the one on the PATH, or the pinned one from PyPI
# in its own venv (with ziglang, which `cargo lambda build --arm64` cross-links with),
# installed on first use. Messages go to stderr, the path alone to stdout.
set -euo pipefail

version=1.9.2
zig_version=0.17.1
if command -v cargo-lambda >/dev/null 2>&1; then
  command -v cargo-lambda
  exit 0
fi
venv="${VOX_CACHE:-$HOME/.cache/voxpersona}/venv-cargo-lambda"
bin="$venv/bin/cargo-lambda"
if [ ! -x "$bin" ] || ! "$venv/bin/pip" show -q ziglang >/dev/null 2>&1; then
  echo "cargo_lambda: installing cargo-lambda $version and ziglang $zig_version into $venv (first run only)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "cargo-lambda==$version" "ziglang==$zig_version" >&2
fi
echo "$bin"
