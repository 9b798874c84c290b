"""A float32 torch implementation of a spec model's layers: the speed baseline.

The same convolutions, replicate borders, sign activations, folded norms, the affine stage's
activation, residual adds and clamps as the spec, computed the way a torch user would run the network (float32 conv2d,
NCHW). It is a speed yardstick, not bit-exact: float rounding differs from the spec's integers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import spec

__all__ = ["TorchFloatModel"]


class TorchFloatModel(torch.nn.Module):
    """Runs ``model`` on an NCHW float32 tensor of tensor-0 values."""

    def __init__(self, model: spec.Model):
        super().__init__()
        self.model = model
        self.types = model.tensor_types()
        self.weights = []
        for layer in model.layers:
            w = layer.weights.astype(np.float32)
            if layer.conv.reads_signs:  # 0/1 weights are -1/+1
                w = w * 2 - 1
            self.weights.append(torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2))))

    def _stage(self, layer, acc, tensors):
        c = lambda a: torch.from_numpy(np.asarray(a, np.float32)).view(1, -1, 1, 1)  # noqa: E731
        st = layer.stage
        if isinstance(st, spec.Threshold):
            t = c(st.threshold)
            return torch.where(c(st.flip) > 0, acc <= t, acc >= t).float() * 2 - 1
        a, b = st.applied()
        y = torch.floor((acc * c(a) + c(b)) / 2.0**st.shift + 0.5)
        if isinstance(st, spec.Affine):
            if st.act is not None:  # PReLU with slopes 2**-k, then the offset
                y = torch.where(y < 0, torch.floor(y * c(2.0 ** -st.act_shift) + 0.5), y)
                y = y + c(st.act_offset)
            if st.residual is not None:
                y = y + tensors[st.residual]
            lo, hi = spec.arith.signed_range(st.out_bits)
            return y.clamp(lo, hi)
        used = [(k, int(s)) for k, s in enumerate(st.residual_map) if s >= 0]
        if used:
            idx = torch.tensor([k for k, _ in used])
            y[:, idx] += tensors[0][:, [s for _, s in used]]
        return y.clamp(0, 255)

    @torch.no_grad()
    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        tensors = [x0]
        for i, (layer, w) in enumerate(zip(self.model.layers, self.weights), 1):
            x = tensors[-1]
            if layer.conv.reads_signs and self.types[i - 1].kind == "fixed":
                x = torch.where(x >= 0, 1.0, -1.0)
            if layer.kernel == 3:
                x = F.pad(x, (1, 1, 1, 1), mode="replicate")
            acc = F.conv2d(x, w, groups=layer.groups)
            if layer.conv.reads_signs:
                acc = (acc + layer.taps) / 2  # popcount from the +/-1 dot product
            tensors.append(self._stage(layer, acc, tensors))
        return tensors[-1]
