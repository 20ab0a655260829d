"""The DICOMDIR written for an output tree: readable by pydicom and dcmtk, complete, PHI-free at full, stable."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import warnings
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from neuroanon.dicomdir import STAGE, _link, write_dicomdir
from neuroanon.errors import UsageError
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.rules import DUMMY_TEXT
from neuroanon.sample import make_dataset, make_study, planted_values

from .helpers import files_under
from .tools import require_tool

KEY = b"x" * 32
# (folder, subject, study, encoding): subject 0 has two studies, subject 1 one; 2 series x 2 instances each.
STUDIES = [("a", 0, 0, "explicit_le"), ("b", 0, 1, "implicit_le"), ("c", 1, 0, "deflated")]
EXPECTED = {"PATIENT": 2, "STUDY": 3, "SERIES": 6, "IMAGE": 12}
LEVELS = [Level.FULL, Level.ANONYMIZE]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("in") / "incoming"
    for folder, subject, study, encoding in STUDIES:
        make_study(root / folder, subject=subject, study=study, n_series=2, n_instances=2, encoding=encoding)
    (root / "notes.txt").write_text("not DICOM")  # copied at anonymize; must not be indexed
    return root


def _output(inputs: Path, tmp_path: Path, level: Level) -> Path:
    out = tmp_path / level.value
    anonymize_tree([inputs], out, Options(level=level, key=KEY))
    return out


def _dicom_outputs(out: Path) -> dict[str, Path]:
    """SOP Instance UID -> output file, for the Part-10 files the pipeline wrote."""
    found: dict[str, Path] = {}
    for path in files_under(out):
        if path.read_bytes()[128:132] == b"DICM":
            found[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return found


def _digests(out: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(out)}


def _load(path: Path) -> FileSet:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing referenced file is only a warning in pydicom
        return FileSet(pydicom.dcmread(path))


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.value)
def test_every_output_referenced_once_by_byte_identical_twin(inputs: Path, tmp_path: Path, level: Level) -> None:
    out = _output(inputs, tmp_path, level)
    outputs = _dicom_outputs(out)
    before = _digests(out)
    assert len(outputs) == EXPECTED["IMAGE"]

    path = write_dicomdir(out)

    assert path == out / "DICOMDIR"
    fs = _load(path)
    referenced = Counter(str(instance.SOPInstanceUID) for instance in fs)
    assert referenced == Counter(outputs.keys())
    for instance in fs:
        staged = Path(instance.path)
        assert staged.is_file() and staged.is_relative_to(out / STAGE)
        assert staged.read_bytes() == outputs[str(instance.SOPInstanceUID)].read_bytes()
        header = pydicom.dcmread(staged, stop_before_pixels=True)
        assert instance.ReferencedTransferSyntaxUIDInFile == header.file_meta.TransferSyntaxUID
    # The outputs themselves are untouched and nothing else was added.
    after = {p: d for p, d in _digests(out).items() if p != path and not p.is_relative_to(out / STAGE)}
    assert after == before


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.value)
def test_record_counts_in_pydicom_and_dcmdump(inputs: Path, tmp_path: Path, level: Level) -> None:
    path = write_dicomdir(_output(inputs, tmp_path, level))

    records = pydicom.dcmread(path).DirectoryRecordSequence
    assert Counter(str(r.DirectoryRecordType) for r in records) == EXPECTED
    done = subprocess.run([require_tool("dcmdump"), "+E", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, "dcmdump cannot read the DICOMDIR"
    assert "E:" not in done.stderr and "W:" not in done.stderr
    dumped = Counter(re.findall(r'"Directory Record" (PATIENT|STUDY|SERIES|IMAGE) ', done.stdout))
    assert dumped == EXPECTED
    assert len(re.findall(r'refFileID="' + STAGE + r"\\PT\d{6}\\ST\d{6}\\SE\d{6}\\IM\d{6}\"", done.stdout)) == 12


def test_no_planted_value_in_dicomdir_at_full(inputs: Path, tmp_path: Path) -> None:
    data = write_dicomdir(_output(inputs, tmp_path, Level.FULL)).read_bytes()

    for _, subject, study, _ in STUDIES:
        for name, value in planted_values(subject, study=study).items():
            if name not in ("FolderName", "FileName"):
                assert value.encode() not in data, f"planted {name} in the DICOMDIR"


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.value)
def test_writing_twice_gives_identical_bytes(inputs: Path, tmp_path: Path, level: Level) -> None:
    out = _output(inputs, tmp_path, level)
    first = write_dicomdir(out).read_bytes()
    staged_first = _digests(out / STAGE)

    second = write_dicomdir(out).read_bytes()

    assert second == first
    assert _digests(out / STAGE) == staged_first
    # The same outputs in another folder (another run with the same key) give the same DICOMDIR too.
    again = _output(inputs, tmp_path / "again", level)
    assert write_dicomdir(again).read_bytes() == first


def test_given_files_only(inputs: Path, tmp_path: Path) -> None:
    out = _output(inputs, tmp_path, Level.FULL)
    chosen = sorted(_dicom_outputs(out).values())[:5]

    fs = _load(write_dicomdir(out, chosen))

    assert sorted(str(i.SOPInstanceUID) for i in fs) == sorted(
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in chosen
    )
    with pytest.raises(UsageError):
        write_dicomdir(out, [inputs / "notes.txt"])  # not under the root
    (out / "notes.txt").write_text("not DICOM")
    with pytest.raises(UsageError):
        write_dicomdir(out, [out / "notes.txt"])
    with pytest.raises(UsageError):
        write_dicomdir(out, [next(iter((out / STAGE).rglob("IM*")))])


def test_foreign_stage_folder_is_never_deleted(inputs: Path, tmp_path: Path) -> None:
    out = _output(inputs, tmp_path, Level.FULL)
    (out / STAGE).mkdir()
    (out / STAGE / "KEEP").write_text("not ours")

    with pytest.raises(UsageError):
        write_dicomdir(out)

    assert (out / STAGE / "KEEP").read_text() == "not ours"
    assert not (out / "DICOMDIR").exists()
    shutil.rmtree(out / STAGE)
    assert _load(write_dicomdir(out)) is not None


def test_a_stage_beside_a_damaged_dicomdir_is_kept_and_the_dicomdir_named(inputs: Path, tmp_path: Path) -> None:
    """Found from outside: a DICOMDIR cut short after the run made the rerun say that no neuroanon DICOMDIR owns
    the stage, which read as another program's. The stage is still kept (not proven ours), and the line says the
    DICOMDIR beside it cannot be read."""
    out = _output(inputs, tmp_path, Level.FULL)
    dicomdir = write_dicomdir(out)
    dicomdir.write_bytes(dicomdir.read_bytes()[:300])
    linked = sorted((out / STAGE).rglob("*"))
    with pytest.raises(UsageError, match="the DICOMDIR beside it cannot be read"):
        write_dicomdir(out)
    assert sorted((out / STAGE).rglob("*")) == linked


def test_cli_writes_a_dicomdir_on_request(tmp_path: Path) -> None:
    from neuroanon.cli import main

    source = tmp_path / "in"
    make_study(source, subject=3, n_series=1, n_instances=2)
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key),
                 "--dicomdir", "--workers", "1"]) == 0
    assert pydicom.dcmread(out / "DICOMDIR").file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"


@pytest.mark.parametrize("level", ["original", "anonymize"])
def test_a_file_named_in_bytes_that_are_not_utf8_is_indexed(tmp_path: Path, level: str) -> None:
    """Found from outside: below full the output mirrors an input's name; one that is not UTF-8 ended the run with
    a traceback where the DICOMDIR derives its file-set UID from the names, and no DICOMDIR was written."""
    from neuroanon.cli import main

    source = tmp_path / "in"
    source.mkdir()
    make_dataset(subject=3).save_as(source / os.fsdecode(b"bad\xffname.dcm"), enforce_file_format=True)
    out = tmp_path / "out"
    (tmp_path / "key").write_text("ab" * 32)
    keyed = ["--key-file", str(tmp_path / "key")] if level == "full" else []
    assert main(["anonymize", str(source), "-o", str(out), "--level", level, *keyed, "--dicomdir", "--workers", "1",
                 "-q"]) == 0
    assert len(FileSet(pydicom.dcmread(out / "DICOMDIR"))) == 1


def test_dicomdir_at_original_over_the_inputs_own_is_refused(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Level original copies the input's DICOMDIR to the output's root, where --dicomdir writes its own: the copy
    was reported written, then replaced without a word (found from outside). Refused before anything is made."""
    from neuroanon.cli import main

    source = tmp_path / "in"
    make_study(source, subject=3, n_series=1, n_instances=2)
    write_dicomdir(source)
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "--level", "original", "--dicomdir", "-q"]) == 2
    assert f"--dicomdir would replace {source / 'DICOMDIR'}" in capsys.readouterr().err
    assert not out.exists()
    assert main(["anonymize", str(source), "-o", str(out), "--level", "original", "-q"]) == 0
    assert (out / "DICOMDIR").read_bytes() == (source / "DICOMDIR").read_bytes()


