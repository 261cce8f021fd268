"""Quality floors on a small pretrained run (issue 9): BAS-family seeds beat the CAM baseline of the same backbone
and budget, and the ground-truth-free pseudo-labels beat the seeds' best threshold tuned on the calibration split.

Real stages through the command line, pretrained ImageNet MobileNetV2 (tools/test.sh places it with
tools/get_pretrained.py), a 96-image demo dataset at the demo's sizes. The margins are set well below what this
run measured (see MARGINS) so that thread-count and platform float differences cannot flip them, yet a classifier
or background that stops working fails them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.demo_data import make_demo_dataset

ROOT = Path(__file__).resolve().parents[1]

SMALL = [
    "classify.epochs=6", "classify.batch_size=16", "calib.size=16",
    "bao.epochs=8", "bao.teacher_from_epoch=4",
    "affinity.epochs=4",
    "runtime.workers=1",
]
# Measured by this file's run (CPU, 1 thread, 2026-12-03): seeds CAM 45.77, bas+cam 52.64 (+6.9); pseudo-labels
# CRF 66.58 (+13.9 over the seeds), random walk 57.39 (+4.8). The floors keep about half of each gain.
MARGINS = {"bas_over_cam": 3.0, "crf_over_seeds": 6.0, "random_walk_over_seeds": 2.0}


def _weights_present() -> bool:
    import torch.hub

    return (Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth").is_file()


def _run(work: Path, data: Path, until: str, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(ROOT / "configs/demo/demo.py"), "--work-dir", str(work),
           "--until", until, "--cfg-options", f"dataset.root={data}", f"dataset.cache_dir={work.parent / 'cache'}",
           *SMALL, *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, f"{until} failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not _weights_present():
        pytest.fail("the pretrained MobileNetV2 checkpoint is missing from torch's hub cache: run "
                    "`.venv/bin/python tools/get_pretrained.py` (tools/test.sh does)")
    base = tmp_path_factory.mktemp("floor")
    data = base / "demo"
    make_demo_dataset(data, seed=1, n_train=96, n_val=4)
    cam = base / "cam"
    _run(cam, data, "eval_seeds", ["classify.method=cam", "seeds.source=cam", "bao.enabled=False"])
    bas = base / "bas"
    _run(bas, data, "eval_pseudo", [])
    return cam, bas


def _eval(work: Path, stage: str) -> dict:
    return json.loads((work / stage / "eval.json").read_text())


def test_bas_family_seeds_beat_the_cam_baseline(runs):
    """The default seeds (bas+cam of the BAS classifier) against the CAM classifier's, same budget; both with the
    threshold tuned on the calibration images. (BAS alone, 40.75, loses to CAM, 45.77, at this budget.)"""
    cam, bas = runs
    cam_miou, bas_miou = _eval(cam, "eval_seeds")["best_miou"], _eval(bas, "eval_seeds")["best_miou"]
    assert _eval(bas, "eval_seeds")["best_kind"].startswith("tuned with ground truth (on calib")
    assert bas_miou >= cam_miou + MARGINS["bas_over_cam"], (bas_miou, cam_miou)


def test_ground_truth_free_pseudo_labels_beat_the_tuned_seeds(runs):
    _, bas = runs
    pseudo = _eval(bas, "eval_pseudo")
    seeds = pseudo["seeds"]["best_miou"]
    assert pseudo["crf_kind"] == pseudo["random_walk_kind"] == "ground-truth-free"
    assert pseudo["crf_miou"] >= seeds + MARGINS["crf_over_seeds"], (pseudo["crf_miou"], seeds)
    assert pseudo["random_walk_miou"] >= seeds + MARGINS["random_walk_over_seeds"], (pseudo["random_walk_miou"], seeds)
