"""Servers are hostile input: real servers forging their tools' output, hiding files, naming files
to break reports, holding secrets, each beside a clean server that must stay clean and scanned."""

from __future__ import annotations

import json
import posixpath
import random
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest

from phoenix.drift.scan import ServerScan, scan_server
from phoenix.host import ssh
from tests.integration import test_drift
from tests.integration.conftest import REPO, Lab, unique
from tests.integration.test_drift import Image

pytestmark = pytest.mark.integration

# The baked image and the servers to delete afterwards, as test_drift makes them.
image = test_drift.image
servers = test_drift.servers

SECRET = "AKIAZ7Q2HOSTILE4TEST"  # an AWS access key id: found by its content, whatever the file
SECRET_LINE = (
    f"aws_access_key_id = {SECRET}\n"
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY\n"
)
ODD_NAMES = ["[bold red]x[/]", "[/]", "\x1b[2Jwiped", "two\nlines", "]]>&<b>x</b>", "rtl\u202etxt"]


def wrapper(tool: str, body: str) -> str:
    """Shell that puts a forged `tool` first in root's PATH (/usr/local/bin), as an intruder."""
    script = f"#!/bin/sh\n{body}\n"
    return (
        f"printf '%s' {shlex.quote(script)} > /usr/local/bin/{tool}"
        f" && chmod 755 /usr/local/bin/{tool}"
    )


def scan(image: Image, target: ssh.Target, timeout: float = 60, **kw: object) -> ServerScan:
    return scan_server(
        target, image.baseline, image.rules, image.lab.key.private_path, image.roots, timeout,
        image.tag, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def kinds(scanned: ServerScan) -> set[tuple[str, str]]:
    return {(f.kind, f.subject) for f in scanned.findings}


FORGERIES = {
    # a file mode that is not octal, in the first record find prints
    "bad-mode": wrapper(
        "find",
        "printf 'f 9z9 0 0 1 1.0 1.0 1\\0root\\0root\\0/etc/forged\\0\\0'\n"
        'exec /usr/bin/find "$@"',
    ),
    # a path climbing out of the roots
    "traversal": wrapper(
        "find",
        "printf 'f 644 0 0 1 1.0 1.0 1\\0root\\0root\\0/etc/../../tmp/pwned\\0\\0'\n"
        'exec /usr/bin/find "$@"',
    ),
    # far more output than any server's facts (the cap is 8 MiB in these tests)
    "huge": wrapper("dpkg-query", "head -c 20000000 /dev/zero | tr '\\0' x\nexit 0"),
    # a tool that never returns
    "hang": wrapper("sha256sum", "exec sleep 600"),
}


def test_forged_tool_output_makes_a_server_untrusted_never_a_crash(
    image: Image, servers: list[ssh.Target]
) -> None:
    def one(case: str) -> tuple[str, ServerScan]:
        target = image.launch()
        servers.append(target)
        if case in FORGERIES:
            image.run(target, FORGERIES[case])
        return case, scan(image, target, timeout=25, max_output=8 * 1024 * 1024)

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = dict(pool.map(one, [*FORGERIES, "clean"]))
    assert results["clean"].status == "clean", results["clean"].findings
    for case in FORGERIES:
        scanned = results[case]
        assert scanned.status == "untrusted", (case, scanned.status, scanned.error)
        assert any(f.severity == "high" for f in scanned.findings), (case, scanned.findings)
        assert "Traceback" not in str(scanned.error)
    assert not Path("/tmp/pwned").exists()


def test_what_a_file_checker_misses_is_found(image: Image, servers: list[ssh.Target]) -> None:
    cases = {
        "cp /bin/true /var/tmp/.x && chmod 755 /var/tmp/.x": ("executable.added", "/var/tmp/.x"),
        "cp /bin/sh /var/lib/rootsh && chmod 4755 /var/lib/rootsh": (
            "executable.setuid",
            "/var/lib/rootsh",
        ),
        "cp /bin/sleep /var/lib/capped && setcap cap_net_raw+ep /var/lib/capped": (
            "capability.added",
            "/var/lib/capped",
        ),
        "cp /bin/sleep /dev/shm/worker && (nohup /dev/shm/worker 600 >/dev/null 2>&1 &)"
        " && until pgrep -f /dev/shm/worker >/dev/null; do :; done": (
            "process.outside",
            "/dev/shm/worker",
        ),
        "cp /bin/sleep /usr/local/bin/gone && (nohup /usr/local/bin/gone 600 >/dev/null 2>&1 &)"
        " && until pgrep -f /usr/local/bin/gone >/dev/null; do :; done"
        " && rm /usr/local/bin/gone": ("process.deleted", "/usr/local/bin/gone"),
        "sysctl -w net.ipv4.conf.eth0.log_martians=1": (
            "sysctl.changed",
            "net.ipv4.conf.eth0.log_martians",
        ),
        "systemctl set-environment LD_PRELOAD=/usr/lib/evil.so": (
            "manager_env.added",
            "LD_PRELOAD",
        ),
        "systemd-run --unit=phoenix-evil --on-calendar='*:0/5' /bin/true": (
            "transient.added",
            "phoenix-evil.timer",
        ),
        "mkdir -p /var/lib/empty && mount --bind /var/lib/empty /etc/cron.d": (
            "mount.added",
            "/etc/cron.d",
        ),
    }

    def one(command: str) -> tuple[str, ServerScan]:
        target = image.launch()
        servers.append(target)
        image.run(target, command)
        return command, scan(image, target)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(one, cases))
    missed = [
        (command, cases[command], results[command].status, sorted(kinds(results[command]))[:10])
        for command in cases
        if cases[command] not in kinds(results[command])
    ]
    assert not missed, json.dumps(missed, indent=1)


