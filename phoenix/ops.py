"""What the CLI calls for fleets: each function one whole operation, adapters wired here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phoenix.config import Cloud, Severity
from phoenix.errors import ExitCode, PhoenixError
from phoenix.events import Emit, StepOutput, discard, step
from phoenix.fleet.haproxy.balancer import HAProxy
from phoenix.fleet.plan import FleetStatus, Options, Plan, Result, RolloutStatus
from phoenix.fleet.ports import Provider, Traffic
from phoenix.fleet.records import Records, RunRecord, ServerStatus
from phoenix.fleet.rollout import Fleet
from phoenix.fleet.terraform.adapter import Terraform
from phoenix.lab import project
from phoenix.lab.lxd import LXD
from phoenix.lock import fleet_lock
from phoenix.state import RunKind, Store
from phoenix.workspace import Workspace

# The drift machinery (the scan, the facts, the diff) is imported by the functions that scan:
# `phoenix status`, `history` and `report` call this module and have no use for it.
if TYPE_CHECKING:
    from phoenix.drift.diff import Finding
    from phoenix.drift.scan import ScanReport


@contextmanager
def open_fleet(
    ws: Workspace, name: str, emit: Emit = discard, operation: str | None = None
) -> Iterator[Fleet]:
    """The fleet and its adapters; with `operation`: under its lock, cut-short runs settled."""
    with Store.open(ws.home) as store:
        guard = fleet_lock(ws.home, name, operation=operation) if operation else nullcontext()
        with guard:
            # an operation refuses a module missing what phoenix passes before it changes anything
            adapters = _adapters(ws, name, emit, operation is not None)
            fleet = Fleet(ws, store, name, *adapters, emit=emit)
            if operation:
                fleet.recover()
            yield fleet


def _adapters(
    ws: Workspace, name: str, emit: Emit, check: bool = False
) -> tuple[Terraform, Traffic, Provider]:
    """The fleet's Terraform, load balancer and provider: the lab's HAProxy and LXD, or for a
    fleet with cloud = "aws" its target group and EC2. `check`: the Terraform module is checked
    first (it declares what phoenix passes: phoenix.fleet.terraform.module)."""
    cfg = ws.fleet(name)
    if cfg.cloud is Cloud.AWS:
        terraform = _terraform(ws, name, emit)
        if check:
            terraform.check_module()
        traffic, provider = _aws(ws, name)
        return terraform, traffic, provider
    health = ws.image(cfg.image).health
    workspace = project.of_workspace(ws)
    terraform = _terraform(ws, name, emit, workspace)
    if check:
        terraform.check_module()
    haproxy = HAProxy(name, ws.home, str(cfg.listen), cfg.listen_port, cfg.port, health)
    lxd = workspace.lxd(ws.config.timeouts.lxd)
    return terraform, haproxy, lxd


def _aws(ws: Workspace, name: str) -> tuple[Traffic, Provider]:
    """An AWS fleet's target group and EC2 instances, in its region (botocore clients)."""
    from phoenix.fleet.aws.ec2 import EC2
    from phoenix.fleet.aws.target_group import TargetGroup

    cfg = ws.fleet(name)
    assert cfg.aws is not None  # the config requires it when cloud = "aws"
    ec2 = EC2(name, cfg.aws.region)
    group = TargetGroup(
        name,
        cfg.aws.target_group_arn,
        cfg.port,
        ec2,
        cfg.aws.region,
        dns_name=cfg.aws.load_balancer_dns,
    )
    return group, ec2


def _terraform(
    ws: Workspace, name: str, emit: Emit, workspace: project.Project | None = None
) -> Terraform:
    """The fleet's Terraform: its LXD provider acts in the workspace's project; an AWS fleet's
    module gets its [fleets.NAME.aws] settings."""
    cfg = ws.fleet(name)
    module = ws.config_file.parent / cfg.module
    say = lambda line: emit(StepOutput("terraform", line))  # noqa: E731
    settings: dict[str, object]
    if cfg.cloud is Cloud.AWS and cfg.aws is not None:
        settings = {
            "region": cfg.aws.region,
            "target_group_arn": cfg.aws.target_group_arn,
            "instance_type": cfg.aws.instance_type,
            "security_group_ids": list(cfg.aws.security_group_ids),
            "server_port": cfg.port,
        }
        if cfg.aws.subnet_id is not None:
            settings["subnet_id"] = cfg.aws.subnet_id
    else:
        client_dir = (workspace or project.of_workspace(ws)).client_dir
        settings = {"lxd_config_dir": str(client_dir)}
    return Terraform(
        name, ws.home, module, say, settings=settings, timeout=ws.config.timeouts.terraform,
        binary=Path(binary) if (binary := ws.config.terraform.binary) else None,
        registry=cfg.cloud is not Cloud.LXD,
    )  # fmt: skip


