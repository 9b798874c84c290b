"""cocotb bench for one hardware block: streams in, streams out, compared beat for beat.

Generic on purpose: every block of ``hw/`` is a ``wiring.Component`` whose streams are
``lib.stream`` ports (``<name>__payload``, ``__valid``, ``__ready``). The host side
(:mod:`tests.sim.test_blocks`) converts a block to Verilog, computes the expected output beats
with the spec, and writes a job:

``consts``   port name -> value held for the whole run (frame size, an idle parameter bus)
``inputs``   port name -> {"beats": [int], "gap": p}: a source with random valid gaps
``outputs``  port name -> {"expect": [int], "stall": p, "elem_bits", "signed", "labels"}:
             a sink with random ready stalls; ``labels[k]`` says what beat ``k`` is (pixel,
             channel group), ``elem_bits`` how to split a payload into elements so a mismatch
             names the first wrong element with its expected and received values.
"""

from __future__ import annotations

import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from sim.drivers import Clocked, StreamBus, StreamSink, StreamSource
from sim.runner import load_job, save_result
from sim.scoreboard import Mismatch


def elements(word: int, bits: int, signed: bool) -> list[int]:
    """Split a flat payload into its ``bits``-wide elements, element 0 lowest."""
    n = max(1, -(-word.bit_length() // bits)) if word else 1
    out = []
    for k in range(n):
        v = (word >> (k * bits)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if signed and v >> (bits - 1) else v)
    return out


def describe(port: str, spec: dict, k: int, want: int, got: int) -> str:
    bits, signed = spec["elem_bits"], spec["signed"]
    w, g = elements(want, bits, signed), elements(got, bits, signed)
    n = max(len(w), len(g))
    w, g = w + [0] * (n - len(w)), g + [0] * (n - len(g))
    e = next(i for i in range(n) if w[i] != g[i])
    label = spec["labels"][k] if spec.get("labels") else f"beat {k}"
    return (f"{port}: first mismatch at {label} (beat {k}), element {e}: expected {w[e]}, "
            f"got {g[e]}")


@cocotb.test()
async def block_job(dut):
    job, _ = load_job()
    rng = random.Random(job.get("seed", 0))
    clock = Clocked(dut.clk)
    for name, value in job.get("consts", {}).items():
        getattr(dut, name).value = value
    sources = {name: StreamSource(StreamBus.amaranth(dut, name), rng, s.get("gap", 0.0))
               for name, s in job["inputs"].items()}
    sinks = {name: StreamSink(StreamBus.amaranth(dut, name), rng, s.get("stall", 0.0))
             for name, s in job["outputs"].items()}
    clock.add(*sources.values(), *sinks.values())
    result = {"status": "fail", "error": None}
    t0 = time.time()
    try:
        Clock(dut.clk, Clocked.period_ns, unit="ns").start()
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        clock.start()
        for name, s in job["inputs"].items():
            sources[name].send(s["beats"])
        for name, s in job["outputs"].items():
            await sinks[name].expect(clock, len(s["expect"]), job["timeout_cycles"])
        await ClockCycles(dut.clk, 4)
        for name, s in job["outputs"].items():
            got = [b[0] for b in sinks[name].beats]
            for k, (want, g) in enumerate(zip(s["expect"], got)):
                if want != g:
                    raise Mismatch(describe(name, s, k, want, g))
            if len(got) != len(s["expect"]):
                raise Mismatch(f"{name}: {len(got)} beats arrived, expected {len(s['expect'])}")
        result["status"] = "pass"
    except AssertionError as e:
        result["error"] = str(e)
        raise
    finally:
        result.update(cycles_simulated=clock.cycle, wall_seconds=time.time() - t0,
                      beats={n: len(s.beats) for n, s in sinks.items()})
        save_result(result)
