"""Promoting drift into a template, with plain data, a temp repo and a fake SSH session."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import posixpath
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from phoenix.cli import render
from phoenix.cli.app import main
from phoenix.drift.diff import diff
from phoenix.drift.promote import manifest, provisioners
from phoenix.drift.promote import promote as promote_mod
from phoenix.drift.promote.manifest import Action, Entry
from phoenix.drift.promote.promote import Skipped, promote
from phoenix.drift.secrets import is_secret
from phoenix.errors import ExitCode, NotFound, Refused
from phoenix.facts import Facts, FileFact
from phoenix.facts.runner import READ_FILES
from phoenix.fleet.records import Records, ServerStatus
from phoenix.host import ssh
from phoenix.host.process import CommandResult
from phoenix.image import template as tpl
from phoenix.image.registry import Registry
from phoenix.state import Store
from phoenix.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
AT = "2025-01-01T00:00:00.000+00:00"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def f(data: bytes = b"old\n", mode: str = "0644", owner: str = "root", **kw: Any) -> FileFact:
    base: dict[str, Any] = dict(type="f", mode=mode, uid=0, gid=0, owner=owner, group="root",
                                size=len(data), mtime=1.0, ctime=1.0, inode=1, target=None,
                                sha256=sha(data))  # fmt: skip
    base.update(kw)
    return FileFact(**base)


def d(mode: str = "0755") -> FileFact:
    return f(type="d", mode=mode, sha256=None, size=4096)


BASE = Facts(
    files={
        "/etc": d(),
        "/etc/nginx": d(),
        "/etc/nginx/nginx.conf": f(),
        "/etc/nginx/mime.types": f(),
        "/etc/motd": f(),
        "/etc/passwd": f(),
        "/etc/shadow": f(mode="0640", group="shadow"),
        "/etc/alternatives/awk": f(type="l", target="/usr/bin/mawk", sha256=None),
        "/etc/machine-id": f(b"1"),
    },
    packages={},
    services={},
)
# What a person did by hand on the server.
LIVE_CONTENT = {
    "/etc/nginx/nginx.conf": b"new\n",
    "/etc/nginx/conf.d/gz.conf": b"gzip on;\n",
    "/etc/shadow": b"root:$y$secret:1::::::\n",
}
LIVE = dataclasses.replace(
    BASE,
    files={
        **{p: fact for p, fact in BASE.files.items() if p != "/etc/motd"},
        "/etc/nginx/nginx.conf": f(LIVE_CONTENT["/etc/nginx/nginx.conf"], mode="0640"),
        "/etc/nginx/conf.d": d("0750"),
        "/etc/nginx/conf.d/gz.conf": f(LIVE_CONTENT["/etc/nginx/conf.d/gz.conf"]),
        "/etc/passwd": f(mode="0600", owner="www-data"),
        "/etc/shadow": f(LIVE_CONTENT["/etc/shadow"], mode="0640", group="shadow"),
        "/etc/alternatives/awk": f(type="l", target="/usr/bin/gawk", sha256=None),
        "/etc/nginx/fifo": f(type="p", sha256=None, size=0),
        "/etc/machine-id": f(b"2"),
    },
)


def planned(paths: tuple[str, ...] = ()) -> tuple[list[Entry], list[Skipped]]:
    findings = promote_mod.select(promote_mod.file_findings(diff(BASE, LIVE)), paths)
    return promote_mod.plan(findings, BASE, LIVE, "web-g1-1", AT)


def test_plan_has_one_entry_per_drifted_path_from_its_live_facts() -> None:
    entries, skipped = planned()
    by_path = {e.path: e for e in entries}
    assert {p: e.action for p, e in by_path.items()} == {
        "/etc/alternatives/awk": Action.LINK,
        "/etc/motd": Action.REMOVE,
        "/etc/nginx/conf.d": Action.DIR,
        "/etc/nginx/conf.d/gz.conf": Action.FILE,
        "/etc/nginx/nginx.conf": Action.FILE,
        "/etc/passwd": Action.META,
    }
    assert by_path["/etc/nginx/nginx.conf"].mode == "0640"
    assert by_path["/etc/nginx/nginx.conf"].sha256 == sha(b"new\n")
    assert by_path["/etc/passwd"].owner == "www-data"
    assert by_path["/etc/alternatives/awk"].target == "/usr/bin/gawk"
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"/etc/shadow", "/etc/nginx/fifo"}  # machine-id is noise, not drift
    assert "secret" in reasons["/etc/shadow"] and "special file" in reasons["/etc/nginx/fifo"]


def test_a_path_selects_itself_and_what_is_below_it() -> None:
    entries, _ = planned(("/etc/nginx/",))
    assert [e.path for e in entries] == [
        "/etc/nginx/conf.d",
        "/etc/nginx/conf.d/gz.conf",
        "/etc/nginx/nginx.conf",
    ]
    assert [e.path for e in planned(("/etc/passwd",))[0]] == ["/etc/passwd"]


def test_a_path_with_no_drift_is_refused_naming_what_drifted() -> None:
    with pytest.raises(Refused, match=r"under /etc/ngin \(") as caught:
        planned(("/etc/nginx/nginx.conf", "/etc/ngin"))  # a prefix is not a parent
    assert caught.value.hint and "/etc/nginx/nginx.conf" in caught.value.hint
    with pytest.raises(Refused, match="absolute"):
        promote_mod._normalize(["etc/nginx"])


def test_secret_patterns() -> None:
    for path in ("/etc/shadow", "/etc/ssh/ssh_host_ed25519_key", "/root/.ssh/id_rsa",
                 "/etc/ssl/private/site.pem", "/opt/app/tls.key"):  # fmt: skip
        assert is_secret(path), path
    for path in ("/etc/passwd", "/etc/ssh/ssh_host_ed25519_key.pub", "/root/.ssh/authorized_keys"):
        assert not is_secret(path), path


# -- fetching ---------------------------------------------------------------------------------


READ = f"sh -c {shlex.quote(READ_FILES)} phoenix-read"


class FakeSession:
    """Answers runner.read_files' command (a base64 line per path) from a dict of contents."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.target = ssh.Target(name="web-g1-1", address="10.0.0.1", host_key="ssh-ed25519 AAAA")
        self.commands: list[tuple[str, ...]] = []

    def run(self, command: str, *args: str, timeout: float = 60) -> CommandResult:
        self.commands.append((command, *args))
        if command == READ:
            found = [self.files.get(path) for path in args]
            lines = [
                f"ok {base64.b64encode(d).decode()}" if d is not None else "gone" for d in found
            ]
            return CommandResult(0, "".join(line + "\n" for line in lines), "")
        raise AssertionError(f"unexpected command {command}")

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def file_entry(path: str, data: bytes) -> Entry:
    return Entry(
        path=path, action=Action.FILE, mode="0644", owner="root", group="root", sha256=sha(data)
    )


