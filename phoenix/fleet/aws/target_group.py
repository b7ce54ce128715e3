"""An ELBv2 target group as the rollout's Traffic: servers move through it by instance id.

What AWS does, and what this module relies on (target type `instance`):

- `register_targets` is idempotent; a registered target is `initial` until the load balancer's
  health checks pass, then `healthy` and in rotation: ELB gates traffic itself, so `add` needs
  no weight 0 as HAProxy does. infra/aws also attaches every server (an
  aws_lb_target_group_attachment per server): `add` then finds it registered already.
- `deregister_targets` makes a target `draining`: no new requests, those in flight go on for
  up to the group's `deregistration_delay.timeout_seconds` (300 s by default), then the target
  is gone from `describe_target_health` (or `unused`). With nothing in flight ELB completes at
  once.
- ELB keeps no per-target request counters phoenix could read (CloudWatch has per-group
  metrics, a minute late): `counters()` is empty, so a canary window sees no traffic.
- The load balancer and its target group are not phoenix's: they are never started, stopped
  nor deleted, only their targets changed.

Every request has botocore's connect/read timeouts; every wait has its deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from phoenix.errors import CloudError, TrafficError
from phoenix.fleet.aws.client import call, client_error, make_client
from phoenix.fleet.aws.ec2 import Instance
from phoenix.fleet.haproxy.runtime import (
    ADMIN_FORCED_DRAIN,
    ADMIN_FORCED_MAINT,
    CHECK_PASSED,
    CHECK_UNKNOWN,
    OP_RUNNING,
    OP_STARTING,
    OP_STOPPED,
    Backend,
    Counters,
)
from phoenix.poll import poll, ticks

POLL = 5.0  # seconds between two looks at a target's health
DRAIN_MARGIN = 15.0  # seconds past the deregistration delay before wait_drained gives up
DELAY_ATTRIBUTE = "deregistration_delay.timeout_seconds"
GONE = ("unused",)  # states of a target no longer in rotation nor draining
NOT_REGISTERED = ("InvalidTarget",)


class Instances(Protocol):
    """Where the servers' instance ids come from (phoenix.fleet.aws.ec2.EC2)."""

    def instance_id(self, name: str) -> str: ...

    def named(self, ids: Sequence[str]) -> dict[str, Instance]: ...


