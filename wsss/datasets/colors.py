"""Colour masks: RGB label PNGs (the VOC colours, or a CVAT / Datumaro ``labelmap.txt``) decoded to class indices.

VOC's own masks are palette PNGs whose pixel values are the class indices; many tools export the *colours*
instead: CVAT's and Datumaro's "Segmentation mask" (VOC layout plus a ``labelmap.txt`` of
``name:r,g,b:parts:actions`` lines), or a VOC mask saved as RGB. A :class:`ColorTable` maps each colour to its
index (255 = ignore, VOC's boundary colour 224,224,192); a mask whose pixels are all grey (r = g = b) and not all
table colours is read as grey index values (an index mask saved with three channels). Any other colour is an error
naming the file, the colours and their pixel counts; a colour is never guessed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from wsss.datasets.files import BACKGROUND_NAMES, IGNORE, UNREADABLE, DatasetError, read_text, refuse_lossy_mask

COLOUR_MODES = ("RGB", "RGBA")
IGNORE_NAMES = ("ignore", "ignored", "void", "__ignore__")  # labelmap entries whose colour marks ignore (255)
VOC_VOID = (224, 224, 192)


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map, (n, 3) uint8 (bit-interleaved class index; 255 -> (224, 224, 192))."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def _code(rgb: tuple[int, int, int] | np.ndarray) -> int:
    r, g, b = (int(v) for v in rgb)
    return (r << 16) | (g << 8) | b


@dataclass(frozen=True)
class ColorTable:
    """Colour -> class index. ``source`` says where the colours come from (named in every error)."""

    codes: tuple[tuple[int, int], ...]  # ((r << 16 | g << 8 | b, index), ...)
    source: str
    names: tuple[tuple[int, str], ...] = ()  # colours a labelmap names but the class list lacks

    def lookup(self) -> dict[int, int]:
        return dict(self.codes)

    @classmethod
    def voc(cls, num_classes: int) -> ColorTable:
        """The VOC colours of classes 0..num_classes-1, and VOC's void colour as ignore."""
        pal = voc_palette()
        codes = [(_code(pal[i]), i) for i in range(num_classes)] + [(_code(VOC_VOID), IGNORE)]
        return cls(tuple(codes), f"the VOC colours of the {num_classes} classes")

    @classmethod
    def from_labelmap(cls, entries: list[tuple[str, tuple[int, int, int]]], classes: list[str],
                      path: Path) -> ColorTable:
        """A labelmap's colours mapped to the indices of ``classes`` by name; black is background when no entry
        is (CVAT's default); VOC's void colour is ignore unless the labelmap uses it. Names the class list lacks
        are kept, to be named if their colour turns up in a mask."""
        index = {n: i for i, n in enumerate(classes)}
        codes, unnamed = [], []
        if not any(n.lower() in BACKGROUND_NAMES or c == (0, 0, 0) for n, c in entries):  # CVAT's default: black
            entries = [("background", (0, 0, 0)), *entries]
        for name, rgb in entries:
            i = 0 if name.lower() in BACKGROUND_NAMES else IGNORE if name.lower() in IGNORE_NAMES else index.get(name)
            if i is None:
                unnamed.append((_code(rgb), name))
            else:
                codes.append((_code(rgb), i))
        if _code(VOC_VOID) not in {c for c, _ in codes} | {c for c, _ in unnamed}:
            codes.append((_code(VOC_VOID), IGNORE))
        return cls(tuple(codes), str(path), tuple(unnamed))


