"""The pipeline: discover -> read header -> apply level -> write -> check -> release -> report.

Each file is prepared (read, anonymized, written under a temporary name, checked) by `prepare`, which needs no
shared state and so runs in any worker process; the lean path (`lean.plan`) does the reading, anonymizing and
writing of a common-case file, the general path (read_header, apply_level, write_instance) that of any other,
to the same bytes; `commit` then releases, quarantines or discards it, in input
order, in the one process that owns the output. The output is therefore the same for any number of workers.
The CLI and any other front end call these functions and never reach around them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

from . import lean, pixels, review
from .apply import apply_level, changed_top_level
from .burnedin import burned_in_risk
from .discover import InputFile, Kind, discover, extracted, safe_member_name
from .errors import InputError, UsageError
from .identifiers import Needle, needles
from .journal import Journal
from .keys import Keyring, SubjectMapping
from .layout import by_identifiers, mirrored
from .options import Level, Options
from .read import DICOMDIR_CLASS, PixelSpan, quiet, read_header
from .report import Record, ReportWriter, RunInfo, Status, Summary
from .residual import Finding, check_file, check_path
from .write import Staged, ZipSink, clear_staged, copy_file, discard, move, partial_zip, release, write_instance

log = logging.getLogger(__name__)

BATCH = 8  # files a worker task takes at once: fewer round trips between processes


@dataclass(frozen=True)
class Prepared:
    """A file's outcome before commit: its record (output names the target) and its staged output, if any."""

    record: Record
    staged: str | None = None
    subject: tuple[str, str] | None = None  # at full: (original PatientID, its pseudonym), for --mapping


def check_paths(inputs: list[Path], output: Path, quarantine: Path | None = None) -> None:
    """Refuse missing inputs, an output inside an input, and a quarantine inside the output or an input."""
    out = output.resolve()
    for given in inputs:
        if not given.exists():
            raise UsageError(f"input not found: {given}")
        root = given.resolve()
        if out == root or (root.is_dir() and out.is_relative_to(root)):
            raise UsageError(f"the output {output} is inside the input {given}")
    if quarantine is not None:
        held = quarantine.resolve()
        if held == out or held.is_relative_to(out) or any(held.is_relative_to(p.resolve()) for p in inputs):
            raise UsageError(f"the quarantine {quarantine} must be outside the output and the inputs")
    names = [p.resolve().name for p in inputs]
    if len(inputs) > 1 and len(set(names)) != len(names):
        raise UsageError("several inputs share a name; their outputs would collide")


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
) -> Summary:
    """Anonymize every file under `inputs` into `output` with `workers` processes; report; return the summary.

    `on_record` hears of each file as it is committed, with the input's size (for progress displays). `run` is
    what the report says of the run besides `options` (the command line; clear input paths at full); `mapping`
    names the site's file of original PatientIDs and their pseudonyms (full; mode 0600; extended by reruns). With
    `dask_scheduler` the files are prepared on that Dask cluster, whose workers must see `output` at the same path.

    A rerun with the same arguments after an interruption keeps what the earlier run finished and does the rest.
    An `output` ending in `.zip` is written as a zip archive, member by member (`X.zip.partial` until the run
    completes; a rerun takes it up again).
    """
    check_paths(inputs, output, options.quarantine)
    zipped = output.suffix.lower() == ".zip"
    # A zip's members are staged in a work folder beside it, then copied into the archive.
    root = output if not zipped else output.parent / f".{output.name}.neuroanon-work"
    clear_staged(root)
    journal = Journal(output, options, resumable=partial_zip(output).exists() if zipped else None)
    archive = ZipSink(output, keep=journal.written()) if zipped else None
    root.mkdir(parents=True, exist_ok=True)
    present = archive.members.__contains__ if archive is not None else lambda name: (root / name).exists()
    summary = Summary(options.level.value)
    writer = ReportWriter(report, options=options, run=run)
    subjects = SubjectMapping(mapping) if mapping is not None else None
    claimed: dict[str, str] = {}
    released = archive.add if archive is not None else None
    try:
        with _pool(workers, dask_scheduler) as pool:
            outcomes = _outcomes(_named(inputs), root, options, journal, present, pool, 4 * max(workers, 4))
            for item, name, outcome in outcomes:
                if isinstance(outcome, Prepared):
                    record = commit(outcome, root, options, claimed, released)
                    journal.add(name, item.path, record)
                    if subjects is not None and outcome.subject is not None:
                        subjects.add(*outcome.subject)
                else:  # finished by an earlier run
                    record = replace(outcome, input=name)
                    if record.status is Status.WRITTEN and record.output is not None:
                        claimed.setdefault(record.output, name)
                size = _size(item)
                summary.add(record, size)
                writer.write(record)
                if on_record is not None:
                    on_record(record, size)
        writer.write(summary.as_dict())
        review.write_page(options.quarantine if options.clean_pixels else None)
        if archive is not None:
            archive.finish()
    finally:
        writer.close()
        journal.close()
        if subjects is not None:
            subjects.close()
        if archive is not None:
            archive.close()  # unfinished, the partial archive and the journal stay for a rerun
            shutil.rmtree(root, ignore_errors=True)
            if archive.finished:
                journal.path.unlink(missing_ok=True)
    return summary


