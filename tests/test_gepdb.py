"""GE's Protocol Data Block at `full`: rebuilt from the lines dcm2niix reads, nothing else; a block that does not
unpack as one goes. Blocks are made here like GE's (a 4-byte length, a gzip stream with a file name in its header,
`KEY "value"` lines), full of fake PHI."""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

from neuroanon.cli import main
from neuroanon.gepdb import SHAPES, clean, listed_only
from neuroanon.identifiers import needles

from .helpers import small_slice
from .niix import convert, outputs
from .tools import require_tool

# Lines as GE writes them (their order), with fake PHI where a site or the scanner may put it.
LINES = [
    b'POSITION "Supine"', b'ENTRY "Head First"', b'COIL "32Ch Head"',
    b'SEDESC "fMRI Quaxworth rest"', b'PSEQ "Gradient Echo"', b'IOPT "EPI, FMRI, MPh"', b'TE "30.0"',
    b'SLICEORDER "1"', b'VIEWORDER "0"', b'DELACQ "Minimum"', b'DELACQNOAV "0"',
    b'PDGMUID "1.2.840.113819.3.19610302.771234"', b'PDGMSTR "Dr Zebulon Quaxworth"', b'NOSLC "3"',
    b'MBACCEL "1"', b'PHASEDELAYS1 "0, 250.5, 500"', b'ANATOMY "SRT%5CNone%5CT-A0100"',
]
PHI = (b"Quaxworth", b"Zebulon", b"19610302", b"771234", b"QX771234")


def block(lines: list[bytes], order: str = "<", name: bytes = b"QX771234_Quaxworth.pdb") -> bytes:
    """A block as GE writes one: the length, then a gzip stream whose header names a file."""
    stream = io.BytesIO()
    with gzip.GzipFile(filename=name.decode(), mode="wb", fileobj=stream, mtime=0) as gz:
        gz.write(b"\n".join(lines) + b"\n")
    packed = struct.pack(order + "I", len(stream.getvalue())) + stream.getvalue()
    return packed + b"\x00" * (len(packed) % 2)


def text_of(value: bytes, order: str = "<") -> bytes:
    (length,) = struct.unpack(order + "I", value[:4])
    return gzip.decompress(value[4:4 + length])


def test_only_the_lines_dcm2niix_reads_for_slice_timing_are_kept_in_their_order() -> None:
    cleaned = clean(block(LINES), ())
    assert cleaned is not None and len(cleaned) % 2 == 0
    assert text_of(cleaned) == (b'\nIOPT "FMRI, MPh"\nSLICEORDER "1"\nVIEWORDER "0"\nDELACQ "Minimum"\n'
                                b'DELACQNOAV "0"\nNOSLC "3"\nMBACCEL "1"\n')
    assert not any(phi.lower() in cleaned.lower() for phi in PHI)  # (the gzip header's file name too)
    assert cleaned[7] == 0  # no name, comment or extra field in the gzip header
    assert listed_only(cleaned) and not listed_only(block(LINES))
    assert clean(cleaned, ()) == cleaned  # rebuilding a rebuilt block changes nothing


def test_a_block_of_listed_lines_keeps_no_file_name_nor_time() -> None:
    listed = [line for line in LINES if line.split(b" ")[0] in SHAPES]
    assert not listed_only(block(listed))  # the file name in its header
    stamped = block(listed, name=b"")
    stamped = stamped[:8] + struct.pack("<I", 1705308300) + stamped[12:]  # the visit's time, 2024-01-15 08:45
    assert not listed_only(stamped)
    cleaned = clean(block(listed), ())
    assert cleaned is not None and b"Quaxworth" not in cleaned and listed_only(cleaned)


