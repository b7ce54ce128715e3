"""EC2 as the rollout's Provider: host keys from the console, instances by their fleet tag.

Servers are EC2 instances tagged by infra/aws: `Name` (the server's name), `phoenix:fleet`,
`phoenix:generation`, `phoenix:image`. Terminated instances are never looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from phoenix.errors import CloudError
from phoenix.fleet.aws import console
from phoenix.fleet.aws.client import call, make_client
from phoenix.poll import poll, ticks

FLEET_TAG = "phoenix:fleet"
LIVE_STATES = ("pending", "running", "stopping", "stopped")
POLL = 5.0  # seconds between two looks at an instance or its console
MAX_PAGES = 20  # describe_instances pages read at most (1000 instances a page)


@dataclass(frozen=True)
class Instance:
    """One EC2 instance of a fleet."""

    id: str
    name: str
    state: str
    address: str | None  # its private IPv4 address, once it has one


class EC2:
    """The EC2 instances of one fleet in one region."""

    def __init__(self, fleet: str, region: str, client: Any = None, interval: float = POLL) -> None:
        self.fleet = fleet
        self.region = region
        self.client = client if client is not None else make_client("ec2", region)
        self.interval = interval

    # -- the Provider protocol ----------------------------------------------------------------

    def started(self, name: str) -> str | None:
        """None: an instance's files are not the image's snapshot on a pool phoenix can see (an
        EBS volume is restored lazily, its ctimes are not the lab's), so its first scan hashes
        every file."""
        return None

    def host_key(self, name: str, timeout: float = 60) -> str:
        """`name`'s SSH host key as cloud-init printed it on the console at first boot
        (ed25519 preferred), polled until the whole block is there; CloudError at the deadline,
        UntrustedOutput when the console holds something else than cloud-init's block."""
        instance_id = self.instance_id(name)
        seen = 0
        for _ in ticks(timeout, self.interval):
            answer = call(
                CloudError,
                f"read the console output of {name} ({instance_id})",
                lambda: self.client.get_console_output(InstanceId=instance_id, Latest=True),
                "ec2:GetConsoleOutput",
            )
            output = answer.get("Output") or ""
            if not isinstance(output, str):
                output = ""
            seen = len(output)
            found = console.host_key(name, output)
            if found:
                return found
        raise CloudError(
            f"{name} ({instance_id}) printed no SSH host keys on its console within"
            f" {timeout:g} s ({seen} characters of console output)",
            hint="its image must run cloud-init, which prints them at first boot;"
            " see `aws ec2 get-console-output --instance-id " + instance_id + "`",
        )

    def fleet_instances(self, fleet: str) -> list[str]:
        """The names of the live (not terminated) instances tagged as servers of `fleet`."""
        return sorted({i.name for i in self._describe(fleet=fleet)})

    def stop(self, name: str, force: bool = False, timeout: int = 30) -> None:
        """Stop `name` and wait (up to `timeout` s) until it is stopped; Terraform's destroy
        terminates it in any case, so a slow stop is not an error."""
        instance = self._find(name)
        if instance is None or instance.state in ("stopped", "stopping"):
            return
        call(
            CloudError,
            f"stop {name} ({instance.id})",
            lambda: self.client.stop_instances(InstanceIds=[instance.id], Force=force),
            "ec2:StopInstances",
        )
        poll(lambda: self._state(name) in (None, "stopped"), timeout, self.interval)

    def wait_address(self, name: str, timeout: float = 60) -> str:
        """`name`'s private IPv4 address, once EC2 reports one."""
        found = poll(lambda: self._address(name), timeout, self.interval)
        if not found:
            raise CloudError(f"{name} got no IPv4 address within {timeout:g} s")
        return found

    def delete(self, name: str) -> None:
        """Terminate `name` (every live instance of this fleet by that name); none: nothing."""
        ids = [i.id for i in self._describe(name=name)]
        if ids:
            call(
                CloudError,
                f"terminate {name} ({', '.join(ids)})",
                lambda: self.client.terminate_instances(InstanceIds=ids),
                "ec2:TerminateInstances",
            )

    # -- names and ids (for the target group) -------------------------------------------------

    def instance_id(self, name: str) -> str:
        instance = self._find(name)
        if instance is None:
            raise CloudError(
                f"fleet {self.fleet} has no live EC2 instance named {name} in {self.region}",
                hint="`phoenix deploy " + self.fleet + "` creates the servers it is missing",
            )
        return instance.id

    def named(self, ids: Sequence[str]) -> dict[str, Instance]:
        """The fleet's live instances among `ids`, by id."""
        if not ids:
            return {}
        return {i.id: i for i in self._describe(fleet=self.fleet, ids=ids)}

    # -- plumbing -----------------------------------------------------------------------------

    def _find(self, name: str) -> Instance | None:
        """The live instance of this fleet named `name`: the newest if there are several."""
        found = self._describe(name=name)
        return found[-1] if found else None

    def _address(self, name: str) -> str | None:
        instance = self._find(name)
        return instance.address if instance else None

    def _state(self, name: str) -> str | None:
        instance = self._find(name)
        return instance.state if instance else None

    def _describe(
        self, fleet: str | None = None, name: str | None = None, ids: Sequence[str] = ()
    ) -> list[Instance]:
        filters = [
            {"Name": f"tag:{FLEET_TAG}", "Values": [fleet or self.fleet]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        if name is not None:
            filters.append({"Name": "tag:Name", "Values": [name]})
        request: dict[str, Any] = {"Filters": filters}
        if ids:
            request["InstanceIds"] = list(ids)
        found: list[tuple[str, Instance]] = []
        for _ in range(MAX_PAGES):
            page = call(
                CloudError,
                f"list the EC2 instances of fleet {fleet or self.fleet}",
                lambda: self.client.describe_instances(**request),
                "ec2:DescribeInstances",
            )
            for reservation in page.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    found.append((str(raw.get("LaunchTime", "")), _instance(raw)))
            token = page.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        return [instance for _, instance in sorted(found, key=lambda pair: pair[0])]


def _instance(raw: dict[str, Any]) -> Instance:
    tags = {t.get("Key"): t.get("Value") for t in raw.get("Tags", [])}
    address = raw.get("PrivateIpAddress")
    return Instance(
        id=str(raw["InstanceId"]),
        name=str(tags.get("Name") or raw["InstanceId"]),
        state=str((raw.get("State") or {}).get("Name", "")),
        address=str(address) if address else None,
    )
