"""Text from a server, made safe to show: on a terminal, in XML, in HTML.

A file name, a subject, an error quoted from a server can hold anything a process on that server
chose: a terminal escape sequence (ESC [ 2J clears the screen), a carriage return that hides what
came before it, U+202E that shows the rest of a name backwards, a zero-width space, a lone surrogate
(a name that was not UTF-8). `printable` shows every such character as an escape and keeps the rest,
so a UTF-8 name stays readable:

    >>> printable("/etc/cron.d/\\x1b[2Jevil\\u202e")
    '/etc/cron.d/\\\\x1b[2Jevil\\\\u202e'

The escapes are those of a Python string (\\xNN, \\uNNNN, \\UNNNNNNNN) and a backslash is shown as
two, so what is shown maps back to one text only. The result holds only characters allowed in an
XML 1.0 document (no C0 control, no surrogate, no U+FFFE/U+FFFF), so it can go into XML as it is.
"""

from __future__ import annotations

import re

# Characters str.isprintable() refuses: categories Cc (C0, DEL, C1), Cf (format: bidi overrides,
# zero-width characters), Cs (lone surrogates), Co (private use), Cn (unassigned), Zl, Zp and
# every space but U+0020. With the backslash, they are the ones `printable` escapes.
_SPECIAL = re.compile(r"[^ -\[\]-~]")  # anything but printable ASCII other than the backslash


def printable(text: str, keep: str = "") -> str:
    """`text` with each non-printable character (and the backslash) shown as an escape.

    `keep` names characters left as they are: "\\n" for a file's content shown line by line.
    """
    return _SPECIAL.sub(lambda match: _escape(match.group(), keep), text)


def _escape(char: str, keep: str) -> str:
    if char in keep:
        return char
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
