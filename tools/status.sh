#!/usr/bin/env bash
# Show each stage of a config's work directory: done, stale (and why), partial (n of N), missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
exec "$PY" -m pipeline.cli status "$@"
