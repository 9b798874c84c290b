"""Build hook for the optional native kernel (``spec/_native/kernel.c``, see spec/native.py).

Everything else is in pyproject.toml. The kernel is compiled once per variant (AVX-512, AVX2
and plain C on x86-64; plain C elsewhere) with the flags of ``spec/_native/build.py``. Without a
working compiler the install still succeeds: ``spec.native`` then compiles the kernel on
first use if a compiler appears, or the numpy path runs.
"""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_here = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("_gamir_kernel_build", _here / "spec/_native/build.py")
kbuild = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kbuild)


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the native kernel is an accelerator, not a need."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler at all (setuptools raises before any extension)
            self.warn(f"the native kernel was not built ({e}); gamir runs on numpy")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self.warn(f"{ext.name} was not built ({e}); gamir runs on numpy or builds it later")


setup(
    ext_modules=[
        Extension(
            f"spec._native._kernel_{variant}",
            sources=["spec/_native/kernel.c"],
            extra_compile_args=kbuild.COMMON_FLAGS + kbuild.variant_flags(variant),
            define_macros=[("GK_SOURCE_HASH", f'"{kbuild.source_hash()}"')],
            libraries=["m"],
        )
        for variant in kbuild.VARIANTS
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
