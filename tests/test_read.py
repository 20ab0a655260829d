"""Reading headers: a dataset whose VR encoding contradicts its transfer syntax is read as pydicom reads it."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian

from neuroanon import engine
from neuroanon.errors import InputError
from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file
from neuroanon.read import read_header
from neuroanon.report import Status
from neuroanon.sample import make_dataset, planted_values

from .helpers import files_under

KEY = b"\x5a" * 32
# pydicom says so when it reads these files itself (the tests read them to compare).
pytestmark = pytest.mark.filterwarnings("ignore:Expected explicit VR:UserWarning")


def _sc_rgb_jpeg() -> Path:
    found = get_testdata_file("SC_rgb_jpeg.dcm")
    assert found is not None, "pydicom's test files are a test dependency"
    return Path(str(found))


def _mislabelled(path: Path, subject: int) -> bytes:
    """A complete implicit VR dataset with fake PHI whose file meta says Explicit VR Little Endian."""
    ds = make_dataset(subject=subject)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    dcmwrite(buffer, ds, implicit_vr=True, little_endian=True, force_encoding=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def test_sc_rgb_jpeg_is_read_as_implicit_vr_not_truncated() -> None:
    path = _sc_rgb_jpeg()
    header = read_header(path)
    assert header.implicit_vr and header.little_endian
    assert header.pixels is not None and header.pixels.end == path.stat().st_size
    reference = pydicom.dcmread(path)
    assert header.dataset.SOPInstanceUID == reference.SOPInstanceUID


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_sc_rgb_jpeg_is_anonymized_with_its_pixels_intact(level: Level, tmp_path: Path) -> None:
    path = _sc_rgb_jpeg()
    record = anonymize_file(path, tmp_path, Options(level=level, key=KEY, allow_burned_in=True))
    assert record.status is Status.WRITTEN, record.reason
    assert record.output is not None
    out = pydicom.dcmread(tmp_path / record.output)
    assert out.PixelData == pydicom.dcmread(path).PixelData
    assert "DeidentificationMethod" in out


@pytest.mark.parametrize("level", [Level.ANONYMIZE, Level.FULL])
def test_a_mislabelled_file_with_phi_loses_it(level: Level, tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    _mislabelled(source, subject=31)
    assert read_header(source).implicit_vr
    declined = engine.plan(source, Options(level=level, key=KEY))
    assert not isinstance(declined, engine.Plan), "the engine declines a mislabelled file"
    out = tmp_path / "out"
    record = anonymize_file(source, out, Options(level=level, key=KEY))
    assert record.status is Status.WRITTEN, record.reason
    written = files_under(out)
    assert len(written) == 1
    data = written[0].read_bytes()
    planted = planted_values(31)
    for name in ("PatientName", "OperatorsName", "ReferringPhysicianName", "PerformingPhysicianName"):
        assert planted[name].encode() not in data, f"{name} survived"
    result = pydicom.dcmread(written[0])
    assert result.PatientName == ("Anon" if level is Level.ANONYMIZE else result.PatientID)


def test_a_truncated_mislabelled_file_is_still_truncated(tmp_path: Path) -> None:
    source = tmp_path / "in.dcm"
    data = _mislabelled(source, subject=32)
    source.write_bytes(data[:-100])
    with pytest.raises(InputError, match="truncated"):
        read_header(source)
