"""Errors the engine reports as the user's to fix (exit code 2, message only, no traceback)."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (config, data, missing files): the CLI prints it and exits with 2.

    Library errors of this kind subclass it, so the engine needs no knowledge of them."""


def user_message(e: BaseException) -> str:
    """The message to show for ``e``. An error raised in a DataLoader worker comes back re-raised by torch as
    "Caught X in DataLoader worker process 0. Original Traceback ...": the original message is its last line."""
    text = str(e).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        return rest if sep and head.rsplit(".", 1)[-1] == type(e).__name__ else last
    return text
