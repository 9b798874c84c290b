"""Design defaults, named once: what ``hw.generate``, ``hw.build``, the cycle model and the
host assume where nobody says otherwise."""

__all__ = ["DEFAULT_CLOCK_HZ", "DEFAULT_MAX_WIDTH", "DEFAULT_FRAME", "DEFAULT_FPS", "LUT_PRODUCTS"]

#: Accelerator clock: the PYNQ-Z2's FCLK0 and the generator's timing guess.
DEFAULT_CLOCK_HZ = 100e6
#: Line buffer width in accelerator pixels (a 1280-pixel-wide image without unshuffle).
DEFAULT_MAX_WIDTH = 1280
#: Frame (height, width) the cycle model reports and the automatic fold aims at.
DEFAULT_FRAME = (360, 640)
#: Frame rate the automatic fold aims at.
DEFAULT_FPS = 30.0
#: Submodule name prefix of the products kept out of hard multipliers (:mod:`hw.fixed_conv`
#: names them; the synthesis scripts of :mod:`hw.build` run Yosys' ``booth`` pass on the
#: ``$mul`` cells of these modules only). Here so that ``hw.build`` loads without Amaranth.
LUT_PRODUCTS = "lut_products"
