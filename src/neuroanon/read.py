"""Reading a DICOM file's header: every element but the pixel data, whose place in the file is located, not read.

Elements after the pixel data (digital signatures, trailing padding) are read too, so nothing is lost. A file
whose dataset is deflated cannot be read in place and is read whole.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from pydicom import config as pydicom_config
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import dcmread, read_dataset, read_partial
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .discover import HEAD, LONG_LENGTH_VRS, reads_as_elements
from .errors import InputError
from .tags import is_pixel_tag, tag_text

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
# The explicit VRs whose element header gives a 4-byte length after two reserved bytes (PS3.5 7.1.2)
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
    value_at: int | None = None  # where its value starts, from `start`, when its length is defined (native)

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
    after_stream: bool = False  # a deflated file: bytes other than zeros follow its deflate stream (not read)


@contextmanager
def quiet() -> Iterator[None]:
    """Silence pydicom's warnings and value validation: their messages quote element values."""
    with warnings.catch_warnings(), pydicom_config.disable_value_validation():
        warnings.simplefilter("ignore")
        yield


def is_dicomdir(ds: object) -> bool:
    """Whether a dataset read from a file is a DICOMDIR: its file meta names the Media Storage Directory class."""
    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS


def _stop_at_pixels(tag: int, vr: str | None, length: int) -> bool:
    """pydicom's read of the top level stops at the pixel data, or at eight zero bytes where an element is due
    (tag (0000,0000), empty): the scan then tells padding from a cut (`_Scanner._head`)."""
    return is_pixel_tag(tag) or not tag and not length


def zeros_from(fp: BinaryIO, size: int) -> int:
    """Where the run of zero bytes that ends the file begins (`size` if its last byte is not zero), read backwards in
    blocks growing from 4 kB."""
    end, block = size, 1 << 12
    while end:
        step = min(end, block)
        fp.seek(end - step)
        kept = len(fp.read(step).rstrip(b"\0"))
        if kept:
            return end - step + kept
        end, block = end - step, min(block * 4, 1 << 22)
    return 0


def read_header(path: Path) -> Header:
    """Read `path` up to and around its pixel data. Raises InputError naming the problem, never a value."""
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as file:
            start = 132 if file.read(132)[128:] == b"DICM" else 0
            body, syntax = _file_meta_end(file, start)
            if not start and not syntax:
                _not_implicit_big_endian(file, size)
            if syntax == DeflatedExplicitVRLittleEndian:  # read whole, once: not in place
                return _read_deflated(path, file, body)
            file.seek(0)
            if syntax == ExplicitVRBigEndian:
                ds, stopped_at, scanner, fp = _read_big_endian(path, file, start, body, size)
            else:
                read = _read_little_endian(path, file, start, size)
                if isinstance(read, Header):
                    return read
                ds, stopped_at, scanner, fp = read
            return _header(ds, stopped_at, scanner, fp)
    except InputError:
        raise
    except zlib.error:
        raise InputError("the deflated data set cannot be inflated (a corrupt deflate stream)") from None
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            NotImplementedError, struct.error, AttributeError, UnicodeError, OverflowError) as exc:
        raise InputError(f"cannot parse DICOM header ({type(exc).__name__})") from None


def _not_implicit_big_endian(fp: BinaryIO, size: int) -> None:
    """Refuse, saying so, a bare dataset in implicit VR big endian (ACR-NEMA's), which no DICOM transfer syntax is
    and pydicom does not read: read as little endian it looks truncated (found from outside)."""
    fp.seek(0)
    head = fp.read(HEAD)
    if reads_as_elements(head, size, ">", False) and not any(
            reads_as_elements(head, size, endian, explicit) for endian, explicit in (("<", False), ("<", True),
                                                                                     (">", True))):
        raise InputError("a dataset in implicit VR big endian (ACR-NEMA), which no DICOM transfer syntax is: not "
                         "read; convert it first (dcmtk: dcmconv +ti IN OUT)")


