"""dcm2niix before and after anonymization: convert a folder, compare what a BIDS user gets.

What may differ between the sidecar of an original and of its anonymized copy is a documented list of identifying
keys (IDENTIFYING_SIDECAR_KEYS); every other key, the voxel values in physical units, the geometry (affine) and the
bval/bvec files must be the same. Messages name files and keys, never values.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.nifti1 import Nifti1Image

# Sidecar keys that identify a person, a place, a device or a visit: the profile removes, replaces or cleans
# the attributes dcm2niix takes them from. Every other key must come out of dcm2niix unchanged.
IDENTIFYING_SIDECAR_KEYS = frozenset({
    # names and IDs (dcm2niix writes them only when asked to, -ba n)
    "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    # institution and device identity
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    # times of day (dates are removed or shifted; a time of day is removed unless dates are shifted)
    "AcquisitionTime", "AcquisitionDateTime", "ContentTime", "SeriesTime", "StudyTime",
    # free-text descriptions of the visit (removed) and descriptors (cleaned of identifying values)
    "StudyDescription", "ProcedureStepDescription", "PerformedProcedureStepDescription", "ImageComments",
    "SeriesDescription", "ProtocolName",
    # the de-identification marks, which anonymization adds
    "DeidentificationMethod", "DeidentificationMethodCodeSequence",
})
# Descriptors BIDS heuristics key on: under Clean Descriptors they must still be there after anonymization.
DESCRIPTOR_KEYS = ("SeriesDescription", "ProtocolName", "SequenceName")


@dataclass(frozen=True, repr=False)
class Output:
    nifti: Path
    sidecar: dict[str, Any]

    def __repr__(self) -> str:  # a failing test shows its arguments: name the file, never the values
        return f"Output({self.nifti.name})"

    def physical(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Voxel values in physical units: the NIfTI scaling, then the Philips scaling dcm2niix puts in the
        sidecar instead (display value D = stored x RescaleSlope + RescaleIntercept; with float scaling
        P = D / (RescaleSlope x ScaleSlope), PMC3998685)."""
        values = np.asarray(Nifti1Image.from_filename(self.nifti).get_fdata())
        rescale = self.sidecar.get("PhilipsRescaleSlope")
        if rescale is not None:
            values = values * rescale + self.sidecar.get("PhilipsRescaleIntercept", 0.0)
            scale = self.sidecar.get("PhilipsScaleSlope")
            if scale and self.sidecar.get("UsePhilipsFloatNotDisplayScaling"):
                values = values / (rescale * scale)
        return values

    def gradients(self) -> tuple[Path, Path]:
        return self.nifti.with_suffix(".bval"), self.nifti.with_suffix(".bvec")


def convert(tool: str, source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """dcm2niix on a folder: uncompressed NIfTI with a BIDS sidecar, named by series and echo number."""
    out.mkdir(parents=True, exist_ok=True)
    command = [tool, "-b", "y", "-z", "n", "-f", "%s_%e", "-o", str(out), str(source)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def outputs(folder: Path) -> dict[str, Output]:
    """The NIfTI files dcm2niix wrote in `folder`, by file name (series and echo numbers survive anonymization)."""
    found = {}
    for nifti in sorted(folder.glob("*.nii")):
        sidecar = nifti.with_suffix(".json")
        found[nifti.stem] = Output(nifti, json.loads(sidecar.read_text()) if sidecar.exists() else {})
    return found


def differences(original: dict[str, Output], anonymized: dict[str, Output],
                allowed: frozenset[str] = IDENTIFYING_SIDECAR_KEYS, descriptors: bool = True) -> list[str]:
    """What differs between two conversions beyond the allowed sidecar keys, one line per problem."""
    problems: list[str] = []
    # dcm2niix writes overlay planes as <name>_ROI<n>.nii; `full` removes overlays (they can hold annotations).
    missing = sorted(n for n in set(original) - set(anonymized) if "_ROI" not in n)
    extra = sorted(set(anonymized) - set(original))
    if missing or extra:
        problems.append(f"NIfTI files missing {missing}, unexpected {extra}")
    for name in sorted(set(original) & set(anonymized)):
        if "_ROI" in name:
            problems.append(f"{name}: an overlay plane survived `full`")
            continue
        problems.extend(f"{name}: {problem}" for problem in _pair_differences(original[name], anonymized[name],
                                                                            allowed, descriptors))
    return problems


def _pair_differences(before: Output, after: Output, allowed: frozenset[str], descriptors: bool) -> list[str]:
    """What differs between two conversions of one series: image, gradients, sidecar."""
    a, b = Nifti1Image.from_filename(before.nifti), Nifti1Image.from_filename(after.nifti)
    if a.shape != b.shape:
        return ["shape differs"]
    problems: list[str] = []
    if not np.array_equal(a.affine, b.affine):
        problems.append("affine differs")
    if not np.array_equal(before.physical(), after.physical()):
        problems.append("voxel values in physical units differ")
    for left, right in zip(before.gradients(), after.gradients(), strict=True):
        if left.exists() != right.exists():
            problems.append(f"{left.suffix} {'lost' if left.exists() else 'added'}")
        elif left.exists() and not np.array_equal(np.loadtxt(left, ndmin=2), np.loadtxt(right, ndmin=2)):
            problems.append(f"{left.suffix} differs")
    lost = sorted(k for k in set(before.sidecar) - set(after.sidecar) if k not in allowed)
    added = sorted(k for k in set(after.sidecar) - set(before.sidecar) if k not in allowed)
    changed = sorted(k for k in set(before.sidecar) & set(after.sidecar)
                     if k not in allowed and before.sidecar[k] != after.sidecar[k])
    if lost or added or changed:
        problems.append(f"sidecar keys lost {lost}, added {added}, changed {changed}")
    gone = [k for k in DESCRIPTOR_KEYS if k in before.sidecar and k not in after.sidecar]
    if descriptors and gone:
        problems.append(f"descriptors lost under Clean Descriptors: {gone}")
    return problems
