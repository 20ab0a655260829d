"""Private elements that neuroimaging needs, kept at `full` (PS3.15 Retain Safe Private Option, 113111).

Every other private element is removed. Each entry names its private creator, group and element byte (the low
byte of the element number, whatever block the creator reserved), and why converters need it. These elements
hold acquisition parameters, not identifiers; what they hold is still checked by the residual check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SafePrivate:
    creator: str
    group: int
    element: int  # low byte
    name: str
    why: str

    @property
    def tag_text(self) -> str:
        return f"({self.group:04X},xx{self.element:02X})"


_CSA = "SIEMENS CSA HEADER"
_SMR = "SIEMENS MR HEADER"
_GE_ACQ = "GEMS_ACQU_01"
_GE_PARM = "GEMS_PARM_01"
_GE_RELA = "GEMS_RELA_01"
_PH = "Philips MR Imaging DD 001"

SAFE_PRIVATE: tuple[SafePrivate, ...] = (
    SafePrivate(_CSA, 0x0029, 0x08, "CSA Image Header Type", "identifies the CSA image header format"),
    SafePrivate(_CSA, 0x0029, 0x09, "CSA Image Header Version", "CSA image header format version"),
    SafePrivate(_CSA, 0x0029, 0x10, "CSA Image Header Info", "slice timing, mosaic, b-matrix, phase encoding"),
    SafePrivate(_CSA, 0x0029, 0x18, "CSA Series Header Type", "identifies the CSA series header format"),
    SafePrivate(_CSA, 0x0029, 0x19, "CSA Series Header Version", "CSA series header format version"),
    SafePrivate(_CSA, 0x0029, 0x20, "CSA Series Header Info", "protocol (ASCCONV): echo spacing, acceleration"),
    SafePrivate(_SMR, 0x0019, 0x08, "CSA Image Header Type", "image type for Siemens MR"),
    SafePrivate(_SMR, 0x0019, 0x09, "CSA Image Header Version", "header version for Siemens MR"),
    SafePrivate(_SMR, 0x0019, 0x0A, "Number Of Images In Mosaic", "unmosaicing EPI"),
    SafePrivate(_SMR, 0x0019, 0x0B, "Slice Measurement Duration", "slice timing"),
    SafePrivate(_SMR, 0x0019, 0x0C, "B Value", "diffusion b-value"),
    SafePrivate(_SMR, 0x0019, 0x0D, "Diffusion Directionality", "diffusion encoding type"),
    SafePrivate(_SMR, 0x0019, 0x0E, "Diffusion Gradient Direction", "diffusion gradient vector"),
    SafePrivate(_SMR, 0x0019, 0x0F, "Gradient Mode", "gradient mode"),
    SafePrivate(_SMR, 0x0019, 0x18, "Real Dwell Time", "effective echo spacing"),
    SafePrivate(_SMR, 0x0019, 0x27, "B Matrix", "diffusion b-matrix"),
    SafePrivate(_SMR, 0x0019, 0x28, "Bandwidth Per Pixel Phase Encode", "total readout time"),
    SafePrivate(_SMR, 0x0019, 0x29, "Mosaic Ref Acq Times", "slice timing of mosaics"),
    SafePrivate(_SMR, 0x0051, 0x0E, "Image Orientation Text", "slice orientation label (dcm2niix)"),
    SafePrivate(_SMR, 0x0051, 0x0F, "Coil String", "receive coil (dcm2niix CoilString)"),
    SafePrivate(_SMR, 0x0051, 0x11, "PAT Mode Text", "parallel imaging mode (dcm2niix BIDS acq- guess)"),
    SafePrivate(_GE_ACQ, 0x0019, 0xBB, "User Data 20 (gradient X)", "GE diffusion gradient direction"),
    SafePrivate(_GE_ACQ, 0x0019, 0xBC, "User Data 21 (gradient Y)", "GE diffusion gradient direction"),
    SafePrivate(_GE_ACQ, 0x0019, 0xBD, "User Data 22 (gradient Z)", "GE diffusion gradient direction"),
    SafePrivate(_GE_PARM, 0x0043, 0x39, "Slop Int 6-9", "GE diffusion b-value"),
    SafePrivate(_GE_PARM, 0x0043, 0x2C, "Effective Echo Spacing", "GE distortion correction"),
    SafePrivate(_GE_PARM, 0x0043, 0x83, "ASSET R Factors", "GE parallel imaging acceleration"),
    SafePrivate(_GE_RELA, 0x0021, 0x5E, "RTIA Timer", "GE slice timing"),
    SafePrivate(_PH, 0x2001, 0x03, "Diffusion B-Factor", "Philips diffusion b-value"),
    SafePrivate(_PH, 0x2001, 0x04, "Diffusion Direction", "Philips diffusion direction"),
    SafePrivate(_PH, 0x2005, 0x0D, "Scale Intercept", "Philips real-world intensity"),
    SafePrivate(_PH, 0x2005, 0x0E, "Scale Slope", "Philips real-world intensity"),
    SafePrivate(_PH, 0x2005, 0xB0, "Diffusion Direction RL", "Philips diffusion gradient vector"),
    SafePrivate(_PH, 0x2005, 0xB1, "Diffusion Direction AP", "Philips diffusion gradient vector"),
    SafePrivate(_PH, 0x2005, 0xB2, "Diffusion Direction FH", "Philips diffusion gradient vector"),
)

_INDEX = {(s.creator.upper(), s.group, s.element): s for s in SAFE_PRIVATE}


def find_safe(creator: str, group: int, element_byte: int) -> SafePrivate | None:
    """The allow-list entry for a private element, matched on creator (case and padding ignored)."""
    return _INDEX.get((creator.strip().upper(), group, element_byte))
