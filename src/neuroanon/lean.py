"""The lean path: a common-case file anonymized on its bytes, element by element, without pydicom's object model.

It takes a Part 10 file in little endian (explicit or implicit VR, native or encapsulated pixel data) whose
elements are in canonical form, and gives byte for byte the output and the list of changes of the general path
(read_header -> apply_level -> write_instance), several times faster: untouched elements are copied from the
source bytes, changed ones are encoded, and a sequence is encoded again only when something inside it changed.
Whatever is not that common case it declines (`plan` returns None) and the general path takes the file;
tests/test_lean.py holds the two paths equal on every file of the test corpus.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag
from pydicom.uid import UID

from .allowlist import SafePrivate, creator_name
from .context import FileContext, RunContext
from .csa import clean_kept
from .errors import UsageError
from .identifiers import Needle, find
from .keys import Keyring
from .options import Level, Options
from .read import DICOMDIR_CLASS, PIXEL_TAGS, PixelSpan
from .rules import (
    METHOD_NAMES,
    NIDB_ANONYMIZE,
    PSEUDONYM_TAGS,
    Change,
    Op,
    Rule,
    Rules,
    compile_rules,
    creator_keyword,
    dummy_value,
    empty_value,
    mark_full,
    mark_method,
    pseudonym,
    remap_uid,
)
from .tags import (
    DEIDENTIFICATION_METHOD,
    DEIDENTIFICATION_METHOD_CODES,
    LONGITUDINAL_TEMPORAL_MODIFIED,
    PATIENT_ID,
    PATIENT_IDENTITY_REMOVED,
    SERIES_INSTANCE_UID,
    SOP_INSTANCE_UID,
    SPECIFIC_CHARACTER_SET,
    STUDY_INSTANCE_UID,
    private_creator_tag,
    tag_text,
)
from .write import copy_range

HEAD_BYTES = 1 << 20  # read at once; a longer header (or a file without pixel data in it) goes the general way
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
VRS = LONG_VRS | {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH", "SL", "SS",
                  "ST", "TM", "UI", "UL", "US"}
_VR_OF = {vr.encode(): vr for vr in VRS}
MARK_TAGS = frozenset({PATIENT_IDENTITY_REMOVED, DEIDENTIFICATION_METHOD, DEIDENTIFICATION_METHOD_CODES,
                       LONGITUDINAL_TEMPORAL_MODIFIED})
_HH = struct.Struct("<HH").unpack_from
_H = struct.Struct("<H").unpack_from
_L = struct.Struct("<L").unpack_from
_UID_BYTES = frozenset(b"0123456789.\\")


class _Decline(Exception):
    """Not the lean path's common case: the general path takes the file."""


@dataclass(slots=True)
class _Element:
    tag: int
    vr: str  # as written (explicit VR) or from the dictionary (implicit VR); "" when unknown
    start: int  # first byte of the element's header in the buffer
    value: int  # first byte of its value
    end: int  # the byte after it (after the sequence delimiter, for an undefined length)
    undefined: bool
    items: list[_Item] | None = None


@dataclass(slots=True)
class _Item:
    elements: list[_Element]
    undefined: bool


@dataclass
class Plan:
    """A file's anonymized form: header bytes, the source's pixel data element, trailing bytes; what changed."""

    head: bytes
    pixels: PixelSpan  # in the source
    pixel_bytes: memoryview | None  # the pixel data element, when it was read with the header
    tail: bytes
    changes: list[Change]
    context: FileContext  # its original: at full the source's top-level elements but sequences, as raw elements
    identifiers: Dataset  # the new PatientID and UIDs the output path is built from

    def write(self, source: Path, out: BinaryIO) -> PixelSpan:
        """Write the output to `out`; return where its pixel data element lies in it."""
        out.write(self.head)
        start = out.tell()
        if self.pixel_bytes is not None:
            out.write(self.pixel_bytes)
        else:
            with open(source, "rb") as src:
                src.seek(self.pixels.start)
                copy_range(src, out, self.pixels.size)
        end = out.tell()
        out.write(self.tail)
        out.flush()
        return PixelSpan(self.pixels.tag, start, end)

    def searchable(self) -> bytes | None:
        """The output's bytes but the pixel data value, as the residual check reads them from the written file."""
        if self.pixel_bytes is None or self.pixels.size < 12:
            return None
        return self.head + bytes(self.pixel_bytes[:12]) + self.tail


