"""The native runtime: the spec's integers from a compiled kernel, all layers fused per row.

Same output as :mod:`spec.reference`, bit for bit (tests/spec/test_native.py), at video rate
on a CPU. The C kernel (``spec/_native/kernel.c``) streams the frame the way the accelerator
does: each tensor lives in a ring of a few rows, so memory is a few rows per layer and the
working set stays in cache. Frames are cut into horizontal strips (one per thread, each with
its halo of ``radius`` rows recomputed) that run in parallel; ctypes releases the GIL.

Why C through ctypes: a small plain-C file compiles with any C compiler on x86-64 and aarch64
(PYNQ's ARM), needs no Python headers, no numpy C API and no heavy JIT dependency (numba's
LLVM would double the board image's install and compiles on every start), and keeps the hot
loops' vector instructions (AVX-512's vpermb sextet tables, AVX2's vpshufb nibble tables and
vpmaddwd, NEON's tbl) explicit.
``setup.py`` builds it at install (optional: without a compiler the install still works); a
source checkout without that build compiles it on first use into ``$GAMIR_CACHE`` (default
``~/.cache/gamir``). Where neither works, :func:`available` is False, :func:`why_unavailable`
says why, and callers use the numpy path (:mod:`spec.fast`). ``GAMIR_NATIVE=0`` turns the
native path off; ``GAMIR_NATIVE=generic`` (or ``avx512``, ``avx2``, ``neon``) picks a build.

Arithmetic (every constant prepared here in exact Python integers and checked to fit):

- binary conv: ``m`` = window bits differing from the weights, counted per group of bits
  through tables: 4-channel nibbles (16 entries), or with ``sextets`` (the avx512 build) 6 bits
  (64 entries: 2 channels at a 3x3 window row's 3 columns, or 6 channels of a 1x1 conv's
  pixel); ``acc = N - m``.
- threshold on a binary conv: ``bit = (m <= N - T') ^ flip`` with ``T' = T + flip``.
- affine on a binary conv, in int32: ``acc*A + B + round = m*A' + B'`` with ``A' = -A``;
  ``B' = q * 2**s + b`` (``0 <= b < 2**s``), so ``y = q + ((m*A' + b) >> s)``, where
  ``|m*A' + b| < 2**31`` is checked (``N <= 9216``, ``|A| < 2**17``: it fails only for
  shifts near 30 with huge scales, and such a model runs on the numpy path). Where the
  output saturates whatever ``m`` and the residual are, ``q`` is clamped so every sum stays
  inside int32 (it saturates the same way; :func:`_clamp_q`).
- fixed conv: int16 values times int16 weights summed in int32 (only models whose
  ``sum|w| * max|x|`` fits are accepted; a depthwise layer's ``k*k`` products per channel
  the same way); the affine in float64, exact because
  ``|acc*A + B| < 2**53``: ``floor((acc*A + B + round) * 2**-s)``.
- the affine activation (``act``, :func:`spec.arith.prelu_shift`) on the rounded ``y``:
  ``(y + 2**(k-1)) >> k`` where ``y < 0`` (in float64 ``floor((y + 2**(k-1)) * 2**-k)``,
  exact for integers), then ``+ o``, before the residual. Channels without it run the same
  code with ``k = 0, o = 0``.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from . import arith, kinds
from ._native import build
from .model import Affine, Model, ModelError, PixelOutput, Threshold

__all__ = ["available", "why_unavailable", "describe", "supports", "NativeRunner", "run_output",
           "model_input", "model_output"]

#: The stages the kernel computes (a model with another stage runs on the numpy path).
_OUT = {Threshold: 0, Affine: 1, PixelOutput: 2}


class _NativeKind(NamedTuple):
    """How the kernel computes a layer kind: ``kernel.c``'s ``KIND_*`` code, and whether the
    conv reads its input as groups of sign bits (else as pairs of int16 values)."""

    code: int
    sign_bits: bool


#: The layer kinds the kernel computes (a model with another kind runs on the numpy path).
_KINDS = {kinds.Binary: _NativeKind(0, True), kinds.Fixed: _NativeKind(1, False),
          kinds.Depthwise: _NativeKind(2, False)}
#: A pixel layer's affine value is clamped to this before the global residual (0..255) is
#: added and the result clamped to 0..255: the same result, and the values stay small.
_PIXEL_PRE = (-256, 511)
_I32 = arith.signed_range(32)


class _Layer(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "kind", "kernel", "c_in", "c_out", "output", "residual", "shift", "out_lo", "out_hi",
        "n_in", "c_out_pad", "tab_bytes")] + [
        ("tables", ctypes.c_void_p), ("wpairs", ctypes.c_void_p), ("thr_m", ctypes.c_void_p),
        ("thr_acc", ctypes.c_void_p), ("flip", ctypes.c_void_p), ("a32", ctypes.c_void_p),
        ("q32", ctypes.c_void_p), ("b32", ctypes.c_void_p), ("fa", ctypes.c_void_p),
        ("fb", ctypes.c_void_p), ("rmap", ctypes.c_void_p), ("act_shift", ctypes.c_void_p),
        ("act_offset", ctypes.c_void_p)]


class _Tensor(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "channels", "radius_after", "cap_bits", "cap_pairs", "cap_plain", "grp_ch", "grp_cols")]


_ERRORS = {1: "out of memory", 2: "internal error: a ring buffer row was overwritten too early",
           3: "bad arguments"}

# ------------------------------------------------------------------------------ loading
_libs: dict[str, object] = {}  # variant -> loaded library, or the reason it is not there
_lock = threading.Lock()


def _cache_dir() -> Path:
    return Path(os.environ.get("GAMIR_CACHE") or Path.home() / ".cache" / "gamir")


def _open(path: Path):
    lib = ctypes.CDLL(str(path))
    lib.gk_source_hash.restype = ctypes.c_char_p
    lib.gk_cpu_ok.restype = ctypes.c_int
    lib.gk_run_strip.restype = ctypes.c_int
    lib.gk_run_strip.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                 ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                 ctypes.c_int]
    for name in ("gk_unshuffle", "gk_shuffle"):
        getattr(lib, name).restype = None
    for name in ("gk_degrid", "gk_temporal"):
        getattr(lib, name).restype = ctypes.c_int
    if lib.gk_source_hash().decode() != build.source_hash():
        raise OSError(f"{path} was built from another kernel.c or with other flags")
    return lib


def _build_or_open(variant: str):
    """The variant's library: the one installed beside the source, else a cached or fresh
    build. Raises OSError/RuntimeError saying why not."""
    installed = Path(build.__file__).with_name(build.library_name(variant))
    if installed.exists():
        try:
            return _open(installed)
        except OSError:
            pass  # stale (kernel.c changed since the install): build the current one
    cached = _cache_dir() / f"kernel-{build.source_hash()}-{variant}.so"
    if not cached.exists():
        build.compile_library(variant, cached)
    return _open(cached)


def _library(variant: str):
    """The loaded library of ``variant``, or the reason (str) it cannot run here."""
    with _lock:
        if variant not in _libs:
            try:
                lib = _build_or_open(variant)
                if not lib.gk_cpu_ok():
                    raise OSError(f"this CPU has no {variant.upper()}")
                _libs[variant] = lib
            except (OSError, RuntimeError) as e:
                _libs[variant] = f"{variant}: {e}"
        return _libs[variant]


def best_variant() -> tuple[str | None, str | None]:
    """(fastest variant that runs here, None) or (None, why none does).

    ``GAMIR_NATIVE=0`` turns the native path off; ``GAMIR_NATIVE=generic`` (or another
    variant name) picks that variant.
    """
    env = os.environ.get("GAMIR_NATIVE", "").lower()
    if env in ("0", "off", "no", "false"):
        return None, "disabled by GAMIR_NATIVE=0"
    reasons = []
    for variant in ([env] if env in build.VARIANTS else build.VARIANTS):
        lib = _library(variant)
        if not isinstance(lib, str):
            return variant, None
        reasons.append(lib)
    return None, "; ".join(reasons)


def available() -> bool:
    """True where the compiled kernel loads (built at install, cached, or compiled now)."""
    return best_variant()[0] is not None


def why_unavailable() -> str | None:
    """Why :func:`available` is False (``None`` when it is True)."""
    return best_variant()[1]


def threads() -> int:
    """Threads (strips) a frame is split over: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def describe() -> str:
    """One line naming the path, e.g. ``native C kernel (avx2, 2 threads)``."""
    variant, why = best_variant()
    if variant is None:
        return f"numpy (native kernel unavailable: {why})"
    return f"native C kernel ({variant}, {threads()} threads)"


