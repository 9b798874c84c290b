"""Design defaults, named once: what ``hw.generate``, ``hw.build``, the cycle model and the
host assume where nobody says otherwise."""

__all__ = ["DEFAULT_CLOCK_HZ", "DEFAULT_MAX_WIDTH", "DEFAULT_FRAME", "DEFAULT_FPS"]

#: Accelerator clock: the PYNQ-Z2's FCLK0 and the generator's timing guess.
DEFAULT_CLOCK_HZ = 100e6
#: Line buffer width in accelerator pixels (a 1280-pixel-wide image without unshuffle).
DEFAULT_MAX_WIDTH = 1280
#: Frame (height, width) the cycle model reports and the automatic fold aims at.
DEFAULT_FRAME = (360, 640)
#: Frame rate the automatic fold aims at.
DEFAULT_FPS = 30.0
