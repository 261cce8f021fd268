"""pipeline.memory: the peak sampler's helper that gives freed heap pages back between stages and before forking."""
from __future__ import annotations

import os

import pytest

from pipeline.memory import release_free_memory


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
