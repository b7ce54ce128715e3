"""The services fact: systemctl's listings, recorded and hand-made, merged."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from phoenix.errors import CommandError
from phoenix.facts import services
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
