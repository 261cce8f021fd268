# PASCAL VOC 2012 + SBD: BAS (ResNet-50, OS16) seeds -> CRF / IRN-style affinity -> DeepLabV3+ R101 in MMSegmentation.
# Expects data/VOCdevkit/VOC2012 (see configs/_base_/datasets/voc.py); the paper's hyper-parameters (docs/METHOD.md).
_base_ = [
    "../_base_/datasets/voc.py",
    "../_base_/classify.py",
    "../_base_/seeds_eval.py",
    "../_base_/refine.py",
    "../_base_/segment.py",
    "../_base_/report.py",
    "../_base_/runtime.py",
]
experiment = "voc_bas_irn_r101"
seeds = dict(source="bas")  # the paper's BAS maps (the base default 'bas+cam' is measured on the demo and realcut)
