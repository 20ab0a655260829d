"""Standard attributes that PS3.15 Table E.1-1 does not list, yet `full` keeps or must keep present.

At full an attribute outside the table is kept only when it is technical (rules.unlisted_action): a non-text
VR, or a text attribute reviewed and listed here. This is that reviewed list, as data, each entry with its
reason. It was derived from what converters read (dcm2niix's DICOM tags for NIfTI headers and BIDS sidecars:
equipment, MR/CT/PET acquisition parameters, multi-frame dimensions, pixel value transformations) and from what
IODs require (coded entries, Frame of Reference). A value kept here still goes through the residual check.

Three kinds of entry:
- `K` text kept as it is: vocabulary, device models, acquisition parameters;
- `D`/`Z` free text an IOD requires (Type 1: a dummy; Type 2: empty), so that removing it would break the file;
  under Clean Descriptors these are cleaned instead, like any other unlisted text;
- UI attributes whose values name classes, syntaxes or coding schemes, not instances: kept (a SOP Class UID
  remapped breaks the file). Any other UID outside the table is remapped, except well-known standard UIDs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import tag_for_keyword

from .tags import tag_text


@dataclass(frozen=True)
class Technical:
    """One reviewed attribute outside Table E.1-1: its tag, keyword, action at full (K, D or Z) and why."""

    tag: int
    keyword: str
    action: str
    why: str

    @property
    def tag_text(self) -> str:
        return tag_text(self.tag)


_CODE = "Code Sequence Macro: a coded concept from a coding scheme (Type 1/1C)"
_DCM2NIIX = "read by dcm2niix into the BIDS sidecar"
_ROWS: tuple[tuple[str, str, str], ...] = (
    # Coded entries: vocabulary, required wherever a code sequence is.
    ("CodeValue", "K", _CODE),
    ("CodingSchemeDesignator", "K", _CODE),
    ("CodingSchemeVersion", "K", _CODE),
    ("CodeMeaning", "K", _CODE),
    ("LongCodeValue", "K", _CODE),
    ("URNCodeValue", "K", _CODE),
    ("MappingResourceName", "K", _CODE + ": the name of a mapping resource"),
    ("CodingSchemeName", "K", "Coding Scheme Identification: the name of a coding scheme"),
    ("CodingSchemeRegistry", "K", "Coding Scheme Identification Type 1C: the registry of a coding scheme"),
    ("CodingSchemeResponsibleOrganization", "K", "Coding Scheme Identification: who maintains a coding scheme"),
    # Equipment: models and software, not the site or the device's identity (those are in the table).
    ("Manufacturer", "K", "General Equipment Type 2; " + _DCM2NIIX + " (Manufacturer), vendor-specific reading"),
    ("ManufacturerModelName", "K", "equipment model; " + _DCM2NIIX + " (ManufacturersModelName)"),
    ("SoftwareVersions", "K", "scanner software; " + _DCM2NIIX + " (SoftwareVersions), version-specific fixes"),
    ("SecondaryCaptureDeviceManufacturer", "K", "SC Equipment: the capture device's vendor"),
    ("SecondaryCaptureDeviceManufacturerModelName", "K", "SC Equipment: the capture device's model"),
    ("SecondaryCaptureDeviceSoftwareVersions", "K", "SC Equipment: the capture software's version"),
    ("ReceiveCoilManufacturerName", "K", "MR coil vendor (Enhanced MR), equipment description"),
    ("TransmitCoilManufacturerName", "K", "MR coil vendor (Enhanced MR), equipment description"),
    # MR acquisition.
    ("SequenceName", "K", "MR pulse sequence name; " + _DCM2NIIX + " (SequenceName), BIDS heuristics"),
    ("PulseSequenceName", "K", "Enhanced MR pulse sequence name; " + _DCM2NIIX + " (PulseSequenceName)"),
    ("ImagedNucleus", "K", "MR nucleus (1H, 31P); " + _DCM2NIIX + " (ImagedNucleus)"),
    ("ReceiveCoilName", "K", "MR receive coil; " + _DCM2NIIX + " (ReceiveCoilName)"),
    ("TransmitCoilName", "K", "MR transmit coil; " + _DCM2NIIX + " (TransmitCoilName)"),
    ("MultiCoilElementName", "K", "Enhanced MR coil element; coil combination in analysis"),
    ("MultiCoilConfiguration", "K", "Enhanced MR coil configuration; equipment description"),
    ("ASLTechniqueDescription", "K", "MR Arterial Spin Labeling Type 1: the labeling technique (ASL-BIDS)"),
    ("MetaboliteMapDescription", "K", "MR spectroscopy metabolite map (Type 1C in MR Spectroscopy)"),
    # CT and PET reconstruction.
    ("ConvolutionKernel", "K", "CT reconstruction kernel; " + _DCM2NIIX + " (ConvolutionKernel)"),
    ("FilterType", "K", "CT/X-ray filter; acquisition parameter"),
    ("Radiopharmaceutical", "K", "PET tracer name; " + _DCM2NIIX + " (Radiopharmaceutical), PET-BIDS TracerName"),
    ("ReconstructionMethod", "K", "PET reconstruction; " + _DCM2NIIX + " (ReconMethodName)"),
    ("AttenuationCorrectionMethod", "K", "PET correction; " + _DCM2NIIX + " (AttenuationCorrectionMethod)"),
    ("ScatterCorrectionMethod", "K", "PET correction; " + _DCM2NIIX + " (ScatterCorrectionMethod)"),
    ("DetectorLinesOfResponseUsed", "K", "PET acquisition parameter"),
    # Geometry and multi-frame dimensions.
    ("PositionReferenceIndicator", "K", "Frame of Reference Type 2: the anatomical landmark of the frame"),
    ("StackID", "K", "Frame Content Type 1C: which stack a frame belongs to; dcm2niix orders frames by it"),
    ("DimensionDescriptionLabel", "K", "Multi-frame Dimension: what a dimension index means"),
    # Pixel value description.
    ("RescaleType", "K", "Modality LUT Type 1C: the unit of rescaled values (HU, US)"),
    ("WindowCenterWidthExplanation", "K", "VOI LUT: which display window a value is"),
    ("LUTExplanation", "K", "Modality/VOI LUT and Real World Value Mapping (Type 1): the LUT's meaning"),
    ("ModalityLUTType", "K", "Modality LUT Type 1C: the output unit of the LUT"),
    ("LUTLabel", "K", "Real World Value Mapping Type 1; dcm2niix reads Philips scaling from this mapping"),
    # Patient characteristics a non-human patient requires (Patient Module Type 1C/2C); not identifying.
    ("PatientSpeciesDescription", "K", "Patient Module Type 1C for a non-human patient: the species"),
    ("PatientBreedDescription", "K", "Patient Module Type 2C for a non-human patient: the breed"),
    # The de-identification mark (Patient Module, top level): `full` replaces any earlier value with its own.
    ("DeidentificationMethod", "K", "the de-identification mark: full writes its own, replacing an earlier value"),
    # Encapsulated documents: what the document is, not what it says.
    ("MIMETypeOfEncapsulatedDocument", "K", "Encapsulated Document Type 1: the document's format (application/pdf)"),
    ("ListOfMIMETypes", "K", "Encapsulated Document Type 1C: the formats of the document's parts"),
    # Free text an IOD requires: a dummy (Type 1) or an empty value (Type 2), never the original text.
    ("TextValue", "D", "SR TEXT content item Type 1C: free text, replaced with a dummy"),
    ("SegmentLabel", "D", "Segmentation Segment Description Type 1: free text, replaced with a dummy"),
    ("SegmentAlgorithmName", "D", "Segmentation Type 1C: free text, replaced with a dummy"),
    ("ContentDescription", "Z", "Content Identification Type 2: free text, emptied"),
    ("DocumentTitle", "Z", "Encapsulated Document Type 2: free text, emptied"),
    # UIDs of classes, transfer syntaxes and coding schemes: standard or vendor vocabulary, never of an instance.
    ("SOPClassUID", "K", "names the IOD; remapping it breaks the file"),
    ("ReferencedSOPClassUID", "K", "names the class of a referenced instance"),
    ("ReferencedSOPClassUIDInFile", "K", "names the class of a referenced instance"),
    ("ReferencedTransferSyntaxUIDInFile", "K", "names a transfer syntax"),
    ("TransferSyntaxUID", "K", "names a transfer syntax"),
    ("RelatedGeneralSOPClassUID", "K", "names a SOP class"),
    ("OriginalSpecializedSOPClassUID", "K", "names a SOP class"),
    ("SOPClassesInStudy", "K", "names SOP classes"),
    ("CodingSchemeUID", "K", "names a coding scheme"),
    ("MappingResourceUID", "K", "names a mapping resource (a coding vocabulary)"),
    ("ContextUID", "K", "names a context group"),
)


def _table() -> Mapping[int, Technical]:
    table: dict[int, Technical] = {}
    for keyword, action, why in _ROWS:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise RuntimeError(f"technical allow-list: {keyword} is not a DICOM keyword")
        table[tag] = Technical(tag, keyword, action, why)
    return MappingProxyType(table)


TECHNICAL: Mapping[int, Technical] = _table()


def technical(tag: int) -> Technical | None:
    """The reviewed entry for a standard attribute outside Table E.1-1, or None."""
    return TECHNICAL.get(tag)


def is_standard_uid(uid: str) -> bool:
    """True for a well-known UID the standard defines (SOP classes, transfer syntaxes, coding schemes, well-known
    frames of reference: anything under the DICOM root 1.2.840.10008, or in pydicom's UID dictionary). Such a
    UID names no instance, so `full` keeps it wherever it occurs."""
    return uid.startswith("1.2.840.10008.") or uid in UID_dictionary
