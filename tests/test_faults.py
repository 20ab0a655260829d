"""Everyday faults, each reproducing a failure a new user met: symlinks, unreadable inputs, a full disk,
SIGTERM and Ctrl-C, a killed parent, two runs into one output, staged files, a folder neuroanon did not begin."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gzip
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from neuroanon import discover, journal, pipeline, stops, write
from neuroanon.cli import main
from neuroanon.errors import RunStopped, Terminated, UsageError, WorkerDied
from neuroanon.journal import Journal, journal_path
from neuroanon.keys import SubjectMapping
from neuroanon.options import Level, Options
from neuroanon.report import Record, ReportWriter, RunInfo, Status
from neuroanon.rules import Change
from neuroanon.sample import make_dataset, make_many, make_study

from .helpers import files_under, journalled, read_report
from .peers import SRC
from .tools import require_tool

KEY_TEXT = "cd" * 32
ENV = {**os.environ, "PYTHONPATH": str(SRC)}
COMMAND = [sys.executable, "-m", "neuroanon.cli", "anonymize"]


def _records(report: Path) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    _, records, summary = read_report(report)
    return {str(r["input"]): r for r in records}, summary


def _released(out: Path) -> list[str]:
    return [p.relative_to(out).as_posix() for p in files_under(out)]


# --- symlinks -----------------------------------------------------------------------------------------------------


def test_a_symlinked_folder_or_file_named_on_the_command_line_is_followed(tmp_path: Path) -> None:
    files = make_study(tmp_path / "real", subject=30, n_series=1, n_instances=2)
    (tmp_path / "data").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "one.dcm").symlink_to(files[0])
    assert main(["anonymize", str(tmp_path / "data"), "-o", str(tmp_path / "out1"), "-q"]) == 0
    assert len(_released(tmp_path / "out1")) == 2
    assert main(["anonymize", str(tmp_path / "one.dcm"), "-o", str(tmp_path / "out2"), "-q"]) == 0
    assert _released(tmp_path / "out2") == ["one.dcm"]


@pytest.fixture
def linked_tree(tmp_path: Path) -> Path:
    """A study, a symlink to a folder outside it, one to a file outside it, a loop, and a broken link."""
    root = tmp_path / "in"
    make_study(root, subject=31, n_series=1, n_instances=2)
    outside = make_study(tmp_path / "elsewhere", subject=32, n_series=1, n_instances=3)
    (root / "linked").symlink_to(outside[0].parent, target_is_directory=True)
    (root / "one.dcm").symlink_to(outside[0])
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "broken.dcm").symlink_to(tmp_path / "nowhere.dcm")
    return root


def test_symlinks_inside_a_tree_are_reported_skipped_not_followed(linked_tree: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(linked_tree), "-o", str(tmp_path / "out"), "--report", str(report), "-q"]) == 0
    records, summary = _records(report)
    for name in ("linked", "one.dcm", "loop", "broken.dcm"):
        assert records[name]["status"] == "skipped" and "symlink" in str(records[name]["reason"]), name
    assert "--follow-symlinks" in str(records["linked"]["reason"])
    assert summary["skipped"] == 4 and summary["written"] == 2
    assert len(_released(tmp_path / "out")) == 2


def test_follow_symlinks_follows_them_but_not_into_a_loop(linked_tree: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(linked_tree), "-o", str(tmp_path / "out"), "--report", str(report), "-q",
                 "--follow-symlinks"]) == 0
    records, summary = _records(report)
    assert records["one.dcm"]["status"] == "written"
    assert sum(1 for name in records if name.startswith("linked/")) == 3
    assert records["loop"]["status"] == "skipped" and "loop" in str(records["loop"]["reason"])
    assert records["broken.dcm"]["status"] == "skipped" and "broken" in str(records["broken.dcm"]["reason"])
    assert summary["written"] == 2 + 3 + 1 and summary["skipped"] == 2


@pytest.mark.parametrize("follow", [False, True])
def test_a_symlink_loop_or_an_unreachable_target_is_one_record_and_the_run_goes_on(tmp_path: Path,
                                                                                   follow: bool) -> None:
    """Links whose target cannot be stat'ed for another reason than its absence (a loop of links, a path through
    a file): each is a record with its cause; the run does the rest (it stopped on the first, blaming the output).
    Such a link leads to no file: skipped, followed or not (found from outside: followed, a failed input and exit 1,
    though every DICOM file was released)."""
    root = tmp_path / "in"
    first = make_study(root, subject=33, n_series=1, n_instances=2)[0]
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    (root / "through-a-file").symlink_to(first / "x")
    report = tmp_path / "report.jsonl"
    args = ["anonymize", str(root), "-o", str(tmp_path / "out"), "--report", str(report), "-q"]
    assert main(args + (["--follow-symlinks"] if follow else [])) == 0
    records, summary = _records(report)
    assert summary["written"] == 2 and len(_released(tmp_path / "out")) == 2
    causes = {"a": "too many levels of symbolic links", "b": "too many levels of symbolic links",
              "through-a-file": "not a directory"}
    for name, cause in causes.items():
        assert records[name]["status"] == "skipped", records[name]
        assert cause in str(records[name]["reason"]), records[name]


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_a_file_swapped_for_a_symlink_or_a_fifo_after_it_was_found_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: Level
) -> None:
    """Files are found long before they are read. One that became a symlink (to a file outside the tree) or a
    FIFO in between is a skipped record: the link is not followed, the FIFO never opened for a writer to fill (the
    run would hang), and the run goes on."""
    files = make_study(tmp_path / "in", subject=33, n_series=1, n_instances=4)
    secret = make_study(tmp_path / "elsewhere", subject=34, n_series=1, n_instances=1)[0]
    archive = tmp_path / "in" / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(files[3], "member.dcm")
    found = discover.discover

    def swapped(*args: object, **kwargs: object) -> Iterator[object]:
        items = list(found(*args, **kwargs))  # type: ignore[arg-type]
        files[0].unlink()
        files[0].symlink_to(secret)
        files[1].unlink()
        os.mkfifo(files[1])
        archive.unlink()
        os.mkfifo(archive)
        yield from items

    monkeypatch.setattr(pipeline, "discover", swapped)
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    options = Options(level=level, key=b"\x5a" * 32 if level is Level.FULL else None)
    ended: list[object] = []
    done = threading.Thread(target=lambda: ended.append(pipeline.anonymize_tree([tmp_path / "in"], out, options,
                                                                                report=report,
                                                                                run=RunInfo(clear_paths=True))),
                            daemon=True)
    done.start()
    done.join(60)
    assert not done.is_alive(), "the run hung on a FIFO"
    assert ended, "the run raised"
    records, summary = _records(report)
    names = {p.relative_to(tmp_path / "in").as_posix(): p for p in [*files[:2], archive]}
    assert {n: (records[n if n != "more.zip" else "more.zip/member.dcm"]["status"]) for n in names} == dict.fromkeys(
        names, "skipped")
    assert "became a symlink" in str(records[next(iter(names))]["reason"])
    assert "no longer a regular file" in str(records["more.zip/member.dcm"]["reason"])
    assert len(_released(out)) == 2 and summary["files"] == 5


@pytest.mark.parametrize("level", [Level.ORIGINAL, Level.ANONYMIZE, Level.FULL])
def test_a_file_swapped_for_a_symlink_while_it_is_read_is_read_as_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: Level
) -> None:
    """The file is held open from the check that it is still the regular file found, and read through that
    descriptor: swapped for a symlink to a file outside the tree between the check and the read (or between the
    reads of its header and of its pixel data), it is still the file found that is read, never the link's target."""
    (source,) = make_study(tmp_path / "in", subject=35, n_series=1, n_instances=1)
    original = source.read_bytes()
    other = pydicom.dcmread(source)
    other.PixelData = bytes(255 - b for b in other.PixelData)  # (another image, so the two are told apart)
    secret = tmp_path / "elsewhere.dcm"
    other.save_as(secret)
    prepare = pipeline._prepare

    def swapped(*args: object, **kwargs: object) -> object:
        source.unlink()
        source.symlink_to(secret)
        return prepare(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_prepare", swapped)
    out = tmp_path / "out"
    options = Options(level=level, key=b"\x5a" * 32 if level is Level.FULL else None)
    summary = pipeline.anonymize_tree([tmp_path / "in"], out, options)
    assert summary.counts["written"] == 1, summary
    (released,) = files_under(out)
    assert pydicom.dcmread(released).PixelData != other.PixelData
    assert pydicom.dcmread(released).PixelData == pydicom.dcmread(pydicom.filebase.DicomBytesIO(original)).PixelData
    if level is Level.ORIGINAL:
        assert released.read_bytes() == original


def _between_plan_and_write(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """`change` is made after the file's plan (its header read) and before its output is written."""
    staged = pipeline._staged

    def changed(*args: object, **kwargs: object) -> pipeline._Steps:
        change()
        return (yield from staged(*args, **kwargs))  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_staged", changed)


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_a_file_written_to_in_place_while_it_is_read_is_not_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: Level
) -> None:
    """Rewritten in place (the same file, as a program saving over it does) between the read of its header and the
    copy of its pixel data, the output would hold the old header and the new file's bytes: it fails, is not
    released, and a rerun makes it from the file as it is then (found from outside: released, mixed)."""
    (source,) = make_study(tmp_path / "in", subject=36, n_series=1, n_instances=1)
    newer = pydicom.dcmread(source)
    newer.PatientName, newer.ImageComments = "Quaxworth^Zebulon", "written again"
    rewritten = pydicom.filebase.DicomBytesIO()
    newer.save_as(rewritten)

    def rewrite() -> None:
        with open(source, "r+b") as f:
            f.write(rewritten.getvalue())
            f.truncate()

    _between_plan_and_write(monkeypatch, rewrite)
    _failed_then_made(monkeypatch, tmp_path, Options(level=level, key=b"\x5a" * 32), "changed while it was read",
                      tmp_path / "in")


def _failed_then_made(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, options: Options, reason: str,
                      source: Path) -> None:
    """A run of `tmp_path / "in"`, with what `monkeypatch` changed, fails its one file for `reason` and releases
    nothing; the change undone, its rerun makes what a fresh run of `source` makes."""
    summary = pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "out", options, report=tmp_path / "r.jsonl")
    assert summary.counts["failed"] == 1 and not files_under(tmp_path / "out"), summary
    (record,) = read_report(tmp_path / "r.jsonl")[1]
    assert record["reason"].startswith(reason)
    monkeypatch.undo()
    assert pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "out", options).exit_code == 0
    assert pipeline.anonymize_tree([source], tmp_path / "fresh", options).exit_code == 0
    assert [p.read_bytes() for p in files_under(tmp_path / "out")] == [
        p.read_bytes() for p in files_under(tmp_path / "fresh")]


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.ORIGINAL])
@pytest.mark.parametrize("found", ["empty", "short", "same size, its time set back", "renamed over, its time set back"])
def test_a_file_written_after_it_was_found_is_not_released_as_it_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: Level, found: str
) -> None:
    """Found empty, or too short to be DICOM (a receiver or `cp` still writing it), then filled before its turn:
    it fails, and is not copied unchanged as what it was found to be (found from outside: a DICOM file, the
    patient's name in it, was released at anonymize as an "empty file: copied unchanged"); so also when what
    replaced it has its size and modification time, as `cp -p` sets it (its change time or inode tell it). The
    rerun makes it."""
    (made,) = make_study(tmp_path / "made", subject=39, n_series=1, n_instances=1)
    dicom = made.read_bytes()
    source = tmp_path / "in" / "incoming.dcm"
    source.parent.mkdir()
    source.write_bytes({"empty": b"", "short": b"DI"}.get(found, b"x" * len(dicom)))
    before = source.stat()
    opened = discover.open_as_found

    def filled(item: discover.InputFile) -> tuple[int | None, str]:
        if found.startswith("renamed"):
            (tmp_path / "new.dcm").write_bytes(dicom)
            os.replace(tmp_path / "new.dcm", source)
        else:
            source.write_bytes(dicom)
        if "time set back" in found:
            os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
        return opened(item)

    monkeypatch.setattr(pipeline, "open_as_found", filled)
    _failed_then_made(monkeypatch, tmp_path, Options(level=level), "changed since it was found", tmp_path / "made")


