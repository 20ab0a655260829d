"""Crafted values take time by their length, not by its square or by powers of two; large ones memory once.

Each case was found from outside (probe10): a search or a cleaning step whose work grew with the square of a value's
length, or doubled with each character, so that one crafted file held a run for minutes or hours. Each runs here in
a child that must finish within a minute; with the old code each took from several minutes to hours.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from neuroanon.csa import clean_protocol
from neuroanon.errors import UsageError
from neuroanon.keys import Keyring
from neuroanon.pipeline import check_paths
from neuroanon.sample import make_dataset

from .helpers import files_under

_ROOT = Path(__file__).parent.parent


def _finishes(code: str) -> str:
    """Run `code` in a child Python (the package importable as in the suite); its output, if it finished in time."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=_ROOT,
                              check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("still running after 60 s")
    return done.stdout.strip()


@pytest.mark.parametrize("mark", ["\\u00ad", "\\u200b", "\\u0301"])
def test_a_name_of_many_marks_is_searched_at_once(mark: str) -> None:
    """A mark or a character that shows nothing may be left out of a copy: each was an optional place of the
    name's expression, and forty in a row tried every subset of a value's forty before the search failed."""
    out = _finishes(
        "from pydicom.dataset import Dataset\n"
        "from neuroanon.identifiers import needles\n"
        "ds = Dataset(); ds.SpecificCharacterSet = 'ISO_IR 192'\n"
        f"ds.PatientName = 'Quxw' + '{mark}' * 40 + 'orthy^Zed'\n"
        "crafted, fewer = 0, 0\n"
        "for needle in needles(ds):\n"
        f"    crafted += needle.occurs(('Quxw' + '{mark}' * 40 + 'Xorthy').encode('utf-8').lower())\n"
        f"    fewer += needle.occurs(('Quxw' + '{mark}' * 7 + 'orthy').encode('utf-8').lower())\n"
        "print(crafted, fewer > 0)\n")
    assert out == "0 True"  # (not in the crafted value; the name with fewer marks is still found)


def test_a_russian_name_of_many_soft_signs_is_searched_at_once() -> None:
    out = _finishes(
        "from neuroanon.identifiers import Needle, find_text, latin_form, fold\n"
        "name = 'Квазь' + 'ь' * 40 + 'орт'\n"
        "needle = Needle('PatientName', fold(name).encode(), (latin_form(name),))\n"
        "print(len(find_text('Kvaz' + \"'\" * 40 + 'Xort', (needle,))), len(find_text('Kvazort', (needle,))))\n")
    assert out == "0 1"


def test_text_of_many_accented_letters_is_cut_at_once() -> None:
    out = _finishes(
        "from neuroanon.residual import _around_accented_letters\n"
        "text = '\\u00e9a' * 2_000_000 + ' ' * 300 + 'M\\u00fcller'\n"
        "parts = _around_accented_letters(text).split('\\n')\n"
        "print(len(parts), parts[0] == text[:4_000_095], parts[1].strip() == 'M\\u00fcller')\n")
    assert out == "2 True True"  # (the run cut whole with 96 characters after its last accent, the name apart)


@pytest.mark.parametrize("text", [
    # one line of key words and no '=' (the protocol line's expression took the square of its length): no key's
    # path is so long, and the line is left as it is
    "b'### ASCCONV BEGIN ###\\n' + b'Comment' * 70_000 + b'\\nlFree = 7\\ntPatientName = \"\"Quaxworth\"\"\\n'",
    # key words on one long line, each searched back to the line's start
    "b'Comment ' * 1_000_000 + b'\\nlFree = 7\\ntPatientName = \"\"Quaxworth\"\"\\n'",
    # XProtocol blocks never closed, each read up to the limit: all after the first is blanked
    "b'lFree = 7\\n' + b'<ParamString.\"Comment\">{ \"Quaxworth\" ' * 40_000",
])
def test_protocol_text_of_many_key_words_is_cleaned_at_once(text: str) -> None:
    out = _finishes(
        "from neuroanon.csa import clean_protocol\n"
        "from neuroanon.keys import Keyring\n"
        f"text = {text}\n"
        "cleaned = clean_protocol(text, (), Keyring(b'k' * 32))\n"
        "print(len(cleaned) == len(text), b'lFree = 7' in cleaned, b'Quaxworth' in cleaned)\n")
    assert out == "True True False"


def test_text_read_in_an_image_is_judged_at_once() -> None:
    """OCR text of a long run of letters: two of its patterns were tried from each letter, by the run's square."""
    out = _finishes(
        "from neuroanon.pixeltext import is_phi\n"
        "print(is_phi('q' * 200_000, ()), is_phi('x' * 200_000 + ' quaxworth^zebulon', ()),"
        " is_phi('y' * 200_000 + ' z.q@example.org', ()))\n")
    assert out == "False True True"



def test_inputs_that_share_a_name_are_refused_by_name(tmp_path: Path) -> None:
    """Each input gets a folder of its name in the output: two of one name are refused, both named. (A test of
    the refusal, which had none; how the names are counted it does not time.)"""
    inputs = [tmp_path / f"site{i}" / ("scan" if i in (3, 7) else f"scan{i}") for i in range(10)]
    for folder in inputs:
        folder.mkdir(parents=True)
    with pytest.raises(UsageError, match="share a name") as refused:
        check_paths(inputs, tmp_path / "out")
    named = [p for p in inputs if str(p) in str(refused.value)]
    assert named == [inputs[3], inputs[7]]


