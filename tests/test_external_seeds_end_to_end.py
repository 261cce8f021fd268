"""Seeds from another method, end to end: class maps written in IRN's format (``<id>.npy``, a dict with ``keys``
and ``high_res`` plus a stride-4 ``cam``, torch tensors where IRN has them) by this test, imported by the seeds
stage (``seeds.source='external'``), then every later stage unchanged, with no classifier trained."""
from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from tests.test_end_to_end import cli, status
from tools.demo_data import make_demo_dataset
from wsss.datasets import build_dataset
from wsss.maps import load_seeds

# no classifier, so no BAO (it refines the classifier): the refinement stages take the threshold path
EXTERNAL = ["classify.enabled=False", "bao.enabled=False", "seeds.source=external", "crf.background=threshold",
            "ir_labels.background=threshold", "random_walk.background=threshold"]


def irn_maps(mask: np.ndarray, keys: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Blurred, partial class maps from a mask (what a CAM method gives), max-normalised; (high_res, cam)."""
    h, w = mask.shape
    m = torch.from_numpy(np.stack([(mask == k + 1) for k in keys]).astype(np.float32))[None]
    m = F.avg_pool2d(m, 7, 1, 3) * 0.9 + 0.1 * F.avg_pool2d(m, 31, 1, 15)
    high = (m / (m.flatten(2).max(2).values[..., None, None] + 1e-5))[0]
    cam = F.interpolate(high[None], (math.ceil(h / 4), math.ceil(w / 4)), mode="bilinear", align_corners=False)[0]
    return high.numpy(), cam


def test_irn_format_seeds_run_through_the_whole_pipeline(tmp_path):
    data, work, ext = tmp_path / "demo", tmp_path / "work", tmp_path / "irn_cams"
    make_demo_dataset(data, seed=0, n_train=16, n_val=6, size=64)
    ds = build_dataset(dict(type="custom", root=str(data), cache_dir=str(tmp_path / "cache")), split="train")
    ext.mkdir()
    given = {}
    for id_ in ds.ids:
        keys = sorted(ds.label_set(id_))
        high, cam = irn_maps(ds.mask(id_), keys)
        np.save(ext / f"{id_}.npy", {"keys": torch.tensor(keys), "cam": cam, "high_res": high})  # as make_cam.py
        given[id_] = (keys, high)
    opts = [*EXTERNAL, f"seeds.external_dir={ext}"]
    plan = cli(work, data, "run", "--dry-run", extra=opts).stdout
    assert "classify       disabled" in plan and "bao            disabled" in plan
    cli(work, data, "run", extra=opts)

    assert not (work / "classify").exists()
    summary = {s["stage"]: s for s in json.loads((work / "summary.json").read_text())["stages"]}
    ran = {k for k, s in summary.items() if s["ran"]}
    assert ran == {"seeds", "eval_seeds", "crf", "ir_labels", "affinity", "random_walk", "eval_pseudo", "segment",
                   "eval_segment", "report"}, summary
    for id_, (keys, high) in given.items():  # the seed files hold the given maps (to the 1/255 quantisation)
        s = load_seeds(work / "seeds/maps" / f"{id_}.npz")
        assert s.keys.tolist() == keys and np.abs(s.high - high).max() <= 0.5 / 255 + 1e-6
    seeds_res = json.loads((work / "seeds/results.json").read_text())
    assert seeds_res["source"] == "external" and seeds_res["computed"] == 16
    pseudo = json.loads((work / "eval_pseudo/results.json").read_text())
    crf_miou = [v for k, v in pseudo.items() if "crf" in k.lower() and "miou" in k.lower()]
    assert crf_miou and crf_miou[0] > 50, pseudo  # maps made from the masks: good pseudo-labels
    for stage in ("crf", "ir_labels", "random_walk"):
        assert len(list((work / stage / "labels").glob("*.png"))) == 16
    assert len(list((work / "eval_segment/pred").glob("*.png"))) == 6
    assert {r["status"] for r in status(work, data, opts).values()} == {"done", "disabled"}
    # the walk without a threshold and without BAO: its background from the seeds; only the walk and what reads it
    cli(work, data, "run", "--until", "eval_pseudo", extra=[*opts, "random_walk.background=seeds"])
    summary = {s["stage"]: s for s in json.loads((work / "summary.json").read_text())["stages"]}
    upto = ("seeds", "eval_seeds", "crf", "ir_labels", "affinity", "random_walk", "eval_pseudo")  # later: last run's
    assert {k for k in upto if summary[k]["ran"]} == {"random_walk", "eval_pseudo"}, summary
    walk = json.loads((work / "random_walk/results.json").read_text())
    assert walk["background"] == "seeds" and walk["provenance_label"] == "ground-truth-free"
    pseudo = json.loads((work / "eval_pseudo/results.json").read_text())
    walk_miou = [v for k, v in pseudo.items() if "random_walk" in k.lower() and "miou" in k.lower()]
    assert walk_miou and walk_miou[0] > 40, pseudo
    # a bad file is named: a map of the wrong size
    keys, high = given[ds.ids[0]]
    np.save(ext / f"{ds.ids[0]}.npy", {"keys": np.array(keys), "high_res": high[:, :-2]})
    proc = cli(work, data, "run", extra=[*EXTERNAL, f"seeds.external_dir={ext}", "seeds.external_normalize=max"],
               popen=True)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode != 0 and f"{ds.ids[0]}.npy: maps are" in out, out[-3000:]
