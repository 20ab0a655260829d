"""The residual check: prove that a written file holds none of its input's identifying values.

Every byte written is searched except the pixel data value (burned-in text is the burned-in gate's concern, and
random pixel bytes would match short patterns by chance). A hit is attributed to the element that holds it, by
tag, never by value.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from .identifiers import Needle, count, find
from .read import PixelSpan

# Our own keyed UIDs are 39 random digits: a date could occur in them by chance, so they are not searched.
_OUR_UIDS = re.compile(rb"2\.25\.[0-9]{1,40}")


@dataclass(frozen=True)
class Finding:
    """An identifying value found: which attribute it came from and where it was found (a tag path or a part)."""

    attribute: str
    where: str

    def as_dict(self) -> dict[str, str]:
        return {"attribute": self.attribute, "where": self.where}


def check_file(
    path: Path, pixels: PixelSpan | None, patterns: tuple[Needle, ...], searchable: bytes | None = None
) -> list[Finding]:
    """Search the written file at `path` (all but its pixel data value) for the patterns.

    `searchable` may give those bytes when the writer still holds them, so that the file is read only on a hit.

    An identifying value that occurs only inside vocabulary elements (code strings, coded concepts, the
    manufacturer and model: values from controlled lists) is a word that happens to match, not a leak; any other
    occurrence, attributed to an element or not, is a finding.
    """
    if not patterns:
        return []
    haystack = _OUR_UIDS.sub(b"", _searchable(path, pixels) if searchable is None else searchable).lower()
    hits = find(haystack, patterns)
    if not hits:
        return []
    elements = _elements(path)
    findings = []
    for needle in hits:
        places = [where for where, vocabulary, value in elements if not vocabulary and count(value, needle)]
        in_vocabulary = sum(count(value, needle) for _, vocabulary, value in elements if vocabulary)
        if not places and count(haystack, needle) > in_vocabulary:
            places = ["file bytes"]
        findings += [Finding(needle.attribute, where) for where in places]
    return findings


def check_path(relative: str, patterns: tuple[Needle, ...]) -> list[Finding]:
    """Search an output path (relative to the output root)."""
    text = _OUR_UIDS.sub(b"", relative.encode("utf-8", "surrogateescape"))
    return [Finding(n.attribute, "output path") for n in find(text, patterns)]


def _searchable(path: Path, pixels: PixelSpan | None) -> bytes:
    data = path.read_bytes() if pixels is None else _without(path, pixels)
    return _inflated(data)


def _without(path: Path, pixels: PixelSpan) -> bytes:
    """The file's bytes with the pixel data value left out (its tag and length stay)."""
    with open(path, "rb") as f:
        head = f.read(pixels.start + 12)
        f.seek(pixels.end)
        return head + f.read()


def _inflated(data: bytes) -> bytes:
    """A deflated dataset inflated after its file meta, so its values can be searched."""
    if data[128:132] != b"DICM" or b"1.2.840.10008.1.2.1.99" not in data[132:1024]:
        return data
    (group_length,) = struct.unpack("<L", data[140:144])
    start = 144 + group_length
    try:
        return data[:start] + zlib.decompress(data[start:], -zlib.MAX_WBITS)
    except zlib.error:
        return data


# Elements whose values come from controlled lists or name software and makers: a match there is a common word,
# not an identifier (coded concepts, coding schemes, manufacturer and model, implementation class and version).
VOCABULARY_TAGS = frozenset({0x00080100, 0x00080102, 0x00080104, 0x00080115, 0x00080116, 0x00080070, 0x00081090,
                             0x00020012, 0x00020013})


def _elements(path: Path) -> list[tuple[str, bool, bytes]]:
    """(tag path, is vocabulary, lower-cased value bytes) of every element of the written file but pixel data."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # unreadable: every hit stays unattributed, and so counts
        return []
    found = _walk(ds, "")
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        found += [("file meta " + where, vocabulary, value) for where, vocabulary, value in _walk(meta, "")]
    found.append(("preamble", False, (getattr(ds, "preamble", None) or b"").lower()))
    return found


def _walk(ds: Dataset, path: str) -> list[tuple[str, bool, bytes]]:
    found = []
    for elem in ds:
        where = f"{path}({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                found += _walk(item, f"{where}[{i}].")
        else:
            vocabulary = elem.VR == "CS" or int(elem.tag) in VOCABULARY_TAGS
            found.append((where, vocabulary, _value_bytes(elem.value).lower()))
    return found


def _value_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "ignore")
