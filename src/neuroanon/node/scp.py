"""The node: a Storage SCP (every storage SOP class, the common transfer syntaxes) and Verification SCP whose
received instances go through the same pipeline as files.

Each instance arrives on disk (pynetdicom writes it to a private temporary file as it comes in, never holding
it in memory) and moves to the spool; a worker process of the pool `anonymize` uses prepares it with
`pipeline.prepare` (several at once, one per worker, whatever association they came on); this process commits it
with `pipeline.commit` into the output (or, when forwarding, the outbox), one at a time, makes it durable (fsync),
and only then tells the sender 0x0000. The identifiable copy is removed in every case. Failures become DIMSE
statuses here and nowhere else.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pydicom import dcmread
from pydicom._uid_dict import UID_dictionary
from pydicom.dataset import Dataset
from pydicom.uid import (
    HEVCM10P51,
    HEVCMP51,
    HTJ2K,
    JPEG2000,
    JPEG2000MC,
    MPEG2MPHL,
    MPEG2MPML,
    MPEG4HP41,
    MPEG4HP41BD,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, AllStoragePresentationContexts, evt, register_uid
from pynetdicom.association import Association
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification, uid_to_service_class  # type: ignore[attr-defined]
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from ..context import RunContext
from ..discover import discover
from ..errors import RunStopped, UsageError
from ..journal import claim_output, fingerprint, node_work_path
from ..layout import by_uids
from ..options import Level, Options
from ..pipeline import Prepared, commit, own_stage, prepare, worker_pool
from ..read import quiet
from ..report import Record, ReportWriter, RunInfo, Status
from ..tables import Claims
from ..write import clear_staged, discard
from .outbox import Forwarder, Outbox, Retry
from .peer import Peer, check_ae_title, configure_pynetdicom, connection_opened
from .spool import Spool, private_incoming

log = logging.getLogger(__name__)

SUCCESS = 0x0000
NETWORK_TIMEOUT = 60.0  # seconds a peer may stay silent in an association, or in the middle of a PDU
ACSE_TIMEOUT = 30.0  # seconds to wait for a peer's association request, release or abort
OUT_OF_RESOURCES = 0xA700  # refused: too big, or the node could not store it
CANNOT_UNDERSTAND = 0xC000  # the pipeline could not process it, or would not release it

# Accepted for every storage SOP class, in the node's order of preference when a sender offers several.
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
    JPEG2000Lossless, JPEG2000, JPEG2000MCLossless, JPEG2000MC, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K,
    RLELossless, MPEG2MPML, MPEG2MPHL, MPEG4HP41, MPEG4HP41BD, HEVCMP51, HEVCM10P51,
]
# Every storage SOP class: pynetdicom's, and the retired and trial ones under the storage root it leaves out (found
# from outside: an older scanner's Ultrasound or Nuclear Medicine images, of the retired classes, were refused),
# which are registered with pynetdicom's storage service (found from outside: else it aborted the association at
# the first such instance).
_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."
_PYNETDICOM_STORAGE = tuple(str(context.abstract_syntax) for context in AllStoragePresentationContexts)
_RETIRED_STORAGE = {uid: keyword for uid, (name, kind, _, _, keyword) in UID_dictionary.items()
                    if kind == "SOP Class" and uid.startswith(_STORAGE_ROOT) and "Storage" in name
                    and uid not in _PYNETDICOM_STORAGE}
STORAGE_CLASSES = (*_PYNETDICOM_STORAGE, *_RETIRED_STORAGE)


def _register_retired_storage() -> None:
    """Register the retired and trial storage classes with pynetdicom's storage service (idempotent)."""
    for uid, keyword in _RETIRED_STORAGE.items():
        if uid_to_service_class(uid) is not StorageServiceClass:
            register_uid(uid, keyword, StorageServiceClass)


