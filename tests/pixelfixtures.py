"""Images with burned-in fake PHI, drawn in real fonts (Debian's DejaVu), for the Clean Pixel Data tests.

Each fixture says where its identifying text and its labels are, so that tests can check the pixels: text
regions redacted, label regions and text-free frames unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless, generate_uid

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
MONO = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
XA_IMAGE = "1.2.840.10008.5.1.4.1.1.12.1"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"

# Fake PHI, in the header and burned into the pixels.
NAME = "Fakedoe^Janine"
PATIENT_ID = "FK83920471"
BIRTH = "19610307"
STUDY_DATE = "20240115"
INSTITUTION = "Fakeville Clinic"
# What must never be read in a released image (folded: lower case, no spaces).
PLANTED = ("fakedoe", "janine", "fk83920471", "83920471", "1961", "19610307", "15.01.2024", "20240115",
           "fakeville", "brightwater", "555-0147")
LABELS = ("4.2 cm", "GAIN 55")


def require_font() -> None:
    if not FONT.is_file():
        message = f"{FONT} is missing (apt-get install fonts-dejavu-core; scripts/test.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Fixture:
    """A written file and what is drawn where: (frame, x0, y0, x1, y1) regions of PHI text and of labels."""

    path: Path
    phi: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    labels: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    text_free_frames: list[int] = field(default_factory=list)


class Canvas:
    """Frames being drawn: text is rendered by Pillow in a real font, then written in the image's values."""

    def __init__(self, frames: np.ndarray[Any, Any]) -> None:
        self.frames = frames
        self.phi: list[tuple[int, int, int, int, int]] = []
        self.labels: list[tuple[int, int, int, int, int]] = []

    def text(self, frame: int, xy: tuple[int, int], text: str, value: Any, size: int = 14, phi: bool = True,
             font: Path = FONT) -> None:
        from PIL import Image, ImageDraw, ImageFont

        rows, cols = self.frames.shape[1:3]
        mask = Image.new("L", (cols, rows), 0)
        drawn = ImageDraw.Draw(mask)
        face = ImageFont.truetype(str(font), size)
        drawn.text(xy, text, fill=255, font=face)
        ink = np.asarray(mask) > 110
        self.frames[frame][ink] = value
        x0, y0, x1, y1 = drawn.textbbox(xy, text, font=face)
        (self.phi if phi else self.labels).append((frame, int(x0), int(y0), int(x1), int(y1)))


def speckle(rng: np.random.Generator, rows: int, cols: int, peak: int) -> np.ndarray[Any, Any]:
    """An ultrasound-like image: Rayleigh speckle in a fan-shaped sector, black around it."""
    y, x = np.mgrid[0:rows, 0:cols]
    apex = (cols / 2, -rows * 0.15)
    angle = np.degrees(np.arctan2(x - apex[0], y - apex[1]))
    radius = np.hypot(x - apex[0], y - apex[1])
    sector = (np.abs(angle) < 35) & (radius > rows * 0.3) & (radius < rows * 1.05)
    image = rng.rayleigh(peak / 4, (rows, cols)) * (0.6 + 0.4 * np.cos(radius / 9) ** 2)
    return np.where(sector, np.clip(image, 0, peak), 0)


def _dataset(sop_class: str, modality: str, rows: int, cols: int, **attributes: Any) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PATIENT_ID, BIRTH
    ds.StudyDate, ds.InstitutionName = STUDY_DATE, INSTITUTION
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _save(ds: Dataset, frames: np.ndarray[Any, Any], path: Path, rle: bool = False) -> None:
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    if rle:
        ds.compress(RLELossless, frames if len(frames) > 1 else frames[0], generate_instance_uid=False)
    else:
        ds.PixelData = frames.astype(frames.dtype.newbyteorder("<")).tobytes()
        ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def us_cine(path: Path, rle: bool = True) -> Fixture:
    """Multi-frame ultrasound, 8-bit: PHI on frames 0 and 2, frame 1 text-free, a measurement on frame 2."""
    rng = np.random.default_rng(13)
    frames = np.stack([speckle(rng, 320, 320, 200) for _ in range(3)]).astype(np.uint8)
    canvas = Canvas(frames)
    for frame in (0, 2):
        canvas.text(frame, (8, 6), "FAKEDOE^JANINE", 255)
        canvas.text(frame, (8, 26), f"ID {PATIENT_ID}", 255)
        canvas.text(frame, (200, 6), "15.01.2024", 255)
    canvas.text(2, (240, 292), "4.2 cm", 255, phi=False)
    canvas.text(0, (240, 292), "GAIN 55", 255, phi=False)
    ds = _dataset(US_MULTIFRAME, "US", 320, 320, BurnedInAnnotation="YES")
    _save(ds, frames, path, rle=rle)
    return Fixture(path, canvas.phi, canvas.labels, text_free_frames=[1])


