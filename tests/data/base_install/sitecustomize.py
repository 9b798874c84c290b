"""The base install in a full environment: imports of anything but the standard library, gamir's
own packages and ``GAMIR_BASE_MODULES`` (the wheel's requirements) fail as if not installed.

On ``PYTHONPATH`` first, Python imports it at start-up (tests/test_packaging.py): it lets the
base install's every entry point be run in milliseconds, with no second environment to make.
"""

import importlib.abc
import os
import sys

_ALLOWED = (set(sys.stdlib_module_names) | set(os.environ["GAMIR_BASE_MODULES"].split(","))
            | {"gamir", "spec", "accel", "hw", "host", "sim", "training", "bench"})


class _BaseInstall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in _ALLOWED and not top.startswith("_sysconfigdata"):  # the stdlib's own
            raise ModuleNotFoundError(f"No module named {name!r} (base install)", name=name)
        return None  # the usual finders go on


sys.meta_path.insert(0, _BaseInstall())
