"""The load balancer against a real HAProxy 2.6, with small HTTP servers on loopback as backends.

Everything stays on this machine: HAProxy listens on 127.0.0.1, the backends on 127.0.0.2-5.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from phoenix.config import HealthCheck
from phoenix.errors import TrafficError
from phoenix.fleet.haproxy.balancer import HAProxy
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ADDRESSES = {"web-g1-1": "127.0.0.2", "web-g1-2": "127.0.0.3", "web-g2-1": "127.0.0.4"}
NOWHERE = "127.0.0.5"  # nothing listens there (except the rude server of one test)
HEALTH_PATH = "/health"
SLOW_PATH = "/slow"  # answered once the backend's `release` event is set


class Handler(BaseHTTPRequestHandler):
    """Answers its server's name; health checks (HEALTH_PATH) are not counted."""

    protocol_version = "HTTP/1.1"  # keep-alive, like nginx: HAProxy keeps server connections
    wbufsize = 1 << 16  # headers and body in one send (flushed after each request)
    server: Backend

    def do_GET(self) -> None:
        if self.path != HEALTH_PATH:
            self.server.count(self.command)
        if self.path == SLOW_PATH:
            self.server.release.wait(timeout=30)
        self._answer(self.server.name)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        self.server.count(self.command)
        self._answer(self.server.name)

    def _answer(self, text: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Backend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, address: str, port: int) -> None:
        super().__init__((address, port), Handler)
        self.name = name
        self.requests: Counter[str] = Counter()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def count(self, method: str) -> None:
        with self._lock:
            self.requests[method] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy's checks reset the connection once they have the status line

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class RudeServer:
    """Reads a request, then closes the connection without answering."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.create_server((address, port))
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                if data:
                    self.requests.append(data.split(b"\r\n", 1)[0])

    def stop(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone does not
        self.sock.close()
        self._thread.join(timeout=5)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    """One HTTP server per name in ADDRESSES, all on one port."""
    for _ in range(20):
        port = free_port(ADDRESSES["web-g1-1"])
        started: dict[str, Backend] = {}
        try:
            for name, address in ADDRESSES.items():
                started[name] = Backend(name, address, port)
        except OSError:
            for server in started.values():
                server.stop()
            continue
        yield started
        for server in started.values():
            with contextlib.suppress(OSError):
                server.stop()
        return
    pytest.fail("no port free on 127.0.0.2-4")


@pytest.fixture
def backend_port(backends: dict[str, Backend]) -> int:
    port: int = backends["web-g1-1"].server_address[1]
    return port


@pytest.fixture
def lb(tmp_path_factory: pytest.TempPathFactory, backend_port: int) -> Iterator[HAProxy]:
    home = tmp_path_factory.mktemp("lb")  # short: the admin socket path is limited to 107 bytes
    health = HealthCheck(type="http", port=backend_port, path=HEALTH_PATH)
    haproxy = HAProxy("web", home, "127.0.0.1", free_port(), backend_port, health)
    yield haproxy
    haproxy.stop()
    assert not fleet_processes(haproxy)


def fleet_processes(lb: HAProxy) -> list[int]:
    """Live processes whose command line names this fleet's HAProxy configuration."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(lb.config_file).encode() in argv and state != "Z":
            found.append(int(entry.name))
    return found


def get(lb: HAProxy, method: str = "GET", path: str = "/") -> tuple[int, str]:
    host, port = lb.endpoint.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=b"x=1" if method == "POST" else None)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def answered_by(lb: HAProxy, tries: int = 20) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(tries):
        status, body = get(lb)
        assert status == 200, (status, body)
        seen[body] += 1
    return seen


