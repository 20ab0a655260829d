"""The identifying values of a dataset, as patterns to search for or cut out, in every encoding and common form.

Taken from the original (input) dataset: names and their parts (run together, with initials, hyphens written as
spaces), IDs (their groups of letters and digits with any separator or none, numeric ones also without leading
zeros), dates (DICOM or ACR-NEMA; written ISO, numeric with or without padding, with month names in English,
German, French, Spanish, Italian and Russian, in the Chinese, Japanese and Korean form, YYMMDD, a two-digit year),
telephone numbers (their digit groups between any separators), addresses (also the street alone, the patient's
town alone), where the patient lives, the insurance plan, institution, station, the trial's site, accession numbers,
the device's serial number and IDs, and the study, series and frame-of-reference UIDs (`needles`, shared by the
files of a series); the instance UID (`instance_needles`, per file). Used by the level (to clean allow-listed
private elements) and by the residual check (to prove an output holds none of them).

A needle matches bytes (lower-cased ASCII) in UTF-8, Latin-1, UTF-16 and UTF-32 (LE and BE) and the input's own
character sets, and a value with letters outside ASCII also in the other usual legacy encodings (a name in cp850 in
a file that declares Latin-1, in KOI8-R in a UTF-8 file); in either case and ASCII-folded (ü as u or ue, é as e,
ß as ss); and decoded text, casefolded and ASCII-folded. Each is looked for first by a key every match holds (an
ASCII run, else a few letters in every case and encoding). Dummies and our own pseudonyms are not needles: data
already de-identified is not held back.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import struct
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import cache, cached_property, lru_cache, wraps
from importlib import resources
from itertools import groupby, product
from math import prod
from typing import AnyStr, TypeVar

from ahocorasick_rs import AhoCorasick, BytesAhoCorasick, Implementation
from pydicom._dicom_dict import DicomDictionary
from pydicom.charset import CODES_TO_ENCODINGS, convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.valuerep import TEXT_VR_DELIMS, PersonName
from pydicom.values import convert_SQ

from .read import parses_as_sequence
from .tags import (
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    OTHER_PATIENT_IDS_SEQUENCE,
    PATIENT_BIRTH_DATE,
    PATIENT_ID,
    PATIENT_NAME,
    SOP_INSTANCE_UID,
    SPECIFIC_CHARACTER_SET,
    STUDY_INSTANCE_UID,
    base_tag,
    tag_text,
)

# The visit's and the trial's IDs: one copied into a kept value (a stack ID, a free text) links it back.
VISIT_IDS = (
    "StudyID", "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID", "ServiceEpisodeID",
    "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest", "ClinicalTrialSubjectID",
    "ClinicalTrialSubjectReadingID",
)
# Top-level attributes whose values identify a person, a visit or a place.
IDENTIFYING: tuple[str, ...] = (
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers", "IssuerOfPatientID", "MilitaryRank",
    "AccessionNumber", "AdmissionID", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "StationName", "DeviceSerialNumber", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy",
    "RequestingPhysician", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate",
    *VISIT_IDS,
    # (found from outside: a copy of these in a kept text was released)
    "MedicalRecordLocator", "ReferringPhysicianTelephoneNumbers", "CurrentPatientLocation",
    "PatientInstitutionResidence", "RequestingService", "ResponsibleOrganization", "VerifyingOrganization",
    "PerformedStationName", "PerformedStationAETitle", "ScheduledStationName", "ScheduledStationAETitle",
    "PerformedLocation", "ScheduledProcedureStepLocation", "PerformedProcedureStepStartDate",
    "ScheduledProcedureStepStartDate", "InstanceCreationDate", "AdmittingDate",
    # (found from outside: a copy of these in a kept text was released) where the patient lives, the trial's
    # site, the insurance plan, the device's own IDs (as DeviceSerialNumber; kept and not looked for elsewhere
    # under Retain Device Identity, as Retain Institution Identity keeps the site's). Not Occupation (kept,
    # cleaned, under Clean Descriptors: it names no one) nor DeviceID (no attribute of the profile; a coil's label)
    "RegionOfResidence", "CountryOfResidence", "ScheduledPatientInstitutionResidence",
    "InsurancePlanIdentification", "ClinicalTrialSiteID", "ClinicalTrialSiteName",
    "ClinicalTrialCoordinatingCenterName", "ClinicalTrialProtocolEthicsCommitteeName",
    "ClinicalTrialProtocolEthicsCommitteeApprovalNumber", "DetectorID", "PlateID", "CassetteID",
    "GantryID", "SourceSerialNumber", "ManufacturerDeviceIdentifier", "UniqueDeviceIdentifier",
    # (found from outside: a copy of these in a kept text was released) the station's AE title, the patient's
    # telephone numbers and e-mail as URIs, the birth and death dates in another calendar
    "StationAETitle", "PatientTelecomInformation", "PatientBirthDateInAlternativeCalendar",
    "PatientDeathDateInAlternativeCalendar",
    # full remaps every UID: the study's, a series' or its frame of reference's original left in a kept value
    # links the output back to the original study. (The instance's own UID is a needle of its file alone:
    # `instance_needles`.)
    "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
)
# A device's IDs, searched only where they hold a digit: one of words alone ("HEAD", "COIL") is a label that
# technical texts hold by chance (found from outside: a coil's name was held), no serial.
DEVICE_IDS = frozenset({"DetectorID", "PlateID", "CassetteID", "GantryID", "SourceSerialNumber",
                        "ManufacturerDeviceIdentifier", "UniqueDeviceIdentifier"})
# IDs are also written with other separators or none (`id_form`, `id_texts`), numeric ones without leading zeros.
IDS = frozenset({"PatientID", "OtherPatientIDs", "AccessionNumber", "AdmissionID", "DeviceSerialNumber",
                 "PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers", "PersonTelephoneNumbers",
                 "MedicalRecordLocator", "PatientBirthDateInAlternativeCalendar",
                 "PatientDeathDateInAlternativeCalendar", *VISIT_IDS,
                 # AE titles, written with other separators too ("WMI-WARD7" as "WMI WARD7": found from outside)
                 "StationAETitle", "PerformedStationAETitle", "ScheduledStationAETitle",
                 "SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle",
                 "InsurancePlanIdentification", "ClinicalTrialSiteID",
                 "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
                 *DEVICE_IDS})
MIN_TEXT = 4  # shorter name parts and IDs would match by chance
MIN_DIGITS = 6  # shorter numbers occur everywhere in a header
# Values that are dummies (ours, NiDB's, other tools' usual ones): not identifying, so never needles. Data
# already de-identified (by us or by a sending node) must be released, not held back.
DUMMIES = frozenset({
    "anon", "anonymous", "anonymized", "anonymised", "anonymize", "anonymise", "nidb anonymize", "nidb anonymize full",
    "removed", "modified", "unknown", "none", "null", "n/a", "deidentified", "de-identified", "10000101",
    "000000.000000", "10000101000000.000000", "19000101", "000d", "neuroanon",
    "basic application confidentiality profile", "dcm",
    # placeholders a site writes for what it does not fill in (found from outside: "n.a." as an address and as a
    # maker held a scanner's report files)
    "n.a.", "n.a", "n. a.", "n.v.", "k.a.", "n.d.", "not available", "not applicable",
})
_PSEUDONYM = re.compile(r"^na[a-z2-7]{16}$")  # keys.Keyring.pseudonym, lower-cased
# A date as DICOM writes it, or with points, hyphens, slashes or spaces between (ACR-NEMA's "1961.02.03", ISO's; a
# slash and a space: found from outside), past the padding around a value (a tab or a NUL before a date hid it)
_DATE = re.compile(r"^(\d{4})([./ -]?)(\d{2})\2(\d{2})")
_PADDING = " \t\r\n\x00"
_UID = re.compile(r"[0-9]+(?:\.[0-9]+){3,}|2\.25\.[0-9]{10,}")  # (shorter ones could occur by chance)
_ASCII_LETTER = re.compile("[A-Za-z]")
_IDENTIFYING_TAGS = tuple((keyword, int(tag_for_keyword(keyword) or 0)) for keyword in IDENTIFYING)
_TAGS = tuple(tag for _, tag in _IDENTIFYING_TAGS)
# The sequences whose items hold needles (named in findings as the attribute given): the other IDs a patient is
# known by (the top-level PatientID may be empty), each item's ID and issuer; the request's IDs, which may be
# there alone (the top-level AccessionNumber empty); and the patient's names, IDs and birth date in the items of
# the sequences that reference or group patients, which may name the patient alone (the top level emptied by an
# earlier tool); the scheduled procedure step's station, place and date.
_REQUEST = tuple((int(tag_for_keyword(k) or 0), k) for k in (
    "AccessionNumber", "RequestedProcedureID", "ScheduledProcedureStepID", "PlacerOrderNumberImagingServiceRequest",
    "FillerOrderNumberImagingServiceRequest", "StudyInstanceUID"))
_SCHEDULED = tuple((int(tag_for_keyword(k) or 0), k) for k in (  # (the standard puts them in its items only)
    "ScheduledStationAETitle", "ScheduledStationName", "ScheduledProcedureStepLocation",
    "ScheduledProcedureStepStartDate", "ScheduledProcedureStepID"))
_PATIENT = tuple((int(tag_for_keyword(k) or 0), k) for k in (
    "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
    "IssuerOfPatientID"))
# The patient's and the institution's values, searched for also where they stand in an item at any depth
# (`nested_needles`): a correction keeps the value it replaced in an item, which may be the only one left.
NESTED_IDENTITY = frozenset({*(tag for tag, _ in _PATIENT), *(int(tag_for_keyword(k) or 0) for k in (
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    # a person's address and telephone in the items that identify a physician or an operator (found from outside:
    # not searched; a copy in a kept text was released)
    "PersonAddress", "PersonTelephoneNumbers", "PersonTelecomInformation"))})
# The file meta's AE titles: the sending station's, as StationAETitle (found from outside: a copy was released).
META_AE_TITLES = (0x00020016, 0x00020017, 0x00020018)
# A station's names, which a model may bear: one equal to the file's own Manufacturer or ManufacturerModelName, or
# to one of their words (`_own_makers`), which full keeps, names nothing more (found from outside: a station called
# as its model held a whole series).
STATIONS = frozenset({"StationName", "StationAETitle", "PerformedStationName", "PerformedStationAETitle",
                      "ScheduledStationName", "ScheduledStationAETitle", "SourceApplicationEntityTitle",
                      "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle"})
IN_SEQUENCES = {
    OTHER_PATIENT_IDS_SEQUENCE: ((PATIENT_ID, "OtherPatientIDs"),
                                 (int(tag_for_keyword("IssuerOfPatientID") or 0), "IssuerOfPatientID")),
    int(tag_for_keyword("RequestAttributesSequence") or 0): _REQUEST,
    int(tag_for_keyword("ReferencedRequestSequence") or 0): _REQUEST,
    int(tag_for_keyword("ScheduledProcedureStepSequence") or 0): _SCHEDULED,  # (found from outside: not searched)
    # a digital X-ray's detector is named in its items, not at the top level (found on review: not searched there)
    int(tag_for_keyword("DetectorInformationSequence") or 0): ((int(tag_for_keyword("DetectorID") or 0),
                                                               "DetectorID"),),
    int(tag_for_keyword("ScheduledStepAttributesSequence") or 0): _REQUEST,  # (found from outside, as those below)
    # a correction's items: the values it replaced, of any identifying attribute
    int(tag_for_keyword("ModifiedAttributesSequence") or 0): tuple((tag, keyword) for keyword, tag in
                                                                    _IDENTIFYING_TAGS),
    # sequences whose items hold those above
    int(tag_for_keyword("OriginalAttributesSequence") or 0): (),
    int(tag_for_keyword("ReferencedPerformedProcedureStepSequence") or 0): (),
    **{int(tag_for_keyword(k) or 0): _PATIENT for k in (
        "ReferencedPatientSequence", "SourcePatientGroupIdentificationSequence",
        "GroupOfPatientsIdentificationSequence")},
}
# whose raw values name a file's needles (the maker's and model's: `STATIONS`)
_KEY_TAGS = (*_TAGS, *IN_SEQUENCES, SPECIFIC_CHARACTER_SET, MANUFACTURER, MANUFACTURER_MODEL_NAME)
_KEY_TAG_SET = frozenset(_KEY_TAGS)
_PLAIN = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")  # printable ASCII without a value delimiter
# Always searched; the input's own character sets are added.
BASE_ENCODINGS = ("utf_8", "latin_1", "utf_16_le", "utf_16_be")
# Also always searched, with keys and a pattern of their own (`Needle.wide_keys`, `wide_pattern`): no DICOM
# character set is UTF-32, but a program's private value may be (wchar_t text is UTF-32 on Linux). Its pattern is
# compiled and tried only where its key occurs: most values are spared a pattern of twice the alternatives.
WIDE_ENCODINGS = ("utf_32_le", "utf_32_be")
# Searched too for a value with letters outside ASCII ("Müller", "Иванов", "山田"): a value copied by a program from
# another system's encoding is not in the file's declared one. (The single-byte encodings of Western, Nordic,
# Baltic, Central European, Cyrillic, Greek, Turkish, Hebrew, Arabic, Thai and Vietnamese text in their ISO,
# Windows, DOS and Mac forms: found from outside, a name in each DOS or Mac one left out was released; and the
# multi-byte ones of Japanese, Chinese and Korean: CP949, Windows' Korean, holds EUC-KR and more; ISO-2022-KR,
# the 7-bit Korean of mail.)
CJK_ENCODINGS = ("shift_jis", "euc_jp", "iso2022_jp", "gb18030", "big5", "cp949", "iso2022_kr")
OTHER_ENCODINGS = (
    "cp1252", "cp850", "cp437", "mac_roman", "iso8859_15", "cp1250", "iso8859_2", "iso8859_16", "cp852", "mac_latin2",
    "cp775", "cp1257", "cp860", "cp861", "cp863", "cp865", "mac_iceland", "mac_croatian", "mac_romanian",
    "cp1251", "iso8859_5", "koi8_r", "koi8_u", "cp866", "cp855", "mac_cyrillic", "cp1253", "iso8859_7", "cp737",
    "cp869", "mac_greek", "cp1254", "iso8859_9", "cp857", "mac_turkish", "cp1255", "iso8859_8", "cp862", "cp1256",
    "iso8859_6", "cp864", "cp720", "mac_arabic", "tis_620", "cp874", "cp1258", *CJK_ENCODINGS,
)

# Boundaries: a text needle may not stand inside a longer (ASCII) word, a number or date inside a longer number, an
# ID with zeros put before it not after a decimal point either (NUMBER, on the left: "0.0390625" holds no ID 390625;
# a number alone may: a UID's part, "2.25.4471009312").
ALPHA, DIGIT, NUMBER, NONE = "alpha", "digit", "number", ""
Token = tuple[str, ...]  # the alternatives for one place of a form


@dataclass(frozen=True)
class Form:
    """One way a value is written: alternatives per place, and the boundaries it must stand between."""

    tokens: tuple[Token, ...]
    left: str = ALPHA
    right: str = ALPHA
    text: str = ""  # as written in the input, for stateful (ISO 2022) encodings; else the first alternatives
    anchor: str = ""  # a literal every match holds, looked for first (else the form's longest literal run)
    first: Token = ()  # or spellings one of which every match holds (each three characters or more), looked for first


@dataclass(frozen=True)
class Needle:
    """One identifying value (in all its forms and encodings) and the attribute it came from.

    `data` is the value as the needle is known by (folded, lower-case, UTF-8). A match must stand as a word: a
    name not inside a longer word ("Name" is no hit in "PixelFileName", a CSA field), a number not inside a
    longer number, though a DICOM date may run on into a time (as in scanners' UIDs).
    """

    attribute: str
    data: bytes
    forms: tuple[Form, ...] = field(default=(), compare=False, repr=False)
    encodings: tuple[str, ...] = field(default=BASE_ENCODINGS, compare=False, repr=False)
    declared: tuple[str, ...] = field(default=(), compare=False, repr=False)  # the input's character sets
    # Not looked for in decoded text, only in bytes: a garbled form (`misread_forms`) folded is letters of other
    # words ("Ðáðáäüðïõëïò" folds to what "Íßêïò" does: found from outside, a file was held for another name).
    in_text: bool = field(default=True, compare=False, repr=False)

    @property
    def numeric(self) -> bool:
        return self.data.isdigit()

    @cached_property
    def pattern(self) -> re.Pattern[bytes]:
        """Matches the needle in bytes lower-cased with `bytes.lower()`, in every encoding."""
        return _byte_pattern(self.forms or _plain_forms(self), self.encodings)

    @cached_property
    def loose_pattern(self) -> re.Pattern[bytes]:
        """`pattern` that takes a letter or digit after a control byte for no part of a word before a match: the last
        byte of a value's length, big endian, before the value ("\\0B" for 66 bytes). A match `pattern` misses is then
        looked for in each value on its own (`find_in_file`): in one-byte text a value's first letter comes after its
        length's last byte too ("\\0" little endian), and runs on into the word after it."""
        return _byte_pattern(self.forms or _plain_forms(self), self.encodings, loose=True)

    @cached_property
    def text_pattern(self) -> re.Pattern[str]:
        """Matches the needle in decoded text folded with `fold` (either way of folding umlauts)."""
        return re.compile("|".join(sorted(_text_alternatives(self.forms or _plain_forms(self)))))

    @cached_property
    def runs(self) -> tuple[str, ...]:
        """Literal ASCII text of which one run occurs in every match (a fast test first), or () if none."""
        if self._form_runs is None:
            return ()
        runs = {r for form_runs in self._form_runs for r in form_runs}
        # Short keys (the first eight characters of each run) are shared by a value's many forms: fewer tests.
        # Shorter ones are shared by other values too ("FAKE..." in every synthetic value, a year in every date
        # of a study), which sends the search into every window where any of them occurs.
        short = {r[:8] for r in runs}
        return tuple(sorted(r for r in short if not any(o != r and o in r for o in short)))

    @cached_property
    def _form_runs(self) -> tuple[tuple[str, ...], ...] | None:
        """For each form, the literal ASCII runs one of which each of its matches holds (its longest, or the
        spellings it must hold one of); None if a form has none of three characters or more."""
        found = []
        for form in self.forms or _plain_forms(self):
            if form.first:
                found.append(tuple(a.lower() for a in form.first))
                continue
            run, best = "", form.anchor
            for token in form.tokens if not form.anchor else ():
                if _literal(token):
                    run += token[0].lower()
                    best = max(best, run, key=len)
                else:
                    run = ""
            if len(best) < 3:
                return None
            found.append((best,))
        return tuple(found)

    @cached_property
    def _run_forms(self) -> dict[str, tuple[Form, ...]]:
        """For each of `runs`, the forms whose matches may hold it: those with a run that holds it in its first
        eight characters. A match holds one of its form's runs, so it holds a key near which only these forms
        are tried: for a key found, a pattern of these forms alone is compiled (a date's whole pattern took 30
        to 50 ms to compile, paid for each new patient and study when a key as short as "-61" occurs by chance)."""
        forms = self.forms or _plain_forms(self)
        assert self._form_runs is not None  # (there are runs)
        return {key: tuple(form for form, runs in zip(forms, self._form_runs, strict=True)
                           if any(key in r[:8] for r in runs))
                for key in self.runs}

    def _key_pattern(self, key: bytes, loose: bool) -> re.Pattern[bytes]:
        """The pattern of the forms a match holding `key` (one of `keys`) may be of, in the encodings that write
        the key so: UTF-16 for a key with NULs, the others for one without (they write ASCII as ASCII, and UTF-16
        writes no ASCII run without NULs). For a needle without runs (its keys are letters), the forms and
        encodings whose windows are written so (`_letter_pairs`): a key of a Latin spelling ("ano" of "Ivanov") is
        no Cyrillic form's, and occurs in headers by chance (found on review: each such window was searched with
        every form in fifty encodings, some 40 M instructions a file of a patient named in Cyrillic)."""
        pattern = self._key_patterns.get((key, loose))
        if pattern is None:
            if not self.runs:
                pattern = _pairs_pattern(self._letter_pairs[key], loose)
            else:
                utf_16 = b"\x00" in key
                run = key.replace(b"\x00", b"").decode("ascii")  # (in UTF-16 a key is its run with NULs between)
                encodings = tuple(e for e in self.encodings if e.startswith("utf_16") == utf_16)
                pattern = _byte_pattern(self._run_forms[run], encodings, loose)
            self._key_patterns[key, loose] = pattern
        return pattern

    @cached_property
    def _letter_pairs(self) -> dict[bytes, list[tuple[Form, str]]]:
        """For each key of a needle without runs, the forms and encodings whose window (`_window`) is written so:
        a match holds its form's window in its encoding, so one of them gives every match near the key."""
        pairs: dict[bytes, list[tuple[Form, str]]] = {}
        for form in self.forms or _plain_forms(self):
            window = _window(form.tokens)
            assert window is not None  # (the needle has keys)
            for encoding in self.encodings:
                for key in _window_bytes(form, window, encoding):
                    pairs.setdefault(key, []).append((form, encoding))
        return pairs

    @cached_property
    def _key_patterns(self) -> dict[tuple[bytes, bool], re.Pattern[bytes]]:
        return {}

    @cached_property
    def wide_pattern(self) -> re.Pattern[bytes]:
        """`pattern` for UTF-32 (LE and BE)."""
        return _byte_pattern(self.forms or _plain_forms(self), WIDE_ENCODINGS)

    @cached_property
    def keys(self) -> tuple[bytes, ...]:
        """Bytes of which every match of `pattern` (in bytes lower-cased with `bytes.lower()`) holds one, or () if
        there are none: the runs in every layout (ASCII-compatible, UTF-16); for a needle without runs (a name in
        Cyrillic or CJK letters), a few of its letters as each of its encodings writes them."""
        if self.runs:
            return _run_keys(self.runs, ("ascii", "utf_16_le", "utf_16_be"))
        return self._letters[0]

    @cached_property
    def wide_keys(self) -> tuple[bytes, ...]:
        """`keys` for `wide_pattern`: the runs, or a few letters, in UTF-32."""
        if self.runs:
            return _run_keys(self.runs, WIDE_ENCODINGS)
        return tuple(sorted(_window_keys(self.forms or _plain_forms(self), WIDE_ENCODINGS) or ()))

    @cached_property
    def text_keys(self) -> tuple[str, ...]:
        """Text of which every match in folded text (`folds`) holds one, or () if there is none."""
        return self.runs or self._letters[1]

    @cached_property
    def _letters(self) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
        """Keys in bytes and in folded text from the fewest-variant window of each form (every way of writing its
        places, in every encoding), or ((), ()) when a form has no such window of few variants."""
        forms = self.forms or _plain_forms(self)
        in_bytes = _window_keys(forms, self.encodings)
        if in_bytes is None:
            return (), ()
        in_text: set[str] = set()
        for form in forms:
            window = _window(form.tokens)
            assert window is not None  # (_window_keys found one)
            in_text |= {"".join(p) for p in product(*({_look(fold(a, e)) for a in t for e in (False, True)}
                                                       for t in window))}
        if any(len(k) < 2 for k in in_text):  # (too likely by chance)
            return (), ()
        return tuple(sorted(in_bytes)), tuple(sorted(in_text))

    @cached_property
    def bounded(self) -> bool:
        """Whether a form must stand between boundaries (the bytes beside a match are read)."""
        return any(form.left or form.right for form in self.forms or _plain_forms(self))

    @cached_property
    def caseless(self) -> bool:
        """Matched alike in bytes lower-cased or not: no form holds an ASCII letter or stands between letters."""
        return not any(form.left == ALPHA or form.right == ALPHA
                       or any(_ASCII_LETTER.search(a) for token in form.tokens for a in token)
                       for form in self.forms or _plain_forms(self))

    @cached_property
    def _automaton(self) -> BytesAhoCorasick | None:
        """Finds every key and wide key in one pass (those first), for a needle of more than `_FEW_KEYS`."""
        keys = self.keys + self.wide_keys
        return BytesAhoCorasick(list(keys)) if len(keys) > _FEW_KEYS else None

    @cached_property
    def span(self) -> int:
        """A match lies within this many bytes of a key it holds (with room for the boundary tests)."""
        return 8 + max(sum(max(_most_bytes(a, self.encodings) for a in token) for token in form.tokens)
                       for form in self.forms or _plain_forms(self))

    def occurs(self, lowered: bytes, narrow: bool = True, wide: bool = True) -> bool:
        """Whether the needle occurs in `lowered` (bytes lower-cased with `bytes.lower()`): by `pattern` (if
        `narrow`) or by `wide_pattern` (if `wide`).

        A pattern is tried only near where one of its keys occurs (a match holds a key): a search of a whole value
        with a pattern of many alternatives is slow.
        """
        starts = self._all_starts(lowered)
        return (narrow and self._matches(lowered, False, starts)) or (wide and self._matches(lowered, True, starts))

    def occurs_in(self, data: bytes) -> bool:
        """`occurs` in `data` as it is (not lower-cased); for each of the last `_SEARCHED_KEPT` values, once (a
        series' needle found in its private values is searched in each kept one, file after file)."""
        searched = self._searched
        known = searched.get(data)
        if known is None:
            if len(searched) >= _SEARCHED_KEPT:
                searched.clear()
            known = searched[data] = self.occurs(data.lower())
        return known

    @cached_property
    def _searched(self) -> dict[bytes, bool]:
        return {}

    def patterns(self, lowered: bytes) -> list[re.Pattern[bytes]]:
        """Which of `pattern` and `wide_pattern` match in `lowered`."""
        starts = self._all_starts(lowered)
        return [self._pattern(wide) for wide in (False, True) if self._matches(lowered, wide, starts)]

    def _all_starts(self, lowered: bytes) -> tuple[dict[bytes, list[int]], list[int]] | None:
        """Where the keys (by key) and the wide keys occur, found in one pass, for a needle of many keys (letters
        in every case and encoding, a date's many forms); None for one of few (each key is looked for on its own)."""
        if self._automaton is None:
            return None
        keys, narrow = self.keys, len(self.keys)
        starts: tuple[dict[bytes, list[int]], list[int]] = ({}, [])
        for key, start, _ in self._automaton.find_matches_as_indexes(lowered, overlapping=True):
            if key < narrow:
                starts[0].setdefault(keys[key], []).append(start)
            else:
                starts[1].append(start)
        return starts

    def occurs_loosely(self, lowered: bytes) -> bool:
        """Whether `loose_pattern` matches in `lowered`: near where a key occurs, as `occurs` (a match holds one;
        a search of a whole file with it took milliseconds)."""
        return self._matches(lowered, False, self._all_starts(lowered), loose=True)

    def _matches(self, lowered: bytes, wide: bool, starts: tuple[dict[bytes, list[int]], list[int]] | None,
                 loose: bool = False) -> bool:
        if starts is None or not (self.wide_keys if wide else self.keys):
            return self._near_keys(lowered, wide, loose)
        if wide:  # (UTF-32 takes twice the bytes UTF-16 does)
            return bool(starts[1]) and _near(self.wide_pattern, lowered, starts[1], 2 * self.span)
        return any(_near(self._key_pattern(key, loose), lowered, at, self.span) for key, at in starts[0].items())

    def _pattern(self, wide: bool, loose: bool = False) -> re.Pattern[bytes]:
        # (each compiled when first needed)
        return self.wide_pattern if wide else self.loose_pattern if loose else self.pattern

    def _near_keys(self, lowered: bytes, wide: bool, loose: bool = False) -> bool:
        """Whether the layout's pattern matches near where one of its keys occurs (but UTF-32's, the pattern of the
        key's forms: `_key_pattern`); in the whole of `lowered` if it has no keys, or a key occurs more than
        `_MAX_WINDOWS` times."""
        keys = self.wide_keys if wide else self.keys
        if not keys:
            return self._pattern(wide, loose).search(lowered) is not None
        span = 2 * self.span if wide else self.span
        for key in keys:
            start = lowered.find(key)
            if start < 0:
                continue
            starts: list[int] = []
            while start >= 0 and len(starts) <= _MAX_WINDOWS:
                starts.append(start)
                start = lowered.find(key, start + 1)
            if _near(self._pattern(True) if wide else self._key_pattern(key, loose), lowered, starts, span):
                return True
        return False


def _near(pattern: re.Pattern[bytes], lowered: bytes, starts: list[int], span: int) -> bool:
    """Whether `pattern` matches within `span` bytes of one of `starts`; in the whole of `lowered` if they are more
    than `_MAX_WINDOWS`.

    A window's end reads as the end of the bytes to a boundary's test after a match: a match found that near it is
    tried again where it starts, in the whole (found from outside: "1961-02-03" followed by a digit, cut at a
    window's end, was taken for the birth date, and its base64 then not looked for). A match that holds the key
    a window is made for never comes that near: `Needle.span` leaves room for the test."""
    if len(starts) > _MAX_WINDOWS:
        return pattern.search(lowered) is not None
    for start in starts:
        at, end = max(0, start - span), start + span
        while (match := pattern.search(lowered, at, end)) is not None:
            if match.end() + _BOUNDARY_BYTES <= end or end >= len(lowered) or pattern.match(lowered, match.start()):
                return True
            at = match.start() + 1
    return False


_BOUNDARY_BYTES = 8  # the most a boundary's test reads after a match (a UTF-32 letter: 4), with room
# Between values searched as one: as many NUL bytes as a boundary's test reads, a NUL character in every width (UTF-16
# and UTF-32 read 2 and 4 bytes a character), so that no test reads a neighbour's last bytes as a letter beside a
# match (found from outside: a value ending in b"\x00Z" hid a PatientID in UTF-16 at the start of the next one).
APART = bytes(_BOUNDARY_BYTES)


_MAX_WINDOWS = 16  # past this many occurrences of a key the whole value is searched once
_FEW_KEYS = 8  # keys each looked for on their own (`bytes.find` stops at the first)
_WINDOW = 3  # places in a key made of letters
_MAX_VARIANTS = 16  # ways of writing such a window (each letter in either case: eight for three letters)


@lru_cache(maxsize=8192)
def _most_bytes(text: str, encodings: tuple[str, ...]) -> int:
    """The most bytes one of `encodings` (or UTF-16) writes `text` in: a letter decomposed takes twelve in GB18030,
    where UTF-8 takes nine."""
    most = 2 * len(text)
    for encoding in encodings:
        try:
            most = max(most, len(encoded(text, encoding)))
        except UnicodeError:
            continue
    return most


def _run_keys(runs: tuple[str, ...], encodings: tuple[str, ...]) -> tuple[bytes, ...]:
    """ASCII runs as `encodings` write them, without NUL bytes at their ends: so one key stands for both byte
    orders (UTF-16 "abc" as a, NUL, b, NUL, c), and a search does not stop at every NUL of a binary value."""
    return tuple(sorted({r.encode(e).strip(b"\x00") for r in runs for e in encodings}))


def _window(tokens: tuple[Token, ...]) -> tuple[Token, ...] | None:
    """The run of `_WINDOW` places (else of fewer; the whole form if shorter) written in the fewest ways, the first
    of equals; None if every such run has more than `_MAX_VARIANTS` ways or a place that may be empty."""
    for size in range(min(_WINDOW, len(tokens)), 1, -1):
        windows = [tokens[i : i + size] for i in range(len(tokens) - size + 1)]
        usable = [w for w in windows if all("" not in t for t in w)]
        best = min(usable, key=_variants, default=None)
        if best is not None and _variants(best) <= _MAX_VARIANTS:
            return best
    return None


def _variants(window: tuple[Token, ...]) -> int:
    """In how many ways a window is written, in bytes lower-cased in ASCII."""
    return prod(len({a.lower() if a.isascii() else a for a in token}) for token in window)


def _window_keys(forms: Iterable[Form], encodings: tuple[str, ...]) -> set[bytes] | None:
    """Every way each form's fewest-variant window (`_window`) is written in `encodings`, lower-cased as bytes;
    None if a form has no such window, or one is written in fewer than three bytes (too likely by chance)."""
    keys: set[bytes] = set()
    for form in forms:
        window = _window(form.tokens)
        if window is None:
            return None
        for encoding in encodings:
            keys |= _window_bytes(form, window, encoding)
    return None if any(len(k) < 3 for k in keys) else keys


def _window_bytes(form: Form, window: tuple[Token, ...], encoding: str) -> set[bytes]:
    """Every way `encoding` writes the window, lower-cased as bytes (for a stateful encoding, the form as
    `_render` writes it)."""
    if "2022" in encoding:
        data = _stateful(form, encoding)
        return {data} if data else set()
    places = [_token_bytes(token, encoding) for token in window]
    return {b"".join(p) for p in product(*places)} if all(places) else set()


def _literal(token: Token) -> bool:
    """A place written one way in ASCII: a letter or digit, or a longer literal ("15.04.47", "-47")."""
    text = token[0]
    return len(token) == 1 and text.isascii() and (text.isalnum() or (len(text) > 1 and text.isprintable()))


_Raw = tuple[str | None, bytes | None, bool, bool] | None  # an element's VR, value and encoding; None: absent
_T = TypeVar("_T")


def _undecoded(elements: Iterable[DataElement | RawDataElement | None]) -> tuple[_Raw, ...] | None:
    """The elements' VRs, values and encodings as read (None for an absent one); None if one was decoded."""
    key: list[_Raw] = []
    for e in elements:
        if e is not None and (not isinstance(e, RawDataElement) or (e.value is None and e.length)):
            return None  # (decoded, or not read yet: a dataset read with defer_size)
        key.append(None if e is None else (e.VR, e.value, e.is_implicit_VR, e.is_little_endian))
    return tuple(key)


def once_per_raw_values(tags: tuple[int, ...], kept: int = 512,
                        ) -> Callable[[Callable[[Dataset], _T]], Callable[[Dataset], _T]]:
    """Decorate a function of a dataset that reads only the elements `tags`: it runs on a dataset holding only
    those (the caller's is not changed), once for each distinct set of their undecoded values (files of one series
    share them); the results of the last `kept` sets are kept. The elements of the last call's raw values are
    kept too: the next file of a series often holds equal ones (the engine makes the very same objects for equal
    values), and equal raw elements need no key."""
    objects = tuple(base_tag(t) for t in tags)  # found by identity in a dataset the engine made

    def decorate(derive: Callable[[Dataset], _T]) -> Callable[[Dataset], _T]:
        @lru_cache(maxsize=kept)
        def from_raw(raws: tuple[_Raw, ...]) -> _T:
            return derive(Dataset({BaseTag(t): RawDataElement(BaseTag(t), r[0], len(r[1] or b""), r[1], 0, r[2], r[3])
                                   for t, r in zip(tags, raws, strict=True) if r is not None}))

        last: list[tuple[list[DataElement | RawDataElement | None], _T]] = []  # (one, replaced whole)

        @wraps(derive)
        def derived(ds: Dataset) -> _T:
            elements = ds._dict  # (pydicom's elements by tag: get_item would make each tag again)
            found = [elements.get(tag) for tag in objects]  # None when absent
            known = last[0] if last else None
            # (a RawDataElement equals only a RawDataElement with the same VR, value and encoding, compared by
            # identity first; never a decoded DataElement)
            if known is not None and found == known[0]:
                return known[1]
            key = _undecoded(found)
            if key is None:  # (get_item reads a deferred value)
                return derive(Dataset({BaseTag(t): ds.get_item(t) for t, e in zip(tags, found, strict=True)
                                       if e is not None}))
            result = from_raw(key)
            last[:] = [(found, result)]
            return result

        return derived
    return decorate


@once_per_raw_values((SPECIFIC_CHARACTER_SET, PATIENT_ID))
def patient_id(ds: Dataset) -> str:
    """The PatientID as pydicom reads it, "" when there is none (the pseudonym's source and the --mapping key),
    decoded once for the files that share it."""
    return str(ds.get("PatientID", "") or "")


@once_per_raw_values(_KEY_TAGS, kept=32)  # (a series' needles hold a megabyte once their patterns are compiled)
def needles(ds: Dataset) -> tuple[Needle, ...]:
    """The patterns of `ds`'s identifying values (longest first, no duplicates)."""
    declared = _declared(ds)
    values = [(keyword, value) for keyword, tag in _IDENTIFYING_TAGS if tag in ds
              for value in _undeclared_values(ds, tag, declared) + _values(ds, tag)]
    values += _sequence_values(ds)
    makers = _own_makers(ds) if any(keyword in STATIONS for keyword, _ in values) else frozenset()
    found: dict[tuple[bytes, tuple[Form, ...]], Needle] = {}
    for keyword, value in values:
        if keyword in STATIONS and _bare(str(value)) in makers:
            continue
        for needle in _value_needles(keyword, str(value), isinstance(value, PersonName), declared):
            found.setdefault(_same_search(needle), needle)
    return tuple(sorted(found.values(), key=lambda n: len(n.data), reverse=True))


@once_per_raw_values((MANUFACTURER, MANUFACTURER_MODEL_NAME))  # (the files of a series share them)
def _own_makers(ds: Dataset) -> frozenset[str]:
    """The file's Manufacturer and ManufacturerModelName, each whole, the model's words of four letters or more
    ("GALAN" of "Galan 3T", "LUMINA" of "MAGNETOM Lumina": found from outside, held), and the maker's words that
    known makers' names hold ("CARESTREAM", "MEDICAL"), bare (`_bare`). Not a value of several, the two run
    together, nor another word of the maker's, which may be a site's (found from outside: a station one of them
    names was released)."""
    found: set[str] = set()
    for tag in (MANUFACTURER, MANUFACTURER_MODEL_NAME):
        values = [str(v) for v in _values(ds, tag)]
        if len(values) == 1:
            words = {_bare(w) for w in _ALNUM_WORDS.findall(values[0]) if len(w) >= 4}
            found |= {_bare(values[0]), *(words if tag == MANUFACTURER_MODEL_NAME else words & _maker_words())}
    return frozenset(found - {""})


@lru_cache(maxsize=1)
def _maker_words() -> frozenset[str]:
    """The words of four letters or more of the known makers' and models' names (`maker_names`), bare."""
    return frozenset(_bare(w) for name in maker_names() for w in _ALNUM_WORDS.findall(name) if len(w) >= 4)


def _bare(text: str) -> str:
    """`text` folded, without spaces, punctuation or underscores ("Galan 3T", "GALAN_3T": "galan3t")."""
    return _NOT_ALNUM.sub("", fold(text))


_NOT_ALNUM = re.compile(r"[\W_]+")
_ALNUM_WORDS = re.compile(r"[^\W_]+")
_STATION_TAGS = frozenset(int(tag_for_keyword(k) or 0) for k in STATIONS) | frozenset(META_AE_TITLES)


def _sequence_values(ds: Dataset) -> list[tuple[str, object]]:
    """The values `IN_SEQUENCES` names in the items of its sequences, also in such a sequence inside another one's
    items, at any depth (found from outside: the scheduled step's station inside the request's items)."""
    values: list[tuple[str, object]] = []
    for sequence, inside in IN_SEQUENCES.items():
        for item in _items(ds, sequence):
            values += [(attribute, value) for tag, attribute in inside if tag in item for value in _values(item, tag)]
            values += _sequence_values(item)
    return values


def _same_search(needle: Needle) -> tuple[bytes, tuple[Form, ...]]:
    """What makes two needles one search: their value and its forms. One value in two forms is two needles (an
    accession number's digits are a date's, which may run on into a time, and a UID holding a study's date and
    time was released because the number's needle stood for both: found from outside)."""
    return needle.data, needle.forms


@lru_cache(maxsize=4096)  # (a pure function of few tags: called for every element in items and every name or date)
def searched_beside(tag: int, vr: str, depth: int) -> bool:
    """Whether the value of an element (of VR `vr`, "" or UN when unknown) at `depth` (0: the top level) is
    searched for beside the top level's identifying values (`nested_needles`): every person's name and every
    standard date or date-time (by its date) wherever it stands (a consulting physician's, an observer's, a
    scheduled performer's; a calibration's, a report item's: found from outside, one list of dates after another was
    got round), and the patient's and the institution's values in items (`NESTED_IDENTITY`). A kept text may copy
    any of them."""
    if tag in (BESIDE_IN_ITEMS if depth else BESIDE_AT_THE_TOP):  # (a standard date under another VR too, LO:
        return True  # found from outside)
    known = dictionary_vr(tag) if vr in ("", "UN") else vr
    return (known == "PN" or known in _DATED_VRS and not tag >> 16 & 1) and (depth > 0 or tag not in _KEY_TAG_SET)


_DATED_VRS = frozenset({"DA", "DT"})  # (a time alone names no day)
_DATED_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] in _DATED_VRS)
_DATE_TIME_TAGS = frozenset(tag for tag, entry in DicomDictionary.items() if entry[0] == "DT")
# The tags `searched_beside` takes whatever their VR: at the top level (the series' own needles aside), in items
BESIDE_AT_THE_TOP = _DATED_TAGS - _KEY_TAG_SET
BESIDE_IN_ITEMS = _DATED_TAGS | NESTED_IDENTITY


