"""The one exception type the command line turns into a one-line message (no traceback)."""

from __future__ import annotations

__all__ = ["HostError"]


class HostError(RuntimeError):
    """Something the user can fix: the message says what is wrong and what to do instead."""
