"""Checks before training or loading: the pseudo-label folder, the class count of an mmseg config."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wsss.datasets import DatasetError, SegDataset, image_size, out_of_range_values, read_label_png


# ------------------------------------------------------------------------------------------- input checks
def check_label_folder(ds: SegDataset, label_dir: Path, suffix: str = ".png", check_sizes: bool = True,
                       ids: Sequence[str] | None = None) -> None:
    """Every image of the split (or of ``ids``) has a label PNG in ``label_dir`` with values in [0, C) or 255, of
    the image's size."""
    ids = list(ds.ids if ids is None else ids)
    if not label_dir.is_dir():
        raise DatasetError(f"{label_dir}: label folder does not exist (segment.labels_from)")
    missing = [i for i in ids if not (label_dir / f"{i}{suffix}").is_file()]
    if missing:
        raise DatasetError(f"{label_dir}: {len(missing)} of {len(ids)} images of split '{ds.split}' have no "
                           f"label file, e.g. {missing[:20]}")
    bad: list[str] = []
    wrong_size: list[str] = []
    for i in ids:
        path = label_dir / f"{i}{suffix}"
        lab = read_label_png(path)
        out = out_of_range_values(lab, ds.num_classes)
        if out:
            bad.append(f"{path.name}: {out[:5]}")
        if check_sizes:
            h, w = image_size(ds.image_path(i))
            if tuple(lab.shape) != (h, w):
                wrong_size.append(f"{path.name}: {lab.shape[1]}x{lab.shape[0]} vs image {w}x{h}")
    if bad:
        raise DatasetError(f"{label_dir}: {len(bad)} label file(s) have values outside the class range "
                           f"0..{ds.num_classes - 1} (255 = ignore): {bad[:10]}")
    if wrong_size:
        raise DatasetError(f"{label_dir}: {len(wrong_size)} label file(s) differ in size from their image: "
                           f"{wrong_size[:10]}")


def check_num_classes(mm_cfg: Any, num_classes: int, where: str) -> None:
    """The heads of an mmseg config must predict ``num_classes`` (the dataset's, background included)."""
    for head in ("decode_head", "auxiliary_head"):
        h = mm_cfg.model.get(head)
        heads = h if isinstance(h, (list, tuple)) else [h] if h else []
        for one in heads:
            if one.get("num_classes") not in (None, num_classes):
                raise ValueError(f"{where}: model.{head}.num_classes = {one['num_classes']} but the dataset has "
                                 f"{num_classes} classes (background included)")
