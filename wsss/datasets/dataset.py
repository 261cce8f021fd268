"""One split of a dataset: ids, image paths, image-level labels (from a label file or derived once from the masks,
cached) and, when present, masks. :func:`build_dataset` is the one reader for every dataset type.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipeline.cache import atomic_write_json
from wsss.datasets.colors import (
    COLOUR_MODES,
    ColorTable,
    classes_of_labelmap,
    mask_mode,
    read_labelmap,
    read_mask,
)
from wsss.datasets.files import (
    UNREADABLE,
    DatasetError,
    check_mask,
    image_header,
    other_suffix_hint,
    read_classes,
    read_image,
    read_label_png,
    read_text,
)
from wsss.datasets.layout import (
    IMAGE_SUFFIXES,
    folder_part_hint,
    ids_in,
    image_files,
    missing_split,
    options,
    resolve_path,
    split_file_path,
)

log = logging.getLogger("wsss.datasets")


@dataclass
class SegDataset:
    """A split of a dataset: ids, image paths, image-level labels, and (when present) masks."""

    root: Path
    split: str
    classes: list[str]
    ids: list[str]
    img_dir: Path
    img_suffix: str
    mask_dir: Path | None
    mask_suffix: str
    label_sets: dict[str, list[int]] = field(default_factory=dict)  # id -> foreground indices (0-based)
    image_files: dict[str, Path] = field(default_factory=dict)  # id -> image path (img_suffix 'auto': found)
    skipped_no_foreground: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """Including background."""
        return len(self.classes)

    @property
    def num_fg(self) -> int:
        return len(self.classes) - 1

    @property
    def has_masks(self) -> bool:
        return self.mask_dir is not None

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, id_: str) -> Path:
        return self.image_files.get(id_) or self.img_dir / f"{id_}{self.img_suffix}"

    def mask_path(self, id_: str) -> Path:
        if self.mask_dir is None:
            raise DatasetError(f"{self.root}: this dataset has no masks (split {self.split})")
        return self.mask_dir / f"{id_}{self.mask_suffix}"

    def image(self, id_: str) -> np.ndarray:
        return read_image(self.image_path(id_))

    def mask(self, id_: str) -> np.ndarray:
        path = self.mask_path(id_)
        mask = read_label_png(path)
        check_mask(mask, self.num_classes, path)
        return mask

    def labels(self, id_: str) -> np.ndarray:
        """Multi-hot float32 vector over the foreground classes."""
        vec = np.zeros(self.num_fg, np.float32)
        vec[self.label_sets[id_]] = 1.0
        return vec

    def label_set(self, id_: str) -> list[int]:
        return list(self.label_sets[id_])

    def background_only_ids(self) -> list[str]:
        """The ids (of ``ids``) without any foreground class: negatives."""
        return [i for i in self.ids if not self.label_sets[i]]

    def class_image_counts(self) -> np.ndarray:
        """Per foreground class, how many images of ``ids`` have it (int64, length ``num_fg``)."""
        counts = np.zeros(self.num_fg, np.int64)
        for i in self.ids:
            counts[self.label_sets[i]] += 1
        return counts


def _classes_from(spec: Any, root: Path, labelmap: Path | None = None) -> list[str]:
    """The class list: a list in the config, a ``classes.txt``, or (that file absent) the labelmap's names."""
    if isinstance(spec, str):
        path = resolve_path(root, spec, "")
        if not path.is_file() and labelmap is not None and labelmap.is_file():
            return classes_of_labelmap(read_labelmap(labelmap), labelmap)
        return read_classes(path)
    names = list(spec)
    if not names or names[0] != "background":
        raise DatasetError(f"dataset classes must start with 'background' (got {names[:3]}...)")
    return names


def _read_cls_labels_npy(path: Path, num_fg: int) -> dict[str, list[int]]:
    """IRN's / PSA's ``cls_labels.npy``: a pickled dict {id: multi-hot vector over the foreground classes}, written
    by their ``make_cls_labels.py``. IRN keys an id by its digits (2007000032 for 2007_000032): an integer key is
    decoded as IRN's ``decode_int_filename`` does; PSA's string keys are ids as they are."""
    try:
        data = np.load(path, allow_pickle=True)  # the user's own file, named in the config
        data = data.item() if data.dtype == object and data.shape == () else None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read as a .npy label file ({e})") from None
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: expected IRN's cls_labels.npy, a dict {{image_id: multi-hot vector}}")
    out: dict[str, list[int]] = {}
    for key, vec in data.items():
        if isinstance(key, (int, np.integer)):
            digits = str(int(key))
            key = f"{digits[:4]}_{digits[4:]}"
        vec = np.asarray(vec).reshape(-1)
        if vec.size != num_fg:
            raise DatasetError(f"{path}: image {key} has a label vector of {vec.size} values; the dataset has "
                               f"{num_fg} foreground classes")
        out[str(key)] = np.flatnonzero(vec > 0.5).tolist()
    return out