@dataclass(frozen=True)
class NodeConfig:
    """How the node listens, what it does with instances, and where it keeps them."""

    output: Path  # released instances; when forwarding, the outbox (emptied as the destination confirms)
    options: Options
    ae_title: str = "NEUROANON"
    host: str = "0.0.0.0"
    port: int = 11112
    work: Path | None = None  # spool, failed, lock; default `.<output>.neuroanon-node` beside the output
    forward: Peer | None = None
    forward_tls: ssl.SSLContext | None = None
    allow_calling: tuple[str, ...] = ()  # empty: any calling AE title
    tls: ssl.SSLContext | None = None
    max_associations: int = 10
    max_instance_size: int | None = None  # bytes
    workers: int = 1  # processes that anonymize received instances
    retry: Retry = Retry()
    report: Path | None = None
    run: RunInfo = RunInfo()  # the command line, for the report's provenance

    def __post_init__(self) -> None:
        """Refuse a configuration that cannot work before anything is created on disk."""
        check_ae_title(self.ae_title)
        object.__setattr__(self, "allow_calling", tuple(check_ae_title(t) for t in self.allow_calling))
        if self.options.level is Level.FULL and self.options.key is None:
            raise UsageError("level full needs a key")
        if (self.workers < 1 or self.max_associations < 1
                or (self.max_instance_size is not None and self.max_instance_size < 1)):
            raise UsageError("the number of workers and the association and instance size limits must be positive")
        # The output is released (or, when forwarding, sent): nothing else may lie in it. The work folder is
        # private and partly emptied at start: nothing of the user's may lie in it.
        out, work = self.output, self.work_dir
        if _inside(work, out) or _inside(out, work):
            raise UsageError(f"the work folder {self.work_dir} and the output {self.output} must lie apart, neither "
                             "inside the other")
        held = self.options.quarantine
        if held is not None and (_inside(held, out) or _inside(held, work)):
            raise UsageError(f"the quarantine {held} must be outside the output and the work folder")

    @property
    def work_dir(self) -> Path:
        return self.work if self.work is not None else node_work_path(self.output)


@dataclass
class Tally:
    """Instances by outcome, for one association or the node's whole run."""

    received: int = 0
    stored: int = 0  # released into the output, or the outbox when forwarding
    duplicate: int = 0
    held: int = 0  # quarantined by a check at full
    failed: int = 0
    ending: str = field(default="closed", compare=False)

    def add(self, kind: str) -> None:
        self.received += 1
        setattr(self, kind, getattr(self, kind) + 1)

    def as_dict(self, level: str, forwarding: bool, seconds: float, **more: object) -> dict[str, object]:
        """The report's summary of the node's run (its last line), with `more` counts."""
        counts: dict[str, object] = {"level": level, "received": self.received,
                                     "queued_for_forwarding" if forwarding else "stored": self.stored,
                                     "duplicate": self.duplicate, "held": self.held, "failed": self.failed}
        return {"summary": {**counts, **more, "elapsed_seconds": round(seconds, 3)}}

    def line(self, forwarding: bool) -> str:
        stored = "queued for forwarding" if forwarding else "stored"
        return (f"{self.received} received, {self.stored} {stored}, {self.duplicate} duplicate, {self.held} held, "
                f"{self.failed} failed")


