"""The one per-item loop: resume, sharding across ranks, a process pool, a progress bar.

A stage that produces one output per image calls :func:`for_each_item` with a worker function that
computes *and atomically writes* the output of one item. Items whose output already exists are skipped,
so a killed stage resumes where it stopped; under ``torchrun`` (``RANK``/``WORLD_SIZE``) each rank takes
a disjoint shard, so ranks never write the same file.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from .distributed import barrier, world
from .memory import release_free_memory


def shard(items: Sequence[str], rank: int | None = None, world_size: int | None = None) -> list[str]:
    """The items of this rank: every ``world_size``-th item starting at ``rank`` (env RANK/WORLD_SIZE)."""
    env_rank, env_size = world()
    rank = env_rank if rank is None else rank
    world_size = env_size if world_size is None else world_size
    return list(items[rank::world_size])


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


_WORKER_FN: Callable[[str], object] | None = None


def _init_worker(fn: Callable[[str], object], threads: int) -> None:
    global _WORKER_FN
    _WORKER_FN = fn
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover
        pass


def _call(item: str) -> tuple[str, object]:
    assert _WORKER_FN is not None
    return item, _WORKER_FN(item)


def for_each_item(
    items: Sequence[str],
    work: Callable[[str], object],
    done: Callable[[str], bool] | None = None,
    workers: int = 1,
    desc: str = "",
    log: logging.Logger | None = None,
    use_shards: bool = True,
) -> dict[str, object]:
    """Run ``work(item)`` for every item not ``done`` yet; returns {item: result} of the items run here.

    ``work`` must write its own outputs atomically (``pipeline.cache``). With ``workers > 1`` it runs in a
    fork-based process pool, so ``work`` may be a closure; results must be picklable.
    """
    mine = shard(items) if use_shards else list(items)
    todo = [i for i in mine if not (done and done(i))]
    if log:
        log.info("%s: %d items (%d of this rank), %d already done, %d to run with %d worker(s)",
                 desc or "items", len(items), len(mine), len(mine) - len(todo), len(todo), workers)
    results: dict[str, object] = {}
    if todo:
        _run_items(todo, work, workers, desc, results)
    if use_shards:
        barrier()  # every rank's share is written before anyone reads the whole folder
    return results


def _run_items(todo: list[str], work: Callable[[str], object], workers: int, desc: str,
               results: dict[str, object]) -> None:
    bar = tqdm(total=len(todo), desc=desc, unit="img", dynamic_ncols=True, mininterval=1.0)
    if workers <= 1 or len(todo) == 1:
        for item in todo:
            results[item] = work(item)
            bar.update()
    else:
        release_free_memory()  # the forked workers would inherit (and copy) the parent's freed heap
        ctx = mp.get_context("fork")
        threads = max(1, default_workers() // workers)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(work, threads)) as pool:
            for item, res in pool.imap_unordered(_call, todo, chunksize=1):
                results[item] = res
                bar.update()
    bar.close()


def exists(path_for: Callable[[str], Path]) -> Callable[[str], bool]:
    """A ``done`` predicate: the item's output file exists (it can only exist complete: atomic writes)."""
    return lambda item: path_for(item).exists()


def chunked(items: Sequence[str], workers: int, per_worker: int = 8) -> list[list[str]]:
    """Split items into about ``workers * per_worker`` contiguous chunks (for loops that reduce, not write)."""
    n = max(1, min(len(items), workers * per_worker))
    size = -(-len(items) // n) if items else 1
    return [list(items[k:k + size]) for k in range(0, len(items), size)]


def map_chunks(items: Sequence[str], work: Callable[[list[str]], object], workers: int = 1, desc: str = "",
               log: logging.Logger | None = None) -> list[object]:
    """Run ``work(chunk)`` over chunks of items in the process pool and return the results (in chunk order).

    For per-image loops that *reduce* (confusion matrices, per-image scores) rather than write files; the
    results of the chunks are merged by the caller. Not sharded: every rank computes the whole reduction.
    """
    chunks = chunked(items, max(1, workers))
    keys = [f"{k:06d}" for k in range(len(chunks))]
    by_key = dict(zip(keys, chunks))
    results = for_each_item(keys, lambda key: work(by_key[key]), workers=min(max(1, workers), len(keys)),
                            desc=desc, log=log, use_shards=False)
    return [results[k] for k in keys]


def count_done(items: Sequence[str], path_for: Callable[[str], Path]) -> tuple[int, int]:
    """(items whose output file exists, all items): a per-item stage's ``progress`` for ``status``."""
    return sum(path_for(i).is_file() for i in items), len(items)
