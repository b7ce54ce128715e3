"""`phoenix image bake | list | show | revoke | prune`: versioned registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from phoenix.cli import render
from phoenix.cli.common import JSON_OPTION, workspace

# The core is imported inside each command (see phoenix/cli/doctor.py).
if TYPE_CHECKING:
    from phoenix.workspace import Workspace

app = typer.Typer(help="Images baked from Packer templates: versions, baselines, status.")


@app.command("bake")
def bake_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Image name from phoenix.toml, e.g. web."),
    force: bool = typer.Option(False, "--force", help="Bake even if nothing changed."),
    json: bool = JSON_OPTION,
) -> None:
    """Bake NAME from its template, smoke-boot it and record its baseline."""
    from phoenix.image import bake

    ws = workspace(ctx)
    with render.Progress() as progress:
        result = bake.bake_image(ws, name, force=force, emit=progress)
    if json:
        render.as_json({"unchanged": result.unchanged, **_view(ws, result.image.tag)})
    elif result.unchanged:
        render.line(f"{result.image.tag} is up to date: nothing changed (--force bakes anyway)")
    else:
        render.line(f"baked {result.image.tag} ({str(result.image.provider_id)[:12]})")


@app.command("list")
def list_(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this image."),
    json: bool = JSON_OPTION,
) -> None:
    """Every version of every image, with its status and use."""
    from phoenix.image import registry

    with registry.catalog(workspace(ctx)) as cat:
        views = cat.views(name)
    if json:
        render.as_json([v.as_dict() for v in views])
        return
    render.image_table(views)


@app.command()
def show(ctx: typer.Context, tag: str, json: bool = JSON_OPTION) -> None:
    """One image: ancestry, inputs, baseline summary."""
    data = _view(workspace(ctx), tag)
    if json:
        render.as_json(data)
    else:
        render.mapping(tag, data)


@app.command()
def revoke(ctx: typer.Context, tag: str) -> None:
    """Forbid future deploys of TAG (servers running it become due for replacement)."""
    from phoenix.image import registry

    with registry.catalog(workspace(ctx)) as cat:
        view = cat.revoke(tag)
    render.line(f"revoked {tag}: {view.in_use} running server(s) are due for replacement")


@app.command()
def prune(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Only this image."),
    keep: int = typer.Option(..., "--keep", help="Ready versions to keep of each image."),
) -> None:
    """Delete old versions beyond the newest KEEP, never one in use."""
    from phoenix.image import registry

    with registry.catalog(workspace(ctx)) as cat:
        removed = cat.prune(keep, name)
    render.line(f"pruned {len(removed)}: {', '.join(removed)}" if removed else "nothing to prune")


def _view(ws: Workspace, tag: str) -> dict[str, object]:
    from phoenix.image import registry

    with registry.catalog(ws) as cat:
        return cat.view(tag).as_dict()
