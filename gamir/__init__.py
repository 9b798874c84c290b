"""gamir's command-line layer: one convention for every entry point, and the ``gamir`` command.

Dependency-free (standard library only), so ``spec``, ``hw``, ``sim``, ``host`` and
``training`` may all import it without breaking the import rules. ``gamir.cli`` holds the
convention; ``python -m gamir`` (the ``gamir`` console command) dispatches to the
``python -m`` entry points, which stay.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["models_dir"]


def models_dir() -> Path:
    """The shipped models, ``gamir/models``: in a checkout (and an editable install) a link to
    ``models/``, in a wheel its package data."""
    return Path(__file__).resolve().parent / "models"
