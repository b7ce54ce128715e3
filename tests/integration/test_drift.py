"""Drift against real servers: a corpus of snowflakes, each on a fresh server, each found."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from phoenix.drift import evidence
from phoenix.drift.diff import Rules
from phoenix.drift.scan import ServerScan, scan_server
from phoenix.facts import Facts, HashCache, ScanCache
from phoenix.host import ssh
from phoenix.image.registry import Registry
from phoenix.lab import lab as labmod
from phoenix.state import Store
from tests.conftest import wait_until
from tests.integration.conftest import REPO, Lab, unique

pytestmark = pytest.mark.integration

INTRUDER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIntruderKeyIntruderKeyIntruderKeyAbCd intruder"
SAME_SIZE_AND_MTIME = (
    "f=/usr/bin/dir; t=$(stat -c %Y $f); s=$(stat -c %s $f);"
    " printf X | dd of=$f bs=1 seek=4096 conv=notrunc status=none; touch -d @$t $f;"
    ' test "$(stat -c %s $f)" = "$s"'
)
# (what a person did by hand, the finding kind and subject phoenix must report)
CORPUS = [
    (
        "echo 'worker_rlimit_nofile 1;' >> /etc/nginx/nginx.conf",
        "file.modified",
        "/etc/nginx/nginx.conf",
    ),
    ("rm /etc/nginx/mime.types", "file.removed", "/etc/nginx/mime.types"),
    ("chmod 0666 /etc/passwd", "file.mode", "/etc/passwd"),
    ("chown nobody /etc/issue", "file.owner", "/etc/issue"),
    ("chmod u+s /usr/bin/find", "setuid.added", "/usr/bin/find"),
    ("dpkg -r nginx-light", "package.removed", "nginx-light"),
    ("dpkg -i /tmp/snowpkg.deb", "package.added", "snowpkg"),
    ("systemctl disable nginx", "service.disabled", "nginx.service"),
    ("systemctl mask nginx", "service.disabled", "nginx.service"),
    ("useradd -m snowuser", "user.added", "snowuser"),
    (f"echo '{INTRUDER}' >> /root/.ssh/authorized_keys", "ssh_key.added", "root"),
    ("echo '* * * * * root /bin/true' > /etc/cron.d/snow", "cron.added", "/etc/cron.d/snow"),
    (
        "mkdir -p /var/spool/cron/crontabs && echo '* * * * * /bin/true' >"
        " /var/spool/cron/crontabs/root && chmod 600 /var/spool/cron/crontabs/root",
        "file.added",
        "/var/spool/cron/crontabs/root",
    ),
    (SAME_SIZE_AND_MTIME, "binary.modified", "/usr/bin/dir"),
    ("/usr/sbin/sshd -p 2222", "port.opened", "tcp/0.0.0.0:2222"),
    ("ln -sfn /tmp/evil /etc/alternatives/awk", "file.modified", "/etc/alternatives/awk"),
]


class Image:
    def __init__(self, lab: Lab, tag: str, baseline: Facts) -> None:
        self.lab, self.tag, self.baseline = lab, tag, baseline
        self.roots = lab.workspace.config.drift.roots
        self.rules = Rules.with_extra(lab.workspace.config.drift.ignore)

    def launch(self) -> ssh.Target:
        return labmod.launch_server(self.lab.lxd, unique("t-drift"), self.tag, self.lab.key)

    def scan(self, target: ssh.Target) -> ServerScan:
        return scan_server(
            target, self.baseline, self.rules, self.lab.key.private_path, self.roots, 60, self.tag
        )

    def run(self, target: ssh.Target, command: str) -> None:  # over SSH, as a person would
        with ssh.connect(target, self.lab.key.private_path) as session:
            result = session.run(command)
        assert result.rc == 0, f"{command}: {result.stderr}"


def lxc_exec(lab: Lab, name: str, command: str) -> bool:
    """Run `command` in a container through LXD (not SSH); whether it succeeded."""
    return lab.lxc("exec", name, "--", "sh", "-c", command).returncode == 0


@pytest.fixture(scope="module")
def image(lab: Lab) -> Image:
    run = lab.phoenix("image", "bake", "web", "--json")
    assert run.rc == 0, run.stderr
    tag = str(run.json()["tag"])  # type: ignore[index]
    record = Registry(Store.open(lab.home)).get(tag)
    assert record.baseline
    return Image(lab, tag, Facts.from_dict(record.baseline))


@pytest.fixture
def servers(lab: Lab) -> Iterator[list[ssh.Target]]:
    made: list[ssh.Target] = []
    yield made
    for target in made:
        lab.lxd.delete(target.name)


def snowpkg(tmp: Path) -> bytes:
    root = tmp / "snowpkg"
    (root / "DEBIAN").mkdir(parents=True, mode=0o755)
    (root / "DEBIAN").chmod(0o755)  # dpkg-deb wants 0755 whatever the umask (077 in these tests)
    (root / "DEBIAN" / "control").write_text(
        "Package: snowpkg\nVersion: 1.0\nArchitecture: all\nMaintainer: ops <ops@example.org>\n"
        "Description: installed by hand\n"
    )
    (root / "opt" / "snow").mkdir(parents=True)
    (root / "opt" / "snow" / "flake").write_text("hand-made\n")
    subprocess.run(["dpkg-deb", "--build", str(root), str(tmp / "snowpkg.deb")], check=True,
                   capture_output=True)  # fmt: skip
    return (tmp / "snowpkg.deb").read_bytes()


def test_pristine_server_is_clean(image: Image, servers: list[ssh.Target]) -> None:
    target = image.launch()
    servers.append(target)
    scanned = image.scan(target)
    assert scanned.status == "clean", scanned.findings


def test_lived_in_server_is_clean(image: Image, servers: list[ssh.Target]) -> None:
    target = image.launch()
    servers.append(target)
    image.run(target, "systemctl restart nginx ssh")  # restarted services
    for _ in range(3):  # logins come and go
        image.run(target, "true")
    # logs rotated, the package cache cleaned, the daily cron jobs run
    image.run(
        target, "logrotate -f /etc/logrotate.conf; apt-get clean; run-parts /etc/cron.daily; true"
    )
    for _ in range(20):  # served traffic
        with urllib.request.urlopen(f"http://{target.address}/", timeout=5) as response:
            assert response.status == 200
    image.lab.lxd.stop(target.name, timeout=30)  # reboot
    image.lab.lxd.client.instances.get(target.name).start(wait=True)
    address = image.lab.lxd.wait_address(target.name, 60)
    ssh.wait_port(address, 22, 60)
    rebooted = ssh.Target(name=target.name, address=address, host_key=target.host_key)
    image.run(rebooted, "dhclient -r eth0 2>/dev/null; dhclient eth0; true")  # lease renewed
    address = image.lab.lxd.wait_address(target.name, 60)
    rebooted = ssh.Target(name=target.name, address=address, host_key=target.host_key)
    scanned = image.scan(rebooted)
    assert scanned.status == "clean", scanned.findings
    witnessed = scan_server(
        rebooted, image.baseline, image.rules, image.lab.key.private_path, image.roots, 60,
        disk=image.lab.lxd.rootfs(target.name),
    )  # fmt: skip
    assert witnessed.status == "clean", witnessed.findings  # the disk agrees with the server


def test_every_snowflake_in_the_corpus_is_found(
    image: Image, servers: list[ssh.Target], tmp_path: Path
) -> None:
    package = snowpkg(tmp_path)

    def one(case: tuple[str, str, str]) -> tuple[tuple[str, str, str], ServerScan]:
        command, _, _ = case
        target = image.launch()
        servers.append(target)
        if "snowpkg" in command:
            image.lab.lxd.client.instances.get(target.name).files.put("/tmp/snowpkg.deb", package)
        image.run(target, command)
        return case, image.scan(target)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, CORPUS))
    missed = []
    for (command, kind, subject), scanned in results:
        found = {(f.kind, f.subject) for f in scanned.findings}
        if scanned.status != "drifted" or (kind, subject) not in found:
            missed.append((command, kind, subject, scanned.status, sorted(found)[:8]))
    assert not missed, json.dumps(missed, indent=1)


def test_secrets_are_never_shown(image: Image, servers: list[ssh.Target]) -> None:
    target = image.launch()
    servers.append(target)
    image.run(target, "echo 'root:$6$secret-hash:1:0:99999:7:::' >> /etc/shadow")
    scanned = image.scan(target)
    shadow = [f for f in scanned.findings if f.subject == "/etc/shadow"]
    assert shadow and all("secret-hash" not in str(f.after) for f in shadow)


def test_unreachable_and_untrusted_servers(image: Image, servers: list[ssh.Target]) -> None:
    target = image.launch()
    other = image.launch()
    servers += [target, other]
    forged = ssh.Target(name=target.name, address=target.address, host_key=other.host_key)
    assert image.scan(forged).status == "untrusted"
    nowhere = ssh.Target(name="gone", address="10.213.0.254", host_key=target.host_key)
    gone = image.scan(nowhere)
    assert gone.status == "unreachable" and gone.error


def test_a_repeat_scan_hashes_only_what_changed(image: Image, servers: list[ssh.Target]) -> None:
    target = image.launch()
    servers.append(target)
    cache = ScanCache()
    full = scan_server(
        target, image.baseline, image.rules, image.lab.key.private_path, image.roots, 60,
        cache=cache,
    )  # fmt: skip
    assert full.status == "clean" and full.hashed > 1000
    listed = {listing.root: digest for digest, listing in cache.files.listings.items()}
    assert {"/etc", "/usr"} <= set(listed), listed  # each root's records, kept by their digest
    again = scan_server(
        target, image.baseline, image.rules, image.lab.key.private_path, image.roots, 60,
        cache=cache,
    )  # fmt: skip
    assert again.status == "clean" and again.hashed < 20, again.hashed
    image.run(target, SAME_SIZE_AND_MTIME)
    rewritten = scan_server(
        target, image.baseline, image.rules, image.lab.key.private_path, image.roots, 60,
        cache=cache,
    )  # fmt: skip
    assert rewritten.hashed < 20
    assert ("binary.modified", "/usr/bin/dir") in {(f.kind, f.subject) for f in rewritten.findings}
    now = {listing.root: digest for digest, listing in cache.files.listings.items()}
    assert now["/usr"] != listed["/usr"]  # /usr's records changed: the server sent them again


def test_a_first_scan_is_not_sent_the_roots_the_server_holds_as_its_image_did(
    image: Image, servers: list[ssh.Target]
) -> None:
    """The bake keeps its smoke scan's listings; a server of the image, never scanned, is
    offered them: /usr, as the image made it, is answered `#listed`, neither sent nor parsed."""
    stored = Registry(Store.open(image.lab.home)).listings(image.tag)
    assert stored is not None
    smoke = ScanCache.load(stored).files.listings
    usr = next(d for d, listing in smoke.items() if listing.root == "/usr")
    target = image.launch()
    servers.append(target)
    settled = image.lab.lxd.started(target.name)
    assert settled is not None
    seeded = HashCache.seeded(image.baseline.files, settled, smoke)
    assert usr in seeded.listed()
    cache = ScanCache(seeded)
    first = scan_server(
        target, image.baseline, image.rules, image.lab.key.private_path, image.roots, 60,
        cache=cache,
    )  # fmt: skip
    assert first.status == "clean", first.findings
    assert cache.files.listings[usr] is smoke[usr]  # kept as the image's, not sent again
    assert first.hashed < 20, first.hashed


def test_evidence_of_text_changes_but_never_of_secrets(
    image: Image, servers: list[ssh.Target]
) -> None:
    target = image.launch()
    servers.append(target)
    image.run(
        target,
        "echo 'gzip on; # hotfix' >> /etc/nginx/nginx.conf; echo 'hand made' > /etc/motd.local;"
        " echo 'db_password=hunter2' > /etc/app-secrets.conf; printf 'x\\000y' > /etc/blob;"
        " printf 'region = eu\\naws_key = AKIAZ3MHALF6E5XGVNPQ\\n' > /etc/app.ini;"
        " echo 'root:$6$h:1:0:99999:7:::' >> /etc/shadow",
    )
    keep = evidence.Policy(limit=256 * 1024)
    scanned = scan_server(
        target, image.baseline, image.rules, image.lab.key.private_path, image.roots, 60,
        keep=keep,
    )  # fmt: skip
    kept = {a.path: a.content for a in scanned.archived}
    assert set(kept) == {"/etc/nginx/nginx.conf", "/etc/motd.local"}
    assert kept["/etc/nginx/nginx.conf"].endswith(b"gzip on; # hotfix\n")
    linked = {f.subject for f in scanned.findings if evidence.is_archived(f.evidence)}
    assert linked == set(kept)
    withheld = {f.subject for f in scanned.findings if f.evidence == evidence.SECRET}
    assert withheld == {"/etc/app.ini"}  # a secret by its content: its finding says so


def test_a_hanging_command_and_a_dropped_connection(
    image: Image, servers: list[ssh.Target]
) -> None:
    hung, dropped, fine = image.launch(), image.launch(), image.launch()
    servers += [hung, dropped, fine]
    wedge = (
        "mv /usr/bin/dpkg-query /usr/bin/dpkg-query.real && printf '#!/bin/sh\\ntouch"
        " /tmp/wedged\\nexec sleep 600\\n' > /usr/bin/dpkg-query && chmod 755 /usr/bin/dpkg-query"
    )
    for target in (hung, dropped):
        image.run(target, wedge)

    def scan(target: ssh.Target) -> ServerScan:
        return scan_server(
            target, image.baseline, image.rules, image.lab.key.private_path, image.roots, 20
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {t.name: pool.submit(scan, t) for t in (hung, dropped, fine)}
        wait_until(
            "the scan to hang", lambda: lxc_exec(image.lab, dropped.name, "test -e /tmp/wedged"), 30
        )
        assert lxc_exec(image.lab, dropped.name, "pkill -9 -f '[s]shd: root@notty'")
        results = {name: future.result(timeout=60) for name, future in futures.items()}
    assert results[fine.name].status == "clean"
    assert results[hung.name].status == "untrusted"  # a command that outlived its deadline
    assert "did not finish within 20 s" in str(results[hung.name].error)
    assert results[dropped.name].status == "unreachable"
    assert "dropped" in str(results[dropped.name].error), results[dropped.name].error


def test_a_command_that_writes_before_it_reads_its_stdin(
    image: Image, servers: list[ssh.Target]
) -> None:
    """Both directions over the SSH window at once (as the files section with a large cache)."""
    target = image.launch()
    servers.append(target)
    big = b"x" * (6 * 1024 * 1024)
    with ssh.connect(target, image.lab.key.private_path) as session:
        result = session.run("head -c 6000000 /dev/zero; wc -c", timeout=60, stdin=big)
    assert result.rc == 0 and len(result.stdout) > 6_000_000
    assert result.stdout.rstrip("\n").endswith(str(len(big)))  # every byte was read


def test_cli_on_a_fleet(lab: Lab, tmp_path: Path) -> None:
    shutil.copytree(REPO / "images", tmp_path / "images")
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    (tmp_path / "phoenix.toml").write_text(
        '[images.web]\n[fleets.drifty]\nimage = "web"\nsize = 2\nlisten_port = 18282\n'
    )
    fleet = Lab(lab.home, {**lab.env, "PHOENIX_CONFIG": str(tmp_path / "phoenix.toml")}, lab.lxd)
    assert fleet.phoenix("image", "bake", "web").rc == 0
    deployed = fleet.phoenix("deploy", "drifty")
    assert deployed.rc == 0, deployed.stderr
    try:
        clean = fleet.phoenix("drift", "drifty", "--json")
        assert clean.rc == 0, clean.stdout
        servers = clean.json()["servers"]  # type: ignore[index]
        assert {s["status"] for s in servers} == {"clean"}
        first = servers[0]
        status = fleet.phoenix("status", "drifty", "--json").json()
        one = next(s for s in status["servers"] if s["name"] == first["name"])  # type: ignore[index]
        key = lab.lxd.host_key(first["name"])
        with ssh.connect(
            ssh.Target(name=first["name"], address=one["address"], host_key=key),
            lab.key.private_path,
        ) as s:
            s.run("echo hotfix >> /etc/nginx/nginx.conf")
        junit, html = tmp_path / "drift.xml", tmp_path / "drift.html"
        drifted = fleet.phoenix(
            "drift", "drifty", "--json", "--junit", str(junit), "--html", str(html)
        )
        assert drifted.rc == 1
        by_name = {s["name"]: s for s in drifted.json()["servers"]}  # type: ignore[index]
        assert by_name[first["name"]]["status"] == "drifted"
        assert by_name[first["name"]]["findings"][0]["subject"] == "/etc/nginx/nginx.conf"
        assert 'failures="1"' in junit.read_text() and first["name"] in html.read_text()
        assert by_name[first["name"]]["findings"][0]["evidence"].startswith("sha256:")
        kept = fleet.phoenix("drift", "evidence", first["name"], "/etc/nginx/nginx.conf")
        assert kept.rc == 0 and kept.stdout.endswith("hotfix\n"), kept.stderr
        assert fleet.phoenix("drift", "drifty", "--fail-on", "high").rc == 0

        replaced = fleet.phoenix("drift", "drifty", "--replace", "--yes", "--json")
        assert replaced.rc == 0, replaced.stderr
        [outcome] = replaced.json()["replaced"]  # type: ignore[index]
        assert outcome["status"] == "succeeded" and outcome["removed"] == [first["name"]]
        assert outcome["warnings"] == []  # its drift was archived by the scan that chose it
        assert fleet.phoenix("drift", "drifty").rc == 0  # the new server is the image again
        kept = fleet.phoenix("drift", "evidence", first["name"], "/etc/nginx/nginx.conf")
        assert kept.rc == 0 and kept.stdout.endswith("hotfix\n")  # outlives its server

        second = servers[1]["name"]
        lab.lxd.stop(second, force=True)
        partial = fleet.phoenix("drift", "drifty", "--json")
        assert partial.rc == 2
        states = {s["name"]: s["status"] for s in partial.json()["servers"]}  # type: ignore[index]
        assert states[second] == "unreachable" and len(states) == 2
        [stopped] = [s for s in partial.json()["servers"] if s["name"] == second]  # type: ignore[index]
        assert ("server.stopped", second) in {
            (f["kind"], f["subject"]) for f in stopped["findings"]
        }
        rebuilt = fleet.phoenix("rebuild", "drifty", "--yes", "--json")
        assert rebuilt.rc == 0, rebuilt.stderr
        [warning] = rebuilt.json()["warnings"]  # type: ignore[index]
        assert second in warning and "not archived" in warning
        runs = fleet.phoenix("history", "drifty", "--json").json()
        events = [e for r in runs for e in r["events"]]  # type: ignore[union-attr, index]
        assert any(e["kind"] == "warning" and second in e["detail"] for e in events)
        rules = fleet.phoenix("drift", "rules")
        assert rules.rc == 0 and "/etc/machine-id" in rules.stdout
    finally:
        fleet.phoenix("destroy", "drifty", "--yes")
