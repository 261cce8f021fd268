"""The declared calibration split: the only images whose masks may choose a setting, never in a reported number."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from wsss.datasets.dataset import SegDataset
from wsss.datasets.files import DatasetError
from wsss.datasets.layout import read_split_ids


def carve_ids(ids: list[str], n: int) -> list[str]:
    """A deterministic, order-free sample of ``n`` ids: the ``n`` smallest sha1 hashes of the id strings."""
    return sorted(sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())[:max(0, int(n))])


def calibration_ids(cfg: Mapping[str, Any], ds: SegDataset | None = None) -> list[str]:
    """The declared calibration split: the only images whose masks may choose a setting.

    ``cfg`` is the whole config; its section ``calib`` (beside ``dataset``, so that declaring one does not make
    the training stages stale) has ``split``: None (none declared), a split name of the dataset
    (``<split_dir>/<name>.txt``, images with masks), or ``'auto'``: ``calib.size`` images (default 32; at most a
    fifth of the split) carved deterministically from the train split (:func:`carve_ids`). With ``ds`` given,
    only the calibration ids inside that split are returned. Reported evaluations leave these images out.
    """
    section = cfg.get("calib", None) or {}
    spec = section.get("split", None)
    if not spec:
        return []
    dataset = cfg.get("dataset", None)
    if dataset is None:
        raise DatasetError("calib.split is set but the config has no dataset section")
    if spec == "auto":
        size = int(section.get("size", 32) or 0)
        pool = read_split_ids(dataset)
        ids = carve_ids(pool, min(size, len(pool) // 5))  # never more than a fifth of the train split
    else:
        ids = read_split_ids(dataset, str(spec))
    if ds is None:
        return ids
    inside = set(ds.ids)
    return [i for i in ids if i in inside]


def split_reported(cfg: Mapping[str, Any], ds: SegDataset) -> tuple[list[str], list[str]]:
    """(reported ids, calibration ids) of a split (``cfg``: the whole config): the calibration images are never
    in a reported number."""
    calib = set(calibration_ids(cfg, ds))
    return [i for i in ds.ids if i not in calib], [i for i in ds.ids if i in calib]
