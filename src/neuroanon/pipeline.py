"""The pipeline: discover -> read header -> apply level -> write -> check -> release -> report.

Each file is prepared (read, anonymized, written under a temporary name, checked) by `prepare`, which needs no
shared state and so runs in any worker process; the engine (`engine.plan`) does the reading, anonymizing and
writing of every file, of a malformed one after salvage (read by pydicom, written back in canonical form), with
the pixel stage (`pixels.clean`) beside it; `commit` then releases, quarantines or discards it, in input order,
in the one process that owns the output. The output is therefore the same for any number of workers.
The CLI and any other front end call these functions and never reach around them.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import zipfile
import zlib
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from . import engine, pixels, review, stops
from .burnedin import HOLD_ALWAYS, recognizable_features
from .context import FileContext, RunContext
from .discover import (
    InputFile,
    Kind,
    archive_cause,
    archive_kind,
    discover,
    extracted,
    held_open,
    open_as_found,
    safe_member_name,
    stamp,
    unchanged_since_found,
    why_missing,
)
from .errors import InputError, RunStopped, SchedulerLost, UsageError, WorkerDied, os_cause
from .identifiers import patient_id
from .journal import Journal, check_output, journal_path, work_path
from .keys import Keyring, SubjectMapping
from .layout import by_identifiers, mirrored, mirrored_output
from .options import Level, Options
from .read import PixelSpan, is_dicomdir, quiet, read_header
from .report import Record, ReportWriter, RunInfo, Status, Summary
from .residual import Finding, bytes_after_frames, check_file, check_path, pixels_with_unused_bits, unused_bits
from .rules import Change, pseudonym
from .tables import Claims
from .write import (
    CHUNK,
    OUTPUT_MODE,
    WRITE_ERRORS,
    MemberPaths,
    Staged,
    ZipSink,
    clear_staged,
    copy_file,
    discard,
    held_elsewhere,
    parent_folders,
    partial_zip,
    release,
    salvage,
    transfer_syntax,
)

if TYPE_CHECKING:
    from distributed import Client
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

# What a worker task takes at most: 32 files (fewer round trips through the pool's threads than 8: about 0.2
# CPU-seconds less in the parent per 3,000 files) or 32 MB of input, so that large files still spread over workers.
BATCH, BATCH_BYTES = 32, 32 << 20
_PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies (Linux)
# A worker's batch holds its files' first reads (up to 1 MiB each) from one step to the next. glibc's malloc would
# give each such buffer its own mapping, or hand the heap's top back to the system once a batch frees them, and the
# next batch would fault its pages in again (30 page faults a file): buffers up to 2 MiB come from the heap, which
# keeps up to two batches' worth of freed memory for the next batch. (mallopt's options, glibc)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT_FOR_REUSE = 2 << 20


def _batch_files() -> int:
    """Files a batch may take: `BATCH`, fewer under a low limit of open files (a batch holds each of its inputs open
    from its read to its check; a worker keeps about 20 descriptors of its own), one at least."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return BATCH
    return BATCH if soft == resource.RLIM_INFINITY else max(1, min(BATCH, (soft - 32) // 2))


@dataclass(frozen=True)
class Prepared:
    """A file's outcome before commit: its record (output names the target) and its staged output, if any."""

    record: Record
    staged: str | None = None
    subject: tuple[str, str] | None = None  # at full: (original PatientID, its pseudonym), for --mapping
    read: tuple[int, int] | None = None  # the input's size and modification time as it was read (journalled)


def check_paths(inputs: list[Path], output: Path, quarantine: Path | None = None) -> None:
    """Refuse missing inputs, an output inside an input or an input inside the output (the release would hold the
    originals, whatever --force says), and a quarantine inside the output, the run's work folder (removed when the
    run ends) or an input; and an output whose name, or its journal's, is too long for its file system."""
    out = _resolved(output)
    _check_names(output)
    if output.is_symlink() and not output.exists():  # (found from outside: "file exists", then "run again")
        raise UsageError(f"the output {output} is a symlink to nothing: make its target, or name another output")
    for given in inputs:
        if not given.exists():
            raise UsageError(f"{why_missing(given)}: {given}")
        root = _resolved(given)
        if out == root or (root.is_dir() and out.is_relative_to(root)):
            raise UsageError(f"the output {output} is inside the input {given}")
        if root.is_relative_to(out):
            raise UsageError(f"the input {given} is inside the output {output}: the release would hold it")
    if quarantine is not None:
        held = _resolved(quarantine)
        if any(held.is_relative_to(place) for place in (out, work_path(output), *map(_resolved, inputs))):
            raise UsageError(f"the quarantine {quarantine} must be outside the output, its work folder and the inputs")
    if output.exists() and not output.is_dir() and output.suffix.lower() != ".zip":
        raise UsageError(f"the output {output} is an existing file, not a folder (name a folder or a .zip archive)")
    names = [p.resolve().name for p in inputs]
    counts = Counter(names)
    if len(inputs) > 1 and len(counts) != len(names):
        shared = [str(p) for p, name in zip(inputs, names, strict=True) if counts[name] > 1]
        raise UsageError(f"the inputs {', '.join(shared)} share a name (each gets a folder of that name in the "
                         "output): give only one of them, or rename one")


def check_name(path: Path, what: str) -> int:
    """Refuse a path the run writes (`what`: "output", "report"...) that holds a name longer than its file system
    takes (found from outside: such a name ended in exit 1 with Python's words); the longest it takes."""
    longest = _name_max(path.absolute())
    if any(len(os.fsencode(part)) > longest for part in path.absolute().parts):
        raise UsageError(f"cannot write the {what} {path}: file name too long")
    return longest


def _check_names(output: Path) -> None:
    """Refuse an output whose name is too long for its file system, or whose journal's is (the longest name the
    run puts beside it): the dry run as the run (found from outside: the dry run approved what the run refused)."""
    longest = check_name(output, "output")
    journal = len(os.fsencode(journal_path(output).name))
    if journal > longest:
        raise UsageError(f"cannot write beside the output {output}: file name too long (the run's journal there, "
                         f"named after the output, would take {journal} bytes; the file system takes {longest})")


def anonymize_tree(
    inputs: list[Path],
    output: Path,
    options: Options,
    report: Path | None = None,
    on_record: Callable[[Record, int], None] | None = None,
    workers: int = 1,
    dask_scheduler: str | None = None,
    run: RunInfo | None = None,
    mapping: Path | None = None,
    follow_symlinks: bool = False,
    force: bool = False,
    summary: Summary | None = None,
    private: tuple[Path, ...] = (),
    last: bool = True,
) -> Summary:
    """Anonymize every file under `inputs` into `output` with `workers` processes; report; return the summary
    (counted into `summary` when given: the caller can show what was done when the run stops). `last`: the run is
    its command's last step, so a stop asked as it writes its summary has nothing left to stop; `send` goes on to
    send what it wrote, and such a stop stops that (found by the suite: dropped, it did not).

    `on_record` hears of each file as it is committed, with the input's size (for progress displays). `run` is
    what the report says of the run besides `options` (the command line; clear input paths at full); `mapping`
    names the site's file of original PatientIDs and their pseudonyms (full; mode 0600; extended by reruns). With
    `dask_scheduler` the files are prepared on that Dask cluster, whose workers must see `output` at the same path.
    `follow_symlinks` follows symlinks inside the input trees (those named in `inputs` always are); `private`
    names files never read as input, under another name (a hard link) or where a followed link leads (the key, the
    lookup table), as the run's own folders and files are not. An output folder that is not empty and that no
    neuroanon run began is refused unless `force`.

    Outputs are staged in a private work folder beside `output` (`.<name>.neuroanon-work`, locked for the run:
    a second run into the same output is refused) and enter `output` only when released. A rerun with the same
    arguments after an interruption keeps what the earlier run finished and does the rest. An `output` ending in
    `.zip` is written as a zip archive, member by member (`X.zip.partial` until the run completes; a rerun takes
    it up again). When the output's disk fills up the run stops (RunStopped) with its report summarized.
    """
    check_paths(inputs, output, options.quarantine)
    inputs, output, options = _absolute(inputs, output, options, dask_scheduler)
    zipped = output.suffix.lower() == ".zip"
    # The cluster first: a scheduler that does not answer refuses the run before anything is made.
    with _dask_client(dask_scheduler) as cluster, work_folder(output) as work:
        if not zipped:
            clear_staged(output)  # what a run of an earlier version staged in the output itself
        clear_staged(options.quarantine)  # a copy to another disk an interrupted run left unfinished
        subjects, writer, journal = _records(output, options, inputs, report, run, mapping, force)
        summary = Summary(options.level.value) if summary is None else summary
        archive: ZipSink | None = None
        stopped = "interrupted"
        own = (output, work.stage.parent, journal.path, *(path for path in (
            options.quarantine, writer.path, subjects.path if subjects is not None else None, *private) if path))
        walk = _Walk(inputs, follow_symlinks, own)
        try:
            archive = ZipSink(output, keep=_kept_members(walk, journal)) if zipped else None
            if not zipped:
                output.mkdir(parents=True, exist_ok=True)
            _run(walk, output, work, options, journal, archive, summary, writer, on_record, workers, cluster, subjects)
            review.write_page(options.quarantine if options.clean_pixels else None)
            # Once the report holds its summary (and an archive its name), the run is done: a stop asked then is
            # dropped (found from outside: SIGTERM as the summary was written said "run again to resume").
            with stops.last_step() if last else nullcontext():
                _reported(writer, summary.as_dict())
                if archive is not None and archive.members:
                    archive.finish()
                elif archive is not None:  # (found from outside: the corrected rerun was refused by an empty archive)
                    archive.discard()
            stopped = ""
        except (_CallerFailed, RunStopped, OSError) as exc:
            stopped, raised = _stop(exc, output, summary.files)
            raise raised from None
        finally:
            # None of this may raise over the reason the run stopped: the disk may be full.
            with suppress(OSError):
                if stopped:
                    writer.write({"summary": {**_fields(summary), "stopped": stopped, **stops.asked_by()}})
            with suppress(OSError):
                writer.close()
            with suppress(OSError):
                journal.close()
            if subjects is not None:
                with suppress(OSError):
                    subjects.close()
            if archive is not None:
                with suppress(OSError):
                    archive.close()  # unfinished, the partial archive and the journal stay for a rerun
                if archive.finished:
                    journal.path.unlink(missing_ok=True)
    return summary


def _stop(exc: _CallerFailed | RunStopped | OSError, output: Path, files: int) -> tuple[str, BaseException]:
    """Why a run stopped, for its report's summary, and the error it stops with."""
    if isinstance(exc, _CallerFailed):
        # (found from outside: a closed pipe on standard error was said to stop the run "writing" its output)
        return os_cause(exc.error), exc.error
    # The machine's condition, not a bad file: stop, say it once; a rerun resumes.
    stopped = str(exc) if isinstance(exc, RunStopped) else os_cause(exc)
    if isinstance(exc, (WorkerDied, SchedulerLost)):
        start = "start the scheduler again, then " if isinstance(exc, SchedulerLost) else ""
        return stopped, RunStopped(f"{stopped}: the run stopped after {_files(files)}; {start}run the same command "
                                   "again to resume")
    if isinstance(exc, OSError) and exc.errno in _OPEN_FILES:  # (no place of the run's is at fault)
        return stopped, RunStopped(f"{stopped}: the run stopped after {_files(files)}; raise the limit of open files "
                                   "(ulimit -n) or give fewer workers, and run the same command again to resume")
    place = exc.place if isinstance(exc, RunStopped) and exc.place is not None else output
    advice = "free some space" if "no space" in stopped else "fix that"
    return stopped, RunStopped(f"{stopped} writing {place}: the run stopped after {_files(files)}; {advice} and "
                               "run the same command again to resume")


def _files(count: int) -> str:
    return f"{count} file{'' if count == 1 else 's'}"  # (found from outside: "after 1 files")


def _records(output: Path, options: Options, inputs: list[Path], report: Path | None, run: RunInfo | None,
             mapping: Path | None, force: bool) -> tuple[SubjectMapping | None, ReportWriter, Journal]:
    """The mapping, report and journal, opened for the run. What may refuse the run does so before anything is
    made: the output, the mapping, then the report. A refused run leaves none of them that it made (found from
    outside: a full disk left an empty journal and report)."""
    resumable = partial_zip(output).exists() if output.suffix.lower() == ".zip" else None
    check_output(output, options, inputs, resumable, force)
    made = [path for path in (mapping, report, journal_path(output)) if path is not None and not path.exists()]
    subjects: SubjectMapping | None = None
    writer: ReportWriter | None = None
    try:
        subjects = _mapping(mapping, options)
        writer = _opened_for_writing(lambda: ReportWriter(report, options=options, run=run), f"the report {report}")
        journal = _opened_for_writing(lambda: Journal(output, options, inputs, resumable, force),
                                      f"the journal beside {output}")
    except UsageError:
        for opened in (subjects, writer):
            if opened is not None:
                opened.close()
        for path in made:
            if not held_elsewhere(path):  # (another run's, made and claimed since it was looked for: it stays)
                path.unlink(missing_ok=True)
        raise
    return subjects, writer, journal


def _mapping(path: Path | None, options: Options) -> SubjectMapping | None:
    """The site's mapping file, claimed for the run; refused when another key or lookup made it."""
    if path is None:
        return None
    keyring = Keyring(options.key) if options.key is not None else None
    return _opened_for_writing(lambda: SubjectMapping(
        path, lambda original: pseudonym(keyring, options.lookup, original)[0] if keyring else None),
        f"the mapping file {path}")


_T = TypeVar("_T")


def _opened_for_writing(open_it: Callable[[], _T], what: str) -> _T:
    try:
        return open_it()
    except OSError as exc:
        raise UsageError(f"cannot write {what}: {os_cause(exc)}") from None


@dataclass(frozen=True)
class _Walk:
    """How a run walks its inputs: symlinks inside them followed or not, and what is never read as input, under
    another name or where a followed link leads (the run's own folders and files, the key, the lookup table)."""

    inputs: list[Path]
    follow_symlinks: bool
    avoid: tuple[Path, ...]

    def named(self) -> Iterator[tuple[InputFile, str]]:
        return _named(self.inputs, self.follow_symlinks, self.avoid)


def _run(
    walk: _Walk, output: Path, work: Work, options: Options, journal: Journal, archive: ZipSink | None,
    summary: Summary, writer: ReportWriter, on_record: Callable[[Record, int], None] | None, workers: int,
    cluster: Client | None, subjects: SubjectMapping | None,
) -> None:
    """Prepare every input (here or in the pool), commit each outcome in input order, record it."""
    present = archive.members.__contains__ if archive is not None else lambda name: (output / name).exists()
    released = archive.add if archive is not None else None
    claimed = Claims()
    with _pool(workers, cluster, work.lock) as pool, stops.deferred():
        if journal.done:
            _claim_finished(walk.named(), journal, present, claimed, options)
        items = walk.named()
        outcomes = _outcomes(items, work.stage, RunContext.of(options), journal, present, pool, 4 * max(workers, 4))
        for item, name, outcome in outcomes:
            line = None
            if isinstance(outcome, Prepared):
                line = _reserved(writer, outcome.record)  # (before its release and its journal line)
                if subjects is not None and outcome.subject is not None:
                    _mapped(subjects, *outcome.subject)  # before the file is journalled: a rerun would not list it
                if archive is None:
                    _withdraw(journal.replaced(name, item.path), outcome, output, claimed)
                record = _committed(outcome, name, item, output, options, claimed, released, journal, archive)
            else:  # finished by an earlier run
                record = _taken_up(replace(outcome, input=name), claimed, options)
            size = _size(item)
            summary.add(record, size)
            _reported(writer, record, line if isinstance(outcome, Prepared) and record is outcome.record else None)
            if on_record is not None:
                try:
                    on_record(record, size)
                except OSError as exc:  # (its terminal or pipe, not the run's files)
                    raise _CallerFailed(exc) from None
            stops.check()


class _CallerFailed(Exception):
    """`on_record` failed (its caller's standard output or error is a closed pipe, say): the caller's error, raised
    to it as it is once the run has stopped, never taken for the output's."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _mapped(subjects: SubjectMapping, original: str, new: str) -> None:
    """The subject listed in the mapping file; a mapping file that cannot be written stops the run, naming it."""
    try:
        subjects.add(original, new)
    except OSError as exc:
        raise RunStopped(os_cause(exc), place=subjects.path) from None


def _reported(writer: ReportWriter, entry: Record | dict[str, object], line: str | None = None) -> None:
    """`entry` appended to the report (`line`: as `_reserved` made it); a report that cannot take it stops the
    run, naming the report."""
    with _stops_at_report(writer):
        writer.write(entry, line)


def _reserved(writer: ReportWriter, record: Record) -> str | None:
    """`record`'s line, room kept for it in the report before its file is released (`ReportWriter.reserved`)."""
    with _stops_at_report(writer):
        return writer.reserved(record)


@contextmanager
def _stops_at_report(writer: ReportWriter) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise RunStopped(os_cause(exc), place=writer.path) from None


def _claim_finished(items: Iterable[tuple[InputFile, str]], journal: Journal, present: Callable[[str], bool],
                    claimed: Claims, options: Options) -> None:
    """On a rerun, claim the places (at full, and the instances) of what the earlier run finished before any input
    is prepared: a changed or new input that comes first in input order and holds a finished one's SOP Instance
    UID is then its duplicate, as in one run (found from outside: it was written over the finished one's output,
    whose record still said written there; one instance was released under two pseudonyms). A pass over the
    inputs, on a rerun only."""
    for item, name in items:
        done = _finished(journal, item, name, present)
        if done is not None:
            _taken_up(replace(done, input=name), claimed, options)


def _taken_up(record: Record, claimed: Claims, options: Options) -> Record:
    """The record of an input an earlier run finished, its output place claimed again; a duplicate's names the
    input that took its place (the journal keeps no input's name: at full a name may hold a patient's)."""
    if record.output is None:
        return record
    if record.status in (Status.WRITTEN, Status.QUARANTINED):
        _claim(claimed, record, options)
    elif record.status is Status.SKIPPED and _place(record.output) in claimed:
        return replace(record, same_as=claimed.claim(_place(record.output), record.input))
    return record


def _withdraw(earlier: str | None, prepared: Prepared, output: Path, claimed: Claims) -> None:
    """Remove what an earlier run released for an input changed since, unless the input's new output replaces it
    or another input of this run claimed it: it would stay in the release beside the new outcome (a fixed
    PatientID's new subject folder, or a `failed` record for an input now truncated). Done before the new outcome
    is journalled, so that a run killed between the two does it again."""
    new = prepared.record
    if not earlier or _place(earlier) in claimed or new.status is Status.WRITTEN and new.output == earlier:
        return
    if PurePosixPath(earlier).is_absolute() or ".." in PurePosixPath(earlier).parts:
        return  # not a name a run gives: the journal was written by something else
    gone = output / earlier
    gone.unlink(missing_ok=True)
    for folder in gone.parents:  # its folders too, once empty, as a run without it would have left none
        if folder == output or not folder.is_relative_to(output):
            break
        try:
            folder.rmdir()
        except OSError:
            break


def _committed(prepared: Prepared, name: str, item: InputFile, output: Path, options: Options,
               claimed: Claims, released: Callable[[Path, str], None] | None, journal: Journal,
               archive: ZipSink | None) -> Record:
    """`commit`, journalled. A file released into the output folder is journalled before its release, so that a
    run killed between the two leaves it journalled but absent (done again), never released but not journalled
    (done again although finished). A zip member is journalled after it is whole in the archive: a rerun keeps the
    archive's leading members that are journalled, so a member a kill or a full disk cut short is made again. A
    record that changed in the release (its name could not be written) is journalled again."""
    noted: list[Record] = []

    def note(record: Record) -> None:  # (the staged file is about to become the output: its size is the output's)
        journal.add(name, item.path, record, prepared.read, _staged_size(prepared.staged))
        noted.append(record)

    record = commit(prepared, output, options, claimed, released, before_release=note if released is None else None,
                    archive=archive)
    if not noted or noted[-1] is not record:
        journal.add(name, item.path, record, prepared.read)
    return record


def _staged_size(staged: str | None) -> int | None:
    try:
        return os.stat(staged).st_size if staged is not None else None
    except OSError:
        return None  # (its release then fails, and says why)


@dataclass(frozen=True)
class Work:
    """A run's private work folder: `stage` holds staged outputs; `lock` is the open lock file (a descriptor)."""

    stage: Path
    lock: int


def _resolved(path: Path) -> Path:
    """`path` with its symlinks resolved; a loop of them is a usage error (found from outside: a traceback)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        raise UsageError(f"cannot follow the symlinks of {path} (a loop?)") from None


@contextmanager
def work_folder(output: Path) -> Iterator[Work]:
    """The run's private work folder beside `output`, locked for the run, with its stage folder emptied.

    Staged outputs, held-back files included, wait there, never in the output. A second run into the same
    output while this one holds the lock is refused. The folder is removed when the run ends, however it ends.
    """
    work = work_path(output)
    try:
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = _lock(work / "lock")
    except OSError as exc:
        raise UsageError(f"cannot write beside the output {output}: {os_cause(exc)}"
                         ) from None
    if lock is None:
        raise UsageError(f"another neuroanon run is writing to {output}; wait for it to end (or stop it), then "
                         "run again")
    stage = work / "stage"
    try:
        shutil.rmtree(stage, ignore_errors=True)  # what a killed run left staged
        stage.mkdir(mode=0o700)
        yield Work(stage, lock)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        (work / "lock").unlink(missing_ok=True)
        os.close(lock)
        with suppress(OSError):
            work.rmdir()  # unless something else is in it (another run's lock file, made since)


def _lock(path: Path) -> int | None:
    """An exclusive lock on `path` (its open descriptor), or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the run that held it removed the file as it ended: lock the new one


def preview_tree(
    inputs: list[Path],
    output: Path,
    options: Options,
    report: Path | None = None,
    on_record: Callable[[Record, int], None] | None = None,
    workers: int = 1,
    run: RunInfo | None = None,
    follow_symlinks: bool = False,
    force: bool = False,
    summary: Summary | None = None,
) -> Summary:
    """A dry run: what `anonymize_tree` would write, skip or hold back, and why, with nothing written but the
    report. Each file is prepared and checked in a scratch folder and discarded at once; the records name the
    outputs a run would write (files held back are not kept: `output` is None). An output the run would refuse
    is refused the same way. `summary` as for `anonymize_tree`."""
    check_paths(inputs, output, options.quarantine)
    check_output(output, options, inputs, partial_zip(output).exists() if output.suffix.lower() == ".zip" else None,
                 force)
    summary = Summary(options.level.value) if summary is None else summary
    writer = ReportWriter(report, options=options, run=run)
    claimed = Claims()
    not_kept = replace(options, quarantine=None)
    foreseen = _Foreseen(None if output.suffix.lower() == ".zip" else output)
    stopped = "interrupted"  # (a stop asked by a signal, as a run's report says it)
    try:
        # Stops deferred as in a run (found from outside: they were not): taken between files, never inside the
        # scratch folder's or the pool's clean-up, where Python would print them and go on.
        with tempfile.TemporaryDirectory(prefix="neuroanon-dry-run-") as folder, _pool(workers, None) as pool, \
                stops.deferred():
            scratch = Path(folder)
            items = _named(inputs, follow_symlinks)
            # (prepared without the quarantine too: its review pictures would be written there)
            outcomes = _outcomes(items, scratch, RunContext.of(not_kept), None, lambda _: False, pool,
                                 4 * max(workers, 4))
            for item, _, outcome in outcomes:
                assert isinstance(outcome, Prepared)  # no journal: nothing was finished earlier
                record = commit(outcome, scratch, not_kept, claimed, released=foreseen.add, archive=foreseen)
                size = _size(item)
                summary.add(record, size)
                writer.write(record)
                if on_record is not None:
                    on_record(record, size)
                stops.check()
        with stops.last_step():  # (as a run's: found from outside, a stop as it was written said "stopped")
            writer.write(summary.as_dict())
        stopped = ""
    except OSError as exc:  # (its terminal or pipe gone, the scratch folder's disk full: said as a run says it)
        stopped = os_cause(exc)
        raise
    finally:
        with suppress(OSError):  # (as a stopped run's report does, found from outside)
            if stopped:
                writer.write({"summary": {**_fields(summary), "stopped": stopped, **stops.asked_by()}})
        writer.close()
    return summary


class _Foreseen:
    """What a dry run would release, so that it fails or skips a file as the run would: each output's CRC-32, size
    and transfer syntax (a duplicate is compared with them, as with a zip archive's member) and, into a folder
    (`folder`), the paths taken (a zip input's member `x` beside `x/y.dcm` cannot be written there)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.outputs: dict[str, tuple[int, int, bytes | None]] = {}
        self.paths = MemberPaths()  # (into a folder or an archive alike: `x` and `x/y.dcm` cannot both be)
        self.name_max = _name_max(folder) if folder is not None else 0

    def add(self, staged: Path, name: str) -> None:
        if self.folder is not None:
            self._free(name, self.folder)
            # (found from outside: a zip member's name too long for the folder's file system was said written)
            if any(len(os.fsencode(part)) > self.name_max for part in name.split("/")):
                raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
        self.paths.take(name)
        self.outputs[name] = (_crc(staged), staged.stat().st_size, _syntax(staged))
        discard(staged)

    def member(self, name: str) -> tuple[int, int, bytes | None] | None:
        return self.outputs.get(name)

    @staticmethod
    def _free(name: str, folder: Path) -> None:
        """Fail as the release into `folder` would where what it holds takes `name`'s path: a folder there
        (EISDIR), a file where one of its folders must be (ENOTDIR)."""
        if (folder / name).is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if any((folder / parent).is_file() for parent in parent_folders(name)):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))


def _name_max(folder: Path) -> int:
    """The longest name, in bytes, the file system of `folder` (or of the nearest folder above it that exists)
    takes."""
    for place in (folder, *folder.absolute().parents):
        try:
            return os.pathconf(place, "PC_NAME_MAX")
        except OSError:  # (not there yet)
            continue
    return 255


def anonymize_file(source: Path, output: Path, options: Options) -> Record:
    """Anonymize one file into the folder `output` (mirrored name, or identifier path at full)."""
    output.mkdir(parents=True, exist_ok=True)
    item = next(iter(discover([source])))
    out = output.resolve()
    # staged beside the output in a private folder of its own: calls into one output may run side by side
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.neuroanon-file-", dir=out.parent) as stage:
        return commit(prepare(item, item.relative, Path(stage), RunContext.of(options)), output, options, Claims())


def _named(inputs: list[Path], follow_symlinks: bool = False, avoid: tuple[Path, ...] = (),
           ) -> Iterator[tuple[InputFile, str]]:
    """Every input file with its report name (below a per-input folder when there are several inputs); `avoid`:
    the run's own folders, never read as input through a symlink."""
    for given in inputs:
        prefix = given.resolve().name if len(inputs) > 1 else ""
        for item in discover([given], follow_symlinks, avoid):
            yield item, mirrored(prefix, item.relative)


# Files handed to workers (or finished earlier), waiting in input order for their outcome.
_Pending = tuple[list[tuple[InputFile, str]], "Future[list[Prepared]] | Record"]


def _outcomes(
    items: Iterable[tuple[InputFile, str]], stage: Path, run: RunContext, journal: Journal | None,
    present: Callable[[str], bool], pool: Executor | None, window_size: int,
) -> Iterator[tuple[InputFile, str, Prepared | Record]]:
    """Each file's outcome in input order: prepared here or in the pool, or finished by an earlier run (whose
    output is still `present`). On a full disk, after those of the batch that met it, those the later batches
    finished; then RunStopped."""
    if pool is None:
        for item, name in items:
            yield item, name, _finished(journal, item, name, present) or prepare(item, name, stage, run)
        return
    window: deque[_Pending] = deque()
    try:
        yield from _given(items, stage, run, journal, present, pool, window_size, window)
    except _StoppedShort:
        # The batches given after it staged their files on the same full disk: those are released, then the run
        # stops (found from outside: a run stopped after the 1 file of the 5 the disk had room for; each rerun
        # added one).
        while window:
            with suppress(_StoppedShort):
                yield from _collect(window.popleft())
        raise RunStopped("no space left on device") from None


def _given(
    items: Iterable[tuple[InputFile, str]], stage: Path, run: RunContext, journal: Journal | None,
    present: Callable[[str], bool], pool: Executor, window_size: int, window: deque[_Pending],
) -> Iterator[tuple[InputFile, str, Prepared | Record]]:
    """`_outcomes` with a pool: files given to it in batches, at most `window_size` batches in `window` at once."""
    batch: list[tuple[InputFile, str]] = []
    size, most = 0, _batch_files()
    forked = not isinstance(pool, ProcessPoolExecutor)  # (a local pool forks its workers at its first task)
    for item, name in items:
        done = _finished(journal, item, name, present)
        if not forked and done is None and item.kind is Kind.DICOM and item.size <= _WARMING_BYTES:
            # The first small DICOM file is prepared here, before the workers are forked: they start with what it
            # derived (the run's compiled rules, the subject's needles and their compiled patterns), not each on
            # its own (at full, about 0.1 CPU-s a worker on the benchmark corpus).
            warmed: Future[list[Prepared]] = Future()
            warmed.set_result(_prepare_batch([(item, name)], stage, run))
            _submit(pool, batch, window, stage, run)  # (the files before it)
            window.append(([(item, name)], warmed))
            forked, size = True, 0
            continue
        if done is not None or len(batch) == most or size >= BATCH_BYTES:
            forked = forked or bool(batch)
            _submit(pool, batch, window, stage, run)
            size = 0
        if done is not None:
            window.append(([(item, name)], done))
        else:
            batch.append((item, name))
            size += _size(item)
        while len(window) > window_size:
            yield from _collect(window.popleft())
    _submit(pool, batch, window, stage, run)
    while window:
        yield from _collect(window.popleft())


_WARMING_BYTES = 1 << 20  # the file prepared before the workers start is small: they wait for it


@contextmanager
def _pool(workers: int, cluster: Client | None, lock: int | None = None) -> Iterator[Executor | None]:
    """Where files are prepared: a Dask cluster, local worker processes, or this process (holding `lock`)."""
    # What is loaded by now (pydicom's dictionaries, compiled rules) lives for the run: kept out of the garbage
    # collector's full passes, here and in the workers forked from here (about 5% of a worker's time at full),
    # and given back to it when the run ends (a process that runs many runs keeps collecting what they leave).
    # A file's objects are freed by reference counting (no cycles): the young generation is collected after
    # 50,000 allocations rather than 700 (another 4%).
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, *thresholds[1:])
    try:
        yield from _executor(workers, cluster, lock)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _executor(workers: int, cluster: Client | None, lock: int | None) -> Iterator[Executor | None]:
    if cluster is not None:
        yield cluster.get_executor(pure=False)  # type: ignore[no-untyped-call]
    elif workers > 1:
        pool = worker_pool(workers, (lock,))
        try:
            yield pool
            pool.shutdown()
        except BaseException:  # an interruption (also while the pool ends: its join is left half done), a full
            _stop_workers(pool)  # disk: the workers stop now, not after their tasks
            raise
    else:
        yield None


def _absolute(inputs: list[Path], output: Path, options: Options, scheduler: str | None,
              ) -> tuple[list[Path], Path, Options]:
    """The run's paths made absolute for a Dask cluster, whose workers run in folders of their own (found from
    outside: given relative paths, each worker read them as its own, and every file failed)."""
    if scheduler is None:
        return inputs, output, options
    held = options.quarantine.absolute() if options.quarantine is not None else None
    return [p.absolute() for p in inputs], output.absolute(), replace(options, quarantine=held)


@contextmanager
def _dask_client(scheduler: str | None) -> Iterator[Client | None]:
    """A client of the Dask scheduler at `scheduler` for the run (None without one)."""
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--dask-scheduler needs Dask: pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_SECONDS)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:  # (the command's problem, not the output's: no scheduler answers there)
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): check that it runs "
                         "and that --dask-scheduler names it") from None
    except Exception as exc:  # something else answers there (a web server: Dask read its reply as a length)
        raise UsageError(f"cannot reach the Dask scheduler at {scheduler} (what answers there is no Dask "
                         f"scheduler: {type(exc).__name__}): check that --dask-scheduler names it") from None
    with _dask_logs_silenced(), client:
        try:
            client.wait_for_workers(1, timeout=DASK_CONNECT_SECONDS)
        except (TimeoutError, OSError):
            raise UsageError(f"the Dask scheduler at {scheduler} has no worker (none joined within "
                             f"{DASK_CONNECT_SECONDS} s): start one, then run the command again") from None
        with _watching_workers(client, scheduler):
            yield client


