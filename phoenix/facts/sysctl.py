"""Kernel settings that matter to security: a fixed list of sysctl keys, read from /proc/sys.

Sample output of the command (`key = value`, as `sysctl` prints them; only cat is needed):

    net.ipv4.ip_forward = 0
    net.ipv4.tcp_syncookies = 1
    kernel.randomize_va_space = 2
    kernel.printk = 4\t4\t1\t7

A key the kernel does not have, or that a container may not read (`kernel.yama.ptrace_scope`
without Yama, `net.core.bpf_jit_harden` without a JIT), is not printed and not in the fact. A value
of several fields keeps them in one string, separated by single spaces ("4 4 1 7").
"""

from __future__ import annotations

import shlex

SYSCTL_KEYS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.all.send_redirects",
    "net.ipv4.conf.all.accept_source_route",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.tcp_syncookies",
    "net.ipv6.conf.all.forwarding",
    "kernel.randomize_va_space",
    "kernel.kptr_restrict",
    "kernel.dmesg_restrict",
    "kernel.yama.ptrace_scope",
    "fs.protected_symlinks",
    "fs.protected_hardlinks",
    "fs.suid_dumpable",
    "kernel.sysrq",
    "net.core.bpf_jit_harden",
)


def path(key: str) -> str:
    """The file under /proc/sys that holds `key`."""
    return "/proc/sys/" + key.replace(".", "/")


SCRIPT = (
    'v() { if [ -r "$2" ] && x=$(cat -- "$2" 2>/dev/null); then printf \'%s = %s\\n\' "$1" "$x"; '
    "fi; }\n" + "".join(f"v {key} {path(key)}\n" for key in SYSCTL_KEYS)
)
COMMAND = f"sh -c {shlex.quote(SCRIPT)}"


def parse(text: str) -> dict[str, str]:
    """Key -> value; raise ValueError on a line that is not `key = value`."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition(" = ")
        if not sep or not key or " " in key:
            raise ValueError(f"not a `key = value` line: {line!r}")
        found[key] = " ".join(value.split())
    return dict(sorted(found.items()))
