"""One cost counter for full-precision, binary and complex-binary networks: FLOPs, binary ops, size.

Convention (the same as docs/training.md's tables):

* Only convolutions are counted, once per call (a recursively applied block counts each time).
  A conv's multiply-accumulates (MACs) are ``output elements x in_channels / groups x kh x kw``;
  bias additions, norms, activations, shortcuts, pixel (un)shuffles and Zero-DCE++'s curve
  iterations are not counted (norm + sign folds into a threshold, norm + shortcut into an
  affine at inference).
* ``flops`` = 2 x the MACs of full-precision convs; ``binary_ops`` = 2 x the XNOR-popcount MACs
  of binary convs (:class:`~training.binary.BinaryConv2d` in any GAM stage: the count is the
  deployed network's). A complex binary conv is four real binary convs (``Re = Wr*xr - Wi*xi``,
  ``Im = Wi*xr + Wr*xi``).
* ``size_bits`` = 32 bits per full-precision parameter (norms included) + 1 bit per binary
  weight.

Counting runs the network on torch's ``meta`` device (shapes only, no arithmetic), so full-size
inputs cost nothing. ``python -m training.cost`` prints the table of the paper's four networks
at the input sizes of :data:`PAPER_SIZES` and the reconciliation with the paper's FFDNet counts
(docs/paper.md).
"""

from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import dataclass, field

import torch
from torch import nn

from .binary import BinaryConv2d, binarize
from .complex import complexify

__all__ = ["Cost", "count", "build", "NETWORKS", "PAPER_SIZES", "table", "main"]


@dataclass
class Cost:
    """Counts of one forward pass (see the module docstring for the convention)."""

    fp_macs: int = 0
    binary_macs: int = 0
    fp_params: int = 0
    binary_params: int = 0
    layers: list[tuple[str, str, int]] = field(default_factory=list)  # (name, fp|binary, MACs)

    @property
    def flops(self) -> int:
        return 2 * self.fp_macs

    @property
    def binary_ops(self) -> int:
        return 2 * self.binary_macs

    @property
    def params(self) -> int:
        return self.fp_params + self.binary_params

    @property
    def size_bits(self) -> int:
        return 32 * self.fp_params + self.binary_params


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> int:
    per_output = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
    return out[0].numel() * per_output  # one image


def count(model: nn.Module, x: torch.Tensor, *args) -> Cost:
    """The :class:`Cost` of ``model(x, *args)`` for one image (``x`` of batch 1, any device).

    The model is copied to the ``meta`` device in eval mode; ``model`` itself is untouched.
    """
    if x.shape[0] != 1:
        raise ValueError(f"count needs one image, got a batch of {x.shape[0]}")
    meta = copy.deepcopy(model).to("meta").eval()
    cost = Cost()
    names = {m: n for n, m in meta.named_modules()}

    def hook(m, inp, out):
        macs = _conv_macs(m, out)
        if isinstance(m, BinaryConv2d):
            macs *= 4 if hasattr(m, "weight_imag") else 1  # complex: four real convs
            cost.binary_macs += macs
            cost.layers.append((names[m], "binary", macs))
        else:
            cost.fp_macs += macs
            cost.layers.append((names[m], "fp", macs))

    hooks = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        meta(x.to("meta"), *(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args))
    for h in hooks:
        h.remove()
    binary_weights = {id(p) for m in meta.modules() if isinstance(m, BinaryConv2d)
                      for p in (m.weight, getattr(m, "weight_imag", None)) if p is not None}
    for p in meta.parameters():
        if id(p) in binary_weights:
            cost.binary_params += p.numel()
        else:
            cost.fp_params += p.numel()
    return cost


def _nets():
    from .paper_nets import FFDNetRes, PRNr, SRResNet, ZeroDCEpp

    return {"zerodce": ZeroDCEpp, "prnr": PRNr, "srresnet": SRResNet, "ffdnet": FFDNetRes}