@contextmanager
def _dask_logs_silenced() -> Iterator[None]:
    """Dask's own log lines kept off the terminal for the run: a lost scheduler printed tracebacks (found from
    outside); the run says in one line what happened."""
    # (Dask's configuration gives some of its loggers a level of their own, "distributed.client" one: each is set;
    # its event loop's errors are logged by Tornado's and asyncio's)
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio",
                                                     *logging.Logger.manager.loggerDict)
               if name.split(".")[0] in ("distributed", "tornado", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextmanager
def _watching_workers(client: Client, scheduler: str) -> Iterator[None]:
    """Say on stderr when the cluster has no worker left (the run waits until one joins) and when one is back:
    a run whose workers are all gone would otherwise wait in silence. A scheduler that goes stops the run (found
    from outside: its tasks were cancelled, or the run waited without end, saying no worker was left)."""
    done = threading.Event()

    def watch() -> None:
        waiting, polls = False, 0
        while not done.wait(1):
            if client.status != "running":  # (its connection closed: Dask cancels what it held)
                if not done.is_set():
                    stops.fail(SchedulerLost())
                return
            polls += 1
            if polls % DASK_CONNECT_SECONDS:
                continue
            try:
                none = not client.scheduler_info().get("workers")
            except Exception:  # (the scheduler itself went: said at the next second)
                continue
            if none != waiting:
                waiting = none
                print(f"neuroanon: the Dask scheduler at {scheduler} has no worker left; the run waits until one "
                      "joins (Ctrl-C stops it; the same command resumes it)" if none else
                      f"neuroanon: a Dask worker joined {scheduler}; the run goes on", file=sys.stderr, flush=True)

    watcher = threading.Thread(target=watch, name="neuroanon-dask-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


# How long a Dask scheduler has to answer (Dask's own default is 30 s; a scheduler that runs answers at once).
DASK_CONNECT_SECONDS = 10


def worker_pool(workers: int, locks: tuple[int | None, ...] = ()) -> ProcessPoolExecutor:
    """`workers` local processes that prepare files, each set up by `_worker_started` (shared with the node)."""
    return ProcessPoolExecutor(workers, initializer=_worker_started, initargs=(os.getpid(), locks))


def _worker_started(parent: int, locks: tuple[int | None, ...]) -> None:
    """In each worker process: Ctrl-C, SIGTERM and SIGHUP are the parent's to handle, also when sent to the whole
    process group (a terminal's Ctrl-C, `systemctl stop`, a batch system's cancel): the parent stops the workers.
    The worker dies with its parent, even when the parent is killed outright. The locks of the output and its
    work folder, inherited through fork, are the parent's alone: they end with the parent, not the last worker."""
    for lock in locks:
        if lock is not None:
            with suppress(OSError):
                os.close(lock)
    for signum in stops.STOPS:
        signal.signal(signum, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        with suppress(OSError, AttributeError):  # (glibc's malloc; another C library has its own ways)
            libc = ctypes.CDLL(None)
            libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_FOR_REUSE)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 * BATCH_BYTES)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued and end the worker processes (Python 3.14 has `terminate_workers` for this)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    # (the pool forgets these as it shuts down)
    results, manager = getattr(pool, "_result_queue", None), getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with suppress(OSError, ValueError):
            process.kill()
    for process in processes:
        with suppress(OSError, ValueError, AssertionError):
            process.join(10)  # reaped through its Process, so that the pool's own thread sees it end
    # A worker killed while sending a result leaves half a message, and the pool's thread would wait for the rest
    # for ever (and the interpreter for that thread at exit). With the workers gone, this process holds the last
    # write end of the results pipe: closing it ends that wait.
    with suppress(AttributeError, OSError):
        results._writer.close()  # type: ignore[union-attr]
    # The pool's thread ended here, not left to the interpreter's exit: Python 3.11 then wakes it through a pipe the
    # thread may be closing, and prints a traceback (found from outside: after a stop on a full disk, 2 runs of 100).
    if isinstance(manager, threading.Thread):
        manager.join(10)


def _submit(
    pool: Executor, batch: list[tuple[InputFile, str]], window: deque[_Pending], stage: Path, run: RunContext
) -> None:
    if batch:
        try:
            future = pool.submit(_prepare_batch, list(batch), stage, run)
        except BrokenExecutor:  # a worker died (killed from outside) before this batch was given: as in `_collect`
            stops.check()  # (a stop asked meanwhile is what the run stops for)
            raise WorkerDied from None
        window.append((list(batch), future))
        batch.clear()


def _collect(entry: _Pending) -> Iterator[tuple[InputFile, str, Prepared | Record]]:
    items, outcome = entry
    try:
        results: list[Prepared | Record] = [*stops.wait(outcome)] if isinstance(outcome, Future) else [outcome]
    except BrokenExecutor:
        raise WorkerDied from None
    except CancelledError:  # (only Dask cancels a task: its scheduler's connection closed; found from outside)
        raise SchedulerLost from None
    for (item, name), result in zip(items, results, strict=False):
        yield item, name, result
    if len(results) < len(items):  # the batch stopped where the disk filled up
        raise _StoppedShort


class _StoppedShort(Exception):
    """A batch stopped where the disk filled up: `_outcomes` still collects the batches given after it."""


def _kept_members(walk: _Walk, journal: Journal) -> set[str]:
    """The members of an interrupted zip run that its rerun may keep: those of inputs it finished that are
    unchanged since. An input changed since is made again, so its member, and every member after it, is cut off
    and made again: a member is never added twice. (A pass over the inputs, on a rerun only.)"""
    if not journal.done:
        return set()
    kept = set()
    for item, name in walk.named():
        done = _finished(journal, item, name, lambda _: True)
        if done is not None and done.status is Status.WRITTEN and done.output:
            kept.add(done.output)
    return kept


def _finished(journal: Journal | None, item: InputFile, name: str, present: Callable[[str], bool]) -> Record | None:
    done = journal.finished(name, item.path) if journal is not None else None
    if done is not None and done.status is Status.WRITTEN and done.output and not present(done.output):
        return None  # its output is gone: do it again
    if done is not None and done.status is Status.FAILED:
        return None  # try again: the cause (a permission, a file being copied in) may be gone
    if done is not None and item.kind in (Kind.LINK, Kind.UNREADABLE, Kind.SPECIAL):
        return None  # said again without reading anything
    if done is not None and not done.dicom and item.kind is Kind.DICOM:
        return None  # not DICOM then, DICOM now (a symlink followed this time)
    return done


def _prepare_batch(batch: list[tuple[InputFile, str]], stage: Path, run: RunContext) -> list[Prepared]:
    """The batch's outcomes, each step of a file (`_steps`) taken for every file of the batch before the next; on a
    full disk only those of the files before the one that met it (`_outcomes` stops the run after them and the
    batches given by then), so that what several workers staged at once is released, not lost with the batch."""
    own = own_stage(stage)
    files = [_steps(item, name, own, run) for item, name in batch]
    done: list[Prepared | None] = [None] * len(files)
    waiting = list(range(len(files)))
    stopped = len(files)  # the first file that met a full disk
    try:
        with quiet():
            while waiting:
                going = []
                for i in waiting:
                    try:
                        next(files[i])
                        going.append(i)
                    except StopIteration as finished:
                        done[i] = finished.value
                    except RunStopped:
                        stopped = i
                        break
                waiting = [i for i in going if i < stopped]
    finally:
        for steps in files:  # (those after a full disk: their descriptors closed, what they staged discarded)
            steps.close()
    return [prepared for prepared in done[:stopped] if prepared is not None]  # (each one is, before `stopped`)


def own_stage(stage: Path) -> Path:
    """This process's folder in the stage. Creating a file locks its folder: workers staging side by side in one
    folder wait on each other, and on Linux that wait spins on a CPU."""
    own = stage / f"w{os.getpid()}"
    try:
        own.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        if _no_space(exc):  # as `prepare` says it of a file staged on a full disk
            raise RunStopped("no space left on device") from None
        raise
    return own


def prepare(item: InputFile, name: str, stage: Path, run: RunContext) -> Prepared:
    """Read, anonymize, stage (in the folder `stage`) and check one file of the run `run`.

    Never raises for a bad file: the record says what happened. Raises RunStopped when the stage's disk is full.
    """
    steps = _steps(item, name, stage, run)
    with quiet():
        try:
            while True:
                next(steps)
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]


