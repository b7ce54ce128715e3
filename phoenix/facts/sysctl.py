r"""Kernel settings: every sysctl a container can read and set (its own namespaces), read from
/proc/sys, and the settings that matter to security.

A compromised server can change its kernel's behaviour without touching a file: `sysctl -w` of a
network setting (forwarding, redirects, rp_filter), of a user-namespace limit, of an IPC limit. The
settings of a container's own namespaces are all recorded:

- net.* (the network namespace: /proc/sys/net), user.* (/proc/sys/user), fs.mqueue.*;
- the IPC and UTS keys of kernel.*: kernel.shm*, kernel.msg*, kernel.sem, kernel.domainname
  (not kernel.hostname, which LXD sets to each server's own name);
- the security keys of SYSCTL_KEYS (kernel.randomize_va_space, fs.protected_symlinks...), which a
  container reads but cannot set: they follow the host.

One `grep` prints every line of every readable file (`PATH:LINE`, a line each, so no value can
hold a newline) and one `sed` turns it into `key = value`, as `sysctl` prints them:

    net.ipv4.ip_forward = 0
    net.ipv4.tcp_syncookies = 1
    kernel.sem = 32000\t1024000000\t500\t32000
    kernel.printk = 4\t4\t1\t7

A file the kernel does not have, or that cannot be read (write-only `net.ipv4.route.flush`, an
unset `stable_secret`, `kernel.yama.ptrace_scope` without Yama), is not printed and not in the
fact. A value of several fields (or lines) keeps them in one string, separated by single spaces
("4 4 1 7").

Left out (`excluded()`), as they change on their own on a healthy server:
- counters and state: keys ending in `_nr`, `-nr`, `_state`, `stats`, `_count`
  (`net.netfilter.nf_conntrack_count`), and `kernel.{shm,msg,sem}_next_id` (reset by the kernel
  after one use);
- random values: `*fastopen_key` (TCP Fast Open's key), `net.core.netdev_rss_key`, kernel.random.*;
- what follows the modules the host loads: `*available_*` (tcp_available_congestion_control,
  mptcp's available schedulers), `net.netfilter.nf_log.*` (bound when the host loads a logger),
  `net.netfilter.nf_conntrack_buckets` (the host's hash size);
- per-interface keys (net.ipv4.conf.IF.*, net.ipv6.conf.IF.*, net.*.neigh.IF.*) but for `all`,
  `default`, `lo` and `eth0`: a container's own interfaces; others come and go (veth, tunnels).
A key on one side only is no finding (a module the host loads brings new keys), so older
baselines, of the security keys only, still compare.
"""

from __future__ import annotations

import re
import shlex

from phoenix.facts import fields

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
# the namespaced settings: directories read whole, and files (globs) of kernel's IPC and UTS keys
NAMESPACED = (
    "/proc/sys/net",
    "/proc/sys/user",
    "/proc/sys/fs/mqueue",
    "/proc/sys/kernel/shm*",
    "/proc/sys/kernel/msg*",
    "/proc/sys/kernel/sem",
    "/proc/sys/kernel/domainname",
)
INTERFACES = ("all", "default", "lo", "eth0")  # per-interface keys kept for these only
MAX_VALUE = 4096

_EXCLUDED = re.compile(
    r"""
    .*(_nr|-nr|_state|stats|_count)$
    | kernel\.(shm|msg|sem)_next_id$
    | kernel\.random\..*
    | .*fastopen_key$
    | net\.core\.netdev_rss_key$
    | .*available_.*
    | net\.netfilter\.nf_log\..*
    | net\.netfilter\.nf_conntrack_buckets$
    """,
    re.VERBOSE,
)
_PER_INTERFACE = re.compile(r"net\.[a-z0-9]+\.(conf|neigh)\.([^.]+)\..+")


def path(key: str) -> str:
    """The file under /proc/sys that holds `key`."""
    return "/proc/sys/" + key.replace(".", "/")


def excluded(key: str) -> bool:
    """Whether `key` changes on its own on a healthy server, and is left out (see above)."""
    if key in SYSCTL_KEYS:
        return False
    interface = _PER_INTERFACE.fullmatch(key)
    if interface and interface.group(2) not in INTERFACES:
        return True
    return _EXCLUDED.fullmatch(key) is not None


# grep: `PATH:LINE` for each line of each readable file (-s: no word of the unreadable ones);
# sed: keeps the line (h), cuts it to PATH, whose slashes become dots (y), appends the line (G),
# and replaces its `\nPATH:` by ` = `: `key = LINE`. One process each, whatever the keys.
SCRIPT = (
    "grep -rs -- '' "
    + " ".join(NAMESPACED)
    + "".join(f" {path(key)}" for key in SYSCTL_KEYS if not key.startswith("net."))
    + " | sed -e 'h; s/:.*//; y|/|.|; G; s/\\n[^:]*:/ = /; s/^\\.proc\\.sys\\.//'\n"
)
COMMAND = f"sh -c {shlex.quote(SCRIPT)}"


def parse(text: str) -> dict[str, str]:
    """Key -> value (the lines of a key joined); raise ValueError on a line that is not
    `key = value`, or on a key or value that no kernel prints."""
    found: dict[str, str] = {}
    for line in fields.records(text):
        if not line:
            continue
        key, sep, value = line.partition(" = ")
        if not sep:
            raise ValueError(f"sysctl line {fields.shown(line)} is not `key = value`")
        fields.name(key, "sysctl key")
        value = " ".join(value.split())
        fields.plain(value, f"value of {key}", MAX_VALUE)
        if excluded(key):
            continue
        found[key] = f"{found[key]} {value}".strip() if key in found else value
    return dict(sorted(found.items()))
