"""The outbox: anonymized instances waiting for the forwarding destination, and the thread that sends them.

The outbox is a folder; an instance is in it from the moment it is released there (atomically, by the
pipeline) until the destination has confirmed it, so a stopped or killed node resumes where it was. An
unreachable destination is retried with exponential backoff, for ever; an instance the destination refuses is
retried too, and after `max_attempts` refusals it is moved to the failed folder and reported, never dropped.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .peer import Peer
from .scu import send_files

log = logging.getLogger(__name__)

BATCH = 64  # instances sent per association


@dataclass(frozen=True)
class Retry:
    """Backoff between attempts: `base`, doubling up to `cap` seconds; refusals tolerated per instance."""

    base: float = 1.0
    cap: float = 60.0
    max_attempts: int = 10

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2.0 ** max(failures - 1, 0))


class Outbox:
    """Instances (files under `root`, hidden names excepted) waiting to be sent; `failed` keeps the refused."""

    def __init__(self, root: Path, failed: Path) -> None:
        self.root, self.failed = root, failed
        root.mkdir(parents=True, exist_ok=True)

    def pending(self) -> list[Path]:
        """Every waiting instance, oldest first."""
        found = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if not name.startswith("."):  # staged files are hidden until released
                    path = Path(folder) / name
                    try:
                        found.append((path.stat().st_mtime_ns, str(path), path))
                    except FileNotFoundError:
                        continue
        return [path for *_, path in sorted(found)]

    def done(self, path: Path) -> None:
        """The destination has it: remove it, and the folders it leaves empty."""
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def give_up(self, path: Path) -> Path:
        """Move a refused instance to the failed folder, under the same relative name."""
        dest = self.failed / path.relative_to(self.root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, dest)
        self._prune(path.parent)
        return dest

    def _prune(self, folder: Path) -> None:
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


class Forwarder:
    """A thread that drains the outbox into `peer`, oldest first, with backoff; `wake` when something arrives."""

    def __init__(
        self, outbox: Outbox, peer: Peer, calling_ae: str, tls: ssl.SSLContext | None = None,
        retry: Retry = Retry(), on_failed: Callable[[Path, str], None] | None = None,
    ) -> None:
        self.outbox, self.peer, self.calling_ae, self.tls, self.retry = outbox, peer, calling_ae, tls, retry
        self.on_failed = on_failed
        self.forwarded = 0
        self.failed = 0
        self._refusals: dict[Path, tuple[int, float]] = {}  # path -> (refusals so far, not before)
        self.outages = 0  # attempts in a row that could not reach the destination
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="neuroanon-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the instance being sent; what is still waiting stays in the outbox for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        queue: list[Path] = []  # the outbox as last listed: listed again only when drained (a backlog is big)
        while not self._stop.is_set():
            self._wake.clear()
            if not queue:
                queue = self.outbox.pending()
            now = time.monotonic()
            ready = [p for p in queue if self._refusals.get(p, (0, 0.0))[1] <= now][:BATCH]
            if not ready:
                queue = []
                self._wake.wait(self._idle_wait())
                continue
            taken = set(ready)
            queue = [p for p in queue if p not in taken]
            lost = self._send(ready, waiting=len(queue))
            if lost:
                queue = []
                self.outages += 1
                pause = self.retry.delay(self.outages)
                # (why: an association rejected, a wrong AE title, is no network outage: found from outside)
                log.warning("destination %s not reached (%s); %d instances waiting; next try in %.1f s",
                            self.peer, lost, len(self.outbox.pending()), pause)
                self._stop.wait(pause)
            else:
                self.outages = 0

    def _send(self, ready: list[Path], waiting: int) -> str:
        """Send one batch; why the destination could not be reached for some of it ("" if it was)."""
        sent, lost = 0, ""
        for path, outcome in send_files(self.peer, ready, self.calling_ae, self.tls):
            if outcome.delivered:
                self.outbox.done(path)
                self._refusals.pop(path, None)
                sent += 1
            elif outcome.refused:
                self._refused(path, outcome.reason)
            else:
                lost = outcome.reason or "no answer"
            if self._stop.is_set():
                break
        self.forwarded += sent
        if sent:
            log.info("forwarded %d instances to %s; %d waiting", sent, self.peer, waiting + len(ready) - sent)
        return lost

    def _refused(self, path: Path, reason: str) -> None:
        count = self._refusals.get(path, (0, 0.0))[0] + 1
        if count < self.retry.max_attempts:
            self._refusals[path] = (count, time.monotonic() + self.retry.delay(count))
            log.warning("destination %s refused an instance (%s); attempt %d of %d", self.peer, reason, count,
                        self.retry.max_attempts)
            return
        self._refusals.pop(path, None)
        moved = self.outbox.give_up(path)
        self.failed += 1
        log.error("destination %s refused an instance %d times (%s); moved to %s", self.peer, count, reason,
                  self.outbox.failed)
        if self.on_failed is not None:
            self.on_failed(moved, reason)

    def _idle_wait(self) -> float:
        """How long to sleep with nothing ready: until the next refused instance may be retried, at most 1 s."""
        if not self._refusals:
            return 1.0
        soonest = min(when for _, when in self._refusals.values())
        return max(0.01, min(1.0, soonest - time.monotonic()))
