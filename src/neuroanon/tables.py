"""The tables a run's own process keeps for every file: which output places are taken, and by which input, and
what an earlier run finished. A run of a million files keeps a row for each, so a row is a few dozen bytes in flat
arrays, not Python objects (a dict of bytes keys and str values costs about 200 bytes a row, 300 with a tuple).
"""

from __future__ import annotations

import hashlib
from array import array

_EMPTY = 0  # a slot's low key word when the slot is free (a digest whose low word is 0 is stored as 1)


def digest(text: str) -> bytes:
    """A 128-bit digest of a name: two different names give the same one with odds of about 2**-128."""
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


class DigestTable:
    """Maps 128-bit digests to unsigned 64-bit values: open addressing with linear probing over three flat arrays,
    at most two thirds full (24 bytes a slot, 36 to 72 a row). Not `wide`: keyed by the digest's second half alone
    (16 bytes a slot), where two keys of a million rows share it with odds of about 2**-25."""

    def __init__(self, wide: bool = True) -> None:
        self._rows = 0
        self._wide = wide
        self._allocate(1 << 6)

    def _allocate(self, slots: int) -> None:
        self._mask = slots - 1
        self._high = array("Q", bytes(8 * slots if self._wide else 0))
        self._low = array("Q", bytes(8 * slots))
        self._values = array("Q", bytes(8 * slots))

    def __len__(self) -> int:
        return self._rows

    def _slot(self, key: bytes) -> tuple[int, int, int]:
        """The slot that holds `key` or, if none does, the free slot where it goes; with the key's two words."""
        low = int.from_bytes(key[8:16], "little") or 1
        slot = low & self._mask
        if not self._wide:
            while self._low[slot] != _EMPTY and self._low[slot] != low:
                slot = (slot + 1) & self._mask
            return slot, 0, low
        high = int.from_bytes(key[:8], "little")
        while self._low[slot] != _EMPTY and (self._low[slot] != low or self._high[slot] != high):
            slot = (slot + 1) & self._mask
        return slot, high, low

    def get(self, key: bytes) -> int | None:
        slot, _, _ = self._slot(key)
        return None if self._low[slot] == _EMPTY else self._values[slot]

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def setdefault(self, key: bytes, value: int) -> int:
        """The value stored for `key`; `value`, stored, if there was none."""
        slot, high, low = self._slot(key)
        if self._low[slot] != _EMPTY:
            return self._values[slot]
        self._put(slot, high, low, value)
        return value

    def __setitem__(self, key: bytes, value: int) -> None:
        slot, high, low = self._slot(key)
        if self._low[slot] != _EMPTY:
            self._values[slot] = value
        else:
            self._put(slot, high, low, value)

    def _put(self, slot: int, high: int, low: int, value: int) -> None:
        if self._wide:
            self._high[slot] = high
        self._low[slot], self._values[slot] = low, value
        self._rows += 1
        if 3 * self._rows > 2 * (self._mask + 1):
            self._grow()

    def _grow(self) -> None:
        """Twice the slots, every row moved over one at a time (a list of the rows would cost more than the table)."""
        high, low, values = self._high, self._low, self._values
        self._allocate(2 * len(low))
        mask, new_low = self._mask, self._low
        for old, word in enumerate(low):
            if word != _EMPTY:
                slot = word & mask
                while new_low[slot] != _EMPTY:
                    slot = (slot + 1) & mask
                if self._wide:
                    self._high[slot] = high[old]
                new_low[slot], self._values[slot] = word, values[old]


class Names:
    """Input names, each stored once in one byte array and found again by the offset `add` returns. A folder's
    path is stored once for all its files: a row is its folder's number, the base name's length and the base name."""

    def __init__(self) -> None:
        self._bytes = bytearray()
        self._folders: dict[str, int] = {}
        self._folder_names: list[str] = []

    def size(self) -> int:
        """The offset the next name added will have."""
        return len(self._bytes)

    def add(self, name: str) -> int:
        cut = name.rfind("/") + 1
        folder, base = name[:cut], name[cut:].encode("utf-8", "surrogateescape")
        number = self._folders.setdefault(folder, len(self._folder_names))
        if number == len(self._folder_names):
            self._folder_names.append(folder)
        offset = len(self._bytes)
        self._bytes += number.to_bytes(4, "little") + len(base).to_bytes(4, "little") + base
        return offset

    def __getitem__(self, offset: int) -> str:
        number = int.from_bytes(self._bytes[offset:offset + 4], "little")
        size = int.from_bytes(self._bytes[offset + 4:offset + 8], "little")
        return self._folder_names[number] + self._bytes[offset + 8:offset + 8 + size].decode("utf-8", "surrogateescape")


class Claims:
    """The output places this run has claimed, each with the input that claimed it first (a duplicate's record
    names that input)."""

    def __init__(self) -> None:
        # Keyed by 64 bits of the digest: two places of a million files share a key with odds of 2**-25 (the later
        # one would be taken for a duplicate; 16 bytes a slot, not 24). The instances are claimed only at full.
        self._places = DigestTable(wide=False)
        self._instances = DigestTable(wide=False)
        self._names = Names()

    def claim(self, place: str, name: str) -> str:
        """The input that first claimed `place`: `name` if none had (it claims it now)."""
        return self.claim_instance(place, name, None)[0]

    def claim_instance(self, place: str, name: str, instance: str | None) -> tuple[str, str | None]:
        """`claim`, and, when `place` is claimed now, `instance` with it (at full, a released output's file name: its
        new SOP Instance UID): the input that claimed that instance first in another place, if one did."""
        offset = self._names.size()
        first = self._places.setdefault(digest(place), offset)
        if first != offset:  # (an earlier row's name lies before the end of the names)
            return self._names[first], None
        self._names.add(name)
        if instance is None:
            return name, None
        other = self._instances.setdefault(digest(instance), offset)
        return name, self._names[other] if other != offset else None

    def __contains__(self, place: str) -> bool:
        return digest(place) in self._places
