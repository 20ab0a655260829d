"""The command line, run in-process through `main(argv)`: exit codes, messages, key, report, explain."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from neuroanon.cli import main
from neuroanon.sample import make_dataset, make_many, make_study, planted_values

from .helpers import files_under, read_report
from .peers import SRC

README = Path(__file__).resolve().parents[1] / "README.md"


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(root)}


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "project.key"
    path.write_text("ab" * 32)
    return path


@pytest.fixture
def messy_tree(tmp_path: Path) -> Path:
    """A study plus what real folders hold: a truncated file, a non-DICOM file, a DICOMDIR, a zero-byte file."""
    root = tmp_path / "in"
    files = make_study(root, subject=7, n_series=1, n_instances=3)
    data = files[0].read_bytes()
    (root / "truncated.dcm").write_bytes(data[: len(data) - 100])
    (root / "notes.txt").write_text("notes about FAKE patient")
    (root / "empty.dcm").write_bytes(b"")
    dicomdir = make_dataset(subject=7)
    del dicomdir.SOPClassUID  # a DICOMDIR names its class only in the file meta
    dicomdir.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.1.3.10")
    dicomdir.save_as(root / "DICOMDIR", enforce_file_format=True)
    return root


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["anonymize", str(tmp_path)]) == 2  # no --output
    assert main(["anonymize", str(tmp_path), "--output", str(tmp_path / "o"), "--level", "bogus"]) == 2
    assert main(["anonymize", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "input not found" in capsys.readouterr().err


def test_output_inside_input_is_refused(messy_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree_digest(messy_tree)
    assert main(["anonymize", str(messy_tree), "--output", str(messy_tree / "out")]) == 2
    assert "inside the input" in capsys.readouterr().err
    assert _tree_digest(messy_tree) == before


@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
def test_an_input_inside_the_output_is_refused_even_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               force: bool) -> None:
    """The output given as a folder that holds the input: the release would hold the originals (found from outside:
    --force let it through)."""
    make_study(tmp_path / "top" / "in", subject=63, n_series=1, n_instances=1)
    before = _tree_digest(tmp_path / "top")
    args = ["anonymize", str(tmp_path / "top" / "in"), "--output", str(tmp_path / "top"), "--level", "anonymize"]
    assert main(args + (["--force"] if force else [])) == 2
    assert "is inside the output" in capsys.readouterr().err
    assert _tree_digest(tmp_path / "top") == before


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_messy_tree_reports_every_file_and_exits_1(
    level: str, messy_tree: Path, tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree_digest(messy_tree)
    report = tmp_path / "report.jsonl"
    clear = ["--key-file", str(key_file), "--report-paths"] if level == "full" else []
    code = main(["anonymize", str(messy_tree), "-o", str(tmp_path / "out"), "--level", level, "--report", str(report),
                 *clear])
    assert code == 1, "a failed DICOM file means not everything was released"
    assert _tree_digest(messy_tree) == before, "the input was modified"
    _, records, summary = read_report(report)
    assert sorted(r["input"] for r in records) == sorted(before)
    by_name = {Path(r["input"]).name: r for r in records}
    assert by_name["truncated.dcm"]["status"] == "failed" and "truncated" in by_name["truncated.dcm"]["reason"]
    assert by_name["DICOMDIR"]["status"] == "skipped" and "DICOMDIR" in by_name["DICOMDIR"]["reason"]
    if level == "full":
        assert by_name["notes.txt"]["status"] == "skipped" and by_name["notes.txt"]["output"] is None
        assert by_name["empty.dcm"]["status"] == "skipped"
    else:
        assert by_name["notes.txt"]["status"] == "written"
    assert summary["files"] == len(records) and summary["failed"] == 1 and summary["written"] == 3 + (
        2 if level == "anonymize" else 0)
    for record in records:
        for change in record["changes"]:
            assert set(change) == {"tag", "keyword", "action"}
    out, err = capsys.readouterr()
    assert "truncated.dcm" in err and "1 failed" in out
    planted = planted_values(7)
    text = out + err + json.dumps([{k: v for k, v in r.items() if k != "input"} for r in records])
    for name, value in planted.items():
        if name not in ("FolderName", "FileName", "StudyDate", "AccessionNumber"):
            assert value not in text, f"{name} leaked into output, messages or report"


def test_key_is_created_0600_at_the_documented_path_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    source = tmp_path / "in"
    make_study(source, n_series=1, n_instances=2)
    assert main(["anonymize", str(source), "-o", str(tmp_path / "a"), "--level", "full"]) == 0
    key = tmp_path / "config" / "neuroanon" / "key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert str(key) in capsys.readouterr().err
    assert main(["anonymize", str(source), "-o", str(tmp_path / "b"), "--level", "full"]) == 0
    assert "created" not in capsys.readouterr().err
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_explain_anonymize_matches_the_readme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--level", "anonymize"]) == 0
    table = capsys.readouterr().out.strip()
    assert table.count("\n") == 8 and "(0010,0010) | PatientName" in table
    assert table in README.read_text(), "README's anonymize table differs from `neuroanon explain`"


def test_explain_full_covers_the_whole_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--level", "full"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert len(rows) > 621
    patient_id = next(r for r in rows if r.startswith("| (0010,0020)"))
    assert "| P |" in patient_id
    assert main(["explain", "--level", "full", "--shift-dates"]) == 0
    study_date = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("| (0008,0020)"))
    assert "| S |" in study_date


def test_thousands_of_files_end_to_end(tmp_path: Path, key_file: Path) -> None:
    """A tree of 1,500 instances through the CLI at full: every file written once, the report complete."""
    source = tmp_path / "in"
    make_many(source, 1500, subject=11, per_folder=500)
    report = tmp_path / "report.jsonl"
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "-q",
                 "--key-file", str(key_file), "--report", str(report)]) == 0
    _, records, summary = read_report(report)
    assert len(records) == 1500 and summary["written"] == 1500
    outputs = files_under(tmp_path / "out")
    assert len(outputs) == 1500
    assert len({pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in outputs[::100]}) == 15


def test_progress_bar_on_a_terminal_plain_summary_elsewhere(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    source = tmp_path / "in"
    make_study(source, subject=9, n_series=1, n_instances=3)
    command = [sys.executable, "-m", "neuroanon.cli", "anonymize", str(source), "--workers", "1"]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # a 100-column terminal
    done = subprocess.run([*command, "-o", str(tmp_path / "tty")], stdin=follower, stdout=follower, stderr=follower,
                          timeout=120)
    os.close(follower)
    screen = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(leader, 65536):
            screen += chunk
    os.close(leader)
    assert done.returncode == 0
    text = screen.decode("utf-8", "replace")
    assert "anonymizing" in text and "3 files" in text and "/s" in text
    plain = subprocess.run([*command, "-o", str(tmp_path / "pipe")], capture_output=True, text=True, timeout=120)
    assert "anonymizing" not in plain.stderr and "3 files at level anonymize" in plain.stdout


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_released_files_take_the_mode_cp_gives_and_held_ones_stay_private(tmp_path: Path, umask: int,
                                                                          mode: int) -> None:
    """Outputs are staged private (0600); once released they have the mode the umask gives a new file. A file
    held back in the quarantine (it may hold PHI) stays 0600."""
    source = tmp_path / "in"
    make_study(source, subject=34, n_series=1, n_instances=2)
    held = make_dataset(subject=34, series=9)
    held.Modality, held.BurnedInAnnotation = "US", "YES"
    held.save_as(source / "us.dcm", enforce_file_format=True)
    key = tmp_path / "key"
    key.write_text("4d" * 32)
    command = (f"umask {umask:03o} && exec {sys.executable} -m neuroanon.cli anonymize {source} -o {tmp_path / 'out'}"
               f" --level full --key-file {key} --quarantine {tmp_path / 'held'} -q")
    assert subprocess.run(["sh", "-c", command], env={**os.environ, "PYTHONPATH": str(SRC)}).returncode == 1
    released, quarantined = files_under(tmp_path / "out"), files_under(tmp_path / "held")
    assert len(released) == 2 and quarantined
    assert {stat.S_IMODE(p.stat().st_mode) for p in released} == {mode}
    assert {stat.S_IMODE(p.stat().st_mode) for p in quarantined if p.suffix == ".dcm"} == {0o600}


def test_the_readmes_python_example_gives_what_the_command_line_gives(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's Python example, run as written, reads the key file as `--key-file` does (found from outside:
    read as raw bytes, `neuroanon key`'s hex text gave other pseudonyms than the command line)."""
    text = README.read_text()
    start = text.index("```python\n", text.index("From Python:")) + len("```python\n")
    example = text[start : text.index("```", start)]
    monkeypatch.chdir(tmp_path)
    make_study(tmp_path / "in", n_series=1, n_instances=1)
    next((tmp_path / "in").rglob("*.dcm")).rename(tmp_path / "image.dcm")
    make_study(tmp_path / "in", n_series=1, n_instances=2)
    names: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), names)  # noqa: S102 (the project's own README)
    assert main(["anonymize", "in", "-o", "cli", "--level", "full", "--key-file", str(key_file), "-q"]) == 0
    assert _tree_digest(tmp_path / "out") == _tree_digest(tmp_path / "cli")
    assert str(names["new_ds"].PatientID) == str(pydicom.dcmread(files_under(tmp_path / "cli")[0]).PatientID)  # type: ignore[attr-defined]


@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_every_row_of_explain_is_one_line(level: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The standard's text breaks the Icon Image Sequence's name before its note: its row was split over three
    lines, which broke the table (found from outside)."""
    assert main(["explain", "--level", level]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| ---"))
    table = lines[start + 1:]
    rows = table[:next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))]
    assert len(rows) > 5 and all(row.endswith("|") and row.count("|") == lines[start].count("|") for row in rows)
    assert level == "anonymize" or any("| Icon Image Sequence (see Note 11) |" in row for row in rows)
