"""Run ``pipeline.cli`` inside an NCCL process group (started by ``torchrun --nproc_per_node=1``; bench/gpu_check.py).

At world size 1 the pipeline starts no process group of its own (pipeline.distributed), so this script starts the
NCCL group first; the classifier's training (wsss.training) then runs under DistributedDataParallel with NCCL. It
prints the backend and whether a DistributedDataParallel wrapper was built, for gpu_check to read.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str]) -> int:
    """``argv``: the backend ('nccl', or 'gloo' for gpu_check's CPU self-check), then pipeline.cli's arguments."""
    import torch
    import torch.distributed as dist

    import wsss  # noqa: F401  (stack fixes)
    from pipeline.cli import main as cli_main

    backend, argv = argv[0], argv[1:]
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    print(f"process group: {dist.get_backend()}, world size {dist.get_world_size()}", flush=True)
    built = []
    ddp_init = torch.nn.parallel.DistributedDataParallel.__init__

    def init(self, *a, **k):  # observe only: record that a DDP wrapper was built, then build it as usual
        built.append(type(self).__name__)
        ddp_init(self, *a, **k)

    torch.nn.parallel.DistributedDataParallel.__init__ = init
    try:
        rc = cli_main(argv)
    finally:
        dist.barrier()
        dist.destroy_process_group()
    print(f"distributed data parallel: {bool(built)} ({len(built)} wrapper(s))", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