def _labels_from_file(path: Path, ids: list[str], classes: list[str],
                      from_masks: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """Image-level labels from JSON {id: [class names or foreground indices 0..C-1]} (or IRN's cls_labels.npy)
    for the ids it lists; an id it lacks must have a mask (``from_masks``: labels derived from the split's masks,
    empty without masks)."""
    if not path.is_file():
        raise DatasetError(f"{path}: label file is missing")
    if path.suffix.lower() == ".npy":
        data: Any = _read_cls_labels_npy(path, len(classes) - 1)
    else:
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, Mapping):
        raise DatasetError(f"{path}: expected a JSON object {{image_id: [classes]}}")
    index = {n: i - 1 for i, n in enumerate(classes) if i > 0}
    out: dict[str, list[int]] = {}
    missing = [i for i in ids if i not in data and i not in from_masks]
    if missing:
        raise DatasetError(f"{path}: no labels for {len(missing)} image(s) of the split, e.g. {missing[:5]} "
                           "(and no masks to derive them from)")
    for id_ in (i for i in ids if i in data):
        fg = []
        for c in data[id_]:
            if isinstance(c, str):
                if c not in index:
                    raise DatasetError(f"{path}: image {id_} has label '{c}', not a foreground class of {classes}")
                fg.append(index[c])
            elif isinstance(c, int) and 0 <= c < len(classes) - 1:
                fg.append(c)
            else:
                raise DatasetError(f"{path}: image {id_} has label {c!r}; "
                                   f"expected a class name or 0..{len(classes) - 2}")
        out[id_] = sorted(set(fg))
    return out


def _pool_map(fn: Any, jobs: list, workers: int, desc: str) -> list:
    """``[fn(j) for j in jobs]``, in a pool of ``workers`` forked processes when there are many jobs."""
    if workers > 1 and len(jobs) > 64:
        import multiprocessing as mp

        from tqdm import tqdm

        with mp.get_context("fork").Pool(workers) as pool:
            return list(tqdm(pool.imap(fn, jobs, chunksize=32), total=len(jobs), desc=desc, mininterval=1.0))
    return [fn(j) for j in jobs]


def _raise_first(results: list) -> None:
    """Raise the first of the ``'ERROR ...'`` strings a pool's jobs returned (counting the others)."""
    errors = [r for _, r in results if isinstance(r, str)]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DatasetError(errors[0][6:] + more)


def _file_key(folder: Path, paths: list[Path], *extra: Any) -> str:
    """A key over files (names, sizes, mtimes) in ``folder`` and ``extra``: an edited file changes it."""
    stats = [(p.name, s.st_size, s.st_mtime_ns) for p in paths for s in (p.stat(),)]
    return hashlib.sha1(json.dumps([str(folder.resolve()), stats, *extra]).encode()).hexdigest()[:16]


def _mask_key(ds: SegDataset, *extra: Any) -> str:
    """The key of a split's masks, with its class list and ids."""
    return _file_key(ds.mask_dir, [ds.mask_path(i) for i in ds.ids], ds.mask_suffix, ds.classes, ds.ids, *extra)


