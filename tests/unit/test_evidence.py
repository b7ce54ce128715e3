"""Evidence of hand changes: what is fetched, what is kept, how it is found again."""

from __future__ import annotations

import base64
import hashlib
import shlex
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from phoenix import ops
from phoenix.config import Severity, Strategy
from phoenix.drift import evidence
from phoenix.drift import scan as scan_mod
from phoenix.drift.diff import Finding, Rules, finding
from phoenix.drift.scan import ScanReport, ScanStatus, ServerScan
from phoenix.drift.secrets import is_secret, looks_secret
from phoenix.errors import ExitCode, Refused
from phoenix.facts import Facts, FileFact, HashCache, ScanCache
from phoenix.facts.runner import READ_FILES
from phoenix.fleet.plan import Plan, Result, RolloutStatus
from phoenix.fleet.records import ServerRecord, ServerStatus
from phoenix.host import ssh
from phoenix.host.process import CommandResult
from phoenix.state import RunKind, Store, now
from phoenix.workspace import Workspace
from tests.unit.facts.fakes import FakeRunner
from tests.unit.stores import serving_fleet

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
        Finding(kind="file.modified", subject="/etc/a.conf", severity=Severity.MEDIUM),
        Finding(kind="file.modified", subject="/etc/shadow", severity=Severity.MEDIUM),
        Finding(kind="file.added", subject="/etc/big", severity=Severity.LOW),
        Finding(kind="file.modified", subject="/etc/link", severity=Severity.MEDIUM),
        Finding(kind="file.mode", subject="/etc/mode", severity=Severity.MEDIUM),
        Finding(kind="file.removed", subject="/etc/gone", severity=Severity.MEDIUM),
    ]
    assert evidence.wanted(found, live, evidence.Policy(limit=50)) == ["/etc/a.conf"]


def test_collect_keeps_text_drops_binary_keys_and_vanished_files() -> None:
    paths = ["/etc/a.conf", "/etc/b.bin", "/etc/c", "/etc/d"]
    contents = [CONF, b"\x00\x01binary", KEY, None]
    live = {p: fact(c or b"") for p, c in zip(paths, contents, strict=True)}
    found = [Finding(kind="file.added", subject=p, severity=Severity.LOW) for p in paths]
    runner = FakeRunner({FETCH: answer(*contents)})
    got = evidence.collect(runner, "web-1", found, live, evidence.Policy(limit=1000))
    assert [(a.path, a.content) for a in got.contents] == [("/etc/a.conf", CONF)]
    assert got.links == {"/etc/a.conf": hashlib.sha256(CONF).hexdigest()}
    assert runner.calls[0].args == tuple(paths)


def test_collect_fetches_nothing_already_archived() -> None:
    live = {"/etc/a.conf": fact(CONF)}
    found = [Finding(kind="file.modified", subject="/etc/a.conf", severity=Severity.MEDIUM)]
    policy = evidence.Policy(limit=1000, known=frozenset({live["/etc/a.conf"].sha256 or ""}))
    runner = FakeRunner({})
    got = evidence.collect(runner, "web-1", found, live, policy)
    assert got.contents == [] and got.links == {"/etc/a.conf": live["/etc/a.conf"].sha256}
    assert runner.calls == []


def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("PHOENIX_HOME", raising=False)
    (tmp_path / "phoenix.toml").write_text('[images.web]\n[fleets.web]\nimage = "web"\nsize = 1\n')
    ws = Workspace.open(tmp_path / "phoenix.toml")
    serving_fleet(ws, ["web-g1-1"])
    return ws


