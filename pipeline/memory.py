"""Peak memory of a stage: this process and its worker processes, sampled from /proc; and giving freed memory back."""
from __future__ import annotations

import ctypes
import gc
import os
import threading


def release_free_memory() -> bool:
    """Collect garbage and return the heap's free pages to the OS (glibc ``malloc_trim``).

    Memory a stage frees stays in the process's heap; the next stage, and every worker a fork pool starts, inherit
    it (and a worker that reuses it copies those pages). Measured (bench/bench_fork_memory.py, bench/README.md):
    after a MobileNetV2 training step, two forked inference workers peaked at 4.4 GB without this, 2.7 GB with it.
    False where ``malloc_trim`` is not available (not glibc): nothing else changes.
    """
    gc.collect()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


class PeakMemory:
    """Samples the memory of this process and its children (worker pools) every 0.2 s.

    Uses the proportional set size (PSS: shared pages split between the processes sharing them, so forked
    workers are not counted several times) where the kernel provides it, else the resident set size.
    """

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        kids: list[int] = []
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    kids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return kids

    def sample(self) -> int:
        total, todo, seen = 0, [os.getpid()], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += self._rss(pid)
            todo += self._children(pid)
        self.peak = max(self.peak, total)
        return total

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
