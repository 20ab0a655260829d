"""The project key and everything derived from it: UIDs, pseudonyms, date offsets.

Every derived value is HMAC-SHA256(key, purpose || original). Whoever holds the key gets the same values in every
run and on every machine; without it the mapping can be neither reversed nor checked against a dictionary.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError
from .write import append_line, claim, close_lines

KEY_BYTES = 32
MIN_KEY_BYTES = 16
MAX_KEY_FILE = 4096  # a key file holds 64 hex characters: one much bigger is something else
# Shifted dates move back by 1 to 10 years; the same offset for every date of one subject.
MAX_SHIFT_DAYS = 3650


def default_key_path() -> Path:
    """Where the per-user key lives when no --key-file is given: $XDG_CONFIG_HOME/neuroanon/key."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "neuroanon" / "key"


def create_key(path: Path) -> bytes:
    """Create a new random key at `path` with mode 0600; refuse to overwrite an existing file."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:  # (found from outside: said of the key file)
        raise UsageError(f"cannot create the key file {path}: {path.parent} is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot create the key file {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"the key file {path} exists already; it is never overwritten") from None
    except OSError as exc:
        raise UsageError(f"cannot create the key file {path}: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def _open_regular(path: Path, what: str) -> int:
    """A descriptor open for reading on `path`, which must be a regular file: a FIFO would block the run, a device
    (/dev/zero) would be read without end. Checked before the open (opening a device can act on it) and on the
    open file (the path may have been replaced in between; O_NONBLOCK: a FIFO put there is not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK) if stat.S_ISREG(os.stat(path).st_mode) else None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    if fd is not None:
        os.close(fd)
    raise UsageError(f"{what} {path} is not a regular file (a FIFO, device or folder is never read)")


def load_key(path: Path) -> bytes:
    """Read a key file: hex text (as create_key writes it; also UTF-16, or with a byte order mark) or at least 16 raw
    bytes, at most 4 KiB. Text that holds 32 hex digits in a row (`_HEX_RUN`) but other characters too is refused: it
    was meant as hex."""
    try:
        with os.fdopen(_open_regular(path, "key file"), "rb") as f:
            raw = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise UsageError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(raw) > MAX_KEY_FILE:
        raise UsageError(f"key file {path} is over {MAX_KEY_FILE // 1024} KiB: not a key file")
    text = _as_text(raw).strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        # found from outside: hex with a digit lost in copying was taken for raw bytes, another key, in silence
        if _HEX_TEXT.fullmatch(text):
            raise UsageError(f"key file {path} holds hex digits that are no whole bytes (an odd number of them, "
                             "or a space inside a byte): a digit lost in copying?") from None
        if _HEX_RUN.search(text):  # (found from outside: quotes, `key=`, a comment line: another key, in silence)
            raise UsageError(f"key file {path} holds hex digits with other characters (quotes, a name, a comment, "
                             "colons between bytes?): leave the hex digits alone in it") from None
        key = text
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(f"key file {path} holds fewer than {MIN_KEY_BYTES} bytes of key")
    if not key.strip(b"\x00"):  # (a file filled from /dev/zero, or never written)
        raise UsageError(f"key file {path} holds only zero bytes: no secret (make one with `neuroanon key`)")
    return key


_HEX_TEXT = re.compile(rb"[0-9A-Fa-f\s]+")
# A key file whose text holds 32 hex digits in a row, or 16 pairs with a colon or dash between them, is meant as
# hex: raw random bytes hold no such run.
_HEX_RUN = re.compile(rb"(?:[0-9A-Fa-f]{2}[:-]?){16}")


def _as_text(raw: bytes) -> bytes:
    """A key file's bytes without a byte order mark, and UTF-16 text (as Windows PowerShell 5 and Notepad write
    "Unicode") as ASCII; else as they are (found from outside: a hex key saved so was read as raw bytes, another
    key, in silence)."""
    for mark, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if raw.startswith(mark):
            try:
                text = raw[len(mark):].decode(codec)
            except UnicodeDecodeError:
                return raw
            return text.encode("ascii") if text.isascii() else raw
    return raw


