"""Binarization primitives of GAM (Wang et al., ACML 2023) and ``binarize`` for any IR network.

Quantizers are named by behaviour and each has a functional twin:

* :class:`SteSign` / :func:`ste_sign`: forward ``sign(x)`` (``x < 0 -> -1``, else ``+1``, the
  spec's sign: zero maps to +1); backward the straight-through estimate ``grad * (|x| <= 1)``.
  For weights that is the clip STE (gradient of ``clip(w, -1, 1)``), for activations the
  ``|x| <= 1`` STE of the paper: the same formula.
* :class:`SoftSign` / :func:`soft_sign`: ``SB(x) = tanh(10 x)``, GAM stage 3's soft binary.

:class:`BinaryConv2d` keeps ``nn.Conv2d``'s arguments and adds ``weight_quant`` and
``input_quant``; with ``weight_quant="fp"`` and ``input_quant="identity"`` it equals the float
layer. There are no scaling factors: the norm after each binary conv absorbs them.
"""

from __future__ import annotations

import operator

import torch
from torch import nn

__all__ = [
    "STAGES",
    "SteSign",
    "ste_sign",
    "SoftSign",
    "soft_sign",
    "stage_quant",
    "BinaryConv2d",
    "binarize",
    "set_stage",
    "conv_macs",
]

#: GAM stage -> (weight quantizer, activation quantizer). Stage 1 is full precision with tanh
#: activations; 2 binarizes weights; 3 makes activations nearly binary with SB; 4 is the BNN.
STAGES = {1: ("fp", "tanh"), 2: ("sign", "tanh"), 3: ("sign", "soft"), 4: ("sign", "sign")}


class SteSign(torch.autograd.Function):
    """``sign`` with the clip straight-through gradient (Courbariaux et al. 2016; GAM stage 4)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    """Functional twin of :class:`SteSign`."""
    return SteSign.apply(x)


class SoftSign(nn.Module):
    """The soft binary ``SB(x) = tanh(10 x)`` of GAM stage 3."""

    def forward(self, x):
        return soft_sign(x)


def soft_sign(x: torch.Tensor) -> torch.Tensor:
    """Functional twin of :class:`SoftSign`."""
    return torch.tanh(10 * x)


def stage_quant(kind: str, x: torch.Tensor) -> torch.Tensor:
    """Apply the quantizer named ``kind`` (fp/identity, tanh, soft, sign)."""
    if kind in ("fp", "identity"):
        return x
    if kind == "tanh":
        return torch.tanh(x)
    if kind == "soft":
        return soft_sign(x)
    if kind == "sign":
        return ste_sign(x)
    raise ValueError(f"quantizer {kind!r} must be one of fp, identity, tanh, soft, sign")


class BinaryConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weights and inputs pass through GAM quantizers.

    Parameters
    ----------
    weight_quant : str
        ``"fp"`` (float weights) or ``"sign"`` (binary, clip STE).
    input_quant : str
        ``"identity"``, ``"tanh"``, ``"soft"`` (SB) or ``"sign"`` (binary, ``|x| <= 1`` STE).
    The other arguments are ``nn.Conv2d``'s; ``padding_mode="replicate"`` is the spec's border.
    """

    def __init__(self, *args, weight_quant: str = "sign", input_quant: str = "sign", **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_quant = weight_quant
        self.input_quant = input_quant

    def forward(self, x):
        w = stage_quant(self.weight_quant, self.weight)
        return self._conv_forward(stage_quant(self.input_quant, x), w, self.bias)


def set_stage(model: nn.Module, stage: int) -> None:
    """Switch every :class:`BinaryConv2d` of ``model`` to GAM stage 1..4."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r} must be 1, 2, 3 or 4")
    wq, aq = STAGES[stage]
    for m in model.modules():
        if isinstance(m, BinaryConv2d):
            m.weight_quant, m.input_quant = wq, aq


class _Shortcut(nn.Module):
    """``x + body(x)``: the close-loop shortcut added around a shape-preserving binary conv."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU)


def _has_shortcut(model: nn.Module) -> bool:
    """True where the traced graph adds two tensors (some shortcut already exists)."""
    import inspect

    # Extra forward arguments (a noise level, say) are traced at their defaults.
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    concrete = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    try:
        graph = torch.fx.symbolic_trace(model, concrete_args=concrete).graph
    except Exception:  # untraceable forward (data-dependent control flow): assume none
        return False
    adds = (operator.add, operator.iadd, torch.add)
    return any(
        (n.op == "call_function" and n.target in adds) or (n.op == "call_method" and n.target in ("add", "add_"))
        for n in graph.nodes
    )


def binarize(model: nn.Module, norm: str = "batch", shortcut: str | bool = "auto",
             stage: int = 1) -> nn.Module:
    """Convert an image-restoration network to its GAM binary form, in place.

    Every ``nn.Conv2d`` except the first and the last (in module order) becomes a
    :class:`BinaryConv2d` followed by a norm (``"batch"`` or ``"instance"``, affine); their
    ReLU-family activations become identities, because the binary conv's own input quantizer
    (tanh -> SB -> sign over the GAM stages) is the nonlinearity, and a ReLU before a sign
    would make every bit +1. Output activations (sigmoid, tanh) are kept.

    ``shortcut``: ``True`` wraps every shape-preserving binary conv + norm in an identity
    shortcut, ``False`` never, ``"auto"`` only where the network has no shortcut at all (the
    paper's "close loop": the binary body must not be the only path for the signal).
    :func:`training.complex.complexify` then makes the complex-valued variant (BCNN) of the
    binary network. Returns ``model`` set to ``stage``.
    """
    if norm not in ("batch", "instance"):
        raise ValueError(f"norm={norm!r} must be 'batch' or 'instance'")
    if shortcut == "auto":
        shortcut = not _has_shortcut(model)
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(convs) < 3:
        raise ValueError(f"binarize needs at least 3 convolutions (first and last stay full "
                         f"precision), the model has {len(convs)}")
    for name, conv in convs[1:-1]:
        bconv = BinaryConv2d(
            conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
            padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
            bias=False, padding_mode=conv.padding_mode)
        with torch.no_grad():
            bconv.weight.copy_(conv.weight)
        n = (nn.BatchNorm2d(conv.out_channels) if norm == "batch"
             else nn.InstanceNorm2d(conv.out_channels, affine=True))
        new: nn.Module = nn.Sequential(bconv, n)
        same = conv.in_channels == conv.out_channels and conv.stride in ((1, 1), 1)
        if shortcut and same:
            new = _Shortcut(new)
        replace_module(model, name, new)
    for name, m in list(model.named_modules()):
        if isinstance(m, _ACTIVATIONS):
            replace_module(model, name, nn.Identity())
    set_stage(model, stage)
    return model


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where ``model``'s submodule ``name`` (dotted) is."""
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def conv_macs(model: nn.Module, x: torch.Tensor, *args) -> tuple[int, int]:
    """(full-precision MACs, binary MACs) of one forward pass ``model(x, *args)``."""
    fp, binary = [0], [0]

    def hook(m, inp, out):
        macs = out.numel() // out.shape[0] * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        binary_now = isinstance(m, BinaryConv2d) and m.weight_quant == "sign" and m.input_quant == "sign"
        (binary if binary_now else fp)[0] += macs

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(x, *args)
    finally:
        for h in hooks:
            h.remove()
    return fp[0], binary[0]

