r"""Installed Debian packages, from dpkg's database.

Sample output of the command (name, version, architecture, status; the status's third letter is a
space when dpkg has no error to report):

    adduser\t3.134\tall\tii \n
    bash\t5.2.15-2+b13\tamd64\tii \n
    libc6\t2.36-9+deb12u10\tamd64\tii \n
    libc6\t2.36-9+deb12u10\ti386\tii \n
    nano\t7.2-1+deb12u1\tamd64\trc \n

A package counts when its files are installed ("ii", or "hi" when it is held). Its key is its name,
or "name:arch" when the same name is installed for several architectures.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from phoenix.facts import fields
from phoenix.facts.runner import Runner, checked
from phoenix.host.process import CommandResult

FORMAT = r"${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n"
COMMAND = f"LC_ALL=C dpkg-query -W -f='{FORMAT}'"
LABEL = "dpkg-query -W"
VERSION = re.compile(r"[A-Za-z0-9.+~:-]{1,256}")  # Debian policy: [epoch:]upstream[-revision]
STATUS = re.compile(r"[uihrp][ncHUFWti][ R]")  # db:Status-Abbrev: wanted, current, error


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str


def parse(text: str) -> dict[str, Package]:
    """Parse the command's output; raise ValueError on a line that is not 4 tab-separated fields,
    each valid (see `fields`)."""
    lines = map(_line, fields.records(text, "\n"))
    installed = [pkg for pkg, status in lines if _installed(status)]
    arches = Counter(pkg.name for pkg in installed)
    return {
        (f"{pkg.name}:{pkg.arch}" if arches[pkg.name] > 1 else pkg.name): pkg
        for pkg in sorted(installed, key=lambda p: (p.name, p.arch))
    }


def gather(session: Runner, timeout: float = 60) -> dict[str, Package]:
    return read(session, session.run(COMMAND, timeout=timeout))


def read(session: Runner, result: CommandResult) -> dict[str, Package]:
    """Parse what the command printed; raise CommandError if it failed or is not readable."""
    return checked(session, LABEL, result, parse)


def _line(line: str) -> tuple[Package, str]:
    """A package and its status; a package not installed may have no version nor arch."""
    parts = line.split("\t")
    if len(parts) != 4 or not parts[0]:
        raise ValueError(f"not a package line: {fields.shown(line)}")
    name, version, arch, status = parts
    if not STATUS.fullmatch(status):
        raise ValueError(f"package status {fields.shown(status)} is not dpkg's")
    if (version or _installed(status)) and not VERSION.fullmatch(version):
        raise ValueError(f"package version {fields.shown(version)} is not a Debian version")
    if arch or _installed(status):
        fields.name(arch, "package architecture")
    return Package(fields.name(name, "package name"), version, arch), status


def _installed(status: str) -> bool:
    """Desired state install or hold, current state installed (dpkg -l's "ii" and "hi")."""
    return len(status) >= 2 and status[0] in "ih" and status[1] == "i"
