"""What Terraform said: its -json lines and its text errors, read into diagnostics operators can
act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from phoenix.errors import TerraformError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_INSTANCE_KEY = re.compile(r'\["((?:[^"\\]|\\.)*)"\]$')


@dataclass(frozen=True, kw_only=True)
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
        found.append(
            Diagnostic(
                severity="error", summary=line.removeprefix("Error: "), detail=" ".join(detail)
            )
        )
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
