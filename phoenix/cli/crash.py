"""A bug, not an operator's error: one line on the terminal, the whole traceback in a crash log.

The log goes to the state directory's logs/ (mode 0600: a traceback can show paths and values);
when there is no state directory yet, or it cannot be written, to a private temp file.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from phoenix import __version__
from phoenix.atomic import write_atomic
from phoenix.cli import render
from phoenix.text import printable

TRACEBACK_ENV = "PHOENIX_TRACEBACK"


def report(
    exc: BaseException, argv: list[str], explicit_config: Path | None, show_traceback: bool
) -> None:
    """Write the crash log of `exc`; print one line naming it (and the traceback if asked)."""
    text = "".join(traceback.format_exception(exc))
    path = write_log(
        f"phoenix {__version__}: phoenix {' '.join(argv)}\n\n{text}", state_home(explicit_config)
    )
    if show_traceback:
        sys.stderr.write(printable(text, keep="\n"))  # the log keeps it exact
    lines = str(exc).strip().splitlines()
    what = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    render.error(
        f"internal error: {what}",
        hint=f"this is a bug in phoenix; the traceback is in {path} (--traceback prints it)",
    )


def state_home(explicit_config: Path | None) -> Path | None:
    """The state directory of the config in use, if it can be found and exists."""
    from phoenix import config  # here: every command imports this module, few crash

    try:
        home = config.state_home(config.config_path(explicit_config))
        return home if home.is_dir() else None
    except OSError:  # no current directory, say
        return None


def write_log(text: str, home: Path | None) -> Path:
    """The crash log holding `text`, named by the time (UTC) and the process id."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"crash-{stamp}-{os.getpid()}.log"
    if home is not None:
        logs = home / "logs"
        try:
            logs.mkdir(mode=0o700, exist_ok=True)
            write_atomic(logs / name, text, mode=0o600)
            return logs / name
        except OSError:
            pass
    fd, fallback = tempfile.mkstemp(prefix=f"phoenix-{name.removesuffix('.log')}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp made it 0600
        out.write(text)
    return Path(fallback)
