"""Drift benchmark: scan 1, 10 and 30 lab servers, and AIDE checking one of them, in the same run.

phoenix scans each server over SSH (one session, one script) against its image's baseline; AIDE
(Debian's `aide`, the reference) checks the same roots of one server locally, from the host, in
the container's root file system on the storage pool. Prints servers/second, files hashed/second
and the ratio of phoenix's per-server time to AIDE's check (goal: at most 1); then scans the same
servers again with the hash cache of the first scan (files whose inode, size, mtime and ctime are
unchanged are not hashed again, roots whose records are unchanged are neither sent nor parsed
again) and prints how much faster the repeat scan is (goal: 5x); then once more with each cache
read back from compressed JSON, as `phoenix drift` keeps it between runs. And a
first scan as a rollout's archive scan makes it: a server never scanned, its cache seeded from its
image's baseline for the files it has not written since it started (SETTLED stamps, facts.files)
and offered the image's smoke scan (its units record; its listings: a root the server holds as
the image did is not sent), as `phoenix.drift.scan.first_cache` makes it.

Run on a lab that is up: `.venv/bin/python bench/drift.py [--sizes 1 10 30]`. Its servers are
named `bench-drift-N` and deleted at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from phoenix.drift import witness
from phoenix.drift.diff import Rules
from phoenix.drift.scan import ServerScan, first_cache, scan_server, smoke_scan
from phoenix.facts import Facts, HashCache, ScanCache, image_capabilities
from phoenix.host import keys, ssh
from phoenix.image import bake
from phoenix.image.registry import Registry
from phoenix.lab import disk, project
from phoenix.lab import lab as labmod
from phoenix.lab.lxd import LXD
from phoenix.state import Store
from phoenix.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
AIDE_ROOTS = ["etc", "usr"]  # the bulk of the watched roots; AIDE reads them from the pool


def aide_check(rootfs: Path, work: Path) -> tuple[float, int]:
    """Initialise an AIDE database for the server's roots, then time one `aide --check`."""
    db = work / "aide.db"
    conf = work / "aide.conf"
    lines = [
        f"database_in=file:{db}",
        f"database_out=file:{work / 'aide.db.new'}",
        "report_url=stdout",
        "Full = p+i+n+u+g+s+m+c+sha256",
        *(f"{rootfs / r} Full" for r in AIDE_ROOTS),
    ]
    conf.write_text("\n".join(lines) + "\n")
    subprocess.run(["aide", "--init", "-c", str(conf)], check=True, capture_output=True)
    (work / "aide.db.new").rename(db)
    started = time.monotonic()
    out = subprocess.run(["aide", "--check", "-c", str(conf)], capture_output=True, text=True)
    took = time.monotonic() - started
    entries = sum(1 for _ in rootfs.joinpath("etc").rglob("*")) + sum(
        1 for _ in rootfs.joinpath("usr").rglob("*")
    )
    if out.returncode not in (0, 1, 2, 3, 4, 5, 6, 7):
        raise SystemExit(f"aide --check failed: {out.stderr}")
    return took, entries


def witness_time(lxd: LXD, roots: list[str], scans: list[ServerScan]) -> float:
    """Seconds per server of the second witness: its disk read from the host and compared with
    what it said (the files of its scan), one server after another."""
    started = time.monotonic()
    for scanned in scans:
        rootfs = lxd.rootfs(scanned.name)
        if rootfs is None:
            raise SystemExit(f"{scanned.name}: no root file system on the host")
        read = disk.read_disk(rootfs, roots, time.monotonic() + 120)
        witness.compare({}, read, time.time())
    return (time.monotonic() - started) / len(scans)


def timed(
    one: Callable[[ssh.Target], ServerScan], targets: list[ssh.Target], parallel: int
) -> tuple[float, list[ServerScan]]:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        scans = list(pool.map(one, targets))
    return time.monotonic() - started, scans


