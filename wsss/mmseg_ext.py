"""Our registrations in MMSegmentation's registries (imported for its side effects; no mmseg file is forked).

- ``WSSSSegDataset``: a segmentation dataset from an explicit id list + image paths + label folder, so the
  training split's images can be paired with a pseudo-label folder (``<work_dir>/<stage>/labels/<id>.png``).
- ``WSSSLoadImage`` / ``WSSSLoadAnnotations``: load through the project's one image reader
  (``wsss.datasets.read_image``, RGB -> mmseg's BGR convention) and label-PNG reader (index values, not colours).
- ``TVMobileNetV2``: mmseg's ``MobileNetV2`` backbone that initialises from torchvision's ImageNet checkpoint
  (the offline weights in torch's hub cache), with every key mapped explicitly.
- ``CPUFriendlyDDP``: mmengine's DDP wrapper that drops ``device_ids`` for CPU modules, so multi-process
  training with gloo works on CPU (mmengine always passes ``device_ids=[LOCAL_RANK]``).
- ``ResumeRNGHook``: torch's RNG state in every checkpoint, restored on resume (exact resume of segment).
- ``ChannelsLastHook``: the model's conv weights NHWC for training (``runtime.channels_last``; one process).
- ``SpaceToBatchHook``: the model's dilated convs trained as space-to-batch on CPU (``wsss.models.atrous``).
- ``CPUBF16OptimWrapper``: mmengine's optimizer wrapper with the forward under bfloat16 autocast on CPU
  (``runtime.cpu_bf16``; mmengine's ``AmpOptimWrapper`` runs on accelerators only).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS
from mmengine.registry import MODEL_WRAPPERS as ENGINE_MODEL_WRAPPERS
from mmseg.datasets import BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.models.backbones import MobileNetV2
from mmseg.registry import DATASETS, MODELS, OPTIM_WRAPPERS, TRANSFORMS

from wsss.datasets import read_image, read_label_png
from wsss.maps import voc_palette
from wsss.models.atrous import use_space_to_batch

log = logging.getLogger("wsss.mmseg_ext")

# mmseg suggests one sigmoid channel when a head has 2 classes; a one-class dataset (background + class) trains with
# the softmax over 2 channels on purpose, as every other class count does (same loss, same evaluation)
warnings.filterwarnings("ignore", message="For binary segmentation, we suggest", category=UserWarning)

TV_MOBILENET_V2_FILE = "mobilenet_v2-b0353104.pth"


# ----------------------------------------------------------------------------------------------- dataset
@DATASETS.register_module()
class WSSSSegDataset(BaseSegDataset):
    """Images ``img_paths`` (one per id) paired with labels ``label_dir/<id><label_suffix>`` for ``ids``.

    Unlike mmseg's datasets this takes the id list itself (no ann_file, no data_root): the training images
    come from the dataset's split while the labels may come from any folder (pseudo-labels or ground truth).
    ``background_ids``: images without any class (negatives), labelled all background without a file (the
    pseudo-label stages label only images with a class).
    """

    METAINFO: dict = dict()

    def __init__(self, ids: Sequence[str], img_paths: Sequence[str], label_dir: str, classes: Sequence[str],
                 label_suffix: str = ".png", background_ids: Sequence[str] = (), **kwargs: Any) -> None:
        if len(img_paths) != len(ids):
            raise ValueError(f"WSSSSegDataset: {len(ids)} ids but {len(img_paths)} image paths")
        self._ids = [str(i) for i in ids]
        self._img_paths = [str(p) for p in img_paths]  # the dataset reader's paths (any image suffix per id)
        self._background = {str(i) for i in background_ids}  # of ids: labelled all background, no file read
        self._label_dir = str(label_dir)
        palette = voc_palette(len(classes)).tolist()
        metainfo = dict(classes=tuple(classes), palette=palette)
        kwargs.setdefault("reduce_zero_label", False)
        super().__init__(seg_map_suffix=label_suffix, metainfo=metainfo, data_root=None, **kwargs)

    def load_data_list(self) -> list[dict]:
        return [dict(img_path=img_path,
                     seg_map_path=None if i in self._background else os.path.join(self._label_dir,
                                                                                  i + self.seg_map_suffix),
                     background_only=i in self._background,
                     img_id=i, label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                     seg_fields=[])
                for i, img_path in zip(self._ids, self._img_paths)]


# ----------------------------------------------------------------------------------------------- transforms
@TRANSFORMS.register_module()
class WSSSLoadImage:
    """Load ``results['img_path']`` with ``wsss.datasets.read_image`` (RGB) and store it BGR as mmseg expects."""

    def __call__(self, results: dict) -> dict:
        img = read_image(results["img_path"])[:, :, ::-1].copy()
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"


@TRANSFORMS.register_module()
class WSSSLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` reading the label PNG's index values with ``wsss.datasets.read_label_png``
    (all background for an image the dataset marks ``background_only``)."""

    def _load_seg_map(self, results: dict) -> None:
        if results.get("background_only"):  # an image without classes: every pixel is background
            results["gt_seg_map"] = np.zeros(results["ori_shape"], np.uint8)
            results["seg_fields"].append("gt_seg_map")
            return
        seg = read_label_png(results["seg_map_path"])
        if results.get("label_map"):
            copy = seg.copy()
            for old, new in results["label_map"].items():
                seg[copy == old] = new
        results["gt_seg_map"] = seg
        results["seg_fields"].append("gt_seg_map")


