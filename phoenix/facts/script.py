r"""All the facts in one round trip: one `sh` script of sections, and the splitting of its output.

Each fact module has its command (or `sh` script); here every one of them becomes a shell function,
a section, and the script runs them all, in order, whatever each one's exit code: first the required
facts (files, packages, services), then the optional ones of a registry (`registry`), in its order.
It needs what the commands need and nothing more: POSIX sh, GNU find and coreutils, dpkg, systemd,
getent, iproute2. `of(registry)` is the script of a registry; SCRIPT, COMMAND and split() are
those of the default one, REGISTRY.

The files section comes first and is streamed as it is written (it frames itself with NULs, see
`files`). It runs in a subshell, so that its `exit` ends only itself, and its marker, NUL-framed,
follows it: `\0#section files RC\0`. Every other section runs meanwhile, in the background, all
at once, each into its own files in a temporary directory; they are written out in the script's
order once all are done (their stdout and stderr then follow the files section's, so that nothing
interleaves: the same bytes as one section after another, as they run where there is no mktemp).
Those that read the unit file states ($phoenix_units: services, timers) start once these are known
(see cache). Each gets the roots as its arguments too, and is captured first (its output then
holds no NUL: the shell drops them, and with them any a crontab or a key file might hold), so
its marker comes first, with its exit code, then its output, then a NUL:

    f 644 0 0 1523 1795868875.75 1795868875.75 2244916\0root\0root\0/etc/passwd\0\0#sha256\0
    2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  /etc/passwd\0#end 0 0\0
    \0#section files 0\0
    #section packages 0\0adduser\t3.134\tall\tii \nbash\t5.2.15-2+b13\tamd64\tii \0
    #section services 0\0ssh.service enabled enabled\n--\n...\0
    ...
    #section ports 127\0\0
    #section sysctl 0\0net.ipv4.ip_forward = 0\nkernel.randomize_va_space = 2\0

`split()` reads this from its end, where the layout is fixed, so no path or link target in the
files section can pass for a marker. On stderr, each section is introduced by `\0#section NAME\0`,
so that an error names the right section.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass

from phoenix.facts import cache, files, packages, services
from phoenix.facts.registry import REGISTRY, Registry

MARK = "#section"
# name -> shell code of the required sections, first in the script; the registry's facts follow
REQUIRED: dict[str, str] = {
    "files": files.SCRIPT,
    "packages": packages.COMMAND,
    "services": services.SCRIPT,
}
UNITS = "units"  # last, after the sections: the unit file states used, for the next scan's cache
FIRST = "files"  # streamed; every other section is captured
UNITS_VAR = "phoenix_units"  # the unit file states, which the sections that use it start after
# the services' aliases with the units they stand for (services.ALIASES): kept with the unit
# file states in the units record, after ALIASES_MARK on a line of its own
ALIASES_VAR = "phoenix_aliases"
ALIASES_MARK = "#aliases"


def _function(name: str, code: str) -> str:
    return f"phoenix_{name}() {{\n{code.rstrip()}\n}}\n"


# The section that walks / for executables writes the files changed since the first start for the
# one that reads capabilities, which runs after it (see facts.executables, facts.capabilities)
WALKS, READS_WALK = "executables", "capabilities"


def _text(sections: dict[str, str]) -> str:
    captured = [name for name in sections if name != FIRST]
    later = [name for name in captured if UNITS_VAR in sections[name]]  # once the units are known
    chained = WALKS in captured and READS_WALK in captured and not {WALKS, READS_WALK} & {*later}
    paired = (WALKS, READS_WALK) if chained else ()
    sooner = " ".join(n for n in captured if n not in later and n not in paired)
    chain = (
        f"""  if [ -n "$phoenix_capped" ] && [ -n "$phoenix_settled" ]; then
    phoenix_changes=$d/changed phoenix_since=$phoenix_settled
    export phoenix_changes phoenix_since
  fi
  for s in {" ".join(paired)}; do phoenix_section "$s" "$@" >"$d/$s.out" 2>"$d/$s.err"; done &
