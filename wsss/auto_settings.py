"""Sizes and lengths that follow the data: config values ``'auto'`` resolved from the train split's statistics.

:func:`dataset_stats` reads the image sizes from the file headers (a deterministic sample of at most
``MAX_SAMPLE`` images) and counts the images; :func:`derive` turns them into settings, each with the reason;
:func:`resolve` (the config hook named in ``config_hooks`` of the dataset bases) replaces every ``'auto'`` value
of the config by its derived value and records ``cfg.auto_settings = {key: {value, why}}`` (the runner writes it
into ``summary.json``, the report shows it). Keys that are numbers in the config are left alone.

The rules (reference points in parentheses: VOC, median image 500x375, and the demo, median 139x123):
- ``classify.resize`` = median long side rounded up to 16, in [64, M] (VOC 512 as BAS; demo 144), where M =
  ``auto_limits.max_side`` (default 512, the published sizes; the CPU config lowers it to bound the cost);
  ``classify.crop_size`` = 7/8 of it rounded up to 16 (BAS 448 of 512; demo 128);
- ``seeds.max_image_side`` = classify.resize x classify.scale_range[1] rounded up to 16 (the longest side the
  classifier trains at; VOC 672, above its 500 px images; an image longer than it is labelled at it);
- ``seeds.scales`` = (1.0, 0.5, 1.5, 2.0) when a half-scale image still gives a stride-16 map of >= 8 cells
  (resize >= 256), else (1.0, 1.5, 2.0);
- ``affinity.crop_size`` = median long side rounded up to 16, in [64, M] (IRN 512), ``affinity.resize_range``
  0.625-1.25 times it (IRN 320-640); ``affinity.train_radius`` =
  sqrt of the crop's grid width (crop / grid_stride), in [3, 10] (IRN 10 on a 128-cell grid; demo 6);
- ``random_walk.radius`` = min(5, train radius) (IRN 5); ``random_walk.exp_times``: the walk spreads seed mass
  ~ radius * sqrt(steps) cells, so keep that spread at IRN's share of the grid (5 * 16 / 125 = 0.64):
  round(2 * log2(0.64 * grid / radius)), grid = median long side (at most an explicit random_walk.max_image_side)
  / grid_stride, in [2, 8] (VOC 8; demo 4);
- ``segment.crop_size`` = median short side rounded up to 16, in [64, M]; ``segment.img_scale`` = (95th
  percentile long side, that crop), both rounded up to 16 (images kept at their own scale);
- ``segment.iters`` = ``segment.auto_epochs`` passes over the train split at ``segment.batch_size`` x world size
  (mmseg's VOC recipe is ~30 passes: 20k x 16 / 10582), at least ``segment.auto_min_iters`` (1000: fewer steps left
  DeepLab unconverged on small real-photo splits, bench/README.md);
- ``classify.epochs`` / ``bao.epochs`` / ``affinity.epochs`` = the published epoch count (10 / 10 / 3), raised so
  that the schedule has at least ``MIN_ITERS`` iterations on a small dataset;
- ``bao.teacher_from_epoch`` = half of ``bao.epochs`` (the demo's 12 of 24): the first seeds' labels train the new
  label-conditioned head for half the schedule before the EMA teacher's labels replace them. Epoch 1 (VOC: 661
  iterations) is a few iterations on a small split, after which the teacher labelled most pixels foreground.

One key follows the machine instead (:func:`machine_settings`): ``runtime.cpu_bf16`` = True on a CPU with AMX
bfloat16 units (the only bfloat16 hardware measured; float32 elsewhere). Its value is in the fingerprints of the
training stages, so a work dir moved to a machine that resolves it otherwise retrains them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

AUTO = "auto"
MAX_SAMPLE = 2000
MIN_ITERS = {"classify": 300, "bao": 300, "affinity": 150}
BASE_EPOCHS = {"classify": 10, "bao": 10, "affinity": 3}
DEFAULT_MAX_SIDE = 512  # BAS / IRN / mmseg VOC sizes
CPUINFO = "/proc/cpuinfo"  # where cpu_bf16_hardware reads the CPU's flags
WALK_SPREAD = 0.64  # IRN: radius 5 * sqrt(2^8) / 125 grid cells
DERIVABLE = ("classify.resize", "classify.crop_size", "classify.epochs", "seeds.scales", "seeds.max_image_side",
             "bao.epochs", "affinity.crop_size", "affinity.resize_range", "affinity.train_radius", "affinity.epochs",
             "random_walk.radius", "random_walk.exp_times", "segment.crop_size", "segment.img_scale",
             "segment.iters", "bao.teacher_from_epoch")


@dataclass(frozen=True)
class DatasetStats:
    """Image-size statistics of a split (from a deterministic sample of file headers)."""

    num_images: int
    sampled: int
    median_long: float
    median_short: float
    p95_long: float


def dataset_stats(paths: Mapping[str, Any]) -> DatasetStats:
    """Sizes of (a sample of) the images ``{id: path}`` of a split, from the file headers (no decoding)."""
    from wsss.datasets import carve_ids, image_size

    ids = list(paths)
    if not ids:
        raise ValueError("the split has no images to derive 'auto' settings from")
    sample = ids if len(ids) <= MAX_SAMPLE else carve_ids(ids, MAX_SAMPLE)
    sizes = np.array([image_size(paths[i]) for i in sample], np.float64)
    long, short = sizes.max(1), sizes.min(1)
    return DatasetStats(num_images=len(ids), sampled=len(sample), median_long=float(np.median(long)),
                        median_short=float(np.median(short)), p95_long=float(np.percentile(long, 95)))


def _r16(x: float, lo: int = 64, hi: int = 512) -> int:
    """``x`` rounded up to a multiple of 16 (the stride of the maps), clamped to [lo, hi]."""
    return int(min(hi, max(lo, 16 * math.ceil(x / 16 - 1e-9))))


def _get(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) or hasattr(node, "get") else None
        if node is None:
            return None
    return node


def max_side(cfg: Mapping[str, Any]) -> int:
    """``auto_limits.max_side``: the largest training resize / crop side an 'auto' value may take."""
    v = _get(cfg, "auto_limits.max_side")
    if v is None:
        return DEFAULT_MAX_SIDE
    if isinstance(v, bool) or not isinstance(v, int) or v < 64:
        raise ValueError(f"auto_limits.max_side must be an integer >= 64, got {v!r}")
    return int(v)


def _value(cfg: Mapping[str, Any], key: str, derived: dict[str, dict[str, Any]], default: Any) -> Any:
    """A key's effective value: the config's when it gives one, else the derived one, else ``default``."""
    v = _get(cfg, key)
    if v is not None and not (isinstance(v, str) and v == AUTO):
        return v
    return derived[key]["value"] if key in derived else default


def derive(cfg: Mapping[str, Any], stats: DatasetStats, world_size: int = 1) -> dict[str, dict[str, Any]]:
    """Every derivable setting: ``{key: {"value": v, "why": reason}}`` (all of them, 'auto' or not)."""
    out: dict[str, dict[str, Any]] = {}
    L, S = stats.median_long, stats.median_short
    size = f"median image {L:.0f}x{S:.0f} px over {stats.sampled} of {stats.num_images} images"

    def put(key: str, value: Any, why: str) -> None:
        out[key] = {"value": value, "why": why}

    hi = max_side(cfg)
    bound = f"in [64, {hi}]" + ("" if hi == DEFAULT_MAX_SIDE else " (auto_limits.max_side)")
    resize = _r16(L, 64, hi)
    put("classify.resize", resize, f"{size}: long side rounded up to 16, {bound}")
    put("classify.crop_size", _r16(0.875 * resize, 32), f"7/8 of classify.resize={resize} (BAS: 448 of 512)")
    half = resize * 0.5 / 16
    put("seeds.scales", (1.0, 0.5, 1.5, 2.0) if half >= 8 else (1.0, 1.5, 2.0),
        f"a 0.5 scale gives a {half:.1f}-cell stride-16 map at classify.resize={resize}"
        + (" (>= 8: kept)" if half >= 8 else " (< 8: dropped)"))
    resize_now = int(_value(cfg, "classify.resize", out, resize))
    top = float(tuple(_value(cfg, "classify.scale_range", out, (0.7, 1.3)))[1])
    longest = _r16(resize_now * top, 64, 1 << 16)
    put("seeds.max_image_side", longest, f"the longest side the classifier trains at: classify.resize={resize_now} x "
                                         f"{top:g} (classify.scale_range) rounded up to 16; longer images are "
                                         "labelled at it")
    aff_crop = _r16(L, 64, hi)
    put("affinity.crop_size", aff_crop, f"{size}: long side rounded up to 16, {bound} (IRN 512)")
    stride = int(_value(cfg, "affinity.grid_stride", out, 4))
    crop_now = int(_value(cfg, "affinity.crop_size", out, aff_crop))
    put("affinity.resize_range", (_r16(0.625 * crop_now, 32, 1024), _r16(1.25 * crop_now, 32, 1024)),
        f"long side 0.625-1.25 x affinity.crop_size={crop_now} (IRN: 320-640 for 512)")
    radius = int(min(10, max(3, round(math.sqrt(crop_now / stride)))))
    put("affinity.train_radius", radius, f"sqrt of the {crop_now // stride}-cell training grid, in [3, 10] "
                                         "(IRN: 10 on 128 cells)")
    train_radius = int(_value(cfg, "affinity.train_radius", out, radius))
    walk_r = min(5, train_radius)
    put("random_walk.radius", walk_r, f"IRN's 5, at most affinity.train_radius={train_radius}")
    walk_r = int(_value(cfg, "random_walk.radius", out, walk_r))
    walk_side = _get(cfg, "random_walk.max_image_side")  # an explicit bound: the walk runs on that grid
    grid = (min(L, walk_side) if isinstance(walk_side, int) and not isinstance(walk_side, bool) else L) / stride
    e = int(min(8, max(2, round(2 * math.log2(max(1e-6, WALK_SPREAD * grid / walk_r))))))
    put("random_walk.exp_times", e, f"2^{e} steps spread ~radius*sqrt(steps) = {walk_r * 2 ** (e / 2):.0f} cells "
                                    f"of a {grid:.0f}-cell grid (IRN: {WALK_SPREAD:.2f} of it)")
    crop = _r16(S, 64, hi)
    put("segment.crop_size", crop, f"{size}: short side rounded up to 16, {bound}")
    crop_now = int(_value(cfg, "segment.crop_size", out, crop))
    put("segment.img_scale", (max(crop_now, _r16(stats.p95_long, 64, 2048)), crop_now),
        f"(95th-percentile long side {stats.p95_long:.0f}, segment.crop_size): images kept at their own scale")
    batch = int(_value(cfg, "segment.batch_size", out, 4)) * max(1, int(world_size))
    epochs = float(_value(cfg, "segment.auto_epochs", out, 30))
    floor = int(_value(cfg, "segment.auto_min_iters", out, 1000))
    passes = math.ceil(epochs * stats.num_images / batch)
    iters = max(floor, passes)
    put("segment.iters", iters, f"{epochs:g} passes over {stats.num_images} images at batch {batch} "
                                f"(segment.auto_epochs; mmseg VOC: ~30) = {passes}, at least {floor} "
                                "(segment.auto_min_iters)")
    for section in ("classify", "bao", "affinity"):
        b = int(_value(cfg, f"{section}.batch_size", out, 16)) * max(1, int(world_size))
        per_epoch = max(1, math.ceil(stats.num_images / b))
        ep = max(BASE_EPOCHS[section], math.ceil(MIN_ITERS[section] / per_epoch))
        put(f"{section}.epochs", ep, f"{BASE_EPOCHS[section]} epochs (published), at least {MIN_ITERS[section]} "
                                     f"iterations: {per_epoch} per epoch at batch {b}")
    bao_epochs = int(_value(cfg, "bao.epochs", out, BASE_EPOCHS["bao"]))
    put("bao.teacher_from_epoch", max(1, bao_epochs // 2),
        f"half of bao.epochs={bao_epochs}: the first seeds' labels for half the schedule, then the EMA teacher's")
    return out


def cpu_bf16_hardware() -> str | None:
    """The CPU's bfloat16 units, from /proc/cpuinfo (:data:`CPUINFO`): 'amx' (AMX tiles), 'avx512_bf16', or None
    (none, or not Linux): without them bfloat16 autocast is emulated and slower than float32."""
    try:
        with open(CPUINFO) as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return None
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None


def machine_settings(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The 'auto' keys that follow the machine, ``{key: {"value", "why"}}``: ``runtime.cpu_bf16`` is True where
    the CPU has AMX bfloat16 units (there, same-hour pairs on real photos trained classify / BAO / DeepLab in
    0.66-0.79x float32's time, bench/README.md "bfloat16 training on CPU"); on an AMD EPYC with avx512_bf16 and no
    AMX the whole stages gained 12-14 % (affinity lost 17 %) and the pseudo-labels fell 0.6-1.4 points: float32."""
    if _get(cfg, "runtime.cpu_bf16") != AUTO:
        return {}
    hardware = cpu_bf16_hardware()
    why = ("this CPU has AMX bfloat16 units (amx_bf16): bfloat16 autocast of the training steps on CPU"
           if hardware == "amx" else
           f"this CPU has no AMX bfloat16 units ({hardware or 'no bfloat16 flag'}): float32")
    return {"runtime.cpu_bf16": {"value": hardware == "amx", "why": why}}


