"""Config validation when a config is loaded, before any stage runs.

The schema is the set of defaults in ``configs/_base_/*.py`` (and ``configs/_base_/datasets/*.py``): every key
defined there is known, and its default's type is its type (None: any value; a float default takes ints; a
tuple/list default takes a list or tuple whose items have the defaults' kind). ``TYPES`` widens a few keys
(e.g. ``classify.pretrained``: True/False or a path), ``RANGES`` / ``CHOICES`` bound a few values, and
``EXTRA`` names keys the code reads that no base file sets. ``segment.model`` may be a dict: an mmseg model
config, passed to mmseg as is (``PASSTHROUGH``). An error names the key and, for an unknown key, the closest
known ones.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import flatten, plain

BASE_DIR = Path(__file__).resolve().parent.parent / "configs" / "_base_"
TOP_LEVEL = {"experiment": str, "work_dir": str}
_TRAIN = {"poly_power": 0.9, "ckpt_interval": 0, "log_interval": 1, "num_workers": 0}
# Keys read by the code that no base file sets (value: an example default, None = anything).
EXTRA: dict[str, Any] = {
    # the keys of wsss.datasets.PRESETS (tests/pipeline/test_validate.py checks they agree)
    **{f"dataset.{k}": None for k in ("type", "root", "img_dir", "img_suffix", "mask_dir", "mask_suffix",
                                      "split_dir", "train_split", "val_split", "classes", "labelmap", "label_file",
                                      "cache_dir", "workers")},
    **{f"{s}.{k}": v for s in ("classify", "bao", "affinity") for k, v in _TRAIN.items()},
}
# Sections whose stage may be switched off with `<section>.enabled` (the runner's rule for every stage).
ENABLE = ("classify", "seeds", "bao", "eval_seeds", "crf", "ir_labels", "affinity", "random_walk", "eval_pseudo",
          "segment", "eval_segment", "report")
TYPES: dict[str, tuple[type, ...]] = {
    "classify.pretrained": (bool, str),
    "classify.classes": (list, tuple),
    "segment.model": (str, dict),
    "runtime.workers": (int, str),
    "random_walk.beta": (int, float),
    "bao.freeze_backbone": (bool, str),
    "bao.head_levels": (list, tuple),
    "bao.head_dims": (list, tuple),
    "seeds.max_image_side": (int,),  # or None (its default) or 'auto'
    "random_walk.max_image_side": (int,),
}
PASSTHROUGH = ("segment.model",)  # a dict here is an mmseg config fragment: not ours to check
UNIT = (0.0, 1.0)
RANGES: dict[str, tuple[float, float]] = {
    **{f"{s}.epochs": (1, math.inf) for s in ("classify", "bao", "affinity")},
    **{f"{s}.batch_size": (1, math.inf) for s in ("classify", "bao", "affinity", "segment")},
    **{f"{s}.lr": (1e-12, math.inf) for s in ("classify", "bao", "affinity", "segment")},
    **{f"{s}.momentum": UNIT for s in ("classify", "bao", "affinity")},
    **{f"{s}.weight_decay": (0, math.inf) for s in ("classify", "bao", "affinity")},
    "crf.bg_threshold": UNIT, "crf.gt_prob": UNIT, "ir_labels.gt_prob": UNIT,
    "ir_labels.conf_fg_thres": UNIT, "ir_labels.conf_bg_thres": UNIT,
    "random_walk.sem_seg_bg_thres": UNIT, "random_walk.ignore_threshold": UNIT, "random_walk.label_crf.gt_prob": UNIT,
    "bao.ema_momentum": UNIT, "bao.label_smoothing": UNIT, "bao.teacher_from_epoch": (0, math.inf),
    "bao.cam_prior": (0, math.inf),
    "segment.iters": (1, math.inf), "segment.checkpoint_interval": (1, math.inf), "segment.val_interval": (0, math.inf),
    "random_walk.exp_times": (0, 16), "random_walk.radius": (1, math.inf), "affinity.train_radius": (1, math.inf),
    "runtime.seed": (0, 2**32 - 1), "runtime.workers": (1, math.inf), "auto_limits.max_side": (64, math.inf),
    "segment.auto_min_iters": (1, math.inf), "seeds.max_image_side": (32, math.inf),
    "random_walk.max_image_side": (32, math.inf),
}
CHOICES: dict[str, tuple[Any, ...]] = {
    "classify.method": ("bas", "cam"),
    "seeds.source": ("bas", "cam", "bas+cam", "external"),
    "seeds.external_normalize": ("none", "max"),
    "crf.mode": ("labels", "probs"),
    "crf.bg": ("threshold", "power"),
    "random_walk.bg_mode": ("threshold", "power"),
    "random_walk.seed_source": ("stride4", "high"),
    "random_walk.class_norm": (None, "global", "per_class"),
    "bao.infer_with": ("teacher", "student"),
    "bao.freeze_backbone": (False, True, "mid", "all"),
}


class ConfigError(ValueError):
    """A config key that is unknown, of the wrong type or out of range; the message names the key."""


@lru_cache(maxsize=4)
def schema(base_dir: Path = BASE_DIR) -> dict[str, Any]:
    """``{dotted key: default}`` of every key the base configs define (a dict default also as its own key)."""
    from mmengine.config import Config

    out: dict[str, Any] = {}
    files = sorted(base_dir.glob("*.py")) + sorted(base_dir.glob("datasets/*.py"))
    for f in files:
        cfg = plain(Config.fromfile(str(f)).to_dict())
        for section, value in cfg.items():
            out.setdefault(section, {} if isinstance(value, Mapping) else value)
            if isinstance(value, Mapping):
                for key, v in _nested(value, section).items():
                    if key in out and out[key] is None:
                        continue  # one base sets None (any value): keep it permissive
                    if key in out and v is None:
                        out[key] = None
                    else:
                        out.setdefault(key, v)
    for key, v in EXTRA.items():
        out.setdefault(key, v)
    for section in ENABLE:
        out.setdefault(section, {})
        out.setdefault(f"{section}.enabled", True)
    out.update(TOP_LEVEL)
    return out


def _nested(d: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}"
        out[key] = {} if isinstance(v, Mapping) and v else v
        if isinstance(v, Mapping) and v:
            out.update(_nested(v, key))
    return out


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def _type_error(key: str, value: Any, default: Any) -> str | None:
    if key in TYPES:
        want = TYPES[key]
        ok = isinstance(value, want) and not (isinstance(value, bool) and bool not in want)
        return None if ok else f"expected {' or '.join(t.__name__ for t in want)}"
    if default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected True or False"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "expected a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "expected a string"
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return "expected a list"
        kinds = {_kind(v) for v in default}
        if len(kinds) == 1 and any(_kind(v) not in kinds for v in value):
            return f"expected a list of {kinds.pop()}s"
        return None
    if isinstance(default, Mapping):
        return None if isinstance(value, Mapping) else "expected a dict"
    return None


def _range_error(key: str, value: Any) -> str | None:
    if key == "runtime.workers" and isinstance(value, str) and value != "auto":
        return "must be a number of processes, 'auto' or None"
    if key in CHOICES and value not in CHOICES[key]:
        return f"must be one of {', '.join(map(repr, CHOICES[key]))}"
    if key in RANGES and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = RANGES[key]
        if not lo <= value <= hi:
            if hi == math.inf:
                return "must be > 0" if lo in (1, 1e-12) else f"must be >= {lo}"
            return f"must be in [{lo}, {hi}]"
    return None


# words a typed key may hold instead of its value: 'auto' (the config hooks derive it from the data) and 'calib'
# (a threshold the stage takes from the calibration split); where they are not supported, the code that
# resolves values says so
DEFERRED = ("auto", "calib")


def validate_config(cfg: Any, base_dir: Path = BASE_DIR) -> None:
    """Raise :class:`ConfigError` for the first unknown key, wrong type or out-of-range value of ``cfg``."""
    known = schema(base_dir)
    data = plain(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
    problems: list[str] = []
    for key, value in _walk(data, known).items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            section = key.split(".")[0]
            where = f" (the keys of '{section}' are listed in configs/_base_/)" if section in known else ""
            problems.append(f"unknown config key '{key}'{hint}{where}")
            continue
        if key in PASSTHROUGH and isinstance(value, Mapping):
            continue
        if isinstance(value, str) and value in DEFERRED and not isinstance(known[key], str):
            continue
        if value is None:
            why = None if known[key] is None or isinstance(known[key], Mapping) else "must not be None"
        else:
            why = _type_error(key, value, known[key]) or _range_error(key, value)
        if why:
            problems.append(f"config key '{key}' = {value!r}: {why}")
    problems += _combination_errors(data)
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:4])})" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def _combination_errors(data: Mapping[str, Any]) -> list[str]:
    """Keys valid alone but not together, caught here instead of when their stage starts, after the stages before
    it ran."""
    bao = data.get("bao") or {}
    freeze = bao.get("freeze_backbone", False)
    problems = []
    if bao.get("head_levels") and freeze not in (True, "all"):
        problems.append(f"config key 'bao.head_levels' = {bao['head_levels']!r} needs bao.freeze_backbone=True (the "
                        f"levels come from the frozen backbone), got bao.freeze_backbone={freeze!r}; set "
                        "bao.head_levels=None for another student")
    if bao.get("cache_features") and freeze in (False, None):
        problems.append("config key 'bao.cache_features' = True needs bao.freeze_backbone='mid' or True (a backbone "
                        "that learns changes its features every step)")
    prior = bao.get("cam_prior") or 0
    if isinstance(prior, (int, float)) and prior > 0 and 3 not in list(bao.get("head_levels") or []):
        problems.append(f"config key 'bao.cam_prior' = {prior!r} needs bao.head_levels with level 3 (the high map "
                        f"the classifier's CAM is read from), got bao.head_levels={bao.get('head_levels')!r}")
    return problems


def _walk(data: Mapping[str, Any], known: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys of ``data``: descend into dicts the schema knows as sections, stop at values and passthroughs."""
    out: dict[str, Any] = {}
    for key, value in flatten(data).items():
        parts = key.split(".")
        # stop at the deepest prefix that is a known leaf (a dict value of a None-default key, a passthrough)
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in known and not isinstance(known[prefix], Mapping):
                key, value = prefix, _get(data, parts[:i])
                break
        out[key] = value
    return out


def _get(data: Mapping[str, Any], parts: list[str]) -> Any:
    for p in parts:
        data = data[p]
    return data