"""
        if chained
        else ""
    )
    return (
        "export LC_ALL=C\n"
        + "".join(_function(name, code) for name, code in sections.items())
        + f"""\
known_fp=$1 known_units=$2 known_aliases=$3 phoenix_settled=$4 phoenix_listed=$5
phoenix_capped=$6
shift 6
phoenix_section() {{
  s=$1; shift
  printf '\\0{MARK} %s\\0' "$s" >&2
  out=$(phoenix_$s "$@"); rc=$?
  printf '{MARK} %s %s\\0%s\\0' "$s" "$rc" "$out"
}}
phoenix_alias_ids() {{
files=$1
{services.ALIASES.rstrip()}
}}
phoenix_nl='
'
phoenix_unit_files() {{
  phoenix_units_fp=$({cache.FINGERPRINT}); phoenix_units_fp=${{phoenix_units_fp%% *}}
  unset {ALIASES_VAR}
  if [ -n "$known_fp" ] && [ "$phoenix_units_fp" = "$known_fp" ]; then
    {UNITS_VAR}=$known_units
    case $known_aliases in
      "{ALIASES_MARK}$phoenix_nl"*) {ALIASES_VAR}=${{known_aliases#"{ALIASES_MARK}$phoenix_nl"}} ;;
    esac
  else
    {UNITS_VAR}=$({services.UNIT_FILES}) || unset {UNITS_VAR}
  fi
  if [ -n "${{{UNITS_VAR}+set}}" ] && [ -z "${{{ALIASES_VAR}+set}}" ]; then
    {ALIASES_VAR}=$(phoenix_alias_ids "$({services.FROM_UNITS})") || unset {ALIASES_VAR}
  fi
}}
phoenix_units_record() {{
  printf '{MARK} {UNITS} 0\\0%s\\n%s%s\\0' "$phoenix_units_fp" "${{{UNITS_VAR}-}}" \\
    "${{{ALIASES_VAR}+$phoenix_nl{ALIASES_MARK}$phoenix_nl${ALIASES_VAR}}}"
}}
phoenix_rest() {{
  phoenix_unit_files
  for s in {" ".join(captured)}; do phoenix_section "$s" "$@"; done
  phoenix_units_record
}}
phoenix_start() {{
  d=$1; shift
{chain}  for s in {sooner}; do phoenix_section "$s" "$@" >"$d/$s.out" 2>"$d/$s.err" & done
  phoenix_unit_files
  for s in {" ".join(later)}; do phoenix_section "$s" "$@" >"$d/$s.out" 2>"$d/$s.err" & done
  phoenix_units_record >"$d/{UNITS}.out"
  wait
}}
phoenix_first() {{
  printf '\\0{MARK} %s\\0' {FIRST} >&2
  (phoenix_{FIRST} "$@"); rc=$?
  printf '\\0{MARK} %s %s\\0' {FIRST} "$rc"
}}
if work=$(mktemp -d 2>/dev/null); then
  phoenix_start "$work" "$@" 2>"$work/err" </dev/null &
  phoenix_first "$@"
  wait
  cat "$work/err" {" ".join(f'"$work/{name}.err"' for name in captured)} >&2
  cat {" ".join(f'"$work/{name}.out"' for name in captured)} "$work/{UNITS}.out"; rm -rf "$work"
else
  phoenix_first "$@"
  phoenix_rest "$@"
fi
"""
    )


# The script's first arguments, before the roots: what a run without a cache gives. With one,
# they are the unit files' fingerprint, their states and the aliases (known_args), the first start
# (phoenix_settled), the listings phoenix holds (files) and the image's capabilities
# (capabilities.image_paths).
UNCACHED = ("", "", "", "", "", "")


def known_args(units: tuple[str, str] | None) -> tuple[str, str, str]:
    """The script's first three arguments for the units record it printed last (cache.units:
    fingerprint, then text): the fingerprint, the unit file states and, when the record holds
    them, the aliases after their mark line (empty: not known, the script asks systemd)."""
    if units is None:
        return "", "", ""
    fingerprint, text = units
    states, mark, aliases = text.partition(f"\n{ALIASES_MARK}\n")
    return fingerprint, states, f"{ALIASES_MARK}\n{aliases}" if mark else ""


LABEL = "phoenix-facts ROOTS (find, dpkg-query, systemctl, getent, ss, ...)"


@dataclass(frozen=True)
class Section:
    """One section of the script's run: what it printed, its exit code, what it wrote on stderr."""

    name: str
    rc: int
    stdout: str
    stderr: str


