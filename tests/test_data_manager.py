"""What a data manager expects: a dry run that writes nothing, --dicom-only, and the --mapping file."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import signal
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pytest

from neuroanon.cli import main
from neuroanon.errors import UsageError
from neuroanon.keys import load_lookup
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.sample import make_dataset, make_study, planted_values

from .helpers import comparable_report, files_under, read_report


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "project.key"
    path.write_text("5e" * 32)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two subjects, an image that is held back at full, a non-DICOM file and a truncated file."""
    root = tmp_path / "in"
    make_study(root / "a", subject=41, n_series=1, n_instances=2)
    make_study(root / "b", subject=42, n_series=1, n_instances=2)
    us = make_dataset(subject=41, series=7)
    us.Modality, us.BurnedInAnnotation = "US", "YES"
    us.save_as(root / "us.dcm", enforce_file_format=True)
    (root / "readme.txt").write_text("fake notes")
    data = (root / "us.dcm").read_bytes()
    (root / "cut.dcm").write_bytes(data[:-64])
    return root


def test_a_dry_run_refuses_the_output_the_run_would_refuse(tree: Path, tmp_path: Path, key_file: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An output begun with other options, or a non-empty folder no run began: the dry run is refused as the run
    would be (it said what a run would write, and the run was then refused)."""
    args = ["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "-q"]
    assert main([*args, "-o", str(tmp_path / "begun")]) == 1
    assert main([*args, "-o", str(tmp_path / "begun"), "--shift-dates", "--dry-run"]) == 2
    assert f"the output {tmp_path / 'begun'} was begun with other values of --shift-dates" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("fake notes")
    assert main([*args, "-o", str(tmp_path / "other"), "--dry-run"]) == 2
    assert "no neuroanon run began it" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "other"), "--dry-run", "--force"]) == 1
    assert main([*args, "-o", str(tmp_path / "begun"), "--dry-run"]) == 1


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_dry_run_writes_nothing_and_tells_what_a_run_would_do(
    level: str, tree: Path, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keyed = ["--key-file", str(key_file)] if level == "full" else []
    common = [str(tree), "--level", level, *keyed, "--workers", "2"]
    reports = tmp_path / "reports"
    reports.mkdir()
    before = _snapshot(tmp_path)
    dry = reports / "dry.jsonl"
    assert main(["anonymize", *common, "-o", str(tmp_path / "out"), "--dry-run", "--report", str(dry)]) == 1
    after = _snapshot(tmp_path)
    assert set(after) - set(before) == {str(dry)}, "a dry run wrote something besides its report"
    out = capsys.readouterr().out
    assert "nothing was written" in out
    assert "would fail: cut.dcm: truncated" in out
    if level == "full":
        assert "would hold back: us.dcm: burned-in annotation risk" in out
        assert "would skip: readme.txt: not DICOM" in out
    else:
        assert "would write: readme.txt -> readme.txt (not DICOM: copied unchanged)" in out
    # The real run does what the dry run said, to the record.
    real = reports / "real.jsonl"
    assert main(["anonymize", *common, "-o", str(tmp_path / "out"), "--report", str(real)]) == 1
    assert comparable_report(dry) == comparable_report(real)
    _, records, _ = read_report(real)
    assert sorted(r["output"] for r in records if r["status"] == "written") == sorted(
        str(p.relative_to(tmp_path / "out")) for p in files_under(tmp_path / "out"))


def test_dry_run_at_full_creates_no_key(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--level", "full", "--dry-run"]) == 1
    assert not (tmp_path / "config").exists() and not (tmp_path / "out").exists()
    assert "throwaway key" in capsys.readouterr().err


def test_dry_run_refuses_what_would_write(tree: Path, tmp_path: Path, key_file: Path) -> None:
    for extra in (["--dicomdir"], ["--level", "full", "--key-file", str(key_file), "--mapping", str(tmp_path / "m")]):
        assert main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--dry-run", *extra]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "m").exists()


_STOPPED_AFTER_TWO_FILES = """
import os, signal, sys
from neuroanon import cli

shown = cli._Shown.__call__

def stop_after_two(self, record, size):  # SIGTERM once the terminal has shown two files
    shown(self, record, size)
    if self.files == 2:
        os.kill(os.getpid(), signal.SIGTERM)
        print("the line ended", file=sys.stderr)  # (a stop is taken between files, not where it lands)

cli._Shown.__call__ = stop_after_two
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_dry_run_stopped_says_it_was_a_dry_run_and_its_report_says_it_stopped(tree: Path, tmp_path: Path) -> None:
    """Found from outside: a dry run stopped by SIGTERM advised running it again "to resume" (it has nothing to
    resume), showed its counts as a run's ("2 written") and left its report without a summary line; and it took
    the stop where it landed, not between files as a run does."""
    out, report = tmp_path / "out", tmp_path / "dry.jsonl"
    done = subprocess.run([sys.executable, "-c", _STOPPED_AFTER_TWO_FILES, "anonymize", str(tree), "-o", str(out),
                           "--workers", "1", "--dry-run", "--report", str(report)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr
    assert done.stderr == "the line ended\nneuroanon: dry run stopped by SIGTERM; nothing was written\n"
    shown = [line for line in done.stdout.splitlines() if not line.startswith("would ")]
    assert shown[0] == f"dry run stopped: nothing was written to {out}; for the files it went through, a run would give"
    assert shown[1].startswith("2 files at level anonymize")
    _, records, summary = read_report(report)
    assert len(records) == 2 and summary["files"] == 2 and summary["stopped"] == "interrupted"
    assert summary["signal"] == "SIGTERM", "the report names the signal that stopped the run"
    assert set(os.listdir(tmp_path)) == {"in", "dry.jsonl"}, "a dry run wrote something besides its report"


@pytest.mark.parametrize("level", ["original", "anonymize"])
def test_dicom_only_leaves_non_dicom_files_behind(level: str, tree: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    failed = 0 if level == "original" else 1  # the truncated file is copied as it is at original
    assert main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--level", level, "--dicom-only",
                 "--report", str(report)]) == failed
    names = {p.name for p in files_under(tmp_path / "out")}
    assert "readme.txt" not in names and "us.dcm" in names and len(names) == 6 - failed
    _, records, summary = read_report(report)
    readme = next(r for r in records if r["input"] == "readme.txt")
    assert readme["status"] == "skipped" and "--dicom-only" in readme["reason"] and readme["output"] is None
    assert summary["not_released"] == failed
    assert main(["anonymize", str(tree), "-o", str(tmp_path / "plain"), "--level", level]) == failed
    assert "readme.txt" in {p.name for p in files_under(tmp_path / "plain")}


def _mapping(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_mapping_lists_each_subject_once_mode_0600(tree: Path, tmp_path: Path, key_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    mapping = tmp_path / "site" / "mapping.csv"
    mapping.parent.mkdir()
    args = ["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--mapping", str(mapping)]
    assert main([*args, "-o", str(tmp_path / "out")]) == 1
    assert stat.S_IMODE(os.stat(mapping).st_mode) == 0o600
    rows = _mapping(mapping)
    assert rows[0] == ["original", "new"]
    table = dict(rows[1:])
    assert len(table) == len(rows) - 1 == 2
    assert set(table) == {planted_values(41)["PatientID"], planted_values(42)["PatientID"]}
    written = {str(pydicom.dcmread(p, stop_before_pixels=True).PatientID) for p in files_under(tmp_path / "out")}
    assert written == set(table.values())
    out, err = capsys.readouterr()
    for original in table:
        assert original not in out + err, "the mapping's originals reach only the mapping file"
    # A second run into another output adds nobody twice; the file works as a lookup table.
    assert main([*args, "-o", str(tmp_path / "again")]) == 1
    assert _mapping(mapping) == rows
    assert main(["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--lookup", str(mapping),
                 "-o", str(tmp_path / "looked-up")]) == 1
    assert {str(pydicom.dcmread(p, stop_before_pixels=True).PatientID)
            for p in files_under(tmp_path / "looked-up")} == written


_KILLED_AS_IT_LISTS = """
import os, signal, sys
from neuroanon import keys
from neuroanon.cli import main
from neuroanon.keys import load_lookup

def add(self, original, new):
    os.kill(os.getpid(), signal.SIGKILL)

keys.SubjectMapping.add = add
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_as_it_lists_a_subject_leaves_the_rerun_a_complete_mapping(tmp_path: Path,
                                                                                key_file: Path) -> None:
    """One file per subject: a subject whose only file the killed run released is still listed after the rerun."""
    make_study(tmp_path / "in" / "a", subject=43, n_series=1, n_instances=1)
    make_study(tmp_path / "in" / "b", subject=44, n_series=1, n_instances=1)
    mapping = tmp_path / "mapping.csv"
    args = ["anonymize", str(tmp_path / "in"), "--level", "full", "--key-file", str(key_file), "--workers", "1",
            "--mapping", str(mapping), "-o", str(tmp_path / "out"), "-q"]
    assert subprocess.run([sys.executable, "-c", _KILLED_AS_IT_LISTS, *args]).returncode == -signal.SIGKILL
    assert main(args) == 0
    table = dict(_mapping(mapping)[1:])
    assert set(table) == {planted_values(43)["PatientID"], planted_values(44)["PatientID"]}
    written = {str(pydicom.dcmread(p, stop_before_pixels=True).PatientID) for p in files_under(tmp_path / "out")}
    assert written == set(table.values()) and len(written) == 2


def test_mapping_made_with_another_key_is_refused(tree: Path, tmp_path: Path, key_file: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    mapping = tmp_path / "mapping.csv"
    assert main(["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--mapping",
                 str(mapping), "-o", str(tmp_path / "out")]) == 1
    other = tmp_path / "other.key"
    other.write_text("77" * 32)
    assert main(["anonymize", str(tree), "--level", "full", "--key-file", str(other), "--mapping",
                 str(mapping), "-o", str(tmp_path / "out2")]) == 2
    assert "another key" in capsys.readouterr().err


def test_mapping_is_an_option_of_full(tree: Path, tmp_path: Path) -> None:
    assert main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--mapping", str(tmp_path / "m")]) == 2
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("header", [True, False])
def test_a_lookup_saved_by_excel_with_a_byte_order_mark_maps_its_first_row(tmp_path: Path, header: bool) -> None:
    """Excel's "CSV UTF-8" starts with a byte-order mark: read as part of the first original ID, that ID would
    silently get a keyed pseudonym instead of its lookup value."""
    path = tmp_path / "ids.csv"
    rows = (["original,new"] if header else []) + ["PID-FAKE-0041,SUBJ-41", "PID-FAKE-0042,SUBJ-42"]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    assert load_lookup(path) == {"PID-FAKE-0041": "SUBJ-41", "PID-FAKE-0042": "SUBJ-42"}


def test_a_mapping_file_in_use_by_another_run_is_refused(tree: Path, tmp_path: Path, key_file: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs at once with one --mapping (two studies of a site): the second is refused until the first ends,
    rather than both listing the same subjects."""
    mapping = tmp_path / "mapping.csv"
    args = ["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--mapping", str(mapping), "-q"]
    with open(mapping, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the other run holds it
        assert main([*args, "-o", str(tmp_path / "second")]) == 2
        assert "in use by another run" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "second")]) == 1
    assert len(_mapping(mapping)) == 3


def _left_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("case", ["mapping of another key", "mapping of another key, no key yet", "mapping in use",
                                  "report in use"])
def test_a_refused_run_leaves_nothing_behind(tree: Path, tmp_path: Path, key_file: Path, case: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """No journal, no output folder, no key: each of these was left by a run refused with exit 2."""
    mapping, report, runs = tmp_path / "mapping.csv", tmp_path / "report.jsonl", tmp_path / "runs"
    assert main(["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--mapping", str(mapping),
                 "-o", str(tmp_path / "first"), "-q"]) == 1
    runs.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    args = ["anonymize", str(tree), "--level", "full", "-o", str(runs / "out"), "-q"]
    other = tmp_path / "other.key"
    other.write_text("77" * 32)
    if case == "mapping of another key":
        args += ["--key-file", str(other), "--mapping", str(mapping)]
    elif case == "mapping of another key, no key yet":
        args += ["--mapping", str(mapping)]
    elif case == "mapping in use":
        args += ["--key-file", str(key_file), "--mapping", str(mapping)]
    else:
        args += ["--key-file", str(key_file), "--report", str(report)]
    mapped = mapping.read_bytes()
    capsys.readouterr()
    with open(mapping if case == "mapping in use" else report, "a") as held:
        if case.endswith("in use"):
            fcntl.flock(held, fcntl.LOCK_EX)  # as the other run holds it
        assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("another key" in err or "another run" in err), err
    assert _left_in(runs) == set() and not (tmp_path / "config").exists()
    assert mapping.read_bytes() == mapped


def test_the_library_refuses_a_mapping_of_another_key_before_it_begins(tree: Path, tmp_path: Path,
                                                                        key_file: Path) -> None:
    mapping = tmp_path / "mapping.csv"
    assert main(["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--mapping", str(mapping),
                 "-o", str(tmp_path / "first"), "-q"]) == 1
    runs = tmp_path / "runs"
    runs.mkdir()
    with pytest.raises(UsageError, match="another key"):
        anonymize_tree([tree], runs / "out", Options(level=Level.FULL, key=b"\x77" * 32), mapping=mapping)
    assert _left_in(runs) == set()


def _run_with_lookup(tree: Path, key_file: Path, lookup: Path, rows: list[str], out: Path) -> int:
    """A run at full with a lookup file of these rows."""
    lookup.write_text("\n".join(rows) + "\n")
    return main(["anonymize", str(tree), "--level", "full", "--key-file", str(key_file), "--lookup", str(lookup),
                 "-o", str(out), "-q"])


def test_a_lookup_that_gives_one_id_two_new_ids_is_refused(tree: Path, tmp_path: Path, key_file: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The last row won silently: half a subject's files were meant for the other pseudonym."""
    lookup = tmp_path / "ids.csv"
    ids = planted_values(41)["PatientID"], planted_values(42)["PatientID"]
    rows = ["original,new", f"{ids[0]},SUBJ-A", f"{ids[1]},SUBJ-B", f"{ids[0]},SUBJ-C"]
    assert _run_with_lookup(tree, key_file, lookup, rows, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err == f"neuroanon: lookup file {lookup}, lines 2 and 4: one original ID with two new IDs\n"
    lookup.write_text(f"{ids[0]},SUBJ-A\n{ids[0]},SUBJ-A\n")  # the same row twice is one row
    assert load_lookup(lookup) == {ids[0]: "SUBJ-A"}


def test_a_lookup_that_gives_two_ids_one_new_id_says_so(tree: Path, tmp_path: Path, key_file: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """One person under two IDs may be meant; a mistake merges two subjects. Either way the terminal says so,
    by line, without the IDs."""
    lookup = tmp_path / "ids.csv"
    ids = planted_values(41)["PatientID"], planted_values(42)["PatientID"]
    assert _run_with_lookup(tree, key_file, lookup, ["original,new", f"{ids[0]},SUBJ-A", f"{ids[1]},SUBJ-A"],
                            tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert (f"neuroanon: the lookup file {lookup} gives one new ID to more than one original ID (lines 2 and 3): "
            "their files share one subject\n") in err
    assert not any(i in err for i in ids)
    written = {str(pydicom.dcmread(p, stop_before_pixels=True).PatientID) for p in files_under(tmp_path / "out")}
    assert written == {"SUBJ-A"}


def test_files_whose_subject_the_lookup_does_not_list_are_counted_on_the_terminal(
        tree: Path, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A subject missing from the lookup got a keyed pseudonym, shown only by the absence of '(lookup)' in the
    report's changes; the terminal now says how many files that was, without the IDs."""
    lookup = tmp_path / "ids.csv"
    listed, unlisted = planted_values(41)["PatientID"], planted_values(42)["PatientID"]
    assert _run_with_lookup(tree, key_file, lookup, [f"{listed},SUBJ-A"], tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert (f"neuroanon: 2 files written name a subject the lookup file {lookup} does not list: they got keyed "
            "pseudonyms\n") in err
    assert unlisted not in err and listed not in err
    assert _run_with_lookup(tree, key_file, lookup, [f"{listed},SUBJ-A", f"{unlisted},SUBJ-B"], tmp_path / "all") == 1
    assert "does not list" not in capsys.readouterr().err


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_a_dry_run_fails_and_skips_what_the_run_fails_and_skips(
    level: str, zipped: bool, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zip input's member `x` beside `x/y.dcm` (one cannot be written into a folder) and, at full, a copy of an
    instance and an instance with its UID but other pixels: the dry run said "would write" of the member the run
    fails, and "would skip" of the other pixels, which the run fails (found in review). Its records are now the
    run's."""
    files = make_study(tmp_path / "study", subject=43, n_series=1, n_instances=5)
    other = pydicom.dcmread(files[0])
    other.PixelData = bytes(255 - byte if i % 2 == 0 else byte for i, byte in enumerate(other.PixelData))  # (12 bits)
    other_pixels = io.BytesIO()
    other.save_as(other_pixels)
    source = tmp_path / "in.zip"
    with zipfile.ZipFile(source, "w") as zf:
        members = {"a.dcm": files[0].read_bytes(), "b-copy.dcm": files[0].read_bytes(),
                   "c-other.dcm": other_pixels.getvalue(), "x": files[1].read_bytes(),
                   "x/y.dcm": files[2].read_bytes(), "z": files[3].read_bytes(), "z/x.dcm": files[4].read_bytes()}
        for name, data in members.items():
            zf.writestr(name, data)
    out = tmp_path / ("out.zip" if zipped else "out")
    common = ["anonymize", str(source), "-o", str(out), "--level", level, "-q"]
    if level == "full":
        common += ["--key-file", str(key_file), "--report-paths"]
    dry, real = tmp_path / "dry.jsonl", tmp_path / "real.jsonl"
    assert main([*common, "--dry-run", "--report", str(dry)]) == main([*common, "--report", str(real)])
    _, records, _ = read_report(real)
    statuses = {r["input"]: r["status"] for r in records}
    if level == "full":
        assert statuses["b-copy.dcm"] == "skipped" and statuses["c-other.dcm"] == "failed", statuses
    elif not zipped:
        assert statuses["x/y.dcm"] == statuses["z/x.dcm"] == "failed", statuses
    capsys.readouterr()
    assert comparable_report(dry) == comparable_report(real)
