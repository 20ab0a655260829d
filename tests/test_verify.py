"""`neuroanon verify`: clean on what full wrote, findings on the inputs, and it catches what slips through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from neuroanon.cli import main
from neuroanon.sample import make_dataset, make_study, planted_values

from .adversarial import add_un, part10, un_bytes
from .helpers import files_under


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("verify")
    source = root / "in"
    make_study(source, subject=8, n_series=2, n_instances=2)
    make_study(source, subject=8, study=1, n_series=1, n_instances=2, encoding="implicit_le")
    key = root / "key"
    key.write_text("cd" * 32)
    assert main(["anonymize", str(source), "-o", str(root / "full"), "--level", "full", "--key-file", str(key)]) == 0
    assert main(["anonymize", str(source), "-o", str(root / "anon")]) == 0
    return source, root / "full", root / "anon"


def test_full_output_is_clean_even_against_the_originals(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, full, _ = released
    report = tmp_path / "verify.json"
    assert main(["verify", str(full), "--level", "full", "--against", str(source), "--json", str(report)]) == 0
    results = json.loads(report.read_text())
    assert len(results) == 6 and all(r["findings"] == [] for r in results)
    assert "6 clean" in capsys.readouterr().out


def test_the_inputs_are_reported_with_what_they_hold(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _, _ = released
    report = tmp_path / "verify.json"
    assert main(["verify", str(source), "--level", "full", "--against", str(source), "--json", str(report)]) == 1
    findings = {f for r in json.loads(report.read_text()) for f in r["findings"]}
    for expected in ("preamble is not zeroed", "(0010,1040) PatientAddress present; the profile removes it",
                     "(0011,1001) private element not on the allow-list", "a UID equals an original UID",
                     "(0010,0020) PatientID equals an original PatientID",
                     "(0020,000D) StudyInstanceUID holds a UID that was not remapped",
                     "original PatientName value found in (0010,0010)",
                     "original PatientName value found in output path"):
        assert any(f.startswith(expected) for f in findings), expected
    out = capsys.readouterr().out
    for name, value in planted_values(8).items():
        if name not in ("FolderName", "FileName", "StudyDate", "AccessionNumber"):
            assert value not in out, f"{name} in verify's output"


def test_anonymize_output_passes_at_its_level_not_at_full(released: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, _, anon = released
    assert main(["verify", str(anon), "--level", "anonymize"]) == 0
    # against the originals, the one thing left is the mirrored input path, which holds the name here
    report = tmp_path / "verify.json"
    assert main(["verify", str(anon), "--level", "anonymize", "--against", str(source), "--json", str(report)]) == 1
    findings = {f for r in json.loads(report.read_text()) for f in r["findings"]}
    assert findings == {"original PatientName value found in output path"}
    assert main(["verify", str(anon), "--level", "full"]) == 1
    assert main(["verify", str(source), "--level", "anonymize"]) == 1


def test_a_release_written_as_a_zip_archive_is_checked_at_the_level_its_members_name(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --level, the level is read from the members of a release written as a zip archive too (found from
    outside: an anonymize release as a zip was checked at full, every member with findings)."""
    source, _, _ = released
    archive = tmp_path / "anon.zip"
    assert main(["anonymize", str(source), "-o", str(archive), "-q"]) == 0
    capsys.readouterr()
    assert main(["verify", str(archive)]) == 0
    assert "6 files checked at level anonymize: 0 with findings" in capsys.readouterr().out


def _copy(tree: Path, to: Path) -> Path:
    """A copy of a released tree to tamper with."""
    for path in files_under(tree):
        target = to / path.relative_to(tree)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return to


def test_a_leak_slipped_into_a_released_file_is_found(released: tuple[Path, Path, Path], tmp_path: Path) -> None:
    source, full, _ = released
    tampered = _copy(full, tmp_path / "tampered")
    victim = files_under(tampered)[0]
    ds = pydicom.dcmread(victim)
    original = pydicom.dcmread(files_under(source)[0])
    ds.WindowCenterWidthExplanation = f"for {original.PatientName}"
    ds.save_as(victim)
    report = tmp_path / "verify.json"
    assert main(["verify", str(tampered), "--level", "full", "--against", str(source), "--json", str(report)]) == 1
    flagged = [r for r in json.loads(report.read_text()) if r["findings"]]
    assert len(flagged) == 1
    assert "original PatientName value found in (0028,1055)" in flagged[0]["findings"]


@pytest.mark.parametrize("where", ["zip comment", "zip member comment", "zip extra field", "after the zip",
                                   "before the zip", "gzip file name", "gzip comment"])