# A file's steps: read and plan, write, check (`_anonymized`), a `yield` between each and the next; a file that
# is not anonymized takes one. A batch takes each step for all its files before the next (`_prepare_batch`): each step's
# code and data stay in the processor's caches from one file to the next (on the benchmark corpus, 12 to 17% less
# CPU at full). pydicom's messages quote element values, so it is silenced (`quiet`) around all the steps, not inside
# one file's: a generator suspended inside that context would leave it in another file's step.
_Steps = Generator[None, None, Prepared]


def _steps(item: InputFile, name: str, stage: Path, run: RunContext) -> _Steps:
    fd, changed = open_as_found(item) if item.kind in _FOUND_AS_FILES else (None, "")
    if changed:
        return Prepared(Record(name, Status.SKIPPED, changed, dicom=False))
    if fd is None:
        return (yield from _prepare_held(item, name, stage, run))
    try:  # (read through the descriptor held: a swap of the path changes nothing)
        before = os.fstat(fd)
        if not unchanged_since_found(item, fd, before):
            return Prepared(Record(name, Status.FAILED, "changed since it was found (written to, replaced or its "
                                   "status changed during the run): not released; run again once it is complete"))
        prepared = yield from _prepare_held(held_open(item, fd), name, stage, run)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if stamp(after) != stamp(before):  # written to in place while read: the output may mix two versions
        if prepared.staged is not None:
            discard(Path(prepared.staged))
        return Prepared(Record(name, Status.FAILED, _CHANGED_WHILE_READ))
    return Prepared(prepared.record, prepared.staged, prepared.subject, stamp(before))  # (`replace` costs more)


