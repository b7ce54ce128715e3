"""Secrets found by their content, and lines with them redacted.

A person may type a password, a token or a key into any file of a server, whatever its name. What
Yelp's detect-secrets flags in a text (AWS and other vendors' keys, private keys, passwords
assigned to secret-sounding names, high-entropy strings) is never stored, shown nor promoted:
`find_secrets` says where such a text holds one, `redact_line` replaces each one by
`<redacted: TYPE sha256:PREFIX>` (the same secret always gives the same text, so a redacted line
still compares equal to itself from one scan to the next).

detect-secrets keeps its settings (plugins, filters) in global state: every scan here runs under
one lock, inside detect-secrets' default settings, so scans from a thread pool never see each
other's settings. Each line is read as a line of a config file (server files mostly are); on top
of detect-secrets' own quoted strings, an unquoted run of at least MIN_TOKEN characters whose
entropy passes the plugin's limit is a secret too (`TOKEN=...` in an environment file).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # detect-secrets is imported by the first scan: it is slow to import
    from detect_secrets.plugins.base import BasePlugin
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

FILENAME = "server-file.conf"  # the name detect-secrets is shown: a config file
MIN_TOKEN = 20  # characters of an unquoted high-entropy string
PREFIX = 12  # hex digits of the SHA-256 a redacted secret shows
# Filters a server's file must not switch off: a `pragma: allowlist secret` comment, and the
# check that the file exists on this machine (it does not: its content came over SSH).
UNWANTED_FILTERS = (
    "detect_secrets.filters.allowlist.is_line_allowlisted",
    "detect_secrets.filters.common.is_invalid_file",
)
# Characters that end a secret when its detector matched only the start of it (a GitHub token's
# `ghp`): the whole run of other characters around it is redacted.
BOUNDARY = re.compile(r"""[\s"'`,;()\[\]{}<>]""")
BOUNDARY_LEFT = re.compile(r"""[\s"'`,;()\[\]{}<>=:@]""")
WORD = re.compile(r"(?:[A-Z]?[a-z]*|[A-Z]*)[0-9]*")

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Secret:
    """A secret in a text: its line (from 1), what detect-secrets calls it, and its value."""

    line: int
    type: str
    value: str


def find_secrets(text: str) -> list[tuple[int, str]]:
    """(line number from 1, type) of every secret in `text`, in line order."""
    return [(s.line, s.type) for s in secrets_in(text)]


def has_secret(text: str) -> bool:
    return bool(secrets_in(text))


def secrets_in(text: str) -> list[Secret]:
    """Every secret in `text` (lines split on "\\n"), one per (line, value)."""
    return _scan([line.removesuffix("\r") for line in text.split("\n")])


def redact_line(line: str) -> str:
    """`line` with each secret in it replaced by `<redacted: TYPE sha256:PREFIX>`."""
    return redact_lines([line])[0]


def redact_lines(lines: Sequence[str]) -> list[str]:
    """Each of `lines` redacted as `redact_line` does, in one scan."""
    found: dict[int, list[Secret]] = {}
    for secret in _scan(lines):
        found.setdefault(secret.line, []).append(secret)
    return [_redacted(line, found.get(n, [])) for n, line in enumerate(lines, start=1)]


def _redacted(line: str, found: list[Secret]) -> str:
    spans: list[tuple[int, int, str]] = []
    # a named kind first (an AWS key before the high-entropy string it also is), longest first
    for secret in sorted(found, key=lambda s: ("Entropy" in s.type, -len(s.value))):
        for start, end in _spans(line, secret.value):
            if not any(start < e and s < end for s, e, _ in spans):
                spans.append((start, end, secret.type))
    for start, end, kind in sorted(spans, reverse=True):
        line = line[:start] + redacted(line[start:end], kind) + line[end:]
    return line


