r"""File capabilities, and other `security.*` extended attributes, of every file on the server.

A copy of python with `cap_setuid+ep` is a way to root without any setuid bit: neither the mode
of a file nor its hash shows it. This fact records, for every regular file on the root file system
and on the writable mounts the executables fact scans (`executables.roots`), the capabilities
`getcap` prints (it prints only files that have some), and, when `getfattr` (package attr) is
there, the file's other `security.*` attributes (security.capability is getcap's already). Without
getfattr the fact holds the capabilities only, and the output says so (`#getfattr missing`, and a
line on stderr); without getcap (package libcap2-bin) the section fails: the fact is empty.

getcap writes `PATH CAPS` lines, unescaped: the files whose path holds a newline are asked one at a
time (there are none on a sane server), the others in batches. getfattr escapes newlines and
backslashes in the names itself (`\012`, `\134`) and writes the values in base64 (`-e base64`).
As in the executables fact, each record is then escaped (`\` -> `\\`, newline -> `\n`) and ended
by a newline. Sample output:

    /usr/bin/ping cap_net_raw=ep
    /usr/local/bin/py cap_setuid=ep
    #getfattr
    # file: /usr/bin/ping
    security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=

    # file: /srv/x
    security.ima=0sBAT/EO0=

    #end

gives `{"/srv/x": "security.ima=0sBAT/EO0=", "/usr/bin/ping": "cap_net_raw=ep",
"/usr/local/bin/py": "cap_setuid=ep"}`. A path that ends in what looks like capabilities
(`/x cap_chown=ep`) cannot be told apart in getcap's line: its capabilities are then those of a
shorter path; two lines for one path are both kept (`A | B`): neither can hide the other.

Cost: two more walks of the root file system and one getxattr per file (getcap, getfattr): well
under a second on a container of ~20,000 files. Nothing here changes on a lived-in server: only
package installs set capabilities (and getfattr's presence changes only with the attr package).

A server of a known image need not be read whole. The command's arguments may be the server's
first start T (as phoenix_settled, see facts.files) and the paths its image's baseline has
capabilities or attributes for (`#image`, then one path per line). Then it reads only the files
whose ctime is after T, and those of the image's paths that are still regular files with a ctime
not after T. Setting or removing a capability or attribute sets the file's ctime, and so do a write,
a rename and a link; the server cannot set the host's clock back. So a file with capabilities
now either has them since T (a ctime after T) or had them in the image (a path of the image's).
The output is the same as a read of every file. In the script of all facts, the executables
section's walk of / writes the files changed since T (a third argument, facts.executables), and
this section reads them instead of walking / itself. A deep scan reads every file. A path of the
image's with a newline in it cannot be passed: phoenix then reads every file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping

from phoenix.facts import fields
from phoenix.facts.executables import ESCAPE, roots, unescape

GETFATTR_MARK = "#getfattr"
GETFATTR_MISSING = "#getfattr missing"
END_MARK = "#end"
FILE_HEAD = "# file: "
CAPABILITY = "security.capability"
# one clause of cap_to_text: capability names (or none), then operators and flags: "cap_x,cap_y=ep"
CLAUSE = re.compile(r"[a-z0-9_,]*(?:[=+-][eip]*)+")
ATTRIBUTE = re.compile(r"security\.[!-<>-~]{1,250}")  # printable, no `=` nor space
VALUE = re.compile(r"(?:0s[A-Za-z0-9+/]*={0,2}|0x[0-9a-f]*|\"[ -~]*\")?")  # -e base64: 0s...
OCTAL = re.compile(r"\\([0-7]{3})")
MAX_TEXT = 4096

IMAGE_MARK = "#image"  # the first line of the image's paths, given as the second argument

# The files to read, NUL-ended: every regular file; or, given the first start and the image's paths
# ($newer set), those changed since, and the image's paths that are still regular files unchanged
# since (their ctime not after it: the two sets do not meet). `phoenix_files all` lists them all,
# `phoenix_files plain` those without a newline in their path, and `phoenix_files FILE` those
# without, writing those with one to FILE: one walk for both. getcap's lines are not escaped: it
# reads a path with a newline on its own ($each).
BODY = r"""nl='
'
newer=
if [ -n "$settled" ] && [ -n "$image" ]; then newer="-newerct @$settled"; fi
phoenix_files() {
  if [ -n "$newer" ] && [ -n "$changes" ] && [ -f "$changes" ]; then  # walked by executables
    case $1 in
      all) cat -- "$changes" ;;
      plain) sed -z '/\n/d' -- "$changes" ;;
      *) sed -z '/\n/!d' -- "$changes" >"$1" && sed -z '/\n/d' -- "$changes" ;;
    esac
  else
    case $1 in
      all) find $starts -xdev -type f $newer -print0 ;;
      plain) find $starts -xdev -type f $newer ! -path "*$nl*" -print0 ;;
      *) find $starts -xdev -type f $newer \( -path "*$nl*" -fprint0 "$1" -o -print0 \) ;;
    esac
  fi
  [ -z "$newer" ] || printf '%s\n' "$image" | sed 1d | tr '\n' '\0' | xargs -0 -r sh -c '
    find "$@" -maxdepth 0 -type f ! -newerct "@$0" -print0 2>/dev/null; :' "$settled"
}
each='for f; do c=$(getcap "$f") && [ -n "$c" ] && printf "%s\0" "$c"; done; :'
{
  if odd=$(mktemp 2>/dev/null); then
    phoenix_files "$odd" | xargs -0 -r getcap | tr '\n' '\0'
    xargs -0 -r sh -c "$each" phoenix-getcap <"$odd"
    rm -f -- "$odd"
  else
    phoenix_files plain | xargs -0 -r getcap | tr '\n' '\0'
    find $starts -xdev -type f $newer -path "*$nl*" -exec sh -c "$each" phoenix-getcap {} +
  fi
  if command -v getfattr >/dev/null 2>&1; then
    printf '#getfattr\0'
    phoenix_files all |
      xargs -0 -r getfattr --absolute-names -e base64 -m '^security\.' -d | tr '\n' '\0'
  else
    printf '#getfattr missing\0'
    echo "getfattr not found (package attr): only file capabilities read, no other security.*" >&2
  fi
  printf '#end\0'
} | @ESCAPE@
"""
# none of them are drift roots (see roots); the third: the files changed since the first start,
# as the executables command of the same scan wrote them (facts.executables), if it did
ARGUMENTS = "settled=${1-} image=${2-} changes=${3-}\nset --\n"
NEEDS_GETCAP = r"""command -v getcap >/dev/null 2>&1 || {
  echo "getcap not found (package libcap2-bin): file capabilities cannot be read" >&2; exit 127; }
