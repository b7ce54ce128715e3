"""A bounded HTTP load generator: only to a loopback address, limited in count and time."""

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
