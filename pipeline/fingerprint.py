"""Fingerprints of what a stage's outputs depend on besides the config: its code and its input data.

- Code: the source of the stage module and of every project module it imports, transitively (import
  statements found with ``ast``, function-local imports included), within the project packages
  (``pipeline``, ``wsss``, ``stages``). Third-party packages are not hashed (their versions are pinned).
  Each source counts by its syntax tree without docstrings (:func:`code_digest`): an edit to a docstring, a
  comment or the layout keeps a finished stage; any change to what runs, a message text included, reruns it.
- Data: every file of a dataset split (split file, class list, label file, each listed image and mask) by
  content. Content hashes are cached per file under its size, mtime and inode, so a file is read only when
  it changed; a ``touch`` or a different spelling of the dataset root (trailing slash, symlink) changes
  nothing, an edited mask or a replaced image does.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .cache import atomic_write_json

PROJECT_PACKAGES = ("pipeline", "wsss", "stages")
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------------- code
def _module_file(name: str, root: Path) -> Path | None:
    """The source file of a project module ``a.b.c`` (``a/b/c.py`` or ``a/b/c/__init__.py``) under ``root``."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_of(path: Path, name: str, root: Path, packages: tuple[str, ...]) -> set[str]:
    """Project modules named by the import statements of one source file (anywhere in it)."""
    found: set[str] = set()
    for t in _import_targets(path.read_bytes(), str(path), name, path.name == "__init__.py"):
        if t.split(".")[0] not in packages:
            continue
        parts = t.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            if _module_file(".".join(parts[:i]), root) is not None:
                found.add(".".join(parts[:i]))
    return found


@functools.cache
def _import_targets(source: bytes, filename: str, name: str, is_pkg: bool) -> tuple[str, ...]:
    """Every module an import statement of ``source`` (module ``name``) names; parsed once per source text
    however many stages import the file."""
    targets: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets += [base] + [f"{base}.{a.name}" for a in node.names]  # `from pkg import submodule`
    return tuple(targets)


def project_imports(name: str, root: Path = ROOT, packages: tuple[str, ...] = PROJECT_PACKAGES) -> dict[str, Path]:
    """``{module: source file}`` of ``name`` and every project module it imports, transitively."""
    out: dict[str, Path] = {}
    parts = name.split(".")
    todo = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]  # importing a.b runs a/__init__.py first
    while todo:
        mod = todo.pop()
        if mod in out:
            continue
        path = _module_file(mod, root)
        if path is None:
            continue
        out[mod] = path
        todo.extend(_imports_of(path, mod, root, packages) - set(out))
    return dict(sorted(out.items()))


@functools.cache
def code_digest(source: bytes, filename: str = "<source>") -> str:
    """Digest of a Python source by what it runs: its syntax tree (``ast.dump`` without line numbers) with the
    docstrings and other bare string statements left out, so comments, docstrings, blank lines and line breaks do
    not count. (``ast.dump``'s text can differ between Python versions: a new interpreter reruns the stages once.)"""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                                 and isinstance(s.value.value, str))]
    return hashlib.sha1(ast.dump(tree, include_attributes=False).encode()).hexdigest()


# Every stage runs with the context the runner hands it (``pipeline.stage``: its dataset reader, its device).
CONTEXT_MODULES = ("pipeline.stage",)


def code_version(module: ModuleType | str, root: Path = ROOT, packages: tuple[str, ...] = PROJECT_PACKAGES,
                 context: tuple[str, ...] = CONTEXT_MODULES, legacy: bool = False) -> str:
    """Hash of the sources of a stage module and of the project modules it and the stage context import
    (transitively), each by :func:`code_digest`. A module that is not a project file (the tests' toy stages)
    counts by its own file. ``legacy``: each source by its bytes, the rule of work dirs made before 2026-12-07
    (the planner accepts such a version while every source is byte for byte the same)."""
    name = module if isinstance(module, str) else module.__name__
    files = project_imports(name, root, packages)
    if files:
        for extra in context:
            files.update(project_imports(extra, root, packages))
        files = dict(sorted(files.items()))
    if not files and not isinstance(module, str):
        origin = getattr(module, "__file__", None)
        files = {name: Path(origin)} if origin and Path(origin).is_file() else {}
    h = hashlib.sha1()
    for mod, path in files.items():
        source = path.read_bytes()
        h.update(mod.encode() + b"\0" + (source if legacy else code_digest(source, str(path)).encode()) + b"\0")
    if not files:
        h.update(name.encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------------- data
class FileHashes:
    """Content hashes of files, cached in a JSON file under (size, mtime_ns, inode) of each file."""

    def __init__(self, cache_file: Path | None):
        self.cache_file = cache_file
        self.entries: dict[str, list[Any]] = {}
        self.dirty = False
        if cache_file is not None and cache_file.is_file():
            try:
                self.entries = json.loads(cache_file.read_text())
            except ValueError:
                self.entries = {}

    def hash(self, path: Path) -> str:
        """sha1 of the file's content (``missing`` if it does not exist)."""
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            return "missing"
        key = [st.st_size, st.st_mtime_ns, st.st_ino]
        hit = self.entries.get(real)
        if hit is not None and hit[:3] == key:
            return hit[3]
        h = hashlib.sha1()
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self.entries[real] = [*key, h.hexdigest()]
        self.dirty = True
        return h.hexdigest()

    def save(self) -> None:
        if self.cache_file is not None and self.dirty:
            try:
                atomic_write_json(self.cache_file, self.entries)
            except OSError:  # a read-only work dir: the hashes are recomputed next time
                pass
            self.dirty = False


def files_digest(files: Iterable[tuple[str, Path]], hashes: FileHashes) -> str:
    """One digest of ``(name, file)`` pairs by content; names are relative, so the root's spelling does not count."""
    h = hashlib.sha1()
    for name, path in sorted(files):
        h.update(f"{name}\0{hashes.hash(path)}\n".encode())
    return h.hexdigest()[:16]


def split_files(dataset_cfg: Mapping[str, Any], split: str) -> list[tuple[str, Path]]:
    """The files one split consists of, as (path relative to the root, path): asked of the data hooks the stage
    package registered (pipeline.stage.set_data_hooks), so the engine and the reader never disagree."""
    from .stage import data_hooks

    return data_hooks().split_files(dataset_cfg, split)


def split_name(dataset_cfg: Mapping[str, Any], which: str) -> str:
    """A split named directly, or ``train`` / ``val`` meaning the dataset's ``train_split`` / ``val_split``."""
    from .stage import data_hooks

    return data_hooks().split_name(dataset_cfg, which)


def data_fingerprint(dataset_cfg: Mapping[str, Any], split: str, hashes: FileHashes) -> str:
    """The content digest of one split (``error: ...`` when the split cannot be read; the stage then fails)."""
    try:
        return files_digest(split_files(dataset_cfg, split), hashes)
    except (OSError, ValueError) as e:  # DatasetError is a ValueError
        return f"error: {e}"