@pytest.mark.parametrize("line", [
    b'SLICEORDER "1 QX771234"', b'NOSLC "Quaxworth"', b'DELACQ "Quaxworth"', b'MBACCEL "1" QX',
    b'SLICEORDER "12"', b'SLICEORDER 1', b' SLICEORDER "1"', b'sliceorder "1"', b'SLICEORDER "\xd9"',
    # an ID's digits, a birth date in number shapes (found from outside)
    b'NOSLC "771234"', b'DELACQNOAV "1961.0302"', b'DELACQNOAV "19610302"', b'DELACQ "5550123"',
    # free text in the pulse sequence and the options: a name, a UID, encoded text (found from outside)
    b'PSEQ "Gradient Echo"', b'PSEQ "Dr Ferncastle Opaline"', b'PSEQ "517561787774686a"',
    b'IOPT "EPI, 1.2.826.0.1.3680043.10.84.1.1"', b'IOPT "Quaxworths"', b'IOPT "MPh Quaxworth"', b'IOPT ""',
    b'PHASEDELAYS1 "1961, 3, 2"',
])
def test_a_listed_line_of_another_shape_goes(line: bytes) -> None:
    cleaned = clean(block([b'TE "30.0"', line, b'VIEWORDER "0"']), ())
    assert cleaned is not None and text_of(cleaned) == b'\nVIEWORDER "0"\n'


def test_a_key_keeps_its_first_line_only() -> None:
    """dcm2niix reads a key's first line; more lines of one key, each of its shape, carried any digits or bits
    (a birth date in four NOSLC lines, bits in MPh and MPhVar repeated: found in review). A first line of another
    shape takes its key with it."""
    lines = [b'NOSLC "1961"', b'NOSLC "0302"', b'IOPT "EPI, MPh, MPhVar, MPh, FMRI, MPhVar"', b'IOPT "DIFF"',
             b'SLICEORDER "x"', b'SLICEORDER "1"']
    cleaned = clean(block(lines), ())
    assert cleaned is not None and text_of(cleaned) == b'\nNOSLC "1961"\nIOPT "MPh, MPhVar, FMRI"\n'
    assert listed_only(cleaned)
    assert listed_only(block([b'NOSLC "3"'], name=b""))
    assert not listed_only(block([b'NOSLC "3"', b'NOSLC "4"'], name=b""))


@pytest.mark.parametrize("value", [b"1" * 5000 + b"x", b"1, " * 2000 + b"x", b"-1.5 " * 3000 + b"QX"])
def test_a_long_value_of_almost_the_shape_is_decided_at_once(value: bytes) -> None:
    """A run of digits a number list could split every way took a quarter of a second for 22 digits, twice as
    long for each more (found from outside: a run hung on one file; that list is no longer kept). Decided in a
    child, which must finish."""
    script = ("import sys; from neuroanon.gepdb import clean; from tests.test_gepdb import block; "
              "v = sys.stdin.buffer.read(); "
              "print(clean(block([b'NOSLC \"3\"', b'DELACQNOAV \"' + v + b'\"', b'IOPT \"' + v + b'\"']), ())"
              " is not None)")
    done = subprocess.run([sys.executable, "-c", script], input=value, capture_output=True, timeout=60,
                          cwd=Path(__file__).parent.parent, check=True)
    assert done.stdout.strip() == b"True"


def test_a_listed_line_that_holds_an_identifying_value_goes() -> None:
    ds = Dataset()
    ds.PatientName, ds.PatientID = "Minimum^Zebulon", "QX771234"
    found = needles(ds)
    cleaned = clean(block([b'DELACQ "Minimum"', b'IOPT "EPI, MPhVar, QX771234"', b'SLICEORDER "1"']), found)
    assert cleaned is not None and text_of(cleaned) == b'\nIOPT "MPhVar"\nSLICEORDER "1"\n'
    assert text_of(clean(block([b'DELACQ "Minimum"']), ()) or b"") == b'\nDELACQ "Minimum"\n'  # (a control)


def test_a_big_endian_length_is_written_back_big_endian() -> None:
    cleaned = clean(block(LINES, ">"), ())
    assert cleaned is not None and b'SLICEORDER "1"' in text_of(cleaned, ">")


