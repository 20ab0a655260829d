"""Scale: the same output for any number of workers, a killed run resumed to the same bytes, flat memory."""

from __future__ import annotations

import itertools
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from neuroanon import pipeline
from neuroanon.context import RunContext
from neuroanon.discover import InputFile
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree
from neuroanon.sample import make_dataset, make_many, make_study
from neuroanon.write import release

from .helpers import comparable_report, files_under, kill_mid_run, read_report

KEY = b"scale-test-key-0123456789abcdef!"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in files_under(root)}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Studies, a duplicate instance, a truncated file and a non-DICOM file: every path through commit."""
    root = tmp_path_factory.mktemp("mixed") / "in"
    files = make_study(root / "a", subject=1, n_series=2, n_instances=5)
    make_study(root / "b", subject=2, n_series=1, n_instances=4, encoding="implicit_le")
    (root / "dup.dcm").write_bytes(files[0].read_bytes())
    (root / "cut.dcm").write_bytes(files[1].read_bytes()[:-300])
    (root / "notes.txt").write_text("fake notes")
    return root


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_output_and_report_do_not_depend_on_the_number_of_workers(mixed: Path, tmp_path: Path, level: Level) -> None:
    results = []
    for workers in (1, 2, 3):
        out, report = tmp_path / f"out{workers}", tmp_path / f"report{workers}.jsonl"
        summary = anonymize_tree([mixed], out, Options(level=level, key=KEY), report=report, workers=workers)
        assert summary.exit_code == 1  # the truncated file
        results.append((_tree(out), comparable_report(report)))
    assert results[0] == results[1] == results[2]
    assert len(results[0][0]) >= 14


_NOTED: dict[str, Path] = {}
_PREPARE_BATCH = pipeline._prepare_batch


def _noted(batch: list[tuple[InputFile, str]], stage: Path, run: RunContext) -> list[pipeline.Prepared]:
    """`_prepare_batch`, noting which process prepared which files (a module's function: a worker is given it by
    name)."""
    with open(_NOTED["calls"], "a") as f:
        f.write(f"{os.getpid()} {' '.join(name for _, name in batch)}\n")
    return _PREPARE_BATCH(batch, stage, run)


def test_the_first_small_dicom_file_is_prepared_before_the_workers_start(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's own process prepares the first small DICOM file before it forks the workers, which then start with
    what it derived (the compiled rules, the subject's needles and patterns) instead of each deriving it again; a
    large file or a file that is not DICOM before it goes to the workers. (The records keep input order: the test
    above, whose first file is prepared so.)"""
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "a" / "notes.txt").write_text("fake notes")
    big = make_dataset(subject=3, series=9, rows=768, columns=768)  # (over 1 MiB of pixel data)
    big.save_as(root / "a" / "big.dcm", enforce_file_format=True)
    make_study(root / "b", subject=3, n_series=1, n_instances=4)
    calls = tmp_path / "calls.txt"
    monkeypatch.setattr(pipeline, "_prepare_batch", _noted)  # (forked workers see these too)
    monkeypatch.setitem(_NOTED, "calls", calls)
    report = tmp_path / "report.jsonl"
    anonymize_tree([root], tmp_path / "out", Options(level=Level.FULL, key=KEY), report=report, workers=2)
    by_process = [line.split(" ", 1) for line in calls.read_text().splitlines()]
    here = [names for pid, names in by_process if int(pid) == os.getpid()]
    first = sorted(str(p.relative_to(root)) for p in (root / "b").rglob("*.dcm"))[0]
    assert here == [first], by_process
    assert sum(len(names.split()) for _, names in by_process) == 6  # (each file once)
    _, records, _ = read_report(report)
    assert [r["status"] for r in records] == ["written", "skipped", "written", "written", "written", "written"]


