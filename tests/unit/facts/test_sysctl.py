"""The sysctl fact: the security-relevant kernel settings, from /proc/sys."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix.facts import sysctl
from tests.unit.facts.fakes import LocalRunner, cases, expected, output


@pytest.mark.parametrize("case", cases("sysctl"))
def test_recorded_output(case: str) -> None:
    want = expected(f"sysctl/{case}.json")["sysctl"]
    assert sysctl.parse(output(f"sysctl/{case}.out")) == want


def test_recorded_container_lacks_some_keys() -> None:
    found = sysctl.parse(output("sysctl/bookworm-minbase.out"))
    assert found["kernel.randomize_va_space"] == "2"
    assert "kernel.yama.ptrace_scope" not in found  # no Yama in the lab's kernel
    assert set(found) < set(sysctl.SYSCTL_KEYS)


HAND_MADE: list[tuple[str, str, dict[str, str]]] = [
    ("nothing", "", {}),
    (
        "a missing key is simply absent; tabs of a multi-value become spaces",
        "net.ipv4.ip_forward = 0\nkernel.printk = 4\t4\t1\t7\nkernel.sysrq = 176\n",
        {"kernel.printk": "4 4 1 7", "kernel.sysrq": "176", "net.ipv4.ip_forward": "0"},
    ),
    ("an empty value", "kernel.core_pattern = \n", {"kernel.core_pattern": ""}),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_output(text: str, want: dict[str, str]) -> None:
    assert sysctl.parse(text) == want


@pytest.mark.parametrize("text", ["net.ipv4.ip_forward=0\n", " = 1\n", "a b = 1\n"])
def test_malformed_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        sysctl.parse(text)


def test_keys_map_to_proc_sys() -> None:
    assert sysctl.path("kernel.yama.ptrace_scope") == "/proc/sys/kernel/yama/ptrace_scope"
    assert len(set(sysctl.SYSCTL_KEYS)) == 16


def test_command_on_this_machine_reads_proc_sys() -> None:
    found = sysctl.parse(LocalRunner().run(sysctl.COMMAND).stdout)
    for key in sysctl.SYSCTL_KEYS:
        proc = Path(sysctl.path(key))
        try:
            value = " ".join(proc.read_text().split())
        except OSError:
            assert key not in found, key
        else:
            assert found[key] == value, key
