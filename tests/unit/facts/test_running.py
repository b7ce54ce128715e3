"""The facts of the running system: manager environment, transient units, mounts, processes, and
the sysctl keys; their parsers against sample and malformed output, and the findings they give."""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenix.drift.diff import diff
from phoenix.facts import Facts, gather, manager_env, mounts, processes, script, sysctl, transient
from phoenix.facts.registry import REGISTRY, RUNNING
from phoenix.host.process import CommandResult
from tests.unit.facts.fakes import FakeRunner, LocalRunner, script_output


def answering(stdout: str) -> FakeRunner:
    return FakeRunner({script.COMMAND: CommandResult(0, stdout, "")})


def shell(code: str) -> str:
    return f"sh -c {shlex.quote(code)}"


PARSERS = [
    sysctl.parse,
    manager_env.parse,
    transient.parse,
    mounts.parse,
    processes.parse_deleted,
    processes.parse_outside,
]


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: f"{p.__module__}.{p.__name__}")
@given(
    text=st.text(alphabet=st.sampled_from("ab =/\\:#\t\n\r0-_.DO(deleted)\x00\x85"), max_size=80)
)
def test_any_output_parses_or_is_a_value_error(
    parse: Callable[[str], dict[str, str]], text: str
) -> None:
    try:
        found = parse(text)
    except ValueError:
        return
    assert isinstance(found, dict)
    assert all("\n" not in v for v in found.values())


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: f"{p.__module__}.{p.__name__}")
@given(text=st.text(max_size=200))
def test_any_text_parses_or_is_a_value_error(
    parse: Callable[[str], dict[str, str]], text: str
) -> None:
    with contextlib.suppress(ValueError):
        assert isinstance(parse(text), dict)


# -- sysctl: every namespaced key, but those that change on their own ------------------------


def test_sysctl_keeps_the_namespaced_settings_and_leaves_out_what_changes_alone() -> None:
    text = (
        "net.ipv4.ip_forward = 0\n"
        "net.ipv4.conf.eth0.rp_filter = 2\n"
        "net.ipv4.conf.veth12ab.rp_filter = 2\n"
        "net.ipv6.neigh.docker0.mcast_solicit = 3\n"
        "net.ipv6.neigh.lo.mcast_solicit = 3\n"
        "net.netfilter.nf_conntrack_count = 14\n"
        "net.netfilter.nf_conntrack_tcp_timeout_established = 432000\n"
        "net.netfilter.nf_log.2 = nf_log_ipv4\n"
        "net.ipv4.tcp_fastopen_key = d75e496f-5bf0257f-d7502177-366b029a\n"
        "net.ipv4.tcp_available_congestion_control = reno cubic\n"
        "net.core.netdev_rss_key = 00:00\n"
        "kernel.shm_next_id = -1\n"
        "kernel.sem = 32000\t1024000000\t500\t32000\n"
        "user.max_user_namespaces = 96362\n"
        "fs.mqueue.queues_max = 256\n"
        "kernel.random.boot_id = 1234\n"
    )
    assert sysctl.parse(text) == {
        "fs.mqueue.queues_max": "256",
        "kernel.sem": "32000 1024000000 500 32000",
        "net.ipv4.conf.eth0.rp_filter": "2",
        "net.ipv4.ip_forward": "0",
        "net.ipv6.neigh.lo.mcast_solicit": "3",
        "net.netfilter.nf_conntrack_tcp_timeout_established": "432000",
        "user.max_user_namespaces": "96362",
    }


def test_sysctl_joins_the_lines_of_one_key_and_keeps_the_security_keys() -> None:
    assert sysctl.parse("a.b = 1\na.b = 2\n") == {"a.b": "1 2"}
    assert not any(sysctl.excluded(key) for key in sysctl.SYSCTL_KEYS)


@pytest.mark.parametrize(
    "text", ["a:b = 1\n", "a/b = 1\n", "a = x\x01\n", "a = " + "9" * 5000 + "\n"]
)
def test_sysctl_refuses_keys_and_values_no_kernel_prints(text: str) -> None:
    with pytest.raises(ValueError):
        sysctl.parse(text)


def test_sysctl_command_on_this_machine_is_one_grep_and_one_sed() -> None:
    assert sysctl.SCRIPT.count(" | ") == 1 and "cat" not in sysctl.SCRIPT
    found = sysctl.parse(LocalRunner().run(sysctl.COMMAND).stdout)
    assert found["net.ipv4.ip_forward"] == Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    assert "fs.mqueue.msg_max" in found and "user.max_user_namespaces" in found
    assert not any(key.startswith("kernel.hostname") for key in found)


