"""A bounded HTTP load generator: only to a loopback address, limited in count and time.

Used by the rollout tests and `make demo` (`python -m bench.load 127.0.0.1:8080 60 STOPFILE`).
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

VERSION = re.compile(r'id="version">([^<]+)<')


@dataclass
class Load:
    host: str
    port: int
    threads: int = 4
    max_requests: int = 50_000
    max_seconds: float = 600
    pause: float = 0.005  # between one thread's requests: steady load, CPU left for the rest
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    versions: list[str] = field(default_factory=list)  # in the order first seen
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"load goes only to loopback, not {self.host}")

    def __enter__(self) -> Load:
        self._deadline = time.monotonic() + self.max_seconds
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    @property
    def total(self) -> int:
        return self.ok + self.failed

    def _work(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if self.total >= self.max_requests:
                    return
            self._one()
            time.sleep(self.pause)

    def _one(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            good, why = response.status == 200, f"HTTP {response.status}"
        except OSError as exc:
            good, why, body = False, type(exc).__name__, ""
        finally:
            conn.close()
        with self._lock:
            if good:
                self.ok += 1
                match = VERSION.search(body)
                if match and (not self.versions or self.versions[-1] != match.group(1)):
                    self.versions.append(match.group(1))
            else:
                self.failed += 1
                self.errors[why] += 1


def main() -> None:
    """`python -m bench.load HOST:PORT SECONDS`: bounded load, then a one-line summary."""
    import sys

    host, port = sys.argv[1].rsplit(":", 1)
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    stop_file = sys.argv[3] if len(sys.argv) > 3 else None
    with Load(host, int(port), max_seconds=seconds) as load:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (stop_file and _exists(stop_file)):
            time.sleep(0.2)
    versions = " -> ".join(load.versions) or "none"
    print(
        f"load: {load.ok} ok, {load.failed} failed {dict(load.errors)}; versions seen: {versions}"
    )


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


if __name__ == "__main__":
    main()