def _stream(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


@pytest.mark.parametrize("value", [
    b"", b"\x00" * 40, _stream(b'SLICEORDER "1"\n') * 2,  # no length
    struct.pack("<I", 9) + _stream(b'SLICEORDER "1"\n'),  # a length shorter than the stream
    struct.pack("<I", 400) + _stream(b'SLICEORDER "1"\n'),  # longer than the value
    struct.pack("<I", 35) + _stream(b'SLICEORDER "1"\n') + b"QX771234",  # bytes after the stream
    struct.pack("<I", 70) + _stream(b'SLICEORDER "1"\n') * 2,  # two streams
    struct.pack("<I", 35) + _stream(b'SLICEORDER "1"\n')[:-6] + b"\xff" * 6,  # a wrong checksum
    struct.pack("<I", 26) + _stream(b'SLICEORDER "1"\n')[:26],  # cut short
    struct.pack("<I", len(_stream(b"\n" * (2 << 20)))) + _stream(b"\n" * (2 << 20)),  # 2 MiB of text
    struct.pack("<I", 26) + b"\x1f\x8b\x08" + zlib.compress(b'SLICEORDER "1"\n'),  # zlib behind gzip's magic
])
def test_a_value_that_is_no_block_goes(value: bytes) -> None:
    assert clean(value, ()) is None
    assert not listed_only(value)


def test_a_block_unpacks_with_its_padding_counted_or_not() -> None:
    """The length counts the stream (dcm2niix reads the stream from the fifth byte); a NUL may pad it."""
    value = block(LINES)
    (length,) = struct.unpack("<I", value[:4])
    assert length in (len(value) - 4, len(value) - 5)
    padded = struct.pack("<I", length + 2) + value[4:4 + length] + b"\x00\x00"
    assert clean(value, ()) is not None and clean(padded, ()) == clean(value, ())


def _ge_file(path: Path, syntax: str, pdb: bytes, vr: str = "OB") -> None:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, "1.2.826.0.1.3680043.10.84.1.1"
    ds.PatientName, ds.PatientID = "Quaxworth^Zebulon", "QX771234"
    ds.Modality, ds.Manufacturer = "MR", "GE MEDICAL SYSTEMS"
    block_ = ds.private_block(0x0025, "GEMS_SERS_01", create=True)
    block_.add_new(0x1B, vr, pdb)
    ds.InstanceNumber, ds.Rows = 1, 8  # Rows after the block: its bytes must still be read as an element
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                                    DeflatedExplicitVRLittleEndian])
def test_the_rebuilt_block_stands_behind_a_header_of_its_length(tmp_path: Path, syntax: str) -> None:
    order = ">" if syntax == ExplicitVRBigEndian else "<"
    (tmp_path / "in").mkdir()
    _ge_file(tmp_path / "in" / "IM1.dcm", syntax, block(LINES, order))
    key = tmp_path / "key"
    key.write_text("gepdb-test-key: 32 bytes or more of key material")
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--level", "full",
                 "--key-file", str(key), "--workers", "1", "-q"]) == 0
    (out,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(out)
    value = ds[0x0025101B].value
    assert b'SLICEORDER "1"' in text_of(value, order) and b"SEDESC" not in text_of(value, order)
    assert ds.Rows == 8 and ds.InstanceNumber == 1
    assert not any(phi.lower() in out.read_bytes().lower() for phi in PHI)
    assert main(["verify", str(tmp_path / "out"), "--against", str(tmp_path / "in"), "--key-file", str(key)]) == 0


def test_verify_finds_a_block_holding_more(tmp_path: Path) -> None:
    """A kept block holding lines beyond the list (another tool's output, or ours edited) is a finding."""
    (tmp_path / "in").mkdir()
    _ge_file(tmp_path / "in" / "IM1.dcm", ExplicitVRLittleEndian, block(LINES))
    key = tmp_path / "key"
    key.write_text("gepdb-test-key: 32 bytes or more of key material")
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--level", "full",
                 "--key-file", str(key), "--workers", "1", "-q"]) == 0
    assert main(["verify", str(tmp_path / "out"), "--level", "full"]) == 0
    (out,) = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(out)
    ds[0x0025101B].value = block([b'SLICEORDER "1"', b'SEDESC "fMRI rest"'], name=b"")
    ds.save_as(out)
    assert not listed_only(ds[0x0025101B].value)
    assert main(["verify", str(tmp_path / "out"), "--level", "full"]) == 1


