"""The engine: skip when unchanged, invalidate exactly on change, resume after a real kill, the lock."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

import stages as _stages  # noqa: F401  registers the data hooks the fingerprint of a `dataset` key reads
from pipeline.cache import WorkdirLock, WorkdirLocked
from pipeline.runner import PipelineError, plan_stages, run_stages, stage_status
from tests.pipeline.toy_stages import STAGES, finished_items

ROOT = Path(__file__).resolve().parents[2]


def make_cfg(work_dir: Path, n: int = 6, scale: float = 1.0, factor: float = 2.0, delay: float = 0.0) -> Config:
    return Config(dict(work_dir=str(work_dir), numbers=dict(n=n, scale=scale, delay=delay), total=dict(factor=factor)))


def actions(cfg: Config) -> dict[str, str]:
    return {p.name: p.action for p in plan_stages(cfg, STAGES, Path(cfg.work_dir))}


def test_skip_when_unchanged_and_invalidate_exactly_downstream(tmp_path):
    cfg = make_cfg(tmp_path / "w")
    assert actions(cfg) == {"numbers": "run", "total": "run"}
    run_stages(cfg, STAGES)
    first = json.loads((tmp_path / "w/total/results.json").read_text())["total"]
    assert actions(cfg) == {"numbers": "skip", "total": "skip"}
    mtime = (tmp_path / "w/numbers/items/0.npz").stat().st_mtime_ns
    run_stages(cfg, STAGES)  # nothing to do
    assert (tmp_path / "w/numbers/items/0.npz").stat().st_mtime_ns == mtime

    # A downstream-only key reruns only the downstream stage, and the plan names the key.
    cfg2 = make_cfg(tmp_path / "w", factor=3.0)
    plans = {p.name: p for p in plan_stages(cfg2, STAGES, tmp_path / "w")}
    assert plans["numbers"].action == "skip"
    assert plans["total"].action == "rerun" and "total.factor" in plans["total"].reason
    run_stages(cfg2, STAGES)
    assert (tmp_path / "w/numbers/items/0.npz").stat().st_mtime_ns == mtime
    second = json.loads((tmp_path / "w/total/results.json").read_text())["total"]
    assert second == pytest.approx(first * 1.5)

    # An upstream key reruns it and everything downstream (input changed).
    cfg3 = make_cfg(tmp_path / "w", factor=3.0, scale=2.0)
    plans = {p.name: p for p in plan_stages(cfg3, STAGES, tmp_path / "w")}
    assert plans["numbers"].action == "rerun" and "numbers.scale" in plans["numbers"].reason
    assert plans["total"].action == "rerun" and "input changed: numbers" in plans["total"].reason
    rows = {r["stage"]: r for r in stage_status(cfg3, STAGES)}
    assert rows["numbers"]["status"] == "stale" and "numbers.scale" in rows["numbers"]["detail"]
    run_stages(cfg3, STAGES)
    third = json.loads((tmp_path / "w/total/results.json").read_text())["total"]
    assert third == pytest.approx(second * 2.0)
    summary = json.loads((tmp_path / "w/summary.json").read_text())
    assert {s["stage"] for s in summary["stages"]} == {"numbers", "total"}


def test_dry_run_changes_nothing(tmp_path, capsys):
    cfg = make_cfg(tmp_path / "w")
    out = run_stages(cfg, STAGES, dry_run=True)
    assert [o["action"] for o in out] == ["run", "run"]
    assert not (tmp_path / "w").exists()
    assert "not run yet" in capsys.readouterr().out


def test_dry_run_runs_the_up_front_input_checks(tmp_path, monkeypatch, capsys):
    """A dry run fails on input a real run would refuse before its first stage (a missing classes.txt used to
    pass the dry run and stop the real one), after printing the plan; it still writes nothing."""
    def check(ctx):
        raise PipelineError("data/x/classes.txt: class list file is missing")

    monkeypatch.setattr(STAGES[0], "check", check, raising=False)
    with pytest.raises(PipelineError, match="classes.txt"):
        run_stages(make_cfg(tmp_path / "w"), STAGES, dry_run=True)
    assert "not run yet" in capsys.readouterr().out
    assert not (tmp_path / "w").exists()


def test_single_stage_needs_up_to_date_inputs(tmp_path):
    cfg = make_cfg(tmp_path / "w")
    with pytest.raises(PipelineError, match="needs the outputs of 'numbers'"):
        run_stages(cfg, STAGES, only=["total"])
    with pytest.raises(PipelineError, match="unknown stage"):
        run_stages(cfg, STAGES, only=["nope"])
    run_stages(cfg, STAGES, only=["numbers"])
    run_stages(cfg, STAGES, only=["total"])
    assert (tmp_path / "w/total/results.json").is_file()


def _spawn(cfg: Config) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.pipeline.run_toy", json.dumps(cfg.to_dict())], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _values(work_dir: Path) -> dict[str, np.ndarray]:
    return {f.name: np.load(f)["value"] for f in sorted((work_dir / "numbers/items").glob("*.npz"))}


def test_resume_after_real_kill_gives_identical_outputs(tmp_path):
    n = 12
    ref_cfg = make_cfg(tmp_path / "ref", n=n)
    run_stages(ref_cfg, STAGES)

    cfg = make_cfg(tmp_path / "w", n=n, delay=0.25)
    proc = _spawn(cfg)
    items = tmp_path / "w/numbers/items"
    deadline = time.time() + 60
    while time.time() < deadline and len(finished_items(items)) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(finished_items(items))
    assert 3 <= done < n, f"kill landed at {done} of {n} items"
    rows = {r["stage"]: r for r in stage_status(cfg, STAGES)}
    assert rows["numbers"]["status"] == "partial" and rows["numbers"]["detail"] == f"{done} of {n}"
    assert rows["total"]["status"] == "missing"
    plans = {p.name: p.action for p in plan_stages(cfg, STAGES, tmp_path / "w")}
    assert plans["numbers"] == "resume"
    before = {f.name: f.stat().st_mtime_ns for f in finished_items(items)}
    # what a kill that lands mid-write leaves (atomic_path's naming), planted so every run covers it
    (items / f".{n - 1}.npz.tmp.k1lled.npz").write_bytes(b"PK\x03\x04 truncated")
    run_stages(cfg, STAGES)
    after = {f.name: f.stat().st_mtime_ns for f in items.glob("*.npz")}
    assert all(after[k] == v for k, v in before.items()), "resumed run rewrote finished items"
    ref, got = _values(tmp_path / "ref"), _values(tmp_path / "w")
    assert ref.keys() == got.keys() and all(np.array_equal(ref[k], got[k]) for k in ref)
    assert not list(items.glob(".*")), "temporary files left behind"
    ref_total = json.loads((tmp_path / "ref/total/results.json").read_text())["total"]
    assert json.loads((tmp_path / "w/total/results.json").read_text())["total"] == ref_total


def test_second_run_on_same_work_dir_is_refused(tmp_path):
    cfg = make_cfg(tmp_path / "w", n=40, delay=0.2)
    proc = _spawn(cfg)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not list((tmp_path / "w/numbers/items").glob("*.npz")):
            time.sleep(0.05)
        with pytest.raises(WorkdirLocked, match="in use by another run"):
            run_stages(cfg, STAGES)
    finally:
        proc.kill()
        proc.wait()
    with WorkdirLock(tmp_path / "w"):  # released when the holder died
        pass


def test_parallel_workers_match_serial(tmp_path):
    a, b = make_cfg(tmp_path / "a", n=8), make_cfg(tmp_path / "b", n=8)
    b.numbers.workers = 2
    run_stages(a, STAGES)
    run_stages(b, STAGES)
    va, vb = _values(tmp_path / "a"), _values(tmp_path / "b")
    assert va.keys() == vb.keys() and all(np.array_equal(va[k], vb[k]) for k in va)


def test_keys_that_do_not_change_results_do_not_invalidate(tmp_path):
    cfg = make_cfg(tmp_path / "w")
    cfg.dataset = dict(root="x", cache_dir=str(tmp_path / "c1"))
    STAGES[0].CONFIG_KEYS = ("numbers", "dataset")
    try:
        run_stages(cfg, STAGES)
        cfg.dataset.cache_dir = str(tmp_path / "c2")
        assert actions(cfg) == {"numbers": "skip", "total": "skip"}
        cfg.dataset.root = "y"
        assert actions(cfg)["numbers"] == "rerun"
    finally:
        STAGES[0].CONFIG_KEYS = ("numbers",)


def test_copied_work_dir_lists_its_own_products(tmp_path, capsys):
    """A work dir copied elsewhere is up to date there, and its summary names the copy's files, not the
    original's (the products were recorded at the original's paths)."""
    import shutil

    run_stages(make_cfg(tmp_path / "w"), STAGES)
    shutil.copytree(tmp_path / "w", tmp_path / "copy")
    capsys.readouterr()
    cfg = make_cfg(tmp_path / "copy")
    assert actions(cfg) == {"numbers": "skip", "total": "skip"}
    run_stages(cfg, STAGES)
    out = capsys.readouterr().out
    products = json.loads((tmp_path / "copy/summary.json").read_text())["stages"][0]["products"]
    assert products == {"numbers": str(tmp_path / "copy/numbers/items"), "elsewhere": "/somewhere/else"}
    assert str(tmp_path / "copy/numbers/items") in out and str(tmp_path / "w/numbers/items") not in out


def test_summary_groups_labelled_rows_and_records_derived_settings(tmp_path, capsys):
    from pipeline.summary import _write_summary

    stages = [{"stage": "eval_seeds", "ran": True, "action": "run", "reason": "", "wall_s": 1.0,
               "rows": [{"name": "seeds, BAO", "mIoU": 61.3, "kind": "ground-truth-free"},
                        {"name": "seeds, t=0.65", "mIoU": 64.4, "kind": "tuned with ground truth (on calib)"}]},
              {"stage": "eval_pseudo", "ran": True, "action": "run", "reason": "",
               "rows": [{"name": "pseudo-labels, crf", "mIoU": 80.1, "kind": "ground-truth-free"}]}]
    derived = {"stats": {"num_images": 4}, "random_walk.exp_times": {"value": 4, "why": "grid of 35 cells"}}
    _write_summary(tmp_path, stages, derived)
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["auto_settings"]["random_walk.exp_times"] == {"value": 4, "why": "grid of 35 cells"}
    assert "random_walk.exp_times = 4  (grid of 35 cells)" in out
    table = summary["results_table"]
    free, tuned = table.index("ground-truth-free:"), table.index("tuned with ground truth (on calib):")
    assert free < table.index("pseudo-labels, crf") < tuned < table.index("seeds, t=0.65")