def preview_tree(
    inputs: list[Path],
    output: Path,
    options: Options,
    report: Path | None = None,
    on_record: Callable[[Record, int], None] | None = None,
    workers: int = 1,
    run: RunInfo | None = None,
) -> Summary:
    """A dry run: what `anonymize_tree` would write, skip or hold back, and why, with nothing written but the
    report. Each file is prepared and checked in a scratch folder and discarded at once; the records name the
    outputs a run would write (files held back are not kept: `output` is None)."""
    check_paths(inputs, output, options.quarantine)
    summary = Summary(options.level.value)
    writer = ReportWriter(report, options=options, run=run)
    claimed: dict[str, str] = {}
    not_kept = replace(options, quarantine=None)
    try:
        with tempfile.TemporaryDirectory(prefix="neuroanon-dry-run-") as folder, _pool(workers, None) as pool:
            scratch = Path(folder)
            outcomes = _outcomes(_named(inputs), scratch, options, None, lambda _: False, pool, 4 * max(workers, 4))
            for item, _, outcome in outcomes:
                assert isinstance(outcome, Prepared)  # no journal: nothing was finished earlier
                record = commit(outcome, scratch, not_kept, claimed, released=lambda staged, _: discard(staged))
                size = _size(item)
                summary.add(record, size)
                writer.write(record)
                if on_record is not None:
                    on_record(record, size)
        writer.write(summary.as_dict())
    finally:
        writer.close()
    return summary


def anonymize_file(source: Path, output: Path, options: Options) -> Record:
    """Anonymize one file into the folder `output` (mirrored name, or identifier path at full)."""
    output.mkdir(parents=True, exist_ok=True)
    item = next(iter(discover([source])))
    return commit(prepare(item, item.relative, output, options), output, options, {})


def _named(inputs: list[Path]) -> Iterator[tuple[InputFile, str]]:
    """Every input file with its report name (below a per-input folder when there are several inputs)."""
    for given in inputs:
        prefix = given.resolve().name if len(inputs) > 1 else ""
        for item in discover([given]):
            yield item, mirrored(prefix, item.relative)


# Files handed to workers (or finished earlier), waiting in input order for their outcome.
_Pending = tuple[list[tuple[InputFile, str]], "Future[list[Prepared]] | Record"]


def _outcomes(
    items: Iterable[tuple[InputFile, str]], output: Path, options: Options, journal: Journal | None,
    present: Callable[[str], bool], pool: Executor | None, window_size: int,
) -> Iterator[tuple[InputFile, str, Prepared | Record]]:
    """Each file's outcome in input order: prepared here or in the pool, or finished by an earlier run (whose
    output is still `present`)."""
    if pool is None:
        for item, name in items:
            yield item, name, _finished(journal, item, name, present) or prepare(item, name, output, options)
        return
    window: deque[_Pending] = deque()
    batch: list[tuple[InputFile, str]] = []
    for item, name in items:
        done = _finished(journal, item, name, present)
        if done is not None or len(batch) == BATCH:
            _submit(pool, batch, window, output, options)
        if done is not None:
            window.append(([(item, name)], done))
        else:
            batch.append((item, name))
        while len(window) > window_size:
            yield from _collect(window.popleft())
    _submit(pool, batch, window, output, options)
    while window:
        yield from _collect(window.popleft())


