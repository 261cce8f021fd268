# Your own dataset in VOC layout (see configs/_base_/datasets/custom.py for the folder layout):
#   tools/run_pipeline.sh configs/custom/bas_irn.py --cfg-options dataset.root=/data/my_dataset
_base_ = [
    "../_base_/datasets/custom.py",
    "../_base_/classify.py",
    "../_base_/seeds_eval.py",
    "../_base_/refine.py",
    "../_base_/segment.py",
    "../_base_/report.py",
    "../_base_/runtime.py",
]
experiment = "custom_bas_irn"
segment = dict(model="configs/segment/deeplabv3plus_r50-d8_voc.py")