# ----------------------------------------------------------------------------------------------- backbone
def _tv_block_map(tv_idx: int, expand: bool) -> dict[str, str]:
    """torchvision ``features.<i>.conv.*`` sub-keys -> mmseg ``InvertedResidual.conv.*`` sub-keys of one block."""
    if expand:  # 1x1 expand (ConvBNReLU), 3x3 dw (ConvBNReLU), 1x1 project conv, BN
        pairs = {"conv.0.0": "conv.0.conv", "conv.0.1": "conv.0.bn", "conv.1.0": "conv.1.conv",
                 "conv.1.1": "conv.1.bn", "conv.2": "conv.2.conv", "conv.3": "conv.2.bn"}
    else:  # 3x3 dw (ConvBNReLU), 1x1 project conv, BN
        pairs = {"conv.0.0": "conv.0.conv", "conv.0.1": "conv.0.bn", "conv.1": "conv.1.conv", "conv.2": "conv.1.bn"}
    return {f"features.{tv_idx}.{a}": b for a, b in pairs.items()}


def map_torchvision_mobilenet_v2(tv_state: Mapping[str, torch.Tensor],
                                 arch_settings: Sequence[Sequence[int]] = MobileNetV2.arch_settings,
                                 ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a torchvision ``mobilenet_v2`` state dict to mmseg ``MobileNetV2`` backbone keys.

    Returns (mapped state dict, torchvision keys left unused: the final 1x1 conv ``features.18`` and the
    classifier, which the segmentation backbone does not have). Every tensor keeps its shape.
    """
    prefixes: dict[str, str] = {"features.0.0": "conv1.conv", "features.0.1": "conv1.bn"}
    tv_idx = 1
    for layer, (expand_ratio, _, num_blocks) in enumerate(arch_settings, start=1):
        for b in range(num_blocks):
            for tv_pre, mm_sub in _tv_block_map(tv_idx, expand_ratio != 1).items():
                prefixes[tv_pre] = f"layer{layer}.{b}.{mm_sub}"
            tv_idx += 1
    out: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    pattern = re.compile(r"^(.*)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
    for key, value in tv_state.items():
        m = pattern.match(key)
        if m and m.group(1) in prefixes:
            out[f"{prefixes[m.group(1)]}.{m.group(2)}"] = value
        else:
            unused.append(key)
    return out, unused


def default_mobilenet_v2_checkpoint() -> Path:
    """Where torchvision keeps its ImageNet MobileNetV2 weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TV_MOBILENET_V2_FILE


@MODELS.register_module()
class TVMobileNetV2(MobileNetV2):
    """mmseg's MobileNetV2 initialised from a torchvision ``mobilenet_v2`` checkpoint.

    ``tv_checkpoint``: path to the torchvision state dict; ``'imagenet'`` = the offline file in torch's hub
    cache (downloaded there when missing; unavailable: wsss.weights.PretrainedWeightsError); None = random
    init. A missing path, or a checkpoint that does not cover every backbone weight, is an error.
    """

    def __init__(self, tv_checkpoint: str | None = "imagenet", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tv_checkpoint = tv_checkpoint
        if kwargs.get("widen_factor", 1.0) != 1.0 and tv_checkpoint:
            raise ValueError("TVMobileNetV2: torchvision's ImageNet weights exist only for widen_factor=1.0")

    def load_torchvision(self, path: str | os.PathLike) -> list[str]:
        """Load torchvision weights from ``path``; raise if any backbone tensor is not covered. Returns unused keys."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        mapped, unused = map_torchvision_mobilenet_v2(state, self.arch_settings)
        own = self.state_dict()
        missing = [k for k in own if k not in mapped]
        bad = [f"{k}: {tuple(mapped[k].shape)} vs {tuple(own[k].shape)}" for k in own
               if k in mapped and mapped[k].shape != own[k].shape]
        if missing or bad:
            raise ValueError(f"{path}: torchvision MobileNetV2 checkpoint does not cover the backbone: "
                             f"{len(missing)} missing key(s) {missing[:5]}, {len(bad)} shape mismatch(es) {bad[:3]}")
        self.load_state_dict(mapped, strict=True)
        return unused

    def init_weights(self) -> None:
        super().init_weights()
        if not self.tv_checkpoint:
            return
        if self.tv_checkpoint == "imagenet":
            from wsss.weights import cached_checkpoint, torchvision_url

            path = cached_checkpoint(torchvision_url("mobilenet_v2"), "segment.pretrained")
        else:
            path = Path(self.tv_checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: torchvision MobileNetV2 checkpoint not found")
        unused = self.load_torchvision(path)
        log.info("MobileNetV2 backbone: loaded %d tensors from %s (unused: %d, e.g. %s)",
                 len(self.state_dict()), path, len(unused), unused[:2])


# ----------------------------------------------------------------------------------------------- progress
@HOOKS.register_module()
class ConsoleProgressHook(Hook):
    """A progress bar over the training iterations on the console (rank 0); mmengine's own per-iteration log
    goes to its log file (wsss.segmentation keeps mmengine's console output off the console)."""

    priority = "VERY_LOW"

    def before_train(self, runner: Any) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc="segment", unit="it", dynamic_ncols=True,
                        mininterval=1.0, disable=runner.rank != 0)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.bar.update(1)
        loss = (outputs or {}).get("loss") if isinstance(outputs, Mapping) else None
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss.item() if hasattr(loss, 'item') else float(loss):.4f}", refresh=False)

    def after_train(self, runner: Any) -> None:
        self.bar.close()


# ----------------------------------------------------------------------------------------------- DDP on CPU
# in mmengine's root registry: the Runner looks wrappers up there (mmseg's child registry is not searched)
@ENGINE_MODEL_WRAPPERS.register_module()
class CPUFriendlyDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts a CPU module (drops ``device_ids``, which DDP refuses there)."""

    def __init__(self, module: torch.nn.Module, **kwargs: Any) -> None:
        if next(module.parameters()).device.type == "cpu":
            kwargs.pop("device_ids", None)
            kwargs.pop("output_device", None)
        super().__init__(module=module, **kwargs)


def label_values(path: str | os.PathLike) -> np.ndarray:
    """Distinct values of a label PNG (for input checks)."""
    return np.unique(read_label_png(path))


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Store the model NHWC (channels-last) once its weights are loaded: the convolutions then run NHWC kernels,
    1.44x faster for the demo's DeepLabV3+ MobileNetV2 training step on CPU (bench/README "Memory layout").
    Only for a single process: DDP's gradient buckets are laid out when it wraps the model, before this hook."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        runner.model.to(memory_format=torch.channels_last)


@HOOKS.register_module()
class SpaceToBatchHook(Hook):
    """Dilated convs (the stride-8 backbone's, ASPP's) train as space-to-batch on CPU: the same products, 2.5-5x
    faster forward + backward for depthwise ones (bench/README "Dilated convolutions on CPU"); the plain conv on
    GPU. Swaps module classes only (no parameter changes), so it is safe after DDP has wrapped the model."""

    priority = "VERY_HIGH"

    def before_train(self, runner: Any) -> None:
        n = use_space_to_batch(runner.model)
        runner.logger.info(f"SpaceToBatchHook: {n} dilated convs train as space-to-batch on CPU")


@HOOKS.register_module()
class ResumeRNGHook(Hook):
    """Makes a resumed segment training continue exactly as the uninterrupted one would.

    mmengine's resume restores weights, optimizer, schedulers and the iteration, re-seeds, and advances the data
    loader over the iterations already trained (so the sampler order and the numpy draws of the augmentations
    repeat), but not torch's global RNG, which the model consumes (dropout) and the skipped iterations did not.
    This hook stores torch's CPU and CUDA RNG states in every checkpoint and puts them back right before the
    first iteration after a resume (after the data loader's advance, which draws no torch random numbers).
    """

    priority = "VERY_LOW"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["wsss_rng_state"] = state

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = checkpoint.get("wsss_rng_state")

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self._pending is not None:
            torch.set_rng_state(self._pending["torch"])
            if "cuda" in self._pending and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._pending["cuda"])
            self._pending = None


@OPTIM_WRAPPERS.register_module()
class CPUBF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` (the data preprocessor and the forward with its losses) runs under
    bfloat16 autocast on CPU (``runtime.cpu_bf16``); the backward follows the forward's dtypes, the weights and the
    optimizer stay float32, and no loss scaling is needed (bfloat16 has float32's exponent range)."""

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast("cpu", dtype=torch.bfloat16):
            yield
