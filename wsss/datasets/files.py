"""Reading one dataset file: an image, a label PNG, an image's size, a ``classes.txt``; mask checks.

Every bad input raises :class:`DatasetError` naming the file and what is wrong.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.errors import UserError

IGNORE = 255
# what PIL raises for a file it cannot read: not an image, truncated, or over its pixel limit (Image.MAX_IMAGE_PIXELS,
# 179 million at twice the default: a decompression-bomb guard that also stops huge orthophotos and panoramas)
UNREADABLE = (UnidentifiedImageError, OSError, Image.DecompressionBombError)


class DatasetError(UserError, ValueError):
    """Bad dataset input; the message names the file and the problem (the CLI prints it and exits with 2)."""


class MissingSplit(DatasetError):
    """The split file of a requested split does not exist (the split is absent, not damaged)."""


def other_suffix_hint(path: str | os.PathLike, key: str) -> str:
    """For a missing file: the same name with another suffix next to it, as a hint naming the config key to set
    (a folder of ``.png`` or ``.JPG`` images under the VOC preset's ``.jpg``), or '' when there is none."""
    path = Path(path)
    others = sorted(p.name for p in path.parent.glob(f"{glob.escape(path.stem)}.*") if p.is_file()) \
        if path.parent.is_dir() else []
    if not others:
        return ""
    return f" (found {others[0]}: set dataset.{key}='{Path(others[0]).suffix}')"


HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I", "F")  # PIL modes of 16/32-bit integer and float grey images


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The one image reader: RGB uint8 HxWx3 (EXIF orientation is not applied, as in VOC/COCO tooling).

    A 16-bit or float grey image (microscopy, thermal, depth) is stretched linearly from its own minimum to its
    maximum onto 0..255; PIL's own conversion would clip every value above 255 to white."""
    try:
        with Image.open(path) as im:
            if im.mode in HIGH_BIT_DEPTH:
                return _stretched_grey(np.asarray(im))
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file is missing{other_suffix_hint(path, 'img_suffix')}") from None
    except UNREADABLE as e:
        raise DatasetError(f"{path}: cannot read image ({e})") from None


def _stretched_grey(values: np.ndarray) -> np.ndarray:
    """HxW numbers -> HxWx3 uint8, linear from the image's minimum (0) to its maximum (255); NaN -> 0."""
    v = np.nan_to_num(values.astype(np.float64))
    lo, hi = float(v.min()), float(v.max())
    grey = np.zeros(v.shape, np.uint8) if hi <= lo else np.round((v - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def refuse_lossy_mask(im: Image.Image, path: str | os.PathLike) -> None:
    """A JPEG mask is an error: its compression changes the values along every edge, some into other classes,
    and no reader can tell which pixels it moved."""
    if im.format == "JPEG":
        raise DatasetError(f"{path}: the mask is a JPEG; its compression alters class values along every edge. "
                           "Export the masks as PNG (class indices or colours) from the annotation tool")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """A label map PNG (palette or grayscale) as its index values, uint8 HxW."""
    try:
        with Image.open(path) as im:
            refuse_lossy_mask(im, path)
            if im.mode in ("RGB", "RGBA"):
                raise DatasetError(f"{path}: label PNG is a colour image (mode {im.mode}); expected class indices "
                                   "(palette or grayscale PNG)")
            if im.mode not in ("P", "L", "I", "I;16", "1", "LA"):
                raise DatasetError(f"{path}: label PNG has mode {im.mode}; expected palette (P) or grayscale (L)")
            # '1': a bilevel mask, 0/1; 'LA': the index channel, the alpha dropped
            arr = np.asarray(im.getchannel(0) if im.mode == "LA" else im)
            arr = arr.astype(np.uint8) if arr.dtype == bool else arr
    except FileNotFoundError:
        raise DatasetError(f"{path}: label file is missing{other_suffix_hint(path, 'mask_suffix')}") from None
    except UNREADABLE as e:
        raise DatasetError(f"{path}: cannot read label PNG ({e})") from None
    if arr.dtype != np.uint8:
        if arr.max(initial=0) > 255:
            raise DatasetError(f"{path}: label values up to {arr.max()} do not fit uint8")
        arr = arr.astype(np.uint8)
    return arr


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image from the file header, without decoding."""
    return image_header(path)[:2]


EXIF_ORIENTATION = 0x0112
ROTATED_90 = (5, 6, 7, 8)  # EXIF orientations that viewers show turned by 90 degrees (width and height swapped)


def image_header(path: str | os.PathLike) -> tuple[int, int, int]:
    """(H, W, EXIF orientation) of an image from the file header, without decoding (orientation 1: none).
    The pipeline reads the stored pixels; viewers (and some annotation tools) show them turned by the tag."""
    try:
        with Image.open(path) as im:
            return im.height, im.width, int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file is missing{other_suffix_hint(path, 'img_suffix')}") from None
    except UNREADABLE as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None


BACKGROUND_NAMES = ("background", "_background_", "__background__", "bg")


def read_text(path: str | os.PathLike) -> str:
    """A text file of the dataset (split list, ``classes.txt``, labelmap, label JSON) as UTF-8; a byte-order mark
    (Windows editors write one) is dropped, and another encoding is an error naming the file and the byte."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save it "
                           "as UTF-8") from None


def read_classes(path: str | os.PathLike, require_background: bool = True) -> list[str]:
    """The class list of a ``classes.txt``: one name per line, label i = line i.

    Blank lines, ``#`` comments and labelme's ``__ignore__`` line are skipped. The first name must be a
    background name (label 0 is background in every mask); with ``require_background=False`` (the evaluation
    tool) a foreground-only list gets ``background`` prepended instead.
    """
    path = Path(path)
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        hint = f"; text files there: {', '.join(others)} (dataset.classes names the file)" if others else ""
        raise DatasetError(f"{path}: class list file is missing (one class per line, first line 'background')"
                           + hint)
    names = []
    for line in read_text(path).splitlines():
        name = line.split("#", 1)[0].strip()
        if name and name != "__ignore__":
            names.append(name)
    if not names:
        raise DatasetError(f"{path}: no class names found")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{path}: duplicate class names {dup}")
    if names[0].lower() not in BACKGROUND_NAMES:
        if require_background:
            raise DatasetError(f"{path}: first line must be 'background' (got {names[:1]})")
        names.insert(0, "background")
    return names


def check_mask(mask: np.ndarray, num_classes: int, path: str | os.PathLike,
               shape: tuple[int, int] | None = None, orientation: int = 1) -> None:
    """Raise if the mask has values outside [0, num_classes) ∪ {255} or the wrong size (``orientation``: the
    image's EXIF tag, to say so when the mask fits the image as viewers show it turned)."""
    if shape is not None and tuple(mask.shape[:2]) != tuple(shape):
        turned = orientation in ROTATED_90 and tuple(mask.shape[:2]) == tuple(shape)[::-1]
        raise DatasetError(f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                           f"size {shape[1]}x{shape[0]}" + (
                               f"; the image has EXIF orientation {orientation} (viewers show it turned by 90 "
                               "degrees) and the mask fits that view: the pipeline reads the stored pixels, so "
                               "write upright copies of the images (python tools/apply_exif_orientation.py)"
                               if turned else ""))
    bad = out_of_range_values(mask, num_classes)
    if bad:
        raise DatasetError(f"{path}: mask values {bad} are outside the class range 0..{num_classes - 1} "
                           f"(and {IGNORE} = ignore)")


def out_of_range_values(labels: np.ndarray, num_classes: int) -> list[int]:
    """The values of a label map that are neither a class id in [0, num_classes) nor ignore (255)."""
    vals = np.unique(labels)
    return vals[(vals >= num_classes) & (vals != IGNORE)].tolist()