def plan(ws: Workspace, name: str, kind: RunKind, opts: Options) -> Plan:
    with open_fleet(ws, name) as fleet:
        return fleet.plan(kind, opts)


def run(
    ws: Workspace,
    name: str,
    kind: RunKind,
    opts: Options,
    emit: Emit = discard,
    scanned: Sequence[str] = (),
) -> Result:
    """Deploy or rebuild `name` under its lock.

    A rebuild first archives the drift of the servers it replaces (a drift scan of them, run
    while the first new servers boot, awaited before any old one leaves), except those the
    caller has just `scanned`; a server that cannot be scanned (unreachable, untrusted, or its
    scan failed in any way) is replaced all the same, recorded as not scanned, with a warning
    that its hand changes are lost: a compromised server never blocks its own replacement.
    """
    with open_fleet(ws, name, emit, operation=kind) as fleet:
        plan = fleet.plan(kind, opts)
        leaving = [n for batch in plan.batches for n in batch.remove if n not in scanned]
        if not leaving:
            return fleet.execute(plan)
        with ThreadPoolExecutor(max_workers=1) as pool:
            archiving = pool.submit(archive_drift, ws, name, leaving, emit)
            try:
                result = fleet.execute(plan, before_removing=lambda: _wait(archiving))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        warnings = _wait(archiving)
        for warning in warnings:  # in the run's history too: a nightly run is read there
            fleet.store.record_event(result.run_id, "archive", "warning", warning)
        return replace(result, warnings=warnings)


def archive_drift(ws: Workspace, name: str, servers: Sequence[str], emit: Emit) -> list[str]:
    """Scan `servers` of fleet `name`, archiving their drift; a warning for each one that could
    not be scanned (recorded as not scanned, with its reason: its hand changes since its last
    recorded scan are not archived). Never raises for the scan: a scan that fails as a whole
    (whatever the exception) is one warning, and the rebuild goes on."""
    from phoenix.drift import evidence, scan

    emit(StepOutput("archive", f"archiving the drift of {', '.join(servers)}"))
    try:
        report = scan.scan(ws, [name], only=servers, fail_on=Severity.LOW, disks=disks(ws))
    except Exception as exc:
        warning = _not_archived(exc)
        emit(StepOutput("archive", f"warning: {warning}"))
        return [warning]
    warnings: list[str] = []
    for s in report.servers:
        if not s.status.scanned:
            warnings.append(
                f"{s.name} could not be scanned before its replacement ({s.error}): drift made"
                " by hand since its last scan is not archived and goes with it"
            )
        elif s.findings:
            kept = sum(1 for f in s.findings if evidence.is_archived(f.evidence))
            emit(StepOutput("archive", f"{s.name}: {len(s.findings)} finding(s) recorded,"
                                       f" {kept} changed file(s) archived"))  # fmt: skip
    for warning in warnings:
        emit(StepOutput("archive", f"warning: {warning}"))
    return warnings


def _wait(archiving: Future[list[str]]) -> list[str]:
    try:
        return archiving.result()
    except Exception as exc:
        return [_not_archived(exc)]


def _not_archived(exc: Exception) -> str:
    why = exc.message if isinstance(exc, PhoenixError) else f"{type(exc).__name__}: {exc}"
    return f"the drift of the servers to replace could not be archived: {why[:500]}"


def due(ws: Workspace, name: str) -> dict[str, list[str]]:
    """Server -> why it is due for replacement (`rebuild --due`'s policy); not due: left out."""
    with open_fleet(ws, name) as fleet:
        serving = [s for s in fleet.records.servers(name) if s.status is ServerStatus.SERVING]
        return {d.server: list(d.reasons) for d in fleet.due(serving) if d.reasons}


def status(ws: Workspace, name: str) -> FleetStatus:
    with open_fleet(ws, name) as fleet:
        return fleet.status()


def destroy(ws: Workspace, name: str, emit: Emit = discard) -> Result:
    with open_fleet(ws, name, emit, operation=RunKind.DESTROY) as fleet:
        return fleet.destroy()


@dataclass(frozen=True)
class RunHistory:
    run: RunRecord
    events: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {**self.run.as_dict(), "events": self.events}