def redacted(value: str, kind: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", errors="surrogateescape")).hexdigest()
    return f"<redacted: {kind} sha256:{digest[:PREFIX]}>"


MIN_PASSWORD = 4  # a keyword's value shorter than this is taken for a setting, not a secret


def _scan(lines: Sequence[str]) -> list[Secret]:
    from detect_secrets.settings import default_settings, get_plugins, get_settings

    found: dict[tuple[int, str], Secret] = {}
    listed = list(lines)
    with _LOCK, default_settings():
        get_settings().disable_filters(*UNWANTED_FILTERS)
        plugins = list(get_plugins())
        for number, line in enumerate(listed, start=1):
            if not line.strip():
                continue
            for secret in _in_line(plugins, listed, number, line):
                found.setdefault((secret.line, secret.value), secret)
    return sorted(found.values(), key=lambda s: (s.line, s.value))


def _in_line(
    plugins: list[BasePlugin], lines: list[str], number: int, line: str
) -> Iterator[Secret]:
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.plugins.keyword import KeywordDetector
    from detect_secrets.util.code_snippet import get_code_snippet

    context = get_code_snippet(lines=lines, line_number=number)
    for plugin in plugins:
        values = {str(s.secret_value) for s in plugin.analyze_line(
            filename=FILENAME, line=line, line_number=number, context=context
        ) if s.secret_value}  # fmt: skip
        if isinstance(plugin, HighEntropyStringsPlugin):
            values |= set(_unquoted(plugin, line))
        for value in sorted(values):
            if isinstance(plugin, KeywordDetector) and _not_a_password(value):
                continue
            if not _filtered(plugin=plugin, secret=value, line=line, context=context):
                yield Secret(number, str(plugin.secret_type), value)


def _not_a_password(value: str) -> bool:
    """A keyword's value (after `password`, `passwd`, `secret`...) that is no secret: very short,
    or words of letters only (or paths), a setting such as sudo's `NOPASSWD: ALL` or nsswitch's
    `passwd: files systemd`. A passphrase of letters only is missed; "hunter2" is not."""
    words = value.split()
    return len(value) < MIN_PASSWORD or all(w.isalpha() or w.startswith("/") for w in words)


def _unquoted(plugin: HighEntropyStringsPlugin, line: str) -> Iterator[str]:
    """The unquoted strings of `line` (the value of a `NAME=value`) that pass the plugin's
    entropy limit and are not paths or names made of words."""
    run = re.compile(f"[{re.escape(plugin.charset)}]{{{MIN_TOKEN},}}")
    for token in run.findall(line):
        value = re.split("[=:]", token)[-1]
        if len(value) < MIN_TOKEN or _worded(value):
            continue
        if plugin.calculate_shannon_entropy(value) > plugin.entropy_limit:
            yield value


def _worded(value: str) -> bool:
    """Whether `value` is words joined by `/ . _ -` (a path, a file or variable name): each part
    letters (one capital first, or all capitals), then maybe digits."""
    return all(WORD.fullmatch(part) for part in re.split(r"[/._-]+", value) if part)


def _filtered(**kwargs: Any) -> bool:
    """Whether one of detect-secrets' filters (sequential strings, UUIDs, templates, `$VAR`...)
    says this is no secret."""
    from detect_secrets.core.scan import get_filters_with_parameter
    from detect_secrets.util.inject import call_function_with_arguments

    for check in get_filters_with_parameter("secret"):
        try:
            if call_function_with_arguments(check, filename=FILENAME, **kwargs):
                return True
        except TypeError:  # a filter that wants what a line scan does not have
            continue
    return False


def _spans(line: str, value: str) -> Iterator[tuple[int, int]]:
    """Where `value` is in `line`, widened to the run of characters it is part of."""
    start = line.find(value)
    while start >= 0:
        begin, end = start, start + len(value)
        while begin > 0 and not BOUNDARY_LEFT.match(line[begin - 1]):
            begin -= 1
        while end < len(line) and not BOUNDARY.match(line[end]):
            end += 1
        yield begin, end
        start = line.find(value, start + len(value))
