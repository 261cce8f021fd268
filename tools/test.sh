#!/usr/bin/env bash
# Install what is needed and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
.venv/bin/python -m pip install -q --disable-pip-version-check pytest ruff
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