class Load:
    """A few client threads with keep-alive connections to HAProxy, bounded in requests and time."""

    def __init__(
        self, lb: HAProxy, threads: int = 4, max_requests: int = 20_000, max_seconds: float = 60
    ) -> None:
        self.endpoint = lb.endpoint
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.answers: Counter[str] = Counter()
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    @property
    def done(self) -> int:
        with self._lock:
            return sum(self.answers.values()) + len(self.failures)

    def _client(self) -> None:
        host, port = self.endpoint.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            if self.done >= self.max_requests:
                break
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read().decode()
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                continue
            with self._lock:
                if response.status == 200:
                    self.answers[body] += 1
                else:
                    self.failures.append(f"HTTP {response.status}: {body[:80]}")
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def test_start_empty_then_add_two(lb: HAProxy, backends: dict[str, Backend]) -> None:
    assert not lb.running()
    assert lb.ensure_running([]) is True
    assert lb.running()
    assert lb.ensure_running([]) is False
    assert lb.servers() == []
    for name in ("web-g1-1", "web-g1-2"):
        lb.add(name, ADDRESSES[name])
    lb.add("web-g1-1", ADDRESSES["web-g1-1"])  # idempotent
    for name in ("web-g1-1", "web-g1-2"):
        lb.wait_up(name, timeout=10)
    servers = {server.name: server for server in lb.servers()}
    assert set(servers) == {"web-g1-1", "web-g1-2"}
    assert all(s.healthy and s.weight > 0 for s in servers.values())
    assert servers["web-g1-2"].address == "127.0.0.3"
    assert answered_by(lb) == Counter({"web-g1-1": 10, "web-g1-2": 10})
    assert lb.config_file.stat().st_mode & 0o777 == 0o600


def test_replace_under_load_without_a_failure(lb: HAProxy, backends: dict[str, Backend]) -> None:
    lb.ensure_running([])
    for name in ("web-g1-1", "web-g1-2"):
        lb.add(name, ADDRESSES[name])
        lb.wait_up(name, timeout=10)
    load = Load(lb)
    try:
        wait_until("traffic on both servers", lambda: len(load.answers) == 2)
        lb.add("web-g2-1", ADDRESSES["web-g2-1"])
        lb.wait_up("web-g2-1", timeout=10)
        wait_until("traffic on the new server", lambda: load.answers["web-g2-1"] > 50)
        lb.drain("web-g1-1")
        assert lb.wait_drained("web-g1-1", timeout=20)
        lb.remove("web-g1-1")
        served_by_removed = backends["web-g1-1"].total
        done = load.done
        wait_until("more traffic after the removal", lambda: load.done > done + 500)
    finally:
        load.stop()
    assert load.failures == []
    assert backends["web-g1-1"].total == served_by_removed
    assert {server.name for server in lb.servers()} == {"web-g1-2", "web-g2-1"}
    assert load.answers["web-g2-1"] > 0


def test_drain_and_remove_wait_for_a_request_in_flight(
    lb: HAProxy, backends: dict[str, Backend]
) -> None:
    lb.ensure_running([("web-g1-1", ADDRESSES["web-g1-1"])])
    wait_until("web-g1-1 healthy", lambda: all(server.healthy for server in lb.servers()))
    answers: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: answers.append(get(lb, path=SLOW_PATH)))
    slow.start()
    try:
        wait_until("the slow request at web-g1-1", lambda: lb.servers()[0].sessions == 1)
        lb.drain("web-g1-1")
        assert lb.wait_drained("web-g1-1", timeout=0.3) is False
        remover = threading.Thread(target=lb.remove, args=("web-g1-1",))
        remover.start()  # maintenance at once; `del server` refused while the request runs
        wait_until("web-g1-1 in maintenance", lambda: lb.servers()[0].in_maintenance)
        assert remover.is_alive()
    finally:
        backends["web-g1-1"].release.set()
        slow.join(timeout=30)
    remover.join(timeout=3)  # not the 5 s and more HAProxy keeps an idle connection in its pool
    assert not remover.is_alive()
    assert answers == [(200, "web-g1-1")]  # maintenance does not cut a request in flight
    assert lb.servers() == []


def test_server_that_stops_answering_goes_down(lb: HAProxy, backends: dict[str, Backend]) -> None:
    lb.ensure_running([(name, ADDRESSES[name]) for name in ("web-g1-1", "web-g1-2")])
    wait_until("both healthy", lambda: all(server.healthy for server in lb.servers()))
    backends["web-g1-2"].stop()
    started = time.monotonic()

    def down() -> bool:
        server = lb.server("web-g1-2")
        return server is not None and not server.healthy

    wait_until("web-g1-2 marked down", down, timeout=10)
    assert time.monotonic() - started < 5  # fall 2 checks at 500 ms
    assert answered_by(lb, 6) == Counter({"web-g1-1": 6})


