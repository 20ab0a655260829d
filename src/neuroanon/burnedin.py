"""The burned-in annotation gate: images that may carry identifying text in their pixels.

Header de-identification cannot clean pixels. At full, such files are quarantined unless the user, having
checked them, passes --allow-burned-in; PatientIdentityRemoved is never YES for them. Files are gated by
Modality and by SOP Class (a class says what the pixels are even when Modality says otherwise, e.g. IVUS in an
ultrasound class), and by overlays embedded in the pixel data's unused bits, which removing the 60xx group
does not clear (clearing those bits is a pixel stage not implemented yet, so such a file is held).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from .identifiers import once_per_raw_values
from .tags import SOP_CLASS_UID, base_tag

# Modalities whose images usually carry burned-in text or a visible label: ultrasound (IVUS too), projection
# X-ray (XA, RF, CR, DX, MG, intra-oral IO, panoramic PX), other, external camera, endoscopy, microscopy
# (slide labels), ophthalmic photography, documents, secondary captures; an RT portal or simulator image and an
# intravascular OCT image (labels burned in: found from outside).
RISKY_MODALITIES = frozenset({"US", "IVUS", "XA", "RF", "CR", "DX", "MG", "IO", "PX", "OT", "XC", "ES", "GM", "SM",
                              "OP", "DOC", "SC", "RTIMAGE", "IVOCT"})

_STORAGE = "1.2.840.10008.5.1.4.1.1."
# SOP classes (and every class under them, e.g. all VL classes under 77.1) whose pixels may show text.
RISKY_CLASSES: Mapping[str, str] = MappingProxyType(
    {
        _STORAGE + "1": "computed or digital radiography (CR, DX, MG, IO)",
        _STORAGE + "3": "ultrasound multi-frame (retired class)",
        _STORAGE + "3.1": "ultrasound multi-frame",
        _STORAGE + "6": "ultrasound (US, enhanced US volume, photoacoustic; IVUS)",
        _STORAGE + "7": "secondary capture",
        _STORAGE + "12": "X-ray angiography or radiofluoroscopy",
        _STORAGE + "13.1": "3D X-ray, breast tomosynthesis or breast projection X-ray",
        _STORAGE + "14": "intravascular optical coherence tomography",
        _STORAGE + "481.1": "RT image (portal, simulator)",
        _STORAGE + "77.1": "visible light (endoscopy, microscopy, slide, photography, ophthalmic, video)",
        _STORAGE + "104": "encapsulated document (PDF, CDA, STL, ...)",
    }
)


_BIT_POSITIONS = tuple(0x60000102 | group << 16 for group in range(0, 0x20, 2))  # (60xx,0102), xx even, 00 to 1E


def _risky_class(sop_class: str) -> str | None:
    for prefix, what in RISKY_CLASSES.items():
        if sop_class == prefix or sop_class.startswith(prefix + "."):
            return what
    return None


def embedded_overlay(ds: Dataset) -> str | None:
    """Why an overlay may sit in the pixel data's unused high bits (the retired embedded form), or None."""
    for group, bit, why in _embedded(ds):
        return f"overlay group {group:04X} has {why}" if bit is None else f"overlay {group:04X} {why} (bit {bit})"
    return None


def embedded_bits(ds: Dataset) -> tuple[int | None, ...]:
    """The bit positions of the overlays `embedded_overlay` names (None: unreadable)."""
    return tuple(bit for _, bit, _ in _embedded(ds))


def _embedded(ds: Dataset) -> list[tuple[int, int | None, str]]:
    """Each overlay group whose overlay may lie in the pixel data: its group, bit position (None: unreadable), why."""
    # OverlayBitPosition of the even groups 6000-601E, each looked up (most files have none)
    keys = ds.keys()
    if keys.isdisjoint(_BIT_POSITIONS):
        return []
    stored, positions = _bit_positions(ds)
    found: list[tuple[int, int | None, str]] = []
    for group, bit in positions:
        if bit is None:
            found.append((group, bit, "an unreadable bit position"))
        elif stored is not None and bit not in stored:
            found.append((group, bit, "embedded in unused pixel bits"))
        elif (group << 16 | 0x3000) not in keys:
            found.append((group, bit, "embedded in the pixel data, without OverlayData"))
    return found