def _read_little_endian(path: Path, fp: BinaryIO, start: int, size: int,
                        ) -> Header | tuple[FileDataset, int, _Scanner, BinaryIO]:
    """Read a little endian file up to its pixel data (or a deflated one whole, as its Header); return the dataset,
    where the read stopped, the scan, and the file to read on through."""
    _zeros_in_items(fp, start, size)
    fp.seek(0)
    ds = read_partial(fp, stop_when=_stop_at_pixels, force=True)
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        raise InputError("no DICOM dataset found")
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return _read_deflated(path, fp, _file_meta_end(fp, start)[0])
    stopped_at = fp.tell()
    if _actual_vr_is_implicit(fp, start, implicit) != implicit:
        implicit = not implicit
        ds.set_original_encoding(implicit, little, ds.original_character_set)
    scanner = _Scanner(fp, size, implicit, little)
    scanner.dataset(start, size, implicit, top=True)
    return ds, stopped_at, scanner, fp


def _zeros_in_items(fp: BinaryIO, start: int, size: int) -> None:
    """Fail a file that ends in zero bytes where an element of an item is due (cut inside a sequence, the rest
    unwritten), before pydicom reads them one by one as empty elements (found from outside: 32 MB took half a
    minute, 2 GB would take most of an hour, deaf to signals). Walked as the file meta names its encoding, when it
    does; another error is left to the read that follows."""
    body, syntax = _file_meta_end(fp, start)
    if syntax not in (ImplicitVRLittleEndian, ExplicitVRLittleEndian) or size - zeros_from(fp, size) < 8:
        return
    implicit = _actual_vr_is_implicit(fp, start, syntax == ImplicitVRLittleEndian)
    try:
        _Scanner(fp, size, implicit, True).dataset(body, size, implicit, top=True)
    except _ZeroBytes:
        raise
    except InputError:
        pass


# The most bytes after the pixel data read (they are read into memory: found from outside, an element there followed
# by gigabytes of zeros took a worker's memory to twice that, and verify 17 GB for a 2 GB one); a vendor's group
# after the pixel data is megabytes. The engine declines a longer tail (unless zeros pad the file), `read_header`
# fails it.
MAX_TAIL_BYTES = 256 << 20
TAIL_TOO_LONG = f"more than {MAX_TAIL_BYTES >> 20} MiB after the pixel data (not read)"
MAX_INFLATED_BYTES = 512 << 20  # a deflated data set, inflated into memory (as pydicom reads it)
INFLATED_TOO_LONG = f"a deflated data set of more than {MAX_INFLATED_BYTES >> 20} MiB inflated (not read)"


def inflated(fp: BinaryIO, start: int) -> tuple[bytes, bool, bool]:
    """The deflated data set from `start`, inflated, whether its stream ended, and whether bytes other than zeros
    (a pad byte) follow it; in steps of 16 MiB, up to `MAX_INFLATED_BYTES` (found from outside: a file of a few
    megabytes of deflated zeros took gigabytes). Raises InputError(INFLATED_TOO_LONG) past them, zlib.error for a
    damaged stream."""
    fp.seek(start)
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    parts: list[bytes] = []
    size = 0
    # (until the stream ends: bytes after it, a pad byte, stay unconsumed, and looping on them never ended, found
    # from outside)
    while not inflate.eof and (chunk := fp.read(1 << 20)):
        while chunk and not inflate.eof:
            parts.append(inflate.decompress(chunk, min(16 << 20, MAX_INFLATED_BYTES + 1 - size)))
            size += len(parts[-1])
            if size > MAX_INFLATED_BYTES:
                raise InputError(INFLATED_TOO_LONG)
            chunk = inflate.unconsumed_tail
    parts.append(inflate.flush())
    data = b"".join(parts)
    return data, inflate.eof, inflate.eof and _bytes_after(inflate.unused_data + fp.read(8), data, fp)


def _bytes_after(extra: bytes, data: bytes, fp: BinaryIO) -> bool:
    """Whether bytes other than zeros (a pad byte) follow a deflate stream: `extra` and the rest of `fp`. A gzip
    trailer (the inflated data's CRC-32 and length), which some writers leave, is none (pydicom's own deflated test
    file has one)."""
    if extra.strip(b"\x00") and extra.startswith(struct.pack("<LL", zlib.crc32(data), len(data) & 0xFFFFFFFF)):
        extra = extra[8:]
    return bool(extra.strip(b"\x00")) or any(chunk.strip(b"\x00") for chunk in iter(lambda: fp.read(1 << 20), b""))


