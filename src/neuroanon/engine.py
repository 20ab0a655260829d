"""The byte-stream engine: a file anonymized on its bytes, element by element, without pydicom's object model.

It takes a Part 10 file (or a dataset without preamble) in explicit or implicit VR, little or big endian, or
deflated (inflated as read, deflated again as pydicom deflates), with native, encapsulated or no pixel data, whose
elements are in canonical form, its header of any length, from a file (`plan`) or from bytes in memory
(`plan_bytes`): untouched elements are copied from the source bytes, changed ones are encoded, and a sequence is
encoded again only when something inside it changed. What it does not take it declines with a reason in fixed
words; a file declined as `malformed` is written back in canonical form by pydicom and given to the engine again
(the pipeline's salvage); any other decline fails the file. It is the only anonymizer: tests/test_golden.py holds
its outputs to the release's (where the release wrote through pydicom's objects, the few big endian forms the
engine now takes are its own).
"""
from __future__ import annotations

import bisect
import io
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Final, NoReturn

from pydicom.charset import convert_encodings, default_encoding
from pydicom.config import IGNORE
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .allowlist import SafePrivate, creator_name, holds_a_number
from .burnedin import overlay_clearing
from .context import FileContext, RunContext
from .csa import clean_kept
from .errors import InputError
from .identifiers import (
    APART,
    BESIDE_AT_THE_TOP,
    BESIDE_IN_ITEMS,
    IN_SEQUENCES,
    META_AE_TITLES,
    Needle,
    NestedValue,
    beyond_toolkit_name,
    find,
    find_once,
    patient_id,
    searched_beside,
)
from .keys import Keyring
from .options import Level, Options
from .read import (
    DICOMDIR_CLASS,
    INFLATED_TOO_LONG,
    MAX_TAIL_BYTES,
    TAIL_TOO_LONG,
    PixelSpan,
    inflated,
    parses_as_sequence,
    zeros_from,
)
from .rules import (
    METHOD_NAMES,
    NIDB_ANONYMIZE,
    PSEUDONYM_TAGS,
    TEXT_VRS,
    UN_READ_AS,
    Change,
    Op,
    Rule,
    Rules,
    capped_age,
    change,
    cleaned_text,
    compile_rules,
    creator_keyword,
    dummy_value,
    empty_value,
    fits_multiplicity,
    mark_full,
    mark_method,
    pseudonym,
    remap_uid,
    shifted_date,
    text_values,
)
from .tags import (
    DEIDENTIFICATION_METHOD,
    DEIDENTIFICATION_METHOD_CODES,
    LONGITUDINAL_TEMPORAL_MODIFIED,
    MEDIA_STORAGE_SOP_CLASS_UID,
    PATIENT_AGE,
    PATIENT_ID,
    PATIENT_IDENTITY_REMOVED,
    PIXEL_DATA,
    SERIES_INSTANCE_UID,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    SPECIFIC_CHARACTER_SET,
    STUDY_INSTANCE_UID,
    base_tag,
    is_pixel_tag,
    private_creator_tag,
    tag_text,
)
from .write import copy_range, copy_translated, translated

_OVERLAY_CLEARED: Final = Change("(7FE0,0010)", "PixelData", "unused bits cleared (an overlay embedded in them)")
HEAD_BYTES: Final = 1 << 20  # the first read; a longer header is read on as its parse needs
UNDEFINED: Final = 0xFFFFFFFF
ITEM: Final = 0xFFFEE000
ITEM_END: Final = 0xFFFEE00D
SEQUENCE_END: Final = 0xFFFEE0DD
IMPLICIT_LE: Final = "1.2.840.10008.1.2"
EXPLICIT_LE: Final = "1.2.840.10008.1.2.1"
LONG_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
VRS: Final = LONG_VRS | {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL", "SS",
                         "ST", "TM", "UI", "UL", "US"}
_VR_OF: Final = {vr.encode(): vr for vr in VRS}
_SHORT_VR_OF: Final = {code: vr for code, vr in _VR_OF.items() if vr not in LONG_VRS}
MARK_TAGS: Final = frozenset({PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODES,
                              LONGITUDINAL_TEMPORAL_MODIFIED})
# The common elements anonymize reads one by one (it copies a run of the others whole): the tags it gives a value,
# the marks and the character set. Group lengths are read too (a retired one is not written), and a run ends
# before a mark's place (one may be inserted there).
ANONYMIZE_READS: Final = frozenset({*NIDB_ANONYMIZE, *MARK_TAGS, SPECIFIC_CHARACTER_SET})
_PAST_ALL: Final = 1 << 32  # after every tag
_MARKS_IN_ORDER: Final = (*sorted(MARK_TAGS), _PAST_ALL)
_H: Final = struct.Struct("<H").unpack_from
_L: Final = struct.Struct("<L").unpack_from
_UID_BYTES: Final = b"0123456789.\\"  # (a value is made of them when deleting them leaves nothing)
_UID_TEXT_VRS: Final = TEXT_VRS | {"UI", "CS"}  # VRs whose values a UID remapped is written back as text
_NO_END: Final = 1 << 62  # the bound of an undefined-length item: its delimiter ends it
PAST_END: Final = "malformed: element runs past the end"
NESTED_TOO_DEEP: Final = "sequences nested too deep"
# Declines of a form pydicom reads tolerantly and writes back canonically (besides every "malformed: ..." one).
_MALFORMED: Final = frozenset({"unknown VR", "elements out of order", "reserved bytes of a long VR not zero",
                               "file meta UID not in canonical form", "a second pixel data element",
                               "file shorter than its size", "implicit VR dataset that reads as explicit"})
MAX_DEPTH: Final = 64  # sequences within sequences: deeper ones (no real file has them) would exhaust Python's stack
ZEROS_AFTER_PIXELS: Final = "malformed: zero bytes after the pixel data"


class _Decline(Exception):
    """A file the engine does not take, and why in fixed words (never a value): salvaged when malformed, else it
    fails with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _More(Exception):
    """The header's parse needs bytes beyond those read so far."""


# The parse's and the walk's records are plain classes with their own __init__: compiled, a dataclass's generated
# __init__ stays a Python function, called with its arguments packed (a third of the parse, measured).
class _Element:
    __slots__ = ("tag", "vr", "start", "value", "end", "undefined", "items", "opened", "run")

    def __init__(self, tag: int, vr: str, start: int, value: int, end: int, undefined: bool,
                 items: list[_Item] | None = None, opened: bool = False, run: bool = False) -> None:
        self.tag = tag
        self.vr = vr  # as written (explicit VR) or from the dictionary (implicit VR); "" when unknown
        self.start = start  # first byte of the element's header in the buffer
        self.value = value  # first byte of its value
        self.end = end  # the byte after it (after the sequence delimiter, for an undefined length)
        self.undefined = undefined
        self.items = items
        self.opened = opened  # a sequence stored as UN, read from the form pydicom writes it in once opened
        self.run = run  # stands for a run of elements copied as they are (at anonymize), `tag` the run's last


class _Item:
    __slots__ = ("elements", "undefined")

    def __init__(self, elements: list[_Element], undefined: bool) -> None:
        self.elements = elements
        self.undefined = undefined


@dataclass
class Plan:
    """A file's anonymized form: header bytes, the source's pixel data element, trailing bytes; what changed."""

    head: bytes
    pixels: PixelSpan | None  # in the source; None: the file has no pixel data, `head` is all of it
    pixel_bytes: memoryview | None  # the pixel data element, when it was read with the header
    tail: bytes
    changes: list[Change]
    context: FileContext  # its original: at full the source's top-level elements but sequences, as raw elements
    identifiers: dict[str, str]  # the new PatientID and UIDs the output path is built from, by keyword
    deflate: bool = False  # the output's dataset is deflated (and then held whole: `pixel_bytes` is set)
    # An overlay embedded in the pixel data's unused bits, cleared as the pixel data is written: the translation
    # tables of its value's even and odd bytes (`burnedin.overlay_clearing`), and where the value starts in the
    # element (after its tag, VR and length).
    clearing: tuple[bytes, bytes] | None = None
    value_at: int = 0

    def write(self, source: Path, out: BinaryIO) -> PixelSpan | None:
        """Write the output to `out`; return where its pixel data element lies in it (None: it has none, or it
        is deflated)."""
        if self.deflate:
            self._write_deflated(out)
            return None
        out.write(self.head)
        if self.pixels is None:
            out.flush()
            return None
        start = out.tell()
        if self.pixel_bytes is not None:
            out.write(self._pixel_element())
        else:
            with open(source, "rb") as src:
                src.seek(self.pixels.start)
                if self.clearing is None:
                    copy_range(src, out, self.pixels.size)
                else:
                    out.write(src.read(self.value_at))
                    copy_translated(src, out, self.pixels.size - self.value_at, self.clearing)
        end = out.tell()
        out.write(self.tail)
        out.flush()
        return PixelSpan(self.pixels.tag, start, end)

    def _write_deflated(self, out: BinaryIO) -> None:
        """The file meta as it is, then the dataset deflated as pydicom's dcmwrite deflates it."""
        start = _dataset_start(self.head)
        out.write(self.head[:start])
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        pixels = self._pixel_element() if self.pixel_bytes is not None else b""
        deflated = [compressor.compress(part) for part in (self.head[start:], pixels, self.tail)]
        deflated.append(compressor.flush())
        out.writelines(deflated)
        out.write(b"\x00" * (sum(map(len, deflated)) % 2))
        out.flush()

    def _pixel_element(self) -> bytes | memoryview:
        """The pixel data element read with the header, as it is written (its embedded overlay cleared)."""
        assert self.pixel_bytes is not None
        if self.clearing is None:
            return self.pixel_bytes
        value = translated(bytearray(self.pixel_bytes[self.value_at:]), self.clearing)
        return bytes(self.pixel_bytes[: self.value_at]) + value

    def written_pixels(self) -> bytes | memoryview | None:
        """The pixel data element as `write` writes it, when the plan holds it (None: copied from the source, or
        deflated)."""
        if self.deflate or self.pixels is None or self.pixel_bytes is None:
            return None
        return self._pixel_element()

    def searchable(self) -> bytes | None:
        """The output's bytes but the pixel data value, as the residual check reads them from the written file."""
        if self.deflate:
            return None
        if self.pixels is None:
            return self.head
        if self.pixel_bytes is None or self.pixels.size < 12:
            return None
        return self.head + bytes(self.pixel_bytes[:12]) + self.tail


