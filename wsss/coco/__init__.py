"""MS COCO 2014 instance annotations -> VOC-layout semantic masks and image-level label lists.

WSSS on COCO trains the classifier on image-level labels and evaluates seeds / pseudo-labels against
semantic masks; COCO only ships instance polygons/RLE, so this module rasterises them once into the layout
the rest of the pipeline reads for VOC::

    <out>/SegmentationClass/<split>/<stem>.png   uint8 palette PNG, 0 = background, k = k-th category, 255 = ignore
    <out>/ImageSets/<split>.txt                  images with at least one non-crowd instance (sorted stems)
    <out>/ImageSets/<split>_unlabeled.txt        images without any non-crowd instance (kept out of the split)
    <out>/labels_<split>.json                    {stem: [foreground class indices 0..C-1]} for the split list
    <out>/crowd_only_<split>.json                {stem: [indices]} of classes present only as crowd regions
    <out>/classes.txt                            background + category names in category-id order

Rasterisation rule (see docs/COCO.md): crowd regions are painted 255 first, then the non-crowd instances
in decreasing pixel-area order (ties: lower annotation id first), so a smaller instance lands on top of a
larger one it overlaps, whatever the classes, and any instance pixel overrides crowd ignore.

- ``annotations``: the JSON, validated; the category mapping;
- ``masks``:       one image's annotations -> its mask PNG (worker side);
- ``convert``:     :func:`convert_coco`, the driver (resumable; split and label lists).
"""
from wsss.coco.annotations import IGNORE, CocoFormatError, category_mapping
from wsss.coco.convert import convert_coco
from wsss.coco.masks import render_mask

__all__ = ["IGNORE", "CocoFormatError", "category_mapping", "convert_coco", "render_mask"]
