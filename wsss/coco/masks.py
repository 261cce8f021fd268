"""Rasterising one image's COCO annotations into a semantic mask (runs in the worker processes).

Crowd regions are painted 255 first, then the non-crowd instances in decreasing pixel-area order (ties: lower
annotation id first), so a smaller instance lands on top of a larger one it overlaps (docs/COCO.md).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from wsss.coco.annotations import IGNORE, CocoFormatError, short
from wsss.maps import save_label_png

# Polygon points may sit a little outside the image (annotation tools clip loosely); beyond this margin the
# image's width/height in the JSON cannot be the frame the polygon was drawn on.
_POLY_MARGIN_FRAC = 0.02
_POLY_MARGIN_PX = 2.0


def _ann_rle(ann: dict[str, Any], h: int, w: int, where: str) -> dict[str, Any] | None:
    """One annotation's segmentation as a single RLE of size (h, w); None if it has no usable geometry.

    Same conversion as ``COCO.annToRLE``, plus the checks that the segmentation belongs to an h x w image.
    Polygons with fewer than three points are dropped (pycocotools would read a 4-value one as a box).
    """
    segm = ann["segmentation"]
    aid = ann["id"]
    if isinstance(segm, list):
        polys = []
        for p in segm:
            if not isinstance(p, list) or len(p) % 2 or not all(isinstance(v, (int, float)) for v in p):
                raise CocoFormatError(f"{where}: annotation id {aid} has a malformed polygon {short(p)}")
            if len(p) >= 6:
                polys.append(p)
        if not polys:
            return None
        xy = np.asarray([v for p in polys for v in p], dtype=np.float64).reshape(-1, 2)
        mx, my = _POLY_MARGIN_FRAC * w + _POLY_MARGIN_PX, _POLY_MARGIN_FRAC * h + _POLY_MARGIN_PX
        if xy[:, 0].min() < -mx or xy[:, 0].max() > w + mx or xy[:, 1].min() < -my or xy[:, 1].max() > h + my:
            raise CocoFormatError(
                f"{where}: annotation id {aid} polygon spans x {xy[:, 0].min():.1f}..{xy[:, 0].max():.1f}, "
                f"y {xy[:, 1].min():.1f}..{xy[:, 1].max():.1f}, outside the image size {w}x{h} (WxH) given "
                f"for image id {ann['image_id']}: the image's width/height in the JSON disagree with the annotation")
        return mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        size = list(segm["size"])
        if size != [h, w]:
            raise CocoFormatError(
                f"{where}: annotation id {aid} RLE size {size} (HxW) disagrees with the size "
                f"{h}x{w} of image id {ann['image_id']}")
        if isinstance(segm["counts"], list):
            if sum(segm["counts"]) != h * w:
                raise CocoFormatError(
                    f"{where}: annotation id {aid} uncompressed RLE counts sum to {sum(segm['counts'])}, "
                    f"not {h}x{w}={h * w}")
            return mask_utils.frPyObjects(segm, h, w)
        return segm
    raise CocoFormatError(f"{where}: annotation id {aid} segmentation is neither polygons nor RLE: {short(segm)}")


def render_mask(image: dict[str, Any], anns: Sequence[dict[str, Any]], cat_to_label: dict[int, int],
                where: str = "annotations") -> np.ndarray:
    """Semantic uint8 mask of one image: crowd -> 255, then instances by decreasing area (smaller on top).

    ``where`` names the annotation file in error messages.
    """
    h, w = image["height"], image["width"]
    out = np.zeros((h, w), np.uint8)
    crowd, things = [], []
    for a in anns:
        rle = _ann_rle(a, h, w, where)
        if rle is None:
            continue
        (crowd if a.get("iscrowd", 0) else things).append((a, rle))
    for _, rle in crowd:
        m = mask_utils.decode(rle)
        if m.shape != (h, w):
            raise CocoFormatError(f"{where}: crowd RLE decodes to {m.shape}, image id {image['id']} is {h}x{w}")
        out[m.astype(bool)] = IGNORE
    areas = [float(mask_utils.area(rle)) for _, rle in things]
    order = sorted(range(len(things)), key=lambda i: (-areas[i], things[i][0]["id"]))
    for i in order:
        a, rle = things[i]
        m = mask_utils.decode(rle)
        if m.shape != (h, w):
            raise CocoFormatError(f"{where}: annotation id {a['id']} decodes to {m.shape}, image is {h}x{w}")
        out[m.astype(bool)] = cat_to_label[a["category_id"]]
    return out


def convert_one(task: tuple) -> tuple[str, bool, int]:
    """Worker: render + save one image's PNG unless it exists. Returns (stem, written, ignored pixel count)."""
    image, anns, cat_to_label, png_path, img_path, where = task
    stem = Path(png_path).stem
    h, w = image["height"], image["width"]
    if os.path.exists(png_path):
        with Image.open(png_path) as im:
            if im.size != (w, h):
                raise CocoFormatError(f"{png_path}: existing mask is {im.size[0]}x{im.size[1]} (WxH), "
                                      f"{where} says {w}x{h}; delete it to regenerate")
            return stem, False, int((np.asarray(im) == IGNORE).sum())
    if not os.path.isfile(img_path):
        raise FileNotFoundError(f"image file not found: {img_path} (listed in {where} as image id {image['id']})")
    with Image.open(img_path) as im:  # header only: checks the JSON size matches the real image
        if im.size != (w, h):
            raise CocoFormatError(f"{img_path} is {im.size[0]}x{im.size[1]} (WxH) but {where} gives "
                                  f"{w}x{h} for image id {image['id']}")
    mask = render_mask(image, anns, cat_to_label, where)
    save_label_png(png_path, mask)
    return stem, True, int((mask == IGNORE).sum())
