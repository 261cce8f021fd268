"""Photos far larger than VOC's: the run says, before the stages at each photo's own size, what they will cost
and how to run on smaller copies."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.config import load_config
from pipeline.runner import plan_stages, warn_large_photos
from stages import load_stages
from tests.helpers import make_voc_layout

ROOT = Path(__file__).resolve().parents[2]


def _warnings(tmp_path: Path, side: int, caplog) -> list[str]:
    h, w = side * 3 // 4, side
    masks = {f"im{i}": np.pad(np.full((h // 2, w // 2), 1 + i % 2, np.uint8), ((h // 4, h - h // 2 - h // 4),
                                                                              (w // 4, w - w // 2 - w // 4)))
             for i in range(4)}
    root = make_voc_layout(tmp_path / f"d{side}", masks, classes=["background", "cat", "dog"])
    cfg = load_config(ROOT / "configs/custom/bas_irn_cpu.py",
                      {"dataset.root": str(root), "work_dir": str(tmp_path / f"w{side}")})
    assert cfg.auto_settings["stats"]["median_long"] == side  # from the image headers
    plans = plan_stages(cfg, load_stages(), Path(cfg.work_dir))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wsss"):
        warn_large_photos(cfg, plans)
        warned = [r.getMessage() for r in caplog.records]
        caplog.clear()
        warn_large_photos(cfg, [p for p in plans if p.name in ("classify", "segment")])  # none at photo size
        assert not caplog.records
    return warned


def test_large_photos_are_named_with_the_stages_and_the_tool(tmp_path, caplog):
    assert _warnings(tmp_path, 1024, caplog) == []  # the tool's default size: no warning
    (msg,) = _warnings(tmp_path, 1600, caplog)
    assert "median long side 1600 px" in msg
    assert "crf, ir_labels, random_walk, eval_segment work at each photo's own size" in msg
    assert f"tools/downscale_dataset.py --root {tmp_path / 'd1600'} --max-side 1024" in msg
