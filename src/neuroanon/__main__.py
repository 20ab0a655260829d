"""The `neuroanon` command (and `python -m neuroanon`): a stop asked while its modules load, a third of a second
(found from outside: Ctrl-C then printed a traceback, SIGTERM ended it without a word), ends it as one asked
during a run does, in one line with exit 128 + the signal's number; nothing has been written then. One asked
once the command is done changes nothing: it exits as the command ended."""

from __future__ import annotations

import os
import signal
import sys

from . import stops


def console() -> None:
    _closed_streams_to_null()
    stops.install()  # (while the modules load, a stop raises here)
    try:
        from .cli import main

        # Until `main` handles stops, and once it is done, one asked has nothing to stop: the command goes on, or
        # exits as it ended (found from outside: SIGTERM in the last moment of a run ended it by the signal).
        for signum in stops.STOPS:
            signal.signal(signum, signal.SIG_IGN)
        code = main()
    except KeyboardInterrupt as exc:  # (Terminated for SIGTERM and SIGHUP): before anything was done
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"neuroanon: stopped by {signal.Signals(signum).name} as it started; nothing was written",
              file=sys.stderr)
        sys.exit(128 + signum)
    sys.exit(code)


def _closed_streams_to_null() -> None:
    """A standard stream the caller closed (`>&-`, `2>&-`) reads as /dev/null, as a daemon's do: Python has no
    stream for it (found from outside: a closed standard output ended each run in a traceback, a closed standard
    error stopped it before it began, without a word), and a file the run opens would take its descriptor and
    receive what is meant for the terminal."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)  # (the lowest free descriptor: this one)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 (the process's own, for its life)


if __name__ == "__main__":
    console()
