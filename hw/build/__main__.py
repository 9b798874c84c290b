"""``python -m hw.build``: :func:`hw.build.cli.main`."""

import sys

from gamir import cli

cli.catch_signals(__name__)  # before the imports: Ctrl-C while they load is one line

from .cli import main

sys.exit(main())