def test_fetch_is_binary_safe_and_checks_the_live_hash() -> None:
    blob = bytes(range(256)) * 4
    live = Facts(files={"/usr/lib/x.so": f(blob), "/etc/a": f(b"a")}, packages={}, services={})
    session = FakeSession({"/usr/lib/x.so": blob, "/etc/a": b"changed since the scan"})
    entries = [file_entry("/usr/lib/x.so", blob), file_entry("/etc/a", b"a")]
    contents, skipped = promote_mod.fetch(session, entries, live, 1 << 20, 60)
    assert contents == {"/usr/lib/x.so": blob}
    assert skipped == [Skipped("/etc/a", "changed while it was being promoted: promote it again")]


def test_fetch_skips_files_over_the_size_limit_without_reading_them() -> None:
    big = b"x" * 2048
    live = Facts(files={"/srv/big": f(big)}, packages={}, services={})
    session = FakeSession({"/srv/big": big})
    contents, skipped = promote_mod.fetch(session, [file_entry("/srv/big", big)], live, 1024, 60)
    assert contents == {} and session.commands == []
    assert (
        skipped[0].path == "/srv/big" and skipped[0].reason == "2048 bytes, over the limit of 1 KiB"
    )


def test_fetch_refuses_a_private_key_whatever_its_name() -> None:
    pem = b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    live = Facts(files={"/etc/app/deploy": f(pem)}, packages={}, services={})
    session = FakeSession({"/etc/app/deploy": pem})
    contents, skipped = promote_mod.fetch(
        session, [file_entry("/etc/app/deploy", pem)], live, 1 << 20, 60
    )
    assert contents == {} and "secret" in skipped[0].reason


def test_a_file_that_cannot_be_read_is_skipped_naming_it() -> None:
    live = Facts(files={"/etc/gone": f(b"a"), "/etc/a": f(b"a")}, packages={}, services={})
    entries = [file_entry("/etc/gone", b"a"), file_entry("/etc/a", b"a")]
    session = FakeSession({"/etc/a": b"a"})
    contents, skipped = promote_mod.fetch(session, entries, live, 1 << 20, 60)
    assert contents == {"/etc/a": b"a"} and skipped == [
        Skipped("/etc/gone", "could not be read on the server")
    ]
    assert len(session.commands) == 1  # every file in one command