_IDENTIFIERS: Final = {PATIENT_ID: "PatientID", STUDY_INSTANCE_UID: "StudyInstanceUID",
                       SERIES_INSTANCE_UID: "SeriesInstanceUID", SOP_INSTANCE_UID: "SOPInstanceUID"}


def _identifier_text(tag: int, value: object) -> str:
    """A new identifier as text, as pydicom shows the element's value (a value of several as a list)."""
    if isinstance(value, str) and "\\" not in value:
        return value
    return str(DataElement(tag, "LO" if tag == PATIENT_ID else "UI", value, validation_mode=IGNORE).value)


def plan(path: Path, run: RunContext | Options) -> Plan | str:
    """The engine's plan for `path` in a run (or with options), or why it declines the file (fixed words, no
    value). A file that cannot be read raises OSError."""
    run = run if isinstance(run, RunContext) else RunContext.of(run)
    reason = _declined_options(run.options)
    if reason is not None:
        return reason
    try:
        with open(path, "rb") as f:
            return _plan(f, run)
    except _Decline as decline:
        return decline.reason


def plan_bytes(data: bytes, run: RunContext | Options, empty: bool = False) -> Plan | str:
    """The engine's plan for a file held in memory (read whole: its plan holds the pixel data), or why it declines
    it; `empty`: a dataset without elements is planned too (a library caller's). The plan's `write` does not read
    its `source`."""
    run = run if isinstance(run, RunContext) else RunContext.of(run)
    reason = _declined_options(run.options)
    if reason is not None:
        return reason
    try:
        return _plan(io.BytesIO(data), run, first=len(data), empty=empty)
    except _Decline as decline:
        return decline.reason


NO_DATA_SET: Final = "no data set"  # (a preamble or file meta alone: a file cut short, or an empty one)


def malformed(reason: str) -> bool:
    """Whether a decline says the file's form is broken (not that the engine lacks a rule for its content)."""
    return reason.startswith("malformed") or reason in _MALFORMED


def _declined_options(options: Options) -> str | None:
    if options.level is Level.ORIGINAL:
        return "level original: copied"
    return None


def _plan(f: BinaryIO, run: RunContext, first: int = HEAD_BYTES, empty: bool = False) -> Plan:
    options = run.options
    layout = _layout(f, first, ANONYMIZE_READS if options.level is Level.ANONYMIZE else None)
    if not (empty or layout.head or layout.pixels or layout.tail):
        raise _Decline(NO_DATA_SET)
    buf, implicit = layout.buf, layout.implicit
    original = _raw_dataset(buf, layout.head, implicit, layout.little) if options.level is Level.FULL else Dataset()
    if options.level is Level.FULL:
        _class_from_meta(original, layout.meta, buf)
    job = _Job(buf, layout.tail_buf, implicit, options, run.file(original), little=layout.little,
               preamble=layout.preamble)
    parts = (layout.meta, layout.head, layout.tail, layout.pixels, layout.pixel_bytes)
    result = job.anonymize(*parts) if options.level is Level.ANONYMIZE else job.full(*parts)
    result.deflate = layout.deflated
    return result


@dataclass
class _Layout:
    """A file's parts: file meta, the elements before the pixel data, the pixel data, the elements after it."""

    buf: bytes  # the file from its start, at least to the pixel data
    implicit: bool
    meta: dict[int, _Element]
    head: list[_Element]
    pixels: PixelSpan | None = None
    pixel_bytes: memoryview | None = None  # the pixel data element, when `buf` holds it
    tail_buf: bytes = b""  # the elements after the pixel data: `buf`, or the rest of the file
    tail: list[_Element] = field(default_factory=list)
    deflated: bool = False  # `buf` holds the dataset inflated
    little: bool = True  # the dataset's byte order (the file meta is always little endian)
    preamble: bool = True  # a preamble and 'DICM' come first (else the file meta, or the dataset)


def _layout(f: BinaryIO, first: int = HEAD_BYTES, keep: frozenset[int] | None = None) -> _Layout:
    """Parse the file, reading on from the `first` bytes as far as its header needs; `keep`: see `_Parser`."""
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    buf = f.read(min(size, first))  # not more than the file: a larger read costs a larger buffer
    while True:
        try:
            return _parse(f, buf, size, keep)
        except _More:
            f.seek(len(buf))
            more = f.read(max(len(buf), HEAD_BYTES))
            if not more:
                raise _Decline("file shorter than its size") from None
            buf += more


def _parse(f: BinaryIO, buf: bytes, size: int, keep: frozenset[int] | None = None) -> _Layout:
    preamble = buf[128:132] == b"DICM"  # else a bare dataset (maybe with file meta), as pydicom reads it
    meta_parser = _Parser(buf, False, size)
    meta, pos = _meta(meta_parser, 132 if preamble else 0)
    implicit, little, deflated = _encoding(meta_parser, meta, pos)
    if deflated:
        if not preamble:
            raise _Decline("deflated without a preamble")
        buf = buf[:pos] + _inflate(f, pos)
        size = len(buf)
    parser = _Parser(buf, implicit, size, little, keep)
    head, pixels = parser.top(pos)
    if "\x00" in _text(buf, next((e for e in head if e.tag == SPECIFIC_CHARACTER_SET), None)):
        raise _Decline("malformed: character set")  # pydicom could not look it up
    layout = _Layout(buf, implicit, meta, head, deflated=deflated, little=little, preamble=preamble)
    if pixels is not None:
        pixel_end = _pixel_end(f, size, pixels, parser)
        layout.pixels = PixelSpan(pixels.tag, pixels.start, pixel_end,
                                  None if pixels.undefined else pixels.value - pixels.start)
        layout.pixel_bytes = memoryview(buf)[pixels.start:pixel_end] if pixel_end <= len(buf) else None
        layout.tail_buf, layout.tail = _tail(f, buf, size, pixel_end, parser)
        if layout.tail and layout.tail[0].tag <= pixels.tag:
            raise _Decline("elements out of order")
    return layout


def _inflate(f: BinaryIO, start: int) -> bytes:
    """The dataset of a deflated file from `start`, inflated (pydicom reads such a file whole, so the engine
    does too; bounded by `read.inflated`)."""
    try:
        data, ended, _ = inflated(f, start)  # (bytes after the stream are not written)
    except InputError:
        raise _Decline(INFLATED_TOO_LONG) from None
    except zlib.error:
        raise _Decline("malformed: deflated data") from None
    if not ended:
        raise _Decline("malformed: deflated data cut short")
    return data


def _meta(parser: _Parser, pos: int) -> tuple[dict[int, _Element], int]:
    """The file meta elements from `pos` (explicit VR little endian), in canonical form; where the dataset begins."""
    buf = parser.buf
    found: dict[int, _Element] = {}
    last = 0
    while buf[pos:pos + 2] == b"\x02\x00":
        element = parser._element(pos, last, top=False)
        if element.items is not None:
            raise _Decline("sequence in the file meta")
        if element.vr == "UI" and not _canonical_uid(buf[element.value:element.end]):
            raise _Decline("file meta UID not in canonical form")  # pydicom would write it back in another form
        found[element.tag] = element
        last, pos = element.tag, element.end
    return found, pos


def _dataset_start(head: bytes) -> int:
    """Where the dataset begins in an output: after the preamble, the prefix and the file meta elements."""
    pos = 132
    while head[pos:pos + 2] == b"\x02\x00":
        long = _VR_OF.get(head[pos + 4:pos + 6]) in LONG_VRS
        pos += 12 + _L(head, pos + 8)[0] if long else 8 + _H(head, pos + 6)[0]
    return pos


def _encoding(parser: _Parser, meta: dict[int, _Element], pos: int) -> tuple[bool, bool, bool]:
    """Whether the dataset (at `pos`) is implicit VR, little endian, deflated; declines what the engine does not
    read."""
    buf = parser.buf
    if _text(buf, meta.get(MEDIA_STORAGE_SOP_CLASS_UID)) == DICOMDIR_CLASS:
        raise _Decline("DICOMDIR")
    if 0x00020010 not in meta:
        return _guessed_encoding(parser, pos)
    syntax = _text(buf, meta.get(0x00020010))
    if syntax in (IMPLICIT_LE, EXPLICIT_LE):
        return syntax == IMPLICIT_LE, True, False
    uid = UID(syntax)
    if not uid.is_transfer_syntax or uid.is_implicit_VR:
        raise _Decline("unknown transfer syntax")
    return False, uid.is_little_endian, uid.is_deflated


def _guessed_encoding(parser: _Parser, pos: int) -> tuple[bool, bool, bool]:
    """The encoding pydicom assumes for a dataset no transfer syntax names: explicit VR if its first element
    shows a VR, then big endian if its group reads as 1024 or more in little endian; else implicit VR."""
    buf = parser.buf
    if pos == len(buf) and not parser.partial:
        return True, True, False  # no dataset
    parser._need(pos + 6)
    if buf[pos + 4:pos + 6] not in _VR_OF:
        return True, True, False
    return False, _H(buf, pos)[0] < 1024, False


def _tail(f: BinaryIO, buf: bytes, size: int, start: int, parser: _Parser) -> tuple[bytes, list[_Element]]:
    """The bytes holding the elements after the pixel data (from `start`), and those elements."""
    if len(buf) < size:
        # Not read whole when zero bytes follow the pixel data: they pad the file, or it was not completely
        # written; the salvage read tells which (found from outside: gigabytes of them were read into memory)
        f.seek(start)
        if f.read(8) == bytes(8):
            raise _Decline(ZEROS_AFTER_PIXELS)
        if size - start > MAX_TAIL_BYTES:
            _decline_long_tail(f, size, start, parser)
        f.seek(start)
        buf, start = f.read(size - start), 0  # (sized: read() whole would hold the file twice a moment)
    if start >= len(buf):
        return buf, []
    elements, _ = _Parser(buf, parser.implicit, little=parser.little).dataset(start, len(buf), top=True)
    return buf, elements