def test_a_killed_run_resumes_to_the_same_bytes_without_redoing_finished_files(tmp_path: Path) -> None:
    source = tmp_path / "in"
    make_many(source, 600, subject=12)
    key = tmp_path / "key"
    key.write_text("ef" * 32)
    command = [sys.executable, "-m", "neuroanon.cli", "anonymize", str(source), "--level", "full", "--key-file",
               str(key), "--workers", "2", "-q"]
    reference = tmp_path / "reference"
    subprocess.run([*command, "-o", str(reference)], check=True, capture_output=True)

    out = tmp_path / "out"
    journal = tmp_path / ".out.neuroanon-journal"
    kill_mid_run([*command, "-o", str(out)], journal, lines=120)
    finished = {p: p.stat().st_mtime_ns for p in files_under(out) if not p.name.endswith(".neuroanon-tmp")}
    assert 100 <= len(finished) < 600, "the kill should land mid-run"
    expected = _tree(reference)
    for path in finished:
        assert path.read_bytes() == expected[str(path.relative_to(out))], "a partial file under a final name"

    report = tmp_path / "report.jsonl"
    rerun = subprocess.run([*command, "-o", str(out), "--report", str(report)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert _tree(out) == expected
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, "a finished file was redone"
    _, records, summary = read_report(report)
    assert len(records) == 600 and summary["written"] == 600
    assert {r["engine"] for r in records} == {"stream"}, "records of finished files are told in full"


# 128 little endian words of 12 bits (BitsStored): none sets a bit outside the stored ones, which would hold the file
_PATTERN = bytes(b if i % 2 == 0 else b % 16 for i, b in enumerate(range(256)))


def _big_file(path: Path, frames: int, rows: int = 512, columns: int = 512) -> int:
    """A multi-frame MR file of frames*rows*columns*2 bytes of pixel data, written in chunks."""
    ds = make_dataset(subject=4, rows=rows, columns=columns)
    del ds.PixelData
    ds.NumberOfFrames = frames
    for tag in [t for t in ds.keys() if t > 0x7FE00010]:
        del ds[tag]
    ds.save_as(path, enforce_file_format=True)
    size = frames * rows * columns * 2
    chunk = _PATTERN * (rows * columns * 2 // 256)
    with open(path, "ab") as f:
        f.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, size))
        for _ in range(frames):
            f.write(chunk)
    return size


def test_memory_stays_flat_for_a_500_mb_file(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    size = _big_file(source / "big.dcm", frames=1000)
    assert size >= 500 * 1024 * 1024
    key = tmp_path / "key"
    key.write_text("01" * 32)
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    for level in ("anonymize", "full"):
        out = tmp_path / f"out-{level}"
        keyed = ["--key-file", str(key)] if level == "full" else []
        done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "neuroanon.cli", "anonymize",
                               str(source), "-o", str(out), "--level", level, *keyed, "--workers", "1", "-q"],
                              capture_output=True, text=True, check=True)
        peak_mb = int(done.stdout.split()[-1]) / 1024
        assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB at {level}"
        (result,) = files_under(out)
        with open(result, "rb") as f:
            f.seek(result.stat().st_size - size)
            assert f.read(1 << 20) == (_PATTERN * 4096)[: 1 << 20]
        assert pydicom.dcmread(result, stop_before_pixels=True).NumberOfFrames == 1000
        result.unlink()