class Node:
    """Start with `start()` (returns the bound address), stop with `stop()`; or use as a context manager.

    `start()` forks the worker processes, which die with the thread that called it: call it from a thread that
    outlives the node (the main thread). `on_broken` is called if a worker dies (killed, out of memory): the node
    then refuses every instance with 0xA700 and should be restarted.
    """

    def __init__(self, config: NodeConfig, on_broken: Callable[[], None] | None = None) -> None:
        configure_pynetdicom()
        self.config = config
        self.options = config.options
        self.forwarding = config.forward is not None
        self.output = config.output
        self.totals = Tally()
        self.forwarder: Forwarder | None = None
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()  # commits, tallies and the report: one instance at a time
        self._tallies: dict[Association, Tally] = {}  # of the associations requested and not yet ended
        self._cut: set[Association] = set()  # those the stop aborted, its grace over
        self._ending: set[threading.Thread] = set()  # (`_on_close`)
        self._report: ReportWriter | None = None
        self._lockfile: TextIO | None = None
        self._output_lock: int | None = None  # (`claim_output`)
        self._pool: ProcessPoolExecutor | None = None
        self._on_broken = on_broken
        self.broken = False  # a worker process died: every instance is refused until a restart
        self.unreported = 0  # instances whose line the report's disk did not take (each logged)
        self._stage = config.work_dir / "stage"
        self._run = RunContext.of(config.options)
        self._started, self._listened = time.monotonic(), False

    # --- life cycle -------------------------------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Prepare the folders, process what an earlier run left in the spool, start forwarding and listening."""
        try:
            return self._start()
        except BaseException:
            self.stop()  # release the work folder's lock and whatever was started
            raise

    def _start(self) -> tuple[str, int]:
        config = self.config
        work = config.work_dir
        self._check_begun(work)
        work.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_work(work)
        private_incoming(work)  # (only now: another node's instance may be arriving there)
        self.output.mkdir(parents=True, exist_ok=True)
        self._output_lock = claim_output(self.output)
        self._check_options(work)
        clear_staged(self.output)  # what an earlier version staged in the output itself
        self._stage = work / "stage"  # outputs are staged here, private, until released into the output
        shutil.rmtree(self._stage, ignore_errors=True)
        self._stage.mkdir(mode=0o700)
        self.spool = Spool(work / "spool")
        self._started, self._listened = time.monotonic(), False
        # Each run of the node adds its provenance (options, key fingerprint, command), its records and its summary.
        self._report = ReportWriter(config.report, append=True, options=self.options, run=config.run)
        assert self._lockfile is not None
        self._pool = worker_pool(config.workers, (self._lockfile.fileno(), self._output_lock))
        # The first task forks every worker, here: before any thread of ours exists, and in the thread they die with.
        self._pool.submit(os.getpid).result()
        if config.forward is not None:
            outbox = Outbox(self.output, work / "failed")
            self.forwarder = Forwarder(outbox, config.forward, config.ae_title, config.forward_tls, config.retry,
                                       on_failed=self._forward_failed)
        leftovers = self.spool.leftovers()
        for path in leftovers:
            self.totals.add(self._process(path)[1])
        if leftovers:
            log.info("processed %d instances an earlier run left in the spool: %s", len(leftovers),
                     self.totals.line(self.forwarding))
        if self.forwarder is not None:
            self.forwarder.start()
        self._server = self._listen()
        self._listened = True
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def _listen(self) -> ThreadedAssociationServer:
        config = self.config
        _register_retired_storage()
        ae = AE(ae_title=config.ae_title)
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        ae.require_calling_aet = list(config.allow_calling)
        ae.maximum_associations = config.max_associations
        ae.network_timeout, ae.acse_timeout = NETWORK_TIMEOUT, ACSE_TIMEOUT
        handlers: list[evt.EventHandlerType] = [
            (evt.EVT_CONN_OPEN, connection_opened),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_end),
            (evt.EVT_ABORTED, self._on_end),
            (evt.EVT_CONN_CLOSE, self._on_close),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        try:
            server = ae.make_server((config.host, config.port), ssl_context=config.tls, evt_handlers=handlers,
                                    server_class=_Server)
        except OSError as exc:
            raise UsageError(f"cannot listen on {config.host}:{config.port} ({exc.strerror})") from None
        threading.Thread(target=server.serve_forever, name="neuroanon-listener", daemon=True).start()
        return server

    def stop(self, grace: float = 30.0) -> None:
        """Stop accepting, let running associations finish (up to `grace` s), stop forwarding; idempotent."""
        self._stop_listening(grace)
        if self._pool is not None:
            self._pool.shutdown()  # after the instances in hand are prepared; later ones are refused
        with self._lock:
            ending = list(self._ending)
        deadline = time.monotonic() + grace
        for thread in ending:  # each association's line before the node's last
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._lockfile is not None:  # (the work folder is this node's: what no peer finished goes)
            private_incoming(self.config.work_dir)
        if self.forwarder is not None:
            self.forwarder.stop()
        with self._lock:
            if self._report is not None:
                self._report.write(self._summary())
                self._report.close()
                self._report = None
        if self._output_lock is not None:
            os.close(self._output_lock)
            self._output_lock = None
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None
            if self._listened:  # (a node that could not listen says why, and no more)
                log.info("stopped: %s", self.summary_line())

    def _summary(self) -> dict[str, object]:
        """The report's last line: the node's instances by outcome, and what the destination took."""
        forwarder = self.forwarder
        more: dict[str, object] = {"listened": self._listened}  # (false: the node did not start)
        if self.unreported:
            more["not_in_report"] = self.unreported
        if forwarder is not None:
            more |= {"forwarded": forwarder.forwarded, "refused_by_destination": forwarder.failed}
        return self.totals.as_dict(self.options.level.value, self.forwarding, time.monotonic() - self._started,
                                   **more)

    def _stop_listening(self, grace: float) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        deadline = time.monotonic() + grace
        established = sum(1 for assoc in server.active_associations if assoc.is_established)
        if established:  # (found from outside: a stop waited half a minute saying nothing)
            log.info("stopping: waiting up to %g s for %d association%s to end", grace, established,
                     "s" if established > 1 else "")
        while time.monotonic() < deadline:
            waiting = False
            for assoc in server.active_associations:
                if not assoc.is_established and assoc.dul.is_alive():
                    _hang_up(assoc)
                waiting = waiting or assoc.is_established or assoc.dul.is_alive()
            if not waiting:
                break
            time.sleep(0.05)
        for assoc in server.active_associations:
            if assoc.is_established:
                self._cut.add(assoc)
                assoc.abort()

    def __enter__(self) -> Node:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the node is not listening")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def _lock_work(self, work: Path) -> None:
        handle = open(work / "lock", "w", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise UsageError(f"another neuroanon node is using {work}") from None
        self._lockfile = handle

    def _check_begun(self, work: Path) -> None:
        """Refuse an output folder that holds files no node began (as `anonymize` does): they would be taken for
        released instances, and when forwarding, sent. A work folder serves the one output it was begun for."""
        stamp = work / "output"
        began = stamp.read_text(encoding="utf-8").strip() if stamp.exists() else None
        if began is not None and began != str(self.output.resolve()):
            raise UsageError(f"the work folder {work} serves another output ({began}); give this output its own")
        if (work / "options").exists() or not self.output.is_dir() or not any(self.output.iterdir()):
            return
        raise UsageError(f"the output folder {self.output} is not empty and no neuroanon node began it; choose a "
                         "new or empty folder")

    def _check_options(self, work: Path) -> None:
        """Refuse to add to an output begun with other options or another key (as `anonymize` does)."""
        stamp, current = work / "options", fingerprint(self.options)
        earlier = stamp.read_text(encoding="utf-8").strip() if stamp.exists() else None
        if earlier is not None and earlier != current and any(self.output.iterdir()):
            raise UsageError(f"the output {self.output} was begun with other options or another key; "
                             "use a new output folder")
        _write_named(stamp, current + "\n")
        _write_named(work / "output", f"{self.output.resolve()}\n")  # (see _check_begun)

    # --- events -----------------------------------------------------------------------------------------------

    def _on_requested(self, event: evt.Event) -> None:
        with self._lock:  # (a connection that asks for no association, garbage or a port scan, has no line)
            self._tallies[event.assoc] = Tally()

    def _on_store(self, event: evt.Event) -> int:
        status, kind = self._receive(Path(event.dataset_path))
        with self._lock:
            tally = self._tallies.get(event.assoc)
            if tally is not None:
                tally.add(kind)
            self.totals.add(kind)
        return status

    def _on_end(self, event: evt.Event) -> None:
        ending = event.event.name[4:].lower()
        # (found from outside: "aborted" said neither that the node's stop nor that the peer's silence did it)
        if ending == "aborted" and event.assoc in self._cut:
            ending = "aborted by the node's stop (still open when its wait was over)"
        elif ending == "aborted" and event.assoc.dul.idle_timer_expired():
            ending = f"aborted: its peer was silent for {event.assoc.network_timeout:g} s"
        with self._lock:
            tally = self._tallies.get(event.assoc)
            if tally is not None:
                tally.ending = ending

    def _on_close(self, event: evt.Event) -> None:
        # The association's own thread may still be storing an instance (its peer gone meanwhile) or be about to
        # say how it ended (found from outside: such an association had no line): its line waits for that thread,
        # in a thread of its own (this one is the connection's). A connection that asked for no association (or
        # was rejected: that was its line) received nothing and has no line: nothing to wait for (its thread waits
        # out the ACSE timeout, and held a stop that long: found from outside).
        with self._lock:
            if event.assoc not in self._tallies:
                return
        self._end_later(event.assoc)

    def _end_later(self, assoc: Association) -> None:
        ending = threading.Thread(target=self._ended, args=(assoc, _who_of(assoc)), daemon=True,
                                  name="neuroanon-association-end")
        with self._lock:
            self._ending.add(ending)
        ending.start()

    def reader_failed(self, thread: threading.Thread | None, cause: str) -> None:
        """A connection's reader (pynetdicom's DUL thread) ended on an error, the disk full as an instance arrived
        say: no event then ends its association, so it is ended here as `_on_close` ends one: its connection shut,
        its line written, what its peer sent of an instance removed (found from outside: the partial instance
        stayed, the disk stayed full, and every later association failed until the node was stopped)."""
        assoc = getattr(thread, "assoc", None)
        with self._lock:
            tally = self._tallies.get(assoc) if isinstance(assoc, Association) else None
            if tally is None:
                return
            tally.ending = f"ended on an error ({cause})"
        assert isinstance(assoc, Association)
        raw = getattr(assoc.dul.socket, "socket", None)
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)  # (the peer learns at once that no answer will come)
        self._end_later(assoc)

    def _ended(self, assoc: Association, who: str) -> None:
        """Once the association's thread is done: remove what its peer sent of an instance it did not finish,
        and write its line."""
        if assoc.is_alive():
            assoc.join()
        _discard_arriving(assoc)
        with self._lock:
            tally = self._tallies.pop(assoc, None)
            self._ending.discard(threading.current_thread())
        if tally is not None:
            log.info("association from %s %s: %s", who, tally.ending, tally.line(self.forwarding))

    def _on_rejected(self, event: evt.Event) -> None:
        with self._lock:
            self._tallies.pop(event.assoc, None)  # (this is its line)
        log.warning("association from %s rejected: %s", _who_of(event.assoc), _why_rejected(event.assoc))

    # --- one instance -----------------------------------------------------------------------------------------

    def _receive(self, received: Path) -> tuple[int, str]:
        """Check the size, spool, process; the DIMSE status for the sender and the outcome's kind."""
        limit = self.config.max_instance_size
        try:
            if limit is not None and (size := received.stat().st_size) > limit:
                log.warning("refused an instance of %d bytes (limit %d)", size, limit)
                return self._refused(received, f"refused: {size} bytes, over --max-instance-size ({limit})")
            spooled = self.spool.take(received)
        except OSError as exc:
            log.error("could not spool a received instance (%s)", exc.strerror or type(exc).__name__)
            return self._refused(received, f"refused: could not be spooled ({exc.strerror or type(exc).__name__})")
        return self._process(spooled)

    def _refused(self, path: Path, reason: str) -> tuple[int, str]:
        """0xA700 for an instance the node did not take (the sender keeps it), with its line in the report."""
        record = Record(_name(path, self._run), Status.FAILED, reason)
        with self._lock:
            self._reported(record)
        return OUT_OF_RESOURCES, "failed"

    def _reported(self, record: Record) -> None:
        """Its line in the report; one the disk cannot take (it may hold the report) is counted, and logged."""
        if self._report is None:
            return
        try:
            self._report.write(record.as_dict())
        except OSError as exc:
            self.unreported += 1
            log.error("an instance's line is not in the report (%s: %s): %s", exc.filename, exc.strerror,
                      record.reason or record.status.value)

    def _process(self, spooled: Path) -> tuple[int, str]:
        try:
            prepared = self._prepared(spooled)
            if prepared is None:
                why = "a worker process died" if self.broken else "the node is stopping"
                return self._refused(spooled, f"refused: {why}")
            with self._lock:
                if not self._room_for(prepared):
                    return OUT_OF_RESOURCES, "failed"
                record = self._commit(prepared)
                self._reported(record)
            self._make_durable(record)
        except (OSError, RunStopped) as exc:
            cause = str(exc) if isinstance(exc, RunStopped) else exc.strerror or type(exc).__name__
            log.error("could not store a received instance (%s)", cause)
            return self._refused(spooled, f"refused: could not be stored ({cause})")
        finally:
            spooled.unlink(missing_ok=True)
        if record.status is Status.WRITTEN:
            if self.forwarder is not None:
                self.forwarder.wake()
            return SUCCESS, "stored"
        if record.status is Status.SKIPPED and record.reason.startswith("duplicate"):
            return SUCCESS, "duplicate"
        if record.status is Status.QUARANTINED:
            log.warning("held back an instance: %s", record.reason)  # reasons name attributes, never values
            return (SUCCESS if record.output is not None else CANNOT_UNDERSTAND), "held"
        log.warning("could not process a received instance: %s", record.reason)
        return CANNOT_UNDERSTAND, "failed"

    def _prepared(self, spooled: Path) -> Prepared | None:
        """The instance as a worker prepared it; None if the workers are stopping or gone."""
        assert self._pool is not None
        try:
            return self._pool.submit(_prepare_received, spooled, self._stage, self._run).result()
        except BrokenProcessPool:
            log.error("refused an instance: a worker process died (killed, or out of memory); restart the node")
            with self._lock:
                told, self.broken = self.broken, True
            if not told and self._on_broken is not None:
                self._on_broken()
        except RuntimeError:  # submitted after stop() shut the pool down
            log.warning("refused an instance: the node is stopping")
        return None

    def _room_for(self, prepared: Prepared) -> bool:
        """Room in the report for the instance's line, kept before it is released; without it the instance is not
        released and the sender keeps it (found from outside: on a full disk instances were stored, their senders
        told 0xA700, their lines "could not be stored" or missing)."""
        if self._report is None:
            return True
        try:
            self._report.reserved(prepared.record.as_dict())
        except OSError as exc:
            if prepared.staged is not None:
                discard(Path(prepared.staged))
            cause = f"no room for its line in the report ({exc.filename}: {exc.strerror})"
            log.error("refused an instance: %s", cause)
            self.unreported += 1  # (the refusal's own line has no room either)
            return False
        return True

    def _commit(self, prepared: Prepared) -> Record:
        """The pipeline's commit, after an idempotence check: an instance whose output exists is a duplicate."""
        record, staged = prepared.record, prepared.staged
        if (staged is not None and record.output is not None and record.status is Status.WRITTEN
                and (self.output / record.output).exists()):
            discard(Path(staged))
            where = "waiting in the outbox" if self.forwarding else "stored"
            return Record(record.input, Status.SKIPPED, f"duplicate instance: already {where}", record.output)
        return commit(prepared, self.output, self.options, Claims())

    def _make_durable(self, record: Record) -> None:
        if record.output is None:
            return
        if record.status is Status.WRITTEN:
            _fsync_path(self.output / record.output, self.output)
        elif record.status is Status.QUARANTINED and self.options.quarantine is not None:
            _fsync_path(self.options.quarantine / record.output, self.options.quarantine)

    def _forward_failed(self, path: Path, reason: str) -> None:
        """Its line in the report, or, the report's disk full, counted (found on review: the error ended the
        forwarding thread)."""
        name = str(path.relative_to(self.forwarder.outbox.failed)) if self.forwarder else path.name
        with self._lock:
            self._reported(Record(name, Status.FAILED, f"not forwarded: {reason}", name))

    def summary_line(self) -> str:
        """What the node did: its instances by outcome, and when forwarding, what the destination took."""
        line = self.totals.line(self.forwarding)
        if self.forwarder is None:
            return line
        return f"{line}; {self.forwarder.forwarded} forwarded, {self.forwarder.failed} refused by the destination"


