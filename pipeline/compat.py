"""Compatibility fixes for the pinned stack, applied in one place before anything else imports it.

Each fix applies only when the problem is really present and logs once what it did; on a machine with a
normal GPU install (CUDA torchvision, full mmcv) none applies. See README "Install" for the background.

1. torchvision's PyPI wheel is a CUDA build; with the CPU torch its ``_C`` extension cannot load and
   ``import torchvision`` dies on ``torchvision::nms``. Defining the op schemas first makes the Python side
   work (models, transforms); compiled ops such as ``nms`` stay unavailable (we use none).
2. ``mmcv-lite`` has no ``mmcv._ext``; mmseg imports ``mmcv.ops`` unconditionally. A stand-in module whose
   attributes raise a clear error when *called* lets mmseg import; DeepLabV3/V3+ use no compiled op.
3. torch >= 2.6 loads checkpoints with ``weights_only=True``, which rejects mmengine's own checkpoints.
   We allow-list the mmengine/numpy classes those checkpoints hold (not a global opt-out). mmengine's training
   checkpoints also pickle ``builtins.getattr`` (HistoryBuffer's statistics methods in the message hub); allowing
   ``getattr`` would re-open arbitrary code execution for every checkpoint, so it is only allowed inside
   :func:`trusted_checkpoints`, around code that loads checkpoints this pipeline wrote itself (mmengine resume).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import sys
import types

log = logging.getLogger("wsss.compat")
APPLIED: list[str] = []


def _note(msg: str) -> None:
    APPLIED.append(msg)
    log.info("compat: %s", msg)


def _fix_torchvision_ops() -> None:
    import torch

    if "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    try:
        torch.ops.load_library  # noqa: B018  (attribute exists on all supported torch)
        has_nms = torch._C._dispatch_has_kernel_for_dispatch_key("torchvision::nms", "CPU")
    except Exception:  # noqa: BLE001
        has_nms = False
    if has_nms:
        return
    # Try the real extension first: on a matching (CPU or CUDA) install it loads and we do nothing.
    import glob
    import os

    so_files = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
    for so in so_files:
        try:
            torch.ops.load_library(so)
            return
        except (OSError, RuntimeError):
            pass
    try:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    except RuntimeError:
        return  # already defined by someone else
    globals()["_TV_LIB"] = lib  # keep the library alive
    _note("torchvision's compiled ops do not load with this torch (CUDA wheel on CPU torch); "
          "defined op schemas so the Python side works (nms etc. unavailable)")


class _MissingExt(types.ModuleType):
    """Stands in for ``mmcv._ext``: importable, but any compiled op raises a clear error when called."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def _unavailable(*args, **kwargs):
            raise RuntimeError(
                f"mmcv compiled op '{name}' is not available: mmcv-lite is installed. "
                "Install full mmcv (see README 'Install') to use models that need compiled ops.")

        return _unavailable


def _fix_mmcv_ext() -> None:
    if "mmcv._ext" in sys.modules or importlib.util.find_spec("mmcv") is None:
        return
    try:
        import mmcv._ext  # noqa: F401
        return
    except ImportError:
        pass
    mod = _MissingExt("mmcv._ext")
    mod.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    sys.modules["mmcv._ext"] = mod
    _note("mmcv._ext is absent (mmcv-lite); registered a stand-in so mmseg imports "
          "(compiled mmcv ops raise if called; DeepLabV3/V3+ need none)")


def _fix_weights_only_load() -> None:
    import torch

    if not hasattr(torch.serialization, "add_safe_globals"):
        return
    safe = []
    try:
        from mmengine.logging.history_buffer import HistoryBuffer

        safe.append(HistoryBuffer)
    except ImportError:
        pass
    try:  # numpy arrays and dtypes inside mmengine's checkpoint metadata (numpy 2 module layout)
        import numpy as np
        import numpy._core.multiarray as multiarray

        safe += [np.dtype, np.ndarray, multiarray._reconstruct, multiarray.scalar]
        safe += [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_)]
    except (ImportError, AttributeError):
        pass
    if safe:
        torch.serialization.add_safe_globals(safe)
        _note("allow-listed mmengine/numpy globals for torch's weights_only checkpoint loading")


def trusted_checkpoints():
    """Context manager: also allow ``builtins.getattr`` while loading checkpoints we wrote (mmengine resume)."""
    import contextlib

    import torch

    if hasattr(torch.serialization, "safe_globals"):
        return torch.serialization.safe_globals([getattr])
    return contextlib.nullcontext()


# Warnings from the pinned stack that a user can do nothing about, each with why it is safe to hide. Everything
# else (our own warnings, torch's, a new deprecation) still shows.
QUIET_WARNINGS = (
    # mmengine 0.10.7 imports pkg_resources (we pin setuptools<81 so that it still exists)
    ("pkg_resources is deprecated as an API", UserWarning),
    # mmseg 1.2.2 calls its own deprecated build_loss inside every decode head
    ("``build_loss`` would be deprecated soon", UserWarning),
    # mmseg's CrossEntropyLoss default (avg_non_ignore=False), which its shipped recipes use as they are
    ("Default ``avg_non_ignore`` is False", UserWarning),
    # mmseg's SegVisualizationHook with draw=False: we do not draw predictions during training
    ("The draw is False", UserWarning),
)


# mmengine log warnings about its own internals (its CheckpointHook builds the deprecated FileClient itself;
# mmseg's IoUMetric has no default prefix, and its keys are read without one)
QUIET_LOG_MESSAGES = (
    '"FileClient" will be deprecated in future',
    '"HardDiskBackend" is the alias of "LocalBackend"',
    "The prefix is not set in metric class",
)


class QuietStackMessages(logging.Filter):
    """Drops the log records of :data:`QUIET_LOG_MESSAGES` (for a console handler on mmengine's logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(m in message for m in QUIET_LOG_MESSAGES)


def _quiet_stack_warnings() -> None:
    import warnings

    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def apply() -> list[str]:
    """Apply every fix that is needed; idempotent."""
    if getattr(apply, "_done", False):
        return APPLIED
    _quiet_stack_warnings()
    _fix_torchvision_ops()
    _fix_mmcv_ext()
    _fix_weights_only_load()
    apply._done = True  # type: ignore[attr-defined]
    return APPLIED


apply()
