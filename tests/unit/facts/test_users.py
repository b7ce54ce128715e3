"""The users and groups facts: `getent passwd` and `getent group`, recorded and hand-made."""

from __future__ import annotations

import grp
import pwd
from dataclasses import asdict

import pytest

from phoenix.facts import users
from phoenix.facts.users import Group, User
from tests.unit.facts.fakes import LocalRunner, cases, expected, output


@pytest.mark.parametrize("case", cases("users"))
def test_recorded_users(case: str) -> None:
    want = expected(f"users/{case}.json")
    found = users.parse(output(f"users/{case}.out"))
    assert len(found) == want["count"]
    for name, user in want["users"].items():
        assert asdict(found[name]) == user, name


@pytest.mark.parametrize("case", cases("groups"))
def test_recorded_groups(case: str) -> None:
    want = expected(f"groups/{case}.json")
    found = users.parse_groups(output(f"groups/{case}.out"))
    assert len(found) == want["count"]
    for name, group in want["groups"].items():
        assert asdict(found[name]) | {"members": list(found[name].members)} == group, name


def test_recorded_changed_server_has_the_new_user_without_a_home_directory() -> None:
    found = users.parse(output("users/bookworm-changed.out"))
    assert found["snow"].home == "/home/snow" and found["snow"].shell == "/bin/bash"
    assert found["ghost"].home == "/home/ghost"  # useradd -M: listed, its directory missing
    assert "snow" not in users.parse(output("users/bookworm-minbase.out"))


HAND_MADE_USERS: list[tuple[str, str, dict[str, User]]] = [
    ("nothing", "", {}),
    (
        "a user with no home, a comment with spaces, a blank line",
        "root:x:0:0:root:/root:/bin/bash\n\nsvc:!:999:999:Some Service,,,::/usr/sbin/nologin\n",
        {
            "root": User("root", 0, 0, "/root", "/bin/bash"),
            "svc": User("svc", 999, 999, "", "/usr/sbin/nologin"),
        },
    ),
    (
        "a name from two name services keeps its first entry; an empty shell",
        "alice:x:1000:1000::/home/alice:\nalice:*:2000:2000::/ldap/alice:/bin/zsh\n",
        {"alice": User("alice", 1000, 1000, "/home/alice", "")},
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE_USERS], ids=[c[0] for c in HAND_MADE_USERS]
)
def test_hand_made_users(text: str, want: dict[str, User]) -> None:
    assert users.parse(text) == want


HAND_MADE_GROUPS: list[tuple[str, str, dict[str, Group]]] = [
    ("nothing", "", {}),
    (
        "no members, one, several, and a trailing comma",
        "root:x:0:\nsudo:x:27:alice\nstaff:x:50:alice,bob,\n",
        {
            "root": Group("root", 0, ()),
            "staff": Group("staff", 50, ("alice", "bob")),
            "sudo": Group("sudo", 27, ("alice",)),
        },
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE_GROUPS], ids=[c[0] for c in HAND_MADE_GROUPS]
)
def test_hand_made_groups(text: str, want: dict[str, Group]) -> None:
    assert users.parse_groups(text) == want


@pytest.mark.parametrize(
    "text",
    [
        "root:x:0:0:root:/root\n",
        "root:x:0:0:root:/root:/bin/bash:extra\n",
        "root:x:zero:0:root:/root:/bin/bash\n",
        ":x:0:0:root:/root:/bin/bash\n",
    ],
)
def test_malformed_passwd_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        users.parse(text)


@pytest.mark.parametrize("text", ["root:x:0\n", "root:x::\n", "root:x:0:a:b\n"])
def test_malformed_group_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        users.parse_groups(text)


def test_commands_on_this_machine_match_pwd_and_grp() -> None:
    found = users.parse(LocalRunner().run(users.COMMAND).stdout)
    root = pwd.getpwnam("root")
    assert found["root"] == User("root", root.pw_uid, root.pw_gid, root.pw_dir, root.pw_shell)
    assert set(found) == {p.pw_name for p in pwd.getpwall()}
    groups = users.parse_groups(LocalRunner().run(users.GROUPS_COMMAND).stdout)
    assert {name: g.gid for name, g in groups.items()} == {
        g.gr_name: g.gr_gid for g in grp.getgrall()
    }
