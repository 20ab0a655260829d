"""`neuroanon verify`: scan a tree that should be clean and say, per file, what is not.

Checks what the level promises (attributes it cleans holding non-dummy values, private elements off the
allow-list, overlays, file meta, preamble, marks), burned-in risk, and, given the originals, whether any of
their identifying values, UIDs or PatientIDs occur in the files' bytes or paths. Findings name tags and
attributes, never values.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian

from . import csa
from .allowlist import holds_a_number
from .burnedin import burned_in_risk
from .discover import InputFile, Kind, archive_kind, container_fields, discover, extracted
from .errors import InputError, os_cause
from .gepdb import listed_only
from .identifiers import APART, Needle, find, is_dummy, item_identity, needles, nested_needles
from .keys import Keyring
from .options import Level, Options
from .read import Header, is_dicomdir, quiet, read_header
from .residual import (
    Finding,
    bytes_after_frames,
    check_bytes,
    check_file,
    check_path,
    looks_like_text,
    pixels_with_unused_bits,
    unused_bits,
)
from .rules import DUMMY_TEXT, NIDB_ANONYMIZE, Context, Op, Rules, compile_rules
from .tags import private_creator_tag, tag_text
from .technical import is_standard_uid

_DUMMIES = frozenset(DUMMY_TEXT.values()) | {"0", "0.0"}
_FIVE_KEYWORDS = frozenset(keyword_for_tag(t) for t in NIDB_ANONYMIZE)


@dataclass
class FileResult:
    """The findings for one file (empty: clean)."""

    path: str
    findings: list[str] = field(default_factory=list)
    dicom: bool = True
    # not read: a broken zip archive, an unreadable file or folder, a symlink (found from outside: a tree of only
    # these was said to hold no DICOM file, its causes unsaid)
    unread: bool = False
    # `path` as shown: the folders and the name in it that hold an original's value withheld (found from outside:
    # verify printed the very path it said held the patient's name)
    shown: str = ""

    def __post_init__(self) -> None:
        self.shown = self.shown or self.path

    def as_dict(self) -> dict[str, object]:
        return {"file": self.shown, "findings": self.findings}


@dataclass(frozen=True)
class Originals:
    """What the originals hold that must not reappear: identifying values, UIDs, PatientIDs."""

    patterns: tuple[Needle, ...]
    uids: frozenset[str]
    patient_ids: frozenset[str]
    # With the project key: each output's own original's values, found by its remapped SOPInstanceUID; for an
    # output without one, its subject's originals' values, found by its pseudonymized PatientID.
    by_instance: dict[str, tuple[Needle, ...]] = field(default_factory=dict)
    read: int = 0  # the originals whose header was read
    unread: int = 0  # the DICOM originals that could not be read (their values are not looked for)
    by_subject: dict[str, tuple[Needle, ...]] = field(default_factory=dict)

    def patterns_for(self, ds: Dataset) -> tuple[Needle, ...]:
        """The values to look for in `ds`: its own original's if known, else its subject's originals' (found from
        outside: a file without UIDs was held to every original's values, and another patient's name word in it
        was a finding), else those of every original."""
        own = self.by_instance.get(str(ds.get("SOPInstanceUID", "")))
        return own if own is not None else self.by_subject.get(str(ds.get("PatientID", "")), self.patterns)


def load_originals(paths: list[Path], level: Level, key: bytes | None = None) -> Originals:
    """Read every original header once and gather what must not reappear (at anonymize: only the five).

    Given the key, each output at full is held to its own original's values; without it, to all of them (which
    can flag a value one original shares by chance with another file's technical text).
    """
    patterns: dict[bytes, Needle] = {}
    by_instance: dict[str, tuple[Needle, ...]] = {}
    by_subject: dict[str, dict[bytes, Needle]] = {}
    keyring = Keyring(key) if key is not None and level is Level.FULL else None
    uids: set[str] = set()
    patient_ids: set[str] = set()
    read = unread = 0
    seen: set[tuple[int, int, str | None]] = set()
    for found in discover(paths):
        # (an archive's member too, as anonymize reads it: found from outside, originals in an archive gave no
        # values, and an output holding the name was called clean)
        try:
            info = found.path.stat()
        except OSError:
            info = None
        if info is not None:  # (one original named twice, as a file and in its folder, is counted once)
            if (info.st_dev, info.st_ino, found.member) in seen:
                continue
            seen.add((info.st_dev, info.st_ino, found.member))
        with _readable(found) as item:
            if item is not None and item.kind is Kind.DICOM:
                with quiet():  # pydicom's warnings and validation messages quote values
                    gathered = _gather(item.path, level, keyring, patterns, by_instance, by_subject, uids,
                                       patient_ids)
                read, unread = read + gathered, unread + (not gathered)
    return Originals(_longest_first(patterns), frozenset(uids), frozenset(patient_ids), by_instance, read, unread,
                     {subject: _longest_first(own) for subject, own in by_subject.items()})


def _longest_first(patterns: dict[bytes, Needle]) -> tuple[Needle, ...]:
    return tuple(sorted(patterns.values(), key=lambda n: len(n.data), reverse=True))


@contextmanager
def _readable(found: InputFile) -> Iterator[InputFile | None]:
    """`found`; for a zip or gzip member, a private temporary copy of it, or None when it cannot be unpacked (a bad
    CRC, a truncated or damaged gzip stream)."""
    if found.kind not in (Kind.ZIP_MEMBER, Kind.GZIP_MEMBER):
        yield found
        return
    with tempfile.TemporaryDirectory(prefix="neuroanon-verify-") as folder, ExitStack() as unpacked:
        try:
            item: InputFile | None = unpacked.enter_context(extracted(found, Path(folder)))
        except (OSError, zipfile.BadZipFile, EOFError, zlib.error):
            item = None
        yield item


def _gather(path: Path, level: Level, keyring: Keyring | None, patterns: dict[bytes, Needle],
            by_instance: dict[str, tuple[Needle, ...]], by_subject: dict[str, dict[bytes, Needle]], uids: set[str],
            patient_ids: set[str]) -> bool:
    """Add one original's identifying values, UIDs and PatientID to what must not reappear; whether it was read."""
    try:
        ds = read_header(path).dataset
        nested = tuple(item_identity(ds)) if level is Level.FULL else ()
        found = nested_needles(ds, nested) if nested else needles(ds)
        own = tuple(n for n in found if level is Level.FULL or n.attribute in _FIVE_KEYWORDS)
        for needle in own:
            patterns.setdefault(needle.data, needle)
        if keyring is not None and ds.get("SOPInstanceUID"):
            by_instance[keyring.uid(str(ds.SOPInstanceUID))] = own
        if keyring is not None and ds.get("PatientID"):
            subject = by_subject.setdefault(keyring.pseudonym(str(ds.PatientID)), {})
            for needle in own:
                subject.setdefault(needle.data, needle)
        if level is Level.FULL:
            uids.update(_uids(ds))
            if ds.get("PatientID"):
                patient_ids.add(str(ds.PatientID))
    except Exception:  # (InputError; or a value pydicom cannot read as its VR, which raises what it may: found
        return False  # from outside, an unknown VR's NotImplementedError was a traceback) nothing more to gather
    return True


