"""Bake benchmark: `phoenix image bake web` against a plain `packer build` of the same template.

Run by hand on a lab that is up (`make bench`, or `.venv/bin/python bench/bake.py`). Both bakes
start from the same parent image in the same run; phoenix's includes the smoke boot, the health
check and the baseline. Prints the times, the ratio phoenix / packer (goal: at most 1.3), and the
time of a no-op re-bake (goal: under 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from phoenix.image import template as tpl
from phoenix.lab import project
from phoenix.lab.lxd import LXD
from phoenix.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str], **kwargs: object) -> float:
    started = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    return time.monotonic() - started


def plain_packer(ws: Workspace, name: str) -> float:
    """The reference: the same template, the same builder settings, no phoenix around it."""
    template_file = ws.image(name).template_path(REPO, name)
    template = tpl.load_template(template_file)
    composed = tpl.compose(
        template,
        template_file.parent,
        parent=ws.config.lab.base_image,
        tag="bench-packer",
        container="bench-packer",
        profile="phoenix-build",
    )
    composed["provisioners"].pop()  # phoenix's own clean-up step is part of what phoenix adds
    for mine, theirs in zip(composed["builders"], template["builders"], strict=True):
        # the template's own fixed wait before provisioning: phoenix replaces it by a wait for
        # the build container's boot (template.BOOTED, which the reference keeps)
        if "init_sleep" in theirs:
            mine["init_sleep"] = theirs["init_sleep"]
        else:
            mine.pop("init_sleep", None)
    proj = project.of(ws.home)  # the workspace's own LXD project, where phoenix bakes too
    project.ensure(LXD(), proj, ws.config.lab.base_image)
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", **proj.env}
    started = time.monotonic()
    subprocess.run(
        ["packer", "build", "-var", "version=bench", "-"],
        input=json.dumps(composed).encode(),
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    took = time.monotonic() - started
    lxd = proj.lxd()
    image = lxd.image("bench-packer")
    if image:
        lxd.delete_image(image.fingerprint)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image", default="web")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ws = Workspace.open(REPO / "phoenix.toml")
    phoenix_cmd = [sys.executable, "-m", "phoenix", "image", "bake", args.image]
    rows = []
    for round_ in range(1, args.rounds + 1):
        ref = plain_packer(ws, args.image)
        ours = timed([*phoenix_cmd, "--force"], cwd=REPO)
        rows.append((ref, ours))
        print(
            f"round {round_}: packer build {ref:6.1f} s   phoenix bake {ours:6.1f} s   "
            f"ratio {ours / ref:.2f}"
        )
    noop = timed(phoenix_cmd, cwd=REPO)
    best_ref = min(r for r, _ in rows)
    best_ours = min(o for _, o in rows)
    ratios = sorted(o / r for r, o in rows)
    print(
        f"best: packer {best_ref:.1f} s, phoenix {best_ours:.1f} s, "
        f"ratio {best_ours / best_ref:.2f} (goal <= 1.3); median of the rounds' ratios"
        f" {statistics.median(ratios):.2f} (each round's two bakes run back to back: the"
        " package archive's speed, which both depend on, varies less within a round)"
    )
    print(f"no-op re-bake: {noop:.2f} s (goal < 1 s)")


if __name__ == "__main__":
    main()
