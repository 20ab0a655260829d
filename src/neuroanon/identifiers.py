"""The identifying values of a dataset, as byte patterns to search for or cut out.

Taken from the original (input) dataset: names and their parts, IDs, dates in DICOM and common human formats,
addresses, institution, station, accession and device numbers. Used by the level (to clean allow-listed private
elements) and by the residual check (to prove an output holds none of them).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import PersonName

# Top-level attributes whose values identify a person, a visit or a place.
IDENTIFYING = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers", "IssuerOfPatientID", "MilitaryRank",
    "AccessionNumber", "AdmissionID", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "StationName", "DeviceSerialNumber", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "RequestingPhysician", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
)
MIN_TEXT = 4  # shorter name parts and IDs would match by chance
MIN_DIGITS = 6  # shorter numbers occur everywhere in a header
# Text neuroanon itself writes; a value inside one of these (an input already called "Anon") is no finding.
OUR_TEXT = ("anon", "10000101", "000000.000000", "10000101000000.000000", "nidb anonymize full", "neuroanon",
            "basic application confidentiality profile", "removed", "modified", "dcm")
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_IDENTIFYING_TAGS = tuple((keyword, int(tag_for_keyword(keyword) or 0)) for keyword in IDENTIFYING)
_TAGS = tuple(tag for _, tag in _IDENTIFYING_TAGS)
CHARSET = 0x00080005
_PLAIN = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")  # printable ASCII without a value delimiter


@dataclass(frozen=True)
class Needle:
    """One identifying value, lower-cased bytes, and the attribute it came from.

    A match must stand as a word: a name not inside a longer word ("Name" is no hit in "PixelFileName", a CSA
    field), a number not inside a longer number, though a date may run on into a time (as in scanners' UIDs).
    """

    attribute: str
    data: bytes

    @property
    def numeric(self) -> bool:
        return self.data.isdigit()

    @cached_property
    def pattern(self) -> re.Pattern[bytes]:
        if self.numeric:
            return re.compile(rb"(?<![0-9])" + re.escape(self.data))
        return re.compile(rb"(?<![a-z])" + re.escape(self.data) + rb"(?![a-z])")


def needles(ds: Dataset) -> tuple[Needle, ...]:
    """The byte patterns of `ds`'s identifying values (longest first, no duplicates)."""
    key: list[tuple[str | None, bytes | None, bool, bool] | None] = []
    for tag in (*_TAGS, CHARSET):
        raw = ds.get_item(tag) if tag in ds else None
        if raw is not None and not isinstance(raw, RawDataElement):
            return _needles(ds)
        key.append(None if raw is None else (raw.VR, raw.value, raw.is_implicit_VR, raw.is_little_endian))
    # Files of one series share these values: undecoded, they are a cache key.
    return _needles_of_raw(tuple(key))


@lru_cache(maxsize=512)
def _needles_of_raw(raws: tuple[tuple[str | None, bytes | None, bool, bool] | None, ...]) -> tuple[Needle, ...]:
    ds = Dataset({BaseTag(tag): RawDataElement(BaseTag(tag), raw[0], len(raw[1] or b""), raw[1], 0, raw[2], raw[3])
                  for tag, raw in zip((*_TAGS, CHARSET), raws, strict=True) if raw is not None})
    return _needles(ds)


def _needles(ds: Dataset) -> tuple[Needle, ...]:
    found: dict[bytes, str] = {}
    for keyword, tag in _IDENTIFYING_TAGS:
        if tag not in ds:
            continue
        for value in _values(ds, tag):
            for text in _forms(keyword, value):
                data = text.strip().lower().encode("utf-8", "ignore")
                if _worth_searching(data):
                    found.setdefault(data, keyword)
    ordered = sorted(found.items(), key=lambda item: len(item[0]), reverse=True)
    return tuple(Needle(attribute, data) for data, attribute in ordered)


def _values(ds: Dataset, tag: int) -> list[object]:
    """The element's values as pydicom decodes them; a plain one-value ASCII text is taken without decoding."""
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) and _PLAIN.fullmatch(raw.value):
        text = raw.value.decode("ascii").rstrip(" ")
        vr = dictionary_VR(tag) if raw.VR in (None, "UN") else raw.VR
        return [PersonName(text) if vr == "PN" else text]
    value = ds[tag].value
    if value is None:
        return []
    return list(value) if isinstance(value, (list, MultiValue)) else [value]


def _forms(keyword: str, value: object) -> list[str]:
    text = str(value)
    forms = [text]
    if isinstance(value, PersonName) or keyword.endswith("Name") or "Physician" in keyword:
        forms += [part for part in re.split(r"[\^=, ]+", text) if part]
    match = _DATE.match(text)
    if match:
        y, m, d = match.groups()
        try:
            dt.date(int(y), int(m), int(d))
        except ValueError:
            return forms
        forms += [f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{y}.{m}.{d}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{d}/{m}/{y}",
                  f"{d}-{m}-{y}"]
    return forms


@lru_cache(maxsize=4096)
def _worth_searching(data: bytes) -> bool:
    if data.isdigit():
        return len(data) >= MIN_DIGITS
    if len(data) < MIN_TEXT:
        return False
    text = data.decode("utf-8", "ignore")
    return not any(text in ours for ours in OUR_TEXT)


def find(data: bytes, patterns: tuple[Needle, ...]) -> list[Needle]:
    """The needles that occur in `data` as words (case-insensitive for ASCII letters)."""
    haystack = data.lower()
    return [n for n in patterns if n.data in haystack and n.pattern.search(haystack)]


def count(data: bytes, needle: Needle) -> int:
    """How often `needle` occurs in `data` as a word."""
    return len(needle.pattern.findall(data.lower())) if needle.data in data.lower() else 0


def scrub(data: bytes, patterns: tuple[Needle, ...]) -> bytes:
    """`data` with every needle overwritten in place (same length: binary structures stay valid)."""
    lowered = data.lower()
    buffer = bytearray(data)
    for needle in patterns:
        if needle.data not in lowered:
            continue
        filler = b"0" if needle.numeric else b"X"
        for match in needle.pattern.finditer(lowered):
            buffer[match.start() : match.end()] = filler * len(needle.data)
    return bytes(buffer)
