"""Zip archives: every member of an input archive accounted for; a zip output equal to a folder output, resumable."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Generator
from itertools import islice
from pathlib import Path

import pydicom
import pytest

import neuroanon.discover as discovery
from neuroanon import pipeline
from neuroanon.cli import main
from neuroanon.context import RunContext
from neuroanon.discover import InputFile, discover
from neuroanon.options import Level, Options
from neuroanon.pipeline import Prepared, anonymize_tree
from neuroanon.report import RunInfo
from neuroanon.sample import make_many, make_study, planted_values

from .helpers import files_under, journalled, kill_mid_run, read_report

KEY = b"zip-test-key-0123456789abcdefgh!"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A study as a folder and the same study zipped, plus a note and a member that tries to climb out."""
    root = tmp_path_factory.mktemp("zip")
    folder = root / "study"
    files = make_study(folder, subject=6, n_series=2, n_instances=3)
    (folder / "notes.txt").write_text("fake notes")
    zipped = root / "study.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files_under(folder):
            zf.write(path, path.relative_to(folder).as_posix())
        zf.writestr("../escape.dcm", files[0].read_bytes())
    return folder, zipped


def _records(report: Path) -> list[dict[str, object]]:
    return read_report(report)[1]


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_zip_input_gives_what_the_folder_gives_and_reports_every_member(
    archive: tuple[Path, Path], tmp_path: Path, level: Level
) -> None:
    folder, zipped = archive
    anonymize_tree([folder], tmp_path / "a", Options(level=level, key=KEY), report=tmp_path / "a.jsonl")
    summary = anonymize_tree([zipped], tmp_path / "b", Options(level=level, key=KEY), report=tmp_path / "b.jsonl",
                             workers=2, run=RunInfo(clear_paths=True))
    assert summary.exit_code == 1  # the member that climbs out
    from_folder = {str(p.relative_to(tmp_path / "a")): p.read_bytes() for p in files_under(tmp_path / "a")}
    from_zip = {str(p.relative_to(tmp_path / "b")): p.read_bytes() for p in files_under(tmp_path / "b")}
    assert from_zip == from_folder and len(from_zip) >= 6
    records = {r["input"]: r for r in _records(tmp_path / "b.jsonl")}
    with zipfile.ZipFile(zipped) as zf:
        assert set(records) == {i.filename for i in zf.infolist()}
    assert records["../escape.dcm"]["status"] == "failed" and not (tmp_path / "escape.dcm").exists()


