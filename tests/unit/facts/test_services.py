"""The services fact: systemctl's listings, recorded and hand-made, merged."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from phoenix.errors import CommandError
from phoenix.facts import cache, services
from phoenix.facts.services import Service
from phoenix.host.process import CommandResult
from tests.unit.facts.fakes import FakeRunner, cases, expected, output


@pytest.mark.parametrize("case", cases("services"))
def test_recorded_output(case: str) -> None:
    want = expected(f"services/{case}.json")
    found = services.parse(output(f"services/{case}.out"))
    assert len(found) == want["count"]
    for name, service in want["services"].items():
        assert asdict(found[name]) == service, name


def test_recorded_templates_keep_their_state_and_instances_come_from_the_units() -> None:
    found = services.parse(output("services/bookworm-minbase.out"))
    assert found["getty@.service"].enabled == "enabled"
    assert found["modprobe@drm.service"] == Service(
        "modprobe@drm.service", "loaded", "inactive", "dead"
    )
    assert found["autovt@.service"] == Service("autovt@.service", "alias", "inactive", "dead")


HAND_MADE: list[tuple[str, str, dict[str, Service]]] = [
    ("nothing", "\n--\n--\n", {}),
    (
        "a failed unit with the bullet of newer systemd, an unloaded file, a missing unit",
        "cron.service enabled enabled\nfoo.service disabled enabled\n--\n"
        "\u25cf cron.service loaded failed failed Regular background program processing daemon\n"
        "\u25cf gone.service not-found inactive dead gone.service\n--\n",
        {
            "cron.service": Service("cron.service", "enabled", "failed", "failed"),
            "foo.service": Service("foo.service", "disabled", "inactive", "dead"),
            "gone.service": Service("gone.service", "not-found", "inactive", "dead"),
        },
    ),
    (
        "older systemd: no vendor preset column",
        "ssh.service enabled\n--\nssh.service loaded active running OpenBSD Secure Shell\n--\n",
        {"ssh.service": Service("ssh.service", "enabled", "active", "running")},
    ),
    (
        "an alias is as active as its unit; a template alias has none",
        "ssh.service enabled enabled\nsshd.service alias -\nautovt@.service alias -\n--\n"
        "ssh.service loaded active running OpenBSD Secure Shell server\n--\n"
        "sshd.service ssh.service\nautovt@.service \n",
        {
            "autovt@.service": Service("autovt@.service", "alias", "inactive", "dead"),
            "ssh.service": Service("ssh.service", "enabled", "active", "running"),
            "sshd.service": Service("sshd.service", "alias", "active", "running"),
        },
    ),
    (
        "a starting instance of an enabled template",
        "getty@.service enabled enabled\n--\n"
        "getty@tty1.service loaded activating start Getty on tty1\n--\n",
        {
            "getty@.service": Service("getty@.service", "enabled", "inactive", "dead"),
            "getty@tty1.service": Service("getty@tty1.service", "loaded", "activating", "start"),
        },
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_output(text: str, want: dict[str, Service]) -> None:
    assert services.parse(text) == want


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ssh.service enabled enabled\n", "3 sections"),
        ("ssh.service enabled\n--\n", "3 sections"),
        ("ssh.service\n--\n--\n", "not a unit line"),
        ("--\nssh.service loaded active\n--\n", "not a unit line"),
    ],
)
def test_malformed_output_is_a_value_error(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        services.parse(text)


def test_gather_runs_one_command() -> None:
    fake = FakeRunner(
        {services.COMMAND: CommandResult(0, output("services/bookworm-minbase.out"), "")}
    )
    found = services.gather(fake, timeout=7)
    assert found["ssh.service"] == Service("ssh.service", "enabled", "active", "running")
    assert [(c.args, c.timeout) for c in fake.calls] == [((), 7)]


def test_gather_without_systemd_names_server_and_reason() -> None:
    stderr = "System has not been booted with systemd as init system (PID 1). Can't operate.\n"
    fake = FakeRunner({services.COMMAND: CommandResult(1, "", stderr)})
    with pytest.raises(CommandError, match=r"^web-1: `systemctl list-unit-files.*exit 1\): System"):
        services.gather(fake)


def _fingerprint(dirs: Path, settled: str) -> str:
    """The unit files' fingerprint (cache.FINGERPRINT) of `dirs` for a first start `settled`."""
    command = cache.FINGERPRINT.replace(cache._DIRS, str(dirs))
    run = subprocess.run(
        ["sh", "-c", f"phoenix_settled=$1; {command}", "fp", settled],
        capture_output=True, text=True, check=True, env={"PATH": os.defpath, "LC_ALL": "C"},
    )  # fmt: skip
    return run.stdout.split()[0]


def _unit_dirs(top: Path, text: str = "ExecStart=/bin/true\n") -> Path:
    """Unit files as an image makes them: the same names, contents and mtimes every time."""
    (top / "system" / "multi-user.target.wants").mkdir(parents=True)
    unit = top / "system" / "web.service"
    unit.write_text(text)
    (top / "system" / "multi-user.target.wants" / "web.service").symlink_to("../web.service")
    for path in [*sorted(top.rglob("*"), reverse=True), top]:  # the files, then their directories
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    return unit


def test_servers_of_one_image_have_one_unit_fingerprint_until_one_changes(tmp_path: Path) -> None:
    """Two servers' copies of the image's unit files (other inodes and ctimes, both before each
    one's first start) have one fingerprint; without the first start, each its own. A file
    changed since the first start is known by its content: an edit that keeps its size and
    mtime makes another fingerprint."""
    dirs = tmp_path / "systemd"
    settled = f"{time.time() + 5:.2f}"  # every ctime is before it
    _unit_dirs(dirs)
    first, first_full = _fingerprint(dirs, settled), _fingerprint(dirs, "")
    dirs.rename(tmp_path / "other")
    _unit_dirs(dirs)
    assert _fingerprint(dirs, settled) == first
    assert _fingerprint(dirs, "") != first_full
    since = "1000000000.00"  # every ctime is after it: each file by its content
    before = _fingerprint(dirs, since)
    unit = _unit_dirs(tmp_path / "edited", "ExecStart=/bin/echo\n")
    assert unit.stat().st_size == (dirs / "system" / "web.service").stat().st_size
    (dirs / "system" / "web.service").write_bytes(unit.read_bytes())
    os.utime(dirs / "system" / "web.service", (1_700_000_000, 1_700_000_000))  # as it was
    assert _fingerprint(dirs, since) != before