def test_an_original_value_in_an_archive_s_own_bytes_is_found(
    released: tuple[Path, Path, Path], tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output in a zip or gzip archive whose own bytes (a comment, an extra field, a name, bytes around its
    members) hold an original's value: with `--against` it is found, with and without the key (found from outside:
    called clean)."""
    import gzip
    import zipfile

    source, full, _ = released
    tree = _copy(full, tmp_path / "tree")
    victim = files_under(tree)[0]
    name = str(pydicom.dcmread(files_under(source)[0]).PatientName).split("^")[0]
    data = victim.read_bytes()
    victim.unlink()
    if where.startswith("gzip"):
        archive = victim.with_name("a.dcm.gz")
        with open(archive, "wb") as raw, gzip.GzipFile(filename=f"{name}.dcm" if where == "gzip file name" else "",
                                                      fileobj=raw, mode="wb") as gz:
            gz.write(data)
        if where == "gzip comment":  # (Python writes none: the flag and a comment after the header's 10 bytes)
            packed = archive.read_bytes()
            archive.write_bytes(packed[:3] + bytes([packed[3] | 16]) + packed[4:10] + f"for {name}".encode() + b"\0"
                                + packed[10:])
    else:
        archive = tree / "share.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo("a.dcm")
            info.compress_type = zipfile.ZIP_DEFLATED
            if where == "zip member comment":
                info.comment = f"scan of {name}".encode()
            if where == "zip extra field":
                info.extra = b"\xfe\xca" + len(name).to_bytes(2, "little") + name.encode()
            zf.writestr(info, data)
            if where == "zip comment":
                zf.comment = f"for {name}".encode()
        if where in ("after the zip", "before the zip"):
            packed = archive.read_bytes()
            archive.write_bytes(packed + name.encode() if where == "after the zip" else name.encode() + packed)
    keyed = ["--key-file", str(source.parent / "key")]
    for extra in ([], keyed):
        assert main(["verify", str(tree), "--level", "full", "--against", str(source), *extra]) == 1, where
        out = capsys.readouterr().out
        assert "original PatientName value found in the" in out and "archive's headers or comments" in out, out
        assert name not in out


def test_an_original_value_in_a_file_that_is_no_dicom_file_is_found_at_anonymize(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`anonymize` copies a file that is no DICOM file as it is: with `--against`, the originals' values in one of
    text are found, at any level (found from outside: a note naming the patient was called clean at anonymize);
    a binary one is not searched (README)."""
    source, _, anon = released
    tree = _copy(anon, tmp_path / "tree")
    name = str(pydicom.dcmread(files_under(source)[0]).PatientName)
    (tree / "notes.txt").write_text(f"scan of {name}\n" + "x" * (20 << 20))  # (past the first piece read)
    (tree / "more.txt").write_bytes(b"y" * ((16 << 20) - 3) + name.encode())  # (across two pieces)
    # binary data is not searched: words occur in it by chance (found from outside: "dÖÀ" read as "DoeA")
    family = name.split("^")[0]
    (tree / "image.nii").write_bytes(bytes(range(256)) * 64 + f" {family} ".encode() + bytes(1000))
    report = tmp_path / "verify.json"
    assert main(["verify", str(tree), "--level", "anonymize", "--against", str(source), "--json", str(report)]) == 1
    flagged = {r["file"]: r["findings"] for r in json.loads(report.read_text()) if r["findings"]}
    for note in ("notes.txt", "more.txt"):
        assert "original PatientName value found in the file's text (not DICOM)" in flagged[note], flagged
    assert "image.nii" not in flagged, flagged


def test_a_file_naming_no_level_is_checked_at_full_in_a_tree_read_as_anonymize(
    released: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The level read from the first headers (`infer_marks`) is the tree's; a file past them that names a
    stricter level, or none (a raw file), is checked at full (found from outside: a raw file among 64 outputs of
    anonymize was called clean at anonymize)."""
    from neuroanon.options import Level, Options
    from neuroanon.rules import NIDB_ANONYMIZE
    from neuroanon.verify import verify

    source, _, anon = released
    tree = _copy(anon, tmp_path / "tree")
    raw = pydicom.dcmread(files_under(source)[0])
    for element in raw.iterall():
        if int(element.tag) in NIDB_ANONYMIZE:
            element.value = ""  # (what anonymize replaces: it passes at anonymize)
    raw.save_as(tree / "z_raw.dcm")
    results = {r.path: r.findings for r in verify([tree], Options(level=Level.ANONYMIZE), inferred=True)}
    assert results["z_raw.dcm"] and all(not f for p, f in results.items() if p != "z_raw.dcm"), results
    plain = {r.path: r.findings for r in verify([tree], Options(level=Level.ANONYMIZE))}
    assert not plain["z_raw.dcm"], "given --level anonymize, the file is held to it"


def test_private_elements_full_does_not_write_are_found_without_the_originals(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What full never writes, found without the originals (found from outside: each was called clean): a private
    creator of no element, an element of the reserved range (below 0x1000 and not a creator), text where the
    allow-list keeps a CSA header or a number."""
    _, full, _ = released
    tree = _copy(full, tmp_path / "tree")
    victim = files_under(tree)[0]
    ds = pydicom.dcmread(victim)
    ds.add_new(0x00110010, "LO", "Quxworth Zelda")  # (a creator of nothing)
    ds.add_new(0x00130001, "LO", "Quxworth^Zelda")  # (reserved)
    ds.add_new(0x00130500, "LO", "Quxworth^Zelda")
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "OB", b"born 19710314 Quxworth ")
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "LO", "Quxworth")  # (as text: the dictionary says IS)
    ds.save_as(victim)
    assert main(["verify", str(tree), "--level", "full"]) == 1
    out = capsys.readouterr().out
    for finding in ("(0011,0010) private creator of no element kept",
                    "(0013,0001) private element not on the allow-list",
                    "(0013,0500) private element not on the allow-list",
                    "(0029,1010) allow-listed for a CSA header, holds none",
                    "(0019,100C) allow-listed for numbers, holds other bytes"):
        assert finding in out, out
    assert "(0029,0010)" not in out and "(0019,0010)" not in out, "a creator of a block kept is no finding"


