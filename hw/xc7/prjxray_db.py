"""Read the Project X-Ray database of a 7-series part: which configuration bits each FASM
feature of each tile sets or clears.

The facts come from prjxray's database layout (``tilegrid.json`` per fabric, ``segbits_*.db``,
``ppips_*.db`` per tile type, ``required_features.fasm`` and ``part.yaml`` per part); the code
is gamir's. A bit is addressed as one integer, ``frame << 12 | word << 5 | bit`` (a frame has
101 32-bit words, so ``word << 5 | bit`` < 4096): one addition turns a tile-relative bit of the
database into the bitstream's bit.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

WORDS_PER_FRAME = 101
FRAME_SHIFT = 12  # bit key = frame << 12 | word << 5 | bit
COLUMN_WORD = ~(0x7F << 7)  # word key (frame << 7 | word) -> its column's (minor frame 0)
BLOCK_TYPES = ("CLB_IO_CLK", "BLOCK_RAM")
DB_ENV = "PRJXRAY_DB_DIR"
DEFAULT_DB_DIRS = (Path.home() / ".cache/native-fpga/root/usr/share/prjxray/database",
                   Path("/usr/share/prjxray/database"))

_ADDRESS = re.compile(r"\[(\d+)\]$")


class BitstreamError(ValueError):
    """A FASM file, database or tool that the bitstream writer cannot use; the message says
    what and what to do (gamir's CLIs print it as one ``error:`` line)."""


def find_db_root(db_root=None) -> Path:
    """The prjxray database folder (the one holding ``zynq7/``, ``artix7/``, ...): ``db_root``
    (that folder or the ``share/prjxray`` above it), else ``$PRJXRAY_DB_DIR``, else the
    native-tools cache or Debian's ``/usr/share/prjxray/database``."""
    candidates = [db_root] if db_root else [os.environ.get(DB_ENV), *DEFAULT_DB_DIRS]
    for c in filter(None, candidates):
        for p in (Path(c), Path(c) / "database"):
            if p.is_dir() and any((p / fam / "settings.sh").is_file() for fam in os.listdir(p)):
                return p
    where = db_root or f"${DB_ENV} or {', '.join(map(str, DEFAULT_DB_DIRS))}"
    raise BitstreamError(f"no prjxray database in {where} (install Debian's prjxray-database or "
                         f"run tools/native-fpga-tools.sh; pass db_root or set {DB_ENV})")


def _simple_yaml(path: Path) -> dict[str, dict[str, str]]:
    """The two-level ``key:\\n  field: value`` mappings of prjxray's ``mapping/*.yaml``."""
    out: dict[str, dict[str, str]] = {}
    top = None
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(":")
        key, value = key.strip().strip("'\""), value.strip().strip("'\"")
        if not line.startswith((" ", "\t")):
            top = out.setdefault(key, {})
        elif top is not None:
            top[key] = value
    return out


@dataclass(frozen=True)
class Feature:
    """One database feature: its canonical name in its tile (``SLICEL_X0.ALUT.INIT[5]``) and
    its bits as ``(block, relative bit, value)`` (block: index into :data:`BLOCK_TYPES`);
    ``ones`` and ``zeros`` hold the same bits as ``(block, relative word key, mask)`` for the
    encoder's inner loop (a word key is a bit key >> 5)."""

    name: str
    bits: tuple[tuple[int, int, bool], ...]
    ones: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)
    zeros: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for attr, value in (("ones", True), ("zeros", False)):
            object.__setattr__(self, attr, tuple((b, rel >> 5, 1 << (rel & 31))
                                                 for b, rel, v in self.bits if v == value))

    @property
    def visible(self) -> bool:
        """Whether a bitstream shows it: a feature that only clears bits reads as absent."""
        return bool(self.ones)


