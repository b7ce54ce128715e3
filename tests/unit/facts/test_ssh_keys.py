"""The ssh_keys fact: the authorized key lines of each user, recorded, hand-made and run here."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.facts import ssh_keys
from tests.unit.facts.fakes import LocalRunner, cases, expected, output

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO9OODLmDeJVcs/7zV9CLsU98Huka6ek0nYwLOe+iQkw op"


@pytest.mark.parametrize("case", cases("ssh_keys"))
def test_recorded_output(case: str) -> None:
    want = expected(f"ssh_keys/{case}.json")["ssh_keys"]
    found = ssh_keys.parse(output(f"ssh_keys/{case}.out"))
    assert found == {user: tuple(lines) for user, lines in want.items()}


HAND_MADE: list[tuple[str, str, dict[str, tuple[str, ...]]]] = [
    ("nothing", "", {}),
    (
        "comments, blank lines and whitespace are dropped; options and comments of a key stay",
        f"root:# operator\nroot:\nroot:   \nroot:  {KEY}  \r\n"
        f'root:  # indented comment\nroot:from="10.0.0.0/8",no-pty {KEY} ci@build\n',
        {"root": (KEY, f'from="10.0.0.0/8",no-pty {KEY} ci@build')},
    ),
    (
        "a user with only comments is left out; a colon inside a key line stays",
        f'bin:# nothing here\nalice:{KEY}\nalice:command="echo a:b" {KEY}\n',
        {"alice": (KEY, f'command="echo a:b" {KEY}')},
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_output(text: str, want: dict[str, tuple[str, ...]]) -> None:
    assert ssh_keys.parse(text) == want


@pytest.mark.parametrize("text", ["no colon at all\n", f":{KEY}\n"])
def test_malformed_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        ssh_keys.parse(text)


def test_script_reads_both_files_of_each_home_in_order(tmp_path: Path) -> None:
    """Over a fake `getent`: homes that exist only, both files, a last line without a newline."""
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "authorized_keys").write_text(f"# keys\n{KEY} a\n")
    (home / ".ssh" / "authorized_keys2").write_text(f"{KEY} b")
    bin_dir.mkdir()
    getent = bin_dir / "getent"
    getent.write_text(
        "#!/bin/sh\n"
        f"echo 'me:x:1:1::{home}:/bin/sh'\n"
        "echo 'ghost:x:2:2::/phoenix-no-such-home:/bin/sh'\n"
        "echo 'nohome:x:3:3:::/bin/sh'\n"
    )
    getent.chmod(0o755)
    result = LocalRunner().run(f"PATH={bin_dir}:$PATH " + ssh_keys.COMMAND)
    assert result.rc == 0, result.stderr
    assert result.stdout == f"me:# keys\nme:{KEY} a\nme:{KEY} b\n"
    assert ssh_keys.parse(result.stdout) == {"me": (f"{KEY} a", f"{KEY} b")}