def plan(path: Path, run: RunContext | Options) -> Plan | None:
    """The lean plan for `path` in a run (or with options), or None when the general path must take the file."""
    run = run if isinstance(run, RunContext) else RunContext.of(run)
    options = run.options
    if options.level is Level.ORIGINAL or (options.level is Level.FULL and (
            options.shift_dates or options.clean_descriptors or options.cap_ages)):
        return None
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = f.read(HEAD_BYTES)
            return _plan(f, buf, size, run)
    except UsageError:
        raise
    except Exception:  # declined, or anything unforeseen: the general path decides, and reports what is wrong
        return None


def _plan(f: BinaryIO, buf: bytes, size: int, run: RunContext) -> Plan:
    options = run.options
    if len(buf) < 144 or buf[128:132] != b"DICM":
        raise _Decline
    meta, pos = _meta(buf)
    syntax = _text(buf, meta.get(0x00020010))
    implicit = syntax == IMPLICIT_LE
    uid = UID(syntax)
    if not implicit and (syntax != EXPLICIT_LE and not (uid.is_transfer_syntax and uid.is_little_endian
                                                         and not uid.is_implicit_VR and not uid.is_deflated)):
        raise _Decline
    if _text(buf, meta.get(0x00020002)) == DICOMDIR_CLASS:
        raise _Decline
    parser = _Parser(buf, implicit)
    head, pixels = parser.top(pos)
    if pixels is None:
        raise _Decline  # no pixel data: the general path writes it whole
    pixel_end = _pixel_end(f, buf, size, pixels, implicit)
    pixel_bytes = memoryview(buf)[pixels.start:pixel_end] if pixel_end <= len(buf) else None
    if len(buf) == size:
        tail_buf, tail_start = buf, pixel_end
    elif size - pixel_end > HEAD_BYTES:
        raise _Decline
    else:
        f.seek(pixel_end)
        tail_buf, tail_start = f.read(), 0
    tail: list[_Element] = []
    if tail_start < len(tail_buf):
        tail, _ = _Parser(tail_buf, implicit).dataset(tail_start, len(tail_buf), top=True)
        if tail and tail[0].tag <= pixels.tag:
            raise _Decline
    span = PixelSpan(pixels.tag, pixels.start, pixel_end)
    context = run.file(_raw_dataset(buf, head, implicit) if options.level is Level.FULL else Dataset())
    charset = _text(buf, next((e for e in head if e.tag == 0x00080005), None))
    if "2022" in charset:
        raise _Decline
    job = _Job(buf, tail_buf, implicit, options, context)
    if options.level is Level.ANONYMIZE:
        return job.anonymize(meta, head, tail, span, pixel_bytes)
    return job.full(meta, head, tail, span, pixel_bytes)


def _meta(buf: bytes) -> tuple[dict[int, _Element], int]:
    """The file meta elements (explicit VR little endian), in canonical form, and where the dataset begins."""
    found: dict[int, _Element] = {}
    pos, last = 132, 0
    parser = _Parser(buf, implicit=False)
    while pos + 8 <= len(buf) and buf[pos:pos + 2] == b"\x02\x00":
        element = parser._element(pos, last, top=False)
        if element.items is not None:
            raise _Decline
        if element.vr == "UI" and not _canonical_uid(buf[element.value:element.end]):
            raise _Decline  # pydicom would write it back in another form
        found[element.tag] = element
        last, pos = element.tag, element.end
    if 0x00020010 not in found:
        raise _Decline
    return found, pos


