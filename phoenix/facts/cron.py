r"""Scheduled work: the entries of every crontab, and the state of every systemd timer.

COMMAND prints, for each crontab that is a file (`/etc/crontab`, the files of `/etc/cron.d/` and of
`/var/spool/cron/crontabs/`), its path on a line of its own, then each of its lines after a `=`:

    /etc/crontab
    =SHELL=/bin/sh
    =# m h dom mon dow user  command
    =17 *  * * *  root  cd / && run-parts --report /etc/cron.hourly
    /etc/cron.d/e2scrub_all
    =30 3 * * 0 root test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r
    /var/spool/cron/crontabs/root
    =@reboot /usr/local/bin/warm-cache

An entry is a line that is neither blank nor a comment, without the whitespace around it; a crontab
without entries is still listed (with none). A directory or crontab that does not exist is skipped.
Hidden files (which cron never reads) are left to the files fact; a newline in a file's name (cron
ignores such files too) is shown as `?`. Every field is validated (a path under the crontab
directories, an entry of at most MAX_ENTRY characters without control characters but tabs), and a
secret in an entry (a password, a token: see phoenix.redact) is redacted before it is stored or
shown: `<redacted: TYPE sha256:PREFIX>`, the same for the same secret, so entries still compare.

TIMERS_COMMAND lists systemd's timer unit files (unit, unit file state, vendor preset):

    apt-daily.timer              enabled enabled
    systemd-tmpfiles-clean.timer static  -
"""

from __future__ import annotations

import shlex
from typing import Any

from phoenix import redact
from phoenix.facts import fields, services

SCRIPT = """\
nl='
'
for f in /etc/crontab /etc/cron.d/* /var/spool/cron/crontabs/*; do
  if [ ! -f "$f" ]; then continue; fi
  case $f in
    *"$nl"*) printf '%s' "$f" | tr '\\n' '?'; echo ;;
    *) printf '%s\\n' "$f" ;;
  esac
  while IFS= read -r line || [ -n "$line" ]; do printf '=%s\\n' "$line"; done <"$f"
done
"""
COMMAND = f"sh -c {shlex.quote(SCRIPT)}"
ROOTS = ("/etc/crontab", "/etc/cron.d", "/var/spool/cron/crontabs")
MAX_ENTRY = 4096
TIMERS_COMMAND = (
    """if [ -n "${phoenix_units+set}" ]; then printf "%s\\n" "$phoenix_units" | """
    """sed -n '/^[^ ]*\\.timer /p'\n"""
    f"else {services.TIMER_FILES}; fi"
)


def parse(text: str) -> dict[str, tuple[str, ...]]:
    """Crontab path -> its entries, redacted; ValueError on a line before the first path, a path
    outside ROOTS, or an entry that is too long or holds control characters."""
    found: dict[str, list[str]] = {}
    entries: list[str] | None = None
    for line in fields.records(text, "\n"):
        if line.startswith("="):
            if entries is None:
                raise ValueError(f"a crontab line before any crontab path: {fields.shown(line)}")
            entry = _entry(line[1:])
            if entry:
                entries.append(entry)
        elif line.startswith("/"):
            entries = found.setdefault(fields.path(line, ROOTS, "crontab path"), [])
        elif line:
            raise ValueError(f"neither a crontab path nor a crontab line: {fields.shown(line)}")
    return {path: redacted(lines) for path, lines in sorted(found.items())}


def redacted(entries: Any) -> tuple[str, ...]:
    """Entries with their secrets redacted (those of a record stored before redaction too)."""
    return tuple(redact.redact_lines(list(entries)))


def _entry(raw: str) -> str | None:
    """A crontab line without the whitespace around it; None for a blank line or a comment."""
    entry = raw.strip()
    if not entry or entry.startswith("#"):
        return None
    fields.plain(entry.replace("\t", " "), "crontab line", MAX_ENTRY)
    return entry


def parse_timers(text: str) -> dict[str, str]:
    """Timer unit -> its unit file state (enabled, disabled, static, masked, ...)."""
    found: dict[str, str] = {}
    for line in fields.records(text, "\n"):
        cols = line.split(" ")
        cols = [c for c in cols if c]
        if cols and cols[0] in services.BULLETS:
            cols = cols[1:]
        if not cols:
            continue
        if len(cols) < 2:
            raise ValueError(f"not a unit line: {fields.shown(line)}")
        unit = fields.name(cols[0], "timer unit")
        found[unit] = fields.name(cols[1], "unit file state")
        for extra in cols[2:]:
            fields.name(extra, "vendor preset")
    return dict(sorted(found.items()))
