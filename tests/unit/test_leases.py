"""Addresses from DHCP leases: which NIC, which lease, one read for many waiters."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from phoenix.lab import leases
from phoenix.lab import lxd as lxdmod
from phoenix.lab.leases import Leases, Nic

ETH0 = {"eth0": {"type": "nic", "network": "phoenixbr0", "name": "eth0"}}
MAC = "00:16:3e:3c:37:6b"


def test_the_nic_is_the_first_on_a_managed_network_with_its_mac() -> None:
    devices = {
        "root": {"type": "disk", "path": "/", "pool": "p"},
        "eth1": {"type": "nic", "network": "other"},
        "eth0": {"type": "nic", "nictype": "bridged", "parent": "br0"},  # unmanaged
    }
    config = {"volatile.eth0.hwaddr": "aa", "volatile.eth1.hwaddr": "00:16:3E:AA:BB:CC"}
    assert leases.nic_of(devices, config) == Nic("other", "00:16:3e:aa:bb:cc")
    assert leases.nic_of(ETH0, {}) is None  # no MAC yet
    assert leases.nic_of(ETH0, {"volatile.eth0.hwaddr": MAC}) == Nic("phoenixbr0", MAC)
    assert leases.nic_of({"eth0": "junk"}, {}) is None


def test_only_a_well_formed_ipv4_lease_of_that_mac_is_taken() -> None:
    found: list[dict[str, Any]] = [
        {"hwaddr": "00:16:3e:00:00:01", "address": "10.213.0.9"},
        {"hwaddr": MAC.upper(), "address": "fd42::1"},
        {"hwaddr": MAC, "address": "10.213.0.300"},
        {"hwaddr": MAC, "address": "10.213.0.85"},
    ]
    assert leases.address_in(found, MAC) == "10.213.0.85"
    assert leases.address_in(found[:3], MAC) is None
    assert leases.address_in([cast(Any, "junk")], MAC) is None


def test_threads_waiting_at_once_share_one_read() -> None:
    reads: list[str] = []
    now = [0.0]
    gate = threading.Barrier(8)

    def read(network: str) -> list[dict[str, Any]]:
        reads.append(network)
        return [{"hwaddr": MAC, "address": "10.0.0.2"}]

    table = Leases(clock=lambda: now[0])

    def ask() -> str | None:
        gate.wait()
        return table.address(Nic("br", MAC), read)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["br"]
    now[0] += leases.FRESH + 0.01
    assert table.address(Nic("br", MAC), read) == "10.0.0.2" and reads == ["br", "br"]


class _Api:
    """Enough of pylxd's raw API for wait_address: an instance, its network's leases, and
    (through `instances`) its state, counted."""

    def __init__(self, leased_after: int, devices: dict[str, Any]) -> None:
        self.lease_reads = 0
        self.leased_after = leased_after
        self.devices = devices

    def __getattr__(self, item: str) -> Any:
        return _Path(self, [item])


class _Path:
    def __init__(self, api: _Api, parts: list[str]) -> None:
        self.api, self.parts = api, parts

    def __getitem__(self, key: str) -> _Path:
        return _Path(self.api, [*self.parts, key])

    def __getattr__(self, item: str) -> _Path:
        return _Path(self.api, [*self.parts, item])

    def get(self, params: dict[str, str] | None = None) -> Any:
        if self.parts[-1] == "leases":
            assert params == {"project": "p"}
            self.api.lease_reads += 1
            ready = self.api.lease_reads > self.api.leased_after
            body: Any = [{"hwaddr": MAC, "address": "10.213.0.85"}] if ready else []
        else:
            config = {"volatile.eth0.hwaddr": MAC}
            body = {"expanded_devices": self.api.devices, "config": config}
        return type("R", (), {"json": lambda self: {"metadata": body}})()


class _Instances:
    """Instances whose state shows an address from its `addressed_from`-th read on."""

    def __init__(self, addressed_from: int = 1) -> None:
        self.states = 0
        self.addressed_from = addressed_from

    def exists(self, name: str) -> bool:
        return True

    def get(self, name: str) -> Any:
        outer = self

        class Raw:
            status, name, config = "Running", "web-1", {}

            def state(self) -> Any:
                outer.states += 1
                inet = {"family": "inet", "scope": "global", "address": "10.213.0.7"}
                addressed = outer.states >= outer.addressed_from
                net = {"eth0": {"addresses": [inet] if addressed else []}}
                return type("S", (), {"network": net})()

        return Raw()


def _lxd(api: _Api, instances: _Instances) -> lxdmod.LXD:
    lxd = lxdmod.LXD("p")
    lxd._client = cast(Any, type("Client", (), {"api": api, "instances": instances})())
    return lxd


def test_a_booting_instance_s_state_is_read_once_its_lease_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The state (not the lease: any host on the bridge can ask for one in another's name)
    gives the address; it is read at the first poll, then once the lease is there."""
    monkeypatch.setattr(lxdmod, "poll", lambda probe, timeout, interval: _first(probe, 50))
    monkeypatch.setattr(leases, "FRESH", -1.0)  # every poll reads the leases
    api, instances = _Api(leased_after=3, devices=ETH0), _Instances(addressed_from=2)
    assert _lxd(api, instances).wait_address("web-1") == "10.213.0.7"
    assert api.lease_reads == 4 and instances.states == 2


def test_an_address_not_leased_is_found_in_the_state_all_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lxdmod, "poll", lambda probe, timeout, interval: _first(probe, 50))
    monkeypatch.setattr(leases, "FRESH", -1.0)
    never_leased = _Api(leased_after=10**6, devices=ETH0)
    instances = _Instances(addressed_from=3)
    assert _lxd(never_leased, instances).wait_address("web-1") == "10.213.0.7"
    assert instances.states == 3 and never_leased.lease_reads == 1 + 2 * lxdmod.STATE_EVERY
    unmanaged = {"eth0": {"type": "nic", "nictype": "bridged", "parent": "br0"}}
    api, instances = _Api(leased_after=0, devices=unmanaged), _Instances(addressed_from=2)
    assert _lxd(api, instances).wait_address("web-1") == "10.213.0.7"
    assert api.lease_reads == 0 and instances.states == 2


def _first(probe: Any, tries: int) -> Any:
    for _ in range(tries):
        found = probe()
        if found:
            return found
    return None
