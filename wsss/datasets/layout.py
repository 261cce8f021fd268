"""Where a dataset's files are: the presets per dataset type (VOC, VOC+SBD, converted COCO, custom VOC layout),
split files, image paths, and the list of files a split consists of (for the cache's data fingerprint).

Reads split files only, never images or masks.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wsss.datasets.files import DatasetError, MissingSplit, read_text

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")

# Per dataset type: the defaults a config overrides. ``{split}`` in a path is replaced by the split name.
PRESETS: dict[str, dict[str, Any]] = {
    "voc": dict(img_dir="JPEGImages", img_suffix=".jpg", mask_dir="SegmentationClass", mask_suffix=".png",
                split_dir="ImageSets/Segmentation", train_split="train", val_split="val", classes=VOC_CLASSES),
    # SBD augmentation as commonly distributed: SegmentationClassAug/ + ImageSets/Segmentation/train_aug.txt
    "voc_aug": dict(img_dir="JPEGImages", img_suffix=".jpg", mask_dir="SegmentationClassAug", mask_suffix=".png",
                    split_dir="ImageSets/Segmentation", train_split="train_aug", val_split="val",
                    classes=VOC_CLASSES),
    # COCO 2014 after tools/convert_coco.py
    "coco": dict(img_dir="{split}", img_suffix=".jpg", mask_dir="SegmentationClass/{split}", mask_suffix=".png",
                 split_dir="ImageSets", train_split="train2014", val_split="val2014", classes="classes.txt"),
    # Any VOC-layout dataset with its own classes.txt (first line: background); images of any image suffix
    # ('auto': <id>.jpg, .JPG, .jpeg, .png, ... whichever is there); colour masks (CVAT / Datumaro
    # export) take their colours from labelmap.txt when it is there (its names are the classes without classes.txt)
    "custom": dict(img_dir="JPEGImages", img_suffix="auto", mask_dir="SegmentationClass", mask_suffix=".png",
                   split_dir="ImageSets/Segmentation", train_split="train", val_split="val", classes="classes.txt",
                   labelmap="labelmap.txt"),
}


def resolve_path(root: Path, p: str, split: str) -> Path:
    """A path of the config (``{split}`` filled in), relative to the dataset root unless absolute."""
    p = p.format(split=split)
    return Path(p) if os.path.isabs(p) else root / p


def split_file_path(opts: Mapping[str, Any], split: str) -> Path:
    """``<split_dir>/<split>.txt`` of a dataset config with its preset filled in (:func:`options`)."""
    return resolve_path(Path(opts["root"]).expanduser(), opts["split_dir"], split) / f"{split}.txt"


def missing_split(opts: Mapping[str, Any], split: str) -> MissingSplit:
    """The error for an absent split file: names the file, the config key that picks it and the split files that
    are there (a folder with ``trainval.txt`` but no ``train.txt`` needs only ``dataset.train_split=trainval``)."""
    split_file = split_file_path(opts, split)
    keys = [f"dataset.{k}" for k in ("train_split", "val_split") if opts.get(k) == split]
    others = sorted(p.stem for p in split_file.parent.glob("*.txt")) if split_file.parent.is_dir() else []
    found = f"; split files in {split_file.parent}: {', '.join(others)}" if others else ""
    taken = {opts.get("train_split"), opts.get("val_split")} - {split}  # never suggest val = train
    usable = [f"{k}={o}" for k in keys for o in others if o not in taken]
    if usable:
        found += f" (to use one: {' or '.join(usable)})"
    return MissingSplit(f"{split_file}: split file is missing (split '{split}'){found}")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def id_of(entry: str) -> str:
    """The image id of a split-file entry: the id itself (VOC's lists), or the file name without its image suffix
    of a path (DeepLab's ``train_aug.txt``: ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``)."""
    name = entry.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and f".{ext.lower()}" in IMAGE_SUFFIXES else name


def entry_of(line: str) -> str:
    """The image entry of a split-file line: the first of DeepLab's 'image-path mask-path' pair, else the whole
    line stripped (a file name may hold spaces: ``Photo (1)``)."""
    words = line.split()
    return words[0] if len(words) == 2 and "/" in words[0] and "/" in words[1] else line.strip()


def image_files(img_dir: Path, ids: Sequence[str], suffix: str) -> dict[str, Path]:
    """{id: image path}: ``<id><suffix>``, or with ``suffix='auto'`` the one file ``<id>.<image suffix>`` (any of
    :data:`IMAGE_SUFFIXES`, any case) in the folder, so a folder mixing ``.jpg``, ``.JPG``, ``.jpeg`` and ``.png``
    reads as it is. An id with two such files is an error naming both; an id with none maps to ``<id>.jpg`` (the
    caller's missing-file check names it)."""
    if suffix != "auto":
        return {i: img_dir / f"{i}{suffix}" for i in ids}
    found: dict[Path, dict[str, list[str]]] = {}  # folder -> stem -> file names (ids may hold a sub-folder)
    out = {}
    for i in ids:
        folder = (img_dir / i).parent
        if folder not in found:
            stems: dict[str, list[str]] = {}
            for name in (os.listdir(folder) if folder.is_dir() else ()):
                stem, dot, ext = name.rpartition(".")
                if dot and f".{ext.lower()}" in IMAGE_SUFFIXES:
                    stems.setdefault(stem, []).append(name)
            found[folder] = stems
        names = found[folder].get(Path(i).name, [])
        if len(names) > 1:
            raise DatasetError(f"{folder}: image '{i}' exists as {sorted(names)}; keep one, or set "
                               "dataset.img_suffix to the one to read")
        out[i] = folder / (names[0] if names else f"{Path(i).name}.jpg")
    return out


def folder_part_hint(split_file: Path, id_: str) -> str:
    """For an image that is missing: when its split-file line had a folder part (``photos/im0``), a hint that only
    the file name is read (as for DeepLab's ``/JPEGImages/x.jpg`` lists) and the images must sit directly in the
    image folder; '' otherwise."""
    for ln in read_text(split_file).splitlines():
        entry = entry_of(ln)
        if "/" in entry and id_of(entry) == id_:
            return (f" (the split file lists it as '{entry}': an entry's folder part is dropped and images are read "
                    "from dataset.img_dir by file name; sub-folders are not searched: move the images into it, or "
                    "point dataset.img_dir at the sub-folder)")
    return ""


def ids_in(split_file: Path) -> list[str]:
    """The image ids of a split file (each non-blank line's entry, :func:`entry_of` and :func:`id_of`). An id listed
    twice is an error: every stage keeps one output per id, and a metric would count the image twice."""
    lines = [(n, id_of(entry_of(ln))) for n, ln in enumerate(read_text(split_file).splitlines(), 1) if ln.strip()]
    first: dict[str, int] = {}
    repeats = []
    for n, id_ in lines:
        if id_ in first:
            repeats.append((id_, first[id_], n))
        first.setdefault(id_, n)
    if repeats:
        id_, a, b = repeats[0]
        raise DatasetError(f"{split_file}: {len(repeats)} line(s) repeat an image id, e.g. '{id_}' (lines {a} and "
                           f"{b}); list each image once")
    return [id_ for _, id_ in lines]


def options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset config with its type's preset filled in; raises on an unknown type or a missing root."""
    cfg = dict(cfg)
    kind = cfg.get("type", "custom")
    if kind not in PRESETS:
        raise DatasetError(f"unknown dataset type '{kind}'; choose one of {sorted(PRESETS)}")
    opts = {**PRESETS[kind], **{k: v for k, v in cfg.items() if v is not None}}
    if "root" not in opts:
        raise DatasetError("dataset config has no 'root'")
    return opts


def read_split_ids(cfg: Mapping[str, Any], split: str | None = None) -> list[str]:
    """The ids listed in a split file of a dataset config (default: the train split; no image or mask reads)."""
    opts = options(cfg)
    split = split or opts["train_split"]
    split_file = split_file_path(opts, split)
    if not split_file.is_file():
        raise missing_split(opts, split)
    return ids_in(split_file)


def split_image_paths(cfg: Mapping[str, Any], split: str | None = None) -> dict[str, Path]:
    """{id: image path} of a split, from the split file alone (no label or mask reads)."""
    opts = options(cfg)
    split = split or opts["train_split"]
    img_dir = resolve_path(Path(opts["root"]).expanduser(), opts["img_dir"], split)
    return image_files(img_dir, read_split_ids(cfg, split), opts["img_suffix"])


def split_files(dataset_cfg: Mapping[str, Any], split: str) -> list[tuple[str, Path]]:
    """The files one split of a dataset consists of, as (path relative to the root, path).

    Uses the reader's own presets, so the cache (pipeline.fingerprint) and the reader never disagree on which
    files count.
    """
    cfg = dict(dataset_cfg)
    kind = cfg.get("type", "custom")
    opts = {**PRESETS.get(kind, PRESETS["custom"]), **{k: v for k, v in cfg.items() if v is not None}}
    root = Path(str(opts.get("root", "."))).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist")
    root = root.resolve()

    def resolve(p: str) -> Path:
        return resolve_path(root, p, split)

    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(root))
        except ValueError:
            return str(p.resolve())

    split_file = resolve(opts["split_dir"]) / f"{split}.txt"
    files = [split_file]
    if isinstance(opts.get("classes"), str):
        files.append(resolve(opts["classes"]))
    if opts.get("labelmap") and resolve(opts["labelmap"]).is_file():
        files.append(resolve(opts["labelmap"]))
    if opts.get("label_file"):
        files.append(resolve(opts["label_file"]))
    ids = ids_in(split_file) if split_file.is_file() else []
    img_dir = resolve(opts["img_dir"])
    files += list(image_files(img_dir, ids, opts["img_suffix"]).values())
    if opts.get("mask_dir"):
        mask_dir = resolve(opts["mask_dir"])
        if mask_dir.is_dir():
            files += [mask_dir / f"{i}{opts['mask_suffix']}" for i in ids]
    return [(rel(p), p) for p in files]


def split_name(dataset_cfg: Mapping[str, Any], which: str) -> str:
    """A split named directly, or ``train`` / ``val`` meaning the dataset's ``train_split`` / ``val_split``."""
    if which not in ("train", "val"):
        return which
    preset = PRESETS.get(dataset_cfg.get("type", "custom"), PRESETS["custom"])
    return dataset_cfg.get(f"{which}_split") or preset[f"{which}_split"]
