"""Where log records go: the console (what a user needs) and each stage's ``stage.log`` (everything)."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_FMT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")


class ConsoleFilter(logging.Filter):
    """What the console shows: the runner's own lines (each stage's start, and its end with time, memory and
    key metrics), warnings and errors, and records a stage marks ``extra={"console": True}``. A stage's detail
    (tables, per-epoch lines, mmengine's log, a failure's traceback: ``extra={"file_only": True}``) goes to its
    ``stage.log`` only. ``WSSS_VERBOSE=1``: everything."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False) and os.environ.get("WSSS_VERBOSE") != "1":
            return False
        return (record.levelno >= logging.WARNING or record.name == "wsss" or getattr(record, "console", False)
                or os.environ.get("WSSS_VERBOSE") == "1")


def setup_console_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("wsss")
    if not any(getattr(h, "_wsss_console", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(_FMT)
        h.addFilter(ConsoleFilter())
        h._wsss_console = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    root.propagate = False


class _StageLogFile:
    """Sends everything logged under ``wsss`` to ``<stage>/stage.log`` while a stage runs."""

    def __init__(self, path: Path):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(_FMT)

    def __enter__(self) -> None:
        logging.getLogger("wsss").addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("wsss").removeHandler(self.handler)
        self.handler.close()
