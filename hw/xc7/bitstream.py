"""FASM to configuration frames to ``.bit`` for 7-series parts (the Zynq-7020 of the PYNQ-Z2),
and back: gamir's own version of prjxray's ``fasm2frames`` (which Debian does not package).

nextpnr-himbaechel-xilinx writes FASM (``TILE.SITE.FEATURE`` lines, multi-bit features as
``INIT[63:0] = 64'h...``); the prjxray database says which bits of which configuration frames
each feature sets or clears; ``xc7frames2bit`` (prjxray's C++ tool) wraps the frames in the
part's configuration packets. :func:`bit_to_features` reads a ``.bit`` back with ``bitread``
and matches the database's bit patterns against it: the tests' oracle for the writer.

Canonical features (what :func:`fasm_features` and :func:`bit_to_features` return): one name
per set bit of a multi-bit feature (``TILE.SLICEL_X0.ALUT.INIT[5]``); features whose value is
0, pseudo-pips (no bits) and features that only clear bits are left out (a bitstream cannot
show them); the part's required features (``required_features.fasm``) are included.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

from hw.xc7.prjxray_db import (COLUMN_WORD, FRAME_SHIFT, WORDS_PER_FRAME, BitstreamError,
                               Database, Feature, Tile, load)

DEFAULT_PART = "xc7z020clg400-1"
NATIVE_BIN = Path.home() / ".cache/native-fpga/bin"

# An annotation block (whose quoted strings may hold '#') or a comment.
_NOT_FEATURE = re.compile(r'\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\}|#.*')
_FEATURE = re.compile(r"([A-Za-z0-9_]+)\.([A-Za-z0-9_.]+)(?:\[(\d+)(?::(\d+))?\])?")
_VALUE = re.compile(r"(?:(\d+)'([hHbBdDoO]))?([0-9a-fA-F]+)")
_RADIX = {"h": 16, "b": 2, "d": 10, "o": 8}

Frames = dict[int, list[int]]  # frame address -> 101 words


# ---------------------------------------------------------------- FASM -> database features

def _lines(source) -> tuple[str, Iterator[str]]:
    """(name for messages, lines) of FASM given as a path or as text (a one-line str naming an
    existing file or ending in ``.fasm`` is a path)."""
    if isinstance(source, os.PathLike) or ("\n" not in source and (
            source.endswith(".fasm") or os.path.isfile(source))):
        path = Path(source)
        try:
            text = path.read_text()
        except OSError as e:
            raise BitstreamError(f"cannot read FASM {path}: {e.strerror}") from None
        return str(path), iter(text.splitlines())
    return "<fasm>", iter(source.splitlines())


def _value(text: str, width: int, where: str) -> int:
    """A FASM value (``64'h..``, ``4'b1010``, ``12``; ``_`` separators) that fits ``width``
    bits."""
    m = _VALUE.fullmatch(text.replace("_", ""))
    radix = _RADIX[m.group(2).lower()] if m and m.group(2) else 10
    try:
        value = int(m.group(3), radix) if m else -1
    except ValueError:
        value = -1
    if value < 0:
        raise BitstreamError(f"{where}: value {text!r} is not a FASM number "
                             f"(write e.g. 1, 4'b1010 or 64'hFFFF)")
    if value >> width or (m.group(1) and value >> int(m.group(1))):
        raise BitstreamError(f"{where}: value {text} does not fit the feature's {width} bits")
    return value


def _unknown(db: Database, where: str, tile: Tile, name: str) -> BitstreamError:
    return BitstreamError(
        f"{where}: feature {name} is not in the prjxray database for tile type {tile.type} "
        f"({db.family_dir}) (was the FASM placed and routed for {db.part}?)")


def _line_features(db: Database, line: str, where: str) -> tuple[Tile | None, list[Feature]]:
    """The tile and database features one FASM line sets (none for a comment, a value of 0 or
    a pseudo-pip)."""
    text = _NOT_FEATURE.sub("", line) if ("#" in line or "{" in line) else line
    name, eq, value_text = text.partition("=")
    name = name.strip()
    if not name:
        if value_text.strip():
            raise BitstreamError(f"{where}: a value without a feature (write TILE.FEATURE = N)")
        return None, []
    m = _FEATURE.fullmatch(name)
    if m is None:
        raise BitstreamError(f"{where}: {name!r} is not a FASM feature (TILE.FEATURE[hi:lo])")
    tile_name, suffix, hi, lo = m.groups()
    tile = db.tiles.get(tile_name)
    if tile is None:
        raise BitstreamError(f"{where}: tile {tile_name} is not in {db.part} "
                             f"(was the FASM placed and routed for {db.part}?)")
    hi_i = int(hi) if hi is not None else None
    lo_i = int(lo) if lo is not None else hi_i
    if hi_i is not None and lo_i > hi_i:
        raise BitstreamError(f"{where}: {name}: write the range high bit first ([hi:lo])")
    width = 1 if hi_i is None else hi_i - lo_i + 1
    value = _value(value_text.strip(), width, where) if eq else 1
    if not value:
        return tile, []
    tt = db.tile_type(tile.segbits_type)
    if hi_i is None or (hi_i == 0 and suffix in tt.features):
        feature = tt.features.get(suffix) or tt.features.get(f"{suffix}[0]")
        if feature is not None:
            return tile, [feature]
        if suffix in tt.ppips:
            return tile, []
        raise _unknown(db, where, tile, name)
    vector = tt.vectors().get(suffix, {})
    indexes = [lo_i + i for i, c in enumerate(bin(value)[:1:-1]) if c == "1"]
    try:
        return tile, [vector[i] for i in indexes]
    except KeyError as e:
        raise _unknown(db, where, tile, f"{tile_name}.{suffix}[{e.args[0]}]") from None


def _features(source, db: Database) -> Iterator[tuple[str, Tile, list[Feature]]]:
    """(where, tile, features) for every line of ``source`` and of the part's required
    features that sets some, then the STEPDOWN of unused IOBs (see :func:`_stepdown`); a
    ``*_SING`` tile's features checked to lie in it."""
    name, lines = _lines(source)
    required = db.part_dir / "required_features.fasm"
    used_iobs: set[tuple[str, str]] = set()
    stepdown: dict[str, set[str]] = {}  # IOB33 tile -> its STEPDOWN tags
    for where, line in itertools.chain(
            ((f"{name}:{n}", line) for n, line in enumerate(lines, 1)),
            ((f"{required}:{n}", line) for n, line in enumerate(db.required_features(), 1)),
            _stepdown(db, used_iobs, stepdown)):
        tile, features = _line_features(db, line, where)
        if not features:
            continue
        if tile.segbits_type != tile.type:
            for f in features:
                if not tile.owns(f):
                    raise BitstreamError(f"{where}: feature {tile.feature_name(f.name)} has "
                                         f"bits outside tile {tile.name} (a *_SING tile holds "
                                         f"one IOB site)")
        if tile.name in db.iob_sites:
            site, _, tag = features[0].name.partition(".")
            used_iobs.add((tile.name, site))
            if "STEPDOWN" in tag:
                stepdown.setdefault(tile.name, set()).add(tag.split("[")[0])
        yield where, tile, features


