"""The one frozen options object passed down the pipeline."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType


class Level(enum.StrEnum):
    """The anonymization levels of the NiDB specification."""

    ORIGINAL = "original"
    ANONYMIZE = "anonymize"
    FULL = "full"


def _empty_mapping() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Options:
    """What to do to each file. Options after `key` apply to the `full` level only.

    Each option that keeps something the Basic Profile would remove maps to a PS3.15 option and is recorded in
    the output's DeidentificationMethodCodeSequence.
    """

    level: Level = Level.ANONYMIZE
    key: bytes | None = None
    lookup: Mapping[str, str] = field(default_factory=_empty_mapping)
    shift_dates: bool = False  # 113107 Retain Longitudinal Temporal Information Modified Dates
    clean_descriptors: bool = False  # 113105 Clean Descriptors
    retain_patient_characteristics: bool = False  # 113108
    retain_device_identity: bool = False  # 113109
    retain_safe_private: bool = True  # 113111: keep the documented technical allow-list
    cap_ages: bool = False  # with retained characteristics, ages of 90 and over become 090Y (HIPAA Safe Harbor)
    residual_check: bool = True  # search every written file for its input's identifying values
    allow_burned_in: bool = False  # release files that may carry burned-in text (never marked identity removed)
    clean_pixels: str = ""  # 113101: "" off, else pixels.MODES (phi or strict boxes, risky or all images)
    quarantine: Path | None = None  # where files that fail a check go; None: they are not written
    dicom_only: bool = False  # anonymize and original: non-DICOM files are not copied (full never copies them)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))
        if not isinstance(self.lookup, MappingProxyType):
            object.__setattr__(self, "lookup", MappingProxyType(dict(self.lookup)))

    def __reduce__(self) -> tuple[object, ...]:
        """Picklable for worker processes (a MappingProxyType is not)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["lookup"] = dict(self.lookup)
        return (_rebuild, (values,))


# Named bundles of `full` options (`--preset NAME`), each switch added to what the user chose.
# "bids": what conversion to BIDS needs (README, "Converting to BIDS"): descriptions cleaned rather than removed,
# dates shifted per subject, age and sex kept with ages of 90 and over capped; the technical allow-list stays on.
PRESETS: Mapping[str, Mapping[str, bool]] = MappingProxyType({
    "bids": MappingProxyType({"clean_descriptors": True, "shift_dates": True, "retain_patient_characteristics": True,
                              "cap_ages": True}),
})


def _rebuild(values: dict[str, object]) -> Options:
    return Options(**values)  # type: ignore[arg-type]