def _decline_long_tail(f: BinaryIO, size: int, start: int, parser: _Parser) -> NoReturn:
    """Decline a file with more than `MAX_TAIL_BYTES` after its pixel data, saying why: zeros that pad the whole file
    from an element's end, its elements before them fewer bytes, are the salvage read's, which reads them bounded
    (found from outside: such a file, written before the bound, failed by it); else it is too long. The last element
    before the zeros may end in zero bytes of its own (a value's padding): up to `_ZERO_SLACK` of them."""
    zeros = zeros_from(f, size) - start
    if zeros > MAX_TAIL_BYTES:
        raise _Decline(TAIL_TOO_LONG)
    f.seek(start)
    tail = _Parser(f.read(min(size - start, zeros + _ZERO_SLACK)), parser.implicit, little=parser.little)
    pos, last = 0, -1
    try:
        while pos < zeros:
            element = tail._element(pos, last, True)
            last, pos = element.tag, element.end
    except _Decline:  # (an element runs on into the zeros: its value is them)
        raise _Decline(TAIL_TOO_LONG) from None
    raise _Decline(ZEROS_AFTER_PIXELS)


_ZERO_SLACK: Final = 1 << 16


_IMPLICIT_VRS: Final[dict[int, str]] = {}


def _implicit_vr(tag: int) -> str:
    """The VR pydicom gives an implicit-VR element: the dictionary's, LO for private creators, else unknown (each
    looked up once; the cache is bounded)."""
    vr = _IMPLICIT_VRS.get(tag)
    if vr is None:
        if len(_IMPLICIT_VRS) >= 4096:
            _IMPLICIT_VRS.clear()
        vr = _IMPLICIT_VRS[tag] = _dictionary_vr(tag)
    return vr


def _dictionary_vr(tag: int) -> str:
    if tag >> 16 & 1:
        return "LO" if 0x10 <= tag & 0xFFFF <= 0xFF else ""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def _next_mark(tag: int) -> int:
    """The first mark tag after `tag` (after the last: `_PAST_ALL`)."""
    return _MARKS_IN_ORDER[bisect.bisect_right(_MARKS_IN_ORDER, tag)]


# By byte order (little endian: True), what a parser reads headers with: group, element and 4-byte length; group,
# element, VR and 2-byte length; a 4-byte length; and the item delimiter's bytes.
# The unpackers of one byte order, typed by what they return: compiled, the values are then native ints and bytes,
# not objects every comparison and shift goes through the runtime for (a quarter of the parse, measured).
_TagsLength = Callable[[bytes, int], tuple[int, int, int]]  # group, element, 4-byte length
_TagsShort = Callable[[bytes, int], tuple[int, int, bytes, int]]  # group, element, VR, 2-byte length
_Long = Callable[[bytes, int], tuple[int]]
_BY_ORDER: Final[dict[bool, tuple[_TagsLength, _TagsShort, _Long, bytes]]] = {
    little: (struct.Struct(order + "HHL").unpack_from, struct.Struct(order + "HH2sH").unpack_from,
             struct.Struct(order + "L").unpack_from, struct.pack(order + "HHL", 0xFFFE, 0xE00D, 0))
    for little, order in ((True, "<"), (False, ">"))}
# The common element's header (explicit VR, a short VR) read as two 32-bit words: the tag, and the VR with the
# length; and the short VR each two-byte code stands for as the second word holds it (None: a long VR, or none),
# by byte order. (Compiled, two native ints and a list's item cost less than four values, one of them bytes, and
# a dict keyed by it: most of a header's elements are read so.)
_Words = Callable[[bytes, int], tuple[int, int]]


def _short_vrs(little: bool) -> list[str | None]:
    table: list[str | None] = [None] * 0x10000
    for code, vr in _SHORT_VR_OF.items():
        table[code[0] | code[1] << 8 if little else code[0] << 8 | code[1]] = vr
    return table


_WORDS: Final[dict[bool, tuple[_Words, list[str | None]]]] = {
    little: (struct.Struct(order + "LL").unpack_from, _short_vrs(little))
    for little, order in ((True, "<"), (False, ">"))}


class _Parser:
    """Walks element headers over a buffer into a tree; declines anything out of the canonical form.

    `size` is the file's size when the buffer holds only its start: a parse that needs more raises _More. What
    depends on the byte order is chosen here, once."""

    def __init__(self, buf: bytes, implicit: bool, size: int = 0, little: bool = True,
                 keep: frozenset[int] | None = None) -> None:
        self.buf, self.implicit, self.partial, self.little = buf, implicit, len(buf) < size, little
        self.keep = keep  # the only common elements read one by one, the others in runs; None: every one
        self.depth = 0  # of the sequence being walked
        self.tags_length: _TagsLength
        self.tags_short: _TagsShort
        self.long: _Long
        self.tags_length, self.tags_short, self.long, self.item_end = _BY_ORDER[little]
        self.words: _Words
        self.short_vrs: list[str | None]
        self.words, self.short_vrs = _WORDS[little]

    def top(self, pos: int) -> tuple[list[_Element], _Element | None]:
        """The top-level elements up to the pixel data element (returned separately, its value not walked)."""
        elements: list[_Element] = []
        last = -1
        self._check_first(pos)
        while pos < len(self.buf):
            pos, last = self._common_run(pos, len(self.buf), last, elements)
            if pos >= len(self.buf):
                break
            element = self._element(pos, last, top=True)
            if is_pixel_tag(element.tag):
                return elements, element
            elements.append(element)
            last, pos = element.tag, element.end
        if self.partial:
            raise _More
        return elements, None

    def dataset(self, pos: int, end: int, in_item: bool = False, top: bool = False) -> tuple[list[_Element], int]:
        """Elements from `pos` to `end` (or, in an undefined-length item, to its delimiter); and where they end.

        `top`: the top-level elements after the pixel data, where another pixel data element is declined."""
        elements: list[_Element] = []
        last = -1
        self._check_first(pos)
        while pos < end:
            pos, last = self._common_run(pos, end, last, elements)
            if pos >= end:
                break
            if in_item:
                self._need(pos + 8)
                if self.buf[pos:pos + 8] == self.item_end:
                    return elements, pos + 8
            element = self._element(pos, last, top)
            if top and is_pixel_tag(element.tag):
                raise _Decline("a second pixel data element")
            elements.append(element)
            last, pos = element.tag, element.end
        if pos != end:
            raise _Decline("malformed: an item's length does not match its elements")
        return elements, pos

    def _need(self, end: int) -> None:
        """Make sure the buffer holds the bytes before `end`."""
        if end > len(self.buf):
            if self.partial:
                raise _More
            raise _Decline(PAST_END)

    def _check_first(self, pos: int) -> None:
        # pydicom (and the header reader, by two capital letters) switches between implicit and explicit VR when
        # the first element looks like the other kind.
        vr = self.buf[pos + 4:pos + 6]
        if pos + 6 <= len(self.buf) and self.implicit and (vr in _VR_OF or vr.isalpha() and vr.isupper()):
            raise _Decline("implicit VR dataset that reads as explicit")

    def _element(self, pos: int, last: int, top: bool) -> _Element:
        """The element at `pos` (its items walked if it is a sequence; a top-level pixel data element not)."""
        element = self._common(pos, last)
        if element is not None:
            return element
        tag, vr, value, length = self._header(pos)
        if tag <= last:
            raise _Decline("elements out of order")
        if tag >> 16 == 0xFFFE:
            raise _Decline("malformed: stray item or delimiter")
        undefined = length == UNDEFINED
        element = _Element(tag, vr, pos, value, value if undefined else value + length, undefined)
        if top and is_pixel_tag(tag):
            return element  # its value may lie beyond what was read: the caller copies it from the file
        if vr == "SQ":
            element.items, element.end = self._items(element)
            return element
        if undefined:
            element.end = self._undefined(element)
            return element
        self._need(element.end)
        return element  # a UN is resolved (read by its dictionary VR, opened if a sequence) as the rules need it

    def _undefined(self, element: _Element) -> int:
        """Where an undefined-length element other than a sequence ends, read as pydicom reads it: an implicit VR
        value of unknown VR that starts with an item is a sequence (its VR set so); a UN holds the items of an
        implicit VR little endian sequence whatever the dataset's byte order (PS3.5 6.2.2); else encapsulated
        pixel data in an item."""
        if self.implicit and not element.vr:
            self._need(element.value + 4)
            if self.buf[element.value:element.value + 4] == _ITEM_LE:
                element.vr = "SQ"
                element.items, end = self._items(element)
                return end
        if element.vr == "UN" and not self.implicit:
            items = _Parser(self.buf, True, little=True)
            items.partial, items.depth = self.partial, self.depth
            return items._items(element)[1]
        return self._fragments(element)

    def _common(self, pos: int, last: int) -> _Element | None:
        """The element at `pos` when it is the common kind (explicit VR with a 2-byte length, in order, neither
        pixel data nor a command-group element, within the buffer), read in one step; else None (`_element` then
        reads and checks it in full)."""
        buf = self.buf
        if self.implicit or pos + 8 > len(buf):
            return None
        tag, vr, end = self._short_header(buf, pos)
        group = tag >> 16
        if vr is None or tag <= last or group in (0xFFFE, 0x0000) or is_pixel_tag(tag) or end > len(buf):
            return None
        return _Element(tag, vr, pos, pos + 8, end, False)

    def _short_header(self, buf: bytes, pos: int) -> tuple[int, str | None, int]:
        """The tag, short VR (None: not one) and end of the explicit VR element whose header is at `pos`."""
        first, second = self.words(buf, pos)
        if self.little:  # group | element << 16; VR code | length << 16
            return (first & 0xFFFF) << 16 | first >> 16, self.short_vrs[second & 0xFFFF], pos + 8 + (second >> 16)
        return first, self.short_vrs[second >> 16], pos + 8 + (second & 0xFFFF)

    def _common_run(self, pos: int, stop: int, last: int, elements: list[_Element]) -> tuple[int, int]:
        """`_common` over the elements from `pos` on, appended to `elements` in one loop (most of a header);
        returns where the run stopped (`stop`, or an element that is not of the common kind) and its last tag."""
        buf = self.buf
        if self.implicit:
            return pos, last
        limit = min(stop, len(buf))
        keep = self.keep
        run, bound = -1, _PAST_ALL if keep is None else _next_mark(last)  # the open run's start; where it must end
        while pos + 8 <= limit:
            tag, vr, end = self._short_header(buf, pos)
            group = tag >> 16
            # (a file meta element in the dataset is read apart too: no run hides it from the rules, which remove it)
            if vr is None or tag <= last or group in (0xFFFE, 0x0000, 0x0002) or is_pixel_tag(tag) or end > limit:
                break
            if keep is not None and tag not in keep and tag & 0xFFFF and tag < bound:
                if run < 0:
                    run = pos
            else:
                if run >= 0:
                    elements.append(_Element(last, "", run, run, pos, False, run=True))
                    run = -1
                if tag >= bound:
                    bound = _next_mark(tag)
                elements.append(_Element(tag, vr, pos, pos + 8, end, False))
            last, pos = tag, end
        if run >= 0:
            elements.append(_Element(last, "", run, run, pos, False, run=True))
        return pos, last

    def _fragments(self, element: _Element) -> int:
        """Where encapsulated pixel data in an item (an icon image) ends: after its fragments and their delimiter,
        walked as pydicom walks them (a delimiter tag inside a fragment is data)."""
        if not is_pixel_tag(element.tag) or self.implicit:
            raise _Decline("undefined length outside a sequence")
        pos = element.value
        while True:
            self._need(pos + 8)
            group, number, length = self.tags_length(self.buf, pos)
            if group << 16 | number == SEQUENCE_END:
                break
            if group << 16 | number != ITEM or length == UNDEFINED:
                raise _Decline("malformed: pixel data fragments")
            pos += 8 + length
        if length:
            raise _Decline("malformed: pixel data fragments")
        return pos + 8

    def _header(self, pos: int) -> tuple[int, str, int, int]:
        """The tag, VR, value position and length of the element whose header is at `pos`."""
        buf = self.buf
        self._need(pos + 8)
        if self.implicit:
            group, number, length = self.tags_length(buf, pos)
            return group << 16 | number, _implicit_vr(group << 16 | number), pos + 8, length
        group, number, code, length = self.tags_short(buf, pos)
        vr = _VR_OF.get(code)
        if vr is None:
            raise _Decline("unknown VR")
        if vr not in LONG_VRS:
            return group << 16 | number, vr, pos + 8, length
        self._need(pos + 12)
        if length:
            raise _Decline("reserved bytes of a long VR not zero")
        return group << 16 | number, vr, pos + 12, self.long(buf, pos + 8)[0]

    def _items(self, sequence: _Element) -> tuple[list[_Item], int]:
        if self.depth == MAX_DEPTH:
            raise _Decline(NESTED_TOO_DEEP)
        self.depth += 1
        items, end = self._walk_items(sequence)
        self.depth -= 1
        return items, end

    def _walk_items(self, sequence: _Element) -> tuple[list[_Item], int]:
        items: list[_Item] = []
        pos = sequence.value
        end = _NO_END if sequence.undefined else sequence.end
        while pos < end:
            self._need(pos + 8)
            group, number, length = self.tags_length(self.buf, pos)
            tag = group << 16 | number
            if tag == SEQUENCE_END and sequence.undefined:
                if length != 0:
                    raise _Decline("malformed: sequence delimiter with a length")
                return items, pos + 8
            if tag != ITEM:
                raise _Decline("malformed: not an item in a sequence")
            if length == UNDEFINED:
                elements, pos = self.dataset(pos + 8, _NO_END, in_item=True)
            else:
                elements, pos = self.dataset(pos + 8, pos + 8 + length)
            items.append(_Item(elements, length == UNDEFINED))
        if pos != end:
            raise _Decline("malformed: a sequence's length does not match its items")
        return items, pos


