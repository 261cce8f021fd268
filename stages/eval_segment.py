"""Final mIoU of the trained DeepLab on the val split: single scale, multi-scale + flip, and + dense CRF.

Predictions are written as VOC-palette PNGs, one folder per variant: ``pred/`` holds the final variant (CRF when
enabled, else ms+flip, else single scale), ``pred_ss/`` and ``pred_msf/`` the others; resumable per image and
sharded across torchrun ranks. Every variant is scored with mmseg's ``IoUMetric``; ``miou.json`` has the mIoU,
aAcc, mAcc and per-class IoU of each, ``per_class.txt`` the table. ``tools/eval_miou.py`` on ``pred/`` gives the
same number. A val split without masks (image-level labels only, or unlabelled images) gets its predictions and
no score (said in a warning); a dataset without a val split file has nothing for this stage (it is disabled, and
the run says why).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "eval_segment"
INPUTS = ("segment",)
AT_PHOTO_SIZE = True  # multi-scale + flip and a dense CRF on each val photo at its own size
CONFIG_KEYS = ("dataset", "eval_segment", "segment.img_scale")


def data_splits(cfg: Any) -> tuple[str, ...]:
    return (cfg.get("eval_segment", {}).get("split", None) or "val",)


def unavailable(cfg: Any) -> str | None:
    """Why the stage has nothing to do: the dataset has no split file for the val split it evaluates by default
    (segment then trains without validation). A split named in ``eval_segment.split`` must exist."""
    if cfg.get("eval_segment", {}).get("split", None):
        return None
    from wsss.datasets import DatasetError, MissingSplit, read_split_ids
    from wsss.segmentation import val_split_name

    ds_cfg = cfg.get("dataset", {})
    try:
        read_split_ids(ds_cfg, val_split_name(ds_cfg))
    except MissingSplit as e:
        root = Path(str(ds_cfg.get("root", ""))).expanduser()
        return f"no val split to predict and evaluate: {e}" if root.is_dir() else None
    except DatasetError:
        return None  # a broken dataset config: the stages that read the dataset say what is wrong
    return None


def check(ctx) -> None:
    """Before any stage runs: the evaluated split's images (and masks, when it has them) are readable and in
    range (a DatasetError naming the file if not)."""
    ctx.dataset(_split(ctx), require_foreground=False)


def outputs(ctx) -> dict:
    final = pred_dirs(ctx.out_dir, variants(ctx.stage_cfg))
    ds = ctx.dataset(_split(ctx), require_foreground=False)
    scores = {ctx.out_dir / "miou.json": "json"} if ds.has_masks else {}
    return {d / f"{i}.png": "png" for i in ds.ids for d in final.values()} | scores


def variants(ecfg: Any) -> list[str]:
    """Evaluated variants in order; the last is the final one (written to ``pred/``)."""
    out = ["single_scale"]
    if ecfg.get("ms_flip", True):
        out.append("ms_flip")
    if ecfg.get("crf", True):
        out.append("crf")
    return out


def pred_dirs(out_dir: Path, names: list[str]) -> dict[str, Path]:
    short = {"single_scale": "pred_ss", "ms_flip": "pred_msf", "crf": "pred_crf"}
    return {n: out_dir / ("pred" if n == names[-1] else short[n]) for n in names}


def _split(ctx) -> str:
    from wsss.segmentation import val_split_name

    return ctx.stage_cfg.get("split", None) or val_split_name(ctx.cfg.dataset)


def progress(ctx) -> tuple[int, int]:
    from pipeline.parallel import count_done

    ds = ctx.dataset(_split(ctx), require_foreground=False)
    final = pred_dirs(ctx.out_dir, variants(ctx.stage_cfg))
    last = final[list(final)[-1]]
    return count_done(ds.ids, lambda i: last / f"{i}.png")


def run(ctx) -> dict[str, Any]:
    from pipeline.cache import atomic_write_json, read_json
    from pipeline.parallel import for_each_item
    from wsss.crf import crf_refine
    from wsss.maps import save_label_png
    from wsss.segmentation import format_iou_table, iou_metric, load_model, predict_probs, write_text

    ecfg = ctx.stage_cfg
    ds = ctx.dataset(_split(ctx), require_foreground=False)
    model = ctx.place(load_model(ctx.input_dir("segment"), ctx.device, num_classes=ds.num_classes))
    img_scale = tuple(model.cfg.get("img_scale", ctx.cfg.segment.get("img_scale", (2048, 512))))
    scales = tuple(float(s) for s in ecfg.get("scales", (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)))
    names = variants(ecfg)
    dirs = pred_dirs(ctx.out_dir, names)
    preset = ecfg.get("crf_preset", "deeplab")

    def done(id_: str) -> bool:
        return all((d / f"{id_}.png").exists() for d in dirs.values())

    def work(id_: str) -> None:
        image = ds.image(id_)
        probs = predict_probs(model, image, img_scale)
        save_label_png(dirs["single_scale"] / f"{id_}.png", probs.argmax(0).astype(np.uint8))
        if "ms_flip" in dirs:
            probs = predict_probs(model, image, img_scale, scales=scales, flip=True)
            save_label_png(dirs["ms_flip"] / f"{id_}.png", probs.argmax(0).astype(np.uint8))
        if "crf" in dirs:
            # a writable copy: pydensecrf rejects the read-only array PIL hands out
            refined = crf_refine(np.array(image), probs, preset)
            save_label_png(dirs["crf"] / f"{id_}.png", refined.argmax(0).astype(np.uint8))

    t0 = time.perf_counter()
    # one process: the model runs batched on the device (CPU threads or GPU); ranks take disjoint shards
    for_each_item(ds.ids, work, done, workers=1, desc="eval_segment", log=ctx.log)
    seconds = time.perf_counter() - t0
    if not ctx.is_main:  # for_each_item waited for every rank's shard; rank 0 scores them all
        return {}
    final_dir = dirs[names[-1]]
    products = {f"DeepLab predictions ({ds.split}, {names[-1].replace('_', ' ')})": str(final_dir)}
    if not ds.has_masks:
        msg = (f"split '{ds.split}' has no ground-truth masks: the {len(ds.ids)} predictions are in {final_dir}, "
               "not scored")
        ctx.log.warning("eval_segment: %s", msg)
        return {"skipped": True, "reason": msg, "split": ds.split, "num_images": len(ds.ids),
                "pred_dir": str(final_dir), "eval_seconds": round(seconds, 1), "products": products}

    from wsss.datasets import read_label_png

    results: dict[str, Any] = {}
    for name, d in dirs.items():
        missing = [i for i in ds.ids if not (d / f"{i}.png").exists()]
        if missing:
            raise FileNotFoundError(f"{d}: {len(missing)} predictions missing, e.g. {missing[:10]}")

        def pairs(d: Path = d):
            for i in ds.ids:
                yield read_label_png(d / f"{i}.png"), ds.mask(i)

        results[name] = iou_metric(pairs, ds.classes)
        results[name]["pred_dir"] = str(d)
    table = format_iou_table(results, ds.classes)
    ctx.log.info("eval_segment on %s (%d images):\n%s", ds.split, len(ds.ids), table)
    write_text(ctx.out_dir / "per_class.txt", table)
    summary = {f"mIoU_{n}": results[n]["mIoU"] for n in names}
    # a model that predicts (nearly) only background is a failure, not a low score: say so
    final = results[names[-1]]
    fg_iou = [v for c, v in final["per_class"].items() if c != ds.classes[0] and v is not None]
    if fg_iou and max(fg_iou) < 1.0:
        ctx.log.warning("eval_segment: every foreground class has IoU < 1%% (%s): the model predicts almost only "
                        "background; check the training labels (segment.labels_from) and the loss curve",
                        names[-1])
    atomic_write_json(ctx.out_dir / "miou.json", dict(split=ds.split, num_images=len(ds.ids), variants=results,
                                                      scales=scales, img_scale=img_scale, crf_preset=preset,
                                                      **summary))
    seg_res = ctx.input_dir("segment") / "results.json"
    kind = (read_json(seg_res).get("labels_kind", "unknown") if seg_res.is_file() else "unknown")
    rows = [{"name": f"final DeepLab, {n.replace('_', ' ')} ({ds.split})", "mIoU": results[n]["mIoU"], "kind": kind}
            for n in names]
    return dict(summary, split=ds.split, num_images=len(ds.ids), eval_seconds=round(seconds, 1),
                labels_kind=kind, rows=rows, products=products)