def test_scans_archive_evidence_once_and_lookup_finds_the_newest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    old, new = CONF, b"worker_processes 8;\n"
    for content in (old, old, new):
        digest = hashlib.sha256(content).hexdigest()
        changed = Finding(
            kind="file.modified",
            subject="/etc/a.conf",
            severity=Severity.MEDIUM,
            evidence=f"sha256:{digest}",
        )
        kept = [
            evidence.Archived(sha256=digest, path="/etc/a.conf", server="web-g1-1", content=content)
        ]
        scanned = ServerScan(
            name="web-g1-1",
            address="10.0.0.1",
            image="web-v001",
            fleet="web",
            status=ScanStatus.DRIFTED,
            findings=[changed],
            archived=kept,
        )
        with Store.open(ws.home) as store:
            scan_mod._record(store, ScanReport(scanned_at=now(), servers=[scanned]))
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
    scanned = ServerScan(
        name="web-g1-1",
        address="10.0.0.1",
        image="web-v001",
        fleet="web",
        status=ScanStatus.CLEAN,
        files=1,
    )
    with Store.open(ws.home) as store:
        scan_mod._record(
            store, ScanReport(scanned_at=now(), servers=[scanned]), {"web-g1-1": cache}, deep=True
        )
        stored = scan_mod._stored_cache(store, "web-g1-1")
        assert scan_mod._cache(stored, server_record("web-g1-1"), False, None) == cache
        assert scan_mod._cache(stored, server_record("web-g1-1"), True, None) == ScanCache()
        assert scan_mod._stored_cache(store, "web-g1-2") is None
        assert scan_mod._cache(None, server_record("web-g1-2"), False, None) == ScanCache()
        [row] = store.rows("SELECT deep_at, updated_at FROM hash_caches")
        assert row["deep_at"] == row["updated_at"]


def server_record(name: str, settled: str | None = None) -> ServerRecord:
    return ServerRecord(
        name=name, fleet="web", generation=1, address="10.0.0.1", image_tag="web-v001",
        host_key="ssh-ed25519 K", status=ServerStatus.SERVING, created_at=now(), removed_at=None,
        settled=settled,
    )  # fmt: skip


def test_a_server_never_scanned_starts_from_its_images_baseline_when_its_start_is_known() -> None:
    ls = FileFact("f", "0755", 0, 0, "root", "root", 151344, 1663687647.0, 1796315931.3, 8066)
    baseline = Facts({"/usr/bin/ls": replace(ls, sha256="b" * 64), "/usr": ls}, {}, {})
    started = "1796315932.11"
    seeded = scan_mod._cache(None, server_record("web-g1-1", started), False, baseline)
    assert seeded.files.settled == started
    assert seeded.files.entries == {"/usr/bin/ls": ("8066 151344 1663687647 settled", "b" * 64)}
    deep = scan_mod._cache(None, server_record("web-g1-1", started), True, baseline)
    assert deep.files.entries == {} and deep.files.settled == started
    unknown = scan_mod._cache(None, server_record("web-g1-1", None), False, baseline)
    assert unknown == ScanCache()
    forged = scan_mod._cache(None, server_record("web-g1-1", "1; reboot"), False, baseline)
    assert forged == ScanCache()


def test_a_first_scan_is_offered_the_units_record_of_its_images_smoke_scan() -> None:
    """The smoke server's units record (fingerprint, states): a server whose unit files have
    that fingerprint is not asked systemd again. Only a scan that is not deep, of a server
    never scanned: one scanned before has its own record."""
    units = ("f" * 32, "ssh.service enabled enabled")
    smoke = scan_mod.smoke_scan(ScanCache(HashCache(), units).dump())
    assert smoke.units == units and scan_mod.smoke_scan(None) == scan_mod.NO_SMOKE
    for started in ("1796315932.11", None):
        record = server_record("web-g1-1", started)
        assert scan_mod._cache(None, record, False, None, lambda: smoke).units == units
        assert scan_mod._cache(None, record, True, None, lambda: smoke).units is None
    own = ScanCache(HashCache.from_entries({"/etc/hosts": ["1 2 3 4", "a" * 64]}), ("e" * 32, "x"))
    stored = scan_mod._cache(own.dump(), server_record("web-g1-1"), False, None, lambda: smoke)
    assert stored.units == ("e" * 32, "x")


