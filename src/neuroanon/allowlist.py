"""Private elements that converters need, kept at `full` (PS3.15 Retain Safe Private Option, 113111).

Every other private element is removed. The table below is derived from what dcm2niix (console/nii_dicom.cpp,
nii_dicom_batch.cpp) and nibabel (nicom/csareader.py, dicomwrappers.py) read for each vendor: each row names the
private creator, the group, the element byte (the low byte of the element number, whatever block the creator
reserved), what the element means, which converter reads it, and why keeping it is safe.

A creator matches only when it is exactly the vendor's string; PS3.5 allows trailing spaces as padding and nothing
else, so a case-folded or leading-space lookalike is another creator and its elements are removed.

How a kept value is cleaned depends on its kind:
- `csa`: a Siemens CSA header, kept only when it parses as one (CSA1 or CSA2 "SV10" layout); what the profile
  removes is blanked inside it and its UIDs are remapped, with every length and item count kept (see csa.py);
- `protocol`: Siemens XA protocol: a CSA header (cleaned as one) or plain ASCCONV / XProtocol text, cleaned the
  same way as the protocol inside a CSA header;
- `value`: numbers, codes and short technical text; cut of this file's identifying values like any kept value; a
  number row's value written as text must be numbers, or it is removed (`holds_a_number`);
- `sequence`: a private sequence, kept and walked: its items keep the elements the level keeps (public elements by
  the profile, private ones by this table) and lose all others.
- `pdb`: GE's Protocol Data Block, gzip-compressed protocol text: rebuilt from the lines dcm2niix reads for slice
  timing (slice order, multiband factor, group delay), each of its key's shape (see gepdb.py).
Every kept value is then searched again by the residual check.

Deliberately not kept, though a converter reads them:
- elements whose creator an earlier de-identification overwrote (e.g. "Anon"): without the creator nothing proves
  what the element is, though dcm2niix reads some Siemens elements by fixed tag (CoilString, ImageOrientationText).
Canon/Toshiba, Hitachi/Fujifilm and Bruker MR files give dcm2niix what it needs in public attributes (diffusion,
enhanced multi-frame functional groups, phase encoding); none of their private elements is read, so none is kept.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Final, Literal

from pydicom.datadict import private_dictionary_VR

Kind = Literal["value", "csa", "protocol", "sequence", "pdb"]


@dataclass(frozen=True)
class SafePrivate:
    creator: str
    group: int
    element: int  # low byte
    name: str
    use: str  # what converters take from it
    readers: str  # which converter reads it
    safe: str  # why keeping it releases no identity
    kind: Kind = "value"

    @property
    def tag_text(self) -> str:
        return f"({self.group:04X},xx{self.element:02X})"

    @property
    def why(self) -> str:
        """One line for `explain`: what it gives which converter, and how it is kept."""
        return f"{self.use} ({self.readers}); {_HOW[self.kind]}"


_HOW: Final = {
    "value": "kept, cut of this file's identifying values",
    "csa": "kept only if it parses as a CSA header, cleaned in place",
    "protocol": "protocol cleaned in place",
    "sequence": "kept and walked: its items keep only what the level keeps",
    "pdb": "rebuilt from the lines dcm2niix reads for slice timing: small numbers and fixed words",
}


# Why each kind of value is safe to keep (one sentence each, shared by the rows).
_NUMBER: Final = "an acquisition parameter (number or enumerated code): no person, place, date or device identity"
_CODE: Final = ("a short technical code string written by the scanner software; cleaned of this file's identifying "
                 "values")
_CSA: Final = ("acquisition parameters in the CSA layout; kept only when it parses as CSA, protocol and series names, "
               "patient, station, institution and serial values blanked, UIDs remapped")
_PROTOCOL: Final = ("protocol text (ASCCONV); protocol and series names, patient, station, institution and serial "
                    "values blanked, UIDs remapped")
_PDB: Final = ("protocol text rebuilt from the slice order, view order, slices, multiband factor, group delay and "
               "imaging options that choose the slice timing: small numbers and fixed words, none of this file's "
               "identifying values")
_SEQUENCE: Final = "a private functional-group sequence: walked, its items keep only what the level keeps"

_D: Final = "dcm2niix"
_DN: Final = "dcm2niix, nibabel"

_CSA_H: Final = "SIEMENS CSA HEADER"
_SMR: Final = "SIEMENS MR HEADER"
_SDS: Final = "SIEMENS MR SDS 01"
_SDI: Final = "SIEMENS MR SDI 02"
_GE_ACQ: Final = "GEMS_ACQU_01"
_GE_RELA: Final = "GEMS_RELA_01"
_GE_PARM: Final = "GEMS_PARM_01"
_GE_SERS: Final = "GEMS_SERS_01"
_GE_IMAG: Final = "GEMS_IMAG_01"
_GE_PETD: Final = "GEMS_PETD_01"
_PH_IMG: Final = "Philips Imaging DD 001"
_PH_MR: Final = "Philips MR Imaging DD 001"
_PH_MR2: Final = "Philips MR Imaging DD 002"
_PH_MR5: Final = "Philips MR Imaging DD 005"
_PH_MR6: Final = "Philips MR Imaging DD 006"
_UIH: Final = "Image Private Header"


def _row(creator: str, group: int, element: int, name: str, use: str, readers: str = _D, safe: str = _NUMBER,
         kind: Kind = "value") -> SafePrivate:
    return SafePrivate(creator, group, element, name, use, readers, safe, kind)


SAFE_PRIVATE: Final[tuple[SafePrivate, ...]] = (
    # Siemens classic and mosaic (VB/VD/VE): CSA headers and the SIEMENS MR HEADER elements
    _row(_CSA_H, 0x0029, 0x08, "CSA Image Header Type", "names the CSA image header format", _DN, _CODE),
    _row(_CSA_H, 0x0029, 0x09, "CSA Image Header Version", "CSA image header format version", _DN, _CODE),
    _row(_CSA_H, 0x0029, 0x10, "CSA Image Header Info", "slice timing, mosaic, b-matrix, phase encoding", _DN, _CSA,
         "csa"),
    _row(_CSA_H, 0x0029, 0x18, "CSA Series Header Type", "names the CSA series header format", _DN, _CODE),
    _row(_CSA_H, 0x0029, 0x19, "CSA Series Header Version", "CSA series header format version", _DN, _CODE),
    _row(_CSA_H, 0x0029, 0x20, "CSA Series Header Info", "protocol (ASCCONV): echo spacing, acceleration, shims",
         _DN, _CSA, "csa"),
    _row(_SMR, 0x0019, 0x08, "CSA Image Header Type", "image type for Siemens MR", _D, _CODE),
    _row(_SMR, 0x0019, 0x09, "CSA Image Header Version", "header version for Siemens MR", _D, _CODE),
    _row(_SMR, 0x0019, 0x0A, "Number Of Images In Mosaic", "unmosaicing EPI", _DN),
    _row(_SMR, 0x0019, 0x0B, "Slice Measurement Duration", "slice timing"),
    _row(_SMR, 0x0019, 0x0C, "B Value", "diffusion b-value", _DN),
    _row(_SMR, 0x0019, 0x0D, "Diffusion Directionality", "diffusion encoding type", _DN, _CODE),
    _row(_SMR, 0x0019, 0x0E, "Diffusion Gradient Direction", "diffusion gradient vector", _DN),
    _row(_SMR, 0x0019, 0x0F, "Gradient Mode", "gradient mode", _D, _CODE),
    _row(_SMR, 0x0019, 0x14, "Ima Rel Table Position", "table position (TablePosition)"),
    _row(_SMR, 0x0019, 0x18, "Real Dwell Time", "effective echo spacing, dwell time"),
    _row(_SMR, 0x0019, 0x27, "B Matrix", "diffusion b-matrix", _DN),
    _row(_SMR, 0x0019, 0x28, "Bandwidth Per Pixel Phase Encode", "total readout time"),
    _row(_SMR, 0x0019, 0x29, "Mosaic Ref Acq Times", "slice timing of mosaics"),
    _row(_SMR, 0x0051, 0x0B, "Acquisition Matrix Text", "acquisition matrix (AcquisitionMatrixPE)", _D, _CODE),
    _row(_SMR, 0x0051, 0x0E, "Image Orientation Text", "slice orientation label", _D, _CODE),
    _row(_SMR, 0x0051, 0x0F, "Coil String", "receive coil (CoilString)", _D, _CODE),
    _row(_SMR, 0x0051, 0x11, "PAT Mode Text", "parallel imaging mode (acq- guess)", _D, _CODE),
    # Siemens XA (enhanced): the SDS (shared) and SDI (per-frame) blocks and their functional-group sequences
    _row(_SDS, 0x0021, 0x05, "Rel Table Position", "table position (TablePosition)"),
    _row(_SDS, 0x0021, 0x09, "PAT Mode Text", "parallel imaging mode", _D, _CODE),
    _row(_SDS, 0x0021, 0x19, "Protocol (MrPhoenixProtocol)", "ASCCONV protocol: echo spacing, acceleration, shims",
         _D, _PROTOCOL, "protocol"),
    _row(_SDS, 0x0021, 0x5A, "Scanning Sequence", "ScanningSequence", _D, _CODE),
    _row(_SDS, 0x0021, 0x5B, "Sequence Variant", "SequenceVariant", _D, _CODE),
    _row(_SDS, 0x0021, 0x5C, "Scan Options", "ScanOptions", _D, _CODE),
    _row(_SDS, 0x0021, 0xFE, "Siemens MR SDS Sequence", "shared functional group of XA files", _D, _SEQUENCE,
         "sequence"),
    _row(_SDI, 0x0021, 0x04, "Time After Start", "slice timing"),
    _row(_SDI, 0x0021, 0x06, "ICE Dims", "volume and echo indices", _D, _CODE),
    _row(_SDI, 0x0021, 0x1C, "Phase Encoding Direction Positive", "phase encoding polarity"),
    _row(_SDI, 0x0021, 0x42, "Real Dwell Time", "effective echo spacing"),
    _row(_SDI, 0x0021, 0x4F, "Coil Elements", "receive coil elements", _D, _CODE),
    _row(_SDI, 0x0021, 0x53, "Bandwidth Per Pixel Phase Encode", "total readout time"),
    _row(_SDI, 0x0021, 0x58, "Acquisition Matrix Text", "acquisition matrix", _D, _CODE),
    _row(_SDI, 0x0021, 0x75, "Image Type Text", "image type (magnitude, phase)", _D, _CODE),
    _row(_SDI, 0x0021, 0x76, "Deep Learning Text", "reconstruction details", _D, _CODE),
    _row(_SDI, 0x0021, 0x8A, "Frame Number In Series", "frame order"),
    _row(_SDI, 0x0021, 0x8E, "ICE Dims Long", "volume and echo indices", _D, _CODE),
    _row(_SDI, 0x0021, 0xFE, "Siemens MR SDI Sequence", "per-frame functional group of XA files", _D, _SEQUENCE,
         "sequence"),
    # GE
    _row(_GE_ACQ, 0x0019, 0x17, "Series Plane", "slice orientation"),
    _row(_GE_ACQ, 0x0019, 0x1B, "Last Scan Location", "slice direction"),
    _row(_GE_ACQ, 0x0019, 0x5A, "Acquisition Duration", "AcquisitionDuration"),
    _row(_GE_ACQ, 0x0019, 0x7F, "Table Delta", "table position"),
    _row(_GE_ACQ, 0x0019, 0x9C, "Pulse Sequence Name", "PulseSequenceName (epi, epiRT)", _D, _CODE),
    _row(_GE_ACQ, 0x0019, 0x9E, "Internal Pulse Sequence Name", "InternalPulseSequenceName", _D, _CODE),
    _row(_GE_ACQ, 0x0019, 0xA2, "Raw Data Run Number", "run number of fMRI series"),
    _row(_GE_ACQ, 0x0019, 0xA9, "Max Echo Number", "multi-echo series"),
    _row(_GE_ACQ, 0x0019, 0xB2, "User Data 11", "diffusion tensor file mode"),
    _row(_GE_ACQ, 0x0019, 0xB3, "User Data 12", "diffusion gradient cycling"),
    _row(_GE_ACQ, 0x0019, 0xB6, "User Data 15", "diffusion gradient derating"),
    _row(_GE_ACQ, 0x0019, 0xBB, "User Data 20 (gradient X)", "GE diffusion gradient direction"),
    _row(_GE_ACQ, 0x0019, 0xBC, "User Data 21 (gradient Y)", "GE diffusion gradient direction"),
    _row(_GE_ACQ, 0x0019, 0xBD, "User Data 22 (gradient Z)", "GE diffusion gradient direction"),
    _row(_GE_ACQ, 0x0019, 0xDF, "User Data 23 (diffusion T2 count)", "number of b=0 volumes"),
    _row(_GE_ACQ, 0x0019, 0xE0, "User Data 24 (diffusion directions)", "number of diffusion directions"),
    _row(_GE_ACQ, 0x0019, 0xE2, "Velocity Encode Scale", "phase contrast scaling"),
    _row(_GE_RELA, 0x0021, 0x4F, "Locations In Acquisition", "slices per volume"),
    _row(_GE_RELA, 0x0021, 0x5E, "RTIA Timer", "GE slice timing"),
    _row(_GE_SERS, 0x0025, 0x1B, "Protocol Data Block (compressed)", "SliceTiming (slice order, multiband, group "
         "delay)", _D, _PDB, "pdb"),
    _row(_GE_IMAG, 0x0027, 0x60, "Image Dimension X (points per arm)", "NumberOfPointsPerArm (3D spiral, ASL)"),
    _row(_GE_IMAG, 0x0027, 0x61, "Image Dimension Y (arms)", "NumberOfArms (3D spiral, ASL)"),
    _row(_GE_IMAG, 0x0027, 0x62, "Number Of Excitations", "NumberOfExcitations (ASL quantification)"),
    _row(_GE_PARM, 0x0043, 0x02, "Shim Gradient X", "ShimSetting"),
    _row(_GE_PARM, 0x0043, 0x03, "Shim Gradient Y", "ShimSetting"),
    _row(_GE_PARM, 0x0043, 0x04, "Shim Gradient Z", "ShimSetting"),
    _row(_GE_PARM, 0x0043, 0x2A, "User Define Data", "phase encoding polarity, slice order (binary header)",
         _D, "a binary block of scan parameters; cut of this file's identifying values like any kept value"),
    _row(_GE_PARM, 0x0043, 0x2C, "Effective Echo Spacing", "distortion correction"),
    _row(_GE_PARM, 0x0043, 0x2F, "Image Type", "magnitude, phase, real, imaginary"),
    _row(_GE_PARM, 0x0043, 0x30, "Vas Collapse Flag", "image type of angiography"),
    _row(_GE_PARM, 0x0043, 0x39, "Slop Int 6-9", "GE diffusion b-value"),
    _row(_GE_PARM, 0x0043, 0x7C, "EPI RT Group Delay", "slice timing of epiRT"),
    _row(_GE_PARM, 0x0043, 0x83, "ASSET R Factors", "parallel imaging acceleration"),
    _row(_GE_PARM, 0x0043, 0x95, "Prescan Reuse String", "prescan reuse (fieldmap grouping)", _D, _CODE),
    _row(_GE_PARM, 0x0043, 0xA3, "ASL Contrast Technique", "arterial spin labelling", _D, _CODE),
    _row(_GE_PARM, 0x0043, 0xA4, "ASL Labeling Technique", "arterial spin labelling", _D, _CODE),
    _row(_GE_PARM, 0x0043, 0xA5, "Duration Label Pulse", "arterial spin labelling"),
    _row(_GE_PARM, 0x0043, 0xB2, "MR Table Position Information", "table position", _D, _CODE),
    _row(_GE_PARM, 0x0043, 0xB6, "Multiband Parameters", "multiband factor", _D, _CODE),
    _row(_GE_PARM, 0x0043, 0xB7, "Compressed Sensing Parameters", "compressed sensing factor", _D, _CODE),
    _row(_GE_PARM, 0x0043, 0xCA, "Deep Learning Parameters", "reconstruction details", _D, _CODE),
    _row(_GE_PETD, 0x0009, 0x3A, "PET Pre-Injection Volume", "InjectedVolume"),
    _row(_GE_PETD, 0x0009, 0x8F, "PET BP Filter Cutoff", "ReconFilterSize"),
    # Philips classic and enhanced
    _row(_PH_IMG, 0x2001, 0x03, "Diffusion B-Factor", "diffusion b-value"),
    _row(_PH_IMG, 0x2001, 0x04, "Diffusion Direction", "diffusion direction code", _D, _CODE),
    _row(_PH_IMG, 0x2001, 0x08, "Phase Number", "cardiac phase / volume index"),
    _row(_PH_IMG, 0x2001, 0x0A, "Slice Number MR", "slice order"),
    _row(_PH_IMG, 0x2001, 0x0B, "Slice Orientation", "slice orientation", _D, _CODE),
    _row(_PH_IMG, 0x2001, 0x10, "Cardiac Synchronization", "cardiac gating", _D, _CODE),
    _row(_PH_IMG, 0x2001, 0x13, "EPI Factor", "echo spacing estimate"),
    _row(_PH_IMG, 0x2001, 0x18, "Number Of Slices MR", "slices per volume"),
    _row(_PH_IMG, 0x2001, 0x19, "Partial Matrix Scanned", "partial Fourier", _D, _CODE),
    _row(_PH_IMG, 0x2001, 0x1B, "Prepulse Delay", "inversion / labelling delay"),
    _row(_PH_IMG, 0x2001, 0x1C, "Prepulse Type", "prepulse type", _D, _CODE),
    _row(_PH_IMG, 0x2001, 0x1F, "Respiration Synchronization", "respiratory gating", _D, _CODE),
    _row(_PH_IMG, 0x2001, 0x22, "Water Fat Shift", "echo spacing and total readout time (distortion correction)"),
    _row(_PH_IMG, 0x2001, 0x5F, "Stack Sequence", "stack geometry and table position (TablePosition)", _D,
         _SEQUENCE, "sequence"),
    _row(_PH_IMG, 0x2001, 0x81, "Number Of Dynamic Scans", "volumes of fMRI series"),
    _row(_PH_MR, 0x2005, 0x0D, "Scale Intercept", "Philips floating-point (real-world) intensity", _DN),
    _row(_PH_MR, 0x2005, 0x0E, "Scale Slope", "Philips floating-point (real-world) intensity", _DN),
    _row(_PH_MR, 0x2005, 0x30, "Repetition Times", "TR of multi-TR series"),
    _row(_PH_MR, 0x2005, 0x63, "fMRI Status Indication", "fMRI volume number"),
    _row(_PH_MR, 0x2005, 0x6F, "Acquisition Type", "2D or 3D acquisition", _D, _CODE),
    _row(_PH_MR, 0x2005, 0x71, "Stack Angulation AP", "stack geometry"),
    _row(_PH_MR, 0x2005, 0x72, "Stack Angulation FH", "stack geometry"),
    _row(_PH_MR, 0x2005, 0x73, "Stack Angulation RL", "stack geometry"),
    _row(_PH_MR, 0x2005, 0x78, "Stack Offcentre AP", "stack geometry"),
    _row(_PH_MR, 0x2005, 0x79, "Stack Offcentre FH", "stack geometry"),
    _row(_PH_MR, 0x2005, 0x7A, "Stack Offcentre RL", "stack geometry"),
    _row(_PH_MR, 0x2005, 0xA0, "Dynamic Scan Begin Time", "volume timing (seconds from scan start)"),
    _row(_PH_MR, 0x2005, 0xB0, "Diffusion Direction RL", "Philips diffusion gradient vector"),
    _row(_PH_MR, 0x2005, 0xB1, "Diffusion Direction AP", "Philips diffusion gradient vector"),
    _row(_PH_MR, 0x2005, 0xB2, "Diffusion Direction FH", "Philips diffusion gradient vector"),
    _row(_PH_MR2, 0x2005, 0x10, "Deep Learning", "reconstruction details", _D, _CODE),
    _row(_PH_MR5, 0x2005, 0x0F, "Private Per-Frame Sequence", "per-frame scaling, b-values and timing of enhanced "
         "files (PhilipsRescaleSlope, PhilipsScaleSlope)", _D, _SEQUENCE, "sequence"),
    _row(_PH_MR5, 0x2005, 0x12, "Diffusion B-Value Number", "diffusion volume order"),
    _row(_PH_MR5, 0x2005, 0x13, "Gradient Orientation Number", "diffusion volume order"),
    _row(_PH_MR5, 0x2005, 0x29, "Image Label Type", "ASL label or control", _D, _CODE),
    _row(_PH_MR5, 0x2005, 0x3C, "Stack Table Position Long", "table position"),
    _row(_PH_MR6, 0x2005, 0x96, "MR Image Diff Volume Number", "diffusion volume order (software R5.6 and later)"),
    # United Imaging (UIH)
    _row(_UIH, 0x0065, 0x05, "Phase Encoding Direction Displayed", "phase encoding direction", _D, _CODE),
    _row(_UIH, 0x0065, 0x09, "Diffusion B-Value", "diffusion b-value"),
    _row(_UIH, 0x0065, 0x0D, "Parallel Information", "parallel imaging factor", _D, _CODE),
    _row(_UIH, 0x0065, 0x37, "Diffusion Gradient Direction", "diffusion gradient vector"),
    _row(_UIH, 0x0065, 0x50, "Number Of Images In Grid", "unmosaicing"),
    _row(_UIH, 0x0065, 0x51, "VFrame Sequence", "each grid (mosaic) slice's position and time: geometry, slice "
         "timing", _D, _SEQUENCE, "sequence"),
    _row(_UIH, 0x0065, 0x58, "Phase Encoding Direction Positive", "phase encoding polarity"),
)

_INDEX: Final = {(s.creator, s.group, s.element): s for s in SAFE_PRIVATE}


def creator_name(value: bytes | str) -> str | None:
    """A private creator as written, its trailing padding removed (spaces; or NULs, against the standard's rule,
    as some writers pad: found from outside, every Siemens private element of such a file was dropped, and what
    dcm2niix reads from them with it); None if it is not one LO value."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if "\\" in value:
        return None
    return value.rstrip(" \x00")


