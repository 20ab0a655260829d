"""The burned-in annotation gate: images that may carry identifying text in their pixels.

Header de-identification cannot clean pixels. At full, such files are quarantined unless the user, having
checked them, passes --allow-burned-in; PatientIdentityRemoved is never YES for them.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

# Modalities whose images usually carry burned-in text: ultrasound, other, external camera, endoscopy,
# documents, secondary captures.
RISKY_MODALITIES = frozenset({"US", "OT", "XC", "ES", "DOC", "SC"})
# SOP classes: secondary capture (single and multi-frame) and encapsulated documents (PDF, CDA, STL, ...).
RISKY_CLASS_PREFIXES = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.104")


def burned_in_risk(ds: Dataset) -> str | None:
    """Why `ds` may show identifying text in its pixels, or None."""
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES"
    if burned == "NO":
        return None
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in RISKY_MODALITIES:
        return f"modality {modality} without BurnedInAnnotation NO"
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if sop_class.startswith(RISKY_CLASS_PREFIXES):
        return "secondary capture or encapsulated document without BurnedInAnnotation NO"
    image_type = ds.get("ImageType") or []
    values = image_type if isinstance(image_type, (list, MultiValue)) else [image_type]
    if "SCREEN SAVE" in {str(v).upper() for v in values} or str(ds.get("ConversionType", "")).upper() == "WSD":
        return "screen save without BurnedInAnnotation NO"
    return None
