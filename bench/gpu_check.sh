#!/usr/bin/env bash
# GPU readiness check, one command, no arguments: bash bench/gpu_check.sh
# On a CUDA machine: tiny end-to-end run on CUDA with AMP, classify + segment under torchrun with NCCL, and the
# VOC-size classifier / DeepLab steps timed with AMP (see bench/gpu_check.py). On a CPU machine: the CPU parts,
# and it says plainly that the CUDA parts were skipped. PYTHON selects the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
exec "$PY" bench/gpu_check.py "$@"  # --orchestration-on-cpu: its pipeline steps on CPU + gloo (self-check)