_CHANGED_WHILE_READ = ("changed while it was read (written to during the run): not released; run again once it is "
                       "complete")


def _prepare_held(item: InputFile, name: str, stage: Path, run: RunContext) -> _Steps:
    """The steps of a file held open as found, or not held: not found as a regular file, or gone or unreadable
    since (its read says why)."""
    try:
        if item.kind not in (Kind.ZIP_MEMBER, Kind.GZIP_MEMBER):
            return (yield from _prepare(item, name, stage, run))
        if not safe_member_name(item.member or ""):
            return Prepared(Record(name, Status.FAILED, "zip member name is absolute, climbs out with '..' or "
                                   "holds a backslash"))
        if run.options.level is not Level.FULL and (item.member or "").rpartition("/")[2] == ".":
            return Prepared(Record(name, Status.FAILED, "zip member name ends in '.' (a folder's name): "
                                   "not mirrored in the output (at full it would be)"))
        # extracted into the private stage, not the shared temporary folder: its bytes are still identifiable
        with tempfile.TemporaryDirectory(prefix=".member-", dir=stage) as folder, ExitStack() as unpacked:
            try:
                member = unpacked.enter_context(extracted(item, Path(folder)))
            except (OSError, zipfile.BadZipFile, EOFError, zlib.error, KeyError) as exc:
                # (KeyError: an archive replaced since it was found, without the member: found from outside, a
                # traceback ended the run)
                if isinstance(exc, OSError) and exc.errno in _OPEN_FILES:
                    raise  # (the machine's limit, not the member's: found from outside, members failed one by one)
                if isinstance(exc, OSError) and _no_space(exc):  # (the member's own: its partial copy goes now)
                    # found from outside: a small member that unpacks to more than the disk holds stopped the run,
                    # and every rerun, there; the files after it were never done
                    return Prepared(Record(name, Status.FAILED, "archive member not unpacked: it holds more than "
                                           "the space left on the disk of the output's work folder"))
                return Prepared(Record(name, Status.FAILED, f"archive member unreadable ({archive_cause(exc)})"))
            if member.kind is Kind.NOT_DICOM and archive_kind(member.path, not_dicom=True) is not None:
                return Prepared(Record(name, Status.FAILED, "an archive inside an archive: not opened; extract "
                                       "it and run again"))
            return (yield from _prepare(member, name, stage, run))
    except OSError as exc:
        if _no_space(exc):
            raise RunStopped("no space left on device") from None
        raise


