"""The `neuroanon` command (and `python -m neuroanon`): a stop asked while its modules load, a third of a second
(found from outside: Ctrl-C then printed a traceback, SIGTERM ended it without a word), ends it as one asked
during a run does, in one line with exit 128 + the signal's number; nothing has been written then. One asked
once the command is done changes nothing: it exits as the command ended."""

from __future__ import annotations

import signal
import sys

from . import stops


def console() -> None:
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


if __name__ == "__main__":
    console()
