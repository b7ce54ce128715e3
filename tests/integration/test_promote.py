"""`phoenix drift promote` on a real server: the hand edit goes into the template, the next bake
carries it, a rebuild onto that bake is clean. Works on a copy of images/, never on the repo's."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest

from phoenix.facts import Facts
from phoenix.host import ssh
from phoenix.image.registry import Registry
from phoenix.state import Store
from tests.integration.conftest import REPO, Lab, unique

pytestmark = pytest.mark.integration

TUNED = "# tuned by hand on the server\n"
GZIP = "gzip_comp_level 5;\n"
HAND_EDITS = (
    f"printf '{TUNED}' >> /etc/nginx/nginx.conf",
    f"printf '{GZIP}' > /etc/nginx/conf.d/gzip.conf",
    "chown root:www-data /etc/nginx/conf.d/gzip.conf && chmod 0640 /etc/nginx/conf.d/gzip.conf",
    "nginx -t",  # still a valid configuration: the server stays healthy
)


def by_hand(lab: Lab, fleet: Lab, fleet_name: str) -> str:
    """Edit the fleet's one server over SSH as root; return its name."""
    status = fleet.phoenix("status", fleet_name, "--json").json()
    (server,) = status["servers"]  # type: ignore[index]
    target = ssh.Target(
        name=server["name"], address=server["address"], host_key=lab.lxd.host_key(server["name"])
    )
    with ssh.connect(target, lab.key.private_path) as session:
        for command in HAND_EDITS:
            result = session.run(command)
            assert result.rc == 0, f"{command}: {result.stderr}"
    return str(server["name"])


def test_promote_then_bake_then_rebuild_is_clean(lab: Lab, tmp_path: Path) -> None:
    image, name = unique("promo"), unique("promo")  # unique: another run may share the lab
    shutil.copytree(REPO / "images", tmp_path / "images")
    shutil.copytree(REPO / "infra", tmp_path / "infra")
    (tmp_path / "phoenix.toml").write_text(
        f'[images.{image}]\ntemplate = "images/web.pkr.json"\n'
        f'[fleets.{name}]\nimage = "{image}"\nsize = 1\n'
        f"listen_port = {random.randint(18500, 18599)}\n"
    )
    fleet = Lab(lab.home, {**lab.env, "PHOENIX_CONFIG": str(tmp_path / "phoenix.toml")}, lab.lxd)
    template = tmp_path / "images" / "web.pkr.json"
    promoted = tmp_path / "images" / image / "promoted"
    try:
        first = fleet.phoenix("image", "bake", image, "--json")
        assert first.rc == 0, first.stderr
        deployed = fleet.phoenix("deploy", name)
        assert deployed.rc == 0, deployed.stderr
        server = by_hand(lab, fleet, name)
        assert fleet.phoenix("drift", name).rc == 1  # the hand edit is drift

        run = fleet.phoenix("drift", "promote", server, "--path", "/etc/nginx", "--json")
        assert run.rc == 0, run.stderr
        done = run.json()
        assert done["written"] == ["/etc/nginx/conf.d/gzip.conf", "/etc/nginx/nginx.conf"]  # type: ignore[index]
        assert done["template_changed"] is True and done["skipped"] == []  # type: ignore[index]
        assert (promoted / "files/etc/nginx/conf.d/gzip.conf").read_text() == GZIP
        assert (promoted / "files/etc/nginx/nginx.conf").read_text().endswith(TUNED)
        script = (promoted / "apply.sh").read_text()
        assert "install -D -m 0640 -o root -g www-data -- " in script
        steps = json.loads(template.read_text())["provisioners"]
        assert steps[-1] == {"type": "shell", "inline": ["sh /tmp/promoted/apply.sh /tmp/promoted"]}
        assert not (REPO / "images" / image).exists()

        second = fleet.phoenix("image", "bake", image, "--json")
        assert second.rc == 0, second.stderr
        tags = [json.loads(r.stdout)["tag"] for r in (first, second)]
        assert tags[0] != tags[1], "the promoted change must make a new version"
        assert_baseline_carries_the_change(lab, tags[1])

        rebuilt = fleet.phoenix("rebuild", name, "--yes")
        assert rebuilt.rc == 0, rebuilt.stderr + rebuilt.stdout
        clean = fleet.phoenix("drift", name, "--json")
        assert clean.rc == 0, clean.stdout
        (scanned,) = clean.json()["servers"]  # type: ignore[index]
        assert scanned["status"] == "clean" and scanned["image"] == tags[1]
    finally:
        fleet.phoenix("destroy", name, "--yes")
        delete_images(lab, image)


def assert_baseline_carries_the_change(lab: Lab, tag: str) -> None:
    """The pristine server of the new image already has the promoted files, mode and owner."""
    with Store.open(lab.home) as store:
        record = Registry(store).get(tag)
    assert record.baseline is not None
    files = Facts.from_dict(record.baseline).files
    gzip = files["/etc/nginx/conf.d/gzip.conf"]
    assert (gzip.mode, gzip.owner, gzip.group) == ("0640", "root", "www-data")
    assert gzip.sha256 == hashlib.sha256(GZIP.encode()).hexdigest()


def delete_images(lab: Lab, image: str) -> None:
    with Store.open(lab.home) as store:
        tags = [r.tag for r in Registry(store).all(image)]
    for tag in tags:
        found = lab.lxd.image(tag)
        if found:
            lab.lxd.delete_image(found.fingerprint)
