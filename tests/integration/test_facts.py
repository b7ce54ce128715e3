"""Facts gathered over SSH from a real server of the lab's base image, in one round trip."""

from __future__ import annotations

import pytest

from phoenix.facts import Facts, Listener, User, gather
from phoenix.facts.registry import (
    MANAGER_ENV,
    MOUNTS,
    PROCESSES_DELETED,
    PROCESSES_OUTSIDE,
    TRANSIENT,
)
from phoenix.host import ssh
from phoenix.host.process import CommandResult
from phoenix.host.ssh import Session, Target
from phoenix.lab import lab as labmod
from tests.conftest import wait_until
from tests.integration.conftest import Lab, unique

pytestmark = pytest.mark.integration

ROOTS = ["/etc", "/usr", "/root", "/srv/phoenix-missing"]
SSH_WANTED = "/etc/systemd/system/multi-user.target.wants/ssh.service"
CRON_FILE = "/etc/cron.d/phoenix-test"


class Counting:
    """A session that counts its round trips."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.commands: list[str] = []

    @property
    def target(self) -> Target:
        return self.session.target

    def run(
        self, command: str, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> CommandResult:
        self.commands.append(command)
        return self.session.run(command, *args, timeout=timeout, stdin=stdin)


def gather_once(session: Session) -> Facts:
    counting = Counting(session)
    facts = gather(counting, ROOTS)
    assert len(counting.commands) == 1, counting.commands
    return facts


def sha256(session: Session, path: str) -> str:
    result = session.run("sha256sum", path)
    assert result.rc == 0, result.stderr
    return result.stdout.split()[0]


def run_ok(session: Session, command: str, *args: str) -> str:
    result = session.run(command, *args)
    assert result.rc == 0, result.stderr
    return result.stdout


def check_server_facts(session: Session, facts: Facts, operator_key: str) -> None:
    assert facts.files["/etc/passwd"].sha256 == sha256(session, "/etc/passwd")
    assert facts.files["/etc"].type == "d"
    assert facts.files[SSH_WANTED].type == "l"
    assert facts.files[SSH_WANTED].target == session.run("readlink", "-n", SSH_WANTED).stdout
    assert facts.files["/usr/bin/passwd"].mode == "4755"
    assert facts.setuid()["/usr/bin/passwd"] == "4755"
    assert not any(path.startswith("/srv/phoenix-missing") for path in facts.files)
    assert facts.packages["openssh-server"].arch == "amd64"
    ssh = facts.services["ssh.service"]
    assert (ssh.enabled, ssh.active, ssh.sub) == ("enabled", "active", "running")
    assert facts.users is not None and facts.groups is not None
    assert facts.users["root"] == User("root", 0, 0, "/root", "/bin/bash")
    assert facts.groups["root"].gid == 0
    assert facts.ssh_keys is not None and operator_key in facts.ssh_keys["root"]
    assert facts.ports is not None
    assert facts.ports["tcp/0.0.0.0:22"] == Listener("tcp", "0.0.0.0", 22, "sshd")
    assert facts.sysctl is not None
    assert (
        facts.sysctl["kernel.randomize_va_space"]
        == run_ok(session, "cat", "/proc/sys/kernel/randomize_va_space").strip()
    )
    assert facts.timers is not None and facts.timers["apt-daily.timer"] == "enabled"
    assert facts.cron is not None
    check_running_system(facts)


def check_running_system(facts: Facts) -> None:
    """A pristine server: no process outside the image, no transient unit (the SSH session's
    scope and slice are left out), its root mounted, systemd's PATH."""
    assert facts.get(PROCESSES_DELETED) == {} and facts.get(PROCESSES_OUTSIDE) == {}
    assert facts.get(TRANSIENT) == {}
    mounted = facts.get(MOUNTS)
    assert mounted is not None and "/" in mounted and "{host}" in mounted["/"]
    assert not any(point.startswith("/run/user/") for point in mounted)
    environment = facts.get(MANAGER_ENV)
    assert environment is not None and "PATH" in environment
    assert facts.sysctl is not None and "net.ipv4.conf.eth0.rp_filter" in facts.sysctl


def wait_listening(session: Session, port: int) -> None:
    wait_until(
        f"something to listen on port {port}",
        lambda: f":{port} " in run_ok(session, "ss", "-H", "-tln"),
        timeout=10,
    )


def test_gather_from_a_server_and_see_what_changed(lab: Lab, server_names: list[str]) -> None:
    name = unique("t-facts")
    server_names.append(name)
    cfg = lab.workspace.config.lab
    target = labmod.launch_server(lab.lxd, name, cfg.base_image, lab.key)
    with ssh.connect(target, lab.key.private_path) as session:
        before = gather_once(session)
        check_server_facts(session, before, lab.key.public_line)
        summary = before.summary()
        assert summary["files"] > 1000 and 0 < summary["hashed"] < summary["files"]

        run_ok(session, "sh", "-c", "echo x >> /etc/motd")
        run_ok(session, "useradd", "-m", "-s", "/bin/sh", "snow")
        run_ok(session, "sh", "-c", f"printf '# test\\n*/5 * * * * root /bin/true\\n' >{CRON_FILE}")
        run_ok(session, "/usr/sbin/sshd", "-p", "2222")  # forks into the background
        run_ok(session, "systemctl", "set-environment", "PHOENIX_TEST=1")
        run_ok(session, "systemd-run", "--unit=phoenix-test", "sleep", "600")
        wait_listening(session, 2222)
        after = gather_once(session)
        assert after.files["/etc/motd"].sha256 == sha256(session, "/etc/motd")
        uid = int(run_ok(session, "id", "-u", "snow"))
    assert after.files["/etc/motd"].sha256 != before.files["/etc/motd"].sha256
    assert after.files["/etc/motd"].size == before.files["/etc/motd"].size + 2
    assert after.files["/etc/passwd"] != before.files["/etc/passwd"]
    assert after.files["/usr/bin/passwd"] == before.files["/usr/bin/passwd"]
    assert before.users is not None and after.users is not None
    assert "snow" not in before.users
    assert after.users["snow"] == User("snow", uid, uid, "/home/snow", "/bin/sh")
    assert after.groups is not None and "snow" in after.groups
    assert before.cron is not None and after.cron is not None
    assert CRON_FILE not in before.cron
    assert after.cron[CRON_FILE] == ("*/5 * * * * root /bin/true",)
    assert before.ports is not None and after.ports is not None
    assert "tcp/0.0.0.0:2222" not in before.ports
    assert after.ports["tcp/0.0.0.0:2222"] == Listener("tcp", "0.0.0.0", 2222, "sshd")
    assert after.ports["tcp/[::]:2222"].process == "sshd"
    assert after.sysctl == before.sysctl and after.timers == before.timers
    assert after.get(MANAGER_ENV) == {**(before.get(MANAGER_ENV) or {}), "PHOENIX_TEST": "1"}
    transient = after.get(TRANSIENT)
    assert transient is not None and list(transient) == ["phoenix-test.service"]
    assert (
        "ExecStart=" in transient["phoenix-test.service"]
        and "sleep" in transient["phoenix-test.service"]
    )
    assert Facts.from_dict(after.to_dict()) == after