# -- writing ----------------------------------------------------------------------------------

GOLDEN = """\
#!/bin/sh
# Generated by `phoenix drift promote` from manifest.json: do not edit, promote again instead.
# Puts what was promoted from live servers into the image. Safe to run again.
# Usage: sh apply.sh DIR, where DIR holds the uploaded promoted/ directory (files/ in it).
set -eu
src="${1:-/tmp/promoted}/files"
install -d -m 0750 -o root -g root -- /etc/nginx/conf.d
install -D -m 0644 -o root -g root -- "$src"/etc/nginx/conf.d/gz.conf /etc/nginx/conf.d/gz.conf
install -D -m 0640 -o root -g root -- "$src"/etc/nginx/nginx.conf /etc/nginx/nginx.conf
mkdir -p -- /etc/alternatives && ln -sfn -- /usr/bin/gawk /etc/alternatives/awk
chown -- www-data:root /etc/passwd && chmod -- 0600 /etc/passwd
rm -rf -- /etc/motd
"""


def test_script_golden() -> None:
    entries, _ = planned()
    assert manifest.script(entries) == GOLDEN


def test_script_quotes_what_the_shell_would_split() -> None:
    entry = Entry(
        path="/srv/my site/it's.conf", action=Action.FILE, mode="0644", owner="root", group="root"
    )
    line = manifest.script([entry]).splitlines()[-1]
    expected = "'/srv/my site/it'\"'\"'s.conf'"
    assert line == f'install -D -m 0644 -o root -g root -- "$src"{expected} {expected}'


def write_all(directory: Path, paths: tuple[str, ...] = ()) -> list[Entry]:
    entries, _ = planned(paths)
    contents = {e.path: LIVE_CONTENT[e.path] for e in entries if e.action is Action.FILE}
    manifest.write(directory, entries, contents)
    return entries


def test_write_lays_out_files_manifest_and_script(tmp_path: Path) -> None:
    directory = tmp_path / "web" / "promoted"
    write_all(directory)
    assert (directory / "files/etc/nginx/nginx.conf").read_bytes() == b"new\n"
    assert (directory / "apply.sh").read_text() == GOLDEN
    assert (directory / "apply.sh").stat().st_mode & 0o777 == 0o755
    written = json.loads((directory / "manifest.json").read_text())
    assert written["version"] == 1
    assert written["entries"]["/etc/nginx/nginx.conf"] == {
        "action": "file", "mode": "0640", "owner": "root", "group": "root",
        "sha256": sha(b"new\n"), "server": "web-g1-1", "promoted_at": AT,
    }  # fmt: skip
    assert not list(tmp_path.rglob(".*"))  # no temp file left behind


def test_promoting_again_merges_rather_than_clobbers(tmp_path: Path) -> None:
    directory = tmp_path / "promoted"
    write_all(directory, ("/etc/nginx",))
    write_all(directory, ("/etc/passwd", "/etc/motd", "/etc/alternatives"))
    assert manifest.script(list(manifest.read_manifest(directory).values())) == GOLDEN
    assert (directory / "apply.sh").read_text() == GOLDEN
    write_all(directory)  # the same again: nothing changes
    assert (directory / "apply.sh").read_text() == GOLDEN


def test_a_mode_change_keeps_content_promoted_before_and_a_removal_drops_it(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "promoted"
    write_all(directory, ("/etc/nginx/nginx.conf",))
    meta = Entry(
        path="/etc/nginx/nginx.conf",
        action=Action.META,
        mode="0600",
        owner="www-data",
        group="root",
        server="b",
    )
    manifest.write(directory, [meta], {})
    kept = manifest.read_manifest(directory)["/etc/nginx/nginx.conf"]
    assert kept.action is Action.FILE  # read back as the enum, not a bare string
    assert (kept.mode, kept.owner, kept.sha256) == ("0600", "www-data", sha(b"new\n"))
    assert (directory / "files/etc/nginx/nginx.conf").exists()
    manifest.write(directory, [Entry(path="/etc/nginx/nginx.conf", action=Action.REMOVE)], {})
    assert not (directory / "files").exists() or not list((directory / "files").rglob("*"))
    assert (directory / "apply.sh").read_text().endswith("rm -rf -- /etc/nginx/nginx.conf\n")


def test_an_unreadable_manifest_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"version": 9, "entries": {}}')
    with pytest.raises(Refused, match="version 9"):
        manifest.read_manifest(tmp_path)