# Kinds whose `path` was a regular file when found (for members: the archive), and is read.
_FOUND_AS_FILES = frozenset({Kind.DICOM, Kind.NOT_DICOM, Kind.EMPTY, Kind.ZIP_MEMBER, Kind.GZIP_MEMBER})


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


_OPEN_FILES = (errno.EMFILE, errno.ENFILE)  # too many open files: in this process, in the system


def _prepare(item: InputFile, name: str, stage: Path, run: RunContext) -> _Steps:
    """A file by its kind: what is not a readable DICOM file is said or copied, a DICOM file anonymized."""
    if item.kind is Kind.SPECIAL:
        return Prepared(Record(name, Status.SKIPPED, "not a regular file (FIFO, device or socket): not read",
                               dicom=False))
    if item.kind is Kind.LINK:
        return Prepared(Record(name, Status.SKIPPED, item.note, dicom=False))
    if item.kind is Kind.UNREADABLE:
        return Prepared(Record(name, Status.FAILED, item.note))
    if item.kind is not Kind.DICOM:
        return _not_dicom(item, name, stage, run.options)
    if run.options.level is Level.ORIGINAL:
        return _copied(item, stage, name, "copied byte for byte")
    return (yield from _guarded(name, _anonymized(item, name, stage, run)))


def _not_dicom(item: InputFile, name: str, stage: Path, options: Options) -> Prepared:
    what = "empty file" if item.kind is Kind.EMPTY else "not DICOM"
    if options.level is Level.FULL:
        return Prepared(Record(name, Status.SKIPPED, f"{what}: not released at full (it may hold PHI)", dicom=False))
    if options.dicom_only:
        return Prepared(Record(name, Status.SKIPPED, f"{what}: not copied (--dicom-only)", dicom=False))
    return _copied(item, stage, name, f"{what}: copied unchanged", dicom=False)


