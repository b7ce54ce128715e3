r"""Transient units: services, scopes and timers started by hand (`systemd-run`), outside the image.

`systemd-run --on-calendar=hourly /tmp/x` leaves no unit file under /etc: systemd writes it under
/run/systemd/transient/, which a reboot clears. SCRIPT prints each unit file's name after a `#`,
then, after a `=`, each line telling what it runs: its `ExecStart=` lines (not the empty
one that resets the list), a timer's `On...=` lines, and its `Description=` (which `systemd-run
--scope` sets to the command line):

    #run-u12.service
    =Description=/tmp/x
    =ExecStart="/tmp/x"
    #run-u12.timer
    =Description=/tmp/x
    =OnCalendar=hourly

Left out: `session-*.scope` and `user-*.slice`, which logind creates for each SSH login. Only
builtins read the files (one `read` a line, no process a unit); a character that is not printable
(which systemd refuses, but a file put there by hand may hold) is shown as `?`, in a name or in a
line. A unit's value is its lines joined with "; ", cut to MAX_VALUE characters.
"""

from __future__ import annotations

import re

from phoenix.facts import fields

DIRECTORY = "/run/systemd/transient"
SCRIPT = f"""\
for f in {DIRECTORY}/*; do
  [ -f "$f" ] || continue
  n=${{f##*/}}
  case $n in
    session-*.scope|user-*.slice) continue ;;
    *[![:graph:]]*) n=$(printf '%s' "$n" | tr -c '[:graph:]' '?') ;;
  esac
  printf '#%s\\n' "$n"
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      ExecStart=?*|On?*=*|Description=*) ;;
      *) continue ;;
    esac
    case $line in *[[:cntrl:]]*) line=$(printf '%s' "$line" | tr '[:cntrl:]' '?') ;; esac
    printf '=%s\\n' "$line"
  done <"$f"
done
"""
NAME = re.compile(r"[^\x00-\x20\x7f/]{1,256}")  # a unit name: systemd allows `:`, `\\`, `@`
MAX_VALUE = 512


def parse(text: str) -> dict[str, str]:
    """Unit -> what it runs; raise ValueError on a line before the first unit, or a bad one."""
    found: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in fields.records(text):
        if line.startswith("="):
            if lines is None:
                raise ValueError(f"a unit line before any unit name: {fields.shown(line)}")
            lines.append(fields.plain(line[1:], "unit line", limit=1 << 20))
        elif line.startswith("#") and NAME.fullmatch(line[1:]):
            lines = found.setdefault(line[1:], [])
        else:
            raise ValueError(f"neither a unit name nor a unit line: {fields.shown(line)}")
    return {unit: _capped("; ".join(lines)) for unit, lines in sorted(found.items())}


def _capped(value: str) -> str:
    return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 3] + "..."