# -- the template -----------------------------------------------------------------------------


def copy_images(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "images", tmp_path / "images")
    return tmp_path / "images" / "web.pkr.json"


def test_dump_json_keeps_the_templates_own_layout() -> None:
    text = (REPO / "images" / "web.pkr.json").read_text()
    assert provisioners.dump_json(json.loads(text)) + "\n" == text


def test_provisioners_are_added_once_after_the_others(tmp_path: Path) -> None:
    template = copy_images(tmp_path)
    directory = template.parent / "web" / "promoted"
    write_all(directory)
    assert provisioners.add_provisioners(template, directory) is True
    after = template.read_text()
    steps = json.loads(after)["provisioners"]
    assert steps[-2:] == [
        {"type": "file", "source": "web/promoted", "destination": "/tmp"},
        {"type": "shell", "inline": ["sh /tmp/promoted/apply.sh /tmp/promoted"]},
    ]
    assert steps[:-2] == json.loads((REPO / "images/web.pkr.json").read_text())["provisioners"]
    assert '"environment_vars": ["IMAGE_VERSION={{user `version`}}"]' in after
    assert provisioners.add_provisioners(template, directory) is False
    assert template.read_text() == after


def test_the_next_bake_sees_new_inputs(tmp_path: Path) -> None:
    template = copy_images(tmp_path)
    before = tpl.input_hashes(template, tpl.load_template(template), "p")
    directory = template.parent / "web" / "promoted"
    write_all(directory, ("/etc/nginx",))
    provisioners.add_provisioners(template, directory)
    once = tpl.input_hashes(template, tpl.load_template(template), "p")
    assert once["template"] != before["template"]
    assert "file:web/promoted/files/etc/nginx/nginx.conf" in once
    assert "file:web/promoted/apply.sh" in once
    write_all(directory, ("/etc/passwd",))  # promoting again: the template stays, apply.sh moves
    again = tpl.input_hashes(template, tpl.load_template(template), "p")
    assert again["template"] == once["template"]
    assert again["file:web/promoted/apply.sh"] != once["file:web/promoted/apply.sh"]


# -- the whole call, with a fake server -------------------------------------------------------


def fleet_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    copy_images(tmp_path)
    (tmp_path / "phoenix.toml").write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    ws = Workspace.open(tmp_path / "phoenix.toml")
    with Store.open(ws.home) as store:
        registry, records = Registry(store), Records(store)
        record = registry.begin("web", "t", {}, None, "p", ws.home / "logs")
        registry.ready(record.tag, "fp", "1.6.6", BASE.to_dict())
        records.ensure_fleet("web", {})
        generation = records.new_generation("web", record.tag)
        records.add_servers("web", generation, record.tag, ["web-g1-1", "web-g1-2"])
        records.set_identity("web-g1-1", "10.0.0.1", "ssh-ed25519 AAAA")
        records.set_status(["web-g1-1"], ServerStatus.SERVING)
    return ws


def test_promote_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = fleet_workspace(tmp_path, monkeypatch)
    monkeypatch.setattr(promote_mod.facts, "gather", lambda session, roots, timeout: LIVE)
    session = FakeSession(LIVE_CONTENT)

    @contextmanager
    def fake_connect(target: ssh.Target, key: Path) -> Iterator[FakeSession]:
        assert (target.name, target.address) == ("web-g1-1", "10.0.0.1")
        yield session

    done = promote(ws, "web-g1-1", ["/etc/nginx", "/etc/shadow"], connect=fake_connect)  # type: ignore[arg-type]
    assert done.written == [
        "/etc/nginx/conf.d",
        "/etc/nginx/conf.d/gz.conf",
        "/etc/nginx/nginx.conf",
    ]
    assert [s.path for s in done.skipped] == ["/etc/nginx/fifo", "/etc/shadow"]
    assert done.template_changed and done.image == "web" and done.image_tag == "web-v001"
    assert done.directory == tmp_path / "images" / "web" / "promoted"
    assert not (done.directory / "files/etc/shadow").exists()
    assert not any("/etc/shadow" in c for c in session.commands)  # never even read
    assert json.loads(json.dumps(done.as_dict()))["skipped"][1]["path"] == "/etc/shadow"
    again = promote(ws, "web-g1-1", connect=fake_connect)  # type: ignore[arg-type]
    assert not again.template_changed and again.removed == ["/etc/motd"]