def test_only_a_scan_that_is_not_deep_reads_capabilities_where_the_server_changed() -> None:
    caps = {"/usr/bin/ping": "cap_net_raw=ep"}
    baseline = Facts({}, {}, {}, capabilities=caps)
    record = server_record("web-g1-1", "1796315932.11")
    assert scan_mod._cache(None, record, False, baseline).image_capabilities == caps
    assert scan_mod._cache(None, record, True, baseline).image_capabilities is None
    unread = Facts({}, {}, {}, capabilities={}, unread={"capabilities": "exit 127"})
    assert scan_mod._cache(None, record, False, unread).image_capabilities is None
    assert scan_mod._cache(None, record, False, None).image_capabilities is None


def server(name: str, status: ScanStatus, *found: Finding, fleet: str = "web") -> ServerScan:
    return ServerScan(
        name=name, address="a", image="i", fleet=fleet, status=status, findings=list(found)
    )


def report_of(servers: list[ServerScan], **kw: Any) -> ScanReport:
    return ScanReport(scanned_at="t", servers=servers, **kw)


def test_what_drift_replace_hands_to_the_rollout() -> None:
    low = Finding(kind="file.added", subject="/etc/x", severity=Severity.LOW)
    high = Finding(kind="ssh_key.added", subject="root", severity=Severity.HIGH)
    stopped = Finding(
        kind="server.stopped", subject="api-2", severity=Severity.HIGH, before="Running"
    )
    servers = [
        server("web-1", ScanStatus.DRIFTED, low),
        server("web-2", ScanStatus.DRIFTED, high),
        server("web-3", ScanStatus.UNTRUSTED, high),
        server("web-4", ScanStatus.UNREACHABLE),
        server("api-1", ScanStatus.CLEAN, fleet="api"),
        server("api-2", ScanStatus.UNREACHABLE, stopped, fleet="api"),
    ]
    assert ops.to_replace(report_of(servers, fail_on=Severity.LOW)) == {
        "web": ["web-1", "web-2", "web-3", "web-4"],  # unreachable: the most suspect
        "api": ["api-2"],
    }
    assert ops.to_replace(report_of(servers, fail_on=Severity.HIGH)) == {
        "web": ["web-2", "web-3", "web-4"],
        "api": ["api-2"],
    }
    plan = Plan(
        fleet="web", kind=RunKind.REBUILD, image="web-v002", strategy=Strategy.ROLLING, batches=[]
    )
    removed = ["web-1", "web-2", "web-3", "api-2"]
    done = Result(plan=plan, run_id=1, status=RolloutStatus.SUCCEEDED, removed=removed)
    back = Result(plan=plan, run_id=2, status=RolloutStatus.ROLLED_BACK)
    assert ops.replace_exit_code(report_of(servers[:3]), [done]) is ExitCode.OK
    assert ops.replace_exit_code(report_of(servers[:3]), [done, back]) is ExitCode.FAILED
    assert ops.replace_exit_code(report_of(servers), [done]) is ExitCode.REFUSED  # web-4
    assert ops.replace_exit_code(report_of(servers[5:]), [done]) is ExitCode.OK
    assert ops.replace_exit_code(report_of([], problems=["x"]), []) is ExitCode.REFUSED


def test_drift_replace_leaves_a_server_without_baseline() -> None:
    high = Finding(kind="ssh_key.added", subject="root", severity=Severity.HIGH)
    servers = [server("web-1", ScanStatus.DRIFTED, high), server("web-2", ScanStatus.NO_BASELINE)]
    scanned = report_of(servers)
    assert scanned.exit_code is ExitCode.REFUSED  # 2: could not be scanned
    assert ops.to_replace(scanned) == {"web": ["web-1"]}
    plan = Plan(
        fleet="web", kind=RunKind.REBUILD, image="web-v002", strategy=Strategy.ROLLING, batches=[]
    )
    done = Result(plan=plan, run_id=1, status=RolloutStatus.SUCCEEDED, removed=["web-1"])
    assert ops.replace_exit_code(scanned, [done]) is ExitCode.REFUSED  # web-2 may hold drift
    replaced = Result(plan=plan, run_id=1, status=RolloutStatus.SUCCEEDED, removed=["web-2"])
    assert ops.replace_exit_code(report_of(servers[1:]), [replaced]) is ExitCode.OK


