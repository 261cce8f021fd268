"""The generic training loop: poly lr, logs, checkpoints, exact resume, DDP (gloo, 2 processes)."""
from __future__ import annotations

import json
import os

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import wsss  # noqa: F401
from wsss.models import build_classifier
from wsss.training import amp_enabled, checkpoint_path, cpu_bf16_enabled, epoch_indices, train

torch.set_num_threads(2)


class Toy(torch.utils.data.Dataset):
    """Random images + labels with an epoch-keyed random flip (like LabeledImages)."""

    def __init__(self, n: int = 8, size: int = 32, classes: int = 3):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.y = torch.zeros(n, classes)
        self.y[torch.arange(n), torch.arange(n) % classes] = 1
        self.epoch = 0

    def set_epoch(self, e: int) -> None:
        self.epoch = e

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(1000 * self.epoch + i)
        x = self.x[i].flip(-1) if torch.rand(1, generator=g).item() < 0.5 else self.x[i]
        return {"image": x, "labels": self.y[i]}


class TinyNet(nn.Module):
    """Conv + BN + dropout (global torch RNG, reseeded per step by the loop) + linear; returns losses."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(8, classes)

    def forward(self, x, y):
        s = self.fc(self.drop(self.body(x).mean((2, 3))))
        loss = nn.functional.multilabel_soft_margin_loss(s, y)
        return {"loss": loss, "cls": loss.detach()}

    def param_groups(self):
        return [dict(params=list(self.body.parameters()), lr_mult=1.0), dict(params=list(self.fc.parameters()),
                                                                              lr_mult=10.0)]


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return TinyNet()


def _bas(seed: int = 0):
    torch.manual_seed(seed)
    return build_classifier(dict(backbone="mobilenet_v2", pretrained=False, method="bas"), 3)


def _step(net, batch):
    return net(batch["image"], batch["labels"])


CFG = dict(epochs=2, batch_size=4, lr=0.01, weight_decay=1e-4, seed=3)


class Crash(RuntimeError):
    pass


def _crashing(after: int):
    calls = {"n": 0}

    def step(net, batch):
        calls["n"] += 1
        if calls["n"] > after:
            raise Crash("killed")
        return _step(net, batch)

    return step


def _same(a: nn.Module, b: nn.Module) -> None:
    sb = b.state_dict()
    for k, v in a.state_dict().items():
        assert torch.equal(v, sb[k]), k


def test_epoch_indices_are_seeded_by_epoch_and_sharded():
    a, b = epoch_indices(10, 0, 1), epoch_indices(10, 1, 1)
    assert sorted(a) == list(range(10)) and a != b and a == epoch_indices(10, 0, 1)
    r0, r1 = epoch_indices(10, 2, 1, 0, 2), epoch_indices(10, 2, 1, 1, 2)
    assert len(r0) == len(r1) == 5 and sorted(r0 + r1) == list(range(10))


def test_train_logs_history_lr_and_resumes_exactly(tmp_path):
    ds = Toy()
    ref = _tiny()
    res = train(ref, ref.param_groups(), ds, _step, CFG, tmp_path / "a", None)
    assert res["iterations"] == 4 and len(res["history"]) == 2 and res["resumed_from"] == 0
    assert {"loss", "cls", "epoch", "seconds"} <= set(res["history"][0])
    lines = [json.loads(ln) for ln in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [ln["iter"] for ln in lines] == [1, 2, 3, 4]
    assert lines[0]["lr"] == pytest.approx(0.01) and lines[1]["lr"] == pytest.approx(0.01 * (1 - 1 / 4) ** 0.9)
    assert checkpoint_path(tmp_path / "a").is_file()

    # killed in epoch 2 (after the epoch-1 checkpoint), then resumed by a fresh process with another init
    m = _tiny()
    with pytest.raises(Crash):
        train(m, m.param_groups(), ds, _crashing(3), CFG, tmp_path / "b", None)
    assert torch.load(checkpoint_path(tmp_path / "b"), weights_only=True)["iteration"] == 2
    m2 = _tiny(seed=99)
    res2 = train(m2, m2.param_groups(), ds, _step, CFG, tmp_path / "b", None)
    assert res2["resumed_from"] == 2 and res2["iterations"] == 4
    _same(ref, m2)
    assert res2["history"][1]["loss"] == pytest.approx(res["history"][1]["loss"], rel=1e-6)
    lines = [json.loads(ln) for ln in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [ln["iter"] for ln in lines] == [1, 2, 3, 4]  # the step redone after the crash is logged once

    # a finished run does nothing more
    res3 = train(m2, m2.param_groups(), ds, _step, CFG, tmp_path / "b", None)
    assert res3["iterations"] == 4 and res3["resumed_from"] == 4
    _same(ref, m2)


def test_resume_survives_a_cut_last_log_line_and_names_a_damaged_one(tmp_path, caplog):
    ds = Toy()
    m = _tiny()
    with pytest.raises(Crash):
        train(m, m.param_groups(), ds, _crashing(3), CFG, tmp_path, None)
    log_file = tmp_path / "train_log.jsonl"
    with open(log_file, "a") as f:
        f.write('{"iter": 3, "epoch": 2, "lo')  # killed while writing the line
    m2 = _tiny()
    res = train(m2, m2.param_groups(), ds, _step, CFG, tmp_path, None)
    assert res["iterations"] == 4 and "dropped a cut last line" in caplog.text
    assert [json.loads(ln)["iter"] for ln in log_file.read_text().splitlines()] == [1, 2, 3, 4]
    log_file.write_text('{"iter": 1}\ngarbage\n{"iter": 2}\n')
    with pytest.raises(ValueError, match=r"train_log.jsonl:2: not a JSON record"):
        train(m2, m2.param_groups(), ds, _step, CFG, tmp_path, None)


def test_mid_epoch_checkpoint_resume(tmp_path):
    ds = Toy(n=12)
    cfg = dict(CFG, epochs=1, ckpt_interval=1)
    ref = _tiny()
    train(ref, ref.param_groups(), ds, _step, cfg, tmp_path / "a", None)
    m = _tiny()
    with pytest.raises(Crash):
        train(m, m.param_groups(), ds, _crashing(2), cfg, tmp_path / "b", None)
    assert torch.load(checkpoint_path(tmp_path / "b"), weights_only=True)["iteration"] == 2
    m2 = _tiny(seed=5)
    res = train(m2, m2.param_groups(), ds, _step, cfg, tmp_path / "b", None)
    assert res["resumed_from"] == 2
    _same(ref, m2)


def test_resume_refuses_a_checkpoint_of_another_schedule(tmp_path):
    ds = Toy()
    m = _tiny()
    train(m, m.param_groups(), ds, _step, dict(CFG, epochs=1), tmp_path, None)
    with pytest.raises(RuntimeError, match="latest.pth: checkpoint was made with 1 epochs"):
        train(m, m.param_groups(), ds, _step, dict(CFG, epochs=1, batch_size=2), tmp_path, None)


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = _bas(seed=rank)  # different inits: DDP must broadcast rank 0's
        res = train(model, model.param_groups(), Toy(), _step, dict(CFG, epochs=1, batch_size=2), out_dir, None)
        params = {k: v for k, v in model.named_parameters()}
        torch.save({"params": params, "res": res}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert r0["res"]["iterations"] == r1["res"]["iterations"] == 2  # 8 images / 2 ranks / batch 2
    for k, v in r0["params"].items():
        assert torch.equal(v, r1["params"][k]), k
    ref = _bas(seed=0)
    assert not torch.equal(ref.head.weight, r0["params"]["head.weight"])  # it did train
    lines = (out / "train_log.jsonl").read_text().splitlines()
    assert len(lines) == 2  # only rank 0 writes
    assert checkpoint_path(out).is_file()


def test_iters_sets_the_length_in_iterations_whatever_the_epochs(tmp_path):
    ds = Toy()  # 8 images, batch 4: 2 iterations per epoch
    m = _tiny()
    res = train(m, m.param_groups(), ds, _step, {**CFG, "epochs": 1, "iters": 5}, tmp_path / "a", None)
    assert res["iterations"] == 5 and res["epochs"] == 3 and len(res["history"]) == 3  # the last epoch is cut
    lines = [json.loads(ln) for ln in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [ln["iter"] for ln in lines] == [1, 2, 3, 4, 5]
    assert lines[-1]["lr"] == pytest.approx(0.01 * (1 - 4 / 5) ** 0.9)  # poly decays over the 5 iterations
    # a checkpoint of another length is refused
    with pytest.raises(RuntimeError, match="delete it"):
        train(m, m.param_groups(), ds, _step, {**CFG, "epochs": 1, "iters": 7}, tmp_path / "a", None)


def test_epoch_means_average_each_scalar_over_the_steps_that_reported_it(tmp_path):
    """A step may leave a scalar out (the classifier's top-1 on a batch of negatives only): its epoch mean is over
    the steps that reported it, not diluted by the others."""
    calls = {"n": 0}

    def step(net, batch):
        out = _step(net, batch)
        calls["n"] += 1
        if calls["n"] % 2:  # steps 1 and 3 report 'odd' = 1.0; steps 2 and 4 leave it out
            out["odd"] = torch.tensor(1.0)
        return out

    m = _tiny()
    res = train(m, m.param_groups(), Toy(), step, dict(CFG, epochs=1), tmp_path, None)  # 8 images, batch 4: 2 steps
    assert res["history"][0]["odd"] == 1.0


def test_amp_runs_on_cpu_only_for_the_check(tmp_path, monkeypatch, caplog):
    """Mixed precision is CUDA-only, except with WSSS_AMP_ON_CPU=1 (bench/gpu_check.py's float16 check on a CPU):
    then the step runs under float16 autocast with gradient scaling, says so, and trains as float32 does."""
    cpu = torch.device("cpu")
    monkeypatch.delenv("WSSS_AMP_ON_CPU", raising=False)
    assert not amp_enabled({"amp": True}, cpu) and not amp_enabled({"amp": False}, torch.device("cuda"))
    assert amp_enabled({"amp": True}, torch.device("cuda"))
    m32 = _tiny()
    fp32 = train(m32, m32.param_groups(), Toy(), _step, dict(CFG, epochs=4), tmp_path / "fp32", None)["history"]
    monkeypatch.setenv("WSSS_AMP_ON_CPU", "1")
    assert amp_enabled({}, cpu) and not amp_enabled({"amp": False}, cpu)
    dtypes = []

    def step(net, batch):
        dtypes.append(net.body[0](batch["image"]).dtype)  # what autocast makes of the conv
        return _step(net, batch)

    m = _tiny()
    with caplog.at_level("INFO", logger="wsss.training"):
        fp16 = train(m, m.param_groups(), Toy(), step, dict(CFG, epochs=4), tmp_path / "fp16", None)["history"]
    assert set(dtypes) == {torch.float16}
    assert "mixed precision: float16 autocast + gradient scaling on cpu" in caplog.text
    assert all(p.dtype == torch.float32 for p in m.parameters())  # the weights stay float32 (autocast, not .half())
    # the same training to float16 rounding (measured: epoch means equal to 1e-4); not a copy of the float32 run
    assert [h["loss"] for h in fp16] == pytest.approx([h["loss"] for h in fp32], abs=5e-3)
    assert any(not torch.equal(a, b) for a, b in zip(m.state_dict().values(), m32.state_dict().values()))


class Keyed(Toy):
    """Toy whose items say which (epoch, index) loaded them."""

    def __getitem__(self, i: int):
        return {**super().__getitem__(i), "key": torch.tensor([self.epoch, i]), "pid": torch.tensor(os.getpid())}


def test_one_loader_for_the_run_draws_what_a_loader_per_epoch_drew(tmp_path):
    """Workers are forked once per run: every step still gets epoch e's chunk of epoch_indices, augmented for
    epoch e in the worker that loaded it, while this process's dataset says epoch e (the bao stage's teacher
    schedule reads it); 2 workers train the same weights as none."""
    runs = {}
    for workers in (0, 2):
        ds, steps, pids = Keyed(n=10), [], set()

        def step(net, batch, ds=ds, steps=steps, pids=pids):
            assert {e for e, _ in batch["key"].tolist()} == {ds.epoch}
            steps.append(batch["key"].tolist())
            pids.update(batch["pid"].tolist())
            return _step(net, batch)

        m = _tiny()
        cfg = dict(CFG, epochs=3, iters=5, num_workers=workers)  # 10 samples, batch 4: 2 steps/epoch, cut at 5
        res = train(m, m.param_groups(), ds, step, cfg, tmp_path / str(workers), None)
        assert res["iterations"] == 5 and [h["epoch"] for h in res["history"]] == [1, 2, 3]
        runs[workers] = (steps, m)
        # a loader per epoch forked 2 new workers in each of the 3 epochs (6 pids); one loader forks 2 in all
        assert pids == {os.getpid()} if workers == 0 else (len(pids) == 2 and os.getpid() not in pids)
    expected = [[[e, i] for i in epoch_indices(10, e, 3)[b * 4:(b + 1) * 4]] for e in range(3) for b in range(2)]
    assert runs[0][0] == runs[2][0] == expected[:5]
    _same(runs[0][1], runs[2][1])


def test_cpu_bf16_trains_under_bfloat16_autocast_and_resumes_exactly(tmp_path):
    """runtime.cpu_bf16: the step runs under bfloat16 autocast on CPU (other weights than float32's, a falling
    loss), and a killed run resumes to the same weights as an uninterrupted one."""
    ds, cfg = Toy(n=12), dict(CFG, epochs=4, cpu_bf16=True)
    assert cpu_bf16_enabled(cfg, torch.device("cpu")) and not cpu_bf16_enabled(CFG, torch.device("cpu"))
    dtypes = set()

    def step(net, batch):
        dtypes.add(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return _step(net, batch)

    ref = _tiny()
    res = train(ref, ref.param_groups(), ds, step, cfg, tmp_path / "a", None)
    assert dtypes == {torch.bfloat16}
    assert res["history"][-1]["loss"] < res["history"][0]["loss"]
    fp32 = _tiny()
    train(fp32, fp32.param_groups(), ds, _step, dict(cfg, cpu_bf16=False), tmp_path / "f", None)
    assert not torch.equal(ref.fc.weight, fp32.fc.weight)  # autocast really changed the arithmetic
    m = _tiny()
    with pytest.raises(Crash):
        train(m, m.param_groups(), ds, _crashing(5), cfg, tmp_path / "b", None)
    m2 = _tiny(seed=7)
    train(m2, m2.param_groups(), ds, _step, cfg, tmp_path / "b", None)
    _same(ref, m2)
