"""`neuroanon send`: anonymize files with the pipeline into a private temporary folder, C-STORE each result to a
peer, and report each input: sent, or why not."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from dataclasses import replace
from pathlib import Path

from .. import stops
from ..errors import os_cause
from ..options import Options
from ..pipeline import anonymize_tree
from ..report import Record, ReportWriter, RunInfo, Status, Summary
from .peer import Peer
from .scu import Outcome, send_files


def send_tree(
    inputs: list[Path], peer: Peer, options: Options, calling_ae: str = "NEUROANON",
    tls: ssl.SSLContext | None = None, report: Path | None = None,
    on_record: Callable[[Record], None] | None = None, run: RunInfo | None = None, follow_symlinks: bool = False,
    summary: Summary | None = None,
) -> Summary:
    """Anonymize `inputs` at `options` and send every released DICOM file to `peer`; report; return the summary
    (counted into `summary` when given: the caller can show what was done when the run stops).
    `follow_symlinks` follows symlinks inside the input folders (those named in `inputs` always are).

    A file that was anonymized but not taken by the peer is reported `failed`, with the reason. Each file is
    reported as its outcome is known, room for its line kept in the report before it is sent (found from outside:
    on a full disk a file the peer took had no line); a stop (Ctrl-C, SIGTERM, a full disk) is taken between
    files, and every file anonymized by then and not sent is reported so, as far as the report's disk takes their
    lines (found from outside: a stopped send reported no file, though the peer had taken some), then the summary
    says why the run stopped.
    """
    summary = Summary(options.level.value) if summary is None else summary
    writer = ReportWriter(report, options=options, run=run)
    anonymized: list[tuple[Record, int]] = []
    reported = 0

    def done(record: Record, size: int, shown: bool = True) -> None:
        nonlocal reported
        reported += 1
        summary.add(record, size)
        writer.write(record)
        if on_record is not None and shown:
            on_record(record)

    stopped = "interrupted"  # (a stop asked by a signal, as a run's report says it)
    try:
        with tempfile.TemporaryDirectory(prefix="neuroanon-send-") as folder, stops.deferred():
            staged = Path(folder) / "out"
            anonymize_tree(inputs, staged, options, on_record=lambda record, size: anonymized.append((record, size)),
                           follow_symlinks=follow_symlinks, last=False)
            to_send = [staged / r.output for r, _ in anonymized if _sendable(r) and r.output is not None]
            with closing(send_files(peer, to_send, calling_ae, tls)) as outcomes:  # (in the order given)
                for record, size in anonymized:
                    writer.reserved(record)  # (before the file is sent: a full disk stops the run here)
                    done(_sent(record, outcomes, peer), size)
                    stops.check()
        writer.write(summary.as_dict())
        stopped = ""
    except OSError as exc:  # (its terminal or pipe gone, a disk full: said as a run says it)
        stopped = os_cause(exc)
        raise
    finally:
        with suppress(OSError):  # None of this may raise over the reason the run stopped: the disk may be full.
            if stopped:
                unreported = _not_sent(anonymized[reported:], writer, summary)
                fields = summary.as_dict()["summary"]
                assert isinstance(fields, dict)
                missing = {"not_in_report": unreported} if unreported else {}
                writer.write({"summary": {**fields, "stopped": stopped, **missing, **stops.asked_by()}})
        writer.close()
    return summary


def _not_sent(rest: list[tuple[Record, int]], writer: ReportWriter, summary: Summary) -> int:
    """The files a stop came before, counted in the summary (not shown one by one), each with its line as long as
    the report keeps room for it and the summary after it; how many have none."""
    unreported = 0
    for record, size in rest:
        if _sendable(record):
            record = replace(record, status=Status.FAILED, reason="not sent: the run stopped first")
        summary.add(record, size)
        if not unreported:
            try:
                writer.reserved(record)
                writer.write(record)
                continue
            except OSError:
                pass
        unreported += 1
    return unreported


def _sent(record: Record, outcomes: Iterator[tuple[Path, Outcome]], peer: Peer) -> Record:
    """The record of an anonymized file once sent (its outcome the next of `outcomes`), or not to be sent."""
    if _sendable(record) and record.output is not None:
        _, outcome = next(outcomes)
        if outcome.delivered:
            return replace(record, reason=f"sent to {peer} (status 0x{outcome.status or 0:04X})")
        return replace(record, status=Status.FAILED, reason=f"not sent: {outcome.reason}")
    if record.status is Status.WRITTEN:
        return replace(record, status=Status.SKIPPED, reason=f"{record.reason}; not DICOM: not sent")
    return record


def _sendable(record: Record) -> bool:
    return record.status is Status.WRITTEN and record.dicom