# -- systemd's manager environment -----------------------------------------------------------


def test_manager_env_sample_and_a_long_value_capped() -> None:
    text = "LANG=C.UTF-8\nPATH=/usr/bin:/bin\ncontainer=lxc\nX=$'a\\nb'\nLONG=" + "x" * 600
    found = manager_env.parse(text)
    assert found["PATH"] == "/usr/bin:/bin" and found["X"] == "$'a\\nb'"
    assert len(found["LONG"]) == manager_env.MAX_VALUE and found["LONG"].endswith("...")


@pytest.mark.parametrize("text", ["novalue\n", "=x\n", "A B=1\n", "A=\x1b[31m\n", "\n"])
def test_manager_env_refuses_what_systemctl_does_not_print(text: str) -> None:
    with pytest.raises(ValueError):
        manager_env.parse(text)


# -- transient units ---------------------------------------------------------------------------


def test_transient_units_of_a_directory_on_this_machine(tmp_path: Path) -> None:
    (tmp_path / "run-u12.service").write_text(
        "# This is a transient unit file\n[Unit]\nDescription=/tmp/x a\n[Service]\n"
        'ExecStart=\nExecStart="/tmp/x" "a\tb"\nRestart=always\n'
    )
    (tmp_path / "run-u12.timer").write_text("[Timer]\nOnCalendar=hourly\nRemainAfterElapse=no")
    (tmp_path / "session-4.scope").write_text("[Scope]\nDescription=Session 4 of User root\n")
    (tmp_path / "user-0.slice").write_text("[Slice]\n")
    (tmp_path / "a b\nc.service").write_text("ExecStart=/bin/true\n")
    code = transient.SCRIPT.replace(transient.DIRECTORY, str(tmp_path))
    result = LocalRunner().run(shell(code))
    assert result.rc == 0, result.stderr
    assert transient.parse(result.stdout) == {
        "a?b?c.service": "ExecStart=/bin/true",
        "run-u12.service": 'Description=/tmp/x a; ExecStart="/tmp/x" "a?b"',
        "run-u12.timer": "OnCalendar=hourly",
    }


def test_transient_without_the_directory_is_empty(tmp_path: Path) -> None:
    code = transient.SCRIPT.replace(transient.DIRECTORY, str(tmp_path / "none"))
    result = LocalRunner().run(shell(code))
    assert (result.rc, transient.parse(result.stdout)) == (0, {})


@pytest.mark.parametrize(
    "text", ["=ExecStart=/x\n", "run.service\n", "#a/b\n", "#\n", "#a\n=x\x07\n", "#a b\n"]
)
def test_transient_refuses_lines_the_script_does_not_print(text: str) -> None:
    with pytest.raises(ValueError):
        transient.parse(text)


def test_transient_value_capped() -> None:
    found = transient.parse("#a.service\n=ExecStart=" + "x" * 1000 + "\n")
    assert len(found["a.service"]) == transient.MAX_VALUE


# -- mounts ------------------------------------------------------------------------------------

MOUNTINFO = (
    "#host web-1\n"
    "1170 1169 0:72 /containers/phoenix_web-1/rootfs / rw,relatime shared:620 - btrfs /dev/loop0 "
    "rw,space_cache=v2\n"
    "1173 1170 0:77 / /dev rw,nosuid - tmpfs none rw,size=492k,mode=755\n"
    "1190 1176 0:59 /proc/cpuinfo /proc/cpuinfo rw,nosuid,nodev,relatime - fuse.lxcfs lxcfs rw\n"
    "1200 1170 0:80 / /run/user/0 rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=100k\n"
    "1201 1170 0:81 / /run/credentials/systemd-sysusers.service ro - ramfs ramfs ro\n"
    "1202 1170 0:82 / /mnt/a\\040b\\134c rw shared:1 master:2 - tmpfs my\\040src rw\n"
    "1203 1170 0:83 / /mnt/a\\040b\\134c rw - ext4 /dev/sdb1 rw\n"
)


