"""systemd services: the state of each unit file, merged with the state of each loaded unit.

Sample output of the command, three sections between `--` lines: `list-unit-files` (unit, file
state, vendor preset), `list-units --all --plain` (unit, load state, active state, sub state,
description), and the unit each alias stands for (`systemctl show -p Id`):

    getty@.service                         enabled         enabled
    ssh.service                            enabled         enabled
    sshd.service                           alias           -
    x11-common.service                     masked          enabled
    --
    apparmor.service        not-found inactive dead    apparmor.service
    getty@tty1.service      loaded    inactive dead    Getty on tty1
    ssh.service             loaded    active   running OpenBSD Secure Shell server
    --
    sshd.service ssh.service

`enabled` is the unit file state (enabled, disabled, static, masked, alias, ...). Template units
(`getty@.service`) have a file state and are never loaded; their instances (`getty@tty1.service`)
and units whose file is missing are loaded but have no unit file row: their `enabled` is the load
state (`loaded`, `not-found`, ...). An alias is as active as the unit it stands for. A unit that is
not loaded is `inactive`, `dead`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from phoenix.facts import fields
from phoenix.facts.runner import Runner, checked
from phoenix.host.process import CommandResult

SEPARATOR = "--"
# `systemctl list-unit-files` costs systemd ~0.5 s of CPU on a small server: it works out the state
# of every unit file it finds. Name patterns make it skip the other types' files before that work
# (`--type` filters only what it prints), which halves its cost for the same output. The facts
# script runs it once for services and timers (UNIT_FILES) into $phoenix_units, which this section
# then filters; alone, it runs its own.
SERVICE_FILES = "systemctl list-unit-files --type=service --no-legend --no-pager '*.service'"
TIMER_FILES = "systemctl list-unit-files --type=timer --no-legend --no-pager '*.timer'"
UNIT_FILES = (
    "systemctl list-unit-files --type=service,timer --no-legend --no-pager '*.service' '*.timer'"
)
# The service unit files among the unit files the script of all facts read once ($phoenix_units).
FROM_UNITS = """printf "%s\\n" "$phoenix_units" | sed -n '/^[^ ]*\\.service /p'"""
# The third part, from the service unit files in $files: each template alias alone, then each
# other alias with the unit it stands for. It depends on the unit files only, so the script of all
# facts keeps it with them ($phoenix_aliases, see facts.script): while they are unchanged, it is
# not asked of systemd again (~8 ms of a container's CPU).
ALIASES = """\
aliases=$(printf "%s\\n" "$files" | while read -r unit state _; do
  if [ "$state" = alias ]; then echo "$unit"; fi
done)
printf "%s\\n" "$aliases" | grep -F "@." | sed 's/$/ /'  # a template alias names no unit
aliases=$(printf "%s\\n" "$aliases" | grep -vF "@.")
[ -z "$aliases" ] && exit 0
# one systemctl for all: their ids come in order, a blank line between two (names hold no space)
systemctl show -p Id --value -- $aliases | sed '/^$/d' | paste -d " " /dev/fd/3 - 3<<EOF
$aliases
EOF
"""
SCRIPT = f"""\
export LC_ALL=C
if [ -n "${{phoenix_units+set}}" ]; then
  files=$({FROM_UNITS})
else
  files=$({SERVICE_FILES}) || exit
fi
printf "%s\\n{SEPARATOR}\\n" "$files"
systemctl list-units --type=service --all --no-legend --no-pager --plain || exit
echo {SEPARATOR}
if [ -n "${{phoenix_aliases+set}}" ]; then
  [ -z "$phoenix_aliases" ] || printf "%s\\n" "$phoenix_aliases"
  exit 0
fi
{ALIASES}"""
COMMAND = f"sh -c {shlex.quote(SCRIPT)}"
LABEL = "systemctl list-unit-files; systemctl list-units"
BULLETS = ("\u25cf", "*", "\u00d7")  # bullet, star, cross: marks systemd may print before a unit


@dataclass(frozen=True)
class Service:
    name: str
    enabled: str  # the unit file state, or the load state for units without a unit file row
    active: str  # active, inactive, failed, activating, ...
    sub: str  # running, exited, dead, ...


def parse(text: str) -> dict[str, Service]:
    """Parse the command's output; raise ValueError if a section or a column is missing, or a
    unit name or state is not a valid name (see `fields`)."""
    sections = _sections(fields.records(text, "\n"))
    return merge(
        parse_unit_files(sections[0]), parse_units(sections[1]), parse_aliases(sections[2])
    )


def parse_unit_files(lines: list[str]) -> dict[str, str]:
    """Unit name -> unit file state."""
    return {cols[0]: _state(cols[1]) for cols in _columns(lines, 2)}


def parse_units(lines: list[str]) -> dict[str, tuple[str, str, str]]:
    """Unit name -> (load, active, sub) state."""
    return {
        cols[0]: (_state(cols[1]), _state(cols[2]), _state(cols[3])) for cols in _columns(lines, 4)
    }


def parse_aliases(lines: list[str]) -> dict[str, str]:
    """Alias -> the unit it stands for (nothing for the alias of a template)."""
    return {cols[0]: fields.name(cols[1], "unit") for cols in _columns(lines, 1) if len(cols) > 1}


def merge(
    files: dict[str, str],
    units: dict[str, tuple[str, str, str]],
    aliases: dict[str, str] | None = None,
) -> dict[str, Service]:
    aliases = aliases or {}
    names = sorted(files.keys() | units.keys())
    return {
        name: _service(name, files.get(name), units.get(name) or units.get(aliases.get(name, "")))
        for name in names
    }


def gather(session: Runner, timeout: float = 60) -> dict[str, Service]:
    return read(session, session.run(COMMAND, timeout=timeout))


def read(session: Runner, result: CommandResult) -> dict[str, Service]:
    """Parse what the command printed; raise CommandError if it failed or is not readable."""
    return checked(session, LABEL, result, parse)


def _service(name: str, file_state: str | None, unit: tuple[str, str, str] | None) -> Service:
    load, active, sub = unit or ("not-loaded", "inactive", "dead")
    return Service(name, file_state or load, active, sub)


def _sections(lines: list[str]) -> list[list[str]]:
    cuts = [i for i, line in enumerate(lines) if line == SEPARATOR]
    if len(cuts) != 2:
        raise ValueError(f"expected 3 sections between {SEPARATOR!r} lines, found {len(cuts) + 1}")
    return [lines[: cuts[0]], lines[cuts[0] + 1 : cuts[1]], lines[cuts[1] + 1 :]]


def _columns(lines: list[str], least: int) -> list[list[str]]:
    """The space-separated columns of each line (systemctl pads with spaces; any other
    whitespace is part of a column, and fails its check), the first one a valid unit name."""
    rows = []
    for line in lines:
        cols = [col for col in line.split(" ") if col]
        if cols and cols[0] in BULLETS:
            cols = cols[1:]
        if not cols:
            continue
        if len(cols) < least:
            raise ValueError(f"not a unit line: {fields.shown(line)}")
        fields.name(cols[0], "unit")
        rows.append(cols)
    return rows


def _state(text: str) -> str:
    return fields.name(text, "unit state")