# Our DeidentificationMethod values ("NiDB Anonymize Full (neuroanon 0.1.0)"), as NiDB names its levels.
_METHOD = re.compile(r"^nidb anonymize( full)?(?: \(neuroanon [^)]*\))?$")


def infer_marks(paths: list[Path], sample: int = 64) -> tuple[Level, frozenset[str]]:
    """The level the files say they were made at (DeidentificationMethod), the strictest if they differ, and the
    codes of the PS3.15 profile and options every one of them declares (DeidentificationMethodCodeSequence).

    Files that name no level of ours are held to full: a tree that should be clean is checked as strictly as
    it can be. Reads at most `sample` DICOM headers, an archive's members' too (found from outside: a release
    written as a zip archive at anonymize was checked at full, its members unread).
    """
    found: set[Level] = set()
    declared: frozenset[str] | None = None
    seen = 0
    for member in discover(paths):
        if seen >= sample:
            break
        with _readable(member) as item:
            if item is None or item.kind is not Kind.DICOM:
                continue
            try:
                with quiet():
                    ds = read_header(item.path).dataset
                    if is_dicomdir(ds):
                        continue  # (names no level: it indexes the files that do)
                    seen += 1
                    found.add(_declared_level(ds))
                    codes = _declared_codes(ds)
            except (InputError, ValueError, TypeError):
                continue
        declared = codes if declared is None else declared & codes
    level = Level.ANONYMIZE if found == {Level.ANONYMIZE} else Level.FULL
    return level, declared or frozenset()


