"""Two small real stages for testing the engine: per-item outputs, a config key, an input dependency."""
from __future__ import annotations

import sys
import time
import types

import numpy as np

from pipeline.cache import atomic_save_npz, is_temporary
from pipeline.parallel import exists, for_each_item


def finished_items(folder):
    """The finished item files (not the half-written ones a kill leaves)."""
    return sorted(f for f in folder.glob("*.npz") if not is_temporary(f))


def _make_numbers():
    m = types.ModuleType("toy_numbers")
    m.NAME, m.INPUTS, m.CONFIG_KEYS = "numbers", (), ("numbers",)

    def run(ctx):
        n, delay = ctx.stage_cfg.n, ctx.stage_cfg.get("delay", 0.0)
        path = lambda i: ctx.out_dir / "items" / f"{i}.npz"  # noqa: E731

        def work(i: str) -> int:
            time.sleep(delay)
            rng = np.random.default_rng(int(i))
            atomic_save_npz(path(i), value=rng.normal(size=1000) * ctx.stage_cfg.scale)
            return 1

        for_each_item([str(i) for i in range(n)], work, exists(path), workers=ctx.stage_cfg.get("workers", 1),
                      desc="numbers", log=ctx.log)
        return {"items": n, "products": {"numbers": str(ctx.out_dir / "items"), "elsewhere": "/somewhere/else"}}

    def progress(ctx):
        return len(finished_items(ctx.out_dir / "items")), ctx.stage_cfg.n

    def outputs(ctx):
        return {ctx.out_dir / "items" / f"{i}.npz": "npz:value" for i in range(ctx.stage_cfg.n)}

    m.run, m.progress, m.outputs = run, progress, outputs
    return m


def _make_total():
    m = types.ModuleType("toy_total")
    m.NAME, m.INPUTS, m.CONFIG_KEYS = "total", ("numbers",), ("total",)

    def run(ctx):
        if (ctx.work_dir / "FAIL").exists():  # a failure the tests switch on and off without a config change
            raise ValueError("FAIL marker present")
        files = finished_items(ctx.input_dir("numbers") / "items")
        total = float(sum(np.load(f)["value"].sum() for f in files)) * ctx.stage_cfg.factor
        return {"total": total, "fake_miou": 50.0}

    m.run = run
    return m


numbers = _make_numbers()
total = _make_total()
sys.modules["toy_numbers"], sys.modules["toy_total"] = numbers, total
STAGES = [numbers, total]
