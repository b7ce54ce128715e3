"""The packages fact: dpkg-query's output, recorded and hand-made."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from phoenix.errors import CommandError
from phoenix.facts import packages
from phoenix.facts.packages import Package
from phoenix.host.process import CommandResult
from tests.unit.facts.fakes import FakeRunner, cases, expected, output


@pytest.mark.parametrize("case", cases("packages"))
def test_recorded_output(case: str) -> None:
    want = expected(f"packages/{case}.json")
    found = packages.parse(output(f"packages/{case}.out"))
    assert len(found) == want["count"]
    for key, package in want["packages"].items():
        assert asdict(found[key]) == package, key


HAND_MADE: list[tuple[str, str, dict[str, Package]]] = [
    ("nothing", "", {}),
    (
        "installed, held, removed with config files left, half-installed, unknown",
        "bash\t5.2.15-2\tamd64\tii \n"
        "vim\t2:9.0.1378-2\tamd64\thi \n"
        "nano\t7.2-1\tamd64\trc \n"
        "curl\t7.88.1-10\tamd64\tiH \n"
        "zsh\t\t\tun \n",
        {
            "bash": Package("bash", "5.2.15-2", "amd64"),
            "vim": Package("vim", "2:9.0.1378-2", "amd64"),
        },
    ),
    (
        "one name for two architectures, another for one",
        "libc6\t2.36-9\ti386\tii \nlibc6\t2.36-9\tamd64\tii \nlibgcc-s1\t12.2.0-14\ti386\tii \n",
        {
            "libc6:amd64": Package("libc6", "2.36-9", "amd64"),
            "libc6:i386": Package("libc6", "2.36-9", "i386"),
            "libgcc-s1": Package("libgcc-s1", "12.2.0-14", "i386"),
        },
    ),
    (
        "a second architecture that is only removed does not split the key",
        "libc6\t2.36-9\tamd64\tii \nlibc6\t2.36-9\ti386\trc \n",
        {"libc6": Package("libc6", "2.36-9", "amd64")},
    ),
    (
        "dpkg flags an error in the third letter",
        "base-files\t12.4\tamd64\tiiR\n",
        {"base-files": Package("base-files", "12.4", "amd64")},
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_output(text: str, want: dict[str, Package]) -> None:
    assert packages.parse(text) == want


@pytest.mark.parametrize("text", ["bash 5.2 amd64 ii\n", "bash\t5.2\tamd64\n", "\t1\tall\tii \n"])
def test_malformed_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a package line"):
        packages.parse(text)


def test_gather_runs_dpkg_query_once() -> None:
    fake = FakeRunner({packages.COMMAND: CommandResult(0, "bash\t5.2\tamd64\tii \n", "")})
    assert packages.gather(fake, timeout=9) == {"bash": Package("bash", "5.2", "amd64")}
    assert [(c.args, c.timeout) for c in fake.calls] == [((), 9)]


def test_gather_failure_names_server_command_and_reason() -> None:
    stderr = "dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7:\n  bad line\n"
    fake = FakeRunner({packages.COMMAND: CommandResult(2, "", stderr)})
    with pytest.raises(CommandError, match=r"^web-1: `dpkg-query -W` failed \(exit 2\): bad line$"):
        packages.gather(fake)


def test_gather_turns_unreadable_output_into_a_command_error() -> None:
    fake = FakeRunner({packages.COMMAND: CommandResult(0, "garbage\n", "")})
    with pytest.raises(CommandError, match="cannot read: not a package line"):
        packages.gather(fake)
