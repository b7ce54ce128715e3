r"""Files under a set of roots: metadata of every entry, and the SHA-256 of every regular file.

One command, run by `sh` on the server with the roots as its arguments, needs only GNU find, grep,
sed and coreutils (no Python on the server). It checks that the tools are GNU ones, drops the roots
that do not exist, then writes its sections, every field ended by a NUL (the one byte no path can
hold):

    #names\0u 0 root\0u 33 www-data\0g 0 root\0#records\0
    f 644 0 0 1523 1795868875.7519674210 1795868875.7519674210 2244916\00\00\0/etc/passwd\0\0
    l 777 0 0 19 1795868875.75 1795868875.75 2245001\00\00\0/etc/mtab\0../proc/self/mounts\0
    #sha256\0
    2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881  /etc/passwd\0
    #end 0 0\0

The names section maps uids and gids to names once (`getent`), so that find need not look up the
owner of every file (it costs more than the rest of a repeat scan); without getent it is left out
and the records carry the names (`%u`, `%g`), as older recordings do. A metadata record is five
fields: `%y %m %U %G %s %T@ %C@ %i` (type letter, permission bits with the setuid/setgid/sticky
bits, uid, gid, size, mtime, ctime, inode: no spaces inside any of them), the owner, the group,
the path and the symlink target (empty for anything else). Then one `HASH  PATH` field per regular
file hashed (`sha256sum --zero`: no escaping), then the exit codes of the metadata `find` and of
the hashing `xargs`. Entries that vanish or cannot be read during the scan are reported on stderr
and make those codes 1 (find) and 123 (xargs): such files are kept, without a hash.

The same find pass writes each regular file's STAMP (inode, size, mtime, ctime) to a temporary
file; the files whose stamp the command reads on its stdin (see HashCache) are not hashed again
(`sort` both, `comm`: the new stamps). Without a temporary directory every file is hashed.

When the shell variable `phoenix_settled` holds a time T (the server's first start, as its host
saw it), a file whose ctime is not after T has a SETTLED stamp instead: inode, size, whole seconds
of mtime and the word `settled`. Nothing written on the server since it started can have one (any
write, chmod, chown, link or rename sets ctime to the present, and the server cannot set the host's
clock back), so such a file is exactly as the server's image had it: a new server's first scan
takes these hashes from its image's baseline (HashCache.seeded) instead of hashing every file.
Every entry (of any type) whose ctime is not after T also has `settled` for its ctime in its
record (FileFact.ctime is then SETTLED_CTIME; the witness holds the disk's ctime to not after T):
LXD sets the ctime of every file when it makes a container, so only thus does a root that holds
what the image made print the same records on every server of the image.

When the shell variable `phoenix_listed` is set (a cache's scan, with a temporary directory), the
records come root by root, each root's written to a file first and then either sent after
`#listing DIGEST` (its SHA-256) or, when that digest is one of the digests `phoenix_listed` holds
(the listings phoenix kept from the last scan, see Listing), replaced by `#listed DIGEST`:

    #records\0#listing 6f1e...64 hex...\0d 755 0 0 4096 ... 131073\00\00\0/etc\0\0...\0
    #listed 9c2a...64 hex...\0#sha256\0#end 0 0\0

Unchanged roots then cost the server its find (their files' stamps are phoenix's: none is
compared nor hashed, and the stamps on stdin are sorted only when some are compared), and phoenix
neither the transfer nor the parse of their records: most of a repeat scan. phoenix offers only
the listings whose regular files all have a hash; to a server never scanned, those of its image's
smoke scan (HashCache.seeded): from its first scan on, the roots it holds as the image made them
(/usr, /opt, ...) are not sent.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from phoenix.facts import fields
from phoenix.facts.runner import Runner, checked, command_error
from phoenix.host.process import CommandResult

HASH_MARK = "#sha256"
NAMES_MARK = "#names"  # then `u UID NAME` and `g GID NAME` fields, then RECORDS_MARK
RECORDS_MARK = "#records"
LISTING_MARK = "#listing"  # then the digest of the root's records that follow (see Listing)
LISTED_MARK = "#listed"  # then the digest of a root's records the command was told phoenix has
END_MARK = "#end"
FIND_OK = frozenset({0, 1})  # 1: an entry vanished or could not be read during the scan
XARGS_OK = frozenset({0, 123})  # 123: sha256sum could not read some file (it hashed the rest)
FIELDS = 5
STAMP = "%i %s %T@ %C@"  # inode, size, mtime, ctime: a file with the same stamp was not written
SETTLED = "settled"
Stamped = tuple[str, int, int, float, str | None]  # path, inode, size, mtime, sha256
# a FileFact's fields but the last (sha256): type, mode, uid, gid, owner, group, size, mtime,
# ctime, inode, target
Record = tuple[str, str, int, int, str, str, int, float, float, int, str | None]
SETTLED_TIME = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")
SETTLED_STAMP = f"%i %s %Ts {SETTLED}"  # ctime not after the server's first start (see above)
# A FileFact's ctime where the command printed SETTLED for it: not after the server's first
# start (no time find prints is negative). The witness holds the disk to that.
SETTLED_CTIME = -1.0

SCRIPT = f"""\
export LC_ALL=C
cd / || exit 3
# the tools are checked once (5 processes, ~6 ms of a container's CPU): phoenix offers listings
# (phoenix_listed) only from a scan that passed it, of the server or of its image's smoke server
if [ -z "${{phoenix_listed-}}" ]; then
  find / -maxdepth 0 -printf "" && sha256sum --zero /dev/null >/dev/null &&
    printf "x\\0" | sort -z | comm -z -23 - /dev/null | sed -z p >/dev/null || {{
    echo "phoenix needs GNU find, sed and coreutils (sort, comm, sha256sum) on the server" >&2
    exit 3; }}
