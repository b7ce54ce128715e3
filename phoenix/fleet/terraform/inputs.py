"""What Terraform is given: the CLI config (provider from a local mirror), variables, and the
servers read back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phoenix.lab import provider


@dataclass(frozen=True)
class ServerSpec:
    """What one server runs: an image, and the generation it belongs to; `writes_key` if the
    image writes the operator's key from the server's config (lab.base.KEY_TEMPLATE)."""

    image: str
    generation: int
    writes_key: bool = False


# The module variable that names the servers whose image writes the operator's key from their
# config: passed only to a module that declares it (infra/lxd); any other uploads the key.
KEYED_BY_IMAGE = "keyed_by_image"


@dataclass(frozen=True, kw_only=True)
class ServerState:
    """A server as Terraform's `servers` output reports it."""

    name: str
    address: str | None
    image: str
    generation: int


def cli_config(mirror: Path) -> str:
    """Terraform's CLI config: providers from the local mirror only, no call home."""
    source = f"{provider.HOST}/{provider.NAMESPACE}/{provider.TYPE}"
    return (
        "# Written by phoenix: providers come only from the local mirror, never the internet.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f"    include = [{json.dumps(source)}]\n"
        "  }\n"
        "  direct {\n"
        f'    exclude = ["{provider.HOST}/*/*"]\n'
        "  }\n"
        "}\n"
        "disable_checkpoint = true\n"
    )


def mirror_path(mirror: Path) -> Path:
    """Where the provider binary sits in a filesystem mirror (Terraform's unpacked layout)."""
    return (
        mirror
        / provider.HOST
        / provider.NAMESPACE
        / provider.TYPE
        / provider.VERSION
        / provider.PLATFORM
        / f"terraform-provider-{provider.TYPE}_v{provider.VERSION}"
    )


def encode_vars(
    fleet: str,
    servers: Mapping[str, ServerSpec],
    authorized_key: str,
    declared: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """The module's variables as `-var` values: strings as they are, the map as JSON; and, if
    the module `declared` it, KEYED_BY_IMAGE (a JSON list).

    Terraform reads a complex `-var` value as an HCL expression; JSON is valid HCL except that
    `${` and `%{` inside a string start a template, so they are escaped as `$${` and `%%{`.
    """
    body = {name: {"image": s.image, "generation": s.generation} for name, s in servers.items()}
    variables = {"fleet": fleet, "servers": _hcl(body), "authorized_key": authorized_key.strip()}
    if KEYED_BY_IMAGE in declared:
        variables[KEYED_BY_IMAGE] = _hcl(sorted(n for n, s in servers.items() if s.writes_key))
    return variables


def _hcl(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text.replace("${", "$${").replace("%{", "%%{")


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