def test_an_unknown_or_idle_server_is_refused_naming_the_serving_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = fleet_workspace(tmp_path, monkeypatch)
    for name in ("nope", "web-g1-2"):  # web-g1-2 exists but is not serving
        with pytest.raises(NotFound, match=f"no serving server {name}") as caught:
            promote(ws, name)
        assert caught.value.hint == "serving servers: web-g1-1"


def test_cli_rejects_path_without_promote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    config = tmp_path / "phoenix.toml"
    config.write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    assert main(["--config", str(config), "drift", "web", "--path", "/etc"]) == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert "phoenix drift scan" in err and "No such option: --path" in err
    rc = main(["--config", str(config), "drift", "promote", "a", "b"])
    assert rc == ExitCode.REFUSED and "unexpected extra argument" in capsys.readouterr().err


# -- hostile paths, manifests and HIGH kinds --------------------------------------------------


def everything_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_a_forged_traversal_path_writes_nothing_and_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "images" / "web" / "promoted"
    for forged in ("/etc/../../x", "/etc/./x", "etc/x", "//x", "/"):
        entry = file_entry(forged, b"pwned")
        error = r"refused to promote: entry .*(not an absolute|not a file that can be promoted)"
        with pytest.raises(Refused, match=error):
            manifest.write(directory, [entry], {forged: b"pwned"})
    assert everything_under(tmp_path) <= {"images", "images/web", "images/web/promoted"}


def test_a_promoted_parent_that_is_a_link_is_refused_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    directory = tmp_path / "promoted"
    (directory / "files").mkdir(parents=True)
    (directory / "files" / "etc").symlink_to(outside)
    entry = file_entry("/etc/nginx/x.conf", b"x")
    with pytest.raises(Refused, match="link"):
        manifest.write(directory, [entry], {entry.path: b"x"})
    assert list(outside.iterdir()) == [] and not (directory / "manifest.json").exists()
    with pytest.raises(Refused, match="not a real directory"):  # a link made after the check
        promote_mod.tree.write(directory / "files", entry.path, b"x", 0o644)
    assert list(outside.iterdir()) == []


