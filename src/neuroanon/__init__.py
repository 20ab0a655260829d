"""neuroanon: de-identify DICOM data for research sharing (the NiDB anonymization levels)."""

__version__ = "0.1.0"
