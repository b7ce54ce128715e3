"""Drift at scale: phoenix's scan fan-out against N sshd on this machine, and OpenSSH's client.

For each N (`--servers 10 50 200`), N sshd run here (`/usr/sbin/sshd -D -e -f CONF`), each on its
own loopback address 127.77.x.y, port 2222 (never 22, never outside 127.0.0.0/8), each with its
own host key, root login by the bench's own key only. Each runs under `unshare --mount
--propagation private` with /tmp/phoenix-scale/srvK bound onto /srv/phoenix-scale, so each sees
its OWN tree of ~200 files at the scanned root; one server in five has a file changed and one
added (two file findings each).

phoenix: a CHILD process gathers the baseline from a pristine server (not timed), then scans all
N with scan_all + scan_server (the fan-out and the per-server scan `phoenix drift` runs: one
connection and one deadline per server, pinned host keys; roots = /srv/phoenix-scale; no hash
cache, no evidence), `--parallel` at once. Its peak RSS is that child's alone (os.wait4's rusage
of it: the RUSAGE_CHILDREN figure of that one child; the sshd are children too). Printed:
servers/s, wall time, peak RSS, and whether the file findings are exactly the changed ones.

Reference: OpenSSH's `ssh` running the same facts script (the command phoenix runs, files
included, output discarded) on the same servers, `--parallel` at once (a thread pool of `ssh`
subprocesses); its servers/s, and the ratio phoenix/reference.

Every sshd (its process group) is killed, and /tmp/phoenix-scale and /srv/phoenix-scale removed,
on exit, Ctrl-C, SIGTERM and errors; the mounts live in the sshd's own namespaces and end with
them. Run as root, by hand: `.venv/bin/python bench/drift_scale.py --servers 10 50 200`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from phoenix.facts.registry import Registry
from phoenix.poll import ticks

REPO = Path(__file__).resolve().parents[1]
# files, packages and services only: the optional facts (the executables and capabilities ones
# walk the whole root file system) would read this one host's root N times over
FACTS = Registry(())
ROOT = "/srv/phoenix-scale"  # the scanned root, as each server sees it
WORK = Path("/tmp/phoenix-scale")
PORT = 2222
SSHD = "/usr/sbin/sshd"
DIRS, FILES = 10, 20  # the tree of each server: 200 files
STAMP = 1_700_000_000  # every file's and dir's mtime: the trees differ only where meant to
START_TIMEOUT = 30.0  # seconds for all sshd of a round to accept connections
SCAN_TIMEOUT = 120.0  # [drift] timeout: each server's whole scan
FILE_KINDS = {"file.added", "file.modified"}


def address(k: int) -> str:
    return f"127.77.{k // 250}.{k % 250 + 1}"


def changed(k: int) -> bool:
    return k % 5 == 2


@dataclass
class Server:
    name: str
    address: str
    port: int
    host_key: str  # "ssh-ed25519 AAAA..."


# -- the servers -----------------------------------------------------------------------------------


def keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
        check=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def tree(dest: Path, k: int) -> None:
    """~200 small config files; a changed server has one edited and one added."""
    for d in range(DIRS):
        (dest / f"d{d:02}").mkdir(parents=True)
        for f in range(FILES):
            (dest / f"d{d:02}" / f"f{f:02}.conf").write_text(f"setting_{d}_{f} = {d * f}\n")
    if changed(k):
        (dest / "d03" / "f07.conf").write_text("setting_3_7 = edited by hand\n")
        (dest / "d00" / "added.conf").write_text("added = by hand\n")
    for path in [dest, *dest.rglob("*")]:
        os.utime(path, (STAMP, STAMP))


SSHD_CONFIG = """\
ListenAddress {address}:{port}
HostKey {host_key}
PidFile none
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
MaxStartups 100
"""


class Lab:
    """The bench's sshd, their files and its operator key; `close` undoes all of it."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.made: list[Path] = []  # directories this bench created, removed at the end
        self.key = WORK / "operator"
        self.known_hosts = WORK / "known_hosts"
        self.authorized = WORK / "authorized_keys"

    def prepare(self) -> None:
        if WORK.exists():
            raise SystemExit(
                f"{WORK} exists: another run is going on, or one crashed; check that no sshd"
                f" of it runs (pgrep -a -f {WORK}), then remove it"
            )
        root = Path(ROOT)
        if root.exists() and any(root.iterdir()):
            raise SystemExit(f"{ROOT} exists and is not empty: it is not this bench's")
        for path in (WORK, root, Path("/run/sshd")):  # sshd's privilege separation directory
            if not path.exists():
                path.mkdir(mode=0o755, parents=True)
                self.made.append(path)
        self.authorized.write_text(keygen(self.key) + "\n")

    def start(self, first: int, count: int) -> list[Server]:
        """Start servers first..first+count-1 and wait until each accepts connections."""
        servers: list[Server] = []
        starting: list[tuple[subprocess.Popen[bytes], Path]] = []
        for k in range(first, first + count):
            run = WORK / "run" / str(k)
            run.mkdir(parents=True)
            tree(WORK / f"srv{k}", k)
            host_key = keygen(run / "host_ed25519")
            conf = run / "sshd_config"
            conf.write_text(
                SSHD_CONFIG.format(
                    address=address(k), port=PORT, host_key=run / "host_ed25519",
                    authorized=self.authorized,
                )
            )  # fmt: skip
            script = f"mount --bind {WORK / f'srv{k}'} {ROOT} && exec {SSHD} -D -e -f {conf}"
            # its own PID namespace too: when sshd (its init) ends, every session it forked
            # (each in a session of its own, out of reach of killpg) is killed by the kernel
            unshare = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork"]
            with (run / "log").open("wb") as log:
                proc = subprocess.Popen(
                    [*unshare, "--kill-child", "sh", "-c", script],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                )  # fmt: skip
            self.procs.append(proc)
            starting.append((proc, run / "log"))
            servers.append(Server(f"scale-{k}", address(k), PORT, host_key))
        for server, (proc, logfile) in zip(servers, starting, strict=True):
            wait_listening(server, proc, logfile)
        with self.known_hosts.open("a") as known:
            for s in servers:
                known.write(f"[{s.address}]:{s.port} {s.host_key}\n")
        return servers

    def close(self) -> None:
        for proc in self.procs:
            with _quiet():
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with _quiet():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()
        for path in reversed(self.made):
            if path == WORK:
                shutil.rmtree(path, ignore_errors=True)
            else:
                with _quiet():
                    path.rmdir()


