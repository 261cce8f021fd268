"""Issue 11 finding 4: reuse only what verifies; damaged items are recomputed; clear errors; ``--force``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from pipeline.runner import plan_stages, run_stages, stage_status
from pipeline.stage import StageContext
from pipeline.verify import check_file, damaged_outputs
from tests.helpers import blob_mask, make_voc_layout
from tests.pipeline.test_runner import make_cfg
from tests.pipeline.toy_stages import STAGES
from wsss.maps import load_seeds, save_seeds


def _values(work_dir: Path) -> dict[str, bytes]:
    return {f.name: np.load(f)["value"].tobytes() for f in sorted((work_dir / "numbers/items").glob("*.npz"))}


def test_damaged_or_missing_items_are_reported_and_recomputed(tmp_path):
    cfg = make_cfg(tmp_path / "w", n=6)
    run_stages(cfg, STAGES)
    items = tmp_path / "w/numbers/items"
    reference = _values(tmp_path / "w")
    data = (items / "2.npz").read_bytes()
    (items / "2.npz").write_bytes(data[: len(data) // 2])  # truncated
    (items / "4.npz").unlink()  # deleted
    rows = {r["stage"]: r for r in stage_status(cfg, STAGES)}
    assert rows["numbers"]["status"] == "damaged", rows
    assert "2.npz (truncated" in rows["numbers"]["detail"] and "4.npz (missing)" in rows["numbers"]["detail"]
    mtimes = {f.name: f.stat().st_mtime_ns for f in items.glob("*.npz") if f.name != "2.npz"}
    run_stages(cfg, STAGES)
    assert _values(tmp_path / "w") == reference
    assert all((items / n).stat().st_mtime_ns == t for n, t in mtimes.items()), "intact items were recomputed"
    assert {r["status"] for r in stage_status(cfg, STAGES)} == {"done"}


def test_deep_verification_reads_the_arrays(tmp_path):
    cfg = make_cfg(tmp_path / "w", n=3)
    run_stages(cfg, STAGES)
    f = tmp_path / "w/numbers/items/1.npz"
    data = bytearray(f.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(64)  # damaged inside; the zip directory at the end is intact
    f.write_bytes(bytes(data))
    assert stage_status(cfg, STAGES, verify="quick")[0]["status"] == "done"  # the quick check cannot see it
    row = stage_status(cfg, STAGES, verify="deep")[0]
    assert row["status"] == "damaged" and "1.npz (unreadable" in row["detail"], row


def test_seed_outputs_verify_and_a_truncated_seed_file_names_itself(tmp_path):
    root = make_voc_layout(tmp_path / "data", {f"im{k}": blob_mask(24, 32, [(1, 2, 2, 12, 12)]) for k in range(3)},
                           classes=["background", "cat"])
    cfg = Config(dict(dataset=dict(type="custom", root=str(root), cache_dir=str(tmp_path / "cache")), seeds={}))
    import stages.seeds as seeds

    ctx = StageContext(name="seeds", cfg=cfg, work_dir=tmp_path / "w")
    for i in ("im0", "im1", "im2"):
        save_seeds(ctx.out_dir / "maps" / f"{i}.npz", [0], np.zeros((1, 6, 8)), np.ones((1, 24, 32)))
    assert damaged_outputs(seeds.outputs(ctx)) == {}
    bad = ctx.out_dir / "maps" / "im1.npz"
    bad.write_bytes(bad.read_bytes()[:100])
    np.savez(ctx.out_dir / "maps" / "im2.npz", keys=np.zeros(1))  # readable but not a seed file
    found = damaged_outputs(seeds.outputs(ctx))
    assert set(found) == {bad, ctx.out_dir / "maps" / "im2.npz"}
    assert "lacks the arrays ['stride4_planar', 'high_planar', 'size']" in found[ctx.out_dir / "maps" / "im2.npz"]
    with pytest.raises(ValueError, match=rf"{bad}: damaged seed file .*rerun the seeds stage"):
        load_seeds(bad)


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_a_damaged_classifier_checkpoint_names_the_file_and_says_to_rerun_classify(tmp_path, content):
    from wsss.models.classifier import load_classifier

    path = tmp_path / "classify" / "model.pth"
    path.parent.mkdir()
    if content == "garbage":
        path.write_bytes(b"\x95not a checkpoint at all" * 50)
    else:
        torch.save({"state_dict": {"w": torch.zeros(1000)}, "meta": {}}, path)
        path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError) as err:
        load_classifier(path, {}, 2)
    msg = str(err.value)
    assert str(path) in msg and "rerun the 'classify' stage" in msg and "--force classify" in msg, msg
    assert "weights_only" not in msg, msg
    assert check_file(path, "torch") is not None


def test_force_reruns_the_stage_and_everything_downstream(tmp_path):
    cfg = make_cfg(tmp_path / "w", n=3)
    run_stages(cfg, STAGES)
    plans = {p.name: p for p in plan_stages(cfg, STAGES, tmp_path / "w", force=("numbers",))}
    assert plans["numbers"].action == "rerun" and plans["numbers"].reason == "forced (--force)"
    assert plans["total"].action == "rerun" and plans["total"].reason == "input forced: numbers"
    before = (tmp_path / "w/numbers/items/0.npz").stat().st_mtime_ns
    summary = run_stages(cfg, STAGES, force=("numbers",))
    assert [s["ran"] for s in summary] == [True, True]
    assert (tmp_path / "w/numbers/items/0.npz").stat().st_mtime_ns != before
    summary = run_stages(cfg, STAGES, force=("total",))
    assert [s["ran"] for s in summary] == [False, True]
    assert json.loads((tmp_path / "w/numbers/manifest.json").read_text())["state"] == "done"
