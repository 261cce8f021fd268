"""The generic training loop of every trainer in the pipeline (classifier, affinity net, BAO).

SGD (momentum, weight decay) with a poly learning rate per parameter group (``lr_mult``), AMP on CUDA,
DistributedDataParallel when ``torch.distributed`` is initialised, atomic checkpoints every epoch (and every
``ckpt_interval`` iterations) and exact resume: the shuffle is seeded by (seed, epoch), datasets that have
``set_epoch`` are told the epoch (wsss.train_data.LabeledImages keys its augmentation on it), and the global
torch RNG is reseeded from (seed, iteration, rank) before every step, so a killed run that resumes ends with
the same weights as one that never stopped.

Config keys (``cfg``; defaults in brackets): epochs [1], iters [None: epochs x iterations per epoch; a number
sets the length in iterations, whatever the dataset size: the last epoch is cut there], batch_size [16],
lr [0.01], momentum [0.9], weight_decay [1e-4], poly_power [0.9], amp [True; CUDA only, see
:func:`amp_enabled`], cpu_bf16 [False; bfloat16 autocast on CPU, see :func:`cpu_bf16_enabled`], seed [0],
ckpt_interval [0 = per epoch only], num_workers [0] (DataLoader workers), find_unused_parameters [False],
log_interval [1] (jsonl every n steps).

One DataLoader serves the whole run (:class:`EpochBatches` over :class:`EpochItems`), so its worker processes are
forked once: a loader per epoch forked them again every epoch, and the copy-on-write of every page the training
step then wrote cost ~2 s per epoch on the demo's BAO (bench/README.md, "DataLoader workers forked once").
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from pipeline.cache import atomic_path, atomic_write_text
from wsss.auto_settings import cpu_bf16_hardware

CKPT_NAME = "latest.pth"


def _dist() -> tuple[bool, int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def epoch_indices(n: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's sample order for ``epoch``: a permutation seeded by (seed, epoch), padded to a multiple of
    the world size and dealt round-robin (what DistributedSampler does, also used with one process)."""
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True,
                                                  seed=seed, drop_last=False)
    sampler.set_epoch(epoch)
    return list(sampler)


class EpochBatches:
    """The batches of iterations ``start`` .. ``stop`` - 1, each a list of ``(epoch, index)`` pairs: epoch ``e``'s
    order is :func:`epoch_indices` cut into ``iters_per_epoch`` chunks of ``batch_size`` (one short chunk of all
    the rank's samples when it holds fewer than a batch), exactly what a loader per epoch drew."""

    def __init__(self, n: int, batch_size: int, iters_per_epoch: int, seed: int, rank: int, world_size: int,
                 start: int, stop: int) -> None:
        self.n, self.bs, self.per_epoch = n, batch_size, iters_per_epoch
        self.seed, self.rank, self.world = seed, rank, world_size
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        iteration = self.start
        while iteration < self.stop:
            epoch, first = divmod(iteration, self.per_epoch)
            order = epoch_indices(self.n, epoch, self.seed, self.rank, self.world)
            for b in range(first, min(self.per_epoch, first + self.stop - iteration)):
                yield [(epoch, i) for i in order[b * self.bs:(b + 1) * self.bs]]
                iteration += 1


