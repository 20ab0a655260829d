"""The `bids` preset: full with Clean Descriptors, Modified Dates and patient characteristics, ages capped at 90."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from neuroanon import engine
from neuroanon.apply import apply_level
from neuroanon.cli import main
from neuroanon.options import PRESETS, Level, Options
from neuroanon.read import quiet
from neuroanon.sample import make_dataset

KEY = "preset-test-key: 32 bytes or more of key material"


def _run(tmp: Path, age: str, *arguments: str) -> tuple[int, pydicom.Dataset | None]:
    ds = make_dataset(subject=7)
    ds.PatientAge = age
    source = tmp / "in" / "image.dcm"
    source.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(source, enforce_file_format=True)
    key = tmp / "key"
    key.write_text(KEY)
    out = tmp / "out"
    status = main(["anonymize", str(source.parent), "-o", str(out), "--key-file", str(key), "--workers", "1",
                   *arguments])
    written = [p for p in out.rglob("*.dcm")] if out.exists() else []
    return status, pydicom.dcmread(written[0]) if written else None


def test_preset_bids_is_full_with_its_options_recorded(tmp_path: Path) -> None:
    original = make_dataset(subject=7)
    status, ds = _run(tmp_path, "045Y", "--preset", "bids")
    assert status == 0 and ds is not None
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105", "113107", "113108", "113111"}, sorted(codes)
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.PatientAge == "045Y" and ds.PatientSex == original.PatientSex
    assert ds.StudyDate not in (original.StudyDate, "10000101"), "dates should be shifted, not kept or dummied"
    assert ds.StudyTime == original.StudyTime, "shifted dates keep the time of day"
    assert "SeriesDescription" in ds and ds.PatientName != original.PatientName


@pytest.mark.parametrize(("age", "expected"), [("089Y", "089Y"), ("090Y", "090Y"), ("093Y", "090Y"),
                                               ("104Y", "090Y"), ("999M", "999M"), ("012W", "012W"),
                                               ("93 years", "")])
def test_ages_of_90_and_over_capped(age: str, expected: str, tmp_path: Path) -> None:
    status, ds = _run(tmp_path, age, "--preset", "bids")
    assert status == 0 and ds is not None
    assert (ds.PatientAge or "") == expected


def test_without_the_cap_retained_ages_stay(tmp_path: Path) -> None:
    status, ds = _run(tmp_path, "093Y", "--level", "full", "--retain-patient-characteristics")
    assert status == 0 and ds is not None and ds.PatientAge == "093Y"


def test_preset_refuses_level_original(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, ds = _run(tmp_path, "045Y", "--preset", "bids", "--level", "original")
    assert status == 2 and ds is None
    assert "--preset bids" in capsys.readouterr().err


@pytest.mark.parametrize("level", [["--level", "anonymize"], ["--level=anonymize"], ["--lev", "anonymize"]])
def test_preset_refuses_a_level_asked_for_but_takes_the_default_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], level: list[str]
) -> None:
    status, ds = _run(tmp_path / "asked", "045Y", "--preset", "bids", *level)
    assert status == 2 and ds is None
    assert "not of --level anonymize" in capsys.readouterr().err
    status, ds = _run(tmp_path / "default", "045Y", "--preset", "bids")
    assert status == 0 and ds is not None and ds.PatientIdentityRemoved == "YES"


def test_library_cap_on_both_paths(tmp_path: Path) -> None:
    options = Options(level=Level.FULL, key=KEY.encode(), retain_patient_characteristics=True, cap_ages=True)
    ds = make_dataset(subject=8)
    ds.PatientAge = "095Y"
    source = tmp_path / "image.dcm"
    ds.save_as(source, enforce_file_format=True)
    with quiet():
        plan = engine.plan(source, options)
        new, changes = apply_level(ds, options)
    assert isinstance(plan, engine.Plan) and [c for c in plan.changes if c.keyword == "PatientAge"] == [
        c for c in changes if c.keyword == "PatientAge"]
    assert new.PatientAge == "090Y" and any(c.keyword == "PatientAge" for c in changes)
    assert set(PRESETS["bids"]) <= {f for f in vars(options)}


@pytest.mark.parametrize(("institution", "description", "kept"), [
    ("Center for Brain Imaging", "T1w_Brain_MPRAGE", "T1w_Brain_MPRAGE"),
    ("Diffusion Imaging Lab", "DTI_diffusion_64dir", "DTI_diffusion_64dir"),
    ("Quaxworth Memorial Hospital", "T1w_Memorial_Quaxworth", "T1w_Memorial_XXXXXXXXX"),
    ("Quaxworth Memorial Hospital", "T1 Quaxworth Memorial Hospital", "T1 " + "X" * 27),
])
def test_descriptions_keep_the_words_that_name_no_place(tmp_path: Path, institution: str, description: str,
                                                        kept: str) -> None:
    """An institution's name is cut out of a description whole and by the words that name it, not by the words
    any institution's name holds ("Brain", "Diffusion", "Memorial"): 'DTI_diffusion_64dir' became
    'DTI_XXXXXXXXX_64dir' under the preset, for an institution named 'Diffusion Imaging Lab' (found from outside)."""
    ds = make_dataset(subject=7)
    ds.InstitutionName, ds.SeriesDescription = institution, description
    source = tmp_path / "in" / "image.dcm"
    source.parent.mkdir(parents=True)
    ds.save_as(source, enforce_file_format=True)
    (tmp_path / "key").write_text(KEY)
    assert main(["anonymize", str(source.parent), "-o", str(tmp_path / "out"), "--preset", "bids", "--key-file",
                 str(tmp_path / "key"), "-q"]) == 0
    (written,) = (tmp_path / "out").rglob("*.dcm")
    assert pydicom.dcmread(written).SeriesDescription == kept