@dataclass(frozen=True, eq=False)
class Script:
    """The script of one registry of facts: its sections in order, its text, and its splitting."""

    sections: dict[str, str]  # name -> shell code; the order of the script
    text: str
    command: str

    @property
    def captured(self) -> tuple[str, ...]:
        return tuple(name for name in self.sections if name != FIRST)

    def split(self, stdout: str, stderr: str = "") -> dict[str, Section]:
        """Every section of the script's output, by name; raise ValueError if one is missing."""
        fields = stdout.split("\0")
        if fields[-1] != "":
            raise ValueError("the output does not end with a NUL: it was cut short")
        fields.pop()
        found: dict[str, tuple[int, str]] = {}
        if len(fields) >= 2 and fields[-2] == f"{MARK} {UNITS} 0":
            found[UNITS] = (0, fields.pop())
            fields.pop()
        for name in reversed(self.captured):
            if len(fields) < 2:
                raise ValueError(f"no {name} section: the output ended early")
            text = fields.pop()
            found[name] = (_marker(fields.pop(), name), text)
        if not fields:
            raise ValueError(f"no {FIRST} section: the output ended early")
        found[FIRST] = (_marker(fields.pop(), FIRST), "\0".join(fields))
        errors = self.split_stderr(stderr)
        return {
            name: Section(name, found[name][0], found[name][1], errors.get(name, ""))
            for name in (*self.sections, UNITS)
            if name in found
        }

    def split_stderr(self, stderr: str) -> dict[str, str]:
        """What each section wrote on stderr, by name; what precedes the first marker is dropped."""
        found: dict[str, list[str]] = {}
        current: list[str] = []
        for field in stderr.split("\0"):
            head, _, name = field.partition(" ")
            if head == MARK and name in self.sections:
                current = found.setdefault(name, [])
            else:
                current.append(field)
        return {name: "".join(parts) for name, parts in found.items()}


@functools.lru_cache(maxsize=8)
def of(registry: Registry) -> Script:
    """The script that gathers the required facts, then every fact of `registry`, in its order."""
    sections = REQUIRED | {fact.name: fact.command for fact in registry}
    text = _text(sections)
    return Script(sections, text, f"sh -c {shlex.quote(text)} phoenix-facts")


DEFAULT = of(REGISTRY)  # the script phoenix runs
SECTIONS = DEFAULT.sections
CAPTURED = DEFAULT.captured
SCRIPT = DEFAULT.text
COMMAND = DEFAULT.command


def split(stdout: str, stderr: str = "") -> dict[str, Section]:
    """Every section of the output of the script phoenix runs; see Script.split()."""
    return DEFAULT.split(stdout, stderr)


def split_stderr(stderr: str) -> dict[str, str]:
    return DEFAULT.split_stderr(stderr)


def without_markers(stderr: str) -> str:
    """stderr as the tools wrote it, for a message about the whole script."""
    return "".join(f for f in stderr.split("\0") if f.partition(" ")[0] != MARK)


def _marker(field: str, name: str) -> int:
    """The exit code in the marker of section `name`."""
    match = re.fullmatch(rf"{MARK} (\w+) (\d+)", field)
    if match is None or match.group(1) != name:
        raise ValueError(f"expected the marker of the {name} section, found {field[:80]!r}")
    return int(match.group(2))
