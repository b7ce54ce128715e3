"""The cron and timers facts: crontab entries and systemd timer unit files."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.facts import cron
from phoenix.facts.registry import CRON
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


AWS = "AKIAZ3MHALF6E5XGVNPQ"


def test_a_secret_in_a_crontab_is_redacted_the_same_way_every_time() -> None:
    text = (
        "/etc/cron.d/sync\n"
        f"=*/5 * * * * root AWS_ACCESS_KEY_ID={AWS} /usr/local/bin/sync\n"
        "=0 2 * * * root mysql --password=S3cr3tP4ss -e 'select 1'\n"
        "=17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n"
    )
    found = cron.parse(text)
    entries = found["/etc/cron.d/sync"]
    assert AWS not in str(found) and "S3cr3tP4ss" not in str(found)
    assert entries[0].startswith("*/5 * * * * root AWS_ACCESS_KEY_ID=<redacted: AWS Access Key")
    assert entries[0].endswith("> /usr/local/bin/sync")
    assert entries[2] == "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly"
    assert cron.parse(text) == found  # stable: the same secret, the same redacted entry
    assert cron.redacted(entries) == entries
    record = CRON.to_plain(found)
    assert CRON.from_plain(record) == found
    old = {"/etc/cron.d/sync": [f"* * * * * root K={AWS} x"]}  # stored before redaction
    assert AWS not in str(CRON.from_plain(old))


@pytest.mark.parametrize(
    "text",
    [
        "/etc/crontab\n=* * * * * root echo \x1b[31mred\n",  # a control character
        "/etc/crontab\n=* * * * * root a\rb\n",  # a carriage return inside an entry
        "/etc/crontab\n=* * * * * root " + "x" * 5000 + "\n",  # too long
        "/etc/passwd\n=root:x:0:0\n",  # not a crontab
        "/etc/cron.d/../shadow\n=x\n",  # not normalised
        "/etc/cron.d/a\x00b\n=x\n",
        "relative\n",
    ],
)
def test_hostile_crontabs_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        cron.parse(text)


def test_a_line_feed_is_the_only_separator() -> None:
    assert cron.parse("/etc/crontab\n=@daily a\u2028b\n") == {"/etc/crontab": ("@daily a\u2028b",)}


@pytest.mark.parametrize(
    "text", ["a.timer enabled\x1b[0m -\n", "a\x00.timer enabled -\n", "a/b.timer enabled\n"]
)
def test_hostile_timers_are_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        cron.parse_timers(text)


PIECES = ["/etc/crontab", "/etc/cron.d/x", "=", "\n", "\r", "\t", " ", "#", "a", "\x00", "\x1b",
          "\u2028", "/", ".", "a.timer enabled -"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=5)).map("".join))
def test_any_text_parses_or_is_a_value_error(text: str) -> None:
    for parse in (cron.parse, cron.parse_timers):
        with contextlib.suppress(ValueError):
            parse(text)