@dataclass
class TileType:
    """The features of one tile type, by the name a FASM line gives (``INIT[5]``, indexes
    without the database's zero padding) and the pseudo-pips that set no bit."""

    name: str
    features: dict[str, Feature] = field(default_factory=dict)
    ppips: frozenset[str] = frozenset()
    _decode_index: dict | None = None
    _vectors: dict | None = None

    def vectors(self) -> dict[str, dict[int, Feature]]:
        """Multi-bit features (``ALUT.INIT``) by base name, then index: a FASM line
        ``X.INIT[63:0] = 64'h...`` looks up its set bits here."""
        if self._vectors is None:
            vectors: dict[str, dict[int, Feature]] = {}
            for name, f in self.features.items():
                m = _ADDRESS.search(name)
                if m:
                    vectors.setdefault(name[:m.start()], {})[int(m.group(1))] = f
            self._vectors = vectors
        return self._vectors

    def decode_index(self) -> dict[tuple[int, int], list[tuple[Feature, frozenset, frozenset]]]:
        """Visible features by (block, lowest set bit), each with its other set bits and its
        clear bits: a decoder looks at a feature only when that bit is set. (A feature's bits
        lie in one block type: each comes from one segbits file.)"""
        if self._decode_index is None:
            index: dict[tuple[int, int], list] = {}
            for f in self.features.values():
                if f.visible:
                    ones = sorted(rel for _, rel, v in f.bits if v)
                    index.setdefault((f.bits[0][0], ones[0]), []).append(
                        (f, frozenset(ones[1:]), frozenset(rel for _, rel, v in f.bits if not v)))
            self._decode_index = index
        return self._decode_index


@dataclass(frozen=True, eq=False)  # one object per tile: hashed by identity, fast
class Tile:
    """A tile of the grid: its type, the type whose features it has (another for the
    ``*_SING`` IO tiles, which hold one of a full IO tile's two sites and half its words), where
    each block type's bits start (``column``: the first frame's address; ``origin``: the bit key
    of relative bit 0, below the column's for a bottom ``*_SING`` tile) and which relative words
    it owns.

    An alias's site map (``IOB33_Y0`` -> ``IOB33_Y1``) names sites as tile types do, not as
    features do (``IOB_Y0``, ``IOB_Y1``): as in prjxray, features keep their site names, and
    nextpnr names the site of a top ``*_SING`` tile ``IOB_Y1``."""

    name: str
    type: str
    segbits_type: str
    column: tuple[int | None, int | None]
    origin: tuple[int | None, int | None]
    words: tuple[range | None, range | None]
    origin_words: tuple[int | None, int | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self):  # origins are whole words: as word keys for the encoder
        object.__setattr__(self, "origin_words",
                           tuple(None if o is None else o >> 5 for o in self.origin))

    def feature_name(self, key: str) -> str:
        """The FASM name (``TILE.SITE.FEATURE``) of the tile's feature ``key``."""
        return f"{self.name}.{key}"

    def owns(self, feature: Feature) -> bool:
        """Whether every bit of ``feature`` lies in this tile's words (always, except for the
        ``*_SING`` tiles, which own half of their aliased type's words)."""
        for block, rel, _ in feature.bits:
            words = self.words[block]
            if words is None or ((rel & 0xFFF) >> 5) not in words:
                return False
        return True


def _parse_bit(text: str, block: int) -> tuple[int, int, bool]:
    """``!28_05`` -> ``(block, 28 << 12 | 5, False)``: frame 28 of the column, bit 5 of the
    tile's words, must be 0."""
    value = not text.startswith("!")
    frame, _, bit = text.lstrip("!").partition("_")
    return block, int(frame) << FRAME_SHIFT | int(bit), value


def _canonical(name: str) -> str:
    """``INIT_00[007]`` -> ``INIT_00[7]``: FASM addresses carry no padding."""
    m = _ADDRESS.search(name)
    return name if m is None else f"{name[:m.start()]}[{int(m.group(1))}]"