class EpochItems(torch.utils.data.Dataset):
    """``dataset`` indexed by ``(epoch, index)``: tells the copy that loads the item (a worker's, or this
    process's) its epoch first, so epoch-keyed augmentation holds in workers forked once for the whole run."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, i = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


def checkpoint_path(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / "checkpoints" / CKPT_NAME


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _scalars(out: Mapping[str, Tensor]) -> dict[str, float]:
    return {k: float(v.detach().float().mean()) for k, v in out.items() if isinstance(v, Tensor) and v.numel() >= 1}


def usable_workers(wanted: Any) -> int:
    """DataLoader workers: the configured number, at most the cores this process may use (more only thrash;
    the augmentation of a sample does not depend on the worker that loads it)."""
    return max(0, min(int(wanted or 0), len(os.sched_getaffinity(0))))


def read_train_log(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) of each step in ``train_log.jsonl``. A cut last line (the process was killed while
    writing it) is dropped with a warning; an unreadable line before it is an error naming file and line."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    out = []
    for i, ln in enumerate(lines, 1):
        try:
            rec = json.loads(ln)
        except ValueError:
            if i == len(lines):
                logging.getLogger("wsss.training").warning(
                    "%s: dropped a cut last line (%d characters; killed while writing it)", path, len(ln))
                break
            raise ValueError(f"{path}:{i}: not a JSON record ({ln[:60]!r}); delete the file to start the log "
                             "over") from None
        out.append((ln, rec if isinstance(rec, dict) else {}))
    return out


AMP_ON_CPU = "WSSS_AMP_ON_CPU"  # environment variable: "1" = float16 autocast on CPU too (a check, not for speed)


def amp_enabled(cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Mixed precision (float16 autocast + GradScaler) when ``cfg['amp']``: on CUDA; on CPU only with
    ``WSSS_AMP_ON_CPU=1``, which bench/gpu_check.py sets to run these training steps through float16 autocast on
    a machine without a GPU (catches dtype and overflow errors of our own losses; slower than float32 there)."""
    if not bool(cfg.get("amp", True)):
        return False
    return device.type == "cuda" or (device.type == "cpu" and os.environ.get(AMP_ON_CPU) == "1")


def cpu_bf16_enabled(cfg: Mapping[str, Any], device: torch.device) -> bool:
    """bfloat16 autocast of the training step (``cfg['cpu_bf16']``, from ``runtime.cpu_bf16``) on CPU, where
    float16 AMP is off: no loss scaling (bfloat16 has float32's exponent range)."""
    return bool(cfg.get("cpu_bf16", False)) and device.type == "cpu" and not amp_enabled(cfg, device)


def check_cpu_bf16_hardware(log: logging.Logger, what: str) -> str | None:
    """The CPU's bfloat16 units (wsss.auto_settings.cpu_bf16_hardware), with a warning naming ``what`` will be slow
    when there are none (bfloat16 is then emulated); one check for our training loop and DeepLab's."""
    hardware = cpu_bf16_hardware()
    if hardware is None:
        log.warning("runtime.cpu_bf16=True but this CPU has no bfloat16 units (no amx_bf16 / avx512_bf16 flag): "
                    "%s will be slower than in float32; set runtime.cpu_bf16=False", what)
    return hardware


def precision_options(runtime: Mapping[str, Any]) -> dict[str, bool]:
    """The ``runtime`` section's arithmetic keys as the trainers read them: ``amp`` (CUDA float16) and
    ``cpu_bf16`` (bfloat16 autocast on CPU); one reading for every stage that trains (this loop and DeepLab's).
    ``cpu_bf16='auto'`` must have been resolved by the config hook (wsss.auto_settings) before."""
    cpu_bf16 = runtime.get("cpu_bf16", False)
    if not isinstance(cpu_bf16, bool):
        raise ValueError(f"runtime.cpu_bf16 must be True or False (or 'auto' with the config hook "
                         f"wsss.auto_settings:resolve in config_hooks), got {cpu_bf16!r}")
    return {"amp": bool(runtime.get("amp", True)), "cpu_bf16": cpu_bf16}


