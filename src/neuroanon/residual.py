"""The residual check: prove that a written file holds none of its input's identifying values.

Every byte written is searched except the pixel data value (burned-in text is the burned-in gate's concern, and
random pixel bytes would match short patterns by chance): for each needle in every encoding and form it has (see
identifiers), and, where the file holds non-ASCII text, in its text values decoded with their character sets,
casefolded and ASCII-folded. A hit is attributed to the element that holds it, by tag, never by value.

No element is exempt. A hit is excused only when the value it stands in is a defined term of that attribute in
the standard (or the meaning of the standard code its item holds: not a local scheme's code, nor another code),
or a known manufacturer or model name in the manufacturer and model attributes (data/vocabulary.json).
"""

from __future__ import annotations

import binascii
import codecs
import html
import json
import os
import re
import struct
import threading
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pydicom
from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from .discover import LONG_LENGTH_VRS
from .identifiers import (
    APART,
    DASH_CHARACTERS,
    INVISIBLE,
    LINE_BREAKS,
    LOOK_ALIKE_LETTERS,
    MARKS,
    SLASH_CHARACTERS,
    SPACE_CHARACTERS,
    Needle,
    beyond_toolkit_name,
    count,
    dictionary_vr,
    escape_views,
    find,
    find_in_file,
    find_once,
    find_text,
    fold,
    maker_names,
    once_per_raw_values,
    uids_under_2_25,
)
from .read import PixelSpan, quiet
from .tags import (
    CODE_MEANING,
    CODE_VALUE,
    CODING_SCHEME_DESIGNATOR,
    DEIDENTIFICATION_METHOD,
    DOUBLE_FLOAT_PIXEL_DATA,
    FLOAT_PIXEL_DATA,
    IMPLEMENTATION_VERSION_NAME,
    LONG_CODE_VALUE,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    PIXEL_DATA,
    URN_CODE_VALUE,
    tag_text,
)

# Our own keyed UIDs are random digits (a 128-bit number: 30 to 39 digits, fewer once in 10^9 times; in a CSA
# header as many as the UID it replaced had, up to 59, and never fewer than 30: `csa.same_length_uid`): a date could
# occur in them by chance, so they are not searched. Whole UIDs only: a shorter one ("2.25.19610302", a date or an
# ID written as a UID in a value kept as it is: found from outside) and a longer UID holding ".2.25." stay; so does
# one that is an original UID of the file (another system's `2.25.` UID). (The look behind follows the literal
# start: so written, the search looks for that literal first, a hundred times as fast.)
_OUR_UIDS = re.compile(rb"2\.25\.(?<![0-9.]2\.25\.)[0-9]{30,59}(?![0-9]|\.[0-9])")
# A Latin letter with a diacritic (or ß, æ, ø...) next to another letter: where folded text can differ from
# what the byte patterns match (an ASCII-written name found written with its letters, "Müller" for "MUELLER").
# So do a combining mark (a letter's accent written apart, as macOS writes it), a full-width letter and a
# ligature: folding makes them plain letters.
_ACCENTED = ("\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
             "\u0300-\u036f\uff21-\uff3a\uff41-\uff5a\ufb00-\ufb06")
# The accented letter first: the search skips to the next one, and tests its neighbours only there.
# In text of other scripts (which Latin-1 cannot hold) also a combining mark after any letter ("Й" written apart),
# a half-width katakana (folding makes it full-width), a mark or a character that shows nothing after a letter (a
# soft hyphen, a zero-width space, a mark of writing direction, a Hebrew point, an Arabic vowel sign: folding
# removes it), and a Cyrillic or Greek letter that looks like a Latin one in a
# word of ASCII letters (between two, or before or after two at the word's edge: a name typed with a look-alike
# letter; not any Cyrillic next to an ASCII letter, which binary bytes read in a Cyrillic character set hold often).
_LOOK_ALIKE = f"[{LOOK_ALIKE_LETTERS}]"
_LOOK_ALIKE_IN_ASCII_WORD = (f"{_LOOK_ALIKE}(?:(?<=[A-Za-z].)(?={_LOOK_ALIKE}*[A-Za-z])"  # between ASCII letters
                             "|(?<![^\\W\\d_].)(?=[A-Za-z]{2})"  # at a word's start, before two
                             "|(?<=[A-Za-z]{2}.)(?![^\\W\\d_]))")  # at its end, after two
# Letters and digits that folding makes ASCII ones: full-width digits, mathematical and enclosed letters and digits,
# the decimal digits of other scripts (two in a row); Arabic letters written one for another (next to a letter: see
# `identifiers._SPECIAL`).
_OTHER_FORMS = ("[\uff10-\uff19\u2460-\u24ff\U0001d400-\U0001d7ff\U0001f100-\U0001f189]"
                "(?=[\uff10-\uff19\u2460-\u24ff\U0001d400-\U0001d7ff\U0001f100-\U0001f189])"
                "|(?![0-9])\\d(?=(?![0-9])\\d)"
                "|[\u0629\u0649\u06a9\u06c1\u06cc\u06d5](?:(?<=[^\\W\\d_].)|(?=[^\\W\\d_]))")
# A dash, a space, a line break, a slash, a full-width sign or a character that shows nothing between a digit and a
# digit or letter, a space beside it or not: between a date's or a number's parts (found from outside:
# "1973\u201304\u201312", "0161\u2060496\u20600734", "1973\uff0f04\uff0f12", "12 \u2013 Apr" were released). (Not
# beside one digit alone: binary values read as text hold such characters so often, and each window is searched.)
_BESIDE_DIGITS = (f"[{MARKS}{INVISIBLE}{DASH_CHARACTERS}{SPACE_CHARACTERS}{LINE_BREAKS}{SLASH_CHARACTERS}"
                  "\uff01-\uff5e\u207b\u2024\ufe52](?:(?<=\\d.)(?= ?\\w)|(?<=\\d .)(?= ?\\w)|(?<=\\w.)(?= ?\\d)"
                  "|(?<=\\w .)(?= ?\\d))")
_ACCENTED_IN_WORD = re.compile(f"[{_ACCENTED}](?:(?<=[A-Za-z{_ACCENTED}][{_ACCENTED}])|(?=[A-Za-z{_ACCENTED}])"
                               "|(?<=[^\\W\\d_][\u0300-\u036f]))|[\uff66-\uff9f]"
                               f"|(?<=[^\\W\\d_])[{MARKS}{INVISIBLE}]|{_LOOK_ALIKE_IN_ASCII_WORD}|{_OTHER_FORMS}"
                               f"|{_BESIDE_DIGITS}")
# The same search over text of Latin-1 characters, faster: each character mapped to its class (a: accented letter,
# h: soft hyphen, s: a separator, l: ASCII letter, d: digit, .: other), the search then runs over bytes for one
# literal a class, for each class the bytes hold (a regular expression scans a character class, or alternatives, one
# character at a time: three times as long).
_CLASS_OF = bytes(ord("a") if c >= 0xC0 and c not in (0xD7, 0xF7)
                  else ord("h") if c == 0xAD  # a soft hyphen
                  else ord("s") if c in (0xA0, 0x85, 0x96, 0x97)  # a no-break space, a line break, a dash
                  else ord("l") if chr(c).isascii() and chr(c).isalpha()
                  else ord("d") if 0x30 <= c <= 0x39
                  else ord(".") for c in range(256))
_IN_WORD_CLASSES = tuple((pattern[:1], re.compile(pattern)) for pattern in (
    rb"a(?:(?<=[alh]a)|(?=[alh]))", rb"h(?:(?<=[alh]h)|(?=[alh])|(?<=dh)(?=d))",
    rb"s(?:(?<=ds)|(?<=d.s)|(?=d)|(?=.d))"))
