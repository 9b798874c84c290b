"""A run's metrics on disk: ``OUT/log.csv`` always, TensorBoard events in ``OUT/tb/`` when installed.

Both get the same rows: the global step, the GAM stage, the mean training loss since the
previous row, the learning rate, the validation PSNR where it was measured (empty elsewhere),
seconds per step and the training time so far. A resumed run drops the rows (and events) past
the step it resumes from, so the files always describe one run from step 1.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["COLUMNS", "RunLog"]

COLUMNS = ("step", "stage", "loss", "lr", "val_psnr", "sec_per_step", "elapsed_s")
# TensorBoard tags of the numeric columns.
_TAGS = {"loss": "train/loss", "lr": "train/lr", "val_psnr": "val/psnr_db",
         "sec_per_step": "time/sec_per_step"}


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


class RunLog:
    """Append metric rows to ``out/log.csv`` (and TensorBoard); ``start_step`` > 0 on resume."""

    def __init__(self, out: Path, start_step: int = 0, tensorboard: bool = True):
        self.path = Path(out) / "log.csv"
        kept = []
        if start_step and self.path.exists():
            with self.path.open(newline="") as f:
                kept = [r for r in csv.DictReader(f) if r.get("step", "").isdigit()
                        and int(r["step"]) <= start_step]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", newline="")
        self._csv = csv.DictWriter(self._file, COLUMNS, extrasaction="ignore")
        self._csv.writeheader()
        self._csv.writerows(kept)
        self._file.flush()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # the `train` extra is not installed
                return
            self.tb = SummaryWriter(str(Path(out) / "tb"), purge_step=start_step + 1 if start_step else None)

    def write(self, **row) -> None:
        self._csv.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
        self._file.flush()
        if self.tb is not None:
            for k, tag in _TAGS.items():
                v = row.get(k)
                if v is not None and not (isinstance(v, float) and math.isnan(v)):
                    self.tb.add_scalar(tag, v, row["step"])
            self.tb.flush()

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()
