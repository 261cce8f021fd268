"""MS COCO 2014 instance annotations -> VOC-layout semantic masks and image-level label lists.

WSSS on COCO trains the classifier on image-level labels and evaluates seeds / pseudo-labels against
semantic masks; COCO only ships instance polygons/RLE, so this module rasterises them once into the layout
the rest of the pipeline reads for VOC::

    <out>/SegmentationClass/<split>/<stem>.png   uint8 palette PNG, 0 = background, k = k-th category, 255 = ignore
    <out>/ImageSets/<split>.txt                  images with at least one non-crowd instance (sorted stems)
    <out>/ImageSets/<split>_unlabeled.txt        images without any non-crowd instance (kept out of the split)
    <out>/labels_<split>.json                    {stem: [foreground class indices 0..C-1]} for the split list
    <out>/crowd_only_<split>.json                {stem: [indices]} of classes present only as crowd regions
    <out>/classes.txt                            background + category names in category-id order

Rasterisation rule (see docs/COCO.md): crowd regions are painted 255 first, then the non-crowd instances
in decreasing pixel-area order (ties: lower annotation id first), so a smaller instance lands on top of a
larger one it overlaps, whatever the classes, and any instance pixel overrides crowd ignore.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from tqdm import tqdm

from pipeline.cache import atomic_write_json, atomic_write_text
from wsss.maps import save_label_png

log = logging.getLogger("wsss.coco")

IGNORE = 255
# Polygon points may sit a little outside the image (annotation tools clip loosely); beyond this margin the
# image's width/height in the JSON cannot be the frame the polygon was drawn on.
_POLY_MARGIN_FRAC = 0.02
_POLY_MARGIN_PX = 2.0


class CocoFormatError(ValueError):
    """The annotation file is not a usable COCO instances file (the message names the file and the entry)."""


# ---------------------------------------------------------------------------------------------------------
# loading and validation


def _load_instances(ann_file: Path) -> dict[str, Any]:
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
                raise CocoFormatError(f"{ann_file}: image entry {_short(im)} lacks an integer/str '{key}'")
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
            raise CocoFormatError(f"{ann_file}: annotation entry {_short(a)} is not an object")
        for key in ("id", "image_id", "category_id"):
            if not isinstance(a.get(key), int):
                raise CocoFormatError(f"{ann_file}: annotation {_short(a)} lacks an integer '{key}'")
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


def _short(obj: Any) -> str:
    s = repr(obj)
    return s if len(s) <= 120 else s[:117] + "..."


def _has_geometry(segm: Any) -> bool:
    """True when a segmentation can cover pixels: an RLE, or a polygon with at least three points."""
    if isinstance(segm, dict):
        return True
    return isinstance(segm, list) and any(isinstance(p, list) and len(p) >= 6 for p in segm)


def category_mapping(categories: Sequence[dict[str, Any]]) -> tuple[dict[int, int], list[str]]:
    """COCO category id -> contiguous mask label (1..C, in id order) and the class-name list (0 = background)."""
    cats = sorted(categories, key=lambda c: c["id"])
    return {c["id"]: i + 1 for i, c in enumerate(cats)}, ["background"] + [c["name"] for c in cats]


# ---------------------------------------------------------------------------------------------------------
# rasterisation (runs in the worker processes)


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
                raise CocoFormatError(f"{where}: annotation id {aid} has a malformed polygon {_short(p)}")
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
    raise CocoFormatError(f"{where}: annotation id {aid} segmentation is neither polygons nor RLE: {_short(segm)}")


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


def _convert_one(task: tuple) -> tuple[str, bool, int]:
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


# ---------------------------------------------------------------------------------------------------------
# driver


def _write_classes(path: Path, classes: list[str]) -> None:
    """classes.txt is shared by the splits: refuse to overwrite one from a different category list."""
    text = "\n".join(classes) + "\n"
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if old != text:
            raise CocoFormatError(
                f"{path} already lists different classes ({len(old.splitlines())} lines) than this "
                f"annotation file ({len(classes)}); masks of the two would not share label indices")
        return
    atomic_write_text(path, text)


def convert_coco(coco_root: str | os.PathLike, split: str, out_root: str | os.PathLike | None = None,
                 workers: int | None = None, limit: int | None = None) -> dict[str, Any]:
    """Convert ``<coco_root>/annotations/instances_<split>.json`` into VOC-layout masks and label lists.

    Resumable: PNGs that exist are kept (each is written atomically, so an existing one is complete).
    ``limit`` converts only the first ``limit`` images by sorted stem (smoke runs). Returns a summary dict.
    """
    coco_root = Path(coco_root)
    out = Path(out_root) if out_root is not None else coco_root
    if not split or "/" in split or "\\" in split:
        raise ValueError(f"split must be a plain name such as 'train2014' or 'val2014', got {split!r}")
    ann_file = coco_root / "annotations" / f"instances_{split}.json"
    data = _load_instances(ann_file)
    image_dir = coco_root / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"COCO image directory not found: {image_dir} (images of {ann_file.name})")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    cat_to_label, classes = category_mapping(data["categories"])
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))

    images = sorted(coco.imgs.values(), key=lambda im: Path(im["file_name"]).stem)
    if limit is not None:
        images = images[: max(0, int(limit))]
    mask_dir = out / "SegmentationClass" / split
    mask_dir.mkdir(parents=True, exist_ok=True)

    labels: dict[str, list[int]] = {}
    crowd_only: dict[str, list[int]] = {}
    unlabeled: list[str] = []
    n_no_ann = n_crowd_only_img = 0
    tasks = []
    for im in images:
        stem = Path(im["file_name"]).stem
        anns = coco.imgToAnns.get(im["id"], [])
        thing = {cat_to_label[a["category_id"]] - 1 for a in anns
                 if not a.get("iscrowd", 0) and _has_geometry(a["segmentation"])}
        crowd = {cat_to_label[a["category_id"]] - 1 for a in anns
                 if a.get("iscrowd", 0) and _has_geometry(a["segmentation"])}
        if thing:
            labels[stem] = sorted(thing)
        else:
            unlabeled.append(stem)
            if anns:
                n_crowd_only_img += 1
            else:
                n_no_ann += 1
        if crowd - thing:
            crowd_only[stem] = sorted(crowd - thing)
        slim = [{"id": a["id"], "image_id": a["image_id"], "category_id": a["category_id"],
                 "segmentation": a["segmentation"], "iscrowd": a.get("iscrowd", 0)} for a in anns]
        tasks.append(({k: im[k] for k in ("id", "height", "width")}, slim, cat_to_label,
                      str(mask_dir / f"{stem}.png"), str(image_dir / im["file_name"]), str(ann_file)))

    _write_classes(out / "classes.txt", classes)  # before the long part: fails fast on a conflicting list
    written = ignored = 0
    bar = tqdm(total=len(tasks), desc=f"coco {split}", unit="img", dynamic_ncols=True)
    try:
        if workers == 1 or len(tasks) <= 1:
            results = map(_convert_one, tasks)
            for _stem, w_, ign in results:
                written += w_
                ignored += ign
                bar.update(1)
        else:
            with multiprocessing.Pool(min(workers, len(tasks))) as pool:
                chunk = max(1, min(32, len(tasks) // (workers * 8)))
                for _stem, w_, ign in pool.imap_unordered(_convert_one, tasks, chunksize=chunk):
                    written += w_
                    ignored += ign
                    bar.update(1)
    finally:
        bar.close()

    split_list = sorted(labels)
    atomic_write_text(out / "ImageSets" / f"{split}.txt", "".join(s + "\n" for s in split_list))
    atomic_write_text(out / "ImageSets" / f"{split}_unlabeled.txt", "".join(s + "\n" for s in sorted(unlabeled)))
    atomic_write_json(out / f"labels_{split}.json", {s: labels[s] for s in split_list})
    atomic_write_json(out / f"crowd_only_{split}.json", crowd_only)

    summary = {
        "split": split,
        "annotation_file": str(ann_file),
        "out_root": str(out),
        "num_classes": len(classes),
        "images": len(images),
        "images_in_split": len(split_list),
        "images_without_annotations": n_no_ann,
        "images_crowd_only": n_crowd_only_img,
        "images_with_crowd_only_classes": len(crowd_only),
        "pngs_written": written,
        "pngs_skipped_existing": len(tasks) - written,
        "crowd_ignored_pixels": ignored,
    }
    log.info("COCO %s: %d images, %d in split, %d without annotations and %d crowd-only left out "
             "(ImageSets/%s_unlabeled.txt), %d PNGs written, %d kept, %d pixels ignored (crowd)",
             split, len(images), len(split_list), n_no_ann, n_crowd_only_img, split, written,
             len(tasks) - written, ignored)
    return summary