@contextmanager
def _pool(workers: int, dask_scheduler: str | None) -> Iterator[Executor | None]:
    """Where files are prepared: a Dask cluster, local worker processes, or this process."""
    if dask_scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--dask-scheduler needs Dask: pip install 'dask[distributed]'") from None
        with Client(dask_scheduler) as client:  # type: ignore[no-untyped-call]
            yield client.get_executor(pure=False)
    elif workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            yield pool
    else:
        yield None


def _submit(
    pool: Executor, batch: list[tuple[InputFile, str]], window: deque[_Pending], output: Path, options: Options
) -> None:
    if batch:
        window.append((list(batch), pool.submit(_prepare_batch, list(batch), output, options)))
        batch.clear()


def _collect(entry: _Pending) -> Iterator[tuple[InputFile, str, Prepared | Record]]:
    items, outcome = entry
    results: list[Prepared | Record] = [*outcome.result()] if isinstance(outcome, Future) else [outcome]
    for (item, name), result in zip(items, results, strict=True):
        yield item, name, result


def _finished(journal: Journal | None, item: InputFile, name: str, present: Callable[[str], bool]) -> Record | None:
    done = journal.finished(name, item.path) if journal is not None else None
    if done is not None and done.status is Status.WRITTEN and done.output and not present(done.output):
        return None  # its output is gone: do it again
    return done


def _prepare_batch(batch: list[tuple[InputFile, str]], output: Path, options: Options) -> list[Prepared]:
    return [prepare(item, name, output, options) for item, name in batch]


def prepare(item: InputFile, name: str, output: Path, options: Options) -> Prepared:
    """Read, anonymize, stage and check one file. Never raises for a bad file: the record says what happened."""
    with quiet():  # pydicom's messages quote element values: none may reach a log or a terminal
        if item.kind is not Kind.ZIP_MEMBER:
            return _prepare(item, name, output, options)
        if not safe_member_name(item.relative):
            return Prepared(Record(name, Status.FAILED, "zip member name is absolute or climbs out with '..'"))
        with tempfile.TemporaryDirectory(prefix="neuroanon-member-") as folder:
            try:
                member = extracted(item, Path(folder))
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                return Prepared(Record(name, Status.FAILED, f"zip member unreadable ({type(exc).__name__})"))
            return _prepare(member, name, output, options)


def _prepare(item: InputFile, name: str, output: Path, options: Options) -> Prepared:
    if item.kind is Kind.SPECIAL:
        return Prepared(Record(name, Status.SKIPPED, "not a regular file (symlink, FIFO or device): not followed",
                               dicom=False))
    if item.kind is not Kind.DICOM:
        what = "empty file" if item.kind is Kind.EMPTY else "not DICOM"
        if options.level is Level.FULL:
            return Prepared(Record(name, Status.SKIPPED, f"{what}: not released at full (it may hold PHI)",
                                   dicom=False))
        if options.dicom_only:
            return Prepared(Record(name, Status.SKIPPED, f"{what}: not copied (--dicom-only)", dicom=False))
        return _copied(item, output, name, f"{what}: copied unchanged", dicom=False)
    if options.level is Level.ORIGINAL:
        return _copied(item, output, name, "copied byte for byte")
    try:
        plan = lean.plan(item.path, options)
        if plan is not None and pixels.in_scope(plan.original, options):
            plan = None  # its pixels are read and maybe rewritten: the general path
        original: Dataset
        cleaning: pixels.Cleaning | None = None
        if plan is None:  # not the common case: the general path
            header = read_header(item.path)
            if _is_dicomdir(header.dataset):
                return Prepared(Record(name, Status.SKIPPED, "DICOMDIR: its records hold identifiers and file "
                                       "offsets; not copied", dicom=False))
            patterns = needles(header.dataset) if options.level is Level.FULL else ()
            dataset, changes = apply_level(header.dataset, options, patterns)
            original, identifiers, searchable = header.dataset, dataset, None
            changed = changed_top_level(changes)
            write: Callable[[BinaryIO], PixelSpan | None] = partial(write_instance, dataset, header, item.path,
                                                                    changed=changed)
            cleaning = pixels.clean(item.path, header, dataset, changes, patterns, options)
            write = cleaning.write if cleaning is not None and cleaning.write is not None else write
        else:
            original, identifiers, changes, patterns = plan.original, plan.identifiers, plan.changes, plan.patterns
            searchable = plan.searchable() if options.level is Level.FULL else None
            write = partial(plan.write, item.path)
        target, subject = name, None
        if options.level is Level.FULL:
            assert options.key is not None
            target = by_identifiers(identifiers, Keyring(options.key), name)
            subject = str(original.get("PatientID", "") or ""), str(identifiers.get("PatientID", "") or "")
        with Staged(output) as staged:
            span = write(staged.file)
        held = _hold_reason(original, staged.path, span, target, options, patterns, searchable, cleaning)
        if cleaning is not None and options.quarantine is not None:
            review.save(cleaning, target, held[0] if held else None, options.quarantine)
        cleaned = cleaning.report() if cleaning is not None else None
        if held is None:
            return Prepared(Record(name, Status.WRITTEN, "", target, changes=tuple(changes), pixels=cleaned),
                            str(staged.path), subject)
        reason, findings = held
        return Prepared(Record(name, Status.QUARANTINED, reason, target, changes=tuple(changes),
                               findings=tuple(findings), pixels=cleaned), str(staged.path), subject)
    except InputError as exc:
        return Prepared(Record(name, Status.FAILED, str(exc)))
    except UsageError:
        raise
    except Exception as exc:  # one bad file never stops the batch; the type alone names the problem
        log.debug("unexpected %s on %s", type(exc).__name__, name)
        return Prepared(Record(name, Status.FAILED, f"could not be processed ({type(exc).__name__})"))