def _declared_level(ds: Dataset) -> Level:
    """The level a file's DeidentificationMethod names, the stricter if it names two; full if it names none of
    ours (a file that should be clean is checked as strictly as it can be)."""
    method = ds.get("DeidentificationMethod", "")
    names = [str(v).strip().casefold() for v in (method if isinstance(method, MultiValue) else [method])]
    levels = {Level.FULL if m.group(1) else Level.ANONYMIZE for m in map(_METHOD.match, names) if m}
    return Level.FULL if Level.FULL in levels or not levels else Level.ANONYMIZE


def _declared_codes(ds: Dataset) -> frozenset[str]:
    """The code values of a file's DeidentificationMethodCodeSequence; none when it cannot be read (a UN value
    that is no sequence: pydicom raises what its parse meets), so that the file is held to the defaults."""
    try:
        return frozenset(str(code.get("CodeValue", "")).strip()
                         for code in ds.get("DeidentificationMethodCodeSequence", []))
    except Exception:
        return frozenset()


_ATTRIBUTE = re.compile(r"^original (\S+) value|^(?:file meta )?(?:\([0-9A-F]{4},[0-9A-F]{4}\)(?:\[\d+\]\.)?)+ (\w+)")


def summary(results: list[FileResult]) -> dict[str, int]:
    """How many files have a finding, per attribute (or per kind of finding), most frequent first."""
    files: dict[str, set[str]] = {}
    for result in results:
        for finding in result.findings:
            match = _ATTRIBUTE.match(finding)
            name = (match.group(1) or match.group(2) or "private or unnamed element") if match else finding
            files.setdefault(name, set()).add(result.path)
    return dict(sorted(((name, len(paths)) for name, paths in files.items()), key=lambda kv: (-kv[1], kv[0])))


def verify(paths: list[Path], options: Options, originals: Originals | None = None, inferred: bool = False,
           ) -> Iterator[FileResult]:
    """Check every file under `paths` against what `options.level` promises; with the level `inferred` from the
    files, a file that names a stricter level, or none, is checked at full (found from outside: a raw file past
    the first headers read was checked at anonymize, as they were)."""
    new_ids = frozenset(options.lookup.values())  # (a lookup file's new IDs stand where pseudonyms do)
    # a path, a file that is no DICOM file and an archive's own bytes are searched for every original's values,
    # also with the key (they are no instance of an original's; a file may lie in another patient's folder)
    everyone = _unretained(originals.patterns, compile_rules(options)) if originals is not None else ()
    withheld: dict[str, int] = {}  # each path part withheld, by its number in the output
    archives: set[Path] = set()  # those whose own bytes were searched
    for found in discover(paths):
        name = found.relative if len(paths) == 1 else str(Path(found.root.name, found.relative))
        if everyone and found.member is not None and found.path not in archives:
            archives.add(found.path)
            if (archive := _archive_result(found, name, everyone)) is not None:
                yield archive
        result = FileResult(name)
        with _readable(found) as item:
            if item is None:  # (found from outside: a traceback, and no file after it checked)
                result.findings.append("unreadable: archive member could not be unpacked")
            else:
                _check(item, result, options, originals, new_ids, in_archive=found.member is not None,
                       inferred=inferred)
                if everyone and item.kind is Kind.NOT_DICOM:  # (anonymize copies it as it is: found from outside,
                    # a note naming the patient was called clean)
                    result.findings += _in_file(item.path, everyone)
        if originals is not None and (hits := check_path(result.path, everyone)):  # (any file's path)
            result.findings += _found_in(hits)
            result.shown = _withheld(result.path, everyone, withheld)
        yield result


