"""The phoenix command: global options, command groups, and the one place errors are handled."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from phoenix import __version__
from phoenix.cli import doctor, drift, fleet, image, lab, render
from phoenix.errors import ExitCode, PhoenixError

app = typer.Typer(
    help="phoenix: rebuild servers from images, never patch them; find the snowflakes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(lab.app, name="lab")
app.add_typer(image.app, name="image")
app.add_typer(drift.app, name="drift")
app.command("doctor")(doctor.command)
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
) -> None:
    ctx.obj = {"config": config}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every expected error becomes one message and an exit code.

    typer itself turns usage errors into exit 2 and Ctrl-C into exit 130 (SystemExit).
    """
    try:
        app(args=argv, prog_name="phoenix")
    except PhoenixError as exc:
        render.error(exc.message, exc.hint)
        return int(exc.exit_code)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.OK
    return ExitCode.OK


def run() -> None:
    sys.exit(main())