class TargetGroup:
    """The target group in front of one fleet."""

    def __init__(
        self,
        fleet: str,
        arn: str,
        port: int,
        instances: Instances,
        region: str,
        client: Any = None,
        dns_name: str | None = None,
        interval: float = POLL,
    ) -> None:
        self.fleet = fleet
        self.arn = arn
        self.group = arn.split(":targetgroup/", 1)[-1].split("/", 1)[0]
        self.port = port
        self.instances = instances
        self.client = client if client is not None else make_client("elbv2", region)
        self._dns_name = dns_name
        self.interval = interval

    @property
    def endpoint(self) -> str:
        """The DNS name of the load balancer in front of the target group."""
        if self._dns_name is None:
            self._dns_name = self._load_balancer_dns()
        return self._dns_name

    # -- the "process": the target group exists outside phoenix --------------------------------

    def running(self) -> bool:
        """Always: the load balancer is AWS's, not a process of phoenix."""
        return True

    def ensure_running(self, servers: Sequence[tuple[str, str]]) -> bool:
        """Check that the target group exists (TrafficError naming it if not); starts nothing."""
        self._group()
        return False

    def stop(self) -> None:
        """Nothing: the load balancer is not phoenix's to stop (`destroy` removes the targets)."""

    # -- the targets --------------------------------------------------------------------------

    def servers(self) -> list[Backend]:
        """Every target of the group that is an instance of this fleet, with its health."""
        described = self._health()
        named = _called(self.instances.named, [d["Target"]["Id"] for d in described])
        return [
            _backend(named[d["Target"]["Id"]], d, self.port)
            for d in described
            if d["Target"]["Id"] in named
        ]

    def counters(self) -> dict[str, Counters]:
        """Empty: ELB has no per-target request counters (CloudWatch's are per group and a
        minute late), so an observation window on AWS judges no traffic."""
        return {}

    def add(self, name: str, address: str) -> None:
        """Register `name`'s instance on the server port (idempotent). ELB sends it traffic only
        once its own health checks pass: `wait_up` waits for that."""
        instance_id = _called(self.instances.instance_id, name)
        self._call(
            f"register {name} ({instance_id}) in target group {self.group}",
            lambda: self.client.register_targets(
                TargetGroupArn=self.arn, Targets=[{"Id": instance_id, "Port": self.port}]
            ),
            "elasticloadbalancing:RegisterTargets",
        )

    def wait_up(self, name: str, timeout: float) -> None:
        """Wait until the load balancer reports `name` healthy; TrafficError at the deadline,
        naming the target group and the target's last state and reason."""
        instance_id = _called(self.instances.instance_id, name)
        last: dict[str, Any] = {}
        for _ in ticks(timeout, self.interval):
            described = self._health(instance_id)
            last = described[0].get("TargetHealth", {}) if described else {}
            if last.get("State") == "healthy":
                return
        state = last.get("State", "not registered")
        why = ", ".join(str(last[k]) for k in ("Reason", "Description") if last.get(k))
        raise TrafficError(
            f"{name} ({instance_id}) did not turn healthy in target group {self.group} of fleet"
            f" {self.fleet} within {timeout:g} s: {state}" + (f" ({why})" if why else ""),
            hint="check the target group's health check (path, port "
            f"{self.port}) and that the server's security group lets the load balancer in",
        )

    def drain(self, name: str) -> None:
        """Deregister `name`: no new requests; those in flight go on for the group's
        deregistration delay."""
        instance_id = _called(self.instances.instance_id, name)
        self._deregister(name, instance_id)

    def wait_drained(self, name: str, timeout: float) -> bool:
        """Wait until `name` left the group (gone, or `unused`). The deadline is the larger of
        `timeout` and the group's deregistration delay (plus DRAIN_MARGIN): ELB lets requests in
        flight run that long. False at the deadline."""
        try:
            instance_id = self.instances.instance_id(name)
        except CloudError:
            return True  # no such instance left: nothing can be in flight to it
        deadline = max(timeout, self.deregistration_delay() + DRAIN_MARGIN)

        def drained() -> bool:
            described = self._health(instance_id)
            return not described or described[0]["TargetHealth"].get("State") in GONE

        return bool(poll(drained, deadline, self.interval))

    def remove(self, name: str) -> None:
        """Deregister `name` if it is registered; nothing if it or its instance is gone."""
        try:
            instance_id = self.instances.instance_id(name)
        except CloudError:
            return
        self._deregister(name, instance_id)

    def deregistration_delay(self) -> float:
        """The group's `deregistration_delay.timeout_seconds`."""
        answer = self._call(
            f"read the attributes of target group {self.group}",
            lambda: self.client.describe_target_group_attributes(TargetGroupArn=self.arn),
            "elasticloadbalancing:DescribeTargetGroupAttributes",
        )
        for attribute in answer.get("Attributes", []):
            if attribute.get("Key") == DELAY_ATTRIBUTE:
                try:
                    return float(attribute["Value"])
                except (TypeError, ValueError):
                    break
        raise TrafficError(
            f"target group {self.group} reported no usable {DELAY_ATTRIBUTE}",
            hint="set it on the target group (0 to 3600 s)",
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _deregister(self, name: str, instance_id: str) -> None:
        from botocore.exceptions import ClientError

        def request() -> dict[str, Any]:
            try:
                return dict(
                    self.client.deregister_targets(
                        TargetGroupArn=self.arn, Targets=[{"Id": instance_id, "Port": self.port}]
                    )
                )
            except ClientError as exc:
                if client_error(exc)[0] in NOT_REGISTERED:
                    return {}  # not (or no longer) a target: nothing to take out
                raise

        self._call(
            f"deregister {name} ({instance_id}) from target group {self.group}",
            request,
            "elasticloadbalancing:DeregisterTargets",
        )

    def _health(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"TargetGroupArn": self.arn}
        if instance_id is not None:
            request["Targets"] = [{"Id": instance_id, "Port": self.port}]
        answer = self._call(
            f"read the target health of target group {self.group}",
            lambda: self.client.describe_target_health(**request),
            "elasticloadbalancing:DescribeTargetHealth",
        )
        return list(answer.get("TargetHealthDescriptions", []))

    def _group(self) -> dict[str, Any]:
        answer = self._call(
            f"read target group {self.group}",
            lambda: self.client.describe_target_groups(TargetGroupArns=[self.arn]),
            "elasticloadbalancing:DescribeTargetGroups",
        )
        groups = answer.get("TargetGroups", [])
        if not groups:
            raise TrafficError(f"target group {self.arn} does not exist")
        return dict(groups[0])

    def _load_balancer_dns(self) -> str:
        arns = self._group().get("LoadBalancerArns") or []
        if not arns:
            raise TrafficError(
                f"target group {self.group} of fleet {self.fleet} is behind no load balancer",
                hint="add it to a listener's rules, or set [fleets.NAME.aws] load_balancer_dns",
            )
        answer = self._call(
            f"read the load balancer of target group {self.group}",
            lambda: self.client.describe_load_balancers(LoadBalancerArns=arns[:1]),
            "elasticloadbalancing:DescribeLoadBalancers",
        )
        balancers = answer.get("LoadBalancers", [])
        if not balancers or not balancers[0].get("DNSName"):
            raise TrafficError(f"the load balancer of target group {self.group} has no DNS name")
        return str(balancers[0]["DNSName"])

    def _call(self, what: str, request: Any, permission: str = "") -> dict[str, Any]:
        return dict(call(TrafficError, what, request, permission))


def _called(function: Any, argument: Any) -> Any:
    """EC2's lookups inside a traffic change: their errors as the TrafficError of that change."""
    try:
        return function(argument)
    except CloudError as exc:
        raise TrafficError(exc.message, hint=exc.hint) from exc


def _backend(instance: Instance, described: dict[str, Any], port: int) -> Backend:
    health = described.get("TargetHealth", {})
    state = health.get("State", "")
    op_state = {"healthy": OP_RUNNING, "initial": OP_STARTING}.get(state, OP_STOPPED)
    admin = ADMIN_FORCED_DRAIN if state == "draining" else 0
    admin |= ADMIN_FORCED_MAINT if state in ("unused", "unavailable") else 0
    return Backend(
        name=instance.name,
        address=instance.address or "",
        port=int(described["Target"].get("Port") or port),
        op_state=op_state,
        admin_state=admin,
        sessions=0,  # ELB does not say
        check_result=CHECK_PASSED if state == "healthy" else CHECK_UNKNOWN,
        check_status=str(health.get("Reason") or state),
        check_detail=str(health.get("Description") or ""),
    )
