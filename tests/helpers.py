"""Shared helpers for the tests: reading output bytes as they would be searched, walking trees."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pydicom
from pydicom.uid import DeflatedExplicitVRLittleEndian

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def searchable_bytes(path: Path) -> bytes:
    """The file's bytes, with a deflated dataset inflated so that a byte search sees every value."""
    data = path.read_bytes()
    if data[128:132] != b"DICM":
        return data
    meta = pydicom.dcmread(path, stop_before_pixels=True, force=True).file_meta
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return data
    (group_length,) = struct.unpack("<L", data[140:144])
    start = 144 + group_length
    return data[:start] + zlib.decompress(data[start:], -zlib.MAX_WBITS)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def valid_uid(value: str) -> bool:
    return len(value) <= 64 and bool(UID_PATTERN.match(value))
