#!/usr/bin/env python
"""A copy of a VOC-layout dataset with the quirks of real exports, every one lossless: the pipeline must give the
source's numbers exactly on it (bench/README.md "Colour masks and messy exports").

- split files, ``classes.txt`` and ``labelmap.txt`` in UTF-8 with a byte-order mark and CRLF line ends;
- images with mixed suffixes: ``.jpg``, ``.JPG``, ``.jpeg`` (the same bytes) and ``.png`` (the decoded pixels);
- an EXIF orientation tag (6: viewers turn the photo) spliced into some JPEGs, the pixels untouched;
- palette masks partly saved as grayscale PNGs (the same indices); colour masks are copied as they are;
- what file managers leave behind: ``Thumbs.db``, ``.DS_Store``, macOS ``._<name>`` files.

    python tools/messy_dataset.py --src data/realcut_cvat --out data/realcut_messy
"""
from __future__ import annotations

import argparse
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsss.datasets.files import read_text  # noqa: E402
from wsss.datasets.layout import IMAGE_SUFFIXES  # noqa: E402

EXIF_ROTATE_90 = 6


def windows_text(text: str) -> bytes:
    """``text`` as a Windows editor saves it: UTF-8 with a byte-order mark, CRLF line ends."""
    return b"\xef\xbb\xbf" + "\r\n".join(text.splitlines()).encode("utf-8") + b"\r\n"


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG's bytes with an APP1 EXIF segment holding ``orientation`` right after SOI (pixels untouched)."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    exif = Image.Exif()
    exif[0x0112] = orientation
    blob = exif.tobytes()  # b"Exif\0\0" + TIFF
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(blob) + 2) + blob + jpeg[2:]


def make_messy_copy(src: Path, out: Path) -> dict[str, int]:
    """Write the copy; returns how many files got each quirk."""
    counts = dict(jpg=0, JPG=0, jpeg=0, png=0, exif=0, grey_masks=0)
    for f in sorted((src / "ImageSets").rglob("*.txt")):
        target = out / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(windows_text(read_text(f)))
    for name in ("classes.txt", "labelmap.txt"):
        if (src / name).is_file():
            (out / name).write_bytes(windows_text(read_text(src / name)))
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in (src / "JPEGImages").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for k, image in enumerate(images):
        data = image.read_bytes()
        is_jpeg = data[:2] == b"\xff\xd8"
        kind = ("jpg", "JPG", "jpeg", "png")[k % 4] if is_jpeg else image.suffix[1:]
        if kind == "png" and is_jpeg:
            with Image.open(image) as im:
                Image.fromarray(np.asarray(im.convert("RGB"))).save(out / "JPEGImages" / f"{image.stem}.png")
        else:
            if is_jpeg and k % 5 == 0:
                data = with_exif_orientation(data, EXIF_ROTATE_90)
                counts["exif"] += 1
            (out / "JPEGImages" / f"{image.stem}.{kind}").write_bytes(data)
        counts[kind] = counts.get(kind, 0) + 1
    masks = out / "SegmentationClass"
    masks.mkdir(parents=True, exist_ok=True)
    for k, mask in enumerate(sorted((src / "SegmentationClass").glob("*.png"))):
        with Image.open(mask) as im:
            if im.mode == "P" and k % 3 == 0:
                Image.fromarray(np.asarray(im)).save(masks / mask.name)  # uint8 HxW: mode L
                counts["grey_masks"] += 1
                continue
        shutil.copyfile(mask, masks / mask.name)
    for folder in (out / "JPEGImages", masks):
        (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not an image")
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        first = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != "Thumbs.db")[0]
        (folder / f"._{first}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="a VOC-layout dataset (index or colour masks)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    counts = make_messy_copy(args.src, args.out)
    print(f"{args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
