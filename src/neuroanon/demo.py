"""The demo: a synthetic study full of fake PHI, anonymized at full, shown before and after.

Every value shown is invented by `sample`; the demo never touches real data.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from .keys import Keyring, create_key, load_key
from .options import Level, Options
from .pipeline import anonymize_tree
from .sample import make_study

SHOWN = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "InstitutionName", "StationName",
         "AccessionNumber", "ReferringPhysicianName", "StudyInstanceUID", "SOPInstanceUID", "PatientIdentityRemoved")


MARK = ".neuroanon-demo"  # in a folder the demo made (`demo_folder`)
_MADE = frozenset({MARK, "demo.key", "input", "output", "report.jsonl", ".output.neuroanon-journal",
                   ".output.neuroanon-work"})


def demo_folder(folder: Path) -> bool:
    """Whether the demo may write in `folder`: none, empty, or one an earlier demo made (its mark there, a file,
    and nothing but what a demo makes). Found from outside: in another folder it wrote its fake study among the
    user's files (an `input/` of theirs was anonymized with it), or stopped half done advising a --force it has
    not; a symlink named as the mark, or other files beside it, passed for a demo's folder."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return True
    mark = folder / MARK
    return mark.is_file() and not mark.is_symlink() and {entry.name for entry in folder.iterdir()} <= _MADE


def run_demo(folder: Path) -> int:
    """Make, anonymize and compare; return the run's exit status."""
    source, output = folder / "input", folder / "output"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARK).touch()
    key_file = folder / "demo.key"
    key = create_key(key_file) if not key_file.exists() else load_key(key_file)
    make_study(source, subject=0, study=0, n_series=2, n_instances=3)
    make_study(source, subject=0, study=1, n_series=1, n_instances=3, encoding="implicit_le")
    report = folder / "report.jsonl"
    summary = anonymize_tree([source], output, Options(level=Level.FULL, key=key), report=report)

    before_path = sorted(source.rglob("*.dcm"))[0]
    before = pydicom.dcmread(before_path)
    after_path = next(output.rglob(Keyring(key).uid(before.SOPInstanceUID) + ".dcm"))
    after = pydicom.dcmread(after_path)
    print("neuroanon demo: a synthetic study with FAKE PHI, anonymized at level full\n")
    width = max(map(len, SHOWN))
    print(f"{'attribute':{width}}  {'before (fake)':40}  after")
    for keyword in SHOWN:
        print(f"{keyword:{width}}  {_show(before, keyword):40}  {_show(after, keyword)}")
    private_before = sorted({str(e.value) for e in before if e.tag.is_private_creator})
    private_after = sorted({str(e.value) for e in after if e.tag.is_private_creator})
    print(f"{'private blocks':{width}}  {', '.join(private_before):40}  {', '.join(private_after)}")
    print(f"\npath before: {before_path.relative_to(source)}")
    print(f"path after:  {after_path.relative_to(output)}")
    print(f"\n{summary.line()}\ninput: {source}\noutput: {output}\nreport: {report}\nkey: {key_file}")
    return summary.exit_code


def _show(ds: pydicom.Dataset, keyword: str) -> str:
    value = str(ds.get(keyword, "(absent)")) or "(empty)"
    return value if len(value) <= 40 else value[:37] + "..."