def _guarded(name: str, steps: _Steps) -> _Steps:
    """`steps`, or the failed record of a file that is the problem; what is the run's problem (a usage error, a
    full disk) goes on up."""
    try:
        return (yield from steps)
    except InputError as exc:
        return Prepared(Record(name, Status.FAILED, str(exc)))
    except UsageError:
        raise
    except OSError as exc:
        if _no_space(exc):
            raise
        return Prepared(Record(name, Status.FAILED, f"could not be processed ({os_cause(exc)})"))
    except Exception as exc:  # one bad file never stops the batch; the type alone names the problem
        log.debug("unexpected %s on %s", type(exc).__name__, name)
        return Prepared(Record(name, Status.FAILED, f"could not be processed ({type(exc).__name__})"))


@dataclass(frozen=True)
class _Anonymized:
    """A file anonymized by the engine but not yet written: what changed, how to write it, how to check it."""

    context: FileContext
    identifiers: dict[str, str]  # the new PatientID and UIDs the output path is built from, by keyword
    changes: list[Change]
    write: Callable[[BinaryIO], PixelSpan | None]
    searchable: bytes | None = None  # at full: the output's bytes but the pixel data value, if the writer has them
    cleaning: pixels.Cleaning | None = None
    engine: str = "stream"  # or "stream after salvage (<why the engine declined the file as it was>)"
    held: int | None = None  # the bytes it holds until written; None: written at once (its pixels being cleaned)
    # The header the pixel checks read the frames' layout from where the pixel stage wrote the pixel data again (a
    # lossy JPEG's YBR_FULL_422 became RGB: found on review); else the original's
    layout: Dataset | None = None
    pixel_element: bytes | memoryview | None = None  # at full: the pixel data element as written, if the writer has it


def _anonymized(item: InputFile, name: str, stage: Path, run: RunContext) -> _Steps:
    anonymized = _anonymize(item.path, run, stage)
    if anonymized is None:
        return Prepared(Record(name, Status.SKIPPED, "DICOMDIR: its records hold identifiers and file offsets; not "
                               "copied", dicom=False))
    if _waits(anonymized):
        yield  # (a batch plans its other files before it writes this one)
    return (yield from _staged(anonymized, name, stage))


def _waits(anonymized: _Anonymized) -> bool:
    """Whether a file waits between its steps for the batch's others: not one that holds more than
    `_HELD_BETWEEN_STEPS` bytes until written and checked (a long header, a deflated dataset) or whose pixels are
    cleaned (their frames for review): a batch of 32 files then holds 32 MB at most."""
    return anonymized.held is not None and anonymized.held <= _HELD_BETWEEN_STEPS


_HELD_BETWEEN_STEPS = 1 << 20