# A value searched for beside the top level's (`searched_beside`): tag, VR, value as stored, and the
# SpecificCharacterSet value its item (or an item it is in) declares, or None where only the top level's applies.
NestedValue = tuple[int, str, bytes, bytes | None]


def nested_needles(ds: Dataset, nested: tuple[NestedValue, ...]) -> tuple[Needle, ...]:
    """`needles(ds)` with those of the values found beside them (`searched_beside`; `NestedValue`), read in `ds`'s
    character set and, where an item declares its own, in that one too: an item may name the patient where the top
    level names another or no one (OriginalAttributesSequence keeps the name a correction replaced, in the set of
    the system that wrote it), a person may be named outside the top level's list, and a kept text may copy
    them."""
    charset = ds.get_item(base_tag(SPECIFIC_CHARACTER_SET))  # (None when absent; by the one tag object: found by
    # identity, not compared by pydicom's Python-level BaseTag.__eq__)
    declared = (charset.VR if isinstance(charset, RawDataElement) else "CS", _declared_value(charset))
    base = needles(ds)
    nested = _dated(nested)
    if any(tag in _STATION_TAGS for tag, *_ in nested):  # (a station's name as its model: `STATIONS`)
        makers = _own_makers(ds)
        nested = tuple(v for v in nested if v[0] not in _STATION_TAGS or _bare(v[2].decode("latin_1")) not in makers)
    key = (id(base), nested, declared)  # (a tuple of needles hashes slowly; the series' one is the same object)
    known = _WITH_NESTED.get(key)
    if known is None or known[0] is not base:
        if len(_WITH_NESTED) >= 32:
            _WITH_NESTED.clear()
        known = _WITH_NESTED[key] = (base, _with_nested(base, nested, declared))
    return known[1]


def _dated(nested: tuple[NestedValue, ...]) -> tuple[NestedValue, ...]:
    """`nested` with each value of a date-time cut to its date, once each (an enhanced image's frames differ by
    time: the same needles for the files of a series)."""
    if not any(_a_date_time(tag, vr) for tag, vr, *_ in nested):
        return nested
    return tuple(dict.fromkeys((tag, vr, _days(value) if _a_date_time(tag, vr) else value, own)
                               for tag, vr, value, own in nested))


def _a_date_time(tag: int, vr: str) -> bool:
    return tag in _DATE_TIME_TAGS or vr == "DT"


def _days(value: bytes) -> bytes:
    """A date-time's values cut to their dates (as YYYYMMDD where one is written so, or with points, hyphens,
    slashes or spaces between: ACR-NEMA's, ISO's), each past the padding before it (found from outside: a cut to
    the first eight bytes kept the first value's date alone, and took " 1999123" or "1999.12." for one)."""
    days = []
    for one in value.decode("latin_1").split("\\"):
        one = one.strip(_PADDING)
        day = _DATE.match(one)
        days.append(day[1] + day[3] + day[4] if day else one[:8])
    return "\\".join(days).encode("latin_1")


# The needles of the last files' values with those of their items: files of a series share them (the same tuple,
# one index for them all).
_WITH_NESTED: dict[tuple[int, tuple[NestedValue, ...], tuple[str | None, bytes | None]],
                   tuple[tuple[Needle, ...], tuple[Needle, ...]]] = {}


