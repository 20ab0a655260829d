"""Conditions the user caused or the machine imposes end with one clear line and the right exit code, never a
traceback. Each scenario runs the installed command line as a subprocess, as a user would."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from neuroanon import pipeline
from neuroanon.cli import _parser, main
from neuroanon.sample import make_study

from .helpers import files_under, read_report

COMMAND = [sys.executable, "-m", "neuroanon.cli"]


def _refuses_files(folder: Path) -> bool:
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return True
    return False


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write in: a read-only folder, or (for root, whom permission bits do not
    bind) sysfs, which refuses new files to everyone."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _refuses_files(folder):
            yield folder
        elif _refuses_files(Path("/sys")):
            yield Path("/sys")
        else:
            pytest.fail("no folder refuses files here: the scenario cannot be staged")
    finally:
        folder.chmod(0o755)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    make_study(root, subject=5, n_series=1, n_instances=2)
    return root


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.returncode == code, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _cause(line: str) -> None:
    assert "Permission denied" in line or "Operation not permitted" in line, line


@pytest.mark.parametrize("workers", ["0", "-1", "100000"])
def test_a_number_of_workers_the_machine_cannot_run_is_refused(source: Path, tmp_path: Path, workers: str) -> None:
    """One line and exit 2, before any worker starts: 100,000 workers once forked until memory ran out."""
    most = str(max(32, 4 * (os.cpu_count() or 1)))
    line = _one_line(_run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--workers", workers]), 2,
                     "--workers", most)
    assert not (tmp_path / "out").exists(), line
    _one_line(_run(["serve", "--output", str(tmp_path / "node"), "--port", "0", "--workers", workers]), 2,
              "--workers", most)


def test_output_that_is_an_existing_file(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    _one_line(_run(["anonymize", str(source), "-o", str(target)]), 2, str(target), "existing file")
    assert target.read_text() == "not a folder"


def test_output_below_an_existing_file(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a folder")
    _one_line(_run(["anonymize", str(source), "-o", str(target / "out")]), 2, str(target), "not a folder")


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_an_output_name_too_long_for_the_file_system_is_refused_by_the_run_and_the_dry_run(
    source: Path, tmp_path: Path, dry_run: list[str]
) -> None:
    """Found from outside: a name over the file system's longest ended in exit 1 with Python's "File name too
    long"; a name whose journal's (19 bytes longer, beside it) is over it was refused by the run and approved by
    the dry run."""
    longest = os.pathconf(tmp_path, "PC_NAME_MAX")
    for name, refused in (("x" * (longest + 1), "cannot write the output"),
                          ("y" * (longest - 10), "cannot write beside the output"),
                          ("z" * (longest - 14) + ".zip", "cannot write beside the output")):
        out = tmp_path / name
        _one_line(_run(["anonymize", str(source), "-o", str(out), *dry_run]), 2, f"{refused} {out}: file name too long")
    assert os.listdir(tmp_path) == ["in"]


@pytest.mark.parametrize(("flag", "what"), [("--report", "report"), ("--mapping", "mapping file"),
                                            ("--quarantine", "quarantine")])
def test_a_report_mapping_or_quarantine_name_too_long_is_refused(source: Path, tmp_path: Path, flag: str,
                                                                 what: str) -> None:
    """Found from outside: a report named longer than the file system takes ended in exit 1 with Python's "File
    name too long"; the mapping file the same."""
    key = tmp_path / "key"
    key.write_text("cd" * 32)
    written = tmp_path / ("r" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1))
    _one_line(_run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key),
                    flag, str(written)]), 2, f"cannot write the {what} {written}: file name too long")
    assert sorted(os.listdir(tmp_path)) == ["in", "key"]


def test_a_node_s_output_or_work_folder_name_too_long_is_refused(tmp_path: Path) -> None:
    """Found from outside: `serve` with an output named longer than the file system takes, or one whose work
    folder beside it (named after it, 16 bytes longer) would be, ended in exit 1 with Python's words."""
    longest = os.pathconf(tmp_path, "PC_NAME_MAX")
    long_name = tmp_path / ("x" * (longest + 1))
    work = tmp_path / f".{'y' * (longest - 10)}.neuroanon-node"
    for args, said in ((["-o", str(long_name)], f"cannot write the output {long_name}"),
                       (["-o", str(tmp_path / ("y" * (longest - 10)))],
                        f"cannot write the node's work folder (named after the output) {work}"),
                       (["-o", str(tmp_path / "out"), "--work", str(long_name)],
                        f"cannot write the node's work folder {long_name}")):
        _one_line(_run(["serve", *args, "--port", "0"]), 2, f"{said}: file name too long")
    assert os.listdir(tmp_path) == []


def test_a_node_s_work_folder_that_is_a_file_and_a_bad_number_of_workers_are_said_plainly(
        source: Path, tmp_path: Path) -> None:
    """Found from outside: `serve --work` naming an existing file ended in exit 1, "File exists"; --workers 0 said
    "(four a CPU core, at least 32)"."""
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    _one_line(_run(["serve", "-o", str(tmp_path / "out"), "--work", str(taken), "--port", "0"]), 2,
              f"the node's work folder {taken} is an existing file, not a folder")
    most = max(32, 4 * (os.cpu_count() or 1))
    _one_line(_run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--workers", "0"]), 2,
              f"--workers needs a number from 1 to {most} (four per CPU core, and 32 on a machine of fewer than eight)")


_EMPTY_PATH = "an empty path (an unset variable?)"