_ITEM_LE: Final = struct.pack("<HH", 0xFFFE, 0xE000)


def _pixel_end(f: BinaryIO, size: int, pixels: _Element, parser: _Parser) -> int:
    """Where the pixel data element ends: after its value, or after the delimiter of its fragments."""
    if not pixels.undefined:
        if pixels.end > size:
            raise _Decline("malformed: pixel data runs past the end")
        return pixels.end
    if parser.implicit:
        raise _Decline("encapsulated pixel data in implicit VR")
    buf, pos = parser.buf, pixels.value
    while True:
        if pos + 8 <= len(buf):
            head = buf[pos:pos + 8]
        else:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                raise _Decline("malformed: pixel data runs past the end")
        group, number, length = parser.tags_length(head, 0)
        tag = group << 16 | number
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM or length == UNDEFINED or pos + 8 + length > size:
            raise _Decline("malformed: pixel data fragments")
        pos += 8 + length


def _nested_identity(buf: bytes, elements: list[_Element], depth: int, found: list[NestedValue],
                     charset: bytes | None = None) -> None:
    """Add to `found` the values searched for beside the top level's identifying ones (`identifiers.searched_beside`:
    persons' names and dates anywhere, the patient's and the institution's values in items) that stand at the top
    level or in items, at any depth, of the sequences: those read as such, and those stored as UN or, in implicit
    VR, of unknown VR (`_un_items`), whatever the rules then do to them; each with the character set its item
    declares (`charset`: an enclosing item's, None for the top level's)."""
    for e in elements:
        if e.items is not None:
            items = e.items
        elif e.tag in (BESIDE_IN_ITEMS if depth else BESIDE_AT_THE_TOP) or (depth or e.vr in _BESIDE_BY_VR) and \
                searched_beside(e.tag, e.vr, depth):
            if e.end > e.value:
                found.append((e.tag, e.vr, buf[e.value:e.end], charset))
            continue
        elif not e.vr or e.vr == "UN":  # stored as UN, or of unknown VR in implicit VR: maybe a sequence
            items = _un_items(buf, e, depth) or []
        else:
            continue
        for item in items:
            _nested_identity(buf, item.elements, depth + 1, found, _declared_set(buf, item.elements, charset))


# The VRs `searched_beside` may take at the top level beside its tags (none of these is a sequence)
_BESIDE_BY_VR: Final = frozenset({"PN", "DA", "DT", "UN"})


def _declared_set(buf: bytes, elements: list[_Element], inherited: bytes | None) -> bytes | None:
    """The SpecificCharacterSet value an item declares (among its first elements: they are in tag order), else
    `inherited`."""
    for e in elements:
        if e.tag >= SPECIFIC_CHARACTER_SET:
            return buf[e.value:e.end] if e.tag == SPECIFIC_CHARACTER_SET else inherited
    return inherited


def _un_items(buf: bytes, e: _Element, depth: int) -> list[_Item] | None:
    """The items of a value stored as UN (or of unknown VR, in implicit VR) whose bytes are those of an implicit VR
    little endian sequence (PS3.5 6.2.2, whatever the dataset's byte order), as pydicom opens it; None when they
    are not (most such values: their first bytes are no item). `depth`: of the items the value is in. Bytes that
    read as a sequence but not, element by element, as the engine reads one decline the file: the identity in them
    could not be searched for."""
    if buf[e.value:e.value + 4] != _ITEM_LE or not (e.undefined or parses_as_sequence(buf[e.value:e.end])):
        return None
    parser = _Parser(buf, True)
    parser.depth = depth
    return parser._items(_Element(e.tag, "SQ", e.start, e.value, e.end, e.undefined))[0]


def _raw_dataset(buf: bytes, elements: list[_Element], implicit: bool, little: bool = True) -> Dataset:
    """The elements as a pydicom dataset of raw elements, decoded only when read; of the sequences only those
    whose items hold needles (`identifiers.IN_SEQUENCES`)."""
    raw: dict[BaseTag, DataElement | RawDataElement] = {}
    if len(_LAST_RAW) >= _LAST_RAW_KEPT:
        _LAST_RAW.clear()
    for e in elements:
        if e.items is None and (e.vr != "UN" or e.tag not in IN_SEQUENCES):
            tag = base_tag(e.tag)
            vr, value = None if implicit else e.vr, buf[e.value:e.end]
            last = _LAST_RAW.get(tag)
            # (its VR is None exactly when it is implicit VR)
            if (last is not None and last.value == value and last.value_tell == e.value and vr == last.VR
                    and last.is_little_endian == little):
                raw[tag] = last
                continue
            # (RawDataElement's own constructor is a Python function, slow to call from compiled code)
            made = raw[tag] = _new_tuple(RawDataElement, (tag, vr, len(value), value, e.value, implicit, little, True,
                                                          False))
            if len(value) <= _LAST_RAW_VALUE:
                _LAST_RAW[tag] = made
        elif e.tag in IN_SEQUENCES:
            # its items, without the sequence delimiter; stored as UN, in implicit VR little endian (PS3.5 6.2.2)
            tag = base_tag(e.tag)
            value = buf[e.value:e.end - 8 if e.undefined else e.end]
            un = e.items is None
            if not un or parses_as_sequence(value):
                raw[tag] = _new_tuple(RawDataElement, (tag, "SQ", len(value), value, e.value, implicit or un,
                                                       little or un, True, False))
    return Dataset(raw)


_new_tuple: Final = tuple.__new__
# The last raw element of each tag made (of a short value): a series' files repeat most values at the same places,
# and the same (immutable) element serves each. Bounded in count and in the bytes each holds.
_LAST_RAW: Final[dict[BaseTag, RawDataElement]] = {}
_LAST_RAW_KEPT: Final = 4096
_LAST_RAW_VALUE: Final = 256


def _class_from_meta(original: Dataset, meta: dict[int, _Element], buf: bytes) -> None:
    """Give a dataset without SOPClassUID (or with an empty one: found from outside) the file meta's
    MediaStorageSOPClassUID, as pydicom gives a file it reads: the burned-in gate takes the class the file names
    there (`burnedin.risk_beside_overlay`)."""
    e = meta.get(MEDIA_STORAGE_SOP_CLASS_UID)
    named = original.get_item(base_tag(SOP_CLASS_UID))
    if e is None or named is not None and isinstance(named.value, bytes) and named.value.strip(b"\x00 "):
        return
    tag = base_tag(MEDIA_STORAGE_SOP_CLASS_UID)
    original.file_meta = FileMetaDataset({tag: _new_tuple(RawDataElement, (
        tag, "UI", e.end - e.value, buf[e.value:e.end], e.value, False, True, True, False))})