@lru_cache(maxsize=4096)
def _implicit_vr(tag: int) -> str:
    """The VR pydicom gives an implicit-VR element: the dictionary's, LO for private creators, else unknown."""
    if tag >> 16 & 1:
        return "LO" if 0x10 <= tag & 0xFFFF <= 0xFF else ""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


class _Parser:
    """Walks element headers over a buffer into a tree; declines anything out of the canonical form."""

    def __init__(self, buf: bytes, implicit: bool) -> None:
        self.buf, self.implicit = buf, implicit

    def top(self, pos: int) -> tuple[list[_Element], _Element | None]:
        """The top-level elements up to the pixel data element (returned separately, its value not walked)."""
        elements: list[_Element] = []
        last = -1
        self._check_first(pos)
        while pos < len(self.buf):
            element = self._element(pos, last, top=True)
            if element.tag in PIXEL_TAGS:
                return elements, element
            elements.append(element)
            last, pos = element.tag, element.end
        return elements, None

    def dataset(self, pos: int, end: int, in_item: bool = False, top: bool = False) -> tuple[list[_Element], int]:
        """Elements from `pos` to `end` (or, in an undefined-length item, to its delimiter); and where they end.

        `top`: the top-level elements after the pixel data, where another pixel data element is declined."""
        elements: list[_Element] = []
        last = -1
        self._check_first(pos)
        while pos < end:
            if in_item and self.buf[pos:pos + 8] == _ITEM_END_BYTES:
                return elements, pos + 8
            element = self._element(pos, last, top)
            if top and element.tag in PIXEL_TAGS:
                raise _Decline
            elements.append(element)
            last, pos = element.tag, element.end
        if in_item or pos != end:
            raise _Decline
        return elements, pos

    def _check_first(self, pos: int) -> None:
        # pydicom switches between implicit and explicit VR when the first element looks like the other kind.
        if pos + 6 <= len(self.buf) and self.implicit and self.buf[pos + 4:pos + 6] in _VR_OF:
            raise _Decline

    def _element(self, pos: int, last: int, top: bool) -> _Element:
        """The element at `pos` (its items walked if it is a sequence; a top-level pixel data element not)."""
        buf = self.buf
        if pos + 8 > len(buf):
            raise _Decline
        group, number = _HH(buf, pos)
        tag = group << 16 | number
        if tag <= last or group in (0xFFFE, 0x0000):  # command-group elements: pydicom reads them apart
            raise _Decline
        if self.implicit:
            (length,) = _L(buf, pos + 4)
            vr, value = _implicit_vr(tag), pos + 8
        else:
            vr = _VR_OF.get(buf[pos + 4:pos + 6])  # type: ignore[assignment]
            if vr is None:
                raise _Decline
            if vr in LONG_VRS:
                if buf[pos + 6:pos + 8] != b"\x00\x00":
                    raise _Decline
                (length,) = _L(buf, pos + 8)
                value = pos + 12
            else:
                (length,) = _H(buf, pos + 6)
                value = pos + 8
        undefined = length == UNDEFINED
        element = _Element(tag, vr, pos, value, value if undefined else value + length, undefined)
        if top and tag in PIXEL_TAGS:
            return element  # its value may lie beyond what was read: the caller copies it from the file
        if vr == "SQ":
            element.items, element.end = self._items(element)
        elif undefined or element.end > len(buf):
            raise _Decline
        elif vr == "UN" and (not group & 1 or buf[value:value + 4] == _ITEM_TAG_BYTES):
            # A standard attribute stored as UN (read by its dictionary VR, opened if a sequence) or a value that
            # may be a sequence stored as UN: the general path decides.
            raise _Decline
        return element

    def _items(self, sequence: _Element) -> tuple[list[_Item], int]:
        items: list[_Item] = []
        pos = sequence.value
        end = UNDEFINED if sequence.undefined else sequence.end
        while pos < end:
            if pos + 8 > len(self.buf):
                raise _Decline
            group, number = _HH(self.buf, pos)
            tag = group << 16 | number
            (length,) = _L(self.buf, pos + 4)
            if tag == SEQUENCE_END and sequence.undefined:
                if length != 0:
                    raise _Decline
                return items, pos + 8
            if tag != ITEM:
                raise _Decline
            if length == UNDEFINED:
                elements, pos = self.dataset(pos + 8, len(self.buf), in_item=True)
            else:
                elements, pos = self.dataset(pos + 8, pos + 8 + length)
            items.append(_Item(elements, length == UNDEFINED))
        if sequence.undefined or pos != end:
            raise _Decline
        return items, pos


