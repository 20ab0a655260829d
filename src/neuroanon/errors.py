"""One exception base for the library; the CLI turns these into exit codes."""

from __future__ import annotations

import signal
from pathlib import Path


class NeuroanonError(Exception):
    """Base of every error neuroanon raises on purpose."""


class UsageError(NeuroanonError):
    """The caller asked for something that cannot be done (bad option, bad key, output inside input)."""


class InputError(NeuroanonError):
    """One input file cannot be processed: unreadable, truncated or malformed.

    Messages describe the problem, never an element value.
    """


class RunStopped(NeuroanonError):
    """The run cannot go on (the output's disk is full): what it finished stays, and a rerun resumes. `place`:
    what could not be written, when not the output (the quarantine, the report, the mapping file)."""

    def __init__(self, reason: str, place: Path | None = None) -> None:
        super().__init__(reason)
        self.place = place


class WorkerDied(RunStopped):
    """A worker process died while the run went on (killed from outside, by the system for memory, or a crash):
    the run stops; what it finished stays, and a rerun resumes."""

    def __init__(self) -> None:
        super().__init__("a worker process died (killed from outside, or for lack of memory)")


class SchedulerLost(RunStopped):
    """The run's Dask scheduler went away (its connection closed; the tasks it held are cancelled): the run stops;
    what it finished stays, and a rerun resumes."""

    def __init__(self) -> None:
        super().__init__("the run lost its Dask scheduler (its connection closed; the work it held was cancelled)")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal), raised where the run is, like Ctrl-C's KeyboardInterrupt, so that it
    stops the same clean way."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


def os_cause(exc: OSError) -> str:
    """The OS's reason in lower case ("permission denied"), never the path it may name."""
    return (exc.strerror or type(exc).__name__).lower()