def _write_named(path: Path, text: str) -> None:
    """`text` as the file `path`; an error names it (found from outside: a full disk at start said "No space left
    on device" of no file, its close raising without a name)."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it: by their names, symlinks resolved, and by the folders
    themselves (a bind mount of one at the other's place has another name)."""
    place, top = path.resolve(), folder.resolve()
    if place == top or place.is_relative_to(top):
        return True
    return top.exists() and any(p.exists() and os.path.samefile(p, top) for p in (place, *place.parents))


def _prepare_received(spooled: Path, stage: Path, run: RunContext) -> Prepared:
    """In a worker process: name a spooled instance and prepare it with the pipeline's per-file function."""
    item = next(iter(discover([spooled])))
    return prepare(item, _name(spooled, run), own_stage(stage), run)


def _name(spooled: Path, run: RunContext) -> str:
    """The instance's name in the report and, below full, in the output: `study/series/instance.dcm` from its
    UIDs. At full the output path comes from the new identifiers, and the report names the instance by a keyed
    token of its UID (never the UID itself)."""
    ds: Dataset
    try:
        with quiet():
            ds = dcmread(spooled, stop_before_pixels=True, force=True,
                         specific_tags=[0x0020000D, 0x0020000E, 0x00080018])
    except Exception:  # unreadable: the pipeline will say why
        ds = Dataset()
    if run.options.level is Level.FULL:
        assert run.keyring is not None
        return "received/" + run.keyring.token(str(ds.get("SOPInstanceUID", "") or spooled.stem)) + ".dcm"
    return by_uids(ds, spooled.stem)


