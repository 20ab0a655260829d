"""GE's Protocol Data Block ((0025,xx1B), creator "GEMS_SERS_01"): rebuilt from the keys dcm2niix reads.

The block is a 4-byte length (in the file's byte order) followed by a gzip stream of protocol text, one
`KEY "value"` a line: about 130 keys, among them the series description (SEDESC), a UID (PDGMUID) and free text;
the gzip header may also name a file. dcm2niix takes GE's slice timing from it (console/nii_dicom_batch.cpp,
`geProtocolBlock`): without the block, GE fMRI has no SliceTiming.

At `full` the block is kept only as a new one: a new gzip stream (no file name, no time stamp) of the lines of
`SHAPES` whose value has its key's shape and holds none of this file's identifying values, and the options of IOPT
that choose the slice timing; each key's first line only, in their order. Any other line goes. A block that does
not unpack as one (no length, no gzip stream, text over `_MOST_TEXT`) goes whole. The residual check unpacks gzip
streams: what is kept is searched again.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Final

from .identifiers import Needle, find

# The keys dcm2niix reads for slice timing and the shape each value must have: small numbers, or a word of a few.
# Not kept, though dcm2niix reads them: PSEQ (the pulse sequence's name, which it only appends to the
# ProcedureStepDescription the profile removes) and PHASEDELAYS1 (read, not used). Tested from outside: a name, a
# UID or an ID's digits rode in their free text and long number lists.
_SMALL: Final = rb"[0-9]"
_DELAY: Final = rb"-?[0-9]{1,2}(?:\.[0-9]{1,4})?"  # seconds (dcm2niix multiplies by 1000)
SHAPES: Final[dict[bytes, re.Pattern[bytes]]] = {
    key: re.compile(shape) for key, shape in (
        (b"SLICEORDER", _SMALL),  # 0 sequential, 1 interleaved
        (b"VIEWORDER", _SMALL),  # bottom-up or top-down
        (b"MBACCEL", rb"[0-9]{1,2}"),  # multiband factor
        (b"NOSLC", rb"[0-9]{1,4}"),  # slices
        (b"DELACQ", rb"Minimum|Maximum|" + _DELAY),  # delay after acquisition: the group delay of multiphase EPI
        (b"DELACQNOAV", _DELAY),  # the group delay
    )
}
# Imaging options: dcm2niix picks its slice timing by FMRI (epiRT), MPh and MPhVar (multiphase EPI: the group
# delay) and DIFF (diffusion) among them; only those are kept, each once ("EPI, FMRI" is written "FMRI"), and the
# line goes when none is there.
IMAGING_OPTIONS: Final = (b"FMRI", b"MPh", b"MPhVar", b"DIFF")
_LINE: Final = re.compile(rb'^([A-Z0-9_]+) "([^"\r\n]*)"\r?$', re.MULTILINE)
_GZIP: Final = b"\x1f\x8b\x08"
_MOST_TEXT: Final = 1 << 20  # real blocks unpack to about 2 KB


def clean(value: bytes, patterns: tuple[Needle, ...]) -> bytes | None:
    """The block rebuilt from its listed lines (see the module), or None when it does not unpack as one."""
    unpacked = _unpack(value)
    if unpacked is None:
        return None
    order, text = unpacked
    first: dict[bytes, bytes] = {}  # (dcm2niix reads a key's first line; more would be room for any bytes)
    for line in _LINE.finditer(text):
        first.setdefault(line.group(1), line.group(2))
    lines = ((key, _kept(key, value, patterns)) for key, value in first.items())
    # dcm2niix finds SLICEORDER only after a line break: the text begins with one
    stream = _gzip(b"".join(b'\n%s "%s"' % (key, value) for key, value in lines if value is not None) + b"\n")
    block = struct.pack(order + "I", len(stream)) + stream
    return block + b"\x00" * (len(block) % 2)


def listed_only(value: bytes) -> bool:
    """Whether `value` is a block as `clean` writes it: a plain gzip stream (no name, comment, extra field or time
    stamp: a time of the visit) of listed lines of their shapes."""
    unpacked = _unpack(value)
    if unpacked is None or value[7:12] != b"\x00" * 5:  # (the gzip header's flags and time)
        return False
    matches = [_LINE.fullmatch(line) for line in unpacked[1].split(b"\n") if line]
    keys = [m.group(1) for m in matches if m is not None]
    return len(set(keys)) == len(matches) and all(
        m is not None and _kept(m.group(1), m.group(2), ()) == m.group(2) for m in matches)


def _kept(key: bytes, value: bytes, patterns: tuple[Needle, ...]) -> bytes | None:
    """The value a listed line keeps (of its key's shape, none of the file's identifying values), else None."""
    if key == b"IOPT":
        options = dict.fromkeys(o for o in (o.strip(b" ") for o in value.split(b",")) if o in IMAGING_OPTIONS)
        return b", ".join(options) or None
    shape = SHAPES.get(key)
    if shape is None or shape.fullmatch(value) is None or (patterns and find(value, patterns)):
        return None
    return value


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