def test_the_dicomdir_indexes_every_released_file_or_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neuroanon.cli import main

    source = tmp_path / "in"
    files = make_study(source, subject=4, n_series=2, n_instances=2)
    (source / "notes.txt").write_text("not DICOM")
    (source / "again").mkdir()
    shutil.copy(files[0], source / "again" / "same.dcm")  # one instance twice
    bare = pydicom.dcmread(files[1])
    bare.SOPInstanceUID = bare.SOPInstanceUID + ".9"
    del bare.file_meta
    bare.preamble = None
    bare.save_as(source / "bare.dcm", implicit_vr=False, little_endian=True)  # a dataset without file meta
    assert (source / "bare.dcm").read_bytes()[128:132] != b"DICM"
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "--dicomdir", "-q"]) == 0
    stdout, stderr = capsys.readouterr()
    released = [p for p in files_under(out) if p.name != "DICOMDIR" and STAGE not in p.relative_to(out).parts]
    left_out = dict(line.split(": ", 2)[1:] for line in stderr.splitlines() if line.startswith("not in the DICOMDIR"))
    fs = FileSet(out / "DICOMDIR")
    referenced = {str(instance.SOPInstanceUID) for instance in fs}
    assert len(referenced) + len(left_out) == len(released), "a released file is neither indexed nor explained"
    assert f"{len(referenced)} files indexed, {len(left_out)} left out" in stdout
    assert left_out["notes.txt"] == "not DICOM"
    assert "same instance" in left_out["again/same.dcm"] and "Part-10" in left_out["bare.dcm"]
    for path in released:
        name = path.relative_to(out).as_posix()
        if name not in left_out:
            assert str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) in referenced, name


