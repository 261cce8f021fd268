"""Peak memory of a stage: this process and its worker processes, sampled from /proc; and giving freed memory back."""
from __future__ import annotations

import ctypes
import gc
import os
import threading
from time import perf_counter

WAIT_FACTOR = 20  # with children the sampler waits >= 20x its last sample's time: <= 5 % of a core


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
    """Samples the memory of this process and its children (worker pools, data-loader workers) every 0.2 s.

    Alone, the process's resident set size (``/proc/<pid>/statm``: 0.02 ms a read). With children, the proportional
    set size of each (PSS, ``smaps_rollup``: shared pages split between the processes sharing them, so forked
    workers do not count their parent's pages again), or the RSS where the kernel has no PSS. PSS walks the page
    tables (23 ms for the demo's 1.4 GB DeepLab process: 12 % of a core at 5 reads a second), so it is read only
    while there are children, and the sampler then waits at least 20x its last sample's time (<= 5 % of a core;
    ~0.4-1 s for a parent and two pool workers): a peak shorter than that can be missed.
    Measured: bench/README.md, "Peak-memory sampling".
    """

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    @staticmethod
    def _pss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        return PeakMemory._rss(pid)

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

    def processes(self) -> list[int]:
        """This process and its descendants."""
        found, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.append(pid)
                todo += self._children(pid)
        return found

    def sample(self) -> int:
        pids = self.processes()
        size = self._rss if len(pids) == 1 else self._pss
        total = sum(size(pid) for pid in pids)
        self.peak = max(self.peak, total)
        return total

    def _loop(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            start = perf_counter()
            self.sample()
            wait = max(self.interval, WAIT_FACTOR * (perf_counter() - start))

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