def _found_in(hits: list[Finding]) -> list[str]:
    return list(dict.fromkeys(f"original {hit.attribute} value found in {hit.where}" for hit in hits))


def _archive_result(member: InputFile, name: str, patterns: tuple[Needle, ...]) -> FileResult | None:
    """The findings in the own bytes of the archive `member` lies in (its names, comments, extra fields, bytes
    around its members), as a result of its own; None if there are none (found from outside: a zip comment or
    a gzip file name holding the patient's name was called clean)."""
    kind = "gzip" if member.kind is Kind.GZIP_MEMBER else "zip"
    fields, gaps = container_fields(member.path, kind)
    own = APART.join([*fields, *(gap for gap in gaps if looks_like_text(gap))])  # (a self-extractor's code: not)
    hits = check_bytes(own, patterns, f"the {kind} archive's headers or comments") if own else []
    if not hits:
        return None
    return FileResult(name[: len(name) - len(member.member or "") - 1] or member.path.name, _found_in(hits), False)


_CHUNK = 16 << 20  # a file that is no DICOM file is searched this much at a time
_OVERLAP = 4096  # with the end of the piece before (a value across the two)


def _in_file(path: Path, patterns: tuple[Needle, ...]) -> list[str]:
    """The originals' values in a file of text that is no DICOM file (a note, a CSV or JSON file), read a piece at
    a time; a binary file is not searched (`looks_like_text`)."""
    hits: list[Finding] = []
    try:
        with open(path, "rb") as f:
            tail = b""
            while piece := f.read(_CHUNK):
                if not tail and not looks_like_text(piece):
                    return []
                hits += check_bytes(tail + piece, patterns, "the file's text (not DICOM)")
                tail = piece[-_OVERLAP:]
    except OSError as exc:
        return [f"unreadable: {os_cause(exc)} (its bytes were not searched for the originals' values)"]
    return _found_in(hits)


def _check(item: InputFile, result: FileResult, options: Options, originals: Originals | None,
           new_ids: frozenset[str], in_archive: bool = False, inferred: bool = False) -> None:
    if item.kind in (Kind.SPECIAL, Kind.LINK, Kind.UNREADABLE):
        result.dicom = False
        result.unread = item.kind is not Kind.SPECIAL  # (a FIFO or device is never a DICOM file)
        result.findings.append(item.note or "not a regular file (not read)")
    elif item.kind is not Kind.DICOM:
        result.dicom = False
        if options.level is Level.FULL:
            result.findings.append("not DICOM: a full-level release holds only DICOM files")
        elif in_archive and archive_kind(item.path, not_dicom=True) is not None:
            result.unread = True  # (what it holds is not checked: found from outside, a tar in a zip was clean)
            result.findings.append("an archive inside an archive: not opened (it may hold DICOM files)")
    else:
        with quiet():
            try:
                result.findings += _check_dicom(item.path, options, originals, new_ids, inferred)
            except Exception:  # a value that cannot be read as its VR: not proven clean, said in one line
                # (in words: found from outside, the cause was a class name, "BytesLengthException")
                result.findings.append("unreadable: a value could not be read as its VR says (not proven clean)")


