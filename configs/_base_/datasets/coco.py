# MS COCO 2014 after `python tools/convert_coco.py --coco-root data/coco` (see docs/COCO.md).
# Layout: <root>/{train2014,val2014}/*.jpg, <root>/annotations/instances_*.json,
#         <root>/SegmentationClass/{train2014,val2014}/*.png, <root>/ImageSets/*.txt, <root>/classes.txt
dataset = dict(
    type="coco",
    root="data/coco",
    train_split="train2014",
    val_split="val2014",
    label_file="labels_{split}.json",  # image-level labels written by the converter (no mask reads at start)
    cache_dir="workdirs/.cache",
)

# Config values given as 'auto' are derived from this dataset's train split when the config is loaded
# (wsss/auto_settings.py; the values and why are in summary.json and the report).
config_hooks = ["wsss.auto_settings:resolve"]