def _quiet() -> suppress:
    return suppress(ProcessLookupError, OSError)


def wait_listening(server: Server, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in ticks(START_TIMEOUT, 0.05):
        if proc.poll() is not None:
            raise SystemExit(f"{server.name}: sshd exited ({proc.returncode}): {log.read_text()}")
        try:
            with socket.create_connection((server.address, server.port), timeout=2):
                return
        except OSError:
            continue
    raise SystemExit(f"{server.name}: sshd did not listen within {START_TIMEOUT:.0f} s")


# -- phoenix, in a child process -------------------------------------------------------------------


def child(spec_path: Path) -> None:
    """The controller: baseline from a pristine server, then the timed scan of all."""
    from phoenix.drift.diff import Rules
    from phoenix.drift.scan import scan_all, scan_server
    from phoenix.facts import gather
    from phoenix.host import ssh

    spec = json.loads(spec_path.read_text())
    key = Path(spec["key"])
    targets = [
        ssh.Target(name=s["name"], address=s["address"], host_key=s["host_key"], port=s["port"])
        for s in spec["servers"]
    ]
    pristine = next(t for k, t in enumerate(targets) if not changed(k))
    with ssh.connect(pristine, key) as session:
        baseline = gather(session, [ROOT], timeout=SCAN_TIMEOUT, registry=FACTS)
    rules = Rules.with_extra([])

    def one(target: ssh.Target) -> Any:
        return scan_server(
            target, baseline, rules, key, [ROOT], SCAN_TIMEOUT, "bench", "scale", registry=FACTS
        )

    started = time.monotonic()
    scans = scan_all(targets, one, spec["parallel"])
    took = time.monotonic() - started
    files = {s.name: sum(f.kind.startswith("file.") for f in s.findings) for s in scans}
    result = {
        "seconds": took,
        "statuses": Counter(str(s.status) for s in scans),
        "file_findings": {n: c for n, c in files.items() if c},
        "other_kinds": sorted({f.kind for s in scans for f in s.findings} - FILE_KINDS),
        "errors": sorted({s.error for s in scans if s.error})[:3],
    }
    Path(spec["out"]).write_text(json.dumps(result))


def run_child(lab: Lab, servers: list[Server], parallel: int) -> tuple[dict[str, Any], float]:
    """The child's result and its peak RSS in MiB."""
    n = len(servers)
    spec, out = WORK / f"spec-{n}.json", WORK / f"out-{n}.json"
    spec.write_text(
        json.dumps(
            {"key": str(lab.key), "parallel": parallel, "out": str(out),
             "servers": [asdict(s) for s in servers]}
        )
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(spec)], env=env)
    try:
        for _ in ticks(SCAN_TIMEOUT + 60 + n, 0.05):
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
        else:
            raise SystemExit(f"the phoenix scan of {n} servers did not end in time")
    except BaseException:
        with _quiet():
            proc.kill()
        proc.wait(timeout=10)
        raise
    if proc.returncode != 0:
        raise SystemExit(f"the phoenix scan of {n} servers failed (exit {proc.returncode})")
    return json.loads(out.read_text()), usage.ru_maxrss / 1024  # KiB on Linux


