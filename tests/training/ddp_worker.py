"""One rank of the torchrun resume test (tests/training/test_gam.py), started by torchrun.

``python ddp_worker.py OUT``: trains a tiny GAM denoiser for 8 steps three times, each with a
fresh network, sampler and trainer, so that only the checkpoint on disk carries a run on:
``OUT/whole`` uninterrupted; ``OUT/cut`` cut off when it asks for its 6th batch (as a crash
would cut it, after the checkpoint of step 5); then ``OUT/cut`` again, resuming. Writes
``OUT/rank<r>.json``: per run, a digest of every batch this rank drew and of its final weights.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from skimage import data

from training.data import PatchSampler
from training.gam import Trainer
from training.streamable import StreamNet


class _Stop(Exception):
    pass


def digest(t: torch.Tensor) -> str:
    return hashlib.sha1(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


class Recording(PatchSampler):
    def __init__(self, *args, stop_after: int, **kw):
        super().__init__(*args, **kw)
        self.drawn, self.stop_after = [], stop_after

    def __call__(self):
        if self.stop_after and len(self.drawn) == self.stop_after:
            raise _Stop
        batch = super().__call__()
        self.drawn.append(digest(batch[0]))
        return batch


def train(out: Path, rank: int, stop_after: int) -> dict:
    torch.manual_seed(0)
    net = StreamNet(width=8, blocks=2, unshuffle=2, shuffle=2, noise_channel=True)
    img = data.astronaut()
    sampler = Recording([img[:96, :96].copy(), img[200:296, 200:296].copy()], "denoise", 16, 2,
                        seed=rank, sigma_range=(15, 35), stop_after=stop_after)
    trainer = Trainer(net, sampler, [], out, "gam", 8, fracs=(0.25, 0.25, 0.25, 0.25),
                      log_every=100, ckpt_every=1 if stop_after else 100, bn_batches=0,
                      gain_batches=0)
    try:
        trainer.run()
    except _Stop:
        pass
    return {"batches": sampler.drawn, "weights": {k: digest(v) for k, v in net.state_dict().items()}}


def main() -> None:
    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    torch.set_num_threads(1)
    runs = {"whole": train(out / "whole", rank, 0), "cut": train(out / "cut", rank, 5),
            "resumed": train(out / "cut", rank, 0)}
    (out / f"rank{rank}.json").write_text(json.dumps(runs))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