def auto_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose value is 'auto'."""
    keys = []
    items = cfg.items() if hasattr(cfg, "items") else []
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, str) and v == AUTO:
            keys.append(key)
        elif isinstance(v, Mapping) or (hasattr(v, "items") and not isinstance(v, (str, bytes))):
            keys += auto_keys(v, key + ".")
    return keys


def resolve(cfg: Any) -> dict[str, dict[str, Any]]:
    """Config hook: replace every ``'auto'`` value with its derived value; returns and records the choices."""
    from pipeline.distributed import world
    from wsss.datasets import DatasetError, split_image_paths

    chosen = machine_settings(cfg)
    keys = [k for k in auto_keys(cfg) if k in DERIVABLE]  # other keys have their own 'auto' (runtime.device)
    stats = None
    if keys:
        try:
            stats = dataset_stats(split_image_paths(cfg.get("dataset", None) or {}))
        except (DatasetError, ValueError) as e:
            # the data problem first: it is what the user fixes; the keys say why it is read before any stage
            raise DatasetError(f"{e}. The train split is read to derive the config keys that are 'auto' ({len(keys)}:"
                               f" {', '.join(keys)}); fix the dataset or dataset.root, or give the keys numbers"
                               ) from None
        derived = derive(cfg, stats, world()[1])
        chosen.update({k: derived[k] for k in keys})
    if not chosen:
        return {}
    for k, d in chosen.items():
        section, name = k.rsplit(".", 1)
        node = cfg
        for part in section.split("."):
            node = node[part]
        node[name] = d["value"]
    cfg["auto_settings"] = {**({"stats": stats.__dict__} if stats else {}), **{k: dict(d) for k, d in chosen.items()}}
    return chosen