def read_labelmap(path: str | os.PathLike) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, colour) per line of a CVAT / Datumaro ``labelmap.txt`` (``name:r,g,b:parts:actions``; ``#`` comments)."""
    path = Path(path)
    entries: list[tuple[str, tuple[int, int, int]]] = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            rgb = tuple(int(v) for v in rest.split(":", 1)[0].split(","))
        except ValueError:
            rgb = ()
        if not name.strip() or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise DatasetError(f"{path}, line {n}: expected 'name:r,g,b:parts:actions', got {line.strip()!r}")
        entries.append((name.strip(), rgb))  # type: ignore[arg-type]
    if not entries:
        raise DatasetError(f"{path}: no labels found")
    names = [n for n, _ in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    colours = [c for _, c in entries]
    dup_c = sorted({c for c in colours if colours.count(c) > 1})
    if dup or dup_c:
        raise DatasetError(f"{path}: duplicate " + (f"names {dup}" if dup else f"colours {dup_c}"))
    return entries


def classes_of_labelmap(entries: list[tuple[str, tuple[int, int, int]]], path: Path) -> list[str]:
    """The class list a labelmap defines: its names in order, background first (added as black if absent), an
    ``ignore`` / ``void`` entry left out (it marks ignore)."""
    bg = [n for n, _ in entries if n.lower() in BACKGROUND_NAMES]
    if len(bg) > 1:
        raise DatasetError(f"{path}: several background entries {bg}")
    if not bg and (0, 0, 0) in [c for _, c in entries]:
        raise DatasetError(f"{path}: no background entry, and black (0,0,0) is a class: add 'background:r,g,b::'")
    return ["background"] + [n for n, _ in entries if n.lower() not in BACKGROUND_NAMES + IGNORE_NAMES]


def mask_mode(path: str | os.PathLike) -> str:
    """The PIL mode of a mask file, from its header."""
    try:
        with Image.open(path) as im:
            return im.mode
    except FileNotFoundError:
        raise DatasetError(f"{path}: label file is missing") from None
    except UNREADABLE as e:
        raise DatasetError(f"{path}: cannot read label PNG ({e})") from None


def decode_color_mask(rgb: np.ndarray, table: ColorTable, path: str | os.PathLike) -> np.ndarray:
    """HxW uint8 class indices of an HxWx3 colour mask (see the module docstring for the rules)."""
    rgb = np.asarray(rgb)[..., :3].astype(np.int32)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    uniq, inverse = np.unique(code, return_inverse=True)
    lookup = table.lookup()
    known = np.array([c in lookup for c in uniq.tolist()])
    if known.all():
        return np.array([lookup[c] for c in uniq.tolist()], np.uint8)[inverse.reshape(code.shape)]
    if ((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])).all():
        return rgb[..., 0].astype(np.uint8)  # an index mask saved with three equal channels
    counts = np.bincount(inverse.ravel(), minlength=len(uniq))
    bad = [(c, n) for c, n, k in zip(uniq.tolist(), counts.tolist(), known.tolist()) if not k]
    bad.sort(key=lambda t: -t[1])
    named = dict(table.names)
    shown = ", ".join(f"({c >> 16},{(c >> 8) & 255},{c & 255}) x {n} px"
                      + (f" ('{named[c]}' in the labelmap, not a class of the dataset)" if c in named else "")
                      for c, n in bad[:5])
    raise DatasetError(f"{path}: colour mask has {len(bad)} colour(s) that are not classes of {table.source}: "
                       f"{shown}{' ...' if len(bad) > 5 else ''}. Name every mask colour in a labelmap.txt "
                       "('name:r,g,b::' per class; dataset.labelmap), with the names in classes.txt when there is "
                       "one, or save the masks as class indices")


def read_mask(path: str | os.PathLike, table: ColorTable | None) -> np.ndarray:
    """A mask's class indices: colour PNGs decoded with ``table`` (None: VOC colours are not assumed, an error),
    every other mode read as index values (``read_label_png``)."""
    from wsss.datasets.files import read_label_png

    if mask_mode(path) not in COLOUR_MODES:
        return read_label_png(path)
    if table is None:
        raise DatasetError(f"{path}: colour mask (RGB) where class indices are expected")
    with Image.open(path) as im:
        refuse_lossy_mask(im, path)
        return decode_color_mask(np.asarray(im.convert("RGB")), table, path)
