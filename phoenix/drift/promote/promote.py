"""Promote drift: a live server's changed files become part of its image's template, on purpose.

`promote(ws, server)` scans one serving server like `phoenix drift` does, keeps the findings about
files (restricted to `paths` when given), fetches the content of every changed or added regular
file over the same SSH session, and writes, beside the image's template:

    images/NAME/promoted/files/ABSOLUTE/PATH   the live content of each promoted regular file
    images/NAME/promoted/manifest.json         every promoted path and what to do with it
    images/NAME/promoted/apply.sh              generated from the manifest: install, link, chmod, rm

and adds two provisioners to the template, once: upload `promoted/`, run `apply.sh`. The manifest
is merged, never replaced, so promoting again (the same or other paths) adds to what is there; the
script is regenerated from it whole. The next bake's inputs change, so it is not a no-op.

The content of a secret (a private key, a shadow file) is never written into the repository.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from phoenix import events, facts
from phoenix.config import Severity
from phoenix.drift.diff import BINARY_DIRS, Finding, Rules, diff
from phoenix.drift.promote import tree
from phoenix.drift.promote.manifest import Action, Entry, Written, WrittenFile, write
from phoenix.drift.promote.provisioners import add_provisioners
from phoenix.drift.secrets import is_secret, looks_secret
from phoenix.errors import NotFound, Refused
from phoenix.events import Emit, StepOutput, discard
from phoenix.facts import Facts, FileFact
from phoenix.facts.runner import Runner, read_files
from phoenix.fleet.records import Records, ServerRecord, ServerStatus
from phoenix.host import keys, ssh
from phoenix.image.registry import Registry
from phoenix.image.template import load_template
from phoenix.lock import image_lock
from phoenix.state import Store, now
from phoenix.workspace import Workspace

MAX_BYTES = 10 * 1024 * 1024  # per file: bigger things belong in a package, not in a template
FILE_KINDS = ("file.", "binary.", "setuid.")
CONTENT_KINDS = ("file.added", "file.modified", "binary.modified")
PROMOTED = "promoted"

# Paths whose change is how a break-in looks (fnmatch, `*` crosses `/`): promoted only when named
# with --path and confirmed, like every path with a HIGH finding (setuid, a replaced binary).
SENSITIVE: dict[str, tuple[str, ...]] = {
    "an SSH key or SSH configuration": ("*/.ssh", "*/.ssh/*", "/etc/ssh", "/etc/ssh/*"),
    "a PAM file": ("/etc/pam.d", "/etc/pam.d/*", "/etc/security/*"),
    "sudo's rules": ("/etc/sudoers", "/etc/sudoers.d", "/etc/sudoers.d/*"),
    "a cron job": ("/etc/cron*", "/var/spool/cron", "/var/spool/cron/*"),
    "a binary": tuple(f"{d}*" for d in BINARY_DIRS),
}

Connect = Callable[[ssh.Target, Path], ssh.Session]
# Called with the HIGH paths the operator named with --path, before anything is fetched or
# written: returns to go ahead, raises Refused to stop (the CLI asks, or wants --yes).
Approve = Callable[[Sequence["High"]], None]


@dataclass(frozen=True)
class High:
    path: str
    why: str  # "setuid.added", "a PAM file"...


def refuse_high(high: Sequence[High]) -> None:
    """The default: nothing HIGH is promoted without the operator's say-so."""
    named = ", ".join(h.path for h in high)
    raise Refused(f"refused to promote {named} (HIGH) without confirmation", hint="pass --yes")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Promotion:
    server: str
    image: str  # the image's name in phoenix.toml
    image_tag: str  # the version the server runs
    directory: Path  # images/NAME/promoted
    template: Path
    written: list[str] = field(default_factory=list)  # paths apply.sh now installs or changes
    removed: list[str] = field(default_factory=list)  # paths apply.sh now removes
    skipped: list[Skipped] = field(default_factory=list)
    template_changed: bool = False
    files: list[WrittenFile] = field(default_factory=list)  # written under promoted/files
    diff: str = ""  # of manifest.json, apply.sh and the files, as written (control chars escaped)

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "image": self.image,
            "image_tag": self.image_tag,
            "directory": str(self.directory),
            "template": str(self.template),
            "written": self.written,
            "removed": self.removed,
            "skipped": [asdict(s) for s in self.skipped],
            "template_changed": self.template_changed,
            "files": [asdict(f) for f in self.files],
            "diff": self.diff,
        }


@dataclass(frozen=True, kw_only=True)
class Located:
    record: ServerRecord
    image: str
    template: Path
    baseline: Facts


# -- the one call -----------------------------------------------------------------------------