def sc_rgb(path: Path) -> Fixture:
    """An RGB secondary capture whose header says NO burned-in text, with a name, an address and a phone."""
    rows, cols = 256, 384
    frames = np.zeros((1, rows, cols, 3), dtype=np.uint8)
    frames[0, :, :] = (24, 32, 64)  # a flat dark blue screen
    frames[0, 90:240, 40:340] = np.random.default_rng(5).integers(0, 160, (150, 300, 3), dtype=np.uint8)
    canvas = Canvas(frames)
    canvas.text(0, (10, 8), "Fakedoe, Janine", (255, 255, 255), size=16)
    canvas.text(0, (10, 32), "12 Brightwater Lane", (255, 255, 0), size=14)
    canvas.text(0, (220, 8), "555-0147", (255, 255, 255), size=14)
    canvas.text(0, (280, 60), "GAIN 55", (0, 255, 0), size=14, phi=False)
    ds = _dataset(SECONDARY_CAPTURE, "OT", rows, cols, BurnedInAnnotation="NO", ConversionType="WSD",
                  SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0)
    _save(ds, frames, path)
    return Fixture(path, canvas.phi, canvas.labels)


def xa16(path: Path) -> Fixture:
    """A 16-bit XA (12 bits stored) with the retired overlay form: a mark in bit 15 of the pixel data."""
    rng = np.random.default_rng(7)
    rows = cols = 256
    y, x = np.mgrid[0:rows, 0:cols]
    frames = (1200 + 900 * np.exp(-((x - 128) ** 2 + (y - 140) ** 2) / 5000)
              + rng.normal(0, 60, (rows, cols))).clip(0, 4000).astype(np.uint16)[None]
    canvas = Canvas(frames)
    canvas.text(0, (6, 6), "FAKEDOE^JANINE", 4095, font=MONO)
    canvas.text(0, (6, 230), "DOB 07/03/1961", 4095)
    canvas.text(0, (190, 230), "4.2 cm", 4095, phi=False)
    frames[0, 100:110, 100:200] |= 0x8000  # overlay plane at bit 15 (above BitsStored)
    ds = _dataset(XA_IMAGE, "XA", rows, cols, BitsAllocated=16, BitsStored=12, HighBit=11)
    ds.add_new(0x60000010, "US", rows)  # the retired overlay description: data in the pixel bits
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 15)
    _save(ds, frames, path)
    return Fixture(path, canvas.phi, canvas.labels)


def xa16_shifted(path: Path, signed: bool = False) -> Fixture:
    """A 16-bit XA whose 12 stored bits lie in bits 4 to 15 (HighBit 15, as PS3.5 allows), signed or not, with
    marks in the four bits below them (an overlay embedded at bit 2) and text drawn in the stored values."""
    rng = np.random.default_rng(5)
    rows = cols = 256
    y, x = np.mgrid[0:rows, 0:cols]
    values = (1200 + 900 * np.exp(-((x - 128) ** 2 + (y - 140) ** 2) / 5000)
              + rng.normal(0, 60, (rows, cols))).clip(0, 4000).astype(np.int32)[None]
    if signed:
        values -= 2048
    canvas = Canvas(values)
    canvas.text(0, (6, 6), "FAKEDOE^JANINE", 2047 if signed else 4095, font=MONO)
    canvas.text(0, (6, 230), "DOB 07/03/1961", 2047 if signed else 4095)
    canvas.text(0, (190, 230), "4.2 cm", 2047 if signed else 4095, phi=False)
    words = (values << 4).astype(np.int16 if signed else np.uint16)
    words[0, 100:110, 100:200] |= 0b0100  # the overlay, below the stored bits
    ds = _dataset(XA_IMAGE, "XA", rows, cols, BitsAllocated=16, BitsStored=12, HighBit=15,
                  PixelRepresentation=int(signed))
    ds.add_new(0x60000010, "US", rows)
    ds.add_new(0x60000011, "US", cols)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 2)
    _save(ds, words, path)
    return Fixture(path, canvas.phi, canvas.labels)


