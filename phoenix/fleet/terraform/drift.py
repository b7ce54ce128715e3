"""Server drift from Terraform's side: what a refresh-only plan found changed outside Terraform."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from phoenix.fleet.terraform.log import Diagnostic, instance_key

# What the provider's refresh says of a container deleted outside Terraform (LXD's own 404 text;
# older LXD said only "not found"). Not "Image not found" and the like.
_GONE = re.compile(r"(?i)(instance |container )?not found")


# The attributes of an `lxd_container` that say what a server is. Left out: what changes on every
# healthy refresh or says nothing about the server (addresses, id, name, the uploaded files, which
# the provider never reads back).
WATCHED = ("status", "image", "profiles", "config", "limits", "device", "ephemeral", "privileged")


SERVER_RESOURCE = "lxd_container"


@dataclass(frozen=True, kw_only=True)
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
                server=server,
                action="update",
                before={"status": "Running"},
                after={"status": status},
            )
    for error in errors:
        name = gone_server(error)
        if name is not None:
            found[name] = ResourceDrift(
                server=name, action="delete", before=_watched(recorded.get(name, {})), after={}
            )
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
        return ResourceDrift(server=name, action="delete", before=before, after={})
    after = _watched(change.get("after") or {})
    changed = sorted(
        k for k in before.keys() | after.keys() if _differ(before.get(k), after.get(k))
    )
    if not changed:  # only what changes anyway (addresses ...): not drift
        return None
    return ResourceDrift(
        server=name,
        action="update",
        before={key: before[key] for key in changed if key in before},
        after={key: after[key] for key in changed if key in after},
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