def _ge_fmri(folder: Path, pdb: bytes, location: str | None = None) -> None:
    """A GE epiRT fMRI series (two volumes of three slices) with a Protocol Data Block, fake PHI in the header;
    performed in `location`, if given."""
    folder.mkdir(parents=True)
    study = "1.2.826.0.1.3680043.10.84.2"
    for number in range(1, 7):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, f"{study}.5.{number}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, study + ".5", study + ".9"
        ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "MR", "GE MEDICAL SYSTEMS", "DISCOVERY MR750"
        ds.SoftwareVersions = ["27", "LX", "MR Software release:DV26.0_R03_1831.b"]
        ds.PatientName, ds.PatientID, ds.PatientPosition = "Quaxworth^Zebulon", "QX771234", "HFS"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240115"
        ds.AcquisitionTime = "084500"
        ds.SeriesNumber, ds.AcquisitionNumber, ds.InstanceNumber = 5, 1, number
        ds.SeriesDescription = ds.ProtocolName = "task_rest_bold"
        ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "EP", "NONE", "2D"
        ds.ScanOptions = ["EPI_GEMS"]
        ds.RepetitionTime, ds.EchoTime, ds.FlipAngle, ds.MagneticFieldStrength = 2000, 30, 90, 3
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ImagesInAcquisition, ds.InPlanePhaseEncodingDirection, ds.AcquisitionMatrix = 3, "COL", [0, 8, 8, 0]
        small_slice(ds, (number - 1) % 3, bytes(range(128)))
        acquisition = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        acquisition.add_new(0x9C, "LO", "epiRT")
        ds.private_block(0x0021, "GEMS_RELA_01", create=True).add_new(0x4F, "SS", 3)
        ds.private_block(0x0025, "GEMS_SERS_01", create=True).add_new(0x1B, "OB", pdb)
        if location is not None:
            ds.PerformedLocation = location
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(folder / f"IM{number:04d}.dcm", enforce_file_format=True)


@pytest.mark.parametrize("location", [None, "FMRI"])
@pytest.mark.parametrize("options", [["--level", "full"], ["--preset", "bids"]])
def test_dcm2niix_reads_ge_slice_timing_from_the_rebuilt_block(tmp_path: Path, options: list[str],
                                                               location: str | None) -> None:
    """GE fMRI had no SliceTiming after `full` (found from outside: the block was removed, and dcm2niix takes the
    slice order from it); now the same as before, and the output holds none of the block's fake PHI. A series
    performed in "FMRI" (as dcm_qa_nih's GE fMRI is) is released too: the word names no place (found from
    outside: every file was held, the block keeping the imaging option FMRI)."""
    tool = require_tool("dcm2niix")
    _ge_fmri(tmp_path / "in", block(LINES), location)
    key = tmp_path / "key"
    key.write_text("gepdb-test-key: 32 bytes or more of key material")
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *options,
                 "--key-file", str(key), "--workers", "1", "-q"]) == 0
    for path in (tmp_path / "out").rglob("*.dcm"):
        assert not any(phi.lower() in path.read_bytes().lower() for phi in PHI)
        assert listed_only(pydicom.dcmread(path)[0x0025101B].value)
    convert(tool, tmp_path / "in", tmp_path / "nii-in")
    convert(tool, tmp_path / "out", tmp_path / "nii-out")
    (before,), (after,) = outputs(tmp_path / "nii-in").values(), outputs(tmp_path / "nii-out").values()
    assert len(before.sidecar["SliceTiming"]) == 3 and len(set(before.sidecar["SliceTiming"])) == 3
    assert after.sidecar["SliceTiming"] == before.sidecar["SliceTiming"]


@pytest.mark.parametrize("vr", ["UT", "UN", "OW"])
def test_a_block_of_another_vr_is_written_as_ob(tmp_path: Path, vr: str) -> None:
    """As text (UT) pydicom strips a block's last NUL bytes, and verify found our own output unclean (found from
    outside): the rebuilt block is written as OB, whatever VR it came with."""
    (tmp_path / "in").mkdir()
    _ge_file(tmp_path / "in" / "IM1.dcm", ExplicitVRLittleEndian, block(LINES), vr)
    key = tmp_path / "key"
    key.write_text("gepdb-test-key: 32 bytes or more of key material")
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--level", "full",
                 "--key-file", str(key), "--workers", "1", "-q"]) == 0
    (out,) = (tmp_path / "out").rglob("*.dcm")
    element = pydicom.dcmread(out)[0x0025101B]
    assert element.VR == "OB" and listed_only(element.value)
    assert main(["verify", str(tmp_path / "out"), "--level", "full"]) == 0
    assert main(["verify", str(tmp_path / "out"), "--against", str(tmp_path / "in"), "--key-file", str(key)]) == 0