def _with_nested(base: tuple[Needle, ...], nested: tuple[NestedValue, ...],
                 charset: tuple[str | None, bytes | None]) -> tuple[Needle, ...]:
    found = {_same_search(n): n for n in base}
    for tag, vr, value, own in nested:
        for declared in (charset, ("CS", own)) if own is not None and own != charset[1] else (charset,):
            one: dict[BaseTag, DataElement | RawDataElement] = {BaseTag(tag): _raw(tag, vr or None, value)}
            if declared[1] is not None:
                one[BaseTag(SPECIFIC_CHARACTER_SET)] = _raw(SPECIFIC_CHARACTER_SET, declared[0], declared[1])
            for needle in _element_needles(Dataset(one), tag):
                found.setdefault(_same_search(needle), needle)
    return base if len(found) == len(base) else tuple(sorted(found.values(), key=lambda n: len(n.data), reverse=True))


def _element_needles(ds: Dataset, tag: int) -> list[Needle]:
    """The needles of the values of one element of `ds`, named by its keyword (a private one by its tag)."""
    declared = _declared(ds)
    keyword = keyword_for_tag(tag) or tag_text(tag)
    return [needle for value in _undeclared_values(ds, tag, declared) + _values(ds, tag)
            for needle in _value_needles(keyword, str(value), isinstance(value, PersonName), declared)]


def item_identity(ds: Dataset, depth: int = 0, charset: bytes | None = None) -> Iterator[NestedValue]:
    """The values searched for beside the top level's (`searched_beside`) that `ds` and its items at any depth hold,
    as pydicom reads them: what the engine finds in a file's bytes for `nested_needles` (verify reads the originals
    so). `charset`: an enclosing item's set."""
    if depth and SPECIFIC_CHARACTER_SET in ds:
        charset = _declared_value(ds.get_item(SPECIFIC_CHARACTER_SET)) or charset
    meta: Dataset = (getattr(ds, "file_meta", None) if not depth else None) or Dataset()
    for tag in META_AE_TITLES:  # (as the engine adds them: `engine._Job.full`)
        title = meta.get(tag)
        if title is not None and title.value:
            yield tag, "AE", str(title.value).encode("latin_1", "replace"), None
    for tag in list(ds.keys()):
        element = ds.get_item(tag)
        if (isinstance(element, RawDataElement) and element.value and element.VR != "SQ"
                and searched_beside(int(tag), element.VR or "", depth)):
            yield int(tag), element.VR or "", bytes(element.value), charset
        elif element.VR == "SQ" or (element.VR in (None, "UN") and dictionary_vr(int(tag)) == "SQ"):
            for item in _items(ds, int(tag)):
                yield from item_identity(item, depth + 1, charset)
        elif element.VR in (None, "UN") and isinstance(element.value, bytes) and parses_as_sequence(element.value):
            for item in _un_items(element.value):  # (what pydicom leaves as bytes, the engine opens: a vendor's)
                yield from item_identity(item, depth + 1, charset)


def _un_items(value: bytes) -> list[Dataset]:
    """The items of a value stored as UN whose bytes are those of a sequence (implicit VR little endian, PS3.5
    6.2.2), as the engine opens them; none if pydicom cannot read them."""
    try:
        return [item for item in convert_SQ(value, True, True) if isinstance(item, Dataset)]
    except (ValueError, TypeError, LookupError, EOFError, OSError, NotImplementedError, struct.error):
        return []


@lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str:
    """The standard dictionary's VR of `tag`, UN when the dictionary does not know it."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _declared_value(element: DataElement | RawDataElement | None) -> bytes | None:
    """A SpecificCharacterSet element's value as stored (its terms joined by backslashes), None when empty."""
    if element is None:
        return None
    if isinstance(element, RawDataElement):
        return bytes(element.value) if element.value else None
    return "\\".join(_declared_terms(element)).encode("ascii", "replace") or None


def _raw(tag: int, vr: str | None, value: bytes) -> RawDataElement:
    return RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def _declared_terms(element: DataElement | RawDataElement) -> list[str]:
    value = element.value
    return [str(v) for v in value] if isinstance(value, (list, MultiValue)) else [str(value or "")]


def _items(ds: Dataset, tag: int) -> list[Dataset]:
    """The items of a sequence (also one stored as UN), none if it is absent or pydicom cannot read it (an
    undefined-length UN inside a big endian one: its OSError)."""
    if tag not in ds:
        return []
    try:
        value = ds[tag].value
    except (ValueError, TypeError, LookupError, EOFError, OSError, NotImplementedError):
        return []
    return [item for item in value if isinstance(item, Dataset)] if isinstance(value, Sequence) else []


def _declared(ds: Dataset) -> tuple[str, ...]:
    """The Python codecs of the dataset's character sets (none for the default repertoire)."""
    if SPECIFIC_CHARACTER_SET not in ds:
        return ()
    try:
        terms = _declared_terms(ds[SPECIFIC_CHARACTER_SET])
        return tuple(e for e in convert_encodings([t for t in terms if t] or ["ISO_IR 6"]) if e != "iso8859")
    except (LookupError, ValueError, TypeError):
        return ()


def _values(ds: Dataset, tag: int) -> list[object]:
    """The element's values as pydicom decodes them; a plain one-value ASCII text is taken without decoding."""
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) and _PLAIN.fullmatch(raw.value):
        text = raw.value.decode("ascii").rstrip(" ")
        vr = dictionary_VR(tag) if raw.VR in (None, "UN") else raw.VR
        return [PersonName(text) if vr == "PN" else text]
    try:
        value = ds[tag].value
    except (ValueError, TypeError, LookupError):
        return []
    if value is None:
        return []
    return list(value) if isinstance(value, (list, MultiValue)) else [value]


def _undeclared_values(ds: Dataset, tag: int, declared: tuple[str, ...]) -> list[object]:
    """The values of an element whose bytes are in a character set the file does not declare, decoded as they may
    have been written; none for another element. (Read before `_values`, which decodes the element in `ds`.)

    - UTF-8 though the file declares another character set: a program wrote UTF-8 whatever the header says.
    - Other bytes outside ASCII where the file declares no character set (so pydicom reads them as Latin-1) or a
      Latin one: also as each usual Cyrillic and Greek code page writes letters ("Квоксворт" in Windows-1251 of an
      old scanner that declares ISO_IR 100 or nothing).
    - Bytes the declared character sets cannot read (or an ISO 2022 escape none of them switches to): also as
      each usual code page of Europe and East Asia writes letters (found from outside: Latin-1, Windows-1250,
      Shift-JIS, EUC-JP, GBK, Big5 and EUC-KR names under UTF-8 or ISO 2022 went unread, and were released even
      where copied byte for byte).
    A reading that reads as a name would (`_decoded`) is kept; it is then searched in every encoding, so one that
    is right finds every copy. Bytes that read as declared are not guessed at (found from outside: the readings of
    a Hebrew or Greek name in other code pages made the file's search several times slower).
    """
    raw = ds.get_item(tag)
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return []
    data = raw.value
    escaped = b"\x1b" in data and any(code in data and codec not in declared for code, codec in _ESCAPES.items())
    if data.isascii() and not escaped:
        return []
    texts: list[str] = []
    if escaped:  # (ISO 2022 escapes to sets not declared: read as each escape says; found from outside, released)
        texts = [t for t in [_reads_as_declared(data, _ISO_2022)] if t]
    elif not data.isascii() and "utf_8" not in declared:
        with suppress(UnicodeDecodeError):
            texts = [data.decode("utf-8").rstrip(" \x00")]
    if not texts:
        misread = escaped or bool(declared) and not _reads_as_declared(data, declared)
        guessed = _MISREAD if misread else _GUESSED if _LATIN_SETS.issuperset(declared) else ()
        texts = [t for t in dict.fromkeys(_decoded(data, c) for c in guessed) if t]
    vr = dictionary_VR(tag) if raw.VR in (None, "UN") else raw.VR
    return [PersonName(v) if vr == "PN" else v for text in texts for v in text.split("\\")]


_GUESSED = ("cp1251", "koi8_r", "cp866", "iso8859_5", "cp1253")
# Declared sets in which an old scanner's Cyrillic or Greek code page reads as Latin letters (none declared: Latin-1)
_LATIN_SETS = frozenset({"latin_1", "iso8859_2", "iso8859_3", "iso8859_4", "iso_ir_148", "iso8859_15"})
_MISREAD = ("cp1252", "cp1250", "iso8859_2", "cp1254", "cp1258", "cp850", "mac_roman", *_GUESSED, "cp1255",
            "iso8859_8", "cp1256", "tis_620", "shift_jis", "euc_jp", "iso2022_jp", "gb18030", "big5", "cp949",
            "iso2022_kr")


def _reads_as_declared(data: bytes, declared: tuple[str, ...]) -> str:
    """`data` as pydicom reads it in the declared character sets, if every byte is understood; else ""."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (pydicom's says what it could not read: values are never shown)
            text = decode_bytes(data, list(declared), TEXT_VR_DELIMS)
    except (LookupError, ValueError):
        return ""
    return "" if "\ufffd" in text else text.rstrip(" \x00")


# The ISO 2022 escape sequences DICOM uses and the sets they switch to (pydicom's table), but the one back to ASCII,
# which every declared set allows (a correctly declared Japanese name ends in it: it was read again for nothing)
_ESCAPES = {code: codec for code, codec in CODES_TO_ENCODINGS.items() if code != b"\x1b(B"}
_ISO_2022 = ("iso_ir_6", *dict.fromkeys(CODES_TO_ENCODINGS.values()))


def _decoded(data: bytes, codec: str) -> str:
    """`data` as `codec` reads it, if it reads as a name would: every character outside ASCII a letter (or a mark on
    one), all of one script, and one of another script than Latin not run together with an ASCII letter (a wrong
    code page mixes them: "Quxw鰎thy", "Quxwцrthy"); else ""."""
    try:
        text = data.decode(codec).rstrip(" \x00")
    except UnicodeDecodeError:
        return ""
    scripts = set()
    for i, c in enumerate(text):
        if c.isascii() or unicodedata.category(c).startswith("M"):  # (a mark: Thai vowels, Vietnamese tones)
            continue
        script = _script(c)
        beside = text[max(i - 1, 0):i + 2]
        if not c.isalpha() or script != "LATIN" and any(b.isascii() and b.isalpha() for b in beside):
            return ""
        scripts.add(script)
    if scripts == {"LATIN"} and 2 * sum(not c.isascii() for c in text) > sum(c.isalpha() for c in text):
        return ""  # (a Latin name is mostly plain letters: "Ðáðáäüðïõëïò" is Greek read as Latin-1)
    return text if len(scripts) <= 1 else ""


def _script(c: str) -> str:
    """The script of a letter by its Unicode name's first word, those of East Asia as one ("CJK")."""
    word = unicodedata.name(c, "").partition(" ")[0]
    return "CJK" if word in _EAST_ASIAN else word


# (with the iteration mark 々 and the long-vowel mark ー: found from outside, "佐々木" read as two scripts)
_EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "IDEOGRAPHIC", "HANGUL", "HALFWIDTH",
                         "FULLWIDTH"})


def is_dummy(text: str) -> bool:
    """Whether `text` is a dummy value or one of our pseudonyms (so no needle)."""
    folded = text.strip().casefold()
    return not folded or folded in DUMMIES or bool(_PSEUDONYM.match(folded)) or folded.startswith("2.25.")


@lru_cache(maxsize=1024)  # (a few subjects' values: a file's needles are made from some forty)
def _value_needles(keyword: str, value: str, person: bool, declared: tuple[str, ...]) -> tuple[Needle, ...]:
    """The needles of one value (cached: the files of a series share their values, and so their patterns); of one
    written in another script's digits, also those of it in ASCII digits (found from outside: a telephone number
    so written was no needle); of an ID or a telephone number written with full-width characters, other dashes or
    spaces, or characters that show nothing, also those of it in ASCII ones (`plain_number`: found from outside,
    such a value's groups were not read, and its copies were released)."""
    text = value.strip(_PADDING)
    western = plain_number(text) if keyword in IDS or keyword in PHONES else text.translate(OTHER_DIGITS)
    return _stripped_needles(keyword, text, person, declared) + (
        _stripped_needles(keyword, western, person, declared) if western != text else ())


def plain_number(text: str) -> str:
    """An ID's or number's text in ASCII where it can be: full-width characters as ASCII ones (NFKC), another
    script's digits as ASCII digits, every dash as a hyphen, every space as a space, and a character that shows
    nothing as a space (it stands between groups)."""
    if text.isascii():
        return text
    return _INVISIBLE_RUN.sub(" ", unicodedata.normalize("NFKC", text)).translate(OTHER_DIGITS).translate(_PUNCTUATION)


def _stripped_needles(keyword: str, text: str, person: bool, declared: tuple[str, ...]) -> tuple[Needle, ...]:
    if keyword in TELECOMS:
        return tuple(needle for named in telecom_values(text) for needle in _needles_of(keyword, named, person,
                                                                                         declared))
    return _needles_of(keyword, text, person, declared)


def telecom_values(text: str) -> list[str]:
    """What the URIs of a telecom value name, each without its scheme and parameters: a number ("tel:+44 1632
    960517;ext=42"), an address, and an address's own part when it is no common word, of six characters or more
    with a digit or a point ("zeldaq87" of "zeldaq87@example.org": found from outside, released alone)."""
    named = []
    for uri in _BETWEEN_URIS.split(text):
        value = _URI_SCHEME.sub("", uri.strip(_PADDING + ";,")).split(";")[0].strip(_PADDING)
        if value:
            named.append(value)
        own = value.partition("@")[0] if "@" in value else ""
        if len(own) >= 6 and any(c.isdigit() or c in "._-" for c in own):
            named.append(own)
    return named


def _needles_of(keyword: str, text: str, person: bool, declared: tuple[str, ...]) -> tuple[Needle, ...]:
    other = OTHER_ENCODINGS if not text.isascii() else ()
    encodings = tuple(dict.fromkeys((*BASE_ENCODINGS, *declared, *other)))
    if keyword.endswith("UID"):  # (a `2.25.` one too: full remaps it, another system's or ours of an earlier run)
        return _uid_needles(keyword, text, encodings, declared)
    if is_dummy(text) or keyword in DEVICE_IDS and not any(c.isdigit() for c in text):
        return ()
    date = _date_needles(keyword, text, encodings, declared) if _dated_keyword(keyword) else None
    if date is not None:
        return date
    texts, glued = _name_forms(keyword, text, person)
    out = list(_joined_id_needles(keyword, text, encodings, declared))
    calendar = _DATE.match(text) if keyword in CALENDAR_DATES else None
    forms = _date_forms(calendar) if calendar is not None else None
    if calendar is not None and forms is not None:
        out.append(Needle(keyword, f"{calendar[1]}{calendar[3]}{calendar[4]}".encode(), forms, encodings, declared))
    if keyword in IDS:  # (a joined ID's needle stands for it as written and without separators)
        texts = texts | id_texts(text) if not out else {t for t in id_texts(text) if t.isdigit()}
    if keyword.endswith("Address"):
        texts |= street_texts(text) | (town_texts(text) if keyword == "PatientAddress" else set())
    if keyword in PHONES:
        out += _phones_needles(keyword, text, encodings, declared)
    for form_text in texts:
        data = fold(form_text).encode("utf-8")
        if (_worth_searching(data) and _shortest(form_text, encodings) >= MIN_TEXT and not is_dummy(form_text)
                and fold(form_text) not in maker_names()):
            out += _text_needles(keyword, form_text, data, glued.get(form_text, ()), encodings, declared)
        else:  # too short as written, long enough in Latin letters: "张" is "Zhang", as long as a Latin family name
            # searched alone (found from outside: released)
            out += _romanized_needle(keyword, form_text, declared)
    return tuple(out)


def _romanized_needle(keyword: str, text: str, declared: tuple[str, ...]) -> list[Needle]:
    """The needle of `text` romanized (`romanized_form`), if it is kana, Hangul or Han text: one of its own, looked
    for by its own keys (a form of the text's needle, it left that needle no keys, and each file was searched whole
    with its pattern: found from outside, a Chinese patient's file took 55 ms more)."""
    form = romanized_form(text)
    if form is None:
        return []
    spelled = "".join(token[0] for token in form.tokens).encode("ascii")
    return [Needle(keyword, spelled, (form,), BASE_ENCODINGS, declared)]


def _text_needles(keyword: str, text: str, data: bytes, glued: tuple[Form, ...], encodings: tuple[str, ...],
                  declared: tuple[str, ...]) -> list[Needle]:
    """The needle of one text a value is searched as, with its forms; and that of the text garbled
    (`misread_forms`), of its own: their keys are no other form's."""
    composed = unicodedata.normalize("NFC", text)  # (a value stored decomposed: its accented letters as such,
    # found from outside: "Müllers" was released for a PatientName "Mu\u0308ller", none of its letters accented)
    forms = (Form(((text,),), DIGIT, DIGIT),) if text.isdigit() else word_forms(composed)
    if keyword in IDS and runs_on(text):  # (an ID of groups too short for `id_form`: "QX12ZB34")
        forms = (replace(text_form(text), left=NONE, right=NONE),)
    widths = [text_form(t) for t in sorted(kana_forms(text)) if _shortest(t, encodings) >= MIN_TEXT]
    # decomposed, marks written apart (as macOS names files): found from outside, "Mu\u0308ller" was held, not cut;
    # each mark there (without them it is the ASCII spelling, a word: `word_forms`)
    if (decomposed := unicodedata.normalize("NFD", composed)) != composed:
        apart, written = text_form(decomposed), text_form(composed)  # (the boundaries of the name as written)
        widths.append(replace(apart, tokens=tuple(tuple(a for a in t if a) or t for t in apart.tokens),
                              left=written.left, right=_as_written_end(composed, written.right)))
    widths += [latin_form(text)] if _CYRILLIC_OR_GREEK.search(text) else []
    grouped = (*grouped_forms(text), *spaced_forms(text), *padded_forms(text)) \
        if keyword in IDS and keyword not in PHONES else ()
    found = [Needle(keyword, data, (*forms, *widths, *glued, *grouped), encodings, declared),
             *_romanized_needle(keyword, text, declared)]
    spellings = (composed, text) if text != composed else (text,)  # (stored decomposed: garbled either way)
    for garbled, readers in (f for spelled in spellings for f in misread_forms(spelled)):  # (a needle each)
        known_by = fold(garbled.text or "".join(t[0] for t in garbled.tokens)).encode("utf-8")
        needle = Needle(keyword, known_by, (garbled,), (*MISREAD_ENCODINGS, *readers), declared, in_text=False)
        # (in its readers' one-byte encodings a form may give no keys of three bytes: then in UTF-8 and UTF-16 alone;
        # a form of too many ways to key on, none at all, as CJK text read as Hebrew: searched in every header, it
        # would cost each file more than all the others)
        found += [n for n in (needle, replace(needle, encodings=MISREAD_ENCODINGS)) if n.keys][:1]
    return found


def _dated_keyword(keyword: str) -> bool:
    """Whether `keyword` names a date or a date-time (DateOfLastCalibration too)."""
    return keyword.endswith(("Date", "DateTime")) or keyword in DATED_KEYWORDS


DATED_KEYWORDS = frozenset(entry[4] for entry in DicomDictionary.values() if entry[0] in _DATED_VRS)


def _name_forms(keyword: str, text: str, person: bool) -> tuple[set[str], dict[str, tuple[Form, ...]]]:
    """The texts a value is searched as (a name's also as `name_texts` gives them) and the glued forms of its
    family name."""
    named = person or keyword.endswith("Name") or "Physician" in keyword or keyword in PLACES
    texts, glued = ({text} | name_texts(text), glued_forms(text)) if named else ({text}, {})
    words = text.split()
    if person:
        texts |= _run_together(text)
        if len(words) > 1 and _long_enough(words):  # a person's words run together ("ZELDAQUXWORTH": found from
            texts.add("".join(words))  # outside), two also the other way round ("QUXWORTHZELDA", as with a caret)
        if len(words) == 2 and _long_enough(words):
            texts.add(words[1] + words[0])
    elif len(words) > 1 and keyword in PLACES:
        # a place's words run together, also some of them in a row ("RAYFIELD", "FAKEHOSPITALWEST", "GrumbletonValley"
        # for "Grumbleton Valley Infirmary": found from outside); one of them must name the place alone: not a run of
        # technical or short words, "HeadNeck", "dela" of "de la" (found from outside), nor a station's name,
        # "PrismaFit", which coils' and series' names hold
        texts |= {"".join(run) for run in (words[a:b] for a in range(len(words)) for b in range(a + 2, len(words) + 1))
                  if any(_names_a_place(w) for w in run)}
    if keyword in PLACES:  # a word that names a kind of place alone ("Brain", "Hospital", "FMRI") names none
        texts = {t for t in texts if fold(t) not in institution_words()}
    return texts, glued


def _date_needles(keyword: str, text: str, encodings: tuple[str, ...],
                  declared: tuple[str, ...]) -> tuple[Needle, ...] | None:
    """A date's needle, one of its English forms, and ones with a Japanese era or a Minguo year; None if `text` is
    no date."""
    date = _DATE.match(text)
    forms = _date_forms(date) if date is not None else None
    if date is None or forms is None:
        return None
    found = [Needle(keyword, f"{date[1]}{date[3]}{date[4]}".encode(), forms, encodings, declared)]
    y, m, d = int(date[1]), int(date[3]), int(date[4])
    found.append(Needle(keyword, f"{d:02d}{_ENGLISH_MONTHS[m - 1]}{y % 100:02d}".encode(), english_date_forms(y, m, d),
                        encodings, declared))
    era, minguo = era_forms(y, m, d), minguo_form(y, m, d)  # (needles of their own: they have no ASCII run)
    if era:
        in_kanji = tuple(dict.fromkeys((*encodings, *CJK_ENCODINGS)))  # (no other writes a kanji)
        found.append(Needle(keyword, fold(era[0].text).encode(), era, in_kanji, declared))
    if minguo:  # (in the encodings of Chinese text only: each other one's bytes make every series' index larger)
        in_chinese = tuple(dict.fromkeys((*encodings, "big5", "gb18030")))
        found.append(Needle(keyword, fold(minguo.text).encode(), (minguo,), in_chinese, declared))
    return tuple(found)


