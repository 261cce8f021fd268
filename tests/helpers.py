"""Small VOC-layout datasets made by the tests themselves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from wsss.maps import save_label_png


def make_voc_layout(root: Path, masks: dict[str, np.ndarray], split: str = "train", classes: list[str] | None = None,
                    images: dict[str, np.ndarray] | None = None, mask_dir: str = "SegmentationClass",
                    seed: int = 0) -> Path:
    """Write JPEGImages/, <mask_dir>/, ImageSets/Segmentation/<split>.txt (and classes.txt if given)."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/Segmentation").mkdir(parents=True, exist_ok=True)
    for id_, mask in masks.items():
        img = images[id_] if images and id_ in images else (
            rng.integers(0, 60, (*mask.shape, 3)) + (mask[..., None] % 255) * 37 % 190).astype(np.uint8)
        Image.fromarray(img).save(root / "JPEGImages" / f"{id_}.jpg", quality=95)
        save_label_png(root / mask_dir / f"{id_}.png", mask)
    split_file = root / "ImageSets/Segmentation" / f"{split}.txt"
    split_file.write_text("".join(f"{i}\n" for i in masks))
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def blob_mask(h: int, w: int, objects: list[tuple[int, int, int, int, int]]) -> np.ndarray:
    """A mask with rectangles (label, y0, x0, y1, x1) and a 1-px ignore border around each."""
    m = np.zeros((h, w), np.uint8)
    for lab, y0, x0, y1, x1 in objects:
        m[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1] = 255
        m[y0:y1, x0:x1] = lab
    return m


def link_stage_dirs(work_dir: Path, shared_work: Path, stages: tuple[str, ...]) -> None:
    """Make ``work_dir`` and link its input stage folders ``stages`` to the finished ones under ``shared_work``
    (a second run of one stage with other options, without recomputing its inputs)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        if not (work_dir / stage).exists():
            (work_dir / stage).symlink_to(shared_work / stage)