def _check_dicom(path: Path, options: Options, originals: Originals | None, new_ids: frozenset[str],
                 inferred: bool = False) -> list[str]:
    try:
        header = read_header(path)
    except InputError as exc:
        return [f"unreadable: {exc}"]
    ds = header.dataset
    # (a file not deflated with bytes after its data set fails to read: found from outside, a deflated one passed)
    findings = ["bytes after the deflated data set, not read (they may hold anything)"] if header.after_stream else []
    if inferred and options.level is Level.ANONYMIZE and not is_dicomdir(ds) and _declared_level(ds) is Level.FULL:
        # (a DICOMDIR names no level: it indexes the files that do)
        options = replace(options, level=Level.FULL)
    rules = compile_rules(options)
    if options.level is Level.ANONYMIZE:
        findings += _five(ds, "", rules)
    elif options.level is Level.FULL and is_dicomdir(ds):
        findings += _full(ds, "", rules, new_ids, directory=True) + _meta(ds, rules)
    elif options.level is Level.FULL:
        findings += _full(ds, "", rules, new_ids) + _meta(ds, rules) + _full_file(path, header)
    if originals is not None:
        patterns = _unretained(originals.patterns_for(ds), rules)
        hits = check_file(path, header.pixels, patterns)
        findings += [f"original {hit.attribute} value found in {hit.where}" for hit in hits]
        findings += _in_csa_items(ds, patterns, {(hit.attribute, hit.where) for hit in hits})
        if set(_uids(ds)) & originals.uids:
            findings.append("a UID equals an original UID")
        if str(ds.get("PatientID", "")) in originals.patient_ids:
            findings.append("(0010,0020) PatientID equals an original PatientID")
    return list(dict.fromkeys(findings))  # (a value's forms found in one place: found from outside, a line thrice)


def _in_csa_items(ds: Dataset, patterns: tuple[Needle, ...], found: set[tuple[str, str]]) -> list[str]:
    """The values not already `found` (attribute, where) that a CSA header's item holds, read as the anonymizer
    reads its own: each item `APART` from the bytes beside it (found from outside: a name that filled its item ran
    into the next element's name, whose first letter hid the end of the word, and verify called another tool's
    output clean)."""
    findings = []
    for elem in ds.iterall():  # (in items too, and as OW: found from outside, neither was read)
        if elem.tag.is_private and elem.VR in ("OB", "OW", "UN") and isinstance(elem.value, bytes):
            view = csa.apart(elem.value)
            for needle in find(view.lower(), patterns, remember=False) if view is not None else ():
                if (needle.attribute, str(elem.tag)) not in found:
                    findings.append(f"original {needle.attribute} value found in {elem.tag} (a CSA item)")
    return findings


def _unretained(patterns: tuple[Needle, ...], rules: Rules) -> tuple[Needle, ...]:
    """The values to look for: those of attributes the options do not keep."""
    return tuple(n for n in patterns if n.attribute not in rules.retained)


def _withheld(relative: str, patterns: tuple[Needle, ...], numbers: dict[str, int]) -> str:
    """`relative` (which holds one of the values of `patterns`) with each of its parts that holds one shown as
    `(withheld N)`, N the same for the same part (found from outside: three files in three such folders were each
    shown `(withheld)/x.dcm`)."""
    return "/".join(f"(withheld {numbers.setdefault(part, len(numbers) + 1)})"
                    if check_path(part, patterns) else part for part in relative.split("/"))


def _full_file(path: Path, header: Header) -> list[str]:
    """What `full` says of a whole file: identity removed, no burned-in risk, nothing after the frames."""
    ds, findings = header.dataset, []
    if str(ds.get("PatientIdentityRemoved", "")) != "YES":
        findings.append("(0012,0062) PatientIdentityRemoved is not YES")
    risk = burned_in_risk(ds)
    if risk:
        findings.append(f"burned-in risk: {risk}")
    meta = getattr(ds, "file_meta", None)
    deflated = meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
    after = bytes_after_frames(path, None if deflated else header.pixels, ds)  # (deflated: read whole)
    if after:
        findings.append(f"(7FE0,0010) pixel data holds {after} bytes that no frame shows and that are not zero")
    unused = pixels_with_unused_bits(path, None if deflated else header.pixels, ds)
    if unused:
        findings.append(f"(7FE0,0010) {unused_bits(unused)}")
    return findings