def promote(
    ws: Workspace,
    server: str,
    paths: Sequence[str] = (),
    emit: Emit = discard,
    connect: Connect = ssh.connect,
    max_bytes: int = MAX_BYTES,
    approve: Approve = refuse_high,
) -> Promotion:
    """Write `server`'s drifted files (under `paths`, or all) into its image's template. A HIGH
    path (see `high`) is skipped unless named exactly in `paths` and then passed by `approve`."""
    wanted = _normalize(paths)
    found = _locate(ws, server)
    rules = Rules.with_extra(ws.config.drift.ignore)
    key, _ = keys.ensure(ws.home)
    record = found.record
    target = ssh.Target(
        name=record.name, address=str(record.address), host_key=str(record.host_key)
    )
    title = f"scan {server}, fetch its drifted files"
    with events.step(emit, "promote", title), connect(target, key.private_path) as session:
        live = facts.gather(session, ws.config.drift.roots, timeout=ws.config.drift.timeout)
        findings = select(file_findings(diff(found.baseline, live, rules)), wanted)
        entries, skipped = plan(
            findings, found.baseline, live, server, now(), ws.config.drift.secrets
        )
        entries, refused = gate(entries, findings, wanted, approve)
        skipped += refused
        files = sum(e.action is Action.FILE for e in entries)
        emit(StepOutput("promote", f"fetching {files} files"))
        contents, more = fetch(session, entries, live, max_bytes, ws.config.drift.timeout)
    entries = [e for e in entries if e.action is not Action.FILE or e.path in contents]
    directory = found.template.parent / found.image / PROMOTED
    changed = False
    written = Written([], "")
    if entries:
        with image_lock(ws.home, found.image, operation="promote"):
            written = write(directory, entries, contents)
            changed = add_provisioners(found.template, directory)
    return Promotion(
        server=server,
        image=found.image,
        image_tag=record.image_tag,
        directory=directory,
        template=found.template,
        written=sorted(e.path for e in entries if e.action is not Action.REMOVE),
        removed=sorted(e.path for e in entries if e.action is Action.REMOVE),
        skipped=skipped + more,
        template_changed=changed,
        files=written.files,
        diff=written.diff,
    )


def _normalize(paths: Sequence[str]) -> list[str]:
    bad = [p for p in paths if not p.startswith("/")]
    if bad:
        raise Refused(
            f"--path must be absolute, not {', '.join(bad)}", hint="like --path /etc/nginx"
        )
    return [p.rstrip("/") or "/" for p in paths]


def _locate(ws: Workspace, server: str) -> Located:
    """The serving server named `server`, its image's name, template and baseline."""
    with Store.open(ws.home) as store:
        records = Records(store)
        live = [s for fleet in sorted(ws.config.fleets) for s in records.servers(fleet)]
        serving = {s.name: s for s in live if s.status is ServerStatus.SERVING}
        if server not in serving:
            known = ", ".join(sorted(serving)) or "none"
            raise NotFound(f"no serving server {server}", hint=f"serving servers: {known}")
        record = serving[server]
        image = Registry(store).get(record.image_tag)
    if image.name not in ws.config.images:
        raise NotFound(
            f"image {image.name} of {server} is not in {ws.config_file}",
            hint=f"add [images.{image.name}] back to promote into it",
        )
    if not image.baseline:
        raise Refused(
            f"image {image.tag} has no baseline",
            hint=f"bake it again: phoenix image bake {image.name} --force",
        )
    template = ws.image(image.name).template_path(ws.config_file.parent, image.name)
    load_template(template)  # fail before touching the server if it is not a template
    return Located(
        record=record, image=image.name, template=template, baseline=Facts.from_dict(image.baseline)
    )


# -- what to promote --------------------------------------------------------------------------


def file_findings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind.startswith(FILE_KINDS)]


def select(findings: Sequence[Finding], paths: Sequence[str]) -> list[Finding]:
    """The findings under `paths` (each selects itself and what is below it); all when empty."""
    if not paths:
        return list(findings)
    paths = _normalize(paths)
    unmatched = [p for p in paths if not any(_under(f.subject, p) for f in findings)]
    if unmatched:
        drifted = sorted({f.subject for f in findings})
        shown = ", ".join(drifted[:10]) + (f" and {len(drifted) - 10} more" if drifted[10:] else "")
        raise Refused(
            f"no drifted file under {', '.join(unmatched)}",
            hint=f"drifted files: {shown}" if drifted else "no file drifted on this server",
        )
    return [f for f in findings if any(_under(f.subject, p) for p in paths)]


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def high(path: str, findings: Iterable[Finding]) -> str | None:
    """Why promoting `path` needs the operator's say-so (None: it does not): a HIGH finding
    about it (setuid.added, binary.modified...), or a path where a break-in hides."""
    kinds = sorted({f.kind for f in findings if f.subject == path and f.severity is Severity.HIGH})
    if kinds:
        return ", ".join(kinds)
    for why, patterns in SENSITIVE.items():
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            return why
    return None


