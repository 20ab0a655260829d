"""The run's per-file tables: the same answers as a dict, in a few dozen bytes a row."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuroanon.tables import Claims, DigestTable, Names, digest

keys = st.binary(min_size=16, max_size=16)
values = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "setdefault", "get"]), keys, values), max_size=300), st.booleans())
def test_digest_table_answers_as_a_dict(operations: list[tuple[str, bytes, int]], wide: bool) -> None:
    """Wide, keyed by the whole digest; narrow, by its second half (a low word of 0 is kept as 1)."""
    table, model = DigestTable(wide), dict[bytes, int]()
    for operation, digest_key, value in operations:
        key = digest_key if wide else (int.from_bytes(digest_key[8:], "little") or 1).to_bytes(8, "little")
        if operation == "set":
            table[digest_key] = value
            model[key] = value
        elif operation == "setdefault":
            assert table.setdefault(digest_key, value) == model.setdefault(key, value)
        else:
            assert table.get(digest_key) == model.get(key)
            assert (digest_key in table) == (key in model)
        assert len(table) == len(model)


@pytest.mark.parametrize("wide", [True, False])
def test_digest_table_keeps_every_row_through_growth(wide: bool) -> None:
    table = DigestTable(wide)
    rows = {digest(f"place/{n}"): n for n in range(50_000)}
    for key, value in rows.items():
        assert table.setdefault(key, value) == value
    assert len(table) == len(rows)
    assert all(table.get(key) == value for key, value in rows.items())
    assert table.get(digest("place/50000")) is None


def test_a_digest_with_a_zero_word_is_kept() -> None:
    table = DigestTable()
    zero_low, zero_high = b"\x07" * 8 + bytes(8), bytes(8) + b"\x07" * 8
    table[zero_low] = 5
    table[zero_high] = 6
    table[bytes(16)] = 7
    assert (table.get(zero_low), table.get(zero_high), table.get(bytes(16)), len(table)) == (5, 6, 7, 3)


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(
    ["/", "\udcff", "."]), max_size=40), max_size=50))
def test_names_give_back_what_was_added(names: list[str]) -> None:
    store = Names()
    offsets = [store.add(name) for name in names]
    assert [store[offset] for offset in offsets] == names


def test_claims_name_the_first_input_of_each_place() -> None:
    claims = Claims()
    assert claims.claim("sub-1/a.dcm", "in/x/1.dcm") == "in/x/1.dcm"
    assert claims.claim("sub-1/b.dcm", "in/x/2.dcm") == "in/x/2.dcm"
    assert claims.claim("sub-1/a.dcm", "copy/1.dcm") == "in/x/1.dcm"
    assert "sub-1/b.dcm" in claims and "sub-1/c.dcm" not in claims


def test_an_instance_claimed_in_another_place_names_its_first_input() -> None:
    claims = Claims()
    assert claims.claim_instance("X/s/1/I.dcm", "a/1.dcm", "I.dcm") == ("a/1.dcm", None)
    assert claims.claim_instance("Y/s/1/I.dcm", "b/2.dcm", "I.dcm") == ("b/2.dcm", "a/1.dcm"), "another place"
    assert claims.claim_instance("X/s/1/I.dcm", "b/3.dcm", "I.dcm") == ("a/1.dcm", None), "the same place"
    assert claims.claim_instance("X/s/1/J.dcm", "a/4.dcm", "J.dcm") == ("a/4.dcm", None)


def test_a_row_takes_a_few_dozen_bytes() -> None:
    """A million files' rows fit under the run's memory bound (200 MB): at most 110 bytes a row for a place, its
    instance and its first input's name (folders of 200 files, names as a scanner writes them), 50 for a finished
    input."""
    rows = 60_000
    tracemalloc.start()
    try:
        claims = Claims()
        for n in range(rows):  # at full, with the instance (the output's file name) claimed too
            claims.claim_instance(f"{n // 200:05d}/{n}.dcm", f"Scanner export/Study {n // 2000:03d}/Series "
                                  f"{n // 200:04d}/IM-{n // 200:04d}-{n % 200:04d}.dcm", f"{n}.dcm")
        claims_bytes = tracemalloc.get_traced_memory()[0]
        done = DigestTable(wide=False)
        for n in range(rows):
            done[digest(f"{n:032x}")] = 400 * n
        done_bytes = tracemalloc.get_traced_memory()[0] - claims_bytes
    finally:
        tracemalloc.stop()
    assert claims_bytes / rows < 110
    assert done_bytes / rows < 50
