"""The `neuroanon` command (and `python -m neuroanon`): a stop asked while its modules load, a third of a second
(found from outside: Ctrl-C then printed a traceback, SIGTERM ended it without a word), ends it as one asked
during a run does, in one line with exit 128 + the signal's number; nothing has been written then."""

from __future__ import annotations

import signal
import sys

from . import stops


def console() -> None:
    stops.install()
    try:
        from .cli import console as command
    except KeyboardInterrupt as exc:  # (Terminated for SIGTERM and SIGHUP)
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"neuroanon: stopped by {signal.Signals(signum).name} as it started; nothing was written",
              file=sys.stderr)
        sys.exit(128 + signum)
    stops.uninstall()
    command()


if __name__ == "__main__":
    console()