def _peak_rss_mb(command: list[str]) -> float:
    """The peak resident memory of `command`'s largest process, in MB."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def test_memory_does_not_grow_with_the_number_of_series(tmp_path: Path) -> None:
    """A worker keeps what it derives for a series (its needles' index and compiled patterns: about two megabytes)
    for the last 32 series, not for every series it saw: 240 series cost no more memory than 80 (before, it kept
    256 indexes: 268 MB at 120 series)."""
    key = tmp_path / "key"
    key.write_text("23" * 32)
    peaks = []
    for series in (80, 240):
        source = tmp_path / f"in{series}"
        for subject in range(series):
            make_many(source / f"s{subject:03d}", 3, subject=subject)
        peaks.append(_peak_rss_mb([sys.executable, "-m", "neuroanon.cli", "anonymize", str(source), "-o",
                                   str(tmp_path / f"out{series}"), "--level", "full", "--key-file", str(key),
                                   "--workers", "1", "-q"]))
    message = f"peak RSS {peaks[0]:.0f} MB at 80 series, {peaks[1]:.0f} MB at 240"
    assert peaks[1] - peaks[0] < 25 and peaks[1] < 200, message


def test_other_options_into_a_used_output_are_refused_unless_it_was_emptied(mixed: Path, tmp_path: Path) -> None:
    import shutil

    from neuroanon.errors import UsageError

    out = tmp_path / "out"
    anonymize_tree([mixed], out, Options(level=Level.ANONYMIZE))
    with pytest.raises(UsageError, match=r"was begun at level anonymize \(this run: full\)"):
        anonymize_tree([mixed], out, Options(level=Level.FULL, key=KEY))
    shutil.rmtree(out)
    summary = anonymize_tree([mixed], out, Options(level=Level.FULL, key=KEY))
    assert summary.counts["written"] >= 14


def test_a_dask_cluster_gives_the_same_bytes_as_a_local_run(mixed: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    local, report_local = tmp_path / "local", tmp_path / "local.jsonl"
    anonymize_tree([mixed], local, Options(level=Level.FULL, key=KEY), report=report_local, workers=1)
    with LocalCluster(  # type: ignore[no-untyped-call]  # dask is untyped
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote, report_remote = tmp_path / "remote", tmp_path / "remote.jsonl"
        summary = anonymize_tree([mixed], remote, Options(level=Level.FULL, key=KEY), report=report_remote,
                                 workers=2, dask_scheduler=cluster.scheduler_address)
    assert summary.counts["written"] >= 14
    assert _tree(remote) == _tree(local)
    assert comparable_report(report_remote) == comparable_report(report_local)


def test_a_dask_run_given_relative_paths_gives_the_same_bytes(mixed: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers run in a folder of their own: relative paths were read as theirs, and every file failed
    "no such file or directory" (found from outside). The run gives them absolute paths."""
    import shutil

    from distributed import LocalCluster

    local = tmp_path / "local"
    anonymize_tree([mixed], local, Options(level=Level.FULL, key=KEY), workers=1)
    shutil.copytree(mixed, tmp_path / "in")
    with LocalCluster(  # type: ignore[no-untyped-call]  # (its workers start in this folder, not tmp_path)
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.chdir(tmp_path)
        summary = anonymize_tree([Path("in")], Path("remote"), Options(level=Level.FULL, key=KEY),
                                 dask_scheduler=cluster.scheduler_address)
    assert summary.counts["written"] >= 14
    assert _tree(tmp_path / "remote") == _tree(local)


def test_a_dask_scheduler_without_workers_is_a_usage_error(mixed: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler with no worker made the run wait in silence (found from outside)."""
    import threading

    from distributed import LocalCluster

    from neuroanon.errors import UsageError

    monkeypatch.setattr(pipeline, "DASK_CONNECT_SECONDS", 1)
    raised: list[BaseException] = []

    def run(scheduler: str) -> None:
        try:
            anonymize_tree([mixed], tmp_path / "out", Options(level=Level.FULL, key=KEY), dask_scheduler=scheduler)
        except BaseException as exc:  # (what the run raised, for the test to see)
            raised.append(exc)

    with LocalCluster(n_workers=0, processes=True, dashboard_address=None) as cluster:  # type: ignore[no-untyped-call]
        runner = threading.Thread(target=run, args=(cluster.scheduler_address,), daemon=True)
        runner.start()
        runner.join(timeout=60)  # (it waited for ever)
        assert not runner.is_alive(), "the run waits for a worker in silence"
    assert len(raised) == 1 and isinstance(raised[0], UsageError) and "has no worker" in str(raised[0])
    assert not (tmp_path / "out").exists()


def test_a_lost_dask_scheduler_stops_the_run_in_one_line_and_a_rerun_resumes(tmp_path: Path) -> None:
    """Found from outside: a Dask scheduler killed during a run ended it with Dask's tracebacks and a
    CancelledError's, or left it waiting without end, saying no worker was left. The run now stops in one line,
    its summary first, and the same command without Dask finishes it, as a run that was never stopped."""
    import signal
    import time

    source = tmp_path / "in"
    make_many(source, 400)
    address_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m"]
    scheduler = subprocess.Popen([*dask, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", str(address_file)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        worker = subprocess.Popen([*dask, "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads",
                                   "1", "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out, report = tmp_path / "out", tmp_path / "report.jsonl"
        command = [sys.executable, "-m", "neuroanon", "anonymize", str(source), "-o", str(out), "--level",
                   "anonymize", "--report", str(report), "--dask-scheduler", address]
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while time.monotonic() < deadline + 60 and run.poll() is None and (
                not report.exists() or report.read_text().count('"status"') < 3):
            time.sleep(0.02)
        scheduler.send_signal(signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=120)
    finally:
        for process in (scheduler, worker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert run.returncode == 1, (stdout, stderr)
    assert stderr.startswith("neuroanon: the run lost its Dask scheduler") and stderr.count("\n") == 1, stderr
    assert "files at level anonymize" in stdout
    subprocess.run([*command[:-2], "-q"], check=True)
    local = tmp_path / "local"
    anonymize_tree([source], local, Options(level=Level.ANONYMIZE), workers=1)
    assert _tree(out) == _tree(local)


def test_a_file_is_journalled_before_it_is_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed between a file's release and its journal line would, resumed, do that file again although it
    was finished (seen once in CI): the line is written first (a journalled file whose output is absent is done
    again)."""
    source = tmp_path / "in"
    make_study(source, subject=3, n_series=1, n_instances=4)
    out = tmp_path / "out"
    journal = tmp_path / ".out.neuroanon-journal"
    journalled_first: list[bool] = []

    def release_checked(staged: str | Path, dest: str | Path, root: Path | None = None, mode: int | None = None,
                        ) -> None:
        journalled_first.append(f'"id": {json.dumps(str(Path(dest).relative_to(out)))}' in journal.read_text())
        release(staged, dest, root, mode)

    monkeypatch.setattr(pipeline, "release", release_checked)
    summary = anonymize_tree([source], out, Options(level=Level.ANONYMIZE), workers=1)
    assert summary.exit_code == 0 and len(journalled_first) == 4 and all(journalled_first)


def test_a_staged_file_is_private_and_never_takes_a_name_already_there(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Staged files are numbered in their process: a name a killed run left (the same process id, numbers taken
    anew) is passed over, never opened or overwritten, and every staged file is the process's own, private."""
    from neuroanon import write

    stage = tmp_path / "stage"
    monkeypatch.setattr(write, "_NUMBERS", itertools.count())
    left = stage / f".{os.getpid()}-1{write.TMP_SUFFIX}"
    stage.mkdir()
    left.write_bytes(b"left by a killed run")
    names = []
    for number in range(3):
        with write.Staged(stage) as staged:
            staged.file.write(b"staged %d" % number)
        names.append(staged.path)
        assert staged.path.stat().st_mode & 0o777 == 0o600
    assert left not in names and left.read_bytes() == b"left by a killed run"
    assert len(set(names)) == 3 and [p.read_bytes() for p in names] == [b"staged 0", b"staged 1", b"staged 2"]
    monkeypatch.setattr(write, "_NUMBERS", itertools.repeat(1))  # (every name taken)
    with pytest.raises(FileExistsError):
        write.Staged(stage)