#: network name -> (task, norm of its binary convs). PRN_r uses instance norm, as the paper.
NETWORKS = {"zerodce": ("lowlight", "batch"), "prnr": ("derain", "instance"),
            "srresnet": ("sr", "batch"), "ffdnet": ("denoise", "batch")}

#: network name -> (input H, W, where the size comes from). The paper's own sizes are not in
#: the text available here except FFDNet's (reconciled in docs/paper.md); the others are the
#: usual test images of its datasets.
PAPER_SIZES = {
    "zerodce": (900, 1200, "SICE Part2 at 1200x900, as Zero-DCE++ reports its cost (scale 1)"),
    "prnr": (321, 481, "Rain100H/L images, 481x321"),
    "srresnet": (180, 320, "x4 to a 1280x720 output, the usual SR cost size"),
    "ffdnet": (512, 512, "512x512, the size at which the paper's FFDNet counts are matched"),
}


def build(name: str, form: str = "fp", **kwargs) -> nn.Module:
    """Network ``name`` of :data:`NETWORKS` in ``form`` fp, binary or complex (BCNN); stage 4."""
    if name not in NETWORKS:
        raise ValueError(f"network={name!r} must be one of {', '.join(NETWORKS)}")
    if form not in ("fp", "binary", "complex"):
        raise ValueError(f"form={form!r} must be fp, binary or complex")
    net = _nets()[name](**kwargs)
    if form != "fp":
        binarize(net, norm=NETWORKS[name][1], stage=4)
        if form == "complex":
            complexify(net)
    return net


def _g(n: float) -> str:
    return f"{n / 1e9:.2f}"


def table(rows: list[tuple[str, str, tuple[int, int], Cost]]) -> str:
    """Markdown table of (network, form, (H, W), cost) rows; G = 10^9, MB = 2^20 bytes."""
    lines = ["| network | form | input | FLOPs (G) | binary ops (G) | params | size (MB) | FLOPs vs FP |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    fp = {}
    for name, form, (h, w), c in rows:
        fp.setdefault(name, c.flops)
        lines.append(f"| {name} | {form} | {w}x{h} | {_g(c.flops)} | {_g(c.binary_ops)} | "
                     f"{c.params:,} | {c.size_bits / 8 / 2**20:.3f} | {100 * c.flops / fp[name]:.1f} % |")
    return "\n".join(lines)


def paper_ffdnet() -> str:
    """The paper's FFDNet counts beside this counter's, in the paper's apparent convention."""
    h, w = 512, 512
    x = torch.empty(1, 3, h, w)
    fp = count(build("ffdnet", "fp", noise_channels=3), x, 25.0)
    b = count(build("ffdnet", "binary", noise_channels=3), x, 25.0)
    gib = 2**30
    return "\n".join([
        "| FFDNet colour (15 inputs), 512x512, G = 2^30 | paper | this counter |",
        "| --- | --- | --- |",
        f"| full precision: FLOPs | 104.27 | {fp.flops / gib:.2f} |",
        f"| binary: FLOPs | 2.84 | {b.flops / gib:.2f} |",
        f"| binary: binary ops | 101.25 | {b.binary_ops / gib:.2f} |",
        f"| binary FLOPs / FP FLOPs | 2.72 % | {100 * b.flops / fp.flops:.2f} % |",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cost", description=__doc__.splitlines()[0])
    p.add_argument("--network", choices=sorted(NETWORKS), action="append",
                   help="count only these (default: all four)")
    p.add_argument("--layers", action="store_true", help="also list every conv's MACs")
    a = p.parse_args(argv)
    rows = []
    for name in a.network or list(NETWORKS):
        h, w, _ = PAPER_SIZES[name]
        for form in ("fp", "binary", "complex"):
            c = count(build(name, form), torch.empty(1, 3, h, w), 25.0)
            rows.append((name, form, (h, w), c))
            if a.layers:
                for layer, kind, macs in c.layers:
                    print(f"{name} {form} {layer} {kind} {macs:,}")
    print(table(rows))
    print()
    print(paper_ffdnet())
    return 0


if __name__ == "__main__":
    sys.exit(main())