def _joined_id_needles(keyword: str, text: str, encodings: tuple[str, ...],
                       declared: tuple[str, ...]) -> tuple[Needle, ...]:
    """An ID of several groups, with any separator between them (`id_form`); none for another value."""
    form = id_form(text) if keyword in IDS and keyword not in PHONES else None
    if form is None:
        return ()
    spaced = spaced_forms(re.sub(r"[^0-9A-Za-z]", "", text))
    return (Needle(keyword, fold(text).encode("utf-8"), (form, *spaced), encodings, declared),)


def _uid_needles(keyword: str, text: str, encodings: tuple[str, ...], declared: tuple[str, ...]) -> tuple[Needle, ...]:
    """A UID as written, or as the root of a longer UID ("<uid>.1"), not inside a number; looked for by its end
    (its start is the root of every UID its maker writes)."""
    if not _UID.fullmatch(text):
        return ()
    return (Needle(keyword, text.encode(), (Form(((text,),), DIGIT, DIGIT, anchor=text[-8:]),), encodings, declared),)


def instance_needles(ds: Dataset) -> tuple[Needle, ...]:
    """The instance's own UID, a needle of its own: `full` remaps it, and the original left in a kept value would
    link the output to its source file. Made per file (the series' needles are shared: one index for them all).
    (Its dates, an acquisition's after midnight among them, are searched for as every date is: `searched_beside`.)"""
    return _uid_needles("SOPInstanceUID", _raw_text(ds, SOP_INSTANCE_UID), BASE_ENCODINGS, ())


def _raw_text(ds: Dataset, tag: int) -> str:
    """An element's value as ASCII text, "" when absent; read as it is: decoding it would change `ds`, whose raw
    values key the series' caches."""
    raw = ds.get_item(base_tag(tag))  # (None when absent; by the one tag object, as above)
    value = raw.value if raw is not None else None
    return (value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")).strip(" \x00")


@lru_cache(maxsize=1)
def maker_names() -> frozenset[str]:
    """Known manufacturer and model names (folded): a station called after its maker ("PHILIPS-1A2B3C") is
    identified by the rest of its name, not by the maker's, which every private creator of that maker holds."""
    text = resources.files("neuroanon").joinpath("data/vocabulary.json").read_text(encoding="utf-8")
    return frozenset(fold(m) for m in json.loads(text)["makers"])


@lru_cache(maxsize=1)
def institution_words() -> frozenset[str]:
    """Words that name a kind of institution, a department, a specialty, an organ or an imaging method (folded):
    an institution's name is searched for whole and by its other words, never by these alone."""
    text = resources.files("neuroanon").joinpath("data/vocabulary.json").read_text(encoding="utf-8")
    return frozenset(fold(m) for m in json.loads(text)["institution_words"])


# Names of places: an institution, its department, where a procedure was done or is to be done. Each is searched
# for whole and by the words that name it, not by a word for a kind of place alone (found from outside: a GE fMRI
# series "performed" in "FMRI" was held whole, its Protocol Data Block keeping the imaging option FMRI that
# dcm2niix reads; and a location's own word, "Plimsworth" of "Plimsworth FMRI 2", was released in a description).
PLACES = frozenset({"InstitutionName", "InstitutionalDepartmentName", "PerformedLocation",
                    "ScheduledProcedureStepLocation"})


@lru_cache(maxsize=1)
def toolkit_names() -> tuple[str, ...]:
    """Known toolkits' ImplementationVersionName prefixes (folded)."""
    text = resources.files("neuroanon").joinpath("data/vocabulary.json").read_text(encoding="utf-8")
    return tuple(fold(m) for m in json.loads(text)["implementations"])


def beyond_toolkit_name(text: str, needle: Needle) -> bool:
    """Whether an ImplementationVersionName `text` holds `needle` other than in a known toolkit's name it starts
    with ("OFFIS_DCMTK_351" holds the institution OFFIS only in DCMTK's name)."""
    value = fold(text.strip(" \x00"))
    toolkit = max((name for name in toolkit_names() if value.startswith(name)), key=len, default="")
    rest = value[len(toolkit):]
    return bool(count(rest.encode("utf-8"), needle) or find_text(rest, (needle,))) if toolkit else True


def name_texts(text: str) -> set[str]:
    """A person name's parts and the ways people write it: run together, with initials, hyphens as spaces."""
    found = {part for part in re.split(r"[\^=,\s]+", text) if part}
    for part in list(found):
        if re.search(r"[-'’]", part):
            pieces = [p for p in re.split(r"[-'’]+", part) if p]
            found |= {*pieces, " ".join(pieces), "".join(pieces)}
    for group in text.split("=")[1:]:  # the ideographic and phonetic names too ("李娜" for "Li^Na=李^娜")
        found |= _joined(*(_components(group) + ["", ""])[:2])
    family, given = _family_and_given(text)
    found |= _joined(family, given)
    if family and given and len(family) <= 3:  # a short family name counts only next to a given name or an initial
        initial = given[0]
        found |= {f"{initial}. {family}", f"{initial} {family}", f"{family}, {initial}.", f"{family} {initial}",
                  f"{family}, {initial}", f"{initial}.{family}", f"{initial}{family}", f"{family}{initial}"}
    return found


def _run_together(text: str) -> set[str]:
    """A person's family name of several words (parted by spaces, hyphens or apostrophes) run together from any of
    its words on, and each such run beside the given name run together, either way round ("DELAFAKEZ", "LaFakez",
    "MirelDeLaFakez" for "de la Fakez^Mirel", "TamsinOBriskel" for "O'Briskel^Tamsin", "AnnaMariaVorquist" for "da
    Vorquist^Anna Maria": found from outside, released); each `_long_enough`."""
    family, given = _family_and_given(text)
    words = [w for w in _NAME_WORD_BREAKS.split(family) if w]
    families = {tuple(words[at:]) for at in range(len(words))}
    given_words = tuple(w for w in _NAME_WORD_BREAKS.split(given) if w)
    givens = {given_words} if given_words else set()
    runs = families | givens | {run for f in families for g in givens for run in (g + f, f + g)}
    return {"".join(run) for run in runs if _long_enough(run)}


def _long_enough(words: list[str] | tuple[str, ...]) -> bool:
    """Whether a person's words run together make a form of the name: one of four letters or more, or six letters
    in all; short words alone run together make words of other texts ("delay" of "De Lay", "moco" of "Mo Co": found
    from outside, cleaned from series names; "MacKay" is searched)."""
    return any(len(w) >= MIN_TEXT for w in words) or sum(len(w) for w in words) >= 6


_NAME_WORD_BREAKS = re.compile(r"[-'’\s]+")


def glued_forms(text: str) -> dict[str, tuple[Form, ...]]:
    """A person name's family name (as a key of `name_texts`) with the given name's initial or a title run on before
    it, or the initial after it: "ZQuxworth", "DrQuxworth", "QuxworthZ" (a login, a file's name). Not an s after
    it: a family name that is a noun would take its plural out of descriptions ("fields", "frames": found from
    outside). Forms of the family name's needle: they hold its letters, so they are looked for by the same keys."""
    family, given = _family_and_given(text)
    if not (family and given) or len(family) <= 3 or not family[0].isascii() or not family[-1].isascii():
        return {}  # (a name in another script is found inside a word already: `text_form`)
    tokens, initial = text_form(family).tokens, _char_token(given[0])
    before = Form(((*_TITLES, *initial), *tokens), ALPHA, ALPHA, family)
    after = Form((*tokens, initial), ALPHA, ALPHA if given[0].isascii() else NONE, family)
    return {family: (before, after)}


_TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr", "prof")


def _family_and_given(text: str) -> tuple[str, str]:
    """A person name's family and given name (of its first, alphabetic, representation), "" where absent."""
    family, given = (_components(text.split("=")[0]) + ["", ""])[:2]
    return family, given


def _components(group: str) -> list[str]:
    return [component.strip() for component in group.split("^")]


def _joined(family: str, given: str) -> set[str]:
    """A family and given name written together, in either order; none without both."""
    if not (family and given):
        return set()
    return {f"{given} {family}", f"{family} {given}", f"{family}, {given}", f"{given}{family}", f"{family}{given}"}


def street_texts(text: str) -> set[str]:
    """An address's first line (its street), also without its house number ("FakeElm Road" for
    "0001 FakeElm Road, Fakeville"): the street is often written alone; not a first line of words technical texts
    hold with neither a house number first nor a street's type ("Level 2", a floor: found from outside, "LEVEL 2"
    held a file)."""
    street = re.split(r"[,;\n^]", text, maxsplit=1)[0].strip()
    bare = _HOUSE_NUMBER.sub("", street).strip()
    # (not a floor, "Level 2": words technical texts hold, no house number first, no street's type; "1 Main St #4"
    # and "Main St" are streets: found from outside)
    floor = not street[:1].isdigit() and not _STREET_TYPE.search(street) and _technical(street)
    found = {t for t in (street, bare) if _LETTER.search(t) and not floor}
    return found | {other for t in found for other in _street_types(t)}


def town_texts(text: str) -> set[str]:
    """A patient's address's other parts than its street, its town say, without a postcode ("Fakeville" for
    "0001 FakeElm Road, Fakeville 90210"; found from outside: a town copied into a kept text was released). Not a
    part with a digit left ("Level 2", "Suite 5"), nor one of words that technical texts hold ("Normal", "Echo",
    "Field": a Philips header's IEC_NORMAL, a sequence's name; found from outside, every file was held)."""
    parts = [_POSTCODE.sub("", part.strip()).strip() for part in re.split(r"[,;\n^]", text)[1:]]
    return {part for part in parts if _LETTER.search(part) and not _DIGIT.search(part) and not _technical(part)}


def _names_a_place(word: str) -> bool:
    """Whether a word of a place's name names it alone: not short, a number, a technical word or a word any
    institution's name holds ("Hospital")."""
    return len(word) >= MIN_TEXT and not (fold(word) in institution_words() or _DIGIT.search(word) or _technical(word))


def _technical(text: str) -> bool:
    """Whether every word of `text` is one technical texts hold (`technical_words`)."""
    return all(fold(word) in technical_words() for word in _WORDS.findall(text))


_DIGIT = re.compile("[0-9]")
_WORDS = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def technical_words() -> frozenset[str]:
    """Words technical texts hold (folded): those of the standard's attribute keywords ("Echo", "Field", "Normal"
    of "SurfaceNormal..."), of its defined terms ("IEC_NORMAL"), and the words that name no place alone."""
    words = {fold(word) for entry in DicomDictionary.values()
             for word in re.findall(r"[A-Z][a-z]+|[A-Z]+(?![a-z])", entry[4])}
    vocabulary = json.loads(resources.files("neuroanon").joinpath("data/vocabulary.json").read_text("utf-8"))
    words |= {fold(word) for terms in vocabulary["defined_terms"].values() for term in terms
              for word in re.findall(r"[^\W\d_]+", term)}
    return frozenset(words | set(institution_words()))


_POSTCODE = re.compile(r"^[0-9][0-9-]*\s+|\s+[0-9][0-9-]*$")  # ("91052 Erlangen", "Fakeville 90210")


def _street_types(street: str) -> set[str]:
    """The street with its type written the other ways ("FakeElm Rd" for "FakeElm Road", "Fakestr." for
    "Fakestraße"); none if it ends in no known type."""
    match = _STREET_TYPE.search(street)
    if match is None:
        return set()
    kind = match["kind"].casefold()
    spellings = next(s for s in _STREET_TYPES if kind in s)
    others = {other.casefold(): other for other in spellings}.keys() - {kind}  # ("straße" is "strasse")
    return {street[:match.start("kind")] + other for other in others}


# A street's type and the ways it is written: English after a space, German also at the end of a word
# ("Hauptstr.").
_STREET_TYPES = (
    ("road", "rd"), ("street", "st"), ("avenue", "ave", "av"), ("boulevard", "blvd"), ("drive", "dr"),
    ("lane", "ln"), ("court", "ct"), ("place", "pl"), ("terrace", "terr", "ter"), ("highway", "hwy"),
    ("square", "sq"), ("parkway", "pkwy"), ("crescent", "cres"), ("strasse", "straße", "str"),
)
_STREET_TYPE = re.compile(r"(?P<kind>(?<=\s)(?:" + "|".join(k for s in _STREET_TYPES[:-1] for k in s)
                          + r")|strasse|straße|str)\.?$", re.IGNORECASE)
_HOUSE_NUMBER = re.compile(r"^[0-9]+[a-zA-Z]?\b\.?|\b[0-9]+[a-zA-Z]?$")


def kana_forms(text: str) -> set[str]:
    """Text with its kana written the other ways: katakana in the other width, full-width as half-width
    ("クズワース" as "ｸｽﾞﾜｰｽ") and back, and hiragana as katakana and back ("やまだ" as "ヤマダ": a name's phonetic
    group in one, a copy in the other). A program that copied a name may write any; their bytes differ in every
    encoding."""
    if not _KANA.search(text):
        return set()
    full = _HALF_KANA.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    katakana = full.translate(_TO_KATAKANA)
    forms = {full, katakana, full.translate(_TO_HIRAGANA)}
    return (forms | {"".join(_half_width().get(c, c) for c in form) for form in (full, katakana)}) - {text}


_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa\u30fc\uff61-\uff9f]")
_HALF_KANA = re.compile("[\uff61-\uff9f]+")
_TO_KATAKANA = {c: c + 0x60 for c in range(0x3041, 0x3097)}  # (hiragana and katakana lie 0x60 apart)
_TO_HIRAGANA = {c + 0x60: c for c in range(0x3041, 0x3097)}


@lru_cache(maxsize=1)
def _half_width() -> dict[str, str]:
    """Full-width katakana (and marks) as half-width text: a voiced one as its base and a voicing mark."""
    half = {unicodedata.normalize("NFKC", chr(c)): chr(c) for c in range(0xFF61, 0xFFA0)}
    for c in map(chr, range(0x30A1, 0x30FB)):
        parts = unicodedata.normalize("NFD", c)
        if len(parts) == 2 and parts[0] in half and parts[1] in half:
            half[c] = half[parts[0]] + half[parts[1]]
    return half


def id_texts(text: str) -> set[str]:
    """An ID as also written: without separators, (if numeric) without leading zeros, and with a separator
    where letters and digits meet ("PIDX-93417", "ACCQ 771204" for "PIDX93417", "ACCQ771204"). A run of at least
    `_MIN_GROUPED` digits in it is a number in its own right, searched as a numeric ID is ("48823740" for
    "MRN48823740": the letters, a kind or an issuer, are often left out where the number is copied)."""
    bare = re.sub(r"[^0-9A-Za-z]", "", text)
    found = {bare} if bare else set()
    if bare.isdigit():
        found.add(bare.lstrip("0"))
    else:
        runs = [r for r in _DIGITS.findall(text) if len(r) >= _MIN_GROUPED]
        found |= {n for r in runs for n in (r, r.lstrip("0")) if len(n) >= _MIN_GROUPED}
    groups = _LETTERS_OR_DIGITS.findall(bare)
    if len(groups) > 1:
        found |= {separator.join(groups) for separator in _ID_SEPARATORS}
    return found


def id_form(text: str) -> Form | None:
    """An ID's groups of letters and of digits, with any usual separator or none between them ("ZQ4471-0093",
    "ZQ–4471–0093" for "ZQ-4471-0093"); None for an ID of one group, or of groups too short to look for first.

    One of letters and digits, `_MIN_SPACED` characters or more, is found also where other letters or digits run on
    before or after it ("xQX771234", "QX7712344d" in a Siemens CSA item's text): no word or number holds it by
    chance, so it stands between no boundaries. (A number alone keeps its boundaries: it could be part of another.)
    """
    groups = _LETTERS_OR_DIGITS.findall(text)
    if len(groups) < 2 or max(len(g) for g in groups) < 3 or not text.isascii():
        return None
    tokens: list[Token] = [(groups[0].lower(),)]
    for group in groups[1:]:
        tokens += [_ID_JOINS, (group.lower(),)]
    if runs_on("".join(groups)):
        return Form(tuple(tokens), NONE, NONE, text)
    bound = {True: DIGIT, False: ALPHA}
    return Form(tuple(tokens), bound[groups[0].isdigit()], bound[groups[-1].isdigit()], text)


def runs_on(text: str) -> bool:
    """Whether an ID is found also where other letters or digits run on before or after it: one of ASCII letters and
    digits, both, `_MIN_SPACED` characters or more (no word or number holds it by chance)."""
    return len(text) >= _MIN_SPACED and text.isascii() and text.isalnum() and not text.isalpha() \
        and not text.isdigit()


def spaced_forms(text: str) -> tuple[Form, ...]:
    """An ID of six characters or more written one at a time, with one separator throughout ("Q X 7 7 1 2 3 4",
    "7-7-1-2-3-4" for "QX771234", "771234"); none for another value."""
    chars = text.lower()
    if len(chars) < _MIN_SPACED or not (chars.isascii() and chars.isalnum()):
        return ()
    bound = {True: DIGIT, False: ALPHA}
    return tuple(Form(((between.join(chars),),), bound[chars[0].isdigit()], bound[chars[-1].isdigit()])
                 for between in " -._")  # (each a literal: a form of alternatives alone has none to look for first)


_MIN_SPACED = 6


def padded_forms(digits: str) -> tuple[Form, ...]:
    """A numeric ID with leading zeros before it, as a system that writes IDs of a fixed width pads it ("0004711203"
    for "4711203": found from outside, released); none for another value."""
    if not (digits.isdigit() and digits.isascii() and len(digits) < _PADDED_WIDTH):
        return ()
    return (Form((tuple("0" * n for n in range(_PADDED_WIDTH - len(digits), 0, -1)), (digits,)), NUMBER, DIGIT),)


_PADDED_WIDTH = 16


def grouped_forms(digits: str) -> tuple[Form, ...]:
    """A numeric ID of 8 to 12 digits written in two or three groups of at least two digits with a separator between
    them ("4471-009-312", "123 45 6789" for "4471009312", "123456789"); none for another value. Each form holds a
    group of three digits or more, to be looked for first."""
    n = len(digits)
    if not (digits.isdigit() and digits.isascii() and _MIN_GROUPED <= n <= _MAX_GROUPED):
        return ()
    cuts = [(i,) for i in range(2, n - 1)] + [(i, j) for i in range(2, n - 3) for j in range(i + 2, n - 1)]
    forms = []
    for cut in cuts:
        groups = [digits[a:b] for a, b in zip((0, *cut), (*cut, n), strict=True)]
        if max(len(g) for g in groups) >= 3:
            tokens: list[Token] = [(groups[0],)]
            for group in groups[1:]:
                tokens += [_GROUP_JOINS, (group,)]
            forms.append(Form(tuple(tokens), DIGIT, DIGIT))
    return tuple(forms) + _thousands_forms(digits)


def _thousands_forms(digits: str) -> tuple[Form, ...]:
    """A numeric ID in groups of three digits from the right, as a number of thousands is written ("77,123,456",
    "77.123.456" for "77123456"), also with its last one or two digits apart as a check digit ("12.345.678-5",
    "123.456.789-09", as Chilean and Brazilian national numbers are written); three groups at least (one point makes
    a decimal number)."""
    forms = []
    for check in (0, 1, 2):
        head, tail = digits[: len(digits) - check], digits[len(digits) - check :]
        groups = [head[max(0, i - 3) : i] for i in range(len(head), 0, -3)][::-1]
        if len(groups) < 3:
            continue
        tokens: list[Token] = [(groups[0],)]
        for group in groups[1:]:
            tokens += [_THOUSANDS, (group,)]
        if tail:
            tokens += [("-", " ", "/"), (tail,)]
        forms.append(Form(tuple(tokens), DIGIT, DIGIT))
    return tuple(forms)


_THOUSANDS = (".", ",", " ", "'")


# The dashes of typesetting and of other scripts' text: hyphen, non-breaking hyphen, figure dash, en and em dash,
# minus sign, small and full-width hyphen-minus (found from outside: a copy so written was released)
_DASHES = ("\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe63", "\uff0d")
# A tab, runs of spaces, the no-break, en, em, thin, narrow no-break and ideographic space (found from outside: a
# copy's groups so spaced were released)
_SPACES = ("\t", "  ", "   ", "\u00a0", "\u2002", "\u2003", "\u2009", "\u202f", "\u3000")
# Every dash of Unicode 14 (its category Pd), the minus sign and the hyphen bullet, the modifier minus, and
# Windows-1252's en and em dash as Latin-1 reads them (C1 controls); every space but ASCII's (Zs) and the line
# breaks of Unicode; the slashes of division, fractions and Arabic dates: decoded text is compared with each as a
# hyphen, a space or a slash ("1973\u201304\u201312" as "1973-04-12": found from outside, dates so copied were
# released). A test checks the dashes and spaces against the running Python's.
DASH_CHARACTERS = ("\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40"
                   "\u2e5d\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead\u2212\u2043\u02d7\x96\x97")
SPACE_CHARACTERS = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
LINE_BREAKS = "\x85\u2028\u2029"
SLASH_CHARACTERS = "\u2215\u2044\u060d"
_PUNCTUATION = str.maketrans(dict.fromkeys(DASH_CHARACTERS, "-") | dict.fromkeys(SPACE_CHARACTERS + LINE_BREAKS, " ")
                             | dict.fromkeys(SLASH_CHARACTERS, "/"))
# A backslash (the groups as values of their own), a line break, a plus, an apostrophe, an asterisk, an equals sign
# (found from outside)
_MORE_SEPARATORS = ("\\", "\r\n", "\n", "+", "'", "*", "=")
# Not run together (that is the ID as written), nor with a point or an underscore: "1234.5678" is a decimal number,
# and a header holds thousands; a shorter ID's digits would recur in them by chance. Nor with a backslash: integer
# multi-values hold such runs (a display colour "220\160\120": found from outside).
_GROUP_JOINS = ("-", " ", "/", " - ", *_DASHES, "\t", "\u00b7", "|", "\uff0f",
                *(mark for mark in _MORE_SEPARATORS if mark != "\\"))
_MIN_GROUPED, _MAX_GROUPED = 8, 12


def phone_form(groups: list[str]) -> Form:
    """A telephone number's groups of digits, as written, between any of the usual separators
    ("(555) 123-4567", "555.123.4567" for "555-123-4567")."""
    tokens: list[Token] = [(groups[0],)]
    for group in groups[1:]:
        tokens += [_PHONE_SEPARATORS, (group,)]
    return Form(tuple(tokens), DIGIT, DIGIT)