def _stepdown(db: Database, used_iobs: set, stepdown: dict) -> Iterator[tuple[str, str]]:
    """As prjxray's fasm2frames: in a bank whose IOBs step down (1.2-1.8 V standards on a
    3.3 V bank), the unused IOBs and the bank's HCLK_IOI3 tiles step down too. Reads
    ``used_iobs`` and ``stepdown`` when the FASM's lines are done."""
    if not stepdown:
        return
    banks = db.bank_tiles()
    for bank, tiles in sorted(banks.items()):
        tags = set().union(*(stepdown.get(t, ()) for t in tiles))
        if not tags:
            continue
        where = f"STEPDOWN of bank {bank}"
        for tile in sorted(tiles):
            if tile in db.iob_sites:
                for site in db.iob_sites[tile]:
                    if (tile, site) not in used_iobs:
                        yield from ((where, f"{tile}.{site}.{tag}") for tag in sorted(tags))
            elif tile.startswith("HCLK_IOI3") and tile in db.tiles:
                yield where, f"{tile}.STEPDOWN"


def fasm_features(source, part: str = DEFAULT_PART, db_root=None) -> set[str]:
    """The canonical features (see the module's docstring) that FASM ``source`` (a path or the
    text) sets: what :func:`bit_to_features` must read back from its bitstream."""
    db = load(db_root, part)
    return {tile.feature_name(f.name) for _, tile, features in _features(source, db)
            for f in features if f.visible}