@pytest.mark.parametrize("change", ["chmod", "hard link", "access time", "same kind, same size and time",
                                    "a zip of the same size and time"])
@pytest.mark.parametrize("found", ["dicom", "gzip", "not dicom"])
def test_a_dicom_file_whose_status_alone_changed_after_it_was_found_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, found: str
) -> None:
    """Its change time moves with a chmod, a hard link, an access (with strictatime) or a backup's snapshot, not
    with its bytes: a DICOM file so changed is read as DICOM if its head still tells it so (found from outside:
    with two workers, one chmod of the tree during a run failed most of its files as "changed since it was found
    (written to during the run)"), and a .dcm.gz if it is still gzip (found from outside: every one failed). One
    found not DICOM, which anonymize copies unchanged, fails, since a file of the same size and time put in its
    place may be an archive holding DICOM files (found from outside: released)."""
    made = make_study(tmp_path / "made", subject=41, n_series=1, n_instances=1)[0]
    source = tmp_path / "in" / ("a.dcm.gz" if found == "gzip" else "a.dcm")
    source.parent.mkdir()
    if found == "dicom":
        shutil.copy(made, source)
    else:
        source.write_bytes(gzip.compress(made.read_bytes(), mtime=0) if found == "gzip" else b"notes\n" * 40)
    expected = source.read_bytes()
    before = source.stat()
    opened = discover.open_as_found

    def changed(item: discover.InputFile) -> tuple[int | None, str]:
        if change == "chmod":
            source.chmod(source.stat().st_mode & 0o777)  # (the same mode: its ctime moves all the same)
        elif change == "hard link":
            os.link(source, tmp_path / "elsewhere.dcm")
        elif change == "access time":
            os.utime(source, ns=(before.st_atime_ns + 10**9, before.st_mtime_ns))
        else:  # another file of its size and time put in its place (as `cp -p` does)
            if change.startswith("a zip"):
                with zipfile.ZipFile(tmp_path / "new", "w") as zf:
                    zf.writestr("x.dcm", made.read_bytes()[:40])
                (tmp_path / "new").write_bytes((tmp_path / "new").read_bytes().ljust(len(expected), b"\0"))
            else:
                (tmp_path / "new").write_bytes(expected)
            os.utime(tmp_path / "new", ns=(before.st_atime_ns, before.st_mtime_ns))
            os.replace(tmp_path / "new", source)
        assert source.stat().st_ctime_ns != before.st_ctime_ns or source.stat().st_ino != before.st_ino
        return opened(item)

    monkeypatch.setattr(pipeline, "open_as_found", changed)
    options = Options(level=Level.ANONYMIZE)
    summary = pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "out", options, report=tmp_path / "r.jsonl")
    if found == "not dicom" or change.startswith("a zip"):
        (record,) = read_report(tmp_path / "r.jsonl")[1]
        assert record["status"] == "failed" and record["reason"].startswith("changed since it was found"), record
        assert not files_under(tmp_path / "out")
        return
    assert summary.exit_code == 0 and summary.counts["written"] == 1, read_report(tmp_path / "r.jsonl")[1]
    monkeypatch.undo()
    fresh = tmp_path / "fresh-in"
    fresh.mkdir()
    (fresh / source.name).write_bytes(expected)
    assert pipeline.anonymize_tree([fresh], tmp_path / "fresh", options).exit_code == 0
    assert [p.read_bytes() for p in files_under(tmp_path / "out")] == [
        p.read_bytes() for p in files_under(tmp_path / "fresh")]


def test_a_file_cut_short_as_it_is_copied_fails_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut short (rewritten in place, `cat other > file`) while it is copied at original, a file fails as changed
    while it was read, and the files after it are done (found from outside: a traceback ended the run, the file
    without a record); one truncated before its copy is not released as the empty file it became."""
    sources = make_study(tmp_path / "in", subject=40, n_series=1, n_instances=3)
    copy_range = write.copy_range

    def cut(src: object, out: object, size: int) -> None:
        if not cut.done:  # type: ignore[attr-defined]
            cut.done = True  # type: ignore[attr-defined]
            os.truncate(sources[0], 100)
        copy_range(src, out, size)  # type: ignore[arg-type]

    cut.done = False  # type: ignore[attr-defined]
    monkeypatch.setattr(write, "copy_range", cut)
    summary = pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "out", Options(level=Level.ORIGINAL),
                                      report=tmp_path / "r.jsonl")
    records, _ = _records(tmp_path / "r.jsonl")
    assert (summary.counts["written"], summary.counts["failed"]) == (2, 1), summary
    assert len(records) == 3
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and str(failed[0]["reason"]).startswith("changed while it was read"), records
    assert len(files_under(tmp_path / "out")) == 2


def test_a_file_replaced_after_it_was_read_is_made_again_by_the_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaced by another file (renamed over it) after its worker read it: the output is the file read, and the
    journal holds that file's size and time, so the rerun sees the change and makes the output again (found from
    outside: the journal held the new file's, and the rerun kept the old output)."""
    (source,) = make_study(tmp_path / "in", subject=38, n_series=1, n_instances=1)
    newer = pydicom.dcmread(source)
    newer.PixelData = bytes(255 - b for b in newer.PixelData)  # (another image)
    newer.ImageComments = "written again"  # (another size)
    replacement = tmp_path / "replacement.dcm"
    newer.save_as(replacement)
    _between_plan_and_write(monkeypatch, lambda: os.replace(replacement, source))
    options = Options(level=Level.ANONYMIZE)
    assert pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "out", options).exit_code == 0
    monkeypatch.undo()
    assert pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "out", options).exit_code == 0
    assert pipeline.anonymize_tree([tmp_path / "in"], tmp_path / "fresh", options).exit_code == 0
    ((out,), (fresh,)) = files_under(tmp_path / "out"), files_under(tmp_path / "fresh")
    assert out.read_bytes() == fresh.read_bytes()


def test_follow_symlinks_never_reads_the_runs_own_folders(tmp_path: Path) -> None:
    """A link inside the input to the output is a skipped record: the output is never read back as input (each
    rerun nested another copy of it)."""
    source = tmp_path / "in"
    make_study(source, subject=38, n_series=1, n_instances=2)
    (tmp_path / "out").mkdir()
    (source / "to-out").symlink_to(tmp_path / "out", target_is_directory=True)
    report = tmp_path / "report.jsonl"
    args = ["anonymize", str(source), "-o", str(tmp_path / "out"), "--follow-symlinks", "--report", str(report),
            "-q", "--force"]
    for _ in range(2):
        assert main(args) == 0
        records, summary = _records(report)
        assert summary["written"] == 2 and len(_released(tmp_path / "out")) == 2
        assert records["to-out"]["status"] == "skipped" and "output" in str(records["to-out"]["reason"])


def test_follow_symlinks_never_follows_a_link_to_a_folder_holding_the_input(tmp_path: Path) -> None:
    """A link to the input's parent is a loop (the input is in it); a link to another folder is followed, but the
    run's output, report and journal in it are not read (found from outside: a link `up -> ..` walked the run's
    output again and again, and copied its report, journal and the key beside them into the output)."""
    project = tmp_path / "project"
    source = project / "in"
    make_study(source, subject=39, n_series=1, n_instances=2)
    (source / "up").symlink_to("..", target_is_directory=True)
    (project / "project.key").write_text("ab" * 32)
    site = tmp_path / "site"
    site.mkdir()
    (source / "beside").symlink_to(site, target_is_directory=True)
    report = site / "report.jsonl"
    args = ["anonymize", str(source), "-o", str(site / "out"), "--follow-symlinks", "--report", str(report), "-q"]
    assert main(args) == 0
    records, summary = _records(report)
    assert records["up"]["status"] == "skipped" and "a loop" in str(records["up"]["reason"])
    assert summary["written"] == 2 and len(_released(site / "out")) == 2, records.keys()
    for own in ("beside/out", "beside/report.jsonl", "beside/.out.neuroanon-journal", "beside/.out.neuroanon-work"):
        assert records[own]["status"] == "skipped" and "this run's own" in str(records[own]["reason"]), own
    assert not any(name.startswith("beside/project") for name in records)  # (the input's parent: a loop)


def test_a_hard_link_to_the_key_inside_the_input_is_not_read(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Another name of the key file is the key: below full it was copied into the release (found from outside).
    (Below full no --key-file is given: the per-user key is the one to keep.)"""
    source = tmp_path / "in"
    make_study(source, subject=42, n_series=1, n_instances=1)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    key = tmp_path / "config" / "neuroanon" / "key"
    key.parent.mkdir(parents=True)
    key.write_text("ab" * 32)
    (source / "notes.bin").hardlink_to(key)
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "anonymize",
                 "--report", str(report), "-q"]) == 0
    records, _ = _records(report)
    assert "its key or lookup file: not read" in str(records["notes.bin"]["reason"]), records["notes.bin"]
    assert not (tmp_path / "out" / "notes.bin").exists()


def test_a_run_without_a_key_ignores_a_key_folder_it_cannot_enter(tmp_path: Path) -> None:
    """Found from outside: with the per-user key's folder unreadable (a service account that kept another user's
    HOME), a run at anonymize, which reads no key, failed: "<HOME>/.config/neuroanon/key: Permission denied"."""
    source = tmp_path / "in"
    make_study(source, subject=43, n_series=1, n_instances=1)
    config = tmp_path / "config"
    (config / "neuroanon").mkdir(parents=True)
    config.chmod(0)
    try:
        run, full = (subprocess.run([*COMMAND, str(source), "-o", str(tmp_path / level), "--level", level, "-q"],
                                    capture_output=True, text=True, env={**ENV, "XDG_CONFIG_HOME": str(config)},
                                    preexec_fn=_without_root_reads, timeout=120) for level in ("anonymize", "full"))
    finally:
        config.chmod(0o700)
    assert run.returncode == 0 and not run.stderr, run.stderr
    assert len(files_under(tmp_path / "anonymize")) == 1
    # at full the key is needed: a usage error that says what to do (it was "...: Permission denied", exit 1)
    key = config / "neuroanon" / "key"
    assert full.returncode == 2 and full.stderr == (
        f"neuroanon: cannot read or create the key file {key}: Permission denied; give --key-file, or set "
        "XDG_CONFIG_HOME (or HOME) to a folder this user may write\n"), full.stderr


def test_follow_symlinks_never_reads_the_key_or_the_lookup_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a followed link leads to the key or the lookup file, neither is read as input: below full it was
    copied into the release (found from outside). (Below full the per-user key is the one to keep.)"""
    source = tmp_path / "in"
    make_study(source, subject=41, n_series=1, n_instances=1)
    site = tmp_path / "site"
    (site / "neuroanon").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(site))
    (site / "neuroanon" / "key").write_text("ab" * 32)
    (site / "ids.csv").write_text("original,new\nPID-FAKE-0001,SUBJ-01\n")
    (source / "site").symlink_to(site, target_is_directory=True)
    report = tmp_path / "report.jsonl"
    for level, private in (("anonymize", []), ("full", ["--lookup", str(site / "ids.csv")])):
        out = tmp_path / level
        assert main(["anonymize", str(source), "-o", str(out), "--level", level, "--follow-symlinks", *private,
                     "--report", str(report), *(["--report-paths"] if level == "full" else []), "-q"]) == 0
        records, _ = _records(report)
        for name in ("site/neuroanon/key", "site/ids.csv") if level == "full" else ("site/neuroanon/key",):
            assert "its key or lookup file: not read" in str(records[name]["reason"]), records[name]
        assert not list(out.rglob("key"))


