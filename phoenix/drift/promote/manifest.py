"""What was promoted, written beside the template: the files, manifest.json and the apply.sh
generated from it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from phoenix.atomic import write_atomic
from phoenix.drift.promote import tree
from phoenix.errors import Refused
from phoenix.facts import fields
from phoenix.facts.fields import shown

MANIFEST_VERSION = 1
MANIFEST = "manifest.json"
SCRIPT = "apply.sh"
MAX_DIFF = 256 * 1024  # bytes of a promoted file shown as a diff; a bigger one is named only


class Action(StrEnum):
    """What apply.sh makes of a promoted path, in the order it does it (removals last)."""

    DIR = "dir"  # make the directory, with its mode and owner
    FILE = "file"  # install the promoted content
    LINK = "link"  # make the symbolic link
    META = "meta"  # only set the mode and owner of what the image already has
    REMOVE = "remove"  # delete it


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One promoted path: what apply.sh makes of it."""

    path: str
    action: Action
    mode: str | None = None
    owner: str | None = None
    group: str | None = None
    target: str | None = None  # link only
    sha256: str | None = None  # file only
    server: str = ""
    promoted_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and k != "path"}


FIELDS = {f for f in Entry.__dataclass_fields__ if f != "path"}
# What each action needs to make a line of apply.sh.
NEEDS: dict[Action, tuple[str, ...]] = {
    Action.DIR: ("mode", "owner", "group"),
    Action.FILE: ("mode", "owner", "group", "sha256"),
    Action.LINK: ("target",),
    Action.META: ("mode", "owner", "group"),
    Action.REMOVE: (),
}


@dataclass(frozen=True)
class WrittenFile:
    """A file written under promoted/files: its path on the server, mode and content's hash."""

    path: str
    mode: str  # as apply.sh installs it (the live mode)
    sha256: str
    size: int


@dataclass(frozen=True)
class Written:
    files: list[WrittenFile]
    diff: str  # unified diff of manifest.json, apply.sh and the text files, control chars escaped


def write(directory: Path, entries: Sequence[Entry], contents: dict[str, bytes]) -> Written:
    """Merge `entries` into the manifest in `directory`; write their files and apply.sh. Every
    entry and path is checked before anything is written: nothing lands outside `directory`."""
    for entry in entries:
        try:
            _checked(entry, f"entry {shown(entry.path)}")
        except ValueError as exc:
            raise Refused(f"refused to promote: {exc}", hint="nothing was written") from exc
    merged = read_manifest(directory)
    for entry in entries:
        merged[entry.path] = _merge(merged.get(entry.path), entry)
    files = directory / "files"
    directory.mkdir(parents=True, exist_ok=True)
    tree.check(files, contents)
    before = {name: _read(directory / name) for name in (MANIFEST, SCRIPT)}
    old = {path: _read(files / path.lstrip("/")) for path in contents}
    written = []
    for path, data in sorted(contents.items()):
        live = merged[path].mode if path in merged else None
        tree.write(files, path, data, tree.mode_of(live))
        written.append(WrittenFile(path, str(live), hashlib.sha256(data).hexdigest(), len(data)))
    tree.prune(files, {p for p, e in merged.items() if e.action is Action.FILE})
    manifest = {
        "version": MANIFEST_VERSION,
        "entries": {p: e.as_dict() for p, e in sorted(merged.items())},
    }
    after = {
        MANIFEST: json.dumps(manifest, indent=2) + "\n",
        SCRIPT: script(list(merged.values())),
    }
    write_atomic(directory / MANIFEST, after[MANIFEST], mode=0o644)
    write_atomic(directory / SCRIPT, after[SCRIPT], mode=0o755)
    texts = [(name, before[name], after[name].encode()) for name in (MANIFEST, SCRIPT)]
    texts += [(f"files{p}", old[p], contents[p]) for p in sorted(contents)]
    return Written(written, "".join(_diff(name, was, now) for name, was, now in texts))


def _read(path: Path) -> bytes | None:
    """The content of `path` as it was (None if missing, a link or unreadable)."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


def _diff(name: str, was: bytes | None, now: bytes) -> str:
    """The unified diff of one file for the operator's eyes; a binary or big file: one line."""
    if was == now:
        return ""
    old, new = _text(was or b""), _text(now)
    if old is None or new is None:
        return f"binary or large file {name}: {len(now)} bytes written\n"
    lines = difflib.unified_diff(
        old.split("\n"), new.split("\n"), f"a/{name}", f"b/{name}", lineterm=""
    )
    return "".join(line + "\n" for line in lines)  # escaped where it is shown


