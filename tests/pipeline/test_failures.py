"""Issue 11 findings 4 (lost work) and 5: a failed rerun never destroys finished outputs, and failures are recorded.

The exact sequence of the issue on the real crf stage: a good crf run, a rerun with a changed threshold that
fails, a second failed rerun; the good labels stay in ``.previous/crf`` and ``restore`` puts them back.
"""
from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

import stages.crf as crf_stage
from pipeline.runner import plan_stages, restore_previous, run_stages, stage_status
from tests.helpers import blob_mask, make_voc_layout
from tests.pipeline.test_runner import make_cfg
from tests.pipeline.toy_stages import STAGES


def _fake_seeds_stage() -> types.ModuleType:
    """A 'seeds' stage writing deterministic seed maps for the crf stage to read."""
    m = types.ModuleType("fake_seeds")
    m.NAME, m.INPUTS, m.CONFIG_KEYS = "seeds", (), ("dataset", "seeds")

    def run(ctx):
        from wsss.maps import save_seeds

        ds = ctx.dataset()
        rng = np.random.default_rng(0)
        for i in ds.ids:
            h, w = ds.image(i).shape[:2]
            keys = ds.label_set(i)
            high = np.clip(ds.mask(i)[None] == np.asarray(keys)[:, None, None] + 1, 0, 1) * 0.8
            high = np.clip(high + rng.random((len(keys), h, w)) * 0.3, 0, 1)
            save_seeds(ctx.out_dir / "maps" / f"{i}.npz", keys, high[:, ::4, ::4], high)
        return {}

    m.run = run
    return m


def _cfg(tmp_path: Path, threshold: float) -> Config:
    masks = {f"im{k}": blob_mask(40, 48, [(1 + k % 2, 6, 6, 26, 30)]) for k in range(3)}
    root = tmp_path / "data"
    if not root.exists():
        make_voc_layout(root, masks, classes=["background", "cat", "dog"])
    return Config(dict(work_dir=str(tmp_path / "w"),
                       dataset=dict(type="custom", root=str(root), cache_dir=str(tmp_path / "cache")),
                       seeds=dict(split=None), runtime=dict(workers=1),
                       crf=dict(mode="labels", background="threshold", bg_threshold=threshold, gt_prob=0.7, iters=2,
                                split=None)))


def _labels(stage_dir: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((stage_dir / "labels").glob("*.png"))}


def test_two_failed_crf_reruns_keep_the_finished_labels_restorable(tmp_path, monkeypatch, caplog):
    stages = [_fake_seeds_stage(), crf_stage]
    good_cfg = _cfg(tmp_path, 0.25)
    run_stages(good_cfg, stages)
    work = tmp_path / "w"
    good = _labels(work / "crf")
    assert len(good) == 3

    import wsss.crf

    def boom(*args, **kwargs):
        raise RuntimeError("the CRF failed on purpose")

    monkeypatch.setattr(wsss.crf, "seed_label_crf", boom)
    # 1st failed rerun (changed threshold), 2nd with the same config (a retry), 3rd with yet another threshold
    for threshold, action in ((0.3, "rerun"), (0.3, "resume"), (0.35, "rerun")):
        cfg = _cfg(tmp_path, threshold)
        assert {p.name: p.action for p in plan_stages(cfg, stages, work)}["crf"] == action
        with pytest.raises(RuntimeError, match="on purpose"):
            run_stages(cfg, stages)
        assert _labels(work / ".previous/crf") == good, f"finished labels lost after the {action} at {threshold}"
        manifest = json.loads((work / ".previous/crf/manifest.json").read_text())
        assert manifest["state"] == "done" and manifest["fingerprint"]["config"]["crf"]["bg_threshold"] == 0.25
    assert "python -m pipeline.cli restore crf" in caplog.text
    row = {r["stage"]: r for r in stage_status(cfg, stages)}["crf"]
    assert row["status"] == "failed" and "the CRF failed on purpose" in row["detail"]
    assert ".previous/crf" in row["detail"]

    restore_previous(work, "crf")
    assert _labels(work / "crf") == good
    assert {p.name: p.action for p in plan_stages(good_cfg, stages, work)}["crf"] == "skip"
    assert not (work / ".previous/crf").exists()


def test_failure_is_recorded_in_the_manifest_the_log_and_status(tmp_path):
    cfg = make_cfg(tmp_path / "w", n=3)
    (tmp_path / "w").mkdir()
    (tmp_path / "w/FAIL").touch()
    with pytest.raises(ValueError, match="FAIL marker present"):
        run_stages(cfg, STAGES)
    manifest = json.loads((tmp_path / "w/total/manifest.json").read_text())
    assert manifest["state"] == "failed" and manifest["error"] == "ValueError: FAIL marker present"
    log = (tmp_path / "w/total/stage.log").read_text()
    assert "Traceback (most recent call last)" in log and "ValueError: FAIL marker present" in log
    rows = {r["stage"]: r for r in stage_status(cfg, STAGES)}
    assert rows["numbers"]["status"] == "done"
    assert rows["total"] == {"stage": "total", "status": "failed", "detail": "failed: ValueError: FAIL marker present"}
    # fixed: the retry resumes the failed stage and records success
    (tmp_path / "w/FAIL").unlink()
    plans = {p.name: p for p in plan_stages(cfg, STAGES, tmp_path / "w")}
    assert plans["total"].action == "resume" and "failed earlier" in plans["total"].reason
    run_stages(cfg, STAGES)
    manifest = json.loads((tmp_path / "w/total/manifest.json").read_text())
    assert manifest["state"] == "done" and "error" not in manifest


def test_a_data_error_in_a_loader_worker_reaches_the_console_as_its_own_one_line_message(tmp_path, caplog):
    """torch re-raises a worker's error as "Caught DatasetError in DataLoader worker process 0. Original
    Traceback ...": the user sees the original message, and the traceback stays in stage.log."""
    import logging

    import torch

    from pipeline.errors import user_message
    from pipeline.logs import ConsoleFilter
    from wsss.datasets import DatasetError

    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise DatasetError(f"/data/JPEGImages/img_{i}.jpg: cannot read image (image file is truncated)")

    loader = torch.utils.data.DataLoader(Broken(), num_workers=1)
    with pytest.raises(DatasetError) as info:
        next(iter(loader))
    assert str(info.value).startswith("Caught DatasetError in DataLoader worker process 0")
    assert user_message(info.value) == "/data/JPEGImages/img_0.jpg: cannot read image (image file is truncated)"
    assert user_message(ValueError("plain\nsecond line")) == "plain\nsecond line"

    # the runner's failure record with the traceback is for stage.log only
    cfg = make_cfg(tmp_path / "w", n=3)
    (tmp_path / "w").mkdir()
    (tmp_path / "w/FAIL").touch()
    with caplog.at_level(logging.ERROR, logger="wsss"), pytest.raises(ValueError):
        run_stages(cfg, STAGES)
    failed = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert failed and not any(ConsoleFilter().filter(r) for r in failed)
