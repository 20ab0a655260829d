"""Reading a DICOM file's header: every element but the pixel data, whose place in the file is located, not read.

Elements after the pixel data (digital signatures, trailing padding) are read too, so nothing is lost. A file
whose dataset is deflated cannot be read in place and is read whole.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread, read_dataset, read_partial
from pydicom.uid import DeflatedExplicitVRLittleEndian

from .errors import InputError

PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR", b"SV", b"UV"})
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class PixelSpan:
    """Where the pixel data element (tag, header, value, delimiter) lies in the source file."""

    tag: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class Header:
    """A file's dataset without its pixel data element, and where that element is."""

    dataset: FileDataset
    pixels: PixelSpan | None  # None: no pixel data, or the whole file was read (deflated)
    implicit_vr: bool
    little_endian: bool


def _stop_at_pixels(tag: int, vr: str | None, length: int) -> bool:
    return tag in PIXEL_TAGS


def read_header(path: Path) -> Header:
    """Read `path` up to and around its pixel data. Raises InputError naming the problem, never a value."""
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as fp:
            ds = read_partial(fp, stop_when=_stop_at_pixels, force=True)
            implicit, little = ds.original_encoding
            if implicit is None or little is None:
                raise InputError("no DICOM dataset found")
            meta = getattr(ds, "file_meta", None)
            if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                whole = dcmread(path, force=True)
                return Header(whole, None, False, True)
            position = fp.tell()
            if position >= size:
                return Header(ds, None, implicit, little)
            span = _locate_pixels(fp, position, size, implicit, little)
            if span.end < size:
                fp.seek(span.end)
                trailing = read_dataset(fp, implicit, little, parent_encoding=ds._character_set)
                for tag in trailing.keys():
                    ds[tag] = trailing.get_item(tag)
            return Header(ds, span, implicit, little)
    except InputError:
        raise
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            NotImplementedError, struct.error, AttributeError, UnicodeError, OverflowError) as exc:
        raise InputError(f"cannot parse DICOM header ({type(exc).__name__})") from None


def _locate_pixels(fp, start: int, size: int, implicit: bool, little: bool) -> PixelSpan:  # type: ignore[no-untyped-def]
    """Parse the pixel element's header and, for encapsulated data, walk its items by seeking."""
    e = "<" if little else ">"
    fp.seek(start)
    head = fp.read(8)
    if len(head) < 8:
        raise InputError("pixel data element header truncated")
    group, element = struct.unpack(f"{e}HH", head[:4])
    tag = group << 16 | element
    if tag not in PIXEL_TAGS:
        raise InputError("header could not be parsed to its end")
    if implicit:
        (length,) = struct.unpack(f"{e}L", head[4:8])
        value_start = start + 8
    elif head[4:6] in _LONG_VRS:
        extra = fp.read(4)
        if len(extra) < 4:
            raise InputError("pixel data element header truncated")
        (length,) = struct.unpack(f"{e}L", extra)
        value_start = start + 12
    else:
        (length,) = struct.unpack(f"{e}H", head[6:8])
        value_start = start + 8
    if length != UNDEFINED_LENGTH:
        end = value_start + length
        if end > size:
            raise InputError(f"pixel data truncated: {length} bytes declared, {size - value_start} present")
        return PixelSpan(tag, start, end)
    position = value_start
    while True:
        fp.seek(position)
        item = fp.read(8)
        if len(item) < 8:
            raise InputError("encapsulated pixel data truncated: no sequence delimiter before end of file")
        item_group, item_element, item_length = struct.unpack(f"{e}HHL", item)
        item_tag = item_group << 16 | item_element
        position += 8
        if item_tag == _SEQUENCE_DELIMITER:
            return PixelSpan(tag, start, position)
        if item_tag != _ITEM or item_length == UNDEFINED_LENGTH:
            raise InputError("encapsulated pixel data malformed: unexpected element among fragments")
        position += item_length
        if position > size:
            raise InputError("encapsulated pixel data truncated: a fragment runs past the end of file")
