"""A training run's settings: one TOML file, command-line overrides, checks, and what may change.

A run is described by a flat TOML table whose keys are ``python -m training.train``'s flags
(``log_every`` for ``--log-every``) and a ``[net]`` table of the streamable network's
settings (``width``, ``blocks``, ``w_bits``, ...; the task's preset fills the rest)::

    task = "denoise"
    method = "gam"
    steps = 15000
    batch = 32
    data = "data/photos"

    [net]
    width = 32

:func:`resolve` fills every default, checks every value and returns the whole configuration
(the full network included), which the trainer writes to ``OUT/config.toml`` and into every
checkpoint. A run can be continued with other values only for the budget (``steps``) and the
settings that do not change what is trained (:data:`RUNTIME`: logging, validation and
checkpoint intervals, threads, device, precision, compile); :func:`differences` names anything
else that differs. A budget given in ``minutes`` leaves ``steps`` unset (None) here: the trainer
sizes it by a calibration and stores both, so a continued run keeps the schedule.
"""

from __future__ import annotations

import inspect
import math
import tomllib
from pathlib import Path

import torch

from .errors import SettingsError, TrainingError
from .gam import METHODS, PRECISIONS, plan
from .streamable import StreamNet
from .tasks import TASKS

__all__ = ["DEFAULTS", "BUDGET", "RUNTIME", "NET_KEYS", "read_toml", "resolve", "net_settings",
           "to_toml", "differences", "legacy_config"]

#: Every setting with its default; ``None`` for the ones without (``task``, ``data``: required;
#: ``patch``, ``sigma``: the task's; ``minutes``: a budget in time instead of steps).
DEFAULTS = {
    "task": None, "method": "gam", "steps": 15000, "minutes": None, "fracs": [0.3, 0.15, 0.15, 0.4],
    "data": None, "sigma": None, "batch": 32, "patch": None, "lr": 1e-3, "seed": 0, "bn_batches": 100,
    "out": None, "log_every": 50, "val_every": 500, "ckpt_every": 200, "val_crop": 0,
    "threads": 1, "device": "cpu", "precision": "auto", "compile": False, "net": {},
}
#: The budget: may change when a run is continued, where the stages already trained keep their
#: lengths (see :func:`training.gam.resume_position`).
BUDGET = ("steps", "minutes")
#: Settings that do not change the trained network; free to change when a run is continued.
RUNTIME = ("out", "log_every", "val_every", "ckpt_every", "val_crop", "threads", "device",
           "precision", "compile")
#: The network's settings (StreamNet's constructor arguments but ``quant``, which the method sets).
_NET_DEFAULTS = {k: p.default for k, p in inspect.signature(StreamNet.__init__).parameters.items()
                 if k not in ("self", "quant")}
NET_KEYS = tuple(_NET_DEFAULTS)

# At least 1 (the rest of the integer settings may be 0).
_POSITIVE = ("steps", "batch", "log_every", "val_every", "ckpt_every", "threads")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def read_toml(path: Path) -> dict:
    """The settings of a TOML config file, unknown keys refused."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TrainingError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TrainingError(f"config file {path} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise TrainingError(f"config file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"config file {path}: unknown setting(s) {', '.join(unknown)} "
                            f"(known: {', '.join(DEFAULTS)})")
    if not isinstance(raw.get("net", {}), dict):
        raise TrainingError(f"config file {path}: net must be a table ([net])")
    return raw


def _int(key: str, v, least: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise SettingsError(f"{_flag(key)} {v!r}: must be a whole number")
    if v < least:
        raise SettingsError(f"{_flag(key)} {v}: must be at least {least}")
    return v


def net_settings(task: str, overrides: dict) -> dict:
    """The whole network of ``task``'s preset with ``overrides`` (checked: ``SettingsError``)."""
    unknown = sorted(set(overrides) - set(NET_KEYS))
    if unknown:
        raise SettingsError(f"net: unknown setting(s) {', '.join(unknown)} (known: {', '.join(NET_KEYS)})")
    preset = TASKS[task]["net"]
    overrides = dict(overrides)
    # Tasks that shuffle back by their unshuffle factor follow a changed unshuffle.
    if "unshuffle" in overrides and "shuffle" not in overrides and preset["shuffle"] == preset["unshuffle"]:
        overrides["shuffle"] = overrides["unshuffle"]
    for k, v in overrides.items():
        default = _NET_DEFAULTS[k]
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise SettingsError(f"net.{k} {v!r}: must be true or false")
        elif isinstance(default, int):
            _int(k, v, 0 if k in ("frac_bits", "head_mid", "tail_mid") else 1)
    try:
        net = StreamNet(**dict(preset, **overrides))
    except (ValueError, TypeError) as e:
        raise SettingsError(f"net: {e}") from None
    return {k: net.config[k] for k in NET_KEYS if k in net.config}


def _sigma(task: str, sigma) -> list[int]:
    """The noise levels trained on, ``[lo, hi]`` (the task's when not given; 0..0 but denoise)."""
    default = list(TASKS[task]["sigma_range"])
    if sigma is None:
        return default
    if (not isinstance(sigma, (list, tuple)) or len(sigma) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in sigma)):
        raise SettingsError(f"--sigma {sigma!r}: must be two whole numbers LO HI")
    lo, hi = sigma
    if task != "denoise" and (lo, hi) != (0, 0):
        raise SettingsError(f"--sigma {lo} {hi}: only the denoise task takes a noise level")
    if not 0 <= lo <= hi <= 255:
        raise SettingsError(f"--sigma {lo} {hi}: must satisfy 0 <= LO <= HI <= 255")
    return [lo, hi]


