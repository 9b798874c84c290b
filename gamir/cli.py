"""One command-line convention for every ``python -m`` entry point (and the ``gamir`` command).

- **Errors** are one line on stderr, ``error: WHAT (what to do instead)``, never a traceback.
  Anything the user can cause is caught: the command's own error types and :class:`CliError`.
- **Exit status**: 0 done; 1 the work failed (a bad input file or model, a failed build or
  check); 2 the command line is wrong (unknown option, bad value: the usage line, then one
  ``error:`` line); 130 interrupted by Ctrl-C (SIGINT); 143 terminated (SIGTERM). An
  interrupted command leaves no output and no temporary file behind.
- **--help**: ``usage: python -m PACKAGE.MODULE ...``, a one-sentence description, and every
  option with a help text that ends with its default, ``(default: X)``, where it has one.

Signals: :func:`catch_signals`, called at the very top of a ``__main__`` module before its
heavy imports, makes SIGINT/SIGTERM during those imports exit at once with one line (nothing
has been written yet), and a dependency missing from the install (the base install has numpy
and PyAV only) one line naming the extra that brings it, at import time or later. From
:func:`run` on, both signals raise :class:`Interrupted` (a ``KeyboardInterrupt``), so ``with``
blocks and ``finally`` clauses delete partial output.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from typing import Callable

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "CliError", "CommandLineError", "Interrupted",
           "ArgumentParser", "catch_signals", "run", "error_line", "missing_dependency",
           "positive_int", "int_range", "natural_int", "positive_float"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Shell convention: 128 + the signal number.
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_running = False  # set by run(): signals raise from then on instead of exiting at once
#: The command as the user typed it, when the ``gamir`` command dispatched (``gamir run``):
#: usage lines and hints then name it instead of ``python -m host.run``.
invoked_as: str | None = None
#: gamir's own top-level packages: a missing module among them is a broken install, not an extra.
_OWN = {"gamir", "spec", "accel", "hw", "host", "sim", "training", "bench"}
#: What installs the optional dependencies (every one of them is in ``dev``, pyproject.toml).
EXTRA = 'pip install "gamir[dev]"'


class CliError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do instead."""


class CommandLineError(CliError):
    """A command line that parsed but asks for what the inputs do not allow (an option value
    outside the model's range): exit status 2 with the usage line, as a parse error."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; ``signum`` says which (the exit status follows from it)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _message(signum: int) -> str:
    what = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
    return f"error: {what}: stopped, no output written"


def _on_signal(signum, frame) -> None:
    for s in _SIGNALS:  # a second Ctrl-C must not break the clean-up of the first
        signal.signal(s, signal.SIG_IGN)
    if not _running:
        # Still importing: nothing written yet, and no handler up the stack to clean up.
        print(_message(signum), file=sys.stderr, flush=True)
        os._exit(EXIT_SIGNAL[signum])
    raise Interrupted(signum)


def catch_signals(module_name: str = "__main__") -> None:
    """Turn SIGINT/SIGTERM into one line and exit status 130/143 from now on, and a missing
    optional dependency into one line (:func:`missing_dependency`) and status 1.

    Call it first thing in an entry module, as ``cli.catch_signals(__name__)``: it does
    nothing when the module is imported rather than run, so libraries and tests keep Python's
    default handling.
    """
    if module_name == "__main__":
        _install()
        if not isinstance(sys.excepthook, _MissingDependencyHook):
            sys.excepthook = _MissingDependencyHook(sys.excepthook)


class _MissingDependencyHook:
    """``sys.excepthook`` for the entry module's own imports (before :func:`run` catches)."""

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, kind, exc, tb):
        line = missing_dependency(exc) if isinstance(exc, ModuleNotFoundError) else None
        if line is None:
            return self.previous(kind, exc, tb)
        print(line, file=sys.stderr)  # Python then exits with status 1 (EXIT_FAILED)


def _install() -> dict:
    """Our handler for each signal not ignored; the previous handlers, to restore later."""
    previous = {}
    try:
        for s in _SIGNALS:
            if signal.getsignal(s) is not signal.SIG_IGN:  # nohup / background jobs stay immune
                previous[s] = signal.signal(s, _on_signal)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    return previous


def error_line(exc: BaseException) -> str:
    """``error: MESSAGE``; a multi-line message keeps its first line on the ``error:`` line."""
    text = str(exc).strip() or type(exc).__name__
    return f"error: {text}"


def missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """``error: ...`` for a third-party module this install lacks; None for one of gamir's own
    (a broken checkout is a bug to see with its traceback)."""
    name = (exc.name or "").partition(".")[0]
    if not name or name in _OWN:
        return None
    main = getattr(sys.modules.get("__main__"), "__spec__", None)
    # python -m hw.build runs hw.build.__main__
    module = main.name.removesuffix(".__main__") if main is not None else ""
    command = invoked_as or (f"python -m {module}" if module.partition(".")[0] in _OWN
                             else "this command")
    return (f"error: {command} needs {name!r}, which is not installed here ({EXTRA}: the base "
            f"install has numpy and PyAV only)")


def run(body: Callable[[], int | None], errors: tuple[type[BaseException], ...] = (),
        parser: "ArgumentParser | None" = None) -> int:
    """Call ``body()`` under the convention; return its exit status (an int it returns; 0 for
    anything else, such as ``None`` or a benchmark's results).

    ``errors`` are the exception types the command treats as the user's problem (beside
    :class:`CliError`): each becomes one ``error:`` line and status 1; a
    :class:`CommandLineError` is the usage line of ``parser`` and one ``error:`` line, status 2.
    Signals become one
    line and 130/143; a closed stdout (``... | head``) ends quietly.
    """
    global _running
    previous, was_running = _install(), _running
    _running = True
    try:
        status = body()
        return status if isinstance(status, int) else EXIT_OK
    except CommandLineError as e:
        if parser is None:
            print(error_line(e), file=sys.stderr)
        else:
            parser.print_usage(sys.stderr)
            print(parser.error_text(str(e)), file=sys.stderr)
        return EXIT_USAGE
    except (CliError, *errors) as e:
        print(error_line(e), file=sys.stderr)
        return EXIT_FAILED
    except ModuleNotFoundError as e:  # an optional dependency, imported where it is first needed
        line = missing_dependency(e)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(("\n" if signum == signal.SIGINT and sys.stderr.isatty() else "")
              + _message(signum), file=sys.stderr)
        return EXIT_SIGNAL[signum]
    except BrokenPipeError:
        # The reader went away (``| head``); say nothing more and avoid a second error at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    finally:
        _running = was_running  # a command run inside another (training.search) hands back
        for s, h in previous.items():
            signal.signal(s, h)


def _number(kind: type, test: Callable, rule: str) -> Callable[[str], int | float]:
    """An argparse ``type=`` that parses ``kind`` and requires ``test``, naming ``rule``."""
    noun = "an integer" if kind is int else "a number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text!r} must be {rule}")
        return value
    parse.__name__ = f"{kind.__name__} {rule}"
    return parse


#: ``type=`` for options that take a count or a size (argparse shows the rule on a bad value).
positive_int = _number(int, lambda v: v >= 1, "at least 1")
natural_int = _number(int, lambda v: v >= 0, "0 or more")


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    """``type=`` for an integer in ``lo..hi`` (a noise level, a quality setting)."""
    return _number(int, lambda v: lo <= v <= hi, f"in {lo}..{hi}")


#: ``type=`` for rates, clocks, seconds: finite and above zero (no ``nan``, ``inf``, ``-5``).
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number above 0")


def frame_size(text: str) -> tuple[int, int]:
    """``type=`` for every ``--frame``: ``WIDTHxHEIGHT`` as video sizes are written (640x480),
    returned as ``(height, width)``, the order of arrays and of ``accel.config.DEFAULT_FRAME``."""
    w, _, h = text.lower().partition("x")
    if not (w.isdigit() and h.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (e.g. 640x480)")
    if int(w) < 1 or int(h) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sizes must be at least 1")
    return int(h), int(w)


def frame_sizes(text: str) -> list[tuple[int, int]]:
    """``type=`` for a list of sizes: :func:`frame_size` of each comma-separated item."""
    return [frame_size(item) for item in text.split(",")]


def frame_text(frame: tuple[int, int]) -> str:
    """``(height, width)`` as :func:`frame_size` reads it (a ``--frame`` default)."""
    h, w = frame
    return f"{w}x{h}"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; appends ``(default: X)`` where an option has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default:" in text or default is None or default is False
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` under the convention: usage errors are one ``error:`` line and status 2."""

    def __init__(self, prog: str, description: str, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(prog=invoked_as or prog, description=description, **kwargs)

    def error(self, message: str):
        self.print_usage(sys.stderr)
        print(self.error_text(message), file=sys.stderr)
        sys.exit(EXIT_USAGE)

    def error_text(self, message: str) -> str:
        return f"error: {message} (see {self.prog} --help)"
