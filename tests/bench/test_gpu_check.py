"""bench/gpu_check.sh on a machine without a CUDA GPU: runs the CPU parts, succeeds, and says plainly that the CUDA
parts were skipped (what CI checks; the CUDA parts need a GPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the full check (minutes)")
def test_gpu_check_on_cpu_runs_the_cpu_parts_and_says_cuda_was_skipped(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_LOGS": str(tmp_path), "OMP_NUM_THREADS": "2"}
    out = subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "CUDA parts SKIPPED (no CUDA GPU)" in out.stdout
    assert "classifier BAS ResNet-50 OS16 step" in out.stdout and "DeepLabV3+ R101 (mmseg) step" in out.stdout
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["cuda"] is False and [r["status"] for r in res["rows"]] == ["ok", "ok", "ok"]
    amp_row, *step_rows = res["rows"]
    # our three trainers went through float16 autocast on CPU (the row checks each stage.log and its last loss)
    assert amp_row["part"] == "classify, bao, affinity in float16 autocast" and amp_row["device"] == "cpu"
    assert all(r["device"] == "cpu" and r["it_per_s"] > 0 and r["peak_mb"] > 0 for r in step_rows)
