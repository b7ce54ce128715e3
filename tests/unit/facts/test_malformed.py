"""Every parser against what a compromised server may print: it returns, or raises ValueError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoenix.facts import files, packages, ports, services, ssh_keys, users

HASH = "a" * 64
END = "#sha256\0#end 0 0\0"


def rec(path: str, head: str = "f 644 0 0 3 1.0 2.0 7", target: str = "") -> str:
    return f"{head}\0root\0root\0{path}\0{target}\0"


def parse_files(text: str) -> Any:
    return files.parse(text, roots=("/etc", "/srv"))


PARSERS: dict[str, Callable[[str], Any]] = {
    "files": parse_files,
    "packages": packages.parse,
    "services": services.parse,
    "users": users.parse,
    "groups": users.parse_groups,
    "ssh_keys": ssh_keys.parse,
    "ports": ports.parse,
}

MALFORMED: list[tuple[str, Callable[[str], Any], str, str]] = [
    # files: the records
    ("files", parse_files, rec("/etc/a", "f 9z9 0 0 3 1.0 2.0 7") + END, "not octal"),
    ("files", parse_files, rec("/etc/a", "f 64 4 0 0 3 1.0 2.0") + END, "not octal|number"),
    ("files", parse_files, rec("/etc/a", "x 644 0 0 3 1.0 2.0 7") + END, "not a file record"),
    ("files", parse_files, rec("/etc/a", "f 644 -1 0 3 1.0 2.0 7") + END, "uid"),
    ("files", parse_files, rec("/etc/a", "f 644 0 -5 3 1.0 2.0 7") + END, "gid"),
    ("files", parse_files, rec("/etc/a", "f 644 0 0 3x 1.0 2.0 7") + END, "size"),
    ("files", parse_files, rec("/etc/a", "f 644 0 0 3 1e9 2.0 7") + END, "mtime"),
    ("files", parse_files, rec("/etc/a", "f 644 0 0 3 1.0 nan 7") + END, "ctime"),
    ("files", parse_files, rec("/etc/a", "f 644 0 0 3 1.0 2.0 ") + END, "inode"),
    ("files", parse_files, rec("/etc/../root/x") + END, "normalised"),
    ("files", parse_files, rec("/etc/./a") + END, "normalised"),
    ("files", parse_files, rec("etc/a") + END, "absolute"),
    ("files", parse_files, rec("/root/.ssh/id_rsa") + END, "outside the roots"),
    ("files", parse_files, rec("/etcetera") + END, "outside the roots"),
    ("files", parse_files, rec("/etc/a", target="/x") + END, "link target"),
    ("files", parse_files, rec("/etc/l", "l 777 0 0 3 1.0 2.0 7") + END, "link target"),
    ("files", parse_files, "f 644 0 0 3 1.0 2.0 7\0ro ot\0root\0/etc/a\0\0" + END, "owner"),
    ("files", parse_files, "f 644 0 0 3 1.0 2.0 7\0root\0ro\not\0/etc/a\0\0" + END, "group"),
    # files: the hashes, the names section, the end, truncation
    ("files", parse_files, f"#sha256\0{HASH}  /root/x\0#end 0 0\0", "outside the roots"),
    ("files", parse_files, f"#sha256\0{'A' * 64}  /etc/a\0#end 0 0\0", "SHA-256"),
    ("files", parse_files, f"#sha256\0{HASH}  /etc/../x\0#end 0 0\0", "normalised"),
    ("files", parse_files, "#names\0u -1 root\0#records\0" + END, "user id"),
    ("files", parse_files, "#names\0u 0 ro:ot\0#records\0" + END, "user name"),
    ("files", parse_files, "#names\0x 0 root\0#records\0" + END, "name entry"),
    ("files", parse_files, "#names\0u 0 root\0#records\0" + rec("/etc/a") + END, "owner id"),
    ("files", parse_files, "#names\0u 0 root\0", "ended early"),
    ("files", parse_files, rec("/etc/a")[:-6], "ended"),
    ("files", parse_files, "#sha256\0#end 0 -1\0", "exit code"),
    # packages
    ("packages", packages.parse, "bash\t5.2 1\tamd64\tii \n", "version"),
    ("packages", packages.parse, "ba sh\t5.2\tamd64\tii \n", "package name"),
    ("packages", packages.parse, "bash\t5.2\tam/d64\tii \n", "architecture"),
    ("packages", packages.parse, "bash\t5.2\tamd64\tzz \n", "status"),
    ("packages", packages.parse, "bash\t5.2\tamd64\n", "not a package line"),
    ("packages", packages.parse, "bash\t5.2\x00\tamd64\tii \n", "version"),
    # services
    ("services", services.parse, "a.service\x1benabled enabled\n--\n--\n", "unit"),
    ("services", services.parse, "a\x0bb.service enabled x\n--\n--\n", "unit"),
    ("services", services.parse, "a.service enabled\n--\na.service loaded active\n--\n", "unit"),
    ("services", services.parse, "a.service en\x00abled\n--\n--\n", "unit state"),
    ("services", services.parse, "--\n", "3 sections"),
    # users and groups
    ("users", users.parse, "root:x:-1:0::/root:/bin/sh\n", "uid"),
    ("users", users.parse, "root:x:0:0::/root/../etc:/bin/sh\n", "home"),
    ("users", users.parse, "root:x:0:0::root:/bin/sh\n", "home"),
    ("users", users.parse, "root:x:0:0::/root:sh\n", "shell"),
    ("users", users.parse, "ro ot:x:0:0::/root:/bin/sh\n", "user name"),
    ("users", users.parse, "root:x:0:0::/root\n", "not a passwd line"),
    ("groups", users.parse_groups, "sudo:x:27:alice,b ob\n", "group member"),
    ("groups", users.parse_groups, "sudo:x:2 7:\n", "gid"),
    ("groups", users.parse_groups, ":x:27:\n", "group name"),
    # ssh keys
    ("ssh_keys", ssh_keys.parse, "root:ssh-ed25519 AAAA\x1b[2Jx\n", "control characters"),
    ("ssh_keys", ssh_keys.parse, "ro ot:ssh-ed25519 AAAA\n", "user name"),
    ("ssh_keys", ssh_keys.parse, "no colon\n", "user:line"),
    # ports
    ("ports", ports.parse, "tcp LISTEN 0 128 0.0.0.0:99999 0.0.0.0:*\n", "above 65535"),
    ("ports", ports.parse, "tcp LISTEN 0 128 0.0.0.0:-1 0.0.0.0:*\n", "address and port"),
    ("ports", ports.parse, "sctp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n", "protocol"),
    ("ports", ports.parse, "tcp\tLISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n", "control"),
    ("ports", ports.parse, 'tcp LISTEN 0 1 *:22 *:* users:(("a\x1bb",pid=1,fd=3))\n', "control"),
    ("ports", ports.parse, "tcp LISTEN 0 128 [::1:22 [::]:*\n", "brackets"),
]


@pytest.mark.parametrize(
    ("parse", "text", "match"),
    [c[1:] for c in MALFORMED],
    ids=[f"{c[0]}-{i}" for i, c in enumerate(MALFORMED)],
)
def test_malformed_output_is_a_value_error_naming_the_field(
    parse: Callable[[str], Any], text: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        parse(text)


def test_separators_are_the_commands_own_not_any_line_break() -> None:
    """A line break splitlines() knows (\\x1c, \\u2028...) is no record separator: a user whose
    name holds one is one (invalid) record, not two valid ones."""
    for brk in ("\x1c", "\x1e", "\x85", "\u2028", "\r", "\x0b"):
        with pytest.raises(ValueError):
            users.parse(f"root:x:0:0::/root:/bin/sh{brk}evil:x:0:0::/:/bin/sh\n")
    assert files.parse(rec("/etc/a\u2028b") + END).files.keys() == {"/etc/a\u2028b"}


def test_a_file_mode_without_leading_zeros_is_read() -> None:
    """find's %m prints `0` for mode 000 and `40` for 040."""
    found = files.parse(
        rec("/etc/a", "f 0 0 0 3 1.0 2.0 7") + rec("/etc/b", "f 40 0 0 3 1 2 8") + END
    )
    assert {p: f.mode for p, f in found.files.items()} == {"/etc/a": "0000", "/etc/b": "0040"}


