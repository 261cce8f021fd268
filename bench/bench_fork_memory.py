"""Does heap memory a process freed inflate a forked worker pool? (pipeline.memory.release_free_memory)

A MobileNetV2 training step at batch 16 / 288 px (then freed), then two forked workers (pipeline.parallel) run
inference at 0.5-2x of 416x366 px; prints the process's memory after the training step and the peak PSS of the
process and its workers. for_each_item releases the freed heap before forking; ``--no-release`` patches that
call out (the behaviour before it existed).

Usage: python bench/bench_fork_memory.py [--no-release]
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pipeline.parallel  # noqa: E402
import wsss  # noqa: E402,F401  (compat before torchvision)
from pipeline.memory import PeakMemory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-release", action="store_true")
    args = ap.parse_args()
    import torch
    import torchvision

    if args.no_release:
        pipeline.parallel.release_free_memory = lambda: False
    torch.set_num_threads(1)
    net = torchvision.models.mobilenet_v2().eval()
    model, x = torchvision.models.mobilenet_v2().train(), torch.randn(16, 3, 288, 288)
    for _ in range(2):
        model(x).sum().backward()
    del model, x
    meter = PeakMemory()
    before = meter.sample()

    def work(_: str) -> int:
        with torch.inference_mode():
            for s in (0.5, 1.0, 1.5, 2.0):
                net(torch.randn(2, 3, int(416 * s), int(366 * s)))
        return 1

    stop = threading.Event()
    sampler = threading.Thread(target=lambda: [meter.sample() for _ in iter(lambda: stop.wait(0.1), True)],
                               daemon=True)
    sampler.start()
    pipeline.parallel.for_each_item([str(i) for i in range(8)], work, None, 2, desc="inference")
    stop.set()
    sampler.join()
    print(f"release before forking: {not args.no_release}; process after training {before / 2**20:.0f} MB, "
          f"peak with 2 workers {meter.peak / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