@pytest.mark.parametrize(("args", "said"), [
    (["anonymize", "", "-o", "out"], _EMPTY_PATH), (["anonymize", "in", "-o", ""], _EMPTY_PATH),
    (["verify", ""], _EMPTY_PATH), (["demo", "--output", ""], _EMPTY_PATH), (["key", "--key-file", ""], _EMPTY_PATH),
    (["anonymize", "in", "-o", "out", "--report", ""], _EMPTY_PATH),
    (["serve", "-o", "out", "--port", "0", "--forward", ""], "expected AET@HOST:PORT, got ''"),
    (["serve", "-o", "out", "--port", "0", "--forward", "X@ :104"], "expected AET@HOST:PORT, got 'X@ :104'"),
    (["send", "in", "--to", "X@h\u200b:104"], "expected AET@HOST:PORT, got 'X@h\\u200b:104'"),
    (["send", "in", "--to", "X@h\x01:104"], "expected AET@HOST:PORT, got 'X@h\\x01:104'"),
    (["serve", "-o", "out", "--port", "0", "--host", ""], "an empty value (an unset variable?)")])
def test_an_empty_path_or_value_is_refused(tmp_path: Path, args: list[str], said: str) -> None:
    """Found from outside: `demo --output ''` (an unset variable's value, say) wrote into the current folder,
    `anonymize ''` read all of it, `serve --forward ''` stored instead of forwarding (and one whose host was a
    space started), `--host ''` listened on every interface."""
    (tmp_path / "in").mkdir()
    done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    _one_line(done, 2, said)
    assert sorted(os.listdir(tmp_path)) == ["in"] and not os.listdir(tmp_path / "in")


def test_the_demo_refuses_a_folder_it_did_not_make_and_runs_again_in_its_own(tmp_path: Path) -> None:
    """Found from outside: into a folder holding other files the demo wrote its fake study, then was refused with
    advice to add --force, an option it has not; with a file named demo.key beside an `input/` of the user's, it
    anonymized their file with its study; a demo.key that was no key ended in a traceback. The demo writes only
    in a new or empty folder, or one an earlier demo made."""
    other = tmp_path / "other"
    (other / "input").mkdir(parents=True)
    (other / "input" / "mine.dcm").write_bytes(b"not the demo's")
    (other / "demo.key").write_text("ab" * 32)
    for _ in range(2):
        _one_line(_run(["demo", "--output", str(other)]), 2,
                  f"the demo folder {other} is not empty and no demo made it; name a new or empty folder")
        assert sorted(p.name for p in other.rglob("*")) == ["demo.key", "input", "mine.dcm"]
        (other / "demo.key").write_text("not a key")
    own = tmp_path / "demo"
    for _ in range(2):  # its own folder, again
        done = _run(["demo", "--output", str(own)])
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    (other / ".neuroanon-demo").symlink_to(own / ".neuroanon-demo")  # (a mark that is a link: no demo's folder)
    (own / "notes.txt").write_text("fake notes")  # (a file of the user's beside the demo's)
    for folder in (other, own):
        _one_line(_run(["demo", "--output", str(folder)]), 2, f"the demo folder {folder} is not empty")
    (own / "notes.txt").unlink()
    (own / "demo.key").write_text("not a key")  # (its own folder, its key spoilt: one line, nothing made)
    shutil.rmtree(own / "input")
    _one_line(_run(["demo", "--output", str(own)]), 2, str(own / "demo.key"))
    assert not (own / "input").exists()


@pytest.mark.parametrize("args", [["anonymize", "in", "-o", "out"], ["verify", "in"], ["send", "in", "--to", "A@h:1"],
                                  ["serve", "-o", "out", "--port", "0"], ["explain"], ["key"], ["demo"]])
def test_an_unknown_option_points_to_its_command_s_help(args: list[str]) -> None:
    """Found from outside: an unknown option of a command was said by the top parser, "(see neuroanon --help)",
    whose help does not list the command's options."""
    command = args[0]
    done = _run([*args, "--no-such-option"])
    _one_line(done, 2, f"neuroanon {command}: unrecognized arguments: --no-such-option "
                       f"(see neuroanon {command} --help)")


def test_output_in_an_unwritable_folder(source: Path, unwritable: Path) -> None:
    for output in (unwritable / "out", unwritable / "out.zip"):
        line = _one_line(_run(["anonymize", str(source), "-o", str(output)]), 2, "output", str(unwritable))
        _cause(line)
        assert not output.exists()


def test_report_in_an_unwritable_folder(source: Path, tmp_path: Path, unwritable: Path) -> None:
    report = unwritable / "sub" / "report.jsonl"
    line = _one_line(_run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--report", str(report)]), 2,
                     "report", str(unwritable))
    _cause(line)
    assert not (tmp_path / "out").exists(), "nothing is begun when the report cannot be written"


def test_report_that_is_a_folder(source: Path, tmp_path: Path) -> None:
    _one_line(_run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--report", str(tmp_path)]), 2,
              "report", "is a folder")


def test_quarantine_in_an_unwritable_folder(source: Path, tmp_path: Path, unwritable: Path) -> None:
    key = tmp_path / "key"
    key.write_text("cd" * 32)
    line = _one_line(_run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full",
                           "--key-file", str(key), "--quarantine", str(unwritable / "held")]), 2,
                     "quarantine", str(unwritable))
    _cause(line)


def test_key_in_an_unwritable_folder(source: Path, tmp_path: Path, unwritable: Path) -> None:
    done = _run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full"],
                env={"XDG_CONFIG_HOME": str(unwritable)})
    line = _one_line(done, 2, "cannot create the key file", str(unwritable / "neuroanon" / "key"))
    _cause(line)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_lookup_table_stops_the_run_before_a_key_is_made(source: Path, tmp_path: Path) -> None:
    config = tmp_path / "config"
    done = _run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "--lookup",
                 str(tmp_path / "ids.csv")], env={"XDG_CONFIG_HOME": str(config)})
    _one_line(done, 2, "cannot read lookup file", str(tmp_path / "ids.csv"))
    assert not config.exists(), "a key was made for a run that could not start"


