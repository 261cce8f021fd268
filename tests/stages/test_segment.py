"""Stages segment + eval_segment: real (short) DeepLab-MobileNetV2 training on a tiny synthetic VOC-layout dataset."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# isort: off
import wsss  # noqa: E402,F401  (stack fixes first)
# isort: on
from mmengine.config import Config  # noqa: E402

from pipeline.stage import StageContext  # noqa: E402
from tools.demo_data import make_demo_dataset  # noqa: E402
from wsss.maps import save_label_png  # noqa: E402


def make_cfg(root: Path, tmp: Path, **seg) -> Config:
    segment = dict(model="configs/segment/mobilenetv2_deeplabv3plus_demo.py", labels_from="random_walk", iters=12,
                   batch_size=2, crop_size=64, img_scale=(128, 64), val_interval=12, checkpoint_interval=8,
                   log_interval=4, num_workers=0, lr=0.02, tensorboard=True, pretrained=False)
    segment.update(seg)
    return Config(dict(dataset=dict(type="custom", root=str(root), cache_dir=str(tmp / "cache")),
                       runtime=dict(device="cpu", seed=0, amp=False), segment=segment,
                       eval_segment=dict(scales=(0.75, 1.25), ms_flip=True, crf=True, crf_preset="deeplab")))


def make_data(tmp: Path) -> Path:
    root = tmp / "data"
    make_demo_dataset(root, seed=0, n_train=8, n_val=3, size=64)
    return root


def fake_pseudo_labels(root: Path, work_dir: Path, seed: int = 0) -> Path:
    """Pseudo-labels = ground truth with some pixels flipped to background / ignore (what random_walk writes)."""
    rng = np.random.default_rng(seed)
    out = work_dir / "random_walk" / "labels"
    from wsss.datasets import read_label_png

    for p in sorted((root / "SegmentationClass").glob("*.png")):
        lab = read_label_png(p).copy()
        lab[rng.random(lab.shape) < 0.05] = 0
        lab[rng.random(lab.shape) < 0.05] = 255
        save_label_png(out / p.name, lab)
    return out


def run_stage(name: str, cfg: Config, work_dir: Path) -> dict:
    import importlib

    import torch

    torch.set_num_threads(2)
    mod = importlib.import_module(f"stages.{name}")
    return mod.run(StageContext(name=name, cfg=cfg, work_dir=work_dir))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seg")
    root = make_data(tmp)
    wd = tmp / "wd"
    fake_pseudo_labels(root, wd)
    cfg = make_cfg(root, tmp)
    res = run_stage("segment", cfg, wd)
    return tmp, root, wd, cfg, res


def test_inputs_follow_labels_from():
    import stages.segment as S

    assert S.inputs(Config(dict(segment=dict(labels_from="random_walk")))) == ("random_walk",)
    assert S.inputs(Config(dict(segment=dict(labels_from="crf")))) == ("crf",)
    assert S.inputs(Config(dict(segment=dict(labels_from="gt")))) == ()
    assert S.inputs(Config(dict(segment=dict(labels_from="/some/folder")))) == ()


def test_edited_model_config_file_reruns_segment(tmp_path):
    """``segment.model`` names a file: an edit to that file (not to our config) must change the stage's
    fingerprint and say why; the same content under another mtime must not."""
    import stages.segment as S
    from pipeline.plan import _diff_reason, plan_stages

    root = make_data(tmp_path)
    model = tmp_path / "model.py"
    src = (REPO / "configs/segment/mobilenetv2_deeplabv3plus_demo.py").read_text()
    model.write_text(src)
    (tmp_path / "wd").mkdir()

    def plan():
        cfg = make_cfg(root, tmp_path, model=str(model), labels_from="gt")
        (p,) = plan_stages(cfg, [S], tmp_path / "wd", verify=None)
        return p

    first = plan()
    assert re.fullmatch(r"[0-9a-f]{16}", first.fingerprint["config"]["segment.model (file content)"])
    model.write_text(model.read_text())  # rewritten, same content
    assert plan().fp_hash == first.fp_hash
    model.write_text(model.read_text() + "model = dict(decode_head=dict(channels=64))\n")
    edited = plan()
    assert edited.fp_hash != first.fp_hash
    assert _diff_reason(first.fingerprint, edited.fingerprint) == "config changed: segment.model (file content)"


def test_training_lowers_the_loss_and_writes_outputs(trained):
    tmp, root, wd, cfg, res = trained
    out = wd / "segment"
    assert res["iters"] == 12 and res["train_images"] == 8
    assert res["label_dir"] == str(wd / "random_walk" / "labels")
    assert res["loss_last"] < 0.8 * res["loss_first"], res["loss_history"]
    assert 0 <= res["val_mIoU"] <= 100
    assert (out / "model.pth").is_file() and (out / "mmseg_config.py").is_file()
    assert (out / "mmseg" / "iter_12.pth").is_file() and (out / "mmseg" / "last_checkpoint").is_file()
    mm = Config.fromfile(str(out / "mmseg_config.py"))
    assert mm.model.decode_head.num_classes == 6 and mm.model.backbone.type == "TVMobileNetV2"
    assert list(out.glob("mmseg/*/vis_data/events.out.tfevents.*")), "no TensorBoard scalars"
    import torch

    ck = torch.load(out / "model.pth", map_location="cpu", weights_only=True)
    assert ck["meta"]["iter"] == 12 and ck["meta"]["dataset_meta"]["classes"][0] == "background"


def test_resume_continues_from_the_latest_checkpoint(trained):
    tmp, root, wd, cfg, _ = trained
    wd2 = tmp / "wd_resume"
    shutil.copytree(wd / "random_walk", wd2 / "random_walk")
    mm_dir = wd2 / "segment" / "mmseg"
    mm_dir.mkdir(parents=True)
    # a run killed after iteration 8: its checkpoint and the pointer to it, as mmengine leaves them
    shutil.copy(wd / "segment" / "mmseg" / "iter_8.pth", mm_dir / "iter_8.pth")
    (mm_dir / "last_checkpoint").write_text(str(mm_dir / "iter_8.pth"))
    res = run_stage("segment", cfg, wd2)
    assert res["iters"] == 12
    runs = [p for p in mm_dir.iterdir() if p.is_dir()]
    steps = [json.loads(ln)["step"] for r in runs for ln in (r / "vis_data" / "scalars.json").read_text().splitlines()
             if "loss" in json.loads(ln)]
    assert steps and min(steps) > 8, steps  # nothing before iteration 8 was trained again
    assert (mm_dir / "iter_12.pth").is_file() and (wd2 / "segment" / "model.pth").is_file()


def test_eval_gives_miou_json_and_pngs_matching_the_tool(trained):
    tmp, root, wd, cfg, _ = trained
    res = run_stage("eval_segment", cfg, wd)
    out = wd / "eval_segment"
    data = json.loads((out / "miou.json").read_text())
    for k in ("mIoU_single_scale", "mIoU_ms_flip", "mIoU_crf"):
        assert 0 < res[k] <= 100 and data[k] == pytest.approx(res[k])
    assert set(data["variants"]["crf"]["per_class"]) == set((root / "classes.txt").read_text().split())
    ids = (root / "ImageSets/Segmentation/val.txt").read_text().split()
    assert sorted(p.stem for p in (out / "pred").glob("*.png")) == sorted(ids)
    assert (out / "pred_ss").is_dir() and (out / "pred_msf").is_dir()
    assert "mIoU" in (out / "per_class.txt").read_text()
    tool = subprocess.run([sys.executable, str(REPO / "tools/eval_miou.py"), "--pred", str(out / "pred"),
                           "--gt", str(root / "SegmentationClass"), "--split-file",
                           str(root / "ImageSets/Segmentation/val.txt"), "--classes", str(root / "classes.txt"),
                           "--json", str(tmp / "tool.json")], capture_output=True, text=True, check=True)
    assert json.loads((tmp / "tool.json").read_text())["mIoU"] == pytest.approx(res["mIoU_crf"], abs=1e-3), tool.stdout


def test_val_split_without_masks_is_predicted_not_scored_and_no_val_split_disables_eval(tmp_path, trained,
                                                                                      caplog):
    """Image-level labels only (a label file, no masks): eval_segment used to stop the whole run in its
    preflight check ('no ground-truth masks to evaluate against'); it now writes the predictions and says they
    are not scored. Without a val split file the stage has nothing to do: the plan disables it and says why."""
    from pipeline.plan import disabled_reason
    from stages import eval_segment
    from wsss.datasets import read_label_png

    _, root, wd_trained, _, _ = trained
    data = tmp_path / "data"
    shutil.copytree(root, data)
    val_ids = (data / "ImageSets/Segmentation/val.txt").read_text().split()
    classes = (data / "classes.txt").read_text().split()
    labels = {}
    for i in val_ids:
        mask = data / "SegmentationClass" / f"{i}.png"
        labels[i] = [classes[c] for c in np.unique(read_label_png(mask)) if 0 < c < 255]
        mask.unlink()
    (data / "labels.json").write_text(json.dumps(labels))
    cfg = make_cfg(data, tmp_path)
    cfg.dataset.label_file = "labels.json"
    wd = tmp_path / "wd"
    shutil.copytree(wd_trained / "segment", wd / "segment")
    ctx = StageContext(name="eval_segment", cfg=cfg, work_dir=wd)
    eval_segment.check(ctx)  # the preflight check passes
    assert disabled_reason(eval_segment, cfg) is None
    res = run_stage("eval_segment", cfg, wd)
    assert res["skipped"] and res["num_images"] == len(val_ids) and "mIoU_crf" not in res
    assert "split 'val' has no ground-truth masks" in res["reason"] and "not scored" in caplog.text
    for d in ("pred", "pred_ss", "pred_msf"):
        assert sorted(p.stem for p in (wd / "eval_segment" / d).glob("*.png")) == sorted(val_ids)
    assert not (wd / "eval_segment" / "miou.json").exists()
    assert set(eval_segment.outputs(ctx)) == {wd / "eval_segment" / d / f"{i}.png" for i in val_ids
                                              for d in ("pred", "pred_ss", "pred_msf")}
    (data / "ImageSets/Segmentation/val.txt").unlink()
    assert re.search(r"no val split to predict and evaluate: .*val.txt: split file is missing",
                     disabled_reason(eval_segment, cfg))
    cfg.eval_segment.split = "val"  # a split named in the config must exist: not disabled, the stage fails
    assert disabled_reason(eval_segment, cfg) is None


def test_bad_inputs_fail_before_training(tmp_path, trained):
    from wsss.datasets import DatasetError

    _, root, _, _, _ = trained
    wd = tmp_path / "wd"
    labels = fake_pseudo_labels(root, wd)
    cfg = make_cfg(root, tmp_path)
    victims = sorted(labels.glob("*.png"))[:3]
    for p in victims:
        p.unlink()
    with pytest.raises(DatasetError, match=r"3 of 8 images of split 'train' have no label file"):
        run_stage("segment", cfg, wd)
    fake_pseudo_labels(root, wd)
    lab = np.array(__import__("PIL.Image", fromlist=["Image"]).open(victims[0]))
    lab[0, :3] = 9
    save_label_png(victims[0], lab)
    with pytest.raises(DatasetError, match=rf"outside the class range 0..5.*{victims[0].name}: \[9\]"):
        run_stage("segment", cfg, wd)
    fake_pseudo_labels(root, wd)
    with pytest.raises(ValueError, match="num_classes = 21"):
        run_stage("segment", make_cfg(root, tmp_path, num_classes=21), wd)
    assert not (wd / "segment" / "mmseg").exists()  # nothing was trained


def test_damaged_val_masks_fail_before_training_and_a_missing_val_split_is_said(tmp_path, trained, caplog):
    """A corrupt val mask used to become a warning ('no validation'); it is an error naming the file now."""
    import shutil

    from wsss.datasets import DatasetError

    _, root, _, _, _ = trained
    data = tmp_path / "data"
    shutil.copytree(root, data)
    wd = tmp_path / "wd"
    fake_pseudo_labels(data, wd)
    val_id = (data / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    (data / "SegmentationClass" / f"{val_id}.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=rf"{val_id}.png: cannot read label PNG"):
        run_stage("segment", make_cfg(data, tmp_path, iters=2), wd)
    assert not (wd / "segment" / "mmseg").exists()
    (data / "ImageSets/Segmentation/val.txt").unlink()  # no val split at all: trains, without validation
    res = run_stage("segment", make_cfg(data, tmp_path, iters=2, val_interval=2, checkpoint_interval=2), wd)
    assert res["iters"] == 2 and "no validation during training" in caplog.text and "val_mIoU" not in res


def test_ddp_two_processes_gloo(tmp_path):
    root = make_data(tmp_path)
    wd = tmp_path / "wd"
    fake_pseudo_labels(root, wd)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).resolve()), str(root), str(tmp_path), str(wd)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / "ddp_result.json").read_text())
    assert res["world_size"] == 2 and res["iters"] == 8
    assert (wd / "segment" / "model.pth").is_file()
    assert "Distributed training is not used" not in p.stdout + p.stderr


if __name__ == "__main__":  # the DDP test's worker: python -m torch.distributed.run ... test_segment.py ROOT TMP WD
    _root, _tmp, _wd = map(Path, sys.argv[1:4])
    _res = run_stage("segment", make_cfg(_root, _tmp, iters=8, val_interval=4, checkpoint_interval=4), _wd)
    import torch.distributed as dist

    assert not dist.is_initialized(), "segment.train must end the process group it started"
    if int(os.environ.get("RANK", 0)) == 0:
        (_tmp / "ddp_result.json").write_text(json.dumps(_res))


def test_val_images_in_the_train_split_are_named_before_training(tmp_path, caplog):
    """An image in both splits makes DeepLab's val mIoU partly a training number: named up front (a warning,
    not an error: evaluating on seen images can be deliberate)."""
    from stages import segment

    root = make_data(tmp_path)
    cfg = make_cfg(root, tmp_path)
    ctx = StageContext(name="segment", cfg=cfg, work_dir=tmp_path / "wd")
    segment.check(ctx)
    assert "val images are in the train split" not in caplog.text
    train = (root / "ImageSets/Segmentation/train.txt").read_text().split()
    with open(root / "ImageSets/Segmentation/val.txt", "a") as f:
        f.write(f"{train[0]}\n")
    segment.check(ctx)
    assert f"1 of the 4 val images are in the train split too (e.g. ['{train[0]}'])" in caplog.text