_CONTEXT = 96  # characters kept around such a letter: longer than any form of a value
TEXT_VRS = frozenset({"AE", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"})
MAKER_TAGS = frozenset({MANUFACTURER, MANUFACTURER_MODEL_NAME})
_OUR_METHOD = re.compile(r"^nidb anonymize( full)? \(neuroanon [0-9a-z.+-]*\)$")


@dataclass(frozen=True)
class Finding:
    """An identifying value found: which attribute it came from and where it was found (a tag path or a part)."""

    attribute: str
    where: str

    def as_dict(self) -> dict[str, str]:
        return {"attribute": self.attribute, "where": self.where}


@dataclass(frozen=True)
class _Element:
    """One element of the written file: where it is, its tag, its raw bytes and (for text) its decoded text."""

    where: str
    tag: int
    raw: bytes
    text: str | None
    code: tuple[str, str] = ("", "")  # a CodeMeaning's: its item's CodingSchemeDesignator and code value
    vr: str = ""


def check_file(
    path: Path, pixels: PixelSpan | None, patterns: tuple[Needle, ...], searchable: bytes | None = None,
    own: tuple[Needle, ...] = (),
) -> list[Finding]:
    """Search the written file at `path` (all but its pixel data value) for the patterns, and for the file's own
    needles `own` (its instance UID: `identifiers.instance_needles`).

    `searchable` may give those bytes when the writer still holds them, so that the file is read and parsed
    only when a needle occurs. A hit no element accounts for (outside any value, or in text decoded from bytes
    no text element holds) is a finding all the same: the check fails closed.
    """
    if not patterns and not own:
        return []
    data = _searchable(path, pixels) if searchable is None else searchable
    in_pixels = _in_marker_segments(path, pixels, data, patterns, own) if pixels is not None else []
    written = data  # (as written: a big endian file's words lie at even offsets, before our UIDs are cut)
    data = _without_our_uids(data, patterns, own)
    haystack = data.lower()
    (hits, suspects), (own_hits, own_suspects) = find_in_file(haystack, patterns), find_in_file(haystack, own)
    hits, suspects = hits + own_hits, suspects + own_suspects
    elements = None
    big = _transfer_syntax(written) == _BIG_ENDIAN
    in_binary: dict[Needle, list[Finding]] = {}
    if suspects or big:  # (each value searched on its own: its ends bound a word, whatever bytes stand beside it)
        elements = _elements(path)
        values = [_without_our_uids(e.raw, patterns, own).lower() for e in elements]
        hits += [n for n in suspects if not elements or any(n.occurs(value) for value in values)]
        in_binary = _in_binary_values(elements, patterns, own, big, hits)
    text_hits = [n for n in _find_in_text(data, patterns, big) if n not in hits]
    findings: list[Finding] = []
    placed: list[Needle] = []  # the hits a place holds or excuses: the others are looked for written encoded too
    if hits or text_hits:
        elements = _elements(path) if elements is None else elements
    for needle in hits + text_hits:
        places: list[str] = []
        excused = 0
        for element in elements or ():
            in_bytes = count(element.raw, needle) if needle in hits else 0
            in_text = bool(element.text and not element.text.isascii() and find_text(element.text, (needle,)))
            if not in_bytes and not in_text:
                continue
            if _excused(element, needle):
                excused += in_bytes
            else:
                places.append(element.where)
        if not places and (needle in text_hits or not elements or count(haystack, needle) > excused):
            places = ["file bytes"]
        if places or excused:
            placed.append(needle)
        findings += [Finding(needle.attribute, where) for where in dict.fromkeys(places)]
    encoded = _in_encoded_forms(data, patterns, placed) + _in_swapped_words(
        written, patterns, own, [n for n in hits if n in placed] + list(in_binary), big)
    # (each once: the needles of one attribute, a name's parts and forms, are often found in one place together)
    return list(dict.fromkeys(findings + [f for found in in_binary.values() for f in found] + encoded + in_pixels))


def _in_binary_values(elements: list[_Element], patterns: tuple[Needle, ...], own: tuple[Needle, ...], big: bool,
                      found: list[Needle]) -> dict[Needle, list[Finding]]:
    """The needles not already `found` that a binary value holds as text with no word's boundary beside it: after
    a letter or digit that a control byte or the value's start comes before, as a binary structure's length byte
    reads ("M" for 77: found from outside, a name so stored in a kept GE value was released), and, in a big endian
    file, in the value's numbers read in little endian order, as a conversion writes them (there the bytes of the
    header before the value, a VR's letters, stood beside the text: found from outside). Each value is searched
    with a NUL byte at each end."""
    views = []
    for e in elements:
        if e.vr in _BINARY_VRS:
            views.append((e.where, e.raw))
            width = _WORD_BYTES.get(e.vr, 1)
            if big and width > 1:
                views.append((f"{e.where} (big endian words)", _swapped(e.raw, width)))
    framed = [(where, b"\x00" + value.lower() + b"\x00") for where, value in views]
    joined = b"".join(value for _, value in framed)
    findings: dict[Needle, list[Finding]] = {}
    for needles in (patterns, own):
        for needle in dict.fromkeys(n for part in find_in_file(joined, needles) for n in part):
            places = [where for where, value in framed if needle.occurs(value) or needle.occurs_loosely(value)]
            if places and needle not in found:
                findings[needle] = [Finding(needle.attribute, where) for where in places]
    return findings


# The VRs of binary values, and the bytes of each number of those whose numbers a big endian file stores swapped
_WORD_BYTES = {"OW": 2, "US": 2, "SS": 2, "AT": 2, "OL": 4, "OF": 4, "UL": 4, "SL": 4, "FL": 4,
               "OD": 8, "FD": 8, "OV": 8, "SV": 8, "UV": 8}
_BINARY_VRS = frozenset({"OB", "UN", *_WORD_BYTES})


def _in_swapped_words(data: bytes, patterns: tuple[Needle, ...], own: tuple[Needle, ...],
                      found: list[Needle], big: bool) -> list[Finding]:
    """In a big endian file, the needles not already `found` in its bytes read as words of 2, 4 and 8 bytes swapped
    (at each alignment a value may start at), also written in another form (base64, hex...: `_in_encoded_forms`):
    a binary value's numbers (OW, US, OL, FD...) are stored so, and a conversion to little endian, which every
    reader may make, turns text they spell into plain text (found on review: a date's base64 so stored was not
    read)."""
    if not big:
        return []
    hits: list[Needle] = []
    encoded: dict[str, Finding] = {}
    for width in (2, 4, 8):
        for start in range(0, width, 2):
            swapped = _swapped(data[start:], width)
            lowered = swapped.lower()
            hits += [n for n in find(lowered, patterns, remember=False) + find_once(lowered, own)
                     if n not in found and n not in hits]
            for finding in _in_encoded_forms(swapped, patterns, [*found, *hits]):
                encoded.setdefault(finding.attribute, Finding(finding.attribute, f"{finding.where} (big endian words)"))
    return [Finding(n.attribute, "file bytes (big endian words)") for n in hits] + list(encoded.values())


def _swapped(data: bytes, width: int) -> bytes:
    """`data` (cut to whole words) with the bytes of each word of `width` bytes in reverse order."""
    whole = len(data) - len(data) % width
    swapped = bytearray(whole)
    for i in range(width):
        swapped[i::width] = data[width - 1 - i:whole:width]
    return bytes(swapped)


_BIG_ENDIAN = b"1.2.840.10008.1.2.2"


def _transfer_syntax(data: bytes) -> bytes | None:
    """The TransferSyntaxUID of the file meta that `data` (a file's first bytes, at least its file meta) begins
    with; None without one."""
    return _file_meta_walked(data)[0]


def _file_meta_walked(data: bytes) -> tuple[bytes | None, int]:
    """The TransferSyntaxUID of the file meta `data` begins with (None without one) and where the dataset begins,
    its elements walked (found from outside: a long meta element put the UID past the first kilobyte, where it was
    looked for, and a deflated or big endian dataset was searched as it is)."""
    syntax, pos = None, 132 if data[128:132] == b"DICM" else 0
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        if group != 2:
            break
        if data[pos + 4:pos + 6] in LONG_LENGTH_VRS:
            (length,), start = struct.unpack_from("<L", data, pos + 8), pos + 12
        else:
            (length,), start = struct.unpack_from("<H", data, pos + 6), pos + 8
        if element == 0x0010:
            syntax = data[start:start + length].rstrip(b"\x00 ")
        pos = start + length
    return syntax, pos


def _file_meta(path: Path) -> bytes:
    """The first bytes of the file at `path`, its file meta whole (`_file_meta_of`)."""
    with open(path, "rb") as f:
        return _file_meta_of(f)


def _file_meta_of(f: BinaryIO) -> bytes:
    """The first bytes of the open file `f`, its file meta whole (as its group length gives it; else 64 KB)."""
    f.seek(0)
    head = f.read(144)
    if head[128:132] == b"DICM" and head[132:138] == b"\x02\x00\x00\x00UL":
        return head + f.read(struct.unpack("<L", head[140:144])[0])
    return head + f.read(1 << 16)


# A value may hold text written in another form: base64 or hex (runs of 8 characters or more: a 7-character ID's hex has
# 14 digits, and base64 of 9 bytes has no padding: found from outside, each was released), a zlib or gzip stream (GE's
# User Define Data, a vendor's XML, a screen capture's metadata). Each is read back and searched. Runs are found in the
# bytes mapped to their classes (b: base64, e: its padding, n: a line's end; h: hex): a literal is searched for ten
# times as fast as a class of characters, and a possessive run is never tried again from inside itself. A run goes on
# across line ends: MIME writes base64 in lines of 76 characters, PEM in lines of 64, and a value may lie across one.
_BASE64_CLASS = bytes(ord("b") if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/") else
                      ord("e") if c == ord("=") else ord("n") if chr(c) in "\r\n" else ord(".") for c in range(256))
_HEX_CLASS = bytes(ord("h") if chr(c) in "0123456789abcdefABCDEF" else ord(".") for c in range(256))
_RUN = re.compile(rb"b" * 8 + rb"b*+(?:nn?b++)*+")  # 8 or more, and the lines after
_HEX_RUN = re.compile(rb"h" * 8 + rb"h*")
# gzip's magic, and zlib's (a window of 32 KiB, at each level): one expression each, which searches for its literal
_STREAM_STARTS = (re.compile(rb"\x1f\x8b\x08"), re.compile(rb"\x78[\x01\x5e\x9c\xda]"))
_MOST_STREAMS = 256  # stream starts tried a file (random binary bytes hold such a pair now and then)
_MOST_INFLATED = 16 << 20  # bytes inflated a file


def _in_encoded_forms(data: bytes, patterns: tuple[Needle, ...], found: list[Needle]) -> list[Finding]:
    """The needles not already `found` that `data` holds written as base64, hex, or in a zlib or gzip stream
    (also one written as base64 or hex), or with escapes: one finding an attribute, with the form. What they
    decode to is searched in one pass, pieces kept `APART`; the form is looked up only for a
    hit."""
    pieces = _decoded(data) + _unescaped(data) + [piece for text in _wide_texts(data) for piece in _decoded(text)]
    if not pieces:
        return []
    # (what a series' files decode to recurs file after file, a pseudonym's or a CSA name's readings: remembered)
    new = [n for n in find(APART.join([d for _, d in pieces]).lower(), patterns) if n not in found]
    findings: dict[str, Finding] = {}
    for needle in new:
        form = next((form for form, decoded in pieces if find(decoded.lower(), (needle,), remember=False)), "")
        findings.setdefault(needle.attribute, Finding(needle.attribute, f"a value written as {form or 'base64'}"))
    return list(findings.values())


def _wide_texts(data: bytes) -> list[bytes]:
    """The runs of base64 characters (hex among them) `data` holds written in UTF-16 or UTF-32 (LE or BE, a NUL
    byte or three beside each), as one byte a character: found from outside, the base64 of a birth date written in
    UTF-16 in a kept private value was released. Runs of `_WIDE_RUN` characters or more, found by a literal of
    their classes (a search of a class of characters at every byte of a header took 0.7 ms)."""
    classes = data.translate(_WIDE_CLASS)
    texts: list[bytes] = []
    for width, run in ((2, _UTF_16_RUN), (4, _UTF_32_RUN)):
        first = run.pattern[:width * _WIDE_RUN]
        start = classes.find(first)
        while start >= 0:
            match = run.match(classes, start)
            assert match is not None  # (its first characters are there)
            texts.append(data[start:match.end():width])
            start = classes.find(first, match.end())
    return list(dict.fromkeys(texts))


_WIDE_CLASS = bytes(ord("z") if c == 0 else ord("b") if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "+/=")
                    else ord(".") for c in range(256))
_WIDE_RUN = 8  # characters: base64's shortest run that is read (before its padding)
_UTF_16_RUN = re.compile(rb"bz" * _WIDE_RUN + rb"(?:bz)*+b?")  # (BE: the same, a byte on)
_UTF_32_RUN = re.compile(rb"bzzz" * _WIDE_RUN + rb"(?:bzzz)*+b?")


def _decoded(data: bytes) -> list[tuple[str, bytes]]:
    """Each form `data` may hold text in, read back: base64 and hex runs (at every alignment: a run may begin
    with letters that are not part of it), zlib and gzip streams (also inside what base64 or hex gave). A run of
    letters alone is read too: a CSA header's element names are such runs, but so is the base64 of about one name
    in forty."""
    budget = [_MOST_STREAMS, _MOST_INFLATED]
    found = _streams(data, "a compressed stream", budget)
    compressed: list[tuple[str, bytes]] = []
    runs = set()  # (a header repeats its dates, words and numbers: each read once)
    for start, end in _base64_runs(data.translate(_BASE64_CLASS)):
        run = data[start:end].translate(None, b"\r\n")
        if run in runs:
            continue
        runs.add(run)
        readings, with_streams = _short_run_read(run) if len(run) <= _SHORT_RUN else _run_read(run)
        found += readings
        compressed += with_streams
    for form, decoded in compressed:
        found += _streams(decoded, f"{form}, compressed", budget)
    return found


_Readings = tuple[tuple[str, bytes], ...]  # (form, bytes read)


def _run_read(run: bytes) -> tuple[_Readings, _Readings]:
    """A run of base64 characters read as base64 at each alignment, and the hex runs in it; and those readings
    in which a zlib or gzip stream begins (random bytes often hold a stream's first byte, seldom its first two)."""
    found = []
    # (digits alone are no base64 of text: every third byte they give is 0xD0 or more)
    for at in range(0 if not run.isdigit() else 4, 4):
        piece = run[at:len(run) - ((len(run) - at) % 4 == 1)]  # (one character left over holds no byte)
        found.append(("base64", binascii.a2b_base64(piece + b"=" * (-len(piece) % 4))))
    for match in _HEX_RUN.finditer(run.translate(_HEX_CLASS)):
        digits = run[match.start():match.end()]
        found += [("hex", binascii.a2b_hex(digits[at:at + (len(digits) - at) // 2 * 2])) for at in range(2)]
    return tuple(found), tuple(r for r in found if any(start.search(r[1]) for start in _STREAM_STARTS))


# A series' files repeat their short runs (a CSA header's element names, a pseudonym): each is read once. (Not the
# long ones: a cache of megabytes of base64, read four ways, would hold a worker's memory.)
_SHORT_RUN = 256
_short_run_read = lru_cache(maxsize=4096)(_run_read)


# Text written with escapes, as XML and HTML, URLs, JSON, MIME, HL7 and RTF write a character: a character reference
# (`&#252;`, `&#xFC;`, `&uuml;`, and as HTML takes the old ones, `&uuml` without its semicolon), percent-encoding
# (`%C3%BC`, and in its text `+` for a space), a \\u or \\x escape, HL7's hex bytes (`\\XC39C\\`, in report text a
# RIS passed on) or RTF's (`\\'fc`), quoted-printable (`=C3=BC`, `=c3=bc` as lenient writers do, `=` at a line's
# end); also in UTF-16 text (a Windows program's string), where the escape's first characters are looked for with
# their NUL bytes and the text is read a byte in two. Each form's
# expression begins with one literal byte, which the search skips to (as fast as `bytes.find` of one byte; a
# search for two bytes, `&#`, takes longer). The text around escapes is read back one form at a time, again while
# that changes it (a URL in an XML attribute: `&#37;C3`), and what each step gives is searched like the forms
# above (so that one form's reading cannot spoil another's: `=FA` in `?n=FAKE` is no quoted-printable).
_ESCAPES = (  # form, first byte, the rest of an escape, the start of its rest in UTF-16 (LE or BE)
    ("character references", b"&", rb"(?:#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};?)",
     rb"\x00[#A-Za-z]\x00"),
    ("percent-encoding", b"%", rb"[0-9a-fA-F]{2}", rb"\x00[0-9a-fA-F]\x00[0-9a-fA-F]"),
    ("backslash escapes", b"\\", rb"(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|X(?:[0-9a-fA-F]{2})+\\|'[0-9a-fA-F]{2})",
     rb"\x00[uxX']\x00[0-9a-fA-F]"),
    ("quoted-printable", b"=", rb"(?:[0-9A-Fa-f]{2}|\r?\n)", rb"\x00[0-9A-Fa-f]\x00[0-9A-Fa-f]"),
)
_READ_ESCAPES = tuple((form, re.compile(re.escape(first) + rest)) for form, first, rest, _ in _ESCAPES)
_FIND_ESCAPES = tuple(re.compile(re.escape(first) + b"(?:" + rest + b"|" + wide + b")")
                      for _, first, rest, wide in _ESCAPES)
_UNESCAPE_ROUNDS = 3


def _unescaped(data: bytes) -> list[tuple[str, bytes]]:
    """The text around the escapes `data` holds (`_ESCAPES`), read back, with the forms it was written in."""
    found = []
    for start, end, wide in _escape_windows(data):
        window = data[start:end]
        for text in (window, window[0::2], window[1::2]) if wide else (window,):
            forms: list[str] = []
            for _ in range(_UNESCAPE_ROUNDS):
                before = text
                for form, escape in _READ_ESCAPES:
                    read = escape.sub(_read_escape, text)
                    if read != text:
                        text = read.replace(b"+", b" ") if form == "percent-encoding" else read
                        forms += [form] if form not in forms else []
                        found.append((", ".join(forms), text))
                if text == before:
                    break
    return found


def _escape_windows(data: bytes) -> list[tuple[int, int, bool]]:
    """Where `data` holds escapes, with `_CONTEXT` characters around them (windows that overlap made one), and
    whether one is in UTF-16."""
    spans = sorted((m.start(), m.end(), b"\x00" in m.group())
                   for escape in _FIND_ESCAPES for m in escape.finditer(data))
    windows: list[tuple[int, int, bool]] = []
    for start, end, wide in spans:
        context = 2 * _CONTEXT if wide else _CONTEXT
        if windows and start - context <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end + context), windows[-1][2] or wide)
        else:
            windows.append((max(0, start - context), end + context, wide))
    return windows


def _read_escape(match: re.Match[bytes]) -> bytes:
    """The bytes one escape stands for (a character as UTF-8, or the bytes a hex escape names)."""
    escape = match.group()
    if escape[:1] == b"&":
        return html.unescape(escape.decode("ascii")).encode("utf-8", "surrogatepass")
    if escape[:2] == b"\\u":
        return chr(int(escape[2:], 16)).encode("utf-8", "surrogatepass")
    if escape[:2] == b"\\X":  # HL7's hex bytes, `\XC39C\`
        return bytes.fromhex(escape[2:-1].decode("ascii"))
    if escape[-1:] == b"\n":  # a soft line break
        return b""
    return bytes.fromhex(escape[-2:].decode("ascii"))


def _base64_runs(classes: bytes) -> list[tuple[int, int]]:
    """Where runs of 8 or more base64 characters (`classes`: `data` mapped by _BASE64_CLASS) start and end."""
    return [match.span() for match in _RUN.finditer(classes)]


def _streams(data: bytes, form: str, budget: list[int]) -> list[tuple[str, bytes]]:
    """What the zlib and gzip streams that begin in `data` inflate to, within the file's `budget` (stream starts
    tried, bytes inflated), spent as it goes: a header of many streams, or one that inflates to gigabytes, costs a
    worker a bounded time and memory (the file's own streams are read first)."""
    starts = sorted(m.start() for start in _STREAM_STARTS for m in start.finditer(data))[:max(0, budget[0])]
    found = []
    for at in starts:
        budget[0] -= 1
        if budget[1] <= 0:
            break
        wbits = 16 + zlib.MAX_WBITS if data[at] == 0x1F else zlib.MAX_WBITS
        try:
            inflated = zlib.decompressobj(wbits).decompress(memoryview(data)[at:], budget[1])
        except zlib.error:
            continue
        budget[1] -= len(inflated)
        if inflated:
            found.append((form, inflated))
    return found


def bytes_after_frames(path: Path, pixels: PixelSpan | None, original: Dataset, searchable: bytes | None = None,
                       ) -> int:
    """How many bytes of native pixel data (integer, float or double float) in the written file lie after its
    frames (Rows x Columns x samples x bits x frames) and are not all zero: bytes no image shows and no check
    reads; all of them when the header does not say the frames' size (a header without Rows: found from outside,
    released with text in its pixel data); in encapsulated pixel data, those no decoder of its frames reads (after
    an RLE segment's image, an RLE segment or a codestream past the frames, a thumbnail in a codestream's segment).
    0 for zero padding or the byte that pads an odd length. `pixels` is None for a file without pixel data, or a
    deflated one (read whole: deflated images are rare). `searchable`, the written bytes as `check_file` takes
    them, holds the element's header: then the file is opened only when there are bytes after the frames."""
    frame, count = _frame_layout(original)
    if pixels is None:  # (no pixel data; or deflated, without a frame's size: rarer still)
        value = _deflated_pixels(path)[1] if frame else None
        if not isinstance(value, bytes):
            return 0
        unshown = _unshown(len(value), frame, count)
        return unshown if unshown and value[-unshown:].strip(b"\x00") else 0
    if searchable is not None:
        length = _value_length(searchable[pixels.start:pixels.start + 12])
    else:
        with open(path, "rb") as f:
            f.seek(pixels.start)
            length = _value_length(f.read(12))
    if length is None:  # encapsulated
        plane = int(original.get("Rows") or 0) * int(original.get("Columns") or 0)
        try:  # a segment for each byte of a sample (15, the most, when the header does not say)
            segments = int(original.get("SamplesPerPixel") or 1) * ((int(original.get("BitsAllocated") or 0) + 7) // 8)
        except (TypeError, ValueError):
            segments = 0
        return (_unread_rle(path, pixels, plane, segments or 15)
                + _codestreams_past_frames(path, pixels, _frame_layout(original)[1] or 1)
                + _pictures_in_segments(path, pixels))
    unshown = _unshown(length, frame, count)
    if not unshown:
        return 0
    with open(path, "rb") as f:
        f.seek(pixels.end - unshown)
        return unshown if f.read(unshown).strip(b"\x00") else 0


def _unshown(length: int, frame: int, count: int | None) -> int:
    """How many bytes at the end of a native pixel data value of `length` bytes no frame shows: those after its
    frames, or, in a value shorter than its frames, those of the frame it ends in (found from outside: 128 bytes of
    text were released for a 64 x 64 image); 0 for the byte that pads an odd length."""
    expected = _frames_bytes(frame, count, length)
    unshown = length - expected if length >= expected else length - (length * 8 // frame) * frame // 8
    return unshown if unshown > 1 else 0


def unused_bits(count: int) -> str:
    """The reason (and finding) for native pixel values that set bits outside the stored ones; its particulars in
    brackets, so that a run's summary counts the files under one reason (found from outside: a line a file)."""
    values = "1 value" if count == 1 else f"{count} values"
    return f"pixel data sets bits outside the stored ones ({values}; no image shows them)"


def pixels_with_unused_bits(path: Path, pixels: PixelSpan | None, original: Dataset,
                            element: bytes | memoryview | None = None) -> int:
    """How many values of native pixel data (a multiple of 8 bits allocated, up to 64, fewer stored) set a bit
    outside the stored ones (below HighBit - BitsStored + 1, or above HighBit where no sign is copied there): bits no
    image shows (found from outside: text in them was released; an overlay a tool left there without its 60xx group
    shows a name; values of 24 or 48 bits were not read). Read a block at a time; 0 for encapsulated pixel data
    (`--clean-pixels` decodes it) or a layout the header does not give. `element` may give the pixel data element
    as written (at `pixels`), when the writer still holds it: then the file is not read again."""
    layout = _bit_layout(original)
    if layout is None:
        return 0
    width = layout[0] // 8
    if pixels is None:  # (no pixel data; or deflated: read whole, found on review)
        tag, value = _deflated_pixels(path)
        if tag != PIXEL_DATA or not value:
            return 0
        return _outside(_values(value, _framed(original, len(value)) // width, width, True), *layout)
    if pixels.tag != PIXEL_DATA:
        return 0
    if element is not None:
        return _unused_in_element(element, original, layout)
    return _unused_in_file(path, pixels, original, layout)


def _unused_in_element(element: bytes | memoryview, original: Dataset, layout: tuple[int, int, int, bool]) -> int:
    """`pixels_with_unused_bits` of a pixel data element held in memory (its tag, VR and length first)."""
    width = layout[0] // 8
    length, header = _value_header(bytes(element[:12]))
    if length is None:
        return 0
    count = min(_framed(original, length), len(element) - header) // width
    if not count:
        return 0
    return _outside(_values(element[header:], count, width, element[:2] == b"\xe0\x7f"), *layout)


def _unused_in_file(path: Path, pixels: PixelSpan, original: Dataset, layout: tuple[int, int, int, bool]) -> int:
    """`pixels_with_unused_bits` of the pixel data element at `pixels` in the file at `path`, read a block at a
    time."""
    width = layout[0] // 8
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.pread(fd, 12, pixels.start)
        length, header = _value_header(head)
        if length is None:
            return 0
        at = pixels.start + header
        little = head[:2] == b"\xe0\x7f"
        end = at + _framed(original, length)
        found, block = 0, _block()
        whole = len(block) - len(block) % width  # (a block holds whole values)
        while end - at >= width:
            read = os.preadv(fd, [block[:min(whole, end - at)]], at)
            count = read // width
            if not count:
                break
            found += _outside(_values(block, count, width, little), *layout)
            at += count * width
    finally:
        os.close(fd)
    return found


def _framed(original: Dataset, length: int) -> int:
    """The bytes of a native pixel data value of `length` bytes whose unused bits are read: its frames' (the whole
    value when the header gives no frame's size), no more than it holds."""
    return min(_frames_bytes(*_frame_layout(original), length) or length, length)


def _values(data: bytes | memoryview | bytearray, count: int, width: int, little: bool) -> np.ndarray[Any, Any]:
    """The first `count` values of `width` bytes in `data` as unsigned integers: in their own type where NumPy has
    one, else each widened to 64 bits."""
    unsigned = _UNSIGNED.get((little, width))
    if unsigned is not None:
        return np.frombuffer(data, unsigned, count)
    grouped = np.frombuffer(data, np.uint8, count * width).reshape(count, width)
    widened = np.zeros((count, 8), np.uint8)
    widened[:, :width] = grouped if little else grouped[:, ::-1]
    return widened.view("<u8").ravel()


def _deflated_pixels(path: Path) -> tuple[int, bytes | None]:
    """A deflated file's pixel data element, its tag and value, read whole (deflated images are rare); (0, None) for
    another file or one without. The last file's is kept: two checks read it."""
    info = path.stat()
    return _deflated_read(path, info.st_mtime_ns, info.st_size)


@lru_cache(maxsize=1)
def _deflated_read(path: Path, _mtime: int, _size: int) -> tuple[int, bytes | None]:
    if _transfer_syntax(_file_meta(path)) != DEFLATED_SYNTAX:
        return 0, None
    with quiet():
        written = pydicom.dcmread(path)
    tag = next((tag for tag in _PIXEL_TAGS if tag in written), 0)
    value = written[tag].value if tag else None
    return tag, value if isinstance(value, bytes) else None


def _block() -> memoryview:
    """This thread's buffer that pixel data is read into a block at a time (a Dask worker runs files in threads:
    found on review, one buffer a process let one file's bytes stand in for another's)."""
    block: memoryview | None = getattr(_THREAD, "block", None)
    if block is None:
        block = _THREAD.block = memoryview(bytearray(4 << 20))
    return block


_THREAD = threading.local()
_UNSIGNED = {(little, width): np.dtype(f"{'<' if little else '>'}u{width}") for little in (True, False)
             for width in (1, 2, 4, 8)}


@once_per_raw_values(tuple(int(Tag(k)) for k in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation")))
def _bit_layout(original: Dataset) -> tuple[int, int, int, bool] | None:
    """BitsAllocated, the lowest and the highest stored bit and whether values are signed, for native pixel data of
    a multiple of 8 bits allocated, up to 64, and fewer stored; None for another layout or one the header does not
    give."""
    try:
        allocated, stored = int(original.BitsAllocated), int(original.BitsStored)
        high = int(original.get("HighBit", stored - 1))
        signed = int(original.get("PixelRepresentation", 0) or 0) == 1
    except (AttributeError, TypeError, ValueError):
        return None
    low = high - stored + 1
    if allocated % 8 or not 8 <= allocated <= 64 or not 0 < stored < allocated:
        return None
    if not 0 <= low <= high < allocated:  # (HighBit out of place: found from outside; read as BitsStored's lowest)
        low, high = 0, stored - 1
    return allocated, low, high, signed


def _outside(values: np.ndarray[Any, Any], bits: int, low: int, high: int, signed: bool) -> int:
    """How many of `values` (unsigned, each of `bits` bits) set a bit outside `low` to `high`, a signed one's copies
    of its sign above `high` aside."""
    stored = ((1 << (high - low + 1)) - 1) << low
    every = (1 << bits) - 1
    if not signed:
        if not int(np.bitwise_or.reduce(values)) & ~stored & every:
            return 0
        return int(np.count_nonzero(values & (every ^ stored)))
    spare = values.dtype.itemsize * 8 - bits  # (a value widened to 64 bits: its sign copied into the bits above)
    shifted = (values << spare).view(np.int64) >> spare if spare else values.view(values.dtype.str.replace("u", "i"))
    least, most = -(1 << (high - low)), (1 << (high - low)) - 1
    below = int(np.count_nonzero(values & ((1 << low) - 1))) if low else 0
    shifted = shifted >> low if low else shifted
    if not below and least <= int(shifted.min()) and int(shifted.max()) <= most:
        return 0
    return below + int(np.count_nonzero((shifted < least) | (shifted > most)))


def _unread_rle(path: Path, pixels: PixelSpan, plane: int, segments: int) -> int:
    """The bytes of RLE Lossless fragments that no decoder reads and that are not zero padding: after each segment's
    `plane` (Rows x Columns) decoded bytes, up to the next segment or the fragment's end, and every segment past
    the `segments` the image is made of (a sample's bytes each: found from outside, a second segment holding a
    picture of the name), and those between the header and the first segment; all of them when the segments are
    listed out of order, as no decoder reads them; in an RLE file, every fragment that is no RLE segments."""
    unread = 0
    with open(path, "rb") as f:
        rle_file = _transfer_syntax(_file_meta_of(f)) == _RLE_SYNTAX
        for start, end in _fragments(f, pixels) if plane else ():
            segments_here = _rle_segments(f, start, end)
            if rle_file and not segments_here:  # (found on review: a JPEG there was released)
                unread += end - start if any(block.strip(b"\x00") for block in _blocks(f, start, end)) else 0
            elif segments_here:
                f.seek(start)
                fragment = f.read(end - start)
                count, *offsets = struct.unpack("<16L", fragment[:64])
                used = offsets[:count]
                if any(a >= b for a, b in zip(used, used[1:], strict=False)):  # (no decoder reads them so)
                    unread += _not_zero(fragment[64:])
                    continue
                unread += _not_zero(fragment[64:used[0]])  # (between the header and the first segment)
                bounds = [*used, len(fragment)]
                for index, (begin, stop) in enumerate(zip(bounds, bounds[1:], strict=False)):
                    rest = fragment[begin if index >= segments else _packbits_end(fragment, begin, stop, plane):stop]
                    unread += _not_zero(rest)
    return unread


def _not_zero(data: bytes) -> int:
    """len(data), or 0 when every byte is zero (padding)."""
    return len(data) if data.strip(b"\x00") else 0


def _codestreams_past_frames(path: Path, pixels: PixelSpan, frames: int) -> int:
    """The bytes of encapsulated pixel data that no decoder of its `frames` reads, in the frames (`_frames`) that
    begin with a JPEG, JPEG-LS or JPEG 2000 codestream: the codestreams past the frames (one a frame, whether each
    has fragments of its own or not) and what follows a codestream's end (in its fragment or in later ones it was
    joined with) but zero padding and the byte or two a writer pads with (found from outside: a second codestream,
    or a raw picture, after the first one's end held the name). 0 when there are none. Other fragments (a video's
    stream, where the bytes of a codestream's start and end stand now and then by chance) are searched whole by
    `_in_marker_segments`."""
    extra = seen = 0
    with open(path, "rb") as f:
        for stream, start, end, coded in _frames(f, pixels):
            at = _codestream_start(stream, start, end) if coded else None
            while at is not None:
                seen += 1
                after = _after_end(stream, _header_segments(stream, at + 2, end, _Segments())[0], end)
                if seen > frames:
                    extra += (after[0] if after is not None else end) - at
                if after is None:
                    break
                at = _first_start(stream, *after)
                stray = (at if at is not None else after[1]) - after[0]
                extra += stray if stray > _PAD_AFTER_END else 0
    return extra


_PAD_AFTER_END = 2  # bytes after a codestream's end marker that a writer may pad a fragment with, whatever they hold


def _pictures_in_segments(path: Path, pixels: PixelSpan) -> int:
    """The bytes of the marker segments that hold a picture of their own (a thumbnail in an application segment,
    Exif's or JFIF's; a codestream in a comment), in the codestreams that begin frames (`_frames`, their fragments
    joined): no decoder of the frames shows it, and the search for text does not read a
    picture (found on review: a thumbnail of the name was released at plain `full`); and more than two bytes
    between header segments that belong to none (a decoder skips them). 0 when there are none."""
    pictures = 0
    with open(path, "rb") as f:
        for stream, start, end, coded in _frames(f, pixels):
            at = _codestream_start(stream, start, end) if coded else None
            if at is not None:
                segments = _segment_payloads(stream, at, end)[0]
                pictures += segments.stray if segments.stray > _PAD_AFTER_END else 0
                pictures += _pictured(segments.payloads)
    return pictures


def _pictured(payloads: list[bytes]) -> int:
    """The bytes of the payloads that hold a picture."""
    return sum(len(payload) for payload in payloads if _holds_picture(payload))


def _holds_picture(payload: bytes) -> bool:
    """Whether a marker segment's payload holds a picture: JFIF's thumbnail (its width and height, bytes 12 and 13,
    not 0; or bytes past its 14, which no reader reads), a JFIF extension's (JFXX: a JPEG, a palette or RGB one),
    Exif's (a second image directory, IFD1, which describes it, compressed or not: found from outside, an
    uncompressed one was released), or a JPEG or JPEG 2000 codestream with more than its start and end, a PNG or a
    GIF anywhere in it."""
    if payload[:5] == b"JFIF\x00":
        return len(payload) > 14 or (len(payload) == 14 and payload[12] * payload[13] > 0)  # (as `pixels` reads it)
    if payload[:6] == b"Exif\x00\x00" and _exif_thumbnail(payload[6:]):
        return True
    return payload[:5] == b"JFXX\x00" or _PICTURE.search(payload) is not None


def _exif_thumbnail(tiff: bytes) -> bool:
    """Whether Exif's TIFF structure has a second image directory (IFD1: the thumbnail's). One that cannot be read
    has none a reader finds (its bytes are searched for text, and for a picture's signature)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return False
    (first,) = struct.unpack(order + "L", tiff[4:8])
    if first + 2 > len(tiff):
        return False
    (count,) = struct.unpack(order + "H", tiff[first:first + 2])
    at = first + 2 + 12 * count
    return tiff[at:at + 4].strip(b"\x00") != b""  # (the offset of the next directory: 0 for none)


# SOI and a marker but EOI; SOC and SIZ; PNG's and GIF's signatures
_PICTURE = re.compile(rb"\xff\xd8\xff(?!\xd9)|\xff\x4f\xff\x51|\x89PNG\r\n\x1a\n|GIF8[79]a")


def _frames(f: BinaryIO, pixels: PixelSpan) -> Iterator[tuple[_Readable, int, int, bool]]:
    """Each fragment of encapsulated pixel data after the basic offset table, as (stream, start, end, coded); a
    fragment that holds a codestream's start joined with the fragments after it that begin none, into one stream,
    as a decoder reads a frame split over fragments (found from outside: a segment, or a JPEG 2000 header, cut by a
    fragment's end was read by no walk). `coded`: a decoder of the file's transfer syntax may read a codestream
    from its start (`_codestream_start`); else its bytes are no image's. Fragments of RLE segments are left out
    (`_unread_rle` reads them). A file's frames are of its transfer syntax's kind, else of one kind: in an RLE
    file no fragment is a codestream, in a JPEG's (or a video's) none is RLE segments, and where a fragment begins
    with a codestream, none is taken for them (found from outside: a JPEG's scan header in an RLE file, or a
    fragment that only looked like RLE segments, made what followed it read by nothing)."""
    syntax = _transfer_syntax(_file_meta_of(f))
    rle_only, no_rle = syntax == _RLE_SYNTAX, syntax is not None and syntax.startswith(_CODED_SYNTAXES)
    fragments = list(_fragments(f, pixels))
    codestreams = no_rle or not rle_only and any(_starts_codestream(f, start) for start, _ in fragments)
    frame: list[tuple[int, int]] = []
    for start, end in fragments:
        begins = not rle_only and _starts_codestream(f, start)
        rle = not codestreams and _rle_segments(f, start, end)
        if frame and not (begins or rle):
            frame.append((start, end))
            continue
        if frame:
            yield *_joined(f, frame), True
        late = not (rle or rle_only) and _first_start(f, start, end) is not None  # (a JP2 file's boxes first)
        frame = [(start, end)] if begins or late else []
        if not frame and not rle:  # (bytes of no codestream)
            yield f, start, end, False
    if frame:
        yield *_joined(f, frame), True


_RLE_SYNTAX = b"1.2.840.10008.1.2.5"
_CODED_SYNTAXES = b"1.2.840.10008.1.2.4."  # JPEG, JPEG-LS, JPEG 2000, HTJ2K, MPEG, HEVC


def _joined(f: BinaryIO, fragments: list[tuple[int, int]]) -> tuple[_Readable, int, int]:
    """The fragments as one stream, and where it begins and ends (a single fragment: the file itself)."""
    if len(fragments) == 1:
        return f, *fragments[0]
    joined = _Joined(f, fragments)
    return joined, 0, joined.size


class _Joined:
    """Fragments of the file read as one stream (`seek`, `read`): the bytes of each after those of the one before."""

    def __init__(self, f: BinaryIO, fragments: list[tuple[int, int]]) -> None:
        self.f, self.pos, self.size = f, 0, 0
        self.parts: list[tuple[int, int, int]] = []  # (where in the stream, where in the file, length)
        for start, end in fragments:
            self.parts.append((self.size, start, end - start))
            self.size += end - start

    def seek(self, pos: int) -> int:
        self.pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n < 0 else min(self.size, self.pos + n)
        out = []
        for index in range(bisect_right(self.parts, (self.pos, 1 << 62)) - 1, len(self.parts)):
            at, start, length = self.parts[index]
            if self.pos >= end:
                break
            self.f.seek(start + self.pos - at)
            part = self.f.read(min(end, at + length) - self.pos)
            out.append(part)
            self.pos += len(part)
            if self.pos < min(end, at + length):  # (the file ends early)
                break
        return b"".join(out)


class _Readable(Protocol):
    def seek(self, pos: int, /) -> int: ...
    def read(self, n: int = -1, /) -> bytes: ...


def _fragments(f: BinaryIO, pixels: PixelSpan) -> Iterator[tuple[int, int]]:
    """Where each fragment of encapsulated pixel data after the basic offset table begins and ends."""
    f.seek(pixels.start + 12)
    item = f.read(8)
    pos = pixels.start + 20 + struct.unpack("<L", item[4:])[0] if item[:4] == b"\xfe\xff\x00\xe0" else pixels.end
    while pos + 8 <= pixels.end:
        f.seek(pos)
        item = f.read(8)
        if len(item) < 8 or item[:4] != b"\xfe\xff\x00\xe0":
            return
        start = pos + 8
        pos = start + struct.unpack("<L", item[4:])[0]
        yield start, pos


def _packbits_end(data: bytes, pos: int, end: int, size: int) -> int:
    """Where an RLE (PackBits) segment that starts at `pos` has given `size` bytes (at most `end`)."""
    made = 0
    while made < size and pos < end:
        n = data[pos]
        if n < 128:  # the next n + 1 bytes as they are
            made, pos = made + n + 1, pos + n + 2
        elif n > 128:  # the next byte 257 - n times
            made, pos = made + 257 - n, pos + 2
        else:  # (no operation)
            pos += 1
    return min(pos, end)


DEFLATED_SYNTAX = b"1.2.840.10008.1.2.1.99"
_PIXEL_TAGS = (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)


@once_per_raw_values(tuple(int(Tag(k)) for k in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
                                                  "NumberOfFrames", "PhotometricInterpretation")))
def _frame_layout(original: Dataset) -> tuple[int, int | None]:
    """The bits of a frame of native pixel data as the header gives them (0 when it does not), and the number of
    frames (None when NumberOfFrames is no number). YBR_FULL_422 stores a Cb and a Cr for two pixels: two samples
    a pixel (PS3.3 C.7.6.3.1.2)."""
    try:
        samples = int(original.get("SamplesPerPixel") or 1)
        if samples == 3 and str(original.get("PhotometricInterpretation") or "").strip() == "YBR_FULL_422":
            samples = 2
        frame = (int(original.get("Rows") or 0) * int(original.get("Columns") or 0) * samples
                 * int(original.get("BitsAllocated") or 0))
    except (TypeError, ValueError):
        return 0, 1
    try:
        return frame, int(str(original.get("NumberOfFrames") or 1).strip() or 1)
    except (TypeError, ValueError):
        return frame, None


def _frames_bytes(frame: int, count: int | None, length: int) -> int:
    """The bytes the frames take: as the header gives them; when it gives no number of frames it can read, as many
    whole frames as a value of `length` bytes holds (pydicom's badVR.dcm: NumberOfFrames '1A')."""
    if count is None:
        count = length * 8 // frame if frame else 0
    return (frame * count + 7) // 8


def _value_length(head: bytes) -> int | None:
    """The value length in a pixel data element's header (explicit or implicit VR, either byte order); None when
    undefined (encapsulated) or unreadable."""
    return _value_header(head)[0]


def _value_header(head: bytes) -> tuple[int | None, int]:
    """The value length in a pixel data element's header (`_value_length`) and the header's size: 12 bytes for an
    explicit VR of a 4-byte length (OB, OW, OF, OD, OL, OV, UN: found from outside, a value stored as UN was read
    from its length on), else 8."""
    if len(head) < 8:
        return None, 8
    little = head[:2] == b"\xe0\x7f"
    explicit = head[4:6] in LONG_LENGTH_VRS and head[6:8] == b"\x00\x00" and len(head) == 12
    (length,) = struct.unpack("<L" if little else ">L", head[8:12] if explicit else head[4:8])
    return (None if length == 0xFFFFFFFF else int(length)), 12 if explicit else 8


def _without_our_uids(data: bytes, patterns: tuple[Needle, ...], own: tuple[Needle, ...]) -> bytes:
    """`data` with each of our keyed UIDs cut to a NUL, but for one that is an original UID (a needle)."""
    originals = uids_under_2_25(patterns) | {n.data for n in own if n.data.startswith(b"2.25.")}
    if not originals:
        return _OUR_UIDS.sub(b"\x00", data)
    return _OUR_UIDS.sub(lambda m: m.group() if m.group() in originals else b"\x00", data)


def _in_marker_segments(path: Path, pixels: PixelSpan, data: bytes, patterns: tuple[Needle, ...],
                        own: tuple[Needle, ...]) -> list[Finding]:
    """The needles in the bytes of encapsulated pixel data that no decoder reads as an image, frame by frame
    (`_frames`): the basic offset table; the text a JPEG, JPEG-LS or JPEG 2000 codestream carries beside its image
    (comment and application segments: a device may write the patient's name there); and whatever lies before a
    codestream's start or after its end (past zero padding), a fragment that holds no codestream included. `data`
    holds the pixel data element's header: native pixel data is not read. (RLE segments: `bytes_after_frames`.)"""
    header = data[pixels.start:pixels.start + 12]
    if header[4:6] not in (b"OB", b"OW") or header[8:12] != b"\xff\xff\xff\xff":
        return []
    stray = _Stray(patterns, own)
    with open(path, "rb") as f:
        f.seek(pixels.start + 12)
        item = f.read(8)
        if item[:4] == b"\xfe\xff\x00\xe0":  # the basic offset table: numbers only, so text there is out of place
            stray.add(_blocks(f, pixels.start + 20, pixels.start + 20 + struct.unpack("<L", item[4:])[0]))
        for stream, start, end, coded in _frames(f, pixels):
            _frame(stream, start, end, coded, stray)
    return [Finding(n.attribute, "(7FE0,0010) outside the coded image")
            for n in sorted(stray.found(), key=lambda n: (n.attribute, n.data))]


class _Stray:
    """Bytes no decoder reads as an image, searched for the needles a part at a time (`_SEARCHED_AT_ONCE` bytes:
    a video in one fragment is not held whole)."""

    def __init__(self, patterns: tuple[Needle, ...], own: tuple[Needle, ...]) -> None:
        self.patterns, self.own = patterns, own
        self.parts: list[bytes] = []
        self.size = 0
        self.hits: set[Needle] = set()

    def add(self, parts: Iterable[bytes]) -> None:
        for part in parts:
            self.parts.append(part)
            self.size += len(part)
            if self.size > _SEARCHED_AT_ONCE:
                self._search()

    def found(self) -> set[Needle]:
        self._search()
        return self.hits

    def _search(self) -> None:
        if self.parts:
            text = APART.join(self.parts).lower()
            self.hits.update(find(text, self.patterns, remember=False) + find_once(text, self.own))
        self.parts, self.size = [], 0


def _frame(f: _Readable, start: int, end: int, coded: bool, stray: _Stray) -> None:
    """Add to `stray` what a frame's fragments (`_frames`) hold beside its coded image: all of them where no
    decoder reads a codestream from their start (found from outside: bytes before a JPEG's start made the name
    after its scan header coded data, which no decoder reads)."""
    first = _codestream_start(f, start, end) if coded else None
    stray.add(_blocks(f, start, end if first is None else first))  # (a JP2 file's boxes before its codestream)
    if first is None:
        return
    segments, image = _segment_payloads(f, first, end)
    stray.add(segments.payloads)
    after = _after_end(f, image, end)
    if after is not None:  # the codestream ended: what follows is no image's
        stray.add(_blocks(f, *after))


_CODESTREAM_STARTS = (b"\xff\xd8", b"\xff\x4f")  # SOI (JPEG, JPEG-LS), SOC (JPEG 2000)
# SOI and a marker; SOC and SIZ, which must follow it: where a codestream starts later in a fragment
_LATE_START = re.compile(rb"\xff\xd8\xff|\xff\x4f\xff\x51")
_SOS, _SOT, _SOD = 0xDA, 0x90, 0x93  # the image itself follows (JPEG scan; JPEG 2000 tile-part and its data)
# A JPEG marker segment anywhere (one with a length: tables, comment and application segments, reserved ones, a
# scan's header): in coded data 0xFF is followed only by 0x00 or a restart marker (JPEG), a byte below 0x80
# (JPEG-LS) or below 0x90 (JPEG 2000), so this finds only real segments.
_JPEG_SEGMENT = re.compile(rb"\xff[\xc0-\xcf\xda-\xfe]")
_OVERLAP = 4096  # bytes a block shares with the next, so that a value across their edge is read whole
_SEARCHED_AT_ONCE = 16 << 20  # stray bytes searched together, at most


def _codestream_start(f: _Readable, start: int, end: int) -> int | None:
    """Where the codestream a frame's decoder reads starts: at the frame's start; in a JP2 file, in its codestream
    box, the boxes before it walked by their lengths (found from outside: a second codestream after a JP2-wrapped
    one was released; a box holding what looked like a codestream's start hid text as its coded data); else None
    (a video's stream, or other bytes before a codestream's start, where no decoder reads one). The bytes before it
    are searched for text."""
    if _starts_codestream(f, start):
        return start
    f.seek(start)
    if f.read(12) == _JP2_SIGNATURE:
        at = _codestream_box(f, start, end)
        return at if at is not None and _starts_codestream(f, at) else None
    return None


def _codestream_box(f: _Readable, start: int, end: int) -> int | None:
    """Where the contents of a JP2 file's contiguous codestream box (jp2c) begin, or None."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(16)
        length, kind, header = int.from_bytes(head[:4], "big"), head[4:8], 8
        if length == 1 and len(head) == 16:  # (an extended length)
            length, header = int.from_bytes(head[8:16], "big"), 16
        if kind == b"jp2c":
            return pos + header
        if length < header:  # (0: the last box, to the end)
            return None
        pos += length
    return None


_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _starts_codestream(f: _Readable, start: int) -> bool:
    f.seek(start)
    return f.read(2) in _CODESTREAM_STARTS


def _blocks(f: _Readable, start: int, end: int) -> Iterator[bytes]:
    """The bytes from `start` to `end`, in blocks that overlap by `_OVERLAP` bytes."""
    for at in range(start, end, _BLOCK):
        f.seek(at)
        yield f.read(min(_BLOCK + _OVERLAP, end - at))


def _first_start(f: _Readable, start: int, end: int) -> int | None:
    """Where a codestream starts in a fragment that does not begin with one, or None (no codestream)."""
    for at in range(start, end, _BLOCK):
        f.seek(at)
        match = _LATE_START.search(f.read(min(_BLOCK + 3, end - at)))
        if match:
            return at + match.start()
    return None


def _rle_segments(f: _Readable, start: int, end: int) -> bool:
    """Whether the fragment begins with an RLE header: 1 to 15 segments, each within the fragment after the header
    (in order and the first right after it, or not: found from outside, a picture between the header and the first
    segment, whose bytes `_unread_rle` counts), the offsets of no other segment set."""
    f.seek(start)
    head = f.read(64)
    if len(head) < 64:
        return False
    count, *offsets = struct.unpack("<16L", head)
    return 1 <= count <= 15 and all(64 <= o < end - start for o in offsets[:count]) and not any(offsets[count:])


def _after_end(f: _Readable, image: int, end: int) -> tuple[int, int] | None:
    """Where the bytes a fragment holds after its codestream's end marker (EOI, EOC: FFD9, which no coded data
    holds: the first after `image`, where its coded data may begin, past its header's segments, whose payloads may
    hold FFD9: an Exif thumbnail) begin and end, zero padding left out; None when none is in it (a frame continued
    in the next fragment). A second codestream or a stray end marker after it is no image's (found from outside:
    text between two end markers was released)."""
    for at in range(image, end, _BLOCK):
        f.seek(at)
        mark = f.read(min(_BLOCK + 1, end - at)).find(b"\xff\xd9")  # (one byte more: a marker across the edge)
        if mark >= 0:
            return at + mark + 2, _before_padding(f, at + mark + 2, end)
    return None


def _before_padding(f: _Readable, start: int, end: int) -> int:
    """Where the zero bytes that end the bytes from `start` to `end` begin (`end` if there are none)."""
    while end > start:
        at = max(start, end - _BLOCK)
        f.seek(at)
        kept = f.read(end - at).rstrip(b"\x00")
        if kept:
            return at + len(kept)
        end = at
    return start


class _Segments:
    """A codestream's marker segments: their payloads (as far as the frame holds them), and how many bytes between
    them belong to none (skipped, as a decoder skips them to the next marker)."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.stray = 0


def _segment_payloads(f: _Readable, start: int, end: int) -> tuple[_Segments, int]:
    """The marker segments of the codestream that begins the fragment from `start` to `end` (tables, comments,
    application and reserved segments: none is the image; a device may write text in any): JPEG's before and
    between its scans (found by their markers in the rest of the fragment), JPEG 2000's in its main header and in
    each tile-part's header (found by the tile-parts' lengths, so that its coded data is not read); and where its
    coded data begins (its first scan or tile-part)."""
    found = _Segments()
    pos, marker = _header_segments(f, start + 2, end, found)
    image = pos
    if marker == _SOS:
        _segments_after(f, pos, end, found)
    while marker == _SOT and pos + 12 <= end:
        f.seek(pos + 2)
        sot = f.read(8)  # Lsot, Isot, Psot: the tile-part's length from its SOT on (0: up to the end)
        length, part = int.from_bytes(sot[:2], "big"), int.from_bytes(sot[4:8], "big")
        _header_segments(f, pos + 2 + length, end, found)
        if part < 14:
            break
        pos += part
        f.seek(pos)
        following = f.read(2)
        marker = following[1] if len(following) == 2 and following[0] == 0xFF else None
    return found, image


def _segments_after(f: _Readable, pos: int, end: int, found: _Segments) -> None:
    """Add to `found` the payloads of the JPEG marker segments from `pos` to `end` (`_JPEG_SEGMENT`), read a block
    at a time."""
    for at in range(pos, end, _BLOCK):
        f.seek(at)
        block = f.read(min(_BLOCK + 1, end - at))  # (one byte more: a marker across the blocks' edge)
        for match in _JPEG_SEGMENT.finditer(block):
            f.seek(at + match.end())
            length = int.from_bytes(f.read(2), "big")
            held = max(0, min(length - 2, end - at - match.end() - 2))  # (none past the fragment's end)
            found.payloads.append(f.read(held))


_BLOCK = 1 << 20


def _header_segments(f: _Readable, pos: int, end: int, found: _Segments) -> tuple[int, int | None]:
    """Walk the marker segments from `pos`, adding their payloads to `found`, up to the marker where coded data
    begins; return where it is and which it is (None: no marker there). Bytes that are no marker are skipped to
    the next one, as a decoder skips them, and added too (found from outside: the walk stopped at three such
    bytes, and a comment after them holding the name was released; so did a segment's bytes past its length)."""
    while pos + 4 <= end:
        f.seek(pos)
        marker = f.read(4)
        if len(marker) < 4:
            break
        if marker[0] != 0xFF:  # (found from outside: a search by regular expression took time by the square)
            f.seek(pos)
            block = f.read(min(_BLOCK, end - pos))
            at = block.find(b"\xff")
            skipped = at if at >= 0 else len(block)
            found.payloads.append(block[:skipped])
            found.stray += skipped
            pos += skipped
            continue
        if marker[1] in (_SOS, _SOT, _SOD):
            return pos, marker[1]
        if marker[1] == 0xFF:  # a fill byte before the marker
            pos += 1
            continue
        if marker[1] in _NO_SEGMENT:  # (found from outside: a picture behind FF 00 and a length was taken for one)
            found.stray += 2
            pos += 2
            continue
        (length,) = struct.unpack(">H", marker[2:])
        found.payloads.append(f.read(min(max(length - 2, 0), end - pos - 4)))
        pos += 2 + length
    return pos, None


# After 0xFF in a header, bytes that begin no segment: 0x00 (no marker), TEM and the restart markers (none has a
# length), a second SOI
_NO_SEGMENT = frozenset({0x00, 0x01, *range(0xD0, 0xD9)})


def looks_like_text(data: bytes) -> bool:
    """Whether bytes (their first 64 KiB) are text, UTF-16 with its byte order mark or text of one byte a
    character: no NUL, and nineteen bytes in twenty printable or spacing. Words are found in binary data by
    chance (found from outside: "dÖÀ" in a NIfTI image read as "DoeA", for a patient Doe^Archibald), and searching
    it for text costs seconds a megabyte."""
    sample = data[:1 << 16]
    if sample[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    if not sample or b"\0" in sample:
        return False
    return len(sample.translate(None, _TEXT_BYTES)) * 20 <= len(sample)


_TEXT_BYTES = bytes([9, 10, 12, 13, *range(0x20, 0x7F), *range(0x80, 0x100)])


def check_bytes(data: bytes, patterns: tuple[Needle, ...], where: str) -> list[Finding]:
    """Search bytes that are no DICOM file (a file `anonymize` copies as it is, an archive's own headers and
    comments) for the patterns, as bytes, as text and written encoded; a hit is found in `where`."""
    haystack = data.lower()
    hits, suspects = find_in_file(haystack, patterns)
    found = hits + [n for n in suspects if n.occurs(haystack)]
    found += [n for n in _find_in_text(data, patterns, False) if n not in found]
    return list(dict.fromkeys([Finding(n.attribute, where) for n in found] + _in_encoded_forms(data, patterns, found)))


def check_path(relative: str, patterns: tuple[Needle, ...], own: tuple[Needle, ...] = ()) -> list[Finding]:
    """Search an output path (relative to the output root), as bytes and as folded text."""
    text = _without_our_uids(relative.encode("utf-8", "surrogateescape"), patterns, own)
    found = find(text, patterns, remember=False) + find_once(text, own)
    if not relative.isascii():
        found += [n for n in find_text(_path_text(relative), patterns) if n not in found]
    return [Finding(n.attribute, "output path") for n in found]


def _path_text(relative: str) -> str:
    """A path as text: each of its names whose bytes are not UTF-8 (held as surrogates) read as Latin-1, the
    likeliest other encoding of a file's name (found from outside: such a name made verify fail the file unread)."""
    def text(name: str) -> str:
        raw = name.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin_1")
    return "/".join(map(text, relative.split("/")))


def _find_in_text(data: bytes, patterns: tuple[Needle, ...], big: bool) -> list[Needle]:
    """The needles found in the file's bytes decoded as text (each character set the input declared, UTF-8, Latin-1),
    casefolded and ASCII-folded: a name written with other letters than in the input ("Mueller" for "Müller"); and
    in the bytes read past ISO 2022 escape sequences beside text (`escape_views`: "Qux ESC ( B worth" reads
    "Quxworth")."""
    found: list[Needle] = []
    for view in escape_views(data):
        found += [n for n in find(view, patterns, remember=False) if n not in found]
    if data.isascii():
        return found
    data = without_item_tags(data)
    known = _codecs(patterns)
    for codec in (*known, *_declared_in_file(data, known, big)):
        try:
            text = data.decode(codec, "replace")
        except LookupError:
            continue
        windows = _around_accented_letters(text, data if codec == "latin_1" else None)
        if windows:
            found += [n for n in find_text(windows, patterns) if n not in found]
    return found


def _codecs(patterns: tuple[Needle, ...]) -> tuple[str, ...]:
    """The codecs text is decoded with: UTF-8, Latin-1 (text in files that declare no character set is often
    Latin-1 or UTF-8 all the same) and each the needles' input declared, each once whatever its name ("UTF8" is
    UTF-8); once per tuple of needles (a series shares one: a walk over them cost about 25 us a file)."""
    known = _CODECS.get(id(patterns))
    if known is None or known[0] is not patterns:
        if len(_CODECS) >= 32:
            _CODECS.clear()
        chosen: dict[str, str] = {}
        for encoding in ("utf_8", "latin_1", *(e for n in patterns for e in n.declared)):
            chosen.setdefault(_codec_name(encoding), encoding)
        known = _CODECS[id(patterns)] = (patterns, tuple(chosen.values()))
    return known[1]


def _declared_in_file(data: bytes, known: tuple[str, ...], big: bool) -> list[str]:
    """The codecs of the Specific Character Sets the file's bytes hold beyond the `known` ones (`_codecs`): an item
    may declare its own, and a copy in it is written in that."""
    found: dict[str, str] = {}
    # `big`: the data set's byte order (the file meta's transfer syntax); a sequence read as UN is little endian in
    # any.
    for tag, little in ((_CHARSET_TAG_BIG, False), (_CHARSET_TAG, True)) if big else ((_CHARSET_TAG, True),):
        for match in tag.finditer(data):
            for term in _charset_terms(data, match.end(), little):
                codec = python_encoding.get(term)
                if codec:
                    found.setdefault(_codec_name(codec), codec)
    names = {_codec_name(codec) for codec in known}
    return [codec for name, codec in found.items() if name not in names]


# (0008,0005) in either byte order (a search for a literal: 6 us in 20 KB, where bytes.find takes 18: it tests
# every NUL of a binary value)
_CHARSET_TAG, _CHARSET_TAG_BIG = re.compile(rb"\x08\x00\x05\x00"), re.compile(rb"\x00\x08\x00\x05")


def _charset_terms(data: bytes, at: int, little: bool) -> list[str]:
    """The terms of a Specific Character Set value whose tag ends at `at`: explicit VR (either byte order) or
    implicit VR little endian; none for bytes that only look like its tag."""
    if data[at : at + 2] == b"CS":
        size = int.from_bytes(data[at + 2 : at + 4], "little" if little else "big")
        at += 4
    elif little and data[at + 2 : at + 4] == b"\x00\x00":
        size = int.from_bytes(data[at : at + 2], "little")
        at += 4
    else:
        return []
    return [t.strip(b" \x00").decode("ascii", "replace") for t in data[at : at + min(size, 256)].split(b"\\")]


@lru_cache(maxsize=64)
def _codec_name(encoding: str) -> str:
    """The codec's own name for an encoding ("UTF8" and "utf_8" are one codec); an unknown one as it is."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return encoding


_CODECS: dict[int, tuple[tuple[Needle, ...], tuple[str, ...]]] = {}


def without_item_tags(data: bytes) -> bytes:
    """`data` with each item, item delimiter and sequence delimiter tag (little or big endian) blanked to NULs: they
    are structure, never text (read as Latin-1 an item's tag is "þÿ": two accented letters in every sequence)."""
    for tags in _ITEM_TAGS:
        data = tags.sub(b"\x00\x00\x00\x00", data)
    return data


# Item (FFFE,E000), item delimiter (FFFE,E00D) and sequence delimiter (FFFE,E0DD) tags, big endian, then little
# endian: each expression begins with a literal, which the search skips to (one expression of all six tests every
# byte). A tag of one order never overlaps one of the other, and blanking the big endian ones first makes no little
# endian one (which ends in E0).
_ITEM_TAGS = (re.compile(rb"\xff\xfe\xe0[\x00\x0d\xdd]"), re.compile(rb"\xfe\xff[\x00\x0d\xdd]\xe0"))


def _around_accented_letters(text: str, latin: bytes | None = None) -> str:
    """The parts of `text` around accented letters inside words (joined by newlines), or "" if none. `latin`: the
    bytes `text` was decoded from as Latin-1, if it was."""
    spans: list[list[int]] = []  # (one part's start and end, the part cut once: adding to it was quadratic)
    for at in _accented_in_words(text, latin):
        start, end = max(0, at - _CONTEXT), at + 1 + _CONTEXT
        if spans and start <= spans[-1][1]:
            spans[-1][1] = end
        else:
            spans.append([start, end])
    return "\n".join(text[start:end] for start, end in spans)


def _accented_in_words(text: str, latin: bytes | None = None) -> list[int]:
    """Where `text` has an accented letter next to a letter (`_ACCENTED_IN_WORD`); `latin`, see
    `_around_accented_letters`."""
    if latin is None:
        try:  # a replacement character (bytes that did not decode) is no letter: Latin-1 text is the common case
            latin = text.replace("\ufffd", "\x00").encode("latin_1")
        except UnicodeEncodeError:
            return [match.start() for match in _ACCENTED_IN_WORD.finditer(text)]
    classes = latin.translate(_CLASS_OF)
    return sorted(match.start() for first, pattern in _IN_WORD_CLASSES if first in classes
                  for match in pattern.finditer(classes))


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
    """A deflated dataset inflated after its file meta, so its values can be searched, and the bytes after the
    deflate stream: as they are, and inflated where they are another deflate stream (found from outside: text
    appended to a deflated file, or a second stream of it, was never searched)."""
    syntax, start = _file_meta_walked(data)
    if data[128:132] != b"DICM" or syntax != DEFLATED_SYNTAX:
        return data
    inflate = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        parts = [data[:start], inflate.decompress(data[start:])]
    except zlib.error:
        return data
    rest, budget = inflate.unused_data, _MORE_INFLATED_BYTES
    for _ in range(_MORE_STREAMS):
        if not rest.strip(b"\x00") or budget <= 0:
            break
        parts.append(rest)
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        try:  # (after the pad byte to an even length)
            parts.append(inflate.decompress(rest.lstrip(b"\x00"), budget))
        except zlib.error:
            break
        rest, budget = inflate.unused_data, budget - len(parts[-1])
    return b"".join(parts)


# Deflate streams after the data set's, each searched inflated too, up to so many bytes in all (found from outside:
# four of 512 MiB each, from a file of 400 KB, took `verify --against` a minute and 3.4 GB). No file anonymize
# writes has any; `verify` says of every file with bytes after its stream that they were not read.
_MORE_STREAMS = 4
_MORE_INFLATED_BYTES = 16 << 20


# --- what excuses a hit ------------------------------------------------------------------------------------------


@cache
def _vocabulary() -> tuple[dict[int, frozenset[str]], frozenset[str]]:
    """Defined terms by tag, maker and model names (all folded)."""
    text = resources.files("neuroanon").joinpath("data/vocabulary.json").read_text(encoding="utf-8")
    data = json.loads(text)
    terms = {int(key[1:5] + key[6:10], 16): frozenset(fold(t) for t in values)
             for key, values in data["defined_terms"].items()}
    return terms, maker_names()


@cache
def _standard_codes() -> dict[tuple[str, str], frozenset[str]]:
    """The meanings of the standard's codes (PS3.16), as pydicom ships them, by scheme and code value (folded); a
    SNOMED code also by its SNOMED RT value (SRT), which older files write."""
    from pydicom.sr._concepts_dict import concepts
    from pydicom.sr._snomed_dict import mapping

    meanings: dict[tuple[str, str], set[str]] = {}
    for scheme, by_keyword in concepts.items():
        for codes in by_keyword.values():
            for value, (meaning, _) in codes.items():  # type: ignore[attr-defined]
                meanings.setdefault((scheme, value), set()).add(fold(meaning))
    for rt_value, ct_value in mapping["SRT"].items():
        if ("SCT", ct_value) in meanings:
            meanings.setdefault(("SRT", rt_value), set()).update(meanings["SCT", ct_value])
    return {code: frozenset(found) for code, found in meanings.items()}


def _excused(element: _Element, needle: Needle) -> bool:
    """Whether every value item of `element` that holds `needle` (in its bytes or its decoded text) is a defined term
    or a known maker or model, and one does."""
    if element.text is None:
        return False
    if element.tag == DEIDENTIFICATION_METHOD:  # our own mark names the level and the version, nothing else
        return all(_OUR_METHOD.match(fold(item.strip(" \x00"))) for item in element.text.split("\\"))
    if element.tag == IMPLEMENTATION_VERSION_NAME:  # a toolkit's name, the hit in it ("SIEMENS" for a "Siemens")
        return not beyond_toolkit_name(element.text, needle)
    if element.tag == CODE_MEANING:  # a standard code's meaning, where the item holds that code
        allowed = _standard_codes().get(element.code, frozenset())
    elif element.tag in MAKER_TAGS:
        allowed = _vocabulary()[1]
    else:
        allowed = _vocabulary()[0].get(element.tag, frozenset())
    items, raw_items = element.text.split("\\"), element.raw.split(b"\\")
    if not allowed or len(items) != len(raw_items):  # (a multi-byte character's byte read as the delimiter)
        return False
    held = False
    for item, raw in zip(items, raw_items, strict=True):
        # in the item's bytes too: written in another encoding than the declared one, the needle does not show in
        # the decoded text (found from outside: a name in UTF-8 under Latin-1 in Manufacturer was excused)
        if (needle.occurs(raw.lower()) or needle.occurs(item.encode("utf-8", "ignore").lower())
                or find_text(item, (needle,))):
            if fold(item.strip(" \x00")) not in allowed:
                return False
            held = True
    return held  # (a hit no item shows on its own is not excused)


# --- the written file's elements ---------------------------------------------------------------------------------


def _elements(path: Path) -> list[_Element]:
    """Every element of the written file but pixel data, with the file meta and the preamble."""
    try:
        with quiet():
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            found = list(_walk(ds, ""))
            meta = getattr(ds, "file_meta", None)
            if meta is not None:
                found += [_Element("file meta " + e.where, e.tag, e.raw, e.text) for e in _walk(meta, "")]
    except Exception:  # unreadable: every hit stays unattributed, and so counts
        return []
    found.append(_Element("preamble", 0, getattr(ds, "preamble", None) or b"", None, vr="OB"))
    return found


def _walk(ds: Dataset, path: str) -> Iterator[_Element]:
    for tag in list(ds.keys()):
        t = int(tag)
        where = path + tag_text(t)
        raw: DataElement | RawDataElement | None = ds.get_item(tag)
        vr = (raw.VR if raw is not None else None) or dictionary_vr(t)
        if vr == "SQ":
            for i, item in enumerate(ds[tag].value or []):
                yield from _walk(item, f"{where}[{i}].")
            continue
        value = raw.value if raw is not None else None
        if isinstance(raw, RawDataElement) or isinstance(value, bytes):
            data = value if isinstance(value, bytes) else b""
        else:
            data = str(value if value is not None else "").encode("utf-8", "ignore")
        text = _text(ds, tag) if vr in TEXT_VRS else None
        yield _Element(where, t, data, text, _code_of(ds) if t == CODE_MEANING else ("", ""), vr)


def _code_of(item: Dataset) -> tuple[str, str]:
    """The coding scheme and the code value (short, long or URN) an item of a code sequence holds."""
    found = []
    for tag in (CODING_SCHEME_DESIGNATOR, CODE_VALUE, LONG_CODE_VALUE, URN_CODE_VALUE):
        text = _text(item, BaseTag(tag)) if tag in item else None
        found.append((text or "").strip(" \x00"))
    return found[0], next((v for v in found[1:] if v), "")


def _text(ds: Dataset, tag: BaseTag) -> str | None:
    """The element's value decoded with the character set in force (multiple values joined by a backslash)."""
    try:
        value = ds[tag].value
    except Exception:
        return None
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin_1")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


