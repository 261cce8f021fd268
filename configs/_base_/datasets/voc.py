# PASCAL VOC 2012 with the SBD augmentation (SegmentationClassAug/, ImageSets/Segmentation/train_aug.txt).
# Layout: <root>/JPEGImages, <root>/SegmentationClassAug, <root>/SegmentationClass, <root>/ImageSets/Segmentation
dataset = dict(
    type="voc_aug",
    root="data/VOCdevkit/VOC2012",
    train_split="train_aug",  # classifier / affinity / DeepLab training (image-level labels only)
    val_split="val",  # final evaluation (masks of SegmentationClass)
    cache_dir="workdirs/.cache",  # image-level labels derived from masks are cached here
)

# Config values given as 'auto' are derived from this dataset's train split when the config is loaded
# (wsss/auto_settings.py; the values and why are in summary.json and the report).
config_hooks = ["wsss.auto_settings:resolve"]
