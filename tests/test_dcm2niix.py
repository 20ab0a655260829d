"""dcm2niix converts Siemens MR files anonymized at `full` exactly as it converts the originals.

The allow-list keeps the Siemens CSA headers (0029,xx10/xx20) and the "SIEMENS MR HEADER" (0019,xx..)
elements, so the voxels, the diffusion gradients and the technical BIDS sidecar fields (slice timing,
ASCCONV-derived fields) must survive; removing every private element (the control) must lose some of them.
Assertion messages name keys and files, never element values.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from nibabel.nifti1 import Nifti1Image

from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_tree

from .corpus import nibabel_siemens
from .tools import require_tool

KEY = b"dcm2niix-test-key: 32 bytes or more of key material"
DWI_MOSAICS = ("siemens_dwi_0.dcm", "siemens_dwi_1000.dcm")

# Sidecar keys that legitimately change at `full`, each seen to differ (or to be an identifying field
# the profile replaces) on this corpus. Everything else the original sidecar holds must survive unchanged.
IDENTIFYING_KEYS = frozenset(
    {
        "AcquisitionTime",  # time of day: times are removed with the dates
        "ProtocolName",  # free-text descriptor, replaced (Clean Descriptors not chosen)
        "SeriesDescription",  # free-text descriptor, removed
        "StudyDescription",  # free-text descriptor, removed
        "ProcedureStepDescription",  # free-text descriptor, removed
        "StationName",  # device identity (Retain Device Identity not chosen)
        "DeviceSerialNumber",  # device identity
        "InstitutionName",  # institution identity (equal here only because the sample holds a placeholder)
        "InstitutionAddress",  # institution identity
        "InstitutionalDepartmentName",  # institution identity
    }
)

# Sidecar keys dcm2niix derives from the Siemens CSA image/series headers (ASCCONV included) and the
# SIEMENS MR HEADER (0019) elements: each is in the original DWI mosaic sidecars and lost without them.
CSA_KEYS = (
    "SliceTiming",
    "ShimSetting",
    "TxRefAmp",
    "BandwidthPerPixelPhaseEncode",
    "EffectiveEchoSpacing",
    "TotalReadoutTime",
    "DwellTime",
    "PhaseEncodingDirection",
    "DiffusionScheme",
    "BaseResolution",
    "PhaseResolution",
    "PartialFourier",
    "ParallelReductionFactorInPlane",
    "ReceiveCoilName",
    "PulseSequenceDetails",
)

# (SeriesNumber, EchoNumber, ImageType, shape): names no identifying field, unique per converted group.
GroupKey = tuple[Any, Any, tuple[str, ...], tuple[int, ...]]


@dataclass(frozen=True, repr=False)
class Output:
    nifti: Path
    sidecar: dict[str, Any]

    def __repr__(self) -> str:  # a failing test shows its arguments: name the file, never the values
        return f"Output({self.nifti.name})"

    @property
    def name(self) -> str:
        return self.nifti.stem

    def gradients(self) -> tuple[Path, Path] | None:
        bval, bvec = self.nifti.with_suffix(".bval"), self.nifti.with_suffix(".bvec")
        return (bval, bvec) if bval.exists() or bvec.exists() else None


@dataclass(frozen=True, repr=False)
class Conversions:
    inputs: list[str]
    original: dict[GroupKey, Output]
    full: dict[GroupKey, Output]
    no_private: dict[GroupKey, Output]

    def __repr__(self) -> str:
        files = {name: len(group) for name, group in vars(self).items() if name != "inputs"}
        return f"Conversions(inputs={self.inputs}, nifti files={files})"


def _dcm2niix(tool: str, source: Path, out: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True)
    command = [tool, "-b", "y", "-z", "n", "-f", "%s_%e", "-o", str(out), str(source)]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=60)


def _outputs(folder: Path) -> dict[GroupKey, Output]:
    found: dict[GroupKey, Output] = {}
    for nifti in sorted(folder.glob("*.nii")):
        sidecar = json.loads(nifti.with_suffix(".json").read_text())
        shape = tuple(int(n) for n in Nifti1Image.from_filename(nifti).shape)
        key: GroupKey = (
            sidecar.get("SeriesNumber"),
            sidecar.get("EchoNumber"),
            tuple(sidecar.get("ImageType", ())),
            shape,
        )
        assert key not in found, f"{folder.name}: {nifti.name} and {found[key].nifti.name} share a group key"
        found[key] = Output(nifti, sidecar)
    return found


def _convertible_siemens(tool: str, tmp: Path) -> Path:
    """A folder of the Siemens files that dcm2niix converts on their own (it refuses some test files).

    Files whose private creators were overwritten by an earlier de-identification (decimal_rescale.dcm says
    "Anon") are left out: without a true creator no element can be recognised as safe, and removing them is right.
    """
    folder = tmp / "siemens"
    folder.mkdir()
    for path in nibabel_siemens(tmp):
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if header.get("Manufacturer") != "SIEMENS" or header.get((0x0029, 0x0010)).value != "SIEMENS CSA HEADER":
            continue
        probe = tmp / "probe" / path.name
        (probe / "in").mkdir(parents=True)
        shutil.copy(path, probe / "in" / path.name)
        if _dcm2niix(tool, probe / "in", probe / "out", check=False).returncode == 0:
            shutil.copy(path, folder / path.name)
    return folder


def _anonymize(source: Path, out: Path, **options: Any) -> None:
    summary = anonymize_tree([source], out, Options(level=Level.FULL, key=KEY, **options), report=None)
    assert summary.exit_code == 0, f"anonymization of {source.name} failed: {dict(summary.counts)}"


@pytest.fixture(scope="module")
def conversions(tmp_path_factory: pytest.TempPathFactory) -> Conversions:
    tool = require_tool("dcm2niix")
    tmp = tmp_path_factory.mktemp("dcm2niix")
    source = _convertible_siemens(tool, tmp)
    _anonymize(source, tmp / "full")
    _anonymize(source, tmp / "no_private", retain_safe_private=False)
    for name in ("siemens", "full", "no_private"):
        _dcm2niix(tool, tmp / name, tmp / "nifti" / name)
    return Conversions(
        inputs=sorted(p.name for p in source.iterdir()),
        original=_outputs(tmp / "nifti" / "siemens"),
        full=_outputs(tmp / "nifti" / "full"),
        no_private=_outputs(tmp / "nifti" / "no_private"),
    )


def _dwi(outputs: dict[GroupKey, Output]) -> dict[GroupKey, Output]:
    return {key: out for key, out in outputs.items() if out.gradients() is not None}


def _same_table(a: Path, b: Path) -> bool:
    left, right = np.loadtxt(a, ndmin=2), np.loadtxt(b, ndmin=2)
    return left.shape == right.shape and bool(np.array_equal(left, right))


def test_every_original_group_has_an_anonymized_counterpart(conversions: Conversions) -> None:
    missing_mosaics = sorted(set(DWI_MOSAICS) - set(conversions.inputs))
    assert not missing_mosaics, f"dcm2niix refused the DWI mosaics on their own: {missing_mosaics}"
    assert _dwi(conversions.original), "dcm2niix wrote no .bval/.bvec for the original DWI mosaics"
    unmatched = sorted(out.name for key, out in conversions.original.items() if key not in conversions.full)
    assert not unmatched, f"no anonymized counterpart for the NIfTI files {unmatched}"


def test_image_data_are_identical(conversions: Conversions) -> None:
    for key, original in conversions.original.items():
        anonymized = conversions.full[key]
        before = Nifti1Image.from_filename(original.nifti)
        after = Nifti1Image.from_filename(anonymized.nifti)
        assert before.shape == after.shape, f"{original.name}: shape differs"
        same_affine = bool(np.allclose(before.affine, after.affine))
        assert same_affine, f"{original.name}: affine differs"
        same_voxels = bool(np.array_equal(before.get_fdata(), after.get_fdata()))
        assert same_voxels, f"{original.name}: voxel data differ"


def test_technical_sidecar_fields_are_unchanged(conversions: Conversions) -> None:
    problems: list[str] = []
    for key, original in conversions.original.items():
        anonymized = conversions.full[key].sidecar
        technical = sorted(set(original.sidecar) - IDENTIFYING_KEYS)
        lost = [k for k in technical if k not in anonymized]
        changed = [k for k in technical if k in anonymized and anonymized[k] != original.sidecar[k]]
        if lost or changed:
            problems.append(f"{original.name}: lost {lost}, changed {changed}")
    message = (
        "technical (non-identifying) sidecar keys lost or changed at `full` (is the private element dcm2niix"
        " reads them from on the allow-list?): " + "; ".join(problems)
    )
    assert not problems, message


def test_csa_derived_fields_and_gradients_survive(conversions: Conversions) -> None:
    dwi = _dwi(conversions.original)
    assert dwi, "dcm2niix wrote no .bval/.bvec for the original DWI mosaics"
    for key, original in dwi.items():
        baseline = [k for k in CSA_KEYS if k not in original.sidecar]
        assert not baseline, f"{original.name}: dcm2niix emits no {baseline} even for the original"
        anonymized = conversions.full[key]
        lost = [k for k in CSA_KEYS if k not in anonymized.sidecar]
        assert not lost, f"{original.name}: CSA-derived keys lost after `full`: {lost}"
        changed = [k for k in CSA_KEYS if anonymized.sidecar[k] != original.sidecar[k]]
        assert not changed, f"{original.name}: CSA-derived keys changed after `full`: {changed}"
        gradients, anonymized_gradients = original.gradients(), anonymized.gradients()
        assert gradients is not None and anonymized_gradients is not None, f"{original.name}: no bval/bvec"
        for before, after in zip(gradients, anonymized_gradients, strict=True):
            assert after.exists(), f"{original.name}: no {after.suffix} after `full`"
            same = _same_table(before, after)
            assert same, f"{original.name}: {after.suffix} differs after `full`"


def test_control_without_private_elements_loses_csa_information(conversions: Conversions) -> None:
    """The teeth: dropping every private element (the CSA header among them) must show in dcm2niix's output."""
    losses: list[str] = []
    for key, original in _dwi(conversions.original).items():
        stripped = conversions.no_private.get(key)
        if stripped is None:
            losses.append(f"{original.name}: not converted at all")
            continue
        lost = [k for k in CSA_KEYS if k in original.sidecar and k not in stripped.sidecar]
        if lost:
            losses.append(f"{original.name}: lost {lost}")
        gradients, stripped_gradients = original.gradients(), stripped.gradients()
        assert gradients is not None
        if stripped_gradients is None:
            losses.append(f"{original.name}: no bval/bvec")
            continue
        for before, after in zip(gradients, stripped_gradients, strict=True):
            if not after.exists() or not _same_table(before, after):
                losses.append(f"{original.name}: {after.suffix} differs")
    assert losses, f"retain_safe_private=False changed none of {list(CSA_KEYS)} nor the bval/bvec files"
