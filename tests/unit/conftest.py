"""What every unit test shares: the process umask is left as the test found it (phoenix's CLI
entry sets 077 for the rest of the process)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _same_umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)
