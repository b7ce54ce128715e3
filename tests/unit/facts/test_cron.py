"""The cron and timers facts: crontab entries and systemd timer unit files."""

from __future__ import annotations

import pytest

from phoenix.facts import cron
from tests.unit.facts.fakes import cases, expected, output


@pytest.mark.parametrize("case", cases("cron"))
def test_recorded_crontabs(case: str) -> None:
    want = expected(f"cron/{case}.json")["cron"]
    found = cron.parse(output(f"cron/{case}.out"))
    assert found == {path: tuple(entries) for path, entries in want.items()}


def test_recorded_changed_server_keeps_a_crontab_of_only_comments_and_a_user_crontab() -> None:
    found = cron.parse(output("cron/bookworm-changed.out"))
    assert found["/etc/cron.d/only-comments"] == ()
    assert found["/var/spool/cron/crontabs/snow"][0] == "@reboot /usr/local/bin/warm-cache"


@pytest.mark.parametrize("case", cases("timers"))
def test_recorded_timers(case: str) -> None:
    want = expected(f"timers/{case}.json")
    found = cron.parse_timers(output(f"timers/{case}.out"))
    assert len(found) == want["count"]
    for unit, state in want["timers"].items():
        assert found[unit] == state, unit


HAND_MADE: list[tuple[str, str, dict[str, tuple[str, ...]]]] = [
    ("nothing", "", {}),
    (
        "comments, indented comments, blank lines and whitespace are dropped",
        "/etc/crontab\n=SHELL=/bin/sh\n=# m h dom mon dow user command\n=\n=   \n"
        "=  17 * * * * root  cd / && run-parts --report /etc/cron.hourly  \t\n"
        "=\t# tabbed comment\n"
        "/etc/cron.d/backup\n=0 2 * * * root /usr/local/bin/backup # nightly\n",
        {
            "/etc/crontab": (
                "SHELL=/bin/sh",
                "17 * * * * root  cd / && run-parts --report /etc/cron.hourly",
            ),
            "/etc/cron.d/backup": ("0 2 * * * root /usr/local/bin/backup # nightly",),
        },
    ),
    (
        "an empty crontab, and a name that had a newline",
        "/var/spool/cron/crontabs/root\n/etc/cron.d/a?b\n=@daily /bin/true\n",
        {"/var/spool/cron/crontabs/root": (), "/etc/cron.d/a?b": ("@daily /bin/true",)},
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_crontabs(text: str, want: dict[str, tuple[str, ...]]) -> None:
    assert cron.parse(text) == want


@pytest.mark.parametrize("text", ["=* * * * * root x\n", "/etc/crontab\nnot prefixed\n"])
def test_malformed_crontabs_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        cron.parse(text)


def test_hand_made_timers() -> None:
    text = "a.timer enabled enabled\nb.timer disabled enabled\nc.timer masked -\nd.timer static\n"
    assert cron.parse_timers(text) == {
        "a.timer": "enabled",
        "b.timer": "disabled",
        "c.timer": "masked",
        "d.timer": "static",
    }
    assert cron.parse_timers("") == {}
    with pytest.raises(ValueError, match="not a unit line"):
        cron.parse_timers("lonely.timer\n")