def _text(buf: bytes, element: _Element | None) -> str:
    if element is None:
        return ""
    value = buf[element.value:element.end]
    if not value.isascii():
        raise _Decline("non-ASCII code string or UID")
    return value.decode("ascii").rstrip("\x00 ").strip()


def _canonical_uid(value: bytes) -> bool:
    """True when pydicom would write this UI value back as it is."""
    stripped = value.rstrip(b"\x00 ")
    return stripped == stripped.strip() and value == stripped + b"\x00" * (len(stripped) % 2)


def _present(buf: bytes, e: _Element) -> bool:
    """Whether an element holds a value: a sequence (or an undefined-length UN, read as one) by its items."""
    if e.items is not None:
        return bool(e.items)
    return e.end - e.value > 8 if e.undefined else not _is_empty(buf, e)


def _is_empty(buf: bytes, element: _Element) -> bool:
    return element.end == element.value or buf[element.value:element.end].strip(b" \x00") == b""


@lru_cache(maxsize=1024, typed=True)
def _encoded(tag: int, vr: str, value: str | int | bytes | None, implicit: bool, little: bool = True) -> bytes:
    """An element as pydicom writes it, for values that recur (dummies, empties, pseudonyms): each encoded once."""
    return _encode(DataElement(tag, vr, value), implicit, little=little)


def _encode(element: DataElement, implicit: bool, encoding: str | list[str] | None = None, little: bool = True,
            ) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, little
    write_data_element(fp, element, encoding)
    return bytes(fp.getvalue())


def _header(tag: int, vr: str, length: int, implicit: bool, little: bool = True) -> bytes:
    order = "<" if little else ">"
    if implicit:
        return struct.pack(order + "HHL", tag >> 16, tag & 0xFFFF, length)
    if vr in LONG_VRS:
        return struct.pack(order + "HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    return struct.pack(order + "HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)


@lru_cache(maxsize=256)
def _marks(level: Level, flags: tuple[bool, ...], identity_removed: bool, implicit: bool, earlier: bytes | None,
           charset: bytes | None, little: bool = True) -> tuple[dict[int, bytes], tuple[Change, ...]]:
    """The mark elements a level sets (encoded, by tag) and their changes, after an `earlier` method value."""
    ds = Dataset()
    for tag, vr, value in ((SPECIFIC_CHARACTER_SET, "CS", charset), (DEIDENTIFICATION_METHOD, "LO", earlier)):
        if value is not None:
            ds[tag] = RawDataElement(BaseTag(tag), None if implicit else vr, len(value), value, 0, implicit, little)
    changes: list[Change] = []
    if level is Level.ANONYMIZE:
        mark_method(ds, METHOD_NAMES[Level.ANONYMIZE], changes, keep_earlier=True)
    else:
        options = Options(level=level, retain_patient_characteristics=flags[0], retain_device_identity=flags[1],
                          retain_safe_private=flags[2], shift_dates=flags[3], clean_descriptors=flags[4])
        mark_full(ds, options, changes, identity_removed)
    written = ds.get("SpecificCharacterSet", default_encoding)  # a str, or a MultiValue given as a list
    encoding = written if isinstance(written, str) else list(written)
    encoded = {int(tag): _encode(ds[tag], implicit, encoding, little) for tag in sorted(ds.keys())
               if tag in MARK_TAGS}
    return encoded, tuple(changes)