def test_a_name_or_id_where_a_pseudonym_belongs_is_found_without_the_originals(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: a real PatientName or PatientID in a full output (also a name stored as UN, in an item)
    was called clean when verify was not given the originals. A dummy there (another tool's) is no finding."""
    _, full, _ = released
    tampered = _copy(full, tmp_path / "tampered")
    victims = files_under(tampered)
    for path, change in zip(victims, ("name", "id", "un", "item", "dummy"), strict=False):
        ds = pydicom.dcmread(path)
        if change == "name":
            ds.PatientName = "FAKEPERSON^ALICE"
        elif change == "id":
            ds.PatientID = "FAKE00123"
        elif change == "un":
            del ds.PatientName
            add_un(ds, 0x00100010, b"FAKEPERSON^ALICE")
        elif change == "item":
            ds.ReferencedImageSequence = [Dataset()]
            ds.ReferencedImageSequence[0].PatientName = "FAKEPERSON^ALICE"
        else:
            ds.PatientName, ds.PatientID = "ANONYMOUS", "Anon"
        ds.save_as(path)
    report = tmp_path / "verify.json"
    assert main(["verify", str(tampered), "--json", str(report)]) == 1
    findings = {r["file"]: r["findings"] for r in json.loads(report.read_text())}
    expected = {0: "(0010,0010) PatientName", 1: "(0010,0020) PatientID", 2: "(0010,0010) PatientName",
                3: "(0008,1140)[0].(0010,0010) PatientName"}
    for i, path in enumerate(victims):
        found = findings[str(path.relative_to(tampered))]
        if i in expected:
            assert found == [f"{expected[i]} holds a value that is not a keyed pseudonym or a dummy (a --lookup "
                             "run's IDs: give verify its --lookup)"], found
        else:
            assert found == [], found
    out = capsys.readouterr().out
    assert "FAKEPERSON" not in out and "FAKE00123" not in out


def test_a_lookup_run_verifies_clean_given_its_lookup(tmp_path: Path) -> None:
    source = tmp_path / "in"
    make_study(source, subject=3, n_series=1, n_instances=2)
    lookup = tmp_path / "ids.csv"
    lookup.write_text(f"original,new\n{pydicom.dcmread(files_under(source)[0]).PatientID},SUBJ-0042\n")
    key = tmp_path / "key"
    key.write_text("ef" * 32)
    out = tmp_path / "out"
    assert main(["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key),
                 "--lookup", str(lookup), "-q"]) == 0
    assert main(["verify", str(out)]) == 1  # SUBJ-0042 could be anyone's ID
    assert main(["verify", str(out), "--lookup", str(lookup)]) == 0
    assert main(["verify", str(out), "--level", "anonymize", "--lookup", str(lookup)]) == 2  # an option of full


def test_a_path_that_holds_an_original_value_is_shown_withheld(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: the line saying an original's name was found in a file's path printed that path, on
    the terminal and in the JSON. The parts of it that hold the value are withheld, numbered (three files in three
    such folders were each shown "(withheld)/x.dcm"); the rest names the file. Any original's value is looked for
    in a path, also with the key (a file in another patient's folder was clean), and a name that is not UTF-8 is
    searched too (it made verify fail the file unread, its name printed)."""
    source, key, full = tmp_path / "in", tmp_path / "key", tmp_path / "full"
    make_study(source, subject=8, n_series=1, n_instances=1)
    make_study(source, subject=9, n_series=1, n_instances=1)
    key.write_text("cd" * 32)
    assert main(["anonymize", str(source), "-o", str(full), "--level", "full", "--key-file", str(key), "-q"]) == 0
    capsys.readouterr()
    clean = [path.read_bytes() for path in files_under(full)]
    tree = tmp_path / "tree"
    for folder in ("FAKEDOE0008_JANE", "FAKEDOE0009_JANE", "A"):
        (tree / folder).mkdir(parents=True)
        for i, data in enumerate(clean):  # (each subject's file in each folder: one is the other patient's)
            (tree / folder / f"{i}.dcm").write_bytes(data)
    (tree / "A" / "FAKEDOE0008^JANE.dcm").write_bytes(clean[0])
    (tree / "A" / "FAKEDOE0008 notes.txt").write_text("notes\n")  # (not DICOM: its path is searched too)
    os.mkdir(bytes(tree / "A") + b"/FAKEDOE0009-JANE-\xe9")  # (Latin-1: not UTF-8)
    (Path(os.fsdecode(bytes(tree / "A") + b"/FAKEDOE0009-JANE-\xe9")) / "x.dcm").write_bytes(clean[1])
    path_finding = "original PatientName value found in output path"
    not_dicom = "not DICOM: a full-level release holds only DICOM files"
    for with_key in ([], ["--key-file", str(key)]):
        report = tmp_path / "verify.json"
        assert main(["verify", str(tree), "--against", str(source), "--json", str(report), *with_key]) == 1
        shown = capsys.readouterr().out + report.read_text()
        assert "FAKEDOE" not in shown and "DOE" not in shown
        files = {r["file"]: r["findings"] for r in json.loads(report.read_text())}
        assert files == {"A/0.dcm": [], "A/1.dcm": [], "A/(withheld 1)": [not_dicom, path_finding],
                         "A/(withheld 2)": [path_finding], "A/(withheld 3)/x.dcm": [path_finding],
                         "(withheld 4)/0.dcm": [path_finding], "(withheld 4)/1.dcm": [path_finding],
                         "(withheld 5)/0.dcm": [path_finding], "(withheld 5)/1.dcm": [path_finding]}, files


@pytest.mark.parametrize("packed", ["zip", "gzip", "zip-in-a-folder"])
def test_originals_in_an_archive_are_read(released: tuple[Path, Path, Path], tmp_path: Path, packed: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """anonymize reads zip archives and gzip-compressed files, also inside folders: so does verify --against
    (found from outside: it read no original there, and called an output holding the name clean). Originals of
    which none can be read are a usage error, not a clean result."""
    import gzip
    import zipfile

    source, full, _ = released
    tampered = _copy(full, tmp_path / "tampered")
    victim = files_under(tampered)[0]
    ds = pydicom.dcmread(victim)
    first = files_under(source)[0]
    ds.WindowCenterWidthExplanation = f"for {pydicom.dcmread(first).PatientName}"
    ds.save_as(victim)
    (tmp_path / "packed").mkdir()
    if packed == "gzip":
        against = tmp_path / "packed" / "one.dcm.gz"
        against.write_bytes(gzip.compress(first.read_bytes()))
    else:
        against = tmp_path / "packed" / "originals.zip"
        with zipfile.ZipFile(against, "w") as archive:
            for path in files_under(source):
                archive.write(path, path.relative_to(source).as_posix())
        against = against.parent if packed == "zip-in-a-folder" else against
    assert main(["verify", str(tampered), "--level", "full", "--against", str(against)]) == 1
    assert "original PatientName value found in (0028,1055)" in capsys.readouterr().out
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "notes.txt").write_text("no DICOM here")
    assert main(["verify", str(tampered), "--level", "full", "--against", str(tmp_path / "none")]) == 2
    assert "--against: no DICOM original could be read in" in capsys.readouterr().err


def test_an_original_with_a_value_of_unknown_vr_is_counted_unread_not_a_traceback(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: an original holding an element of an unknown VR ended verify --against with pydicom's
    NotImplementedError. It is left out, and verify says how many originals it could not read."""
    source, full, _ = released
    originals = _copy(source, tmp_path / "originals")
    damaged = files_under(originals)[0]
    data = damaged.read_bytes()
    at = data.index(b"\x08\x00\x50\x00") + 4  # AccessionNumber, explicit VR little endian: its VR next
    damaged.write_bytes(data[:at] + b"ZZ" + data[at + 2:])
    total = len(files_under(originals))
    # (found from outside: an original named twice, as a file and in its folder, was counted twice)
    for also in ([], [str(damaged)], [str(damaged), str(originals)]):
        assert main(["verify", str(full), "--level", "full", "--against", str(originals), *also]) == 0
        err = capsys.readouterr().err
        assert err == (f"neuroanon: --against: 1 of {total} DICOM originals could not be read; what they alone "
                       "hold is not looked for\n"), err


def test_an_archive_member_that_cannot_be_unpacked_is_a_finding_and_the_rest_is_checked(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A member with a bad CRC, or a truncated gzip stream, ended verify in a traceback (found from outside)."""
    import gzip
    import zipfile

    _, full, _ = released
    tree = _copy(full, tmp_path / "tree")
    data = files_under(full)[0].read_bytes()
    with zipfile.ZipFile(tree / "bad.zip", "w") as archive:
        archive.writestr("m.dcm", data)
    packed = bytearray((tree / "bad.zip").read_bytes())
    at = packed.index(data[200:216])  # (stored: the member's bytes as they are; one changed, its CRC is wrong)
    packed[at] ^= 0xFF
    (tree / "bad.zip").write_bytes(bytes(packed))
    (tree / "cut.dcm.gz").write_bytes(gzip.compress(data)[:-40])
    assert main(["verify", str(tree), "--level", "full"]) == 1
    shown = capsys.readouterr()
    assert shown.err == ""
    assert "bad.zip/m.dcm\tunreadable: archive member could not be unpacked" in shown.out
    assert "cut.dcm.gz/cut.dcm\tunreadable: archive member could not be unpacked" in shown.out
    assert "8 files checked at level full: 2 with findings, 6 clean" in shown.out


def _found_against_an_item(tmp_path: Path, name: str, charsets: tuple[str, str, str] | None = None,
                           private: bool = False) -> list[str]:
    """verify --against's findings for a released file into which `name`, which only an item of its original held,
    was copied (WindowCenterWidthExplanation). `charsets`: the original's, its item's and the released file's;
    `private`: the item is in a private sequence stored as UN."""
    ds = make_dataset(subject=9)
    ds.PatientName = ""
    item = Dataset()
    item.PatientName = name
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.1047.9"
    if charsets:
        ds.SpecificCharacterSet, item.SpecificCharacterSet = charsets[:2]
    if private:
        ds.add_new(0x00090010, "LO", "FAKE VENDOR")
        add_un(ds, 0x00091010, un_bytes(item, 0x00091010, "ascii"))
    else:
        ds.ReferencedImageSequence = [item]
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    ds.save_as(source / "a.dcm", enforce_file_format=True)
    assert main(["anonymize", str(source), "-o", str(out), "--level", "full", "-q"]) == 0
    victim = files_under(out)[0]
    released = pydicom.dcmread(victim)
    if charsets:
        released.SpecificCharacterSet = charsets[2]
    released.WindowCenterWidthExplanation = f"for {name}"
    released.save_as(victim)
    report = tmp_path / "verify.json"
    assert main(["verify", str(out), "--level", "full", "--against", str(source), "--json", str(report)]) == 1
    findings: list[str] = json.loads(report.read_text())[0]["findings"]
    return findings


def test_a_name_only_an_item_of_the_original_held_is_looked_for(tmp_path: Path) -> None:
    """full searches for the patient's values wherever an item holds them; verify --against looked only at the
    top level, so a name only an item held, copied into a released file, was not found (helper's review)."""
    findings = _found_against_an_item(tmp_path, "Quxworth^Zelda")
    assert "original PatientName value found in (0028,1055)" in findings


def test_a_name_an_item_holds_in_its_own_character_set_is_looked_for(tmp_path: Path) -> None:
    """An item may declare its own SpecificCharacterSet: verify --against read a name only such an item held in
    the top level's set (Latin-1 for a Cyrillic name), so the name copied in UTF-8 into a released file was not
    found."""
    findings = _found_against_an_item(tmp_path, "Квюксворт^Зельда", ("ISO_IR 100", "ISO_IR 144", "ISO_IR 192"))
    assert "original PatientName value found in (0028,1055)" in findings


def test_a_name_only_an_item_of_a_private_sequence_stored_as_un_held_is_looked_for(tmp_path: Path) -> None:
    """full opens a private value stored as UN whose bytes are items and searches for the patient's values they
    hold; verify --against did not open it (pydicom reads it as bytes), so a name only such an item held, copied
    into a released file, was not found."""
    findings = _found_against_an_item(tmp_path, "Quxworth^Zelda", private=True)
    assert "original PatientName value found in (0028,1055)" in findings


@pytest.mark.parametrize("encoding", ["explicit_le", "explicit_be", "deflated"])
def test_bytes_after_the_frames_are_a_finding(tmp_path: Path, encoding: str) -> None:
    """As `full` holds such a file back, `verify` finds one that got out."""
    victim = make_study(tmp_path / "in", subject=24, n_series=1, n_instances=1, encoding=encoding)[0]
    ds = pydicom.dcmread(victim)
    ds.PixelData = ds.PixelData + b"FAKEDOE0024 JANE"
    ds.save_as(victim)
    report = tmp_path / "verify.json"
    assert main(["verify", str(victim), "--level", "full", "--json", str(report)]) == 1
    (result,) = json.loads(report.read_text())
    assert "(7FE0,0010) pixel data holds 16 bytes that no frame shows and that are not zero" in result["findings"]


def test_full_output_of_the_real_corpus_verifies_clean(tmp_path: Path) -> None:
    from .corpus import corpus_files

    source = tmp_path / "corpus"
    for i, path in enumerate(corpus_files()):
        target = source / f"{i:03d}" / path.name
        target.parent.mkdir(parents=True)
        target.write_bytes(path.read_bytes())
    key = tmp_path / "key"
    key.write_text("9a" * 32)
    out = tmp_path / "out"
    main(["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "-q"])
    assert len(files_under(out)) > 80
    assert main(["verify", str(out), "--level", "full", "--against", str(source), "--key-file", str(key)]) == 0
    assert main(["verify", str(source), "--level", "full"]) == 1


def test_an_empty_tree_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert main(["verify", str(tmp_path), "--level", "full"]) == 2
    (tmp_path / "notes.txt").unlink()
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no DICOM file" in err


def test_the_level_is_read_from_the_files(
    released: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, full, anon = released
    assert main(["verify", str(full)]) == 0
    assert "at level full" in capsys.readouterr().out
    assert main(["verify", str(anon)]) == 0
    assert "at level anonymize" in capsys.readouterr().out
    assert main(["verify", str(source)]) == 1, "unmarked files are held to full"
    assert "at level full" in capsys.readouterr().out


def test_an_option_of_full_takes_the_level_the_files_name(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _, anon = released
    shifted = tmp_path / "shifted"
    assert main(["anonymize", str(source), "-o", str(shifted), "--level", "full", "--shift-dates"]) == 0
    capsys.readouterr()
    assert main(["verify", str(shifted), "--shift-dates"]) == 0
    assert "6 files checked at level full: 0 with findings" in capsys.readouterr().out
    assert main(["verify", str(anon), "--shift-dates"]) == 2
    err = capsys.readouterr().err
    assert err == "neuroanon: --shift-dates: only at --level full (the files name level anonymize)\n"


def test_a_key_below_full_is_refused_as_the_other_options_of_full(
    released: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: --key-file below full was taken and not read (the originals are then held to every
    output): a usage error, worded as the other options of full, whether the level is given or read from the files."""
    source, full, anon = released
    key = str(full.parent / "key")
    assert main(["verify", str(anon), "--against", str(source), "--key-file", key]) == 2
    assert capsys.readouterr().err == "neuroanon: --key-file: only at --level full (the files name level anonymize)\n"
    assert main(["verify", str(anon), "--level", "anonymize", "--against", str(source), "--key-file", key]) == 2
    assert capsys.readouterr().err == "neuroanon: --key-file: only at --level full (this run is at level anonymize)\n"


def test_a_key_without_originals_is_refused(released: tuple[Path, Path, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """It was taken and ignored: a check the user thought keyed was not."""
    _, full, _ = released
    assert main(["verify", str(full), "--key-file", str(full.parent / "key")]) == 2
    assert capsys.readouterr().err == ("neuroanon: --key-file: only with --against (the key ties each output to its "
                                       "own original)\n")


def test_help_names_the_inferred_default() -> None:
    done = subprocess.run([sys.executable, "-m", "neuroanon.cli", "verify", "--help"], capture_output=True,
                          text=True, check=True)
    text = " ".join(done.stdout.split())
    assert "(default: the level the files' DeidentificationMethod names, full when they name none)" in text
    assert "default: anonymize" not in text


def test_it_ends_with_a_summary_per_attribute(
    released: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, _, _ = released
    assert main(["verify", str(source), "--level", "full", "--against", str(source)]) == 1
    lines = capsys.readouterr().out.splitlines()
    end = lines.index(next(line for line in lines if " files checked at level full" in line))
    summary = dict(line.strip().rsplit(": ", 1) for line in lines[end + 1:])
    assert summary["PatientName"] == "6 files" and summary["PatientAddress"] == "6 files"


def test_no_element_value_reaches_any_output(tmp_path: Path) -> None:
    """Run as a user runs it (a process of its own: pytest would swallow pydicom's warnings)."""
    source = tmp_path / "in"
    make_study(source, subject=9, n_series=1, n_instances=1)
    path = files_under(source)[0]
    ds = pydicom.dcmread(path)
    ds.SOPInstanceUID = "1.2.FAKESECRET-UID"  # invalid UI: pydicom's validation would quote it
    ds.StudyInstanceUID = "FAKESECRET-STUDY"
    ds.save_as(path)
    out = tmp_path / "out"
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    assert main(["anonymize", str(source), "-o", str(out), "--level", "full", "--key-file", str(key), "-q"]) == 0
    printed = ""
    for args in (["--against", str(source)], ["--against", str(source), "--key-file", str(key)], []):
        for tree in (source, out):
            done = subprocess.run([sys.executable, "-m", "neuroanon.cli", "verify", str(tree), *args],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode in (0, 1), done.stderr[-300:]
            printed += done.stdout + done.stderr
    assert "FAKESECRET" not in printed, "an element value reached the output"
    for name, value in planted_values(9).items():  # the inputs' paths hold the folder and file names
        if name not in ("FolderName", "FileName", "StudyDate", "AccessionNumber"):
            assert value not in printed, f"a planted {name} reached the output"


def test_our_binary_dummy_is_no_finding() -> None:
    from neuroanon.options import Level, Options
    from neuroanon.rules import compile_rules
    from neuroanon.verify import _full

    rules = compile_rules(Options(level=Level.FULL, key=b"k" * 32))
    ds = pydicom.Dataset()
    ds.add_new(0x00420011, "OB", b"\x00\x00")  # EncapsulatedDocument as full writes it (D on OB)
    assert _full(ds, "", rules) == []
    ds.EncapsulatedDocument = b"%PDF-1.4 FAKE"
    findings = _full(ds, "", rules)
    assert findings == ["(0042,0011) EncapsulatedDocument holds a non-dummy value"]


@pytest.mark.parametrize("codec", ["utf_16_le", "latin_1"])
def test_verify_reads_every_encoding(released: tuple[Path, Path, Path], tmp_path: Path, codec: str) -> None:
    source, full, _ = released
    tampered = _copy(full, tmp_path / "tampered")
    victim = files_under(tampered)[0]
    ds = pydicom.dcmread(victim)
    family = str(pydicom.dcmread(files_under(source)[0]).PatientName).split("^")[0]
    ds.ImageComments = "ok"
    ds.add_new(0x00091010, "LO", "FAKE VENDOR")
    blob = b"\x01" + family.title().encode(codec) + b"\x01"
    ds.add_new(0x00091020, "OB", blob + b"\x00" * (len(blob) % 2))
    ds.save_as(victim)
    report = tmp_path / "verify.json"
    assert main(["verify", str(tampered), "--against", str(source), "--json", str(report)]) == 1
    flagged = [r for r in json.loads(report.read_text()) if r["findings"]]
    assert len(flagged) == 1
    assert "original PatientName value found in (0009,1020)" in flagged[0]["findings"]


def test_a_standard_uid_kept_by_full_is_no_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """full keeps a well-known UID in an attribute the table does not list (it is remapped otherwise): verify agrees."""
    source = tmp_path / "in"
    make_study(source, subject=9, n_series=1, n_instances=1)
    (path,) = files_under(source)
    ds = pydicom.dcmread(path)
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.99.1"
    item.StoredInstanceTransferSyntaxUID = "1.2.840.10008.1.2.1"  # a transfer syntax: names no instance
    item.MultiFrameSourceSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.99.2"
    ds.ReferencedImageSequence = [item]
    ds.save_as(path)
    key = tmp_path / "key"
    key.write_text("ef" * 32)
    full = tmp_path / "full"
    assert main(["anonymize", str(source), "-o", str(full), "--level", "full", "--key-file", str(key)]) == 0
    (written,) = files_under(full)
    kept = pydicom.dcmread(written).ReferencedImageSequence[0]
    assert kept.StoredInstanceTransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert kept.ReferencedSOPInstanceUID.startswith("2.25.")
    assert kept.MultiFrameSourceSOPInstanceUID.startswith("2.25.")
    capsys.readouterr()
    assert main(["verify", str(full), "--level", "full"]) == 0, capsys.readouterr().out
    # found from outside: against the originals, the transfer syntax both hold was "a UID equals an original UID"
    assert main(["verify", str(full), "--against", str(source), "--key-file", str(key)]) == 0, \
        capsys.readouterr().out


def test_a_value_that_cannot_be_read_as_its_vr_is_a_finding_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DiffusionBValue (FD, 8 bytes) stored as UN with 6 bytes: pydicom cannot convert it when verify reads it."""
    source = make_study(tmp_path / "in", subject=8, n_series=1, n_instances=1)[0]
    ds = pydicom.dcmread(source)
    add_un(ds, 0x00189087, b"\x01\x02\x03\x04\x05\x00")
    source.write_bytes(part10(ds, "explicit_le"))
    assert main(["verify", str(tmp_path / "in"), "--level", "anonymize"]) == 1
    captured = capsys.readouterr()
    assert "a value could not be read as its VR says (not proven clean)" in captured.out
    assert "Exception" not in captured.out and "Traceback" not in captured.out + captured.err


def test_a_person_named_outside_the_identifying_list_is_looked_for(tmp_path: Path) -> None:
    """full searches for every person's name (a consulting physician's too); verify --against does as well."""
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    ds = make_dataset(subject=9)
    ds.ConsultingPhysicianName = "Snickerdon^Pellam"
    ds.save_as(source / "a.dcm", enforce_file_format=True)
    assert main(["anonymize", str(source), "-o", str(out), "--level", "full", "-q"]) == 0
    report = tmp_path / "verify.json"
    assert main(["verify", str(out), "--level", "full", "--against", str(source), "--json", str(report)]) == 0
    victim = files_under(out)[0]
    released = pydicom.dcmread(victim)
    released.WindowCenterWidthExplanation = "SNICKERDON"
    released.save_as(victim)
    assert main(["verify", str(out), "--level", "full", "--against", str(source), "--json", str(report)]) == 1
    findings: list[str] = json.loads(report.read_text())[0]["findings"]
    assert "original ConsultingPhysicianName value found in (0028,1055)" in findings


@pytest.mark.parametrize("level", [[], ["--level", "full"]], ids=["inferred", "full"])
def test_a_deflated_file_that_cannot_be_inflated_is_one_line(tmp_path: Path, level: list[str],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A corrupt deflate stream: verify says so in one line and exits 1 (without --level it printed zlib's
    traceback: found from outside), and anonymize fails the file naming the cause."""
    (good,) = make_study(tmp_path / "in", subject=64, n_series=1, n_instances=1, encoding="deflated")
    data = good.read_bytes()
    meta_length = int.from_bytes(data[140:144], "little")
    good.write_bytes(data[:144 + meta_length] + b"not a deflate stream at all ")
    assert main(["verify", str(good), *level]) == 1
    said = capsys.readouterr()
    assert "cannot be inflated" in said.out + said.err and "Traceback" not in said.out + said.err
    assert main(["anonymize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--level", "anonymize"]) == 1
    assert "the deflated data set cannot be inflated (a corrupt deflate stream)" in capsys.readouterr().err


def test_the_options_the_files_declare_are_read_with_their_level(
    released: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`verify OUT` on an output made with options (the preset) flagged what those options keep, 15 to 21
    attributes a file (found from outside); it now reads them from DeidentificationMethodCodeSequence as it reads
    the level, and says so. Options given on the command line are taken as given; a tree of mixed options is held
    to those every file declares."""
    source, full, _ = released
    preset = tmp_path / "preset"
    assert main(["anonymize", str(source), "-o", str(preset), "--preset", "bids", "--key-file",
                 str(full.parent / "key")]) == 0
    capsys.readouterr()
    assert main(["verify", str(preset)]) == 0
    assert ("6 files checked at level full with --shift-dates --clean-descriptors --retain-patient-characteristics "
            "(as the files declare): 0 with findings") in capsys.readouterr().out
    assert main(["verify", str(preset), "--clean-descriptors"]) == 1
    capsys.readouterr()
    assert main(["verify", str(preset), str(full)]) == 1, "a mixed tree is held to what every file declares"
    assert "at level full: " in capsys.readouterr().out


def test_a_code_sequence_that_cannot_be_read_is_one_file_s_finding_not_the_run_s_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading the options the files declare, a DeidentificationMethodCodeSequence stored as UN that is no sequence
    ended the run with "neuroanon: OSError" (found in review). The file declares nothing and is checked as any."""
    import io
    import struct

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    def element(group: int, number: int, vr: str, value: bytes) -> bytes:
        if vr == "UN":
            return struct.pack("<HH2sHI", group, number, vr.encode(), 0, len(value)) + value
        return struct.pack("<HH2sH", group, number, vr.encode(), len(value)) + value

    for i, value in enumerate([b"\x01\x02\x03\x04", b"ABCDEFGH"]):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, f"1.2.3.{i}"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.UID(f"1.2.3.{i}")
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        method = element(0x0012, 0x0063, "LO", b"NiDB Anonymize Full (neuroanon 0.1.0) ")
        (tmp_path / f"{i}.dcm").write_bytes(buffer.getvalue() + method + element(0x0012, 0x0064, "UN", value))
    assert main(["verify", str(tmp_path)]) == 1
    shown = capsys.readouterr()
    assert shown.err == "" and "2 files checked at level full: 2 with findings" in shown.out


def test_what_cannot_be_read_is_named_for_its_cause_as_anonymize_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: verify said "not found" of a loop of symlinks and of a symlink to nothing, and "no DICOM
    file found" of a broken zip archive and of a folder holding only these, their causes unsaid."""
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "loop-a").symlink_to(odd / "loop-b")
    (odd / "loop-b").symlink_to(odd / "loop-a")
    (odd / "nowhere.dcm").symlink_to(odd / "gone")
    (odd / "broken.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 2)
    for name, said in (("loop-a", "input is a loop of symlinks"), ("nowhere.dcm", "input is a symlink to nothing"),
                       ("absent", "input not found")):
        assert main(["verify", str(odd / name)]) == 2
        assert capsys.readouterr().err == f"neuroanon: {said}: {odd / name}\n"
        assert main(["verify", str(tmp_path), "--against", str(odd / name)]) == 2
        assert capsys.readouterr().err == f"neuroanon: {said}: {odd / name}\n"
    broken = "zip archive could not be opened (not a valid zip archive): its files were not read"
    assert main(["verify", str(odd / "broken.zip")]) == 1
    assert f"broken.zip\t{broken}\n" in capsys.readouterr().out
    assert main(["verify", str(odd)]) == 1
    listed = capsys.readouterr().out
    for line in (f"broken.zip\t{broken}", "loop-a\tsymlink in an input folder to a target that cannot be reached",
                 "nowhere.dcm\tsymlink in an input folder to nothing (broken)"):
        assert f"\n{line}" in f"\n{listed}", listed


def test_with_the_key_an_output_without_uids_is_held_to_its_subjects_originals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found from outside: an output without a SOPInstanceUID was held to every original's values, even with the
    key, and a word of another patient's name in its kept text was a finding. Its pseudonymized PatientID names its
    subject; without the key, every original's values are still looked for."""
    source = tmp_path / "in"
    source.mkdir()
    other = make_dataset(subject=11)
    other.PatientName = "Zorbfeld^Halvard"
    other.save_as(source / "other.dcm", enforce_file_format=True)
    alone = make_dataset(subject=12)
    alone.SoftwareVersions = "ZORBFELD 2.1"  # another patient's name word, by chance
    del alone.SOPInstanceUID
    del alone.file_meta.MediaStorageSOPInstanceUID
    alone.save_as(source / "alone.dcm")
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    full = tmp_path / "full"
    assert main(["anonymize", str(source), "-o", str(full), "--level", "full", "--key-file", str(key), "-q"]) == 0
    assert sum("SOPInstanceUID" not in pydicom.dcmread(p) for p in files_under(full)) == 1
    capsys.readouterr()
    assert main(["verify", str(full), "--against", str(source), "--key-file", str(key)]) == 0, \
        capsys.readouterr().out
    assert main(["verify", str(full), "--against", str(source)]) == 1
    assert "original PatientName value found in (0018,1020)" in capsys.readouterr().out