def test_a_destination_or_files_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "motd").write_text("theirs")
    directory = tmp_path / "promoted"
    (directory / "files" / "etc").mkdir(parents=True)
    (directory / "files" / "etc" / "motd").symlink_to(outside / "motd")
    entry = file_entry("/etc/motd", b"x")
    with pytest.raises(Refused, match="link"):
        manifest.write(directory, [entry], {entry.path: b"x"})
    shutil.rmtree(directory / "files")
    (directory / "files").symlink_to(outside)
    with pytest.raises(Refused, match="promoted/files"):
        manifest.write(directory, [entry], {entry.path: b"x"})
    assert (outside / "motd").read_text() == "theirs" and len(list(outside.iterdir())) == 1


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ({"action": "file", "mode": "99", "owner": "root", "group": "root", "sha256": "0" * 64},
         r"entry '/etc/x': mode '99' is not octal"),
        ({"action": "meta", "mode": "0644; rm -rf /", "owner": "root", "group": "root"},
         "mode .* is not octal"),
        ({"action": "meta", "mode": "0644", "owner": "$(id)x y", "group": "root"},
         "owner .* is not a valid name"),
        ({"action": "explode"}, "action 'explode' is not one of dir, file, link"),
        ({"action": "file", "mode": "0644", "owner": "root", "group": "root"}, "no sha256"),
        ({"action": "remove", "extra": "x"}, "unknown field"),
        ({"action": "meta", "mode": 644, "owner": "root", "group": "root"}, "not a string"),
    ],
)  # fmt: skip
def test_a_bad_manifest_entry_is_one_clear_line_naming_it(
    tmp_path: Path, entry: dict[str, Any], error: str
) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"version": 1, "entries": {"/etc/x": entry}})
    )
    with pytest.raises(Refused, match=error) as caught:
        manifest.read_manifest(tmp_path)
    assert "\n" not in caught.value.message and "/etc/x" in caught.value.message
    bad_path = {"version": 1, "entries": {"/etc/../x": {"action": "remove"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(bad_path))
    with pytest.raises(Refused, match="not an absolute, normalised path"):
        manifest.read_manifest(tmp_path)


def test_every_value_of_apply_sh_is_quoted_whatever_a_path_holds() -> None:
    for path in ("/srv/$(rm -rf /)", "/srv/a b/`id`", "/srv/it's\n; rm -rf /", '/srv/"$HOME"'):
        meta = Entry(path=path, action=Action.META, mode="0644", owner="root", group="root")
        link = Entry(path=path, action=Action.LINK, target="$(reboot)")
        body = manifest.script([meta, link]).removeprefix(manifest.HEADER)
        assert shlex.split(body) == [
            "mkdir", "-p", "--", posixpath.dirname(path), "&&",
            "ln", "-sfn", "--", "$(reboot)", path,
            "chown", "--", "root:root", path, "&&", "chmod", "--", "0644", path,
        ]  # fmt: skip


SUDO = "/etc/sudoers.d/extra"
SETUID = "/usr/local/bin/helper"
HOSTILE = Facts(
    files={
        **LIVE.files,
        SUDO: f(b"ALL ALL=(ALL) NOPASSWD: ALL\n", mode="0440"),
        "/usr/local/bin": d(),
        SETUID: f(b"\x7fELF", mode="4755"),
    },
    packages={},
    services={},
)
HOSTILE_CONTENT = {**LIVE_CONTENT, SUDO: b"ALL ALL=(ALL) NOPASSWD: ALL\n", SETUID: b"\x7fELF"}


def hostile_promote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, Any]:
    ws = fleet_workspace(tmp_path, monkeypatch)
    monkeypatch.setattr(promote_mod.facts, "gather", lambda session, roots, timeout: HOSTILE)

    @contextmanager
    def fake_connect(target: ssh.Target, key: Path) -> Iterator[FakeSession]:
        yield FakeSession(HOSTILE_CONTENT)

    return ws, fake_connect


def test_high_kinds_are_skipped_unless_named_and_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, connect = hostile_promote(tmp_path, monkeypatch)
    done = promote(ws, "web-g1-1", connect=connect)
    reasons = {s.path: s.reason for s in done.skipped}
    assert reasons[SUDO] == f"HIGH (sudo's rules): to promote it on purpose, --path {SUDO} --yes"
    assert reasons[SETUID].startswith("HIGH (setuid.added)")
    assert SUDO not in done.written and not (done.directory / "files" / SUDO[1:]).exists()
    with pytest.raises(Refused, match="without confirmation"):  # named, not approved
        promote(ws, "web-g1-1", [SUDO], connect=connect)
    asked: list[promote_mod.High] = []
    done = promote(ws, "web-g1-1", [SUDO, SETUID], connect=connect, approve=asked.extend)
    assert [h.path for h in asked] == [SUDO, SETUID] and done.written == [SUDO, SETUID]
    assert (done.directory / "files" / SUDO[1:]).stat().st_mode & 0o7777 == 0o640  # 0440 + u+w
    assert (done.directory / "files" / SETUID[1:]).stat().st_mode & 0o7777 == 0o755  # no setuid
    assert "install -D -m 4755 -o root -g root" in (done.directory / "apply.sh").read_text()


def test_cli_promotes_a_high_path_only_with_path_and_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws, connect = hostile_promote(tmp_path, monkeypatch)
    real = promote_mod.promote
    monkeypatch.setattr(promote_mod, "promote", lambda *a, **k: real(*a, connect=connect, **k))
    monkeypatch.setattr("sys.stdin", type("NoTty", (), {"isatty": lambda self: False})())
    args = ["--config", str(ws.config_file), "drift", "promote", "web-g1-1", "--path", SUDO]
    assert main(args) == ExitCode.REFUSED
    err = capsys.readouterr().err
    assert f"refused to promote {SUDO} (sudo's rules) (HIGH) without a terminal" in err
    assert "--yes" in err and not (tmp_path / "images/web/promoted/files/etc/sudoers.d").exists()
    assert main([*args, "--yes"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"wrote promoted/files{SUDO}: mode 0440" in out
    assert f'+install -D -m 0440 -o root -g root -- "$src"{SUDO} {SUDO}' in out
    assert "+++ b/manifest.json" in out and f'+    "{SUDO}": {{' in out  # the manifest's diff


def test_the_diff_of_a_promotion_is_escaped_where_it_is_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = file_entry("/etc/motd", b"\x1b]0;pwned\x07hello\n")
    written = manifest.write(tmp_path, [entry], {entry.path: b"\x1b]0;pwned\x07hello\n"})
    assert "+\x1b]0;pwned\x07hello" in written.diff  # the data, exact
    render.raw(written.diff)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;pwned\\x07hello" in out
    assert written.files == [manifest.WrittenFile("/etc/motd", "0644", entry.sha256 or "", 16)]
