"""Issue 11 finding 6: a segment stage killed right after an mmengine checkpoint resumes to the same model.

mmengine's resume restores weights, optimizer, schedule and iteration and replays the data loader over the
iterations already trained, but not torch's global RNG (dropout draws from it); wsss.mmseg_ext.ResumeRNGHook
stores it in each checkpoint and restores it. A kill right after the checkpoint of iteration 3 is what
mmengine leaves on disk: ``iter_3.pth`` and ``last_checkpoint`` pointing to it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.stages.test_segment import fake_pseudo_labels, make_cfg, make_data, run_stage


def _killed_after_checkpoint(src: Path, dst: Path, it: int, keep_rng: bool = True,
                             written_in: Path | None = None) -> None:
    """``dst`` as a kill right after the checkpoint of iteration ``it`` leaves it; ``written_in``: the work dir
    mmengine wrote ``last_checkpoint`` in (another one: this one was moved there since)."""
    shutil.copytree(src / "random_walk", dst / "random_walk")
    mm_dir = dst / "segment" / "mmseg"
    mm_dir.mkdir(parents=True)
    ck = torch.load(src / "segment" / "mmseg" / f"iter_{it}.pth", map_location="cpu", weights_only=False)
    assert "wsss_rng_state" in ck, "the checkpoint lacks the RNG state ResumeRNGHook stores"
    if not keep_rng:
        del ck["wsss_rng_state"]
    torch.save(ck, mm_dir / f"iter_{it}.pth")
    written_dir = (written_in or dst) / "segment" / "mmseg"
    (mm_dir / "last_checkpoint").write_text(str(written_dir / f"iter_{it}.pth"))


def _weights(work_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(work_dir / "segment" / "model.pth", map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg_resume")
    root = make_data(tmp)
    wd = tmp / "ref"
    fake_pseudo_labels(root, wd)
    cfg = make_cfg(root, tmp, iters=6, checkpoint_interval=3, val_interval=0, max_keep_ckpts=3)
    run_stage("segment", cfg, wd)
    return tmp, cfg, wd


def test_resume_after_checkpoint_gives_the_uninterrupted_model(reference):
    tmp, cfg, ref = reference
    resumed = tmp / "resumed"
    _killed_after_checkpoint(ref, resumed, 3)
    res = run_stage("segment", cfg, resumed)
    assert res["iters"] == 6 and res["resumed_from"] == "iter_3.pth"
    a, b = _weights(ref), _weights(resumed)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ from the uninterrupted run, e.g. {differ[:5]}"


def test_a_moved_work_dir_resumes_its_own_checkpoint(reference):
    """mmengine's ``last_checkpoint`` holds an absolute path; after the work dir moved, it names a file that is
    gone. The stage resumes from the checkpoint of that name in the moved directory, to the same model."""
    tmp, cfg, ref = reference
    moved = tmp / "moved"
    _killed_after_checkpoint(ref, moved, 3, written_in=tmp / "where_it_ran")
    res = run_stage("segment", cfg, moved)
    assert res["iters"] == 6 and res["resumed_from"] == "iter_3.pth"  # resumed, not trained again from scratch
    a, b = _weights(ref), _weights(moved)
    assert all(torch.equal(a[k], b[k]) for k in a), "the moved work dir did not resume to the uninterrupted model"


def test_without_the_rng_state_the_resumed_model_differs(reference):
    """The check above can fail: the same resume without the stored RNG state (mmengine alone) differs."""
    tmp, cfg, ref = reference
    resumed = tmp / "resumed_no_rng"
    _killed_after_checkpoint(ref, resumed, 3, keep_rng=False)
    run_stage("segment", cfg, resumed)
    a, b = _weights(ref), _weights(resumed)
    assert any(not torch.equal(a[k], b[k]) for k in a)
