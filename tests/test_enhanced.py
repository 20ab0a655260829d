"""Enhanced multi-frame MR files with their vendors' private functional-group sequences, before and after `full`.

Made by code from the structure of real files: Philips (nibabel's philips_mprage.dcm: per-frame private sequence
(2005,140F) "Philips MR Imaging DD 005" with the scale slope (2005,100E), stack sequence (2001,105F), water-fat
shift (2001,1022)) and Siemens XA (pydicom-data's enhanced MR made a Siemens XA file: shared (0021,10FE)
"SIEMENS MR SDS 01" with the ASCCONV protocol (0021,1019), per-frame (0021,11FE) "SIEMENS MR SDI 02"). Each gets
non-zero pixels (so scaling shows), fake PHI in public attributes, in unlisted private elements inside the kept
private sequences and under lookalike creators. dcm2niix must see the same data after `full` (tests/niix.py),
nibabel's nicom too (with the real Siemens DWI mosaic), and no planted value may survive.
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from nibabel.nicom.dicomwrappers import wrapper_from_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from neuroanon.cli import main

from .corpus import _package_dir
from .helpers import searchable_bytes
from .niix import convert, differences, outputs
from .test_csa import _csa
from .tools import require_tool

KEY = "enhanced-test-key: 32 bytes or more of key material"
OPTION_SETS = {
    "preset-bids": ["--preset", "bids"],
    "full-clean-descriptors": ["--level", "full", "--clean-descriptors"],
}
FRAMES = 4
NAME = "Doe^Fakename"
PLANTED = (b"doe^fakename", b"fakename", b"fakeville", b"fakestn01", b"fake-id-0042", b"fake private note")


def _plant_public(ds: Dataset) -> None:
    ds.PatientName = NAME
    ds.PatientID = "FAKE-ID-0042"
    ds.PatientBirthDate = "19470415"
    ds.PatientAge = "093Y"
    ds.InstitutionName = "Fakeville General Hospital"
    ds.StationName = "FAKESTN01"
    ds.OperatorsName = "Fakeoperator^Fakename"


def _pixels(ds: Dataset) -> None:
    rows, columns = int(ds.Rows), int(ds.Columns)
    values = (np.arange(FRAMES * rows * columns, dtype=np.uint32) * 7919 % 4000 + 1).astype(np.uint16)
    ds.PixelData = values.tobytes()
    ds.NumberOfFrames = FRAMES


def _philips(tmp: Path) -> Path:
    base = _package_dir("nibabel")
    assert base is not None
    ds = pydicom.dcmread(io.BytesIO(gzip.decompress((base / "nicom/tests/data/philips_mprage.dcm.gz").read_bytes())))
    ds.PerFrameFunctionalGroupsSequence = Sequence(list(ds.PerFrameFunctionalGroupsSequence)[:FRAMES])
    _pixels(ds)
    _plant_public(ds)
    ds[0x20011018].value = FRAMES  # Number Of Slices MR: dcm2niix sizes the volume by it
    ds[0x2001105F].value[0][0x2001102D].value = FRAMES  # Stack Number Of Slices
    for item in ds.PerFrameFunctionalGroupsSequence:
        private = item[0x2005140F].value[0]
        # unlisted elements inside the kept per-frame sequence, under a listed creator and under a lookalike
        private.add_new(0x200510F5, "LO", "fake private note " + NAME)
        private.add_new(0x20050016, "LO", "philips mr imaging dd 001")
        private.add_new(0x2005160E, "LO", "fake private note")
        private.PatientName = NAME  # a public identifying attribute inside the private item
    ds.add_new(0x200110F4, "LT", "fake private note at the top")
    path = tmp / "philips" / "enhanced.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path)
    return path


def _xa_protocol() -> bytes:
    lines = [
        "### ASCCONV BEGIN object=MrProtDataImpl@MrProtocolData version=51110009 ###",
        'tProtocolName = ""FakeProto Doe^Fakename""',
        'tReferenceImage0 = ""1.3.12.2.1107.5.2.43.99999.2024050112345678901234567""',
        'tSequenceFileName = ""%SiemensSeq%\\ep2d_bold""',
        "sKSpace.lBaseResolution = 64",
        "sKSpace.lPhaseEncodingLines = 64",
        "sPat.lAccelFactPE = 2",
        "sRXSPEC.alDwellTime[0] = 2600",
        "### ASCCONV END ###",
    ]
    return ("\n".join(lines) + "\n").encode()


def _xa_csa() -> bytes:
    """XA's protocol element: a CSA header holding the patient's weight and the protocol (as dcm2niix reads it)."""
    return _csa([("UsedPatientWeight", "DS", [b"81.5\x00"]), ("MrPhoenixProtocol", "UN", [_xa_protocol() + b"\x00"])],
                True)


def _strip_private(ds: Dataset) -> None:
    for tag in [t for t in ds.keys() if t.group % 2]:
        del ds[tag]
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _strip_private(item)


def _siemens_xa(tmp: Path) -> Path:
    """An XA enhanced file: the Philips file's public functional groups, Siemens's private ones instead."""
    ds = pydicom.dcmread(_philips(tmp / "base"))
    _strip_private(ds)
    ds.Manufacturer = "Siemens Healthineers"
    ds.ManufacturerModelName = "MAGNETOM Prisma"
    ds.SoftwareVersions = "syngo MR XA30"
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    sds = Dataset()
    sds.add_new(0x00210010, "LO", "SIEMENS MR SDS 01")
    sds.add_new(0x00211009, "LO", "p2")
    sds.add_new(0x00211019, "OB", _xa_csa())
    sds.add_new(0x002110F3, "LO", "fake private note")  # unlisted
    shared.add_new(0x002110FE, "SQ", Sequence([sds]))
    for number, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        item.add_new(0x00210011, "LO", "SIEMENS MR SDI 02")
        sdi = Dataset()
        sdi.add_new(0x00210011, "LO", "SIEMENS MR SDI 02")
        sdi.add_new(0x00211104, "DS", str(number * 0.5))
        sdi.add_new(0x00211106, "LO", f"X_1_1_1_1_1_1_1_1_1_1_1_{number + 1}")
        sdi.add_new(0x002111F3, "LO", "fake private note " + NAME)  # unlisted
        item.add_new(0x002111FE, "SQ", Sequence([sdi]))
    path = tmp / "siemens_xa" / "enhanced.dcm"
    path.parent.mkdir(parents=True)
    ds.save_as(path)
    return path


MAKERS = {"philips": _philips, "siemens_xa": _siemens_xa}
# What each vendor's private sequences give dcm2niix: these keys must be in the original sidecar (else the
# file would not exercise them) and survive.
PRIVATE_KEYS = {
    "philips": ("PhilipsRescaleSlope", "PhilipsScaleSlope", "WaterFatShift", "EstimatedTotalReadoutTime",
                "TablePosition"),
    "siemens_xa": ("BaseResolution", "AcquisitionMatrixPE"),
}


def _anonymize_one(source: Path, out: Path, label: str) -> Path:
    """Anonymize `source`'s folder with an option set; check no planted value survived; return the output."""
    key = out.parent / "key"
    key.write_text(KEY)
    status = main(["anonymize", str(source.parent), "-o", str(out), *OPTION_SETS[label], "--key-file", str(key),
                   "--workers", "1"])
    assert status == 0, f"{source.parent.name}: anonymization exited {status}"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 1
    data = searchable_bytes(written[0]).lower()
    survived = [p.decode() for p in PLANTED if p in data]
    assert not survived, f"{source.parent.name}: planted values survived: {survived}"
    if label == "preset-bids":
        assert pydicom.dcmread(written[0]).PatientAge == "090Y", "the preset keeps ages of 90 and over as 090Y"
    return written[0]


