"""[lxd] endpoint: the config, the client certificate checks, the pinned server certificate (a
real TLS server on loopback), the lxc client configuration, and what a remote cannot tell."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bench.remote import make_certificate
from phoenix.config import Config, LXDConfig
from phoenix.errors import DeadlineExceeded, LabError, LXDError
from phoenix.lab import project, remote
from phoenix.lab.lab import Lab
from phoenix.lab.lxd import LXD
from phoenix.lab.remote import Remote
from phoenix.workspace import Workspace


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A TLS server on 127.0.0.1 (handshakes only): its port and its certificate's PEM."""
    crt, key = make_certificate(tmp_path, "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # the loop looks at `stop` this often
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], crt.read_text()
    stop.set()
    thread.join(10)
    listener.close()


def _remote(tmp_path: Path, port: int, fingerprint: str, days: float = 30) -> Remote:
    crt, key = make_certificate(tmp_path, f"client{days}", days=days)
    return Remote(f"https://127.0.0.1:{port}", crt, key, fingerprint)


def test_an_endpoint_needs_a_certificate_a_key_and_a_fingerprint() -> None:
    with pytest.raises(ValidationError) as raised:
        Config.model_validate({"lxd": {"endpoint": "https://lxd.example.com:8443"}})
    text = str(raised.value)
    assert "client_cert" in text and "client_key" in text and "fingerprint" in text
    for bad in ({"endpoint": "http://lxd:8443"}, {"endpoint": "https://lxd"}):
        with pytest.raises(ValidationError, match="LXD HTTPS endpoint"):
            LXDConfig.model_validate(bad)
    with pytest.raises(ValidationError, match="SHA-256 fingerprint"):
        LXDConfig.model_validate({"fingerprint": "abc"})


def test_the_remote_resolves_paths_and_writes_fingerprints_one_way(tmp_path: Path) -> None:
    assert remote.of(LXDConfig(), tmp_path) is None
    colons = ":".join(["AB"] * 32)
    cfg = LXDConfig(
        endpoint="https://lxd.example.com:9443",
        client_cert="certs/c.crt",
        client_key="/abs/c.key",
        fingerprint=colons,
    )
    made = remote.of(cfg, tmp_path)
    assert made == Remote(
        "https://lxd.example.com:9443", tmp_path / "certs/c.crt", Path("/abs/c.key"), "ab" * 32
    )
    assert made.address == ("lxd.example.com", 9443)


def test_the_pinned_certificate_is_taken_and_any_other_refused(
    tmp_path: Path, server: tuple[int, str]
) -> None:
    port, pem = server
    pinned = remote.fingerprint_of(pem)
    assert remote.server_certificate(_remote(tmp_path, port, pinned), 10).strip() == pem.strip()
    with pytest.raises(LXDError, match=f"presents a certificate with SHA-256 fingerprint {pinned}"):
        remote.server_certificate(_remote(tmp_path, port, "ab" * 32), 10)


def test_install_writes_what_lxc_needs_and_fetches_the_server_certificate_once(
    tmp_path: Path, server: tuple[int, str]
) -> None:
    port, pem = server
    the = _remote(tmp_path, port, remote.fingerprint_of(pem))
    conf = tmp_path / "lxc"
    remote.install(the, conf, 10)
    assert (conf / "client.crt").read_text() == the.cert.read_text()
    assert (conf / "client.key").stat().st_mode & 0o777 == 0o600
    assert remote.fingerprint_of((conf / remote.SERVER_CERT).read_text()) == the.fingerprint
    closed = Remote(f"https://127.0.0.1:{_closed_port()}", the.cert, the.key, the.fingerprint)
    remote.install(closed, conf, 10)  # pinned file there: no connection needed


def test_a_closed_port_is_unreachable_with_the_fix(tmp_path: Path) -> None:
    the = _remote(tmp_path, _closed_port(), "ab" * 32)
    unreachable = re.escape("cannot reach the LXD daemon at https://127.0.0.1")
    with pytest.raises(LXDError, match=unreachable) as e:
        remote.install(the, tmp_path / "lxc", 5)
    assert e.value.hint and "[lxd] endpoint" in e.value.hint


@pytest.mark.parametrize("problem", ["missing", "not-pem", "expired"])
def test_a_bad_client_certificate_is_refused_before_any_connection(
    tmp_path: Path, problem: str
) -> None:
    the = _remote(tmp_path, _closed_port(), "ab" * 32, days=-1 if problem == "expired" else 30)
    if problem == "missing":
        the.cert.unlink()
    elif problem == "not-pem":
        the.cert.write_text("hello\n")
    expected = {"missing": "cannot read", "not-pem": "is not a PEM", "expired": "valid only from"}
    with pytest.raises(LXDError, match=expected[problem]):
        remote.install(the, tmp_path / "lxc", 5)