def load_or_create_key(path: Path | None) -> tuple[bytes, Path, bool]:
    """The key from `path`, or from the default path (created there if missing). Returns (key, path, created)."""
    if path is not None:
        return load_key(path), path, False
    path = default_key_path()
    if default_key_exists():
        return load_key(path), path, False
    return create_key(path), path, True


def default_key_exists() -> bool:
    """Whether the per-user key exists; a usage error when its folder cannot be entered (found from outside: "...:
    Permission denied", exit 1, with no word of what to do)."""
    path = default_key_path()
    try:
        return path.exists()
    except OSError as exc:
        raise UsageError(f"cannot read or create the key file {path}: {exc.strerror}; give --key-file, or set "
                         "XDG_CONFIG_HOME (or HOME) to a folder this user may write") from None


def key_fingerprint(key: bytes) -> str:
    """Names a key without revealing it: 16 hex digits of HMAC-SHA256(key, a fixed text). Two runs show the same
    fingerprint exactly when they used the same key."""
    return hmac.new(key, b"neuroanon key fingerprint", hashlib.sha256).hexdigest()[:16]


_REMEMBERED = 1 << 14  # derived values a key ring keeps, of each kind (a few MB at most)


def _remembered(memory: dict[str, str], value: str, derive: Callable[[str], str]) -> str:
    """`derive(value)`, kept in `memory` (emptied when full)."""
    known = memory.get(value)
    if known is None:
        if len(memory) >= _REMEMBERED:
            memory.clear()
        known = memory[value] = derive(value)
    return known


class Keyring:
    """Keyed derivations of identifiers. Pure: the same key and input give the same output."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise UsageError(f"a key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        # What a run derives recurs in every file of a study or series: each is derived once.
        self._uids: dict[str, str] = {}
        self._pseudonyms: dict[str, str] = {}

    def _digest(self, purpose: bytes, value: str) -> bytes:
        return hmac.digest(self._key, purpose + b"\0" + value.encode("utf-8", "surrogateescape"), "sha256")

    def uid(self, original: str) -> str:
        """A `2.25.` UID (at most 44 characters) for an original UID."""
        return _remembered(self._uids, original, self._new_uid)

    def _new_uid(self, original: str) -> str:
        return "2.25." + str(int.from_bytes(self._digest(b"uid", original)[:16], "big"))

    def pseudonym(self, patient_id: str) -> str:
        """A subject pseudonym: `NA` and 16 base32 characters (80 bits)."""
        return _remembered(self._pseudonyms, patient_id, self._new_pseudonym)

    def _new_pseudonym(self, patient_id: str) -> str:
        return "NA" + base64.b32encode(self._digest(b"subject", patient_id)[:10]).decode("ascii")

    def day_offset(self, patient_id: str) -> int:
        """Days (negative, 1 to 3650 back) by which this subject's dates move under --shift-dates."""
        n = int.from_bytes(self._digest(b"dateshift", patient_id)[:8], "big")
        return -(n % MAX_SHIFT_DAYS + 1)

    def input_token(self, relative: str) -> str:
        """The keyed name of an input path at full, in reports and in the run journal (paths hold names)."""
        return hmac.digest(self._key, b"journal\0" + relative.encode("utf-8", "surrogateescape"), "sha256").hex()[:32]

    def token(self, value: str) -> str:
        """A short keyed token for naming things that have no identifier of their own (e.g. a missing UID)."""
        return self._digest(b"token", value)[:8].hex()


