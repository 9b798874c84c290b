"""The native kernel's C source (``kernel.c``) and how it is compiled (:mod:`.build`).

:mod:`spec.native` loads it; nothing here imports beyond the standard library.
"""