_ITEM_END_BYTES = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
_ITEM_TAG_BYTES = struct.pack("<HH", 0xFFFE, 0xE000)


def _pixel_end(f: BinaryIO, buf: bytes, size: int, pixels: _Element, implicit: bool) -> int:
    """Where the pixel data element ends: after its value, or after the delimiter of its fragments."""
    if not pixels.undefined:
        if pixels.end > size:
            raise _Decline
        return pixels.end
    if implicit:
        raise _Decline
    pos = pixels.value
    while True:
        if pos + 8 <= len(buf):
            head = buf[pos:pos + 8]
        else:
            f.seek(pos)
            head = f.read(8)
            if len(head) < 8:
                raise _Decline
        group, number, length = struct.unpack("<HHL", head)
        tag = group << 16 | number
        if tag == SEQUENCE_END:
            return pos + 8
        if tag != ITEM or length == UNDEFINED or pos + 8 + length > size:
            raise _Decline
        pos += 8 + length


def _raw_dataset(buf: bytes, elements: list[_Element], implicit: bool) -> Dataset:
    """The elements but sequences as a pydicom dataset of raw elements, decoded only when read."""
    return Dataset({BaseTag(e.tag): RawDataElement(BaseTag(e.tag), None if implicit else e.vr, e.end - e.value,
                                                   buf[e.value:e.end], e.value, implicit, True)
                    for e in elements if e.items is None})


def _text(buf: bytes, element: _Element | None) -> str:
    if element is None:
        return ""
    return buf[element.value:element.end].decode("ascii").rstrip("\x00 ").strip()


def _canonical_uid(value: bytes) -> bool:
    """True when pydicom would write this UI value back as it is."""
    stripped = value.rstrip(b"\x00 ")
    return stripped == stripped.strip() and value == stripped + b"\x00" * (len(stripped) % 2)


def _is_empty(buf: bytes, element: _Element) -> bool:
    return element.end == element.value or buf[element.value:element.end].strip(b" \x00") == b""


@lru_cache(maxsize=1024)
def _encoded(tag: int, vr: str, value: object, implicit: bool) -> bytes:
    """An element as pydicom writes it (the general path's encoder), for values that recur."""
    return _encode(DataElement(tag, vr, value), implicit)


def _encode(element: DataElement, implicit: bool, encoding: str | list[str] | None = None) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_data_element(fp, element, encoding)
    return bytes(fp.getvalue())


def _header(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length)
    if vr in LONG_VRS:
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)


