"""The process group of a multi-process run: who we are, start it, wait for the others, end it.

Everything reads torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``).
Under Slurm (``srun ... --launcher slurm``) ``use_slurm_environment`` first derives them from Slurm's, the way
mmengine's slurm launcher does, so the same code path serves both.

One process group serves the whole run. Whoever creates it ends it (``shutdown_distributed``) before the
interpreter exits: a gloo group left alive at exit can abort a finished process with SIGABRT.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping

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


class LauncherError(RuntimeError):
    """A launcher was asked for but its environment is missing or malformed."""


def first_host(node_list: str) -> str:
    """The first host of a Slurm node list: ``node[03-05,9],gpu1`` -> ``node03``.

    Uses ``scontrol show hostnames`` when Slurm's tools are installed; else expands the common
    ``prefix[ranges]suffix`` form itself (the first host of a list is all a master address needs).
    """
    if shutil.which("scontrol"):
        out = subprocess.run(["scontrol", "show", "hostnames", node_list], capture_output=True, text=True)
        hosts = out.stdout.split()
        if out.returncode == 0 and hosts:
            return hosts[0]
    m = re.match(r"([^,\[]*)(?:\[([^\]]+)\])?([^,]*)", node_list.strip())
    if not m or not (m.group(1) or m.group(2)):
        raise LauncherError(f"SLURM_NODELIST={node_list!r}: not a Slurm node list")
    prefix, ranges, suffix = m.groups()
    first = ranges.split(",")[0].split("-")[0] if ranges else ""
    return f"{prefix}{first}{suffix}"


def slurm_environment(env: Mapping[str, str]) -> dict[str, str]:
    """torchrun's variables from Slurm's (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``,
    ``SLURM_NODELIST``). ``MASTER_ADDR``/``MASTER_PORT`` already set win; the port defaults to 29500."""
    missing = [k for k in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_NODELIST") if not env.get(k)]
    if missing:
        raise LauncherError(f"--launcher slurm: {', '.join(missing)} not set; start the job with srun "
                            "(see tools/slurm_pipeline.sh)")
    try:
        rank, ntasks = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        local_rank = int(env.get("SLURM_LOCALID", rank))
    except ValueError as e:
        raise LauncherError(f"--launcher slurm: malformed Slurm variable ({e})") from e
    return {"RANK": str(rank), "WORLD_SIZE": str(ntasks), "LOCAL_RANK": str(local_rank),
            "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(env["SLURM_NODELIST"]),
            "MASTER_PORT": env.get("MASTER_PORT") or "29500"}


def use_slurm_environment() -> None:
    """Set torchrun's variables in this process from Slurm's; the process group starts later as usual."""
    os.environ.update(slurm_environment(os.environ))