def test_restart_after_kill_relists_servers(lb: HAProxy, backends: dict[str, Backend]) -> None:
    lb.ensure_running([])
    serving = [(name, ADDRESSES[name]) for name in ("web-g1-1", "web-g1-2")]
    for name, address in serving:
        lb.add(name, address)
        lb.wait_up(name, timeout=10)
    pid = int(lb.pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    wait_until("HAProxy dead", lambda: not lb.running(), timeout=10)
    assert lb.ensure_running(serving) is True
    assert int(lb.pid_file.read_text()) != pid
    assert {server.name for server in lb.servers()} == {"web-g1-1", "web-g1-2"}
    wait_until("traffic on both", lambda: set(answered_by(lb, 4)) == {"web-g1-1", "web-g1-2"})


def test_remove_absent_and_wait_up_timeout(lb: HAProxy, backends: dict[str, Backend]) -> None:
    lb.ensure_running([("web-g1-1", ADDRESSES["web-g1-1"])])
    lb.remove("web-g9-9")  # not there: nothing to do
    lb.add("web-g9-9", NOWHERE)
    started = time.monotonic()
    with pytest.raises(TrafficError, match=r"web-g9-9 .* did not come up .* within 1\.5 s"):
        lb.wait_up("web-g9-9", timeout=1.5)
    assert 1.5 <= time.monotonic() - started < 5
    server = lb.server("web-g9-9")
    assert server is not None and server.weight == 0 and not server.healthy
    assert answered_by(lb, 6) == Counter({"web-g1-1": 6})  # never given traffic
    lb.remove("web-g9-9")
    lb.remove("web-g9-9")
    assert [server.name for server in lb.servers()] == ["web-g1-1"]
    with pytest.raises(TrafficError, match=r"refused `set server web/web-g9-9 state drain`"):
        lb.drain("web-g9-9")


def test_stop_leaves_no_process(lb: HAProxy, backends: dict[str, Backend]) -> None:
    lb.ensure_running([("web-g1-1", ADDRESSES["web-g1-1"])])
    assert fleet_processes(lb)
    lb.stop()
    assert fleet_processes(lb) == []
    assert not lb.running()
    assert not lb.pid_file.exists() and not lb.socket_path.exists()
    lb.stop()  # stopping a stopped one is fine


def test_only_replayable_requests_are_retried(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A server that drops requests unanswered: a GET is retried elsewhere, a POST is not."""
    port = free_port(NOWHERE)
    rude = RudeServer(NOWHERE, port)
    good = Backend("good", ADDRESSES["web-g1-1"], port)
    health = HealthCheck(type="tcp", port=port)
    lb = HAProxy("web", tmp_path_factory.mktemp("lb"), "127.0.0.1", free_port(), port, health)
    try:
        lb.ensure_running([("rude", NOWHERE), ("good", ADDRESSES["web-g1-1"])])
        gets = [get(lb) for _ in range(4)]
        posts = [get(lb, "POST") for _ in range(4)]
    finally:
        lb.stop()
        rude.stop()
        good.stop()
    assert gets == [(200, "good")] * 4
    assert any(line.startswith(b"GET ") for line in rude.requests)
    dropped = [line for line in rude.requests if line.startswith(b"POST ")]
    assert dropped  # round robin sent some POSTs to the rude server...
    assert sum(1 for status, _ in posts if status == 502) == len(dropped)  # ...and none replayed
    assert good.requests["POST"] == 4 - len(dropped)


def test_start_fails_when_the_port_is_taken(lb: HAProxy) -> None:
    host, port = lb.endpoint.split(":")
    with (
        socket.create_server((host, int(port))),
        pytest.raises(TrafficError, match="Address already in use"),
    ):
        lb.ensure_running([])
    assert fleet_processes(lb) == []
