"""The field validators every fact parser uses: hostile input raises ValueError, nothing else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenix.facts import fields


def test_mode_accepts_octal_and_pads_to_four_digits() -> None:
    assert fields.mode("644") == "0644"
    assert fields.mode("4755") == "4755"


@pytest.mark.parametrize("bad", ["", "9", "64", "0x1ff", "rwxr-xr-x", "07777", " 644", "6\n44"])
def test_mode_refuses_what_is_not_octal_bits(bad: str) -> None:
    with pytest.raises(ValueError, match="not octal"):
        fields.mode(bad)


@pytest.mark.parametrize("bad", ["-1", "", "1e3", "1.5", "٣", "1" * 21])
def test_count_refuses_negative_and_odd_numbers(bad: str) -> None:
    with pytest.raises(ValueError):
        fields.count(bad)


@pytest.mark.parametrize(
    "bad", ["etc/passwd", "/etc/../root", "/etc/./x", "//etc", "/etc/", "/a\0b", "/" + "a" * 5000]
)
def test_path_refuses_relative_and_unnormalised_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        fields.path(bad)


def test_path_must_lie_under_a_root_but_may_hold_odd_bytes() -> None:
    assert fields.path("/etc/[/]\x1b[31m", ("/etc",)) == "/etc/[/]\x1b[31m"
    assert fields.path("/etc", ("/etc",)) == "/etc"
    with pytest.raises(ValueError, match="outside"):
        fields.path("/etcetera/x", ("/etc",))


def test_an_error_shows_a_capped_escaped_copy() -> None:
    with pytest.raises(ValueError) as exc:
        fields.mode("\x1b[2J" + "x" * 500)
    assert "\x1b" not in str(exc.value) and len(str(exc.value)) < 200


def test_records_split_on_the_one_separator() -> None:
    assert fields.records("a\u2028b\nc\n") == ["a\u2028b", "c"]
    assert fields.records("a\0b\0", "\0") == ["a", "b"]


@given(st.text())
def test_validators_raise_only_value_error(text: str) -> None:
    for check in (fields.mode, fields.count, fields.seconds, fields.sha256, fields.name,
                  fields.plain, fields.path):  # fmt: skip
        with contextlib.suppress(ValueError):
            check(text)
