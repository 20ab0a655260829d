"""Reading a DICOM file's header: every element but the pixel data, whose place in the file is located, not read.

Elements after the pixel data (digital signatures, trailing padding) are read too, so nothing is lost. A file
whose dataset is deflated cannot be read in place and is read whole.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pydicom import config as pydicom_config
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread, read_dataset, read_partial
from pydicom.uid import DeflatedExplicitVRLittleEndian

from .errors import InputError

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"SQ", b"UT", b"UC", b"UR", b"SV", b"UV"})
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
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
    # Where each top-level element (file meta aside) lies in the source: unchanged ones are copied, not re-encoded.
    spans: Mapping[int, tuple[int, int]] = field(default_factory=dict)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence pydicom's warnings and value validation: their messages quote element values."""
    with warnings.catch_warnings(), pydicom_config.disable_value_validation():
        warnings.simplefilter("ignore")
        yield


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
                return Header(dcmread(path, force=True), None, False, True)
            stopped_at = fp.tell()
            fp.seek(0)
            start = 132 if fp.read(132)[128:] == b"DICM" else 0
            if _actual_vr_is_implicit(fp, start, implicit) != implicit:
                implicit = not implicit
                ds.set_original_encoding(implicit, little, ds.original_character_set)
            scanner = _Scanner(fp, size, implicit, little)
            scanner.dataset(start, size, implicit, top=True)
            span = scanner.pixels
            if span is None:
                if stopped_at != size:
                    raise InputError("header could not be parsed to its end")
                return Header(ds, None, implicit, little)
            if stopped_at != span.start:
                raise InputError("header could not be parsed to the pixel data")
            spans = scanner.spans
            if span.end < size:
                fp.seek(span.end)
                trailing = read_dataset(fp, implicit, little, parent_encoding=ds._character_set)
                for tag in trailing.keys():
                    ds[tag] = trailing.get_item(tag)
            return Header(ds, span, implicit, little, spans)
    except InputError:
        raise
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            NotImplementedError, struct.error, AttributeError, UnicodeError, OverflowError) as exc:
        raise InputError(f"cannot parse DICOM header ({type(exc).__name__})") from None


def _actual_vr_is_implicit(fp: BinaryIO, start: int, claimed: bool) -> bool:
    """Whether the dataset after the file meta is really implicit VR, decided as pydicom decides it.

    Some writers label an implicit VR dataset with an explicit VR transfer syntax (or the reverse). pydicom reads
    such a file by the VR it finds in the first element; the scan must walk it the same way, or a complete file
    looks truncated.
    """
    pos = start
    while True:
        fp.seek(pos)
        head = fp.read(8)
        if len(head) < 8:
            return claimed
        if head[:2] != b"\x02\x00":  # past the file meta (always explicit VR little endian)
            break
        vr = head[4:6]
        if vr in _LONG_VRS:
            pos += 12 + struct.unpack("<L", fp.read(4))[0]
        else:
            pos += 8 + struct.unpack("<H", head[6:8])[0]
    vr = head[4:6]
    return not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)


