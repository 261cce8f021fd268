#!/usr/bin/env bash
# Install what is needed and run the test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
.venv/bin/python -m pip install -q --disable-pip-version-check pytest ruff
.venv/bin/ruff check .
.venv/bin/python tools/get_pretrained.py  # the quality-floor tests train from the ImageNet MobileNetV2
exec .venv/bin/python -m pytest "$@"
