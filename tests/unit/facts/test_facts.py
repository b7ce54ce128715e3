"""Facts as a whole: gather() over a fake runner (one run of the script), and plain data."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from phoenix.errors import CommandError, UntrustedOutput
from phoenix.facts import (
    SYSCTL_KEYS,
    Facts,
    FileFact,
    Group,
    Listener,
    Package,
    Service,
    User,
    cron,
    gather,
    packages,
    ports,
    script,
    services,
    ssh_keys,
    sysctl,
    users,
)
from phoenix.facts.cache import ScanCache
from phoenix.facts.files import HashCache
from phoenix.host.process import CommandResult
from tests.unit.facts.fakes import (
    FakeRunner,
    expected,
    output,
    recorded_output,
    script_output,
    script_stderr,
)

ROOTS = ["/etc", "/usr/lib/openssh", "/usr/local", "/root", "/var/spool/cron", "/srv/missing"]
INVENTORY = ("users", "groups", "ssh_keys", "cron", "timers", "ports", "sysctl")


def recorded(case: str = "bookworm-minbase") -> FakeRunner:
    """What the real container answered to the script."""
    stderr = expected(f"script/{case}.json")["stderr"]
    return FakeRunner({script.COMMAND: CommandResult(0, recorded_output(case), stderr)})


def answering(stdout: str, stderr: str = "", rc: int = 0) -> FakeRunner:
    return FakeRunner({script.COMMAND: CommandResult(rc, stdout, stderr)})


@pytest.mark.parametrize(
    ("settled", "image", "passed"),
    [
        ("1796315932.11", {"/usr/bin/ping": "cap_net_raw=ep"}, "#image\n/usr/bin/ping"),
        ("1796315932.11", {}, "#image"),
        ("1796315932.11", None, ""),  # a deep scan: every file is read
        (None, {"/usr/bin/ping": "cap_net_raw=ep"}, ""),  # the first start is not known
        ("1796315932.11", {"/usr/bin/a\nb": "cap_net_raw=ep"}, ""),  # cannot be passed
    ],
)
def test_gather_gives_the_image_capabilities_with_the_first_start(
    settled: str | None, image: dict[str, str] | None, passed: str
) -> None:
    fake = recorded()
    cache = ScanCache(HashCache(settled=settled), image_capabilities=image)
    gather(fake, ROOTS, timeout=50, cache=cache)
    assert fake.calls[0].args[5] == passed
    assert fake.calls[0].args[3] == (settled or "")


def test_gather_runs_the_script_once_and_assembles_the_facts() -> None:
    fake = recorded()
    facts = gather(fake, ROOTS, timeout=50)
    assert [(c.command, c.args, c.timeout) for c in fake.calls] == [
        (script.COMMAND, (*script.UNCACHED, *ROOTS), 50)
    ]
    assert (
        facts.files["/etc/passwd"].sha256
        == expected("files/bookworm-etc.json")["files"]["/etc/passwd"]["sha256"]
    )
    assert facts.packages["openssh-server"].version == "1:9.2p1-2+deb12u10"
    assert facts.services["ssh.service"] == Service("ssh.service", "enabled", "active", "running")
    assert facts.users is not None and facts.users["root"] == User(
        "root", 0, 0, "/root", "/bin/bash"
    )
    assert facts.ports is not None
    assert facts.ports["tcp/0.0.0.0:22"] == Listener("tcp", "0.0.0.0", 22, "sshd")
    assert facts.sysctl is not None and facts.sysctl["kernel.randomize_va_space"] == "2"


@pytest.mark.parametrize("case", ["bookworm-minbase", "bookworm-changed"])
def test_gathered_inventory_is_what_each_command_gives_alone(case: str) -> None:
    facts = gather(recorded(case), ROOTS)
    assert facts.users == users.parse(output(f"users/{case}.out"))
    assert facts.groups == users.parse_groups(output(f"groups/{case}.out"))
    assert facts.ssh_keys == ssh_keys.parse(output(f"ssh_keys/{case}.out"))
    assert facts.cron == cron.parse(output(f"cron/{case}.out"))
    assert facts.timers == cron.parse_timers(output(f"timers/{case}.out"))
    assert facts.ports == ports.parse(output(f"ports/{case}.out"))
    assert facts.sysctl == sysctl.parse(output(f"sysctl/{case}.out"))


def test_gathered_changed_server() -> None:
    facts = gather(recorded("bookworm-changed"), ["/var/spool/cron", "/home"])
    assert facts.users is not None and facts.groups is not None and facts.ssh_keys is not None
    assert facts.users["snow"].home == "/home/snow"
    assert facts.groups["sudo"].members == ("snow",)
    assert len(facts.ssh_keys["snow"]) == 2
    assert facts.ports is not None and facts.ports["tcp/*:4444"].process == "sleep"
    assert facts.files["/var/spool/cron/crontabs/snow"].mode == "0600"


def test_summary_counts_every_fact() -> None:
    facts = gather(recorded(), ROOTS)
    want = expected("files/bookworm-etc.json")
    assert facts.summary() == {
        "files": want["count"],
        "hashed": want["hashed"],
        "setuid": 1,  # /usr/lib/openssh/ssh-keysign
        "packages": expected("packages/bookworm-minbase.json")["count"],
        "services": expected("services/bookworm-minbase.json")["count"],
        "users": expected("users/bookworm-minbase.json")["count"],
        "groups": expected("groups/bookworm-minbase.json")["count"],
        "ssh_keys": 1,
        "cron": len(expected("cron/bookworm-minbase.json")["cron"]),
        "timers": expected("timers/bookworm-minbase.json")["count"],
        "ports": len(expected("ports/bookworm-minbase.json")["ports"]),
        "sysctl": len(expected("sysctl/bookworm-minbase.json")["sysctl"]),
        "manager_env": 0,  # not recorded: empty
        "transient": 0,
        "mounts": 0,
        "processes_deleted": 0,
        "processes_outside": 0,
        "executables": 0,
        "capabilities": 0,
    }


def test_summary_leaves_out_what_was_not_gathered() -> None:
    assert Facts({}, {}, {}).summary() == {
        "files": 0,
        "hashed": 0,
        "setuid": 0,
        "packages": 0,
        "services": 0,
    }


# -- sections that fail --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "label"),
    [("files", "files failed"), ("packages", "packages failed"), ("services", "services failed")],
)
def test_a_failing_required_section_is_unread_and_the_others_are_intact(
    section: str, label: str
) -> None:
    stdout = script_output(**{section: (127, "")}, ports=(127, ""))
    stderr = script_stderr(**{section: "sh: 1: tool: not found\n"}, ports="sh: 1: ss: not found\n")
    facts = gather(answering(stdout, stderr), ROOTS)
    assert facts.unread == {
        section: f"{label} (exit 127): sh: 1: tool: not found",  # not the ports section's error
        "ports": "ports failed (exit 127): sh: 1: ss: not found",
    }
    assert facts.invalid == {}
    assert getattr(facts, section) == {} and facts.ports == {}
    assert facts.unreadable(section) and not facts.unreadable("users")


def test_invalid_output_of_a_required_section_is_named_and_the_others_are_intact() -> None:
    whole = gather(recorded(), ROOTS)
    forged = script.split(recorded_output("bookworm-minbase"))
    sections = {name: (s.rc, s.stdout) for name, s in forged.items() if name != script.UNITS}
    files_text = sections["files"][1].replace("\x00f 644 ", "\x00f 9z9 ", 1)
    assert files_text != sections["files"][1]
    facts = gather(answering(script_output(**{**sections, "files": (0, files_text)})), ROOTS)
    assert list(facts.invalid) == ["files"] and "'9z9' is not octal" in facts.invalid["files"]
    assert facts.files == {} and "files" not in facts.unread
    assert (facts.packages, facts.services, facts.users) == (
        whole.packages,
        whole.services,
        whole.users,
    )


def test_unreadable_output_of_a_required_section_is_invalid() -> None:
    facts = gather(answering(script_output(packages=(0, "garbage"))), ROOTS)
    assert facts.invalid == {"packages": "not a package line: 'garbage'"}
    assert facts.packages == {}


def test_the_files_section_keeps_its_own_checks() -> None:
    stdout = script_output(files=(0, "#sha256\0#end 2 0\0"))
    stderr = script_stderr(files="find: '/etc/x': Input/output error\n")
    facts = gather(answering(stdout, stderr), ROOTS)
    assert facts.unread == {
        "files": "find ROOTS -xdev -printf ... failed (exit 2): find: '/etc/x': Input/output error"
    }


def test_a_reason_is_escaped_and_capped() -> None:
    stdout = script_output(packages=(1, ""), users=(0, "root:x:0:0::/root:/bin/sh\x1b[31m" * 99))
    stderr = script_stderr(packages="\x1b]0;owned\x07" + "x" * 500 + "\n")
    facts = gather(answering(stdout, stderr), ROOTS)
    reason = facts.unread["packages"]
    assert "\x1b" not in reason and "\\x1b]0;owned\\x07" in reason
    assert len(facts.unread["packages"]) <= 300 and len(facts.invalid["users"]) <= 300
    assert "\x1b" not in facts.invalid["users"]


@pytest.mark.parametrize("section", INVENTORY)
def test_a_failing_optional_section_gives_an_empty_fact_and_is_unread(section: str) -> None:
    stdout = script_output(**{section: (127, "")})
    facts = gather(answering(stdout, script_stderr(**{section: "not found\n"})), ROOTS)
    assert getattr(facts, section) == {}
    assert all(getattr(facts, other) == {} for other in INVENTORY)
    assert facts.unread == {section: f"{section} failed (exit 127): not found"}


@pytest.mark.parametrize("section", INVENTORY)
def test_unreadable_output_of_an_optional_section_is_invalid(section: str) -> None:
    stdout = script_output(**{section: (0, "=what\nis this")})
    facts = gather(answering(stdout), ROOTS)
    assert getattr(facts, section) == {} and list(facts.invalid) == [section]
    assert all(getattr(facts, other) == {} for other in INVENTORY if other != section)


def test_a_script_that_failed_as_a_whole_names_its_exit_code() -> None:
    fake = answering("", "sh: 1: Syntax error: end of file unexpected\n", rc=2)
    with pytest.raises(CommandError, match=r"^web-1: `phoenix-facts .*\(exit 2\): sh: 1: Syntax"):
        gather(fake, ROOTS)


def test_a_script_killed_midway_names_the_last_error_not_a_marker() -> None:
    stdout = script_output().split("#section users")[0]
    stderr = script_stderr(services="systemctl: killed\n").split("#section users")[0]
    with pytest.raises(CommandError, match=r"\(exit 143\): systemctl: killed$"):
        gather(answering(stdout, stderr, rc=143), ROOTS)


def test_a_script_output_that_cannot_be_split_is_untrusted() -> None:
    with pytest.raises(UntrustedOutput, match=r"web-1: .* not laid out .*cut short") as caught:
        gather(answering("some banner\n"), ROOTS)
    assert caught.value.hint and "compromised" in caught.value.hint


def test_gather_with_a_cache_skips_what_cannot_be_read() -> None:
    cache = ScanCache()
    gather(recorded(), ROOTS, cache=cache)
    known = dict(cache.files.entries)
    forged = script_output(files=(0, "#sha256\0#end x 0\0"))
    assert "files" in gather(answering(forged), ROOTS, cache=cache).invalid
    assert known and cache.files.entries == known  # the hashes of the last good scan are kept


# -- setuid --------------------------------------------------------------------------------


def file(mode: str, kind: str = "f") -> FileFact:
    return FileFact(kind, mode, 0, 0, "root", "root", 1, 1.0, 1.0, 1)


def test_setuid_lists_regular_files_with_either_bit() -> None:
    facts = Facts(
        files={
            "/usr/bin/passwd": file("4755"),
            "/usr/bin/chage": file("2755"),
            "/usr/bin/both": file("6755"),
            "/usr/bin/ls": file("0755"),
            "/var/mail": file("2775", "d"),
            "/tmp": file("1777", "d"),
        },
        packages={},
        services={},
    )
    assert facts.setuid() == {
        "/usr/bin/both": "6755",
        "/usr/bin/chage": "2755",
        "/usr/bin/passwd": "4755",
    }


def test_setuid_of_the_recorded_server() -> None:
    assert gather(recorded(), ROOTS).setuid() == {"/usr/lib/openssh/ssh-keysign": "4755"}


# -- plain data ----------------------------------------------------------------------------


def test_round_trip_through_json_is_exact() -> None:
    for case in ("bookworm-minbase", "bookworm-changed"):
        facts = gather(recorded(case), ROOTS)
        data = json.loads(json.dumps(facts.to_dict()))
        assert data["version"] == 3
        assert Facts.from_dict(data) == facts
        assert Facts.from_dict(data).to_dict() == data


def odd_facts() -> Facts:
    return Facts(
        files={
            "/srv/a b\nc\ufffd": FileFact(
                "f", "4755", 0, 0, "root", "root", 0, 0.1, 1e9 + 0.123456789, 1
            ),
            "/srv/l": FileFact("l", "0777", 1, 2, "1", "2", 3, 4.0, 5.0, 6, target="#sha256"),
        },
        packages={"libc6:i386": Package("libc6", "2.36-9", "i386")},
        services={"a@.service": Service("a@.service", "static", "inactive", "dead")},
        users={"svc": User("svc", 999, 999, "", "")},
        groups={"staff": Group("staff", 50, ("a", "b")), "none": Group("none", 9, ())},
        ssh_keys={"root": ('command="a:b" ssh-ed25519 AAAA x', "ssh-rsa AAAA y")},
        cron={"/etc/cron.d/a?b": (), "/etc/crontab": ("@daily /bin/true",)},
        timers={"a.timer": "masked"},
        ports={"udp/[fe80::1%eth0]:546": Listener("udp", "fe80::1%eth0", 546, None)},
        sysctl={"kernel.printk": "4 4 1 7"},
    )


def test_round_trip_of_odd_values() -> None:
    facts = odd_facts()
    assert Facts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


def test_round_trip_keeps_not_gathered_apart_from_empty() -> None:
    facts = replace(odd_facts(), users=None, ports={}, sysctl=None)
    data = json.loads(json.dumps(facts.to_dict()))
    assert (data["users"], data["ports"], data["sysctl"]) == (None, {}, None)
    assert Facts.from_dict(data) == facts


def version_1(facts: Facts) -> dict[str, Any]:
    """What phoenix wrote before the inventory: version 1, files, packages, services only."""
    data = facts.to_dict()
    return {"version": 1, **{key: data[key] for key in ("files", "packages", "services")}}


def test_a_version_1_baseline_reads_with_the_inventory_not_gathered() -> None:
    gathered = gather(recorded(), ROOTS)
    old = Facts.from_dict(json.loads(json.dumps(version_1(gathered))))
    assert (old.files, old.packages, old.services) == (
        gathered.files,
        gathered.packages,
        gathered.services,
    )
    assert all(getattr(old, name) is None for name in INVENTORY)
    assert old.setuid() == gathered.setuid()
    assert old.to_dict()["version"] == 3 and old.to_dict()["users"] is None
    assert (old.unread, old.invalid) == ({}, {})


def test_a_version_2_record_reads_with_no_area_unread() -> None:
    data = odd_facts().to_dict()
    old = {key: value for key, value in data.items() if key not in ("unread", "invalid")}
    assert Facts.from_dict(old | {"version": 2}) == odd_facts()


def test_round_trip_keeps_unread_and_invalid_areas() -> None:
    facts = replace(odd_facts(), unread={"ports": "ports failed (exit 127): x"})
    facts = replace(facts, invalid={"files": "mode '9z9' is not octal permission bits"})
    assert Facts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


def test_sysctl_keys_are_exported() -> None:
    assert SYSCTL_KEYS is sysctl.SYSCTL_KEYS and "kernel.randomize_va_space" in SYSCTL_KEYS


V2 = odd_facts().to_dict()


def test_a_fact_a_record_predates_is_not_gathered() -> None:
    older = {key: value for key, value in V2.items() if key != "ports"}
    assert Facts.from_dict(older).ports is None  # a baseline baked before the fact: skipped


@pytest.mark.parametrize(
    "data",
    [
        {"files": {}, "packages": {}, "services": {}},
        {"version": 99, "files": {}, "packages": {}, "services": {}},
        {"version": 1, "files": {}, "packages": {}},
        {"version": 1, "files": {"/a": {"type": "f"}}, "packages": {}, "services": {}},
        {"version": 1, "files": [], "packages": {}, "services": {}},
        V2 | {"users": []},
        V2 | {"users": {"root": {"name": "root"}}},
        V2 | {"groups": {"g": {"name": "g", "gid": 1, "members": "a,b"}}},
        V2 | {"ssh_keys": {"root": "ssh-rsa AAAA"}},
        V2 | {"cron": {"/etc/crontab": [1]}},
        V2 | {"sysctl": {"kernel.sysrq": 1}},
        V2 | {"ports": {"tcp/*:1": {"proto": "tcp"}}},
        {key: value for key, value in V2.items() if key != "unread"},
        V2 | {"invalid": {"files": 1}},
        V2 | {"unread": ["files"]},
    ],
)
def test_from_dict_refuses_what_to_dict_does_not_write(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Facts.from_dict(data)


def test_modules_keep_their_own_commands() -> None:
    assert packages.COMMAND in script.SCRIPT and services.SCRIPT.rstrip() in script.SCRIPT