def _read_deflated(path: Path, fp: BinaryIO, body: int) -> Header:
    """A deflated file, read whole (not in place), as far as `inflated` reads it. Its dataset, inflated, is walked as
    a file's is: pydicom reads a short value without complaint, and a deflate stream has no checksum (found from
    outside: a stream damaged near its end inflated to pixel data two bytes short, and was released)."""
    data, _, after = inflated(fp, body)
    _Scanner(io.BytesIO(data), len(data), False, True).dataset(0, len(data), False, top=True)
    return Header(dcmread(path, force=True), None, False, True, after_stream=after)


def _header(ds: FileDataset, stopped_at: int, scanner: _Scanner, fp: BinaryIO) -> Header:
    """The Header of a file read up to its pixel data: the elements after the pixel data read in too."""
    implicit, little = scanner.implicit, scanner.endian == "<"
    span = scanner.pixels
    if span is None:
        if stopped_at != scanner.end:
            raise InputError("header could not be parsed to its end")
        return Header(ds, None, implicit, little)
    if stopped_at != span.start:
        raise InputError("header could not be parsed to the pixel data")
    if scanner.end - span.end > MAX_TAIL_BYTES:
        raise InputError(TAIL_TOO_LONG)
    if span.end < scanner.end:
        fp.seek(span.end)
        trailing = read_dataset(fp, implicit, little, scanner.end - span.end, parent_encoding=ds._character_set)
        _trim_undefined_un(trailing, scanner.undefined_un)
        for tag in trailing.keys():
            ds[tag] = trailing.get_item(tag)
    return Header(ds, span, implicit, little, scanner.spans)


def _file_meta_end(fp: BinaryIO, start: int) -> tuple[int, str]:
    """Where the dataset after the file meta (always explicit VR little endian) begins, and the transfer syntax
    the file meta names ("" when none)."""
    pos, syntax = start, ""
    while True:
        fp.seek(pos)
        head = fp.read(8)
        if len(head) < 8 or head[:2] != b"\x02\x00":
            return pos, syntax
        if head[4:6] in LONG_LENGTH_VRS:
            extra = fp.read(4)
            if len(extra) < 4:
                return pos, syntax
            length, value = struct.unpack("<L", extra)[0], pos + 12
        else:
            length, value = struct.unpack("<H", head[6:8])[0], pos + 8
        if head[:4] == b"\x02\x00\x10\x00":  # (0002,0010) TransferSyntaxUID
            syntax = fp.read(min(length, 64)).rstrip(b"\x00 ").decode("ascii", "replace")
        pos = value + length


def _actual_vr_is_implicit(fp: BinaryIO, start: int, claimed: bool) -> bool:
    """Whether the dataset after the file meta is really implicit VR, decided as pydicom decides it.

    Some writers label an implicit VR dataset with an explicit VR transfer syntax (or the reverse). pydicom reads
    such a file by the VR it finds in the first element; the scan must walk it the same way, or a complete file
    looks truncated.
    """
    fp.seek(_file_meta_end(fp, start)[0])
    head = fp.read(8)
    if len(head) < 8:
        return claimed
    vr = head[4:6]
    return not (0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B)


