"""Rollout benchmark: `phoenix rebuild` of fleets of 3, 6 and 12 against raw `lxc` in the same run.

The reference does the same creations and deletions in the same batches on the same pool, with
plain `lxc launch` (then waiting for each new server's address) and `lxc delete --force`, and
nothing else: no Terraform, no health gate, no load balancer, no drain. phoenix's time includes
all of those. Prints each size's times and the ratio phoenix / raw (goal: at most 1.5).

With `--terraform-binary PATH` it compares instead phoenix driving that terraform or tofu
([terraform] binary) against phoenix with its bundled engine, the same rebuilds in the same run.
With `--remote` it compares phoenix driving the lab's daemon as a remote over HTTPS
([lxd] endpoint: 127.0.0.1:8443, a client certificate trusted for the run) against the same
daemon over its unix socket, the same rebuilds in the same run and the same LXD project.

Run on a lab that is up, with a baked image: `.venv/bin/python bench/rollout.py [--sizes 3 6 12]`.
It writes its own config (fleet `bench` on 127.0.0.1:18181) in a temporary directory and state
in $PHOENIX_HOME (default: a temporary directory), and destroys what it made.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from phoenix.lab import project
from phoenix.lab.lxd import LXD

REPO = Path(__file__).resolve().parents[1]
CONFIG = """
[images.web]
template = "{repo}/images/web.pkr.json"

