"""The COCO conversion driver: one split's instances JSON -> masks, split lists, label lists, classes.txt."""
from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO
from tqdm import tqdm

from pipeline.cache import atomic_write_json, atomic_write_text
from wsss.coco.annotations import CocoFormatError, category_mapping, has_geometry, load_instances
from wsss.coco.masks import convert_one

log = logging.getLogger("wsss.coco")


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
    data = load_instances(ann_file)
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
                 if not a.get("iscrowd", 0) and has_geometry(a["segmentation"])}
        crowd = {cat_to_label[a["category_id"]] - 1 for a in anns
                 if a.get("iscrowd", 0) and has_geometry(a["segmentation"])}
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
    parallel = workers > 1 and len(tasks) > 1
    with (multiprocessing.Pool(min(workers, len(tasks))) if parallel else contextlib.nullcontext()) as pool, \
            tqdm(total=len(tasks), desc=f"coco {split}", unit="img", dynamic_ncols=True) as bar:
        chunk = max(1, min(32, len(tasks) // (workers * 8)))
        results = pool.imap_unordered(convert_one, tasks, chunksize=chunk) if parallel else map(convert_one, tasks)
        for _stem, was_written, ign in results:
            written += was_written
            ignored += ign
            bar.update(1)

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