def _read_big_endian(path: Path, fp: BinaryIO, start: int, body: int, size: int,
                     ) -> tuple[FileDataset, int, _Scanner, BinaryIO]:
    """Read an Explicit VR Big Endian file up to its pixel data, where pydicom alone misreads two rare forms.

    pydicom reads command-group (0000) elements at the start of a dataset as implicit VR little endian, whatever
    the transfer syntax: here the dataset is read from its first element in the file's own encoding. And pydicom
    reads the items of an undefined-length UN in the file's byte order, though they are implicit VR little
    endian (PS3.5 6.2.2): the scan finds each such element, pydicom reads it through a view of the file that
    gives it a defined length (its items and delimiter, kept as bytes), and the delimiter is then cut off. The
    element becomes what a node without the dictionary writes for a sequence: a UN of defined length holding
    its items. Returns the dataset, where the read stopped, the scan, and the view to read on through.
    """
    implicit = _actual_vr_is_implicit(fp, start, False)
    scanner = _Scanner(fp, size, implicit, False)
    scanner.dataset(start, size, implicit, top=True)
    fp.seek(0)
    head = read_partial(io.BytesIO(fp.read(body)), force=True)  # the preamble and the file meta
    view = cast(BinaryIO, _Patched(fp, {value - 4: struct.pack(">L", end - value)
                                        for value, end in scanner.undefined_un.items()}))
    view.seek(body)
    dataset = read_dataset(view, implicit, False, stop_when=_stop_at_pixels)
    stopped_at = view.tell()
    _trim_undefined_un(dataset, scanner.undefined_un)
    ds = FileDataset(str(path), dataset, head.preamble, head.file_meta, implicit, False)
    ds.set_original_encoding(implicit, False, dataset._character_set)
    return ds, stopped_at, scanner, view


class _Patched:
    """A read-only view of a file in which the bytes at some positions read differently."""

    def __init__(self, fp: BinaryIO, patches: Mapping[int, bytes]) -> None:
        self.fp, self.patches = fp, patches

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fp.seek(offset, whence)

    def tell(self) -> int:
        return self.fp.tell()

    def read(self, size: int = -1) -> bytes:
        pos = self.fp.tell()
        data = self.fp.read(size)
        end = pos + len(data)
        patched = [(at, new) for at, new in self.patches.items() if at < end and pos < at + len(new)]
        if not patched:
            return data
        buffer = bytearray(data)
        for at, new in patched:
            low, high = max(at, pos), min(at + len(new), end)
            buffer[low - pos : high - pos] = new[low - at : high - at]
        return bytes(buffer)


def _trim_undefined_un(ds: Dataset, undefined: Mapping[int, int], base: int = 0) -> None:
    """Cut the sequence delimiter off each UN that `_read_big_endian` read with it, at any depth.

    pydicom decodes a sequence of defined length from its value's bytes when it is first used, and counts the
    positions of its elements from that value's start, `base` in the file: such a sequence holding one is decoded.
    """
    if not undefined:
        return
    for tag in list(ds.keys()):
        element = ds.get_item(tag)
        if isinstance(element, RawDataElement):
            start = base + element.value_tell
            if element.VR == "UN" and start in undefined and isinstance(element.value, bytes):
                ds[tag] = element._replace(length=element.length - 8, value=element.value[:-8])
            elif element.VR == "SQ" and any(start <= at < start + element.length for at in undefined):
                for item in ds[tag].value:
                    _trim_undefined_un(item, undefined, start)
        elif isinstance(element, DataElement) and element.VR == "SQ":
            for item in element.value:
                _trim_undefined_un(item, undefined, base)


class _ZeroBytes(InputError):
    """Zero bytes where an element is due."""


