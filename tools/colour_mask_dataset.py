#!/usr/bin/env python
"""A copy of a VOC-layout dataset as CVAT's "Segmentation mask 1.1" export writes it: RGB colour masks, a
``labelmap.txt`` (``name:r,g,b::``, background listed second, CVAT's own colours), no ``classes.txt``.

Images are linked (hard links where possible, else copied), split files copied. The class order of the labelmap
is the source's, so the pipeline on the copy must give the source's numbers exactly (bench/README.md "Colour
masks"). Ignore (255) is written in VOC's boundary colour 224,224,192.

    python tools/colour_mask_dataset.py --src data/realcut_small --out data/realcut_cvat
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cache import link_or_copy  # noqa: E402
from wsss.datasets import IGNORE, read_classes, read_label_png  # noqa: E402
from wsss.datasets.colors import VOC_VOID  # noqa: E402


def label_colours(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) distinct colours, none black, grey or VOC's void colour (a decoder must not guess them)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, int, int]] = []
    while len(out) < n:
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        if c[0] == c[1] == c[2] or c == VOC_VOID or c in out:
            continue
        out.append(c)  # type: ignore[arg-type]
    return np.array(out, np.uint8)


def make_colour_copy(src: Path, out: Path) -> int:
    """Write the copy; returns the number of masks written."""
    classes = read_classes(src / "classes.txt")
    colours = label_colours(len(classes))
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "ImageSets", out / "ImageSets", dirs_exist_ok=True)
    order = [1, 0, *range(2, len(classes))]  # background second, as a hand-made labelmap may have it
    (out / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{classes[i]}:{','.join(str(v) for v in colours[i])}::\n" for i in order))
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(classes)] = colours
    lut[IGNORE] = VOC_VOID
    n = 0
    for mask_path in sorted((src / "SegmentationClass").glob("*.png")):
        Image.fromarray(lut[read_label_png(mask_path)]).save(out / "SegmentationClass" / mask_path.name)
        image = src / "JPEGImages" / f"{mask_path.stem}.jpg"
        target = out / "JPEGImages" / image.name
        if image.is_file() and not target.exists():
            link_or_copy(image, target)
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="a VOC-layout dataset with classes.txt")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    n = make_colour_copy(args.src, args.out)
    print(f"{args.out}: {n} colour masks, labelmap.txt")


if __name__ == "__main__":
    main()