# --- unreadable input ---------------------------------------------------------------------------------------------

_PR_CAPBSET_DROP, _CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 24, 1, 2


def _without_root_reads() -> None:
    """In the child before exec: root reads any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); drop those
    capabilities, so that permissions deny reads as they do for any user (the test suite runs as root in CI)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
            if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_locked(root: Path, out: Path, report: Path, *locked: Path) -> subprocess.CompletedProcess[str]:
    """A run over `root` with the `locked` files and folders unreadable (mode 0, read without root's override)."""
    modes = {path: path.stat().st_mode & 0o7777 for path in locked}
    for path in locked:
        path.chmod(0)
    try:
        return subprocess.run([*COMMAND, str(root), "-o", str(out), "--report", str(report)], capture_output=True,
                              text=True, env=ENV, preexec_fn=_without_root_reads, timeout=120)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_an_unreadable_file_and_folder_are_failed_records_and_the_run_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "in"
    files = make_study(root, subject=33, n_series=2, n_instances=2)
    locked_file, locked_folder = files[0], tmp_path / "in" / "private"
    make_study(locked_folder, subject=34, n_series=1, n_instances=1)
    report = tmp_path / "report.jsonl"
    run = _run_locked(root, tmp_path / "out", report, locked_file, locked_folder)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    records, summary = _records(report)
    file_name = locked_file.relative_to(root).as_posix()
    assert records[file_name]["status"] == "failed" and "permission denied" in str(records[file_name]["reason"])
    assert records["private"]["status"] == "failed" and "folder unreadable" in str(records["private"]["reason"])
    assert summary["written"] == 3 and summary["failed"] == 2
    assert file_name in run.stderr and "private" in run.stderr


def test_an_input_folder_that_cannot_be_listed_is_a_failed_record_that_says_it_is_the_input(tmp_path: Path) -> None:
    """Found from outside: the only input, unreadable, was named "." with "folder unreadable", as if a folder
    inside it were meant."""
    root = tmp_path / "in"
    make_study(root, subject=35, n_series=1, n_instances=1)
    report = tmp_path / "report.jsonl"
    run = _run_locked(root, tmp_path / "out", report, root)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "failed: .: the input folder itself unreadable: permission denied" in run.stderr, run.stderr
    records, summary = _records(report)
    assert records["."]["status"] == "failed" and summary["failed"] == 1


def _counted(shown: str, level: str) -> tuple[int, int] | None:
    """The files a stopped run's summary on the terminal counts, and how many it says were written (None: no
    summary, which a run that finished no file does not show)."""
    found = re.match(rf"(\d+) files? at level {level} in [\d.]+ s: (\d+) written,", shown)  # ("1 file")
    return (int(found[1]), int(found[2])) if found else None


# --- a full disk ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "mount_point"), [(1, False), (2, False), (2, True)])
def test_a_full_disk_stops_the_run_cleanly_and_says_why_once(
    small_disk: Path, tmp_path: Path, workers: int, mount_point: bool
) -> None:
    """The output on a full disk, in a folder of it or (`mount_point`) the disk itself, the work folder then on
    another file system."""
    source = tmp_path / "in"
    # 80 x 256 KiB: more than 6 MB, a batch of 32 files (`BATCH`) more than the disk holds
    make_many(source, 80, subject=35, rows=512, columns=256, per_folder=40)
    out, report = small_disk if mount_point else small_disk / "out", tmp_path / "report.jsonl"
    run = subprocess.run([*COMMAND, str(source), "-o", str(out), "--report", str(report), "-j", str(workers)],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.count("no space left on device") == 1, run.stderr
    assert "run the same command again to resume" in run.stderr
    records, summary = _records(report)
    assert summary["stopped"] == "no space left on device"
    assert summary["written"] == len(records) < 80, "not one file failed; the run stopped"
    # what every batch staged before the disk filled up is released: with two workers the other's batch may fill
    # the disk before the first batch writes a file (it plans all its files first); then only the other's are
    assert records or workers > 1
    # found from outside: a run released 1 file of the 5 the disk had room for, each rerun one more: what the later
    # batch staged was discarded with the batch that met the full disk. The disk is left full: no room is left
    # for more than the file each worker was writing when it met the full disk.
    space = os.statvfs(small_disk)
    largest = max(((out / name).stat().st_size for name in _released(out)), default=128 << 10)
    # (and the room the journal kept for its lines, given back at the end, when the journal is on that disk)
    room = space.f_blocks * space.f_frsize // 16 if not mount_point else 0
    assert space.f_bavail * space.f_frsize < (workers + 1) * largest + room, "room left for more files: not released"
    shown = (len(records), len(records)) if records else None  # (a run that finished no file shows no summary)
    assert _counted(run.stdout, "anonymize") == shown, "the terminal shows what was done"
    assert f"the run stopped after {len(records)} file{'' if len(records) == 1 else 's'}" in run.stderr
    if mount_point:
        assert not list(tmp_path.glob(".disk.neuroanon-work")), "the work folder was left"
    else:
        assert sorted(os.listdir(small_disk)) == [".out.neuroanon-journal", "out"], "work folder or temp files left"
    written = _released(out)
    assert len(written) == len(records), "a file under a final name the run did not finish"
    reference = tmp_path / "reference"
    assert main(["anonymize", str(source), "-o", str(reference), "-q"]) == 0
    for name in written:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), "a half-written output"


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_on_a_full_disk_the_journal_still_takes_the_lines_of_the_files_staged(small_disk: Path, tmp_path: Path) -> None:
    """Found in CI (the test above, once): the journal, beside the output on the full disk, could not take the line
    of a file staged before the disk filled up; the run stopped there and discarded what the workers had staged
    (a 6 MB disk left half free). Many small files, two workers: the journal needs a new page of the disk after
    the disk is full, unless the room it kept for its lines (`write.LINES_AHEAD`) is there."""
    source = tmp_path / "in"
    make_many(source, 600, subject=36, rows=32, columns=32, per_folder=100)  # about 8 KiB on the disk each
    out, report = small_disk / "out", tmp_path / "report.jsonl"
    run = subprocess.run([*COMMAND, str(source), "-o", str(out), "--report", str(report), "-j", "2"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert f"no space left on device writing {out}: the run stopped after" in run.stderr, run.stderr
    records, summary = _records(report)
    assert summary["written"] == len(records) == len(_released(out)) < 600
    # all that the disk held was released: its free space is the room the journal gave back when the run ended,
    # less what the journal's lines took of it, and at most a file a worker and the main process were writing
    largest = max((out / name).stat().st_size for name in _released(out))
    space = os.statvfs(small_disk)
    room = space.f_blocks * space.f_frsize // 16  # (at most a sixteenth of the free space: `write.LINES_AHEAD`)
    assert space.f_bavail * space.f_frsize < room + 3 * (largest + 4096), "staged files discarded"
    assert os.stat(journal_path(out)).st_blocks * 512 <= os.stat(journal_path(out)).st_size + 4096, "room kept"


@pytest.mark.parametrize("small_disk", ["2m"], indirect=True)
def test_on_a_full_disk_holding_the_report_every_released_file_has_its_record(small_disk: Path, tmp_path: Path) -> None:
    """Found from outside (twice): output, report and mapping on one small disk, two workers, at full (a record's
    line about 7 KB): the report's kept room ran out as the disk filled up, a file was released and journalled, and
    its record could not be written; the summary said one more written than the report held. Room for a record is
    now kept before its file is released: the run stops before a file the report could not take."""
    source, key = tmp_path / "in", tmp_path / "key"
    make_many(source, 400, subject=37, rows=16, columns=16, per_folder=100)
    key.write_text(KEY_TEXT)
    out, report = small_disk / "out", small_disk / "report.jsonl"
    run = subprocess.run([*COMMAND, str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "-q",
                          "--report", str(report), "--mapping", str(small_disk / "mapping.csv"), "-j", "2"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "no space left on device writing" in run.stderr and "the run stopped after" in run.stderr, run.stderr
    records, summary = _records(report)
    assert summary["stopped"] == "no space left on device"
    reported = sorted(str(r["output"]) for r in records.values() if r["status"] == "written")
    assert reported == sorted(_released(out)) and summary["written"] == len(reported) < 400


@pytest.mark.parametrize("small_disk", ["1m"], indirect=True)
def test_the_journal_report_and_mapping_take_their_lines_on_a_disk_filled_after_they_were_opened(
        small_disk: Path, tmp_path: Path) -> None:
    """The room each file a run appends to keeps past its end: 100 lines (more than a page of the disk, which the
    test above may meet the full disk for) fit after the disk filled up, and the room is given back at close."""
    source = tmp_path / "input.dcm"
    source.write_bytes(b"fake")
    options = Options(level=Level.ANONYMIZE)
    journal_file = Journal(small_disk / "out", options, [source], resumable=False)
    report_file = ReportWriter(small_disk / "report.jsonl", options=options)
    mapping_file = SubjectMapping(small_disk / "mapping.csv", lambda _: None)
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()
    for i in range(100):
        record = Record(f"folder/file{i:04}.dcm", Status.WRITTEN, "anonymized", f"folder/file{i:04}.dcm")
        journal_file.add(record.input, source, record)
        report_file.write(record)
        mapping_file.add(f"FAKE-ORIGINAL-{i:04}", f"SUBJ{i:04}")
    journal_file.close()
    report_file.close()
    mapping_file.close()
    assert Journal(small_disk / "out", options, [source], resumable=True).finished("folder/file0099.dcm", source)
    assert len((small_disk / "report.jsonl").read_text().splitlines()) == 101  # (the provenance first)
    assert len((small_disk / "mapping.csv").read_text().splitlines()) == 101  # (the header first)
    for path in (journal_path(small_disk / "out"), small_disk / "report.jsonl", small_disk / "mapping.csv"):
        assert os.stat(path).st_blocks * 512 < os.stat(path).st_size + 4096, f"{path.name}: room not given back"


def test_a_file_system_that_keeps_no_room_is_not_asked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a file system without fallocate (NFS 3, ZFS) each line would cost two more calls, on NFS round trips."""
    asked = []

    def unsupported(fd: int, mode: int, offset: int, length: int) -> int:
        asked.append(offset)
        ctypes.set_errno(errno.EOPNOTSUPP)
        return -1

    monkeypatch.setattr(write, "_FALLOCATE", unsupported)
    monkeypatch.setattr(write, "_NO_ROOM", set())
    fd = os.open(tmp_path / "lines", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    lines = [f"line {i} {'x' * 100}\n" for i in range(3)]  # (long enough to want room past a page's slack)
    for line in lines:
        write.append_line(fd, line)
    write.close_lines(fd)
    assert len(asked) == 1 and (tmp_path / "lines").read_text() == "".join(lines)


def test_a_run_refused_by_a_full_disk_leaves_nothing_it_made(small_disk: Path, tmp_path: Path) -> None:
    """Found from outside: refused for a full disk (exit 2), a run left an empty journal beside its output and an
    empty report, or a report of its provenance alone, behind."""
    source = tmp_path / "in"
    make_study(source, subject=50, n_series=1, n_instances=2)
    with contextlib.suppress(OSError), open(small_disk / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
    for report, refused in ((small_disk / "report.jsonl", "cannot write the report"),
                            (tmp_path / "report.jsonl", "cannot write the journal beside")):
        run = subprocess.run([*COMMAND, str(source), "-o", str(small_disk / "out"), "--report", str(report)],
                             capture_output=True, text=True, env=ENV, timeout=120)
        assert run.returncode == 2 and refused in run.stderr and "no space left on device" in run.stderr, run.stderr
        assert os.listdir(small_disk) == ["filler"] and not report.exists()


def test_a_run_refused_for_a_report_another_run_holds_leaves_that_report(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs into two outputs with one report, begun at once: the other run makes and holds the report between
    this run's look (no report yet) and its own open, which is refused. The refused run removes what it made, not
    the other run's report (found on review: it unlinked it, and the other run wrote its records to no file)."""
    report = tmp_path / "report.jsonl"
    held: list[int] = []

    def other_run_holds_it(*args: object, **kwargs: object) -> None:
        fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        held.append(fd)
        os.write(fd, b'{"provenance": "the other run"}\n')
        write.claim(fd, "held")  # (an open file description of its own: this run's claim is refused)
        write.claim(os.open(report, os.O_WRONLY | os.O_APPEND), "the report is being written by another run")

    monkeypatch.setattr(pipeline, "ReportWriter", other_run_holds_it)
    try:
        with pytest.raises(UsageError, match="another run"):
            pipeline._records(tmp_path / "out", Options(level=Level.ANONYMIZE), [tmp_path], report, None, None, False)
        assert report.read_bytes() == b'{"provenance": "the other run"}\n'
    finally:
        for fd in held:
            os.close(fd)


def test_a_quarantine_that_fills_up_holds_no_half_written_file(small_disk: Path, tmp_path: Path) -> None:
    """The quarantine on its own (full) disk: a held-back file is copied there under a temporary name, never
    under its final one."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(60):  # 60 x 128 KiB held back at full (burned-in annotation): more than 6 MB
        held = make_dataset(subject=36, instance=i, rows=256, columns=256)
        held.Modality, held.BurnedInAnnotation = "US", "YES"
        held.save_as(source / f"us{i:02d}.dcm", enforce_file_format=True)
    key = tmp_path / "key"
    key.write_text("3c" * 32)
    args = [str(source), "--level", "full", "--key-file", str(key), "-q"]
    run = subprocess.run([*COMMAND, *args, "-o", str(tmp_path / "out"), "--quarantine", str(small_disk / "held")],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.count("no space left on device") == 1, run.stderr
    assert f"no space left on device writing {small_disk / 'held'}:" in run.stderr, "the quarantine is named"
    reference = tmp_path / "reference-held"
    reference.mkdir()
    left = reference / f".us00.dcm{write.TMP_SUFFIX}"  # as a run killed mid-copy would leave it
    left.write_bytes(b"half")
    assert main(["anonymize", *args, "-o", str(tmp_path / "reference"), "--quarantine", str(reference)]) == 1
    assert not left.exists(), "a temporary copy an interrupted run left in the quarantine"
    kept = [p for p in files_under(small_disk / "held") if p.suffix == ".dcm" or "neuroanon" in p.name]
    assert 0 < len(kept) < 60
    for path in kept:
        twin = reference / path.relative_to(small_disk / "held")
        assert twin.exists() and path.read_bytes() == twin.read_bytes(), "a half-written file in the quarantine"


def test_a_file_whose_place_is_a_folder_fails_alone_and_leaves_no_copy_in_an_output_on_another_disk(
    small_disk: Path, tmp_path: Path
) -> None:
    """The output a disk of its own (the file copied beside it, then renamed) that holds a folder where a file is
    to go: the run stopped, and the file's private copy was left in the output."""
    source = tmp_path / "in"
    make_study(source, subject=50, n_series=1, n_instances=2)
    first = files_under(source)[0]
    first.rename(source / "x")
    (small_disk / "x").mkdir()
    (small_disk / "x" / "kept.txt").write_text("not the run's")
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(source), "-o", str(small_disk), "--force", "--report", str(report), "-q"]) == 1
    records, summary = _records(report)
    assert "stopped" not in summary
    assert records["x"]["status"] == "failed", records["x"]
    assert "a file or folder already in the output holds its path" in str(records["x"]["reason"])
    assert not [p for p in small_disk.rglob("*") if write.TMP_SUFFIX in p.name], "a copy left in the output"
    assert [p.relative_to(small_disk).as_posix() for p in files_under(small_disk / "x")] == ["x/kept.txt"]


def test_a_report_that_cannot_grow_holds_whole_lines_and_is_named_as_what_stopped_the_run(tmp_path: Path) -> None:
    """The report's file passes the size limit (EFBIG, as ENOSPC on its own full disk) while the output has room:
    the message blamed the output, and the report ended in half a JSON line (found from outside)."""
    source = tmp_path / "in"
    make_study(source, subject=48, n_series=1, n_instances=12)
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    limit = 8192  # an output is some 6 KB, a record some 1.3 KB, a journal line 0.4 KB: the report passes it first

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run = subprocess.run([*COMMAND, str(source), "-o", str(out), "--report", str(report), "-q"],
                         capture_output=True, text=True, env=ENV, timeout=120, preexec_fn=limited)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"file too large writing {report}: the run stopped after" in run.stderr, run.stderr
    assert str(out) not in run.stderr.replace(str(report), ""), "the output is not what could not be written"
    data = report.read_bytes()
    assert data.endswith(b"\n") and 0 < len(data) <= limit
    lines = [json.loads(line) for line in data.splitlines()]  # every line whole
    assert "provenance" in lines[0] and 1 < len(lines) < 14


def test_a_run_stopped_by_its_output_says_where_its_report_is(tmp_path: Path) -> None:
    """The output archive passes the size limit (EFBIG, as ENOSPC on a full disk): the stopped run showed its counts
    but not the "report: FILE" line a finished run shows, though the report holds its records (found from outside)."""
    source = tmp_path / "in"
    make_study(source, subject=49, n_series=1, n_instances=12)
    out, report = tmp_path / "out.zip", tmp_path / "report.jsonl"
    limit = 20000  # an output is some 6 KB: the archive passes it at its fourth member; the report does not

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run = subprocess.run([*COMMAND, str(source), "-o", str(out), "--report", str(report), "-q", "-j", "1"],
                         capture_output=True, text=True, env=ENV, timeout=120, preexec_fn=limited)
    assert run.returncode == 1 and f"file too large writing {out}: the run stopped after" in run.stderr, run.stderr
    records, summary = _records(report)
    assert summary["stopped"] == "file too large" and _counted(run.stdout, "anonymize") == (len(records),) * 2
    assert run.stdout.splitlines()[-1] == f"report: {report}"


def test_a_low_limit_of_open_files_takes_smaller_batches_not_failed_files(tmp_path: Path) -> None:
    """Under a limit of 40 open files a worker's batch of 32 inputs, each held open from its read to its check, ran
    out of descriptors and failed files that one worker wrote (found from outside): batches are smaller there."""
    source = tmp_path / "in"
    make_many(source, 80, subject=49)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    run = subprocess.run([*COMMAND, str(source), "-o", str(tmp_path / "out"), "--level", "anonymize", "--workers",
                          "2", "-q"], capture_output=True, text=True, env=ENV, timeout=120, preexec_fn=limited)
    assert run.returncode == 0, run.stderr
    assert len(files_under(tmp_path / "out")) == 80


def test_a_mapping_file_on_a_full_disk_is_named_as_what_stopped_the_run(small_disk: Path, tmp_path: Path) -> None:
    """--mapping on its own disk, which fills up while the output has room: the message blamed the output (found
    from outside). The mapping keeps whole lines, and a rerun once there is room lists every subject once."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(60):  # 60 subjects, a line of 84 bytes each: more than the page left
        ds = make_dataset(subject=49, instance=i)
        ds.PatientID = f"PID-FAKE-{i:04d}".ljust(64, "X")
        ds.save_as(source / f"{i:02d}.dcm", enforce_file_format=True)
    filler = small_disk / "filler"
    filler.write_bytes(bytes((6 << 20) - 4096))
    key, mapping = tmp_path / "key", small_disk / "ids.csv"
    key.write_text(KEY_TEXT)
    args = [*COMMAND, str(source), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key),
            "--mapping", str(mapping), "-q"]
    run = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"no space left on device writing {mapping}: the run stopped after" in run.stderr, run.stderr
    assert "PID-FAKE" not in run.stderr
    listed = mapping.read_bytes()
    assert listed.endswith(b"\r\n") and 1 < listed.count(b"\r\n") < 61, "half a line"
    filler.unlink()
    assert subprocess.run(args, env=ENV, timeout=120).returncode == 0
    rows = mapping.read_text().splitlines()
    assert rows[0] == "original,new" and len(rows) == 61 == len({row.split(",")[0] for row in rows})


def test_a_rerun_after_inputs_changed_leaves_the_release_a_fresh_run_gives(tmp_path: Path) -> None:
    """An input truncated since, another given a corrected PatientID: a rerun into the same folder withdraws what
    they gave before (the first is now a failed record, the second goes to another subject's folder)."""
    source = tmp_path / "in"
    files = make_study(source, subject=37, n_series=1, n_instances=4)
    key = tmp_path / "key"
    key.write_text("5f" * 32)
    args = ["anonymize", str(source), "--level", "full", "--key-file", str(key), "-q"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    files[0].write_bytes(files[0].read_bytes()[:500])
    corrected = pydicom.dcmread(files[1])
    corrected.PatientID = "PID-FAKE-CORRECTED"
    corrected.save_as(files[1])
    assert main([*args, "-o", str(tmp_path / "out")]) == 1
    assert main([*args, "-o", str(tmp_path / "fresh")]) == 1
    rerun, fresh = _released(tmp_path / "out"), _released(tmp_path / "fresh")
    assert rerun == fresh and len(fresh) == 3
    assert all((tmp_path / "out" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes() for name in fresh)
    folders = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*") if p.is_dir())
    assert folders == sorted(p.relative_to(tmp_path / "fresh") for p in (tmp_path / "fresh").rglob("*") if p.is_dir())


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_a_rerun_makes_again_an_output_cut_short_after_its_run(tmp_path: Path, level: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: an output cut short after a finished run (a copy interrupted, a disk error) was kept by
    the rerun and reported written. The journal holds each released file's size: the rerun makes it again, and
    keeps the others as they are."""
    source = tmp_path / "in"
    make_study(source, subject=38, n_series=1, n_instances=3)
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    out = tmp_path / "out"
    keyed = ["--key-file", str(key)] if level == "full" else []
    args = ["anonymize", str(source), "--level", level, *keyed, "-o", str(out), "-q"]
    assert main(args) == 0
    names = _released(out)
    whole = {name: (out / name).read_bytes() for name in names}
    cut, kept = out / names[0], out / names[1]
    cut.write_bytes(whole[names[0]][:300])
    kept_stamp = kept.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--report", str(tmp_path / "report.jsonl")]) == 0
    assert {name: (out / name).read_bytes() for name in _released(out)} == whole
    assert kept.stat().st_mtime_ns == kept_stamp  # (taken up, not made again)
    records = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in records if "status" in r) == ["written"] * 3


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_an_output_begun_from_other_inputs_is_refused(tmp_path: Path, level: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: a delivery from another folder, run into the output of an earlier one, was matched to it
    by its files' names below the folder. The earlier outputs were withdrawn (full) or written over (anonymize),
    and files of the same size and time were never read, yet said written. Such a run is refused in one line
    before it writes anything; the same inputs named another way (a relative path, another order) resume."""
    first, second, third = tmp_path / "first", tmp_path / "second", tmp_path / "third"
    made = [make_study(root, subject=subject, n_series=1, n_instances=2) for root, subject in
            ((first, 73), (second, 74), (third, 75))]
    for earlier, later in zip(made[0], made[1], strict=True):  # another subject's files: same names, sizes, times
        assert earlier.stat().st_size == later.stat().st_size
        named = tmp_path / "delivery" / earlier.relative_to(first)
        named.parent.mkdir(parents=True, exist_ok=True)
        later.rename(named)
        os.utime(named, ns=(earlier.stat().st_atime_ns, earlier.stat().st_mtime_ns))
    second = tmp_path / "delivery"
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    args = ["anonymize", "--level", level, *(["--key-file", str(key)] if level == "full" else []), "-q"]
    out = tmp_path / "out"
    assert main([*args, str(first), "-o", str(out)]) == 0
    released = {name: (out / name).read_bytes() for name in _released(out)}
    assert len(released) == 2
    capsys.readouterr()
    for others in ([second], [first, third]):
        assert main([*args, *map(str, others), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"the output {out} was begun from other inputs" in err and len(err.splitlines()) == 1, err
        assert {name: (out / name).read_bytes() for name in _released(out)} == released
    monkeypatch.chdir(tmp_path)
    assert main([*args, "first", "-o", str(out)]) == 0
    assert {name: (out / name).read_bytes() for name in _released(out)} == released
    both = tmp_path / "both"
    assert main([*args, str(first), str(third), "-o", str(both)]) == 0
    assert main([*args, "third", "first", "-o", str(both)]) == 0


@pytest.mark.parametrize("arrival", ["other-content", "corrected-patient-id"])
def test_a_rerun_keeps_a_finished_instance_from_an_input_before_it_that_holds_its_uid(tmp_path: Path,
                                                                                       arrival: str) -> None:
    """After a run released an instance, an input that comes before it in input order and holds its SOP Instance
    UID arrives (other content, or a copy with a corrected PatientID): the rerun fails it, as one run would have
    failed one of the two, and the released file stays as it was (found from outside: it was written over the
    finished one's output, whose record still said written; or the instance was released under two pseudonyms)."""
    source = tmp_path / "in"
    files = make_study(source, subject=40, n_series=1, n_instances=2)
    key = tmp_path / "key"
    key.write_text("7a" * 32)
    report = tmp_path / "report.jsonl"
    args = ["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key), "-q",
            "--report", str(report), "--report-paths"]
    assert main(args) == 0
    before = {name: (tmp_path / "out" / name).read_bytes() for name in _released(tmp_path / "out")}
    arrived = pydicom.dcmread(files[1])
    if arrival == "other-content":
        arrived.InstanceNumber = 99
    else:
        arrived.PatientID = "PID-FAKE-CORRECTED"
    assert source / "000-arrived.dcm" not in files and files[1].parent != source  # (walked before files[1])
    arrived.save_as(source / "000-arrived.dcm")
    assert main(args) == 1
    records, summary = _records(report)
    assert records["000-arrived.dcm"]["status"] == "failed", records["000-arrived.dcm"]
    assert summary["written"] == 2 and summary["failed"] == 1
    after = {name: (tmp_path / "out" / name).read_bytes() for name in _released(tmp_path / "out")}
    assert after == before


def test_a_file_system_without_modes_or_locks_still_takes_the_run(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An exFAT disk refuses chmod; an NFS mount without a lock service refuses flock (ENOLCK). Neither is another
    run or a full disk: the files are released with the mode the file system gives, the report and mapping are
    written unheld."""
    make_study(tmp_path / "in", subject=39, n_series=1, n_instances=2)
    key = tmp_path / "key"
    key.write_text("6e" * 32)

    real_chmod = os.chmod

    def refused(path: Path, mode: int) -> None:
        if tmp_path / "out" in Path(path).parents:
            raise OSError(errno.EPERM, "Operation not permitted")
        real_chmod(path, mode)

    def no_locks(*_: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(os, "chmod", refused)
    # (write's own reference: the run's work folder, beside the output, is still locked as ever)
    monkeypatch.setattr(write, "fcntl", SimpleNamespace(flock=no_locks, LOCK_EX=0, LOCK_NB=0))
    report, mapping = tmp_path / "report.jsonl", tmp_path / "mapping.csv"
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--level", "full", "--key-file",
                 str(key), "--report", str(report), "--mapping", str(mapping), "-q"]) == 0
    assert len(_released(tmp_path / "out")) == 2
    assert _records(report)[1]["written"] == 2 and mapping.read_text().count("\n") == 2


# --- interruption --------------------------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _started_run(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str], Path]:
    """A run at full (slow enough to be caught mid-way) with two workers in its own process group, returned with
    its arguments once it has committed some files."""
    source = tmp_path / "in"
    make_many(source, 1500, subject=36, per_folder=250)
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    out = tmp_path / "out"
    args = ["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "-q", "--report",
            str(tmp_path / "report.jsonl")]
    run = subprocess.Popen([*COMMAND[:-1], *args, "-j", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=ENV, start_new_session=True)
    journal = tmp_path / ".out.neuroanon-journal"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journalled(journal) > 40 and len(_children(run.pid)) >= 2):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.02)
    return run, args, out


@pytest.mark.parametrize(("signum", "status", "group"), [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True),
                                                         (signal.SIGTERM, 143, True), (signal.SIGHUP, 129, True)])
def test_sigterm_and_ctrl_c_stop_the_workers_and_say_a_rerun_resumes(
    tmp_path: Path, signum: signal.Signals, status: int, group: bool
) -> None:
    """SIGTERM to the run's process, and Ctrl-C, SIGTERM or SIGHUP to its whole process group, workers included (a
    terminal's Ctrl-C, `systemctl stop`, a batch system's cancel, a terminal closed): the run stops cleanly and says
    so (SIGHUP ended it by the signal, the report without its summary: found from outside)."""
    run, args, out = _started_run(tmp_path)
    workers = _children(run.pid)
    for pid in workers:  # (else a worker that a group's signal ended first would break the pool under the parent)
        mask = re.search(r"^SigIgn:\s*([0-9a-f]+)$", Path(f"/proc/{pid}/status").read_text(), re.M)
        assert mask is not None
        ignored = int(mask[1], 16)
        assert all(ignored >> (s - 1) & 1 for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)), "a worker stops"
    os.killpg(run.pid, signum) if group else run.send_signal(signum)
    shown, err = run.communicate(timeout=60)
    assert run.returncode == status, err
    assert "Traceback" not in err and f"stopped by {signum.name}; run the same command again to resume" in err
    summary = read_report(tmp_path / "report.jsonl")[2]
    assert (summary["stopped"], summary["signal"]) == ("interrupted", signum.name), summary
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "a worker process outlived the run"
    _assert_resumed(shown, args, out)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_while_the_pool_ends_ends_the_run(tmp_path: Path, signum: signal.Signals, status: int) -> None:
    """A stop that came while the run joined its workers after the last file left the join half done: the run said
    it stopped and then never ended (found from outside). strace slows each wait for a worker by 0.4 s, so that the
    signal falls there."""
    strace = require_tool("strace", beside_python=False)
    source, key, out = tmp_path / "in", tmp_path / "key", tmp_path / "out"
    make_many(source, 30, subject=7, per_folder=30)
    key.write_text(KEY_TEXT)
    args = ["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "-q", "-j", "2"]
    slowed = [strace, "-f", "-qq", "-o", os.devnull, "-e", "trace=wait4", "-e", "inject=wait4:delay_enter=400000"]
    run = subprocess.Popen([*slowed, *COMMAND[:-1], *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=ENV, start_new_session=True)
    journal = tmp_path / ".out.neuroanon-journal"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journalled(journal) >= 30):  # every file done: the run ends its pool
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.002)
    time.sleep(0.05)
    parent = min(_children(run.pid))  # (strace's child: the run)
    os.kill(parent, signum)
    try:
        _, err = run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
        pytest.fail("the run said it stopped and did not end")
    assert run.returncode == status, err
    assert "Traceback" not in err and "run the same command again to resume" in err


# A stop (argv[1]) delivered once the report holds the run's (or the dry run's) summary.
_STOPPED_ONCE_SUMMED_UP = """
import os, signal, sys
from neuroanon import report
from neuroanon.cli import main
signum, real = getattr(signal, sys.argv[1]), report.ReportWriter.write

def write(self, entry, line=None):
    real(self, entry, line)
    if isinstance(entry, dict) and "summary" in entry:
        os.kill(os.getpid(), signum)

report.ReportWriter.write = write
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("dry", [False, True])
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_once_the_report_holds_the_summary_leaves_the_run_finished(tmp_path: Path, signum: str,
                                                                          dry: bool) -> None:
    """Found from outside: a stop sent as the report's summary appeared ended a finished run with exit 143 (130,
    129) and "run the same command again to resume"; nothing was left to do. A dry run said "stopped ... nothing
    was written"."""
    source = tmp_path / "in"
    make_study(source, subject=44, n_series=1, n_instances=3)
    report = tmp_path / "report.jsonl"
    run = subprocess.run([sys.executable, "-c", _STOPPED_ONCE_SUMMED_UP, signum, "anonymize", str(source), "-o",
                          str(tmp_path / "out"), "--level", "anonymize", "--report", str(report), "-j", "1",
                          *(["--dry-run"] if dry else [])], capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    summary = read_report(report)[2]
    assert summary["written"] == 3 and "stopped" not in summary, summary
    assert len(_released(tmp_path / "out")) == (0 if dry else 3)


def _assert_resumed(shown: str, args: list[str], out: Path) -> None:
    """A stopped run left no staged file in the output, showed what it released, and a rerun finishes the rest."""
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "a staged file in the output"
    done = len(_released(out))
    assert 0 < done < 1500
    assert _counted(shown, "full") == (done, done), "the terminal shows what was done before the stop"
    assert main(args) == 0, "the rerun resumes"
    assert len(_released(out)) == 1500


def test_a_worker_killed_from_outside_stops_the_run_with_one_line_and_a_rerun_resumes(tmp_path: Path) -> None:
    """A worker killed outright (by hand, by the system for memory): one line says so, no traceback; what was
    released stays, and a rerun finishes it."""
    run, args, out = _started_run(tmp_path)
    os.kill(min(_children(run.pid)), signal.SIGKILL)
    shown, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "a worker process died" in err and "run the same command again to resume" in err
    _assert_resumed(shown, args, out)


_RESULTS_FD: list[int] = []  # the write end of a pool's results pipe, inherited by its forked workers


def _send_half_a_result(sent: Path) -> None:
    """In a worker: announce a result of 1,000 bytes on the pool's results pipe, send 10 of them, say so, hang."""
    os.write(_RESULTS_FD[0], struct.pack("!i", 1000) + b"x" * 10)
    sent.touch()
    time.sleep(600)


def test_workers_stopped_while_sending_a_result_leave_no_thread_waiting(tmp_path: Path) -> None:
    """A worker killed mid-way through sending its result (a stop at the wrong moment) left the pool's thread
    waiting for the rest of the message, and the stopped run hung at exit (seen as a SIGTERMed run that said
    it stopped and never ended)."""
    pool = pipeline.worker_pool(2)
    _RESULTS_FD[:] = [pool._result_queue._writer.fileno()]  # type: ignore[attr-defined]
    sent = tmp_path / "sent"
    try:
        pool.submit(_send_half_a_result, sent)
        thread = cast(threading.Thread, pool._executor_manager_thread)  # (typeshed says otherwise)
        deadline = time.monotonic() + 60
        while not sent.exists():  # once half a message is in the pipe, the pool's thread will wait for the rest
            assert time.monotonic() < deadline, "the worker never sent its half"
            time.sleep(0.01)
        pipeline._stop_workers(pool)
        thread.join(10)
        assert not thread.is_alive(), "the pool's thread still waits for a result no worker will finish"
    finally:
        _RESULTS_FD.clear()


def test_workers_stopped_leave_no_pool_thread_for_the_exit(tmp_path: Path) -> None:
    """Found from outside (2 runs of 100 stopped on a full disk): at exit Python 3.11 wakes a pool's thread still
    running through a pipe that thread may be closing, and printed a traceback. The thread has ended when the
    workers are stopped."""
    for _ in range(5):
        pool = pipeline.worker_pool(2)
        futures = [pool.submit(time.sleep, 600) for _ in range(2)]
        thread = cast(threading.Thread, pool._executor_manager_thread)  # (typeshed says otherwise)
        deadline = time.monotonic() + 60
        while not all(f.running() for f in futures):
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.01)
        pipeline._stop_workers(pool)
        assert not thread.is_alive(), "the pool's thread is left for the exit"


def test_a_stop_asked_while_a_worker_died_is_the_stop() -> None:
    """A worker's batch broken (its worker gone) while a stop was asked: the run stops for the stop, as asked."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    broken: Future[int] = Future()
    broken.set_exception(BrokenProcessPool("a worker died"))
    with pytest.raises(BrokenProcessPool):
        stops.wait(broken)
    stops.install()
    try:
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            with pytest.raises(Terminated):
                stops.wait(broken)
    finally:
        stops.uninstall()


def test_a_worker_found_dead_when_a_batch_is_given_stops_the_run_as_when_its_result_is_awaited(
        tmp_path: Path) -> None:
    """The pool may learn that a worker died (killed from outside) when the next batch is submitted, before any
    result is awaited: the run stops with the same one line (seen once in CI as a traceback); a stop asked
    meanwhile is the stop."""
    from collections import deque
    from concurrent.futures import Executor
    from concurrent.futures.process import BrokenProcessPool

    from neuroanon.context import RunContext

    class Broken:
        def submit(self, *args: object) -> None:
            raise BrokenProcessPool("a worker died")

    (source,) = make_study(tmp_path / "in", subject=62, n_series=1, n_instances=1)
    item = next(iter(discover.discover([tmp_path / "in"])))
    run = RunContext.of(Options(level=Level.ANONYMIZE))
    with pytest.raises(WorkerDied):
        pipeline._submit(cast(Executor, Broken()), [(item, "a.dcm")], deque(), tmp_path, run)
    stops.install()
    try:
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            with pytest.raises(Terminated):
                pipeline._submit(cast(Executor, Broken()), [(item, "a.dcm")], deque(), tmp_path, run)
    finally:
        stops.uninstall()


def test_a_stop_asked_mid_run_is_raised_where_the_run_checks_not_where_python_may_swallow_it() -> None:
    """Raised at once, a stop could land in a finalizer or a pool's weakref callback, where Python only prints it
    (a run SIGINTed by a test once finished with status 0): during a run it is recorded and raised at a check."""
    stops.install()
    try:
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run by now, and raised nothing
            with pytest.raises(Terminated):
                stops.check()
            stops.check()  # raised once
        with pytest.raises(KeyboardInterrupt) as at_end, stops.deferred():  # (another run)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert at_end.type is KeyboardInterrupt, "a stop asked in the block is raised as it ends"
        stops.install()  # (another command)
        with pytest.raises(KeyboardInterrupt):  # outside a run: at once, as Python does
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        stops.uninstall()
    finally:
        stops.uninstall()


def test_a_stop_asked_again_while_the_run_stops_changes_nothing() -> None:
    """Found from outside: a second Ctrl-C (or a signal sent to the process group and again to the process) was
    raised in the first one's clean-up: workers were left running and the process waited for them for ever, or
    it ended in a traceback. Once a stop is raised, another is dropped, until the next run."""
    stops.install()
    try:
        with pytest.raises(Terminated), stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            try:
                stops.check()
            finally:  # (the clean-up of the stop)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # dropped: nothing raised here
        os.kill(os.getpid(), signal.SIGTERM)  # also outside the run, once it stopped
        time.sleep(0.05)
        with pytest.raises(KeyboardInterrupt), stops.deferred():  # the next run: stops count again
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    finally:
        stops.uninstall()


def test_workers_die_when_their_parent_is_killed(tmp_path: Path) -> None:
    run, _, out = _started_run(tmp_path)
    workers = _children(run.pid)
    run.kill()
    run.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "workers outlived a SIGKILLed parent"
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "a staged file in the output"
    work = tmp_path / ".out.neuroanon-work"
    assert work.is_dir() and (work.stat().st_mode & 0o777) == 0o700, "staged files wait in the private work folder"


# --- one output, one run -------------------------------------------------------------------------------------------


def test_a_second_run_into_the_same_output_is_refused_while_the_first_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, args, _ = _started_run(tmp_path)
    try:
        assert main([*args[:-1], str(tmp_path / "second.jsonl")]) == 2  # (its own report: the first's is in use)
        assert "another neuroanon run is writing to" in capsys.readouterr().err
    finally:
        run.terminate()
        run.communicate(timeout=60)
    assert run.returncode == 143


def test_a_non_empty_folder_no_run_began_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    make_study(source, subject=37, n_series=1, n_instances=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "theirs.txt").write_text("someone else's file")
    assert main(["anonymize", str(source), "-o", str(out), "-q"]) == 2
    assert "--force" in capsys.readouterr().err and _released(out) == ["theirs.txt"]
    assert main(["anonymize", str(source), "-o", str(out), "-q", "--force"]) == 0
    assert len(_released(out)) == 3 and (out / "theirs.txt").read_text() == "someone else's file"


def test_other_options_are_refused_and_the_advice_never_mixes_two_option_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    make_study(source, subject=38, n_series=1, n_instances=2)
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "-q"]) == 0
    full = ["anonymize", str(source), "-o", str(out), "-q", "--level", "full", "--key-file", str(key)]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert f"the output {out} was begun at level anonymize (this run: full)" in err and "delete" not in err
    (tmp_path / ".out.neuroanon-journal").unlink()  # what a user might still do
    assert main(full) == 2, "without its journal the folder is one no run began"
    assert "--force" in capsys.readouterr().err


def test_a_refused_rerun_names_the_output_and_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: "the output was begun with other options or another key" named neither the output nor
    what differed. The journal keeps the level, the key's fingerprint (never the key) and the options in clear."""
    from neuroanon.keys import key_fingerprint

    source = tmp_path / "in"
    make_study(source, subject=35, n_series=1, n_instances=2)
    key, other, lookup = tmp_path / "key", tmp_path / "other", tmp_path / "ids.csv"
    key.write_text(KEY_TEXT)
    other.write_text("ef" * 32)
    lookup.write_text("original,new\nPID-NONE,SUBJ-01\n")
    out = tmp_path / "out"
    args = ["anonymize", str(source), "-o", str(out), "-q"]
    assert main([*args, "--level", "full", "--key-file", str(key)]) == 0
    released = {name: (out / name).read_bytes() for name in _released(out)}
    capsys.readouterr()
    first, second = key_fingerprint(bytes.fromhex(KEY_TEXT)), key_fingerprint(bytes.fromhex("ef" * 32))
    for given, differs in (
        (["--level", "full", "--key-file", str(other)], f"with the key {first} (this run's: {second})"),
        (["--level", "full", "--key-file", str(key), "--shift-dates"], "with other values of --shift-dates"),
        (["--level", "anonymize"], "at level full (this run: anonymize)"),
        (["--level", "full", "--key-file", str(key), "--lookup", str(lookup)], "with another lookup table"),
    ):
        assert main([*args, *given]) == 2
        err = capsys.readouterr().err
        assert err == (f"neuroanon: the output {out} was begun {differs}; rerun with the options it was begun "
                       "with, or use a new or empty output folder\n"), err
        assert KEY_TEXT not in err and "ef" * 32 not in err
    assert {name: (out / name).read_bytes() for name in _released(out)} == released


@pytest.mark.parametrize("damage", ["emptied", "garbled"])
def test_an_empty_or_damaged_journal_is_refused_naming_the_output(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: an emptied journal (a crash before its first line reached the disk, a disk error) turned
    off the check of the options and the key: a rerun with another key wrote its files beside the first key's. A
    garbled first line was said to hold other options, and the same options were refused again. Both are refused
    in one line naming the output and saying why, and that --force writes beside the folder's files (found from
    outside: it was said to begin the run again, and a rerun with another key then left both keys' files)."""
    source = tmp_path / "in"
    make_study(source, subject=36, n_series=1, n_instances=2)
    key, other = tmp_path / "key", tmp_path / "other"
    key.write_text(KEY_TEXT)
    other.write_text("ef" * 32)
    out = tmp_path / "out"
    args = ["anonymize", str(source), "-o", str(out), "-q", "--level", "full"]
    assert main([*args, "--key-file", str(key)]) == 0
    released = {name: (out / name).read_bytes() for name in _released(out)}
    journal = tmp_path / ".out.neuroanon-journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"" if damage == "emptied" else b"garbage\n" + b"".join(lines[1:]))
    capsys.readouterr()
    for given in (other, key):
        assert main([*args, "--key-file", str(given)]) == 2
        err = capsys.readouterr().err
        assert f"the output {out} (.out.neuroanon-journal, beside it) is empty or damaged" in err, err
        assert "with --force the run writes beside its files" in err and len(err.splitlines()) == 1, err
        assert {name: (out / name).read_bytes() for name in _released(out)} == released
    assert main([*args, "--key-file", str(key), "--force"]) == 0
    assert {name: (out / name).read_bytes() for name in _released(out)} == released


def test_staged_and_held_back_files_never_enter_the_output(tmp_path: Path) -> None:
    """At full, secondary captures are held back (burned-in risk): not one byte of them reaches the output, even
    while the run is under way."""
    source = tmp_path / "in"
    make_many(source, 400, subject=39, per_folder=100)
    capture = make_dataset(subject=39)
    capture.BurnedInAnnotation = "YES"  # held back at full
    capture.save_as(source / "part001" / "capture.dcm", enforce_file_format=True)
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    out = tmp_path / "out"
    run = subprocess.Popen([*COMMAND, str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "-j",
                            "2", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    seen: set[str] = set()
    while run.poll() is None:
        for _, folders, names in os.walk(out):
            seen.update(name for name in folders + names if name.startswith("."))
        time.sleep(0.01)
    assert run.returncode == 1, run.stderr.read() if run.stderr else ""
    assert not seen, f"staged files appeared in the output: {sorted(seen)[:3]}"
    assert len(_released(out)) == 400 and not (tmp_path / ".out.neuroanon-work").exists()


# --- no PatientID ---------------------------------------------------------------------------------------------------


def _without(paths: list[Path], *keywords: str) -> list[Path]:
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword in keywords:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(path)
    return paths


def _full(source: Path, out: Path, tmp_path: Path, *extra: str) -> dict[str, dict[str, object]]:
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    report = tmp_path / f"{out.name}.jsonl"
    main(["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "--report",
          str(report), "--report-paths", "-q", *extra])
    return _records(report)[0]


def test_without_patient_id_the_subject_comes_from_name_and_birth_date_the_same_in_every_file(tmp_path: Path) -> None:
    source = tmp_path / "in"
    _without(make_study(source / "a", subject=41, n_series=2, n_instances=3), "PatientID")
    _without(make_study(source / "b", subject=42, n_series=1, n_instances=2), "PatientID")
    records = _full(source, tmp_path / "out", tmp_path)
    assert all(r["status"] == "written" for r in records.values())
    subjects: dict[str, set[str]] = {"a": set(), "b": set()}
    names: dict[str, set[str]] = {"a": set(), "b": set()}
    for name, record in records.items():
        output = tmp_path / "out" / str(record["output"])
        subjects[name[0]].add(str(record["output"]).split("/")[0])
        names[name[0]].add(str(pydicom.dcmread(output, stop_before_pixels=True).PatientName))
    assert len(subjects["a"]) == len(subjects["b"]) == 1, "one person's files went to several subjects"
    assert subjects["a"] != subjects["b"] and names["a"] != names["b"], "two people were taken for one"
    assert names["a"] == subjects["a"] and names["b"] == subjects["b"], "PatientName is the subject's pseudonym"


def test_without_any_patient_identity_the_study_keeps_its_files_together(tmp_path: Path) -> None:
    source = tmp_path / "in"
    _without(make_study(source, subject=43, n_series=2, n_instances=2), "PatientID", "PatientName")
    records = _full(source, tmp_path / "out", tmp_path)
    assert len({str(r["output"]).split("/")[0] for r in records.values()}) == 1
    assert len({str(r["output"]).split("/")[2] for r in records.values()}) == 2, "the two series kept apart"


def test_one_instance_in_several_transfer_syntaxes_has_one_output(tmp_path: Path) -> None:
    source = tmp_path / "in"
    for encoding in ("explicit_le", "implicit_le", "explicit_be", "deflated", "rle"):
        _without(make_study(source / encoding, subject=44, n_series=1, n_instances=1, encoding=encoding),
                 "PatientID")
    records = _full(source, tmp_path / "out", tmp_path)
    statuses = sorted(str(r["status"]) for r in records.values())
    assert statuses == ["skipped"] * 4 + ["written"], records
    assert all(str(r["reason"]).startswith("duplicate instance") and str(r["reason"]).endswith(
        "(its output would be in another transfer syntax)") for r in records.values() if r["status"] == "skipped")
    assert len(_released(tmp_path / "out")) == 1


@pytest.mark.parametrize("change", ["PatientID", "StudyInstanceUID"])
def test_one_instance_under_two_identities_is_released_once(tmp_path: Path, change: str) -> None:
    """The same SOP Instance UID under two PatientIDs (a study sent again after a correction) or in two studies:
    both were released, under two subjects with one new UID (hunt 8: G05). The first keeps it; the second fails,
    naming the first, on a rerun too. An exact copy is still a skipped duplicate."""
    source = tmp_path / "in"
    for folder in ("a", "b"):
        (source / folder).mkdir(parents=True)
    first, second = make_dataset(subject=45), make_dataset(subject=45)
    setattr(second, change, "PID-FAKE-0046" if change == "PatientID" else "1.2.826.0.1.3680043.10.1047.46")
    first.save_as(source / "a" / "1.dcm", enforce_file_format=True)
    second.save_as(source / "b" / "2.dcm", enforce_file_format=True)
    first.save_as(source / "b" / "3.dcm", enforce_file_format=True)  # an exact copy of the first
    for run in ("first run", "rerun"):
        records = _full(source, tmp_path / "out", tmp_path)
        assert records["a/1.dcm"]["status"] == "written", run
        assert records["b/2.dcm"]["status"] == "failed" and records["b/2.dcm"]["same_as"] == "a/1.dcm", run
        assert "another input with this SOP Instance UID was released" in str(records["b/2.dcm"]["reason"])
        assert records["b/3.dcm"]["status"] == "skipped" and "duplicate instance" in str(records["b/3.dcm"]["reason"])
        assert len(_released(tmp_path / "out")) == 1, run
    anonymized = tmp_path / "anonymized"
    assert main(["anonymize", str(source), "-o", str(anonymized), "-q"]) == 0, "below full, paths are the inputs'"


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_an_element_of_unknown_vr_fails_with_its_cause(tmp_path: Path, level: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """pydicom raises NotImplementedError on a VR it does not know: a reason in words, not an exception's name."""
    path = make_study(tmp_path / "in", subject=47, n_series=1, n_instances=1)[0]
    data = path.read_bytes()
    at = data.index(b"\x10\x00\x10\x00PN")  # PatientName, explicit VR little endian
    path.write_bytes(data[:at + 4] + b"QX" + data[at + 6:])
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    report = tmp_path / "report.jsonl"
    full = ["--key-file", str(key), "--report-paths"] if level == "full" else []
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--level", level, "--report",
                 str(report), "-q", *full]) == 1
    (record,) = _records(report)[0].values()
    assert record["status"] == "failed"
    assert record["reason"] == "malformed (unknown VR) and not written back by pydicom (an element of unknown VR)"
    assert "Traceback" not in capsys.readouterr().err


def test_a_duplicate_instance_says_whether_its_output_would_be_the_same_bytes(tmp_path: Path) -> None:
    """A copy of a file is skipped, another file with its instance UID fails (its content is not released); the
    reason tells them apart, so a reader can find the one whose content would be lost."""
    source = tmp_path / "in"
    first = make_study(source / "a", subject=45, n_series=1, n_instances=1)[0]
    (source / "b").mkdir()
    shutil.copyfile(first, source / "b" / "copy.dcm")
    other = pydicom.dcmread(first)
    other.PixelData = bytes(len(other.PixelData))
    other.save_as(source / "b" / "other.dcm")
    records = _full(source, tmp_path / "out", tmp_path)
    assert [records[k]["status"] for k in sorted(records)] == ["written", "skipped", "failed"], records
    assert str(records["b/copy.dcm"]["reason"]).endswith("not written (its output would be the same bytes)")
    assert str(records["b/other.dcm"]["reason"]).endswith("not written (its output would be other bytes)")
    assert records["b/copy.dcm"]["same_as"] == records["b/other.dcm"]["same_as"] == str(first.relative_to(source))
    rerun = _full(source, tmp_path / "out", tmp_path)  # (the records taken up from the journal)
    assert {k: (r["status"], r["reason"], r.get("same_as")) for k, r in rerun.items()} == {
        k: (r["status"], r["reason"], r.get("same_as")) for k, r in records.items()}, "the rerun names the first too"


def test_a_duplicate_instance_with_other_content_is_a_file_not_released(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One SOP Instance UID, other pixel data: the second was skipped, with no line on the terminal and exit 0, so
    a script checking the exit status never learned that an image was dropped (found from outside). It fails, a
    line names it, exit 1. A copy (the same output bytes) is a skipped duplicate, exit 0."""
    source = tmp_path / "in"
    first = make_study(source, subject=51, n_series=1, n_instances=1)[0]
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    args = ["anonymize", str(source), "--level", "full", "--key-file", str(key)]
    shutil.copyfile(first, source / "copy.dcm")
    assert main([*args, "-o", str(tmp_path / "copy")]) == 0
    assert "copy.dcm" not in capsys.readouterr().err
    other = pydicom.dcmread(first)
    other.PixelData = bytes(len(other.PixelData))
    other.save_as(source / "other.dcm")
    assert main([*args, "-o", str(tmp_path / "other")]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "other.dcm" in line]
    assert line == ("failed: other.dcm: duplicate instance: another input has its output path; not written (its "
                    "output would be other bytes)")


def test_a_duplicates_report_and_journal_name_the_first_input_by_its_token(tmp_path: Path) -> None:
    """At full a file's name may hold a patient's: the input a duplicate gave way to is named as inputs are."""
    source = tmp_path / "in"
    first = make_study(source, subject=46, n_series=1, n_instances=1)[0]
    first.rename(source / "Quxworth_Zelda.dcm")
    shutil.copyfile(source / "Quxworth_Zelda.dcm", source / "ZQ-4471-0093.dcm")
    capture = make_dataset(subject=46)
    capture.BurnedInAnnotation = "YES"  # held back at full, and its copy with it
    capture.save_as(source / "Quxworth_capture.dcm", enforce_file_format=True)
    capture.save_as(source / "ZQ-4471_capture.dcm", enforce_file_format=True)
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    report = tmp_path / "full.jsonl"
    main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key),
          "--report", str(report), "-q"])
    records = [json.loads(line) for line in report.read_text().splitlines()[1:-1]]
    assert sorted(r["status"] for r in records) == ["quarantined", "quarantined", "skipped", "written"], records
    inputs = {r["input"] for r in records}
    assert all(r["same_as"] in inputs for r in records if r["status"] == "skipped" or "same instance" in r["reason"])
    for name in ("quxworth", "zq-4471"):
        assert name not in report.read_text().casefold()
        assert name not in journal_path(tmp_path / "out").read_text().casefold()


# --- counting --------------------------------------------------------------------------------------------------------


def test_duplicates_of_a_held_back_file_are_held_back_and_copies_are_counted(tmp_path: Path) -> None:
    source = tmp_path / "in"
    make_study(source, subject=45, n_series=1, n_instances=2)
    capture = make_dataset(subject=45)
    capture.BurnedInAnnotation = "YES"  # held back at full
    capture.save_as(source / "capture.dcm", enforce_file_format=True)
    capture.save_as(source / "capture-again.dcm", enforce_file_format=True)
    (source / "notes.txt").write_text("not DICOM")
    key = tmp_path / "key"
    key.write_text(KEY_TEXT)
    report = tmp_path / "full.jsonl"
    assert main(["anonymize", str(source), "-o", str(tmp_path / "full"), "--level", "full", "--key-file", str(key),
                 "--report", str(report), "--report-paths", "-q"]) == 1
    records, summary = _records(report)
    for name in ("capture.dcm", "capture-again.dcm"):
        assert records[name]["status"] == "quarantined" and records[name]["output"] is None, name
    assert "held back, not written (no --quarantine folder)" in str(records["capture-again.dcm"]["reason"])
    assert records["capture.dcm"]["reason"] == "same instance as another input, which was held back"
    assert records["capture.dcm"]["same_as"] == "capture-again.dcm"
    assert summary["quarantined"] == 2 and summary["held_back"] == 2 and summary["skipped"] == 1  # notes.txt
    report = tmp_path / "anonymize.jsonl"
    assert main(["anonymize", str(source), "-o", str(tmp_path / "anon"), "--report", str(report), "-q"]) == 0
    records, summary = _records(report)
    assert records["notes.txt"]["status"] == "written" and summary["copied_not_dicom"] == 1


def test_an_output_that_is_a_file_or_a_report_that_cannot_be_written_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    make_study(source, subject=46, n_series=1, n_instances=1)
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert main(["anonymize", str(source), "-o", str(taken), "-q"]) == 2
    assert "is an existing file" in capsys.readouterr().err and taken.read_text() == "a file"
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--report", str(taken / "r.jsonl")]) == 2
    assert "cannot write the report" in capsys.readouterr().err
    assert not (tmp_path / ".out.neuroanon-work").exists(), "the work folder of a refused run was left"


def test_a_rerun_with_follow_symlinks_follows_what_the_first_run_skipped(linked_tree: Path, tmp_path: Path) -> None:
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    assert main(["anonymize", str(linked_tree), "-o", str(out), "-q"]) == 0
    assert main(["anonymize", str(linked_tree), "-o", str(out), "--report", str(report), "-q",
                 "--follow-symlinks"]) == 0
    records, _ = _records(report)
    assert records["one.dcm"]["status"] == "written" and (out / "one.dcm").is_file()


def test_the_journal_writes_a_list_of_changes_once_and_gives_each_file_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "CHANGES_KEPT", 2)  # a table of two lists: the third starts a new one
    out, source = tmp_path / "out", tmp_path / "input.dcm"
    out.mkdir()
    source.write_bytes(b"fake")
    options = Options(level=Level.FULL, key=b"k" * 32)
    first, second, third = ((Change(f"(0010,00{n}0)", "Name", "replaced"),) for n in (1, 2, 3))
    given = [first, first, second, (Change("(0010,0010)", "Name", "replaced"),), third, first]
    written = Journal(out, options, [source], resumable=False)
    for i, changes in enumerate(given):
        written.add(f"f{i}", source, Record(f"f{i}", Status.WRITTEN, "", f"o{i}", changes=changes))
    written.close()
    lists = [line for line in written.path.read_text().splitlines() if line.startswith('{"list": ')]
    assert [line[:11] for line in lists] == ['{"list": 0,', '{"list": 1,', '{"list": 2,', '{"list": 3,']
    resumed = Journal(out, options, [source], resumable=True)
    resumed.add("f6", source, Record("f6", Status.WRITTEN, "", "o6", changes=second))  # numbered 4, not 0 again
    resumed.close()
    again = Journal(out, options, [source], resumable=True)
    records = [again.finished(f"f{i}", source) for i in range(7)]
    assert [r.changes if r else None for r in records] == [*given, second]
    assert '{"list": 4,' in again.path.read_text()


def test_a_journal_line_that_holds_no_record_has_its_input_done_again(tmp_path: Path) -> None:
    """A rerun reads an earlier run's records from its journal when asked for them: a line a killed run cut short,
    or one without a record or with a list of changes that is not there, leaves its input to be done again."""
    out, source = tmp_path / "out", tmp_path / "input.dcm"
    out.mkdir()
    source.write_bytes(b"fake")
    options = Options(level=Level.ANONYMIZE)
    written = Journal(out, options, [source], resumable=False)
    for name in ("kept", "no-status", "no-list", "cut"):
        written.add(name, source, Record(name, Status.WRITTEN, "", f"{name}.dcm", changes=()))
    written.close()
    lines = written.path.read_text().splitlines(keepends=True)
    broken = [line.replace('"status": "written", ', "") if '"no-status"' in line else
              line.replace('"changes": 0', '"changes": 9') if '"no-list"' in line else line for line in lines]
    written.path.write_text("".join(broken)[:-20])  # the last line cut short
    again = Journal(out, options, [source], resumable=True)
    kept = again.finished("kept", source)
    assert kept is not None and kept.output == "kept.dcm" and kept.status is Status.WRITTEN
    assert [again.finished(name, source) for name in ("no-status", "no-list", "cut")] == [None, None, None]
    assert again.replaced("kept", source) is None  # unchanged since
    again.close()


def test_a_full_disk_when_a_worker_makes_its_stage_folder_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(RunStopped, match="no space left on device"):
        pipeline.own_stage(tmp_path / "stage")


def test_a_journal_line_cut_short_by_a_stop_is_passed_over(tmp_path: Path) -> None:
    source = tmp_path / "in"
    make_study(source, subject=47, n_series=1, n_instances=3)
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "-q"]) == 0
    journal = tmp_path / ".out.neuroanon-journal"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # the last line cut, as a full disk leaves it
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(source), "-o", str(out), "--report", str(report), "-q"]) == 0
    assert main(["anonymize", str(source), "-o", str(out), "--report", str(report), "-q"]) == 0
    records, summary = _records(report)
    assert summary["written"] == 3 and len(_released(out)) == 3


def test_a_file_gone_after_its_folder_was_listed_fails_and_is_no_broken_symlink(tmp_path: Path) -> None:
    """A file removed or moved between the listing of its folder and its reading (an audit removed files
    mid-run): a `failed` record that says so, not a skipped "broken symlink" that let the run end with status 0."""
    from neuroanon.context import RunContext
    from neuroanon.discover import Kind, _classify

    gone, link = tmp_path / "IM0001.dcm", tmp_path / "link.dcm"
    link.symlink_to(tmp_path / "nowhere.dcm")
    item = _classify(gone, tmp_path, gone.name)
    assert (item.kind, item.note) == (Kind.UNREADABLE, "not found: removed or moved during the run")
    assert _classify(link, tmp_path, link.name, follow=True).kind is Kind.LINK
    run = RunContext.of(Options(level=Level.FULL, key=b"\x5a" * 32))
    record = pipeline.prepare(item, item.relative, tmp_path / "stage", run).record
    assert record.status is Status.FAILED and "removed or moved" in record.reason


# --- a batch's steps -----------------------------------------------------------------------------------------------


def _batch(tmp_path: Path) -> list[tuple[discover.InputFile, str]]:
    """Files that take three steps (DICOM files, one of them with pixel data past the first read), one (not DICOM)
    and three at once (deflated: its plan holds all 2 MB of it, more than a file may hold while the others go on)."""
    source = tmp_path / "in"
    make_study(source, subject=48, n_series=2, n_instances=3)
    (source / "notes.txt").write_text("not DICOM")
    beyond = make_dataset(subject=48, instance=8, rows=1024, columns=1024)
    beyond.save_as(source / "beyond.dcm", enforce_file_format=True)
    big = make_dataset(subject=48, instance=9, rows=1024, columns=1024)
    big.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    big.save_as(source / "big.dcm", enforce_file_format=True)
    return [(item, item.relative) for item in discover.discover([source])]


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_a_batch_plans_then_writes_then_checks_and_gives_what_each_file_alone_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: Level) -> None:
    """A worker's batch plans its files, then writes them, then checks them (each step's code stays in the
    processor's caches): its outcomes, in the batch's order, are those of each file prepared alone, byte for byte."""
    from neuroanon.context import RunContext

    items = _batch(tmp_path)
    run = RunContext.of(Options(level=level, key=b"\x5a" * 32))
    alone = [pipeline.prepare(item, name, tmp_path / "alone", run) for item, name in items]
    steps: list[str] = []

    def noted(step: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            steps.append(step)
            return real(*args)
        return call

    monkeypatch.setattr(pipeline, "_anonymize", noted("plan", pipeline._anonymize))
    monkeypatch.setattr(pipeline, "_hold_reason", noted("check", pipeline._hold_reason))
    batched = pipeline._prepare_batch(items, tmp_path / "batch", run)
    assert [p.record for p in batched] == [p.record for p in alone]
    for one, other in zip(batched, alone, strict=True):
        assert (one.staged is None) == (other.staged is None)
        assert one.staged is None or Path(one.staged).read_bytes() == Path(cast(str, other.staged)).read_bytes()
    # (not plan, check, plan, check...; the large one, which holds more than a step may keep, at once)
    dicom = [name for item, name in items if item.kind is discover.Kind.DICOM]
    big = dicom.index("big.dcm")
    rest = len(dicom) - big - 1
    assert steps == ["plan"] * big + ["plan", "check"] + ["plan"] * rest + ["check"] * (len(dicom) - 1), steps


@pytest.mark.parametrize("step", ["write", "check"])
def test_a_batch_that_meets_a_full_disk_gives_the_files_before_it_and_leaves_nothing_of_those_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """The disk fills as the batch writes its fourth file, or as it checks it (a held-back file's review images go
    to the quarantine): the three before are given (the run releases them, then stops), the others' descriptors
    closed and nothing of theirs left staged."""
    from neuroanon.context import RunContext

    source = tmp_path / "in"
    make_study(source, subject=49, n_series=1, n_instances=6)
    items = [(item, item.relative) for item in discover.discover([source])]
    calls = []

    def filling(real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            calls.append(args)
            if len(calls) == 4:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args)
        return call

    if step == "write":
        monkeypatch.setattr(pipeline, "Staged", filling(write.Staged))
    else:
        monkeypatch.setattr(pipeline, "_hold_reason", filling(pipeline._hold_reason))
    open_before = len(os.listdir("/proc/self/fd"))
    run = RunContext.of(Options(level=Level.FULL, key=b"\x5a" * 32))
    prepared = pipeline._prepare_batch(items, tmp_path / "stage", run)
    assert [p.record.input for p in prepared] == [name for _, name in items[:3]]
    assert all(p.record.status is Status.WRITTEN for p in prepared)
    staged = {str(p) for p in (tmp_path / "stage").rglob("*") if p.is_file()}
    assert staged == {p.staged for p in prepared}
    assert len(os.listdir("/proc/self/fd")) == open_before


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_a_file_with_no_data_set_after_its_preamble_or_file_meta_fails_with_one_line(
        tmp_path: Path, level: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A file cut short after its preamble, or after its file meta, holds no data set: it was 'written' as an
    empty instance (found from outside). It fails, the run says why in one line, and nothing is written for it."""
    source = tmp_path / "in"
    (good,) = make_study(source, subject=61, n_series=1, n_instances=1)
    data = good.read_bytes()
    (meta_length,) = struct.unpack("<L", data[140:144])
    (source / "preamble-only.dcm").write_bytes(data[:132])
    (source / "meta-only.dcm").write_bytes(data[:144 + meta_length])
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ["anonymize", str(source), "-o", str(out), "--level", level, "--report", str(report)]
    key = tmp_path / "key"
    key.write_bytes(b"\x5a" * 32)
    assert main(args + (["--key-file", str(key), "--report-paths"] if level == "full" else [])) == 1
    records, _ = _records(report)
    for name in ("preamble-only.dcm", "meta-only.dcm"):
        assert records[name]["status"] == "failed"
        assert records[name]["reason"] == "no data set after the file meta (a file cut short?): not anonymized"
    assert len(_released(out)) == 1
    said = capsys.readouterr()
    assert said.err.count("no data set after the file meta") == 2 and "Traceback" not in said.out + said.err


@pytest.mark.parametrize("held", [False, True], ids=["written", "quarantined"])
def test_a_staged_file_that_is_not_there_stops_the_run_saying_why(tmp_path: Path, held: bool) -> None:
    """A Dask worker that does not see the output's folder stages its files elsewhere: the run stopped with "no such
    file or directory writing <the quarantine>" (found from outside). It says what is missing, and where."""
    from neuroanon.pipeline import Prepared, commit
    from neuroanon.tables import Claims

    stage = tmp_path / "work" / "stage"
    stage.mkdir(parents=True)
    record = Record("a.dcm", Status.QUARANTINED if held else Status.WRITTEN, "", "s/t/u.dcm")
    options = Options(level=Level.FULL, key=b"k" * 32, quarantine=tmp_path / "held")
    with pytest.raises(RunStopped, match="a prepared file is not where its worker staged it") as stopped:
        commit(Prepared(record, str(stage / "gone")), tmp_path / "out", options, Claims())
    assert stopped.value.place == stage
