"""DeepLab in MMSegmentation 1.x on pseudo-labels: build the mmseg config from ours, train, evaluate, export.

The mmseg model configs in ``configs/segment/`` inherit from the configs shipped inside the mmseg package
(``_base_ = 'mmseg::deeplabv3plus/...'``: mmengine resolves ``mmseg::`` to ``<mmseg>/.mim/configs`` at run time),
so nothing of mmseg is copied. :func:`build_mmseg_config` then replaces the data part with our dataset
(``WSSSSegDataset``: training images of the split + pseudo-label folder; validation on the val split's ground
truth), sets ``num_classes`` from our dataset, and applies the ``segment`` section (iterations, crop, lr ...).
Training runs mmengine's ``Runner`` (checkpoints, ``resume=True``, TensorBoard scalars, ``launcher='pytorch'``
under torchrun). Evaluation fuses softmax over scales and flips itself (the same arithmetic as mmseg's
``SegTTAModel``), optionally applies the DeepLab dense CRF, writes palette PNGs and scores them with mmseg's
``IoUMetric``.

The package, one concern per module: ``mmseg_config`` (our config -> mmseg's), ``checks`` (label folder, class
count), ``train`` (mmengine Runner), ``inference`` (multi-scale + flip probabilities), ``metric`` (IoU, tables).
"""
from .checks import check_label_folder, check_num_classes
from .inference import load_model, predict_probs
from .metric import format_iou_table, iou_metric, write_text
from .mmseg_config import (
    MMSEG_CONFIGS,
    REPO_ROOT,
    _replace_type,
    apply_backbone_weights,
    build_mmseg_config,
    dump_config,
    label_dir_for,
    mmseg_config_dir,
    model_config,
    resolve_model_config,
    segment_inputs,
    val_split_name,
)
from .train import mmengine_console_quiet, train

__all__ = ["MMSEG_CONFIGS", "REPO_ROOT", "_replace_type", "apply_backbone_weights", "build_mmseg_config",
           "check_label_folder", "check_num_classes", "dump_config", "format_iou_table", "iou_metric",
           "label_dir_for", "load_model", "mmengine_console_quiet", "mmseg_config_dir", "model_config",
           "predict_probs", "resolve_model_config", "segment_inputs", "train", "val_split_name", "write_text"]
