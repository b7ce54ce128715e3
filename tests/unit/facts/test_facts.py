"""Facts as a whole: gather() over a fake runner, and the round trip through plain data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from phoenix.errors import CommandError
from phoenix.facts import Facts, FileFact, Package, Service, files, gather, packages, services
from phoenix.process import CommandResult
from tests.unit.facts.fakes import FakeRunner, expected, output

ROOTS = ["/etc", "/usr/lib/openssh", "/usr/local", "/root", "/var/spool/cron", "/srv/missing"]


def recorded() -> dict[str, CommandResult]:
    """What the real container answered, keyed by command."""
    return {
        files.COMMAND: CommandResult(0, output("files/bookworm-etc.out"), ""),
        packages.COMMAND: CommandResult(0, output("packages/bookworm-minbase.out"), ""),
        services.COMMAND: CommandResult(0, output("services/bookworm-minbase.out"), ""),
    }


def test_gather_runs_three_commands_and_assembles_the_facts() -> None:
    fake = FakeRunner(recorded())
    facts = gather(fake, ROOTS, timeout=50)
    assert [c.command for c in fake.calls] == [files.COMMAND, packages.COMMAND, services.COMMAND]
    assert fake.calls[0].args == tuple(ROOTS)
    assert all(0 < c.timeout <= 50 for c in fake.calls)
    assert (
        facts.files["/etc/passwd"].sha256
        == expected("files/bookworm-etc.json")["files"]["/etc/passwd"]["sha256"]
    )
    assert facts.packages["openssh-server"].version == "1:9.2p1-2+deb12u10"
    assert facts.services["ssh.service"] == Service("ssh.service", "enabled", "active", "running")


def test_summary_counts_files_hashes_packages_services() -> None:
    facts = gather(FakeRunner(recorded()), ROOTS)
    want = expected("files/bookworm-etc.json")
    assert facts.summary() == {
        "files": want["count"],
        "hashed": want["hashed"],
        "packages": expected("packages/bookworm-minbase.json")["count"],
        "services": expected("services/bookworm-minbase.json")["count"],
    }


def test_a_failing_command_stops_gather_with_the_server_named() -> None:
    answers = recorded()
    answers[packages.COMMAND] = CommandResult(127, "", "sh: 1: dpkg-query: not found\n")
    with pytest.raises(CommandError, match=r"^web-1: `dpkg-query -W` .*dpkg-query: not found$"):
        gather(FakeRunner(answers), ROOTS)


def test_round_trip_through_json_is_exact() -> None:
    facts = gather(FakeRunner(recorded()), ROOTS)
    data = json.loads(json.dumps(facts.to_dict()))
    assert Facts.from_dict(data) == facts
    assert Facts.from_dict(data).to_dict() == data


def test_round_trip_of_odd_values() -> None:
    facts = Facts(
        files={
            "/srv/a b\nc\ufffd": FileFact(
                "f", "4755", 0, 0, "root", "root", 0, 0.1, 1e9 + 0.123456789, 1
            ),
            "/srv/l": FileFact("l", "0777", 1, 2, "1", "2", 3, 4.0, 5.0, 6, target="#sha256"),
        },
        packages={"libc6:i386": Package("libc6", "2.36-9", "i386")},
        services={"a@.service": Service("a@.service", "static", "inactive", "dead")},
    )
    assert Facts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


@pytest.mark.parametrize(
    "data",
    [
        {"files": {}, "packages": {}, "services": {}},
        {"version": 99, "files": {}, "packages": {}, "services": {}},
        {"version": 1, "files": {}, "packages": {}},
        {"version": 1, "files": {"/a": {"type": "f"}}, "packages": {}, "services": {}},
        {"version": 1, "files": [], "packages": {}, "services": {}},
    ],
)
def test_from_dict_refuses_what_to_dict_does_not_write(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Facts.from_dict(data)