def report(label: str, result: tuple[float, list[ServerScan]], size: int, aide: float) -> None:
    took, scans = result
    hashed = sum(s.hashed for s in scans)
    bad = [s for s in scans if s.status != "clean"]
    per_server = took / size
    print(
        f"{label}: {took:6.2f} s, {size / took:5.2f} servers/s, "
        f"{hashed / took:8.0f} files hashed/s ({hashed} hashed), {per_server:.2f} s per server, "
        f"ratio to AIDE {per_server / aide:.2f}" + (f", {len(bad)} not clean" if bad else ""),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--image", default="web")
    args = parser.parse_args()
    ws = Workspace.open(REPO / "phoenix.toml")
    lxd = project.of(ws.home).lxd()
    key, _ = keys.ensure(ws.home)
    image = bake.bake_image(ws, args.image).image  # a no-op when the image is up to date
    if not image.baseline:
        raise SystemExit(f"{image.tag} has no baseline")
    baseline = Facts.from_dict(image.baseline)
    with Store.open(ws.home) as store:
        smoke_stored = Registry(store).listings(image.tag)
    scan_of_image = smoke_scan(smoke_stored)
    smoke = dict(scan_of_image.listings)
    print(f"{image.tag}: {len(smoke)} listings of its smoke scan offered", flush=True)
    rules = Rules.with_extra(ws.config.drift.ignore)
    names = [f"bench-drift-{i}" for i in range(max(args.sizes))]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            targets = list(
                pool.map(lambda n: labmod.launch_server(lxd, n, image.tag, key, 240), names)
            )
        settled = {n: lxd.started(n) for n in names}  # as phoenix records it at the gate
        print(f"{len(targets)} servers from {image.tag} up", flush=True)
        with tempfile.TemporaryDirectory() as work:
            rootfs = lxd.rootfs(names[0])
            if rootfs is None:
                raise SystemExit(f"{names[0]}: no root file system on the host to give AIDE")
            aide, entries = aide_check(rootfs, Path(work))
        print(
            f"AIDE --check of {names[0]} ({'/'.join(AIDE_ROOTS)}, ~{entries} entries): {aide:.2f} s"
        )
        for size in args.sizes:
            chosen = targets[:size]
            # as `phoenix drift --deep` starts: every file hashed, the first start known
            caches = {
                t.name: ScanCache(HashCache(settled=settled[t.name]), image=smoke) for t in chosen
            }

            def one(t: ssh.Target, caches: dict[str, ScanCache] = caches) -> ServerScan:
                return scan_server(t, baseline, rules, key.private_path, ws.config.drift.roots,
                                   120, image.tag, cache=caches[t.name])  # fmt: skip

            seeds = {t.name: first_cache(settled[t.name], baseline, scan_of_image) for t in chosen}

            def first(t: ssh.Target, seeds: dict[str, ScanCache] = seeds) -> ServerScan:
                return scan_server(t, baseline, rules, key.private_path, ws.config.drift.roots,
                                   120, image.tag, cache=seeds[t.name])  # fmt: skip

            fresh = timed(first, chosen, ws.config.drift.parallel)
            report(f"{size:2d} servers, first ", fresh, size, aide)
            full = timed(one, chosen, ws.config.drift.parallel)
            report(f"{size:2d} servers, full  ", full, size, aide)
            print(f"   first scan (seeded from the image) {full[0] / fresh[0]:.1f}x faster than"
                  " full", flush=True)  # fmt: skip
            for cache in caches.values():  # as a scan that is not deep starts (scan._cache)
                cache.image_capabilities = image_capabilities(baseline)
            repeat = timed(one, chosen, ws.config.drift.parallel)
            report(f"{size:2d} servers, repeat", repeat, size, aide)
            print(f"   repeat scan {full[0] / repeat[0]:.1f}x faster than full", flush=True)
            kept = {n: c.dump() for n, c in caches.items()}

            def stored(t: ssh.Target, kept: dict[str, bytes] = kept) -> ServerScan:
                """As `phoenix drift` scans: its cache loaded before, and stored after."""
                cache = ScanCache.load(kept[t.name], smoke)
                cache.files.settled = settled[t.name]  # recorded with the server, not its cache
                cache.image_capabilities = image_capabilities(baseline)
                roots = ws.config.drift.roots
                scanned = scan_server(
                    t, baseline, rules, key.private_path, roots, 120, image.tag, cache=cache
                )
                kept[t.name] = cache.dump()
                return scanned

            again = timed(stored, chosen, ws.config.drift.parallel)
            report(f"{size:2d} servers, stored", again, size, aide)
            print(
                f"   repeat scan, its cache loaded and stored as `phoenix drift` does:"
                f" {full[0] / again[0]:.1f}x faster than full",
                flush=True,
            )
            took = witness_time(lxd, ws.config.drift.roots, full[1])
            print(
                f"   second witness (the roots read and hashed from the host, compared):"
                f" {took:.2f} s per server, ratio to AIDE {took / aide:.2f}",
                flush=True,
            )
    finally:
        for name in names:
            lxd.delete(name)


if __name__ == "__main__":
    sys.exit(main())
