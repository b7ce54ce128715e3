r"""Executables anywhere on the server: what a file checker with fixed roots does not look at.

The files fact hashes what is under the drift roots; an attacker drops a tool, a backdoor or a
setuid shell wherever it is not looked for (/var/lib/.x, /dev/shm, /usr/share/...). This fact
records every regular file that anyone may execute or that has the setuid or setgid bit, on the
root file system (`find / -xdev`) and on the usual writable mounts that -xdev skips, each on its
own file system (`/dev/shm`, `/run`, `/tmp`, `/var/tmp`, when they exist, are directories and
are another file system than `/`: else the scan of `/` already covers them). Per file: its mode
(setuid/setgid bits included), uid, gid, size and SHA-256 (a replaced binary is seen anywhere).

The command finds them twice, once for the metadata (`%m %U %G %s %p`), once to hash them
(`sha256sum --zero`), every record ended by a NUL, and ends with the exit codes of both passes.
The script of all facts captures a section's output in a shell variable, which drops NULs, so the
command escapes each record (`\` -> `\\`, newline -> `\n`: a file name may hold newlines) and then
ends it by a newline. Sample output:

    755 0 0 1265648 /usr/bin/bash
    4755 0 0 59704 /usr/bin/passwd
    700 0 0 18 /tmp/evil\nname
    #sha256
    8b9a...64 hex...1c2d  /usr/bin/bash
    ...
    #end 0 0

Cost, on a container of ~20,000 files and ~3,000 executables: two walks of the root file system
(metadata only, ~0.05 s each with a warm cache) and the SHA-256 of every executable outside the
drift roots, which the script passes to every section: those under the roots (/usr, /etc...) are
hashed by the files fact, with its cache, so hashing them here again would cost ~0.45 s per scan
for nothing (50 MB on a Debian minbase with nginx); outside them, ~0.01 s. The roots must not
hold find's glob characters (`*?[`): they are given to `-path`.

What is left out, and why (nothing here changes on a lived-in Debian server):
- files that are not executable by anyone (logs, rotated logs, caches, leases, journals, pid
  files, sockets, spools, /var/cache/apt's packages: all written without any x bit);
- other mounts than the four above: /proc, /sys, /dev (but /dev/shm), and the per-login
  /run/user/UID tmpfs that a `ssh` login mounts (its files come and go with the session);
- nothing is excluded by path: /var/lib/dpkg/info's maintainer scripts and /etc/cron.*'s jobs
  change only with a package; systemd, sshd and cron write no executable to /run or /tmp. A file
  that vanishes while it is scanned keeps its metadata, without a hash.
Removed executables are low: an image's file gone is drift, not a way in.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from phoenix.facts import fields

EXTRA_ROOTS = ("/dev/shm", "/run", "/tmp", "/var/tmp")
HASH_MARK = "#sha256"
END_MARK = "#end"
FIND_OK = frozenset({0, 1})  # 1: an entry vanished or could not be read during the scan
XARGS_OK = frozenset({0, 123})  # 123: sha256sum could not read some file (it hashed the rest)
SETUID_BITS = 0o6000
MODE = re.compile(r"[0-7]{1,4}")  # find's %m: no leading zeros ("1" for --------x)
ESCAPED = re.compile(r"\\(.?)", re.DOTALL)

# Escape each NUL-ended record of stdin, then end it by a newline: the script's capture keeps it.
ESCAPE = r"sed -z 's/\\/\\\\/g; s/\n/\\n/g' | tr '\0' '\n'"

# One find reads the device of the root and of each extra root that is a directory (a link is
# not): the root's line first, as find takes its starting points in order.
ROOTS = r"""dev= starts=
while read -r d r; do
  if [ -z "$dev" ]; then
    [ "$r" = @ROOT@ ] || break
    dev=$d starts=$r
  elif [ "$d" != "$dev" ]; then
    starts="$starts $r"
  fi
done <<EOF
$(find @ROOT@ @EXTRA@ -maxdepth 0 -type d -printf '%D %p\n' 2>/dev/null)
EOF
[ -n "$dev" ] || exit 3
n=$#  # the drift roots: the files fact hashes what is under them, so the hash pass skips them
for r; do set -- "$@" -o -path "$r"; done
shift "$n"
if [ "$#" -gt 0 ]; then shift; set -- \( "$@" \) -prune -o; fi
"""

# With `phoenix_changes` (a file) and `phoenix_since` (a time) in its environment, the metadata
# pass also writes there every regular file whose ctime is after that time, NUL-ended (complete,
# or not there at all): the files the capabilities command of the same scan reads instead of
# walking / again (facts.capabilities, facts.script; ~17 ms of a container's CPU).
BODY = r"""changes=
if [ -n "${phoenix_changes-}" ] && [ -n "${phoenix_since-}" ]; then changes=$phoenix_changes; fi
{
  if [ -n "$changes" ]; then
    find $starts -xdev -type f \( -perm /6111 -printf '%m %U %G %s %p\0' , \
      -newerct "@$phoenix_since" -fprint0 "$changes.part" \); frc=$?
    [ "$frc" -gt 1 ] || mv -f -- "$changes.part" "$changes"
  else
    find $starts -xdev -type f -perm /6111 -printf '%m %U %G %s %p\0'; frc=$?
  fi
  printf '#sha256\0'
  find $starts -xdev "$@" -type f -perm /6111 -print0 | xargs -0 -r sha256sum --zero; hrc=$?
  printf '#end %s %s\0' "$frc" "$hrc"
} | @ESCAPE@
"""


def roots(root: str = "/", extra: Sequence[str] = EXTRA_ROOTS) -> str:
    """Shell code that sets `starts` to `root` and those of `extra` that are other file systems
    (no spaces in any of them), and turns the drift roots, its arguments, into a find expression
    that prunes them ("$@")."""
    code = ROOTS.replace("@ROOT@", shlex.quote(root))
    return code.replace("@EXTRA@", " ".join(map(shlex.quote, extra)))


def script(root: str = "/", extra: Sequence[str] = EXTRA_ROOTS) -> str:
    """The command's shell code; a test scans a directory tree of its own instead of /."""
    return "export LC_ALL=C\n" + roots(root, extra) + BODY.replace("@ESCAPE@", ESCAPE)