# (name, subject, study, series): patients, studies and series interleaved in file-name order.
INTERLEAVED = [("f1", 1, 0, 0), ("f2", 2, 0, 0), ("f3", 1, 0, 0), ("f4", 2, 0, 0),
               ("f5", 1, 1, 0), ("f6", 2, 0, 1), ("f7", 1, 0, 0), ("f8", 2, 0, 0)]


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.value)
def test_interleaved_patients_get_their_own_twins_and_outputs_stay_intact(tmp_path: Path, level: Level) -> None:
    from neuroanon.cli import main

    source = tmp_path / "in"
    source.mkdir()
    for instance, (name, subject, study, series) in enumerate(INTERLEAVED):
        make_dataset(subject=subject, study=study, series=series, instance=instance).save_as(source / f"{name}.dcm")
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    args = ["--level", level.value, *(["--key-file", str(key)] if level is Level.FULL else []), "--workers", "1", "-q"]

    def run(out: Path, *extra: str) -> None:
        assert main(["anonymize", str(source), "-o", str(out), *args, *extra]) == 0

    run(tmp_path / "plain")
    expected = {p.relative_to(tmp_path / "plain"): p.read_bytes() for p in files_under(tmp_path / "plain")}
    by_sop = {str(pydicom.dcmread(tmp_path / "plain" / p).SOPInstanceUID): p for p in expected}
    assert len(by_sop) == len(INTERLEAVED)

    out = tmp_path / "out"
    run(out, "--dicomdir")
    # The outputs are exactly those of a run without --dicomdir.
    released = {p.relative_to(out): p.read_bytes() for p in files_under(out)
                if p.name != "DICOMDIR" and not p.is_relative_to(out / STAGE)}
    assert released == expected
    records = [r for r in pydicom.dcmread(out / "DICOMDIR").DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert len(records) == len(INTERLEAVED)
    assert len({tuple(r.ReferencedFileID) for r in records}) == len(records), "two records share a twin"
    for record in records:
        twin = out.joinpath(*record.ReferencedFileID)
        assert twin.read_bytes() == expected[by_sop[str(record.ReferencedSOPInstanceUIDInFile)]]
    first = (out / "DICOMDIR").read_bytes()

    # The same command gives the same DICOMDIR, into a new folder and into the same one.
    run(tmp_path / "again", "--dicomdir")
    assert (tmp_path / "again" / "DICOMDIR").read_bytes() == first
    run(out, "--dicomdir")
    assert (out / "DICOMDIR").read_bytes() == first
    assert {p.relative_to(out): p.read_bytes() for p in files_under(out)
            if p.name != "DICOMDIR" and not p.is_relative_to(out / STAGE)} == expected


@pytest.mark.parametrize("hard_links", [True, False], ids=["link", "copy"])
def test_a_twin_already_there_is_replaced_never_written_into(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    released, other = tmp_path / "released.dcm", tmp_path / "other.dcm"
    released.write_bytes(b"released output")
    other.write_bytes(b"another output")
    twin = tmp_path / STAGE / "IM000000"
    twin.parent.mkdir()
    os.link(released, twin)  # a stale twin that is the released output itself
    def cross_device(*_: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    if not hard_links:
        monkeypatch.setattr(os, "link", cross_device)

    _link(other, twin)

    assert released.read_bytes() == b"released output"
    assert twin.read_bytes() == b"another output"
    assert os.path.samefile(twin, other) == hard_links
    assert sorted(p.name for p in twin.parent.iterdir()) == ["IM000000"], "a temporary file was left behind"


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.value)
def test_a_release_with_its_dicomdir_verifies_clean_at_its_level(
    inputs: Path, tmp_path: Path, level: Level, capsys: pytest.CaptureFixture[str]
) -> None:
    """The DICOMDIR failed `verify --level full` (a Type 2 StudyDescription present, an invented StudyID, no
    PatientIdentityRemoved in a directory), and without --level its lack of a DeidentificationMethod held an
    anonymize release to full."""
    from neuroanon.cli import main

    out = _output(inputs, tmp_path, level)
    write_dicomdir(out)
    checked = len(files_under(out))  # the outputs, their twins and the DICOMDIR
    assert main(["verify", str(out)]) == 0
    assert f"{checked} files checked at level {level.value}: 0 with findings" in capsys.readouterr().out
    assert main(["verify", str(out), "--level", level.value]) == 0


@pytest.mark.parametrize("level", LEVELS, ids=lambda lv: lv.value)
def test_a_study_without_date_and_time_gets_the_level_s_dummies_and_verifies_clean(
    tmp_path: Path, level: Level) -> None:
    """Found from outside: inputs with no StudyTime gave the study record an invented 000000, which verify took
    for a real time (exit 1 on the tool's own release); the invented StudyDate was 19000101 likewise."""
    from neuroanon.cli import main

    source = tmp_path / "in"
    for path in make_study(source, subject=2, n_series=1, n_instances=2):
        ds = pydicom.dcmread(path)
        del ds.StudyTime, ds.StudyDate
        ds.save_as(path)
    out = _output(source, tmp_path, level)
    directory = pydicom.dcmread(write_dicomdir(out))
    study = next(r for r in directory.DirectoryRecordSequence if r.DirectoryRecordType == "STUDY")
    assert (study.StudyDate, study.StudyTime) == (DUMMY_TEXT["DA"], DUMMY_TEXT["TM"])
    assert main(["verify", str(out)]) == 0


def test_a_dicomdir_record_with_a_real_value_is_still_a_finding(inputs: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from neuroanon.cli import main

    out = _output(inputs, tmp_path, Level.FULL)
    directory = pydicom.dcmread(write_dicomdir(out))
    study = next(r for r in directory.DirectoryRecordSequence if r.DirectoryRecordType == "STUDY")
    study.StudyID, study.StudyDescription = "ST-FAKE-77", "Brain of a fake patient"
    directory.save_as(out / "DICOMDIR")
    assert main(["verify", str(out), "--level", "full"]) == 1
    shown = capsys.readouterr().out
    assert "StudyID holds a value; the profile empties it" in shown
    assert "StudyDescription present; the profile removes it" in shown
