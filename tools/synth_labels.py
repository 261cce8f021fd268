"""What the dataset generators (tools/demo_data.py, tools/make_bench_data.py) share for their label maps."""
from __future__ import annotations

import numpy as np

IGNORE = 255


def ignore_band(label: np.ndarray, width: int) -> np.ndarray:
    """Set 255 on pixels within ``width`` px (city-block distance) of a label change, as VOC does at boundaries.

    City-block, not chessboard: a 3x3 neighbourhood would make the band ~3 px wide across diagonal edges.
    """
    if width <= 0:
        return label
    h, w = label.shape
    pad = np.pad(label, width, mode="edge")
    edge = np.zeros(label.shape, bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if (dy or dx) and abs(dy) + abs(dx) <= width:
                edge |= pad[width + dy:width + dy + h, width + dx:width + dx + w] != label
    out = label.copy()
    out[edge] = IGNORE
    return out
