#!/usr/bin/env bash
# One command for a new user: set up neuroanon in ./.venv and run the demo on built-in synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
echo "installing neuroanon (mypyc compiles its byte-level modules where a C compiler is present: about a minute)"
.venv/bin/python -m pip install --quiet .
exec .venv/bin/neuroanon demo "$@"
