"""DHCP leases of LXD's managed networks: where a booting instance's address shows first.

A lease names the instance's MAC address and the IPv4 address its network gave it. One read of a
network's leases answers for every instance on it, so those waited for at once share it (see
`Leases`): the rollout waits for a whole batch's addresses together.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FRESH = 0.2  # seconds one read of a network's leases answers for (polls are 0.25 s apart)


@dataclass(frozen=True)
class Nic:
    network: str
    hwaddr: str


def nic_of(devices: Mapping[str, Any], config: Mapping[str, Any]) -> Nic | None:
    """The first NIC (by device name) of an instance's expanded devices that is on a managed
    network (`network`, not `parent`), with the MAC address LXD gave it (`volatile.DEV.hwaddr`);
    None when there is none."""
    for device in sorted(devices):
        spec = devices[device]
        if not isinstance(spec, Mapping) or spec.get("type") != "nic":
            continue
        network = spec.get("network")
        hwaddr = spec.get("hwaddr") or config.get(f"volatile.{device}.hwaddr")
        if isinstance(network, str) and network and isinstance(hwaddr, str) and hwaddr:
            return Nic(network, hwaddr.lower())
    return None


def address_in(found: list[dict[str, Any]], hwaddr: str) -> str | None:
    """The IPv4 address leased to MAC `hwaddr` in a network's leases; None if there is none.
    Only a well-formed address is taken (the list comes from the daemon's DHCP server)."""
    for lease in found:
        if not isinstance(lease, dict) or str(lease.get("hwaddr", "")).lower() != hwaddr:
            continue
        try:
            address = ipaddress.ip_address(str(lease.get("address", "")))
        except ValueError:
            continue
        if address.version == 4:
            return str(address)
    return None


class Leases:
    """The leases of each network, read at most once per FRESH seconds whatever the number of
    threads asking (each waits for the one read under way)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._read: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def address(self, nic: Nic, read: Callable[[str], list[dict[str, Any]]]) -> str | None:
        """`nic`'s leased address, from its network's leases as `read` returns them."""
        with self._lock:
            at, found = self._read.get(nic.network, (-FRESH - 1, []))
            if self._clock() - at > FRESH:
                found = read(nic.network)
                self._read[nic.network] = (self._clock(), found)
        return address_in(found, nic.hwaddr)
