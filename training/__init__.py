"""gamir's ML half: GAM binarization, the streamable networks, data, trainer, CLIs, export.

Imports torch; nothing else in gamir imports this package. See docs/training.md.
"""