def commit(
    prepared: Prepared, output: Path, options: Options, claimed: dict[str, str],
    released: Callable[[Path, str], None] | None = None,
) -> Record:
    """Release, quarantine or discard a prepared file; the first input to claim an output path keeps it.

    `released` takes a released file instead of the output folder (a zip archive's `add`).
    """
    record, staged = prepared.record, prepared.staged
    if staged is None or record.output is None:
        return record
    place = ("quarantine:" if record.status is Status.QUARANTINED else "") + record.output
    first = claimed.setdefault(place, record.input)
    if first != record.input:
        discard(Path(staged))
        return Record(record.input, Status.SKIPPED, f"duplicate instance: same output as {first}", record.output)
    if record.status is Status.WRITTEN:
        if released is not None:
            released(Path(staged), record.output)
        else:
            release(Path(staged), output / record.output)
        return record
    if options.quarantine is not None:
        move(Path(staged), options.quarantine / record.output)
        return record
    discard(Path(staged))
    return replace(record, output=None)


def _hold_reason(
    original: Dataset, staged: Path, span: PixelSpan | None, target: str, options: Options,
    patterns: tuple[Needle, ...], searchable: bytes | None, cleaning: pixels.Cleaning | None = None,
) -> tuple[str, list[Finding]] | None:
    """Why a written file may not be released (fail closed at full), or None to release it."""
    if options.level is not Level.FULL:
        return None
    if cleaning is not None and cleaning.held is not None:
        return f"pixels not proven clean: {cleaning.held}", []
    risk = burned_in_risk(original)
    if risk is not None and not options.allow_burned_in and cleaning is None:
        return f"burned-in annotation risk ({risk}); check the pixels, then use --allow-burned-in", []
    if not options.residual_check:
        return None
    findings = check_file(staged, span, patterns, searchable) + check_path(target, patterns)
    if findings:
        attributes = sorted({f.attribute for f in findings})
        return f"residual PHI: values of {', '.join(attributes)} found in the output", findings
    return None


def _copied(item: InputFile, output: Path, name: str, reason: str, dicom: bool = True) -> Prepared:
    try:
        staged = copy_file(item.path, output)
    except OSError as exc:
        return Prepared(Record(name, Status.FAILED, f"copy failed ({exc.strerror})", dicom=dicom))
    return Prepared(Record(name, Status.WRITTEN, reason, name, dicom=dicom), str(staged))


def _is_dicomdir(ds: object) -> bool:
    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS


def _size(item: InputFile) -> int:
    if item.member is not None:
        return item.size
    try:
        return os.lstat(item.path).st_size
    except OSError:
        return 0
