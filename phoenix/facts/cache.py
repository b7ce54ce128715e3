"""What a repeat scan of a server need not do again, kept between scans (per server).

- files: the SHA-256 of every regular file with the stamp it had when hashed (files.HashCache);
- units: `systemctl list-unit-files` (~0.25 s of systemd's CPU on a small server) with a
  fingerprint of the unit directories it reads (every entry's path, inode, size, mtime, ctime and
  link target): while the fingerprint is the same, the unit file states are too, and the script
  reuses the text sent.

An empty cache (a deep scan) makes the script do everything.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phoenix.facts.files import FileFact, HashCache, Listing

# Where systemd reads unit files and their enablement (merged /usr: /lib is /usr/lib).
UNIT_DIRS = (
    "/etc/systemd",
    "/run/systemd/system",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator",
    "/run/systemd/generator.early",
    "/run/systemd/generator.late",
    "/run/systemd/system.attached",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/usr/lib/systemd/system-preset",
    "/lib/systemd/system",
)
# The unit files' fingerprint: what systemd says of them is asked again only when it changes. With
# the server's first start ($phoenix_settled, see facts.files), an entry whose ctime is not later
# is as the image made it (setting the ctime back needs the host's clock): its path, size, mtime and
# link target, the same on every server of the image; a later one (all of /run, made at boot) by
# its path, type, size and link target, a regular file by its content. Sorted: a tmpfs lists in
# the order the boot's generators ran. So a server never scanned can be offered the record of its
# image's smoke server (drift.scan.first_cache). Without its first start, every entry's inode and
# times.
_DIRS = " ".join(UNIT_DIRS)
FINGERPRINT = (
    f'if [ -n "$phoenix_settled" ]; then find {_DIRS} -newerct "@$phoenix_settled"'
    " \\( -type f -exec md5sum {} + -o -printf '%p %y %s %l\\n' \\)"
    " -o -printf '%p %s %T@ %l\\n' 2>/dev/null | sort;"
    f" else find {_DIRS} -printf '%p %i %s %T@ %C@ %l\\n' 2>/dev/null; fi | md5sum"
)


@dataclass
class ScanCache:
    files: HashCache = field(default_factory=HashCache)
    units: tuple[str, str] | None = None  # (fingerprint, list-unit-files output)
    # the listings of the server's image's smoke scan (files.offered): a listing the server
    # holds as the image made it is stored by its digest only, and found among these on load
    image: Mapping[str, Listing] = field(default_factory=dict, compare=False, repr=False)
    # the paths the server's image has capabilities or attributes for (its baseline's): with its
    # first start (files.settled), only what changed since is read (see facts.capabilities);
    # None (a deep scan, or an image without them on record): every file. Not stored.
    image_capabilities: Mapping[str, str] | None = field(default=None, compare=False, repr=False)
    # what it was loaded from, and as what (see dump): not a part of the cache
    _read: _Read | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def hashed(self) -> int:
        return self.files.hashed

    @classmethod
    def load(cls, stored: bytes, image: Mapping[str, Listing] | None = None) -> ScanCache:
        """The cache as `dump` stored it, its image's listings found in `image`; an empty one
        if it is unreadable, or names an image listing `image` does not hold."""
        try:
            text = zlib.decompress(stored).decode()
        except (zlib.error, UnicodeDecodeError):
            return cls(image=image or {})
        cache = cls.from_json(text, image)
        files = cache.files
        cache._read = _Read(stored, cache.units, files.listed_under, dict(files.listings),
                            dict(files.entries))  # fmt: skip
        return cache

    def dump(self) -> bytes:
        """The cache to store: compressed JSON. While it holds what it was loaded with (a repeat
        scan that changed nothing), the bytes it was loaded from: ~30 ms less per server."""
        read = self._read
        if read is not None and read.holds(self):
            return read.stored
        return zlib.compress(self.to_json().encode(), 1)

    def to_json(self) -> str:
        """The cache as stored; the hashes its listings hold are stored with them only, and a
        listing that is its image's by its digest only."""
        cached = self.files
        shared = sorted(d for d, listing in cached.listings.items() if self._imaged(d, listing))
        listings = {
            digest: _listing_row(listing)
            for digest, listing in cached.listings.items()
            if digest not in shared
        }
        listed = _entries(cached.listings)
        return json.dumps(
            {
                "files": {p: e for p, e in cached.entries.items() if listed.get(p) != e},
                "units": self.units,
                "listings": listings,
                "image_listings": shared,
                "listed_under": cached.listed_under,
            },
            separators=(",", ":"),
        )

    def _imaged(self, digest: str, listing: Listing) -> bool:
        """Whether `listing` is its image's: the one offered, or the same records (the same
        digest) with the same hashes. A deep scan that found a file of the same records with
        another hash (its clock set back) keeps its own listing, and that hash with it."""
        image = self.image.get(digest)
        return image is not None and (
            image is listing or (image.facts == listing.facts and image.stamps == listing.stamps)
        )

    @classmethod
    def from_json(cls, text: str, image: Mapping[str, Listing] | None = None) -> ScanCache:
        """The cache in `text`; an empty one if it is unreadable, or names a listing of its
        image that `image` does not hold (the next scan does all), and one without listings if
        they are unreadable (the next scan receives every root's records)."""
        image = image or {}
        try:
            data = json.loads(text)
            units = data.get("units")
            kept = (str(units[0]), str(units[1])) if units else None
            cache = cls(HashCache.from_entries(data["files"]), kept, image)
            shared = [str(d) for d in data.get("image_listings") or []]
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            return cls(image=image)
        if any(d not in image for d in shared):  # its hashes went with it: start afresh
            return cls(image=image)
        try:
            rows = data.get("listings") or {}
            listings = {str(d): _listing(row) for d, row in rows.items()}
            listings |= {d: image[d] for d in shared}
            under = data.get("listed_under")
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            return cache
        cache.files.listings = listings
        cache.files.listed_under = None if under is None else str(under)
        cache.files.entries = _entries(listings) | cache.files.entries
        return cache


