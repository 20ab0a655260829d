"""The outputs of the release before the one-engine change, as hashes: the oracle that the engine keeps them.

Every input (the package corpus, synthetic studies in every encoding, every adversarial case in every encoding and
character set) is anonymized with each option set; what is recorded per (option set, input) is the SHA-256 of each
written file and of the report record (status, reason, output name, changes). Inputs are named by the
package path or the fixture that made them, never by a value in them.

    PYTHONPATH=src python -m tests.golden --write    # record the current outputs (only with a reviewed reason)
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neuroanon.options import Level, Options
from neuroanon.pipeline import anonymize_file
from neuroanon.read import quiet
from neuroanon.sample import make_study

from .adversarial import CASES, make_case
from .corpus import corpus_files

KEY = b"golden-test-key-0123456789abcdef"
RECORDED = Path(__file__).parent / "data" / "golden.json"
RECORD_FIELDS = ("input", "output", "status", "reason", "dicom", "changes", "findings", "pixels")  # as released
OPTION_SETS = {
    "anonymize": Options(level=Level.ANONYMIZE, key=KEY),
    "full": Options(level=Level.FULL, key=KEY),
    "full-retain": Options(level=Level.FULL, key=KEY, retain_patient_characteristics=True,
                           retain_device_identity=True, lookup={"PID-FAKE-0001": "SUBJ-01"}),
    "full-no-private": Options(level=Level.FULL, key=KEY, retain_safe_private=False),
    "full-bids": Options(level=Level.FULL, key=KEY, shift_dates=True, clean_descriptors=True,
                         retain_patient_characteristics=True, cap_ages=True),
    "full-allow-burned-in": Options(level=Level.FULL, key=KEY, allow_burned_in=True),
}


@contextmanager
def inputs() -> Iterator[dict[str, Path]]:
    """Every input by a stable name (its place in the corpus or the fixture that made it)."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        found: dict[str, Path] = {f"corpus/{'/'.join(path.parts[-3:])}": path for path in corpus_files()}
        for encoding in ("explicit_le", "implicit_le", "explicit_be", "deflated"):
            files = make_study(tmp / "study" / encoding, subject=7, n_series=2, n_instances=2, encoding=encoding)
            found.update({f"study/{encoding}/{i}": path for i, path in enumerate(files)})
        for case in CASES:
            for encoding in ("explicit_le", "implicit_le", "explicit_be", "deflated"):
                for charset in ("ascii", "latin1", "utf8"):
                    path, _ = make_case(tmp / "cases" / encoding / charset, case.name, encoding, charset)
                    found[f"case/{case.name}/{encoding}/{charset}"] = path
        yield found


def outcome(source: Path, out: Path, options: Options) -> dict[str, str]:
    """The hashes of what anonymizing `source` with `options` writes and records."""
    with quiet():
        record = anonymize_file(source, out, options)
    written = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted(out.rglob("*")) if p.is_file()}
    fields = record.as_dict()
    summary = json.dumps({k: fields.get(k) for k in RECORD_FIELDS}, sort_keys=True, default=str)
    return {"record": hashlib.sha256(summary.encode()).hexdigest()[:16],
            "files": hashlib.sha256(json.dumps(written, sort_keys=True).encode()).hexdigest()[:16]}


def compute(names: list[str] | None = None) -> dict[str, dict[str, dict[str, str]]]:
    """{option set: {input: outcome}} for every input (or those `names`)."""
    result: dict[str, dict[str, dict[str, str]]] = {name: {} for name in OPTION_SETS}
    with inputs() as found, tempfile.TemporaryDirectory() as folder:
        for n, (name, options) in enumerate(OPTION_SETS.items()):
            for i, (label, path) in enumerate(found.items()):
                if names is None or label in names:
                    result[name][label] = outcome(path, Path(folder) / f"{n}-{i}", options)
    return result


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.golden --write")
    RECORDED.parent.mkdir(exist_ok=True)
    RECORDED.write_text(json.dumps(compute(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {RECORDED}")
