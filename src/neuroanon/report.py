"""The run report: a provenance line, one JSON line per input file and a summary line. Never an element value.

At full, inputs are named by a keyed token of their path unless the user asks for clear paths: folder and file
names often hold names, IDs and birth dates.
"""

from __future__ import annotations

import enum
import errno
import json
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .keys import Keyring, key_fingerprint
from .options import Level, Options
from .residual import Finding
from .rules import Change, change
from .write import append_line, claim, close_lines, make_room


class Status(enum.StrEnum):
    WRITTEN = "written"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"
    FAILED = "failed"


@dataclass(frozen=True)
class Record:
    """What became of one input file."""

    input: str
    status: Status
    reason: str = ""
    output: str | None = None
    dicom: bool = True
    changes: tuple[Change, ...] = ()
    findings: tuple[Finding, ...] = ()
    pixels: dict[str, object] | None = None  # Clean Pixel Data: frames read, boxes redacted (positions only)
    engine: str = ""  # what wrote it: "stream" (the engine), or "stream after salvage (<why>)" for a malformed file
    same_as: str = ""  # a duplicate instance: the input that took its output path (named as `input` is)

    @property
    def released(self) -> bool:
        """False for a DICOM file that was meant to go out and did not."""
        return not self.dicom or self.status in (Status.WRITTEN, Status.SKIPPED)

    def as_dict(self) -> dict[str, object]:
        return {
            "input": self.input,
            "output": self.output,
            "status": str(self.status),
            "reason": self.reason,
            "dicom": self.dicom,
            "changes": [c.as_dict() for c in self.changes],
            "findings": [f.as_dict() for f in self.findings],
            **({"pixels": self.pixels} if self.pixels is not None else {}),
            **({"engine": self.engine} if self.engine else {}),
            **({"same_as": self.same_as} if self.same_as else {}),
        }

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled (from a worker process) with its changes as plain tuples: a file's changes come by the
        hundred, and a named tuple is pickled and rebuilt one Python call at a time. Records that share their
        changes (the files of a series, see pipeline._shared) share the plain tuples too, so that a batch holds
        them once, and they are rebuilt once."""
        values = [getattr(self, name) for name in _FIELD_NAMES]
        values[_CHANGES] = _converted(self.changes, tuple)
        return (_unpickled, tuple(values))


_FIELD_NAMES = tuple(f.name for f in fields(Record))
_CHANGES = _FIELD_NAMES.index("changes")


def _as_change(plain: tuple[str, ...]) -> Change:
    return change(*plain)


def _unpickled(*values: object) -> Record:
    record = Record(*values)  # type: ignore[arg-type]
    object.__setattr__(record, "changes", _converted(record.changes, _as_change))
    return record


def _converted(changes: tuple[tuple[str, ...], ...], convert: Callable[[Any], Any]) -> tuple[Any, ...]:
    """Each change converted (to a plain tuple, or back to a Change): the same tuple for the same one given, of
    the last few (held here, so that an identity is never taken for another's)."""
    known = _CONVERTED.get((id(changes), convert))
    if known is not None and known[0] is changes:
        return known[1]
    done = tuple(map(convert, changes))
    if len(_CONVERTED) >= 16:
        _CONVERTED.clear()
    _CONVERTED[(id(changes), convert)] = (changes, done)
    return done


_CONVERTED: dict[tuple[int, object], tuple[object, tuple[Any, ...]]] = {}


def unicode_name(name: str) -> str:
    """A file name as valid Unicode: a byte that is not UTF-8 (held as a lone surrogate, as Python reads such
    names) written as `\\xNN`, as `ls -b` shows it. (Lone surrogates in JSON are refused or replaced by strict
    readers: the input could not be found again by its record.)"""
    if name.isascii():
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def reason_group(reason: str) -> str:
    """What a reason says without its particulars: the text before the first ':', ';' or ' ('."""
    cut = min((i for i in (reason.find(": "), reason.find("; "), reason.find(" (")) if i >= 0), default=len(reason))
    return reason[:cut].strip()


@dataclass
class Summary:
    """Counts over a run, by status and by reason; `exit_code` is 0 when every DICOM file was released, else 1."""

    level: str
    counts: Counter[str] = field(default_factory=Counter)
    files: int = 0
    not_released: int = 0
    bytes_in: int = 0
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    held_back: int = 0  # quarantined, with no quarantine folder: not written anywhere
    copied_not_dicom: int = 0  # non-DICOM files written (copied unchanged below full)

    def add(self, record: Record, size: int) -> None:
        self.files += 1
        self.counts[str(record.status)] += 1
        self.reasons[(str(record.status), reason_group(record.reason))] += 1
        self.bytes_in += size
        if not record.released:
            self.not_released += 1
        if record.status is Status.QUARANTINED and record.output is None:
            self.held_back += 1
        if record.status is Status.WRITTEN and not record.dicom:
            self.copied_not_dicom += 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def exit_code(self) -> int:
        return 0 if self.not_released == 0 else 1

    def as_dict(self) -> dict[str, object]:
        return {
            "summary": {
                "level": self.level,
                "files": self.files,
                **{s.value: self.counts.get(s.value, 0) for s in Status},
                "not_released": self.not_released,
                "held_back": self.held_back,
                "copied_not_dicom": self.copied_not_dicom,
                "bytes_in": self.bytes_in,
                "reasons": {s.value: {r: n for (status, r), n in sorted(self.reasons.items())
                                      if status == s.value} for s in Status},
                "elapsed_seconds": round(self.elapsed, 3),
            }
        }

    def line(self, held_back: bool = False) -> str:
        """One line of counts; `held_back`: files a check stopped were not kept anywhere, so say so."""
        parts = ", ".join(f"{self.counts.get(s.value, 0)} {status_word(s, held_back)}" for s in Status)
        files = f"{self.files} file{'' if self.files == 1 else 's'}"
        return f"{files} at level {self.level} in {self.elapsed:.1f} s: {parts}"

    def lines(self, held_back: bool = False) -> list[str]:
        """The count line, then one line per status and reason, with its count."""
        width = max((len(status_word(s, held_back)) for s in Status), default=0)
        rows = [self.line(held_back)]
        for status in Status:
            for (name, reason), count in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
                if name == status.value:
                    rows.append(f"  {status_word(status, held_back):<{width}} {count:>7}  {reason}".rstrip())
        return rows


def status_word(status: Status, held_back: bool) -> str:
    """How a status is said to the user: a quarantined file with no quarantine folder was held back."""
    return "held back" if status is Status.QUARANTINED and held_back else status.value


@dataclass(frozen=True)
class RunInfo:
    """What the report says about the run beyond its options: the command line, and whether to name inputs by
    their clear paths at full (an identifiable report) rather than by keyed tokens."""

    command: Sequence[str] = ()
    clear_paths: bool = False


def provenance(options: Options, run: RunInfo) -> dict[str, object]:
    """The report's first line: version, level and options, key fingerprint (never the key), start, command."""
    described: dict[str, object] = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if f.name == "key":
            continue
        if f.name == "lookup":
            value = len(value)  # how many entries, never the IDs
        described[f.name] = value if isinstance(value, bool | int | None) else unicode_name(str(value))
    return {"provenance": {
        "neuroanon": __version__,
        "level": options.level.value,
        "options": described,
        "key_fingerprint": key_fingerprint(options.key) if options.key is not None else None,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": [unicode_name(part) for part in run.command],
        "input_names": "paths" if run.clear_paths or options.level is not Level.FULL else "keyed tokens",
    }}


def report_in_use(path: Path) -> str:
    return f"the report {path} is being written by another run; name another file"


def _open_for_appending(path: Path) -> int:
    """A descriptor appending to `path`; a pipe's only if a process reads it (found from outside: the run waited
    for a reader without a word)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISFIFO(path.stat().st_mode):
            raise OSError(exc.errno, "a pipe no process reads", str(path)) from None
        raise
    os.set_blocking(fd, True)
    return fd


# The room a record's line keeps after it (`ReportWriter.reserved`): for the summary (its reasons are fixed words, a
# few hundred bytes each group) and for a record that changes in its release (a longer reason).
_ROOM_AFTER = 16 << 10


class ReportWriter:
    """Appends records as JSON lines as they happen, so an interrupted run still has its report."""

    def __init__(
        self, path: Path | None, append: bool = False, options: Options | None = None, run: RunInfo | None = None
    ) -> None:
        """With `options`, the first line is the run's provenance, and at full inputs are named by keyed tokens
        unless `run` asks for clear paths."""
        self._fd: int | None = None
        self.path = path
        self._name: Callable[[str], str] | None = None
        run = run or RunInfo()
        if options is not None and options.level is Level.FULL and options.key is not None and not run.clear_paths:
            self._name = Keyring(options.key).input_token
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = _open_for_appending(path)
            regular = stat.S_ISREG(os.fstat(fd).st_mode)  # (not a device or a pipe: /dev/stdout)
            if regular:
                claim(fd, report_in_use(path))
            self._fd = fd
            try:
                if regular and not append:
                    os.ftruncate(fd, 0)
                if options is not None:
                    self.write(provenance(options, run))
            except BaseException:  # (a writer not made holds no file, nor its claim: found on review, a full disk
                # left the report held open, so that the refused run took it for another run's)
                with suppress(OSError):
                    self.close()
                raise

    def write(self, entry: Record | dict[str, object], line: str | None = None) -> None:
        """Append a record (or the summary) as one JSON line (`line`: as `reserved` made it for this record); one
        that cannot be written whole is not written."""
        if self._fd is not None:
            try:
                append_line(self._fd, line or self._line(entry))
            except OSError as exc:
                raise self._named(exc) from None

    def reserved(self, record: Record | dict[str, object]) -> str | None:
        """`record`'s line, with room kept in the report for it and for what may follow it (the summary, the
        record changed as its file is released): asked before a file is released, so that a report the disk
        cannot take the line of stops the run before the release, never after it (found from outside: on a full
        disk a released file had no record). OSError naming the report when there is no such room."""
        if self._fd is None:
            return None
        line = self._line(record)
        try:
            make_room(self._fd, len(line) + _ROOM_AFTER)  # (JSON's ASCII: one byte a character)
        except OSError as exc:
            raise self._named(exc) from None
        return line

    def _line(self, entry: Record | dict[str, object]) -> str:
        as_dict = entry.as_dict() if isinstance(entry, Record) else entry
        if isinstance(entry, Record):
            as_dict["input"] = self._input_name(entry.input)
            if entry.same_as:
                as_dict["same_as"] = self._input_name(entry.same_as)
            as_dict["output"] = entry.output and unicode_name(entry.output)
        return json.dumps(as_dict, sort_keys=True) + "\n"

    def _input_name(self, relative: str) -> str:
        return unicode_name(relative if self._name is None else self._name(relative))

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                close_lines(fd)
            except OSError as exc:
                raise self._named(exc) from None

    def _named(self, exc: OSError) -> OSError:
        """The error with the report's path: "No space left on device" alone does not say where."""
        return OSError(exc.errno, exc.strerror, str(self.path))
