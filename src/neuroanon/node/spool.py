"""The spool: a private folder (mode 0700) where a received, still identifiable instance waits while the
pipeline anonymizes it. Nothing in it carries a name a user would look for, and each file is removed as soon
as it has been processed. Instances found here at start-up were never acknowledged (a killed node); they are
processed like new arrivals, so nothing the sender already handed over is lost.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from ..write import CHUNK


class Spool:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        for partial in folder.glob(".*.part"):  # a copy cut short: its sender was never answered
            partial.unlink(missing_ok=True)

    def take(self, received: Path) -> Path:
        """Move a received file into the spool under a random name (atomic: rename, or copy then rename)."""
        name = uuid.uuid4().hex
        dest = self.folder / f"{name}.dcm"
        try:
            os.rename(received, dest)
            return dest
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        partial = self.folder / f".{name}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, open(received, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(partial, dest)
        finally:
            partial.unlink(missing_ok=True)
        received.unlink(missing_ok=True)
        return dest

    def leftovers(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file() and not p.name.startswith("."))


def incoming(work: Path) -> Path:
    """The folder of instances still arriving. `serve` makes it the process's temporary folder, where pynetdicom
    writes each arriving instance, so that an identifiable byte is never in a shared folder and the move into the
    spool is a rename."""
    return work / "incoming"


def private_incoming(work: Path) -> Path:
    """`incoming`, private (0700) and emptied of what a killed process left half-received (never acknowledged):
    under the work folder's lock only."""
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(work, 0o700)
    folder = incoming(work)
    folder.mkdir(exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    for leftover in folder.iterdir():
        if leftover.is_file():
            leftover.unlink()
    return folder