def gate(
    entries: Sequence[Entry], findings: Sequence[Finding], named: Sequence[str], approve: Approve
) -> tuple[list[Entry], list[Skipped]]:
    """The entries that may be promoted: a HIGH one only if named exactly with --path and
    approved (`approve` raises to refuse them all); the others HIGH skipped, saying how."""
    kept: list[Entry] = []
    skipped: list[Skipped] = []
    asked: list[High] = []
    for entry in entries:
        why = high(entry.path, findings)
        if why is None:
            kept.append(entry)
        elif entry.path in named:
            asked.append(High(entry.path, why))
            kept.append(entry)
        else:
            how = f"--path {shlex.quote(entry.path)} --yes"
            skipped.append(Skipped(entry.path, f"HIGH ({why}): to promote it on purpose, {how}"))
    if asked:
        approve(asked)
    return kept, skipped


def plan(
    findings: Sequence[Finding],
    baseline: Facts,
    live: Facts,
    server: str,
    at: str,
    secrets: Sequence[str] = (),
) -> tuple[list[Entry], list[Skipped]]:
    """One entry per drifted path, from its live facts; what cannot be promoted, with why."""
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    kinds: dict[str, set[str]] = {}
    for f in findings:
        kinds.setdefault(f.subject, set()).add(f.kind)
    for path, found in sorted(kinds.items()):
        now_ = live.files.get(path)
        try:
            tree.parts(path)
        except ValueError as exc:
            skipped.append(Skipped(path, f"not a path that can be promoted: {exc}"))
            continue
        if now_ is None:
            entries.append(Entry(path=path, action=Action.REMOVE, server=server, promoted_at=at))
            continue
        action = _action(now_, bool(found & set(CONTENT_KINDS)), baseline.files.get(path))
        if action is None:
            why = f"a special file (type {now_.type}): make it in a provisioner or unit"
            skipped.append(Skipped(path, why))
        elif action is Action.FILE and is_secret(path, secrets):
            skipped.append(Skipped(path, "a secret: its content is never written to the repo"))
        else:
            entries.append(_entry(path, action, now_, server, at))
    return entries, skipped


def _action(now_: FileFact, content: bool, was: FileFact | None) -> Action | None:
    """What apply.sh makes of a drifted path; None for what it cannot make (a special file)."""
    if now_.type == "l":
        return Action.LINK
    if now_.type == "d":
        return Action.META if was is not None and was.type == "d" else Action.DIR
    if now_.type != "f":
        return None
    return Action.FILE if content else Action.META


def _entry(path: str, action: Action, f: FileFact, server: str, at: str) -> Entry:
    if action is Action.LINK:
        return Entry(path=path, action=action, target=f.target, server=server, promoted_at=at)
    sha = f.sha256 if action is Action.FILE else None
    return Entry(
        path=path,
        action=action,
        mode=f.mode,
        owner=f.owner,
        group=f.group,
        sha256=sha,
        server=server,
        promoted_at=at,
    )


# -- fetching content -------------------------------------------------------------------------


def fetch(
    session: Runner, entries: Sequence[Entry], live: Facts, max_bytes: int, timeout: float
) -> tuple[dict[str, bytes], list[Skipped]]:
    """The content of every `file` entry (one command), checked against its live hash; the
    rest skipped, with why."""
    files = [e for e in entries if e.action is Action.FILE]
    skipped = [
        Skipped(e.path, f"{live.files[e.path].size} bytes, over the limit of {_size(max_bytes)}")
        for e in files
        if live.files[e.path].size > max_bytes
    ]
    wanted = [e for e in files if live.files[e.path].size <= max_bytes]
    read = read_files(session, [e.path for e in wanted], timeout)
    contents: dict[str, bytes] = {}
    for entry in wanted:
        data = read.get(entry.path)
        reason = (
            "could not be read on the server" if data is None else _refuse(data, entry, max_bytes)
        )
        if reason:
            skipped.append(Skipped(entry.path, reason))
        elif data is not None:
            contents[entry.path] = data
    return contents, skipped


def _size(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} bytes"


def _refuse(data: bytes, entry: Entry, max_bytes: int) -> str | None:
    if len(data) > max_bytes:
        return f"{len(data)} bytes, over the limit of {_size(max_bytes)}"
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        return "changed while it was being promoted: promote it again"
    if looks_secret(data):
        return "looks like a secret (a key, a token): its content is never written to the repo"
    return None


# -- writing: files, manifest, apply.sh -------------------------------------------------------


# -- the template -----------------------------------------------------------------------------
