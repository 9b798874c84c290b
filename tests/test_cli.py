"""The command-line convention (:mod:`gamir.cli`): signals, help text, the ``gamir`` command."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gamir import cli

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _handles(pid: int, signum: int) -> bool:
    """``signum`` is caught by a handler in process ``pid`` (Linux: /proc's SigCgt mask)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(ln.split()[1], 16) for ln in text.splitlines() if ln.startswith("SigCgt:"))
    return bool(mask >> (signum - 1) & 1)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as from a terminal, even if pytest runs nohup


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6, 1.2])
def test_a_signal_at_any_moment_leaves_nothing(tmp_path, signum, delay):
    """From gamir's first line on (delay 0: during the imports of numpy, PyAV and the spec;
    later: while frames are restored), SIGINT/SIGTERM end with one line, status 130/143, and no
    file left behind."""
    shutil.copy(ROOT / "samples" / "clip.mp4", tmp_path / "clip.mp4")
    before = sorted(os.listdir(tmp_path))
    # The numpy spec (several seconds for the clip even on a fast machine): the later signals
    # land while frames are being restored, not after the run.
    p = subprocess.Popen([sys.executable, "-m", "host.run", "clip.mp4", "-o", "out.mkv"],
                         cwd=tmp_path, env={**ENV, "GAMIR_NATIVE": "0"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 60
    # gamir's handlers are in place once SIGTERM is caught (Python catches SIGINT from its own
    # start-up on, before gamir's first line runs: a Ctrl-C that early is Python's own).
    while not _handles(p.pid, signal.SIGTERM) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    p.send_signal(signum)
    out, err = p.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert p.returncode == cli.EXIT_SIGNAL[signum], err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    what = "interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)"
    assert errors == [f"error: {what}: stopped, no output written"], err
    assert sorted(os.listdir(tmp_path)) == before  # no output, no hidden .partial file


def test_a_command_run_inside_another_keeps_the_outer_signal_handling():
    """training.search runs training.train's main inside its own: after the inner command
    returns, a signal must still unwind the outer one (its clean-up runs), not exit at once."""
    code = ("import os, signal, sys\n"
            "from gamir import cli\n"
            "def outer():\n"
            "    try:\n"
            "        cli.run(lambda: 0)\n"
            "        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        signal.pause()\n"
            "    finally:\n"
            "        print('cleaned up', flush=True)\n"
            "sys.exit(cli.run(outer))\n")
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 143 and r.stdout == "cleaned up\n"
    assert r.stderr == "error: terminated (SIGTERM): stopped, no output written\n"


def _parser_of(module: str, monkeypatch):
    """The ArgumentParser the entry point ``module`` builds (captured at parse time)."""
    import importlib

    class Captured(Exception):
        pass

    def capture(self, argv=None, namespace=None):
        raise Captured(self)

    monkeypatch.setattr(cli.ArgumentParser, "parse_args", capture)
    with pytest.raises(Captured) as got:
        importlib.import_module(module).main([])
    return got.value.args[0]


ENTRY_POINTS = ["host.run", "hw.generate", "hw.build", "sim.check", "training.export", "training.train",
                "training.eval", "training.search", "training.gather_data", "bench.builds", "bench.host_emulate",
                "bench.product_cost", "bench.depthwise_cost", "bench.sim_throughput", "bench.spec_vs_torch",
                "bench.artefacts", "training.speed", "bench.kernel_instructions",
                "bench.kernel_variants"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_option_has_help_and_shows_its_default(module, monkeypatch):
    parser = _parser_of(module, monkeypatch)
    assert parser.prog == f"python -m {module}"
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{module} {action.option_strings[0]} has no help text"
        text = formatter._get_help_string(action)
        if action.default not in (None, False):
            assert "default" in text, f"{module} {action.option_strings[0]}: {text!r}"


def test_usage_error_is_one_line_and_status_2(capsys):
    from host.run import main

    with pytest.raises(SystemExit) as e:
        main(["--no-such-option", "x.mp4"])
    assert e.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: unrecognized arguments: --no-such-option (see python -m host.run --help)"]


def _gamir(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gamir", *args], env=ENV, capture_output=True,
                          text=True, **kw)


def test_gamir_lists_the_commands_and_dispatches(tmp_path):
    r = _gamir("--help")
    assert r.returncode == 0
    for name, (module, _) in __import__("gamir.__main__").__main__.COMMANDS.items():
        assert f"  {name}" in r.stdout and f"python -m {module}" in r.stdout
    r = _gamir("run", "--help")
    assert r.returncode == 0 and "--overwrite" in r.stdout and "(default: auto)" in r.stdout
    assert r.stdout.startswith("usage: gamir run ")
    r = _gamir("restore", str(tmp_path / "none.mp4"))
    assert r.returncode == 1 and r.stderr.strip().endswith("does not exist")
    r = _gamir("frobnicate")
    assert r.returncode == 2 and "error: unknown command 'frobnicate'" in r.stderr
    r = _gamir()
    assert r.returncode == 2 and "usage: gamir COMMAND" in r.stderr