def _phone_needles(keyword: str, text: str, encodings: tuple[str, ...],
                   declared: tuple[str, ...]) -> list[Needle]:
    """A telephone number's digit groups between any separators (a needle that stands for the bare digits too), and
    its national forms (`national_groups`). One digit throughout ("000-000-0000") is a placeholder, no needle (found
    from outside: its ten zeros matched the zeros our blanking writes for UIDs in a Siemens protocol's text)."""
    out: list[Needle] = []
    groups = _DIGITS.findall(text)
    if len(set("".join(groups))) < 2:
        return out
    if len(groups) > 1 and _worth_searching("".join(groups).encode()):
        out.append(Needle(keyword, "".join(groups).encode(), (phone_form(groups),), encodings, declared))
    national = national_groups(text, groups)
    if national and _worth_searching("".join(national).encode()):
        forms = (phone_form(national), phone_form(["0" + national[0], *national[1:]]))
        out.append(Needle(keyword, "".join(national).encode(), forms, encodings, declared))
    return out


def _phones_needles(keyword: str, text: str, encodings: tuple[str, ...], declared: tuple[str, ...]) -> list[Needle]:
    """A telephone value's needles: a number without letters whole, as its groups run ("089/12345678"), and each
    number it holds (`_phone_parts`)."""
    whole = [] if _LETTER.search(text) else [text]
    return [needle for phone in dict.fromkeys([*whole, *_phone_parts(text)])
            for needle in _phone_needles(keyword, phone, encodings, declared)]


def _phone_parts(text: str) -> list[str]:
    """The telephone numbers a value holds, one before "/", ";", "," or "|" and one after, each as written before
    what may follow it (an extension, "ext. 42", "x42", ",,42"; a note, "(mobile)"; a sip address's host), with its
    "(0)" and a leading "00" for "+" read as dialled (found from outside: each of these left the number unsearched)."""
    numbers = []
    for part in re.split(r"[/;,|]", text):
        found = _PHONE_START.match(part.strip(_PADDING))
        if found is not None:
            number = found[0].replace("(0)", " ")
            numbers.append("+" + number[2:] if number.startswith("00") else number)
    return numbers


def national_groups(text: str, groups: list[str]) -> list[str]:
    """A telephone number's groups of digits without its country code ("+44 1632 960183") or its trunk 0 ("01632
    960183"), as it is written at home or abroad (`phone_form`s of them, with and without the 0, are its national
    forms); none for a number written neither way."""
    if text.lstrip().startswith("+") and len(groups) > 2:
        return groups[1:]
    if len(groups) > 1 and groups[0].startswith("0") and not groups[0].startswith("00") and len(groups[0]) > 1:
        return [groups[0][1:], *groups[1:]]
    return []


PHONES = frozenset({"PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers", "PersonTelephoneNumbers",
                    "PatientTelecomInformation", "PersonTelecomInformation"})
# Telecom values are URIs ("tel:+44 1632 960517\mailto:zq@example.org"): each searched as what it names, a number as
# a telephone's
TELECOMS = frozenset({"PatientTelecomInformation", "PersonTelecomInformation"})
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:(?://)?")
# Between a telecom value's URIs: a backslash, a line break, or ";" or "," before the next URI's scheme (found from
# outside: "tel:01632 960517; mailto:...", one URI a line)
_BETWEEN_URIS = re.compile(r"[\\\r\n]+|[;,]\s*(?=[A-Za-z][A-Za-z0-9+.-]*:)")
# Dates in another calendar ("1365/12/23"): their numbers searched as a date's too (found from outside: "23/12/1365")
CALENDAR_DATES = frozenset({"PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar"})
_DIGITS = re.compile(r"[0-9]+")
_LETTER = re.compile(r"[^\W\d_]")
# Also the spaces and dashes above, a dash or point with a space on one side or both, and the marks put between
# groups: an underscore, a middle dot, a bullet, a Japanese middle dot or long-vowel mark, full-width point and
# slash, a bar, a tilde, a comma, a colon, a double hyphen, a soft hyphen, a zero-width space; and `_MORE_SEPARATORS`
_PHONE_SEPARATORS = ("", " ", "-", ".", "/", ") ", ")", " - ", ")-", " / ", " . ", "- ", " -", ". ", "/ ", " \u2013 ",
                     " \u2014 ", *_SPACES, *_DASHES, "_", "\u00b7", "\u2022", "\u30fb", "\u30fc", "\uff0e", "\uff0f",
                     "|", "~", ",", ":", "--", "\u00ad", "\u200b", *_MORE_SEPARATORS)
# A number as a value writes it: digits and brackets, and between them the one-character separators above but those
# that may stand between two numbers or before an extension ("|", "~", ",", ":", and the last ones) (found from
# outside: a number with its groups between a middle dot, and a note after it, was not searched for)
_PHONE_MARKS = re.escape("".join(sorted({s for s in _PHONE_SEPARATORS if len(s) == 1} - {*"|~,:", *_MORE_SEPARATORS})))
_PHONE_START = re.compile(rf"[+(]?\d(?:[\d(){_PHONE_MARKS}]|\(0\))*\d")
_LETTERS_OR_DIGITS = re.compile(r"[A-Za-z]+|[0-9]+")
_ID_SEPARATORS = ("-", " ", "_", ".", "/", ":", "#")
_ID_JOINS = ("", *_ID_SEPARATORS, " - ", " / ", " \u2013 ", *_SPACES, *_DASHES, "\u00b7", "\u30fb", "\uff0f", "|", ",",
             "--", "\u30fc", *_MORE_SEPARATORS)


# --- forms -------------------------------------------------------------------------------------------------------

# Letters also spelled out in two ASCII letters: German and Nordic umlauts, Danish and Norwegian ø and å
# ("Oestergaard" for "Østergård"), the Croatian and Serbian đ ("Djurdjevic"), the Hungarian ő and ű as a passport
# writes them ("SZOEKE" for "Szőke": found from outside)
_UMLAUTS = {"ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe", "å": "aa", "đ": "dj", "ő": "oe", "ű": "ue"}
# The decimal digits of other scripts as ASCII ones, which NFKD leaves as they are (Arabic-Indic, Persian, N'Ko,
# Devanagari, Bengali... Thai, Lao, Tibetan, Myanmar, Khmer...): the zero of each run of ten (Unicode 14; a test
# checks them against the running Python's)
_DIGIT_ZEROS = (
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0, 0xF20,
    0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0,
    0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450,
    0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1E140, 0x1E2F0, 0x1E950,
)
OTHER_DIGITS = {zero + i: ord("0") + i for zero in _DIGIT_ZEROS for i in range(10)}
_SPECIAL = str.maketrans({
    "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d", "ı": "i",
    # Arabic letters written one for another: Persian yeh and keheh, alef maksura, teh marbuta, Urdu heh
    "ی": "ي", "ى": "ي", "ک": "ك", "ة": "ه", "ہ": "ه", "ە": "ه",
}) | OTHER_DIGITS


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\ufffd]+")
# Characters that show nothing, or nothing of the text: every format character of Unicode 14 (category Cf: a soft
# hyphen, zero-width spaces and joiners, marks of writing direction, invisible operators, a byte order mark, tag
# characters, the signs that stand before a number...), variation selectors, the Mongolian ones and vowel separator,
# Khmer's inherent vowels, the Hangul fillers (found from outside: a copy's groups between any of them were
# released; a test checks them against the running Python's); and the Arabic tatweel, which only stretches a word.
INVISIBLE = ("\u00ad\u0600-\u0605\u061c\u0640\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5"
             "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\ufff9-\ufffb\uffa0"
             "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
             "\U000e0020-\U000e007f\U000e0100-\U000e01ef")
# Marks written over or under a letter: Latin (and others') combining marks, Hebrew points and accents, Arabic
# vowel signs and Quranic marks (hamza above or below, which NFKD writes apart from alef, too).
MARKS = ("\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
         "\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc"
         "\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed")
_COMBINING = re.compile(f"[{MARKS}{INVISIBLE}]+")  # folded away
_INVISIBLE_RUN = re.compile(f"[{INVISIBLE}]+")


def fold(text: str, umlauts_as_e: bool = False) -> str:
    """Casefolded and ASCII-folded: é as e, ß as ss, ü as u (or as ue). Letters with no ASCII form stay."""
    return _folded(_composed(text), umlauts_as_e)


def folds(text: str) -> tuple[str, ...]:
    """`text` as the text search compares it: `fold(text)` and `fold(text, True)` (one string when they are the same:
    no letter of `_UMLAUTS`), Cyrillic and Greek letters that look like Latin ones as those (`_look`)."""
    composed = _composed(text)
    plain = _folded(composed, False, look=True)
    if composed.isascii() or not _UMLAUT.search(composed):
        return (plain,)
    return plain, _folded(composed, True, look=True)


def _look(folded: str) -> str:
    """Folded text with the Cyrillic and Greek letters that look like Latin ones (in either case) as those: a name
    typed with a letter of another script ("Quxwоrth" with a Cyrillic о, "Kвoксвoрт" with a Latin K and o) is
    compared as it looks. Applied alike to the needles' text and to the text searched."""
    return folded if folded.isascii() else folded.translate(_LOOK_ALIKES)


# Casefolded, so each stands for its capital too (Cyrillic "н" for "Н", which looks like "H"; Greek "η" for "Η").
_LOOK_ALIKE = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w",
    "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k", "μ": "m", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x",
}
_LOOK_ALIKES = str.maketrans(_LOOK_ALIKE)
LOOK_ALIKE_LETTERS = "".join(sorted({*_LOOK_ALIKE, *(c.upper() for c in _LOOK_ALIKE)}))


def _composed(text: str) -> str:
    folded = text.casefold()
    return folded if folded.isascii() else unicodedata.normalize("NFC", folded)


def _folded(composed: str, umlauts_as_e: bool, look: bool = False) -> str:
    """`composed` folded; with `look`, look-alike letters as the Latin ones too (`_look`)."""
    if composed.isascii():
        return composed
    return _NON_ASCII_RUN.sub(lambda m: _fold_run(m.group(), umlauts_as_e, look), composed)


_UMLAUT = re.compile("[" + "".join(_UMLAUTS) + "]")


@lru_cache(maxsize=4096)  # the same runs recur: binary values read as text, names
def _fold_run(run: str, umlauts_as_e: bool, look: bool) -> str:
    if umlauts_as_e:
        run = "".join(_UMLAUTS.get(c, c) for c in run)
    # (casefolded again: a mathematical capital has no lower case of its own, NFKD makes it a Latin capital)
    folded = _COMBINING.sub("", unicodedata.normalize("NFKD", run.translate(_SPECIAL)).translate(_PUNCTUATION)
                            .casefold())
    return _look(folded) if look else folded


def _char_token(c: str) -> Token:
    if c.isascii():
        return (c.lower(),)
    folded = {fold(c), fold(c, True)}  # (in capitals too: "ПЕТР" for "Пётр", bytes are lower-cased in ASCII only)
    if folded == {""}:  # a mark or a character that shows nothing: a copy may leave it out
        return ("", c)
    alternatives = {c, c.lower(), c.upper(), *folded, *(f.upper() for f in folded)} - {""}
    return tuple(sorted(alternatives))


def latin_form(text: str) -> Form:
    """Cyrillic or Greek text in Latin letters, as the usual transliterations write each letter ("Квазорт" as
    "Kvazort", "Жуков" as "Zhukov", "Schukow"..., "Ђурђевић" as "Đurđević" or "Djurdjevic", "Παπαδόπουλος" as
    "Papadopoulos"), not inside a longer ASCII word: a system that takes only Latin letters copies a name so. No
    spelling is shorter than `MIN_TEXT` letters (`_at_least`)."""
    letters = [_LATIN.get(c.lower()) or _LATIN.get(fold(c)) or _char_token(c) for c in text]
    pairs = [_PAIRS.get(text[i : i + 2].lower()) or _PAIRS.get(fold(text[i : i + 2])) for i in range(len(text))]
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        extra = pairs[i]
        if extra is None or i + 1 == len(text):
            tokens.append(letters[i])
            i += 1
            continue
        tokens.append(tuple(sorted({a + b for a in letters[i] for b in letters[i + 1]} | set(extra))))
        i += 2
    return Form(_at_least(tokens, MIN_TEXT), ALPHA, ALPHA)


def _at_least(tokens: list[Token], letters: int) -> tuple[Token, ...]:
    """`tokens` without the shortest spellings of their places, the first place written shortest first, until every
    spelling of them all has `letters` or more: found from outside, "Макс" as "max" and "Юрий" as "uri" were cut
    from descriptions ("MIP max", "Retrieve URI"). A place written one way only stays, and a letter a spelling
    leaves out stays left out while another place can give ("Ilya" for "Илья": found from outside, only "Il'ya" was
    left)."""
    tokens = list(tokens)
    while sum(min(map(len, t)) for t in tokens) < letters:
        shortened = [i for i, t in enumerate(tokens) if len({len(a) for a in t}) > 1]
        places = [i for i in shortened if "" not in tokens[i]] or shortened  # ("lin'" for "Линь": "lin" is a word)
        if not places:
            break
        i = min(places, key=lambda i: min(map(len, tokens[i])))
        shortest = min(map(len, tokens[i]))
        tokens[i] = tuple(a for a in tokens[i] if len(a) > shortest)
    return tuple(tokens)


# Two Greek (or Cyrillic) letters that a transliteration may write as one sound ("Μπακογιάννης" as "Bakogiannis",
# "Ντίνος" as "Dinos", "Οικονόμου" as "Ikonomou"), besides each letter's own spelling
_PAIRS: dict[str, tuple[str, ...]] = {
    "μπ": ("b", "mb"), "ντ": ("d", "nd"), "γκ": ("g", "ng"), "γγ": ("ng",), "τζ": ("tz", "j", "dz"),
    "ου": ("u",), "αι": ("e",), "ει": ("i",), "οι": ("i",), "υι": ("i",), "γι": ("y", "j"),
    # and Cyrillic ones: "Юрий" as "Yury" or "Juri", "Дмитрий" as "Dmitri", "Олександр" as "Olexandr" (found from
    # outside, released)
    "ий": ("y", "i"), "ый": ("y", "i"), "кс": ("x",),
}


# The hard and soft signs: left out, or as an apostrophe, a prime (ISO 9, GOST), a typographic or modifier
# apostrophe, a grave or an acute accent (found from outside: "Linʹ" for "Линь", released)
_SIGN: Token = ("", "'", "\u02b9", "\u2019", "\u02bc", "`", "\u00b4")
_CYRILLIC_OR_GREEK = re.compile("[\u0370-\u03ff\u0400-\u04ff\u1f00-\u1fff]")
_LATIN: dict[str, Token] = {
    # Serbian and Macedonian letters, as their Latin alphabets write them and in ASCII
    "ђ": ("dj", "d", "đ", "Đ"), "ћ": ("c", "ch", "tj", "ć", "Ć"), "џ": ("dz", "dzh", "j", "dž", "Dž", "DŽ"),
    "љ": ("lj", "l"), "њ": ("nj", "n"), "ј": ("j", "y", "i"), "ѓ": ("gj", "g", "ǵ", "Ǵ"), "ќ": ("kj", "k", "ḱ", "Ḱ"),
    "ѕ": ("dz", "z"),
    # Greek (ELOT 743 and the older spellings; a letter after another: ου "ou", αυ "av" or "af", γγ "ng")
    **{c: (t,) for c, t in zip("αεζικλμνοπρστω", "aeziklmnoprsto", strict=True)},
    "β": ("v", "b"), "γ": ("g", "gh", "y", "n"), "δ": ("d", "dh"), "η": ("i", "e", "h"), "θ": ("th",),
    "ξ": ("x", "ks"), "ς": ("s",), "υ": ("y", "i", "u", "v", "f"), "φ": ("f", "ph"), "χ": ("ch", "h", "kh", "x"),
    "ψ": ("ps",),
    **{c: (t,) for c, t in zip("абдзклмнопрстфэ", "abdzklmnoprstfe", strict=True)},
    "у": ("u", "ou"),  # (French: "Joukov", "Chtcherbakov", "Iouri"; Polish: "Szczerbakow"; found from outside)
    "в": ("v", "w"), "г": ("g", "h"), "ґ": ("g",), "е": ("e", "ye", "je"), "ё": ("e", "yo", "jo", "io"),
    "є": ("ye", "je", "ie", "e"), "ж": ("zh", "z", "j", "sch", "sh", "ż"), "и": ("i", "y"), "і": ("i",),
    "ї": ("yi", "ji", "i"), "й": ("y", "j", "i"), "х": ("kh", "h", "x", "ch"), "ц": ("ts", "c", "tz", "z"),
    "ч": ("ch", "tsch", "tch", "c", "cz"), "ш": ("sh", "sch", "s", "ch", "sz"),
    "щ": ("shch", "sch", "sc", "shh", "schtsch", "chtch", "szcz"), "ъ": _SIGN, "ы": ("y", "i"), "ь": _SIGN,
    "ю": ("yu", "ju", "iu", "u", "you", "iou"), "я": ("ya", "ja", "ia", "a"), "ў": ("u", "w"),
}


def romanized_form(text: str) -> Form | None:
    """Kana, Hangul or Chinese text in Latin letters, as the usual romanizations write it ("ヤマフジ" as "Yamafuji" or
    "Yamahuzi", "サトウ" as "Sato", "Satou" or "Satoh"; "곽서연" as "Kwak Seoyeon", "Gwak Seo-yeon"...; "欧阳娜娜" in
    pinyin as "Ouyang Nana", "OUYANG_NANA"), not inside a longer ASCII word: a system that takes only Latin letters
    copies a name so (found from outside). None for other text or where the shortest spelling is shorter than
    `MIN_TEXT`. Han characters are read as Chinese (every reading pinyin gives them): a Japanese name in kanji has
    readings of its own, which this does not know."""
    if _HANGUL_TEXT.fullmatch(text):
        tokens = _hangul_tokens(text)
    elif _KANA_TEXT.fullmatch(text):
        tokens = _kana_tokens(unicodedata.normalize("NFKC", text).translate(_TO_KATAKANA))
    elif _HAN_TEXT.fullmatch(text):
        tokens = _pinyin_tokens(text)
    else:
        return None
    if sum(min(map(len, token)) for token in tokens) < MIN_TEXT:
        return None
    places = tuple(tuple(sorted(set(token))) for token in tokens)
    return Form(places, ALPHA, ALPHA, first=_spellings_held(places))


def _spellings_held(places: tuple[Token, ...]) -> Token:
    """Spellings one of which every match of a romanized form holds, each of three letters or more, to look for
    first: the fewest of a syllable's, or of two syllables with what stands between them ("na na", "nana"); ()
    if there are none."""
    candidates = [places[i:i + 1] for i in range(0, len(places), 2)]
    candidates += [places[i:i + 3] for i in range(0, len(places) - 2, 2)]
    spelled = [tuple(sorted({"".join(p) for p in product(*run)})) for run in candidates]
    usable = [s for s in spelled if min(len(a) for a in s) >= 3]
    return min(usable, key=len, default=())


_HANGUL_TEXT = re.compile(r"[\uac00-\ud7a3]+(?:[ ,-]+[\uac00-\ud7a3]+)*")
_KANA_LETTERS = "\u3041-\u3096\u30a1-\u30fa\u30fc\uff66-\uff9f"
_KANA_TEXT = re.compile(f"[{_KANA_LETTERS}]+(?:[ ,・-]+[{_KANA_LETTERS}]+)*")
_HAN_LETTERS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_TEXT = re.compile(f"[{_HAN_LETTERS}]+(?:[ ,·-]+[{_HAN_LETTERS}]+)*")
# Between the syllables of a romanized name ("Seo-yeon", "Seo Yeon", "OUYANG_NANA", "Zhang.Wei"), and where the name
# has a space, comma or hyphen between its words (that one's first alternative, a space, tells it from the other)
_SPACING: Token = ("", " ", "-", "_", ".")
_WORD_SPACING: Token = (" ", ", ", "-", "_", ".", "")


def _hangul_tokens(text: str) -> list[Token]:
    """Each Hangul syllable's spellings (a family name's first syllable also as it is conventionally written:
    "Park", "Lee", "Choi"), with what `_SPACING` holds between syllables."""
    tokens: list[Token] = []
    first = True
    for c in text:
        if not "\uac00" <= c <= "\ud7a3":
            if tokens and tokens[-1] is not _SPACING:
                tokens.append(_WORD_SPACING)
            first = True
            continue
        if tokens and tokens[-1][0] != " ":
            tokens.append(_SPACING)
        index = ord(c) - 0xAC00
        initial, vowel, final = index // 588, index // 28 % 21, index % 28
        spelled = {a + b + z for a in _INITIALS[initial] for b in _VOWELS[vowel] for z in _FINALS[final]}
        tokens.append(tuple(spelled | set(_SURNAMES.get(c, ()) if first else ())))
        first = False
    return tokens


def _pinyin_tokens(text: str) -> list[Token]:
    """Each Han character's readings in pinyin without tones (ü also as u, yu, ue, v: "Lü" as "Lu", "Lyu"), with
    what `_SPACING` holds between syllables (a space, hyphen, "_", "." or nothing)."""
    from pypinyin import Style, pinyin  # (its tables cost 0.15 s: loaded for a name in Han characters only)

    tokens: list[Token] = []
    for c in text:
        if not _HAN_TEXT.fullmatch(c):
            if tokens and tokens[-1] is not _SPACING:
                tokens.append(_WORD_SPACING)
            continue
        if tokens and tokens[-1][0] != " ":
            tokens.append(_SPACING)
        # (a compatibility ideograph, as a Korean code page writes some, read as the one it stands for)
        readings = {r.lower() for r in pinyin(unicodedata.normalize("NFKC", c), style=Style.NORMAL,
                                               heteronym=True)[0] if r.isascii()}
        if not readings:  # (no reading known: no romanized form; found from outside, it failed the file)
            return []
        tokens.append(tuple(sorted({r.replace("v", u) for r in readings for u in ("v", "u", "yu", "ue")})))
    return tokens


# Revised Romanization and the older spellings (McCune-Reischauer's voiceless initials, "oo", "ee", "u" for eo)
_INITIALS: tuple[Token, ...] = (("g", "k"), ("kk", "gg", "k"), ("n",), ("d", "t"), ("tt", "dd"), ("r", "l", "n"),
                                ("m",), ("b", "p"), ("pp", "bb"), ("s", "sh"), ("ss", "s"), ("",), ("j", "ch"),
                                ("jj", "tch"), ("ch",), ("k",), ("t",), ("p",), ("h",))