# ------------------------------------------------------------------------------ the plan
def supports(model: Model) -> str | None:
    """``None`` if the native kernel runs ``model`` exactly, else why not."""
    try:
        _Plan(model)
    except _Unsupported as e:
        return str(e)
    return None


class _Unsupported(ModelError):
    """The kernel's integer widths cannot run this model exactly (the numpy path can)."""


def _bit_groups(kernel: int, sextets: bool) -> tuple[int, int]:
    """(channels, columns) per byte of a binary conv's input rows (kernel.c's bits format)."""
    if not sextets:
        return 4, 1
    return (2, 3) if kernel == 3 else (6, 1)


def uses_sextets(variant: str) -> bool:
    """Whether ``variant``'s kernel looks up 6-bit groups (vpermb) rather than nibbles."""
    return variant == "avx512"


def _check_i32(what: str, *values) -> None:
    for v in values:
        if not _I32[0] <= int(v) <= _I32[1]:
            raise _Unsupported(f"{what} ({int(v)}) does not fit the native kernel's 32 bits")


def _act(stage, c_out: int) -> tuple[np.ndarray, np.ndarray]:
    """The activation's per-channel shift ``k`` and offset ``o``; ``k = o = 0`` (the identity)
    for a stage without one."""
    if isinstance(stage, Affine) and stage.act is not None:
        return stage.act_shift, stage.act_offset
    return np.zeros(c_out, np.int64), np.zeros(c_out, np.int64)


