"""`neuroanon send`: anonymize files with the pipeline into a private temporary folder, C-STORE each result to a
peer, and report each input: sent, or why not."""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..options import Options
from ..pipeline import anonymize_tree
from ..report import Record, ReportWriter, RunInfo, Status, Summary
from .peer import Peer
from .scu import send_files


def send_tree(
    inputs: list[Path], peer: Peer, options: Options, calling_ae: str = "NEUROANON",
    tls: ssl.SSLContext | None = None, report: Path | None = None,
    on_record: Callable[[Record], None] | None = None, run: RunInfo | None = None, follow_symlinks: bool = False,
) -> Summary:
    """Anonymize `inputs` at `options` and send every released DICOM file to `peer`; report; return the summary.
    `follow_symlinks` follows symlinks inside the input folders (those named in `inputs` always are).

    A file that was anonymized but not taken by the peer is reported `failed`, with the reason.
    """
    summary = Summary(options.level.value)
    writer = ReportWriter(report, options=options, run=run)
    try:
        with tempfile.TemporaryDirectory(prefix="neuroanon-send-") as folder:
            staged = Path(folder) / "out"
            anonymized: list[tuple[Record, int]] = []
            anonymize_tree(inputs, staged, options, on_record=lambda record, size: anonymized.append((record, size)),
                           follow_symlinks=follow_symlinks)
            to_send = [staged / r.output for r, _ in anonymized if _sendable(r) and r.output is not None]
            outcomes = dict(send_files(peer, to_send, calling_ae, tls))
            for record, size in anonymized:
                if _sendable(record) and record.output is not None:
                    outcome = outcomes[staged / record.output]
                    if outcome.delivered:
                        record = replace(record, reason=f"sent to {peer} (status 0x{outcome.status or 0:04X})")
                    else:
                        record = replace(record, status=Status.FAILED, reason=f"not sent: {outcome.reason}")
                elif record.status is Status.WRITTEN:
                    record = replace(record, status=Status.SKIPPED, reason=f"{record.reason}; not DICOM: not sent")
                summary.add(record, size)
                writer.write(record)
                if on_record is not None:
                    on_record(record)
        writer.write(summary.as_dict())
    finally:
        writer.close()
    return summary


def _sendable(record: Record) -> bool:
    return record.status is Status.WRITTEN and record.dicom
