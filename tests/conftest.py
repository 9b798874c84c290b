"""Fixtures shared by the test folders (the session setup for tests/ and sim/ is the root
conftest.py): the photos folder the training CLIs read, and a model file's parts."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from spec.fileformat import FORMAT_VERSION, MAGIC


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """A ``--data`` folder of the training CLIs (read only: copy it to change it): ``train/``
    and ``val/`` of one scikit-image photo each, small enough for steps of seconds."""
    from skimage import data, io

    folder = tmp_path_factory.mktemp("photos")
    for split, img in (("train", data.astronaut()[:96, :96]), ("val", data.coffee()[:64, :64])):
        (folder / split).mkdir()
        io.imsave(folder / split / "0.png", img, check_contrast=False)
    return folder


class ModelFileParts:
    """A model file as its header (a dict) and payload, to change one and join them again."""

    #: Version 2's prefix: magic, version, header length, header CRC-32.
    PREFIX = struct.Struct("<8sIII")

    @classmethod
    def split(cls, data: bytes) -> tuple[dict, bytes]:
        """(header, payload) of a version 2 file."""
        magic, version, hlen, _ = cls.PREFIX.unpack_from(data)
        assert magic == MAGIC and version == FORMAT_VERSION == 2
        return json.loads(data[cls.PREFIX.size:cls.PREFIX.size + hlen]), data[cls.PREFIX.size + hlen:]

    @classmethod
    def join(cls, header: dict, payload: bytes, *, version: int = FORMAT_VERSION,
             fix_lengths: bool = False) -> bytes:
        """A file of ``header`` and ``payload`` with a right header CRC (what the checks behind it
        see; version 1 has none), the payload's length and CRC repaired if ``fix_lengths``."""
        if fix_lengths:
            header["payload_nbytes"] = len(payload)
            header["payload_crc32"] = zlib.crc32(payload)
        text = json.dumps(header).encode()
        if version == 1:
            return struct.pack("<8sII", MAGIC, 1, len(text)) + text + payload
        return cls.PREFIX.pack(MAGIC, version, len(text), zlib.crc32(text)) + text + payload


@pytest.fixture(scope="session")
def model_file() -> type[ModelFileParts]:
    """:class:`ModelFileParts`: split a model file and join it again."""
    return ModelFileParts
