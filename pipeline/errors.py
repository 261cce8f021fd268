"""Errors the engine reports as the user's to fix (exit code 2, message only, no traceback)."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, data, missing files): the CLI prints it and exits with 2.

    Library errors of this kind subclass it, so the engine needs no knowledge of them."""
