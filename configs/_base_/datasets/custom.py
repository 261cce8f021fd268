# Any dataset in VOC layout with its own class list:
#   <root>/JPEGImages/<id>.jpg, <root>/SegmentationClass/<id>.png (optional: for evaluation / labels),
#   <root>/ImageSets/Segmentation/{train,val}.txt, <root>/classes.txt (first line 'background').
# Without masks, give image-level labels in a JSON file {id: [class names]} with label_file=...
dataset = dict(
    type="custom",
    root="data/my_dataset",
    train_split="train",
    val_split="val",
    label_file=None,
    cache_dir="workdirs/.cache",
)