def overlay_clearing(ds: Dataset, syntax: str, native: bool = True) -> tuple[bytes, bytes] | str:
    """For a file in transfer syntax `syntax` whose header `ds` names an overlay embedded in its pixel data
    (`embedded_overlay`), and whose pixel data has a defined length (`native`): translation tables for the pixel
    data's even and odd bytes that clear every bit outside the stored ones, a signed value sign-extended from its
    high bit as decoders read it; the stored values stay. Else why the bits stay: it needs decoding (`--clean-pixels`
    decodes), or it would leave the overlay (`HOLD_ALWAYS`)."""
    bits = embedded_bits(ds)
    try:
        allocated, stored, high = int(ds.BitsAllocated), int(ds.BitsStored), int(ds.HighBit)
        signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    except (AttributeError, TypeError, ValueError):
        return "BitsAllocated, BitsStored or HighBit unreadable"
    low = high - stored + 1
    if None in bits:
        return "an overlay's bit position is unreadable (" + HOLD_ALWAYS + ")"
    if any(low <= bit <= high for bit in bits if bit is not None):
        return "the overlay lies in a bit the image stores, drawn into its values (" + HOLD_ALWAYS + ")"
    if syntax not in _NATIVE or not native:
        return "encapsulated pixel data, not decoded here; --clean-pixels clears those bits"
    if allocated != 16 or not 0 <= low <= high <= 15 or (signed and high < 8):
        return f"{allocated} bits allocated, {stored} stored, high bit {high}{', signed' if signed else ''}: not " \
               "cleared here; --clean-pixels clears those bits"
    tables = _kept_bits(range(8), low, high, signed), _kept_bits(range(8, 16), low, high, signed)
    return tables if syntax != ExplicitVRBigEndian else (tables[1], tables[0])  # (the high byte first)


HOLD_ALWAYS = "no cleaning removes it: held whatever the options"
_NATIVE = frozenset({ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                     ExplicitVRBigEndian})


def _kept_bits(bits: range, low: int, high: int, signed: bool) -> bytes:
    """A translation table for the byte of a 16-bit value that holds `bits`: the stored bits (`low` to `high`) kept,
    those above set to the sign bit when `signed` (which then lies in this byte, or this byte holds none above),
    the others cleared."""
    table = bytearray(256)
    for byte in range(256):
        out = 0
        for i, bit in enumerate(bits):
            if low <= bit <= high:
                out |= byte & (1 << i)
            elif bit > high and signed and byte >> (high - bits.start) & 1:
                out |= 1 << i
        table[byte] = out
    return bytes(table)


@once_per_raw_values((Tag("BitsStored"), Tag("HighBit"), *_BIT_POSITIONS))
def _bit_positions(ds: Dataset) -> tuple[range | None, tuple[tuple[int, int | None], ...]]:
    """The bits a pixel's value is stored in, HighBit - BitsStored + 1 to HighBit (None when BitsStored is absent or
    unreadable; an absent or unreadable HighBit taken as BitsStored - 1), and each overlay group's bit position
    (None: unreadable)."""
    try:
        bits_stored = int(ds.get("BitsStored", 0) or 0)
    except (TypeError, ValueError):
        bits_stored = 0
    try:
        high = int(ds.get("HighBit"))
    except (TypeError, ValueError):
        high = bits_stored - 1
    positions: list[tuple[int, int | None]] = []
    for tag in _BIT_POSITIONS:
        if tag not in ds:
            continue
        value = ds[tag].value
        try:
            bit: int | None = int(value if not isinstance(value, bytes) else value[0])
        except (TypeError, ValueError, IndexError):
            bit = None
        positions.append((tag >> 16, bit))
    return range(high - bits_stored + 1, high + 1) if bits_stored else None, tuple(positions)


