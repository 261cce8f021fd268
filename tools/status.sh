#!/usr/bin/env bash
# Show each stage of a config's work directory: done, stale (and why), partial (n of N), missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# the interpreter: $PYTHON, else the .venv that tools/install.sh made, else python on PATH
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
exec "$PY" -m pipeline.cli status "$@"
