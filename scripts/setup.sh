#!/usr/bin/env bash
# Install everything deerid needs on a fresh Debian machine: system packages
# (Redis for the Celery worker path, Chromium for the dashboard tests, Tesseract
# for the photos' info strips) and a virtualenv with the package. Idempotent: a
# second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)   # Celery broker for the worker tests
command -v chromium >/dev/null || need_apt+=(chromium)           # the dashboard's browser tests
command -v tesseract >/dev/null || need_apt+=(tesseract-ocr)     # reads the info strip on photos (docs/strip.md)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${need_apt[*]} from Debian"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        echo "setup: please install ${need_apt[*]} (sudo apt-get install ${need_apt[*]}); tests that need them will fail" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# torch first and pinned: 2.13.0 is the CPU build; any other spec pulls GBs of CUDA wheels.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
echo "setup: done ($(.venv/bin/python -c 'import deerid, torch; print("deerid", deerid.__version__, "torch", torch.__version__)'))"
