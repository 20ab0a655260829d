"""What a run tells: the report's provenance line, inputs named by keyed tokens at full, the summary grouped by
status and reason, "held back" when nothing was kept, and the `key` command."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

from neuroanon import __version__
from neuroanon.cli import main
from neuroanon.keys import Keyring, key_fingerprint, load_key
from neuroanon.report import Record, Status, Summary
from neuroanon.sample import make_dataset, make_study, planted_values

from .helpers import files_under, read_report

KEY_HEX = "3c" * 32


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "project.key"
    path.write_text(KEY_HEX)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder named like a person (as real folders are), a study, an ultrasound image, a non-DICOM file and a
    truncated file."""
    root = tmp_path / "FAKEDOE0021^JANE_19700101"
    make_study(root, subject=21, n_series=1, n_instances=2)
    us = make_dataset(subject=21, series=5)
    us.Modality = "US"
    us.BurnedInAnnotation = "YES"
    us.save_as(root / "us.dcm", enforce_file_format=True)
    (root / "notes.txt").write_text("fake notes")
    data = (root / "us.dcm").read_bytes()
    (root / "cut.dcm").write_bytes(data[:-64])
    return root


def test_full_report_starts_with_provenance_and_names_inputs_by_token(
    tree: Path, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.jsonl"
    code = main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--level", "full", "--key-file",
                 str(key_file), "--report", str(report), "--shift-dates"])
    assert code == 1  # the truncated file and the held-back ultrasound
    text = report.read_text()
    head, records, summary = read_report(report)
    assert head["neuroanon"] == __version__ and head["level"] == "full"
    assert head["options"]["shift_dates"] is True and head["options"]["retain_device_identity"] is False
    assert head["key_fingerprint"] == key_fingerprint(bytes.fromhex(KEY_HEX)) and len(head["key_fingerprint"]) == 16
    assert KEY_HEX not in text and "key" not in head["options"]
    assert head["started"].endswith("+00:00")
    assert head["command"][:2] == ["neuroanon", "anonymize"] and "<input>" in head["command"]
    assert "--shift-dates" in head["command"]
    assert head["input_names"] == "keyed tokens"
    keyring = Keyring(bytes.fromhex(KEY_HEX))
    names = sorted(str(p.relative_to(tree)) for p in files_under(tree))
    assert sorted(r["input"] for r in records) == sorted(keyring.input_token(n) for n in names)
    for secret in [tree.name, "FAKEDOE0021", *planted_values(21).values()]:
        if secret not in (planted_values(21)["StudyDate"],):
            assert secret not in text, "an input path or a value reached the report"
    assert summary["files"] == len(names) and summary["reasons"]["quarantined"]
    out = capsys.readouterr().out
    assert "held back" in out and "quarantined" not in out


def test_report_paths_names_inputs_by_path(tree: Path, tmp_path: Path, key_file: Path) -> None:
    report = tmp_path / "report.jsonl"
    main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key_file),
          "--report", str(report), "--report-paths"])
    head, records, _ = read_report(report)
    assert head["input_names"] == "paths" and str(tree) in head["command"]
    assert {r["input"] for r in records} == {str(p.relative_to(tree)) for p in files_under(tree)}


def test_anonymize_report_records_the_command_and_no_key(tree: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--report", str(report)])
    head, records, _ = read_report(report)
    assert head["level"] == "anonymize" and head["key_fingerprint"] is None and str(tree) in head["command"]
    assert "notes.txt" in {r["input"] for r in records}


def test_summary_is_grouped_by_status_and_reason_with_elapsed_time(
    tree: Path, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = tmp_path / "held"
    report = tmp_path / "report.jsonl"
    main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key_file),
          "--quarantine", str(held), "--report", str(report)])
    lines = capsys.readouterr().out.splitlines()
    first = lines[0]
    assert first.startswith("5 files at level full in ")
    assert first.endswith(" s: 2 written, 1 skipped, 1 quarantined, 1 failed")
    rows = [" ".join(line.split()) for line in lines[1:]]
    assert "written 2 anonymized" in rows  # (every file has a reason: a written one's was empty)
    assert "skipped 1 not DICOM" in rows
    assert "quarantined 1 burned-in annotation risk" in rows, rows
    assert "failed 1 truncated" in rows
    _, _, summary = read_report(report)
    assert summary["reasons"]["failed"] == {"truncated": 1} and summary["elapsed_seconds"] >= 0
    assert summary["reasons"]["written"] == {"anonymized": 2}
    written = [r for r in read_report(report)[1] if r["status"] == "written"]
    assert {r["reason"] for r in written} == {"anonymized; the residual check found no identifying value"}
    assert len(files_under(held)) == 1


