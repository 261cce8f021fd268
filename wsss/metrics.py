"""Confusion matrix -> mIoU, per-class IoU / precision / recall, tables and JSON: the one mIoU of the project.

Every stage that reports a segmentation number (seeds, pseudo-labels, DeepLab predictions) goes through
:class:`ConfusionMatrix` and :func:`summarize`, so the numbers are comparable across stages and with
MMSegmentation's ``IoUMetric`` (same semantics, checked by ``tests/wsss/test_metrics.py``):

- ground-truth pixels equal to ``ignore_index`` are skipped entirely (their prediction does not count);
- a prediction of ``ignore_index`` on a valid ground-truth pixel counts as a miss for the ground-truth class
  (it enlarges that class's ground-truth area, never any class's predicted area), as in mmseg;
- per-class IoU is NaN when the class is absent from both ground truth and prediction (union 0), and the
  mean IoU is the mean over the remaining classes (mmseg's ``nanmean``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsss.datasets import VOC_CLASSES, read_classes, read_label_png  # noqa: E402,F401  (one reader, one class list)
from wsss.datasets.colors import ColorTable, read_mask
from wsss.datasets.layout import ids_in

# COCO 2014 "things" in category-id order (label k + 1 = k-th category by id), background first.
COCO_CLASSES: tuple[str, ...] = (
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)

class ConfusionMatrix:
    """Pixel counts ``matrix[gt, pred]`` accumulated over images, plus misses predicted as ``ignore_index``.

    Only counts are stored, so matrices from parallel workers or resumed runs can be merged exactly.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} collides with a class index (num_classes={num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        # gt pixels of class c whose prediction is ignore_index (mmseg counts them as misses of class c)
        self.unpredicted = np.zeros(num_classes, dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image (or any same-shaped pair of integer label arrays)."""
        pred = np.asarray(pred)
        gt = np.asarray(gt)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction shape {pred.shape} != ground-truth shape {gt.shape}")
        for name, arr in (("prediction", pred), ("ground truth", gt)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name} must be an integer label array, got dtype {arr.dtype}")
        n, ign = self.num_classes, self.ignore_index
        gt = gt.ravel()
        pred = pred.ravel()
        bad_gt = (gt != ign) & ((gt < 0) | (gt >= n))
        if bad_gt.any():
            raise ValueError(f"ground truth has values {_some_values(gt[bad_gt])} outside [0, {n}) and != {ign}")
        bad_pred = (pred != ign) & ((pred < 0) | (pred >= n))
        if bad_pred.any():
            raise ValueError(f"prediction has values {_some_values(pred[bad_pred])} outside [0, {n}) and != {ign}")
        valid = gt != ign
        g = gt[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        unpred = p == ign
        if unpred.any():
            self.unpredicted += np.bincount(g[unpred], minlength=n)
            g, p = g[~unpred], p[~unpred]
        self.matrix += np.bincount(g * n + p, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (same class count and ignore index); returns self."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge confusion matrices with (num_classes, ignore_index) = "
                f"({self.num_classes}, {self.ignore_index}) and ({other.num_classes}, {other.ignore_index})"
            )
        self.matrix += other.matrix
        self.unpredicted += other.unpredicted
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "matrix": self.matrix.tolist(),
            "unpredicted": self.unpredicted.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConfusionMatrix:
        cm = cls(int(d["num_classes"]), int(d.get("ignore_index", 255)))
        m = np.asarray(d["matrix"], dtype=np.int64)
        if m.shape != cm.matrix.shape:
            raise ValueError(f"matrix shape {m.shape} does not match num_classes={cm.num_classes}")
        cm.matrix[...] = m
        if d.get("unpredicted") is not None:
            cm.unpredicted[...] = np.asarray(d["unpredicted"], dtype=np.int64)
        return cm


def _some_values(values: np.ndarray, k: int = 5) -> list[int]:
    return [int(v) for v in np.unique(values)[:k]]


def _pct(x: float) -> float | None:
    """Percent as a plain float; NaN (undefined) becomes None so the dict is JSON-ready."""
    return None if not np.isfinite(x) else float(x * 100.0)


def summarize(conf: ConfusionMatrix, class_names: Sequence[str]) -> dict[str, Any]:
    """mIoU and per-class IoU / precision / recall in percent (None where undefined), mmseg semantics."""
    if len(class_names) != conf.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {conf.num_classes}-class confusion matrix")
    m = conf.matrix.astype(np.float64)
    tp = np.diag(m)
    gt_area = m.sum(axis=1) + conf.unpredicted
    pred_area = m.sum(axis=0)
    union = gt_area + pred_area - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        precision = np.where(pred_area > 0, tp / pred_area, np.nan)
        recall = np.where(gt_area > 0, tp / gt_area, np.nan)
    present = union > 0
    total = gt_area.sum()
    return {
        "mIoU": _pct(float(np.mean(iou[present]))) if present.any() else None,
        "mean_precision": _pct(float(np.nanmean(precision))) if np.isfinite(precision).any() else None,
        "mean_recall": _pct(float(np.nanmean(recall))) if np.isfinite(recall).any() else None,
        "pixel_accuracy": _pct(float(tp.sum() / total)) if total > 0 else None,
        "num_pixels": int(total),
        "num_classes_evaluated": int(present.sum()),
        "class_names": list(class_names),
        "iou": [_pct(v) for v in iou],
        "precision": [_pct(v) for v in precision],
        "recall": [_pct(v) for v in recall],
        "gt_pixels": [int(v) for v in gt_area],
        "pred_pixels": [int(v) for v in pred_area],
        "confusion_matrix": conf.to_dict(),
    }


def format_table(summary: dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """Per-class table (class | IoU | precision | recall) followed by the mean row; '-' marks undefined."""
    names = list(class_names) if class_names is not None else list(summary["class_names"])

    def f(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    w = max([len("class"), len("mean")] + [len(n) for n in names])
    lines = [f"{'class':<{w}} | {'IoU':>6} | {'prec.':>6} | {'recall':>6}", "-" * (w + 30)]
    for i, name in enumerate(names):
        lines.append(
            f"{name:<{w}} | {f(summary['iou'][i]):>6} | {f(summary['precision'][i]):>6} | {f(summary['recall'][i]):>6}"
        )
    lines.append("-" * (w + 30))
    lines.append(
        f"{'mean':<{w}} | {f(summary['mIoU']):>6} | {f(summary['mean_precision']):>6} | {f(summary['mean_recall']):>6}"
    )
    lines.append(
        f"mIoU {f(summary['mIoU'])}  pixel accuracy {f(summary['pixel_accuracy'])}  "
        f"({summary['num_classes_evaluated']}/{len(names)} classes present)"
    )
    return "\n".join(lines)


def read_class_names(spec: str | os.PathLike) -> tuple[str, ...]:
    """Class names from ``'voc'``, ``'coco'`` or a classes.txt (``wsss.datasets.read_classes``; a list without
    a background line gets ``background`` prepended, because label 0 is background in every mask)."""
    key = str(spec)
    if key.lower() == "voc":
        return VOC_CLASSES
    if key.lower() == "coco":
        return COCO_CLASSES
    if not Path(key).is_file():
        raise FileNotFoundError(f"classes: {key!r} is neither 'voc', 'coco' nor an existing classes file")
    return tuple(read_classes(key, require_background=False))


def read_split_ids(path: str | os.PathLike) -> list[str]:
    """Image ids from a split file, read as every stage reads it (:func:`wsss.datasets.layout.ids_in`: VOC
    ImageSets lines, or the 'image-path label-path' lines of train_aug lists; an id listed twice is an error)."""
    ids = ids_in(Path(path))
    if not ids:
        raise ValueError(f"{path}: split file lists no ids")
    return ids


def missing_files(folder: Path, ids: Sequence[str], suffix: str = ".png") -> list[str]:
    return [i for i in ids if not (folder / f"{i}{suffix}").is_file()]


def scaled_to(pred: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A label map made on a downscaled copy of the image (``tools/downscale_dataset.py``: the ratio kept, each
    side rounded) scaled to ``shape`` by nearest neighbour; None when its sides are not one scale of ``shape``'s
    (a turned or cropped image)."""
    (h, w), (ph, pw) = shape[:2], pred.shape[:2]
    s = max(ph, pw) / max(h, w)
    if abs(h * s - ph) > 1 or abs(w * s - pw) > 1:
        return None
    rows = np.minimum(((np.arange(h) + 0.5) * ph / h).astype(np.int64), ph - 1)  # each pixel's centre
    cols = np.minimum(((np.arange(w) + 0.5) * pw / w).astype(np.int64), pw - 1)
    return pred[rows[:, None], cols[None, :]]


def confusion_of_folders(pred_dirs: Mapping[str, str | os.PathLike], gt_path: Callable[[str], Path],
                         ids: Sequence[str], num_classes: int, ignore_index: int = 255, workers: int = 1,
                         log: Any = None, colours: ColorTable | None = None,
                         resize_pred: bool = False) -> dict[str, ConfusionMatrix]:
    """One pass over the images: a confusion matrix per folder of ``<id>.png`` label maps against the masks.

    Every folder must hold every id (a partial folder must not give a flattering number): the error lists
    the missing ones. Size mismatches and out-of-range values are errors naming both files; with
    ``resize_pred`` a label map of another size but the same aspect (made on downscaled copies) is scaled to
    its mask's size first (:func:`scaled_to`). ``colours``: colour PNGs (masks or predictions) are decoded with
    it; without it a colour PNG is an error.
    """
    from pipeline.parallel import map_chunks

    dirs = {name: Path(d) for name, d in pred_dirs.items()}
    for name, d in dirs.items():
        missing = missing_files(d, ids)
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(ids)} label maps ({name}) missing in {d}, "
                                    f"e.g. {missing[:20]}")

    def read(path: Path) -> np.ndarray:
        return read_label_png(path) if colours is None else read_mask(path, colours)

    def work(chunk: list[str]) -> dict[str, ConfusionMatrix]:
        cms = {name: ConfusionMatrix(num_classes, ignore_index) for name in dirs}
        for i in chunk:
            gt_file = gt_path(i)
            gt = read(gt_file)
            for name, d in dirs.items():
                pred_file = d / f"{i}.png"
                pred = read(pred_file)
                if resize_pred and pred.shape[:2] != gt.shape[:2]:
                    scaled = scaled_to(pred, gt.shape)
                    if scaled is None:
                        raise ValueError(f"{pred_file}: prediction size {pred.shape} is not a scaled copy of the "
                                         f"ground-truth size {gt.shape} ({gt_file}); a turned or cropped image?")
                    pred = scaled
                if pred.shape != gt.shape:
                    hint = "" if resize_pred else (" (predictions made on downscaled copies: tools/eval_miou.py "
                                                   "--resize-pred scales them to the masks' size)")
                    raise ValueError(f"{pred_file}: prediction size {pred.shape} != ground-truth size {gt.shape} "
                                     f"({gt_file}){hint}")
                try:
                    cms[name].update(pred, gt)
                except ValueError as e:
                    raise ValueError(f"{pred_file} vs {gt_file}: {e}") from None
        return cms

    total = {name: ConfusionMatrix(num_classes, ignore_index) for name in dirs}
    for part in map_chunks(list(ids), work, workers=workers, desc="evaluate", log=log):
        for name, cm in part.items():  # type: ignore[union-attr]
            total[name].merge(cm)
    return total


def evaluate_folder(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    ids: Iterable[str] | None,
    class_names: Sequence[str],
    ignore_index: int = 255,
    workers: int = 1,
    colours: ColorTable | None = None,
    resize_pred: bool = False,
) -> dict[str, Any]:
    """Compare ``pred_dir/<id>.png`` with ``gt_dir/<id>.png`` for each id (all gt PNGs when ``ids`` is None);
    colour PNGs are decoded with ``colours``; ``resize_pred`` scales predictions made on downscaled copies to
    their mask's size (:func:`confusion_of_folders`).

    Missing predictions are an error listing them (a partial folder must not give a flattering number).
    Returns :func:`summarize`'s dict plus ``num_images``, ``pred_dir`` and ``gt_dir``.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d, what in ((pred_dir, "prediction"), (gt_dir, "ground-truth")):
        if not d.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {d}")
    if ids is None:  # hidden files: macOS '._x.png' forks, half-written temporaries
        ids = sorted(p.stem for p in gt_dir.glob("*.png") if not p.name.startswith("."))
    ids = list(ids)
    if not ids:
        raise ValueError(f"no images to evaluate (ground-truth folder {gt_dir} has no PNGs or the id list is empty)")
    missing_gt = missing_files(gt_dir, ids)
    if missing_gt:
        raise FileNotFoundError(
            f"{len(missing_gt)} of {len(ids)} ground-truth PNGs missing in {gt_dir}, e.g. {missing_gt[:20]}"
        )
    missing = missing_files(pred_dir, ids)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(ids)} predictions missing in {pred_dir}, e.g. {missing[:20]}"
        )
    conf = confusion_of_folders({"pred": pred_dir}, lambda i: gt_dir / f"{i}.png", ids, len(class_names),
                                ignore_index, workers, colours=colours, resize_pred=resize_pred)["pred"]
    out = summarize(conf, class_names)
    out.update(num_images=len(ids), pred_dir=str(pred_dir), gt_dir=str(gt_dir))
    return out