def _anonymize(path: Path, run: RunContext, stage: Path) -> _Anonymized | None:
    """The file anonymized by the engine (after salvage when it is malformed), its pixels cleaned beside it when
    in scope; None for a DICOMDIR. A file the engine cannot take raises InputError naming why."""
    plan, source, route = _planned(path, run)
    if plan == "DICOMDIR":
        return None
    if plan == engine.NO_DATA_SET:
        raise InputError("no data set after the file meta (a file cut short?): not anonymized")
    if not isinstance(plan, engine.Plan):
        raise InputError(f"not anonymized: the engine does not take this form ({plan})")
    write = partial(plan.write, path) if source is None else partial(plan.write, Path())
    if pixels.in_scope(plan.context.original, run.options):
        return _with_clean_pixels(plan, write, stage, route)
    full = run.options.level is Level.FULL
    searchable, written_pixels = (plan.searchable(), plan.written_pixels()) if full else (None, None)
    held = len(plan.head) + len(plan.tail) + (plan.pixel_bytes.nbytes if plan.pixel_bytes is not None else 0)
    return _Anonymized(plan.context, plan.identifiers, plan.changes, write, searchable, engine=route, held=held,
                       pixel_element=written_pixels)


def _planned(path: Path, run: RunContext) -> tuple[engine.Plan | str, bytes | None, str]:
    """The engine's plan for the file, or for its salvaged bytes (also returned) when it is malformed; the
    report's `engine`. Else why the engine declines it. A file pydicom cannot read either raises InputError."""
    plan = engine.plan(path, run)
    if isinstance(plan, engine.Plan) or not engine.malformed(plan):
        return plan, None, "stream"
    header = read_header(path)
    if is_dicomdir(header.dataset):
        return "DICOMDIR", None, ""
    try:
        salvaged = salvage(header, path)
    except WRITE_ERRORS as exc:
        cause = "an element of unknown VR" if isinstance(exc, NotImplementedError) else type(exc).__name__
        raise InputError(f"malformed ({plan}) and not written back by pydicom ({cause})") from None
    again = engine.plan_bytes(salvaged, run)
    return again, salvaged, f"stream after salvage ({plan})"


def _with_clean_pixels(plan: engine.Plan, write: Callable[[BinaryIO], PixelSpan | None], stage: Path, route: str,
                       ) -> _Anonymized:
    """The pixel stage beside the engine: the engine's output, staged, is the source of pixels.clean, which
    decides and rewrites its pixel data (and the marks that go with it); the result is written from it (or,
    when the pixels could not be read, the engine's output as it is)."""
    context = plan.context
    with Staged(stage) as header_file:
        write(header_file.file)
    try:
        header = read_header(header_file.path)
        changed: list[Change] = []  # by the pixel stage: its elements alone are encoded again
        cleaning = pixels.clean(header_file.path, header, header.dataset, changed, context.needles, context.options,
                                original=context.original)
    except BaseException:
        discard(header_file.path)
        raise
    assert cleaning is not None  # in scope
    final = write if cleaning.write is None else cleaning.write  # None: the pixels could not be read, the file is held
    return _Anonymized(context, plan.identifiers, plan.changes + changed,
                       partial(_written_once, final, header_file.path), None, cleaning, route,
                       layout=header.dataset if cleaning.write is not None else None)


def _written_once(write: Callable[[BinaryIO], PixelSpan | None], source: Path, out: BinaryIO) -> PixelSpan | None:
    """`write(out)`, then the staged source it read from is discarded."""
    try:
        return write(out)
    finally:
        discard(source)


def _staged(anonymized: _Anonymized, name: str, stage: Path) -> _Steps:
    """Write the file into the stage, check it, and say whether it may be released."""
    options = anonymized.context.options
    target, mapped = _target(anonymized, name)
    with Staged(stage) as staged:
        span = anonymized.write(staged.file)
    try:
        if _waits(anonymized):
            yield  # (a batch writes its other files before it checks this one)
        held = _hold_reason(anonymized, staged.path, span, target)
        cleaning = anonymized.cleaning
        if cleaning is not None and options.quarantine is not None:
            review.save(cleaning, target, held[0] if held else None, options.quarantine)
    except BaseException:  # (not checked: a full disk, its batch stopped by one, an error) nothing is left staged
        discard(staged.path)
        raise
    reason, findings = held or (_released(options), [])
    record = Record(name, Status.WRITTEN if held is None else Status.QUARANTINED, reason, target,
                    changes=_shared(tuple(anonymized.changes)), findings=tuple(findings),
                    pixels=cleaning.report() if cleaning is not None else None, engine=anonymized.engine)
    return Prepared(record, str(staged.path), mapped)


def _released(options: Options) -> str:
    """The reason of a file written at `anonymize` or `full` (at `original`: copied byte for byte)."""
    if options.level is not Level.FULL:
        return "anonymized"
    return "anonymized; the residual check found no identifying value" if options.residual_check else \
        "anonymized; not checked (--no-residual-check)"


def _shared(changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """The one tuple of these changes in this process: the files of a series mostly share their list, and a batch
    pickled for the parent holds a shared tuple once."""
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    return _SHARED.setdefault(changes, changes)


_SHARED: dict[tuple[Change, ...], tuple[Change, ...]] = {}
# Series come one after another, a batch is 32 files: a few lists suffice. An enhanced file's list may hold a
# change for every frame (a date in each frame's groups), so a worker keeps few.
_SHARED_MAX = 64


def _target(anonymized: _Anonymized, name: str) -> tuple[str, tuple[str, str] | None]:
    """The output path (the input's below full), and at full the original PatientID with its pseudonym."""
    context, identifiers = anonymized.context, anonymized.identifiers
    if context.options.level is not Level.FULL:
        return mirrored_output(name), None
    mapped = patient_id(context.original), identifiers.get("PatientID", "")
    return by_identifiers(identifiers, context, name), mapped


def commit(
    prepared: Prepared, output: Path, options: Options, claimed: Claims,
    released: Callable[[Path, str], None] | None = None, before_release: Callable[[Record], None] | None = None,
    archive: ZipSink | _Foreseen | None = None,
) -> Record:
    """Release, quarantine or hold back a prepared file; the first input to claim an output path keeps it.

    `released` takes a released file instead of the output folder (a zip archive's `add`, `archive`: a duplicate
    is compared with its member); `before_release` is given the record of a file about to be released. A duplicate
    of a held-back file is held back too (it holds the same values), not counted as skipped.
    """
    record, staged = prepared.record, prepared.staged
    if staged is None or record.output is None:
        return record
    first, elsewhere = _claim(claimed, record, options)
    if elsewhere is not None:  # one instance under two subjects (or studies, series): the first keeps it
        discard(staged)
        return Record(record.input, Status.FAILED, "another input with this SOP Instance UID was released under "
                      "another subject, study or series; not written (one instance, two identities)",
                      same_as=elsewhere)
    if first != record.input:
        return _duplicate(record, Path(staged), first, output if released is None else None, archive,
                          options.level is Level.FULL)
    if record.status is Status.WRITTEN:
        if before_release is not None:
            before_release(record)
        try:
            if released is not None:
                released(Path(staged), record.output)
            else:
                release(staged, os.path.join(output, record.output), output, OUTPUT_MODE)  # (no Path made)
        except OSError as exc:
            _unless_staged_gone(exc, staged)
            why = _name_not_written(exc)
            if why is None:
                raise  # the output's condition (a full disk...): the run stops
            discard(staged)  # this file's name alone cannot be written there
            return replace(record, status=Status.FAILED, reason=f"output not written{why}", output=None)
        return record
    if options.quarantine is not None:
        return _quarantined(Path(staged), record, options.quarantine)
    discard(staged)
    return replace(record, output=None, reason=f"{record.reason}; held back, not written (no --quarantine folder)")


def _unless_staged_gone(exc: OSError, staged: str | Path) -> None:
    """Stop the run, saying why, when a release failed because its staged file is not there: a Dask worker that
    does not see the output's folder at the same path staged it elsewhere (found from outside: the line named the
    output or the quarantine as the place that failed)."""
    if isinstance(exc, FileNotFoundError) and not os.path.exists(staged):
        raise RunStopped("a prepared file is not where its worker staged it (with --dask-scheduler, every worker "
                         "must see the output's folder at the same path)", place=Path(staged).parent) from None


def _name_not_written(exc: OSError) -> str | None:
    """Why a file's own name cannot be written in the output, or None: the output's condition (a full disk...).
    Below full an output's path is its input's: a zip's member "x" and its "x/y.dcm" cannot both be files there."""
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        # (put there by another input, or by hand: found from outside, a folder so put was said another input's)
        return f": a file or folder already in the output holds its path ({os_cause(exc)})"
    if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.EILSEQ):
        return f" ({os_cause(exc)})"
    return None