# Binary numbers, and number text: each value a decimal number (DS, IS), padded (found from outside: a phone
# number or an ID written with dashes, "555-0142", passed as number text, a character set of digits and signs).
_BINARY_VRS: Final = frozenset({"FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "OB", "OD", "OF", "OL", "OV", "OW"})
_ONE_NUMBER: Final = rb"[ \x00]*(?:[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)?[ \x00]*"
_NUMBER_TEXT: Final = re.compile(rb"%s(?:\\%s)*" % (_ONE_NUMBER, _ONE_NUMBER))
# Binary values that are text all the same: printable ASCII (and padding) with a word in it.
_PRINTABLE: Final = re.compile(rb"[\x20-\x7e\x00]*")
_TEXT_BYTES: Final = bytes(range(0x20, 0x7F)) + b"\x00"
# (letters in a row, or in UTF-16: found from outside, a name in UTF-16 in Philips' Scale Slope was kept. A
# float's four bytes never hold five; eight bytes of floats, by a chance of about one in thirty thousand, unless
# they repeat one letter: `_has_word`.)
_WORD: Final = re.compile(rb"[A-Za-z]{5,}|(?:[A-Za-z]\x00){5,}|(?:\x00[A-Za-z]){5,}")
_SHORT_WORD: Final = re.compile(rb"[A-Za-z]{3}|(?:[A-Za-z]\x00){3}|(?:\x00[A-Za-z]){3}")


def holds_a_number(safe: SafePrivate, vr: str, value: bytes, little: bool = True) -> bool:
    """Whether a value kept by a number row is one: written as text (by its VR, or the private dictionary's for a
    UN or implicit VR value, or for a binary VR where the dictionary names number text), it must be number text
    (free text in Philips' Scale Slope is not kept); binary, or of a VR nothing names, it is taken as numbers
    unless its bytes are text: all printable with a word of five letters, or of three where its floats are none a
    scanner writes ("Lee" as a float is 9e-39), or mostly printable with a word of five letters and no floats a
    scanner writes. A float's four bytes read as three letters for about one value in two hundred (measured:
    0.8019 is "RIM?"), and as digits text for one in ten thousand (found from outside: a Philips Scale Slope of
    4.177e-05, "22/8", went): those are kept. Digits text in a binary number is kept too: there only the file's own
    values are found, by the residual check. Floats are read in the file's byte order (`little`: found from
    outside, big endian floats read as little endian ones were not what a scanner writes, and a Scale Slope went)."""
    if safe.safe != _NUMBER:
        return True
    dictionary = _DICTIONARY_VRS[safe]
    if vr in ("", "UN") or (dictionary and dictionary not in _BINARY_VRS):
        # (found from outside: Siemens' B Value, IS, as OB with a control byte before its text, was kept whole)
        vr = dictionary
    if not vr or vr in _BINARY_VRS:
        if len(value) % max(_WIDTHS.get(vr, 1), _WIDTHS.get(dictionary, 1)):  # (powers of two: the larger is both)
            return False  # (bytes that are no whole numbers: found from outside, a reader then read no file at all)
        floats = vr if vr in _FLOATS else dictionary
        if _PRINTABLE.fullmatch(value) is not None:
            return _SHORT_WORD.search(value) is None or (not _has_word(value)
                                                         and _plausible(floats, value, little))
        # a word in text with a control byte or two (found from outside: kept as numbers), unless its bytes are
        # floats a scanner writes (as the floats' bytes are, with a word in them, one time in a few thousand)
        return (not _has_word(value) or not _mostly_text(value)
                or any(_plausible(form, value, little) for form in _FLOAT_FORMS.get(floats, ())))
    return _NUMBER_TEXT.fullmatch(value) is not None


_WIDTHS: Final = {"FL": 4, "FD": 8, "SL": 4, "SS": 2, "UL": 4, "US": 2, "SV": 8, "UV": 8, "OD": 8, "OF": 4, "OL": 4,
                   "OV": 8, "OW": 2}  # (the bytes of each number)
_FLOAT_FORMS: Final = {"FL": ("FL",), "FD": ("FD",), "": ("FL", "FD")}  # (the floats a value of no known VR may be)


def _has_word(value: bytes) -> bool:
    """Whether `value` holds five letters or more in a row (in ASCII or UTF-16) once each run of one letter three
    times or more counts as one: a float's bytes may repeat one letter (34.8 as a double is "ffffffA@", 372.9
    "fffffNw@", a third "UUUUUUU?"), a word's seldom do (found on review: such Siemens bandwidths and slice times
    went, about one double of one decimal in ten; found from outside: a rule of one letter in two let "PIPPA" and
    "SMITHXXXXXXXXXXX" through, and leaving such runs out "JONESSSS" and "MARYXXXX")."""
    return any(len(_REPEATED.sub(rb"\1", run.group().replace(b"\x00", b"").lower())) >= 5
               for run in _WORD.finditer(value))


_REPEATED: Final = re.compile(rb"(.)\1\1+")  # (one letter three times or more in a row)


def _mostly_text(value: bytes) -> bool:
    """Whether three bytes in four are printable ASCII or NUL (text in ASCII or UTF-16), as numbers' bytes are
    not (of random bytes, 96 in 256)."""
    return 4 * (len(value) - len(value.translate(None, _TEXT_BYTES))) >= 3 * len(value)


_FLOATS: Final = {"FL": "f", "FD": "d"}


def _plausible(vr: str, value: bytes, little: bool = True) -> bool:
    """Whether a value read as floats of `vr` (in the byte order `little` says) is numbers a scanner writes: each
    zero, or finite and between 1e-30 and 1e30 in size; any other VR's bytes are numbers whatever they are."""
    float_form = _FLOATS.get(vr)
    if float_form is None:
        return True
    form = ("<" if little else ">") + float_form
    size = struct.calcsize(form)
    if not value or len(value) % size:
        return False
    return all(x == 0 or 1e-30 < abs(x) < 1e30 for (x,) in struct.iter_unpack(form, value))


def _dictionary_vr(safe: SafePrivate) -> str:
    try:
        return str(private_dictionary_VR(safe.group << 16 | 0x1000 | safe.element, safe.creator))
    except KeyError:
        return ""


_DICTIONARY_VRS: Final = {safe: _dictionary_vr(safe) for safe in SAFE_PRIVATE}  # looked up once, not per element


def find_safe(creator: str, group: int, element_byte: int) -> SafePrivate | None:
    """The allow-list entry for a private element; the creator must match exactly (only trailing padding aside)."""
    return _INDEX.get((creator.rstrip(" \x00"), group, element_byte))
