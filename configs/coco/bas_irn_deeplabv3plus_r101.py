# MS COCO 2014 (after tools/convert_coco.py): BAS seeds -> CRF / affinity -> DeepLabV3+ R101.
_base_ = [
    "../_base_/datasets/coco.py",
    "../_base_/classify.py",
    "../_base_/seeds_eval.py",
    "../_base_/refine.py",
    "../_base_/segment.py",
    "../_base_/report.py",
    "../_base_/runtime.py",
]
experiment = "coco_bas_irn_r101"
classify = dict(epochs=5, loss_weights=dict(area=0.5))  # smaller objects than VOC: a lighter area constraint
seeds = dict(source="bas", scales=(1.0, 0.5, 1.5))  # BAS maps as in the paper (base default: bas+cam)
segment = dict(model="configs/segment/deeplabv3plus_r101-d8_coco.py")
