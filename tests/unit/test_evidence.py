"""Evidence of hand changes: what is fetched, what is kept, how it is found again."""

from __future__ import annotations

import base64
import hashlib
import shlex
from pathlib import Path

import pytest

from phoenix import ops
from phoenix.drift import evidence
from phoenix.drift import scan as scan_mod
from phoenix.drift.diff import Finding, Rules
from phoenix.drift.scan import ScanReport, ServerScan
from phoenix.drift.secrets import is_secret, looks_secret
from phoenix.errors import ExitCode, Refused
from phoenix.facts import FileFact, HashCache, ScanCache
from phoenix.facts.runner import READ_FILES
from phoenix.fleet.plan import Plan, Result
from phoenix.host import ssh
from phoenix.host.process import CommandResult
from phoenix.state import Store, now
from phoenix.workspace import Workspace
from tests.unit.facts.fakes import FakeRunner

CONF = b"worker_processes 4;\n"
KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"


def fact(content: bytes, kind: str = "f") -> FileFact:
    sha = hashlib.sha256(content).hexdigest()
    return FileFact(kind, "0644", 0, 0, "root", "root", len(content), 1.0, 1.0, 7, None, sha)


def answer(*contents: bytes | None) -> CommandResult:
    lines = [f"ok {base64.b64encode(c).decode()}" if c is not None else "gone" for c in contents]
    return CommandResult(0, "".join(line + "\n" for line in lines), "")


FETCH = f"sh -c {shlex.quote(READ_FILES)} phoenix-read"


def test_secret_patterns() -> None:
    secrets = ["/etc/shadow", "/etc/gshadow-", "/root/.ssh/id_ed25519", "/etc/ssl/private/x"]
    secrets += ["/srv/app/secrets.yml", "/etc/app/DB_PASSWORD", "/opt/tls/server.key"]
    for path in secrets:
        assert is_secret(path), path
    for path in ("/etc/nginx/nginx.conf", "/etc/passwd", "/root/.ssh/authorized_keys"):
        assert not is_secret(path), path
    assert is_secret("/etc/app/conf.ini", ["/etc/app/*"])
    assert looks_secret(KEY) and not looks_secret(CONF)


def test_wanted_are_small_text_changes_not_secrets() -> None:
    live = {
        "/etc/a.conf": fact(CONF),
        "/etc/shadow": fact(b"root:x"),
        "/etc/big": fact(b"x" * 100),
        "/etc/link": fact(b"", "l"),
        "/etc/mode": fact(CONF),
    }
    found = [
        Finding("file.modified", "/etc/a.conf", "medium"),
        Finding("file.modified", "/etc/shadow", "medium"),
        Finding("file.added", "/etc/big", "low"),
        Finding("file.modified", "/etc/link", "medium"),
        Finding("file.mode", "/etc/mode", "medium"),
        Finding("file.removed", "/etc/gone", "medium"),
    ]
    assert evidence.wanted(found, live, evidence.Policy(limit=50)) == ["/etc/a.conf"]


def test_collect_keeps_text_drops_binary_keys_and_vanished_files() -> None:
    paths = ["/etc/a.conf", "/etc/b.bin", "/etc/c", "/etc/d"]
    contents = [CONF, b"\x00\x01binary", KEY, None]
    live = {p: fact(c or b"") for p, c in zip(paths, contents, strict=True)}
    found = [Finding("file.added", p, "low") for p in paths]
    runner = FakeRunner({FETCH: answer(*contents)})
    got = evidence.collect(runner, "web-1", found, live, evidence.Policy(limit=1000))
    assert [(a.path, a.content) for a in got.contents] == [("/etc/a.conf", CONF)]
    assert got.links == {"/etc/a.conf": hashlib.sha256(CONF).hexdigest()}
    assert runner.calls[0].args == tuple(paths)


def test_collect_fetches_nothing_already_archived() -> None:
    live = {"/etc/a.conf": fact(CONF)}
    found = [Finding("file.modified", "/etc/a.conf", "medium")]
    policy = evidence.Policy(limit=1000, known=frozenset({live["/etc/a.conf"].sha256 or ""}))
    runner = FakeRunner({})
    got = evidence.collect(runner, "web-1", found, live, policy)
    assert got.contents == [] and got.links == {"/etc/a.conf": live["/etc/a.conf"].sha256}
    assert runner.calls == []


def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    (tmp_path / "phoenix.toml").write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    ws = Workspace.open(tmp_path / "phoenix.toml")
    with Store.open(ws.home) as store, store.transaction() as db:
        db.execute("INSERT INTO fleets (name, created_at) VALUES ('web', 'x')")
        db.execute("INSERT INTO images (name, version, tag, status, template_sha256)"
                   " VALUES ('web', 1, 'web-v001', 'ready', 't')")  # fmt: skip
        db.execute("INSERT INTO generations (fleet, number, image_tag, created_at)"
                   " VALUES ('web', 1, 'web-v001', 'x')")  # fmt: skip
        db.execute("INSERT INTO servers (name, fleet, generation, image_tag, status, created_at)"
                   " VALUES ('web-g1-1', 'web', 1, 'web-v001', 'serving', 'x')")  # fmt: skip
    return ws


