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
from dataclasses import dataclass, field

from phoenix.facts.files import HashCache

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
FINGERPRINT = f"find {' '.join(UNIT_DIRS)} -printf '%p %i %s %T@ %C@ %l\\n' 2>/dev/null | md5sum"


@dataclass
class ScanCache:
    files: HashCache = field(default_factory=HashCache)
    units: tuple[str, str] | None = None  # (fingerprint, list-unit-files output)

    @property
    def hashed(self) -> int:
        return self.files.hashed

    def to_json(self) -> str:
        return json.dumps({"files": self.files.entries, "units": self.units}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ScanCache:
        """The cache in `text`; an empty one if it is unreadable (the next scan does all)."""
        try:
            data = json.loads(text)
            units = data.get("units")
            kept = (str(units[0]), str(units[1])) if units else None
            return cls(HashCache.from_entries(data["files"]), kept)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError):
            return cls()