@dataclass(frozen=True)
class _Read:
    """A loaded cache's bytes, and what they held."""

    stored: bytes
    units: tuple[str, str] | None
    listed_under: str | None
    listings: dict[str, Listing]
    entries: dict[str, tuple[str, str]]

    def holds(self, cache: ScanCache) -> bool:
        """Whether `cache` holds what was loaded: the same listings (the very objects: a kept
        listing is replaced when a hash of it changes), entries and unit file states."""
        files = cache.files
        return (
            cache.units == self.units
            and files.listed_under == self.listed_under
            and files.listings.keys() == self.listings.keys()
            and all(files.listings[d] is listing for d, listing in self.listings.items())
            and files.entries == self.entries
        )


def _entries(listings: Mapping[str, Listing]) -> dict[str, tuple[str, str]]:
    """The hash cache's entries that `listings` hold: path -> (stamp, sha256)."""
    found: dict[str, tuple[str, str]] = {}
    for listing in listings.values():
        facts = listing.facts
        for path, stamp in listing.stamps.items():
            if (digest := facts[path].sha256) is not None:
                found[path] = (stamp, digest)
    return found


# A listing's file as stored: path, then FileFact's fields in order (sha256 last), then its stamp
# (regular files only, else null).
ROW = 14


def _listing_row(listing: Listing) -> dict[str, Any]:
    return {
        "root": listing.root,
        "files": [
            [path, *_values(fact), listing.stamps.get(path)] for path, fact in listing.facts.items()
        ],
        "from_image": sorted(listing.from_image),
    }


def _values(f: FileFact) -> tuple[object, ...]:
    return (f.type, f.mode, f.uid, f.gid, f.owner, f.group, f.size, f.mtime, f.ctime, f.inode,
            f.target, f.sha256)  # fmt: skip


def _listing(row: Mapping[str, Any]) -> Listing:
    facts: dict[str, FileFact] = {}
    stamps: dict[str, str] = {}
    for values in row["files"]:
        if len(values) != ROW:
            raise ValueError("not a stored file of a listing")
        path, stamp = values[0], values[-1]
        facts[path] = FileFact(*values[1:-1])
        if stamp is not None:
            stamps[path] = stamp
    return Listing(str(row["root"]), facts, stamps, frozenset(map(str, row["from_image"])))