@lru_cache(maxsize=256)
def _marks(level: Level, flags: tuple[bool, ...], identity_removed: bool, implicit: bool, earlier: bytes | None,
           charset: bytes | None) -> tuple[dict[int, bytes], tuple[Change, ...]]:
    """The mark elements a level sets (encoded, by tag) and their changes, after an `earlier` method value."""
    ds = Dataset()
    for tag, vr, value in ((SPECIFIC_CHARACTER_SET, "CS", charset), (DEIDENTIFICATION_METHOD, "LO", earlier)):
        if value is not None:
            ds[tag] = RawDataElement(BaseTag(tag), None if implicit else vr, len(value), value, 0, implicit, True)
    changes: list[Change] = []
    if level is Level.ANONYMIZE:
        mark_method(ds, METHOD_NAMES[Level.ANONYMIZE], changes, keep_earlier=True)
    else:
        options = Options(level=level, retain_patient_characteristics=flags[0], retain_device_identity=flags[1],
                          retain_safe_private=flags[2])
        mark_full(ds, options, changes, identity_removed)
    encoding = ds.get("SpecificCharacterSet", default_encoding)
    encoded = {int(tag): _encode(ds[tag], implicit, encoding) for tag in sorted(ds.keys()) if tag in MARK_TAGS}
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
    patterns: tuple[Needle, ...] = ()
    subject: str = ""
    new_ids: dict[int, object] = field(default_factory=dict)
    rules: Rules = field(init=False)

    def __post_init__(self) -> None:
        self.rules = compile_rules(self.options)

    # --- anonymize ---------------------------------------------------------------------------------------------

    def anonymize(self, meta: dict[int, _Element], head: list[_Element], tail: list[_Element], span: PixelSpan,
                  pixel_bytes: memoryview | None) -> Plan:
        out = self._walk_anonymize(self.buf, head, "")
        tail_out = self._walk_anonymize(self.tail_buf, tail, "")
        marks, mark_changes = _marks(Level.ANONYMIZE, (), True, self.implicit, *self._mark_inputs(head))
        self.changes += mark_changes
        preamble = self.buf[:132]
        header = preamble + self._meta_bytes(meta) + self._assemble(self.buf, head, out, marks)
        return Plan(header, span, pixel_bytes, self._assemble(self.tail_buf, tail, tail_out, {}), self.changes,
                    self.context, Dataset())

    def _walk_anonymize(self, buf: bytes, elements: list[_Element], path: str) -> dict[int, bytes | None]:
        out: dict[int, bytes | None] = {}
        for e in elements:
            t = e.tag
            rule = self.rules.tag(t)
            if rule.value is not None:
                if e.items is not None:
                    raise _Decline
                if not _is_empty(buf, e):
                    out[t] = _encoded(t, str(dictionary_VR(t)), rule.value, self.implicit)
                    self.changes.append(Change(path + tag_text(t), rule.keyword, Op.DUMMY.value))
            elif e.items is not None:
                self._anonymize_sequence(buf, e, path + tag_text(t), out)
            elif self.implicit and any(p in buf[e.value:e.end] for p in _FIVE):
                raise _Decline  # the general path tries such an element as a sequence
        return out

    def _anonymize_sequence(self, buf: bytes, e: _Element, where: str, out: dict[int, bytes | None]) -> None:
        if not any(p in buf[e.value:e.end] for p in _FIVE) and not e.undefined:
            return  # the general path leaves it unparsed
        assert e.items is not None
        walked = [self._walk_anonymize(buf, item.elements, f"{where}[{i}].") for i, item in enumerate(e.items)]
        if any(walked):
            out[e.tag] = self._sequence(buf, e, walked)

    # --- full --------------------------------------------------------------------------------------------------

    def full(self, meta: dict[int, _Element], head: list[_Element], tail: list[_Element], span: PixelSpan,
             pixel_bytes: memoryview | None) -> Plan:
        self.keyring = self.context.keyring
        self.patterns = self.context.needles
        self.subject = self.context.subject
        both = head + tail
        out = self._walk_full(self.buf, both, "", self.context.original, tail_from=len(head))
        meta_bytes = self._meta_bytes(meta)
        risk = self.context.burned_in_risk
        flags = (self.options.retain_patient_characteristics, self.options.retain_device_identity,
                 self.options.retain_safe_private)
        marks, mark_changes = _marks(Level.FULL, flags, risk is None, self.implicit, *self._mark_inputs(head))
        self.changes += mark_changes
        header = b"\x00" * 128 + b"DICM" + meta_bytes + self._assemble(self.buf, head, out, marks)
        identifiers = Dataset()
        for tag in (PATIENT_ID, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID):
            if tag in self.new_ids:
                identifiers[tag] = DataElement(tag, "LO" if tag == PATIENT_ID else "UI", self.new_ids[tag])
        return Plan(header, span, pixel_bytes, self._assemble(self.tail_buf, tail, out, {}), self.changes,
                    self.context, identifiers)

    def _walk_full(self, buf: bytes, elements: list[_Element], path: str, ds: Dataset | None,
                   tail_from: int | None = None) -> dict[int, bytes | None]:
        """Decide every element of one dataset (the general walker's rules, in its order)."""
        scope = _Scope(elements, path, ds, {})
        private: list[tuple[_Element, bytes]] = []
        for index, e in enumerate(elements):
            source = self.tail_buf if tail_from is not None and index >= tail_from else buf
            if e.tag >> 16 & 1:
                private.append((e, source))
                continue
            rule = self.rules.tag(e.tag)
            if rule.keeps_value and e.items is None:
                continue
            op = _operation(source, e, rule)
            if op is not _KEEP:
                _OPERATIONS[op](self, scope, source, e, rule.keyword)
        self._private(private, path, scope.out)
        return scope.out

    def _remove(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        scope.out[e.tag] = None
        self.changes.append(Change(scope.path + tag_text(e.tag), keyword, _REMOVED))

    def _empty(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        if e.items is not None:
            scope.out[e.tag] = self._sequence(buf, e, [])
        else:
            scope.out[e.tag] = _encoded(e.tag, e.vr, empty_value(e.vr), self.implicit)
        self.changes.append(Change(scope.path + tag_text(e.tag), keyword, Op.EMPTY.value))

    def _walk_items(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        assert e.items is not None
        where = scope.path + tag_text(e.tag)
        walked = [self._walk_full(buf, item.elements, f"{where}[{i}].", None) for i, item in enumerate(e.items)]
        if any(walked):
            scope.out[e.tag] = self._sequence(buf, e, walked)

    def _dummy(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        value = dummy_value(e.vr)
        if isinstance(value, bytes):
            raise _Decline  # pydicom would decide how to write a binary dummy
        scope.out[e.tag] = _encoded(e.tag, e.vr, value, self.implicit)
        self.changes.append(Change(scope.path + tag_text(e.tag), keyword, Op.DUMMY.value))

    def _remap_element(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        where = scope.path + tag_text(e.tag)
        remapped = self._remap(e.tag, e.vr, buf[e.value:e.end], where, keyword, top=not scope.path)
        if remapped is not None:
            scope.out[e.tag] = remapped

    def _decline(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        raise _Decline  # shifted dates and cleaned descriptors: the general path

    def _private(self, private: list[tuple[_Element, bytes]], path: str, out: dict[int, bytes | None]) -> None:
        """Allow-listed private elements stay (cleaned of this file's values); every other one goes."""
        creators = {e.tag: self._creator(e, buf) for e, buf in private if 0x10 <= e.tag & 0xFFFF <= 0xFF}
        kept_blocks: set[int] = set()
        # One search over every private value (NUL-separated: a match never spans two) finds the needles any of
        # them holds; each kept value is then cleaned of those alone (no other needle can occur in it).
        hits = tuple(find(b"\x00".join(buf[e.value:e.end] for e, buf in private), self.patterns)) if private else ()
        for e, buf in private:
            t = e.tag
            if t & 0xFFFF < 0x1000:
                continue
            creator_tag = private_creator_tag(t)
            safe = self.rules.private(creators.get(creator_tag, ""), t)
            if safe is None:
                out[t] = None
                self.changes.append(Change(path + tag_text(t), "", _REMOVED))
            elif self._keep_private(e, buf, safe, hits, path + tag_text(t), out):
                kept_blocks.add(creator_tag)
        for e, _ in private:
            if e.tag & 0xFFFF < 0x1000 and e.tag not in kept_blocks:
                out[e.tag] = None
                self.changes.append(Change(path + tag_text(e.tag), creator_keyword(e.tag), _REMOVED))

    def _keep_private(self, e: _Element, buf: bytes, safe: SafePrivate, hits: tuple[Needle, ...], where: str,
                      out: dict[int, bytes | None]) -> bool:
        """Keep an allow-listed private element, cleaned as its kind says; False: it cannot be kept, and goes."""
        if e.items is not None or safe.kind == "sequence":
            raise _Decline  # a private sequence: the general path walks it
        assert self.keyring is not None
        value = buf[e.value:e.end]
        if safe.kind == "value" and not (hits and find(value, hits)):
            return True
        cleaned = clean_kept(safe.kind, value, hits if safe.kind == "value" else self.patterns, self.keyring)
        if cleaned is None:
            out[e.tag] = None
            self.changes.append(Change(where, "", _REMOVED))
            return False
        if cleaned != value:
            out[e.tag] = (buf[e.start:e.value] + cleaned if self.implicit
                          else _encode(DataElement(e.tag, e.vr, cleaned), False))
            self.changes.append(Change(where, "", Op.CLEAN_TEXT.value))
        return True

    def _creator(self, e: _Element, buf: bytes) -> str:
        if e.items is not None or (not self.implicit and e.vr not in ("LO", "UN")):
            return ""
        return creator_name(buf[e.value:e.end]) or ""

    def _pseudonym(self, scope: _Scope, buf: bytes, e: _Element, keyword: str) -> None:
        assert self.keyring is not None
        t, ds = e.tag, scope.ds
        if any(x.tag == PATIENT_ID for x in scope.elements):
            if ds is None:
                ds = _raw_dataset(buf, [x for x in scope.elements if x.tag in (PATIENT_ID, SPECIFIC_CHARACTER_SET)],
                                  self.implicit)
            source = str(ds.get("PatientID", "") or "") or self.subject
        else:
            source = self.subject
        value, how = pseudonym(self.keyring, self.options.lookup, source)
        if not value.isascii():
            raise _Decline
        if not scope.path and t == PATIENT_ID:
            self.new_ids[t] = value
        self.changes.append(Change(scope.path + tag_text(t), keyword, how))
        scope.out[t] = _encoded(t, PSEUDONYM_TAGS[t], value, self.implicit)

    def _remap(self, t: int, vr: str, value: bytes, where: str, keyword: str, top: bool, meta: bool = False,
               ) -> bytes | None:
        """The element with its UIDs remapped, or None when every one is a well-known UID, kept as it is."""
        assert self.keyring is not None
        stripped = value.rstrip(b"\x00 ")
        if vr != "UI" or not set(stripped) <= _UID_BYTES:
            raise _Decline  # pydicom would pad another VR with spaces; odd characters it would read otherwise
        original = stripped.decode("ascii").split("\\")
        parts = [remap_uid(self.keyring, v) for v in original]
        if parts == original:
            return None
        if top and t in (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID):
            self.new_ids[t] = parts if len(parts) > 1 else parts[0]
        text = "\\".join(parts).encode("ascii")
        text += b"\x00" * (len(text) % 2)
        self.changes.append(Change(where, keyword, Op.REMAP_UID.value))
        return _header(t, vr, len(text), self.implicit and not meta) + text

    def _mark_inputs(self, head: list[_Element]) -> tuple[bytes | None, bytes | None]:
        """The source's DeidentificationMethod (kept before ours) and character set, as bytes."""
        wanted = (DEIDENTIFICATION_METHOD, SPECIFIC_CHARACTER_SET)
        found = {e.tag: self.buf[e.value:e.end] for e in head if e.tag in wanted}
        return found.get(DEIDENTIFICATION_METHOD), found.get(SPECIFIC_CHARACTER_SET)

    # --- output --------------------------------------------------------------------------------------------------

    def _meta_bytes(self, meta: dict[int, _Element]) -> bytes:
        """The file meta as the general path writes it: at full only the kept elements, the instance remapped."""
        parts: list[bytes] = []
        for t, e in meta.items():
            if t == 0x00020000:
                continue
            op = self.rules.meta(t)
            if op is Op.REMOVE:
                self.changes.append(Change(tag_text(t), keyword_for_tag(t), _REMOVED))
                continue
            remapped = None
            if op is Op.REMAP_UID and not _is_empty(self.buf, e):
                remapped = self._remap(t, "UI", self.buf[e.value:e.end], tag_text(t), keyword_for_tag(t), top=False,
                                       meta=True)
            parts.append(self.buf[e.start:e.end] if remapped is None else remapped)
        body = b"".join(parts)
        if 0x00020000 in meta:
            body = struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(body)) + body
        return body

    def _assemble(self, buf: bytes, elements: list[_Element], out: dict[int, bytes | None],
                  extra: dict[int, bytes]) -> bytes:
        """The dataset's bytes in tag order: decided elements as decided, the rest copied from the source."""
        parts: list[bytes] = []
        present = {e.tag for e in elements} if extra else set()
        pending = sorted((t, piece) for t, piece in extra.items() if t not in present)
        for e in elements:
            while pending and pending[0][0] < e.tag:
                parts.append(pending.pop(0)[1])
            t = e.tag
            if t & 0xFFFF == 0 and t >> 16 > 6:
                continue  # retired group lengths are not written (PS3.5 7.2), as pydicom does
            if t in extra:
                parts.append(extra[t])
            elif t in out:
                piece = out[t]
                if piece is not None:
                    parts.append(piece)
            else:
                parts.append(buf[e.start:e.end])
        parts += [piece for _, piece in pending]
        return b"".join(parts)

    def _sequence(self, buf: bytes, e: _Element, walked: list[dict[int, bytes | None]]) -> bytes:
        """A sequence encoded again as pydicom does, with each item's decided elements; [] empties it."""
        assert e.items is not None
        body: list[bytes] = []
        for item, out in zip(e.items, walked, strict=False):
            _check_plain(item.elements, out)
            content = self._assemble(buf, item.elements, out, {})
            if item.undefined:
                body.append(struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED) + content
                            + struct.pack("<HHL", 0xFFFE, 0xE00D, 0))
            else:
                body.append(struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content)
        value = b"".join(body)
        if e.undefined:
            return (_header(e.tag, "SQ", UNDEFINED, self.implicit) + value
                    + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
        return _header(e.tag, "SQ", len(value), self.implicit) + value


def _check_plain(elements: list[_Element], out: dict[int, bytes | None]) -> None:
    """Decline an item pydicom would write in another form: group lengths dropped, a character set re-encoded."""
    for x in elements:
        if x.tag in out:
            continue  # decided: removed, or encoded as the general path encodes it
        if (x.tag & 0xFFFF == 0 and x.tag >> 16 > 6) or x.tag == SPECIFIC_CHARACTER_SET:
            raise _Decline
        for item in x.items or ():
            _check_plain(item.elements, {})


_FIVE = tuple(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in NIDB_ANONYMIZE)


# Bound once: an Enum member read from its class is slow on Python 3.11, and these are read for every element.
_KEEP, _REMOVE, _REMOVED = Op.KEEP, Op.REMOVE, Op.REMOVE.value


@dataclass(slots=True)
class _Scope:
    """One dataset being decided: its elements, its path, its decoded top level (None in items), the decisions."""

    elements: list[_Element]
    path: str
    ds: Dataset | None
    out: dict[int, bytes | None]


def _operation(buf: bytes, e: _Element, rule: Rule) -> Op:
    """The operation on a standard element by the VR its value has; an empty value: KEEP."""
    if rule.removes:
        return _REMOVE
    if e.items is not None:
        return rule.op("SQ")
    if rule.keeps_value or _is_empty(buf, e):
        return _KEEP
    if not e.vr or " " in e.vr or e.vr == "UN":
        raise _Decline  # pydicom would decide the VR
    return rule.op(e.vr)


# What each operation does to an element on the byte path (KEEP: nothing).
_OPERATIONS: dict[Op, Callable[[_Job, _Scope, bytes, _Element, str], None]] = {
    Op.REMOVE: _Job._remove,
    Op.EMPTY: _Job._empty,
    Op.DUMMY: _Job._dummy,
    Op.REMAP_UID: _Job._remap_element,
    Op.PSEUDONYM: _Job._pseudonym,
    Op.SHIFT_DATE: _Job._decline,
    Op.CLEAN_TEXT: _Job._decline,
    Op.WALK_ITEMS: _Job._walk_items,
}
