"""Rollouts judged on live traffic: real servers, HAProxy's counters, a bounded load on loopback.

Three images, all answering their health path /healthz: `webok` (the web image), `webfail` (its
page answers 500 to about 30% of requests) and `webslow` (its page takes about a second). The
fleets observe each batch before the old servers leave; a batch worse than the old servers is
taken out of traffic and the rollout rolled back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from bench.load import Load
from tests.conftest import wait_until
from tests.integration.conftest import PHOENIX, REPO, Lab

pytestmark = pytest.mark.integration

FLEET_PORT, SOLO_PORT = 18090, 18091
CONFIG = f"""
[images.web]
template = "images/web.pkr.json"

[images.webok]
template = "images/webok.pkr.json"
parent = "web"
health = {{ path = "/healthz" }}

[images.webfail]
template = "images/webfail.pkr.json"
parent = "web"
health = {{ path = "/healthz" }}

[images.webslow]
template = "images/webslow.pkr.json"
parent = "web"
health = {{ path = "/healthz" }}

[fleets.canary]
image = "webok"
size = 3
listen_port = {FLEET_PORT}
batch = 1
observe = "15s"

[fleets.solo]
image = "webok"
size = 1
listen_port = {SOLO_PORT}
observe = "5s"
"""

# nginx for the variants: /healthz always answers; `location /` is where they differ.
NGINX = """map $request_id $phoenix_fail {{ "~[0-4]$" 1; default 0; }}
server {{
    listen 80 default_server;
    root /var/www/html;
    index index.html;
    access_log off;
    location = /healthz {{ return 200 "ok\\n"; }}
    location / {{ {page} }}
}}
"""
PAGES = {
    "ok": "try_files $uri $uri/ =404;",
    # 5 of 16 request ids: 31% of the requests answered 500
    "fail": "if ($phoenix_fail) { return 500; } try_files $uri $uri/ =404;",
    # a 6 kB page sent at 4 kB/s: about a second, against a few ms
    "slow": "limit_rate 4k; try_files $uri $uri/ =404;",
}


def _nginx_step(kind: str) -> str:
    conf = NGINX.format(page=PAGES[kind])
    steps = [f"cat > /etc/nginx/sites-available/default <<'EOF'\n{conf}EOF", "nginx -t"]
    if kind == "slow":
        steps.insert(0, "head -c 6000 /dev/zero | tr '\\0' x | sed 's/^/<!-- /; s/$/ -->/' "
                        ">> /var/www/html/index.html")  # fmt: skip
    return "\n".join(steps)


class Fleets(Lab):
    def bake(self, image: str) -> str:
        run = self.phoenix("image", "bake", image, "--json")
        assert run.rc == 0, run.stderr
        return str(run.json()["tag"])  # type: ignore[index]

    def images(self, fleet: str) -> set[str]:
        run = self.phoenix("status", fleet, "--json")
        assert run.rc == 0, run.stderr
        status: Any = run.json()
        assert status["serving"] == status["size"] and all(s["healthy"] for s in status["servers"])
        return {s["image"] for s in status["servers"]}

    def last_run(self, fleet: str, kind: str = "rebuild") -> dict[str, Any]:
        runs: Any = json.loads(self.phoenix("history", fleet, "--json").stdout)
        return next(r for r in runs if r["kind"] == kind)  # type: ignore[no-any-return]

    def load(self, port: int) -> Load:
        return Load("127.0.0.1", port, max_requests=200_000, max_seconds=600)


@pytest.fixture(scope="module")
def fleets(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleets]:
    root = tmp_path_factory.mktemp("canary")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "infra", root / "infra")
    template = json.loads((REPO / "images" / "web.pkr.json").read_text())
    (root / "phoenix.toml").write_text(CONFIG)
    the = Fleets(lab.home, {**lab.env, "PHOENIX_CONFIG": str(root / "phoenix.toml")}, lab.lxd)
    the.bake("web")  # unchanged (no Packer run) when an earlier test baked it
    for kind in ("ok", "fail", "slow"):  # each a small step on top of web
        variant = {**template, "provisioners": [_shell(_nginx_step(kind))]}
        (root / "images" / f"web{kind}.pkr.json").write_text(json.dumps(variant))
        the.bake(f"web{kind}")
    for fleet in ("canary", "solo"):
        deployed = the.phoenix("deploy", fleet)
        assert deployed.rc == 0, deployed.stderr + deployed.stdout
    yield the
    for fleet in ("canary", "solo"):
        the.phoenix("destroy", fleet, "--yes")


def _shell(script: str) -> dict[str, Any]:
    return {"type": "shell", "inline": [script]}


def _tag(fleets: Fleets, image: str) -> str:
    run = fleets.phoenix("image", "list", "--json")
    assert run.rc == 0, run.stderr
    tags = [i["tag"] for i in run.json() if i["name"] == image and i["status"] == "ready"]  # type: ignore[attr-defined]
    return str(sorted(tags)[-1])


def _rolled_back_on(fleets: Fleets, fleet: str, image: str, port: int, words: str) -> Load:
    before = fleets.images(fleet)
    with fleets.load(port) as load:
        run = fleets.phoenix("rebuild", fleet, "--image", _tag(fleets, image), "--yes")
    assert run.rc == 1, run.stdout + run.stderr
    assert words in run.stderr + run.stdout, run.stderr
    last = fleets.last_run(fleet)
    assert last["status"] == "rolled_back", last
    canary = [e["detail"] for e in last["events"] if e["step"] == "canary"]
    assert any(words in detail for detail in canary), last["events"]
    assert fleets.images(fleet) == before  # still serving the old image, at its size
    print(f"{image} on {fleet}: clients saw {load.failed} of {load.total} requests fail")
    assert load.total > 200 and load.failed <= load.total / 100, (load.total, load.errors)
    return load


def test_an_image_failing_real_requests_is_rolled_back_after_its_batch(fleets: Fleets) -> None:
    _rolled_back_on(fleets, "canary", "webfail", FLEET_PORT, "errors")


def test_an_image_five_times_slower_is_rolled_back(fleets: Fleets) -> None:
    _rolled_back_on(fleets, "canary", "webslow", FLEET_PORT, "response time")


def test_a_fleet_of_one_is_judged_too(fleets: Fleets) -> None:
    _rolled_back_on(fleets, "solo", "webfail", SOLO_PORT, "errors")


def test_a_good_image_is_never_rolled_back(fleets: Fleets) -> None:
    """No false alarm in 10 rollouts of a good image, under live traffic throughout."""
    with fleets.load(SOLO_PORT) as load:
        for _ in range(10):
            run = fleets.phoenix("rebuild", "solo", "--yes")
            assert run.rc == 0, run.stdout + run.stderr
            assert fleets.last_run("solo")["status"] == "succeeded"
    print(f"10 good rollouts: clients saw {load.failed} of {load.total} requests fail")
    assert load.failed == 0, load.errors


def _batch_started(fleets: Fleets, fleet: str, number: int) -> bool:
    last = fleets.last_run(fleet)
    steps = [e["step"] for e in last["events"]]
    return last["status"] == "running" and f"batch {number}" in steps


def test_replaced_servers_that_degrade_later_roll_the_rollout_back(fleets: Fleets) -> None:
    """The circuit is on the rollout: batch 1 passes its window, then its server starts failing
    (the test breaks it by hand); batch 2's window sees it, and both new servers go."""
    before = fleets.images("canary")
    olds = _servers(fleets, "canary")
    with fleets.load(FLEET_PORT) as load:
        proc = subprocess.Popen(
            [*PHOENIX, "rebuild", "canary", "--yes"],
            env=fleets.env, cwd=REPO, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            wait_until("batch 2", lambda: _batch_started(fleets, "canary", 2), timeout=300)
            first = _serving_events(fleets, "canary")[:1]  # batch 1's server, judged good
            assert first and first[0] not in olds, first
            broken = _nginx_step("fail") + "\nnginx -s reload"
            breaks = fleets.lxc("exec", first[0], "--", "sh", "-c", broken)
            assert breaks.returncode == 0, breaks.stderr
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 1, out + err
    last = fleets.last_run("canary")
    assert last["status"] == "rolled_back", last
    assert any(first[0] in e["detail"] for e in last["events"] if e["step"] == "canary")
    assert fleets.images("canary") == before  # brought back to its size on the old image
    assert fleets.last_run("canary", "deploy")["id"] > last["id"]  # by a run of its own
    print(f"degraded later: clients saw {load.failed} of {load.total} requests fail")
    assert load.failed <= load.total / 100, (load.total, load.errors)


def _serving_events(fleets: Fleets, fleet: str) -> list[str]:
    """The servers the last run put in traffic, in order ("traffic: NAME serving" events)."""
    events = fleets.last_run(fleet)["events"]
    return [e["detail"].split()[0].rstrip(",") for e in events if e["step"] == "traffic"]


def _servers(fleets: Fleets, fleet: str) -> list[str]:
    status: Any = fleets.phoenix("status", fleet, "--json").json()
    return [s["name"] for s in status["servers"]]
