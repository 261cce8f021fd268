"""Atomic file writes, stage manifests and the work-directory lock.

Everything a stage writes goes through :func:`atomic_path`: the data lands in a temporary file in the
same directory and is renamed into place only when complete, so a killed stage never leaves a truncated
output that a resumed run would mistake for a finished one.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_TEMP_MARK = ".tmp."


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` defaults to the target's suffix so writers that infer the format from the name
    (PIL, numpy) keep working.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{_TEMP_MARK}", suffix=suffix or path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a file :func:`atomic_path` is writing (or a killed run left half written)."""
    name = Path(path).name
    return name.startswith(".") and _TEMP_MARK in name


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete the half-written files a killed run left under ``folder``; returns how many.

    They keep the target's suffix (writers need it), so a ``*.npz`` glob would otherwise see them.
    Call it only while no process writes into ``folder``.
    """
    stale = [f for f in Path(folder).rglob(f".*{_TEMP_MARK}*") if f.is_file() and is_temporary(f)]
    for f in stale:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    return len(stale)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``dst`` as a hard link to ``src`` (no bytes copied), or a copy where links are not possible (another file
    system): the dataset tools' way to carry files they leave unchanged into a new folder."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def atomic_save_npz(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and Paths so ``json`` can write them."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class WorkdirLocked(RuntimeError):
    """Another run holds the work directory."""


class WorkdirLock:
    """An exclusive, process-lifetime lock on a work directory (``flock``: released if the process dies)."""

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> WorkdirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise WorkdirLocked(
                    f"work directory {self.path.parent} is in use by another run ({holder}); "
                    "wait for it to finish or stop it first") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def load_checkpoint(path: str | os.PathLike, stage: str, what: str = "checkpoint") -> Any:
    """``torch.load(weights_only=True)`` of a checkpoint a stage wrote; an error naming the file and the stage to
    rerun when it is damaged (not torch's advice to load untrusted pickles with ``weights_only=False``)."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} is missing (run the '{stage}' stage first)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if first.startswith("Weights only load failed"):
            first = "not a checkpoint written by this pipeline"
        raise ValueError(f"{path}: damaged or foreign {what} ({first}); rerun the '{stage}' stage: "
                         f"python -m pipeline.cli run <config> --force {stage}") from None
