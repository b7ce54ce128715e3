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
ignores such files too) is shown as `?`.

TIMERS_COMMAND lists systemd's timer unit files (unit, unit file state, vendor preset):

    apt-daily.timer              enabled enabled
    systemd-tmpfiles-clean.timer static  -
"""

from __future__ import annotations

import shlex

from phoenix.facts import services

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
TIMERS_COMMAND = """\
if [ -n "${phoenix_units+set}" ]; then printf "%s\\n" "$phoenix_units" | sed -n '/^[^ ]*\\.timer /p'
else systemctl list-unit-files --type=timer --no-legend --no-pager; fi"""


def parse(text: str) -> dict[str, tuple[str, ...]]:
    """Crontab path -> its entries; raise ValueError on a line before the first path."""
    found: dict[str, list[str]] = {}
    entries: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("="):
            if entries is None:
                raise ValueError(f"a crontab line before any crontab path: {line!r}")
            entry = line[1:].strip()
            if entry and not entry.startswith("#"):
                entries.append(entry)
        elif line.startswith("/"):
            entries = found.setdefault(line, [])
        elif line:
            raise ValueError(f"neither a crontab path nor a crontab line: {line!r}")
    return {path: tuple(lines) for path, lines in sorted(found.items())}


def parse_timers(text: str) -> dict[str, str]:
    """Timer unit -> its unit file state (enabled, disabled, static, masked, ...)."""
    return dict(sorted(services.parse_unit_files(text.splitlines()).items()))
