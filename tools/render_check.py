#!/usr/bin/env python
"""Render an HTML file in headless Chromium and fail if the screenshot is blank.

Why: the report must open offline in a browser and show something; a page that renders white (broken markup,
an image path that does not resolve, a blocked resource) passes every text check but not this one.

    python tools/render_check.py workdirs/demo/report/index.html [--out shot.png] [--min-std 8] [--min-colors 16]

Exit 0: rendered and not blank; 1: blank or too uniform; 2: could not render (no Chromium, no screenshot).
Chromium runs with networking features off and a fresh profile directory, so nothing is fetched or reused.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-dev-shm-usage")


def find_chromium(explicit: str | None = None) -> str | None:
    """The browser binary: ``explicit``, /usr/bin/chromium, or chromium / chromium-browser on PATH."""
    for cand in ([explicit] if explicit else [CHROMIUM, "chromium", "chromium-browser"]):
        path = shutil.which(cand) if cand else None
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, browser: str, size: tuple[int, int] = (1200, 1600),
               timeout: float = 120.0) -> None:
    """Render ``html`` to ``png`` (raises RuntimeError with Chromium's output when no screenshot appears)."""
    with tempfile.TemporaryDirectory(prefix="render_check_") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={size[0]},{size[1]}", html.resolve().as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{browser} did not finish rendering {html} within {timeout:.0f} s") from None
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"{browser} wrote no screenshot of {html} (exit {proc.returncode}):\n"
                           f"{(proc.stderr or proc.stdout)[-2000:]}")


def blankness(png: Path) -> tuple[float, int]:
    """(pixel standard deviation over all channels, number of distinct RGB colours) of a screenshot."""
    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB"))
    flat = rgb.reshape(-1, 3).astype(np.int64)
    colours = np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]).size
    return float(rgb.std()), int(colours)


def check(html: Path, out: Path | None = None, min_std: float = 8.0, min_colors: int = 16,
          browser: str | None = None, size: tuple[int, int] = (1200, 1600)) -> tuple[bool, str]:
    """(ok, message): render ``html`` and judge the screenshot."""
    if not html.is_file():
        raise FileNotFoundError(f"{html}: no such HTML file")
    exe = find_chromium(browser)
    if exe is None:
        raise RuntimeError(f"no Chromium found ({browser or CHROMIUM}); install Debian's 'chromium' package")
    with tempfile.TemporaryDirectory(prefix="render_shot_") as tmp:
        png = out if out is not None else Path(tmp) / "shot.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        screenshot(html, png, exe, size)
        std, colours = blankness(png)
    ok = std >= min_std and colours >= min_colors
    msg = (f"{html}: screenshot {size[0]}x{size[1]}, pixel std {std:.1f} (min {min_std}), {colours} distinct "
           f"colours (min {min_colors}) -> {'OK' if ok else 'BLANK'}")
    return ok, msg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, help="the HTML file to render")
    ap.add_argument("--out", type=Path, default=None, help="keep the screenshot here (default: a temp file)")
    ap.add_argument("--min-std", type=float, default=8.0, help="minimum pixel standard deviation")
    ap.add_argument("--min-colors", type=int, default=16, help="minimum number of distinct colours")
    ap.add_argument("--browser", default=None, help=f"Chromium binary (default {CHROMIUM})")
    ap.add_argument("--size", default="1200,1600", help="window size W,H")
    a = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in a.size.split(","))
        ok, msg = check(a.html, a.out, a.min_std, a.min_colors, a.browser, (w, h))
    except (OSError, RuntimeError, ValueError) as e:
        print(f"render_check: {e}", file=sys.stderr)
        return 2
    print(msg)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