def test_mounts_sample() -> None:
    assert mounts.parse(MOUNTINFO) == {
        "/": "btrfs /dev/loop0 /containers/{host}/rootfs",
        "/dev": "tmpfs none /",
        "/mnt/a b\\c": "ext4 /dev/sdb1 /",  # the mount on top
        "/proc/cpuinfo": "fuse.lxcfs lxcfs /proc/cpuinfo",
    }


def test_mounts_of_two_servers_named_apart_are_the_same() -> None:
    other = MOUNTINFO.replace("web-1", "phoenix-baseline-7").replace("phoenix_", "bake_")
    assert mounts.parse(other) == mounts.parse(MOUNTINFO)
    zfs = "#host web-1\n1 2 0:3 / / rw - zfs default/containers/web-1 rw\n"
    assert mounts.parse(zfs) == {"/": "zfs default/containers/{host} /"}
    elsewhere = "#host web-1\n1 2 0:3 /srv/web-12 /x rw - ext4 /dev/x_web-1a rw\n"
    assert mounts.parse(elsewhere) == {"/x": "ext4 /dev/x_web-1a /srv/web-12"}
    unnamed = MOUNTINFO.replace("#host web-1", "#host ")
    assert mounts.parse(unnamed)["/"] == "btrfs /dev/loop0 /containers/phoenix_web-1/rootfs"


@pytest.mark.parametrize(
    "line",
    [
        "1 2 0:3 / /x rw tmpfs tmpfs rw",  # no separator
        "1 2 0:3 / /x rw - tmpfs tmpfs",  # a field short
        "1 2 0:3 / /x rw - tmpfs tmpfs rw extra",
        "x 2 0:3 / /x rw - tmpfs tmpfs rw",
        "1 2 03 / /x rw - tmpfs tmpfs rw",
        "1 2 0:3 / x rw - tmpfs tmpfs rw",  # not an absolute path
        "1 2 0:3 / /x/../y rw - tmpfs tmpfs rw",
        "1 2 0:3 / /x rw - tm/pfs tmpfs rw",
        "1 2 0:3  /x rw - tmpfs tmpfs rw",  # an empty root
        "1 2 0:3 / /x rw - tmpfs tmp\x1bfs rw",
    ],
)
def test_mounts_refuse_lines_mountinfo_does_not_hold(line: str) -> None:
    with pytest.raises(ValueError):
        mounts.parse(f"#host web-1\n{line}\n")


@pytest.mark.parametrize("text", ["", "1 2 0:3 / /x rw - tmpfs tmpfs rw\n", "#host a/b\n"])
def test_mounts_need_their_host_line(text: str) -> None:
    with pytest.raises(ValueError):
        mounts.parse(text)


def test_mounts_on_this_machine() -> None:
    result = LocalRunner().run(shell(mounts.SCRIPT))
    assert result.rc == 0, result.stderr
    found = mounts.parse(result.stdout)
    assert "/" in found and "/proc" in found


# -- processes ---------------------------------------------------------------------------------


def test_processes_sample() -> None:
    text = (
        "D\tkworkerd\t/tmp/.x/kworkerd\nD\tx\t/memfd:x\nD\ty\t/memfd:x\n"
        "O\tminer\t/dev/shm/miner\nO\t\t/root/a\tb\n"
    )
    assert processes.parse_deleted(text) == {"/memfd:x": "x y", "/tmp/.x/kworkerd": "kworkerd"}
    assert processes.parse_outside(text) == {"/dev/shm/miner": "miner", "/root/a\tb": "?"}


def test_processes_names_capped() -> None:
    text = "".join(f"O\tp{i:02}\t/tmp/x\n" for i in range(15))
    assert processes.parse_outside(text)["/tmp/x"].endswith("p09 (+5 more)")


@pytest.mark.parametrize(
    "text", ["X\ta\t/tmp/x\n", "D\t/tmp/x\n", "D\ta\ttmp/x\n", "D\ta\x01\t/x\n", "D\ta\t\n"]
)
def test_processes_refuse_lines_the_script_does_not_print(text: str) -> None:
    with pytest.raises(ValueError):
        processes.parse_deleted(text)


