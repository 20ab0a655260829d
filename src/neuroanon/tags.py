"""The tags the code names, and how a tag is written in reports and messages: the vocabulary under every stage.

pydicom's constants are used where it has them (TAG_CHARSET, ItemTag, ...); these are the others.
"""

from __future__ import annotations

from typing import Final

from pydicom.tag import TAG_CHARSET, BaseTag

SPECIFIC_CHARACTER_SET: Final = int(TAG_CHARSET)
PATIENT_NAME: Final = 0x00100010
PATIENT_ID: Final = 0x00100020
PATIENT_BIRTH_DATE: Final = 0x00100030
PATIENT_AGE: Final = 0x00101010
IMAGE_COMMENTS: Final = 0x00204000
DERIVATION_DESCRIPTION: Final = 0x00082111
OTHER_PATIENT_IDS_SEQUENCE: Final = 0x00101002
SOP_CLASS_UID: Final = 0x00080016
SOP_INSTANCE_UID: Final = 0x00080018
STUDY_INSTANCE_UID: Final = 0x0020000D
SERIES_INSTANCE_UID: Final = 0x0020000E
PATIENT_IDENTITY_REMOVED: Final = 0x00120062
DEIDENTIFICATION_METHOD: Final = 0x00120063
DEIDENTIFICATION_METHOD_CODES: Final = 0x00120064
LONGITUDINAL_TEMPORAL_MODIFIED: Final = 0x00280303
MEDIA_STORAGE_SOP_CLASS_UID: Final = 0x00020002
MEDIA_STORAGE_SOP_INSTANCE_UID: Final = 0x00020003
IMPLEMENTATION_VERSION_NAME: Final = 0x00020013
MANUFACTURER: Final = 0x00080070
MANUFACTURER_MODEL_NAME: Final = 0x00081090
CODE_VALUE: Final = 0x00080100
CODING_SCHEME_DESIGNATOR: Final = 0x00080102
CODE_MEANING: Final = 0x00080104
LONG_CODE_VALUE: Final = 0x00080119
URN_CODE_VALUE: Final = 0x00080120
PIXEL_DATA: Final = 0x7FE00010
FLOAT_PIXEL_DATA: Final = 0x7FE00008
DOUBLE_FLOAT_PIXEL_DATA: Final = 0x7FE00009


def is_pixel_tag(tag: int) -> bool:
    """Whether `tag` is a pixel data element: integer, float or double float (compared as native ints where
    compiled)."""
    return tag in (PIXEL_DATA, FLOAT_PIXEL_DATA, DOUBLE_FLOAT_PIXEL_DATA)


def private_creator_tag(tag: int) -> int:
    """The tag of the creator that reserved the block a private data element (gggg,xxee) is in: (gggg,00xx)."""
    return tag & 0xFFFF0000 | (tag & 0xFF00) >> 8


_TAG_TEXTS: Final[dict[int, str]] = {}


def tag_text(tag: int) -> str:
    """A tag as reports and messages write it: `(0010,0010)` (each made once; the cache is bounded like
    `base_tag`'s)."""
    text = _TAG_TEXTS.get(tag)
    if text is None:
        if len(_TAG_TEXTS) >= 1 << 16:
            _TAG_TEXTS.clear()
        text = _TAG_TEXTS[tag] = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return text


_BASE_TAGS: Final[dict[int, BaseTag]] = {}


def base_tag(tag: int) -> BaseTag:
    """The one pydicom tag object of `tag` in this process. A dataset keyed by these is searched by identity:
    a plain int, or another tag object, is compared by pydicom's `BaseTag.__eq__`, a Python call each time."""
    known = _BASE_TAGS.get(tag)
    if known is None:
        if len(_BASE_TAGS) >= 1 << 16:  # files full of private tags: bounded (an object made anew is still found)
            _BASE_TAGS.clear()
        known = _BASE_TAGS[tag] = BaseTag(tag)
    return known
