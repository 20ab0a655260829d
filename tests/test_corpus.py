"""Every file of the real test-data packages, at anonymize and full: anonymized correctly or failed with a reason.

A written output must keep pixel data bytes and transfer syntax, read back with pydicom, and parse with dcmtk's
dcmdump whenever dcmdump parses the input.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_is_retired, dictionary_VR
from pydicom.dataset import Dataset

from neuroanon.allowlist import find_safe
from neuroanon.burnedin import burned_in_risk
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file
from neuroanon.ps315 import load_table
from neuroanon.report import Status
from neuroanon.rules import NIDB_ANONYMIZE, NIDB_FULL, TEXT_VRS
from neuroanon.technical import is_standard_uid, technical

from .corpus import corpus_files
from .tools import require_tool

KEY = b"corpus-test-key-0123456789abcdef"
FIVE_PATTERNS = [struct.pack(f"{e}HH", t >> 16, t & 0xFFFF) for t in NIDB_ANONYMIZE for e in "<>"]
FILES = corpus_files()


def _read(path: Path) -> Dataset:
    return pydicom.dcmread(path, force=True)


def _dcmdump_ok(path: Path) -> bool:
    done = subprocess.run([require_tool("dcmdump"), "-q", "+E", str(path)], capture_output=True, timeout=60)
    return done.returncode == 0


def test_corpus_is_large_and_varied() -> None:
    assert len(FILES) > 150
    assert {p.suffix for p in FILES} >= {".dcm"}


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL], ids=str)
@pytest.mark.parametrize("source", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_file_is_anonymized_or_reported(source: Path, level: Level, tmp_path: Path) -> None:
    before = source.read_bytes()
    quarantine = tmp_path / "quarantine"
    out_dir = tmp_path / "out"
    record = anonymize_file(source, out_dir, Options(level=level, key=KEY, quarantine=quarantine))
    assert source.read_bytes() == before, "the input was modified"
    if record.status is Status.QUARANTINED:
        # fail closed: held back with a reason, never released, but anonymized all the same
        assert level is Level.FULL and record.reason and record.output is not None
        assert not [p for p in out_dir.rglob("*") if p.is_file()], "a quarantined file was released"
        if "residual" in record.reason:
            assert record.findings, "a residual hit names the attribute and the place"
        out = quarantine / record.output
    elif record.status is not Status.WRITTEN:
        assert record.status in (Status.FAILED, Status.SKIPPED)
        assert record.reason, "a file not written must say why"
        assert not [p for p in tmp_path.rglob("*") if p.is_file()], "nothing is written for a file not released"
        return
    else:
        assert record.output is not None
        out = out_dir / record.output
    if not record.dicom:
        assert level is Level.ANONYMIZE and out.read_bytes() == before, "non-DICOM is mirrored unchanged"
        return
    original, result = _read(source), _read(out)
    in_ts = getattr(original, "file_meta", Dataset()).get("TransferSyntaxUID")
    assert getattr(result, "file_meta", Dataset()).get("TransferSyntaxUID") == in_ts
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag in original:
            assert result[tag].value == original[tag].value, "pixel data bytes changed"
    if _dcmdump_ok(source):
        assert _dcmdump_ok(out), "dcmdump reads the input but not the output"
    if level is Level.ANONYMIZE:
        _check_anonymize(original, result)
    else:
        _check_full(original, result)


def _all_elements(ds: Dataset) -> list[pydicom.DataElement]:
    """Every element at any depth, with `private_creator` set for private ones."""
    found = []
    for elem in ds:
        if elem.tag.is_private and elem.tag.element >= 0x1000:
            elem = ds.get_private_item(elem.tag.group, elem.tag.element & 0xFF, _creator(ds, elem.tag))
        found.append(elem)
        if elem.VR == "SQ":
            for item in elem.value:
                found += _all_elements(item)
    return found


def _creator(ds: Dataset, tag: pydicom.tag.BaseTag) -> str:
    creator = ds.get((tag.group, tag.element >> 8))
    return str(creator.value) if creator is not None else ""


def _check_anonymize(original: Dataset, result: Dataset) -> None:
    for elem in original:
        tag = int(elem.tag)
        if tag in NIDB_ANONYMIZE:
            if not elem.is_empty:
                assert str(result[tag].value) == NIDB_ANONYMIZE[tag]
        elif elem.VR != "SQ" and tag & 0xFFFF != 0 and tag not in (0x00120063,):
            if elem.VR == "UN" and any(p in elem.value for p in FIVE_PATTERNS):
                continue  # an unknown sequence holding one of the five: it must change (checked below)
            assert tag in result and result[tag].value == elem.value, f"{elem.tag} changed"
    for elem in result.iterall():
        if int(elem.tag) in NIDB_ANONYMIZE and not elem.is_empty:
            assert str(elem.value) == NIDB_ANONYMIZE[int(elem.tag)], f"{elem.tag} kept its value"
    assert "NiDB Anonymize" in str(result.DeidentificationMethod)
    assert result.get("PatientIdentityRemoved") == original.get("PatientIdentityRemoved"), "not claimed at anonymize"


def _check_full(original: Dataset, result: Dataset) -> None:
    assert result.PatientIdentityRemoved == ("NO" if burned_in_risk(original) else "YES")
    for tag in NIDB_FULL:
        if tag in original and not original[tag].is_empty and tag in result:
            assert result[tag].value != original[tag].value or str(result[tag].value) in ("", "Anon", "10000101")
    kept_private = [
        (int(elem.tag), str(elem.private_creator or ""))
        for elem in _all_elements(result)
        if elem.tag.is_private and elem.tag.element >= 0x1000
    ]
    for tag, creator in kept_private:
        assert find_safe(creator, tag >> 16, tag & 0xFF), f"private ({tag >> 16:04X},{tag & 0xFFFF:04X}) kept"
    assert not any(int(e.tag) >> 24 in (0x50, 0x60) and not (e.tag.group % 2) for e in _all_elements(result))
    _check_unlisted(original, result)
    if "SOPInstanceUID" in original and original.SOPInstanceUID:
        assert result.SOPInstanceUID.startswith("2.25.")
        assert result.SOPInstanceUID != original.SOPInstanceUID
    if "PatientID" in original:
        assert result.PatientID != original.PatientID or original.PatientID == ""


MARKS = frozenset({0x00120062, 0x00120063, 0x00120064, 0x00280303})


def _check_unlisted(original: Dataset, result: Dataset) -> None:
    """Safe by default: outside Table E.1-1 no text survives but the technical allow-list's, no retired or
    command-group element survives, every UID is remapped or a well-known standard UID, and SOP classes are kept."""
    table = load_table()
    for elem in _all_elements(result):
        tag = int(elem.tag)
        if elem.tag.is_private or tag in MARKS or table.lookup(tag) is not None or tag >> 16 == 2:
            continue
        where = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        assert tag >> 16 != 0 and not dictionary_is_retired(tag), f"{where} retired or command group kept"
        listed = technical(tag)
        vr = str(dictionary_VR(tag))
        if vr in TEXT_VRS and not elem.is_empty:
            assert listed is not None, f"{where} text outside the table kept"
            assert listed.action != "D" or str(elem.value) == "Anon", f"{where} not a dummy"
        if vr == "UI" and listed is None and not elem.is_empty:
            values = elem.value if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]
            assert all(str(v).startswith("2.25.") or is_standard_uid(str(v)) for v in values), f"{where} kept"
    if "SOPClassUID" in original:
        assert result.SOPClassUID == original.SOPClassUID