[fleets.bench]
image = "web"
size = {size}
listen = "127.0.0.1"
listen_port = 18181
batch = {batch}
module = "{repo}/infra/lxd"
{observe}"""


def phoenix(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> float:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "phoenix", *args], env=env, capture_output=True, text=True
    )
    if proc.returncode not in ok:
        raise SystemExit(f"phoenix {' '.join(args)} failed:\n{proc.stderr}")
    return time.monotonic() - started


def raw_rebuild(lxd: LXD, image: str, size: int, batch: int) -> float:
    """Launch `size` servers, then replace them batch by batch, timing only the replacement."""
    old = [f"rawb-a-{i}" for i in range(size)]
    _launch(lxd, image, old)
    started = time.monotonic()
    for start in range(0, size, batch):
        new = [f"rawb-b-{i}" for i in range(start, min(size, start + batch))]
        _launch(lxd, image, new)
        _run_all(lambda n: subprocess.run(["lxc", "delete", "--force", n, *_in(lxd)], check=True),
                 old[start : start + batch])  # fmt: skip
    took = time.monotonic() - started
    _run_all(lambda n: subprocess.run(["lxc", "delete", "--force", n, *_in(lxd)], check=True),
             [f"rawb-b-{i}" for i in range(size)])  # fmt: skip
    return took


def _launch(lxd: LXD, image: str, names: list[str]) -> None:
    _run_all(lambda n: subprocess.run(["lxc", "launch", image, n, *_in(lxd)], check=True,
                                      stdout=subprocess.DEVNULL), names)  # fmt: skip
    for name in names:
        lxd.wait_address(name, 120)


def _in(lxd: LXD) -> list[str]:
    return [f"--project={lxd.project}"]


def _run_all(fn: object, items: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        list(pool.map(fn, items))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 6, 12])
    parser.add_argument("--batch-fraction", type=int, default=3, help="batches per rebuild")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many, each side")
    parser.add_argument(
        "--scanned",
        action="store_true",
        help="run `phoenix drift` on the fleet before the timed rebuild (untimed), as a nightly"
        " scan would: the rebuild's own scan of the servers it replaces is then a repeat scan",
    )
    parser.add_argument(
        "--observe",
        type=int,
        default=0,
        help="seconds each batch is observed on live traffic (none by default); the windows are"
        " subtracted from phoenix's time and reported apart",
    )
    parser.add_argument(
        "--terraform-binary",
        type=Path,
        help="compare phoenix driving this terraform/tofu with phoenix's bundled engine",
    )
    parser.add_argument(
        "--remote",
        action="store_true",
        help="compare phoenix on the lab's daemon over HTTPS ([lxd] endpoint) with the socket",
    )
    args = parser.parse_args()
    home = os.environ.get("PHOENIX_HOME") or tempfile.mkdtemp(prefix="phoenix-bench-")
    print(f"state in {home}")
    if args.terraform_binary:
        return engines(home, args)
    if args.remote:
        return remote(home, args)
    lxd = project.of(Path(home)).lxd()  # raw lxc works in the same project as phoenix
    for size in args.sizes:
        batch = max(1, size // args.batch_fraction)
        ours, raw = [], []
        windows = -(-size // batch) * args.observe  # one window per batch
        for _ in range(args.rounds):
            ours.append(rebuild_time(home, size, batch, args.scanned, args.observe) - windows)
            raw.append(raw_rebuild(lxd, _latest_tag(home), size, batch))
        observed = f" (+ {windows} s observing, apart)" if windows else ""
        print(
            f"size {size:2d} batch {batch}: phoenix rebuild {min(ours):6.1f} s{observed}   "
            f"raw lxc {min(raw):6.1f} s   ratio {min(ours) / min(raw):.2f}   "
            f"(all: phoenix {', '.join(f'{t:.1f}' for t in ours)}; "
            f"raw {', '.join(f'{t:.1f}' for t in raw)})",
            flush=True,
        )


def engines(home: str, args: argparse.Namespace) -> None:
    """phoenix with `args.terraform_binary` against phoenix with its bundled engine."""
    for size in args.sizes:
        batch = max(1, size // args.batch_fraction)
        theirs, bundled = [], []
        for _ in range(args.rounds):
            theirs.append(rebuild_time(home, size, batch, binary=args.terraform_binary))
            bundled.append(rebuild_time(home, size, batch))
        print(
            f"size {size:2d} batch {batch}: {args.terraform_binary} {min(theirs):6.1f} s   "
            f"bundled {min(bundled):6.1f} s   ratio {min(theirs) / min(bundled):.2f}   "
            f"(all: {', '.join(f'{t:.1f}' for t in theirs)}; "
            f"bundled {', '.join(f'{t:.1f}' for t in bundled)})",
            flush=True,
        )


def remote(home: str, args: argparse.Namespace) -> None:
    """phoenix through the daemon's HTTPS endpoint against phoenix through its socket."""
    sys.path.insert(0, str(REPO))  # run as a script: bench/ is on the path, not the repository
    from bench.remote import endpoint

    with tempfile.TemporaryDirectory() as tmp, endpoint(Path(tmp), "phoenix-bench") as lxd:
        for size in args.sizes:
            batch = max(1, size // args.batch_fraction)
            https, socket = [], []
            for _ in range(args.rounds):
                https.append(rebuild_time(home, size, batch, extra=lxd))
                socket.append(rebuild_time(home, size, batch))
            print(
                f"size {size:2d} batch {batch}: over HTTPS {min(https):6.1f} s   "
                f"over the socket {min(socket):6.1f} s   ratio {min(https) / min(socket):.2f}   "
                f"(all: {', '.join(f'{t:.1f}' for t in https)}; "
                f"socket {', '.join(f'{t:.1f}' for t in socket)})",
                flush=True,
            )


def rebuild_time(
    home: str,
    size: int,
    batch: int,
    scanned: bool = False,
    observe: int = 0,
    binary: Path | None = None,
    extra: str = "",
) -> float:
    """Deploy a fleet of `size` (and scan it, if `scanned`), time its rebuild, destroy it.

    The rebuild includes its scan of the servers it replaces (their drift is archived before
    they go): a full scan of servers never scanned, a repeat scan after `phoenix drift`."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "phoenix.toml"
        watch = f'observe = "{observe}s"\n' if observe else ""
        engine = f'[terraform]\nbinary = "{binary}"\n' if binary else ""
        text = CONFIG.format(repo=REPO, size=size, batch=batch, observe=watch)
        config.write_text(extra + engine + text)
        env = {**os.environ, "PHOENIX_CONFIG": str(config), "PHOENIX_HOME": home}
        phoenix(env, "image", "bake", "web")
        phoenix(env, "deploy", "bench")
        if scanned:
            phoenix(env, "drift", "bench", ok=(0, 1))
        took = phoenix(env, "rebuild", "bench", "--yes")
        phoenix(env, "destroy", "bench", "--yes")
    # an older binary cannot read the state a newer engine wrote: each run starts afresh
    shutil.rmtree(Path(home) / "terraform" / "bench", ignore_errors=True)
    return took


def _latest_tag(home: str) -> str:
    import json

    env = {**os.environ, "PHOENIX_HOME": home, "PHOENIX_CONFIG": str(REPO / "phoenix.toml")}
    out = subprocess.run(
        [sys.executable, "-m", "phoenix", "image", "list", "web", "--json"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return str([i for i in json.loads(out) if i["status"] == "ready"][-1]["tag"])


if __name__ == "__main__":
    main()