@pytest.mark.parametrize("label", sorted(OPTION_SETS))
@pytest.mark.parametrize("vendor", sorted(MAKERS))
def test_enhanced_files_convert_the_same(vendor: str, label: str, tmp_path: Path) -> None:
    tool = require_tool("dcm2niix")
    source = MAKERS[vendor](tmp_path)
    out = tmp_path / "out"
    _anonymize_one(source, out, label)
    convert(tool, source.parent, tmp_path / "n_in")
    convert(tool, out, tmp_path / "n_out")
    before, after = outputs(tmp_path / "n_in"), outputs(tmp_path / "n_out")
    assert before, f"dcm2niix converted nothing of the synthetic {vendor} file"
    for name, output in before.items():
        absent = [k for k in PRIVATE_KEYS[vendor] if k not in output.sidecar]
        assert not absent, f"{vendor} {name}: the original sidecar lacks {absent}"
    problems = differences(before, after)
    assert not problems, f"{vendor} {label}: " + "; ".join(problems)


def test_philips_private_sequences_keep_listed_elements_only(tmp_path: Path) -> None:
    written = _anonymize_one(_philips(tmp_path), tmp_path / "out", "preset-bids")
    ds = pydicom.dcmread(written)
    frame = ds.PerFrameFunctionalGroupsSequence[0]
    private = frame[0x2005140F].value[0]
    assert private[0x2005100E].VR == "FL" and private[0x2005100E].value > 0, "scale slope lost"
    assert 0x200510F5 not in private and 0x2005160E not in private and 0x20050016 not in private
    assert private.PatientName != NAME, "a public name inside the private item was not replaced"
    assert private.SOPInstanceUID.startswith("2.25."), "a UID inside the private item was not remapped"
    assert 0x200110F4 not in ds and ds[0x20011022].value > 0, "water-fat shift lost or unlisted text kept"


