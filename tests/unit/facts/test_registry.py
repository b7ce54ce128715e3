"""The registry of optional facts: a fact declared once is gathered, stored, read back and diffed.

The tiny fact here (the kernel's name and release, from `uname`) is declared in this test only, as
one `Fact`, and handed over as `REGISTRY.extended(KERNEL)`: no other code knows of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.drift.diff import SEVERITY, Finding, Rules, diff
from phoenix.facts import REGISTRY, Facts, gather, script
from phoenix.facts.registry import USERS, Fact, Keyed, Kind, Lines, Registry, string
from phoenix.host.process import CommandResult
from tests.unit.facts.fakes import FakeRunner, LocalRunner, scanning, script_output

ROOTS = ["/etc"]


def parse_kernel(text: str) -> dict[str, str]:
    """`uname -sr`: "Linux 6.1.0-28-amd64" -> {"name": "Linux", "release": "6.1.0-28-amd64"}."""
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"not `name release`: {text!r}")
    return {"name": fields[0], "release": fields[1]}


KERNEL: Fact[str] = Fact(
    name="kernel",
    command="uname -sr",
    parse=parse_kernel,
    plain=str,
    read=string,
    drift=Keyed(
        "kernel", added=Kind("kernel.added", "low"), changed=Kind("kernel.changed", "high")
    ),
)
WITH_KERNEL = REGISTRY.extended(KERNEL)


def server(kernel: tuple[int, str]) -> FakeRunner:
    """A server that answers the script of WITH_KERNEL, its kernel section as given."""
    stdout = script_output(kernel=kernel)  # appended after the default sections, as in the script
    command = script.of(WITH_KERNEL).command
    return FakeRunner({command: CommandResult(0, stdout, "")})


def test_a_fact_declared_once_is_gathered_stored_read_back_and_diffed() -> None:
    fake = server((0, "Linux 6.1.0-28-amd64"))
    baseline = gather(fake, ROOTS, registry=WITH_KERNEL)
    assert fake.calls[0].command == script.of(WITH_KERNEL).command
    assert baseline.get(KERNEL) == {"name": "Linux", "release": "6.1.0-28-amd64"}
    assert baseline.users == {} and baseline.summary()["kernel"] == 2

    data = json.loads(json.dumps(baseline.to_dict()))
    assert data["kernel"] == {"name": "Linux", "release": "6.1.0-28-amd64"}
    assert list(data)[-2:] == ["capabilities", "kernel"]  # after the facts of REGISTRY
    assert Facts.from_dict(data, WITH_KERNEL) == baseline

    live = gather(server((0, "Linux 6.1.0-31-amd64")), ROOTS, registry=WITH_KERNEL)
    assert diff(Facts.from_dict(data, WITH_KERNEL), live) == [
        Finding(
            kind="kernel.changed",
            subject="release",
            severity="high",
            before="6.1.0-28-amd64",
            after="6.1.0-31-amd64",
        )
    ]
    assert diff(baseline, live, Rules.with_extra(["kernel:release"])) == []


def test_the_script_of_a_registry_runs_its_new_section(tmp_path: Path) -> None:
    """On this machine (dash, GNU tools): the new section is split out and parsed like the rest."""
    run = script.of(scanning(tmp_path, WITH_KERNEL))  # no scan of this machine's /
    assert list(run.sections)[-1] == "kernel" and "phoenix_kernel() {\nuname -sr\n}" in run.text
    result = LocalRunner().run(run.command, *script.UNCACHED, str(tmp_path))
    assert result.rc == 0, result.stderr
    sections = run.split(result.stdout, result.stderr)
    assert sections["kernel"].rc == 0
    alone = LocalRunner().run("uname -sr").stdout
    assert parse_kernel(sections["kernel"].stdout) == parse_kernel(alone)


def test_a_new_fact_that_fails_or_cannot_be_read_is_empty_and_named() -> None:
    failed = gather(server((127, "")), ROOTS, registry=WITH_KERNEL)
    unread = gather(server((0, "what is this")), ROOTS, registry=WITH_KERNEL)
    assert (failed.get(KERNEL), unread.get(KERNEL)) == ({}, {})
    assert "kernel" in failed.unread and "kernel" in unread.invalid
    assert "kernel" not in unread.summary()
    assert diff(failed, unread) == []  # skipped: not read on the baseline
    later = gather(server((0, "Linux 6.2")), ROOTS, registry=WITH_KERNEL)
    assert diff(failed, later) == []
    assert [(f.kind, f.subject) for f in diff(later, unread)] == [("facts.invalid", "kernel")]


def test_records_of_the_default_registry_know_nothing_of_the_new_fact() -> None:
    with_kernel = gather(server((0, "Linux 6.1")), ROOTS, registry=WITH_KERNEL)
    data = with_kernel.to_dict()
    plain = Facts.from_dict(data)  # the default registry reads it: the new key is left out
    assert plain.get(KERNEL) is None and "kernel" not in plain.to_dict()
    assert plain.users == with_kernel.users
    assert diff(plain, with_kernel) == []  # the baseline lacks it: skipped
    older = Facts.from_dict(plain.to_dict(), WITH_KERNEL)  # a record from before the fact
    assert older.get(KERNEL) is None and diff(older, with_kernel) == []  # not gathered: skipped
    old = {"version": 1, **{key: data[key] for key in ("files", "packages", "services")}}
    assert Facts.from_dict(old, WITH_KERNEL).get(KERNEL) is None


def test_the_default_facts_and_their_severities_come_from_the_registry() -> None:
    assert REGISTRY.names() == (
        "users", "groups", "ssh_keys", "cron", "timers", "ports", "sysctl",
        "manager_env", "transient", "mounts", "processes_deleted", "processes_outside",
        "executables", "capabilities",
    )  # fmt: skip
    assert list(script.SECTIONS)[3:] == list(REGISTRY.names())
    assert all(SEVERITY[kind] == severity for kind, severity in REGISTRY.severity().items())
    assert WITH_KERNEL.severity()["kernel.changed"] == "high"
    assert "kernel.changed" not in SEVERITY  # declared in its entry only
    assert Facts({}, {}, {}, users={}).inventory == {fact: None for fact in REGISTRY} | {USERS: {}}


def test_the_registry_refuses_what_would_break_the_record_or_the_diff() -> None:
    lines = Lines("x", Kind("x.added", "low"), Kind("x.removed", "low"))
    for name in ("files", "version", "units", "bad-name", ""):
        with pytest.raises(ValueError, match="cannot name a fact"):
            Fact(name, "true", parse_kernel, str, string, lines)
    with pytest.raises(ValueError, match="declared twice: kernel"):
        WITH_KERNEL.extended(KERNEL)
    with pytest.raises(ValueError, match="expected one of"):
        Kind("x.added", "critical")
    louder = Keyed("x", added=Kind("user.added", "low"))
    with pytest.raises(ValueError, match=r"two severities: user\.added"):
        REGISTRY.extended(Fact("x", "true", parse_kernel, str, string, louder))
    with pytest.raises(TypeError, match="unexpected keyword argument 'kernel'"):
        Facts({}, {}, {}, kernel={})  # the default registry has no such fact
    assert isinstance(WITH_KERNEL, Registry) and WITH_KERNEL.facts[:-1] == REGISTRY.facts
