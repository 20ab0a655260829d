"""Every output byte and report record is the release's (tests/golden.py recorded them before the engine change).

A difference names the option set and the input, never a value. A change of output on purpose is recorded again
with `python -m tests.golden --write`, and the commit says why.
"""

from __future__ import annotations

import json

from .golden import RECORDED, compute


def test_outputs_and_records_are_the_recorded_ones() -> None:
    recorded = json.loads(RECORDED.read_text())
    now = compute()
    compared = differ = 0
    lines = []
    for options, inputs in recorded.items():
        for label, outcome in inputs.items():
            if label not in now[options]:
                continue  # a test-data package dropped the file: nothing to compare
            compared += 1
            if now[options][label] != outcome:
                differ += 1
                what = [part for part in ("files", "record") if now[options][label][part] != outcome[part]]
                lines.append(f"{options} {label}: {' and '.join(what)} differ")
    assert compared >= 0.9 * sum(len(inputs) for inputs in recorded.values()), "most inputs must be compared"
    assert not differ, f"{differ} of {compared} outcomes differ from the release:\n" + "\n".join(lines[:60])
