"""``gamir COMMAND ...`` (or ``python -m gamir``): one command for every entry point.

Each command runs the ``python -m`` entry point it names with the remaining arguments, so
``gamir run clip.mp4`` is ``python -m host.run clip.mp4``; those entry points stay. Commands
are imported only when run: ``gamir run`` on a board image never imports torch.
"""

from __future__ import annotations

import importlib
import sys

from gamir import cli

__all__ = ["COMMANDS", "main"]

#: command -> (entry module, what it does). Aliases: ``restore`` = ``run``.
COMMANDS = {
    "run": ("host.run", "restore a video, image or folder (board, Verilator or CPU emulation)"),
    "generate": ("hw.generate", "the accelerator's Verilog and manifest for a model"),
    "build": ("hw.build", "a bitstream or utilization estimate for a board"),
    "check": ("sim.check", "prove in Verilator that the Verilog equals the spec on images"),
    "train": ("training.train", "train a network with GAM (needs torch)"),
    "export": ("training.export", "a trained run -> a .gamir model file, checked (needs torch)"),
    "eval": ("training.eval", "PSNR/SSIM tables of models and baselines (needs torch)"),
    "search": ("training.search", "network shapes that fit a board at a rate, trained as proxies (needs torch)"),
    "gather-data": ("training.gather_data", "collect the training photos"),
}
ALIASES = {"restore": "run"}


def _help() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what} (python -m {module})"
                     for name, (module, what) in COMMANDS.items())
    return (f"usage: gamir COMMAND [ARGS ...]\n\n"
            f"Binarized image restoration (GAM) on a streaming FPGA accelerator.\n\n"
            f"commands:\n{rows}\n\n"
            f"'gamir COMMAND --help' shows a command's options; 'restore' is an alias of 'run'.")


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the entry point of ``argv[0]``; exit status as :mod:`gamir.cli` defines."""
    cli.catch_signals()  # the console script is the process's entry: Ctrl-C during imports too
    argv = sys.argv[1:] if argv is None else list(argv)
    return cli.run(lambda: _dispatch(argv))


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_help(), file=sys.stdout if argv else sys.stderr)
        return cli.EXIT_OK if argv else cli.EXIT_USAGE
    name = ALIASES.get(argv[0], argv[0])
    if name not in COMMANDS:
        print(f"usage: gamir COMMAND [ARGS ...]\nerror: unknown command {argv[0]!r}: one of "
              f"{', '.join(COMMANDS)} (see gamir --help)", file=sys.stderr)
        return cli.EXIT_USAGE
    module = COMMANDS[name][0]
    cli.invoked_as = f"gamir {name}"
    try:
        entry = importlib.import_module(module)
    except ModuleNotFoundError as e:
        line = cli.missing_dependency(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return cli.EXIT_FAILED
    try:
        return entry.main(argv[1:])
    except SystemExit as e:  # argparse's --help and usage errors
        return e.code if isinstance(e.code, int) else cli.EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