class _Answer:
    def __init__(self, body: Any, status: int = 200) -> None:
        self.body, self.status_code = body, status
        self.content = b"<html>"

    def json(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body


class _Session:
    """What pylxd's client gets for a session: one answer (or one exception) to every GET."""

    def __init__(self, answer: _Answer | Exception) -> None:
        self.answer = answer
        self.gets = 0

    def get(self, url: str, **kwargs: Any) -> _Answer:
        self.gets += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _host(auth: str) -> _Answer:
    return _Answer({"type": "sync", "metadata": {"auth": auth, "api_extensions": ["projects"]}})


@pytest.fixture
def installed(tmp_path: Path, server: tuple[int, str]) -> Remote:
    """A remote whose certificates are installed in tmp_path/lxc (the server fetched once)."""
    port, pem = server
    the = _remote(tmp_path, port, remote.fingerprint_of(pem))
    remote.install(the, tmp_path / "lxc", 10)
    return the


def _connect(
    tmp_path: Path, the: Remote, answer: _Answer | Exception, monkeypatch: pytest.MonkeyPatch
) -> tuple[LXD, _Session]:
    session = _Session(answer)
    monkeypatch.setattr(remote, "session", lambda *_: session)
    return LXD("p", 5, the, tmp_path / "lxc"), session


def test_a_connection_asks_the_daemon_once(
    tmp_path: Path, installed: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    lxd, session = _connect(tmp_path, installed, _host("trusted"), monkeypatch)
    assert lxd.client.trusted and session.gets == 1
    assert lxd.lxc_env == {"LXD_CONF": str(tmp_path / "lxc")} and session.gets == 1


def test_an_untrusted_client_or_a_server_that_is_not_lxd_is_refused(
    tmp_path: Path, installed: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    lxd, _ = _connect(tmp_path, installed, _host("untrusted"), monkeypatch)
    with pytest.raises(LXDError, match="does not trust phoenix's client certificate") as e:
        lxd.client  # noqa: B018
    assert e.value.hint and f"lxc config trust add {installed.cert}" in e.value.hint
    for answer, reason in (
        (_Answer(ValueError("no JSON"), 404), "HTTP 404"),
        (_Answer(ValueError("no JSON")), "no LXD server information"),
        (_Answer({"type": "sync", "metadata": {"api_extensions": ["projects"]}}), "no `auth`"),
    ):
        lxd, _ = _connect(tmp_path, installed, answer, monkeypatch)
        with pytest.raises(LXDError, match=f"does not answer as an LXD daemon .{reason}"):
            lxd.client  # noqa: B018


def test_a_connection_that_fails_says_why(
    tmp_path: Path, installed: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    lxd, _ = _connect(tmp_path, installed, requests.ConnectTimeout("slow"), monkeypatch)
    with pytest.raises(DeadlineExceeded, match=re.escape("[timeouts] lxd")):
        lxd.client  # noqa: B018
    lxd, _ = _connect(tmp_path, installed, requests.ConnectionError("refused"), monkeypatch)
    with pytest.raises(LXDError, match=re.escape("cannot reach the LXD daemon at https://")):
        lxd.client  # noqa: B018
    mismatch = requests.exceptions.SSLError("Fingerprints did not match. Expected ...")
    lxd, _ = _connect(tmp_path, installed, mismatch, monkeypatch)
    with pytest.raises(LXDError, match="does not present the pinned certificate"):
        lxd.client  # noqa: B018


def test_the_workspace_lxc_configuration_names_only_the_remote(
    tmp_path: Path, server: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, pem = server
    the = _remote(tmp_path, port, remote.fingerprint_of(pem))
    checks = []
    client_files = remote._client_files
    monkeypatch.setattr(remote, "_client_files", lambda r: checks.append(r) or client_files(r))
    made = project.of(tmp_path / "home", the, 10)
    assert made.lxd().lxc_env == made.daemon().lxc_env == made.env
    assert checks == [the]  # installed once, by project.of; lxc_env does not connect
    text = (made.client_dir / "config.yml").read_text()
    assert "default-remote: phoenix" in text and f"addr: {the.url}" in text
    assert f"project: {made.name}" in text and "unix://" not in text
    assert made.env == {"LXD_CONF": str(made.client_dir)}
    assert made.lxd().remote == the and made.daemon().project == "default"


def test_a_remote_daemon_tells_no_start_time_and_no_disk_without_asking(tmp_path: Path) -> None:
    the = _remote(tmp_path, _closed_port(), "ab" * 32)
    lxd = LXD("p", 5, the, tmp_path / "lxc")
    assert lxd.started("web-1") is None and lxd.rootfs("web-1") is None
    assert lxd.image_rootfs("web-1") is None
    assert lxd.in_project("q").remote == the
    with pytest.raises(ValueError, match="lxc client configuration"):
        LXD("p", 5, the)


def test_the_lab_commands_refuse_a_workspace_on_a_remote(tmp_path: Path) -> None:
    cfg = Config.model_validate(
        {
            "lxd": {
                "endpoint": "https://lxd.example.com:8443",
                "client_cert": "c.crt",
                "client_key": "c.key",
                "fingerprint": "ab" * 32,
            }
        }
    )
    ws = Workspace(tmp_path / "phoenix.toml", cfg, tmp_path / "home")
    with pytest.raises(
        LabError, match=re.escape("uses the LXD daemon at https://lxd.example.com:8443")
    ):
        Lab.of_workspace(ws)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