def _duplicate(record: Record, staged: Path, first: str, output: Path | None, archive: ZipSink | _Foreseen | None,
               full: bool) -> Record:
    """The record of an input whose output place `first` claimed, its staged output discarded: skipped, or failed
    when its output would be other bytes in the same transfer syntax (content of its own, not released; in another
    one it is the instance in another form, as far as bytes can tell). `output`: the folder the first's output
    went to, for a comparison of the bytes; else `archive`, the zip archive it went into (its member's CRC-32).
    At `full` an output's path is made of its instance's identifiers: one path, one instance; below, it is the
    input's path, which two instances may share (found from outside: zip members `./a.dcm` and `a.dcm`)."""
    assert record.output is not None
    if record.status is Status.QUARANTINED:  # (so was the first: its place is in the quarantine too)
        discard(staged)
        return Record(record.input, Status.QUARANTINED, "same instance as another input, which was held back",
                      findings=record.findings, same_as=first)
    # (the same instance UID, so the same output path; its content may differ: not written, and said so)
    if output is not None:
        released = output / record.output
        same = _same_bytes(staged, released)
        recoded = same is False and _syntax(staged) != _syntax(released)
    else:
        same, recoded = _same_as_member(staged, archive.member(record.output) if archive is not None else None)
    discard(staged)
    reason = ("duplicate instance: " if full else "") + "another input has its output path; not written"
    # (the first input is named in `same_as`, which the report names as it names inputs: at full a file's
    # name may hold a patient's)
    if same is False and not recoded:  # content of its own that is not released: failed, as a file not released is
        return Record(record.input, Status.FAILED, f"{reason} (its output would be other bytes)", same_as=first)
    compared = {True: " (its output would be the same bytes)", None: "",
                False: " (its output would be in another transfer syntax)"}[same]  # (the instance in another form)
    return Record(record.input, Status.SKIPPED, reason + compared, record.output, same_as=first)


def _same_as_member(staged: Path, member: tuple[int, int, bytes | None] | None) -> tuple[bool | None, bool]:
    """Whether a duplicate's staged output holds the bytes of the zip member released for the same instance
    (`member`: its CRC-32, size and transfer syntax; None when that is not known), and whether it differs only in
    another transfer syntax (a member whose syntax is not known: taken so)."""
    if member is None:
        return None, False
    crc, size, syntax = member
    if staged.stat().st_size == size and _crc(staged) == crc:
        return True, False
    return False, syntax is None or _syntax(staged) != syntax


def _crc(path: Path) -> int:
    """A file's CRC-32, as a zip archive records its members'."""
    checksum = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            checksum = zlib.crc32(chunk, checksum)
    return checksum


def _syntax(path: Path) -> bytes | None:
    """The transfer syntax an output declares (None: it cannot be read), as the zip archive reads its members'."""
    try:
        with path.open("rb") as f:
            return transfer_syntax(f.read(CHUNK))
    except OSError:
        return None


def _same_bytes(staged: Path, released: Path) -> bool | None:
    """Whether a duplicate's staged output holds the bytes of the output released for the same instance (None when
    that one cannot be read: released by an earlier run and removed since, or held back)."""
    try:
        with staged.open("rb") as ours, released.open("rb") as theirs:
            if os.fstat(ours.fileno()).st_size != os.fstat(theirs.fileno()).st_size:
                return False
            while chunk := ours.read(CHUNK):
                if chunk != theirs.read(CHUNK):
                    return False
            return True
    except OSError:
        return None


def _quarantined(staged: Path, record: Record, quarantine: Path) -> Record:
    assert record.output is not None
    try:
        release(staged, quarantine / record.output, quarantine)
    except OSError as exc:  # the quarantine's condition (a full disk...): the run stops, naming it
        _unless_staged_gone(exc, staged)
        raise RunStopped(os_cause(exc), place=quarantine) from None
    return replace(record, reason=f"{record.reason}; kept in the quarantine folder")


def _claim(claimed: Claims, record: Record, options: Options) -> tuple[str, str | None]:
    """The input that first claimed the place of `record`'s output in this run (`record`'s own if none had), and at
    full, for a file released there, the input released first with its SOP Instance UID in another place."""
    assert record.output is not None
    released = options.level is Level.FULL and record.status is Status.WRITTEN
    return claimed.claim_instance(_place(record.output, record.status is Status.QUARANTINED), record.input,
                                  record.output.rpartition("/")[2] if released else None)  # (a name we gave)


def _place(output: str, quarantined: bool = False) -> str:
    """A place: a name in the output folder or in the quarantine (a name may be in both)."""
    return ("quarantine:" if quarantined else "") + output


def _fields(summary: Summary) -> dict[str, object]:
    fields = summary.as_dict()["summary"]
    assert isinstance(fields, dict)
    return dict(fields)



def _hold_reason(anonymized: _Anonymized, staged: Path, span: PixelSpan | None, target: str,
                 ) -> tuple[str, list[Finding]] | None:
    """Why a file written to `staged` (to go to `target`) may not be released (fail closed at full), or None."""
    context = anonymized.context
    if context.options.level is not Level.FULL:
        return None
    gated = _gate(context, anonymized.cleaning)
    if gated is not None:
        return gated, []
    if not context.options.residual_check:
        return None
    own = context.instance_needles
    findings = (check_file(staged, span, context.needles, anonymized.searchable, own)
                + check_path(target, context.needles, own))
    if findings:  # (first: the values found say more than bytes no image shows, which may hold them)
        attributes = sorted({f.attribute for f in findings})
        return f"residual PHI: values of {', '.join(attributes)} found in the output", findings
    layout = context.original if anonymized.layout is None else anonymized.layout
    after = bytes_after_frames(staged, span, layout, anonymized.searchable)
    if after:
        return (f"pixel data holds {after} bytes that no frame shows and that are not zero (after the frames, or "
                "beside them)"), []
    unused = pixels_with_unused_bits(staged, span, layout, anonymized.pixel_element)
    if unused:
        return f"{unused_bits(unused)}; --clean-pixels all clears them", []
    return None


def _gate(context: FileContext, cleaning: pixels.Cleaning | None) -> str | None:
    """The burned-in gate: why the pixels may still show identifying text, or None."""
    overlay = context.overlay if not context.overlay_cleared else None  # no look at the pixels releases one in them
    if overlay is not None and (cleaning is None or HOLD_ALWAYS in context.overlay_kept):
        return f"{overlay}, kept in the written pixel data: {context.overlay_kept or 'not cleared'}"
    if cleaning is not None:
        if cleaning.held is not None:
            return f"pixels not proven clean: {cleaning.held}"
        features = recognizable_features(context.original)  # (found from outside: released once its text was read)
        if features is not None and not context.options.allow_burned_in:
            return f"{features}, which no reading of text removes; check the pixels, then use --allow-burned-in"
        return None
    risk = context.risk_beside_overlay if context.overlay_cleared else context.burned_in_risk
    if risk is not None and not context.options.allow_burned_in:
        return f"burned-in annotation risk ({risk}); check the pixels, then use --allow-burned-in"
    return None


def _copied(item: InputFile, stage: Path, name: str, reason: str, dicom: bool = True) -> Prepared:
    try:
        staged = copy_file(item.path, stage)
    except OSError as exc:
        if _no_space(exc):
            raise
        return Prepared(Record(name, Status.FAILED, f"copy failed ({os_cause(exc)})", dicom=dicom))
    except EOFError:  # (cut short while copied: found from outside, a traceback ended the run)
        return Prepared(Record(name, Status.FAILED, _CHANGED_WHILE_READ, dicom=dicom))
    return Prepared(Record(name, Status.WRITTEN, reason, mirrored_output(name), dicom=dicom), str(staged))


def _size(item: InputFile) -> int:
    if item.member is not None or item.kind in (Kind.DICOM, Kind.NOT_DICOM, Kind.EMPTY):
        return item.size  # as found
    try:
        return os.stat(item.path).st_size
    except OSError:
        return 0
