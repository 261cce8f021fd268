"""Reading a COCO instances JSON: structural validation with errors that name the file and the entry, and the
category id -> mask label mapping."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

IGNORE = 255  # the mask value of crowd regions; C categories must leave it free


class CocoFormatError(ValueError):
    """The annotation file is not a usable COCO instances file (the message names the file and the entry)."""


def load_instances(ann_file: Path) -> dict[str, Any]:
    """Read and structurally validate an instances JSON, raising errors that name the file and entry."""
    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{ann_file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CocoFormatError(f"{ann_file}: top level is {type(data).__name__}, expected a COCO instances object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise CocoFormatError(
                f"{ann_file}: missing or non-list '{key}'; expected a COCO *instances* file "
                "(images, annotations, categories) — captions/keypoints-only files do not carry segmentations")
    if not data["categories"]:
        raise CocoFormatError(f"{ann_file}: 'categories' is empty")
    cat_ids = set()
    for c in data["categories"]:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise CocoFormatError(f"{ann_file}: category entry {c!r} lacks an integer 'id' and a string 'name'")
        if c["id"] in cat_ids:
            raise CocoFormatError(f"{ann_file}: duplicate category id {c['id']}")
        cat_ids.add(c["id"])
    if len(cat_ids) >= IGNORE:
        raise CocoFormatError(f"{ann_file}: {len(cat_ids)} categories do not fit a uint8 mask with 255 = ignore")
    img_ids = set()
    stems = set()
    for im in data["images"]:
        if not isinstance(im, dict):
            raise CocoFormatError(f"{ann_file}: image entry {im!r} is not an object")
        for key, typ in (("id", int), ("file_name", str), ("height", int), ("width", int)):
            if not isinstance(im.get(key), typ):
                raise CocoFormatError(f"{ann_file}: image entry {short(im)} lacks an integer/str '{key}'")
        if im["height"] <= 0 or im["width"] <= 0:
            raise CocoFormatError(f"{ann_file}: image id {im['id']} has size {im['height']}x{im['width']}")
        if im["id"] in img_ids:
            raise CocoFormatError(f"{ann_file}: duplicate image id {im['id']}")
        stem = Path(im["file_name"]).stem
        if stem in stems:
            raise CocoFormatError(f"{ann_file}: two images share the file stem '{stem}'")
        img_ids.add(im["id"])
        stems.add(stem)
    for a in data["annotations"]:
        if not isinstance(a, dict):
            raise CocoFormatError(f"{ann_file}: annotation entry {short(a)} is not an object")
        for key in ("id", "image_id", "category_id"):
            if not isinstance(a.get(key), int):
                raise CocoFormatError(f"{ann_file}: annotation {short(a)} lacks an integer '{key}'")
        if "segmentation" not in a:
            raise CocoFormatError(f"{ann_file}: annotation id {a['id']} has no 'segmentation' "
                                  "(not an instances file?)")
        if a["image_id"] not in img_ids:
            raise CocoFormatError(f"{ann_file}: annotation id {a['id']} refers to unknown image id {a['image_id']}")
        if a["category_id"] not in cat_ids:
            raise CocoFormatError(
                f"{ann_file}: annotation id {a['id']} refers to unknown category id {a['category_id']}")
        if a.get("iscrowd", 0) not in (0, 1):
            raise CocoFormatError(f"{ann_file}: annotation id {a['id']} has iscrowd={a.get('iscrowd')!r}")
    return data


def short(obj: Any) -> str:
    s = repr(obj)
    return s if len(s) <= 120 else s[:117] + "..."


def has_geometry(segm: Any) -> bool:
    """True when a segmentation can cover pixels: an RLE, or a polygon with at least three points."""
    if isinstance(segm, dict):
        return True
    return isinstance(segm, list) and any(isinstance(p, list) and len(p) >= 6 for p in segm)


def category_mapping(categories: Sequence[dict[str, Any]]) -> tuple[dict[int, int], list[str]]:
    """COCO category id -> contiguous mask label (1..C, in id order) and the class-name list (0 = background)."""
    cats = sorted(categories, key=lambda c: c["id"])
    return {c["id"]: i + 1 for i, c in enumerate(cats)}, ["background"] + [c["name"] for c in cats]
