"""The run journal: what a run finished, so that a rerun with the same arguments does only what remains.

It lives beside the output folder (`.<output>.neuroanon-journal`), never inside it, and holds no original
value: at full, inputs are named by a keyed token of their relative path.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .errors import UsageError
from .keys import Keyring, key_fingerprint
from .options import Level, Options
from .report import Record, Status
from .residual import Finding
from .rules import Change
from .tables import DigestTable, digest
from .write import append_line, close_lines, held_elsewhere

# 2: records stored compactly (changes and findings as lists); 3: a list of changes stored once; 4: the inputs named
VERSION = 4
CHANGES_KEPT = 256  # distinct lists of changes kept numbered before a new table (an enhanced file's may be long)


def journal_path(output: Path) -> Path:
    """Where the journal of a run into `output` lives: beside it, never inside."""
    return output.resolve().parent / f".{output.resolve().name}.neuroanon-journal"


def work_path(output: Path) -> Path:
    """Where the private work folder of a run into `output` lives (its lock, its staged files): beside it too."""
    return output.resolve().parent / f".{output.resolve().name}.neuroanon-work"


def node_work_path(output: Path) -> Path:
    """Where a DICOM node storing into `output` keeps its work folder (its lock inside) unless told another."""
    return output.resolve().parent / f".{output.resolve().name}.neuroanon-node"


def check_no_node(output: Path) -> None:
    """Refuse an output a running node is storing into (found from outside: a run into a live node's output, still
    empty, was taken, and the node then stored its instances beside the run's files), whatever its work folder."""
    if held_elsewhere(node_work_path(output) / "lock") or held_elsewhere(output):
        raise UsageError(f"another neuroanon node is using {output}; stop it, or use another output")


def claim_output(output: Path) -> int | None:
    """The output folder, opened and locked for a node's life, whatever its work folder (found from outside: two
    nodes with work folders of their own both served one output, and each forwarded the other's instances); the
    descriptor to close when the node stops. Where the file system locks no folder (NFS may refuse a lock on one
    opened for reading), None: the work folder's lock alone guards the node, as before."""
    fd = os.open(output, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(f"another neuroanon node is using {output}; stop it, or use another output") from None
    except OSError:
        os.close(fd)
        return None
    return fd


def check_output(output: Path, options: Options, inputs: Sequence[Path], resumable: bool | None = None,
                 force: bool = False) -> bool:
    """Refuse an output a run from `inputs` with `options` may not write into (a dry run asks too); say whether
    what an earlier run left there is taken up. `resumable`: whether it can be (default: the output folder is not
    empty). A non-empty output folder that no run began (no journal) is refused unless `force`; an output begun
    with other options, another key, by another version or from other inputs, always."""
    check_no_node(output)
    path = journal_path(output)
    if resumable is None:
        resumable = not _empty(output)
        if not force:
            check_begun(output)
    if resumable and path.exists():
        head = _head(path)
        if head is None:
            # (found from outside: an empty header turned the check below off, and a rerun with another key wrote
            # into the output; a garbled one was said to hold other options)
            if not force:
                # (found from outside: "--force begins the run again" was said of a folder too, whose earlier files
                # then stayed beside the new ones, of another key)
                ways = ("add --force to begin the archive again, or use a new output" if output.suffix.lower() == ".zip"
                        else "use a new or empty output folder (with --force the run writes beside its files, which "
                        "may be of other options or another key)")
                raise UsageError(f"the journal of the run that began the output {output} ({path.name}, beside it) "
                                 f"is empty or damaged, so the options it was begun with cannot be checked; {ways}")
            return False  # nothing of the earlier run is taken up
        new = "a new output" if output.suffix.lower() == ".zip" else "a new or empty output folder"
        if head.get("fingerprint") != fingerprint(options) or head.get("version") != VERSION:
            # Never advise deleting the journal: the folder would then mix the outputs of two option sets.
            same = "that version" if head.get("version") != VERSION else "the options it was begun with"
            raise UsageError(f"the output {output} was begun {_differences(head, options)}; rerun with {same}, or "
                             f"use {new}")
        if head.get("inputs") != inputs_token(inputs, options):
            # (found from outside: another folder's files were taken for the earlier run's, by their names below
            # it: its outputs withdrawn, or the new files never read and said written)
            raise UsageError(f"the output {output} was begun from other inputs; rerun with the inputs it was begun "
                             f"with, or use {new}")
    return resumable


def _differences(head: dict[str, Any], options: Options) -> str:
    """How the run that began an output differs from this one, as far as its journal says (a journal of an earlier
    version keeps only the fingerprint)."""
    if head.get("version") != VERSION:
        return "by another version of neuroanon"
    if not {"level", "key", "options"} <= head.keys():
        return "with other options or another key"
    level, key, shaping = options.level.value, _key_named(options), described(options)
    said = []
    if head["level"] != level:
        said.append(f"at level {head['level']} (this run: {level})")
    if head["key"] != key and head["key"] and key:  # (with no key on one side, the level says it)
        said.append(f"with the key {head['key']} (this run's: {key})")
    if isinstance(head["options"], dict):
        other = sorted(name for name in head["options"].keys() | shaping.keys()
                       if name != "level" and head["options"].get(name) != shaping.get(name))
        if other:
            said.append(f"with other values of {', '.join(_OPTION_NAMES.get(n, n) for n in other)}")
    # (the fingerprint covers the lookup table too, which the journal does not describe)
    return " and ".join(said) if said else "with another lookup table"


# The options as the command line names them (found from outside: a refusal named "cap_ages", "residual_check")
_OPTION_NAMES = {
    "shift_dates": "--shift-dates", "clean_descriptors": "--clean-descriptors",
    "retain_patient_characteristics": "--retain-patient-characteristics",
    "retain_device_identity": "--retain-device-identity", "retain_safe_private": "--no-safe-private",
    "cap_ages": "--preset bids (its age cap)", "residual_check": "--no-residual-check",
    "allow_burned_in": "--allow-burned-in", "clean_pixels": "--clean-pixels", "dicom_only": "--dicom-only",
}


def _key_named(options: Options) -> str | None:
    """The key's fingerprint (never the key), None without one."""
    return key_fingerprint(options.key) if options.key is not None else None


def _head(path: Path) -> dict[str, Any] | None:
    """The journal's first line, what the run was begun with; None when it is empty or not such a line."""
    try:
        with open(path, "rb") as f:
            head = json.loads(f.readline())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return head if isinstance(head, dict) and "version" in head else None


def check_begun(output: Path) -> None:
    """Refuse an output folder that is not empty and that no neuroanon run began (no journal beside it)."""
    if not _empty(output) and not journal_path(output).exists():
        raise UsageError(f"the output folder {output} is not empty and no neuroanon run began it; "
                         "choose a new or empty folder, or add --force to write into it anyway")


def described(options: Options) -> dict[str, Any]:
    """The options that shape the outputs but for the key and the lookup table, as the journal's first line keeps
    them (nothing secret or identifying: switches and the level)."""
    shaping = {k: v for k, v in vars(options).items() if k not in ("key", "lookup", "quarantine")}
    shaping["level"] = options.level.value
    kept: dict[str, Any] = json.loads(json.dumps(shaping, default=str))
    return kept


def fingerprint(options: Options) -> str:
    """Everything that shapes the outputs, keyed so that the journal reveals neither key nor lookup."""
    text = json.dumps(described(options), sort_keys=True)
    key = options.key or b"no key"
    lookup = json.dumps(sorted(options.lookup.items()))
    return hmac.new(key, f"{text}\0{lookup}".encode(), hashlib.sha256).hexdigest()


def inputs_token(inputs: Sequence[Path], options: Options) -> str:
    """The run's inputs (their real paths, in any order), keyed so that the journal does not name them: the
    journal knows inputs by their names below them."""
    text = json.dumps(sorted({str(Path(path).resolve()) for path in inputs}))
    return hmac.new(options.key or b"no key", text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


class Journal:
    """Appends one line per committed file; reads the lines of an earlier run with the same fingerprint."""

    def __init__(self, output: Path, options: Options, inputs: Sequence[Path], resumable: bool | None = None,
                 force: bool = False) -> None:
        """`resumable`: whether what an earlier run from `inputs` left in `output` can be kept (default: the output
        folder is not empty). A non-empty output folder that no run began (no journal) is refused unless `force`."""
        self.path = journal_path(output)
        self._output = output
        self._token = _tokenizer(options)
        self._fingerprint = fingerprint(options)
        # Where the line of each input an earlier run finished starts, by its name's digest: the record is read
        # from there when asked for (a journal of a million files is not held in memory).
        self.done = DigestTable(wide=False)  # (a line found is checked against the input's token: never mistaken)
        self._lists: dict[int, int] = {}  # where the line of each numbered list of changes starts
        self._list: tuple[int, tuple[Change, ...]] = (-1, ())  # the last list read (a series' files share one)
        self._reader: BinaryIO | None = None
        # Each distinct list of changes gets a line of its own, once, with a number; a file's line names the
        # number. The files of a series mostly share one list: a line a file, not the list a file.
        self._numbered: dict[tuple[Change, ...], int] = {}
        self._last: tuple[tuple[Change, ...] | None, int] = (None, -1)  # the last list numbered, and its number
        self._next = 0
        resumable = check_output(output, options, inputs, resumable, force)
        if self.path.exists() and resumable:
            self._load()
        else:  # nothing of an earlier run is left to resume
            self.path.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        size = self.path.stat().st_size
        if not self.done and size == 0:
            # (level, key fingerprint and options in clear: a refused rerun is told what differs)
            self._write({"version": VERSION, "fingerprint": self._fingerprint,
                         "inputs": inputs_token(inputs, options), "level": options.level.value,
                         "key": _key_named(options), "options": described(options)})
        elif size and not _ends_a_line(self.path):
            self._write({})  # ends the line a killed or stopped run cut short, which the next load skips

    def _load(self) -> None:
        self._reader = reader = open(self.path, "rb")
        reader.readline()  # (the version and fingerprint)
        start = reader.tell()
        for line in reader:
            try:
                entry = json.loads(line)
                if "list" in entry:
                    self._lists[int(entry["list"])] = start
                else:
                    self.done[digest(str(entry["id"]))] = start
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
                pass  # a line a killed run cut short
            start += len(line)
        self._next = max(self._lists, default=-1) + 1  # numbers are never used twice in one journal

    def _read(self, start: int) -> dict[str, Any]:
        """The earlier run's line that starts at `start`."""
        assert self._reader is not None  # (only lines it loaded are read)
        self._reader.seek(start)
        entry: dict[str, Any] = json.loads(self._reader.readline())
        return entry

    def _earlier(self, relative: str) -> dict[str, Any] | None:
        """The line an earlier run wrote last for this input, if any."""
        if not self.done:
            return None  # nothing to resume: no keyed token to compute
        token = self._token(relative)
        start = self.done.get(digest(token))
        try:
            entry = self._read(start) if start is not None else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return entry if entry is not None and entry.get("id") == token else None

    def _stored(self, entry: dict[str, Any]) -> Record | None:
        """The record an earlier run stored in `entry`; None if it does not hold one (or names a list of changes
        that is not there): the input is done again."""
        try:
            number = entry["changes"]
            if self._list[0] != number:
                self._list = (number, tuple(Change(*c) for c in self._read(self._lists[number])["changes"]))
            return _record(entry, self._list[1])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            return None

    def finished(self, relative: str, path: Path) -> Record | None:
        """The record of an earlier run for this input, if it is unchanged and its output, where the run released
        it into a folder, is as long as when released (found from outside: an output cut short after the run was
        kept by the rerun and said written)."""
        entry = self._earlier(relative)
        if entry is None or _stamp(path) != (entry.get("size"), entry.get("mtime_ns")):
            return None
        record = self._stored(entry)
        released = entry.get("output_size")
        if record is not None and record.output is not None and released is not None:
            try:
                if os.stat(os.path.join(self._output, record.output)).st_size != released:
                    return None
            except OSError:
                return None  # gone: done again
        return record

    def replaced(self, relative: str, path: Path) -> str | None:
        """The output an earlier run released for this input, if the input has changed since (it is done again,
        and what it gives now takes that output's place)."""
        entry = self._earlier(relative)
        if entry is None or _stamp(path) == (entry.get("size"), entry.get("mtime_ns")):
            return None
        record = self._stored(entry)
        return record.output if record is not None and record.status is Status.WRITTEN else None

    def add(self, relative: str, path: Path, record: Record, read: tuple[int, int] | None = None,
            output_size: int | None = None) -> None:
        """Record a committed file (the input is named by its token; lists, not dicts: one line per file), with
        its size and modification time as it was `read` (else as it is now): an input replaced after its read is
        done again by the next run; and with the `output_size` of a file released into a folder: an output cut
        short since is made again."""
        size, mtime_ns = read or _stamp(path)
        self._write({"id": self._token(relative), "size": size, "mtime_ns": mtime_ns, "output_size": output_size,
                     "status": str(record.status), "reason": record.reason, "output": record.output,
                     "dicom": record.dicom, "changes": self._number(record.changes),
                     "findings": [[f.attribute, f.where] for f in record.findings], "pixels": record.pixels,
                     "engine": record.engine})

    def _number(self, changes: tuple[Change, ...]) -> int:
        """The number of this list of changes, its line written first if it has none yet."""
        if changes is self._last[0]:  # (a batch's files of one series share one tuple: no hash of a long one)
            return self._last[1]
        number = self._numbered.get(changes)
        if number is None:
            if len(self._numbered) >= CHANGES_KEPT:
                self._numbered.clear()  # bounded memory; a list seen again is written again, numbered anew
            number = self._numbered[changes] = self._next
            self._next += 1
            self._write({"list": number, "changes": changes})
        self._last = (changes, number)
        return number

    def _write(self, entry: dict[str, object]) -> None:
        append_line(self._fd, json.dumps(entry) + "\n")

    def close(self) -> None:
        close_lines(self._fd)
        if self._reader is not None:
            self._reader.close()


def _ends_a_line(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time of the input (through a symlink the run followed), (0, 0) if gone."""
    try:
        info = os.stat(path)
    except OSError:
        try:
            info = os.lstat(path)
        except OSError:
            return 0, 0
    return info.st_size, info.st_mtime_ns


def _empty(folder: Path) -> bool:
    return not folder.is_dir() or next(folder.iterdir(), None) is None


def _tokenizer(options: Options) -> Callable[[str], str]:
    if options.level is Level.FULL and options.key is not None:
        return Keyring(options.key).input_token
    return lambda relative: relative  # below full the output mirrors the input paths anyway


def _record(stored: dict[str, Any], changes: tuple[Change, ...]) -> Record:
    output = stored["output"]
    return Record("", Status(stored["status"]), stored["reason"], None if output is None else str(output),
                  bool(stored["dicom"]), changes,
                  tuple(Finding(*f) for f in stored["findings"]), stored.get("pixels"), stored.get("engine", ""))
