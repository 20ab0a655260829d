"""Specific character sets: pydicom's chr*.dcm files (Japanese, Korean, Chinese, Cyrillic, Greek, Hebrew, Arabic,
Latin-1, UTF-8, GB18030, ISO 2022 with code extensions, per-item character sets in sequences).

At anonymize and full, for each file: every PatientName (at any depth) is "Anon" (anonymize) or a keyed pseudonym
(full); the original name's raw encoded bytes — the whole value and each name component — occur nowhere in the
output; the output's text values (PN, LO, SH, LT, ST, UT, UC) decode strictly with the character set in force
where they stand; SpecificCharacterSet is kept unchanged at every level of the dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom import charset, config
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

from neuroanon.options import Level, Options
from neuroanon.report import Status
from neuroanon.rules import NIDB_ANONYMIZE

from .helpers import searchable_bytes

KEY = b"charset-test-key-0123456789abcde"
FILES = sorted(Path(p) for p in get_charset_files("chr*.dcm"))
PATIENT_NAME = 0x00100010
SPECIFIC_CHARACTER_SET = 0x00080005
TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})
PSEUDONYM = re.compile(r"^NA[A-Z2-7]{16}$")
MIN_COMPONENT = 4  # bytes: shorter name components are too likely to occur by chance elsewhere
ESCAPE = re.compile(rb"\x1b[\x20-\x2f]*[\x30-\x7e]")


@dataclass(frozen=True)
class Raw:
    """One element's undecoded value, with where it stands and the character set in force there."""

    path: str
    tag: int
    vr: str
    value: bytes
    charset: tuple[str, ...]


def walk_raw(ds: Dataset, parent: tuple[str, ...] = (), where: str = "") -> Iterator[Raw]:
    """Every element's raw value (sequence items' own SpecificCharacterSet taking over where present)."""
    own = ds.get_item(SPECIFIC_CHARACTER_SET)
    encodings = parent
    if own is not None and own.value is not None:
        value = own.value
        text = value.decode("ascii") if isinstance(value, bytes) else value
        terms = text.split("\\") if isinstance(text, str) else list(text)
        encodings = tuple(t.strip() for t in terms)
    for tag in ds.keys():
        raw = ds.get_item(tag)
        vr = raw.VR or ds[tag].VR
        label = f"{where}({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})"
        if vr == "SQ":
            for n, item in enumerate(ds[tag].value):
                yield from walk_raw(item, encodings, f"{label}[{n}]")
            continue
        value = raw.value
        if isinstance(value, bytes):
            yield Raw(label, int(tag), vr, value, encodings)


def components(value: bytes) -> set[bytes]:
    """The name's component groups and components, with and without their ISO 2022 escape sequences."""
    parts = {value}
    for group in value.split(b"="):
        parts.add(group)
        parts.update(group.split(b"^"))
    parts |= {ESCAPE.sub(b"", p) for p in parts}
    return {p.strip(b" \0") for p in parts if len(p.strip(b" \0")) >= MIN_COMPONENT}


def strict_decode(raw: Raw) -> str:
    """The value decoded as pydicom does, but raising on a byte sequence the character set does not allow."""
    encodings = charset.convert_encodings(list(raw.charset) or ["ISO_IR 6"])
    before = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE
    try:
        if raw.vr == "PN":  # component groups (alphabetic, ideographic, phonetic) each start in the default set
            return "=".join(charset.decode_bytes(g, encodings, PN_DELIMS) for g in raw.value.split(b"="))
        return charset.decode_bytes(raw.value, encodings, TEXT_VR_DELIMS)
    finally:
        config.settings.reading_validation_mode = before


def _ids(path: Path) -> str:
    return path.name


def test_the_charset_files_are_there() -> None:
    assert len(FILES) >= 15
    names = {p.name for p in FILES}
    assert {"chrJapMulti.dcm", "chrKoreanMulti.dcm", "chrRuss.dcm", "chrGreek.dcm", "chrHbrw.dcm", "chrArab.dcm",
            "chrX1.dcm", "chrX2.dcm", "chrSQEncoding.dcm"} <= names


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL], ids=str)
@pytest.mark.parametrize("source", FILES, ids=_ids)
def test_patient_name_replaced_and_output_decodes(source: Path, level: Level, tmp_path: Path) -> None:
    from neuroanon.pipeline import anonymize_file

    original = pydicom.dcmread(source, force=True)
    before = list(walk_raw(original))
    names = [r for r in before if r.tag == PATIENT_NAME and r.value.strip(b" \0")]
    assert names, f"{source.name}: no PatientName found"

    # These are secondary captures: --allow-burned-in, else full quarantines them (burned-in text risk).
    record = anonymize_file(source, tmp_path, Options(level=level, key=KEY, allow_burned_in=True))
    assert record.status is Status.WRITTEN, f"{source.name}: {record.status} ({record.reason})"
    assert record.output is not None
    out = tmp_path / record.output
    written = pydicom.dcmread(out)
    after = list(walk_raw(written))

    # PatientName: replaced wherever it stood.
    decoded_names = {r.path: strict_decode(r) for r in after if r.tag == PATIENT_NAME}
    assert set(decoded_names) >= {r.path for r in names}, f"{source.name}: a PatientName disappeared"
    for where, name in decoded_names.items():
        if level is Level.ANONYMIZE:
            assert name == "Anon", f"{source.name} {where}: PatientName is not the dummy"
        else:
            assert PSEUDONYM.match(name), f"{source.name} {where}: PatientName is not a pseudonym"

    # The original name's bytes are nowhere in the output. At anonymize the level keeps every attribute but the
    # five, so a component that the input also holds in a kept attribute (OtherPatientNames) may stay there.
    data = searchable_bytes(out)
    kept_elsewhere = b"\n".join(r.value for r in before if r.tag not in NIDB_ANONYMIZE)
    for raw in names:
        for part in components(raw.value):
            if level is Level.ANONYMIZE and part in kept_elsewhere:
                continue
            assert part not in data, f"{source.name}: bytes of the original PatientName at {raw.path} remain"

    # Every text value decodes strictly with the character set in force where it stands.
    written.decode()
    for raw in after:
        if raw.vr in TEXT_VRS:
            try:
                text = strict_decode(raw)
            except (UnicodeError, LookupError, ValueError) as exc:
                pytest.fail(f"{source.name} {raw.path} ({raw.vr}) does not decode: {type(exc).__name__}")
            assert "\ufffd" not in text, f"{source.name} {raw.path} ({raw.vr}) decodes with replacement characters"

    # SpecificCharacterSet is kept, at the top level and in every item that had its own.
    def charsets(raws: list[Raw]) -> dict[str, bytes]:
        return {r.path: r.value for r in raws if r.tag == SPECIFIC_CHARACTER_SET}

    old, new = charsets(before), charsets(after)
    assert set(old) <= set(new), f"{source.name}: SpecificCharacterSet removed at {sorted(set(old) - set(new))}"
    changed = [p for p in old if old[p].rstrip(b" ") != new[p].rstrip(b" ")]
    assert not changed, f"{source.name}: SpecificCharacterSet changed at {changed}"


def test_the_strict_decoder_rejects_bytes_the_character_set_does_not_allow() -> None:
    with pytest.raises(UnicodeError):
        strict_decode(Raw("x", 0x00100010, "PN", b"\xff\xfe\x80", ("ISO_IR 192",)))