def test_a_member_s_unpacked_copy_has_no_name_a_kill_could_leave(
    archive: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found from outside: a run over a zip input killed outright left the original members it had unpacked, whole
    and identifiable, in its work folder until the next run. While a member is anonymized, no file in the stage
    holds its values (the copy has no name: it goes with the process), and the member is read as before."""
    _, zipped = archive
    name = planted_values(6)["PatientName"].encode()
    seen: list[str] = []
    real_prepare = pipeline._prepare

    def looking(item: InputFile, member: str, stage: Path, run: RunContext) -> Generator[None, None, Prepared]:
        named = [p for p in stage.rglob("*") if p.is_file()]
        assert not [p for p in named if name in p.read_bytes()], "an unpacked original has a name in the stage"
        seen.append(member)
        return (yield from real_prepare(item, member, stage, run))

    monkeypatch.setattr(pipeline, "_prepare", looking)
    summary = anonymize_tree([zipped], tmp_path / "out", Options(level=Level.FULL, key=KEY))
    assert summary.counts["written"] >= 6 and len(seen) >= 7  # the study's files and the note


def test_zip_output_holds_the_same_files_and_is_stable(archive: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = archive
    key = tmp_path / "key"
    key.write_text("12" * 32)
    args = ["anonymize", str(folder), "--level", "full", "--key-file", str(key), "-q"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    assert main([*args, "-o", str(tmp_path / "one.zip")]) == 0
    assert main([*args, "-o", str(tmp_path / "two.zip"), "--workers", "1"]) == 0
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    expected = {str(p.relative_to(tmp_path / "out")): p.read_bytes() for p in files_under(tmp_path / "out")}
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        assert {name: zf.read(name) for name in zf.namelist()} == expected
        names = " ".join(zf.namelist())
    for name, value in planted_values(6).items():
        assert value.lower() not in names.lower(), f"{name} in a member name"
    leftovers = {p.name for p in tmp_path.iterdir() if "neuroanon" in p.name or p.name.endswith(".partial")}
    assert leftovers == {".out.neuroanon-journal"}, "a zip output leaves no work folder, journal or partial file"


def test_verify_reads_a_zip_release(archive: tuple[Path, Path], tmp_path: Path) -> None:
    folder, zipped = archive
    key = tmp_path / "key"
    key.write_text("34" * 32)
    out = tmp_path / "release.zip"
    assert main(["anonymize", str(folder), "-o", str(out), "--level", "full", "--key-file", str(key), "-q"]) == 0
    assert main(["verify", str(out), "--level", "full", "--against", str(folder), "--key-file", str(key)]) == 0
    assert main(["verify", str(zipped), "--level", "full"]) == 1


def test_a_killed_zip_run_resumes_to_the_same_archive_without_redoing_members(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in"
    make_many(source, 400, subject=13)
    key = tmp_path / "key"
    key.write_text("5a" * 32)
    command = [sys.executable, "-m", "neuroanon.cli", "anonymize", str(source), "--level", "full", "--key-file",
               str(key), "--workers", "2", "-q"]
    reference = tmp_path / "reference.zip"
    subprocess.run([*command, "-o", str(reference)], check=True, capture_output=True)

    out = tmp_path / "out.zip"
    journal = tmp_path / ".out.zip.neuroanon-journal"
    kill_mid_run([*command, "-o", str(out)], journal, lines=100)
    assert not out.exists(), "an unfinished archive under its final name"
    partial = tmp_path / "out.zip.partial"
    finished = journalled(journal)
    assert 90 <= finished < 400 and partial.exists(), "the kill should land mid-run"

    prepared: list[str] = []
    real_prepare = pipeline.prepare

    def counting(item: InputFile, name: str, output: Path, run: RunContext) -> Prepared:
        prepared.append(name)
        return real_prepare(item, name, output, run)

    monkeypatch.setattr(pipeline, "prepare", counting)
    report = tmp_path / "report.jsonl"
    assert main([*command[3:], "-o", str(out), "--workers", "1", "--report", str(report)]) == 0
    assert out.read_bytes() == reference.read_bytes(), "the resumed archive differs from an uninterrupted one"
    assert len(prepared) <= 400 - finished + 1, "members the killed run had finished were made again"
    assert not partial.exists() and not journal.exists()
    _, records, summary = read_report(report)
    assert len(records) == 400 and summary["written"] == 400


# A run stopped while it copies its 30th member into the archive: the member's local header is written, half of
# its bytes are, and its sizes and CRC are not yet filled in (SIGKILL), or they are, for the half (a full disk).
_STOPPED_MID_MEMBER = """
import errno, os, signal, sys
from neuroanon import write
from neuroanon.cli import main
how, real_add, added = sys.argv[1], write.ZipSink.add, []

def add(self, staged, name):
    added.append(name)
    if len(added) < 30:
        return real_add(self, staged, name)
    data = staged.read_bytes()
    if how == "full disk":
        with self.archive.open(write._member(name), "w") as out:
            out.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
    out = self.archive.open(write._member(name), "w")
    out.write(data[: len(data) // 2])
    self._file.flush()
    os.kill(os.getpid(), signal.SIGKILL)

write.ZipSink.add = add
sys.exit(main(sys.argv[2:]))
"""


def _stopped_mid_member(tmp_path: Path, subject: int, how: str = "kill") -> tuple[list[str], Path, int, str]:
    """60 files at full into a zip, the run stopped (`how`) as it copies its 30th member: the run's arguments but
    the output, the output, and the stopped run's exit status and stderr."""
    source = tmp_path / "in"
    make_many(source, 60, subject=subject)
    key = tmp_path / "key"
    key.write_text(f"{subject:02x}" * 32)
    args = ["anonymize", str(source), "--level", "full", "--key-file", str(key), "--workers", "1", "-q"]
    out = tmp_path / "out.zip"
    stopped = subprocess.run([sys.executable, "-c", _STOPPED_MID_MEMBER, how, *args, "-o", str(out)],
                             capture_output=True, text=True)
    return args, out, stopped.returncode, stopped.stderr


@pytest.mark.parametrize("how", ["kill", "full disk"])
def test_a_member_cut_short_is_never_kept_by_the_rerun(tmp_path: Path, how: str) -> None:
    args, out, status, stderr = _stopped_mid_member(tmp_path, 14, how)
    assert status != 0 and "Traceback" not in stderr
    assert not out.exists() and (tmp_path / "out.zip.partial").exists()
    assert main([*args, "-o", str(out)]) == 0
    reference = tmp_path / "reference.zip"
    assert main([*args, "-o", str(reference)]) == 0
    assert out.read_bytes() == reference.read_bytes(), "the resumed archive differs from an uninterrupted one"


def test_an_input_changed_after_the_kill_is_made_again_never_added_twice(tmp_path: Path) -> None:
    args, out, status, _ = _stopped_mid_member(tmp_path, 17)
    assert status == -9
    fifth = next(islice(discover([tmp_path / "in"]), 4, None)).path  # its member is the fifth, whole in the archive
    data = bytearray(fifth.read_bytes())
    data[-1] ^= 0xFF  # a pixel corrected
    fifth.write_bytes(bytes(data))
    assert main([*args, "-o", str(out)]) == 0
    reference = tmp_path / "reference.zip"
    assert main([*args, "-o", str(reference)]) == 0
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert len(names) == len(set(names)) == 60, "a member added twice"
    assert out.read_bytes() == reference.read_bytes()


def test_a_kept_member_whose_bytes_were_damaged_is_made_again(tmp_path: Path) -> None:
    args, out, status, _ = _stopped_mid_member(tmp_path, 15)
    assert status == -9
    reference = tmp_path / "reference.zip"
    assert main([*args, "-o", str(reference)]) == 0
    partial = tmp_path / "out.zip.partial"
    with zipfile.ZipFile(reference) as zf:
        fifth = zf.infolist()[4]
        start = fifth.header_offset + 30 + len(fifth.filename.encode()) + len(fifth.extra)
    damaged = bytearray(partial.read_bytes())
    damaged[start + 200] ^= 0xFF  # as a torn write might leave it
    partial.write_bytes(bytes(damaged))
    assert main([*args, "-o", str(out)]) == 0
    assert out.read_bytes() == reference.read_bytes()
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None


def _flagged(data: bytes, name: bytes, *, flags: int = 0, method: int | None = None) -> bytes:
    """A zip archive's bytes with member `name` marked in its local and central headers: general purpose `flags`
    set (1: encrypted), or its compression method replaced (as an archive from another tool would have them)."""
    out = bytearray(data)
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := out.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if out[name_at:name_at + len(name)] == name:
                out[start + at] |= flags
                if method is not None:
                    out[start + at + 2:start + at + 4] = method.to_bytes(2, "little")
            start += 4
    return bytes(out)


def test_members_that_cannot_be_read_are_each_a_record_and_the_rest_is_done(tmp_path: Path) -> None:
    """An encrypted member, one compressed by a method Python cannot read, two members of one name: each is a
    failed record saying why (an encrypted one stopped the whole run with a traceback; of two of one name, the
    second was read twice)."""
    files = make_study(tmp_path / "study", subject=9, n_series=1, n_instances=4)
    zipped = tmp_path / "in" / "mixed.zip"
    zipped.parent.mkdir()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(files[0], "good.dcm")
        zf.write(files[1], "locked.dcm")
        zf.write(files[2], "deflate64.dcm")
        zf.write(files[3], "twice.dcm")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.write(files[0], "twice.dcm")
    data = _flagged(zipped.read_bytes(), b"locked.dcm", flags=1)
    zipped.write_bytes(_flagged(data, b"deflate64.dcm", method=9))
    report = tmp_path / "report.jsonl"
    run = subprocess.run([sys.executable, "-m", "neuroanon.cli", "anonymize", str(tmp_path / "in"), "-o",
                          str(tmp_path / "out"), "--report", str(report), "-q"], capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    records = {r["input"]: r for r in read_report(report)[1]}
    assert records["mixed.zip/good.dcm"]["status"] == "written"
    assert "encrypted" in records["mixed.zip/locked.dcm"]["reason"]
    assert "method 9" in records["mixed.zip/deflate64.dcm"]["reason"]
    assert records["mixed.zip/twice.dcm"]["reason"] == ("the archive holds 2 members of this name: not read "
                                                         "(which one is meant is ambiguous)")
    assert sum(1 for r in read_report(report)[1] if r["input"] == "mixed.zip/twice.dcm") == 2
    assert {r["status"] for name, r in records.items() if name != "mixed.zip/good.dcm"} == {"failed"}
    assert files_under(tmp_path / "out") == [tmp_path / "out" / "mixed.zip" / "good.dcm"]

def test_a_gzip_file_of_joined_members_is_read_as_gzip_reads_it(tmp_path: Path) -> None:
    """Found on review: its head inflated a member at a time, a DICOM file gzipped as two joined members (the first
    shorter than the preamble, zeros padding it) read as not DICOM, copied out as it was below full."""
    source = make_study(tmp_path / "study", subject=9, n_series=1, n_instances=1)[0]
    data = source.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "joined.dcm.gz").write_bytes(gzip.compress(data[:100]) + bytes(600) + gzip.compress(data[100:]))
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report", str(report), "-q"]) == 0
    (record,) = read_report(report)[1]
    assert (record["input"], record["status"], record["dicom"]) == ("joined.dcm.gz/joined.dcm", "written", True)
    (written,) = files_under(tmp_path / "out")
    assert "PatientName" in pydicom.dcmread(source) and written.read_bytes() != data


def test_damaged_archives_say_what_is_wrong_in_words(tmp_path: Path) -> None:
    """Found from outside: a gzip member cut short was "archive member unreadable (EOFError)", a class name. Each
    kind of damage says what it is, without the member's name or the bytes the library's message quotes. Found on
    the way: a gzip damaged in its first 8 KB was not DICOM, copied out as it was below full."""
    data = make_study(tmp_path / "study", subject=9, n_series=1, n_instances=1)[0].read_bytes()
    folder = tmp_path / "in"
    folder.mkdir()
    packed = gzip.compress(data)
    (folder / "cut.dcm.gz").write_bytes(packed[: len(packed) // 2])
    (folder / "sum.dcm.gz").write_bytes(packed[:-8] + bytes(8))  # its CRC and length zeroed
    middle = len(packed) // 2
    (folder / "start.dcm.gz").write_bytes(packed[:10] + bytes(b ^ 0xFF for b in packed[10:74]) + packed[74:])
    (folder / "bytes.dcm.gz").write_bytes(packed[:middle] + bytes(b ^ 0xFF for b in packed[middle:middle + 64])
                                          + packed[middle + 64:])
    with zipfile.ZipFile(folder / "crc.zip", "w") as zf:
        zf.writestr("a.dcm", data)
    damaged = bytearray((folder / "crc.zip").read_bytes())
    damaged[damaged.find(b"DICM") + 200] ^= 0xFF
    (folder / "crc.zip").write_bytes(bytes(damaged))
    (folder / "torn.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 2)
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(folder), "-o", str(tmp_path / "out"), "--report", str(report), "-q"]) == 1
    assert not (tmp_path / "out").exists() or files_under(tmp_path / "out") == []
    records = read_report(report)[1]
    assert {r["status"] for r in records} == {"failed"}
    reasons = {r["input"]: r["reason"] for r in records}
    assert reasons == {
        "cut.dcm.gz/cut.dcm": "archive member unreadable (cut short)",
        "sum.dcm.gz/sum.dcm": "archive member unreadable (corrupt: a checksum does not match)",
        # (was "not DICOM: copied unchanged", the patient's name in it below full)
        "start.dcm.gz": "gzip data unreadable (its compressed data are corrupt) before what it holds could be told: "
                        "not read",
        "bytes.dcm.gz/bytes.dcm": "archive member unreadable (its compressed data are corrupt)",
        "crc.zip/a.dcm": "archive member unreadable (corrupt: a checksum does not match)",
        "torn.zip": "zip archive could not be opened (not a valid zip archive): its files were not read",
    }



@pytest.mark.parametrize("several", [False, True], ids=["one input", "two inputs"])
@pytest.mark.parametrize("into", ["folder", "zip"])
@pytest.mark.parametrize("level", [Level.ORIGINAL, Level.ANONYMIZE, Level.FULL])
def test_members_whose_paths_cannot_all_be_mirrored_fail_alone_and_the_rest_is_done(
    tmp_path: Path, level: Level, into: str, several: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A member named '.' (a folder's name), a member 'x' beside 'x/y.dcm' (a file where a folder must be), and
    './a.dcm' beside 'a.dcm' (one path in the output): mirrored, the first two stopped the whole run, its rerun
    too, and the last two were both 'written', one over the other (found from outside). Each fails or gives way,
    with a line that names it; the others are written, on the rerun too. Into an archive, 'x' and 'x/y.dcm' were
    both added, and unzip could not unpack them both (found from outside). With several inputs, './a.dcm' and
    'a.dcm' were named alike and both written, one over the other (found from outside). At full, paths are made of
    new identifiers: all are written."""
    files = make_study(tmp_path / "study", subject=11, n_series=1, n_instances=6)
    zipped = tmp_path / "odd.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for name, path in zip([".", "./a.dcm", "a.dcm", "x", "x/y.dcm", "z.dcm"], files, strict=True):
            zf.writestr(zipfile.ZipInfo(name), path.read_bytes())  # (`write` would make './a.dcm' 'a.dcm')
    others = make_study(tmp_path / "other", subject=12, n_series=1, n_instances=1) if several else []
    p = "odd.zip/" if several else ""  # (with several inputs, each input's files are below its name)
    out = tmp_path / ("out" if into == "folder" else "out.zip")
    report, key = tmp_path / "report.jsonl", tmp_path / "key"
    key.write_text("56" * 32)
    full = ["--key-file", str(key), "--report-paths"] if level is Level.FULL else []
    args = ["anonymize", str(zipped), *([str(tmp_path / "other")] if several else []), "-o", str(out), "--level",
            str(level), "--report", str(report), *full]
    for run in ("first run", "rerun") if into == "folder" else ("first run",):  # (a finished archive is not reopened)
        code = main(args)
        shown = capsys.readouterr()
        _, records, summary = read_report(report)
        statuses = {str(r["input"]): r["status"] for r in records}
        assert "stopped" not in summary and "Traceback" not in shown.err, run
        written = sorted(f.relative_to(out).as_posix() for f in files_under(out)) if into == "folder" else \
            sorted(zipfile.ZipFile(out).namelist())
        if level is Level.FULL:
            assert code == 0 and set(statuses.values()) == {"written"} and len(written) == 6 + len(others), run
            continue
        assert len(statuses) == 6 + len(others), statuses
        assert statuses[f"{p}."] == statuses[f"{p}x/y.dcm"] == "failed", run
        assert statuses[f"{p}./a.dcm"] == statuses[f"{p}x"] == statuses[f"{p}z.dcm"] == "written", run
        assert statuses[f"{p}a.dcm"] != "written", f"{run}: a.dcm's output replaced ./a.dcm's"
        reason = next(str(r["reason"]) for r in records if r["input"] == f"{p}a.dcm")  # (two instances, one path)
        assert reason.startswith("another input has its output path; not written"), reason
        assert [w for w in written if w.startswith(p)] == [f"{p}a.dcm", f"{p}x", f"{p}z.dcm"], run
        assert code == 1, run
        lines = shown.err.splitlines()
        assert any(line.startswith(f"failed: {p}.: zip member name ends in '.'") for line in lines), shown.err
        assert any(line.startswith(f"failed: {p}x/y.dcm: output not written: a file or folder already in the "
                                   "output holds its path") for line in lines), shown.err


def test_a_name_that_is_not_utf8_fails_alone_in_a_zip_output(tmp_path: Path) -> None:
    """A member's name must be UTF-8: an input named by other bytes is a failed record; the run goes on."""
    source = tmp_path / "in"
    files = make_study(source, subject=10, n_series=1, n_instances=2)
    odd = os.fsdecode(bytes(source) + b"/caf\xe9.dcm")
    os.rename(files[0], odd)
    report = tmp_path / "report.jsonl"
    run = subprocess.run([sys.executable, "-m", "neuroanon.cli", "anonymize", str(source), "-o",
                          str(tmp_path / "out.zip"), "--report", str(report), "-q"], capture_output=True, text=True)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    _, records, summary = read_report(report)
    assert summary["written"] == 1 and summary["failed"] == 1 and len(records) == 2
    (failed,) = [r for r in records if r["status"] == "failed"]
    assert "output not written (its name is not utf-8, as an archive member's must be: rename the input, or write " \
        "to a folder)" in failed["reason"], failed["reason"]
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert len(zf.namelist()) == 1


@pytest.fixture
def archives_in_a_folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    """A folder holding a study, a zip of two instances, a gzip-compressed instance, a zip with a member that
    climbs out, a zip inside a zip, a broken zip and a gzip that is not DICOM (as NIfTI files are)."""
    folder = tmp_path / "in"
    files = make_study(tmp_path / "sources", subject=8, study=1, n_series=1, n_instances=5)
    make_study(folder, subject=8, n_series=1, n_instances=1)
    with zipfile.ZipFile(folder / "more.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(files[0], "a/one.dcm")
        zf.write(files[1], "two.dcm")
    (folder / "three.dcm.gz").write_bytes(gzip.compress(files[2].read_bytes()))
    with zipfile.ZipFile(folder / "climb.zip", "w") as zf:
        zf.writestr("../escape.dcm", files[3].read_bytes())
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(files[4], "four.dcm")
    with zipfile.ZipFile(folder / "nested.zip", "w") as zf:
        zf.write(inner, "inner.zip")
    (folder / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    (folder / "image.nii.gz").write_bytes(gzip.compress(b"\x5c\x01\x00\x00" + b"\x00" * 344))
    return folder, files


@pytest.mark.parametrize("level", [Level.ORIGINAL, Level.ANONYMIZE, Level.FULL])
def test_archives_inside_a_folder_are_opened_or_reported_not_opened(
    archives_in_a_folder: tuple[Path, list[Path]], tmp_path: Path, level: Level
) -> None:
    folder, files = archives_in_a_folder
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    key = tmp_path / "key"
    key.write_text("34" * 32)
    # records named by path, not by keyed token
    clear = ["--key-file", str(key), "--report-paths"] if level is Level.FULL else []
    code = main(["anonymize", str(folder), "-o", str(out), "--level", str(level), "--report", str(report), "-q",
                 *clear])
    assert code == 1, "archives that could not be opened mean not everything was released"
    records = {str(r["input"]): r for r in _records(report)}
    for member in ("more.zip/a/one.dcm", "more.zip/two.dcm", "three.dcm.gz/three.dcm"):
        assert records[member]["status"] == "written" and records[member]["dicom"], member
    assert records["climb.zip/../escape.dcm"]["status"] == "failed"
    assert records["nested.zip/inner.zip"]["status"] == "failed"
    assert "archive inside an archive" in str(records["nested.zip/inner.zip"]["reason"])
    assert records["broken.zip"]["status"] == "failed" and "could not be opened" in str(records["broken.zip"]["reason"])
    assert records["image.nii.gz"]["dicom"] is False, "a gzip that is not DICOM stays the file it is"
    released = [p.read_bytes() for p in files_under(out)]
    if level is Level.ORIGINAL:
        assert files[0].read_bytes() in released and files[2].read_bytes() in released
    else:
        name = planted_values(8)["PatientName"].encode()
        assert not any(name in data for data in released), "a name inside an archive was released"
        assert len([r for r in records.values() if r["status"] == "written" and r["dicom"]]) == 4


def _unopened_archives(folder: Path, dicom: bytes) -> dict[str, str]:
    """Archives and compressed files of a DICOM file this tool does not open, by name: the kind each is said to be."""
    import bz2
    import io
    import lzma
    import tarfile

    folder.mkdir()
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tf:
        info = tarfile.TarInfo("study/one.dcm")
        info.size = len(dicom)
        tf.addfile(info, io.BytesIO(dicom))
    (folder / "study.tar").write_bytes(packed.getvalue())
    (folder / "study.tgz").write_bytes(gzip.compress(packed.getvalue()))
    v7 = io.BytesIO()  # (no magic: told by its checksum; found from outside)
    with tarfile.open(fileobj=v7, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("one.dcm")
        info.size = len(dicom)
        tf.addfile(info, io.BytesIO(dicom))
    header = bytearray(v7.getvalue()[:512])
    header[257:265] = bytes(8)  # the v7 header: no "ustar", no version; its checksum again
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    (folder / "v7.tar").write_bytes(bytes(header) + v7.getvalue()[512:])
    (folder / "one.dcm.bz2").write_bytes(bz2.compress(dicom))
    (folder / "one.dcm.xz").write_bytes(lzma.compress(dicom))
    (folder / "one.dcm.lzma").write_bytes(lzma.compress(dicom, format=lzma.FORMAT_ALONE))
    (folder / "one.dcm.gz.gz").write_bytes(gzip.compress(gzip.compress(dicom)))
    (folder / "one.dcm.bz2.gz").write_bytes(gzip.compress(bz2.compress(dicom)))
    # (no compressor for these in Python's library: their headers, then the DICOM file's bytes as they are)
    (folder / "study.7z").write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + dicom)
    (folder / "study.rar").write_bytes(b"Rar!\x1a\x07\x01\x00" + dicom)
    (folder / "one.dcm.zst").write_bytes(b"\x28\xb5\x2f\xfd" + dicom)
    # (found from outside: each of these was copied unchanged at anonymize)
    (folder / "legacy.lz4").write_bytes(b"\x02\x21\x4c\x18" + dicom)
    (folder / "one.dcm.Z").write_bytes(b"\x1f\x9d\x90" + dicom)
    (folder / "study.a").write_bytes(b"!<arch>\n" + b"one.dcm/        0           0     0     644     "
                                     + b"%-10d`\n" % len(dicom) + dicom)
    (folder / "study.cpio").write_bytes(b"070701" + b"0" * 104 + b"one.dcm\0" + dicom)
    (folder / "patient.iso").write_bytes(bytes(0x8001) + b"CD001" + bytes(2042) + dicom)
    return {"study.tar": "a tar archive", "study.tgz": "a tar archive, compressed with gzip", "v7.tar": "a tar archive",
            "one.dcm.bz2": "a file compressed with bzip2", "one.dcm.xz": "a file compressed with xz",
            "one.dcm.lzma": "a file compressed with LZMA",
            "one.dcm.gz.gz": "a file compressed with gzip, compressed with gzip",
            "one.dcm.bz2.gz": "a file compressed with bzip2, compressed with gzip",
            "study.7z": "a 7z archive", "study.rar": "a RAR archive", "one.dcm.zst": "a file compressed with zstd",
            "legacy.lz4": "a file compressed with lz4", "one.dcm.Z": "a file compressed with compress (.Z)",
            "study.a": "an ar archive", "study.cpio": "a cpio archive",
            "patient.iso": "a disc image (ISO 9660 or UDF)"}


@pytest.mark.parametrize("level", [Level.ORIGINAL, Level.ANONYMIZE, Level.FULL])
def test_archives_this_tool_does_not_open_fail_and_are_not_released(tmp_path: Path, level: Level) -> None:
    """A tar archive, or a DICOM file compressed with bzip2, xz, zstd (or a 7z, rar archive) is not opened: it fails,
    saying what it is, and is not copied out (found from outside: a tar of DICOM files was copied unchanged at
    anonymize as "not DICOM", the patient's name in it, and verify counted it clean); verify reports it unread.
    In a zip archive, it is an archive inside an archive."""
    (made,) = make_study(tmp_path / "made", subject=13, n_series=1, n_instances=1)
    kinds = _unopened_archives(tmp_path / "in", made.read_bytes())
    with zipfile.ZipFile(tmp_path / "in" / "outer.zip", "w") as zf:
        zf.write(tmp_path / "in" / "study.tar", "inner.tar")
    out, report, key = tmp_path / "out", tmp_path / "report.jsonl", tmp_path / "key"
    key.write_text("34" * 32)
    clear = ["--key-file", str(key), "--report-paths"] if level is Level.FULL else []
    code = main(["anonymize", str(tmp_path / "in"), "-o", str(out), "--level", str(level), "--report", str(report),
                 "-q", *clear])
    records = {str(r["input"]): r for r in _records(report)}
    assert code == 1 and len(records) == len(kinds) + 1 and not files_under(out), records
    for name, kind in kinds.items():
        assert records[name]["status"] == "failed", name
        assert str(records[name]["reason"]).startswith(f"{kind}, which this tool does not open"), records[name]
    assert "archive inside an archive" in str(records["outer.zip/inner.tar"]["reason"])
    # a file whose first bytes only look like an archive's is the file it is (no checksum, no block magic)
    (tmp_path / "in2").mkdir()
    (tmp_path / "in2" / "notes.txt").write_bytes(b"BZh9 notes" + b" " * 247 + b"ustar" + b" " * 300)
    assert main(["anonymize", str(tmp_path / "in2"), "-o", str(tmp_path / "out2"), "--level", "anonymize", "-q"]) == 0
    assert [f.name for f in files_under(tmp_path / "out2")] == ["notes.txt"]
    verified = subprocess.run([sys.executable, "-m", "neuroanon.cli", "verify", str(tmp_path / "in"), "--level",
                               "anonymize"], capture_output=True, text=True)
    assert verified.returncode == 1, verified.stdout
    shown = verified.stdout + verified.stderr
    assert "which this tool does not open" in shown and "an archive inside an archive" in shown, shown


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "other-pixels"])
def test_a_duplicate_instance_into_an_archive_is_compared_with_its_member(
    tmp_path: Path, copy: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Into a zip archive a duplicate was skipped whatever it held (exit 0): one SOP Instance UID with other pixel
    data fails, as into a folder, by its member's CRC-32 and size; a copy is a skipped duplicate."""
    import shutil

    import pydicom

    source = tmp_path / "in"
    first = make_study(source, subject=52, n_series=1, n_instances=1)[0]
    (source / "zz").mkdir()  # (a folder after the study's: taken second)
    if copy:
        shutil.copyfile(first, source / "zz" / "second.dcm")
    else:
        other = pydicom.dcmread(first)
        other.PixelData = bytes(len(other.PixelData))
        other.save_as(source / "zz" / "second.dcm")
    key = tmp_path / "key"
    key.write_bytes(KEY)
    report = tmp_path / "r.jsonl"
    args = ["anonymize", str(source), "-o", str(tmp_path / "out.zip"), "--level", "full", "--key-file", str(key),
            "--report", str(report), "--report-paths"]
    assert main(args) == (0 if copy else 1)
    (second,) = [r for r in read_report(report)[1] if r["input"].endswith("second.dcm")]
    if copy:
        assert second["status"] == "skipped" and "(its output would be the same bytes)" in second["reason"]
    else:
        assert second["status"] == "failed" and "(its output would be other bytes)" in second["reason"]
        assert "second.dcm" in capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert len(archive.namelist()) == 1


def test_a_member_that_unpacks_to_more_than_the_disk_holds_fails_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small member that unpacks to more than the space left (a zip bomb, or a disk nearly full) is a failed
    record; the files after it are done (found from outside: the run, and every rerun, stopped at it)."""
    import errno

    make_study(tmp_path / "in", subject=41, n_series=1, n_instances=2)
    with zipfile.ZipFile(tmp_path / "in" / "a-bomb.zip", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("zeros.bin", bytes(1 << 20))
    def full(source: object, target: object, length: int = 0) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("neuroanon.discover.shutil.copyfileobj", full)  # (extracting a member)
    report = tmp_path / "report.jsonl"
    options = Options(level=Level.FULL, key=KEY)
    summary = anonymize_tree([tmp_path / "in"], tmp_path / "out", options, report=report,
                             run=RunInfo(clear_paths=True))
    _, listed, counted = read_report(report)
    records = {str(r["input"]): r for r in listed}
    assert records["a-bomb.zip/zeros.bin"]["status"] == "failed"
    assert "more than the space left" in str(records["a-bomb.zip/zeros.bin"]["reason"])
    assert summary.exit_code == 1 and counted["written"] == 2


def test_a_dicom_file_whose_preamble_begins_as_a_zip_is_dicom_where_it_is_named(tmp_path: Path) -> None:
    """The preamble is the application's: one that begins as a zip archive does ("PK\\3\\4") leaves the file DICOM,
    named on the command line as in a folder (found from outside: named, it failed as a broken zip)."""
    (source,) = make_study(tmp_path / "in", subject=42, n_series=1, n_instances=1)
    data = bytearray(source.read_bytes())
    data[:4] = b"PK\x03\x04"
    source.write_bytes(bytes(data))
    options = Options(level=Level.ANONYMIZE, key=KEY)
    for given, out in ((source, tmp_path / "named"), (tmp_path / "in", tmp_path / "folder")):
        report = tmp_path / f"{out.name}.jsonl"
        assert anonymize_tree([given], out, options, report=report).exit_code == 0
        (record,) = read_report(report)[1]
        assert record["status"] == "written", record


def test_an_archive_s_member_paths_take_what_it_holds_as_it_is() -> None:
    """An interrupted archive taken up again may hold members an earlier version added side by side (`x` and
    `x/y.dcm`): taken as they are, not refused (the rerun would stop on them); a new member is held to them."""
    from neuroanon.write import MemberPaths

    paths = MemberPaths(["x", "x/y.dcm"])
    with pytest.raises(NotADirectoryError):
        paths.take("x/z.dcm")
    with pytest.raises(IsADirectoryError):
        paths.take("x")
    paths.take("w/v.dcm")


# A stop (argv[2]) delivered at one moment (argv[1]) of a zip run's end: as the review page is written, just before
# the archive is finished; as the partial archive takes its final name; once it has it.
_STOPPED_AS_IT_ENDS = """
import os, signal, sys
from neuroanon import review, write
from neuroanon.cli import main
when, signum = sys.argv[1], getattr(signal, sys.argv[2])
real_page, real_replace, real_finish = review.write_page, write.os.replace, write.ZipSink.finish

def write_page(folder):
    real_page(folder)
    if when == "before":
        os.kill(os.getpid(), signum)

def replace(src, dst, **kw):
    real_replace(src, dst, **kw)
    if when == "renamed" and str(src).endswith(".zip.partial"):
        os.kill(os.getpid(), signum)

def finish(self):
    real_finish(self)
    if when == "after":
        os.kill(os.getpid(), signum)

review.write_page, write.os.replace, write.ZipSink.finish = write_page, replace, finish
sys.exit(main(sys.argv[3:]))
"""


def _zip_run(tmp_path: Path, when: str, signum: str) -> tuple[list[str], Path, subprocess.CompletedProcess[str]]:
    source = tmp_path / "in"
    if not source.exists():
        make_many(source, 6, subject=17)
    key = tmp_path / "key"
    key.write_text("17" * 32)
    args = ["anonymize", str(source), "--level", "full", "--key-file", str(key), "--workers", "1", "-o",
            str(tmp_path / "out.zip")]
    done = subprocess.run([sys.executable, "-c", _STOPPED_AS_IT_ENDS, when, signum, *args], capture_output=True,
                          text=True, timeout=120)
    return args, tmp_path / "out.zip", done


@pytest.mark.parametrize(("when", "signum"), [("renamed", "SIGTERM"), ("after", "SIGTERM"), ("after", "SIGINT"),
                                              ("after", "SIGHUP")])
def test_a_stop_once_the_archive_has_its_name_leaves_the_run_finished(tmp_path: Path, when: str,
                                                                      signum: str) -> None:
    """Found from outside: SIGTERM as the archive took its final name ended the run with exit 143, "run the same
    command again to resume", and the same command was then refused: the archive was complete. Once it has its
    name the run is done: exit 0, its summary, nothing left to resume."""
    _, out, done = _zip_run(tmp_path, when, signum)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "6 written" in done.stdout or "written: 6" in done.stdout, done.stdout
    assert out.exists() and not (tmp_path / "out.zip.partial").exists()
    assert not list(tmp_path.glob(".out.zip.neuroanon-*"))
    _, reference, clean = _zip_run(tmp_path / "reference", "never", signum)
    assert clean.returncode == 0 and out.read_bytes() == reference.read_bytes()


def test_a_stop_before_the_archive_is_finished_is_resumed_by_the_same_command(tmp_path: Path) -> None:
    args, out, done = _zip_run(tmp_path, "before", "SIGTERM")
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().endswith("neuroanon: stopped by SIGTERM; run the same command again to resume")
    assert not out.exists() and (tmp_path / "out.zip.partial").exists()
    assert main(args) == 0
    _, reference, clean = _zip_run(tmp_path / "reference", "never", "SIGTERM")
    assert clean.returncode == 0 and out.read_bytes() == reference.read_bytes()


def test_a_rerun_that_finds_no_file_leaves_the_unfinished_archive_as_it_was(tmp_path: Path) -> None:
    """Found from outside: the rerun of a stopped zip run whose input folder was empty (an unmounted disk) said "no
    file found", exit 2, and removed the partial archive and its journal: every member released was lost."""
    args, out, done = _zip_run(tmp_path, "before", "SIGTERM")
    assert done.returncode == 143, done.stderr
    partial, journal = tmp_path / "out.zip.partial", tmp_path / ".out.zip.neuroanon-journal"
    kept = partial.read_bytes(), journal.read_bytes()
    (tmp_path / "in").rename(tmp_path / "moved")
    (tmp_path / "in").mkdir()
    assert main(args) == 2
    assert (partial.read_bytes(), journal.read_bytes()) == kept and not out.exists()
    (tmp_path / "in").rmdir()
    (tmp_path / "moved").rename(tmp_path / "in")
    assert main(args) == 0
    _, reference, clean = _zip_run(tmp_path / "reference", "never", "SIGTERM")
    assert clean.returncode == 0 and out.read_bytes() == reference.read_bytes()


def test_an_unfinished_archive_whose_journal_is_empty_is_refused_until_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: an emptied journal beside an unfinished archive turned off the check of the options and
    the key; a rerun with another key added its members to the first key's. It is refused, naming the output."""
    args, out, done = _zip_run(tmp_path, "before", "SIGTERM")
    assert done.returncode == 143, done.stderr
    partial = tmp_path / "out.zip.partial"
    kept = partial.read_bytes()
    (tmp_path / ".out.zip.neuroanon-journal").write_bytes(b"")
    (tmp_path / "other").write_text("18" * 32)
    other = [tmp_path / "other" if arg == str(tmp_path / "key") else arg for arg in args]
    assert main([str(arg) for arg in other]) == 2
    err = capsys.readouterr().err
    assert f"the output {out} (.out.zip.neuroanon-journal, beside it) is empty or damaged" in err, err
    assert not out.exists() and partial.read_bytes() == kept
    assert main([*args, "--force"]) == 0
    _, reference, clean = _zip_run(tmp_path / "reference", "never", "SIGTERM")
    assert clean.returncode == 0 and out.read_bytes() == reference.read_bytes()


def test_a_refused_rerun_into_an_unfinished_archive_names_it_and_what_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: the refusal named neither the output nor what differed, and said "output folder"."""
    args, out, done = _zip_run(tmp_path, "before", "SIGTERM")
    assert done.returncode == 143, done.stderr
    assert main([*args, "--shift-dates"]) == 2
    assert capsys.readouterr().err == (f"neuroanon: the output {out} was begun with other values of --shift-dates; "
                                       "rerun with the options it was begun with, or use a new output\n")


def test_an_archive_with_bytes_before_its_first_member_is_opened(tmp_path: Path) -> None:
    """Found from outside: a self-extracting (prefixed) zip archive was not known for one, its first bytes not a
    member's: at anonymize it was copied out as it was, a patient's name inside it; verify found no DICOM file.
    Its end says it is an archive: it is opened like any other, named on the command line or found in a folder."""
    source = tmp_path / "study"
    files = make_study(source, subject=29, n_series=1, n_instances=1)
    packed = tmp_path / "packed.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        zf.write(files[0], "one.dcm")
    folder = tmp_path / "in"
    folder.mkdir()
    sfx = folder / "setup.exe"
    sfx.write_bytes(b"MZ" + bytes(1000) + packed.read_bytes())
    name = planted_values(29)["PatientName"].encode()
    assert name in sfx.read_bytes()
    for given, member in ((folder, "setup.exe/one.dcm"), (sfx, "one.dcm")):
        out, report = tmp_path / f"out-{given.name}", tmp_path / f"{given.name}.jsonl"
        assert main(["anonymize", str(given), "-o", str(out), "--level", "anonymize", "--report", str(report),
                     "-q"]) == 0
        (record,) = _records(report)
        assert record["input"] == member and record["status"] == "written" and record["dicom"], record
        released = [p.read_bytes() for p in files_under(out)]
        assert len(released) == 1 and not any(name in data for data in released)
    assert main(["verify", str(sfx), "--level", "anonymize"]) == 1, "its member is read: the name is found"


def test_an_archive_with_a_member_name_flagged_utf8_but_not_says_so_in_words(tmp_path: Path) -> None:
    """Found from outside: the archive's record gave the cause as "(UnicodeDecodeError)". Python's zipfile reads
    every member's name before any member, so the archive fails as a whole, its cause in words."""
    files = make_study(tmp_path / "study", subject=28, n_series=1, n_instances=2)
    packed = tmp_path / "packed.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        zf.write(files[0], "PLACEHOLDER.dcm")
        zf.write(files[1], "ok.dcm")
    data = bytearray(packed.read_bytes().replace(b"PLACEHOLDER.dcm", b"bad\xff\xfename_x.dcm"))
    for signature, flags_at in ((b"PK\x03\x04", 7), (b"PK\x01\x02", 9)):
        data[data.index(signature) + flags_at] |= 0x08  # general purpose bit 11: the name is UTF-8
    archive = tmp_path / "badname.zip"
    archive.write_bytes(bytes(data))
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(archive), "-o", str(tmp_path / "out"), "--report", str(report), "-q"]) == 1
    (record,) = _records(report)
    assert record["status"] == "failed" and record["reason"] == (
        "zip archive could not be opened (a member's name is flagged UTF-8 but is not): its files were not read")


def test_an_archive_of_no_file_and_a_file_ending_as_one_each_have_a_record(tmp_path: Path) -> None:
    """Found from outside: once a file not DICOM was asked at its end whether it is an archive, an empty archive,
    and a text file whose last bytes read as one's end, were neither copied nor reported (exit 0). A file whose end
    lists no member is no archive to open: copied at anonymize, skipped at full, as before. An archive of folders
    alone is opened and fails, saying why."""
    folder = tmp_path / "in"
    folder.mkdir()
    zipfile.ZipFile(folder / "empty.zip", "w").close()
    (folder / "notes.txt").write_bytes(b"a plain text file\n" * 4 + b"PK\x05\x06" + bytes(18))
    with zipfile.ZipFile(folder / "folders.zip", "w") as zf:
        zf.writestr("sub/", "")
    expected = {"empty.zip": ("written", "not DICOM: copied unchanged"),
                "notes.txt": ("written", "not DICOM: copied unchanged"),
                "folders.zip": ("failed", "zip archive holds no file: nothing was read")}
    report = tmp_path / "anonymize.jsonl"
    assert main(["anonymize", str(folder), "-o", str(tmp_path / "out"), "--level", "anonymize", "--report",
                 str(report), "-q"]) == 1
    assert {str(r["input"]): (r["status"], r["reason"]) for r in _records(report)} == expected
    assert sorted(p.name for p in files_under(tmp_path / "out")) == ["empty.zip", "notes.txt"]
    report, key = tmp_path / "full.jsonl", tmp_path / "key"
    key.write_text("12" * 32)
    assert main(["anonymize", str(folder), "-o", str(tmp_path / "out-full"), "--level", "full", "--key-file",
                 str(key), "--report", str(report), "--report-paths", "-q"]) == 1
    assert {str(r["input"]): r["status"] for r in _records(report)} == {
        "empty.zip": "skipped", "notes.txt": "skipped", "folders.zip": "failed"}


def test_a_dry_run_fails_a_member_whose_name_is_too_long_as_the_run_does(tmp_path: Path) -> None:
    """Found from outside: a zip member's name longer than the output's file system takes was said written by the
    dry run (exit 0), and the run failed it (exit 1)."""
    files = make_study(tmp_path / "study", subject=27, n_series=1, n_instances=1)
    packed = tmp_path / "long.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        zf.write(files[0], "y" * 300 + ".dcm")
    records = []
    for extra in (["--dry-run"], []):
        report = tmp_path / f"report{len(extra)}.jsonl"
        assert main(["anonymize", str(packed), "-o", str(tmp_path / "out"), "--level", "anonymize", "--report",
                     str(report), "-q", *extra]) == 1
        (record,) = _records(report)
        records.append((record["status"], record["reason"]))
    assert records == [("failed", "output not written (file name too long)")] * 2


def test_too_many_open_files_unpacking_a_member_stops_the_run(
    tmp_path: Path, archive: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The machine's limit, not a member's fault: found from outside (ulimit -n 20), members failed one by one,
    "archive member unreadable (too many open files)", and the run went on; at a lower limit the same cause stopped
    it. It stops the run, says so once, and the rerun resumes."""
    _, zipped = archive

    def limited(*args: object, **kwargs: object) -> object:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(pipeline, "extracted", limited)
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    assert main(["anonymize", str(zipped), "-o", str(out), "--level", "anonymize", "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == ("neuroanon: too many open files: the run stopped after 0 files; raise the limit "
                                    "of open files (ulimit -n) or give fewer workers, and run the same command again "
                                    "to resume"), err
    assert not any("archive member unreadable" in str(r["reason"]) for r in _records(report))
    monkeypatch.undo()
    assert main(["anonymize", str(zipped), "-o", str(out), "--level", "anonymize", "-q"]) == 1  # (its climbing member)
    assert len(files_under(out)) == 7


def test_a_zip_replaced_without_a_member_after_it_was_found_fails_that_member(
    tmp_path: Path, archive: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found from outside: a zip input replaced during the run by one without a member it listed ended the run in a
    traceback (zipfile's KeyError), the members after it without records. The member fails; the run goes on."""
    folder, zipped = archive
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(zipped, source / "study.zip")
    listed = discovery._members

    def replaced(path: Path, *args: object, **kwargs: object) -> Generator[InputFile, None, None]:
        members = list(listed(path, *args, **kwargs))  # type: ignore[arg-type]
        with zipfile.ZipFile(path, "w") as zf:  # (the last member only)
            zf.writestr(members[-1].member or "", zipfile.ZipFile(zipped).read(members[-1].member or ""))
        yield from members

    monkeypatch.setattr(discovery, "_members", replaced)
    report = tmp_path / "report.jsonl"
    summary = anonymize_tree([source], tmp_path / "out", Options(level=Level.ANONYMIZE), report=report)
    records = _records(report)
    assert len(records) == len(zipfile.ZipFile(zipped).namelist())
    gone = [r for r in records if "no longer in the archive" in str(r["reason"])]
    assert len(gone) == len(records) - 2 and summary.counts["written"] == 1, records  # (and the climbing member)
