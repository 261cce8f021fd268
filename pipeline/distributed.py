"""The process group of a ``torchrun`` run: who we are, start it, wait for the others, end it.

One process group serves the whole run. Whoever creates it ends it (``shutdown_distributed``) before the
interpreter exits: a gloo group left alive at exit can abort a finished process with SIGABRT.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("wsss")


def world() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed() -> bool:
    """Under ``torchrun``: one process group for the whole run (NCCL on GPU, gloo on CPU).

    Returns True when this call created the group: its creator must end it with ``shutdown_distributed``.
    """
    rank, size = world()
    if size <= 1:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    log.info("distributed: rank %d of %d (%s)", rank, size, backend)
    return True


def shutdown_distributed(synchronize: bool = True) -> None:
    """End the process group before the interpreter does: a gloo group left alive at exit can abort the
    process (SIGABRT, "terminate called without an active exception") after all the work is done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if world()[1] > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
