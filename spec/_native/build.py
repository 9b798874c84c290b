"""How the native kernel is compiled: one place for the flags, used by setup.py and at run time.

Standard library only (setup.py loads this file by path, before numpy or gamir exist).

Variants: ``generic`` (plain C; the compiler vectorizes what it can for the target) and the
same file with its vector kernels: ``avx512`` and ``avx2`` on x86-64 (the first one the CPU
runs is chosen at run time: ``gk_cpu_ok`` asks the CPU), ``neon`` on aarch64. The source hash
is compiled into the library, so a library built from an older ``kernel.c`` is never used.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

__all__ = ["SOURCE", "VARIANTS", "source_hash", "variant_flags", "library_name", "compile_library",
           "compiler"]

SOURCE = Path(__file__).with_name("kernel.c")

#: Flags common to every variant: exact float (no contraction, no fast-math; errno and traps
#: only let floor() vectorize), position independent, C with GNU extensions (VLAs), and signed
#: overflow undefined as C has it: setuptools puts Python's own CFLAGS, which hold
#: ``-fwrapv``, before these, and wrapping index arithmetic keeps GCC from vectorizing the
#: filters' row loops (the installed grid filter ran 3.5x, the temporal one 2.5x slower than
#: the same source built at run time; the layers' explicit vector code was unaffected).
COMMON_FLAGS = ["-O3", "-std=gnu11", "-fPIC", "-ffp-contract=off", "-fno-math-errno",
                "-fno-trapping-math", "-fno-wrapv"]


def _variants() -> tuple[str, ...]:
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        return ("avx512", "avx2", "generic")
    if machine in ("aarch64", "arm64"):
        return ("neon", "generic")
    return ("generic",)


#: Fastest first.
VARIANTS = _variants()


def source_hash() -> str:
    """First 16 hex digits of the SHA-256 of ``kernel.c`` and :data:`COMMON_FLAGS`: a library
    built from another source, or with other common flags, is rebuilt."""
    return hashlib.sha256(SOURCE.read_bytes() + " ".join(COMMON_FLAGS).encode()).hexdigest()[:16]


def variant_flags(variant: str) -> list[str]:
    """Compiler flags of one variant (besides :data:`COMMON_FLAGS`)."""
    if variant == "avx512":  # Ice Lake / Zen 4 and later (VBMI's vpermb, GFNI); 512-bit vectors
        return ["-mavx2", "-mpopcnt", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq",
                "-mavx512vbmi", "-mgfni", "-mprefer-vector-width=512"]
    if variant == "avx2":
        return ["-mavx2", "-mpopcnt"]
    if variant == "neon":
        return []  # NEON is part of every aarch64 CPU
    if variant == "generic":
        return ["-DGK_GENERIC"]
    raise ValueError(f"variant {variant!r} must be avx512, avx2, neon or generic")


def library_name(variant: str) -> str:
    """File name of a variant's shared library (what setup.py builds into ``spec/_native``)."""
    return f"_kernel_{variant}{sysconfig.get_config_var('EXT_SUFFIX') or '.so'}"


def compiler() -> str | None:
    """The C compiler to use: ``$CC`` or the first of cc, gcc, clang on PATH."""
    cc = os.environ.get("CC")
    if cc:
        return cc.split()[0] if shutil.which(cc.split()[0]) else None
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return name
    return None


def compile_library(variant: str, out: Path) -> None:
    """Compile ``kernel.c`` as ``variant`` into ``out`` (atomically: a temp file, then rename).

    Raises ``RuntimeError`` with the compiler's message when no compiler is found or it fails.
    """
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC, or install cc/gcc/clang)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [cc, *COMMON_FLAGS, *variant_flags(variant), f'-DGK_SOURCE_HASH="{source_hash()}"',
           "-shared", str(SOURCE), "-o", tmp, "-lm"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr.strip()}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