@pytest.mark.parametrize("text", [
    # a runaway block, then a value in Cyrillic (UTF-8): blanking words of ASCII letters left it (found in review)
    b'<ParamMap."PhysicianNotes"> { <ParamString."InstitutionName"> { "\xd0\x9a\xd0\xb2\xd0\xb0\xd0\xb7" }',
    # a key behind a path too long to match: its value is blanked without the match (found in review)
    b"s" * 1100 + b'.tProtocolName = ""Dr Opaline \xd0\x9a\xd0\xb2""\nlFree = 7\n',
])
def test_protocol_text_the_search_skips_is_blanked_all_the_same(text: bytes) -> None:
    cleaned = clean_protocol(text, (), Keyring(b"k" * 32))
    assert len(cleaned) == len(text) and b"\xd0" not in cleaned and b"Opaline" not in cleaned



@pytest.mark.parametrize("level", ["anonymize", "full"])
def test_a_large_private_value_after_the_pixel_data_is_held_once(tmp_path: Path, level: str) -> None:
    """Found from outside: a 255 MiB private element after the pixel data took 1.63 GB at full, where it goes, its
    value copied and searched several times over, and 589 MB at anonymize, where it stays (the read held the file
    twice a moment).
    A 200 MiB one (sparse on disk) must now take less than 1.6 times its size and 100 MB."""
    source, out, key = tmp_path / "in" / "tail.dcm", tmp_path / "out", tmp_path / "key"
    source.parent.mkdir()
    key.write_text("ab" * 32)
    tail = 200 << 20
    ds = make_dataset(subject=38)
    for tag in [tag for tag in ds.keys() if tag > 0x7FE00010]:  # (its trailing padding: the new element goes last)
        del ds[tag]
    ds.save_as(source, enforce_file_format=True)
    with open(source, "ab") as f:  # (a private block of a fake vendor, its one element holding zeros)
        f.write(b"\xe1\x7f\x10\x00LO\x0a\x00FAKEVENDOR" + b"\xe1\x7f\x10\x10OB\x00\x00" + tail.to_bytes(4, "little"))
        f.truncate(f.tell() + tail)
    args = ["anonymize", str(source.parent), "-o", str(out), "--level", level, "-q", "--workers", "1",
            *(["--key-file", str(key)] if level == "full" else [])]
    # The run in a grandchild: a child's own peak starts at its parent's size (Linux keeps it across exec), and
    # the suite's process grows past a gigabyte (found in CI); a child of the small child starts small.
    code, peak = _finishes(
        "import resource, subprocess, sys\n"
        f"done = subprocess.run([sys.executable, '-m', 'neuroanon', *{args!r}], capture_output=True)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n").split()
    written = [p.stat().st_size for p in files_under(out)]
    assert code == "0" and len(written) == 1, "released"
    assert (written[0] < 1 << 20) is (level == "full"), "the value goes at full, stays at anonymize"
    assert int(peak) << 10 < 1.6 * tail + (100 << 20), f"peak {int(peak) >> 10} MiB"


def test_a_long_text_is_searched_near_the_keys_found_in_it() -> None:
    """Found on review: 64 MiB of MR spectroscopy floats, decoded as text by the residual check, held the short
    keys of the birth date's forms (" 92") everywhere, and the date's whole pattern (5,000 characters) read all of
    it, once per key's needle: 20 minutes for one file. The pattern reads only near the keys (`_in_text_near`):
    here less than half the text (a key every 5,000 characters), and it finds the date planted in it."""
    import random
    import struct

    from pydicom.dataset import Dataset

    from neuroanon.identifiers import find_text, needles

    ds = Dataset()
    ds.PatientBirthDate = "19920129"
    rng = random.Random(7)
    floats = struct.pack("<262144f", *(rng.gauss(0, 1) for _ in range(262144)))  # 1 MiB
    text = floats.decode("latin_1")
    text = "".join(text[at:at + 5000] + rng.choice((" 92", "-92", "1992 ")) for at in range(0, len(text), 5000))
    read: list[int] = []

    class Counted:  # the pattern, counting the characters each search is given
        def __init__(self, pattern: object) -> None:
            self.pattern = pattern

        def search(self, text: str, pos: int = 0, endpos: int = 1 << 62) -> object:
            read.append(min(endpos, len(text)) - pos)
            return self.pattern.search(text, pos, endpos)  # type: ignore[attr-defined]

    patterns = needles(ds)
    keyed = [needle for needle in patterns if needle.text_keys]  # (a needle without keys is searched everywhere)
    for needle in keyed:
        needle.__dict__["text_pattern"] = Counted(needle.text_pattern)
    assert keyed and find_text(text, patterns) == []
    assert sum(read) < len(text) / 2, (sum(read), len(text))  # (the whole text, each needle, each fold: 4.5 times)
    planted = text[:500_000] + " 29 January 1992 " + text[500_000:]
    assert [n.attribute for n in find_text(planted, patterns)] == ["PatientBirthDate"]
