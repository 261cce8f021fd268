# Any dataset in VOC layout with its own class list:
#   <root>/JPEGImages/<id>.jpg (img_suffix 'auto': .jpg, .JPG, .jpeg, .png, ... whichever is there),
#   <root>/SegmentationClass/<id>.png (optional: for evaluation / labels),
#   <root>/ImageSets/Segmentation/{train,val}.txt, <root>/classes.txt (first line 'background').
# Without masks (or with masks for val only), give image-level labels in a JSON file {id: [class names]} with
# label_file=... (or IRN's / PSA's cls_labels.npy); README "Datasets".
# Colour masks (RGB PNGs) are decoded with the VOC colours of classes.txt, or with <root>/labelmap.txt (CVAT /
# Datumaro 'name:r,g,b::' lines; its names are the classes when there is no classes.txt); README "Datasets".
dataset = dict(
    type="custom",
    root="data/my_dataset",
    train_split="train",
    val_split="val",
    label_file=None,
    cache_dir="workdirs/.cache",
)

# Calibration split: the only images whose masks may choose a setting (eval_seeds' threshold, any 'calib' value);
# left out of every reported train-split number. split='auto': `size` images carved deterministically from the
# train split (at most a fifth of it; needs masks there, else nothing is calibrated); a split name
# (<split_dir>/<name>.txt); None = none (eval_seeds then shows its best threshold as an oracle, not a result).
calib = dict(split="auto", size=32)

# Config values given as 'auto' are derived from this dataset's train split when the config is loaded
# (wsss/auto_settings.py; the values and why are in summary.json and the report).
config_hooks = ["wsss.auto_settings:resolve"]
# The largest training resize / crop side an 'auto' size may take (classify.resize, affinity.crop_size,
# segment.crop_size): 512 = the published VOC sizes. Numbers given in the config are used as they are.
auto_limits = dict(max_side=512)
