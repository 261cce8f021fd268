"""Slurm's variables become torchrun's, the way mmengine's slurm launcher maps them."""
from __future__ import annotations

import pytest

from pipeline import cli
from pipeline.distributed import LauncherError, first_host, slurm_environment

SLURM = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[07-08]"}


@pytest.mark.parametrize("node_list, host", [
    ("localhost", "localhost"), ("node3,node1", "node3"), ("node[03-05,9]", "node03"),
    ("gpu[12,4-6]-ib", "gpu12-ib"), ("a[1-2],b[3-4]", "a1"),
])
def test_first_host_of_a_node_list(node_list, host, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no scontrol: our own expansion
    assert first_host(node_list) == host


def test_slurm_variables_map_to_torchrun_variables():
    assert slurm_environment(SLURM) == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                                        "MASTER_ADDR": "gpu07", "MASTER_PORT": "29500"}
    mine = slurm_environment({**SLURM, "MASTER_ADDR": "10.0.0.2", "MASTER_PORT": "1234"})
    assert (mine["MASTER_ADDR"], mine["MASTER_PORT"]) == ("10.0.0.2", "1234")


@pytest.mark.parametrize("drop, message", [("SLURM_NTASKS", "SLURM_NTASKS not set"),
                                           ("SLURM_NODELIST", "SLURM_NODELIST not set")])
def test_missing_slurm_variables_are_named(drop, message):
    with pytest.raises(LauncherError, match=message):
        slurm_environment({k: v for k, v in SLURM.items() if k != drop})
    with pytest.raises(LauncherError, match="malformed"):
        slurm_environment({**SLURM, "SLURM_PROCID": "x"})


def test_cli_with_slurm_launcher_outside_slurm_fails_clearly(monkeypatch, capsys):
    for k in SLURM:
        monkeypatch.delenv(k, raising=False)
    assert cli.main(["run", "configs/demo/demo.py", "--launcher", "slurm", "--dry-run"]) == 2
    assert "SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST not set" in capsys.readouterr().err