class _Scanner:
    """Walks the file's element headers, seeking past values, to prove every declared length fits the file.

    pydicom reads a short value without complaint; this walk is what tells a truncated file from a whole one.
    It also finds where the top-level pixel data element lies. Values are never read.
    """

    def __init__(self, fp: BinaryIO, size: int, implicit: bool, little: bool) -> None:
        self.fp, self.size, self.endian = fp, size, "<" if little else ">"
        self.pixels: PixelSpan | None = None
        self.spans: dict[int, tuple[int, int]] = {}

    def dataset(self, pos: int, end: int, implicit: bool, top: bool = False) -> int:
        """Walk elements from `pos` to `end`, or to an item delimiter; return the position after them."""
        while pos < end:
            start = pos
            tag, vr, length, value = self._head(pos, implicit, top)
            if tag == _ITEM_DELIMITER:
                return value
            if length == UNDEFINED_LENGTH:
                # An undefined-length UN holds implicit VR little endian items (PS3.5 6.2.2).
                pos = self._items(tag, value, implicit or vr == b"UN")
            else:
                pos = value + length
                if pos > self.size:
                    raise InputError(f"truncated: {_tag_text(tag)} declares {length} bytes, "
                                     f"{max(self.size - value, 0)} remain")
            if top and tag >> 16 != 0x0002:
                self.spans.setdefault(tag, (start, pos))
            if top and tag in PIXEL_TAGS and self.pixels is None:
                self.pixels = PixelSpan(tag, value - (12 if vr in _LONG_VRS else 8), pos)
        return pos

    def _items(self, tag: int, pos: int, implicit: bool) -> int:
        """Walk the items of an undefined-length value up to its sequence delimiter."""
        while True:
            item, _, length, value = self._head(pos, True, False)
            if item == _SEQUENCE_DELIMITER:
                return value
            if item != _ITEM:
                raise InputError(f"malformed: unexpected element inside {_tag_text(tag)}")
            if length == UNDEFINED_LENGTH:
                pos = self.dataset(value, self.size, implicit)
                continue
            pos = value + length
            if pos > self.size:
                raise InputError(f"truncated: an item of {_tag_text(tag)} runs past the end of file")

    def _head(self, pos: int, implicit: bool, top: bool) -> tuple[int, bytes, int, int]:
        """(tag, VR, value length, value start) of the element header at `pos`."""
        self.fp.seek(pos)
        head = self.fp.read(8)
        if len(head) < 8:
            raise InputError(f"truncated: file ends inside an element header at byte {pos}")
        meta = top and head[:2] == b"\x02\x00"  # file meta: always explicit VR little endian
        endian = "<" if meta else self.endian
        group, element = struct.unpack(f"{endian}HH", head[:4])
        tag = group << 16 | element
        if group == 0xFFFE or (implicit and not meta):
            return tag, b"", struct.unpack(f"{endian}L", head[4:8])[0], pos + 8
        vr = head[4:6]
        if vr in _LONG_VRS:
            extra = self.fp.read(4)
            if len(extra) < 4:
                raise InputError(f"truncated: file ends inside the header of {_tag_text(tag)}")
            return tag, vr, struct.unpack(f"{endian}L", extra)[0], pos + 12
        return tag, vr, struct.unpack(f"{endian}H", head[6:8])[0], pos + 8


_SEQUENCE_DEPTH = 64  # deeper nesting than any real file; a value nested deeper is not taken for a sequence
_ITEM_TAG = struct.Struct("<HHL")


def parses_as_sequence(value: bytes) -> bool:
    """True when `value` is, byte for byte, the items of an implicit VR little endian sequence.

    That is how a sequence stored as UN is encoded (PS3.5 6.2.2). Strict: every item and element length fits,
    every undefined length ends at its delimiter, and nothing is left over. An empty value is not a sequence.
    """
    return len(value) >= 8 and _items_end(value, 0, len(value), 0) == len(value)


def _items_end(buf: bytes, pos: int, end: int, depth: int) -> int:
    """Where the items from `pos` end: at `end` (defined length), or after a sequence delimiter when `end` is
    -1; -2 when the bytes are not items."""
    if depth > _SEQUENCE_DEPTH:
        return -2
    while pos != end:
        if pos + 8 > len(buf) or (end >= 0 and pos + 8 > end):
            return -2
        group, element, length = _ITEM_TAG.unpack_from(buf, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _SEQUENCE_DELIMITER and end < 0:
            return pos if length == 0 else -2
        if tag != _ITEM:
            return -2
        if length == UNDEFINED_LENGTH:
            pos = _elements_end(buf, pos, -1, depth)
        else:
            stop = pos + length
            if (end >= 0 and stop > end) or stop > len(buf) or _elements_end(buf, pos, stop, depth) != stop:
                return -2
            pos = stop
        if pos < 0 or (end >= 0 and pos > end):
            return -2
    return pos


def _elements_end(buf: bytes, pos: int, end: int, depth: int) -> int:
    """Where an item's elements from `pos` end: at `end`, or after an item delimiter when `end` is -1; -2 when
    they are not elements."""
    while pos != end:
        if pos + 8 > len(buf) or (end >= 0 and pos + 8 > end):
            return -2
        group, element, length = _ITEM_TAG.unpack_from(buf, pos)
        tag = group << 16 | element
        pos += 8
        if tag == _ITEM_DELIMITER and end < 0:
            return pos if length == 0 else -2
        if group == 0xFFFE:
            return -2
        if length == UNDEFINED_LENGTH:
            pos = _items_end(buf, pos, -1, depth + 1)
            if pos < 0:
                return -2
        else:
            pos += length
            if pos > len(buf) or (end >= 0 and pos > end):
                return -2
    return pos


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