_VOWELS: tuple[Token, ...] = (("a",), ("ae", "e"), ("ya",), ("yae", "ye"), ("eo", "o", "u", "uh"), ("e",),
                              ("yeo", "yo", "you", "yu"), ("ye",), ("o", "oh"), ("wa",), ("wae", "we"),
                              ("oe", "oi", "we"), ("yo",), ("u", "oo"), ("wo",), ("we",), ("wi", "wee"),
                              ("yu", "yoo"), ("eu", "u"), ("ui", "eui", "ee", "i"), ("i", "ee"))
_FINALS: tuple[Token, ...] = (("",), ("k", "g"), ("k", "kk"), ("k",), ("n",), ("n",), ("n",), ("t", "d"), ("l", "r"),
                              ("k", "lk"), ("m",), ("l",), ("l",), ("l",), ("p",), ("l",), ("m",), ("p", "b"), ("p",),
                              ("t", "s"), ("t", "ss"), ("ng",), ("t", "j"), ("t",), ("k",), ("t",), ("p",), ("t", "h"))
# Family names as their bearers usually write them, where that is not a spelling of the table above
_SURNAMES: dict[str, Token] = {
    "김": ("kim", "gim"), "이": ("lee", "yi", "rhee", "rhie", "ri", "i"), "박": ("park", "pak", "bak"),
    "최": ("choi", "choe", "chey"), "정": ("jung", "jeong", "chung", "cheong"), "조": ("cho", "jo"),
    "윤": ("yoon", "yun"), "임": ("lim", "im", "rim"), "안": ("ahn", "an"), "유": ("yoo", "yu", "you", "ryu"),
    "류": ("ryu", "yoo", "yu", "rhyu"), "전": ("jeon", "chun", "jun", "chon"), "손": ("son", "sohn"),
    "백": ("baek", "paik", "baik", "paek"), "허": ("heo", "huh", "hur"), "노": ("noh", "no", "roh"),
    "엄": ("eom", "um", "uhm"), "변": ("byun", "byeon", "pyun"), "염": ("yeom", "yum"), "여": ("yeo", "yuh"),
    "우": ("woo", "u"), "주": ("joo", "ju", "chu"), "나": ("na", "ra"), "금": ("keum", "geum", "kum"),
    "육": ("yook", "yuk"), "국": ("kook", "guk"), "라": ("ra", "la", "na"), "량": ("ryang", "yang"),
}


def _kana_tokens(katakana: str) -> list[Token]:
    """Each mora's spellings (Hepburn, and Kunrei's and Nihon's: "shi" and "si", "fu" and "hu"), a contracted one
    ("シャ" "sha", "sya") and a doubled consonant ("ッタ" "tta") as one, a long vowel written out, left out or as
    "h" ("サトウ" "Satou", "Sato", "Satoh")."""
    tokens: list[Token] = []
    i = 0
    while i < len(katakana):
        c, small = katakana[i], katakana[i + 1:i + 2]
        if c in " ,・-":
            if tokens and tokens[-1] is not _SPACING:
                tokens.append(_WORD_SPACING)
            i += 1
            continue
        if c == "ッ":  # the next mora's consonant doubled
            after = _kana_tokens(katakana[i + 1:])
            if after and after[0][0][:1].isalpha() and after[0][0][:1] not in "aiueo":
                doubled = {("t" + a if a.startswith("ch") else a[0] + a) for a in after[0]}
                return [*tokens, tuple(doubled), *after[1:]]
            i += 1
            continue
        if c == "ー" or (c in "ウオ" and tokens and tokens[-1][0].endswith("o")) or (
                c == "イ" and tokens and tokens[-1][0].endswith("e")):
            vowel = tokens[-1][0][-1] if tokens and tokens[-1][0] else ""
            own = _KANA_SPELLINGS.get(c, ("",))
            tokens.append(tuple({"", "h", vowel, *own} - {"-"}))
            i += 1
            continue
        base = _KANA_SPELLINGS.get(c)
        if base is None:
            return []
        if small in _SMALL_Y:
            tokens.append(tuple({(a[:-1] if a[:-1] in ("sh", "ch", "j") else a[:-1] + "y") + _SMALL_Y[small]
                                 for a in base} | {a[:-1] + "y" + _SMALL_Y[small] for a in base}))
            i += 2
            continue
        if small in _SMALL_VOWEL:
            tokens.append(tuple({a[:-1] + _SMALL_VOWEL[small] for a in base} | _KANA_PAIRS.get(c + small, set())))
            i += 2
            continue
        tokens.append(base)
        i += 1
    return tokens


_SMALL_Y = {"ャ": "a", "ュ": "u", "ョ": "o"}
_SMALL_VOWEL = {"ァ": "a", "ィ": "i", "ゥ": "u", "ェ": "e", "ォ": "o"}
_KANA_PAIRS = {"ウィ": {"wi"}, "ウェ": {"we"}, "ウォ": {"wo"}, "ヴァ": {"va", "ba"}, "ティ": {"ti", "thi"},
               "ディ": {"di", "dhi"}, "トゥ": {"tu"}, "ドゥ": {"du"}}
_KANA_SPELLINGS: dict[str, Token] = {
    **{c: (row + v,) for row, kana in (("", "アイウエオ"), ("k", "カキクケコ"), ("g", "ガギグゲゴ"),
                                         ("s", "サシスセソ"), ("z", "ザジズゼゾ"), ("t", "タチツテト"),
                                         ("d", "ダヂヅデド"), ("n", "ナニヌネノ"), ("h", "ハヒフヘホ"),
                                         ("b", "バビブベボ"), ("p", "パピプペポ"), ("m", "マミムメモ"),
                                         ("r", "ラリルレロ"))
       for c, v in zip(kana, "aiueo", strict=True)},
    "ヤ": ("ya",), "ユ": ("yu",), "ヨ": ("yo",), "ワ": ("wa",),
    "シ": ("shi", "si"), "ジ": ("ji", "zi"), "チ": ("chi", "ti"), "ツ": ("tsu", "tu"), "ヂ": ("ji", "di", "zi"),
    "ヅ": ("zu", "du"), "フ": ("fu", "hu"), "ヰ": ("wi", "i"), "ヱ": ("we", "e"), "ヲ": ("wo", "o"),
    "ン": ("n", "m", "n'"), "ヴ": ("vu", "bu"), **{c: (v,) for c, v in zip("ァィゥェォ", "aiueo", strict=True)},
}


def text_form(text: str) -> Form:
    """A text needle: each letter in either case or ASCII-folded, not inside a longer ASCII word."""
    tokens = tuple(_char_token(c) for c in text)
    return Form(tokens, ALPHA if text[:1].isascii() else NONE, ALPHA if text[-1:].isascii() else NONE, text)


def word_forms(text: str) -> tuple[Form, ...]:
    """`text_form`, split at an end with an accented Latin letter: there the letter as written may run on into more
    letters, as a name inflected does ("Perića", "Tomáše": found from outside, released once a word's end was asked
    of them), its ASCII spelling may not ("Dedic" of "Dedić" is no name in "dedicated": found from outside, cut).
    A name with accented letters inside and an ASCII last letter runs on too where its accented letters are as
    written ("Dvořáka", "Nováková" for "Dvořák", "Novák"), not in its ASCII spelling ("Dvoraka")."""
    form = text_form(text)
    accented = [i for i, c in enumerate(text) if not c.isascii() and _folds_to_ascii(c)]
    ends = sorted({i for i in (0, len(text) - 1) if i in accented})
    forms = []
    for spelled in product((False, True), repeat=len(ends)):  # (True: the end's ASCII spelling)
        tokens, left, right = list(form.tokens), form.left, form.right
        for end, ascii_end in zip(ends, spelled, strict=True):
            tokens[end] = tuple(a for a in tokens[end] if a.isascii() == ascii_end)
            bound = ALPHA if ascii_end else NONE
            left, right = (bound if end == 0 else left), (bound if end == len(text) - 1 else right)
        if all(tokens):
            forms.append(Form(tuple(tokens), left, right, text))
    if _as_written_end(text, form.right) != form.right:  # (an ASCII last letter: as written, inflected)
        tokens = [tuple(a for a in t if not a.isascii()) if i in accented else t for i, t in enumerate(form.tokens)]
        forms.append(Form(tuple(tokens), NONE if 0 in accented else form.left, NONE, text))
    return tuple(forms)


def _as_written_end(text: str, right: str) -> str:
    """The end of a name with accented Latin letters, written with them (as written, decomposed or garbled): none,
    more letters may follow as a name inflected ("Dvořáka", "Müllers"); that of its ASCII spelling stays a word's."""
    composed = unicodedata.normalize("NFC", text)  # (decomposed, its marks fold to nothing)
    return NONE if right == ALPHA and any(not c.isascii() and _folds_to_ascii(c) for c in composed) else right


def _folds_to_ascii(c: str) -> bool:
    folded = fold(c)
    return bool(folded) and folded.isascii()


def misread_forms(text: str) -> tuple[tuple[Form, tuple[str, ...]], ...]:
    """Text with characters outside ASCII as a conversion garbles it: its bytes in one encoding read as another's
    (`MISREADINGS`), the text in either case; and, where four ASCII letters or more are left, with each such character
    lost (`_lost`: "M?ller", "M\ufffdller", "Mller" for "Müller"). Each with the encodings it may be stored in
    besides UTF-8 and UTF-16 (`MISREAD_ENCODINGS`): a garbled text with a byte lost as "?", stored in the encoding
    it was read as ("KuÄ?era": found from outside, released). () for ASCII text. Found from outside: such copies of
    a name in a kept text were released."""
    if text.isascii():
        return ()
    form = text_form(text)  # (its boundaries: a word's beside an ASCII end, but an inflected name's)
    left, right = form.left, _as_written_end(text, form.right)
    forms = []
    for steps in MISREADINGS:
        tokens = [_char_token(c) if c.isascii() else _misread(c, steps) for c in text]
        if all(tokens):  # (else the first encoding cannot write the text)
            forms.append((Form(tuple(tokens), left, right, "".join(t[0] for t in tokens)), steps[-1][1]))
    if sum(c.isascii() and c.isalpha() for c in text) >= MIN_TEXT and _THREE_LETTERS.search(text):  # (its key)
        # (a word, whatever it begins or ends with; a letter lost at either end leaves another word: "scar" of
        # "Óscar", "Radi" of "Radić", found from outside, were cut from "myocardial scar" and "radial")
        tokens = [_char_token(c) if c.isascii() else _lost(c, -1 if i == 0 else 1 if i == len(text) - 1 else 0)
                  for i, c in enumerate(text)]
        forms.append((Form(tuple(tokens), ALPHA, ALPHA), ()))
    return tuple(forms)


_THREE_LETTERS = re.compile("[A-Za-z]{3}")


# Conversions that garble text, each a chain of steps: the text's bytes in one encoding read as one of others'
# ("MÃ¼ller" for "Müller": UTF-8 read as Windows-1252 or Latin-1, "MÃƒÂ¼ller" twice so, "MĂĽller" and "M√ºller" as
# Windows-1250 and Mac Roman; "Ð˜Ð²Ð°Ð½Ð¾Ð²" and "РРІР°РЅРѕРІ" for "Иванов": UTF-8 read as Windows-1252 and as
# Windows-1251; "Èâàíîâ": Windows-1251 read as Windows-1252; "é×ÁÎÏ×": KOI8-R read as Latin-1; the Russian
# encodings read as one another; the Central European, Greek and Turkish ones read as Western ones; UTF-8 read as the
# Windows pages of Greek, Hebrew and Arabic). Found from outside, each released.
MISREADINGS: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...] = (
    (("utf_8", ("cp1252", "latin_1")),), (("utf_8", ("cp1252",)), ("utf_8", ("cp1252",))),
    (("utf_8", ("cp1251",)),), (("utf_8", ("cp1250",)),), (("utf_8", ("mac_roman",)),), (("utf_8", ("koi8_r",)),),
    (("utf_8", ("cp1253",)),), (("utf_8", ("cp1255",)),), (("utf_8", ("cp1256",)),),
    (("cp1251", ("cp1252", "latin_1", "koi8_r")),), (("koi8_r", ("cp1252", "latin_1", "cp1251")),),
    (("cp866", ("cp1251",)),), (("cp1250", ("cp1252", "latin_1")),), (("iso8859_2", ("latin_1", "cp1252")),),
    (("cp1253", ("cp1252", "latin_1")),), (("iso8859_7", ("latin_1", "cp1252")),), (("cp1254", ("cp1252",)),),
)
# A garbled text is searched as the system that stored it writes it, in UTF-8 or UTF-16: stored in the encoding it
# was read as, its bytes are the text's in the first one, which the text's own needle searches.
MISREAD_ENCODINGS = ("utf_8", "utf_16_le", "utf_16_be")


@cache
def _read_as(reader: str, lossy: bool) -> tuple[tuple[str, ...], ...]:
    """How `reader` reads each byte: a byte it leaves undefined as Latin-1 does, and if `lossy` also as "\ufffd" or
    "?", or left out, as converters do."""
    undefined = (lambda b: (chr(b), "\ufffd", "?", "")) if lossy else (lambda b: (chr(b),))
    return tuple((read,) if (read := bytes([b]).decode(reader, "ignore")) else undefined(b) for b in range(256))


def _misread(c: str, steps: tuple[tuple[str, tuple[str, ...]], ...]) -> Token:
    """The ways a character, in either case, reads after the conversion `steps` (() if one cannot write it). A byte
    left undefined is lost in the ways converters lose it after one step only: after two, the ways multiply past
    those a search can key on."""
    read = {c.lower(), c.upper()}
    lossy = len(steps) == 1
    for source, readers in steps:
        misread = set()
        for text in read:
            try:
                data = text.encode(source)
            except UnicodeError:
                return ()
            misread |= {"".join(p) for reader in readers for p in product(*(_read_as(reader, lossy)[b] for b in data))}
        read = misread
    return tuple(sorted(read - {""}))


def _lost(c: str, place: int) -> Token:
    """A character outside ASCII as a conversion that cannot write it leaves it: "?", "??", "__" (one for each of its
    UTF-8 bytes), "\ufffd" or its letter without the mark ("u?" for a decomposed "ü"); also "_" but at a word's
    start, and nothing inside a word (`place`: -1 the start, 1 the end, 0 inside). Left out at an end, or as one "_"
    at the start, it makes other words ("scar", "_scar" of "Óscar": found from outside, cut from "myocardial scar"
    and "LGE_1_scar"); as "?" at the start it is taken ("?ukasz", and so "?scar apex" for an "Óscar")."""
    base = unicodedata.normalize("NFD", c)[0]
    marked = {base.lower() + "?", base.upper() + "?", base.lower() + "\ufffd"} if base.isascii() and base != c \
        else set()
    return ("?", "??", "__", "\ufffd", *sorted(marked), *(("_",) if place >= 0 else ()), *(("",) if not place else ()))


_MONTHS = (  # as a date writes them, names and abbreviations: English, German, French, Spanish, Italian, Russian;
    # Dutch, Portuguese, Polish and Czech (each in the genitive a date takes, and as named), Turkish, Danish and
    # Norwegian, Swedish, Finnish (the partitive), Hungarian
    ("january", "jan", "januar", "jänner", "janvier", "janv", "enero", "ene", "gennaio", "gen", "января", "янв",
     "januari", "janeiro", "stycznia", "styczeń", "ledna", "leden", "ocak", "tammikuuta", "tammikuu", "január"),
    ("february", "feb", "febr", "februar", "février", "févr", "fév", "febrero", "febbraio", "февраля", "фев",
     "februari", "fevereiro", "fev", "lutego", "luty", "února", "únor", "şubat", "helmikuuta", "helmikuu", "február"),
    ("march", "mar", "märz", "mär", "mrz", "mars", "marzo", "марта", "мар",
     "maart", "mrt", "março", "marca", "marzec", "března", "březen", "mart", "marts", "maaliskuuta", "maaliskuu",
     "március", "márc"),
    ("april", "apr", "avril", "avr", "abril", "abr", "aprile", "апреля", "апр",
     "kwietnia", "kwiecień", "dubna", "duben", "nisan", "huhtikuuta", "huhtikuu", "április", "ápr"),
    ("may", "mai", "mayo", "maggio", "mag", "мая",
     "mei", "maio", "maja", "maj", "května", "květen", "mayıs", "toukokuuta", "toukokuu", "május", "máj"),
    ("june", "jun", "juni", "juin", "junio", "giugno", "giu", "июня", "июн",
     "junho", "czerwca", "czerwiec", "června", "červen", "haziran", "kesäkuuta", "kesäkuu", "június", "jún"),
    ("july", "jul", "juli", "juillet", "juil", "julio", "luglio", "lug", "июля", "июл",
     "julho", "lipca", "lipiec", "července", "červenec", "temmuz", "heinäkuuta", "heinäkuu", "július", "júl"),
    ("august", "aug", "août", "aou", "agosto", "ago", "августа", "авг",
     "augustus", "sierpnia", "sierpień", "srpna", "srpen", "ağustos", "augusti", "elokuuta", "elokuu", "augusztus"),
    ("september", "sep", "sept", "septembre", "septiembre", "setiembre", "settembre", "set", "сентября", "сен",
     "setembro", "września", "wrzesień", "září", "eylül", "syyskuuta", "syyskuu", "szeptember", "szept"),
    ("october", "oct", "oktober", "okt", "octobre", "octubre", "ottobre", "ott", "октября", "окт",
     "outubro", "out", "października", "październik", "října", "říjen", "ekim", "lokakuuta", "lokakuu", "október"),
    ("november", "nov", "novembre", "noviembre", "ноября", "ноя",
     "novembro", "listopada", "listopad", "listopadu", "kasım", "marraskuuta", "marraskuu"),
    ("december", "dec", "dezember", "dez", "décembre", "déc", "diciembre", "dic", "dicembre", "декабря", "дек",
     "dezembro", "grudnia", "grudzień", "prosince", "prosinec", "aralık", "desember", "joulukuuta", "joulukuu"),
)
_ROMAN = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii")  # a month so ("2.III.1961")
# Thai month names, whole and abbreviated, for a date with its Buddhist era year ("2 มี.ค. 2504")
_THAI_MONTHS = (("มกราคม", "ม.ค."), ("กุมภาพันธ์", "ก.พ."), ("มีนาคม", "มี.ค."), ("เมษายน", "เม.ย."),
                ("พฤษภาคม", "พ.ค."), ("มิถุนายน", "มิ.ย."), ("กรกฎาคม", "ก.ค."), ("สิงหาคม", "ส.ค."),
                ("กันยายน", "ก.ย."), ("ตุลาคม", "ต.ค."), ("พฤศจิกายน", "พ.ย."), ("ธันวาคม", "ธ.ค."))
# (a dash or slash between spaces, a backslash: the parts as values of their own, a tab, a line break; the dashes
# and spaces of typesetting, as UTF-16 text in a binary value writes them, where text is not decoded: found from
# outside)
_NUMERIC_SEPARATORS = ("-", "/", ".", ". ", " ", "_", ",", " - ", " / ", "\\", "\t", "\n", "\r\n", "\r", *_DASHES,
                       "\u00a0", "\u3000")
_ORDINAL = ("th", "st", "nd", "rd")


def _underscored(separators: tuple[str, ...]) -> tuple[str, ...]:
    """Separators and, for each holding a space, the same with "_" for it, as a code string (CS) writes a date
    ("MARCH_14TH_1987", "14TH_MAR_87": found from outside, in ImageType)."""
    return tuple(dict.fromkeys((*separators, *(s.replace(" ", "_") for s in separators if " " in s))))


# ("3rd of February", "3 of February of 1961", "February 3rd of 1961": found from outside; not "3rd day of" nor a
# day in words, "third of February": each form costs every date's patterns their compile, once a subject)
_DAY_MONTH = _underscored(("", " ", ". ", ".", "-", "/", " - ", "\\", " de ", "th ", "st ", "nd ", "rd ", "er ", " of ",
                           *(f"{o} of " for o in _ORDINAL)))
_MONTH_YEAR = _underscored(("", " ", "-", "/", " - ", "\\", ".", ". ", ", ", ".-", " de ", "., ", " of "))
_MONTH_DAY = _underscored((" ", ". ", ".", "-", "/", " - ", " the "))  # ("February the 3rd")
# English months as systems abbreviate them, and the separators English dates take around them; before a
# two-digit year, an apostrophe for the century after any of them ("Mar 14th '87", "MAR_14_'87": found from outside).
_ENGLISH_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_EN_DAY_MONTH = _underscored(("", " ", ". ", ".", "-", "/", "th ", "st ", "nd ", "rd ", " of ",
                              *(f"{o} of " for o in _ORDINAL)))


def _apostrophes(separators: tuple[str, ...]) -> tuple[str, ...]:
    """Separators before a two-digit year, and each with an apostrophe for the century after it."""
    return tuple(dict.fromkeys((*separators, *(f"{s}'" for s in separators))))


_EN_MONTH_YEAR = _apostrophes(("", " ", ". ", ".", "-", "/", "_", ", ", ".-"))
_EN_MONTH_DAY = (" ", ". ", ".", "-", "/", "_")
_EN_DAY_YEAR = _underscored(("", " ", ".", "-", "/", ", ", "th, ", "st, ", "nd, ", "rd, ", "th ", "st ", "nd ",
                             "rd "))
_EN_DAY_SHORT_YEAR = _apostrophes(_EN_DAY_YEAR)
_EN_YEAR_MONTH = ("", " ", ".", "-", "/", "_")
# (not a backslash: integer multi-values, a dose grid's offsets or leaf positions, hold such runs by chance, found
# from outside)
_SHORT_SEPARATORS = ("-", "/", ".", " ", "_", " - ", " / ")
_DAY_YEAR = (", ", " ", "-", "/", " - ", "th, ", "st, ", "nd, ", "rd, ", "th ", "st ", "nd ", "rd ", " of ",
             *(f"{o} of " for o in _ORDINAL))
_YEAR_DAY = (", ", " ", ", the ", " the ")  # ("1961, 3 February", "1961, the 3rd of February")