def train(model: nn.Module, param_groups: list[dict[str, Any]], dataset: torch.utils.data.Dataset,
          step_fn: Callable[[nn.Module, Any], Mapping[str, Tensor]], cfg: Mapping[str, Any], out_dir: Path,
          log: logging.Logger | None = None, collate: Callable | None = None) -> dict[str, Any]:
    """Train ``model`` (already on its device) and return ``{'history': [per-epoch means of every scalar],
    'iterations', 'epochs', 'seconds', 'images_per_s', 'resumed_from'}``.

    ``step_fn(model, batch)`` gets the (possibly DDP-wrapped) model and a batch on the model's device and returns
    a dict with 'loss' (to minimise) and any other scalars to log. Only rank 0 writes files.
    """
    log = log or logging.getLogger("wsss.training")
    out_dir = Path(out_dir)
    distributed, rank, world = _dist()
    device = next(model.parameters()).device
    epochs = int(cfg.get("epochs", 1))
    bs = int(cfg.get("batch_size", 16))
    base_lr = float(cfg.get("lr", 0.01))
    power = float(cfg.get("poly_power", 0.9))
    seed = int(cfg.get("seed", 0))
    ckpt_interval = int(cfg.get("ckpt_interval", 0) or 0)
    log_interval = max(1, int(cfg.get("log_interval", 1)))
    amp = amp_enabled(cfg, device)
    bf16 = cpu_bf16_enabled(cfg, device)
    if epochs < 1 or bs < 1:
        raise ValueError(f"training needs epochs >= 1 and batch_size >= 1 (got {epochs}, {bs})")
    n = len(dataset)
    if n == 0:
        raise ValueError("training dataset is empty")

    groups = []
    for g in param_groups:
        g = dict(g)
        g["lr_mult"] = float(g.get("lr_mult", 1.0))
        g["lr"] = g["initial_lr"] = base_lr * g["lr_mult"]
        groups.append(g)
    optimizer = torch.optim.SGD(groups, lr=base_lr, momentum=float(cfg.get("momentum", 0.9)),
                                weight_decay=float(cfg.get("weight_decay", 1e-4)))
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    if amp:
        log.info("mixed precision: float16 autocast + gradient scaling on %s", device.type)
        if device.type == "cpu":
            log.warning("%s=1: a check of the AMP path, not for results (float16 on CPU is slower than float32, and "
                        "the stage's cache key does not record it)", AMP_ON_CPU)
    if bf16:
        hardware = check_cpu_bf16_hardware(log, "training")
        log.info("bfloat16 autocast on CPU (runtime.cpu_bf16; this CPU's bfloat16 units: %s)", hardware or "none")

    per_rank = len(epoch_indices(n, 0, seed, rank, world))
    drop_last = per_rank >= bs  # a batch of 1 breaks BatchNorm; keep a short last batch only if it is all we have
    iters_per_epoch = per_rank // bs if drop_last else 1
    max_iters = epochs * iters_per_epoch
    if cfg.get("iters"):
        max_iters = int(cfg["iters"])
        if max_iters < 1:
            raise ValueError(f"training needs iters >= 1 (got {max_iters})")
        epochs = -(-max_iters // iters_per_epoch)

    ckpt = checkpoint_path(out_dir)
    iteration, history, sums, counts = 0, [], {}, 0
    key_counts: dict[str, int] = {}  # steps that reported each scalar (a step may leave one out, e.g. top1)
    if ckpt.is_file():
        try:
            state = torch.load(ckpt, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"{ckpt}: cannot resume from this checkpoint ({e}); delete it to start over") from None
        if (state.get("iters_per_epoch") != iters_per_epoch or state.get("epochs") != epochs
                or state.get("max_iters", max_iters) != max_iters):
            raise RuntimeError(f"{ckpt}: checkpoint was made with {state.get('epochs')} epochs x "
                               f"{state.get('iters_per_epoch')} iterations, this run has {epochs} x {iters_per_epoch} "
                               "(batch size, world size or data changed); delete it to start over")
        iteration, history = int(state["iteration"]), list(state["history"])
        sums, counts = dict(state.get("epoch_sums", {})), int(state.get("epoch_count", 0))
        key_counts = dict(state.get("epoch_key_counts", {k: counts for k in sums}))
        log.info("resuming from %s at iteration %d of %d (epoch %d)", ckpt, iteration, max_iters,
                 iteration // iters_per_epoch)
    resumed_from = iteration

    log_file = out_dir / "train_log.jsonl"
    writer = None
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if log_file.exists():  # drop steps after the checkpoint: they will be redone
            keep = [ln for ln, rec in read_train_log(log_file) if rec.get("iter", 0) <= iteration]
            atomic_write_text(log_file, "".join(ln + "\n" for ln in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard scalars (train_log.jsonl has them all)")
        else:
            writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=iteration + 1)

    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(cfg.get("find_unused_parameters", False)))

    def save() -> None:
        if rank != 0:
            return
        _save_checkpoint(ckpt, dict(model=model.state_dict(), optimizer=optimizer.state_dict(),
                                    scaler=scaler.state_dict(), epoch=iteration // iters_per_epoch,
                                    iteration=iteration, iters_per_epoch=iters_per_epoch, epochs=epochs,
                                    max_iters=max_iters,
                                    history=history, epoch_sums=sums, epoch_count=counts,
                                    epoch_key_counts=key_counts))

    t0, images = time.time(), 0
    model.train()
    bar = tqdm(total=max_iters, initial=iteration, desc="train", unit="it", dynamic_ncols=True,
               mininterval=1.0, disable=rank != 0)
    jsonl = open(log_file, "a", encoding="utf-8") if rank == 0 else None  # noqa: SIM115
    try:
        epoch = iteration // iters_per_epoch
        if hasattr(dataset, "set_epoch"):  # this process's copy too (the bao stage's step reads its epoch)
            dataset.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(
            EpochItems(dataset), batch_sampler=EpochBatches(n, bs, iters_per_epoch, seed, rank, world, iteration,
                                                            max_iters),
            num_workers=usable_workers(cfg.get("num_workers", 0)) if iteration < max_iters else 0,
            collate_fn=collate, pin_memory=device.type == "cuda")
        t_epoch = time.time()
        for batch in loader:
            lr_factor = (1 - iteration / max_iters) ** power
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * lr_factor
            torch.manual_seed((seed * 1_000_003 + iteration) * 1024 + rank)
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16 if bf16 else torch.float16, enabled=amp or bf16):
                out = step_fn(net, batch)
            loss = out["loss"]
            if not torch.isfinite(loss).all() and not amp:
                raise FloatingPointError(f"training diverged at iteration {iteration} (loss {loss.item()}); "
                                         "lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            iteration += 1
            first = next(iter(batch.values())) if isinstance(batch, Mapping) else batch[0]
            images += len(first) * world
            sc = _scalars(out)
            for k, v in sc.items():
                sums[k] = sums.get(k, 0.0) + v
                key_counts[k] = key_counts.get(k, 0) + 1
            counts += 1
            bar.update()
            bar.set_postfix(loss=f"{sc['loss']:.4f}", refresh=False)
            if jsonl is not None and iteration % log_interval == 0:
                jsonl.write(json.dumps({"iter": iteration, "epoch": epoch + 1,
                                        "lr": base_lr * lr_factor, **sc}) + "\n")
                jsonl.flush()
            if writer is not None:
                for k, v in sc.items():
                    writer.add_scalar(f"train/{k}", v, iteration)
            if iteration % iters_per_epoch == 0 or iteration >= max_iters:  # the epoch ends
                means = {k: v / max(key_counts.get(k, counts), 1) for k, v in sums.items()}
                history.append({"epoch": epoch + 1, **means, "seconds": round(time.time() - t_epoch, 3)})
                sums, counts, key_counts = {}, 0, {}
                log.info("epoch %d/%d: %s", epoch + 1, epochs,
                         ", ".join(f"{k}={v:.4g}" for k, v in means.items()))
                save()
                epoch += 1
                if hasattr(dataset, "set_epoch") and iteration < max_iters:
                    dataset.set_epoch(epoch)
                t_epoch = time.time()
            elif ckpt_interval and iteration % ckpt_interval == 0:
                save()
    finally:
        bar.close()
        if jsonl is not None:
            jsonl.close()
        if writer is not None:
            writer.close()
    seconds = time.time() - t0
    return {"history": history, "iterations": iteration, "epochs": epochs, "seconds": round(seconds, 3),
            "images_per_s": round(images / seconds, 3) if seconds > 0 and images else None,
            "resumed_from": resumed_from}