"""


def script(root: str = "/", extra: tuple[str, ...] | None = None) -> str:
    """The command's shell code; a test scans a directory tree of its own instead of /."""
    where = roots(root) if extra is None else roots(root, extra)
    return "export LC_ALL=C\n" + NEEDS_GETCAP + ARGUMENTS + where + BODY.replace("@ESCAPE@", ESCAPE)


SCRIPT = script()
# In the script of all facts: the first start and the image's paths, when phoenix gave them, and
# the files changed since as the executables section wrote them.
ARGS = ' "${phoenix_capped:+$phoenix_settled}" "${phoenix_capped-}" "${phoenix_changes-}"'
COMMAND = f"sh -c {shlex.quote(SCRIPT)} phoenix-capabilities{ARGS}"


MAX_IMAGE_PATHS = 64 * 1024  # bytes of the image's paths passed on the command line, at most


def image_paths(found: Mapping[str, str]) -> str | None:
    """The second argument of the command, for a server of an image whose baseline holds `found`
    (path -> capabilities); None if the paths cannot be passed: a newline in one, or more than
    MAX_IMAGE_PATHS bytes of them (the command line of the script has its limit)."""
    if any("\n" in path for path in found):
        return None
    text = "\n".join((IMAGE_MARK, *sorted(found)))
    return text if len(text.encode()) <= MAX_IMAGE_PATHS else None


def parse(text: str) -> dict[str, str]:
    """Path -> its capabilities and other security attributes, as text; ValueError if unreadable."""
    lines = iter(fields.records(text, "\n"))
    found: dict[str, list[str]] = {}
    for path, caps in _getcap(lines):
        found.setdefault(path, []).append(caps)
    for path, attributes in _getfattr(lines):
        if attributes:
            found.setdefault(path, []).append(" ".join(attributes))
    extra = next(lines, None)
    if extra is not None:
        raise ValueError(f"output after the end record: {fields.shown(extra)}")
    return {path: " | ".join(texts) for path, texts in sorted(found.items())}


def split_getcap(line: str) -> tuple[str, str]:
    """`PATH CAPS` -> (PATH, CAPS): CAPS is the longest run of clauses that ends the line."""
    words = line.split(" ")
    first = len(words)
    while first > 1 and CLAUSE.fullmatch(words[first - 1]):
        first -= 1
    if first == len(words):
        raise ValueError(f"not `PATH CAPABILITIES`: {fields.shown(line)}")
    caps = fields.plain(" ".join(words[first:]), "capabilities", MAX_TEXT)
    return fields.path(unescape(" ".join(words[:first]))), caps


def _getcap(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    for line in lines:
        if line in (GETFATTR_MARK, GETFATTR_MISSING):
            return
        yield split_getcap(line)
    raise ValueError(f"no {GETFATTR_MARK} record: the output ended early")


def _getfattr(lines: Iterator[str]) -> Iterator[tuple[str, list[str]]]:
    """Each `# file: PATH` with its `security.*` attributes but security.capability."""
    path: str | None = None
    attributes: list[str] = []
    for line in lines:
        if line == END_MARK or line.startswith(FILE_HEAD):
            if path is not None:
                yield path, attributes
            if line == END_MARK:
                return
            path, attributes = _getfattr_path(line[len(FILE_HEAD) :]), []
        elif line:
            if path is None:
                raise ValueError(f"an attribute before any `# file:` record: {fields.shown(line)}")
            name, _, value = line.partition("=")
            if not ATTRIBUTE.fullmatch(name) or not VALUE.fullmatch(value):
                raise ValueError(f"not a `security.NAME=VALUE` attribute: {fields.shown(line)}")
            if name != CAPABILITY:
                attributes.append(fields.plain(line, "attribute", MAX_TEXT))
    raise ValueError(f"no {END_MARK} record: the output ended early")


def _getfattr_path(text: str) -> str:
    r"""A path as getfattr wrote it (`\ooo` for a newline or a backslash), back."""
    raw = unescape(text)
    if "\\" in OCTAL.sub("", raw):
        raise ValueError(f"path {fields.shown(raw)} holds a stray backslash")
    parts = OCTAL.split(raw)  # text, octal, text, octal, ..., text
    data = b"".join(
        bytes([int(part, 8) & 0xFF]) if odd else part.encode("utf-8", "surrogatepass")
        for odd, part in ((i % 2 == 1, p) for i, p in enumerate(parts))
    )
    return fields.path(data.decode("utf-8", "replace"))
