"""GPU readiness check (``bash bench/gpu_check.sh``; no arguments). Prints one table and exits non-zero on failure.

With a CUDA GPU (< 8 minutes on one GPU):
1. the tiny end-to-end config (the one tests/test_end_to_end.py runs) on CUDA with AMP, every stage;
2. the classifier and DeepLab stages again under ``torchrun --standalone --nproc_per_node=1`` with an NCCL
   process group (bench/gpu_check_dist.py starts it: at world size 1 the pipeline itself starts none);
3. timed training steps with AMP at VOC size: the BAS classifier, ResNet-50 OS16, 448 crop, batch 16, and
   DeepLabV3+ R101 (configs/segment/deeplabv3plus_r101-d8_voc.py, BN for SyncBN), 512 crop, batch 4; both from
   random init (no pretrained weights: speed and memory do not depend on them), synthetic batches;
   iterations/s and peak GPU memory (``torch.cuda.max_memory_allocated``).
Without one: the training stages of our own loops (classify, bao, affinity) of the tiny config through float16
autocast + gradient scaling on CPU (``WSSS_AMP_ON_CPU=1``, wsss.training.amp_enabled: the dtype and overflow
check of the AMP path, without CUDA's kernels; mmseg's AMP wrapper refuses a CPU, so segment is not in it), part 3
on CPU at a tiny size (the same code; 64 / 32 px crops, batch 2, one timed step), and the table says plainly that
the CUDA parts were skipped.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the tiny end-to-end config of tests/test_end_to_end.py (one list: kept the same there and here)
TINY_DATA = dict(seed=0, n_train=16, n_val=6, size=64)


def tiny_options() -> list[str]:
    from tests.test_end_to_end import TINY

    return [o for o in TINY if not o.startswith("runtime.workers")]


# ------------------------------------------------------------------------------------------------- step timing
def time_steps(step: Callable[[], Any], device: Any, warmup: int, iters: int) -> dict[str, float]:
    """Iterations/s of ``step`` after ``warmup`` steps, and peak memory (GPU: allocated by torch; CPU: RSS)."""
    import torch

    cuda = device.type == "cuda"
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(iters):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    sec = time.perf_counter() - t
    peak = (torch.cuda.max_memory_allocated(device) if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"it_per_s": iters / sec, "peak_mb": peak / 2**20}


def amp_step(model: Any, loss_fn: Callable[[], Any], device: Any) -> Callable[[], None]:
    """One SGD step with autocast (float16) + GradScaler on CUDA, plain float32 on CPU."""
    import torch

    cuda = device.type == "cuda"
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = loss_fn()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def classifier_step(device: Any, crop: int, batch: int) -> Callable[[], None]:
    import torch

    from wsss.models.classifier import build_classifier

    torch.manual_seed(0)
    model = build_classifier(dict(backbone="resnet50", pretrained=False, method="bas"), 20).to(device).train()
    x = torch.randn(batch, 3, crop, crop, device=device)
    labels = torch.zeros(batch, 20, device=device)
    labels[torch.arange(batch), torch.arange(batch) % 20] = 1
    return amp_step(model, lambda: model(x, labels)["loss"], device)


def deeplab_step(device: Any, crop: int, batch: int) -> Callable[[], None]:
    import torch
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    from wsss.segmentation import _replace_type, resolve_model_config

    register_all_modules(init_default_scope=True)
    mm = Config.fromfile(str(resolve_model_config("configs/segment/deeplabv3plus_r101-d8_voc.py")))
    cfg = _replace_type(mm.model.to_dict(), "SyncBN", "BN")  # one process, no process group
    cfg["pretrained"] = None
    cfg["data_preprocessor"]["size"] = (crop, crop)
    torch.manual_seed(0)
    model = MODELS.build(cfg).to(device).train()
    x = torch.randn(batch, 3, crop, crop, device=device)
    samples = []
    for _ in range(batch):
        s = SegDataSample(metainfo=dict(img_shape=(crop, crop), pad_shape=(crop, crop), ori_shape=(crop, crop)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 21, (1, crop, crop), device=device))
        samples.append(s)

    def loss() -> Any:
        total, _ = model.parse_losses(model.loss(x, samples))
        return total

    return amp_step(model, loss, device)


def step_rows(device: Any, full: bool) -> list[dict[str, Any]]:
    """The two timed training steps: VOC size on CUDA (``full``), 64 px / batch 2 otherwise."""
    rows = []
    specs = [("classifier BAS ResNet-50 OS16", classifier_step, 448 if full else 64, 16 if full else 2),
             ("DeepLabV3+ R101 (mmseg)", deeplab_step, 512 if full else 32, 4 if full else 2)]
    for name, make, crop, batch in specs:
        row = {"part": f"{name} step", "device": device.type, "setting": f"crop {crop}, batch {batch}, "
               + ("AMP fp16" if device.type == "cuda" else "fp32") + ", random init"}
        t0 = time.perf_counter()
        try:
            step = make(device, crop, batch)
            row.update(time_steps(step, device, warmup=3 if full else 1, iters=10 if full else 1), status="ok")
        except Exception as e:  # noqa: BLE001  (a check reports every failure and goes on)
            row.update(status=f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}")
        row["seconds"] = time.perf_counter() - t0
        if device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- pipeline runs
def _run(cmd: list[str], log: Path, timeout: int, env: dict[str, str] | None = None) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    try:
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        text, rc = out.stdout + out.stderr, out.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = f"{e.stdout or ''}{e.stderr or ''}\nTIMEOUT after {timeout} s", 124
    log.write_text(text if isinstance(text, str) else str(text))
    return rc, text if isinstance(text, str) else str(text)


def _tail(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-300:]


def pipeline_rows(tmp: Path, logs: Path, device: str = "cuda") -> list[dict[str, Any]]:
    """The tiny end-to-end run on CUDA with AMP, then classify + segment under torchrun with NCCL.

    ``device='cpu'`` (``--orchestration-on-cpu``) runs the same steps on CPU with gloo: a check of this script's
    own orchestration on a machine without a GPU, not of CUDA."""
    from tools.demo_data import make_demo_dataset

    backend = "nccl" if device == "cuda" else "gloo"
    data, work = tmp / "demo", tmp / "work"
    make_demo_dataset(data, **TINY_DATA)
    base = [str(ROOT / "configs/demo/demo.py"), "--work-dir", str(work), "--cfg-options", f"dataset.root={data}",
            f"dataset.cache_dir={tmp / 'cache'}", *tiny_options(), f"runtime.device={device}", "runtime.amp=True"]
    rows = []
    t0 = time.perf_counter()
    rc, text = _run([sys.executable, "-m", "pipeline.cli", "run", *base], logs / f"e2e_{device}.log", 420)
    row = {"part": "tiny end to end, every stage", "device": device, "setting": "demo config, tiny options, AMP",
           "seconds": time.perf_counter() - t0}
    if rc == 0:
        stages = json.loads((work / "summary.json").read_text())["stages"]
        not_run = [s["stage"] for s in stages if not s.get("ran")]
        row["status"] = "ok" if not not_run else f"FAILED: stages not run: {not_run}"
        row["stage_seconds"] = {s["stage"]: s.get("wall_s") for s in stages}
    else:
        row["status"] = f"FAILED (rc {rc}; {logs / f'e2e_{device}.log'}): {_tail(text)}"
    rows.append(row)
    if rc != 0:
        rows.append({"part": f"classify + segment under torchrun ({backend})", "device": device, "setting": "",
                     "status": "skipped: the end-to-end run failed"})
        return rows
    copy = tmp / "work_torchrun"
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns(".lock"))
    for stage in ("classify", "segment"):
        shutil.rmtree(copy / stage)
    args = [a if a != str(work) else str(copy) for a in base]
    t0 = time.perf_counter()
    rc, text = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                     str(ROOT / "bench/gpu_check_dist.py"), backend, "stage", "classify,segment", *args],
                    logs / f"torchrun_{backend}.log", 240)
    ok = rc == 0 and f"process group: {backend}, world size 1" in text and "distributed data parallel: True" in text
    rows.append({"part": f"classify + segment under torchrun ({backend})", "device": device,
                 "setting": f"--nproc_per_node=1, {backend} group", "seconds": time.perf_counter() - t0,
                 "status": "ok" if ok else f"FAILED (rc {rc}; {logs / f'torchrun_{backend}.log'}): {_tail(text)}"})
    return rows


AMP_TRAINERS = ("classify", "bao", "affinity")  # the stages that train with wsss.training.train


def amp_on_cpu_row(tmp: Path, logs: Path) -> dict[str, Any]:
    """The tiny config's stages up to the affinity net on CPU with float16 autocast (``WSSS_AMP_ON_CPU=1``): each
    trainer must say it trained in mixed precision and end its last epoch with a finite loss."""
    import math

    from tools.demo_data import make_demo_dataset
    from wsss.training import AMP_ON_CPU, read_train_log

    tmp = tmp / "amp_on_cpu"  # its own data, cache and work dir beside pipeline_rows'
    data, work = tmp / "demo", tmp / "work"
    make_demo_dataset(data, **TINY_DATA)
    t0 = time.perf_counter()
    rc, text = _run([sys.executable, "-m", "pipeline.cli", "run", str(ROOT / "configs/demo/demo.py"), "--work-dir",
                     str(work), "--until", "affinity", "--cfg-options", f"dataset.root={data}",
                     f"dataset.cache_dir={tmp / 'cache'}", *tiny_options(), "runtime.device=cpu",
                     "runtime.amp=True"], logs / "amp_on_cpu.log", 300, env={AMP_ON_CPU: "1"})
    row = {"part": f"{', '.join(AMP_TRAINERS)} in float16 autocast", "device": "cpu",
           "setting": f"tiny config, {AMP_ON_CPU}=1", "seconds": time.perf_counter() - t0}
    if rc != 0:
        row["status"] = f"FAILED (rc {rc}; {logs / 'amp_on_cpu.log'}): {_tail(text)}"
        return row
    problems = []
    for stage in AMP_TRAINERS:
        if "mixed precision: float16 autocast" not in (work / stage / "stage.log").read_text():
            problems.append(f"{stage} did not train in mixed precision")
        records = [rec for _, rec in read_train_log(work / stage / "train_log.jsonl")]
        last = records[-1]["loss"] if records else float("nan")
        if not math.isfinite(last):
            problems.append(f"{stage}: last loss {last}")
    row["status"] = "ok" if not problems else "FAILED: " + "; ".join(problems)
    return row


# ------------------------------------------------------------------------------------------------------ table
def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'part':<44} {'device':<6} {'setting':<38} {'it/s':>7} {'peak MB':>9} {'time s':>7}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        its = f"{r['it_per_s']:.2f}" if "it_per_s" in r else "-"
        mem = f"{r['peak_mb']:.0f}" if "peak_mb" in r else "-"
        sec = f"{r['seconds']:.0f}" if "seconds" in r else "-"
        lines.append(f"{r['part']:<44} {r['device']:<6} {r['setting']:<38} {its:>7} {mem:>9} {sec:>7}  {r['status']}")
    return "\n".join(lines)


def main() -> int:
    import torch

    import wsss  # noqa: F401  (stack fixes)

    t_start = time.perf_counter()
    cuda = torch.cuda.is_available()
    logs = Path(os.environ.get("GPU_CHECK_LOGS", ROOT / "workdirs/gpu_check"))
    logs.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if cuda:
        print(f"gpu_check: CUDA device {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            rows += pipeline_rows(Path(tmp), logs)
        rows += step_rows(torch.device("cuda"), full=True)
        skipped = ""
    else:
        print("gpu_check: no CUDA GPU (torch.cuda.is_available() is False): running the CPU parts only", flush=True)
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(amp_on_cpu_row(Path(tmp), logs))
            if "--orchestration-on-cpu" in sys.argv[1:]:  # this script's own steps on CPU + gloo (minutes)
                rows += pipeline_rows(Path(tmp), logs, device="cpu")
        rows += step_rows(torch.device("cpu"), full=False)
        skipped = ("CUDA parts SKIPPED (no CUDA GPU): the tiny end-to-end run on CUDA with AMP, classify + segment "
                   "under torchrun with NCCL, and the VOC-size steps (448 px batch 16 / 512 px batch 4) with AMP "
                   "were NOT run; the steps above ran on CPU at 64 / 32 px, batch 2, to check the code path "
                   "only, and our trainers ran float16 autocast on CPU (not CUDA's kernels).")
    print(table(rows))
    if skipped:
        print(skipped)
    total = time.perf_counter() - t_start
    print(f"gpu_check: {total:.0f} s in all; logs in {logs}")
    (logs / "gpu_check.json").write_text(json.dumps({"cuda": cuda, "rows": rows, "seconds": total,
                                                     "skipped": skipped}, indent=1, default=str))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