class _Scanner:
    """Walks the file's element headers, seeking past values, to prove every declared length fits the file.

    pydicom reads a short value without complaint; this walk is what tells a truncated file from a whole one.
    It also finds where the top-level pixel data element lies. Values are never read.
    """

    def __init__(self, fp: BinaryIO, size: int, implicit: bool, little: bool) -> None:
        self.fp, self.size, self.endian, self.implicit = fp, size, "<" if little else ">", implicit
        self.pixels: PixelSpan | None = None
        self.spans: dict[int, tuple[int, int]] = {}
        # Where each undefined-length UN in big endian starts its value -> where its delimiter ends. To find those
        # inside items of defined length, a big endian file is walked into every item.
        self.undefined_un: dict[int, int] = {}
        self.deep = not little
        self.zeros: int | None = None  # where the zero bytes that end the file begin, once looked for
        self.end = size  # where the top-level dataset ends: before zero bytes that pad the file after its pixel data

    def dataset(self, pos: int, end: int, implicit: bool, top: bool = False, endian: str = "") -> int:
        """Walk elements from `pos` to `end`, or to an item delimiter; return the position after them."""
        endian = endian or self.endian
        while pos < end:
            start = pos
            tag, vr, length, value = self._head(pos, implicit, top, endian)
            if tag == _ITEM_DELIMITER:
                return value
            if length == UNDEFINED_LENGTH and vr == b"UN":
                # Implicit VR little endian items and delimiter, whatever the file's encoding (PS3.5 6.2.2).
                pos = self._items(tag, value, True, "<")
                if endian == ">":
                    self.undefined_un[value] = pos
            elif length == UNDEFINED_LENGTH:
                pos = self._items(tag, value, implicit, endian)
            else:
                pos = value + length
                if pos > self.size:
                    raise InputError(f"truncated: {tag_text(tag)} declares {length} bytes, "
                                     f"{max(self.size - value, 0)} remain")
                if self.deep and vr == b"SQ":
                    self._items(tag, value, implicit, endian, pos)
            if top and tag >> 16 != 0x0002:
                self.spans.setdefault(tag, (start, pos))
            if top and is_pixel_tag(tag) and self.pixels is None:
                self.pixels = PixelSpan(tag, value - (12 if vr in LONG_LENGTH_VRS else 8), pos)
        return pos

    def _items(self, tag: int, pos: int, implicit: bool, endian: str, end: int = -1) -> int:
        """Walk the items of an undefined-length value up to its sequence delimiter (or of a defined-length
        sequence up to `end`)."""
        while end < 0 or pos < end:
            item, _, length, value = self._head(pos, True, False, endian)
            if item == _SEQUENCE_DELIMITER and end < 0:
                return value
            if item != _ITEM:
                raise InputError(f"malformed: unexpected element inside {tag_text(tag)}")
            if length == UNDEFINED_LENGTH:
                pos = self.dataset(value, self.size, implicit, endian=endian)
                continue
            pos = value + length
            if pos > self.size:
                raise InputError(f"truncated: an item of {tag_text(tag)} runs past the end of file")
            if self.deep:
                self.dataset(value, pos, implicit, endian=endian)
        return pos

    def _head(self, pos: int, implicit: bool, top: bool, endian: str) -> tuple[int, bytes, int, int]:
        """(tag, VR, value length, value start) of the element header at `pos`."""
        self.fp.seek(pos)
        head = self.fp.read(8)
        if len(head) < 8:
            raise InputError(f"truncated: file ends inside an element header at byte {pos}")
        if head == bytes(8):  # (tag (0000,0000), empty: no element; read on, they were read eight bytes at a time)
            if top and self.pixels is not None and self.pixels.end <= pos and self._zeros() <= pos:
                # zero bytes after the pixel data (and what follows it) to the end pad a whole file (found from
                # outside: a file whose pixel data ended in a zero byte, as most do, failed)
                self.end = pos
                return _ITEM_DELIMITER, b"", 0, pos  # (the data set ends here, as an item's at its delimiter)
            raise _ZeroBytes(self._zero_bytes(pos))
        meta = top and head[:2] == b"\x02\x00"  # file meta: always explicit VR little endian
        endian = "<" if meta else endian
        group, element = struct.unpack(f"{endian}HH", head[:4])
        tag = group << 16 | element
        if group == 0xFFFE or (implicit and not meta):
            return tag, b"", struct.unpack(f"{endian}L", head[4:8])[0], pos + 8
        vr = head[4:6]
        if vr in LONG_LENGTH_VRS:
            extra = self.fp.read(4)
            if len(extra) < 4:
                raise InputError(f"truncated: file ends inside the header of {tag_text(tag)}")
            return tag, vr, struct.unpack(f"{endian}L", extra)[0], pos + 12
        return tag, vr, struct.unpack(f"{endian}H", head[6:8])[0], pos + 8

    def _zero_bytes(self, pos: int) -> str:
        """Why zero bytes where an element is due fail the file: a preallocated file not completely written (found
        from outside: a cut one was released, the elements after the cut lost), or zeros inside it. (Those after
        the pixel data, to the end, pad a whole file: `_head`.)"""
        if pos >= self._zeros():
            return f"truncated: zero bytes from byte {pos} to the end where an element is due (not completely written)"
        return f"malformed: zero bytes at byte {pos} where an element is due"

    def _zeros(self) -> int:
        if self.zeros is None:
            self.zeros = zeros_from(self.fp, self.size)
        return self.zeros


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