def resolve(raw: dict) -> dict:
    """The whole configuration: defaults filled in, every value checked (``TrainingError``)."""
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}")
    cfg = dict(DEFAULTS, **{k: v for k, v in raw.items() if v is not None})
    minutes = cfg.pop("minutes")  # kept only when given, as config.toml keeps it
    if minutes is not None:
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < math.inf:
            raise SettingsError(f"--minutes {minutes!r}: must be a positive number")
        cfg["minutes"] = float(minutes)
        if raw.get("steps") is None:
            cfg["steps"] = None  # sized by the trainer's calibration
    for key in ("task", "data"):
        if cfg[key] is None:
            raise SettingsError(f"{_flag(key)} is required (on the command line or in --config)")
    if cfg["task"] not in TASKS:
        raise SettingsError(f"--task {cfg['task']!r}: must be one of {', '.join(sorted(TASKS))}")
    if cfg["method"] not in METHODS:
        raise SettingsError(f"--method {cfg['method']!r}: must be one of {', '.join(METHODS)}")
    for key in _POSITIVE:
        if cfg[key] is not None or key != "steps":
            _int(key, cfg[key], 1)
    for key in ("seed", "bn_batches", "val_crop"):
        _int(key, cfg[key], 0)
    lr = cfg["lr"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise SettingsError(f"--lr {lr!r}: must be a positive number")
    cfg["lr"] = float(lr)
    fracs = cfg["fracs"]
    if (not isinstance(fracs, (list, tuple)) or len(fracs) != 4
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in fracs)):
        raise SettingsError(f"--fracs {fracs!r}: must be four numbers (stage lengths as fractions)")
    cfg["fracs"] = [float(f) for f in fracs]
    try:
        plan(cfg["method"], cfg["steps"] or 1, tuple(cfg["fracs"]))
    except ValueError as e:
        raise SettingsError(f"--fracs {' '.join(f'{f:g}' for f in fracs)}: {e}") from None
    cfg["net"] = net_settings(cfg["task"], cfg["net"] or {})
    t = TASKS[cfg["task"]]
    patch = t["patch"] if cfg["patch"] is None else _int("patch", cfg["patch"], 1)
    m = t["scale"] * cfg["net"]["unshuffle"]
    if patch % m:
        raise SettingsError(f"--patch {patch}: must be a multiple of {m} (the task's scale x unshuffle)")
    cfg["patch"] = patch
    cfg["sigma"] = _sigma(cfg["task"], cfg["sigma"])
    device = str(cfg["device"])
    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise SettingsError(f"--device {device!r}: must be cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise SettingsError(f"--device {device}: this torch sees no CUDA device")
    if cfg["precision"] not in PRECISIONS:
        raise SettingsError(f"--precision {cfg['precision']!r}: must be one of {', '.join(PRECISIONS)}")
    if cfg["precision"] in ("tf32", "bf16") and kind != "cuda":
        raise SettingsError(f"--precision {cfg['precision']}: only on a CUDA device (--device cuda)")
    if not isinstance(cfg["compile"], bool):
        raise SettingsError(f"compile {cfg['compile']!r}: must be true or false")
    if cfg["compile"] and kind != "cuda":
        raise SettingsError("--compile: only on a CUDA device (on the CPU, torch 2.13's inductor "
                            "fails on the replicate-padded convolutions' backward)")
    cfg["data"] = str(Path(cfg["data"]).resolve())
    if cfg["out"] is not None:
        cfg["out"] = str(cfg["out"])
    return cfg


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_toml(cfg: dict, header: str = "") -> str:
    """A TOML file of a resolved configuration (read back by :func:`read_toml`)."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{k} = {_toml_value(v)}" for k, v in cfg.items() if k != "net" and v is not None]
    lines += ["", "[net]"] + [f"{k} = {_toml_value(v)}" for k, v in cfg["net"].items()]
    return "\n".join(lines) + "\n"


def differences(stored: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every setting that may not change when a run is continued.

    Keys absent from either side (a checkpoint written before a setting existed) are skipped.
    """
    out = []
    for k in DEFAULTS:
        if k in BUDGET or k in RUNTIME or k == "net" or k not in stored or k not in new:
            continue
        if stored[k] != new[k]:
            out.append(f"{k}: {stored[k]!r} -> {new[k]!r}")
    old_net, new_net = stored.get("net", {}), new.get("net", {})
    for k in NET_KEYS:
        if k in old_net and k in new_net and old_net[k] != new_net[k]:
            out.append(f"net.{k}: {old_net[k]!r} -> {new_net[k]!r}")
    return out


def legacy_config(state: dict) -> dict:
    """What a checkpoint written before run configs existed says about its settings."""
    meta = state.get("meta", {})
    cfg = {k: meta[k] for k in ("task", "batch", "patch", "lr", "seed") if k in meta}
    if "data" in meta:
        cfg["data"] = str(Path(meta["data"]).resolve())
    cfg.update(method=state["method"], steps=state["steps"])
    cfg["net"] = {k: v for k, v in state.get("net_config", {}).items() if k in NET_KEYS}
    return cfg