def _text(data: bytes) -> str | None:
    if len(data) > MAX_DIFF or b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _merge(old: Entry | None, new: Entry) -> Entry:
    """A mode or owner change of a path promoted with content keeps the content."""
    if old is not None and new.action is Action.META and old.action in (Action.FILE, Action.DIR):
        return replace(
            old, mode=new.mode, owner=new.owner, group=new.group, server=new.server,
            promoted_at=new.promoted_at,
        )  # fmt: skip
    return new


def read_manifest(directory: Path) -> dict[str, Entry]:
    """The entries of manifest.json in `directory`, each checked; Refused naming the first bad
    one (one line), never a manifest read in part."""
    path = directory / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise ValueError(f"version {version!r}, expected {MANIFEST_VERSION}")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise ValueError("no object of entries")
        return {p: _entry(p, fields) for p, fields in entries.items()}
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(
            f"{path}: not a manifest phoenix can read: {exc}",
            hint="fix it, or remove the promoted directory and promote again",
        ) from exc


def _entry(path: str, values: Any) -> Entry:
    what = f"entry {shown(path)}"
    if not isinstance(values, dict):
        raise ValueError(f"{what} is not an object")
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise ValueError(f"{what}: unknown field {shown(str(unknown[0]))}")
    bad = [k for k, v in values.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{what}: {bad[0]} is not a string")
    try:
        action = Action(str(values.get("action")))
    except ValueError:
        choices = ", ".join(a.value for a in Action)
        raise ValueError(
            f"{what}: action {shown(str(values.get('action')))} is not one of {choices}"
        ) from None
    return _checked(Entry(path=path, **{**values, "action": action}), what)


def _checked(entry: Entry, what: str) -> Entry:
    """`entry` if every field holds what apply.sh may be made of; else ValueError naming it."""
    try:
        tree.parts(entry.path)
        needs = NEEDS[entry.action]
        missing = [k for k in needs if getattr(entry, k) is None]
        if missing:
            raise ValueError(f"no {missing[0]} for action {entry.action.value}")
        mode = entry.mode if entry.mode is None else fields.mode(entry.mode)
        for key in ("owner", "group"):
            value = getattr(entry, key)
            if value is not None:
                fields.name(value, key)
        if entry.sha256 is not None:
            fields.sha256(entry.sha256)
        if entry.target is not None and (
            not entry.target or "\0" in entry.target or len(entry.target) > 4096
        ):
            raise ValueError(f"link target {shown(entry.target)} is not a path")
        fields.plain(entry.server, "server", 256)
        fields.plain(entry.promoted_at, "promoted_at", 64)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from exc
    return replace(entry, mode=mode)


HEADER = """\
#!/bin/sh
# Generated by `phoenix drift promote` from manifest.json: do not edit, promote again instead.
# Puts what was promoted from live servers into the image. Safe to run again.
# Usage: sh apply.sh DIR, where DIR holds the uploaded promoted/ directory (files/ in it).
set -eu
src="${1:-/tmp/promoted}/files"
"""


def script(entries: Sequence[Entry]) -> str:
    """apply.sh for `entries`: directories, files, links, modes and owners, then removals."""
    order = list(Action)
    kept = sorted(
        (e for e in entries if e.action is not Action.REMOVE),
        key=lambda e: (order.index(e.action), e.path),
    )
    gone = sorted((e.path for e in entries if e.action is Action.REMOVE), reverse=True)
    lines = [_line(e) for e in kept] + [f"rm -rf -- {shlex.quote(p)}" for p in gone]
    return HEADER + "".join(f"{line}\n" for line in lines)


def _line(e: Entry) -> str:
    path = shlex.quote(e.path)
    mode = shlex.quote(str(e.mode))
    who = f"-m {mode} -o {shlex.quote(str(e.owner))} -g {shlex.quote(str(e.group))}"
    if e.action is Action.DIR:
        return f"install -d {who} -- {path}"
    if e.action is Action.FILE:
        return f'install -D {who} -- "$src"{path} {path}'
    if e.action is Action.LINK:
        parent = shlex.quote(os.path.dirname(e.path) or "/")
        return f"mkdir -p -- {parent} && ln -sfn -- {shlex.quote(str(e.target))} {path}"
    # chown first: it clears setuid/setgid bits, which chmod then sets
    return f"chown -- {shlex.quote(f'{e.owner}:{e.group}')} {path} && chmod -- {mode} {path}"
