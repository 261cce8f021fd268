#!/usr/bin/env python
"""Build the synthetic demo dataset (VOC layout) from photos that installed packages ship; no download.

Example::

    python tools/make_demo_data.py --out data/demo --seed 0 --n-train 240 --n-val 60 --size 128

Does nothing (and says so) when the folder already holds a complete build with the same parameters;
``--force`` rebuilds. See tools/demo_data.py for what the images contain.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.demo_data import DemoDataError, ensure_demo_dataset, make_demo_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/demo", help="dataset root (default: data/demo)")
    ap.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    ap.add_argument("--n-train", type=int, default=240, help="training images (default: 240)")
    ap.add_argument("--n-val", type=int, default=60, help="validation images (default: 60)")
    ap.add_argument("--size", type=int, default=128, help="nominal image side in px (default: 128)")
    ap.add_argument("--fixed-size", action="store_true", help="square size x size images (default: sizes vary)")
    ap.add_argument("--force", action="store_true", help="rebuild even if a complete build is present")
    ap.add_argument("--json", action="store_true", help="print the full summary as JSON")
    args = ap.parse_args(argv)

    kw = dict(seed=args.seed, n_train=args.n_train, n_val=args.n_val, size=args.size, vary_size=not args.fixed_size)
    try:
        s = make_demo_dataset(args.out, **kw) if args.force else ensure_demo_dataset(args.out, **kw)
    except (ValueError, DemoDataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    if s.get("skipped"):
        print(f"{args.out}: complete dataset with these parameters already present, nothing to do (--force rebuilds)")
    else:
        print(f"{args.out}: built in {s['seconds']:.1f} s")
    print("classes: " + ", ".join(s["classes"]))
    print("backgrounds: " + ", ".join(s["params"]["backgrounds"]))
    for split, st in s["splits"].items():
        print(f"[{split}] images {st['images']}  objects {st['objects']}  objects/image {st['objects_per_image']}  "
              f"with overlap {st['images_with_overlap']}")
        print("  images per class: " + ", ".join(f"{c} {n}" for c, n in st["images_per_class"].items()))
        print("  pixel fraction:   " + ", ".join(f"{c} {f:.3f}" for c, f in st["pixel_fraction"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
