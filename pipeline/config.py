"""Config loading (mmengine ``Config`` with ``_base_`` and ``--cfg-options``) and config fingerprints."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.config import Config, ConfigDict, DictAction  # noqa: F401  (DictAction re-exported for CLIs


def load_config(path: str | Path, options: Mapping[str, Any] | None = None, hooks: bool = True) -> Config:
    """Load a config file and apply ``--cfg-options`` style overrides (dotted keys); then, with ``hooks``, its
    ``config_hooks`` (which may read the data, e.g. to resolve 'auto' values). The CLI validates the config
    between the two steps, so a bad key is reported before any data is read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    cfg = Config.fromfile(str(path))
    if options:
        cfg.merge_from_dict(dict(options))
    cfg.setdefault("experiment", path.stem)
    cfg.setdefault("work_dir", str(Path("workdirs") / cfg.experiment))
    if hooks:
        run_config_hooks(cfg)
    return cfg


def run_config_hooks(cfg: Config) -> None:
    """Call the config's ``config_hooks`` ('module:function', each given the config to complete in place),
    e.g. the resolution of ``'auto'`` values from the dataset (the engine knows no key of its own)."""
    import importlib

    for hook in cfg.get("config_hooks", None) or ():
        module, _, func = str(hook).partition(":")
        if not module or not func:
            raise ValueError(f"config_hooks entry {hook!r} must be 'module:function'")
        getattr(importlib.import_module(module), func)(cfg)


def plain(obj: Any) -> Any:
    """A JSON-able plain copy of a config value (ConfigDict -> dict, tuple -> list)."""
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def select(cfg: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The part of ``cfg`` named by top-level or dotted ``keys`` (missing keys map to None)."""
    out: dict[str, Any] = {}
    if hasattr(cfg, "to_dict"):  # an mmengine Config is not a Mapping
        cfg = cfg.to_dict()
    for key in keys:
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        out[key] = plain(node)
    return out


def digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(plain(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of nested dicts, for naming exactly which keys changed."""
    if isinstance(obj, Mapping) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    a, b = flatten(old), flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<unset>") != b.get(k, "<unset>"))
