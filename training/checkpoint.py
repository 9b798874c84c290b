"""Run checkpoints: read them with a clear error for anything unreadable, and rebuild their network.

A checkpoint (``OUT/last.pt``, ``best.pt``, ``stage<k>.pt``, ``final.pt``) is a dict written by
:class:`training.gam.Trainer`: the run's configuration (``config``), its plan of GAM stages,
the position reached (``stage_index``, ``step``), the network's and optimizer's state. It holds
only tensors, numbers and strings, so it is read with ``weights_only=True`` (no code runs).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .binary import set_stage
from .errors import TrainingError
from .streamable import StreamNet
from .tasks import build_net

__all__ = ["read_checkpoint", "load_weights", "load_run", "finished", "describe_position"]

_KEYS = ("method", "steps", "plan", "stage_index", "step", "model", "net_config", "meta")


def read_checkpoint(path: Path) -> dict:
    """The state dict of a run checkpoint; ``TrainingError`` naming the file if it is not one."""
    path = Path(path)
    if path.is_dir():
        raise TrainingError(f"checkpoint {path} is a folder, not a file (a run's final.pt or last.pt)")
    if not path.exists():
        raise TrainingError(f"checkpoint {path} does not exist (train with python -m training.train)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainingError(f"checkpoint {str(path)!r} is not a gamir training run: it cannot be read "
                            f"(truncated or corrupt? {reason})") from None
    missing = [k for k in _KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise TrainingError(f"checkpoint {str(path)!r} is not a gamir training run (no {', '.join(missing)})")
    return state


def load_weights(net: torch.nn.Module, state: dict) -> None:
    """The checkpoint's weights into ``net``, and the noise gain its run measured at the end
    (kept beside the state dict: :attr:`training.streamable.StreamNet.noise_gain`)."""
    net.load_state_dict(state["model"])
    if state.get("noise_gain") is not None:
        net.noise_gain = torch.tensor(state["noise_gain"], dtype=torch.long)


def finished(state: dict) -> bool:
    """Whether the checkpoint's run went through every stage of its plan."""
    return state["stage_index"] >= len(state["plan"])


def describe_position(state: dict) -> str:
    """Where a checkpoint stands, for people: ``step 1200 of 15000 (stage 2 of 4, ...)``."""
    plan, idx, step = state["plan"], state["stage_index"], state["step"]
    done = sum(n for _, n in plan[:idx]) + step
    total = sum(n for _, n in plan)
    if idx >= len(plan):
        return f"finished ({total} steps)"
    where = f"step {done} of {total}"
    if state["method"] == "gam":
        where += f" (GAM stage {plan[idx][0]} of 4, its step {step} of {plan[idx][1]})"
    return where


def load_run(path: Path, task: str | None = None) -> tuple[StreamNet, dict]:
    """The network of a run checkpoint in eval mode, in its plan's last stage.

    ``task`` (when given) must be the run's task.
    """
    state = read_checkpoint(path)
    run_task = state["meta"].get("task")
    if task is not None and run_task != task:
        raise TrainingError(f"checkpoint {path} is a {run_task} run, not {task}")
    try:
        net = build_net(run_task, **dict(state["net_config"]))
        load_weights(net, state)
    except (ValueError, TypeError, RuntimeError) as e:
        raise TrainingError(f"checkpoint {path} does not fit this version's network: {e}") from None
    set_stage(net, state["plan"][-1][0])
    net.set_quant(state["method"] != "fp")
    net.eval()
    return net, state
