"""The pipeline: discover -> read header -> apply level -> write -> report, one file at a time.

The CLI and any other front end call these functions and never reach around them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset

from .apply import apply_level
from .burnedin import burned_in_risk
from .discover import InputFile, Kind, discover
from .errors import InputError, UsageError
from .identifiers import needles
from .keys import Keyring
from .layout import by_identifiers, mirrored
from .options import Level, Options
from .read import PixelSpan, quiet, read_header
from .report import Record, ReportWriter, Status, Summary
from .residual import Finding, check_file, check_path
from .write import Staged, copy_file, write_instance

log = logging.getLogger(__name__)

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


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
    on_record: Callable[[Record], None] | None = None,
) -> Summary:
    """Anonymize every file under `inputs` into `output`; write the report; return the summary."""
    check_paths(inputs, output, options.quarantine)
    output.mkdir(parents=True, exist_ok=True)
    summary = Summary(options.level.value)
    writer = ReportWriter(report)
    claimed: dict[str, str] = {}
    try:
        for given in inputs:
            # With several inputs each keeps its own folder (named like the input) in a mirrored output.
            prefix = given.resolve().name if len(inputs) > 1 else ""
            for item in discover([given]):
                record = process(item, output, options, prefix, claimed)
                summary.add(record, _size(item.path))
                writer.write(record.as_dict())
                if on_record is not None:
                    on_record(record)
        writer.write(summary.as_dict())
    finally:
        writer.close()
    return summary


def anonymize_file(source: Path, output: Path, options: Options) -> Record:
    """Anonymize one file into the folder `output` (mirrored name, or identifier path at full)."""
    item = next(iter(discover([source])))
    return process(item, output, options, "", {})


def process(item: InputFile, output: Path, options: Options, prefix: str, claimed: dict[str, str]) -> Record:
    """One input file to one record. Never raises for a bad file: the record says what happened."""
    with quiet():  # pydicom's messages quote element values: none may reach a log or a terminal
        return _process(item, output, options, prefix, claimed)


def _process(item: InputFile, output: Path, options: Options, prefix: str, claimed: dict[str, str]) -> Record:
    name = mirrored(prefix, item.relative)
    if item.kind is Kind.SPECIAL:
        return Record(name, Status.SKIPPED, "not a regular file (symlink, FIFO or device): not followed",
                      dicom=False)
    if item.kind is not Kind.DICOM:
        what = "empty file" if item.kind is Kind.EMPTY else "not DICOM"
        if options.level is Level.FULL:
            return Record(name, Status.SKIPPED, f"{what}: not released at full (it may hold PHI)", dicom=False)
        return _copied(item, output, name, f"{what}: copied unchanged", dicom=False)
    if options.level is Level.ORIGINAL:
        return _copied(item, output, name, "copied byte for byte")
    try:
        header = read_header(item.path)
        if _is_dicomdir(header.dataset):
            return Record(name, Status.SKIPPED, "DICOMDIR: its records hold identifiers and file offsets; "
                          "not copied", dicom=False)
        dataset, changes = apply_level(header.dataset, options)
        if options.level is Level.FULL:
            assert options.key is not None
            target = by_identifiers(dataset, Keyring(options.key), name)
        else:
            target = name
        first = claimed.setdefault(target, name)
        if first != name:
            return Record(name, Status.SKIPPED, f"duplicate instance: same output as {first}", target)
        with Staged(output) as staged:
            span = write_instance(dataset, header, item.path, staged.file)
            held = _hold_reason(header.dataset, staged, span, target, options)
            if held is None:
                staged.release(output / target)
                return Record(name, Status.WRITTEN, "", target, changes=tuple(changes))
            reason, findings = held
            kept = None
            if options.quarantine is not None:
                staged.move(options.quarantine / target)
                kept = target
            return Record(name, Status.QUARANTINED, reason, kept, changes=tuple(changes), findings=tuple(findings))
    except InputError as exc:
        return Record(name, Status.FAILED, str(exc))
    except UsageError:
        raise
    except Exception as exc:  # one bad file never stops the batch; the type alone names the problem
        log.debug("unexpected %s on %s", type(exc).__name__, name)
        return Record(name, Status.FAILED, f"could not be processed ({type(exc).__name__})")


def _hold_reason(
    original: Dataset, staged: Staged, span: PixelSpan | None, target: str, options: Options
) -> tuple[str, list[Finding]] | None:
    """Why a written file may not be released (fail closed at full), or None to release it."""
    if options.level is not Level.FULL:
        return None
    risk = burned_in_risk(original)
    if risk is not None and not options.allow_burned_in:
        return f"burned-in annotation risk ({risk}); check the pixels, then use --allow-burned-in", []
    if not options.residual_check:
        return None
    patterns = needles(original)
    findings = check_file(staged.path, span, patterns) + check_path(target, patterns)
    if findings:
        attributes = sorted({f.attribute for f in findings})
        return f"residual PHI: values of {', '.join(attributes)} found in the output", findings
    return None


def _copied(item: InputFile, output: Path, name: str, reason: str, dicom: bool = True) -> Record:
    try:
        copy_file(item.path, output, output / name)
    except OSError as exc:
        return Record(name, Status.FAILED, f"copy failed ({exc.strerror})", dicom=dicom)
    return Record(name, Status.WRITTEN, reason, name, dicom=dicom)


def _is_dicomdir(ds: object) -> bool:
    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0
