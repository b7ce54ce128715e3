"""The fields of fact records, validated: every byte a server sends is untrusted data.

A fact parser reads what a server's own tools printed, and a compromised server prints what it
likes. Each function here takes one field as printed and returns it checked (and converted), or
raises ValueError naming the field and showing (a capped, escaped copy of) what was found. A
parser raises nothing else: the scan turns that ValueError into a finding about the server.
"""

from __future__ import annotations

import functools
import posixpath
import re

MAX_SHOWN = 80  # characters of a bad field quoted in an error
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MODE = re.compile(r"[0-7]{3,4}")
DIGITS = re.compile(r"[0-9]{1,20}")  # ids, sizes, inodes: 20 digits hold any 64-bit number
SHA256 = re.compile(r"[0-9a-f]{64}")
NAME = re.compile(r"[^\x00-\x20\x7f/:]{1,256}")  # a user, group, unit or package name


def shown(text: str) -> str:
    """`text` for an error message: at most MAX_SHOWN characters, control characters escaped."""
    cut = text[:MAX_SHOWN] + ("..." if len(text) > MAX_SHOWN else "")
    return repr(cut)


def records(text: str, sep: str = "\n") -> list[str]:
    """The records of a command's output, split on the one separator it writes (never on the
    other line breaks str.splitlines() knows, which a file name or a comment may hold); a last
    empty record (the output's final separator) is dropped."""
    parts = text.split(sep)
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def mode(text: str, what: str = "mode") -> str:
    """Permission bits in octal, 3 or 4 digits: returned with 4 ("0644", "4755")."""
    if not MODE.fullmatch(text):
        raise ValueError(f"{what} {shown(text)} is not octal permission bits")
    return f"{int(text, 8):04o}"


def count(text: str, what: str = "number") -> int:
    """A whole number, 0 or more (an id, a size, an inode, a pid)."""
    if not DIGITS.fullmatch(text):
        raise ValueError(f"{what} {shown(text)} is not a whole number of 0 or more")
    return int(text)


def seconds(text: str, what: str = "time") -> float:
    """A time in seconds since the epoch as find's %T@ prints it: digits, maybe a fraction."""
    whole, dot, fraction = text.partition(".")
    if not DIGITS.fullmatch(whole) or (dot and not fraction.isdigit()) or len(fraction) > 20:
        raise ValueError(f"{what} {shown(text)} is not a time in seconds")
    return float(text)


def sha256(text: str) -> str:
    if not SHA256.fullmatch(text):
        raise ValueError(f"hash {shown(text)} is not a SHA-256 in lowercase hex")
    return text


def name(text: str, what: str = "name") -> str:
    """A user, group, unit or package name: no spaces, control characters, `/` nor `:`."""
    if not NAME.fullmatch(text):
        raise ValueError(f"{what} {shown(text)} is not a valid name")
    return text


def plain(text: str, what: str = "field", limit: int = 4096) -> str:
    """Free text where no control character can be (a value, a comment): none, and capped."""
    if CONTROL.search(text) or len(text) > limit:
        raise ValueError(f"{what} {shown(text)} holds control characters or is too long")
    return text


def path(text: str, roots: tuple[str, ...] = ("/",), what: str = "path") -> str:
    """An absolute, normalised path (no `.` or `..` part, no `//`, no trailing `/`, no NUL),
    under one of `roots` (the root itself included). Other bytes, control characters among
    them, are allowed: a file name may hold them; whoever shows one escapes it."""
    if (
        not text.startswith("/")
        or "\0" in text
        or len(text) > 4096
        or (text != "/" and posixpath.normpath(text) != text)
        or text.startswith("//")
    ):
        raise ValueError(f"{what} {shown(text)} is not an absolute, normalised path")
    anywhere, exact, below = _under(tuple(roots))
    if not (anywhere or text in exact or text.startswith(below)):
        raise ValueError(f"{what} {shown(text)} is outside the roots scanned")
    return text


@functools.lru_cache(maxsize=64)
def _under(roots: tuple[str, ...]) -> tuple[bool, frozenset[str], tuple[str, ...]]:
    """For a path to lie under one of `roots`: one of them is `/`, or it is one of them, or it
    starts with one of them and a `/` (a path is checked once per file of a scan: kept)."""
    return "/" in roots, frozenset(roots), tuple(root + "/" for root in roots)
