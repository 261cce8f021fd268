#!/usr/bin/env bash
# Run one stage: tools/run_stage.sh <stage> <config> [--cfg-options k=v ...] [--dry-run]
# Its input stages must be up to date. Under torchrun:  torchrun --nproc_per_node=N -m pipeline.cli stage <stage> <config>
set -euo pipefail
cd "$(dirname "$0")/.."
# the interpreter: $PYTHON, else the .venv that tools/install.sh made, else python on PATH
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
stage="$1"; shift
exec "$PY" -m pipeline.cli stage "$stage" "$@"