def _five(ds: Dataset, path: str, rules: Rules) -> list[str]:
    findings = []
    for elem in ds:
        where = path + tag_text(int(elem.tag))
        value = rules.tag(int(elem.tag)).value
        if value is not None and not elem.is_empty and str(elem.value) != value:
            findings.append(f"{where} {elem.keyword} holds a value the level replaces")
        elif elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                findings += _five(item, f"{where}[{i}].", rules)
    return findings


def _full(ds: Dataset, path: str, rules: Rules, new_ids: frozenset[str] = frozenset(), directory: bool = False,
          ) -> list[str]:
    """What level full left that it should not have. In a DICOMDIR (`directory`) a record's key is present
    because the format requires it: empty (Type 2), or the dummy where a Type 1 key had no value."""
    findings = []
    for elem in ds:
        t = int(elem.tag)
        where = path + tag_text(t)
        if elem.tag.is_private:
            findings += _private_findings(ds, t, elem, where, rules)
            continue
        rule = rules.tag(t)
        op = rule.op(elem.VR)
        if op is Op.WALK_ITEMS:
            for i, item in enumerate(elem.value):
                findings += _full(item, f"{where}[{i}].", rules, new_ids, directory)
            continue
        values = _texts(elem.value)
        if directory and (elem.is_empty or (op is Op.EMPTY and all(v in _DUMMIES for v in values))):
            continue
        if op is Op.PSEUDONYM:
            finding = _pseudonym_finding(values, new_ids)
        else:
            finding = _value_finding(op, elem.VR, values, elem.is_empty or _is_zeros(elem.value))
        if finding and op is Op.REMOVE and values and all(rule.kept(v.encode("utf-8", "replace")) for v in values):
            finding = None  # a technical encoding the rule keeps (a Canon diffusion comment, say)
        if finding:
            findings.append(f"{where} {elem.keyword or rule.keyword} {finding}")
    return findings


def _pseudonym_finding(values: list[str], new_ids: frozenset[str]) -> str | None:
    """A PatientName or PatientID at full holds the subject's keyed pseudonym or a new ID of the `--lookup` file
    verify was given (found from outside: a real name and ID there were called clean)."""
    if all(is_dummy(v) or v in new_ids for v in values):  # (a keyed pseudonym is no needle: `is_dummy`)
        return None
    given = "nor a new ID of the lookup file given" if new_ids else "(a --lookup run's IDs: give verify its --lookup)"
    return f"holds a value that is not a keyed pseudonym or a dummy {given}"


def _value_finding(op: Op, vr: str, values: list[str], empty: bool) -> str | None:
    """What is wrong with an element the operation `op` has been applied to, if anything."""
    if op is Op.REMOVE:
        return "present; the profile removes it"
    if empty or op in (Op.KEEP, Op.CLEAN_TEXT, Op.SHIFT_DATE):
        return None
    if op is Op.REMAP_UID:
        remapped = all(v.startswith("2.25.") or is_standard_uid(v) for v in values)  # standard UIDs are kept
        return None if remapped else "holds a UID that was not remapped"
    if op is Op.EMPTY:
        return "holds a value; the profile empties it"
    return None if all(v in _DUMMIES for v in values) else "holds a non-dummy value"


def _is_zeros(value: object) -> bool:
    """A binary dummy (what the level writes for D on an OB/OW/UN value, e.g. EncapsulatedDocument)."""
    return isinstance(value, bytes) and not value.strip(b"\x00")