fi
n=$#
for r; do if [ -e "$r" ] || [ -L "$r" ]; then set -- "$@" "$r"; fi; done
shift "$n"
frc=0 hrc=0
owner=%u group=%g
if users=$(getent passwd) && groups=$(getent group); then  # names once, not once per file
  owner=%U group=%G
  printf "{NAMES_MARK}\\0"
  ids() {{ while IFS=: read -r name _ id _; do printf "$1 %s %s\\0" "$id" "$name"; done; }}
  printf "%s\\n" "$users" | ids u
  printf "%s\\n" "$groups" | ids g
  printf "{RECORDS_MARK}\\0"
fi
work=$(mktemp -d 2>/dev/null) || work=
if [ -n "$work" ]; then cat >"$work/known"; else cat >/dev/null; fi  # stdin first, whole
meta="%y %m %U %G %s %T@ %C@ %i\\0$owner\\0$group\\0%p\\0%l\\0"
# an entry whose ctime is not after the first start: `settled` for its ctime, so that a root the
# server holds as its image made it lists the same as on every server of the image
meta_settled="%y %m %U %G %s %T@ {SETTLED} %i\\0$owner\\0$group\\0%p\\0%l\\0"
phoenix_apart() {{  # no root under another nor twice, none with find's glob characters
  for a; do
    case $a in *[][*?\\\\]*) return 1 ;; esac
    seen=0
    for b; do
      [ "$a" != "$b" ] || {{ seen=$((seen + 1)); continue; }}
      case $b in "${{a%/}}"/*) return 1 ;; esac
    done
    [ "$seen" -eq 1 ] || return 1
  done
}}
# One find for roots $3...: the records of all of them to $1 and the stamps of their regular files
# to $work/now$2 and $work/old$2; or, $1 empty, root N's to $work/listing.N, $work/now.N and
# $work/old.N (roots apart: see phoenix_apart)
phoenix_find() {{
  out=$1 sfx=$2; shift 2
  m=$# k=0  # not i: the caller counts its roots with it
  for r; do set -- "$@" "$r"; done
  set -- "$@" -xdev
  for r; do
    k=$((k + 1)); [ "$k" -le "$m" ] || break
    if [ -z "$out" ]; then
      to=$work/listing.$k at=.$k
      set -- "$@" \\( -path "$r" -o -path "${{r%/}}/*" \\)
    else
      [ "$k" -eq 1 ] || break  # one group of actions for every root
      to=$out at=$sfx
    fi
    if [ -n "${{phoenix_settled-}}" ]; then
      set -- "$@" \\( -newerct "@$phoenix_settled" -fprintf "$to" "$meta" \\
        \\( -type f -fprintf "$work/now$at" "{STAMP} %p\\0" -o -true \\) \\
        -o -fprintf "$to" "$meta_settled" \\
        \\( -type f -fprintf "$work/old$at" "{SETTLED_STAMP} %p\\0" -o -true \\) \\) -o
    else
      set -- "$@" -fprintf "$to" "$meta" \\
        \\( -type f -fprintf "$work/now$at" "{STAMP} %p\\0" -o -true \\) -o
    fi
  done
  shift "$m"
  find "$@" -false
}}
if [ "$#" -gt 0 ] && [ -n "$work" ] && [ -n "${{phoenix_listed+set}}" ]; then  # by root
  i=0 names=
  for r; do i=$((i + 1)); names="$names listing.$i"; done
  if phoenix_apart "$@"; then  # one find (a process costs 1-2 ms in a container)
    phoenix_find "" "" "$@"; frc=$?
  else
    i=0
    for r; do
      i=$((i + 1))
      phoenix_find "$work/listing.$i" ".$i" "$r"; c=$?; [ "$c" -le "$frc" ] || frc=$c
    done
  fi
  # one sha256sum for every listing (a process costs 1-2 ms in a container): a line each, in
  # order; a line missing or naming another listing leaves its root without a digest
  (cd "$work" && exec sha256sum $names) >"$work/sums" 2>/dev/null
  exec 3<"$work/sums"
  i=0
  for r; do
    i=$((i + 1)); d=; f=
    read -r d f <&3 || :
    [ "$f" = "listing.$i" ] || d=
    case " $phoenix_listed " in
      *" ${{d:-none}} "*)  # its files' stamps are the ones phoenix has: none is hashed
        printf "{LISTED_MARK} %s\\0" "$d"; : >"$work/now.$i"; : >"$work/old.$i" ;;
      *) printf "{LISTING_MARK} %s\\0" "$d"; cat "$work/listing.$i" ;;
    esac
  done
  exec 3<&-
elif [ "$#" -gt 0 ] && [ -n "$work" ]; then
  phoenix_find /dev/stdout "" "$@"; frc=$?
elif [ "$#" -gt 0 ]; then
  find "$@" -xdev -printf "$meta"; frc=$?
fi
printf "%s\\0" "{HASH_MARK}"
if [ "$#" -gt 0 ] && [ -n "$work" ]; then  # hash the files whose stamp is not on stdin
  : >>"$work/now"; : >>"$work/old"; sort -z -o "$work/stamps" "$work"/now* "$work"/old* &&
    if [ -s "$work/stamps" ]; then
      sort -z -o "$work/known" "$work/known" &&
        comm -z -23 "$work/stamps" "$work/known" | sed -z 's/^[^ ]* [^ ]* [^ ]* [^ ]* //' |
        xargs -0 -r sha256sum --zero
    fi
  hrc=$?
elif [ "$#" -gt 0 ]; then  # no temporary directory: hash them all
  find "$@" -xdev -type f -print0 | xargs -0 -r sha256sum --zero; hrc=$?
fi
[ -z "$work" ] || rm -rf -- "$work"
printf "{END_MARK} %s %s\\0" "$frc" "$hrc"
"""
COMMAND = f"sh -c {shlex.quote(SCRIPT)} phoenix-files"
# the same with a cache: its first arguments the server's first start (phoenix_settled, or empty)
# and the digests of the listings phoenix keeps (phoenix_listed, see Listing), then the roots
CACHED_SCRIPT = "phoenix_settled=$1 phoenix_listed=$2; shift 2\n" + SCRIPT
CACHED_COMMAND = f"sh -c {shlex.quote(CACHED_SCRIPT)} phoenix-files"
LABEL = "find ROOTS -xdev -printf ... ; find ROOTS -xdev -type f ... | xargs -0 sha256sum"


@dataclass(frozen=True)
class FileFact:
    type: str  # find's %y letter: f, d, l, p (fifo), s (socket), c, b
    mode: str  # octal with 4 digits, setuid/setgid/sticky included: "0644", "4755"
    uid: int
    gid: int
    owner: str  # the user's name, or the uid when it has none
    group: str
    size: int
    mtime: float
    ctime: float
    inode: int
    target: str | None = None  # symlinks only
    sha256: str | None = None  # regular files that could be read


@dataclass(frozen=True)
class Scan:
    """What the command printed, parsed: the files and the exit codes of its two passes."""

    files: dict[str, FileFact]
    find_rc: int
    hash_rc: int
    stamps: dict[str, str] = field(default_factory=dict)  # regular file -> its STAMP, as printed
    hashed: int = 0  # files hashed by this run (the others were skipped: their stamp was known)
    # regular files whose hash is their image's: a SETTLED stamp, known from the image's
    # baseline (HashCache.seeded), not from anything the server said
    from_image: frozenset[str] = frozenset()
    listings: dict[str, Listing] = field(default_factory=dict)  # by digest: the roots read


@dataclass(frozen=True, eq=False)
class Listing:
    """The files of one root as a scan read them, kept by the digest of the root's records as
    the server printed them. A repeat scan tells the command the digests it keeps; the command
    answers `#listed DIGEST` for a root whose records are the same, byte for byte, and phoenix
    neither receives nor parses them again. (The server could lie there as well as in any
    record: the witness, which reads the disk from the host, is what catches a lying server.)"""

    root: str  # the root's own path, the listing's first record ("" if it has none)
    facts: dict[str, FileFact]  # with their hashes as that scan had them
    stamps: dict[str, str]  # regular file -> its STAMP, as the cache keeps it
    from_image: frozenset[str]  # those of its files whose hash was their image's (see Scan)

    @functools.cached_property
    def hashed(self) -> bool:
        """Whether every regular file of it has a hash."""
        return all(f.sha256 is not None for f in self.facts.values() if f.type == "f")


def offered(smoke: Mapping[str, Listing]) -> dict[str, Listing]:
    """The listings of an image's smoke scan that a server of the image may be answered with:
    those whose regular files all have a hash and a SETTLED stamp (see HashCache.seeded)."""
    return {
        digest: listing
        for digest, listing in smoke.items()
        if listing.hashed and all(s.endswith(" " + SETTLED) for s in listing.stamps.values())
    }


@dataclass
class HashCache:
    """The SHA-256 of regular files as last hashed, each valid while the file keeps its stamp.

    A file whose inode, size, mtime and ctime are all what they were when it was hashed has not
    been written since: a user can set mtime back, not ctime (short of setting the clock back,
    which is what a deep scan, with an empty cache, is for). The files command reads the known
    stamps on its stdin and hashes only the other files.
    """

    entries: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (stamp, sha256)
    hashed: int = 0  # how many files the last scan completed by it had to hash
    # the server's first start (seconds since the epoch, as text); None: no SETTLED stamps
    settled: str | None = None
    from_image: frozenset[str] = frozenset()  # the last scan's (see Scan), not stored
    listings: dict[str, Listing] = field(default_factory=dict)  # the last scan's, by digest
    listed_under: str | None = None  # `settled` as it was when they were read
    # payload() of `entries`, while they are the same object: ~2 ms per scan, not stored
    _sent: tuple[dict[str, tuple[str, str]], bytes] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.settled is not None and not SETTLED_TIME.fullmatch(self.settled):
            raise ValueError(f"not a time in seconds: {self.settled!r}")

    @classmethod
    def seeded(
        cls,
        baseline: Mapping[str, FileFact],
        settled: str,
        listings: Mapping[str, Listing] | None = None,
    ) -> HashCache:
        """The cache of a server never scanned, first started at `settled`, built from its
        image's `baseline`: every regular file of it under its SETTLED stamp. A file of the
        server with that stamp was not written since the server started, and its inode, size
        and mtime are the image's: its hash is the baseline's.

        `listings`: those of the image's smoke scan. Each one whose regular files all have a
        hash and a SETTLED stamp is offered (see `offered`): a root whose records the server
        prints the same, byte for byte, holds the same files with the same inodes, sizes and
        mtimes as the smoke server's, none of them changed since this server started (their
        ctimes print as SETTLED), so their stamps and hashes here are the smoke server's."""
        regular = (
            (p, f.inode, f.size, f.mtime, f.sha256) for p, f in baseline.items() if f.type == "f"
        )
        cache = cls.settled_on(regular, settled)
        cache.listings = dict(offered(listings or {}))
        cache.listed_under = settled
        return cache

    @classmethod
    def settled_on(cls, files: Iterable[Stamped], settled: str) -> HashCache:
        """The cache of a server first started at `settled` whose regular `files` (path, inode,
        size, mtime, sha256) were read as they were before it started: each under its SETTLED
        stamp, which the server's file has only if it was not written since."""
        entries = {
            path: (f"{inode} {size} {math.floor(mtime)} {SETTLED}", sha256)
            for path, inode, size, mtime, sha256 in files
            if sha256 is not None and mtime >= 0
        }
        return cls(entries, settled=settled)

    def payload(self) -> bytes:
        """What the files command reads on stdin: `STAMP PATH` of every known file, NUL-ended."""
        if self._sent is None or self._sent[0] is not self.entries:
            text = "".join(f"{stamp} {path}\0" for path, (stamp, _) in self.entries.items())
            self._sent = (self.entries, text.encode())
        return self._sent[1]

    def listed(self) -> dict[str, Listing]:
        """The listings a scan may be answered with (see Listing): those whose regular files all
        have a hash (the command hashes nothing of a root it answers `#listed` for), and none
        once `settled` is not what it was when they were read (their stamps would not be this
        scan's)."""
        if self.listed_under != self.settled:
            return {}
        return {d: listing for d, listing in self.listings.items() if listing.hashed}

    def remember(self, scan: Scan) -> None:
        """Keep every hash the scan stands on (parsed with these entries as `known`), forget
        the files that are gone; keep its listings."""
        # the very listings of the last scan (every root listed, none rehashed): the files and
        # their stamps are theirs, so the entries are what they were (~5 ms per scan to remake)
        same = bool(scan.listings) and scan.listings.keys() == self.listings.keys()
        same = same and all(scan.listings[d] is kept for d, kept in self.listings.items())
        self.hashed = scan.hashed
        self.from_image = scan.from_image
        self.listings = scan.listings
        self.listed_under = self.settled
        if same:
            return
        self.entries = {
            path: (scan.stamps[path], fact.sha256)
            for path, fact in scan.files.items()
            if fact.sha256 is not None and path in scan.stamps
        }

    @classmethod
    def from_entries(cls, entries: Any) -> HashCache:
        """The cache of `entries` as ScanCache.to_json writes them (parsed); empty if not that."""
        try:
            items = entries.items()
            return cls({str(p): (str(v[0]), str(v[1])) for p, v in items})
        except (TypeError, AttributeError, IndexError, KeyError):
            return cls()


def parse(
    text: str,
    known: Mapping[str, tuple[str, str]] | None = None,
    roots: Sequence[str] = ("/",),
    settled: str | None = None,
    listings: Mapping[str, Listing] | None = None,
) -> Scan:
    """Parse the command's output; raise ValueError (and nothing else) on anything that is not
    what the command writes: every field is checked (see `fields`), and every path must lie
    under one of `roots` (the roots the command was given).

    A regular file the command did not hash takes its hash from `known` (path -> stamp, hash)
    when its stamp there is the one it has now (see HashCache); otherwise it has none. With
    `settled` (the time the command was given), a file whose ctime is not after it has its
    SETTLED stamp, as the command decided. A root the command answered `#listed DIGEST` for is
    the one of `listings` (the listings whose digests it was given; see Listing).
    """
    cutoff = Decimal(settled) if settled is not None else None
    under = tuple(roots)
    items = iter(text.split("\0"))
    names = _names(items)
    parts = _records(items, names, under, listings or {}, cutoff is not None)
    hashes, end = _hashes(items, under)
    find_rc, hash_rc = _end(end, items)
    found: dict[str, FileFact] = {}
    stamps: dict[str, str] = {}
    from_image: set[str] = set()
    kept: dict[str, Listing] = {}
    made: list[Listing] = []
    for digest, part in parts:
        if isinstance(part, Listing):
            listing = _rehashed(part, hashes)
        else:
            listing = _listing(part, hashes, known, cutoff)
        made.append(listing)
        if digest is not None:
            kept[digest] = listing
    for listing in sorted(made, key=lambda listing: listing.root):  # each in order
        found.update(listing.facts)
        from_image.update(listing.from_image)
        stamps.update(listing.stamps)
    found = dict(sorted(found.items()))  # one run of sorted listings: no work, but to check it
    return Scan(found, find_rc, hash_rc, stamps, len(hashes), frozenset(from_image), kept)


def _listing(
    records: Mapping[str, tuple[Record, str]],
    hashes: Mapping[str, str],
    known: Mapping[str, tuple[str, str]] | None,
    cutoff: Decimal | None,
) -> Listing:
    """The Listing of the records of one root as the command printed them (or of all roots, when
    it did not list them by root): each regular file hashed now, or known unchanged."""
    facts: dict[str, FileFact] = {}
    stamps: dict[str, str] = {}
    from_image: set[str] = set()
    for path, (record, stamp) in records.items():
        digest = None
        if record[0] == "f":
            if cutoff is not None:
                stamp = _settled(stamp, cutoff)
            stamps[path] = stamp
            digest = hashes.get(path)
            if digest is None and known and (was := known.get(path)) and was[0] == stamp:
                digest = was[1]
                if stamp.endswith(" " + SETTLED):
                    from_image.add(path)
        facts[path] = FileFact(*record, digest)  # made once: a frozen dataclass costs to make
    root = next(iter(records), "")  # none: the root vanished before find could read it
    # by path: the scan's files are in order, and sorting a listing kept between scans (the
    # same object) once saves sorting all files again in every scan (~4 ms per server)
    return Listing(root, dict(sorted(facts.items())), stamps, frozenset(from_image))


def _rehashed(listing: Listing, hashes: Mapping[str, str]) -> Listing:
    """A kept listing with the hashes the command made now of its files (those it had none
    for: their stamps were not known)."""
    new = {p: d for p, d in hashes.items() if (f := listing.facts.get(p)) and f.sha256 != d}
    if not new:
        return listing
    facts = dict(listing.facts)
    for path, digest in new.items():
        facts[path] = dataclasses.replace(facts[path], sha256=digest)
    return Listing(listing.root, facts, listing.stamps, listing.from_image - new.keys())


def gather(
    session: Runner, roots: Sequence[str], timeout: float = 120, cache: HashCache | None = None
) -> dict[str, FileFact]:
    """Every entry under `roots` (the ones that exist) on the server, in one run.

    With a `cache`, files it knows unchanged are not hashed again, and it is brought up to date.
    """
    under = normalize(roots)
    if cache is None:
        return read(session, session.run(COMMAND, *under, timeout=timeout), None, under).files
    known = (cache.settled or "", " ".join(cache.listed()))
    result = session.run(CACHED_COMMAND, *known, *under, timeout=timeout, stdin=cache.payload())
    return read(session, result, cache, under).files


def read(
    session: Runner,
    result: CommandResult,
    cache: HashCache | None = None,
    roots: Sequence[str] = ("/",),
) -> Scan:
    """The files in what the command printed for `roots`, completed from `cache` (which is then
    updated); raise CommandError if the command failed or its output is unreadable."""
    known = cache.entries if cache is not None else None
    settled = cache.settled if cache is not None else None
    listings = cache.listed() if cache is not None else None
    scan = checked(
        session, LABEL, result, lambda text: parse(text, known, roots, settled, listings)
    )
    failure = failed_pass(scan)
    if failure is not None:
        raise command_error(session, *failure, result.stderr)
    if cache is not None:
        cache.remember(scan)
    return scan


def failed_pass(scan: Scan) -> tuple[str, int] | None:
    """The command and exit code of the pass (find, or the hashing) that failed, if one did."""
    if scan.find_rc not in FIND_OK:
        return "find ROOTS -xdev -printf ...", scan.find_rc
    if scan.hash_rc not in XARGS_OK:
        return "xargs -0 sha256sum --zero", scan.hash_rc
    return None


def normalize(roots: Sequence[str]) -> list[str]:
    """Absolute roots without trailing slashes; anything else could be taken for a find option."""
    bad = [r for r in roots if not r.startswith("/")]
    if bad:
        raise ValueError(f"fact roots must be absolute paths, not {', '.join(map(repr, bad))}")
    return [r.rstrip("/") or "/" for r in roots]


MAX_TARGET = 4096  # PATH_MAX: the longest link target
TYPES = frozenset("fdlpscbD")  # find's %y: file, dir, link, fifo, socket, char, block, door


class _Names:
    """uid and gid -> name, from the names section; None when there was none (names inline)."""

    def __init__(self) -> None:
        self.users: dict[int, str] = {}
        self.groups: dict[int, str] = {}


def _names(items: Iterator[str]) -> tuple[_Names | None, str | None]:
    """The names section, if the output starts with one, and the first field after what was
    read (None when the names section took it)."""
    first = next(items, None)
    if first != NAMES_MARK:
        return None, first
    names = _Names()
    for item in items:
        if item == RECORDS_MARK:
            return names, None
        if not item:
            break
        kind, _, rest = item.partition(" ")
        number, _, name = rest.partition(" ")
        table = {"u": names.users, "g": names.groups}.get(kind)
        if table is None:
            raise ValueError(f"not a name entry: {fields.shown(item)}")
        what = "user" if kind == "u" else "group"
        key = fields.count(number, f"{what} id")
        table.setdefault(key, fields.name(name, f"{what} name"))  # the first is getpwuid's
    raise ValueError(f"no {RECORDS_MARK} field: the output ended early")


Records = dict[str, tuple[Record, str]]  # path -> (a FileFact's fields but the hash, STAMP)


def _records(
    items: Iterator[str],
    names: tuple[_Names | None, str | None],
    roots: tuple[str, ...],
    listings: Mapping[str, Listing],
    settled: bool = False,
) -> list[tuple[str | None, Records | Listing]]:
    """The metadata records, in parts: (None, the records before any `#listing`), then for each
    root listed, (its digest, its records) after `#listing DIGEST`, or (the digest, the kept
    Listing) for `#listed DIGEST`. Path -> (its record: a FileFact's fields but the hash; its
    STAMP as printed)."""
    table, first = names
    heads = items if first is None else itertools.chain([first], items)
    current: Records = {}
    parts: list[tuple[str | None, Records | Listing]] = [(None, current)]
    for head in heads:
        if head == HASH_MARK:
            return parts
        if not head:
            break
        if head.startswith("#"):  # a record starts with a type letter
            mark, _, digest = head.partition(" ")
            if mark == LISTING_MARK:
                current = {}
                parts.append((fields.sha256(digest), current))
            elif mark == LISTED_MARK:
                parts.append((digest, _kept(listings, digest, roots)))
            else:
                raise ValueError(f"not a file record: {fields.shown(head)}")
            continue
        rest = list(itertools.islice(items, FIELDS - 1))
        if len(rest) != FIELDS - 1:
            raise ValueError("the output ended in the middle of a record")
        owner, group, path, target = rest
        record, stamp = _fact(head, owner, group, target, table, settled)
        current[fields.path(path, roots, "file path")] = (record, stamp)
    raise ValueError(f"no {HASH_MARK} line: the output ended early")


def _kept(listings: Mapping[str, Listing], digest: str, roots: tuple[str, ...]) -> Listing:
    """The listing the command named as unchanged; it must be one phoenix told it of, of a root
    it was asked for."""
    listing = listings.get(digest)
    if listing is None:
        raise ValueError(f"{LISTED_MARK} names a listing phoenix has not: {fields.shown(digest)}")
    if listing.root:
        fields.path(listing.root, roots, "listed root")
    return listing


def _fact(
    head: str, owner: str, group: str, target: str, table: _Names | None, settled: bool = False
) -> tuple[Record, str]:
    """The fields of one record's fact (all but the hash), and its STAMP as printed. Its ctime
    may be SETTLED only if the command was given the first start (`settled`)."""
    parts = head.split(" ")
    if len(parts) != 8 or parts[0] not in TYPES:
        raise ValueError(f"not a file record: {fields.shown(head)}")
    kind, mode, uid, gid, size, mtime, ctime, inode = parts
    if table is not None:  # the record holds the ids: name them, or keep the number
        owner = table.users.get(fields.count(owner, "owner id"), owner)
        group = table.groups.get(fields.count(group, "group id"), group)
    if kind == "l":
        if not target or len(target) > MAX_TARGET:
            raise ValueError(f"link target {fields.shown(target)} is empty or too long")
    elif target:
        raise ValueError(f"a link target {fields.shown(target)} on a file of type {kind!r}")
    record: Record = (
        kind, fields.mode(mode.zfill(3) if mode else mode), fields.count(uid, "uid"),
        fields.count(gid, "gid"), fields.name(owner, "owner"), fields.name(group, "group"),
        fields.count(size, "size"), fields.seconds(mtime, "mtime"),
        SETTLED_CTIME if settled and ctime == SETTLED else fields.seconds(ctime, "ctime"),
        fields.count(inode, "inode"),
        target if kind == "l" else None,
    )  # fmt: skip
    return record, f"{inode} {size} {mtime} {ctime}"


def _settled(stamp: str, cutoff: Decimal) -> str:
    """`stamp` (inode size mtime ctime) as SETTLED when its ctime is not after `cutoff`."""
    inode, size, mtime, ctime = stamp.split(" ")
    if ctime == SETTLED:  # the command found it not after the cutoff
        return f"{inode} {size} {mtime.partition('.')[0]} {SETTLED}"
    if mtime.startswith("-") or Decimal(ctime) > cutoff:
        return stamp
    return f"{inode} {size} {mtime.partition('.')[0]} {SETTLED}"


def _hashes(items: Iterator[str], roots: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """The `HASH  PATH` fields up to the end line, which is returned with them."""
    hashes: dict[str, str] = {}
    for item in items:
        if item.startswith(END_MARK + " "):
            return hashes, item
        if not item:
            break
        digest, sep, path = item[:64], item[64:66], item[66:]
        if sep not in ("  ", " *"):
            raise ValueError(f"not a sha256sum line: {fields.shown(item)}")
        hashes[fields.path(path, roots, "hashed path")] = fields.sha256(digest)
    raise ValueError(f"no {END_MARK} line: the output ended early")


def _end(end: str, rest: Iterator[str]) -> tuple[int, int]:
    """The exit codes on the end line; nothing but the final NUL may follow it."""
    codes = end.split(" ")[1:]
    if len(codes) != 2:
        raise ValueError(f"not an end line: {fields.shown(end)}")
    find_rc, hash_rc = (fields.count(code, "exit code") for code in codes)
    after = list(itertools.islice(rest, 3))
    if after != [""]:
        raise ValueError(f"unexpected output after the end line: {fields.shown(repr(after))}")
    return find_rc, hash_rc