@dataclass
class _Job:
    """One file's walk: each element's operation from the rules, then the output assembled in tag order."""

    buf: bytes
    tail_buf: bytes
    implicit: bool
    options: Options
    context: FileContext
    changes: list[Change] = field(default_factory=list)
    keyring: Keyring | None = None
    patterns: tuple[Needle, ...] = ()  # the series' needles (one index for them all)
    own: tuple[Needle, ...] = ()  # this file's own (its instance UID)
    subject: str = ""
    new_ids: dict[int, object] = field(default_factory=dict)
    day_offset: int | None = None  # the subject's date shift, derived when first needed
    births: frozenset[str] | None = None  # the patient's birth dates (YYYYMMDD, the needles'), when first needed
    whole: bool = False  # pydicom writes the whole dataset (no pixel data, or deflated): none is copied
    little: bool = True  # the dataset's byte order
    preamble: bool = True  # the source has a preamble and 'DICM' (the output then too)
    rules: Rules = field(init=False)

    def __post_init__(self) -> None:
        self.rules = compile_rules(self.options)

    # --- anonymize ---------------------------------------------------------------------------------------------

    def anonymize(self, meta: dict[int, _Element], head: list[_Element], tail: list[_Element], span: PixelSpan | None,
                  pixel_bytes: memoryview | None) -> Plan:
        self.whole = span is None or _text(self.buf, meta.get(0x00020010)) == DeflatedExplicitVRLittleEndian
        charset = self._mark_inputs(head)[1]
        out = self._written(self._walk_anonymize(self.buf, head, "", charset))
        tail_out = self._written(self._walk_anonymize(self.tail_buf, tail, "", charset))
        marks, mark_changes = _marks(Level.ANONYMIZE, (), True, self.implicit, *self._mark_inputs(head),
                                     little=self.little)
        self.changes += mark_changes
        preamble = self.buf[:132] if self.preamble else b""
        header = preamble + self._meta_bytes(meta) + self._assemble(self.buf, head, out, marks)
        return Plan(header, span, pixel_bytes, self._assemble(self.tail_buf, tail, tail_out, {}), self.changes,
                    self.context, {})

    def _written(self, scope: _Scope) -> dict[int, bytes | None]:
        """The top level's decisions; where pydicom writes the whole dataset, with each UN as it reads it."""
        return {**scope.rewrite, **scope.out} if self.whole else scope.out

    def _walk_anonymize(self, buf: bytes, elements: list[_Element], path: str, charset: bytes | None,
                        opened: bool = False) -> _Scope:
        """Decide one dataset's elements at anonymize; `opened`: it is in a sequence that was stored as UN."""
        scope = _Scope(elements, path, {}, charset, opened)
        plain = not (self.implicit or opened)  # no value of unknown VR here that could be a sequence
        valued = self.rules.valued
        for e in elements:
            # Most elements: in a run copied as it is, or neither one of the five (the only tags anonymize gives a
            # value), a file meta element (removed) nor a sequence or UN that may hold one; nothing to decide.
            if e.run or plain and e.items is None and e.vr != "UN" and e.tag not in valued and e.tag >> 16 != 2:
                continue
            self._anonymize_element(scope, buf, e)
        return scope

    def _anonymize_element(self, scope: _Scope, buf: bytes, e: _Element) -> None:
        t = e.tag
        if e.vr == "UN" and e.end == e.value and not t >> 16 & 1:
            self._empty_un(scope, e)  # pydicom reads it by the dictionary's VR, and writes it so (a private one
            # stays an empty UN)
        rule = self.rules.tag(t)
        if rule.removes:
            self._remove(scope, buf, e, rule.keyword)
        elif rule.value is not None:
            if _present(buf, e):
                # (`_implicit_vr`: the dictionary's VR, for these standard tags)
                scope.out[t] = _encoded(t, _implicit_vr(t), rule.value, self.implicit, self.little)
                self.changes.append(change(scope.path + tag_text(t), rule.keyword, _REPLACED))
        elif e.items is not None:
            self._anonymize_sequence(buf, e, scope)
        elif e.vr == "UN" and e.undefined:  # pydicom reads it as a sequence, walked, and writes it so
            opened, data = self._transcoded(scope, buf, e)
            self._anonymize_sequence(data, opened, scope)
        elif (self.implicit or e.vr == "UN" or scope.opened) and _holds_five(buf, e.value, e.end):
            self._anonymize_value(buf, e, scope)  # (an explicit VR value of a known VR is never opened)

    def _anonymize_value(self, buf: bytes, e: _Element, scope: _Scope) -> None:
        """A value holding one of the five's tags, tried as a sequence (as pydicom tries it): an implicit VR one, or
        a UN. One whose bytes are not a sequence, item by item, is a value, kept as it is."""
        if self.implicit:
            opened = _opened(buf, e, self.little, depth=scope.path.count("["))
            if opened is not None:
                self._anonymize_sequence(buf, opened, scope)
        elif e.vr == "UN" and parses_as_sequence(buf[e.value:e.end]):
            opened, data = self._transcoded(scope, buf, e)
            del scope.rewrite[e.tag]  # unchanged, the UN is put back as it was
            self._anonymize_sequence(data, opened, scope)

    def _anonymize_sequence(self, buf: bytes, e: _Element, scope: _Scope) -> None:
        if not e.undefined and not _holds_five(buf, e.value, e.end):
            return  # left unparsed: nothing in it changes
        assert e.items is not None
        where = scope.path + tag_text(e.tag)
        walked = [self._walk_anonymize(buf, item.elements, f"{where}[{i}].", _item_charset(buf, item, scope.charset),
                                       scope.opened or e.opened) for i, item in enumerate(e.items)]
        self._walked(scope, buf, e, walked)

    def _walked(self, scope: _Scope, buf: bytes, e: _Element, walked: list[_Scope]) -> None:
        """A sequence whose items were decided: encoded again when one changed, its items' elements as decided or
        as pydicom writes them; else, when one holds an element pydicom writes in another form, what pydicom
        writes for it if it writes the dataset."""
        if any(s.out for s in walked):
            scope.out[e.tag] = self._sequence(buf, e, [{**s.rewrite, **s.out} for s in walked])
        elif any(s.rewrite for s in walked):
            scope.rewrite[e.tag] = self._sequence(buf, e, [dict(s.rewrite) for s in walked])

    # --- full --------------------------------------------------------------------------------------------------

    def full(self, meta: dict[int, _Element], head: list[_Element], tail: list[_Element], span: PixelSpan | None,
             pixel_bytes: memoryview | None) -> Plan:
        self.keyring = self.context.keyring
        nested: list[NestedValue] = []
        _nested_identity(self.buf, head, 0, nested)
        _nested_identity(self.tail_buf, tail, 0, nested)
        nested += [(tag, "AE", self.buf[e.value:e.end], None) for tag in META_AE_TITLES
                   if (e := meta.get(tag)) is not None and e.end > e.value]  # (the file meta's AE titles)
        self.context.found_nested(tuple(nested))
        self.patterns = self.context.needles
        self.own = self.context.instance_needles
        self.subject = self.context.subject
        syntax = _text(self.buf, meta.get(0x00020010))
        deflated = syntax == DeflatedExplicitVRLittleEndian
        self.whole = span is None or deflated
        # pydicom reads command-group elements (little endian only here) apart and adds them after the header's
        # others; from a deflated file, it reads them in the dataset, in tag order.
        commands = 0 if deflated else sum(1 for e in head if e.tag >> 16 == 0)
        both = head[commands:] + head[:commands] + tail
        charset = self._mark_inputs(head)[1]
        out = self._written(self._walk_full(self.buf, both, "", charset, tail_from=len(head)))
        if self.options.cap_ages and self.options.retain_patient_characteristics:
            self._cap_age(head, out, charset)
        meta_bytes = self._meta_bytes(meta)
        # (a dataset without a transfer syntax is in the encoding its first elements show, native)
        native = syntax or (ImplicitVRLittleEndian if self.implicit else ExplicitVRLittleEndian if self.little
                            else ExplicitVRBigEndian)
        clearing: tuple[bytes, bytes] | None = None
        if span is not None and span.tag == PIXEL_DATA and self.context.overlay is not None:
            found = overlay_clearing(self.context.original, native, span.value_at is not None)
            clearing, self.context.overlay_kept = (found, "") if isinstance(found, tuple) else (None, found)
        self.context.overlay_cleared = clearing is not None
        if clearing is not None:
            self.changes.append(_OVERLAY_CLEARED)
        risk = self.context.risk_beside_overlay if clearing is not None else self.context.burned_in_risk
        o = self.options
        flags = (o.retain_patient_characteristics, o.retain_device_identity, o.retain_safe_private, o.shift_dates,
                 o.clean_descriptors)
        marks, mark_changes = _marks(Level.FULL, flags, risk is None, self.implicit, *self._mark_inputs(head),
                                     little=self.little)
        self.changes += mark_changes
        preamble = b"\x00" * 128 + b"DICM" if self.preamble else b""
        header = preamble + meta_bytes + self._assemble(self.buf, head, out, marks)
        identifiers = {keyword: _identifier_text(tag, self.new_ids[tag]) for tag, keyword in _IDENTIFIERS.items()
                       if tag in self.new_ids}
        return Plan(header, span, pixel_bytes, self._assemble(self.tail_buf, tail, out, {}), self.changes,
                    self.context, identifiers, clearing=clearing,
                    value_at=span.value_at or 0 if span is not None else 0)

    def _walk_full(self, buf: bytes, elements: list[_Element], path: str, charset: bytes | None,
                   tail_from: int | None = None, opened: bool = False) -> _Scope:
        """Decide every element of one dataset by the rules core, in tag order (private ones last, by their
        creators); `charset`: the value of the SpecificCharacterSet its text is in; `opened`: it is in a sequence
        that was stored as UN."""
        scope = _Scope(elements, path, {}, charset, opened)
        private: list[tuple[_Element, bytes]] = []
        rules, changes, out = self.rules, self.changes, scope.out
        for index, e in enumerate(elements):
            source = self.tail_buf if tail_from is not None and index >= tail_from else buf
            t = e.tag
            if t >> 16 & 1:
                private.append((e, source))
                continue
            rule = rules.tag(t)
            # Most elements are removed, or kept as they are, whatever they hold: decided here, in one step.
            if rule.removes:
                out[t] = None
                changes.append(change(path + tag_text(t), rule.keyword, _REMOVED) if path else rules.removal(t))
            elif not (rule.keeps_value and e.items is None and e.vr != "UN"):
                self._decide(scope, source, e, rule)
        self._private(private, scope)
        return scope

    def _decide(self, scope: _Scope, buf: bytes, e: _Element, rule: Rule) -> None:
        """Decide a standard element by its rule: a UN resolved first (in a sequence stored as UN, its elements
        were implicit VR: none is read as UN there)."""
        if e.vr == "UN" and not rule.removes and not scope.opened:
            resolved = self._resolve_un(scope, buf, e, rule.keyword)
            if resolved is None:
                return
            e, buf = resolved
        if rule.keeps_value and e.items is None:
            return
        self._apply(_operation(buf, e, rule), scope, buf, e, rule.keyword)

    def _apply(self, op: Op, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        """What each operation does to an element on the byte path (KEEP: nothing). (Compared by identity: an Enum
        member's hash is a Python call, and so is a method taken from a table.)"""
        if op is _KEEP:
            return
        if op is _REMOVE:
            self._remove(scope, buf, e, keyword)
        elif op is _EMPTY:
            self._empty(scope, buf, e, keyword)
        elif op is _DUMMY:
            self._dummy(scope, buf, e, keyword)
        elif op is _REMAP_UID:
            self._remap_element(scope, buf, e, keyword)
        elif op is _PSEUDONYM:
            self._pseudonym(scope, buf, e, keyword)
        elif op is _SHIFT_DATE:
            self._shift(scope, buf, e, keyword)
        elif op is _CLEAN_TEXT:
            self._clean(scope, buf, e, keyword)
        elif op is _WALK_ITEMS:
            self._walk_items(scope, buf, e, keyword)
        else:
            raise AssertionError(f"no operation {op}")

    def _resolve_un(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> tuple[_Element, bytes] | None:
        """A standard attribute stored as UN as pydicom reads it: opened if its value is a sequence, else
        given its dictionary VR; None: removed (a value that cannot be what the dictionary says). What pydicom
        writes for it when it writes the dataset is noted in `scope.rewrite`."""
        if e.end == e.value:
            return self._empty_un(scope, e), buf
        if e.undefined or parses_as_sequence(buf[e.value:e.end]):
            return self._transcoded(scope, buf, e)
        vr = _implicit_vr(e.tag)  # the dictionary's
        if vr not in UN_READ_AS:
            if vr == "SQ" and not _is_empty(buf, e):
                self._remove(scope, buf, e, keyword)
                return None
            return e, buf
        resolved = _Element(e.tag, vr, e.start, e.value, e.end, False)
        if not self._fits(scope.charset, buf, resolved):
            self._remove(scope, buf, e, keyword)
            return None
        length = e.end - e.value
        if vr not in LONG_VRS and length > 0xFFFF:  # too long for its VR: it cannot be shown to be harmless
            self._remove(scope, buf, e, keyword)
            return None
        scope.rewrite[e.tag] = _header(e.tag, vr, length, False, self.little) + buf[e.value:e.end]
        return resolved, buf

    def _empty_un(self, scope: _Scope, e: _Element) -> _Element:
        """An empty UN, which pydicom reads by its dictionary VR as it reads it (a sequence of no items)."""
        vr = _implicit_vr(e.tag)
        if " " in vr:
            return e  # an ambiguous VR (US or SS...): no value to read by it, the empty UN stays as it is
        scope.rewrite[e.tag] = _header(e.tag, vr, 0, False, self.little)
        return _Element(e.tag, vr, e.start, e.value, e.end, False, [] if vr == "SQ" else None)

    def _fits(self, charset: bytes | None, buf: bytes, e: _Element) -> bool:
        """Whether a UN value read by its dictionary VR is one: it decodes, with no more values than the VM."""
        try:
            count = len(text_values(self._decoded(charset, buf, e)[0].value))
        except Exception:  # a value not of that VR cannot be shown to be harmless
            return False
        return fits_multiplicity(e.tag, count)

    def _transcoded(self, scope: _Scope, buf: bytes, e: _Element) -> tuple[_Element, bytes]:
        """A sequence stored as UN (its value implicit VR little endian, PS3.5 6.2.2), read as pydicom reads it
        and written as it writes it: in this dataset's encoding, each element encoded again. The opened element
        and the bytes it lies in; those bytes are what pydicom writes for it when it writes the dataset."""
        ds = _in_charset(scope.charset, self.implicit, self.little)
        value = buf[e.value:e.end - 8] if e.undefined else buf[e.value:e.end]  # the items (not their delimiter)
        length = UNDEFINED if e.undefined else len(value)
        ds[e.tag] = RawDataElement(BaseTag(e.tag), "SQ", length, value, e.value, True, True)
        try:
            data = _encode(ds[e.tag], self.implicit, _encodings(ds), self.little)
        except Exception:  # pydicom cannot read or write it as a sequence after all
            raise _Decline("UN that may be a standard attribute or a sequence") from None
        parser = _Parser(data, self.implicit, little=self.little)
        parser.depth = scope.path.count("[")
        opened = parser._element(0, -1, top=False)
        opened.opened = True
        scope.rewrite[e.tag] = data
        if e.undefined and not self.little:  # written as a big endian sequence: copied as a UN, pydicom would
            scope.out[e.tag] = data  # read its little endian items in big endian
        return opened, data

    def _remove(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        scope.out[e.tag] = None
        self.changes.append(change(scope.path + tag_text(e.tag), keyword, _REMOVED))

    def _empty(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        if e.items is not None:
            scope.out[e.tag] = self._sequence(buf, e, [])
        else:
            scope.out[e.tag] = _encoded(e.tag, e.vr, empty_value(e.vr), self.implicit, self.little)
        self.changes.append(change(scope.path + tag_text(e.tag), keyword, _EMPTIED))

    def _walk_items(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        assert e.items is not None
        where = scope.path + tag_text(e.tag)
        opened = scope.opened or e.opened
        walked = [self._walk_full(buf, item.elements, f"{where}[{i}].", _item_charset(buf, item, scope.charset),
                                  opened=opened) for i, item in enumerate(e.items)]
        self._walked(scope, buf, e, walked)

    def _dummy(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        value = dummy_value(e.vr)
        if isinstance(value, bytes) and not e.vr.startswith("O"):
            raise _Decline("binary dummy value")  # two zero bytes are no value of this VR (an AT): pydicom fails
        scope.out[e.tag] = _encoded(e.tag, e.vr, value, self.implicit, self.little)
        self.changes.append(change(scope.path + tag_text(e.tag), keyword, _REPLACED))

    def _remap_element(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        where, value = scope.path + tag_text(e.tag), buf[e.value:e.end]
        if e.vr == "UI" and not value.rstrip(b"\x00 ").translate(None, _UID_BYTES):
            remapped = self._remap(e.tag, e.vr, value, where, keyword, top=not scope.path)
            if remapped is not None:
                scope.out[e.tag] = remapped
            return
        if e.vr not in _UID_TEXT_VRS:  # a number, a date or bytes where a UID belongs: no UID to remap, removed
            self._remove(scope, buf, e, keyword)
            return
        # Another text VR (pydicom pads it with spaces) or odd characters: the values as pydicom reads and writes
        # them.
        elem, encodings = self._decoded(scope.charset, buf, e)
        parts = self._remapped(e.tag, text_values(elem.value), where, keyword, top=not scope.path)
        if parts is not None:
            scope.out[e.tag] = _encode(DataElement(e.tag, elem.VR, parts), self.implicit, encodings, self.little)

    def _shift(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        if self.day_offset is None:
            assert self.keyring is not None
            self.day_offset = self.keyring.day_offset(self.subject)
        elem, encoding = self._decoded(scope.charset, buf, e)
        if self.births is None:  # (never shifted: `rules.shifted_date`)
            self.births = frozenset(n.data.decode("ascii", "replace") for n in self.patterns
                                    if n.attribute == "PatientBirthDate")
        values = [shifted_date(v, elem.VR, self.day_offset, self.births) for v in text_values(elem.value)]
        scope.out[e.tag] = _encode(DataElement(e.tag, elem.VR, values), self.implicit, encoding, self.little)
        self.changes.append(change(scope.path + tag_text(e.tag), keyword, _SHIFTED))

    def _clean(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        elem, encoding = self._decoded(scope.charset, buf, e)
        values = text_values(elem.value)
        cleaned = [cleaned_text(v, self.patterns + self.own) for v in values]
        if cleaned != values:
            scope.out[e.tag] = _encode(DataElement(e.tag, elem.VR, cleaned), self.implicit, encoding, self.little)
            self.changes.append(change(scope.path + tag_text(e.tag), keyword, _CLEANED))

    def _cap_age(self, head: list[_Element], out: dict[int, bytes | None], charset: bytes | None) -> None:
        """HIPAA Safe Harbor on a kept PatientAge (rules.capped_age), after the walk."""
        e = next((x for x in head if x.tag == PATIENT_AGE), None)
        if e is None or _is_empty(self.buf, e):
            return
        if PATIENT_AGE in out:
            raise _Decline("age capped after the walk changed it")
        capped = capped_age(str(self._decoded(charset, self.buf, e)[0].value).strip())
        if capped is not None:
            out[PATIENT_AGE] = _encoded(PATIENT_AGE, "AS", capped[0], self.implicit, self.little)
            self.changes.append(change(tag_text(PATIENT_AGE), "PatientAge", capped[1]))

    def _decoded(self, charset: bytes | None, buf: bytes, e: _Element) -> tuple[DataElement, str | list[str]]:
        """An element's value as pydicom decodes it (in the character set `charset` names), and the encoding it
        writes the element's new value in."""
        ds = _in_charset(charset, self.implicit, self.little)
        ds[e.tag] = RawDataElement(BaseTag(e.tag), None if self.implicit else e.vr, e.end - e.value,
                                   buf[e.value:e.end], e.value, self.implicit, self.little)
        return ds[e.tag], _encodings(ds)

    def _private(self, private: list[tuple[_Element, bytes]], scope: _Scope) -> None:
        """Allow-listed private elements stay (cleaned of this file's values, their sequences walked); every other
        one goes."""
        path, out = scope.path, scope.out
        creators = {e.tag: self._creator(e, buf) for e, buf in private if 0x10 <= e.tag & 0xFFFF <= 0xFF}
        kept_blocks: set[int] = set()
        decided = [(e, buf, self.rules.private(creators.get(private_creator_tag(e.tag), ""), e.tag))
                   for e, buf in private if e.tag & 0xFFFF >= 0x1000]
        # One search over the values the allow-list may keep (kept `APART`: a match never spans two) finds the
        # needles any of them holds; each kept value is then cleaned of those alone (no other needle can occur in
        # it). A value that goes is not searched, nor copied (found from outside: a 255 MiB one took 1.5 GB).
        kept = [buf[e.value:e.end] for e, buf, safe in decided if safe is not None]
        joined = APART.join([b"", *kept, b""]) if kept else b""  # (apart from the bytes beside them in the file too)
        hits = tuple(find(joined, self.patterns)) + tuple(find_once(joined, self.own)) if joined else ()
        for e, buf, safe in decided:
            t = e.tag
            if safe is None:
                out[t] = None
                self.changes.append(change(path + tag_text(t), "", _REMOVED))
            elif self._keep_private(e, buf, safe, hits, path + tag_text(t), scope):
                kept_blocks.add(private_creator_tag(t))
        for e, _ in private:
            if e.tag & 0xFFFF < 0x1000 and e.tag not in kept_blocks:
                out[e.tag] = None
                self.changes.append(change(path + tag_text(e.tag), creator_keyword(e.tag), _REMOVED))

    def _keep_private(self, e: _Element, buf: bytes, safe: SafePrivate, hits: tuple[Needle, ...], where: str,
                      scope: _Scope) -> bool:
        """Keep an allow-listed private element, cleaned as its kind says; False: it cannot be kept, and goes."""
        out = scope.out
        if e.items is not None or safe.kind == "sequence" or e.undefined:  # (an undefined UN is read as one)
            return self._keep_private_sequence(e, buf, safe, where, scope)
        assert self.keyring is not None
        value = buf[e.value:e.end]
        if safe.kind == "value" and not holds_a_number(safe, e.vr, value, self.little):
            cleaned = None
        elif safe.kind == "value":
            if not hits:
                return True
            # searched and cut `APART` from the bytes beside it, as all kept values were searched: a letter of UTF-16
            # or UTF-32 at either end is whole with the NUL bytes beside it, there as in the file, where the length
            # before it or the next tag gives them (found from outside: found, then kept uncut)
            apart = APART + value + APART
            if not find(apart, hits):
                return True
            utf_8 = _utf_8_text(scope.charset, e.vr, value)
            cleaned = (clean_kept("value", apart, hits, self.keyring, utf_8) or apart)[len(APART):-len(APART)]
        else:
            cleaned = clean_kept(safe.kind, value, self.patterns, self.keyring, _utf_8_text(scope.charset, e.vr, value))
        if cleaned is None:
            out[e.tag] = None
            self.changes.append(change(where, "", _REMOVED))
            return False
        if cleaned != value:  # (as long as it was: behind its own header, whatever its VR; a binary one, FD say,
            # holding text, pydicom would not write from bytes; a GE block, rebuilt, as OB behind a header of its
            # length: as text (UT) a reader would strip its last NUL bytes)
            vr = "OB" if safe.kind == "pdb" else e.vr or "OB"
            out[e.tag] = (buf[e.start:e.value] + cleaned if len(cleaned) == len(value) and e.vr in ("", vr)
                          else _encode(DataElement(e.tag, vr, cleaned), self.implicit, little=self.little))
            self.changes.append(change(where, "", _CLEANED))
        return True

    def _keep_private_sequence(self, e: _Element, buf: bytes, safe: SafePrivate, where: str, scope: _Scope) -> bool:
        """A private sequence the allow-list keeps is walked; a sequence where it expects a value, or a value where
        it expects a sequence, goes. A value of unknown VR (implicit VR) or a UN the allow-list names a sequence
        is read as one when its bytes are one, item by item; else it goes (fail closed)."""
        if e.items is None and safe.kind == "sequence":
            e, buf = self._private_items(scope, buf, e)
        if e.items is None or safe.kind != "sequence":
            scope.out[e.tag] = None
            self.changes.append(change(where, "", _REMOVED))
            return False
        self._walk_items(scope, buf, e, "")
        return True

    def _private_items(self, scope: _Scope, buf: bytes, e: _Element) -> tuple[_Element, bytes]:
        """A private value the allow-list names a sequence, read as one when its bytes are one (else as it is):
        one of unknown VR in implicit VR, or a UN (PS3.5 6.2.2: implicit VR little endian items)."""
        if not e.vr:
            return _opened(buf, e, self.little, depth=scope.path.count("[")) or e, buf  # (not one: removed)
        if e.vr == "UN" and (e.undefined or parses_as_sequence(buf[e.value:e.end])):
            return self._transcoded(scope, buf, e)
        return e, buf

    def _creator(self, e: _Element, buf: bytes) -> str:
        if e.items is not None or (not self.implicit and e.vr not in ("LO", "UN")):
            return ""
        return creator_name(buf[e.value:e.end]) or ""

    def _pseudonym(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        assert self.keyring is not None
        t = e.tag  # PatientName or PatientID: with the PatientID and the character set in `buf` (before any pixels)
        found = [x for x in scope.elements if x.tag in (PATIENT_ID, SPECIFIC_CHARACTER_SET)]
        source = self.subject
        if any(x.tag == PATIENT_ID for x in found):
            ds = _raw_dataset(buf, found, self.implicit, self.little) if scope.path else self.context.original
            source = patient_id(ds) or source
        value, how = pseudonym(self.keyring, self.options.lookup, source)
        if not scope.path and t == PATIENT_ID:
            self.new_ids[t] = value
        self.changes.append(change(scope.path + tag_text(t), keyword, how))
        if value.isascii():  # the same bytes in every character set
            scope.out[t] = _encoded(t, PSEUDONYM_TAGS[t], value, self.implicit, self.little)
        else:
            scope.out[t] = _encode(DataElement(t, PSEUDONYM_TAGS[t], value), self.implicit,
                                   _encodings(_in_charset(scope.charset, self.implicit, self.little)), self.little)

    def _remap(self, t: int, vr: str, value: bytes, where: str, keyword: str, top: bool, meta: bool = False,
               ) -> bytes | None:
        """The element with its UIDs remapped, or None when every one is a well-known UID, kept as it is."""
        stripped = value.rstrip(b"\x00 ")
        if vr != "UI" or stripped.translate(None, _UID_BYTES):
            # a file meta element: pydicom would pad another VR with spaces, read odd characters otherwise
            raise _Decline("UID remapped in a value that is not a plain UID")
        parts = self._remapped(t, stripped.decode("ascii").split("\\"), where, keyword, top)
        if parts is None:
            return None
        text = "\\".join(parts).encode("ascii")
        text += b"\x00" * (len(text) % 2)
        return _header(t, vr, len(text), self.implicit and not meta, self.little or meta) + text

    def _remapped(self, t: int, original: list[str], where: str, keyword: str, top: bool) -> list[str] | None:
        """The UIDs remapped (a top-level instance, series or study UID noted for the output path), or None when
        every one is a well-known UID, kept."""
        assert self.keyring is not None
        parts = [remap_uid(self.keyring, v) for v in original]
        if parts == original:
            return None
        if top and t in (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID):
            self.new_ids[t] = parts if len(parts) > 1 else parts[0]
        self.changes.append(change(where, keyword, _REMAPPED))
        return parts

    def _mark_inputs(self, head: list[_Element]) -> tuple[bytes | None, bytes | None]:
        """The source's DeidentificationMethod (kept before ours) and character set, as bytes."""
        found: dict[int, bytes] = {}
        for e in head:
            if e.tag > DEIDENTIFICATION_METHOD:
                break  # the elements are in tag order
            if e.tag in (DEIDENTIFICATION_METHOD, SPECIFIC_CHARACTER_SET):
                found[e.tag] = self.buf[e.value:e.end]
        return found.get(DEIDENTIFICATION_METHOD), found.get(SPECIFIC_CHARACTER_SET)

    # --- output --------------------------------------------------------------------------------------------------

    def _meta_bytes(self, meta: dict[int, _Element]) -> bytes:
        """The file meta as the release wrote it: at full only the kept elements, the instance remapped."""
        parts: list[bytes] = []
        for t, e in meta.items():
            if t == 0x00020000:
                continue
            op = self.rules.meta(t)
            if op is _CLEAN_TEXT and self._beyond_toolkit_name(self.buf[e.value:e.end]):
                self.changes.append(change(tag_text(t), keyword_for_tag(t), _REMOVED))
                continue
            if op is _REMOVE:
                self.changes.append(change(tag_text(t), keyword_for_tag(t), _REMOVED))
                continue
            remapped = None
            if op is _REMAP_UID and not _is_empty(self.buf, e):
                remapped = self._remap(t, "UI", self.buf[e.value:e.end], tag_text(t), keyword_for_tag(t), top=False,
                                       meta=True)
            parts.append(self.buf[e.start:e.end] if remapped is None else remapped)
        body = b"".join(parts)
        if 0x00020000 in meta:
            body = struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(body)) + body
        return body

    def _beyond_toolkit_name(self, value: bytes) -> bool:
        """Whether an ImplementationVersionName holds one of this file's identifying values, other than in a known
        toolkit's name (`identifiers.beyond_toolkit_name`)."""
        hits = find(value, self.patterns) + find_once(value, self.own)
        text = value.decode("latin_1")  # (an SH of the default repertoire: file meta has no character set)
        return any(beyond_toolkit_name(text, needle) for needle in hits)

    def _assemble(self, buf: bytes, elements: list[_Element], out: dict[int, bytes | None],
                  extra: dict[int, bytes]) -> bytes:
        """The dataset's bytes in tag order: decided elements as decided, the rest copied from the source, each
        run of adjacent untouched elements in one slice."""
        parts: list[bytes] = []
        # the `extra` elements the dataset lacks, inserted in tag order (the others replace theirs)
        pending = sorted((t, piece) for t, piece in extra.items() if not any(e.tag == t for e in elements))
        placed = 0
        next_tag = pending[0][0] if pending else _PAST_ALL  # of the next one to insert
        run = end = elements[0].start if elements else 0  # the untouched source bytes not yet placed
        for e in elements:
            t = e.tag
            piece: bytes | None = None
            decided = True
            if extra and t in extra:
                piece = extra[t]
            elif t & 0xFFFF == 0 and t >> 16 > 6:  # a retired group length: not written (PS3.5 7.2), as by pydicom
                pass
            elif t in out:
                piece = out[t]
            else:
                decided = False
            if e.start == end and not decided and next_tag >= t:
                end = e.end
                continue
            parts.append(buf[run:end])
            while next_tag < t:
                parts.append(pending[placed][1])
                placed += 1
                next_tag = pending[placed][0] if placed < len(pending) else _PAST_ALL
            run, end = e.start, e.end
            if decided:
                run = e.end
                if piece is not None:
                    parts.append(piece)
        # (all of `buf`: itself, not a copy, which a compiled slice always is: found from outside, a large value
        # after the pixel data was held twice)
        parts.append(buf if run == 0 and end == len(buf) else buf[run:end])
        parts += [piece for _, piece in pending[placed:]]
        return b"".join(parts)

    def _sequence(self, buf: bytes, e: _Element, walked: list[dict[int, bytes | None]]) -> bytes:
        """A sequence encoded again as pydicom does, with each item's decided elements; [] empties it."""
        assert e.items is not None
        body: list[bytes] = []
        order = "<" if self.little else ">"
        for item, out in zip(e.items, walked, strict=False):
            content = self._assemble(buf, item.elements, out, {})
            if item.undefined:
                body.append(struct.pack(order + "HHL", 0xFFFE, 0xE000, UNDEFINED) + content
                            + struct.pack(order + "HHL", 0xFFFE, 0xE00D, 0))
            else:
                body.append(struct.pack(order + "HHL", 0xFFFE, 0xE000, len(content)) + content)
        value = b"".join(body)
        if e.undefined:
            return (_header(e.tag, "SQ", UNDEFINED, self.implicit, self.little) + value
                    + struct.pack(order + "HHL", 0xFFFE, 0xE0DD, 0))
        return _header(e.tag, "SQ", len(value), self.implicit, self.little) + value


def _opened(buf: bytes, e: _Element, little: bool, depth: int) -> _Element | None:
    """An implicit VR value of unknown VR read as a sequence (one that holds one of anonymize's five, or a private
    one the allow-list names a sequence), or None when it is not one, item by item; `depth`: of the items it is
    in (one nested too deep declines the file)."""
    opened = _Element(e.tag, "SQ", e.start, e.value, e.end, False)
    parser = _Parser(buf, True, little=little)
    parser.depth = depth
    try:
        opened.items, _ = parser._items(opened)
    except _Decline as decline:
        if decline.reason == NESTED_TOO_DEEP:
            raise
        return None
    return opened


def _in_charset(charset: bytes | None, implicit: bool, little: bool) -> Dataset:
    """A dataset holding only the character set `charset` (a SpecificCharacterSet value; None: the default)."""
    ds = Dataset()
    if charset is not None:
        tag = BaseTag(SPECIFIC_CHARACTER_SET)
        ds[tag] = RawDataElement(tag, None if implicit else "CS", len(charset), charset, 0, implicit, little)
    return ds


def _encodings(ds: Dataset) -> list[str]:
    """The Python codecs pydicom writes the text of `ds` in."""
    return convert_encodings(ds.get("SpecificCharacterSet", default_encoding))


def _utf_8_text(charset: bytes | None, vr: str, value: bytes) -> bool:
    """Whether a value is text in UTF-8: of a text VR (or of none known), valid UTF-8, in a dataset whose
    SpecificCharacterSet is UTF-8's (which takes no code extensions: its one term)."""
    if charset is None or charset.strip(b" \x00").upper() != b"ISO_IR 192" or vr not in _MAYBE_TEXT_VRS:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_MAYBE_TEXT_VRS: Final = TEXT_VRS | {"", "UN"}


def _item_charset(buf: bytes, item: _Item, parent: bytes | None) -> bytes | None:
    """The SpecificCharacterSet value an item's text is in: its own, else its parent's."""
    own = next((x for x in item.elements if x.tag == SPECIFIC_CHARACTER_SET), None)
    return parent if own is None else buf[own.value:own.end]


_FIVE: Final = tuple(struct.pack(f"{order}HH", t >> 16, t & 0xFFFF)  # as apply
                     for t in NIDB_ANONYMIZE for order in "<>")
# Whether buf[pos:end] holds one of the five's tags, in one search (no slice copied).
_holds_five = re.compile(b"|".join([re.escape(p) for p in _FIVE])).search


# Bound once: an Enum member read from its class is slow on Python 3.11, its value slower (a Python call), and these
# are read for every element.
_KEEP: Final = Op.KEEP
_REMOVE: Final = Op.REMOVE
_EMPTY: Final = Op.EMPTY
_DUMMY: Final = Op.DUMMY
_REMAP_UID: Final = Op.REMAP_UID
_PSEUDONYM: Final = Op.PSEUDONYM
_SHIFT_DATE: Final = Op.SHIFT_DATE
_CLEAN_TEXT: Final = Op.CLEAN_TEXT
_WALK_ITEMS: Final = Op.WALK_ITEMS
_REMOVED: Final = Op.REMOVE.value
_EMPTIED: Final = Op.EMPTY.value
_REPLACED: Final = Op.DUMMY.value
_REMAPPED: Final = Op.REMAP_UID.value
_SHIFTED: Final = Op.SHIFT_DATE.value
_CLEANED: Final = Op.CLEAN_TEXT.value


class _Scope:
    """One dataset being decided: its elements, its path, the decisions."""

    __slots__ = ("elements", "path", "out", "charset", "opened", "rewrite")

    def __init__(self, elements: list[_Element], path: str, out: dict[int, bytes | None], charset: bytes | None,
                 opened: bool = False) -> None:
        self.elements = elements
        self.path = path
        self.out = out
        self.charset = charset  # the value of the SpecificCharacterSet the dataset's text is in (None: the default)
        self.opened = opened  # in a sequence stored as UN (its elements were implicit VR)
        self.rewrite: dict[int, bytes] = {}  # kept elements pydicom writes in another form


def _operation(buf: bytes, e: _Element, rule: Rule) -> Op:
    """The operation on a standard element by the VR its value has; an empty value: KEEP."""
    if rule.removes:
        return _REMOVE
    if rule.technical is not None:  # removed unless its value is wholly a technical encoding
        return _KEEP if e.items is None and rule.kept(buf[e.value:e.end]) else _REMOVE
    if e.items is not None:
        return rule.op("SQ")
    if rule.keeps_value or _is_empty(buf, e):
        return _KEEP
    if not e.vr or " " in e.vr or e.vr == "UN":
        return _REMOVE  # no VR to apply the rule by: it cannot be shown to be harmless (fail closed)
    return rule.op(e.vr)