def _discard_arriving(assoc: Association) -> None:
    """Close and remove the files an association's peer sent instances into that the node never took: pynetdicom
    leaves them in the incoming folder (found from outside: the identifiable part of an instance stayed there for the
    node's life). The DIMSE message in hand holds the one still arriving until it is whole; whole ones a peer sent
    ahead, without waiting for each answer, wait in the DIMSE queue (found from outside too)."""
    dimse = assoc.dimse
    held = [getattr(getattr(dimse, "message", None), "_data_set_file", None)]
    queue = getattr(dimse, "msg_queue", None)
    while queue is not None and not queue.empty():
        held.append(getattr(queue.get_nowait()[1], "_dataset_file", None))
    for arriving in held:
        if arriving is None:
            continue
        with contextlib.suppress(OSError):
            arriving.close()
        with contextlib.suppress(OSError):
            os.unlink(arriving.name)


class _Server(ThreadedAssociationServer):
    """pynetdicom's server, each connection's TLS handshake done in the connection's own thread and given up after
    the network timeout. pynetdicom does it in the one thread that accepts connections, with no timeout: one that
    sent nothing (a port scan, a link that died) kept every later sender out for good (found from outside). The
    node's stop does not wait for such a connection's thread (found from outside: a minute, the handshakes' timeout).
    """

    daemon_threads, block_on_close = True, False

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        client.settimeout(self.ae.network_timeout)
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def process_request_thread(self, request: socket.socket | tuple[bytes, socket.socket],
                               client_address: tuple[str, int] | str) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except OSError:  # (an SSL error or a timeout: a plain sender, a certificate refused, silence)
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def shutdown(self) -> None:
        """Stop accepting and close the socket (pynetdicom's would also remove the server from its AE's list of
        those it started, which this one is not on)."""
        super(AssociationServer, self).shutdown()
        self.server_close()