# ---------------------------------------------------------------- features -> frames

def fasm_to_frames(fasm_text_or_path, part: str = DEFAULT_PART, db_root=None) -> Frames:
    """The configuration frames (address -> 101 words) that set the FASM's features: every
    frame that holds a set bit (``xc7frames2bit`` fills the others with zeros).

    A bit that one line sets and another clears is an error naming both lines."""
    db = load(db_root, part)
    ones: dict[int, int] = {}  # word key (frame << 7 | word) -> mask
    zeros: dict[int, int] = {}
    for where, tile, features in _features(fasm_text_or_path, db):
        origin = tile.origin_words
        try:
            for f in features:
                for block, word, mask in f.ones:
                    key = origin[block] + word
                    ones[key] = ones.get(key, 0) | mask
                for block, word, mask in f.zeros:
                    key = origin[block] + word
                    zeros[key] = zeros.get(key, 0) | mask
        except TypeError:  # an origin of None
            raise BitstreamError(f"{where}: tile {tile.name} has no configuration bits of a "
                                 f"block type its features use (the database is broken)") from None
    for key, mask in zeros.items():
        if ones.get(key, 0) & mask:
            _conflict(fasm_text_or_path, db, key, ones[key] & mask)
    frames: Frames = {}
    for key, mask in ones.items():
        frame, word = key >> 7, key & 0x7F
        if word >= WORDS_PER_FRAME:
            raise BitstreamError(f"frame {frame:#010x}: word {word} beyond the frame's "
                                 f"{WORDS_PER_FRAME} (the database is broken)")
        frames.setdefault(frame, [0] * WORDS_PER_FRAME)[word] |= mask
    return frames


def _conflict(source, db: Database, word_key: int, mask: int):
    """Raise the error for bits that some features set and others clear, naming the lines."""
    bit = (word_key << 5) | (mask & -mask).bit_length() - 1
    setters, clearers = [], []
    for where, tile, features in _features(source, db):
        for f in features:
            for block, rel, value in f.bits:
                if tile.origin[block] + rel == bit:
                    (setters if value else clearers).append(
                        f"{where} ({tile.feature_name(f.name)})")
    raise BitstreamError(f"frame {bit >> FRAME_SHIFT:#010x} word {(bit >> 5) & 0x7F} bit "
                         f"{bit & 31}: set by {setters[0]} but cleared by {clearers[0]} "
                         f"(the FASM asks for two settings of one resource)")


def write_frm(frames: Frames, path) -> None:
    """prjxray's ``.frm`` text, the input of ``xc7frames2bit``: one line per frame,
    ``0xADDRESS 0xWORD0,...,0xWORD100``, addresses ascending."""
    lines = (f"0x{addr:08X} " + ",".join(f"0x{w:08X}" for w in frames[addr]) + "\n"
             for addr in sorted(frames))
    _write_atomic(Path(path), "".join(lines))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------- native tools

def find_tool(name: str, tools_dir=None) -> str:
    """prjxray's ``name`` (``xc7frames2bit``, ``bitread``): ``$XC7FRAMES2BIT`` / ``$BITREAD``,
    else in ``tools_dir``, else on ``PATH``, else where tools/native-fpga-tools.sh puts it."""
    env = os.environ.get(name.upper())
    candidates = [env] if env else [str(Path(tools_dir) / name) if tools_dir else None,
                                    shutil.which(name), str(NATIVE_BIN / name)]
    for c in filter(None, candidates):
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise BitstreamError(f"{name} not found{f' at ${name.upper()}={env}' if env else ''} "
                         f"(install Debian's prjxray package or run tools/native-fpga-tools.sh; "
                         f"put it on PATH or set {name.upper()})")


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
        raise BitstreamError(f"{what} failed (status {done.returncode}): {last[0]}")


