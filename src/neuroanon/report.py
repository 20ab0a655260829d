"""The run report: one JSON line per input file and a summary line. Never an element value."""

from __future__ import annotations

import enum
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .apply import Change
from .residual import Finding


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
        }


@dataclass
class Summary:
    """Counts over a run; `exit_code` is 0 when every DICOM file was released, else 1."""

    level: str
    counts: Counter[str] = field(default_factory=Counter)
    files: int = 0
    not_released: int = 0
    bytes_in: int = 0
    held_back: int = 0  # quarantined, with no quarantine folder: not written anywhere
    copied_not_dicom: int = 0  # non-DICOM files written (copied unchanged below full)

    def add(self, record: Record, size: int) -> None:
        self.files += 1
        self.counts[str(record.status)] += 1
        self.bytes_in += size
        if not record.released:
            self.not_released += 1
        if record.status is Status.QUARANTINED and record.output is None:
            self.held_back += 1
        if record.status is Status.WRITTEN and not record.dicom:
            self.copied_not_dicom += 1

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
            }
        }

    def line(self) -> str:
        parts = ", ".join(f"{self.counts.get(s.value, 0)} {s.value}" for s in Status)
        return f"{self.files} files at level {self.level}: {parts}"


class ReportWriter:
    """Appends records as JSON lines as they happen, so an interrupted run still has its report."""

    def __init__(self, path: Path | None, append: bool = False) -> None:
        self._file: TextIO | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a" if append else "w", encoding="utf-8")

    def write(self, entry: Record | dict[str, object]) -> None:
        """Append a record (or the summary) as one JSON line."""
        if self._file is not None:
            as_dict = entry.as_dict() if isinstance(entry, Record) else entry
            self._file.write(json.dumps(as_dict, sort_keys=True) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