def mono1(path: Path) -> Fixture:
    """MONOCHROME1 (white is 0): dark text on a light film, 16 bits, as a CR secondary capture would be."""
    rng = np.random.default_rng(11)
    frames = np.clip(rng.normal(900, 40, (1, 256, 320)), 0, 1023).astype(np.uint16)
    canvas = Canvas(frames)
    canvas.text(0, (8, 8), "FAKEDOE^JANINE", 0)
    canvas.text(0, (8, 228), "FK83920471", 0)
    canvas.text(0, (40, 100), "JANINE", 0, size=40)  # large print: taller than an eighth of the image
    canvas.text(0, (250, 8), "L", 0, phi=False)
    ds = _dataset(SECONDARY_CAPTURE, "OT", 256, 320, PhotometricInterpretation="MONOCHROME1", BitsAllocated=16,
                  BitsStored=10, HighBit=9)
    _save(ds, frames, path)
    return Fixture(path, canvas.phi, canvas.labels)


def control(path: Path, **attributes: Any) -> Fixture:
    """A text-free ultrasound image: its pixel data must come out byte for byte."""
    frames = speckle(np.random.default_rng(3), 256, 256, 220).astype(np.uint8)[None]
    ds = _dataset(US_IMAGE, "US", 256, 256, **attributes)
    _save(ds, frames, path)
    return Fixture(path, text_free_frames=[0])


def sc_jpeg(path: Path) -> Fixture:
    """A lossy JPEG (baseline, YBR_FULL_422) secondary capture with a name: it cannot be re-encoded losslessly."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    frames = np.zeros((1, 256, 256, 3), dtype=np.uint8)
    frames[0] = (40, 40, 40)
    frames[0, 100:220, 30:230] = (90, 60, 30)
    canvas = Canvas(frames)
    canvas.text(0, (10, 10), "FAKEDOE^JANINE", (255, 255, 255), size=16)
    buffer = io.BytesIO()
    Image.fromarray(frames[0]).save(buffer, format="JPEG", quality=95)
    ds = _dataset(SECONDARY_CAPTURE, "OT", 256, 256, SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL_422",
                  PlanarConfiguration=0, LossyImageCompression="01")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return Fixture(path, canvas.phi, canvas.labels)


def thumbnail(text: str) -> bytes:
    """A JPEG picture of `text`, as a camera puts a thumbnail of its image into an Exif segment."""
    import io

    from PIL import Image, ImageDraw

    picture = Image.new("L", (8 * len(text) + 8, 20), 0)
    ImageDraw.Draw(picture).text((4, 4), text, fill=255)
    out = io.BytesIO()
    picture.save(out, format="JPEG")
    return out.getvalue()


def segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment."""
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def jpeg_with_thumbnail(path: Path, between_scans: bool) -> bytes:
    """A text-free progressive JPEG secondary capture with a thumbnail of the name: a JPEG one in an Exif segment
    before the first scan, or JFIF's uncompressed one (RGB, black and white: no end marker in it by chance) between
    the first two scans; the thumbnail's bytes."""
    import io

    from PIL import Image, ImageDraw
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    text = NAME.replace("^", " ")
    if between_scans:
        drawn = Image.new("1", (8 * len(text) + 8, 20), 0)
        ImageDraw.Draw(drawn).text((4, 4), text, fill=1)
        picture = drawn.convert("RGB").tobytes()
        inserted = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01" + bytes(drawn.size) + picture)
    else:
        picture = thumbnail(text)
        inserted = segment(0xE1, b"Exif\x00\x00" + picture)
    image = io.BytesIO()
    Image.fromarray(speckle(np.random.default_rng(5), 64, 64, 200).astype(np.uint8)).save(
        image, format="JPEG", progressive=True)
    jpeg = image.getvalue()
    at = jpeg.index(b"\xff\xda", jpeg.index(b"\xff\xda") + 2) if between_scans else 2  # (no 0xFF 0xDA in coded data)
    ds = _dataset(SECONDARY_CAPTURE, "OT", 64, 64, LossyImageCompression="01")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg[:at] + inserted + jpeg[at:]])
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return picture


def faint_bar(path: Path) -> Fixture:
    """16-bit, a bright image under a dark header bar whose text is 60 levels above the bar in a 0-4000 range:
    about one grey level in a window over the whole frame, plain in the stored values."""
    rng = np.random.default_rng(17)
    rows, cols = 256, 320
    frames = np.zeros((1, rows, cols), dtype=np.uint16)
    frames[0, 60:, :] = np.clip(rng.normal(2500, 700, (rows - 60, cols)), 0, 4000).astype(np.uint16)
    frames[0, :40, :] = 100
    canvas = Canvas(frames)
    canvas.text(0, (8, 10), "FAKEDOE^JANINE  15.01.2024", 160)
    ds = _dataset(SECONDARY_CAPTURE, "OT", rows, cols, BitsAllocated=16, BitsStored=12, HighBit=11)
    _save(ds, frames, path)
    return Fixture(path, canvas.phi, canvas.labels)
