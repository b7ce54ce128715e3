r"""Running processes a compromised server gives away: a binary gone from disk, or one outside the
image's system directories.

Malware often runs from /tmp, /var/tmp or /dev/shm, or deletes its binary once started (or never
had one: a `memfd:` executable), so that no file check finds it. SCRIPT reads every process's
`/proc/PID/exe` link with one `find` (kernel threads have none: skipped), and prints, for each
process of interest, a tag, its command name (`comm`, control characters dropped) and its
executable, separated by tabs (a newline in a path reads `?`):

    D\tkworkerd\t/tmp/.x/kworkerd
    D\tx\t/memfd:x
    O\tminer\t/dev/shm/miner

- `D`, deleted: the executable is gone from disk (its link reads `PATH (deleted)` and PATH is
  not there). A binary replaced by a package upgrade (PATH is there again, the process runs the
  old one until restarted) is no finding under the system directories; elsewhere it is an `O`.
- `O`, outside: the executable is not under SYSTEM (/usr, /bin, /sbin, /lib*, /opt).
Ordinary processes print nothing, so a lived-in server has no record at all. The facts are
executable path -> the sorted command names of its processes (pids change, and are not kept):
DELETED for `D`, OUTSIDE for `O`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from phoenix.facts import fields

SYSTEM = ("/usr/*", "/bin/*", "/sbin/*", "/lib*/*", "/opt/*")
_SYSTEM = "|".join(SYSTEM)
SCRIPT = f"""\
find /proc/[0-9]*/exe -maxdepth 0 -printf '%h %l\\0' 2>/dev/null | tr '\\n\\0' '?\\n' |
while IFS=' ' read -r d x; do
  t=O
  case $x in
    *' (deleted)')
      x=${{x% (deleted)}}
      if [ ! -e "$x" ]; then t=D; else case $x in {_SYSTEM}) continue ;; esac; fi ;;
    ''|{_SYSTEM}) continue ;;
  esac
  c=$(tr -d '\\000-\\037\\177' <"$d/comm" 2>/dev/null)
  printf '%s\\t%s\\t%s\\n' "$t" "$c" "$x"
done
"""
DELETED, OUTSIDE = "D", "O"
MAX_NAMES = 10  # command names kept for one executable
COMM = re.compile(r"[^\x00-\x1f\x7f]{0,64}")


def records(text: str) -> list[tuple[str, str, str]]:
    """(tag, command name, executable) of each line; raise ValueError on a line that is not."""
    found = []
    for line in fields.records(text):
        tag, sep, rest = line.partition("\t")
        comm, sep2, exe = rest.partition("\t")
        if not (sep and sep2) or tag not in (DELETED, OUTSIDE):
            raise ValueError(f"process line {fields.shown(line)} is not `D|O<tab>NAME<tab>PATH`")
        if not COMM.fullmatch(comm):
            raise ValueError(f"command name {fields.shown(comm)} is not a process name")
        found.append((tag, comm, fields.path(exe, what="executable")))
    return found


def _of(tag: str) -> Callable[[str], dict[str, str]]:
    def parse(text: str) -> dict[str, str]:
        names: dict[str, set[str]] = {}
        for kind, comm, exe in records(text):
            if kind == tag:
                names.setdefault(exe, set()).add(comm or "?")
        return {exe: _shown(sorted(comms)) for exe, comms in sorted(names.items())}

    parse.__doc__ = f"Executable -> command names, of the processes tagged {tag}."
    return parse


def _shown(names: list[str]) -> str:
    more = len(names) - MAX_NAMES
    return " ".join(names[:MAX_NAMES]) + (f" (+{more} more)" if more > 0 else "")


parse_deleted = _of(DELETED)
parse_outside = _of(OUTSIDE)