def test_server_findings_join_their_server() -> None:
    scanned = [
        server("web-1", ScanStatus.CLEAN),
        server("web-2", ScanStatus.UNREACHABLE),
        server("api-1", ScanStatus.CLEAN, fleet="api"),
    ]
    found = [
        finding("server.config", "web-1:limits.cpu", None, "1"),
        finding("server.stopped", "web-2", "Running", "Stopped"),
        finding("server.missing", "web-9"),
    ]
    problems: list[str] = []
    joined = scan_mod._joined(scanned, found, "web", problems)
    assert [(s.name, s.status, [f.kind for f in s.findings]) for s in joined] == [
        ("web-1", ScanStatus.DRIFTED, ["server.config"]),
        ("web-2", ScanStatus.UNREACHABLE, ["server.stopped"]),
        ("api-1", ScanStatus.CLEAN, []),
    ]
    assert problems == ["web: web-9 (server.missing) is not a serving server phoenix knows"]
    assert report_of(joined, problems=problems).exit_code is ExitCode.REFUSED


def test_a_server_without_a_baseline_is_reported_not_scanned(tmp_path: Path) -> None:
    target = ssh.Target(name="web-1", address="10.213.0.9", host_key="ssh-ed25519 AAAA")
    scanned = scan_mod.scan_server(
        target, None, Rules(), tmp_path / "key", ["/etc"], 10, "web-v001", "web"
    )  # no connection is even tried: the key file does not exist
    assert scanned.status is ScanStatus.NO_BASELINE and not scanned.status.scanned
    assert scanned.error == (
        "image web-v001 has no baseline to compare with: bake it again"
        " (phoenix image bake web --force) and rebuild web onto it (phoenix rebuild web)"
    )
    assert report_of([scanned]).exit_code is ExitCode.REFUSED
    assert scanned.as_dict()["status"] == "no_baseline"


def test_a_server_whose_image_has_no_baseline_is_scanned_as_such_and_not_archived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)  # web-g1-1 runs web-v001, which has no baseline
    scanned = scan_mod.scan(ws, ["web"])
    [web] = scanned.servers
    assert web.status is ScanStatus.NO_BASELINE and scanned.exit_code is ExitCode.REFUSED
    assert "phoenix image bake web --force" in str(web.error)
    warnings = ops.archive_drift(ws, "web", ["web-g1-1"], lambda event: None)
    assert len(warnings) == 1
    assert warnings[0].startswith("web-g1-1 could not be scanned before its replacement (image")


# -- secrets by content, and purges --------------------------------------------------------------

AWS = b"AKIAZ3MHALF6E5XGVNPQ"
SECRET_CONF = b"[aws]\nregion = eu-west-1\naccess_key_id = " + AWS + b"\n"