def test_siemens_xa_private_sequences_cleaned(tmp_path: Path) -> None:
    """XA's shared SDS and per-frame SDI sequences: listed elements kept, protocol cleaned, the rest removed."""
    source = _siemens_xa(tmp_path)
    written = _anonymize_one(source, tmp_path / "out", "preset-bids")
    ds = pydicom.dcmread(written)
    sds = ds.SharedFunctionalGroupsSequence[0][0x002110FE].value[0]
    assert sds[0x00211009].value == "p2" and 0x002110F3 not in sds
    protocol = sds[0x00211019].value
    assert len(protocol) == len(_xa_csa()), "the protocol changed length"
    assert b"sPat.lAccelFactPE = 2" in protocol and b"sKSpace.lBaseResolution = 64" in protocol
    assert b"81.5" not in protocol, "the patient's weight survived in the XA protocol header"
    assert b"1.3.12.2.1107.5.2.43.99999" not in protocol and b'tReferenceImage0 = ""2.25.' in protocol
    for number, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        sdi = item[0x002111FE].value[0]
        assert sdi[0x00211106].value.endswith(f"_{number + 1}") and 0x002111F3 not in sdi


def _siemens_dwi(tmp: Path) -> Path:
    base = _package_dir("nibabel")
    assert base is not None
    path = tmp / "siemens_dwi" / "siemens_dwi_1000.dcm"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.decompress((base / "nicom/tests/data/siemens_dwi_1000.dcm.gz").read_bytes()))
    return path


@pytest.mark.parametrize("maker", [_philips, _siemens_dwi], ids=["philips-enhanced", "siemens-mosaic"])
def test_nibabel_reads_the_same(maker: Any, tmp_path: Path) -> None:
    """nibabel's nicom (the other converter the allow-list serves): same voxels, affine, scaling, b-matrix."""
    source = maker(tmp_path)
    written = _anonymize_one(source, tmp_path / "out", "full-clean-descriptors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are experimental
        before, after = wrapper_from_file(str(source)), wrapper_from_file(str(written))
        assert type(before) is type(after) and before.vendor == after.vendor
        assert np.array_equal(before.get_data(), after.get_data()), "voxel values differ"
        assert np.array_equal(before.affine, after.affine), "affine differs"
        for name in ("b_value", "b_vector", "b_matrix", "q_vector"):
            left, right = getattr(before, name, None), getattr(after, name, None)
            assert (left is None) == (right is None), name
            assert left is None or right is None or np.array_equal(left, right), name
