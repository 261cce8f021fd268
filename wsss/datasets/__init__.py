"""Dataset reading: PASCAL VOC 2012 (+SBD aug), COCO 2014 (converted), any VOC-layout folder, label files.

One reader for every dataset, configured by a dict (``cfg.dataset``). Training reads image-level labels
only; masks are read for evaluation (and, once, to derive the image-level labels, which are cached).
Every bad input raises :class:`DatasetError` naming the file and what is wrong.

- ``files``:   one file at a time (image, label PNG, image size, ``classes.txt``, mask checks) and the errors;
- ``colors``:  colour masks (VOC colours or a CVAT / Datumaro ``labelmap.txt``) decoded to class indices;
- ``layout``:  the presets per dataset type, split files and the paths they name (no image reads);
- ``dataset``: :class:`SegDataset` and :func:`build_dataset` (image-level labels from masks or a label file);
- ``calib``:   the declared calibration split, kept out of every reported number.
"""
from wsss.datasets.calib import calibration_ids, carve_ids, split_reported
from wsss.datasets.dataset import SegDataset, build_dataset, derive_labels
from wsss.datasets.files import (
    BACKGROUND_NAMES,
    IGNORE,
    DatasetError,
    MissingSplit,
    check_mask,
    image_size,
    out_of_range_values,
    read_classes,
    read_image,
    read_label_png,
)
from wsss.datasets.layout import PRESETS, VOC_CLASSES, read_split_ids, split_files, split_image_paths, split_name

__all__ = ["BACKGROUND_NAMES", "IGNORE", "PRESETS", "VOC_CLASSES", "DatasetError", "MissingSplit", "SegDataset",
           "build_dataset", "calibration_ids", "carve_ids", "check_mask", "derive_labels", "image_size",
           "out_of_range_values", "read_classes", "read_image", "read_label_png", "read_split_ids", "split_files",
           "split_image_paths", "split_name", "split_reported"]
