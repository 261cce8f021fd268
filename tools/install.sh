#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned stack. On a machine without an NVIDIA GPU the constraints
# file keeps pip from pulling several GB of CUDA torch. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON3:-python3}" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" "pip>=23" "setuptools<81" wheel
if command -v nvidia-smi >/dev/null 2>&1; then
  "${PIP[@]}" -r requirements.txt
else
  "${PIP[@]}" -r requirements.txt -c constraints-cpu.txt
fi
"$VENV/bin/python" -c "import pipeline, wsss, torch, torchvision, mmseg, pydensecrf.densecrf; print('stack ok: torch', torch.__version__)"