def test_an_output_folder_no_run_began_is_refused_before_a_key_is_made(source: Path, tmp_path: Path) -> None:
    """Found from outside: the key was made, and said so, for a run that then refused its output folder."""
    config, out = tmp_path / "config", tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's")
    done = _run(["anonymize", str(source), "-o", str(out), "--level", "full"], env={"XDG_CONFIG_HOME": str(config)})
    _one_line(done, 2, "is not empty and no neuroanon run began it", str(out))
    assert not config.exists(), "a key was made for a run that could not start"


def test_a_key_below_a_file_and_an_output_that_links_to_nothing_are_named_for_what_they_are(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: a key below a file was said to exist already; an output that is a symlink to nothing
    stopped the run with "file exists", and asked for a rerun, which failed the same way."""
    (tmp_path / "file").write_text("x")
    assert main(["key", "--key-file", str(tmp_path / "file" / "k")]) == 2
    assert f"{tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "out").symlink_to(tmp_path / "nowhere" / "deeper")
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "is a symlink to nothing" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("which", ["--key-file", "--lookup"])
def test_a_key_or_lookup_file_inside_an_input_is_refused(which: str, source: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """It would be read as an input, and below full copied into the release (found from outside: the key was)."""
    inside = source / ("project.key" if which == "--key-file" else "ids.csv")
    inside.write_text("ab" * 32 if which == "--key-file" else "original,new\nPID-FAKE-0001,SUBJ-01\n")
    key = ["--key-file", str(tmp_path / "key")] if which == "--lookup" else []
    (tmp_path / "key").write_text("cd" * 32)
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", which, str(inside), *key,
                 "-q"]) == 2
    assert f"is inside the input {source}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_report_or_json_file_with_other_hard_links_is_refused(source: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A hard link is another name of the same file: one to an input was written over (found from outside)."""
    original = sorted(source.rglob("*.dcm"))[0]
    before = original.read_bytes()
    (tmp_path / "linked").hardlink_to(original)
    for argv in (["anonymize", str(source), "-o", str(tmp_path / "out"), "--report", str(tmp_path / "linked"), "-q"],
                 ["verify", str(source), "--json", str(tmp_path / "linked")]):
        assert main(argv) == 2
        assert "with other hard links" in capsys.readouterr().err
    assert original.read_bytes() == before and not (tmp_path / "out").exists()


def test_explain_into_a_closed_pipe_stops_quietly() -> None:
    run = subprocess.Popen([*COMMAND, "explain", "--level", "full"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert run.stdout is not None and run.stderr is not None
    run.stdout.close()  # the reader is gone before the first line, as `| head -0` would be
    err = run.stderr.read().decode()
    assert run.wait(timeout=60) == 141, err
    assert err == "", "a closed pipe is not an error worth a message, and never a traceback"


@pytest.mark.parametrize("closed", [1, 2])
def test_a_run_with_a_standard_stream_closed_does_its_work_without_a_traceback(tmp_path: Path, closed: int) -> None:
    """Found from outside: with standard output closed (`>&-`) every run ended in a traceback (Python has no stream
    for it); with standard error closed (`2>&-`) the run stopped before it began, without a word. A closed stream
    reads as /dev/null: the run does its work, its report is written, the other stream says what it says."""
    source = tmp_path / "in"
    make_study(source, subject=9, n_series=1, n_instances=2)
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    done = subprocess.run([*COMMAND, "anonymize", str(source), "-o", str(out), "--report", str(report)],
                          capture_output=True, text=True, timeout=120, pass_fds=(),
                          preexec_fn=lambda: os.close(closed))  # noqa: PLW1509 (only closes a descriptor)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    assert len(files_under(out)) == 2 and read_report(report)[2]["files"] == 2
    if closed == 2:
        assert done.stdout.startswith("2 files at level anonymize")


def test_a_run_whose_standard_error_reader_went_away_exits_141(tmp_path: Path) -> None:
    """Found from outside: with `2>&1 | head -1`, the first failed file's line met a closed pipe, and the run
    stopped with exit 1, "broken pipe writing <output>", as if the output had failed, and a summary like a
    finished run's. The reader went away: exit 141, as for standard output; the report says why it stopped, and
    the same command resumes."""
    source = tmp_path / "in"
    files = make_study(source, subject=9, n_series=1, n_instances=4)
    for path in files[:3]:
        path.write_bytes(path.read_bytes()[:1500])  # truncated: each gives a line on standard error
    out, report = tmp_path / "out", tmp_path / "report.jsonl"
    args = ["anonymize", str(source), "-o", str(out), "--level", "anonymize", "--workers", "1", "--report",
            str(report)]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run([*COMMAND, *args], stdout=subprocess.PIPE, stderr=write, text=True, timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141, done.stdout
    assert "broken pipe" not in done.stdout and str(out) not in done.stdout, done.stdout
    assert done.stdout.startswith("1 file at level anonymize"), "what was done is said where it can be"
    summary = json.loads(report.read_text().splitlines()[-1])["summary"]
    assert summary["stopped"] == "broken pipe" and summary["files"] < 4
    again = _run(args)
    assert again.returncode == 1 and again.stderr.count("failed: ") == 3, again.stderr
    assert sum(1 for line in report.read_text().splitlines() if '"status"' in line) == 4
    read, write = os.pipe()
    os.close(read)
    try:  # a dry run (its lines on standard output) stopped so: its report says the same (it said "interrupted")
        done = subprocess.run([*COMMAND, *args, "--dry-run"], stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert json.loads(report.read_text().splitlines()[-1])["summary"]["stopped"] == "broken pipe"


def test_explain_piped_into_head_prints_the_first_lines() -> None:
    done = subprocess.run(f"{' '.join(COMMAND)} explain --level full | head -2", shell=True, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.startswith("| tag |") and done.stdout.count("\n") == 2
    assert "Traceback" not in done.stderr and done.stderr == ""


def test_dicom_only_at_full_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Full never releases a file that is not DICOM: --dicom-only there would be silently meaningless."""
    key = tmp_path / "key"
    key.write_text("1e" * 32)
    assert main(["anonymize", str(tmp_path), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key),
                 "--dicom-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("neuroanon: --dicom-only: only at --level anonymize or original")
    assert not (tmp_path / "out").exists()


FULL_ONLY = [["--shift-dates"], ["--clean-descriptors"], ["--retain-patient-characteristics"],
             ["--retain-device-identity"], ["--no-safe-private"], ["--lookup", "ids.csv"], ["--quarantine", "held"],
             ["--allow-burned-in"], ["--no-residual-check"],
             ["--key-file", "/nonexistent/key.hex"]]  # (found from outside: taken and not read, missing or a folder)


@pytest.mark.parametrize("option", FULL_ONLY, ids=lambda o: o[0])
@pytest.mark.parametrize("level", ["original", "anonymize", None])
def test_an_option_of_full_at_another_level_is_a_usage_error(
    option: list[str], level: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = ["--level", level] if level else []
    commands = {
        "anonymize": ["anonymize", str(tmp_path), "-o", str(tmp_path / "out")],
        "serve": ["serve", "--port", "0", "-o", str(tmp_path / "node")],
        "send": ["send", str(tmp_path), "--to", "PEER@127.0.0.1:1"],
        "explain": ["explain"],
    }
    for name, command in commands.items():
        if name == "explain" and option[0] in ("--lookup", "--quarantine", "--allow-burned-in",
                                               "--no-residual-check", "--key-file"):
            continue  # explain has no release options
        assert main([*command, *chosen, *option]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and option[0] in err and f"level {level or 'anonymize'}" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "node").exists()


def test_an_option_of_full_at_full_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--level", "full", "--shift-dates", "--retain-device-identity"]) == 0
    assert "(0008,0020)" in capsys.readouterr().out


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_naming_its_default() -> None:
    for name, sub in _subparsers(_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{label} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
                assert "default" in action.help, f"{label}: its default ({action.default}) is not in its help"


def test_anonymize_help_shows_examples_and_exit_codes() -> None:
    done = _run(["anonymize", "--help"])
    assert done.returncode == 0
    assert "examples:" in done.stdout and "--dry-run" in done.stdout and "exit status: 0" in done.stdout
    examples = done.stdout.split("examples:")[1]
    commands = [line.split() for line in examples.splitlines() if line.strip().startswith("neuroanon anonymize")]
    assert len(commands) >= 4
    for words in commands:  # every example parses
        _parser().parse_args(words[1:])


def _readme_commands() -> list[list[str]]:
    """Every `neuroanon ...` command in the README's and docs' shell blocks (continuations joined, comments cut,
    synopses with [optional] parts left out)."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    commands = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for block in re.findall(r"```sh\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["neuroanon"] and not any(w.startswith("[") for w in words):
                    commands.append(words[1:])
    return commands


def test_every_command_in_the_readme_parses() -> None:
    commands = _readme_commands()
    assert len(commands) >= 12 and ["key"] in commands
    for words in commands:
        args = _parser().parse_args(words)
        if getattr(args, "level", "full") != "full" and not getattr(args, "preset", None):  # (a preset is of full)
            assert not [o for o in FULL_ONLY if o[0] in words], f"README shows an option of full below it: {words}"


def test_a_report_that_cannot_take_a_line_names_itself(source: Path, tmp_path: Path) -> None:
    """/dev/full accepts the open and refuses every write, as a full disk does: the report's first line fails,
    before any file is read, so the run does not start (exit 2) and one line says why."""
    full = Path("/dev/full")
    assert full.exists(), "Linux's /dev/full stages a full disk for the report"
    done = _run(["anonymize", str(source), "-o", str(tmp_path / "out"), "--report", str(full)])
    assert "Traceback" not in done.stderr
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"neuroanon: cannot write the report {full}: no space left on device"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("command", ["anonymize", "verify", "explain"])
def test_a_full_standard_output_is_named(command: str, source: Path, tmp_path: Path) -> None:
    """Found from outside: with standard output on a full disk (/dev/full refuses every write), the one line said
    "No space left on device" and named nothing, as if a file of the run had failed. It names standard output;
    what the run wrote stays written."""
    out, key = tmp_path / "out", tmp_path / "key"
    key.write_text("ab" * 32)  # (a new default key would be announced on standard output first)
    if command == "verify":
        assert _run(["anonymize", str(source), "-o", str(out), "--level", "full", "-q", "--key-file", str(key)]
                    ).returncode == 0
    args = {"anonymize": ["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key)],
            "verify": ["verify", str(out)], "explain": ["explain", "--level", "full"]}[command]
    with open("/dev/full", "w") as full:
        done = subprocess.run([*COMMAND, *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.stderr.splitlines() == ["neuroanon: standard output: No space left on device"], done.stderr
    assert done.returncode == 1
    if command != "explain":
        assert sorted(p.name for p in out.rglob("*") if p.is_file())


def test_a_report_pipe_no_process_reads_is_refused_and_one_read_gets_the_report(source: Path, tmp_path: Path) -> None:
    """Found from outside: --report naming a pipe that no process reads waited for a reader without end and without
    a word. Refused at once (exit 2, one line, nothing made); with a reader, the reader gets the report."""
    pipe = tmp_path / "report.pipe"
    os.mkfifo(pipe)
    out = tmp_path / "out"
    done = _run(["anonymize", str(source), "-o", str(out), "--report", str(pipe)])
    assert (done.returncode, done.stderr.splitlines()) == (
        2, [f"neuroanon: cannot write the report {pipe}: a pipe no process reads"])
    assert not out.exists()
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # (a reader, before the run: the pipe holds 64 KiB)
    try:
        assert _run(["anonymize", str(source), "-o", str(out), "--report", str(pipe), "-q"]).returncode == 0
        lines = os.read(reader, 1 << 16).decode().splitlines()
    finally:
        os.close(reader)
    assert [json.loads(line).get("status") for line in lines[1:-1]] == ["written", "written"]


def test_a_report_on_standard_output_is_all_it_gets(source: Path, tmp_path: Path) -> None:
    """Found from outside: with --report /dev/stdout and standard output a file, the summary was written over the
    report's first lines (two descriptions of one file, each at its own offset): corrupt JSON lines. The report's
    lines are all standard output gets; what would be printed goes to standard error."""
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    with open(tmp_path / "stdout.jsonl", "w") as stdout:
        done = subprocess.run([*COMMAND, "anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full",
                               "--key-file", str(key), "--report", "/dev/stdout"], stdout=stdout,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "stdout.jsonl").read_text().splitlines()]
    assert list(lines[0]) == ["provenance"] and list(lines[-1]) == ["summary"]
    assert [line["status"] for line in lines[1:-1]] == ["written", "written"]
    assert "2 files at level full" in done.stderr


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "no-port"])
def test_a_dask_scheduler_that_cannot_be_reached_is_named_in_one_line(
    address: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nobody listening there: after 30 s the run said "oserror writing <output>" (exit 1; found from outside); an
    address Dask does not take was a traceback. The command cannot be carried out as given: exit 2, one line, and
    nothing made (an empty output folder, its work folder and journal were left behind)."""
    monkeypatch.setattr(pipeline, "DASK_CONNECT_SECONDS", 1)
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "--dask-scheduler", address, "-q",
                 "--report", str(tmp_path / "report.jsonl")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"neuroanon: cannot reach the Dask scheduler at {address} ("), line
    assert str(out) not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_workers_with_a_dask_scheduler_is_refused(source: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: --workers beside --dask-scheduler was accepted and left unread (the cluster's workers
    prepare the files), though the report's command line showed it. Refused in one line, nothing made."""
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--dask-scheduler", "tcp://127.0.0.1:1",
                 "--workers", "2"]) == 2
    assert capsys.readouterr().err == ("neuroanon: --workers sets this machine's processes; with --dask-scheduler the "
                                       "cluster's workers prepare the files: leave --workers out\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_a_dask_address_where_something_else_answers_is_one_line(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A web server's reply, read by Dask as a frame's length, ended in a traceback of a failed allocation of
    exabytes (found from outside): one line, exit 2."""
    import socket
    import threading

    monkeypatch.setattr(pipeline, "DASK_CONNECT_SECONDS", 2)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = server.accept()
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 64)

        threading.Thread(target=answer, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--dask-scheduler", address,
                     "-q"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"neuroanon: cannot reach the Dask scheduler at {address} ("), line


def _tree(root: Path) -> dict[Path, bytes | None]:
    """Every path under `root` and the bytes of each file: what a refused run must leave as it was."""
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# Each case: the options that make the report or the mapping meet another path of the run (placeholders name the
# paths the fixture makes), and which of the two the refusal names. The input is {src}; the default key {config}'s.
CLASHES = {
    "report is the key file": (["--key-file", "{key}", "--report", "{key}"], "report"),
    "report is the default key": (["--report", "{config}/neuroanon/key"], "report"),
    "report links to the key file": (["--key-file", "{key}", "--report", "{link}"], "report"),
    "report is the lookup file": (["--lookup", "{lookup}", "--report", "{lookup}"], "report"),
    "report is the mapping": (["--mapping", "{mapping}", "--report", "{mapping}"], "report"),
    "report is an input": (["--report", "{dcm}"], "report"),
    "report in an input": (["--report", "{src}/report.jsonl"], "report"),
    "report is the output zip": (["-o", "{zip}", "--report", "{zip}"], "report"),
    "report is the output folder": (["--report", "{out}"], "report"),
    "report in the output": (["--report", "{out}/report.jsonl"], "report"),
    "report in the quarantine": (["--quarantine", "{held}", "--report", "{held}/report.jsonl"], "report"),
    "mapping is an input": (["--mapping", "{dcm}"], "mapping"),
    "mapping in an input": (["--mapping", "{src}/ids.csv"], "mapping"),
    "mapping in the output": (["--mapping", "{out}/ids.csv"], "mapping"),
    "mapping is the key file": (["--key-file", "{key}", "--mapping", "{key}"], "mapping"),
    "mapping is the lookup file": (["--lookup", "{lookup}", "--mapping", "{lookup}"], "mapping"),
    # (found from outside: a report over the journal made the output one no run could resume)
    "report is the run's journal": (["--report", "{journal}"], "report"),
    "mapping in the run's work folder": (["--mapping", "{work}/ids.csv"], "mapping"),
}


@pytest.mark.parametrize("case", CLASHES)
def test_a_report_or_mapping_that_would_overwrite_a_path_of_the_run_is_refused(
    case: str, source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    options, what = CLASHES[case]
    paths = {name: tmp_path / name for name in ("out", "key", "config", "link", "lookup", "mapping", "held")}
    paths.update(src=source, zip=tmp_path / "out.zip", dcm=sorted(source.rglob("*.dcm"))[0],
                 journal=tmp_path / ".out.neuroanon-journal", work=tmp_path / ".out.neuroanon-work")
    paths["key"].write_text("ab" * 32)
    paths["link"].symlink_to(paths["key"])
    (paths["config"] / "neuroanon").mkdir(parents=True)
    (paths["config"] / "neuroanon" / "key").write_text("cd" * 32)
    paths["lookup"].write_text("original,new\nSUBJECT-A,NEW-A\n")
    paths["mapping"].write_text("original,new\n")
    paths["held"].mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(paths["config"]))
    argv = [a.format(**paths) for a in ["anonymize", "{src}", "-o", "{out}", "--level", "full", "-j", "1", "-q",
                                        *options]]
    before = _tree(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    written = argv[argv.index(f"--{what}") + 1]
    assert err.count("\n") == 0 and f"the {what} {written}" in err, err
    assert _tree(tmp_path) == before, "something was written before the refusal"


@pytest.mark.parametrize("place", ["output", "quarantine", "quarantine in the work folder"])
def test_a_symlink_loop_or_a_quarantine_in_the_work_folder_is_one_line(
    place: str, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output or quarantine that is a loop of symlinks was a traceback; a quarantine inside the run's work
    folder was taken, and the files held there were removed with it when the run ended (found from outside)."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    out, held = tmp_path / "out", tmp_path / "held"
    if place == "output":
        out = tmp_path / "loop"
    else:
        held = tmp_path / "loop" if place == "quarantine" else tmp_path / ".out.neuroanon-work" / "stage"
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    argv = ["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "--quarantine",
            str(held), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    expected = "must be outside the output, its work folder" if place.endswith("work folder") else "symlinks of"
    assert err.count("\n") == 0 and expected in err, err


def test_an_input_that_is_a_loop_of_symlinks_or_leads_nowhere_is_one_line_that_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: a loop of symlinks named as the input was refused as "input not found"."""
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    (tmp_path / "nowhere").symlink_to(tmp_path / "gone")
    for name, said in (("loop-a", "input is a loop of symlinks"), ("nowhere", "input is a symlink to nothing"),
                       ("absent", "input not found")):
        assert main(["anonymize", str(tmp_path / name), "-o", str(tmp_path / "out"), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{said}: {tmp_path / name}" in err, err
    assert not (tmp_path / "out").exists()


def test_verify_refuses_a_json_file_that_is_an_original_or_a_checked_file(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify --json named an original: it was written over it (found from outside)."""
    original = sorted(source.rglob("*.dcm"))[0]
    before = original.read_bytes()
    for argv in (["verify", str(source), "--json", str(original)],
                 ["verify", str(tmp_path), "--against", str(source), "--json", str(original)]):
        assert main(argv) == 2
        assert "is inside the" in capsys.readouterr().err
    assert original.read_bytes() == before


@pytest.mark.parametrize("earlier", ["a text file", "an archive of a run at another level"])
def test_an_existing_zip_output_no_run_began_is_refused_without_force(
    earlier: str, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "notes.zip"
    if earlier == "a text file":
        out.write_text("notes, not an archive\n")
    else:
        assert main(["anonymize", str(source), "-o", str(out), "--level", "original", "-j", "1", "-q"]) == 0
        capsys.readouterr()
    before = _tree(tmp_path)
    assert main(["anonymize", str(source), "-o", str(out), "-j", "1", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(out) in err and "--force" in err, err
    assert _tree(tmp_path) == before
    assert main(["anonymize", str(source), "-o", str(out), "-j", "1", "-q", "--force"]) == 0
    assert out.read_bytes().startswith(b"PK\x03\x04")


@pytest.mark.parametrize("option", ["--lookup", "--mapping"])
@pytest.mark.parametrize("content", [b"SUBJ\xe9-01,NEW-01\n", "a DICOM file", b"SUBJ" * 50_000 + b",NEW-01\n"],
                         ids=["latin-1", "DICOM", "a field of 200 KB"])
def test_a_csv_that_is_not_utf8_text_is_a_usage_error(
    option: str, content: bytes | str, source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    table = tmp_path / "ids.csv"
    table.write_bytes(sorted(source.rglob("*.dcm"))[0].read_bytes() if isinstance(content, str) else content)
    before = _tree(tmp_path)
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key),
                 "-j", "1", "-q", option, str(table)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(table) in err and ("UTF-8" in err or "CSV" in err), err
    assert "SUBJ" not in err, "a message never quotes the file"
    assert _tree(tmp_path) == before


def _limited_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))  # a file read without end fails, not the machine


@pytest.mark.parametrize(("option", "target"), [("--key-file", "/dev/zero"), ("--lookup", "/dev/zero"),
                                                ("--key-file", "a FIFO"), ("--lookup", "a FIFO"),
                                                ("--key-file", "a file of 5000 bytes")])
def test_a_key_or_lookup_that_is_not_a_regular_file_is_refused_unread(
    option: str, target: str, source: Path, tmp_path: Path
) -> None:
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    path = Path(target)
    if target == "a FIFO":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif target == "a file of 5000 bytes":  # a key is tiny; a lookup file may be big
        path = tmp_path / "big.key"
        path.write_bytes(b"k" * 5000)
    given = ["--key-file", str(path)] if option == "--key-file" else ["--key-file", str(key), "--lookup", str(path)]
    done = subprocess.run([*COMMAND, "anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full",
                           "-j", "1", *given], capture_output=True, text=True, timeout=60, preexec_fn=_limited_memory)
    line = _one_line(done, 2, str(path))
    assert "regular file" in line or "4 KiB" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("content", "words"), [
    (b"0123456789abcdef" * 4 + b"\n", None),  # (a key as `neuroanon key` writes it: taken)
    ((b"0123456789abcdef" * 4)[:-1] + b"\n", "a digit lost in copying?"),
    (bytes(32), "only zero bytes"),
    (b"  " + b"0123456789ABCDEF" * 4 + b"\r\n\n", None),  # (any case, white space around: taken)
    (bytes(range(200, 232)), None),  # (32 raw bytes: taken)
    # found from outside: a key almost hex was read as raw bytes, another key, in silence
    (b'"' + b"0123456789abcdef" * 4 + b'"\n', "hex digits with other characters"),
    (b"key=" + b"0123456789abcdef" * 4 + b"\n", "hex digits with other characters"),
    (b"0123456789abcdef" * 4 + b"\n# project key, made 2026-12-01\n", "hex digits with other characters"),
    (b"0123456789abcdef" * 4 + b"Z\n", "hex digits with other characters"),
    (b":".join([b"01", b"23", b"45", b"67", b"89", b"ab", b"cd", b"ef"] * 4) + b"\n", "colons between bytes"),
])
def test_a_key_with_a_digit_lost_or_of_zero_bytes_is_refused(content: bytes, words: str | None, source: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              ) -> None:
    """63 hex digits were read as 63 raw bytes: another key, other pseudonyms, in silence; 32 zero bytes were taken
    for a secret (found from outside)."""
    key = tmp_path / "key"
    key.write_bytes(content)
    status = main(["anonymize", str(source), "-o", str(tmp_path / "out"), "--level", "full", "--key-file", str(key),
                   "-q"])
    assert status == (0 if words is None else 2)
    if words is not None:
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"key file {key}" in err and words in err, err


@pytest.mark.parametrize("written", [
    lambda text: b"\xef\xbb\xbf" + text.encode("ascii"), lambda text: text.encode("utf-16"),
    lambda text: b"\xfe\xff" + text.encode("utf-16-be")])
def test_a_hex_key_saved_as_windows_saves_text_is_the_same_key(written: Callable[[str], bytes],
                                                                 tmp_path: Path) -> None:
    """Found from outside: a hex key saved as UTF-16 (PowerShell 5's `>`, Notepad's "Unicode") or with UTF-8's byte
    order mark was read as raw bytes, another key, in silence."""
    from neuroanon.keys import load_key

    text = "0123456789abcdef" * 4 + "\r\n"
    key = tmp_path / "key"
    key.write_bytes(written(text))
    assert load_key(key) == bytes.fromhex(text)


@pytest.mark.parametrize(("args", "words"), [
    (["anonymize", "IN", "-o", "OUT", "--workers", "two"], ("neuroanon anonymize:", "--workers", "'two'")),
    (["anonymize", "IN", "-o", "OUT", "--no-such-option"], ("neuroanon anonymize:", "--no-such-option")),
    (["anonymize", "IN"], ("neuroanon anonymize:", "--output")),
    (["anonymise", "IN"], ("neuroanon:", "'anonymise'", "anonymize")),
    (["verify", "OUT", "--level", "fulll"], ("neuroanon verify:", "'fulll'", "full")),
    ([], ("neuroanon:", "command")),
])
def test_a_command_given_wrong_is_one_line_pointing_to_the_help(args: list[str], words: tuple[str, ...]) -> None:
    """A value of the wrong kind, an unknown option or command, a missing argument: one line says what is wrong and
    where the help is (exit 2), not under a usage block of fourteen lines (found from outside)."""
    line = _one_line(subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60), 2, *words)
    assert line.endswith("--help)"), line


@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_a_port_out_of_range_is_refused_when_parsed(port: str, tmp_path: Path) -> None:
    done = subprocess.run([*COMMAND, "serve", "--port", port, "-o", str(tmp_path / "node")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "port must be 0-65535" in done.stderr.splitlines()[-1], done.stderr
    assert not (tmp_path / "node").exists()


def test_a_file_name_with_control_characters_is_one_escaped_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A failing file named with a newline and an escape sequence: its line stays one line, and no control
    character reaches the terminal."""
    source = tmp_path / "in"
    source.mkdir()
    name = "cut\n\x1b[31mred.dcm"
    data = make_study(tmp_path / "study", subject=12, n_series=1, n_instances=1)[0].read_bytes()
    (source / name).write_bytes(data[:-64])  # truncated: a failed record, said on stderr
    assert main(["anonymize", str(source), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "red.dcm" in line]
    assert line.startswith("failed: cut\\n\\x1b[31mred.dcm: ") and "\x1b" not in err


def test_inputs_that_share_a_name_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a" / "scan", tmp_path / "b" / "scan"
    make_study(first, subject=13, n_series=1, n_instances=1)
    make_study(second, subject=14, n_series=1, n_instances=1)
    assert main(["anonymize", str(first), str(second), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(first) in err and str(second) in err, err


def test_verify_names_a_json_file_it_cannot_write_before_scanning(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    make_study(tmp_path / "in", subject=15, n_series=1, n_instances=1)
    target = tmp_path / "missing" / "deeper"
    (tmp_path / "missing").write_text("a file where a folder should be")
    assert main(["verify", str(tmp_path / "in"), "--json", str(target / "findings.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "JSON file" in err and str(target / "findings.json") in err, err


_STOPPED_AS_IT_STARTS = """
import importlib.abc, os, signal, sys

class Stop(importlib.abc.MetaPathFinder):  # the signal comes while the command's modules load
    def find_spec(self, name, path=None, target=None):
        if name == "neuroanon.cli":
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        return None

sys.meta_path.insert(0, Stop())
from neuroanon.__main__ import console
console()
"""


_STOPPED_AS_IT_ENDS = """
import os, signal, sys
from neuroanon import cli

done = cli.main

def main(argv=None):  # the signal comes once the command is done
    code = done(sys.argv[2:])
    os.kill(os.getpid(), getattr(signal, sys.argv[1]))
    return code

cli.main = main
from neuroanon.__main__ import console
console()
"""


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_once_the_command_is_done_changes_nothing(signum: str, tmp_path: Path) -> None:
    """Found from outside: SIGTERM in the last moment of a run ended it by the signal, without a word."""
    done = subprocess.run([sys.executable, "-c", _STOPPED_AS_IT_ENDS, signum, "key", "--key-file",
                           str(tmp_path / "key")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "key").is_file()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_while_the_command_starts_is_one_line(signum: str) -> None:
    """Ctrl-C while the modules load printed a traceback; SIGTERM ended the command without a word (found from
    outside)."""
    done = subprocess.run([sys.executable, "-c", _STOPPED_AS_IT_STARTS, signum, "--version"], capture_output=True,
                          text=True, timeout=120)
    number = {"SIGINT": 2, "SIGTERM": 15}[signum]
    assert done.returncode == 128 + number, done.stderr
    assert done.stderr == f"neuroanon: stopped by {signum} as it started; nothing was written\n"


@pytest.mark.parametrize("missing", ["--tls-cert", "--tls-key", "--tls-ca", "--forward-tls-ca"])
def test_serve_names_the_tls_file_it_cannot_read(missing: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside: "cannot load the TLS certificate, key or CA ([Errno 2] No such file or directory)",
    which file not said."""
    present = tmp_path / "present.pem"
    present.write_text("not a certificate\n")
    gone = tmp_path / "gone.pem"
    files = {option: gone if option == missing else present for option in ("--tls-cert", "--tls-key")}
    argv = ["serve", "--port", "0", "-o", str(tmp_path / "node"), *(w for o, p in files.items() for w in (o, str(p)))]
    if missing == "--tls-ca":
        argv += ["--tls-ca", str(gone)]
    if missing == "--forward-tls-ca":
        argv += ["--forward", "PEER@127.0.0.1:11112", "--forward-tls-ca", str(gone)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"neuroanon: cannot read the TLS file {gone} ({missing}): no such file or directory", err


def test_serve_names_the_tls_certificate_and_key_it_cannot_load(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    assert main(["serve", "--port", "0", "-o", str(tmp_path / "node"), "--tls-cert", str(cert), "--tls-key",
                 str(key)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"neuroanon: cannot load the TLS certificate {cert} (--tls-cert) with its key {key} "
                          "(--tls-key): "), err


def test_verify_names_a_json_file_the_disk_refuses_and_makes_its_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: `verify --json /dev/full` said "No space left on device" of no file and exited 1 (which
    says findings) with none; a JSON file in a folder not yet made was not written, exit 1. As anonymize does for
    its report: the folders are made, and a file that cannot take the findings is named, exit 2."""
    full = Path("/dev/full")
    assert full.exists(), "Linux's /dev/full stages a full disk for the JSON file"
    make_study(tmp_path / "in", subject=16, n_series=1, n_instances=1)
    out = tmp_path / "out"
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["verify", str(out), "--json", str(full)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"neuroanon: cannot write the JSON file {full}: no space left on device"], err
    deeper = tmp_path / "not" / "yet" / "findings.json"
    assert main(["verify", str(out), "--json", str(deeper)]) == 0
    assert [entry["findings"] for entry in json.loads(deeper.read_text())] == [[]]


@pytest.mark.parametrize("command", [["anonymize", "-o", "OUT"], ["send", "--to", "NODE@127.0.0.1:9"]])
def test_inputs_that_hold_no_file_exit_2_saying_so(tmp_path: Path, command: list[str]) -> None:
    """Found from outside: an empty input folder (an unmounted share, a wrong path) gave exit 0, "every DICOM file
    was released", as a job checking the status reads it; verify gives 2 for it."""
    empty = tmp_path / "share"
    (empty / "nested").mkdir(parents=True)
    argv = [str(tmp_path / part) if part == "OUT" else part for part in command]
    done = subprocess.run([*COMMAND, argv[0], str(empty), *argv[1:], "--level", "anonymize"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 2, done
    assert done.stderr.strip().endswith(f"neuroanon: no file found in {empty}"), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("given", ["empty folder", "zip of a folder entry", "zip of nothing", "dangling link"])
def test_a_run_that_releases_no_file_leaves_no_archive_that_refuses_the_corrected_rerun(tmp_path: Path,
                                                                                       given: str) -> None:
    """Found from outside: an empty input with a `.zip` output left an empty archive, and the rerun with the right
    input was refused ("the output exists") without --force; so did inputs that hold files none of which is
    released (a zip archive of a folder entry alone, or of nothing; a dangling symlink)."""
    wrong, right, out = tmp_path / "share", tmp_path / "study", tmp_path / "out.zip"
    wrong.mkdir()
    if given.startswith("zip"):
        with zipfile.ZipFile(wrong / "export.zip", "w") as archive:
            if given == "zip of a folder entry":
                archive.writestr("DICOM/", b"")
    elif given == "dangling link":
        (wrong / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    make_study(right, subject=41, n_series=1, n_instances=2)
    main(["anonymize", str(wrong), "-o", str(out), "--level", "full", "-q"])  # (its status: other tests)
    assert sorted(os.listdir(tmp_path)) == ["share", "study"], "the run that released nothing left something"
    assert main(["anonymize", str(right), "-o", str(out), "-q"]) == 0
    assert len(zipfile.ZipFile(out).namelist()) == 2
