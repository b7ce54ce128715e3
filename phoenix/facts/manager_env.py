r"""systemd's manager environment: what every service it starts inherits.

`systemctl set-environment LD_PRELOAD=/tmp/x.so` (or a PATH with a directory of the attacker's
first) reaches every service started afterwards, and leaves no file behind. COMMAND prints the
environment, a `KEY=VALUE` line each; systemd quotes a value with special characters (`$'...'`,
with `\n` for a newline), so no value spans two lines:

    LANG=C.UTF-8
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    container=lxc

A value is kept as printed (a secret in it stays: redaction is another step's), cut to
MAX_VALUE characters. Without systemd the command fails: the fact is empty.
"""

from __future__ import annotations

import re

from phoenix.facts import fields

COMMAND = "systemctl show-environment"
MAX_VALUE = 512  # characters of a value kept; the rest is shown as "..."
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,255}")


def parse(text: str) -> dict[str, str]:
    """Variable -> value; raise ValueError on a line that is not `KEY=VALUE`."""
    found: dict[str, str] = {}
    for line in fields.records(text):
        key, sep, value = line.partition("=")
        if not sep or not KEY.fullmatch(key):
            raise ValueError(f"manager environment line {fields.shown(line)} is not KEY=VALUE")
        fields.plain(value, f"value of {key}", limit=1 << 20)
        found[key] = value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 3] + "..."
    return dict(sorted(found.items()))
