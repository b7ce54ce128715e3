"""`printable`: a server's text with every control or format character escaped, unambiguously."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenix.text import printable

# Characters a hostile name would use, mixed into any text (surrogates are rare in st.characters).
NASTY = (
    "\\\x00\x01\t\n\r\x1b\x7f\x80\x85\x9b\xa0\xad\u200b\u200d\u2028\u202e\ufeff"
    "\ud800\udcff\ufffe\uffff\U000e0001\U0010ffff"
)
TEXTS = st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY)))
ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")
# XML 1.0's Char production: what a document may hold at all, even as a character reference.
XML_CHARS = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def unescape(shown: str) -> str:
    """The inverse of `printable`: a backslash only ever starts one of its escapes."""
    return ESCAPE.sub(lambda m: "\\" if m[1] == "\\" else chr(int(m[1][1:], 16)), shown)


@given(TEXTS)
def test_nothing_unprintable_is_left_and_the_text_comes_back(text: str) -> None:
    shown = printable(text)
    assert all(char.isprintable() for char in shown)  # no control, format, surrogate, odd space
    assert XML_CHARS.fullmatch(shown)
    assert "\\" not in ESCAPE.sub("", shown)  # every backslash is part of an escape
    assert unescape(shown) == text  # so two texts never look the same


@given(TEXTS)
def test_kept_characters_stay_and_the_rest_is_escaped(text: str) -> None:
    shown = printable(text, keep="\n\t")
    assert all(char.isprintable() or char in "\n\t" for char in shown)
    assert unescape(shown) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/etc/motd", "/etc/motd"),
        ("/srv/été/名前 [bold]", "/srv/été/名前 [bold]"),  # UTF-8 names stay readable
        ("\x1b[2J", "\\x1b[2J"),
        ("a\rb\n", "a\\x0db\\x0a"),
        ("\x9b31m", "\\x9b31m"),  # C1: a CSI on some terminals
        ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
        ("non\xa0break", "non\\xa0break"),
        ("bad\udcff", "bad\\udcff"),  # a byte that was not UTF-8 (surrogateescape)
        ("tag\U000e0041", "tag\\U000e0041"),
        ("C:\\x1b", "C:\\\\x1b"),  # a backslash never passes for an escape
    ],
)
def test_examples(text: str, shown: str) -> None:
    assert printable(text) == shown
