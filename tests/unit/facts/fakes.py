"""Runners for fact tests: one that answers from recorded outputs, one that runs on this machine."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from phoenix.facts import capabilities, executables, script
from phoenix.facts.registry import CAPABILITIES, EXECUTABLES, REGISTRY, Registry
from phoenix.host.process import CommandResult
from phoenix.host.ssh import Target

DATA = Path(__file__).resolve().parents[2] / "data" / "facts"


def output(rel: str) -> str:
    """A recorded output, as the SSH session hands it over (bytes, not text mode: keep every CR)."""
    return (DATA / rel).read_bytes().decode("utf-8")


def expected(rel: str) -> dict[str, Any]:
    data = json.loads((DATA / rel).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def cases(area: str) -> list[str]:
    """The recorded cases of one fact: the stem of each `.out` file that has a `.json` beside it."""
    return sorted(p.stem for p in (DATA / area).glob("*.json") if p.with_suffix(".out").exists())


@dataclass
class Call:
    command: str
    args: tuple[str, ...]
    timeout: float
    stdin: bytes = b""


@dataclass
class FakeRunner:
    """Answers each command from `answers` (keyed by the command, without its arguments)."""

    answers: dict[str, CommandResult]
    target: Target | None = field(
        default_factory=lambda: Target(name="web-1", address="10.213.0.9", host_key="k")
    )
    calls: list[Call] = field(default_factory=list)

    def run(
        self, command: str, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> CommandResult:
        self.calls.append(Call(command, args, timeout, stdin))
        if command not in self.answers:
            raise AssertionError(f"unexpected command: {command[:200]}")
        return self.answers[command]


class NamelessRunner:
    """A runner with no `target`: errors must still name something."""

    def __init__(self, answer: CommandResult) -> None:
        self.answer = answer

    def run(
        self, command: str, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> CommandResult:
        return self.answer


class LocalRunner:
    """Runs the command on this machine, quoting the arguments as phoenix.hosts.Session does."""

    def run(
        self, command: str, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> CommandResult:
        line = " ".join([command, *map(shlex.quote, args)])
        proc = subprocess.run(line, shell=True, capture_output=True, timeout=timeout, input=stdin)
        return CommandResult(
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )


# What each section of the script prints on a server with nothing on it (services: 3 empty parts).
EMPTY_SECTIONS: dict[str, tuple[int, str]] = {
    "files": (0, "#sha256\0#end 0 0\0"),
    "packages": (0, ""),
    "services": (0, "--\n--"),
    "users": (0, ""),
    "groups": (0, ""),
    "ssh_keys": (0, ""),
    "cron": (0, ""),
    "timers": (0, ""),
    "ports": (0, ""),
    "sysctl": (0, ""),
    "manager_env": (0, ""),
    "transient": (0, ""),
    "mounts": (0, "#host web-1"),
    "processes_deleted": (0, ""),
    "processes_outside": (0, ""),
    "executables": (0, "#sha256\n#end 0 0\n"),
    "capabilities": (0, "#getfattr missing\n#end\n"),
}


def script_output(**sections: tuple[int, str]) -> str:
    """The script's stdout, laid out as script.SCRIPT writes it: `sections` over EMPTY_SECTIONS."""
    merged = EMPTY_SECTIONS | sections
    rc, text = merged.pop("files")
    return f"{text}\0#section files {rc}\0" + "".join(
        f"#section {name} {rc}\0{text}\0" for name, (rc, text) in merged.items()
    )


def script_stderr(**sections: str) -> str:
    """The script's stderr: each section's marker, then what it wrote."""
    return "".join(f"\0#section {name}\0{sections.get(name, '')}" for name in EMPTY_SECTIONS)


def recorded_script(case: str) -> str:
    """The recorded output of the script for `case`, as today's script writes it."""
    return recorded_output(case)


def scanning(root: Path, registry: Registry = REGISTRY) -> Registry:
    """`registry`, its facts that scan the whole file system scanning `root` instead (and no
    other mount): a test that runs the script on this machine must never scan its /."""
    local = {
        EXECUTABLES.name: replace(EXECUTABLES, command=_sh(executables.script(str(root), ()))),
        CAPABILITIES.name: replace(CAPABILITIES, command=_sh(capabilities.script(str(root), ()))),
    }
    return Registry(tuple(local.get(fact.name, fact) for fact in registry))


def _sh(code: str) -> str:
    return f"sh -c {shlex.quote(code)} phoenix-test"


# The facts the recorded script outputs (tests/data/facts/script) hold: those recorded before the
# facts of the running system (manager_env, transient, mounts, processes...) were added.
RECORDED_FACTS = ("users", "groups", "ssh_keys", "cron", "timers", "ports", "sysctl")
RECORDED_REGISTRY = Registry(tuple(fact for fact in REGISTRY if fact.name in RECORDED_FACTS))
RECORDED_SCRIPT = script.of(RECORDED_REGISTRY)


def recorded_output(case: str) -> str:
    """The recorded output of the script for `case`, as today's script would write it: the
    sections recorded since, each as EMPTY_SECTIONS has it, in the script's order."""
    sections = RECORDED_SCRIPT.split(output(f"script/{case}.out"))
    units = sections.pop(script.UNITS, None)
    text = script_output(**{name: (s.rc, s.stdout) for name, s in sections.items()})
    return text + (f"#section {units.name} {units.rc}\0{units.stdout}\0" if units else "")
