"""Facts gathered over SSH from a real server of the lab's base image."""

from __future__ import annotations

import pytest

from phoenix import hosts
from phoenix import lab as labmod
from phoenix.facts import Facts, gather
from phoenix.hosts import Session
from tests.integration.conftest import Lab, unique

pytestmark = pytest.mark.integration

ROOTS = ["/etc", "/usr", "/root", "/srv/phoenix-missing"]
SSH_WANTED = "/etc/systemd/system/multi-user.target.wants/ssh.service"


def sha256(session: Session, path: str) -> str:
    result = session.run("sha256sum", path)
    assert result.rc == 0, result.stderr
    return result.stdout.split()[0]


def check_server_facts(session: Session, facts: Facts) -> None:
    assert facts.files["/etc/passwd"].sha256 == sha256(session, "/etc/passwd")
    assert facts.files["/etc"].type == "d"
    assert facts.files[SSH_WANTED].type == "l"
    assert facts.files[SSH_WANTED].target == session.run("readlink", "-n", SSH_WANTED).stdout
    assert facts.files["/usr/bin/passwd"].mode == "4755"
    assert not any(path.startswith("/srv/phoenix-missing") for path in facts.files)
    assert facts.packages["openssh-server"].arch == "amd64"
    ssh = facts.services["ssh.service"]
    assert (ssh.enabled, ssh.active, ssh.sub) == ("enabled", "active", "running")


def test_gather_from_a_server_and_see_a_changed_file(lab: Lab, server_names: list[str]) -> None:
    name = unique("t-facts")
    server_names.append(name)
    cfg = lab.workspace.config.lab
    target = labmod.launch_server(lab.lxd, name, cfg.base_image, lab.key)
    with hosts.connect(target, lab.key.private_path) as session:
        before = gather(session, ROOTS)
        check_server_facts(session, before)
        summary = before.summary()
        assert summary["files"] > 1000 and 0 < summary["hashed"] < summary["files"]

        changed = session.run("sh", "-c", "echo x >> /etc/motd")
        assert changed.rc == 0, changed.stderr
        after = gather(session, ROOTS)
        assert after.files["/etc/motd"].sha256 == sha256(session, "/etc/motd")
    assert after.files["/etc/motd"].sha256 != before.files["/etc/motd"].sha256
    assert after.files["/etc/motd"].size == before.files["/etc/motd"].size + 2
    assert after.files["/etc/passwd"] == before.files["/etc/passwd"]
    assert Facts.from_dict(after.to_dict()) == after
