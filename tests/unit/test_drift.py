"""Drift as a pure function: baseline facts vs live facts, with plain data."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from phoenix.config import Severity
from phoenix.drift import diff as diff_mod
from phoenix.drift import report
from phoenix.drift import scan as scan_mod
from phoenix.drift.diff import Finding, Rules, at_least, diff
from phoenix.drift.scan import ScanReport, ScanStatus, ServerScan
from phoenix.errors import Refused
from phoenix.facts import Facts, FileFact, Group, Listener, Package, Service, User
from phoenix.state import Store, now
from phoenix.workspace import Workspace


def f(sha: str = "a" * 64, mode: str = "0644", owner: str = "root", **kw: object) -> FileFact:
    base = dict(type="f", mode=mode, uid=0, gid=0, owner=owner, group="root", size=10,
                mtime=1.0, ctime=1.0, inode=1, target=None, sha256=sha)  # fmt: skip
    base.update(kw)
    return FileFact(**base)  # type: ignore[arg-type]


BASE = Facts(
    files={
        "/etc/nginx/nginx.conf": f(),
        "/etc/motd": f(),
        "/usr/bin/passwd": f(mode="4755"),
        "/usr/bin/ls": f(),
        "/etc/alternatives/awk": f(type="l", target="/usr/bin/mawk", sha256=None),
        "/etc/machine-id": f(sha="1" * 64),
    },
    packages={"nginx": Package("nginx", "1.22", "amd64"), "curl": Package("curl", "7", "amd64")},
    services={
        "nginx.service": Service("nginx.service", "enabled", "active", "running"),
        "cron.service": Service("cron.service", "enabled", "active", "running"),
        "systemd-tmpfiles-clean.service": Service(
            "systemd-tmpfiles-clean.service", "static", "inactive", "dead"
        ),
    },
)


def changed(**areas: object) -> Facts:
    return dataclasses.replace(BASE, **areas)  # type: ignore[arg-type]


def kinds(found: list[Finding]) -> set[tuple[str, str]]:
    return {(x.kind, x.subject) for x in found}


def test_identical_facts_have_no_findings() -> None:
    assert diff(BASE, BASE) == []


def test_noise_is_ignored_timestamps_too() -> None:
    live_files = dict(BASE.files)
    live_files["/etc/machine-id"] = f(sha="2" * 64)  # every server has its own
    live_files["/etc/motd"] = f(mtime=99.0, ctime=99.0, inode=7)  # touched, not modified
    live_services = dict(BASE.services)
    live_services["systemd-tmpfiles-clean.service"] = Service(
        "systemd-tmpfiles-clean.service", "static", "active", "exited"
    )
    assert diff(BASE, changed(files=live_files, services=live_services)) == []


def test_file_changes() -> None:
    live = dict(BASE.files)
    live["/etc/nginx/nginx.conf"] = f(sha="b" * 64)
    del live["/etc/motd"]
    live["/etc/cron.d/evil"] = f()
    live["/usr/bin/ls"] = f(sha="c" * 64)  # replaced binary, same size
    live["/etc/alternatives/awk"] = f(type="l", target="/tmp/awk", sha256=None)
    live["/usr/bin/vim"] = f(mode="4755")
    found = diff(BASE, changed(files=live))
    assert kinds(found) == {
        ("file.modified", "/etc/nginx/nginx.conf"),
        ("file.removed", "/etc/motd"),
        ("file.added", "/etc/cron.d/evil"),
        ("binary.modified", "/usr/bin/ls"),
        ("file.modified", "/etc/alternatives/awk"),
        ("file.added", "/usr/bin/vim"),
        ("setuid.added", "/usr/bin/vim"),
    }
    assert found[0].severity == "high"  # sorted: high first
    link = next(x for x in found if x.subject == "/etc/alternatives/awk")
    assert (link.before, link.after) == ("-> /usr/bin/mawk", "-> /tmp/awk")


def test_mode_owner_and_setuid_bit() -> None:
    live = dict(BASE.files)
    live["/etc/motd"] = f(mode="0666", owner="nobody")
    live["/usr/bin/ls"] = f(mode="4755")
    found = kinds(diff(BASE, changed(files=live)))
    assert found == {
        ("file.mode", "/etc/motd"),
        ("file.owner", "/etc/motd"),
        ("file.mode", "/usr/bin/ls"),
        ("setuid.added", "/usr/bin/ls"),
    }


def test_secrets_show_hashes_never_content() -> None:
    live = dict(BASE.files)
    live["/etc/shadow"] = f(sha="d" * 64)
    finding = diff(BASE, changed(files=live))[0]
    assert finding.after is not None and finding.after.startswith("sha256:dddd")


def test_packages_and_services() -> None:
    packages = {"nginx": Package("nginx", "1.23", "amd64"), "netcat": Package("netcat", "1", "x")}
    services = dict(BASE.services)
    services["nginx.service"] = Service("nginx.service", "enabled", "inactive", "dead")
    services["cron.service"] = Service("cron.service", "masked", "inactive", "dead")
    services["backdoor.service"] = Service("backdoor.service", "enabled", "active", "running")
    found = kinds(diff(BASE, changed(packages=packages, services=services)))
    assert found == {
        ("package.changed", "nginx"),
        ("package.removed", "curl"),
        ("package.added", "netcat"),
        ("service.stopped", "nginx.service"),
        ("service.disabled", "cron.service"),
        ("service.enabled", "backdoor.service"),
    }


LONG_KEY = "ssh-ed25519 " + "A" * 200 + " long@key"
INVENTORY_BASE = Facts(
    files={},
    packages={},
    services={},
    users={
        "root": User("root", 0, 0, "/root", "/bin/bash"),
        "old": User("old", 1001, 1001, "/home/old", "/bin/sh"),
    },
    groups={"sudo": Group("sudo", 27, ()), "staff": Group("staff", 50, ())},
    ssh_keys={"root": ("ssh-ed25519 AAAA op",), "gone": ("ssh-rsa BBBB gone",)},
    cron={"/etc/crontab": ("17 * * * * root run-parts",)},
    timers={"apt-daily.timer": "enabled", "x.timer": "disabled"},
    ports={
        "tcp/0.0.0.0:22": Listener("tcp", "0.0.0.0", 22, "sshd"),
        "udp/0.0.0.0:68": Listener("udp", "0.0.0.0", 68, "dhclient"),
        "tcp/*:80": Listener("tcp", "*", 80, "nginx"),
    },
    sysctl={"net.ipv4.ip_forward": "0", "kernel.sysrq": "176"},
)
INVENTORY_LIVE = Facts(
    files={},
    packages={},
    services={},
    users={
        "root": User("root", 0, 0, "/root", "/bin/sh"),
        "snow": User("snow", 1000, 1000, "/home/snow", "/bin/bash"),
    },
    groups={"sudo": Group("sudo", 27, ("snow",)), "staff": Group("staff", 50, ())},
    ssh_keys={"root": ("ssh-ed25519 AAAA op", LONG_KEY), "snow": ("ssh-rsa CCCC snow",)},
    cron={
        "/etc/crontab": ("17 * * * * root run-parts", "* * * * * root evil"),
        "/etc/cron.d/x": ("@reboot x",),
    },
    timers={"apt-daily.timer": "enabled", "x.timer": "enabled", "new.timer": "static"},
    ports={
        "tcp/0.0.0.0:22": Listener("tcp", "0.0.0.0", 22, "sshd"),
        "udp/0.0.0.0:5353": Listener("udp", "0.0.0.0", 5353, "dhclient"),  # a default rule
        "tcp/*:4444": Listener("tcp", "*", 4444, "sleep"),
        "udp/[::1]:53": Listener("udp", "::1", 53, None),
    },
    sysctl={"net.ipv4.ip_forward": "1", "kernel.sysrq": "176"},
)
USER_ROOT = "uid=0 gid=0 home=/root shell="
INVENTORY_FINDINGS = [
    ("ssh_key.added", "root", "high", None, LONG_KEY[:117] + "..."),
    ("ssh_key.added", "snow", "high", None, "ssh-rsa CCCC snow"),
    ("user.added", "snow", "high", None, "uid=1000 gid=1000 home=/home/snow shell=/bin/bash"),
    ("user.changed", "root", "high", USER_ROOT + "/bin/bash", USER_ROOT + "/bin/sh"),
    ("cron.added", "/etc/cron.d/x", "medium", None, "@reboot x"),
    ("cron.added", "/etc/crontab", "medium", None, "* * * * * root evil"),
    ("group.changed", "sudo", "medium", "gid=27 members=()", "gid=27 members=('snow',)"),
    ("port.opened", "tcp/*:4444", "medium", None, "proto=tcp address=* port=4444 process=sleep"),
    ("port.opened", "udp/[::1]:53", "medium", None, "proto=udp address=::1 port=53 process=None"),
    ("sysctl.changed", "net.ipv4.ip_forward", "medium", "0", "1"),
    ("timer.enabled", "new.timer", "medium", None, "static"),
    ("timer.enabled", "x.timer", "medium", "disabled", "enabled"),
    ("user.removed", "old", "medium", "uid=1001 gid=1001 home=/home/old shell=/bin/sh", None),
    ("port.closed", "tcp/*:80", "low", "proto=tcp address=* port=80 process=nginx", None),
    ("ssh_key.removed", "gone", "low", "ssh-rsa BBBB gone", None),
]


def plain(found: list[Finding]) -> list[tuple[str, str, str, str | None, str | None]]:
    return [(x.kind, x.subject, x.severity, x.before, x.after) for x in found]


def test_inventory_findings_in_order() -> None:
    assert plain(diff(INVENTORY_BASE, INVENTORY_LIVE)) == INVENTORY_FINDINGS


def test_inventory_rules_match_the_key_the_port_process_or_the_line() -> None:
    extra = ["user:snow", "ssh_key:root:*", "cron:/etc/cron.d/*", "port:tcp/*:*@sleep"]
    extra += ["timer:new.*", "sysctl:net.*"]
    ignored = {("user.added", "snow"), ("ssh_key.added", "root"), ("cron.added", "/etc/cron.d/x")}
    ignored |= {("port.opened", "tcp/*:4444"), ("timer.enabled", "new.timer")}
    ignored |= {("sysctl.changed", "net.ipv4.ip_forward")}
    found = plain(diff(INVENTORY_BASE, INVENTORY_LIVE, Rules.with_extra(extra)))
    assert found == [x for x in INVENTORY_FINDINGS if (x[0], x[1]) not in ignored]


def test_an_inventory_fact_not_gathered_on_either_side_is_skipped() -> None:
    areas = ("users", "groups", "ssh_keys", "cron", "timers", "ports")
    live = dataclasses.replace(INVENTORY_LIVE, **dict.fromkeys(areas))  # type: ignore[arg-type]
    assert plain(diff(INVENTORY_BASE, live)) == [INVENTORY_FINDINGS[9]]
    base = dataclasses.replace(INVENTORY_BASE, sysctl=None)
    assert plain(diff(base, INVENTORY_LIVE)) == [
        x for x in INVENTORY_FINDINGS if x[0] != "sysctl.changed"
    ]


def test_rules_from_config_extend_the_defaults() -> None:
    live = dict(BASE.files)
    live["/etc/nginx/nginx.conf"] = f(sha="b" * 64)
    rules = Rules.with_extra(["/etc/nginx/*"])
    assert diff(BASE, changed(files=live), rules) == []
    assert Rules().ignores("port", "udp/0.0.0.0:68")
    assert not Rules().ignores("port", "tcp/0.0.0.0:4444")


def test_fail_on_threshold() -> None:
    found = [
        Finding(kind="file.added", subject="/x", severity=Severity.LOW),
        Finding(kind="ssh_key.added", subject="root", severity=Severity.HIGH),
    ]
    assert at_least(found, Severity.HIGH) == [found[1]]
    assert at_least(found, Severity.LOW) == found


def scans() -> list[ServerScan]:
    """One server of each ScanStatus, in its order."""
    evil = Finding(
        kind="file.modified", subject="/etc/<evil>", severity=Severity.MEDIUM, before="a", after="b"
    )
    key = Finding(kind="host_key.changed", subject="web-g1-4", severity=Severity.HIGH)
    errors = {
        ScanStatus.UNREACHABLE: "timed out",
        ScanStatus.UNTRUSTED: "host key changed",
        ScanStatus.NO_BASELINE: "image web-v001 has no baseline to compare with",
    }
    findings = {ScanStatus.DRIFTED: [evil], ScanStatus.UNTRUSTED: [key]}
    return [
        ServerScan(
            name=f"web-g1-{n}",
            address=f"10.0.0.{n}",
            image="web-v001",
            fleet="web",
            status=status,
            findings=findings.get(status, []),
            error=errors.get(status),
        )
        for n, status in enumerate(ScanStatus, 1)
    ]


def test_reports() -> None:
    servers = scans()
    scan = ScanReport(scanned_at="2026-11-28T00:00:00+00:00", servers=servers)
    assert scan.exit_code == 2
    assert ScanReport(scanned_at="t", servers=servers[:2]).exit_code == 1
    assert ScanReport(scanned_at="t", servers=servers[:1]).exit_code == 0
    assert ScanReport(scanned_at="t", servers=servers[4:]).exit_code == 2  # no baseline
    suite = ET.fromstring(report.to_junit(scan)).find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("errors") == "3"
    no_baseline = suite.find("testcase[@name='web-g1-5']/error")
    assert no_baseline is not None
    assert (
        no_baseline.get("message") == "no_baseline: image web-v001 has no baseline to compare with"
    )
    html = report.to_html(scan)
    assert "&lt;evil&gt;" in html and "<evil>" not in html
    assert '<small class="no_baseline">no_baseline</small>' in html and ".no_baseline {" in html


def test_json_holds_the_plain_values_of_the_enums() -> None:
    scan = ScanReport(scanned_at="t", servers=scans())
    data = json.loads(json.dumps(scan.as_dict()))  # what `drift --json` prints
    assert [s["status"] for s in data["servers"]] == [
        "clean", "drifted", "unreachable", "untrusted", "no_baseline"
    ]  # fmt: skip
    assert data["servers"][1]["findings"][0]["severity"] == "medium"
    assert list(data["servers"][1]) == ["name", "address", "image", "fleet", "status", "error",
                                        "witnessed", "findings"]  # fmt: skip


def test_changes_between_scans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    (tmp_path / "phoenix.toml").write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    ws = Workspace.open(tmp_path / "phoenix.toml")
    with Store.open(ws.home) as store:
        with store.transaction() as db:
            db.execute("INSERT INTO fleets (name, created_at) VALUES ('web', 'x')")
            db.execute("INSERT INTO images (name, version, tag, status, template_sha256)"
                       " VALUES ('web', 1, 'web-v001', 'ready', 't')")  # fmt: skip
            db.execute("INSERT INTO generations (fleet, number, image_tag, created_at)"
                       " VALUES ('web', 1, 'web-v001', 'x')")  # fmt: skip
            db.execute(
                "INSERT INTO servers (name, fleet, generation, image_tag, status,"
                " created_at) VALUES ('web-g1-1', 'web', 1, 'web-v001', 'serving', 'x')"
            )
        a = Finding(kind="file.modified", subject="/etc/motd", severity=Severity.MEDIUM)
        b = Finding(kind="ssh_key.added", subject="root", severity=Severity.HIGH)
        for found in ([a], [a, b], [b]):
            scan_mod._record(
                store,
                ScanReport(
                    scanned_at=now(),
                    servers=[
                        ServerScan(
                            name="web-g1-1",
                            address="10.0.0.1",
                            image="web-v001",
                            fleet="web",
                            status=ScanStatus.DRIFTED,
                            findings=found,
                        )
                    ],
                ),
            )
    changes = scan_mod.changes_since(ws, "1d")
    assert [(c.change, c.subject, c.severity) for c in changes] == [
        ("appeared", "root", Severity.HIGH),
        ("went away", "/etc/motd", Severity.MEDIUM),
    ]
    assert all(type(c.severity) is Severity for c in changes)  # read back as the enum
    assert json.loads(json.dumps(changes[0].as_dict()))["severity"] == "high"
    assert scan_mod.changes_since(ws, "1d", ["other"]) == []
    with pytest.raises(Refused, match="--since"):
        scan_mod.changes_since(ws, "a week")


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(FileFact)])
def test_a_file_passed_over_as_unchanged_is_one_no_field_change_finds(field: str) -> None:
    """The diff skips files it takes for unchanged (diff._same) before it looks for changes:
    the fields it compares there are exactly those a change is found in."""
    was = FileFact("f", "0644", 0, 0, "root", "root", 1, 1.0, 1.0, 1, None, "a" * 64)
    other = {str: "x", int: 2, float: 2.0}
    value = getattr(was, field)
    now = dataclasses.replace(was, **{field: other[type(value)] if value is not None else "y"})
    changes = diff_mod._file_changes("/etc/x", was, now)
    assert diff_mod._same(was, now) == (not changes)
    assert diff_mod._same(was, was)
