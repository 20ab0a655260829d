"""Keyed pseudonyms and UIDs: deterministic under a key, different under another, consistent across studies."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from neuroanon.keys import Keyring
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.sample import make_study, planted_values

from .helpers import files_under, valid_uid

KEY_A = b"determinism-key-A-0123456789abcd"
KEY_B = b"determinism-key-B-0123456789abcd"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("det")
    make_study(root / "a", subject=3, study=0, n_series=2, n_instances=3)
    make_study(root / "b", subject=3, study=1, n_series=1, n_instances=3, encoding="implicit_le")
    make_study(root / "c", subject=4, study=0, n_series=1, n_instances=2)
    return root


def _full(tree: Path, out: Path, key: bytes, **extra: object) -> dict[str, bytes]:
    anonymize_tree([tree], out, Options(level=Level.FULL, key=key, **extra))  # type: ignore[arg-type]
    return {str(p.relative_to(out)): p.read_bytes() for p in files_under(out)}


def test_same_key_gives_identical_bytes_and_paths(tree: Path, tmp_path: Path) -> None:
    first = _full(tree, tmp_path / "one", KEY_A)
    second = _full(tree, tmp_path / "two", KEY_A)
    assert first == second and len(first) == 11


def test_other_key_gives_other_pseudonyms_and_uids(tree: Path, tmp_path: Path) -> None:
    _full(tree, tmp_path / "a", KEY_A)
    _full(tree, tmp_path / "b", KEY_B)
    a = [pydicom.dcmread(p) for p in files_under(tmp_path / "a")]
    b = [pydicom.dcmread(p) for p in files_under(tmp_path / "b")]
    assert len(a) == len(b) == 11
    assert {d.PatientID for d in a}.isdisjoint({d.PatientID for d in b})
    assert {d.SOPInstanceUID for d in a}.isdisjoint({d.SOPInstanceUID for d in b})
    assert {d.StudyInstanceUID for d in a}.isdisjoint({d.StudyInstanceUID for d in b})


def test_one_subject_two_studies_share_a_pseudonym(tree: Path, tmp_path: Path) -> None:
    outputs = _full(tree, tmp_path / "out", KEY_A)
    subjects: dict[str, set[str]] = {}
    for relative in outputs:
        subject, study, _, _ = relative.split("/")
        subjects.setdefault(subject, set()).add(study)
    assert sorted(len(studies) for studies in subjects.values()) == [1, 2]
    expected = Keyring(KEY_A).pseudonym(planted_values(3)["PatientID"])
    assert len(subjects[expected]) == 2


def test_uids_are_valid_and_references_still_point_to_the_right_instances(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _full(tree, out, KEY_A)
    keyring = Keyring(KEY_A)
    originals = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in files_under(tree)}
    results = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in files_under(out))}
    assert set(results) == {keyring.uid(uid) for uid in originals}
    references = 0
    for ds in results.values():
        for elem in ds.iterall():
            if elem.VR == "UI" and elem.value:
                for value in elem.value if elem.VM > 1 else [elem.value]:
                    assert valid_uid(str(value)), f"invalid UID in {elem.tag}"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        for item in ds.get("ReferencedImageSequence", []):
            references += 1
            target = results[item.ReferencedSOPInstanceUID]
            assert target.SeriesInstanceUID == ds.SeriesInstanceUID
            assert target.FrameOfReferenceUID == ds.FrameOfReferenceUID
    assert references >= 8
    # each original reference maps onto the remapped one
    for uid, original in originals.items():
        for item in original.get("ReferencedImageSequence", []):
            mapped = results[keyring.uid(uid)].ReferencedImageSequence[0].ReferencedSOPInstanceUID
            assert mapped == keyring.uid(item.ReferencedSOPInstanceUID)


def test_lookup_table_names_the_subject(tree: Path, tmp_path: Path) -> None:
    lookup = {planted_values(3)["PatientID"]: "SUBJ-001"}
    outputs = _full(tree, tmp_path / "out", KEY_A, lookup=lookup)
    subjects = {relative.split("/")[0] for relative in outputs}
    assert "SUBJ-001" in subjects and len(subjects) == 2
    ds = pydicom.dcmread(next((tmp_path / "out" / "SUBJ-001").rglob("*.dcm")))
    assert ds.PatientID == "SUBJ-001" and str(ds.PatientName) == "SUBJ-001"


def test_shifted_dates_keep_intervals_within_a_subject(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _full(tree, out, KEY_A, shift_dates=True)
    import datetime as dt

    def day(text: str) -> dt.date:
        return dt.datetime.strptime(text, "%Y%m%d").date()

    originals = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in files_under(tree)}
    keyring = Keyring(KEY_A)
    offsets: dict[str, set[int]] = {}
    for uid, original in originals.items():
        result = pydicom.dcmread(next(out.rglob(keyring.uid(uid) + ".dcm")))
        shift = (day(result.StudyDate) - day(original.StudyDate)).days
        assert shift < 0 and shift == (day(result.SeriesDate) - day(original.SeriesDate)).days
        assert result.StudyTime == original.StudyTime
        assert result.PatientBirthDate == "10000101"
        assert result.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in {item.CodeValue for item in result.DeidentificationMethodCodeSequence}
        offsets.setdefault(original.PatientID, set()).add(shift)
    assert all(len(shifts) == 1 for shifts in offsets.values()), "one offset per subject"
    assert len({next(iter(s)) for s in offsets.values()}) == 2, "subjects get different offsets"