class Database:
    """The parts of the prjxray database one part's bitstream needs; tile types load on first
    use. Use :func:`load` (cached per part and folder)."""

    def __init__(self, db_root, part: str):
        self.root = find_db_root(db_root)
        self.part = part
        self.family_dir = self._family_dir(part)
        self.part_dir = self.family_dir / part
        device = _simple_yaml(self.family_dir / "mapping/parts.yaml")[part]["device"]
        fabric = _simple_yaml(self.family_dir / "mapping/devices.yaml")[device]["fabric"]
        self.tilegrid_path = self.family_dir / fabric / "tilegrid.json"
        grid = json.loads(self.tilegrid_path.read_text())
        self.tiles = self._read_tiles(grid)
        # FASM site names of the IOB tiles (by the parity of the site's Y, as prjxray names them)
        self.iob_sites = {name: sorted({f"IOB_Y{int(site[-1]) % 2}" for site in info["sites"]})
                          for name, info in grid.items() if "IOB33" in info["type"]}
        self._types: dict[str, TileType] = {}
        self._locator: dict[int, list[tuple[Tile, int]]] | None = None

    def _family_dir(self, part: str) -> Path:
        for fam in sorted(os.listdir(self.root)):
            if (self.root / fam / part / "part.yaml").is_file():
                return self.root / fam
        raise BitstreamError(f"part {part!r} is not in the prjxray database {self.root} "
                             f"(give a part such as xc7z020clg400-1)")

    @property
    def part_yaml(self) -> Path:
        return self.part_dir / "part.yaml"

    def required_features(self) -> list[str]:
        """Features every bitstream of the part sets (prjxray's ``required_features.fasm``)."""
        path = self.part_dir / "required_features.fasm"
        return path.read_text().splitlines() if path.is_file() else []

    def bank_tiles(self) -> dict[str, set[str]]:
        """The IOB33 and HCLK_IOI3 tiles of each I/O bank (``package_pins.csv``,
        ``part.json``)."""
        banks: dict[str, set[str]] = {}
        for bank, loc in json.loads((self.part_dir / "part.json").read_text())["iobanks"].items():
            banks.setdefault(bank, set()).add(f"HCLK_IOI3_{loc}")
        with open(self.part_dir / "package_pins.csv", newline="") as f:
            for row in csv.DictReader(f):
                banks.setdefault(row["bank"], set()).add(row["tile"])
        return banks

    @staticmethod
    def _read_tiles(grid: dict) -> dict[str, Tile]:
        tiles = {}
        for name, info in grid.items():
            column: list[int | None] = [None, None]
            origin: list[int | None] = [None, None]
            words: list[range | None] = [None, None]
            segbits_type = info["type"]
            for block_name, bits in info.get("bits", {}).items():
                block = BLOCK_TYPES.index(block_name)
                offset, shift = bits["offset"], 0
                alias = bits.get("alias")
                if alias:
                    segbits_type, shift = alias["type"], alias["start_offset"]
                column[block] = int(bits["baseaddr"], 0)
                origin[block] = (column[block] << FRAME_SHIFT) + ((offset - shift) << 5)
                words[block] = range(shift, shift + bits["words"])
            tiles[name] = Tile(name, info["type"], segbits_type, tuple(column), tuple(origin),
                               tuple(words))
        return tiles

    def tile_type(self, name: str) -> TileType:
        """The features of tile type ``name`` (no segbits file: only its pseudo-pips)."""
        if name not in self._types:
            self._types[name] = self._read_tile_type(name)
        return self._types[name]

    def _read_tile_type(self, name: str) -> TileType:
        low = name.lower()
        tt = TileType(name)
        for block, suffix in enumerate(("", ".block_ram")):
            path = self.family_dir / f"segbits_{low}{suffix}.db"
            if not path.is_file():
                continue
            prefix = len(name) + 1
            for line in path.read_text().splitlines():
                parts = line.split()
                if not parts:
                    continue
                key = _canonical(parts[0][prefix:])
                tt.features[key] = Feature(key, tuple(_parse_bit(b, block) for b in parts[1:]))
        path = self.family_dir / f"ppips_{low}.db"
        if path.is_file():
            tt.ppips = frozenset(line.split()[0][len(name) + 1:]
                                 for line in path.read_text().splitlines() if line.strip())
        return tt

    def locator(self) -> dict[int, list[tuple[Tile, int]]]:
        """The tiles (and block index) that own each word of each column, by column word key
        (``column << 7 | word``; a bit key's is ``(key >> 5) & COLUMN_WORD``)."""
        if self._locator is None:
            loc: dict[int, list[tuple[Tile, int]]] = {}
            for tile in self.tiles.values():
                for block, (base, origin, words) in enumerate(
                        zip(tile.column, tile.origin, tile.words)):
                    if base is None:
                        continue
                    first = (origin - (base << FRAME_SHIFT)) >> 5  # may be below 0: *_SING
                    for w in words:
                        loc.setdefault(base << 7 | first + w, []).append((tile, block))
            self._locator = loc
        return self._locator


@functools.lru_cache(maxsize=4)
def load(db_root, part: str) -> Database:
    """The database of ``part`` under ``db_root`` (None: :func:`find_db_root`), parsed once."""
    return Database(str(find_db_root(db_root)), part)
