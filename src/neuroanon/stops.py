"""Ctrl-C, SIGTERM and SIGHUP: how a run is asked to stop.

A handler that raised at once could raise inside a finalizer or a weakref callback (a pool's, a temporary
file's), where Python only prints the exception and goes on: the run would finish as if nothing had been asked.
So while a run defers stops, the handler records the signal, and the run stops at its next `check`: between
files, and every tenth of a second while it waits for a worker. Elsewhere the handler raises where the program is.
Once the run's last step is done (`last_step`: its report's summary written, an archive's final name taken), a stop
has nothing left to stop; once a stop was raised, the run is stopping, and a stop asked again (Ctrl-C pressed twice,
a signal sent to the process group and again to the process) changes nothing: raised in the clean-up, it left
workers running and the process waiting for them for ever, or a traceback (found from outside).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, Future
from contextlib import contextmanager
from typing import Any, TypeVar

from .errors import Terminated

_T = TypeVar("_T")
_asked: list[int] = []
_failed: list[BaseException] = []  # what another thread asked the run to stop for (`fail`)
_deferring: list[bool] = []
_over: list[bool] = []  # the run's last step is done: a stop asked now is dropped
_stopping: list[bool] = []  # a stop was raised: the run is stopping, a stop asked now is dropped
_POLL = 0.1  # seconds between checks while waiting for a worker


STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # (SIGHUP: the terminal closed, an ssh session ended)


def install() -> None:
    """Handle SIGINT, SIGTERM and SIGHUP in this (main) thread, until `uninstall` puts back the handlers before."""
    _over.clear()
    _stopping.clear()
    _previous.append([signal.getsignal(signum) for signum in STOPS])
    for signum in STOPS:
        signal.signal(signum, _handler)


def uninstall() -> None:
    before = _previous.pop() if _previous else [signal.default_int_handler, signal.SIG_DFL, signal.SIG_DFL]
    for signum, handler in zip(STOPS, before, strict=True):
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # (None: not set from Python)


_previous: list[list[Any]] = []  # the handlers each `install` replaced, the last first


def _handler(signum: int, frame: object) -> None:
    if _over or _stopping:
        return
    _asked.append(signum)
    if not _deferring:
        check()


@contextmanager
def deferred() -> Iterator[None]:
    """Within this, a stop is raised by `check` and `wait` only (and once the block ends, if asked within it)."""
    _failed.clear()  # (what another thread asked of an earlier run is not this one's)
    _over.clear()  # (a run starts: stops count again)
    _stopping.clear()
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    check()


@contextmanager
def last_step() -> Iterator[None]:
    """The step after which the run is done and nothing is left to resume (its summary written, an archive taking
    its final name): a stop asked before it stops the run before it; one asked while it runs or after it is dropped
    (found from outside: SIGTERM as the archive took its name, or as the summary was written, said "run the same
    command again to resume", and the same command was then refused, the archive being complete). A step that
    fails stops the run with its error."""
    check()
    _deferring.append(True)
    try:
        yield
        _over.append(True)
    finally:
        _asked.clear()
        _deferring.pop()


def fail(reason: BaseException) -> None:
    """Ask the run to stop, from another thread, with `reason` (raised by the next `check`)."""
    _failed.append(reason)


def check() -> None:
    """Raise what another thread asked the run to stop for (`fail`), else KeyboardInterrupt (Ctrl-C) or Terminated
    (SIGTERM, SIGHUP) if a stop was asked."""
    if _failed:
        reason = _failed[0]
        _failed.clear()
        raise reason
    if _asked:
        signum = _asked[0]
        _asked.clear()
        _stopping.append(True)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)


def asked_by() -> dict[str, str]:
    """In a `finally` block a stop passes through: the signal that asked it, as a report's summary names it
    ({"signal": "SIGTERM"}); else nothing (the run stopped for another reason, or did not)."""
    raised = sys.exc_info()[1]
    if not isinstance(raised, KeyboardInterrupt):
        return {}
    return {"signal": signal.Signals(getattr(raised, "signum", signal.SIGINT)).name}


def wait(future: Future[_T]) -> _T:
    """The future's result, checking for a stop while it is not ready, and before saying that its worker died (a
    stop asked meanwhile is what the run stops for)."""
    while True:
        try:
            return future.result(timeout=_POLL)
        except TimeoutError:
            check()
        except BrokenExecutor:
            check()
            raise