def _clamp_q(q: int, u_lo: int, u_hi: int, k: int, o: int, lo: int, hi: int, r_lo: int,
             r_hi: int) -> int:
    """``q`` clamped to where it still decides the output.

    The output is ``sat(g(q + u) + r, lo, hi)`` with ``u`` in ``u_lo..u_hi``, ``r`` in
    ``r_lo..r_hi`` and ``g(y) = prelu_shift(y, k) + o`` nondecreasing. At ``y = y_hi`` (and
    above) ``g(y) + r >= hi`` for every ``r``; at ``y = y_lo`` (and below) ``g(y) + r <= lo``
    (``rshift_round(L * 2**k, k) = L``). A ``q`` that puts every ``y`` beyond one of them
    saturates the same when moved onto it, and the values stay small.
    """
    y_hi = max(hi - r_lo - o, 0)
    y_lo = min(lo - r_hi - o, 0) << k
    return min(max(q, y_lo - u_hi), y_hi - u_lo)


class _Plan:
    """Every constant of ``model`` in the kernel's layouts, and the C structs pointing at them.

    ``sextets``: binary convs read 6-bit groups through 64-entry tables (any build runs them;
    the avx512 one with vpermb), else nibbles through 16-entry tables.
    """

    def __init__(self, model: Model, sextets: bool = False):
        self.model = model
        self.sextets = sextets
        types = model.tensor_types()
        n = len(model.layers)
        self.arrays: dict[tuple[int, str], np.ndarray] = {}  # what the structs point into
        self.layers = (_Layer * n)()
        radius = [0] * (n + 1)
        for i in range(n - 1, -1, -1):
            radius[i] = radius[i + 1] + model.layers[i].kernel // 2
        for i, layer in enumerate(model.layers):
            self._layer(self.layers[i], layer, types[i], types, i + 1)
        self.tensors = (_Tensor * (n + 1))()
        for t, ty in enumerate(types):
            d = self.tensors[t]
            d.channels, d.radius_after = ty.channels, radius[t]
            d.grp_ch, d.grp_cols = _bit_groups(1, sextets)  # (used where bits rows are kept)
            if t < n:
                nxt = model.layers[t]
                cap = 2 * (nxt.kernel // 2) + 1  # the window's rows (ring tags check it)
                if _KINDS[type(nxt.conv)].sign_bits:
                    d.cap_bits = cap
                    d.grp_ch, d.grp_cols = _bit_groups(nxt.kernel, sextets)
                else:
                    d.cap_pairs = cap
            spans = [radius[t] - radius[j] for j, lay in enumerate(model.layers, 1)
                     if t in lay.stage.joins() and t > 0]
            d.cap_plain = max(spans) + 1 if spans else 0

    def _set(self, d: _Layer, field: str, a, dtype) -> None:
        """Point ``d.field`` at ``a`` as a contiguous ``dtype`` array (kept alive here)."""
        a = np.ascontiguousarray(a, dtype=dtype)
        self.arrays[(ctypes.addressof(d), field)] = a
        setattr(d, field, a.ctypes.data)

    def dump(self, x0: np.ndarray) -> bytes:
        """The plan and an input as bytes for the C test harness (tests/spec/native_harness.c):
        header, tensor and layer ints, each layer's arrays (byte count + bytes), x0."""
        h, w, c0 = x0.shape
        out = [np.array([len(self.layers), h, w, c0, self.model.layers[-1].c_out], np.int32)]
        out += [np.array([getattr(t, f) for f, _ in _Tensor._fields_], np.int32) for t in self.tensors]
        for d in self.layers:
            out.append(np.array([getattr(d, f) for f, ty in _Layer._fields_ if ty is ctypes.c_int32],
                                np.int32))
            for f, ty in _Layer._fields_:
                if ty is ctypes.c_void_p:
                    a = self.arrays.get((ctypes.addressof(d), f), np.zeros(0, np.uint8))
                    out += [np.array([a.nbytes], np.int64), a.view(np.uint8).ravel()]
        out.append(np.ascontiguousarray(x0, np.uint8).ravel())
        return b"".join(a.tobytes() for a in out)

    def _layer(self, d: _Layer, layer, t_in, types, index: int) -> None:
        k, ci, co = layer.kernel, layer.c_in, layer.c_out
        kind = _KINDS.get(type(layer.conv))
        if kind is None:
            raise _Unsupported(f"layer {index}: the native kernel has no {layer.conv.name!r} conv")
        d.kind = kind.code
        st = layer.stage
        if type(st) not in _OUT:
            raise _Unsupported(f"layer {index}: the native kernel has no {st.name!r} stage")
        d.kernel, d.c_in, d.c_out, d.output = k, ci, co, _OUT[type(st)]
        residual = st.residual if isinstance(st, Affine) else None
        d.residual = residual if residual is not None else -1
        d.shift = 0 if isinstance(st, Threshold) else st.shift
        d.c_out_pad = -(-co // 4) * 4
        if isinstance(st, Affine):
            d.out_lo, d.out_hi = arith.signed_range(st.out_bits)
        else:
            d.out_lo, d.out_hi = _PIXEL_PRE
        r_lo, r_hi = types[residual].value_range() if residual is not None else (0, 0)
        flip = np.asarray(st.flip if isinstance(st, Threshold) else np.zeros(co), bool)
        self._set(d, "flip", flip, np.uint8)
        if isinstance(st, PixelOutput):
            self._set(d, "rmap", st.residual_map, np.int32)
        if isinstance(st, Affine) and st.act is not None:
            self._set(d, "act_shift", st.act_shift, np.int32)
            self._set(d, "act_offset", st.act_offset, np.int32)
        if kind.sign_bits:
            self._binary(d, layer, flip, r_lo, r_hi, index)
        else:
            self._fixed(d, layer, t_in, flip, index)

    def _binary(self, d: _Layer, layer, flip, r_lo: int, r_hi: int, index: int) -> None:
        k, ci, co, n = layer.kernel, layer.c_in, layer.c_out, layer.taps
        gc, cols = _bit_groups(k, self.sextets)
        ng = d.n_in = -(-ci // gc)
        w = np.zeros((co, k, k, ng * gc), np.int64)  # weight bits, channels padded to groups
        w[..., :ci] = layer.weights
        valid = np.zeros((1, k, k, ng * gc), np.int64)
        valid[..., :ci] = 1
        # window group (ky, kx, g) bit j = channel gc*g + j; with 3 columns a group is (ky, g)
        # and bit cols*j + kx channel gc*g + j at column kx (kernel.c's tap order)
        w, valid = (a.reshape(len(a), k, k, ng, gc) for a in (w, valid))
        if cols == 3:
            w, valid = (a.transpose(0, 1, 3, 4, 2) for a in (w, valid))
        bits = gc * cols
        word, vmask = ((a.reshape(len(a), -1, bits) << np.arange(bits)).sum(-1) for a in (w, valid))
        v = np.arange(2**bits)
        diff = ((v[None, None, :] ^ word[..., None]) & vmask[..., None]).astype(np.uint8)
        counts = np.bitwise_count(diff) if hasattr(np, "bitwise_count") else \
            np.unpackbits(diff[..., None], axis=-1).sum(-1)
        if bits == 6:  # two channels a table: 2p in the low nibble, 2p + 1 in the high one
            counts = np.concatenate([counts, np.zeros_like(counts[: co % 2])])
            tables = counts[0::2] | counts[1::2] << 4
        else:  # nibbles: 16 entries twice (one per vpshufb lane)
            tables = np.concatenate([counts, counts], axis=-1)
        d.tab_bytes = tables.shape[-1]
        self._set(d, "tables", tables, np.uint8)
        st = layer.stage
        if isinstance(st, Threshold):
            t_ge = st.threshold.astype(np.int64) + flip
            self._set(d, "thr_m", np.clip(n - t_ge, -1, n + 1), np.int32)
            return
        s = st.shift
        a2, q, b = [], [], []
        lo, hi = d.out_lo, d.out_hi
        sa, sb = st.applied()
        for c, (k, o) in enumerate(zip(*(map(int, x) for x in _act(st, co)))):
            a = -int(sa[c])
            bias = n * int(sa[c]) + int(sb[c]) + ((1 << (s - 1)) if s else 0)
            qc, bc = bias >> s, bias & ((1 << s) - 1)
            t_ends = (bc, n * a + bc)  # m*A' + b at m = 0 and m = N
            _check_i32(f"layer {index}: m*A + B mod 2**shift", *t_ends)
            u = [t >> s for t in t_ends]
            qc = _clamp_q(qc, min(u), max(u), k, o, lo, hi, r_lo, r_hi)
            # y = qc + u, then |prelu_shift(y)| <= |y|: these bound every sum
            _check_i32(f"layer {index}: affine sum",
                       *(qc + uu + oo + r for uu in u for oo in (0, o) for r in (0, r_lo, r_hi)))
            a2.append(a), q.append(qc), b.append(bc)
        for field, x in (("a32", a2), ("q32", q), ("b32", b)):
            self._set(d, field, np.array(x, np.int64), np.int32)

    def _fixed(self, d: _Layer, layer, t_in, flip, index: int) -> None:
        k, ci, co = layer.kernel, layer.c_in, layer.c_out
        npairs = -(-ci // 2)
        d.n_in = npairs
        x_lo, x_hi = t_in.value_range()
        w = layer.weights.astype(np.int64)
        bound = int(np.abs(w).reshape(co, -1).sum(1).max()) * max(-x_lo, x_hi)
        _check_i32(f"layer {index}: sum |w| * max |x|", bound)
        if layer.conv.per_channel:  # one weight per output channel and tap
            self._set(d, "wpairs", w.reshape(co, k * k), np.int32)
        else:
            wp = np.zeros((d.c_out_pad, k, k, npairs * 2), np.int64)
            wp[:co, ..., :ci] = w
            wp = wp.reshape(d.c_out_pad, k, k, npairs, 2)
            pairs = (wp[..., 0] & 0xFFFF) | ((wp[..., 1] & 0xFFFF) << 16)
            self._set(d, "wpairs", pairs.astype(np.uint32).view(np.int32), np.int32)
        st = layer.stage
        if isinstance(st, Threshold):
            self._set(d, "thr_acc", st.threshold.astype(np.int64) + flip, np.int64)
            return
        s = st.shift
        sa, sb = st.applied()
        fb = np.asarray(sb, np.int64) + ((1 << (s - 1)) if s else 0)
        if bound * int(np.abs(sa).max()) + int(np.abs(fb).max()) >= 2**53:
            raise _Unsupported(f"layer {index}: acc*A + B may exceed float64's exact range")
        self._set(d, "fa", sa, np.float64)
        self._set(d, "fb", fb, np.float64)


# ------------------------------------------------------------------------------ running
_POOL: ThreadPoolExecutor | None = None

#: Fewest output rows worth a strip of their own (each strip recomputes its halo rows).
_MIN_STRIP_ROWS = 16


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="gamir-native")
    return _POOL


class NativeRunner:
    """Runs one model, its constants prepared once; ``run(x0)`` gives the output tensor.

    Raises :class:`ModelError` if the kernel is unavailable or cannot run the model exactly
    (:func:`supports` says why); callers then use :mod:`spec.fast`. ``sextets`` overrides the
    variant's table format (:class:`_Plan`; tests run the plain C build with both).
    """

    def __init__(self, model: Model, n_threads: int | None = None, variant: str | None = None,
                 sextets: bool | None = None):
        if variant is None:
            variant, why = best_variant()
            if variant is None:
                raise ModelError(f"native kernel unavailable: {why}")
        lib = _library(variant)
        if isinstance(lib, str):
            raise ModelError(f"native kernel unavailable: {lib}")
        self.lib, self.variant = lib, variant
        self.plan = _Plan(model, uses_sextets(variant) if sextets is None else sextets)
        self.model = model
        self.n_threads = n_threads or threads()

    def run(self, x0: np.ndarray, n_threads: int | None = None) -> np.ndarray:
        """The output tensor of ``x0``, in strips on ``n_threads`` threads (default: the
        runner's)."""
        n = n_threads or self.n_threads
        if n == 1:  # in this thread
            out, strips = self._strips(x0, 1)
            return _checked(out, [strips[0]()])
        return _finished(*self._submit(x0, n))

    def _strips(self, x0: np.ndarray, n_threads: int) -> tuple[np.ndarray, list]:
        """The output array of ``x0`` and the calls that fill it: up to ``n_threads``
        horizontal strips, each returning the kernel's status."""
        x0 = np.ascontiguousarray(x0, dtype=np.uint8)
        h, w, c0 = x0.shape
        if c0 != self.model.input_channels:
            raise ModelError(f"input has {c0} channels, the model takes {self.model.input_channels}")
        out = np.empty((h, w, self.model.layers[-1].c_out), np.uint8)
        n = max(1, min(n_threads, h // _MIN_STRIP_ROWS))
        bounds = [h * i // n for i in range(n + 1)]
        p = self.plan

        def strip(i: int):
            return lambda: self.lib.gk_run_strip(
                ctypes.addressof(p.tensors), ctypes.addressof(p.layers), len(self.model.layers),
                x0.ctypes.data, out.ctypes.data, h, w, bounds[i], bounds[i + 1])

        return out, [strip(i) for i in range(n)]

    def _submit(self, x0: np.ndarray, n_threads: int) -> tuple[np.ndarray, list[Future]]:
        """:meth:`_strips` of ``x0`` queued on the pool: the output array and the futures. A
        bad ``x0`` gives a failed future, so a stream raises its error in order."""
        try:
            out, strips = self._strips(x0, n_threads)
        except Exception as e:
            failed: Future = Future()
            failed.set_exception(e)
            return np.empty(0, np.uint8), [failed]
        return out, [_pool().submit(f) for f in strips]

    def run_stream(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """:meth:`run` of each tensor, in order, with up to ``n_threads + 1`` tensors in flight,
        each on one thread, but the last (or only) one in strips.

        A video keeps every core busy this way beside the threads that decode and encode it:
        no thread waits for another's strip (strips of one frame end together only when
        nothing else runs) and no halo rows are computed twice. The last tensor's strips queue
        behind the tensors before it and take each thread as it frees, so the stream's end
        does not wait for one thread alone. Each output is :meth:`run`'s, bit for bit, whatever
        the threads. Closing the generator early cancels the tensors not started and waits
        for the running ones.
        """
        if self.n_threads == 1:
            yield from map(self.run, tensors)
            return
        it = iter(tensors)
        pending: deque[tuple[np.ndarray, list[Future]]] = deque()
        x0 = next(it, None)
        try:
            while x0 is not None:
                following = next(it, None)
                pending.append(self._submit(x0, self.n_threads if following is None else 1))
                x0 = following
                if len(pending) > self.n_threads:
                    yield _finished(*pending.popleft())
            while pending:
                yield _finished(*pending.popleft())
        finally:
            futures = [f for _, fs in pending for f in fs]
            for f in futures:
                f.cancel()
            wait(futures)


def _finished(out: np.ndarray, futures: list[Future]) -> np.ndarray:
    """``out`` once its strips' ``futures`` are done."""
    return _checked(out, [f.result() for f in futures])


def _checked(out: np.ndarray, codes: list[int]) -> np.ndarray:
    """``out``, or the first failing strip's error."""
    bad = [c for c in codes if c]
    if bad:
        raise RuntimeError(f"native kernel: {_ERRORS.get(bad[0], f'error {bad[0]}')}")
    return out


def run_output(model: Model, x0: np.ndarray) -> np.ndarray:
    """The output tensor (H, W, c_out) uint8 of ``model`` for tensor 0 ``x0``."""
    return NativeRunner(model).run(x0)


# ------------------------------------------------------------------------------ pixel steps
def _lib_or_none():
    variant = best_variant()[0]
    return None if variant is None else _library(variant)


def model_input(model: Model, image: np.ndarray) -> np.ndarray | None:
    """:func:`spec.model_input` (image already checked) in C; ``None`` without the kernel."""
    lib = _lib_or_none()
    if lib is None:
        return None
    s, image = model.steps, np.ascontiguousarray(image, dtype=np.uint8)
    h, w, c = image.shape
    r = s.unshuffle
    out = np.empty((h // r, w // r, model.input_channels), np.uint8)
    lib.gk_unshuffle(ctypes.c_void_p(image.ctypes.data), h // r, w // r, c, r,
                     s.noise_level if s.noise_channel else -1, ctypes.c_void_p(out.ctypes.data))
    return out


def model_output(model: Model, y: np.ndarray) -> np.ndarray | None:
    """:func:`spec.model_output` in C; ``None`` without the kernel."""
    lib = _lib_or_none()
    if lib is None:
        return None
    r, y = model.steps.shuffle, np.ascontiguousarray(y, dtype=np.uint8)
    h, w, crr = y.shape
    out = np.empty((h * r, w * r, crr // (r * r)), np.uint8)
    lib.gk_shuffle(ctypes.c_void_p(y.ctypes.data), h, w, crr // (r * r), r,
                   ctypes.c_void_p(out.ctypes.data))
    return out


def degrid(image: np.ndarray, top: int) -> np.ndarray | None:
    """:func:`spec.degrid.degrid` of an (H, W, C) uint8 image with H and W even, limit ``top``,
    in C; ``None`` without the kernel."""
    lib = _lib_or_none()
    if lib is None:
        return None
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w, c = image.shape
    out = np.empty_like(image)
    _check(lib.gk_degrid(ctypes.c_void_p(image.ctypes.data), h // 2, w // 2, c,
                         ctypes.c_int32(top), ctypes.c_void_p(out.ctypes.data)))
    return out


def temporal(prev: np.ndarray, frame: np.ndarray, table: np.ndarray) -> np.ndarray | None:
    """:func:`spec.temporal.blend` of two (H, W, C) uint8 frames (checked by it) with the new
    frame's weight ``table`` (:func:`spec.temporal.weights`), in C; ``None`` without the
    kernel."""
    lib = _lib_or_none()
    if lib is None:
        return None
    prev, frame = (np.ascontiguousarray(a, dtype=np.uint8) for a in (prev, frame))
    table = np.ascontiguousarray(table, dtype=np.int32)
    h, w, c = frame.shape
    out = np.empty_like(frame)
    _check(lib.gk_temporal(ctypes.c_void_p(prev.ctypes.data), ctypes.c_void_p(frame.ctypes.data),
                           h, w, c, ctypes.c_void_p(table.ctypes.data),
                           ctypes.c_void_p(out.ctypes.data)))
    return out


def _check(code: int) -> None:
    if code:
        raise MemoryError(f"native kernel: {_ERRORS.get(code, f'error {code}')}")
