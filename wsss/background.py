"""Where the refinement stages get their background score from.

``<stage>.background``:
- ``'learned'`` (the default, ground-truth free): the BAO stage's learned background map ``bao/bg/<id>.npz``
  replaces the constant background threshold (CRF unary, ir_labels confidence, random-walk background);
- ``'threshold'``: a constant background threshold (IRN / BAS). Its value is a number, or ``'calib'``: the
  threshold that maximises seed mIoU on the declared calibration split (``eval_seeds``' ``calib_threshold``),
  the one place ground truth may choose a setting.

- ``'seeds'`` (``random_walk`` only, ground-truth free): the walk's background channel is ``1 - max_c`` of the
  image's seed maps (each class map divided by its max, so the background is low where any class is near its
  peak); BAO's map still reaches the walk through ir_labels, which train the affinity net. Measured against
  ``'learned'`` in bench/README.md ("The random walk's background from the seeds").

``learned_background.scale`` (a top-level section, read by every stage that reads ``b``): the learned map enters
each of them as ``scale * b``. Below 1 a class map needs less to beat the background, so objects are covered
further out from their most discriminative parts (bench/README.md, "Learned background scale"). The random walk
divides its walked background by its own max, so there the scale cancels: it reaches the walk's labels through
the confident regions of ir_labels, which train the affinity net.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserError

MODES = ("learned", "threshold")
WALK_MODES = (*MODES, "seeds")  # random_walk also takes its background from the seed maps


class UserInputError(UserError, ValueError):
    """A config combination that cannot work (the CLI reports it with exit code 2)."""


def background_mode(cfg: Mapping[str, Any], section: str) -> str:
    """``cfg[section].background`` validated (default 'learned'; 'seeds' only for random_walk)."""
    mode = (cfg.get(section, None) or {}).get("background", "learned")
    modes = WALK_MODES if section == "random_walk" else MODES
    if mode not in modes:
        raise UserInputError(f"{section}.background must be one of {modes}, got {mode!r}")
    return mode


def uses_calib(value: Any) -> bool:
    return isinstance(value, str) and value == "calib"


def background_inputs(cfg: Mapping[str, Any], section: str, threshold_keys: tuple[str, ...]) -> tuple[str, ...]:
    """Extra input stages: 'bao' for the learned background, 'eval_seeds' for a threshold taken from calib, none
    for the seeds' own background (the seeds are every refinement stage's input)."""
    from pipeline.stage import section_enabled

    scfg = cfg.get(section, None) or {}
    mode = background_mode(cfg, section)
    if mode == "seeds":
        return ()
    if mode == "learned":
        if not section_enabled(cfg, "bao"):
            raise UserInputError(f"{section}.background='learned' reads the BAO stage's background maps, but "
                             f"bao.enabled=False: enable bao, or set {section}.background='threshold'")
        return ("bao",)
    if any(uses_calib(scfg.get(k)) for k in threshold_keys):
        return ("eval_seeds",)
    return ()


def calib_threshold(work_dir: Path, key: str) -> float:
    """The background threshold chosen on the calibration split (``eval_seeds/results.json``)."""
    from pipeline.cache import read_json

    path = Path(work_dir) / "eval_seeds" / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{key}='calib' needs {path} (run eval_seeds with a calib.split)")
    res = read_json(path)
    t = res.get("calib_threshold") if isinstance(res, dict) else None
    if t is None:
        raise ValueError(f"{key}='calib' but {path} has no calib_threshold: declare a calibration split "
                         "(calib.split, calib.size) with masks, or give a number")
    return float(t)


def threshold_value(value: Any, work_dir: Path, key: str, default: float) -> tuple[float, str]:
    """(threshold, provenance) of a config value: a number ('config') or 'calib' ('calib')."""
    if value is None:
        return float(default), "default"
    if uses_calib(value):
        return calib_threshold(work_dir, key), "calib"
    try:
        return float(value), "config"
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number or 'calib', got {value!r}") from None


def background_scale(cfg: Mapping[str, Any]) -> float:
    """``learned_background.scale`` validated (default 1.0: the BAO map as it is)."""
    scale = (cfg.get("learned_background", None) or {}).get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 4:
        raise UserInputError(f"learned_background.scale must be a number in (0, 4], got {scale!r}")
    return float(scale)


def load_background(bao_dir: Path, id_: str, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """The learned background map (H, W) float32 of one image, times ``scale`` (``learned_background.scale``;
    the map itself is in [0, 1])."""
    path = Path(bao_dir) / "bg" / f"{id_}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: learned background map missing (run the bao stage to completion)")
    with np.load(path) as z:
        bg = z["bg"].astype(np.float32)
    if bg.shape != tuple(shape):
        raise ValueError(f"{path}: background map is {bg.shape[1]}x{bg.shape[0]}, the seeds are "
                         f"{shape[1]}x{shape[0]}: BAO run on other images? Re-run the bao stage.")
    return bg if scale == 1.0 else bg * np.float32(scale)


def provenance_label(provenance: str) -> str:
    """'ground-truth-free' or 'tuned with ground truth (on calib)' for a setting's provenance."""
    return "tuned with ground truth (on calib)" if provenance == "calib" else (
        "ground-truth-free" if provenance in ("learned", "seeds") else f"fixed threshold ({provenance})")