def _decode_one(path: str) -> tuple[str, int | str]:
    """(path, 0) when the image decodes, else (path, 'ERROR ...'). A JPEG is decoded at 1/8 scale (``draft``):
    every byte is still read, so a truncated or damaged file fails, at a fraction of the cost."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except UNREADABLE as e:
        return path, f"ERROR {path}: cannot read image ({e})"
    return path, 0


def check_images_decode(ds: SegDataset, cache_dir: Path, workers: int = 0) -> None:
    """Every image of the split decodes: a truncated download or a damaged file is named before any stage
    trains on it, not when a loader reaches it. Checked once per set of files (a cache key over their stats)."""
    paths = [ds.image_path(i) for i in ds.ids]
    done = cache_dir / f"images_decode_{ds.split}_{_file_key(ds.img_dir, paths, ds.ids)}.json"
    if done.is_file():
        return
    _raise_first(_pool_map(_decode_one, [str(p) for p in paths], workers, f"checking images ({ds.split})"))
    atomic_write_json(done, {"images": len(paths)})


def _index_one(args: tuple[str, str, str, str, ColorTable, int]) -> tuple[str, int | str]:
    from wsss.maps import save_label_png  # map I/O (palette PNG, atomic write)

    id_, src, img, dst, table, num_classes = args
    try:
        if not os.path.isfile(dst):
            mask = read_mask(src, table)
            h, w, orientation = image_header(img)
            check_mask(mask, num_classes, src, (h, w), orientation)  # names the user's file, not the decoded copy
            save_label_png(dst, mask)
    except DatasetError as e:
        return id_, f"ERROR {e}"
    return id_, 0


def index_masks(ds: SegDataset, table: ColorTable, cache_dir: Path, workers: int = 0) -> tuple[Path, str]:
    """Colour masks (the first mask of the split is RGB) decoded once to index PNGs under ``cache_dir``; returns
    the folder and suffix to read the masks from (``ds.mask_dir`` and its suffix when they are index PNGs already).

    Each decoded PNG is written atomically and kept under a key of the source files and the colours, so an
    interrupted conversion resumes and an edited mask or labelmap converts again."""
    if mask_mode(ds.mask_path(ds.ids[0])) not in COLOUR_MODES:
        return ds.mask_dir, ds.mask_suffix
    out = cache_dir / f"index_masks_{ds.split}_{_mask_key(ds, table.codes)}"
    done = out / "complete.json"
    if done.is_file():
        return out, ".png"
    out.mkdir(parents=True, exist_ok=True)
    log.info("%s: colour masks (%s), decoded with %s into %s", ds.mask_dir, mask_mode(ds.mask_path(ds.ids[0])),
             table.source, out)
    jobs = [(i, str(ds.mask_path(i)), str(ds.image_path(i)), str(out / f"{i}.png"), table, ds.num_classes)
            for i in ds.ids]
    _raise_first(_pool_map(_index_one, jobs, workers, f"colour masks ({ds.split})"))
    atomic_write_json(done, {"source": str(ds.mask_dir), "colours": table.source, "count": len(ds.ids)})
    return out, ".png"


def _derive_one(args: tuple[str, str, str, int]) -> tuple[str, tuple[list[int], int] | str]:
    """(id, (foreground indices, the image's EXIF orientation)) or (id, 'ERROR ...')."""
    id_, mask_path, img_path, num_classes = args
    try:
        mask = read_label_png(mask_path)
        h, w, orientation = image_header(img_path)
        check_mask(mask, num_classes, mask_path, (h, w), orientation)
    except DatasetError as e:
        return id_, f"ERROR {e}"
    vals = np.unique(mask)
    return id_, ([int(v) - 1 for v in vals if 0 < v < num_classes], orientation)


def derive_labels(ds: SegDataset, cache_dir: Path | None, workers: int = 0) -> dict[str, list[int]]:
    """Image-level labels from the masks (every mask validated once), cached by split and mask files.

    The cache key covers the mask folder, the class list, the ids and every mask's size and mtime, so an
    edited mask is validated again.
    """
    cache = cache_dir / f"labels_{ds.split}_{_mask_key(ds)}.json" if cache_dir else None
    if cache and cache.is_file():
        return {k: list(v) for k, v in json.loads(cache.read_text()).items()}
    jobs = [(i, str(ds.mask_path(i)), str(ds.image_path(i)), ds.num_classes) for i in ds.ids]
    results = _pool_map(_derive_one, jobs, workers, f"labels from masks ({ds.split})")
    _raise_first(results)
    labels = {i: r[0] for i, r in results}
    turned = [(i, r[1]) for i, r in results if r[1] != 1]
    if turned:  # said once, when the masks are first read (the labels are cached)
        log.warning("%d of %d images of split '%s' carry an EXIF orientation tag (e.g. %s: %d): the pipeline "
                    "reads the stored pixels, as VOC and COCO tools do, while viewers show them turned. If the "
                    "masks were drawn on the turned view they do not fit: write upright copies of the images "
                    "(python tools/apply_exif_orientation.py)", len(turned), len(results), ds.split,
                    ds.image_path(turned[0][0]), turned[0][1])
    if cache:
        atomic_write_json(cache, labels)
    return labels


def build_dataset(cfg: Mapping[str, Any], split: str | None = None, require_foreground: bool | None = None,
    check_files: bool = True) -> SegDataset:
    """Build one split from a dataset config (see ``PRESETS`` for the keys and their defaults).

    ``split`` defaults to ``train_split``. Images with no foreground label are dropped (warned and counted)
    from training splits; ``require_foreground`` overrides that (default: True for the train split).
    """
    opts = options(cfg)
    root = Path(opts["root"]).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist")
    split = split or opts["train_split"]
    labelmap = resolve_path(root, opts["labelmap"], split) if opts.get("labelmap") else None
    classes = _classes_from(opts["classes"], root, labelmap)
    split_file = split_file_path(opts, split)
    if not split_file.is_file():
        raise missing_split(opts, split)
    ids = ids_in(split_file)
    if not ids:
        raise DatasetError(f"{split_file}: split file lists no images")
    img_dir = resolve_path(root, opts["img_dir"], split)
    mask_dir = resolve_path(root, opts["mask_dir"], split) if opts.get("mask_dir") else None
    label_file = resolve_path(root, opts["label_file"], split) if opts.get("label_file") else None
    if mask_dir is not None and not mask_dir.is_dir():
        if label_file is None:
            others = sorted(p.name for p in mask_dir.parent.iterdir() if p.is_dir() and p != img_dir
                            and p != split_file.parent and p != split_file.parent.parent) \
                if mask_dir.parent.is_dir() else []
            hint = f"; folders there: {', '.join(others)} (dataset.mask_dir names the folder)" if others else ""
            raise DatasetError(f"{mask_dir}: mask folder is missing and no label_file is configured "
                               f"(image-level labels come from masks or a label file){hint}")
        mask_dir = None
    ds = SegDataset(root=root, split=split, classes=classes, ids=ids, img_dir=img_dir,
    img_suffix=opts["img_suffix"], mask_dir=mask_dir, mask_suffix=opts["mask_suffix"])
    if label_file is not None and mask_dir is not None and not any(ds.mask_path(i).is_file() for i in ids):
        ds.mask_dir = None  # WSSS's usual data: image-level labels for train, masks for val only
    ds.image_files = image_files(img_dir, ids, opts["img_suffix"])
    if check_files:
        missing = [i for i in ids if not ds.image_path(i).is_file()]
        if missing and opts["img_suffix"] == "auto":
            raise DatasetError(f"{img_dir}: no image file '{missing[0]}' with any of the suffixes {IMAGE_SUFFIXES} "
                               f"(any case), listed in {split_file}" + folder_part_hint(split_file, missing[0])
                               + (f" ({len(missing)} missing in all, e.g. {missing[:5]})" if len(missing) > 1 else ""))
        if missing:
            raise DatasetError(f"{ds.image_path(missing[0])}: image listed in {split_file} is missing"
                               + (other_suffix_hint(ds.image_path(missing[0]), "img_suffix")
                                  or folder_part_hint(split_file, missing[0]))
                               + (f" ({len(missing)} missing in all, e.g. {missing[:5]})" if len(missing) > 1 else ""))
        if ds.mask_dir is not None:
            missing = [i for i in ids if not ds.mask_path(i).is_file()]
            if missing:
                raise DatasetError(f"{ds.mask_path(missing[0])}: mask of an image listed in {split_file} is missing"
                                   + other_suffix_hint(ds.mask_path(missing[0]), "mask_suffix")
                                   + (f" ({len(missing)} missing in all)" if len(missing) > 1 else ""))
    cache_dir = Path(opts.get("cache_dir", "workdirs/.cache")) / "datasets"
    workers = int(opts.get("workers", 0) or (os.cpu_count() or 1))
    if check_files:
        check_images_decode(ds, cache_dir, workers)
    if ds.mask_dir is not None:
        table = ColorTable.from_labelmap(read_labelmap(labelmap), classes, labelmap) \
            if labelmap is not None and labelmap.is_file() else ColorTable.voc(len(classes))
        ds.mask_dir, ds.mask_suffix = index_masks(ds, table, cache_dir, workers)
    derived = derive_labels(ds, cache_dir, workers) if ds.mask_dir is not None else {}  # validates the masks
    given = _labels_from_file(label_file, ids, classes, derived) if label_file is not None else {}
    ds.label_sets = {i: given[i] if i in given else derived[i] for i in ids}
    if require_foreground is None:
        require_foreground = split == opts["train_split"]
    if require_foreground:
        ds.skipped_no_foreground = ds.background_only_ids()
        if ds.skipped_no_foreground:
            log.warning("%s: %d image(s) of split '%s' have no foreground label and are skipped, e.g. %s",
    split_file, len(ds.skipped_no_foreground), split, ds.skipped_no_foreground[:5])
            ds.ids = [i for i in ds.ids if ds.label_sets[i]]
    return ds
