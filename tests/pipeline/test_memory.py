"""pipeline.memory: the peak sampler (RSS alone, PSS with children, at a bounded cost) and the helper that gives
freed heap pages back between stages and before forking."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pipeline import memory
from pipeline.memory import PeakMemory, release_free_memory


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_release_free_memory_gives_freed_heap_pages_back():
    if not release_free_memory():
        pytest.skip("no glibc malloc_trim here")
    chunks = [bytearray(100_000) for _ in range(3000)]  # ~300 MB in 100 KB heap chunks (below the mmap threshold)
    pin = bytearray(100_000)  # allocated last: the heap top stays in use, so free() alone cannot shrink the heap
    held = _rss_mb()
    del chunks
    after_free = _rss_mb()
    assert release_free_memory()
    after_release = _rss_mb()
    assert held - after_free < 100, "free() alone gave the pages back: this test no longer shows anything"
    assert after_free - after_release > 200, (held, after_free, after_release)
    del pin


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_peak_memory_alone_reads_the_cheap_rss(monkeypatch):
    monkeypatch.setattr(PeakMemory, "_pss", staticmethod(lambda pid: pytest.fail("PSS read with no children")))
    monkeypatch.setattr(PeakMemory, "_children", staticmethod(lambda pid: []))  # alone, whatever ran before
    meter = PeakMemory()
    assert meter.processes() == [os.getpid()]
    assert abs(meter.sample() / 2**20 - _rss_mb()) < 20


def _rss_anon_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("RssAnon:")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs /proc/<pid>/smaps_rollup (PSS)")
def test_peak_memory_with_a_forked_child_splits_the_shared_pages():
    block = np.ones(200 * 2**20 // 8)  # 200 MB written by the parent, shared copy-on-write with the child
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: touch nothing, wait to be sampled
        os.write(ready_w, b"x")
        os.read(go_r, 1)
        os._exit(0)
    try:
        os.read(ready_r, 1)
        meter = PeakMemory()
        assert pid in meter.processes()
        rss_sum = (PeakMemory._rss(os.getpid()) + PeakMemory._rss(pid)) / 2**20
        got = meter.sample() / 2**20
        assert PeakMemory._rss(pid) / 2**20 > 200  # the child's RSS counts the shared block again...
        assert got < rss_sum - 150, (got, rss_sum)  # ...its PSS share does not
        # nothing lost: the parent's anonymous pages (the block among them) sum to their full size over the two
        # processes. Not its whole RSS: PSS also splits library pages with any other process that maps them (a
        # pipeline running beside the tests made the sum 46 MB short of RSS)
        assert got >= _rss_anon_mb() - 20
    finally:
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
    del block


def test_sampler_waits_20x_a_slow_sample(monkeypatch):
    """A sample that took 0.1 s (PSS of several large processes) is followed by a 2 s wait, a fast one by 0.2 s."""
    clock = iter([0.0, 0.001, 1.0, 1.1])
    monkeypatch.setattr(memory, "perf_counter", lambda: next(clock))
    waits = []

    class Stop:
        def wait(self, t):
            waits.append(t)
            return len(waits) >= 3

    meter = PeakMemory(interval=0.2)
    meter._stop = Stop()
    meter.sample = lambda: 0
    meter._loop()
    assert waits == [0.2, 0.2, pytest.approx(2.0)]