def _date_forms(date: re.Match[str]) -> tuple[Form, ...] | None:
    """The forms of a DICOM date (a DA, or a DT's date), or None: not a date (searched as the text it is)."""
    y, m, d = int(date[1]), int(date[3]), int(date[4])
    try:
        dt.date(y, m, d)
    except ValueError:
        return None
    return date_forms(y, m, d)


def date_forms(y: int, m: int, d: int) -> tuple[Form, ...]:
    """The ways a date is written; a DICOM date may run on into a time, the others stand between non-digits."""
    year, yy = (f"{y:04d}",), (f"{y % 100:02d}",)
    month, day = tuple({f"{m:02d}", str(m)}), tuple({f"{d:02d}", str(d)})
    names = tuple(sorted({a for name in _MONTHS[m - 1] for a in _month_spellings(name)}))
    sep = _NUMERIC_SEPARATORS
    # ("III.87", "III87"; its runs are looked for first)
    roman_year = tuple(f"{_ROMAN[m - 1]}{s}{y % 100:02d}" for s in ("", *sep) if s.isascii())  # (looked for first)
    forms = [
        Form(((f"{y:04d}{m:02d}{d:02d}",),), DIGIT, NONE),
        Form((yy, (f"{m:02d}{d:02d}",)), DIGIT, DIGIT),
        Form(((f"{d:02d}{m:02d}{y:04d}",),), DIGIT, DIGIT),
        Form(((f"{m:02d}{d:02d}{y:04d}",),), DIGIT, DIGIT),
        Form((year, sep, month, sep, day), DIGIT, DIGIT),
        Form((day, sep, month, sep, year), DIGIT, DIGIT),
        Form((month, sep, day, sep, year), DIGIT, DIGIT),
        Form((day, _DAY_MONTH, names, _MONTH_YEAR, year), DIGIT, DIGIT),
        Form((names, _MONTH_DAY, day, _DAY_YEAR, year), ALPHA, DIGIT),
        Form((year, (*sep, ", "), names, (*sep, " the "), day), DIGIT, DIGIT),  # 1961-Feb-03, 1961, February the 3rd
        Form((year, _YEAR_DAY, day, _DAY_MONTH, names), DIGIT, ALPHA),  # 1961, 3 February; 1961, the 3rd of Feb
        Form((day, sep, (_ROMAN[m - 1],), sep, year), DIGIT, DIGIT),  # 3.II.1961
        # found from outside: year, day, month, as a swap of the two writes it ("19871403", "1987-14-03"); the
        # month as a Roman numeral before a two-digit year ("14.III.87"); day and month unpadded, run into the
        # year ("3141987")
        Form((year, sep, day, sep, month), DIGIT, DIGIT),
        Form(((f"{y:04d}{d:02d}{m:02d}",),), DIGIT, DIGIT),
        Form((day, ("", *sep), roman_year), DIGIT, DIGIT, first=roman_year),
        *(Form(((run,),), DIGIT, DIGIT) for run in sorted({f"{m}{d}{y:04d}", f"{d}{m}{y:04d}", f"{y:04d}{m}{d}"} -
                                                              {f"{m:02d}{d:02d}{y:04d}", f"{d:02d}{m:02d}{y:04d}",
                                                               f"{y:04d}{m:02d}{d:02d}"})),
        # The year of the Buddhist era (Thai): 3/2/2504, 3 ก.พ. 2504 (its year an ASCII run to look for first)
        Form((day, sep, month, sep, (f"{y + 543}",)), DIGIT, DIGIT), Form(((f"{y + 543}",), sep, month, sep, day),
                                                                          DIGIT, DIGIT),
        *(Form((day, (" ",), _THAI_MONTHS[m - 1], (" ",), (year,)), DIGIT, DIGIT) for year in (f"{y + 543}", *year)),
        # Chinese, Japanese, Korean: 1961年2月3日, 1961년 2월 3일 (the year a literal the search looks for first)
        Form((year, ("年", "년"), ("", " "), month, ("月", "월"), ("", " "), day, ("日", "일")), DIGIT, NONE),
    ]
    # A two-digit year: with a month name ("15-APR-47"), with day and month padded or not ("15.04.47", "3/2/61"),
    # or run together ("150447", "041547"). Each form holds a literal of three characters or more (the year with its
    # separator, the whole date), which the search looks for first (see Needle.runs). And the ordinal date of ISO
    # 8601 ("1961-034").
    dd, mm, yy2 = f"{d:02d}", f"{m:02d}", f"{y % 100:02d}"
    forms += [Form((day, _DAY_MONTH, names, (f"{between}{yy2}",)), DIGIT, DIGIT) for between in ("-", " ")]
    orders = {(dd, mm, yy2), (mm, dd, yy2), (yy2, mm, dd), (str(d), str(m), yy2), (str(m), str(d), yy2),
              (yy2, str(m), str(d))}
    for between in _SHORT_SEPARATORS:
        forms += [Form(((between.join(order),),), DIGIT, DIGIT) for order in sorted(orders)]
        # an apostrophe for the century ("14/03/'87": found from outside)
        forms += [Form(((f"{between.join(pair)}{between}'{yy2}",),), DIGIT, DIGIT)
                  for pair in sorted({(dd, mm), (mm, dd), (str(d), str(m)), (str(m), str(d))})]
    # the ordinal date, extended and basic, or the day of the year first, padded or not, the year of two digits
    # after it (found from outside: "1987073", "073/1987", "1987-73", "073-87"); year, day and month of two digits
    yday = dt.date(y, m, d).timetuple().tm_yday
    # (unpadded only past January: "1987-5" is May 1987 as often)
    ydays = (f"{yday:03d}", str(yday)) if 32 <= yday < 100 else (f"{yday:03d}",)
    forms += [Form(((f"{dd}{mm}{yy2}",),), DIGIT, DIGIT), Form(((f"{mm}{dd}{yy2}",),), DIGIT, DIGIT),
              Form(((f"{yy2}{dd}{mm}",),), DIGIT, DIGIT),
              Form(((f"{y:04d}{yday:03d}",),), DIGIT, DIGIT),
              *(Form(((f"{y:04d}{between}{one}",),), DIGIT, DIGIT) for one in ydays
                for between in ("-", ".", "/", " ", "_", ":")),
              *(Form(((f"{one}{between}{y:04d}",),), DIGIT, DIGIT) for one in ydays
                for between in ("/", "-", ".", " ", "_")),
              *(Form(((f"{yday:03d}{between}{yy2}",),), DIGIT, DIGIT) for between in ("-", "/", "."))]
    # The week date of ISO 8601, its year the week's ("1961-W09-4", "1961W094"; the text is searched in lower case)
    week_year, week, weekday = dt.date(y, m, d).isocalendar()
    forms += [Form(((f"{week_year:04d}{between}w{week:02d}{between}{weekday}",),), DIGIT, DIGIT)
              for between in ("-", "")]
    if y > 1911:  # the year of the Republic of China (Taiwan's Minguo calendar), three digits: 050/03/02, 0500302
        minguo = f"{y - 1911:03d}"
        forms += [Form(((f"{minguo}{between}",), month, (between,), day), DIGIT, DIGIT) for between in "/."]
        forms.append(Form(((f"{minguo}{mm}{dd}",),), DIGIT, DIGIT))
    return tuple(forms)


def english_date_forms(y: int, m: int, d: int) -> tuple[Form, ...]:
    """A date as English writes it with the month's name or abbreviation beside a two-digit year, with any usual
    separator or none: day first ("15APR47", SAS's DATE7; "15.APR.47", "15 Apr'47", "15APRIL47"), month first
    ("Apr 15 '47", "April 15, '47", "APR-15-47", "APR151947", "APR1547") or year first ("47APR15", "1947-APR-15"),
    with "_" for a space ("APR_15TH_47"). The month
    is written with what stands beside it (its year, its separator), so that each form holds a place of long
    spellings to look for first: the month's three letters alone stand in words of every header ("PRIMARY"). A
    needle of its own: its keys seldom occur, and the date's other forms are not tried where they do. The other
    languages' abbreviated months with a two-digit year are here too ("15MAI47", "15/AGO/47", "MAI 15 47")."""
    day, yy2, year4 = tuple({f"{d:02d}", str(d)}), f"{y % 100:02d}", (f"{y:04d}",)
    english = tuple(dict.fromkeys((_ENGLISH_MONTHS[m - 1], _MONTHS[m - 1][0], *(("sept",) if m == 9 else ()))))
    month_year = tuple(f"{n}{s}{yy2}" for n in english for s in _EN_MONTH_YEAR)
    month_then = tuple(f"{n}{s}" for n in english for s in _EN_MONTH_DAY)
    # the month run into the day, padded (not "DEC120", a model's name: found from outside), and the year
    month_day_year = tuple(f"{n}{d:02d}{a}{yy2}" for n in english for a in ("", "'"))  # ("MAR1487", "MAR14'87")
    year_month = tuple(f"{yy2}{s}{n}" for s in _EN_YEAR_MONTH for n in english)
    # and the other languages' months abbreviated, as ASCII writes them ("15MARZ47"; the keys a needle looks for
    # first are ASCII, and each costs every series), with a two-digit year: day first, the month run into the year
    # or beside it ("15MAI47", "15.MAI.47", "15/AGO/47"), or month first ("MAI 15 47")
    others = sorted({s.lower() for name in _MONTHS[m - 1] for s in _month_spellings(name)
                     if s.isascii() and len(s) <= 4} - set(english))
    glued = tuple(f"{n}{s}{yy2}" for n in others for s in ("", ".", "/"))
    others_then = tuple(f"{n}{s}" for n in others for s in (" ", ".", "-", "/"))
    return (
        Form((day, _EN_DAY_MONTH, month_year), DIGIT, DIGIT, first=month_year),
        *((Form((day, _EN_DAY_MONTH, glued), DIGIT, DIGIT, first=glued),  # (November: none)
           Form((others_then, day, _EN_DAY_SHORT_YEAR, (yy2,)), ALPHA, DIGIT, first=others_then)) if others else ()),
        Form((month_then, day, _EN_DAY_YEAR, year4), ALPHA, DIGIT, first=month_then),
        Form((month_then, day, _EN_DAY_SHORT_YEAR, (yy2,)), ALPHA, DIGIT, first=month_then),
        Form((english, day, ("", *_ORDINAL), year4), ALPHA, DIGIT),  # ("MAR141987", "MAR14TH1987")
        Form((month_day_year,), ALPHA, DIGIT, first=month_day_year),
        Form((year4, _EN_YEAR_MONTH, english, _EN_YEAR_MONTH, day), DIGIT, DIGIT),
        Form((year_month, _EN_YEAR_MONTH, day), DIGIT, DIGIT, first=year_month),
    )


def minguo_form(y: int, m: int, d: int) -> Form | None:
    """The date with a year of Taiwan's Minguo calendar in words ("民國50年3月2日", "50年3月2日"); none before it."""
    if y <= 1911:
        return None
    n, month, day = y - 1911, tuple({f"{m:02d}", str(m)}), tuple({f"{d:02d}", str(d)})
    era = ("民國", "民国", "民國 ", "民国 ", "")
    return Form((era, (str(n), f"{n:02d}"), ("年",), month, ("月",), day, ("日",)), DIGIT, NONE, f"民國{n}年{m}月{d}日")


# Japanese eras since the Meiji calendar reform (its first year counted from 1 January 1868): name, initial, start.
_ERAS = (("令和", "r", dt.date(2019, 5, 1)), ("平成", "h", dt.date(1989, 1, 8)), ("昭和", "s", dt.date(1926, 12, 25)),
         ("大正", "t", dt.date(1912, 7, 30)), ("明治", "m", dt.date(1868, 1, 1)))


def era_forms(y: int, m: int, d: int) -> tuple[Form, ...]:
    """The date with a Japanese era year, as Japanese systems write it ("昭和36年2月3日", "S36.02.03"); none before
    the Meiji era."""
    date = dt.date(y, m, d)
    era = next((e for e in _ERAS if e[2] <= date), None)
    if era is None:
        return ()
    name, initial, start = era
    n = y - start.year + 1
    year = tuple({f"{n:02d}", str(n)} | ({"元"} if n == 1 else set()))  # (the first year: 元年)
    month, day = tuple({f"{m:02d}", str(m)}), tuple({f"{d:02d}", str(d)})
    return (Form(((name,), ("", " "), year, ("年",), ("", " "), month, ("月",), ("", " "), day, ("日",)), NONE, NONE,
                 f"{name}{n}年{m}月{d}日"),
            Form(((initial, initial.upper()), year, _SHORT_SEPARATORS, month, _SHORT_SEPARATORS, day), ALPHA, DIGIT))


def _month_spellings(word: str) -> set[str]:
    """A month name in either case (bytes are lower-cased for ASCII only) and ASCII-folded both ways."""
    return {word, word.upper(), word.capitalize(), fold(word), fold(word, True)}


# --- rendering ---------------------------------------------------------------------------------------------------

_CLASSES = {ALPHA: rb"[a-z]", DIGIT: rb"[0-9]", NUMBER: rb"[0-9]"}


def _after_a_decimal_point(encoding: str) -> bytes:
    """A look-behind that keeps a match from standing after a number's digit and a point in `encoding`: the digits
    of a decimal number's fraction are no ID (found from outside: "0.009765625" of a slice thickness held a file for
    the ID 9765625). A digit after a letter is a name's ("v1.0004711203": found from outside). (Not a comma: one may
    part numbers in a list.)"""
    nuls = _WIDE_NULS.get(encoding[:6], b"")
    little = encoding.endswith("_le")
    one, digit, point = ((c + nuls if little else nuls + c) for c in (rb"[^a-zA-Z]", rb"[0-9]", rb"\."))
    return rb"(?<!" + one + digit + point + rb")(?<!^" + digit + point + rb")"


def _bounds(boundary: str, encoding: str, loose: bool = False) -> tuple[bytes, bytes]:
    """(look-behind, look-ahead) that keep a match in `encoding` from standing next to a letter or digit
    (`boundary`). A pattern of one byte order also matches text of the other shifted by a byte (three in UTF-32):
    a little-endian match then ends inside the next character, a big-endian one starts inside the one before, at
    the start of the bytes with no NUL before it.

    In one-byte-per-letter text, a letter after a word that a NUL byte follows is no part of the word: a value's
    bytes are followed by the next element's tag, whose first byte (little endian) is its group's low byte and
    reads as a letter for a group such as 0070 ("p"), before the group's high byte, NUL. (A digit so followed
    stays part of a number: a UID's last digit before the NUL that pads it.) `loose`: nor a letter or digit before
    a match that a control byte comes before (see `Needle.loose_pattern`)."""
    c = _CLASSES[boundary]
    nuls = _WIDE_NULS.get(encoding[:6])
    if nuls is None:
        text = rb"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"  # (a byte of text: no control byte, but a tab or a line's end)
        left = rb"(?<!" + text + c + rb")(?<!^" + c + rb")" if loose else rb"(?<!" + c + rb")"
        return left, rb"(?!" + c + (rb"(?!\x00))" if boundary == ALPHA else rb")")
    if encoding.endswith("_le"):
        return rb"(?<!" + c + nuls + rb")", rb"(?!" + c + rb"(?:\x00|\Z))"
    return rb"(?<!" + nuls + c + rb")(?<!^" + c + rb")", rb"(?!" + nuls + c + rb")"


_WIDE_NULS = {"utf_16": rb"\x00", "utf_32": rb"\x00\x00\x00"}  # the NUL bytes beside an ASCII character's


def _byte_pattern(forms: Iterable[Form], encodings: tuple[str, ...], loose: bool = False) -> re.Pattern[bytes]:
    """The forms in `encodings` as one expression (`_pairs_pattern`)."""
    return _pairs_pattern([(form, encoding) for form in forms for encoding in encodings], loose)


def _pairs_pattern(pairs: Iterable[tuple[Form, str]], loose: bool = False) -> re.Pattern[bytes]:
    """Forms, each in an encoding, as one expression: their alternatives in sorted order, those next to each other
    between the same boundaries written behind one pair of them (tried in the same order, so each search finds
    what the plain alternatives find). The boundaries were most of a date's 17 KB; compiling takes time by length.
    """
    alternatives: dict[bytes, tuple[bytes, bytes, bytes]] = {}
    for form, encoding in pairs:
        body = _render(form, encoding)
        if body is None:
            continue
        left = _bounds(form.left, encoding, loose)[0] if form.left else b""
        left += _after_a_decimal_point(encoding) if form.left == NUMBER else b""
        right = _bounds(form.right, encoding)[1] if form.right else b""
        alternatives[left + body + right] = (left, right, body)
    runs = groupby((alternatives[a] for a in sorted(alternatives)), key=lambda a: a[:2])
    return re.compile(b"|".join(left + _one_of([a[2] for a in run]) + right for (left, right), run in runs))


def _one_of(bodies: list[bytes]) -> bytes:
    return bodies[0] if len(bodies) == 1 else b"(?:" + b"|".join(bodies) + b")"


_ESCAPE = rb"\x1b[\x20-\x2f]*[\x30-\x7e]"  # an ISO 2022 escape sequence (ISO/IEC 2022 13.2)
_ANY_ESCAPE = re.compile(rb"\x1b[\x20-\x2f]+[\x30-\x7e]")  # (a designation: "ESC Z" is none, its "Z" a letter)
_ESCAPES_AT_ENDS = re.compile(rb"^(%b)+|(%b)+$" % (_ESCAPE, _ESCAPE))


def _render(form: Form, encoding: str) -> bytes | None:
    """The form as a byte regex in `encoding` (None if the encoding cannot write it)."""
    if "2022" in encoding:  # stateful: the value as written
        data = _stateful(form, encoding)
        return re.escape(data) if data else None
    parts = []
    for place, token in enumerate(form.tokens, 1 - len(form.tokens)):
        encoded = _token_bytes(token, encoding)
        if not encoded:
            return None
        escaped = [re.escape(e) for e in sorted(encoded, key=len, reverse=True)]
        parts.append(escaped[0] if len(escaped) == 1 else _group(escaped, at_end=place >= -1))
    return b"".join(parts)


def _group(escaped: list[AnyStr], at_end: bool) -> AnyStr:
    """Alternatives as one group; atomic where one is empty (a mark, a character that shows nothing, a separator
    a copy may leave out) and a place follows: the group takes what it can and is not tried again without it. Else
    the empty ones of a run of them (a name with thirty soft hyphens) could share what they match every way before
    a search failed: seconds a value, twice as long for each more (found from outside). No place after such a group
    begins with what the group takes, so no match is lost. The last two places (`at_end`) are not atomic: the form's
    boundary follows them, which may hold where they take nothing ("igor" in "igor's" for Игорь, whose ь may be
    written ', found in review; a name may end in two such letters)."""
    atomic = not at_end and escaped[-1] in ("", b"")  # (sorted longest first: an empty one is last)
    if isinstance(escaped[0], bytes):
        return (b"(?>" if atomic else b"(?:") + b"|".join(escaped) + b")"
    return ("(?>" if atomic else "(?:") + "|".join(escaped) + ")"


def _stateful(form: Form, encoding: str) -> bytes | None:
    """The form as written in a stateful (ISO 2022) encoding, lower-cased, the escapes at its ends left out (None if
    the encoding cannot write it)."""
    try:
        data = (form.text or "".join(t[0] for t in form.tokens)).encode(encoding)
    except (UnicodeError, LookupError):
        return None
    return _ESCAPES_AT_ENDS.sub(b"", data).lower() or None


def _token_bytes(token: Token, encoding: str) -> set[bytes]:
    """The ways `encoding` writes a place, lower-cased as bytes (none: it can write no alternative)."""
    written = set()
    for alternative in token:
        try:
            written.add(encoded(alternative, encoding).lower())
        except (UnicodeError, LookupError):
            continue
    return written


def encoded(text: str, encoding: str) -> bytes:
    """`text` in `encoding`; in Windows-1258 (Vietnamese), a letter it has no character for as the letter with its
    other marks and its tone mark as a combining character ("ễ" as "ê" and a tilde), as Windows writes it (found
    from outside: a name so copied was released)."""
    if encoding != "cp1258" or text.isascii():
        return text.encode(encoding)
    return "".join(map(_in_1258, unicodedata.normalize("NFC", text))).encode(encoding)


@lru_cache(maxsize=1024)
def _in_1258(c: str) -> str:
    try:
        c.encode("cp1258")
    except UnicodeEncodeError:
        parts = unicodedata.normalize("NFD", c)
        letter = unicodedata.normalize("NFC", "".join(p for p in parts if p not in _TONES_1258))
        return letter + "".join(p for p in parts if p in _TONES_1258)
    return c


_TONES_1258 = "\u0300\u0301\u0303\u0309\u0323"  # the marks Windows-1258 writes as combining characters


def _text_alternatives(forms: Iterable[Form]) -> set[str]:
    """The forms as expressions over folded text; an alternative with a tab, a line break or a backslash (a copy
    in ASCII, which the search of the bytes finds) left out where the place has others: each costs every search of
    a file's decoded text (found from outside: a large header's took a fifth longer)."""
    found = set()
    for form in forms:
        parts = []
        for place, token in enumerate(form.tokens, 1 - len(form.tokens)):
            alternatives = {_look(fold(a, e)) for a in token for e in (False, True)}
            alternatives = {a for a in alternatives if not _BYTES_ONLY.search(a)} or alternatives
            escaped = [re.escape(a) for a in sorted(alternatives, key=len, reverse=True)]
            parts.append(escaped[0] if len(escaped) == 1 else _group(escaped, at_end=place >= -1))
        left = {ALPHA: r"(?<![^\W\d_])", DIGIT: r"(?<!\d)", NUMBER: _NUMBER_IN_TEXT, NONE: ""}[form.left]
        right = {ALPHA: r"(?![^\W\d_])", DIGIT: r"(?!\d)", NONE: ""}[form.right]
        found.add(left + "".join(parts) + right)
    return found


_NUMBER_IN_TEXT = r"(?<!\d)(?<![\W\d_]\d\.)(?<!^\d\.)"  # (`_after_a_decimal_point` in decoded text)
_BYTES_ONLY = re.compile(r"[\t\n\r\\]")


