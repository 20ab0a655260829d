"""GE's Protocol Data Block ((0025,xx1B), creator "GEMS_SERS_01"): rebuilt from the keys dcm2niix reads.

The block is a 4-byte length (in the file's byte order) followed by a gzip stream of protocol text, one
`KEY "value"` a line: about 130 keys, among them the series description (SEDESC), a UID (PDGMUID) and free text;
the gzip header may also name a file. dcm2niix takes GE's slice timing from it (console/nii_dicom_batch.cpp,
`geProtocolBlock`): without the block, GE fMRI has no SliceTiming.

At `full` the block is kept only as a new one: a new gzip stream (no file name, no time stamp) of the lines of
`KEYS` whose value has its key's shape and holds none of this file's identifying values, in their order. Any
other line goes. A block that does not unpack as one (no length, no gzip stream, text over `_MOST_TEXT`) goes
whole. The residual check unpacks gzip streams, so what is kept is searched again like any value.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Final

from .identifiers import Needle, find

# The keys dcm2niix reads, and the shape each value must have: numbers, or a short code of the scanner software.
# (Possessive: a number list tried one way only. `(?:[0-9]{1,8}[ ,;]{0,2}){0,512}` split a run of digits every
# way before it failed: a quarter of a second for 22 digits, found from outside.)
_INTEGER: Final = rb"-?[0-9]{1,6}+"
_NUMBER: Final = rb"-?[0-9]{1,8}+(?:\.[0-9]{1,6}+)?+"
_CODE: Final = rb"[A-Za-z0-9 _.,+/()-]{0,128}"
KEYS: Final[dict[bytes, re.Pattern[bytes]]] = {
    key: re.compile(shape) for key, shape in (
        (b"PSEQ", _CODE),  # pulse sequence ("Gradient Echo"), appended to ProcedureStepDescription
        (b"IOPT", _CODE),  # imaging options ("EPI, FMRI", "MPh"): multiphase group delay
        (b"SLICEORDER", _INTEGER),  # 0 sequential, 1 interleaved: SliceTiming
        (b"VIEWORDER", _INTEGER),  # bottom-up or top-down: SliceTiming
        (b"MBACCEL", _INTEGER),  # multiband factor: SliceTiming
        (b"NOSLC", _INTEGER),  # slices: SliceTiming
        (b"DELACQ", rb"Minimum|Maximum|" + _NUMBER),  # delay after acquisition: the group delay
        (b"DELACQNOAV", _NUMBER),  # the group delay
        (b"PHASEDELAYS1", rb"(?:" + _NUMBER + rb"(?:[ ,;]{1,2}+" + _NUMBER + rb"){0,511}+[ ,;]{0,2}+)?+"),  # delays
    )
}
_LINE: Final = re.compile(rb'^([A-Z0-9_]+) "([^"\r\n]*)"\r?$', re.MULTILINE)
_GZIP: Final = b"\x1f\x8b\x08"
_MOST_TEXT: Final = 1 << 20  # real blocks unpack to about 2 KB


def clean(value: bytes, patterns: tuple[Needle, ...]) -> bytes | None:
    """The block rebuilt from its listed lines (see the module), or None when it does not unpack as one."""
    unpacked = _unpack(value)
    if unpacked is None:
        return None
    order, text = unpacked
    kept = [line.group(0).rstrip(b"\r") for line in _LINE.finditer(text) if _listed(line, patterns)]
    # dcm2niix finds SLICEORDER only after a line break: the text begins with one
    stream = _gzip(b"".join(b"\n" + line for line in kept) + b"\n")
    block = struct.pack(order + "I", len(stream)) + stream
    return block + b"\x00" * (len(block) % 2)


def listed_only(value: bytes) -> bool:
    """Whether `value` is a block as `clean` writes it: a plain gzip stream (no name, comment, extra field or time
    stamp: a time of the visit) of listed lines of their shapes."""
    unpacked = _unpack(value)
    if unpacked is None or value[7:12] != b"\x00" * 5:  # (the gzip header's flags and time)
        return False
    lines = unpacked[1].split(b"\n")
    return all(not line or ((m := _LINE.fullmatch(line)) is not None and _listed(m, ())) for line in lines)


def _listed(line: re.Match[bytes], patterns: tuple[Needle, ...]) -> bool:
    shape = KEYS.get(line.group(1))
    value = line.group(2)
    return shape is not None and shape.fullmatch(value) is not None and not (patterns and find(value, patterns))


def _unpack(value: bytes) -> tuple[str, bytes] | None:
    """(the length's byte order, the text) of a block, or None: the length must be that of a gzip stream that
    follows it (with its padding, or not) and unpacks whole within `_MOST_TEXT`."""
    if len(value) < 4 + 18 or value[4:7] != _GZIP:
        return None
    for order in "<>":
        (length,) = struct.unpack(order + "I", value[:4])
        if 18 <= length <= len(value) - 4 and not value[4 + length:].strip(b"\x00"):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                text = inflater.decompress(value[4:4 + length], _MOST_TEXT)
            except zlib.error:
                return None
            whole = inflater.eof and not inflater.unconsumed_tail and not inflater.unused_data.strip(b"\x00")
            return (order, text) if whole else None
    return None


def _gzip(text: bytes) -> bytes:
    """A gzip stream of `text` with no name, comment or time stamp: the same bytes for the same text."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(text) + deflater.flush()
    header = _GZIP + b"\x00" + b"\x00\x00\x00\x00" + b"\x02\xff"  # flags, time, best compression, unknown OS
    return header + body + struct.pack("<2I", zlib.crc32(text), len(text) & 0xFFFFFFFF)