def _meta(ds: Dataset, rules: Rules) -> list[str]:
    findings = []
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for elem in meta:
            if rules.meta(int(elem.tag)) is Op.REMOVE:
                findings.append(f"file meta {tag_text(int(elem.tag))} {elem.keyword} present")
        uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
        if uid and not uid.startswith("2.25."):
            findings.append("file meta (0002,0003) MediaStorageSOPInstanceUID was not remapped")
    if any(getattr(ds, "preamble", None) or b""):
        findings.append("preamble is not zeroed")
    return findings


def _private_findings(ds: Dataset, tag: int, elem: DataElement, where: str, rules: Rules) -> list[str]:
    """A private element at full: off the allow-list, or an allow-listed one holding what full does not keep (a GE
    protocol data block more than dcm2niix reads, a CSA header's place no CSA header, a number's other bytes); a
    private creator of no element kept, which full removes with its block; an element of the reserved range."""
    if tag & 0xFFFF < 0x1000:  # (found from outside: these were not looked at, a name in them was clean)
        if 0x0010 <= tag & 0xFFFF <= 0x00FF:
            kept = any(_in_block(int(e.tag), tag) for e in ds)
            return [] if kept else [f"{where} private creator of no element kept"]
        return [f"{where} private element not on the allow-list"] if tag & 0xFFFF else []
    creator = ds.get(private_creator_tag(tag))
    name = "" if creator is None else str(creator.value)
    if rules.decide(tag, elem.VR, Context.PRIVATE, name) is Op.REMOVE:
        return [f"{where} private element not on the allow-list"]
    safe = rules.private(name, tag)
    if safe is None or elem.is_empty:
        return []
    value = _bytes(elem.value)
    if safe.kind == "pdb" and not listed_only(value):
        return [f"{where} GE protocol data block holds more than the lines dcm2niix reads"]
    # what full keeps of an allow-listed element only as it must be (found from outside: text there was clean)
    if safe.kind == "csa" and csa.parse(value) is None:
        return [f"{where} allow-listed for a CSA header, holds none"]
    raw = _as_written(elem)
    little = (getattr(ds, "original_encoding", None) or (None, True))[1] is not False  # (the file's byte order)
    if safe.kind == "value" and raw is not None and not holds_a_number(safe, "" if elem.VR == "UN" else elem.VR, raw,
                                                                       little):
        return [f"{where} allow-listed for numbers, holds other bytes"]
    return []


def _in_block(tag: int, creator: int) -> bool:
    """Whether `tag` is an element of the private block that the creator element `creator` reserves."""
    return tag >> 16 == creator >> 16 and (tag >> 8) & 0xFF == creator & 0xFF and tag & 0xFFFF >= 0x1000


def _as_written(elem: DataElement) -> bytes | None:
    """A private value's bytes where pydicom keeps them (binary, UN) or its text; None for numbers pydicom decoded
    (a binary number's byte order is the file's, not known here: the level's check of it is not repeated)."""
    if isinstance(elem.value, bytes):
        return elem.value
    if elem.VR in ("FL", "FD", "SL", "SS", "UL", "US", "SV", "UV", "AT"):
        return None
    return "\\".join(_texts(elem.value)).encode("latin-1", "replace")


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1", "replace")


def _uids(ds: Dataset) -> Iterator[str]:
    """The UIDs the profile remaps (instance, series, study, frame of reference, references; not SOP classes, nor a
    well-known UID in an attribute it remaps, which it keeps: found from outside, a transfer syntax was a finding)."""
    rules = compile_rules(Options(level=Level.FULL))
    for elem in ds.iterall():
        if elem.VR == "UI" and not elem.is_empty and rules.tag(int(elem.tag)).op("UI") is Op.REMAP_UID:
            yield from (uid for uid in _texts(elem.value) if not is_standard_uid(uid))
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPInstanceUID"):
        yield str(meta.MediaStorageSOPInstanceUID)


def _texts(value: object) -> list[str]:
    if isinstance(value, (list, MultiValue)):
        return [str(v) for v in value]
    return [str(value)] if value is not None else []