def test_anonymize_tells_of_non_dicom_files_it_copied(tree: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    main(["anonymize", str(tree), "-o", str(tmp_path / "out")])
    rows = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "written 1 not DICOM" in rows


def test_key_command_creates_a_key_and_shows_its_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "config" / "neuroanon" / "key"
    assert main(["key"]) == 0
    out = capsys.readouterr().out
    key = load_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key_fingerprint(key) in out and key.hex() not in out and str(path) in out
    before = path.read_bytes()
    assert main(["key"]) == 2, "an existing key is never overwritten"
    assert "exists already" in capsys.readouterr().err and path.read_bytes() == before
    assert main(["key", "--show-fingerprint"]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: fingerprint {key_fingerprint(key)}"
    other = tmp_path / "other.key"
    assert main(["key", "--key-file", str(other), "--show-fingerprint"]) == 2  # none there
    assert main(["key", "--key-file", str(other)]) == 0
    assert key_fingerprint(load_key(other)) != key_fingerprint(key)


def test_fingerprint_in_a_report_matches_the_key_command(
    tree: Path, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.jsonl"
    main(["anonymize", str(tree), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key_file),
          "--report", str(report)])
    capsys.readouterr()
    assert main(["key", "--key-file", str(key_file), "--show-fingerprint"]) == 0
    shown = capsys.readouterr().out.split()[-1]
    assert json.loads(report.read_text().splitlines()[0])["provenance"]["key_fingerprint"] == shown


def test_records_cross_processes_whole_and_share_their_changes_once() -> None:
    """A record pickled (from a worker) comes back equal, its changes as Changes; records that share one tuple
    of changes (the files of a series) carry it once in a batch, and share it again when unpickled."""
    import pickle

    from neuroanon.report import Record, Status
    from neuroanon.rules import Change

    changes = tuple(Change(f"(0010,{i:04X})", f"Keyword{i}", "removed") for i in range(60))
    batch = [Record(f"in/{i}.dcm", Status.WRITTEN, "", f"out/{i}.dcm", changes=changes) for i in range(32)]
    back = pickle.loads(pickle.dumps(batch))
    assert back == batch
    assert all(type(c) is Change for c in back[0].changes)
    assert all(r.changes is back[0].changes for r in back)
    # the shared changes are in the batch once: 32 records weigh little more than one
    assert len(pickle.dumps(batch)) < 2 * len(pickle.dumps(batch[:1]))


def test_a_report_another_run_is_writing_is_refused_untouched(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs given one --report: the second is refused and leaves the first's lines as they are (both wrote,
    interleaved, into one file that was no longer JSON lines)."""
    make_study(tmp_path / "in", subject=16, n_series=1, n_instances=1)
    report = tmp_path / "report.jsonl"
    report.write_text('{"provenance": {}}\n')
    with open(report, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the other run holds it
        assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report", str(report)]) == 2
        assert "being written by another run" in capsys.readouterr().err
        assert report.read_text() == '{"provenance": {}}\n'
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--report", str(report)]) == 0
    assert len(read_report(report)[1]) == 1


def test_names_that_are_not_utf8_are_valid_unicode_in_the_report_and_on_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name's bytes that are not UTF-8 are written as \\xNN: JSON with lone surrogates is refused or mangled by
    strict readers, and the record could not be matched to its file."""
    source = tmp_path / os.fsdecode(b"in-\xe9")
    files = make_study(source, subject=22, n_series=1, n_instances=2)
    os.rename(files[0], os.fsdecode(bytes(files[0].parent) + b"/caf\xe9.dcm"))
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--report", str(report), "-q"]) == 0
    text = report.read_bytes().decode("utf-8")  # strict
    assert "\\ud" not in text
    head, records, _ = read_report(report)
    inputs = {r["input"] for r in records}
    assert any(i.endswith("caf\\xe9.dcm") for i in inputs), inputs
    assert any(r["output"].endswith("caf\\xe9.dcm") for r in records)
    assert any(part.endswith("in-\\xe9") for part in head["command"])
    capsys.readouterr()
    findings = tmp_path / "findings.json"
    main(["verify", str(source), "--json", str(findings)])
    shown = capsys.readouterr().out
    assert "caf\\xe9.dcm" in shown and "\udce9" not in shown
    assert "\\ud" not in findings.read_bytes().decode("utf-8")


def test_files_held_for_unused_pixel_bits_are_counted_under_one_reason() -> None:
    """Found from outside: the count of values in the reason made a summary line for each file (204 lines for 300
    files); its particulars are in brackets, which the summary leaves out. One value is "1 value"."""
    from neuroanon.residual import unused_bits

    summary = Summary("full")
    for count in (1, 5, 640):
        summary.add(Record(f"{count}.dcm", Status.QUARANTINED, unused_bits(count)), 100)
    assert summary.reasons == {("quarantined", "pixel data sets bits outside the stored ones"): 3}
    assert unused_bits(1) == "pixel data sets bits outside the stored ones (1 value; no image shows them)"
