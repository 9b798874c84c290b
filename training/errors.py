"""The training CLIs' error type, under the project's CLI convention (:mod:`gamir.cli`)."""

from __future__ import annotations

from gamir.cli import CliError

__all__ = ["TrainingError", "SettingsError"]


class TrainingError(CliError):
    """Something the user can fix: the message names the input and what is wrong with it."""


class SettingsError(TrainingError):
    """A setting (a flag or a config file's key) has a value it cannot take: a usage error."""
