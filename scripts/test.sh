#!/usr/bin/env bash
# One command for the whole test suite: set up ./.venv with the test extras, install the DICOM peers the
# tests talk to (dcmtk, dicom3tools, orthanc from Debian; fonts-dejavu-core and chromium for the --clean-pixels
# tests; strace to time a signal), then lint (ruff), type-check (mypy --strict) and run pytest. Extra arguments go
# to pytest. The install compiles the byte-level modules with mypyc (setup.py; about a minute): the suite tests
# that build, and tests/test_build.py runs the golden and engine tests again on the pure Python one.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dcmdump >/dev/null || need+=(dcmtk)
command -v dciodvfy >/dev/null || need+=(dicom3tools)
# Debian installs the Orthanc binary in /usr/sbin, which is not on every user's PATH; the tests start their own
# Orthanc (the package's service is not needed).
PATH="$PATH:/usr/sbin:/sbin" command -v Orthanc >/dev/null || need+=(orthanc)
# --clean-pixels tests: real fonts to draw fake PHI with, and a browser to open the review page.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v chromium >/dev/null || need+=(chromium)
# A stop while the run ends its workers: strace slows the waits so that the signal falls there.
command -v strace >/dev/null || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: cannot install ${need[*]} (no apt-get); tests that need them will skip (fail under CI=true)"
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/ruff check src tests setup.py
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