def drift(
    ws: Workspace,
    fleets: Sequence[str] = (),
    emit: Emit = discard,
    fail_on: Severity | None = None,
    deep: bool = False,
) -> ScanReport:
    """`phoenix drift`: every serving server scanned over SSH, and each fleet's servers checked
    through Terraform (deleted, stopped or reconfigured outside phoenix)."""
    from phoenix.drift import scan

    return scan.scan(
        ws,
        fleets,
        emit,
        fail_on,
        deep=deep,
        servers_of=lambda n: server_drift(ws, n, emit),
        disks=disks(ws),
    )


def disks(ws: Workspace) -> Callable[[str], Path | None]:
    """Where the host sees each server's root file system, for the drift scan's second witness:
    the lab's containers on their storage pool. None for a server it cannot see (not an LXD
    container of this host, or the daemon unreachable): that server is scanned over SSH only."""

    @functools.cache
    def lxd() -> LXD:
        return project.of_workspace(ws).lxd(ws.config.timeouts.lxd)

    def disk(server: str) -> Path | None:
        try:
            return lxd().rootfs(server)
        except PhoenixError:
            return None

    return disk


def server_drift(ws: Workspace, name: str, emit: Emit = discard) -> list[Finding]:
    """The fleet's servers deleted, stopped or reconfigured outside phoenix, as Terraform's
    refresh-only plan finds them. Takes no lock: the plan neither waits for nor blocks a rollout.
    A server a rollout is retiring (stopped on purpose before Terraform removes it) is left out."""
    from phoenix.drift.diff import Rules
    from phoenix.drift.servers import server_findings

    terraform = _terraform(ws, name, emit)
    with step(emit, "terraform", f"{name}: terraform plan -refresh-only"):
        drifts = terraform.drift()
    retiring = _retiring(ws, name) if drifts else set()
    kept = [d for d in drifts if d.server not in retiring]
    return server_findings(kept, Rules.with_extra(ws.config.drift.ignore))


def _retiring(ws: Workspace, name: str) -> set[str]:
    with Store.open(ws.home) as store:
        servers = Records(store).servers(name, live=False)
    return {s.name for s in servers if s.status in (ServerStatus.REMOVING, ServerStatus.REMOVED)}


def history(ws: Workspace, name: str | None = None, limit: int = 20) -> list[RunHistory]:
    with Store.open(ws.home) as store:
        records = Records(store)
        return [RunHistory(r, records.events(r.id)) for r in records.runs(name, limit)]


# -- remedies for drift: a drifted server is replaced through the rollout, never patched --------


def to_replace(report: ScanReport) -> dict[str, list[str]]:
    """Fleet -> the servers to replace: those with findings at or above the report's `fail_on`
    (a stopped or deleted server has a server.* finding), and those that could not be scanned,
    untrusted (host key changed, forged output...) or unreachable: they are the most suspect. A
    server whose image has no baseline is left: that is not the server's doing."""
    from phoenix.drift.diff import at_least
    from phoenix.drift.scan import ScanStatus

    suspect = (ScanStatus.UNTRUSTED, ScanStatus.UNREACHABLE)
    chosen: dict[str, list[str]] = {}
    for s in report.servers:
        if s.status in suspect or at_least(s.findings, report.fail_on):
            chosen.setdefault(s.fleet, []).append(s.name)
    return chosen


def replace_drifted(
    ws: Workspace,
    report: ScanReport,
    chosen: Mapping[str, Sequence[str]],
    emit: Emit = discard,
) -> list[Result]:
    """Rebuild exactly the `chosen` servers of each fleet from its current image. The servers
    the `report`'s scan read archived their drift then: the rebuild does not scan them again
    (it tries the others, and warns of what it cannot archive)."""
    read = [s.name for s in report.servers if s.status.scanned]
    return [
        run(ws, name, RunKind.REBUILD, Options(only=tuple(servers)), emit, scanned=read)
        for name, servers in chosen.items()
    ]


def replace_exit_code(report: ScanReport, outcomes: Sequence[Result]) -> ExitCode:
    """0 when every drifted or unscanned server was replaced; 1 when a replacement rolled back;
    2 when some server could not be scanned and was not replaced (one without a baseline, or an
    unreachable or untrusted one whose replacement did not happen: it may still hold drift)."""
    replaced = {name for o in outcomes for name in o.removed}
    unscanned = [s for s in report.servers if not s.status.scanned and s.name not in replaced]
    if report.problems or unscanned:
        return ExitCode.REFUSED
    if any(o.status is RolloutStatus.ROLLED_BACK for o in outcomes):
        return ExitCode.FAILED
    return ExitCode.OK
