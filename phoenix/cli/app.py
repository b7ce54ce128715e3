"""The phoenix command: global options, command groups, and the one place errors are handled."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from phoenix import __version__
from phoenix.cli import crash, doctor, drift, fleet, image, lab, render, report, schedule
from phoenix.errors import ExitCode, PhoenixError, Terminated
from phoenix.host import process

app = typer.Typer(
    help="phoenix: rebuild servers from images, never patch them; find the snowflakes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(lab.app, name="lab")
app.add_typer(image.app, name="image")
app.add_typer(drift.app, name="drift")
app.add_typer(schedule.app, name="schedule")
app.command("doctor")(doctor.command)
app.command("report")(report.command)
for command in (fleet.deploy, fleet.rebuild, fleet.status, fleet.destroy, fleet.history):
    app.command()(command)


def _version(value: bool) -> None:
    if value:
        render.line(f"phoenix {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", envvar="PHOENIX_CONFIG", help="Path of phoenix.toml."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    traceback: bool = typer.Option(
        False,
        "--traceback",
        envvar=crash.TRACEBACK_ENV,
        help="On an internal error, print the traceback too (it is always in the crash log).",
    ),
) -> None:
    options = ctx.ensure_object(dict)  # main()'s, when it runs the app: it reads them on a crash
    options.update(config=config, traceback=traceback)


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C and SIGTERM: pass the interrupt on to the children (they are not in the terminal's
    process group), then unwind as Ctrl-C does, once; a repeat is ignored so that the cleanup
    (the rollout settling, children stopping, locks released) runs to its end."""
    if _seen:
        return
    _seen.append(signum)
    process.interrupt_children()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


_seen: list[int] = []  # the signal being handled, if any


@contextmanager
def _handlers() -> Iterator[None]:
    """Ctrl-C and SIGTERM handled by `_interrupted` for the run (from the main thread only)."""
    _seen.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {signum: signal.signal(signum, _interrupted) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every expected error becomes one message and an exit code.

    typer itself turns usage errors into exit 2 and Ctrl-C into exit 130 (SystemExit); SIGTERM
    takes Ctrl-C's path and exits 143. Any other exception is a bug: one line, the traceback in a
    crash log, exit 70.
    """
    args = sys.argv[1:] if argv is None else argv
    os.umask(0o077)  # what phoenix creates (state, keys, logs) is its owner's only
    options: dict[str, Any] = {}
    with _handlers():
        code = _main(args, options)
    return ExitCode.TERMINATED if signal.SIGTERM in _seen else code


def _main(args: list[str], options: dict[str, Any]) -> int:
    try:
        app(args=args, prog_name="phoenix", obj=options)
    except PhoenixError as exc:
        render.error(exc.message, exc.hint)
        return int(exc.exit_code)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:
        shown = options.get("traceback", os.environ.get(crash.TRACEBACK_ENV) == "1")
        crash.report(exc, args, options.get("config"), bool(shown))
        return ExitCode.INTERNAL
    return ExitCode.OK


def run() -> None:
    sys.exit(main())