def test_processes_on_this_machine_find_a_deleted_binary_outside(tmp_path: Path) -> None:
    """A copy of `sleep` run from a temporary directory, then deleted: a `D`; while it is there,
    an `O`. Ordinary processes (this test's own shell, find...) give nothing."""
    binary = tmp_path / "phoenix-test-sleeper"
    binary.write_bytes(Path("/bin/sleep").read_bytes())
    binary.chmod(0o755)
    proc = subprocess.Popen([str(binary), "30"])
    try:
        first = LocalRunner().run(shell(processes.SCRIPT)).stdout
        assert processes.parse_outside(first)[str(binary)] == "phoenix-test-sl"
        assert str(binary) not in processes.parse_deleted(first)
        binary.unlink()
        second = LocalRunner().run(shell(processes.SCRIPT)).stdout
        assert processes.parse_deleted(second)[str(binary)] == "phoenix-test-sl"
        assert str(binary) not in processes.parse_outside(second)
        assert not any(exe.startswith("/usr/") for exe in processes.parse_outside(second))
    finally:
        proc.kill()
        proc.wait()


# -- the findings of each kind -----------------------------------------------------------------


def facts(**inventory: dict[str, str]) -> Facts:
    return Facts({}, {}, {}, **inventory)


def found(baseline: Facts, live: Facts) -> list[tuple[str, str, str]]:
    return sorted((f.kind, f.subject, f.severity) for f in diff(baseline, live))


def test_findings_of_the_manager_environment() -> None:
    was = facts(manager_env={"PATH": "/usr/bin", "LANG": "C"})
    now = facts(manager_env={"PATH": "/tmp:/usr/bin", "LD_PRELOAD": "/tmp/x.so"})
    assert found(was, now) == [
        ("manager_env.added", "LD_PRELOAD", "high"),
        ("manager_env.changed", "PATH", "high"),
        ("manager_env.removed", "LANG", "low"),
    ]


def test_findings_of_transient_units() -> None:
    was = facts(transient={"a.service": "ExecStart=/usr/bin/a", "b.timer": "OnCalendar=daily"})
    now = facts(transient={"a.service": "ExecStart=/tmp/a", "run-u9.service": "ExecStart=/tmp/x"})
    assert found(was, now) == [
        ("transient.added", "run-u9.service", "high"),
        ("transient.changed", "a.service", "medium"),
    ]


def test_findings_of_mounts() -> None:
    was = facts(mounts={"/": "btrfs /dev/loop0 /", "/dev": "tmpfs none /", "/srv": "tmpfs a /"})
    now = facts(
        mounts={"/": "btrfs /dev/loop0 /", "/dev": "tmpfs none /x", "/usr/bin": "tmpfs none /"}
    )
    assert found(was, now) == [
        ("mount.added", "/usr/bin", "high"),
        ("mount.changed", "/dev", "medium"),
        ("mount.removed", "/srv", "medium"),
    ]


def test_findings_of_processes_only_when_they_appear() -> None:
    was = facts(processes_deleted={}, processes_outside={"/opt2/x": "x"})
    now = facts(
        processes_deleted={"/tmp/k": "kworkerd"},
        processes_outside={"/dev/shm/m": "miner", "/opt2/x": "y"},
    )
    assert found(was, now) == [
        ("process.deleted", "/tmp/k", "high"),
        ("process.outside", "/dev/shm/m", "high"),
    ]
    assert found(now, was) == []  # gone, or other names: no finding


def test_findings_of_sysctl_only_on_keys_of_both_sides() -> None:
    old = facts(sysctl={"net.ipv4.ip_forward": "0"})  # a baseline of the 16 keys only
    now = facts(sysctl={"net.ipv4.ip_forward": "1", "net.ipv4.conf.eth0.rp_filter": "0"})
    assert found(old, now) == [("sysctl.changed", "net.ipv4.ip_forward", "medium")]


def test_every_kind_of_the_running_system_says_what_it_means() -> None:
    assert all(kind.meaning for fact in RUNNING for kind in fact.kinds())
    assert set(RUNNING) <= set(REGISTRY)


NEW = ("manager_env", "transient", "mounts", "processes_deleted", "processes_outside")


@pytest.mark.parametrize("section", NEW)
def test_a_new_section_that_fails_is_unread_and_one_unreadable_invalid(section: str) -> None:
    failed = gather(answering(script_output(**{section: (127, "")})), ["/etc"])
    unread = gather(answering(script_output(**{section: (0, "=what\nis this")})), ["/etc"])
    fact = next(fact for fact in REGISTRY if fact.name == section)
    assert (failed.get(fact), unread.get(fact)) == ({}, {})
    assert list(failed.unread) == [section] and list(unread.invalid) == [section]
    assert not failed.invalid and not unread.unread
    assert all(unread.get(other) == {} for other in RUNNING if other is not fact)
