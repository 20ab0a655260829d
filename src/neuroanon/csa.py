"""Siemens CSA headers and protocol text: recognised, then cleaned in place for release at `full`.

A CSA header ((0029,xx10) image, (0029,xx20) series, creator "SIEMENS CSA HEADER") is a little-endian binary
table of named elements, each with items of text. dcm2niix and nibabel read it by walking that table (and
dcm2niix also by scanning for the "### ASCCONV BEGIN" protocol text), so a cleaned header keeps every byte
offset: lengths and item counts are untouched; only the bytes of values change, and those no reader reads (after
the NUL that ends a name or a text, padding, after the last element), which are zeroed.

What is cleaned (the values the Basic Profile removes, wherever Siemens copies them):
- elements that hold patient or site values (UsedPatientWeight, PatReinPattern with weight and age, file names
  of the source): their items become "0" (numbers) or empty (text);
- protocol text (ASCCONV and XProtocol, in MrPhoenixProtocol and in the XA protocol element, itself a CSA header
  or plain text): the values of the protocol and series names and of patient, station, institution, operator
  and serial-number keys;
- every UID (they carry the scanner's serial number and the acquisition date): remapped to a keyed UID of the
  same length;
- this file's identifying values (identifiers.needles), as everywhere; station, institution and serial number
  also where letters run on after them ("...$<station>b051fac").
A value that does not parse as a CSA header (CSA2 "SV10" layout or CSA1 layout) is not kept at all.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from . import gepdb
from .identifiers import APART, Needle, find, scrub
from .keys import Keyring

MAX_TAGS: Final = 1000  # nibabel's limit; real headers hold about 100
MAX_ITEMS: Final = 1000
CHECK: Final = 77  # the "unused" word Siemens writes after the tag count (dcm2niix requires it)
_TAG: Final = struct.Struct("<64si4s3i")
_ITEM: Final = struct.Struct("<4i")
_NUMBER_VRS: Final = frozenset({"IS", "DS", "FL", "FD", "SL", "UL", "SS", "US"})

# CSA elements whose every item identifies the patient, the visit or the source files.
IDENTIFYING_ELEMENTS: Final = frozenset({
    "UsedPatientWeight",  # the patient's weight
    "PatReinPattern",  # position; weight; age (or size); ... ; a time stamp
    "DataFileName", "PixelFile", "PixelFileName",  # paths on the scanner, named by patient or date
    "PatientName", "PatientID", "PatientBirthDate", "PatientAge", "PatientSex", "PatientSize", "PatientWeight",
    "InstitutionName", "StationName", "DeviceSerialNumber", "OperatorsName", "SeriesDescription", "ProtocolName",
})

# Protocol keys (last component of an ASCCONV key, or an XProtocol parameter name) whose values identify.
_KEY: Final = rb"(?:[A-Za-z]*(?:ProtocolName|SeriesDescription|PatientName|PatientID|PatientBirth\w*|PatientAge|" \
       rb"PatientSex|PatientWeight|PatientSize|PatientHeight|Weight|Height|StationName|Institution\w*|" \
       rb"SerialNumber|SerialNo|OperatorName|OperatorsName|Physician\w*|Comment\w*))"
# ASCCONV: `tProtocolName = ""name""` or `flWeight = 80.5`, one line each. Lines are found from the key words
# (a literal search), then matched one by one: a header holds thousands of lines and few such keys.
_KEY_WORDS: Final = re.compile(rb"ProtocolName|SeriesDescription|Patient|Weight|Height|Station|Institution|Serial|"
                               rb"Operator|Physician|Comment")
_ASCCONV: Final = re.compile(rb"[ \t]*[\w.\[\]]*?\b" + _KEY + rb"[ \t]*=[ \t]*([^\r\n]*)")
# XProtocol: `<ParamString.""ProtocolName"">  { ""name"" }` (the block may span lines).
_XPROTOCOL: Final = re.compile(rb"<Param\w+\.\"+" + _KEY + rb"\"+>\s*\{")
_BLOCK_LIMIT: Final = 1 << 16  # an XProtocol parameter block is short: one not closed within this length runs away
_DEPTH_LIMIT: Final = 64  # nor nested this deep
# An ASCCONV key's path (`sProtocol.tProtocolName`) is short: where the run of path characters a line begins with is
# longer, the line is no protocol line (matching `_ASCCONV` over a run of 1 KB may take a millisecond, of 4 KB 17)
_PATH: Final = re.compile(rb"[ \t]*[\w.\[\]]*")
_PATH_LIMIT: Final = 1024
_QUOTED: Final = re.compile(rb"\"+([^\"\r\n]*)\"+")
_WORD: Final = re.compile(rb"[A-Za-z0-9]+")
_ANY_WORD: Final = re.compile(rb"[A-Za-z0-9\x80-\xff]+")  # (UTF-8, Latin-1 or any other script's bytes too)
_UID: Final = re.compile(rb"[12]\.[0-9]+(?:\.[0-9]+){3,}")  # whole only when no digit or dot is next to it
_UID_PART: Final = frozenset(b"0123456789.")
_NAME: Final = re.compile(rb"[\x20-\x7e]*")
_LOOSE_ATTRIBUTES: Final = frozenset({"StationName", "InstitutionName", "InstitutionalDepartmentName",
                                      "DeviceSerialNumber"})


class CsaElement:
    """One element of a CSA header (a plain class: compiled, a dataclass's __init__ stays a slow Python call)."""

    __slots__ = ("name", "vr", "items")

    def __init__(self, name: str, vr: str, items: tuple[tuple[int, int], ...]) -> None:
        self.name = name
        self.vr = vr
        self.items = items  # (offset, length) of each item's value in the header


_Spans = tuple[tuple[int, int], ...]  # (offset, length) of each item value


_Unread = list[tuple[int, int]]  # (start, end) of bytes inside the header that no reader reads


def parse(value: bytes) -> list[CsaElement] | None:
    """The elements of a CSA header, or None if `value` is not one (layout checked to the last byte)."""
    parsed = _parse(value)
    return None if parsed is None else parsed[0]


def _parse(value: bytes) -> tuple[list[CsaElement], int, _Unread] | None:
    """`parse`, where the last element ends (what follows is no element: no reader reads it), and the bytes inside
    it that no reader reads either: after the NUL that ends an element's name or VR, after the NUL that ends an
    item's text, and the padding after an item. Scanners leave memory there (found from outside: a station name, and
    a patient's values planted there were released)."""
    csa2 = value[:4] == b"SV10"  # then 4 bytes readers skip (04 03 02 01, or zeros in some files)
    pos = 8 if csa2 else 0
    if len(value) < pos + 8:
        return None
    n_tags, check = struct.unpack_from("<2I", value, pos)
    if not 0 < n_tags <= MAX_TAGS or check != CHECK:
        return None
    pos += 8
    elements: list[CsaElement] = []
    unread: _Unread = []
    first_items = 0
    for number in range(n_tags):
        if pos + _TAG.size > len(value):
            return None
        raw_name, _vm, raw_vr, _syngodt, n_items, _xx = _TAG.unpack_from(value, pos)
        name, vr = _text(raw_name), _text(raw_vr)
        if name is None or vr is None or not 0 <= n_items <= MAX_ITEMS:
            return None
        unread += [_after_nul(value, pos, pos + 64), _after_nul(value, pos + 68, pos + 72)]
        first_items = n_items if number == 0 else first_items
        found = _items(value, pos + _TAG.size, n_items, None if csa2 else first_items)
        if found is None:
            return None
        items, pos = found
        for offset, length in items:
            unread += [_after_nul(value, offset, offset + length), (offset + length, offset + (length + 3) // 4 * 4)]
        elements.append(CsaElement(name, vr, items))
    return (elements, pos, unread) if pos <= len(value) else None


def _after_nul(value: bytes, start: int, end: int) -> tuple[int, int]:
    """The bytes after the first NUL from `start` to `end`, which ends the text there (none if there is none)."""
    nul = value.find(b"\x00", start, end)
    return (nul + 1, end) if nul >= 0 else (end, end)


def _items(value: bytes, pos: int, n_items: int, first_items: int | None) -> tuple[_Spans, int] | None:
    """The (offset, length) of an element's items from `pos`, and where the next element starts; None if they do
    not fit. A CSA1 item's length is its first word less the first element's item count (`first_items`), a CSA2
    item's its second word."""
    items: list[tuple[int, int]] = []
    for _ in range(n_items):
        if pos + _ITEM.size > len(value):
            return None
        x0, x1, _x2, _x3 = _ITEM.unpack_from(value, pos)
        pos += _ITEM.size
        length = x1 if first_items is None else x0 - first_items
        if length < 0 or pos + length > len(value):
            return None
        items.append((pos, length))
        pos += (length + 3) // 4 * 4
    return tuple(items), pos


def clean_csa(value: bytes, patterns: tuple[Needle, ...], keyring: Keyring) -> bytes | None:
    """A CSA header cleaned for release, the same length and layout; None if `value` is not a CSA header. Bytes
    no reader reads (after its last element, after the NUL that ends a name or a text, padding) are zeroed."""
    parsed = _parse(value)
    if parsed is None:
        return None
    elements, end, unread = parsed
    buffer = bytearray(value)
    buffer[end:] = bytes(len(value) - end)
    for start, stop in unread:
        if stop > start:
            buffer[start:stop] = bytes(stop - start)
    for element in elements:
        if element.name in IDENTIFYING_ELEMENTS:
            blank = b"0" if element.vr in _NUMBER_VRS else b""
            for offset, length in element.items:
                if length:
                    buffer[offset:offset + length] = (blank + b"\x00" * length)[:length]
    items = [(offset, offset + length) for element in elements for offset, length in element.items if length]
    cleaned = clean_protocol(bytes(buffer), patterns, keyring, items)
    return cleaned if len(cleaned) == len(value) and parse(cleaned) is not None else None


def clean_protocol(text: bytes, patterns: tuple[Needle, ...], keyring: Keyring,
                   items: list[tuple[int, int]] | None = None) -> bytes:
    """Protocol text (or any CSA bytes) with identifying keys blanked, UIDs remapped and needles cut, in place; a
    CSA header's `items` (start, end) each searched `APART` from the bytes beside it (`_scrub_apart`)."""
    buffer = bytearray(text)
    line_end = -1
    for word in _KEY_WORDS.finditer(text):
        if word.start() < line_end:
            continue  # (a line is read once, from its first key word: each is searched back to its start once)
        start = text.rfind(b"\n", 0, word.start()) + 1
        end = text.find(b"\n", word.end())
        line_end = end = len(text) if end < 0 else end
        path = _PATH.match(text, start, end)
        if path is not None and path.end() - start > _PATH_LIMIT:  # no protocol key's path (matching one took time
            # by the square of its length: found from outside); a value after it is blanked all the same
            equals = text.find(b"=", path.end(), end)
            if equals >= 0:
                _blank_words(buffer, equals + 1, text[equals + 1:end], _ANY_WORD)
            continue
        match = _ASCCONV.match(text, start, end)
        if match:
            _blank_value(buffer, match.start(1), match.group(1))
    for match in _XPROTOCOL.finditer(text):
        end = _block_end(text, match.end())
        if end < 0:  # a runaway block: what follows is no protocol a reader takes, and its words are blanked, in any
            # script (each block read up to the limit made a crafted header of blocks never closed take a minute a
            # megabyte)
            _blank_words(buffer, match.end(), text[match.end():], _ANY_WORD)
            break
        _blank_value(buffer, match.end(), text[match.end():end])
    current = bytes(buffer)
    for match in _UID.finditer(current):
        start, end = match.span()
        if (start and current[start - 1] in _UID_PART) or (end < len(current) and current[end] in _UID_PART):
            continue
        buffer[start:end] = same_length_uid(keyring, match.group().decode("ascii"))
    cleaned = _scrub_apart(bytes(buffer), items, patterns) if items else scrub(bytes(buffer), patterns)
    return _scrub_loose(cleaned, patterns)


def _scrub_apart(header: bytes, items: list[tuple[int, int]], patterns: tuple[Needle, ...]) -> bytes:
    """`scrub`, each item's value `APART` from the bytes beside it: read as it lies, a value that fills its item to
    the end runs into the next element's name, whose first letter hid the end of a word (found from outside:
    "DOE^JANE" before "SliceMeasurementDuration" was kept, and neither the residual check nor verify saw it)."""
    pieces = _pieces(header, items)
    cut = scrub(APART.join(pieces), patterns)  # (in place: NUL bytes stay, so the pieces are where they were)
    at, kept = 0, []
    for piece in pieces:
        kept.append(cut[at:at + len(piece)])
        at += len(piece) + len(APART)
    return b"".join(kept)


def _pieces(header: bytes, items: list[tuple[int, int]]) -> list[bytes]:
    """`header` cut at the start and end of each item's value (start, end)."""
    cuts = sorted({0, len(header), *(at for item in items for at in item)})
    return [header[start:end] for start, end in zip(cuts, cuts[1:], strict=False)]


def apart(value: bytes) -> bytes | None:
    """A CSA header as its items are searched: each item's value `APART` from the bytes beside it (`_scrub_apart`),
    for verify to read another tool's output as the anonymizer reads its own; None if `value` is no CSA header."""
    elements = parse(value)
    if elements is None:
        return None
    items = [(offset, offset + length) for element in elements for offset, length in element.items if length]
    return APART.join(_pieces(value, items))


def same_length_uid(keyring: Keyring, uid: str) -> bytes:
    """A keyed UID of exactly `uid`'s length (its digits begin as the keyed map's `2.25.` UID), or zeros: for a UID
    shorter than 35 characters a keyed one would have fewer than 30 digits, and look like another system's `2.25.`
    UID, which the residual check searches (`residual._OUR_UIDS`)."""
    if len(uid) < 35:
        return re.sub(r"[0-9]", "0", uid).encode("ascii")
    digits = keyring.uid(uid)[5:] + keyring.uid(uid + "\x00csa")[5:]
    return ("2.25." + digits[: len(uid) - 5]).encode("ascii")


def _block_end(text: bytes, start: int) -> int:
    """The offset of the brace closing the XProtocol block whose body starts at `start` (nested blocks included);
    -1 for a block that runs away (not closed within `_BLOCK_LIMIT`, or nested deeper than `_DEPTH_LIMIT`)."""
    depth = 1
    for position in range(start, min(len(text), start + _BLOCK_LIMIT)):
        byte = text[position]
        if byte == 0x7B:  # {
            depth += 1
            if depth > _DEPTH_LIMIT:
                return -1
        elif byte == 0x7D:  # }
            depth -= 1
            if depth == 0:
                return position
    return -1


def _blank_value(buffer: bytearray, start: int, value: bytes) -> None:
    """Overwrite a protocol value in place: quoted text with X, bare numbers and words with 0."""
    quoted = list(_QUOTED.finditer(value))
    if quoted:
        for match in quoted:
            begin = start + match.start(1)
            buffer[begin:begin + len(match.group(1))] = b"X" * len(match.group(1))
        return
    _blank_words(buffer, start, value)


def _blank_words(buffer: bytearray, start: int, value: bytes, words: re.Pattern[bytes] = _WORD) -> None:
    """Overwrite every word and number of `value` (at `start`) with 0 (`_ANY_WORD`: in any script too)."""
    for match in words.finditer(value):
        begin = start + match.start()
        buffer[begin:begin + len(match.group())] = b"0" * len(match.group())


def _scrub_loose(data: bytes, patterns: tuple[Needle, ...]) -> bytes:
    """Cut device and institution values even where other letters run on after them (no word boundary)."""
    lowered = data.lower()
    buffer: bytearray | None = None
    for needle in patterns:
        if needle.attribute not in _LOOSE_ATTRIBUTES or needle.data not in lowered:
            continue
        buffer = buffer if buffer is not None else bytearray(data)
        start = lowered.find(needle.data)
        while start >= 0:
            buffer[start:start + len(needle.data)] = (b"0" if needle.numeric else b"X") * len(needle.data)
            start = lowered.find(needle.data, start + 1)
    return bytes(buffer) if buffer is not None else data


def _text(raw: bytes) -> str | None:
    """A NUL-terminated ASCII name from the table, or None if it is not one."""
    text = raw.split(b"\x00", 1)[0]
    return text.decode("ascii") if _NAME.fullmatch(text) else None


def clean_kept(kind: str, value: bytes, patterns: tuple[Needle, ...], keyring: Keyring,
               utf_8: bool = False) -> bytes | None:
    """An allow-listed private value cleaned for release, the same length (but a GE Protocol Data Block, which is
    rebuilt); None when it must not be kept.

    `kind` is the allow-list's: a CSA header must parse as one, protocol text has its identifying keys blanked, a
    GE Protocol Data Block keeps only the lines converters read (gepdb), any other value is cut of this file's
    identifying values (`utf_8`: a text value of a file in UTF-8, cut in whole characters).
    """
    if kind == "value":
        hits = tuple(find(value, patterns))
        return scrub(value, hits, utf_8) if hits else value
    # Every image of a series carries the same series header: the last few results are remembered, by value,
    # needles (the series' one tuple, by identity: hashing its needles costs more than a lookup saves) and a
    # fingerprint of the key.
    memo = (kind, value, id(patterns), keyring.uid("csa-memo"))
    known = _MEMO.pop(memo, None)
    if known is not None and known[0] is patterns:
        _MEMO[memo] = known  # most recently used last: the series header stays while images pass
        return known[1]
    if kind == "pdb":
        cleaned = gepdb.clean(value, patterns)
    elif kind == "csa" or parse(value) is not None:  # XA's protocol element is a CSA header in most versions
        cleaned = clean_csa(value, patterns, keyring)
    else:
        cleaned = clean_protocol(value, patterns, keyring)
    _MEMO[memo] = (patterns, cleaned)  # the tuple stays alive while remembered, so its identity is not reused
    while len(_MEMO) > _MEMO_SIZE:
        del _MEMO[next(iter(_MEMO))]
    return cleaned


_MEMO_SIZE: Final = 16
_MEMO: Final[dict[tuple[str, bytes, int, str], tuple[tuple[Needle, ...], bytes | None]]] = {}