def test_scans_archive_evidence_once_and_lookup_finds_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    old, new = CONF, b"worker_processes 8;\n"
    for content in (old, old, new):
        digest = hashlib.sha256(content).hexdigest()
        finding = Finding("file.modified", "/etc/a.conf", "medium", evidence=f"sha256:{digest}")
        kept = [evidence.Archived(digest, "/etc/a.conf", "web-g1-1", content)]
        scanned = ServerScan("web-g1-1", "10.0.0.1", "web-v001", "web", "drifted", [finding],
                             archived=kept)  # fmt: skip
        with Store.open(ws.home) as store:
            scan_mod._record(store, ScanReport(now(), [scanned]))
    with Store.open(ws.home) as store:
        assert len(store.rows("SELECT * FROM evidence")) == 2
        assert evidence.known(store) == {hashlib.sha256(c).hexdigest() for c in (old, new)}
    [found] = evidence.lookup(ws, "web-g1-1", "/etc/a.conf")
    assert found.content == new and found.as_dict()["content"] == new.decode()
    assert [a.path for a in evidence.lookup(ws, "web-g1-1")] == ["/etc/a.conf"]
    with pytest.raises(Refused, match="no evidence archived for /etc/other"):
        evidence.lookup(ws, "web-g1-1", "/etc/other")
    with pytest.raises(Refused, match="no server nope"):
        evidence.lookup(ws, "nope")


def test_hash_caches_are_kept_per_server_and_dropped_by_a_deep_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    cache = ScanCache(HashCache({"/etc/a": ("1 2 3 4", "a" * 64)}), ("f" * 32, "a.service x"))
    scanned = ServerScan("web-g1-1", "10.0.0.1", "web-v001", "web", "clean", files=1)
    with Store.open(ws.home) as store:
        scan_mod._record(store, ScanReport(now(), [scanned]), {"web-g1-1": cache}, deep=True)
        assert scan_mod._cache(store, "web-g1-1", deep=False) == cache
        assert scan_mod._cache(store, "web-g1-1", deep=True) == ScanCache()
        assert scan_mod._cache(store, "web-g1-2", deep=False) == ScanCache()
        [row] = store.rows("SELECT deep_at, updated_at FROM hash_caches")
        assert row["deep_at"] == row["updated_at"]


def test_what_drift_replace_hands_to_the_rollout() -> None:
    low = Finding("file.added", "/etc/x", "low")
    high = Finding("ssh_key.added", "root", "high")
    stopped = Finding("server.stopped", "api-2", "high", "Running", "Stopped")
    servers = [
        ServerScan("web-1", "a", "i", "web", "drifted", [low]),
        ServerScan("web-2", "a", "i", "web", "drifted", [high]),
        ServerScan("web-3", "a", "i", "web", "untrusted", [high]),
        ServerScan("web-4", "a", "i", "web", "unreachable"),
        ServerScan("api-1", "a", "i", "api", "clean"),
        ServerScan("api-2", "a", "i", "api", "unreachable", [stopped]),
    ]
    assert ops.to_replace(ScanReport("t", servers, "low")) == {
        "web": ["web-1", "web-2", "web-3"],
        "api": ["api-2"],
    }
    assert ops.to_replace(ScanReport("t", servers, "high")) == {
        "web": ["web-2", "web-3"],
        "api": ["api-2"],
    }
    plan = Plan("web", "rebuild", "web-v002", "rolling", [])
    done = Result(plan, 1, "succeeded", removed=["web-1", "web-2", "web-3", "api-2"])
    back = Result(plan, 2, "rolled_back")
    assert ops.replace_exit_code(ScanReport("t", servers[:3]), [done]) is ExitCode.OK
    assert ops.replace_exit_code(ScanReport("t", servers[:3]), [done, back]) is ExitCode.FAILED
    assert ops.replace_exit_code(ScanReport("t", servers), [done]) is ExitCode.REFUSED  # web-4
    assert ops.replace_exit_code(ScanReport("t", servers[5:]), [done]) is ExitCode.OK
    assert ops.replace_exit_code(ScanReport("t", [], problems=["x"]), []) is ExitCode.REFUSED


def test_server_findings_join_their_server() -> None:
    scanned = [
        ServerScan("web-1", "a", "i", "web", "clean"),
        ServerScan("web-2", "a", "i", "web", "unreachable", error="no route"),
        ServerScan("api-1", "a", "i", "api", "clean"),
    ]
    found = [
        Finding("server.config", "web-1:limits.cpu", "medium", None, "1"),
        Finding("server.stopped", "web-2", "high", "Running", "Stopped"),
        Finding("server.missing", "web-9", "high"),
    ]
    problems: list[str] = []
    joined = scan_mod._joined(scanned, found, "web", problems)
    assert [(s.name, s.status, [f.kind for f in s.findings]) for s in joined] == [
        ("web-1", "drifted", ["server.config"]),
        ("web-2", "unreachable", ["server.stopped"]),
        ("api-1", "clean", []),
    ]
    assert problems == ["web: web-9 (server.missing) is not a serving server phoenix knows"]
    assert ScanReport("t", joined, problems=problems).exit_code is ExitCode.REFUSED


def test_a_server_without_a_baseline_is_reported_not_scanned(tmp_path: Path) -> None:
    target = ssh.Target("web-1", "10.213.0.9", "ssh-ed25519 AAAA")
    scanned = scan_mod.scan_server(
        target, None, Rules(), tmp_path / "key", ["/etc"], 10, "web-v001", "web"
    )  # no connection is even tried: the key file does not exist
    assert scanned.status == "unreachable"
    assert scanned.error == "image web-v001 has no baseline: rebake it"
    assert ScanReport("t", [scanned]).exit_code is ExitCode.REFUSED