SCRIPT = script()
COMMAND = f'sh -c {shlex.quote(SCRIPT)} phoenix-executables "$@"'  # the roots, passed on


@dataclass(frozen=True)
class Executable:
    mode: str  # octal with 4 digits, setuid/setgid/sticky included: "0755", "4755"
    uid: int
    gid: int
    size: int
    sha256: str | None = None  # None: under the drift roots (the files fact hashes it), or gone


def is_setuid(value: Executable | None) -> bool:
    """Whether a file has the setuid or setgid bit: a way to root."""
    return value is not None and int(value.mode, 8) & SETUID_BITS != 0


def setuid_after(before: Executable | None, after: Executable | None) -> bool:
    """A new or changed executable is a setuid finding when it now has a setuid/setgid bit."""
    return is_setuid(after)


def show(value: Executable) -> str:
    """What a finding shows: mode, owner, size and the start of the hash (never the content)."""
    digest = value.sha256[:16] if value.sha256 else "(in the files fact)"
    return f"mode {value.mode} {value.uid}:{value.gid} size {value.size} sha256:{digest}"


def parse(text: str) -> dict[str, Executable]:
    """Path -> executable; raise ValueError on anything the command does not write."""
    lines = iter(fields.records(text, "\n"))
    found = dict(_metadata(lines))
    hashes, end = _hashes(lines)
    _end(end, lines)
    return {
        path: Executable(mode, uid, gid, size, hashes.get(path))
        for path, (mode, uid, gid, size) in sorted(found.items())
    }


def unescape(record: str) -> str:
    r"""A record as the command escaped it, back: `\\` -> `\`, `\n` -> newline."""

    def one(match: re.Match[str]) -> str:
        escaped = {"\\": "\\", "n": "\n"}.get(match.group(1))
        if escaped is None:
            raise ValueError(f"record {fields.shown(record)} holds a stray backslash")
        return escaped

    return ESCAPED.sub(one, record)


def _metadata(lines: Iterator[str]) -> Iterator[tuple[str, tuple[str, int, int, int]]]:
    for line in lines:
        if line == HASH_MARK:
            return
        yield _record(line)
    raise ValueError(f"no {HASH_MARK} record: the output ended early")


# Every scan of every server of an image prints the same ~700 lines: each is checked once. A
# server that prints others only pushes older ones out (at most ~8,000 lines of ~4 KB).
@functools.lru_cache(maxsize=8192)
def _record(line: str) -> tuple[str, tuple[str, int, int, int]]:
    """`MODE UID GID SIZE PATH` -> (path, (mode, uid, gid, size)); ValueError if not that."""
    head = line.split(" ", 4)
    if len(head) != 5:
        raise ValueError(f"not `MODE UID GID SIZE PATH`: {fields.shown(line)}")
    mode, uid, gid, size, path = head
    if not MODE.fullmatch(mode):
        raise ValueError(f"mode {fields.shown(mode)} is not octal permission bits")
    return fields.path(unescape(path)), (
        fields.mode(mode.zfill(3)),
        fields.count(uid, "uid"),
        fields.count(gid, "gid"),
        fields.count(size, "size"),
    )


def _hashes(lines: Iterator[str]) -> tuple[dict[str, str], str]:
    """The `HASH  PATH` records up to the end record, which is returned with them."""
    hashes: dict[str, str] = {}
    for line in lines:
        if line.startswith(END_MARK + " "):
            return hashes, line
        digest, sep, path = line[:64], line[64:66], line[66:]
        if sep != "  ":
            raise ValueError(f"not a sha256sum record: {fields.shown(line)}")
        hashes[fields.path(unescape(path))] = fields.sha256(digest)
    raise ValueError(f"no {END_MARK} record: the output ended early")


def _end(end: str, rest: Iterator[str]) -> None:
    """The exit codes of both passes must be ones of a complete scan; nothing may follow."""
    codes = end.split(" ")
    if len(codes) != 3:
        raise ValueError(f"not an end record: {fields.shown(end)}")
    find_rc, hash_rc = fields.count(codes[1], "find's exit code"), fields.count(codes[2])
    if find_rc not in FIND_OK:
        raise ValueError(f"find failed (exit {find_rc}): the scan is incomplete")
    if hash_rc not in XARGS_OK:
        raise ValueError(f"xargs sha256sum failed (exit {hash_rc}): the files are not hashed")
    extra = next(rest, None)
    if extra is not None:
        raise ValueError(f"output after the end record: {fields.shown(extra)}")