def frames_to_bitstream(frames: Frames, bit_path, *, part: str = DEFAULT_PART, db_root=None,
                        tools_dir=None) -> Path:
    """Write ``frames`` as ``bit_path`` through ``xc7frames2bit`` (the frames file lies beside
    it, ``.frm``); ``bit_path`` is written only when that succeeds."""
    db = load(db_root, part)
    tool = find_tool("xc7frames2bit", tools_dir)
    bit_path = Path(bit_path)
    frm = bit_path.with_suffix(".frm")
    write_frm(frames, frm)
    tmp = bit_path.with_name(bit_path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        _run([tool, f"--part_file={db.part_yaml}", f"--part_name={part}", f"--frm_file={frm}",
              f"--output_file={tmp}"], "xc7frames2bit")
        if not tmp.is_file() or not tmp.stat().st_size:  # write errors return status 0
            raise BitstreamError(f"xc7frames2bit wrote no bitstream to {tmp} (is the folder "
                                 f"writable?)")
        tmp.replace(bit_path)
    finally:
        tmp.unlink(missing_ok=True)
    return bit_path


def write_bitstream(fasm_path, bit_path, *, part: str = DEFAULT_PART, db_root=None,
                    tools_dir=None) -> Path:
    """FASM (from nextpnr-himbaechel-xilinx) to ``bit_path``, a bitstream for ``part``."""
    frames = fasm_to_frames(Path(fasm_path), part, db_root)
    return frames_to_bitstream(frames, bit_path, part=part, db_root=db_root, tools_dir=tools_dir)


# ---------------------------------------------------------------- .bit -> features

def read_bits(bit_path, *, part: str = DEFAULT_PART, db_root=None, tools_dir=None) -> set[int]:
    """The set configuration bits of a ``.bit`` (keys ``frame << 12 | word << 5 | bit``), as
    prjxray's ``bitread`` decodes them (frame ECC bits left out)."""
    db = load(db_root, part)
    tool = find_tool("bitread", tools_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bits.txt"
        _run([tool, f"--part_file={db.part_yaml}", f"-o={out}", "-z", "-y", str(bit_path)],
             "bitread")
        bits = set()
        for line in out.read_text().splitlines():  # bit_FFFFFFFF_WWW_BB
            bits.add(int(line[4:12], 16) << FRAME_SHIFT | int(line[13:16]) << 5
                     | int(line[17:19]))
    return bits


def decode_bits(bits: set[int], part: str = DEFAULT_PART, db_root=None
                ) -> tuple[set[str], set[int]]:
    """(canonical features, bits no feature explains) of a set of bit keys: a feature is
    present when all its one-bits are set and all its zero-bits clear."""
    db = load(db_root, part)
    locator = db.locator()
    by_tile: dict[tuple[Tile, int], set[int]] = {}  # (tile, block) -> relative bits set
    for key in bits:
        for tile, block in locator.get((key >> 5) & COLUMN_WORD, ()):
            by_tile.setdefault((tile, block), set()).add(key - tile.origin[block])
    features, explained = set(), set()
    for (tile, block), rels in by_tile.items():
        index = db.tile_type(tile.segbits_type).decode_index()
        aliased = tile.segbits_type != tile.type
        found = set()
        for rel in rels:
            for f, others, clears in index.get((block, rel), ()):
                if others <= rels and rels.isdisjoint(clears) and (not aliased or tile.owns(f)):
                    features.add(tile.feature_name(f.name))
                    found.add(rel)
                    found |= others
        origin = tile.origin[block]
        explained.update(origin + r for r in found)
    return features, bits - explained


def bit_to_features(bit_path, *, part: str = DEFAULT_PART, db_root=None, tools_dir=None
                    ) -> set[str]:
    """The canonical features a ``.bit`` sets, decoded with ``bitread`` and the database
    alone: independent of :func:`fasm_to_frames`, so that tests can compare the two."""
    bits = read_bits(bit_path, part=part, db_root=db_root, tools_dir=tools_dir)
    return decode_bits(bits, part, db_root)[0]