def load_lookup(path: Path, what: str = "lookup file", on_shared: Callable[[int, int], None] | None = None
                ) -> dict[str, str]:
    """Read a CSV of `original,new` PatientID pairs (an optional header row `original,new` is skipped). `what`
    names the file in errors, which never quote it (it holds original IDs). An original listed twice with two
    new IDs is refused; one new ID given to two originals (one person under two IDs, or a mistake: their files
    share a subject) is told to `on_shared` with the two line numbers."""
    table: dict[str, str] = {}
    line_of: dict[str, int] = {}  # the line of each original
    first_of: dict[str, int] = {}  # the line of each new ID's first original
    with open(_open_regular(path, what), newline="", encoding="utf-8-sig") as f:  # (Excel writes a BOM)
        rows = csv.reader(f)
        try:
            for number, row in enumerate(rows, start=1):
                if not row or (number == 1 and [c.strip().lower() for c in row] == ["original", "new"]):
                    continue
                original, new = _pair(row, f"{what} {path}, line {number}")
                if table.get(original, new) != new:
                    raise UsageError(f"{what} {path}, lines {line_of[original]} and {number}: one original ID with "
                                     "two new IDs")
                if original not in table:
                    first = first_of.setdefault(new, number)
                    if first != number and on_shared is not None:
                        on_shared(first, number)
                    line_of[original] = number
                table[original] = new
        except UnicodeDecodeError:
            raise UsageError(f"{what} {path} is not UTF-8 text (save it as CSV UTF-8)") from None
        except csv.Error:  # a field over the csv module's limit (128 KiB): a binary file
            raise UsageError(f"{what} {path}, line {rows.line_num}: not CSV text") from None
        except OSError as exc:
            raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    return table


def _pair(row: list[str], where: str) -> tuple[str, str]:
    """A lookup row's original and new ID; `where` names the file and line in errors."""
    if len(row) != 2 or not row[0].strip() or not row[1].strip():
        raise UsageError(f"{where}: expected two non-empty columns")
    new = row[1].strip()
    if len(new) > 64 or "\\" in new:
        raise UsageError(f"{where}: new ID longer than 64 or has '\\'")
    return row[0].strip(), new


def check_mapping(path: Path, known: dict[str, str], expected: Callable[[str], str | None]) -> None:
    """Refuse a mapping file whose subjects (`known`, as read) this run would give other pseudonyms:
    `expected` is this run's pseudonym of an original (None: a key still to be made, so none)."""
    if any(expected(original) != new for original, new in known.items()):
        raise UsageError(f"the mapping file {path} was made with another key or lookup; use a new file")


def mapping_in_use(path: Path) -> str:
    return f"the mapping file {path} is in use by another run; wait for it to end"


class SubjectMapping:
    """The site's record of which pseudonym each original PatientID got: a CSV `original,new` (usable later as a
    --lookup), mode 0600, written only when asked for. Appended as subjects appear, so an interrupted run keeps
    what it wrote and a rerun adds only the subjects not yet listed."""

    def __init__(self, path: Path, expected: Callable[[str], str | None]) -> None:
        """`expected`: this run's pseudonym of an original PatientID; a file that lists another is refused."""
        self.path = path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
        except OSError as exc:
            raise UsageError(f"cannot write the mapping file {path}: {exc.strerror or type(exc).__name__}") from None
        claim(fd, mapping_in_use(path))
        try:
            self._known = load_lookup(path, "mapping file")
            check_mapping(path, self._known, expected)
        except UsageError:
            os.close(fd)
            raise
        self._fd = fd
        if not self._known and os.fstat(fd).st_size == 0:
            try:
                append_line(fd, _csv_row("original", "new"))
            except OSError:
                os.close(fd)
                raise

    def add(self, original: str, new: str) -> None:
        """List a subject once; an original listed with another pseudonym (another key) is refused."""
        if not original:
            return
        known = self._known.get(original)
        if known == new:
            return
        if known is not None:
            raise UsageError(f"the mapping file {self.path} was made with another key or lookup; use a new file")
        self._known[original] = new
        append_line(self._fd, _csv_row(original, new))  # (a line the disk cannot take is not left half written)

    def close(self) -> None:
        close_lines(self._fd)


def _csv_row(*values: str) -> str:
    row = io.StringIO()
    csv.writer(row).writerow(values)
    return row.getvalue()
