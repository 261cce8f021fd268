#!/usr/bin/env bash
# Run every stage in order, skipping what is cached and valid: tools/run_pipeline.sh <config> [--cfg-options ...] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# the interpreter: $PYTHON, else the .venv that tools/install.sh made, else python on PATH
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
exec "$PY" -m pipeline.cli run "$@"