def test_homes_with_a_trailing_slash_and_empty_shells_are_read() -> None:
    found = users.parse("lxd:x:999:100::/var/lib/lxd/:\n")
    assert (found["lxd"].home, found["lxd"].shell) == ("/var/lib/lxd/", "")


FIELD = st.text(alphabet=st.sampled_from('f 0749:/.\t\n\0-_a#x*[]()"=,@%\x1b\u2028'), max_size=40)


@pytest.mark.parametrize("area", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(max_size=200), FIELD, st.lists(FIELD).map("\n".join)))
def test_any_text_is_parsed_or_a_value_error(area: str, text: str) -> None:
    with contextlib.suppress(ValueError):
        PARSERS[area](text)


@settings(max_examples=200, deadline=None)
@given(
    head=st.lists(st.sampled_from(["f", "l", "644", "0", "-1", "1.5", "x", ""]), max_size=9),
    path=st.sampled_from(["/etc/a", "/etc/../a", "/x", "", "/etc//a", "/etc/a/"]),
    tail=st.sampled_from([END, "#sha256\0", "", f"#sha256\0{HASH}  /etc/a\0#end 0 0\0"]),
)
def test_files_records_near_the_format_are_parsed_or_a_value_error(
    head: list[str], path: str, tail: str
) -> None:
    with contextlib.suppress(ValueError):
        parse_files(f"{' '.join(head)}\0root\0root\0{path}\0\0{tail}")
