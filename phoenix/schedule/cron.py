"""Where cron holds phoenix's entries, read and written through python-crontab.

Running as root, a workspace's entries live in a file of their own, /etc/cron.d/phoenix-ID (a
cron.d file: each line names the user, root); otherwise in the user's crontab (`crontab -l`,
`crontab -`). A `Target` with a path reads and writes that file instead: the tests use one.
Lines phoenix does not own (written by hand, or by another workspace) are kept as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.atomic import write_atomic
from phoenix.errors import CommandError, Refused
from phoenix.schedule.entry import Entry, workspace_id

CRON_D = Path("/etc/cron.d")
SYSTEM_USER = "root"
_CRON_D_NAME = re.compile(r"[A-Za-z0-9_-]+")  # what cron reads in /etc/cron.d (run-parts names)


@dataclass(frozen=True)
class Target:
    """A crontab: the file at `path` (None: the user's crontab, through the crontab command);
    `system`: a cron.d file, whose lines name the user they run as."""

    path: Path | None
    system: bool = False

    def __str__(self) -> str:
        return str(self.path) if self.path else "the user's crontab"


def default_target(home: Path) -> Target:
    """/etc/cron.d/phoenix-ID as root, else the user's crontab."""
    if os.geteuid() != 0:
        return Target(None)
    name = f"phoenix-{workspace_id(home)}"
    if not _CRON_D_NAME.fullmatch(name):  # cron skips any other name without a word
        raise Refused(f"{name} is not a name cron reads in {CRON_D}")
    return Target(CRON_D / name, system=True)


@dataclass(frozen=True)
class Held:
    """An entry as cron holds it: its time fields and its command."""

    cron: str
    command: str


def as_declared(held: list[Held], want: Entry) -> bool:
    """Whether `held` is `want` once, as python-crontab writes it."""
    from crontab import CronSlices  # here, as CronTab in _read: python-crontab is slow to import

    return held == [Held(str(CronSlices(want.cron).render()), want.command)]


class Table:
    """A crontab, read once; `save` writes it back whole."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._tab = _read(target)

    def held(self, prefix: str) -> dict[str, list[Held]]:
        """Tag -> the entries carrying it, for every tag that begins with `prefix`."""
        found: dict[str, list[Held]] = {}
        for job in self._jobs(prefix):
            found.setdefault(str(job.comment), []).append(
                Held(str(job.slices.render()), str(job.command))
            )
        return found

    def put(self, entry: Entry) -> None:
        """Hold `entry` once, in place of any entry with its tag."""
        self.drop(entry.tag)
        user = SYSTEM_USER if self.target.system else None
        job = self._tab.new(command=entry.command, comment=entry.tag, user=user)
        job.setall(entry.cron)

    def drop(self, tag: str) -> None:
        """Remove the entries carrying `tag` exactly."""
        for job in [j for j in self._jobs(tag) if j.comment == tag]:
            self._tab.remove(job)

    def save(self) -> None:
        text = str(self._tab.render())
        text = text if text.endswith("\n") else text + "\n"  # cron ignores an unended last line
        try:
            if self.target.path is None:
                self._tab.write_to_user(user=True)
            else:
                write_atomic(self.target.path, text, mode=0o644 if self.target.system else None)
        except OSError as exc:
            raise CommandError(
                f"cannot write {self.target}: {exc}",
                hint="run as the user whose crontab holds the schedules (root: /etc/cron.d)",
            ) from None

    def _jobs(self, prefix: str) -> Iterator[Any]:
        for job in self._tab:
            if str(job.comment or "").startswith(prefix):
                yield job


def _read(target: Target) -> Any:
    from crontab import CronTab

    try:
        if target.path is None:
            return CronTab(user=True)
        text = target.path.read_text() if target.path.exists() else ""
        return CronTab(tab=text, user=False if target.system else None)
    except OSError as exc:
        raise CommandError(f"cannot read {target}: {exc}") from None
