"""What a run's files share and what one file's stages share, each derived once.

A run's context (the options and the key ring) is built once per run and travels to each worker process with its
tasks. A file's context is built from its original header and holds what more than one stage asks of that
header (the engine, the output layout, the burned-in gate, the residual check): each value is
derived on first use and then kept, never derived again for the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pydicom.dataset import Dataset

from .burnedin import embedded_overlay, risk_beside_overlay
from .errors import UsageError
from .identifiers import Needle, NestedValue, instance_needles, needles, nested_needles, subject_of
from .keys import Keyring
from .options import Level, Options
from .rules import compile_rules


@dataclass(frozen=True)
class RunContext:
    """The options of a run and, when they have a key, the key ring derived from it."""

    options: Options
    keyring: Keyring | None = None

    @classmethod
    def of(cls, options: Options) -> RunContext:
        return cls(options, Keyring(options.key) if options.key is not None else None)

    def file(self, original: Dataset) -> FileContext:
        """The context of one file, whose original header (or the part of it a path read) is `original`."""
        return FileContext(self, original)


class FileContext:
    """One file's original header and what its stages derive from it, each once."""

    def __init__(self, run: RunContext, original: Dataset) -> None:
        self.run = run
        self.original = original
        self.nested: tuple[NestedValue, ...] = ()  # (`found_nested`)
        # At full the engine clears an embedded overlay's bits as it writes, or says why they stay.
        self.overlay_cleared = False
        self.overlay_kept = ""

    @property
    def options(self) -> Options:
        return self.run.options

    @property
    def keyring(self) -> Keyring:
        """The run's key ring (the full level needs a key)."""
        if self.run.keyring is None:
            raise UsageError("the full level needs a key")
        return self.run.keyring

    def found_nested(self, nested: tuple[NestedValue, ...]) -> None:
        """The patient's values that items of the header hold at any depth (tag, VR, value, the item's character
        set), found by the engine: searched for beside the top level's (`identifiers.nested_needles`)."""
        if nested != self.nested:
            self.nested = nested
            self.__dict__.pop("needles", None)

    @cached_property
    def needles(self) -> tuple[Needle, ...]:
        """The patterns of the file's identifying values, searched for at full (none below it)."""
        if self.options.level is not Level.FULL:
            return ()
        found = nested_needles(self.original, self.nested) if self.nested else needles(self.original)
        retained = compile_rules(self.options).retained
        return tuple(n for n in found if n.attribute not in retained) if retained else found

    @cached_property
    def instance_needles(self) -> tuple[Needle, ...]:
        """The file's own instance UID as a needle, searched for at full beside `needles`."""
        return instance_needles(self.original) if self.options.level is Level.FULL else ()

    @cached_property
    def subject(self) -> str:
        """Whom the file is about (`subject_of`)."""
        return subject_of(self.original)

    @cached_property
    def overlay(self) -> str | None:
        """Why an overlay may sit in the pixel data's unused bits (`burnedin.embedded_overlay`), or None."""
        return embedded_overlay(self.original)

    @cached_property
    def burned_in_risk(self) -> str | None:
        """Why the pixels may show identifying text (`burnedin.burned_in_risk`), or None."""
        return risk_beside_overlay(self.original, self.overlay)

    @cached_property
    def risk_beside_overlay(self) -> str | None:
        """`burned_in_risk` once an embedded overlay's bits are cleared: what the header says of the pixels."""
        return risk_beside_overlay(self.original, None)