def test_the_second_witness_sees_what_the_server_hides(
    image: Image, servers: list[ssh.Target]
) -> None:
    """A sha256sum wrapper prints the image's hash of a file changed in place (the SSH scan alone
    believes it); a bind mount hides a directory. The disk, read from the host, disagrees."""
    lied, mounted, clean = image.launch(), image.launch(), image.launch()
    servers += [lied, mounted, clean]
    original = image.baseline.files["/etc/issue"].sha256
    image.run(
        lied,
        "sed -i 's/Debian/Dabian/' /etc/issue && "
        + wrapper(
            "sha256sum",
            f'/usr/bin/sha256sum "$@" |'
            f' sed -z "s|^[0-9a-f]*  /etc/issue\\$|{original}  /etc/issue|"',
        ),
    )
    image.run(
        mounted,
        "echo '* * * * * root /bin/true' > /etc/cron.d/hidden-job && mkdir -p /var/lib/empty"
        " && mount --bind /var/lib/empty /etc/cron.d",
    )
    results = {}
    for target in (lied, mounted, clean):
        disk = image.lab.lxd.rootfs(target.name)
        assert disk is not None
        results[target.name] = scan(image, target, disk=disk)
    assert results[clean.name].status == "clean", results[clean.name].findings
    lie = results[lied.name]
    assert lie.status == "untrusted"
    assert ("witness.forged", "/etc/issue") in kinds(lie)
    assert ("file.modified", "/etc/issue") not in kinds(lie)  # the SSH scan alone was fooled
    hid = results[mounted.name]
    assert hid.status == "untrusted"
    assert any(k == "witness.hidden" and s.startswith("/etc/cron.d/") for k, s in kinds(hid))


def fleet_lab(lab: Lab, tmp_path: Path, name: str, port: int, extra: str = "") -> Lab:
    shutil.copytree(REPO / "images", tmp_path / "images")
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    config = tmp_path / "phoenix.toml"
    config.write_text(
        f'[images.web]\n[fleets.{name}]\nimage = "web"\nsize = 3\nlisten_port = {port}\n'
        f"[drift]\nmax_output = 8388608\n{extra}"
    )
    return Lab(lab.home, {**lab.env, "PHOENIX_CONFIG": str(config)}, lab.lxd)


