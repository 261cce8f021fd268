#!/usr/bin/env bash
# Run every stage in order, skipping what is cached and valid: tools/run_pipeline.sh <config> [--cfg-options ...] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
exec "$PY" -m pipeline.cli run "$@"