# -- the reference: OpenSSH's client ---------------------------------------------------------------


def reference(lab: Lab, servers: list[Server], parallel: int) -> tuple[float, int]:
    """Seconds for `ssh` to run phoenix's facts script on every server; how many failed."""
    from phoenix.facts import script

    line = f"{script.of(FACTS).command} {' '.join(shlex.quote(a) for a in ('', '', ROOT))}"

    def one(s: Server) -> int:
        argv = [
            "ssh", "-F", "/dev/null", "-i", str(lab.key), "-p", str(s.port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=15", f"root@{s.address}", line,
        ]  # fmt: skip
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, timeout=SCAN_TIMEOUT, check=False,
        )  # fmt: skip
        return done.returncode

    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        codes = list(pool.map(one, servers))
    return time.monotonic() - started, sum(1 for c in codes if c not in (0,))


# -- main ------------------------------------------------------------------------------------------


def round_of(lab: Lab, servers: list[Server], parallel: int) -> dict[str, float]:
    n = len(servers)
    result, rss = run_child(lab, servers, parallel)
    took = result["seconds"]
    expected = {f"scale-{k}": 2 for k in range(n) if changed(k)}
    check = "ok" if result["file_findings"] == expected else "MISMATCH"
    ref, failed = reference(lab, servers, parallel)
    print(
        f"N={n:<4d} phoenix   {n / took:7.2f} servers/s  wall {took:7.2f} s  peak RSS"
        f" {rss:6.1f} MiB  file findings {sum(result['file_findings'].values())} on"
        f" {len(result['file_findings'])} servers (expected {2 * len(expected)} on"
        f" {len(expected)}): {check}  statuses {dict(result['statuses'])}",
        flush=True,
    )
    if result["other_kinds"] or result["errors"]:
        print(f"       other findings: {result['other_kinds']}  errors: {result['errors']}")
    print(
        f"       reference {n / ref:7.2f} servers/s  wall {ref:7.2f} s  (ssh, -P {parallel})"
        + (f"  {failed} FAILED" if failed else "")
        + f"  ratio phoenix/reference (servers/s) {ref / took:.2f}",
        flush=True,
    )
    return {"n": n, "rate": n / took, "rss": rss, "ref": n / ref}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--parallel", type=int, default=8, help="[drift] parallel (default 8)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if os.geteuid() != 0 or not Path(SSHD).exists():
        raise SystemExit(f"run as root, with {SSHD} (Debian's openssh-server) installed")
    sizes = sorted(set(args.servers))
    if sizes[0] < 2 or sizes[-1] > 60000:
        raise SystemExit("--servers: from 2 to 60000")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    lab = Lab()
    rows = []
    try:
        lab.prepare()
        servers: list[Server] = []
        for n in sizes:  # the servers of a round are kept for the next, bigger one
            servers += lab.start(len(servers), n - len(servers))
            rows.append(round_of(lab, servers, args.parallel))
    finally:
        lab.close()
    if len(rows) > 1:
        first = rows[0]
        print("growth from N={}: ".format(first["n"]) + ", ".join(
            f"N={r['n']}: servers/s x{r['rate'] / first['rate']:.2f},"
            f" RSS x{r['rss'] / first['rss']:.2f}" for r in rows[1:]
        ))  # fmt: skip


if __name__ == "__main__":
    main()