def serving(fleet: Lab, name: str) -> dict[str, ssh.Target]:
    status = fleet.phoenix("status", name, "--json").json()
    return {
        s["name"]: ssh.Target(
            name=s["name"], address=s["address"], host_key=fleet.lxd.host_key(s["name"])
        )
        for s in status["servers"]  # type: ignore[index]
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.add(tag)


def test_a_hostile_fleet_is_reported_safely_and_replaced(lab: Lab, tmp_path: Path) -> None:
    """Three servers: odd file names and a secret in a file nobody listed; forged tool output;
    clean. The report survives the names, the secret is stored nowhere, the forged server is
    untrusted and the clean one scanned; then a rebuild replaces all three, the forged one too."""
    name = unique("hostile")
    fleet = fleet_lab(lab, tmp_path, name, random.randint(18400, 18499))
    assert fleet.phoenix("image", "bake", "web").rc == 0
    deployed = fleet.phoenix("deploy", name)
    assert deployed.rc == 0, deployed.stderr
    try:
        odd, forged, clean = sorted(serving(fleet, name).values(), key=lambda t: t.name)
        make_names = " && ".join(  # `[/]` is a file `]` in a directory `[`
            "su eve -s /bin/sh -c "
            + shlex.quote(
                f"mkdir -p {shlex.quote(posixpath.dirname(f'/home/eve/{n}'))}"
                f" && touch {shlex.quote(f'/home/eve/{n}')}"
            )
            for n in ODD_NAMES
        )
        with ssh.connect(odd, lab.key.private_path) as session:
            assert session.run("useradd -m eve && " + make_names).rc == 0
            assert session.run(f"printf '%s' {shlex.quote(SECRET_LINE)} > /etc/app.ini").rc == 0
        with ssh.connect(forged, lab.key.private_path) as session:
            assert session.run(FORGERIES["bad-mode"]).rc == 0

        junit, html = tmp_path / "drift.xml", tmp_path / "drift.html"
        text = fleet.phoenix("drift", name, "--junit", str(junit), "--html", str(html))
        assert text.rc == 2, text.stdout + text.stderr  # a server could not be trusted
        assert "Traceback" not in text.stderr and "\x1b" not in text.stdout + text.stderr
        assert "\\x1b[2Jwiped" in text.stdout and "[bold red]x[/]" in text.stdout
        assert SECRET not in text.stdout + text.stderr
        ET.parse(junit)  # valid XML whatever the names hold
        tags = _Tags()
        tags.feed(html.read_text())
        assert "b" not in tags.tags  # `<b>x</b>` from a file name is text, not markup

        report = fleet.phoenix("drift", name, "--json")
        by_name = {s["name"]: s for s in report.json()["servers"]}  # type: ignore[index]
        assert by_name[clean.name]["status"] == "clean"
        assert by_name[forged.name]["status"] == "untrusted"
        assert by_name[odd.name]["status"] == "drifted"
        subjects = {f["subject"] for f in by_name[odd.name]["findings"]}
        assert {f"/home/eve/{n}" for n in ODD_NAMES} <= subjects
        assert "/etc/app.ini" in subjects
        assert SECRET not in report.stdout
        leaked = subprocess.run(
            ["grep", "-rl", "-a", SECRET, str(lab.home)], capture_output=True, text=True
        )
        assert leaked.stdout == "", f"the secret is stored in {leaked.stdout}"
        assert (lab.home.stat().st_mode & 0o077) == 0  # the state directory is the owner's

        rebuilt = fleet.phoenix("rebuild", name, "--yes", "--json", timeout=1200)
        assert rebuilt.rc == 0, rebuilt.stderr
        outcome = rebuilt.json()
        assert sorted(outcome["removed"]) == sorted([odd.name, forged.name, clean.name])  # type: ignore[index]
        now = serving(fleet, name)
        assert len(now) == 3 and not {odd.name, forged.name, clean.name} & set(now)
        assert fleet.phoenix("drift", name).rc == 0
    finally:
        fleet.phoenix("destroy", name, "--yes")
