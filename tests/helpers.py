"""Shared helpers for the tests: reading output bytes as they would be searched, walking trees, killing runs."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

from pydicom.filereader import read_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def searchable_bytes(path: Path) -> bytes:
    """The file's bytes, with a deflated dataset inflated so that a byte search sees every value."""
    data = path.read_bytes()
    if data[128:132] != b"DICM":
        return data
    meta = read_file_meta_info(path)  # the dataset may be one pydicom misreads (tests/adversarial.py)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return data
    (group_length,) = struct.unpack("<L", data[140:144])
    start = 144 + group_length
    return data[:start] + zlib.decompress(data[start:], -zlib.MAX_WBITS)


def files_under(root: Path) -> list[Path]:
    """Every regular file under `root`. A folder removed while it is walked (a node's outbox empties and prunes
    its folders as it forwards) is passed over, where `Path.rglob` raises."""
    found: list[Path] = []
    for folder, _, names in os.walk(root):  # os.walk ignores a folder that vanished before it was listed
        found.extend(path for path in (Path(folder) / name for name in names) if path.is_file())
    return sorted(found)


def valid_uid(value: str) -> bool:
    return len(value) <= 64 and bool(UID_PATTERN.match(value))


def journalled(journal: Path) -> int:
    """How many files a run journal holds (its lines of a file; not its head, nor its lists of changes)."""
    return journal.read_text().count('"id": ') if journal.exists() else 0


def kill_mid_run(command: list[str], journal: Path, lines: int, timeout: float = 120.0) -> None:
    """Start `command` and SIGKILL it once its run journal holds `lines` files (or at the deadline)."""
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and journalled(journal) < lines:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()


def read_report(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A run report's provenance (its first line), its records and its summary (its last line)."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert "provenance" in lines[0] and "summary" in lines[-1]
    return lines[0]["provenance"], lines[1:-1], lines[-1]["summary"]


def comparable_report(path: Path) -> list[dict[str, Any]]:
    """A report without what differs between identical runs: the provenance line (start time) and the elapsed time."""
    _, records, summary = read_report(path)
    return [*records, {k: v for k, v in summary.items() if k != "elapsed_seconds"}]


def small_slice(ds: Any, z: int, pixels: bytes) -> None:
    """Give `ds` the geometry and pixels of one 8x8 axial slice `z` of a 3 mm series (16-bit, signed): enough for
    dcm2niix to stack a series of them."""
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [-12, -12, 3.0 * z]
    ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [3, 3], 3, 3
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 1
    ds.PixelData = pixels