def _plain_forms(needle: Needle) -> tuple[Form, ...]:
    """A needle made from bytes alone: the text, bounded as a number or a word."""
    text = needle.data.decode("utf-8", "replace")
    if needle.numeric:
        return (Form(((text,),), DIGIT, NONE),)
    return (text_form(text),)


def _shortest(text: str, encodings: tuple[str, ...]) -> int:
    """The fewest bytes an encoding writes `text` in: three Cyrillic letters are three bytes in KOI8-R, as short
    as three ASCII letters, and as likely to occur by chance."""
    if text.isascii():
        return len(text)
    lengths = []
    for encoding in encodings:
        try:
            lengths.append(len(_ESCAPES_AT_ENDS.sub(b"", encoded(text, encoding))))
        except (UnicodeError, LookupError):
            continue
    return min(lengths, default=0)


@lru_cache(maxsize=4096)
def _worth_searching(data: bytes) -> bool:
    if data.isdigit():
        return len(data) >= MIN_DIGITS
    return len(data) >= MIN_TEXT


# --- searching ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    """Automatons that find every key of the needles in one pass (in bytes; in folded text), which needles each
    key stands for, in the automatons' order, and the needles without keys (always searched). An automaton is
    None when no needle has a key.

    In bytes, a key stands for needles by their `pattern` or by their `wide_pattern` (a key of UTF-32 text)."""

    in_bytes: BytesAhoCorasick | None
    byte_needles: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # by `pattern`, by `wide_pattern`
    in_text: AhoCorasick | None
    text_needles: tuple[tuple[int, ...], ...]
    always: tuple[int, ...]
    always_in_text: tuple[int, ...]  # (but those looked for in bytes only: `Needle.in_text`)
    uids_25: frozenset[bytes]  # the needles that are `2.25.` UIDs

    def candidates(self, views: bytes, split: int = -1) -> tuple[set[int], set[int], set[int]]:
        """The needles that may occur in the bytes of which `views` are views, by `pattern` and by `wide_pattern`:
        those without keys, and those with a key found; and those with a key found as wide text (in the views of
        every other byte, which begin after `split`, or a UTF-32 key)."""
        narrow, wide, in_wide_text = set(self.always), set(self.always), set[int]()
        for key, start, _ in self.in_bytes.find_matches_as_indexes(views, overlapping=True) if self.in_bytes else ():
            by_pattern, by_wide_pattern = self.byte_needles[key]
            narrow.update(by_pattern)
            wide.update(by_wide_pattern)
            in_wide_text.update(by_wide_pattern)
            if start > split >= 0:
                in_wide_text.update(by_pattern)
        return narrow, wide, in_wide_text

    def text_candidates(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """The needles that may occur in folded `text`, each with where its keys were found there (none: a needle
        without keys, searched everywhere); not those looked for in bytes only."""
        found: dict[int, list[tuple[int, int]]] = {i: [] for i in self.always_in_text}
        for key, start, end in self.in_text.find_matches_as_indexes(text, overlapping=True) if self.in_text else ():
            for i in self.text_needles[key]:
                found.setdefault(i, []).append((start, end))
        return found


@dataclass
class _Series:
    """What a worker keeps for one tuple of needles (a series' needles: the files of a series share the tuple): its
    index, built when first needed, and what searches of values found, for up to `_FOUND_BUDGET` bytes of values
    (the files of a series repeat their private values)."""

    patterns: tuple[Needle, ...]
    index: _Index | None = None
    uses: int = 0  # of the index
    found: dict[bytes, tuple[Needle, ...]] = field(default_factory=dict)
    found_bytes: int = 0

    def remember(self, data: bytes, found: list[Needle]) -> None:
        if len(data) > _FOUND_BUDGET // 8:
            return  # (a header of many frames is searched once, never kept)
        if self.found_bytes + len(data) > _FOUND_BUDGET or len(self.found) >= _FOUND_KEPT:
            self.found.clear()
            self.found_bytes = 0
        self.found[data] = tuple(found)
        self.found_bytes += len(data)


# By the identity of the needles' tuple (one per series, searched many times per file): hashing a hundred
# needles for every search would cost more than the search. The tuple is kept alive with its index. An index's
# automaton takes about a megabyte (outside Python's heap), a series' needles as much once compiled, and an index
# takes milliseconds to build (`_index`): the last 32 series are kept (a study's series, also in a folder whose
# files come in no order), not every series a worker saw.
_SERIES: dict[int, _Series] = {}
_SERIES_KEPT = 32
_FOUND_BUDGET = 1 << 20  # bytes of searched values kept, at most, per series
_FOUND_KEPT = 512  # searched values kept, at most, per series
_FEW = 8  # needles searched without an index (a file's needles found in its private values, cleaned from each)
_SEARCHED_KEPT, _SEARCHED_VALUE = 64, 256  # values, and their most bytes, whose search a needle keeps (occurs_in)


def _series(patterns: tuple[Needle, ...]) -> _Series:
    """What is kept for this tuple of needles."""
    known = _SERIES.get(id(patterns))
    if known is not None and known.patterns is patterns:  # (an id is reused only once its tuple is freed)
        return known
    if len(_SERIES) >= _SERIES_KEPT:
        _SERIES.clear()  # (one step: a Dask worker prepares files in threads, and this module is not compiled)
    known = _SERIES[id(patterns)] = _Series(patterns)
    return known


def _index(patterns: tuple[Needle, ...]) -> _Index:
    """The needles' index, built once per tuple of needles, and again, to search faster, once it has been used
    `_FAST_AFTER` times."""
    series = _series(patterns)
    series.uses += 1
    if series.index is None or series.uses == _FAST_AFTER:
        series.index = _build_index(patterns, fast=series.uses >= _FAST_AFTER)
    return series.index


# A DFA searches a header in 40% of the time the NFA chosen by default takes (0.06 against 0.14 ms), but takes
# ten times as long to build (4.5 against 0.5 ms for a file's 700 keys): worth it for a series' many files, not
# for a subject or study of a few (each file its own study: a DFA each was 4.5 ms a file).
_FAST_AFTER = 64


def _build_index(patterns: tuple[Needle, ...], fast: bool) -> _Index:
    # A needle's ASCII runs are looked for as ASCII bytes in the views of a value (see _find); its other keys
    # (letters in other encodings, UTF-32) as they are.
    by_bytes: dict[bytes, tuple[list[int], list[int]]] = {}
    by_text: dict[str, list[int]] = {}
    always = []
    for i, needle in enumerate(patterns):
        if not needle.keys or not needle.wide_keys:
            always.append(i)
            continue
        for key in [r.encode("ascii") for r in needle.runs] if needle.runs else needle.keys:
            by_bytes.setdefault(key, ([], []))[0].append(i)
        for key in needle.wide_keys:
            by_bytes.setdefault(key, ([], []))[1].append(i)
        for text in needle.text_keys if needle.in_text else ():
            by_text.setdefault(text, []).append(i)
    implementation = Implementation.DFA if fast else None
    return _Index(BytesAhoCorasick(list(by_bytes), implementation=implementation) if by_bytes else None,
                  tuple((tuple(narrow), tuple(wide)) for narrow, wide in by_bytes.values()),
                  AhoCorasick(list(by_text)) if by_text else None, tuple(map(tuple, by_text.values())), tuple(always),
                  tuple(i for i in always if patterns[i].in_text),
                  frozenset(n.data for n in patterns if n.data.startswith(b"2.25.")))


def uids_under_2_25(patterns: tuple[Needle, ...]) -> frozenset[bytes]:
    """The needles that are `2.25.` UIDs (another system's, or ours of an earlier run): our own keyed UIDs, which
    the residual check leaves out, look like them."""
    return _index(patterns).uids_25


def find(data: bytes, patterns: tuple[Needle, ...], remember: bool = True) -> list[Needle]:
    """The needles that occur in `data` as words, in any of their encodings and forms, also read past its ISO 2022
    escape sequences (`escape_views`). For a series' needles, remembered (`_Series`) unless not to `remember`
    (bytes no other file holds: a written file, its path); for a few needles (those a file's values were found to
    hold), by each needle (`Needle.occurs_in`)."""
    found = _find_as_written(data, patterns, remember)
    if b"\x1b" in data:
        for view in escape_views(data):
            found += [n for n in (_find(view, patterns) if patterns else []) if n not in found]
    return found


def escape_views(data: bytes) -> list[bytes]:
    """`data` read past the ISO 2022 escape sequences (PS3.5 6.1.2.5) that stand beside text in it: each taken out
    (one may stand inside a word: "M ESC - A üller") and each read as a space (one ends a word, though its last
    byte is a letter: "Yamada" after "ESC ( B"); none when no sequence stands beside text. Read past: a one-byte set
    designated, or a set of two bytes a character into G1 ("ESC $ ) C": what follows it in G0 is ASCII, "Jeong").
    A set of two bytes into G0 ("ESC $ B") stays: the bytes after it are no ASCII (found from outside: kanji whose
    bytes spell "Hana" were cut for a patient Hana)."""
    spans = _escapes_beside_text(data)
    if not spans:
        return []
    blanked = bytearray(data)
    for start, end in spans:
        blanked[start:end] = b" " * (end - start)
    return [b"".join(data[a:b] for a, b in _between(spans, len(data))), bytes(blanked)]


def _escapes_beside_text(data: bytes) -> list[tuple[int, int]]:
    """Where `data`'s ISO 2022 escape sequences are, if one stands beside a letter or digit (not only in binary)."""
    if b"\x1b" not in data:
        return []
    spans = [m.span() for m in _ISO_2022_ESCAPE.finditer(data)]  # (a scan for ESC: a pattern that began with the
    # byte before it tried every byte of a header, 1.5 ms for 100 KB of text)
    beside = any(start and data[start - 1] in _TEXT_BYTES or end < len(data) and data[end] in _TEXT_BYTES
                 for start, end in spans)
    return spans if beside else []


def _between(spans: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The stretches of a value of `size` bytes around `spans` (in order, apart)."""
    ends = [0, *(end for _, end in spans)]
    starts = [*(start for start, _ in spans), size]
    return list(zip(ends, starts, strict=True))


# ESC ( B, ESC - A: a one-byte set into G0 to G3; ESC $ ) C: a set of two bytes a character into G1 to G3
# (ISO/IEC 2022 14.3.2); not ESC $ B or ESC $ ( D, two bytes a character into G0
_ASCII_STAYS = rb"\x1b(?:[\x28-\x2f]|\$[\x29-\x2f])[\x30-\x7e]"
_ISO_2022_ESCAPE = re.compile(_ASCII_STAYS)
_TEXT_BYTES = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" + bytes(range(0x80, 0x100)))


def _find_as_written(data: bytes, patterns: tuple[Needle, ...], remember: bool) -> list[Needle]:
    if len(patterns) <= _FEW:
        if remember and len(data) <= _SEARCHED_VALUE:
            return [n for n in patterns if n.occurs_in(data)]
        return _find(data, patterns) if patterns else []
    series = _series(patterns)
    known = series.found.get(data) if remember else None
    if known is not None:
        return list(known)
    found = _find(data, patterns)
    if remember:
        series.remember(data, found)
    return found


def find_once(data: bytes, patterns: tuple[Needle, ...]) -> list[Needle]:
    """`find`, not remembered: for needles of one file (its instance UID), searched in its values once. A needle
    without letters is searched in `data` as it is (lower-casing a header costs more than the search)."""
    lowered = b""
    found = []
    for needle in patterns:
        if not needle.caseless and not lowered:
            lowered = data.lower()
        if needle.occurs(data if needle.caseless else lowered):
            found.append(needle)
    return found


def _find(data: bytes, patterns: tuple[Needle, ...]) -> list[Needle]:
    haystack = data.lower()
    if len(patterns) <= _FEW:  # each tried on its own: cheaper than an index built for them
        return [n for n in patterns if n.occurs(haystack)]
    return _found(haystack, patterns)[0]


def _found(lowered: bytes, patterns: tuple[Needle, ...]) -> tuple[list[Needle], _Index, set[int], set[int]]:
    """The needles found in `lowered` by the index; the index, the needles with a key found in one-byte text and
    those with a key found as wide text."""
    # A needle can occur only where one of its runs does: in ASCII-compatible bytes, or every other byte (UTF-16
    # LE or BE); or where one of its other keys does. One pass of the automaton over the three views together (a
    # run across two of them only costs a test).
    index = _index(patterns)
    narrow, wide, in_wide_text = index.candidates(b"\n".join((lowered, lowered[0::2], lowered[1::2])),
                                                  split=len(lowered))
    found = [patterns[i] for i in sorted(narrow | wide) if patterns[i].occurs(lowered, i in narrow, i in wide)]
    return found, index, narrow, in_wide_text


def find_in_file(lowered: bytes, patterns: tuple[Needle, ...]) -> tuple[list[Needle], list[Needle]]:
    """The needles that occur in `lowered` (bytes lower-cased with `bytes.lower()`); and those not found that a
    pattern can miss at a value's ends, to be looked for in each value on its own. A pattern's boundaries read the
    bytes beside a match as characters, and the bytes before a value (its length) or after it (the next tag) can
    read as a letter or digit: in one-byte text those whose `loose_pattern` matches (a length, big endian, "\\0B"
    for 66 bytes); in wide text (UTF-16, in every other byte; UTF-32) those whose keys occur ("B\\0", "\\0B", and
    "p\\0" for a tag of group 0070); and those without keys (names in letters that gave none) whose pattern has
    boundaries at all."""
    if len(patterns) <= _FEW:  # each tried on its own: cheaper than an index built for them
        found = [n for n in patterns if n.occurs(lowered)]
        return found, [n for n in patterns if n not in found and _missed_at_an_end(n, lowered)]
    found, index, narrow, in_wide_text = _found(lowered, patterns)
    keyless = set(index.always)
    missed = {i for i in narrow - in_wide_text - keyless if patterns[i].occurs_loosely(lowered)}
    missed |= {i for i in keyless if patterns[i].bounded}
    return found, [patterns[i] for i in sorted(in_wide_text | missed) if patterns[i] not in found]


def _missed_at_an_end(needle: Needle, lowered: bytes) -> bool:
    """Whether a needle not found may have been missed at a value's end (`find_in_file`)."""
    if not needle.keys or not needle.wide_keys:
        return needle.bounded
    if any(k in lowered for k in (*needle.wide_keys, *(k for k in needle.keys if b"\x00" in k))):
        return True
    return any(k in lowered for k in needle.keys if b"\x00" not in k) and needle.occurs_loosely(lowered)


def find_text(text: str, patterns: tuple[Needle, ...]) -> list[Needle]:
    """The needles that occur in decoded `text`, compared casefolded and ASCII-folded (umlauts either way); not
    those looked for in bytes only (`Needle.in_text`)."""
    if not patterns:
        return []
    index = _index(patterns)
    found: set[int] = set()
    for view in folds(text):
        for i, keys in index.text_candidates(view).items():
            if i not in found and _in_text_near(patterns[i], view, keys):
                found.add(i)
    return [patterns[i] for i in sorted(found)]


def _in_text_near(needle: Needle, text: str, keys: list[tuple[int, int]]) -> bool:
    """Whether the needle's `text_pattern` matches folded `text`: near its keys (`keys`: where they were found; every
    match holds one), or anywhere when it has none. A match lies within `span` characters of its key, twice that
    folded ("ß" is "ss"), and the search is given room for its boundary tests beyond that on either side: the
    pattern is searched in a window around each key, as it would be in the whole text (found on review: a date's
    5,000-character pattern, keyed by " 92", read 64 MiB of spectroscopy floats decoded as text, 20 minutes).
    """
    pattern = needle.text_pattern
    reach = 4 * needle.span + 64
    if not keys or len(text) <= 4 * reach:
        return pattern.search(text) is not None
    keys = sorted(keys)
    start, end = keys[0][0] - reach, keys[0][1] + reach
    for key_start, key_end in keys[1:]:
        if key_start - reach > end:  # (a window of its own; the one before searched)
            if pattern.search(text, max(0, start), end) is not None:
                return True
            start = key_start - reach
        end = max(end, key_end + reach)
    return pattern.search(text, max(0, start), end) is not None


def count(data: bytes, needle: Needle) -> int:
    """How often `needle` occurs in `data` as a word."""
    haystack = data.lower()
    return sum(1 for pattern in needle.patterns(haystack) for _ in pattern.finditer(haystack))


def scrub(data: bytes, patterns: tuple[Needle, ...], utf_8: bool = False) -> bytes:
    """`data` with every needle overwritten in place (same length: binary structures stay valid; the NUL bytes of
    UTF-16 and UTF-32 text stay, so that it stays text), also where it is read past its ISO 2022 escape sequences
    (`escape_views`; the sequences stay); `utf_8`: `data` is UTF-8 text, cut in whole characters
    (`_whole_characters`; not in a value of another encoding or a binary one, where those bytes are others)."""
    cleaned = _scrub_as_written(data, patterns, utf_8)
    spans = _escapes_beside_text(cleaned)
    if not spans:
        return cleaned
    buffer = bytearray(escape_views(cleaned)[1])  # each sequence a space
    buffer[:] = _scrub_as_written(bytes(buffer), patterns, utf_8)
    stretches = _between(spans, len(data))
    for start, end in spans:
        buffer[start:end] = cleaned[start:end]
    apart = _scrub_as_written(b"".join(buffer[a:b] for a, b in stretches), patterns, utf_8)  # each taken out
    at = 0
    for start, end in stretches:
        buffer[start:end] = apart[at:at + end - start]
        at += end - start
    return bytes(buffer)


def _scrub_as_written(data: bytes, patterns: tuple[Needle, ...], utf_8: bool) -> bytes:
    if len(patterns) > _FEW:  # the needles the index finds (each needle's own search of a long header took a
        # millisecond for a series' needles, paid for each new series); every needle in turn where overwriting
        # them made one anew ("A030261" with its date overwritten spells the patient's ID "A000000")
        cleaned = _scrubbed(data, tuple(_found(data.lower(), patterns)[0]), utf_8)
        if not _found(cleaned.lower(), patterns)[0]:
            return cleaned
    return _scrubbed(data, patterns, utf_8)


def _scrubbed(data: bytes, patterns: tuple[Needle, ...], utf_8: bool) -> bytes:
    """Each needle cut where `data` holds it (found from outside: cut one after another, a value written against
    one cut before it was no word any more, its neighbour a filler letter: "ПетровPetrov", "A77120934Moreau"); then
    where a cut made one anew ("A030261" with its date cut spells the ID "A000000")."""
    buffer = bytearray(data)
    lowered = data.lower()
    taken = bytearray(len(data))  # the bytes cut so far: a match across one was cut by an earlier needle
    for needle in patterns:
        for pattern in needle.patterns(lowered):
            _cut(buffer, lowered, pattern, needle, utf_8, taken)
    for needle in patterns:
        lowered = bytes(buffer).lower()
        for pattern in needle.patterns(lowered):
            if _cut(buffer, lowered, pattern, needle, utf_8):
                lowered = bytes(buffer).lower()
    if b"\x1b" in data:  # an ISO 2022 escape sequence a match took in stays (found from outside: the "J" of
        # "ESC ( J" before "ones" was cut for a "Jones", and what followed was no more in a character set)
        for escape in _ANY_ESCAPE.finditer(data):
            buffer[escape.start():escape.end()] = escape.group()
    return bytes(buffer)


def _cut(buffer: bytearray, lowered: bytes, pattern: re.Pattern[bytes], needle: Needle, utf_8: bool,
         taken: bytearray | None = None) -> bool:
    """Overwrite in `buffer` where `pattern` matches `lowered` (the bytes of the match not yet `taken`, which gets
    them: a longer value an earlier needle cut a part of is cut whole, its cut part as it was; found from outside,
    the institution's word "FAKE" cut first left "XXXX GENERAL HOSPITAL"); whether it did."""
    filler = b"0" if needle.numeric else b"X"
    cut = False
    for match in pattern.finditer(lowered):
        start, end = _whole_characters(lowered, match.start(), match.end()) if utf_8 else match.span()
        if taken is not None and any(taken[start:end]):
            for at in range(start, end):
                if not taken[at]:
                    buffer[at:at + 1] = _NOT_NUL.sub(filler, buffer[at:at + 1])
                    taken[at] = 1
                    cut = True
            continue
        if taken is not None:
            taken[start:end] = b"\x01" * (end - start)
        buffer[start:end] = _NOT_NUL.sub(filler, buffer[start:end])
        cut = True
    return cut


def _whole_characters(data: bytes, start: int, end: int) -> tuple[int, int]:
    """A match's bytes widened to whole UTF-8 characters where it begins or ends inside one: a form written in a
    one-byte encoding may match a UTF-8 letter's first byte (found from outside: "Novotného" for "Novotný" was cut
    after the first byte of its "é", and the byte after it written alone)."""
    for _ in range(3):
        if end < len(data) and 0x80 <= data[end] <= 0xBF and data[end - 1] >= 0x80:
            end += 1
        if start > 0 and 0x80 <= data[start] <= 0xBF and data[start - 1] >= 0x80:
            start -= 1
    return start, end


_NOT_NUL = re.compile(rb"[^\x00]")


_IDENTITY_TAGS = (SPECIFIC_CHARACTER_SET, SOP_INSTANCE_UID, PATIENT_NAME, PATIENT_ID, PATIENT_BIRTH_DATE,
                  STUDY_INSTANCE_UID)
_DUMMY_IDENTITY = frozenset({"anon", "10000101"})  # NiDB's and our dummies: already de-identified, nobody


def subject_of(ds: Dataset) -> str:
    """Whom a file is about, taken the same way in every file: its PatientID; else its
    patient's name with birth date; else its study; else the instance alone. Each fallback is in its own
    namespace and needs all its parts, so that two people are never taken for one. `ds` is not changed."""
    subject = patient_id(ds)
    if subject.strip():
        return subject
    view = Dataset({BaseTag(t): ds.get_item(t) for t in _IDENTITY_TAGS if t in ds})  # decoded here, not in ds

    def text(keyword: str) -> str:
        value = str(view.get(keyword, "") or "").strip()
        return "" if value.lower() in _DUMMY_IDENTITY else value

    name, birth = text("PatientName"), text("PatientBirthDate")
    if name and birth:
        return f"\0name\0{name}\0{birth}"
    for keyword in ("StudyInstanceUID", "SOPInstanceUID"):
        if text(keyword):
            return f"\0{keyword}\0{text(keyword)}"
    return ""