def burned_in_risk(ds: Dataset) -> str | None:
    """Why `ds` may show identifying text in its pixels, or None."""
    return risk_beside_overlay(ds, embedded_overlay(ds))


def risk_beside_overlay(ds: Dataset, overlay: str | None) -> str | None:
    """`burned_in_risk(ds)` for a `ds` whose `embedded_overlay` is known already."""
    if overlay is not None:
        return overlay + "; its 60xx group is removed but the bits stay in the pixel data"
    return _risk_in_header(ds) or _class_in_meta(ds)


def _class_in_meta(ds: Dataset) -> str | None:
    """For a dataset without a SOPClassUID (or an empty one: found from outside), what its file meta's
    MediaStorageSOPClassUID says (the class of the file all the same), or None."""
    named = ds.get_item(base_tag(SOP_CLASS_UID))  # (by the one tag object, found by identity)
    if named is not None and _text(named.value):  # (the common case first)
        return None
    meta = getattr(ds, "file_meta", None)
    if meta is None or _burned_in(ds) == ["NO"]:
        return None
    what = _risky_class(str(meta.get("MediaStorageSOPClassUID", "") or "").strip())
    return None if what is None else f"SOP class of {what} (named in the file meta) without BurnedInAnnotation NO"


_RISK_KEYWORDS = ("SpecificCharacterSet", "BurnedInAnnotation", "Modality", "SOPClassUID", "ImageType",
                  "ConversionType", "RecognizableVisualFeatures")


@once_per_raw_values(tuple(Tag(k) for k in _RISK_KEYWORDS))
def _risk_in_header(ds: Dataset) -> str | None:
    """What the header says of burned-in text (the elements named in _RISK_KEYWORDS), or None."""
    burned = _burned_in(ds)
    if burned == ["YES"]:
        return "BurnedInAnnotation is YES"
    if (features := recognizable_features(ds)) is not None:
        return features
    if burned == ["NO"]:
        return None
    if burned:  # (NUL before YES, UTF-16, two values: found from outside, read as absent and released)
        return "BurnedInAnnotation is neither YES nor NO"
    for modality in _values_of(ds, "Modality"):  # (one value of several: OT\MR)
        if modality in RISKY_MODALITIES:
            return f"modality {modality} without BurnedInAnnotation NO"
    what = _risky_class(str(ds.get("SOPClassUID", "") or "").strip())
    if what is not None:
        return f"SOP class of {what} without BurnedInAnnotation NO"
    screen = {"SCREEN SAVE", "SCREENSAVE"} & set(_values_of(ds, "ImageType"))  # (both are written)
    if screen or str(ds.get("ConversionType", "")).upper() == "WSD":
        return "screen save without BurnedInAnnotation NO"
    return None


def recognizable_features(ds: Dataset) -> str | None:
    """Why the pixels show what identifies beside text (RecognizableVisualFeatures YES: a face), or None. No
    reading of text removes it."""
    if _values_of(ds, "RecognizableVisualFeatures") == ["YES"]:
        return "RecognizableVisualFeatures is YES (a face or another feature that identifies)"
    return None


def _burned_in(ds: Dataset) -> list[str]:
    """BurnedInAnnotation's values, upper case (none when absent or empty)."""
    return _values_of(ds, "BurnedInAnnotation")


def _values_of(ds: Dataset, keyword: str) -> list[str]:
    """An element's values as text, stripped and upper case; none when it is absent or empty."""
    value = ds.get(keyword)
    values = value if isinstance(value, (list, MultiValue)) else [value]
    return [text for v in values if (text := _text(v).upper())]


def _text(value: object) -> str:
    """A value as text without its padding (bytes read as ASCII)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value if value is not None else "").strip(" \x00")