def _why_rejected(assoc: Association) -> str:
    """Why pynetdicom rejected the association (its event does not say; found from outside, the line named three
    causes, and the operator could not tell which): its checks, the one it makes last that holds deciding (found
    from outside: an AE title was named when the node was full)."""
    request = assoc.requestor.primitive
    allowed = [title.strip() for title in assoc.ae.require_calling_aet]
    accepted = [other for other in assoc.ae.active_associations if other.is_acceptor]
    full = f"too many associations at once (--max-associations {assoc.ae.maximum_associations})"
    # (pynetdicom counts a connection that has not asked for an association yet as one: found from outside, silent
    # connections kept senders out, and the line did not say so)
    silent = sum(1 for other in accepted if other is not assoc and other.requestor.primitive is None)
    if silent:
        full += (f": {silent} of them connections that have not asked for one (each is closed {ACSE_TIMEOUT:g} s "
                 "after it opened)")
    if len(accepted) > assoc.ae.maximum_associations or request is None:
        return full
    if request.called_ae_title != assoc.acceptor.ae_title.strip():
        return "the called AE title is not this node's"
    if allowed and request.calling_ae_title not in allowed:
        return "the calling AE title is not allowed (--allow-calling)"
    return full


def _who_of(assoc: Association) -> str:
    requestor = assoc.requestor
    return f"{requestor.ae_title} ({requestor.address}:{requestor.port})"


def _fsync_path(path: Path, root: Path) -> None:
    """Flush a released file and the folders naming it, up to `root`, to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # already forwarded and removed
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    folder = path.parent
    while True:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if folder == root or not folder.is_relative_to(root):
            return
        folder = folder.parent


def _hang_up(assoc: Association) -> None:
    """End a connection that has asked for no association (or is being answered): it has nothing to finish, and
    held a stop until its ACSE timeout, 30 s (found from outside). Shutting the socket down makes its reader
    thread read the end of the connection, as if the peer had closed it (an A-ABORT is no event there), and that
    thread is then stopped (the association's own waits out its timeout, but does not hold the process's exit)."""
    raw = getattr(assoc.dul.socket, "socket", None)  # (None once pynetdicom has closed it)
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
    assoc.dul.stop_dul()  # (only once the end was read: until then it returns at once, and is called again)