def everything_under(home: Path) -> bytes:
    """Every byte of every file under the state directory (the store, its log, keys...)."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def scanned_with(contents: dict[str, bytes], name: str = "web-g1-1") -> ServerScan:
    """A scan of `name` that found `contents` added, collected as a scan collects them."""
    live = {p: fact(c) for p, c in contents.items()}
    found = [Finding(kind="file.added", subject=p, severity=Severity.LOW) for p in contents]
    runner = FakeRunner({FETCH: answer(*contents.values())})
    got = evidence.collect(runner, name, found, live, evidence.Policy(limit=1000))
    return ServerScan(
        name=name,
        address="10.0.0.1",
        image="web-v001",
        fleet="web",
        status=ScanStatus.DRIFTED,
        findings=[evidence.linked(f, got) for f in found],
        archived=got.contents,
    )


def record(ws: Workspace, *scans: ServerScan) -> None:
    with Store.open(ws.home) as store:
        scan_mod._record(store, ScanReport(scanned_at=now(), servers=list(scans)))


def test_content_holding_a_secret_is_never_stored_whatever_the_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    assert not is_secret("/etc/app/settings.ini")
    scanned = scanned_with({"/etc/a.conf": CONF, "/etc/app/settings.ini": SECRET_CONF})
    assert [a.path for a in scanned.archived] == ["/etc/a.conf"]
    marks = {f.subject: f.evidence for f in scanned.findings}
    assert marks["/etc/app/settings.ini"] == evidence.SECRET == "secret: not kept"
    assert evidence.label(marks["/etc/app/settings.ini"]) == "secret: not kept"
    assert evidence.label(marks["/etc/a.conf"]) == "archived"
    record(ws, scanned)
    assert AWS not in everything_under(ws.home) and CONF in everything_under(ws.home)
    with Store.open(ws.home) as store:
        [row] = store.rows("SELECT evidence FROM findings WHERE subject = '/etc/app/settings.ini'")
    assert row["evidence"] == "secret: not kept"
    assert [a.path for a in evidence.lookup(ws, "web-g1-1")] == ["/etc/a.conf"]
    with pytest.raises(Refused, match="holds a secret: it is never kept nor shown"):
        evidence.lookup(ws, "web-g1-1", "/etc/app/settings.ini")


def test_a_secret_archived_before_it_could_be_recognised_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    digest = hashlib.sha256(SECRET_CONF).hexdigest()
    old = evidence.Archived(
        sha256=digest, path="/etc/x.ini", server="web-g1-1", content=SECRET_CONF
    )
    changed = Finding(
        kind="file.added", subject="/etc/x.ini", severity=Severity.LOW, evidence=f"sha256:{digest}"
    )
    scanned = ServerScan(
        name="web-g1-1", address="a", image="web-v001", fleet="web",
        status=ScanStatus.DRIFTED, findings=[changed], archived=[old],
    )  # fmt: skip
    record(ws, scanned)
    with pytest.raises(Refused, match="no evidence archived"):
        evidence.lookup(ws, "web-g1-1", "/etc/x.ini")
    assert AWS in everything_under(ws.home)
    assert evidence.purge(ws, "web-g1-1") == evidence.Purged(contents=1, links=1)
    assert AWS not in everything_under(ws.home)  # overwritten, not only unlinked


def add_server(ws: Workspace, name: str) -> None:
    with Store.open(ws.home) as store, store.transaction() as db:
        db.execute("INSERT INTO servers (name, fleet, generation, image_tag, status, created_at)"
                   " VALUES (?, 'web', 1, 'web-v001', 'serving', 'x')", (name,))  # fmt: skip


def test_purge_by_server_keeps_what_another_server_also_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace(tmp_path, monkeypatch)
    add_server(ws, "web-g1-2")
    mine, shared, theirs = b"only on one: purge-me\n", b"on both\n", b"only on two\n"
    record(
        ws,
        scanned_with({"/etc/mine": mine, "/etc/shared": shared}, "web-g1-1"),
        scanned_with({"/etc/shared": shared, "/etc/theirs": theirs}, "web-g1-2"),
    )
    assert b"purge-me" in everything_under(ws.home)
    assert evidence.purge(ws, "web-g1-1") == evidence.Purged(contents=1, links=2)
    assert b"purge-me" not in everything_under(ws.home)
    with pytest.raises(Refused, match="no evidence archived for any file of web-g1-1"):
        evidence.lookup(ws, "web-g1-1")
    assert [a.path for a in evidence.lookup(ws, "web-g1-2")] == ["/etc/shared", "/etc/theirs"]
    assert evidence.purge(ws, "web-g1-1") == evidence.Purged(contents=0, links=0)
    with pytest.raises(Refused, match="no server nope"):
        evidence.purge(ws, "nope")


def test_purge_by_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace(tmp_path, monkeypatch)
    record(ws, scanned_with({"/etc/old": b"old\n", "/etc/new": b"new\n"}))
    with Store.open(ws.home) as store, store.transaction() as db:
        db.execute("UPDATE evidence SET archived_at = '2020-01-01T00:00:00.000+00:00'"
                   " WHERE path = '/etc/old'")  # fmt: skip
    assert evidence.purge(ws, older_than=timedelta(days=30)) == evidence.Purged(1, 1)
    assert [a.path for a in evidence.lookup(ws, "web-g1-1")] == ["/etc/new"]
    assert evidence.purge(ws, "web-g1-1", timedelta(days=30)) == evidence.Purged(0, 0)
    assert evidence.purge(ws, older_than=timedelta(0)).as_dict() == {"removed": 1, "unlinked": 1}
