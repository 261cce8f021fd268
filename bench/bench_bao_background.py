"""How much foreground BAO's learned background leaves, and what a background-logit offset would change, on a
finished run.

BAO's student is trained with a class-balanced cross-entropy (background and foreground pixels averaged
separately), which weights a foreground pixel by about (background pixels / foreground pixels) of its labels; a
model trained that way over-predicts the foreground at the argmax. Logit adjustment undoes such a weighting by
adding c ~ log(that ratio) to the background logit. This benchmark labels every reported train image (the train
split minus the calibration images) again with the run's EMA teacher and the stage's own inference
(`wsss.models.bao.predict_maps`, scales bounded by `seeds.max_image_side`), once per offset c, and reports:
- the BAO labels (argmax over the normalised [background, classes]) and the seeds against the learned background
  (argmax over [background, seed maps], the seed rule of the refinement stages): mIoU and foreground share;
- the CRF stage's pseudo-labels with that background (the config's crf section), and with the constant
  background 0.5 (the rule of BAO's first labels, 1 - max_c map_c, no tuning) as a reference.
Offset 0 must reproduce the run's stored bao/ and crf/ labels ('stored ...' lines: the reproduction check).

    python bench/bench_bao_background.py --root /tmp/d/rc_s3 --work W [--offsets 0,0.5,1,1.5] [--images N]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.finished_run import open_run, reported_ids, run_parser
from stages.bao import inference_scales
from wsss.crf import crf_params, seed_label_crfs
from wsss.maps import SeedMaps, load_image_seeds, seed_labels
from wsss.metrics import ConfusionMatrix, summarize
from wsss.models.bao import BAOStudent, predict_maps
from wsss.models.classifier import load_classifier
from wsss.transforms import bounded_scales, to_tensor

CONSTANT_BG = 0.5


def offset_model(student, offset: float):
    """The student with ``offset`` added to its background logit (channel 0)."""
    import torch

    class Offset(torch.nn.Module):
        def forward(self, x, labels):
            logits, scores = student(x, labels)
            return torch.cat([logits[:, :1] + offset, logits[:, 1:]], 1), scores

    return Offset()


def main() -> None:
    import torch

    ap = run_parser(__doc__, "classify, seeds, bao, crf")
    ap.add_argument("--offsets", default="0,0.5,1,1.5", help="background-logit offsets c, comma-separated")
    ap.add_argument("--images", type=int, default=0, help="first N reported images (0: all)")
    args = ap.parse_args()
    cfg, ds, calib = open_run(args.root, args.work, args.config)  # 'auto' values resolved from the same data
    ids = reported_ids(ds, calib, args.images)
    offsets = [float(c) for c in args.offsets.split(",")]
    if 0.0 not in offsets:
        offsets.insert(0, 0.0)  # the reproduction check
    torch.set_num_threads(1)  # as each of the bao stage's worker processes runs
    bcfg = dict(cfg.bao)
    classifier = load_classifier(args.work / "classify/model.pth", dict(cfg.classify), ds.num_fg, "cpu")
    teacher = BAOStudent.from_classifier(classifier, hidden=int(bcfg.get("hidden", 256)),
                                         frozen_backbone=bcfg.get("freeze_backbone", False),
                                         head_levels=bcfg.get("head_levels"), head_dims=bcfg.get("head_dims"))
    state = torch.load(args.work / "bao/model.pth", map_location="cpu", weights_only=True)["state_dict"]
    teacher.load_state_dict({k[len("teacher."):]: v for k, v in state.items() if k.startswith("teacher.")})
    teacher.eval()
    if cfg.get("runtime", {}).get("channels_last", True):  # the stage's memory layout (ctx.place)
        teacher.to(memory_format=torch.channels_last)
    models = {c: offset_model(teacher, c) for c in offsets}
    scales, max_side = inference_scales(cfg), cfg.get("seeds", {}).get("max_image_side")
    flip = bool(bcfg.get("flip", True))
    params = crf_params(cfg.crf, (50, 5, 10))
    params["gt_prob"] = float(cfg.crf.get("gt_prob", 0.7))
    rows = [*(f"{kind} c={c:g}" for c in offsets for kind in ("bao", "seeds+bg", "crf")), f"crf bg={CONSTANT_BG}"]
    conf = {r: ConfusionMatrix(ds.num_classes) for r in rows}
    fg = {r: [0, 0] for r in rows}
    differ = {"bao": 0, "crf": 0}
    t0 = time.time()
    for id_ in ids:
        image, seeds = load_image_seeds(ds, id_, args.work / "seeds/maps")
        keys, gt = seeds.keys, ds.mask(id_)
        x = to_tensor(image)[0]
        lab = torch.from_numpy(ds.labels(id_))
        found = {}
        backgrounds = []
        with torch.inference_mode():
            for c in offsets:
                maps = predict_maps(models[c], x, lab, bounded_scales(image.shape[:2], scales, max_side),
                                    flip).numpy()
                bg, cls = maps[0], maps[1:][keys]
                found[f"bao c={c:g}"] = seed_labels(SeedMaps(keys=keys, stride4=cls[:, :1, :1], high=cls), 0.0,
                                                    background=bg)
                found[f"seeds+bg c={c:g}"] = seed_labels(seeds, 0.0, background=bg)
                backgrounds.append(bg.astype(np.float16).astype(np.float32))  # as the stage stores it
        crfs = seed_label_crfs(image, seeds.high, keys, [*backgrounds, CONSTANT_BG], params)
        found.update({f"crf c={c:g}": lab_c for c, lab_c in zip(offsets, crfs)})
        found[f"crf bg={CONSTANT_BG}"] = crfs[-1]
        for r, labels in found.items():
            conf[r].update(labels, gt)
            fg[r][0] += int((labels > 0).sum())
            fg[r][1] += labels.size
        for kind, folder in (("bao", "bao/labels"), ("crf", "crf/labels")):
            stored = np.asarray(Image.open(args.work / folder / f"{id_}.png"))
            differ[kind] += int((stored != found[f"{kind} c=0"]).sum())
    gt_fg = [0, 0]
    for id_ in ids:
        m = ds.mask(id_)
        gt_fg[0] += int(((m > 0) & (m != 255)).sum())
        gt_fg[1] += int((m != 255).sum())
    print(f"{len(ids)} images, {time.time() - t0:.0f} s; classes {list(ds.classes)}; ground-truth foreground share "
          f"{gt_fg[0] / gt_fg[1]:.3f}")
    for kind, n in differ.items():
        print(f"stored {kind} labels reproduced at c=0: {n} pixels differ")
    for r in rows:
        s = summarize(conf[r], list(ds.classes))
        print(f"{r:16s} mIoU {s['mIoU']:.2f}  foreground share {fg[r][0] / fg[r][1]:.3f}  "
              f"IoU {[None if v is None else round(v, 1) for v in s['iou']]}")


if __name__ == "__main__":
    main()
