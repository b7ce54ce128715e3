"""The files fact: its parser against recorded and hand-made outputs, its command run locally."""

from __future__ import annotations

import dataclasses
import grp
import hashlib
import os
import pwd
import shutil
import stat
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from phoenix.errors import CommandError
from phoenix.facts import files
from phoenix.facts.cache import ScanCache
from phoenix.facts.files import FileFact
from phoenix.host.process import CommandResult
from tests.unit.facts.fakes import FakeRunner, LocalRunner, NamelessRunner, cases, expected, output

END_OK = "#sha256\0#end 0 0\0"
HASH_A = "a" * 64
HASH_B = "b" * 64


def rec(path: str, head: str = "f 644 0 0 3 10.5 20.25 7", target: str = "") -> str:
    """One metadata record as the command prints it."""
    return f"{head}\0root\0root\0{path}\0{target}\0"


def fact(**changes: object) -> FileFact:
    base: dict[str, object] = {
        "type": "f",
        "mode": "0644",
        "uid": 0,
        "gid": 0,
        "owner": "root",
        "group": "root",
        "size": 3,
        "mtime": 10.5,
        "ctime": 20.25,
        "inode": 7,
    }
    return FileFact(**{**base, **changes})  # type: ignore[arg-type]


# -- recorded outputs ------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("files"))
def test_recorded_output(case: str) -> None:
    want = expected(f"files/{case}.json")
    scan = files.parse(output(f"files/{case}.out"))
    assert (scan.find_rc, scan.hash_rc) == (want["find_rc"], want["hash_rc"])
    assert len(scan.files) == want["count"]
    assert sum(1 for f in scan.files.values() if f.sha256) == want["hashed"]
    for path, facts in want["files"].items():
        assert asdict(scan.files[path]) == facts, path


def test_recorded_real_server_has_setuid_symlinks_and_every_regular_file_hashed() -> None:
    found = files.parse(output("files/bookworm-etc.out")).files
    assert found["/usr/lib/openssh/ssh-keysign"].mode == "4755"
    assert found["/etc/mtab"].target == "../proc/self/mounts"
    assert all(f.sha256 for f in found.values() if f.type == "f")
    assert not any(p.startswith("/srv/missing") for p in found)


def test_recorded_edge_cases_keep_odd_names_intact() -> None:
    found = files.parse(output("files/edge-root.out")).files
    assert found["/srv/edge/new\nline"].sha256 == hashlib.sha256(b"newline\n").hexdigest()
    assert found["/srv/edge/trailing space "].size == len("trailing\n")
    assert found["/srv/edge/link to marker"].target == "#sha256"
    assert found["/srv/edge/link with newline"].target == "a\nb"
    # a byte that is not UTF-8 arrives as U+FFFD (the SSH session decodes with "replace")
    assert found["/srv/edge/bad\ufffdbyte"].sha256 == hashlib.sha256(b"bad byte\n").hexdigest()
    assert found["/srv/edge/pipe"].type == "p" and found["/srv/edge/pipe"].sha256 is None


def test_recorded_unreadable_entries_are_kept_without_a_hash() -> None:
    scan = files.parse(output("files/edge-nobody.out"))
    assert (scan.find_rc, scan.hash_rc) == (1, 123)
    assert scan.files["/srv/edge/secret"].sha256 is None
    assert scan.files["/srv/edge/with space"].sha256 is not None
    assert "/srv/edge/locked" in scan.files and "/srv/edge/locked/inside" not in scan.files


# -- hand-made outputs -----------------------------------------------------------------------

HAND_MADE: list[tuple[str, str, dict[str, FileFact]]] = [
    ("no roots", END_OK, {}),
    (
        "a file and its hash",
        rec("/etc/a") + f"#sha256\0{HASH_A}  /etc/a\0#end 0 0\0",
        {"/etc/a": fact(sha256=HASH_A)},
    ),
    (
        "binary-mode separator",
        rec("/etc/a") + f"#sha256\0{HASH_A} */etc/a\0#end 0 0\0",
        {"/etc/a": fact(sha256=HASH_A)},
    ),
    (
        "a file that could not be hashed",
        rec("/etc/a") + END_OK,
        {"/etc/a": fact()},
    ),
    (
        "a file that appeared between the two passes is left out",
        rec("/etc/a") + f"#sha256\0{HASH_B}  /etc/new\0#end 0 0\0",
        {"/etc/a": fact()},
    ),
    (
        "setgid and sticky bits, a numeric owner",
        "d 3775 1001 0 4096 1.0 2.0 9\x001001\0root\0/srv/shared\0\0" + END_OK,
        {
            "/srv/shared": fact(
                type="d",
                mode="3775",
                uid=1001,
                owner="1001",
                size=4096,
                mtime=1.0,
                ctime=2.0,
                inode=9,
            )
        },
    ),
    (
        "a symlink whose target looks like the section marker",
        rec("/etc/l", "l 777 0 0 7 1.0 2.0 9", "#sha256")
        + f"#sha256\0{HASH_A}  /etc/l\0#end 0 0\0",
        {
            "/etc/l": fact(
                type="l", mode="0777", size=7, mtime=1.0, ctime=2.0, inode=9, target="#sha256"
            )
        },
    ),
    (
        "a path with a newline and a space, and exit codes of a partial scan",
        rec("/etc/a b\nc") + f"#sha256\0{HASH_A}  /etc/a b\nc\0#end 1 123\0",
        {"/etc/a b\nc": fact(sha256=HASH_A)},
    ),
]


@pytest.mark.parametrize(
    ("text", "want"), [c[1:] for c in HAND_MADE], ids=[c[0] for c in HAND_MADE]
)
def test_hand_made_output(text: str, want: dict[str, FileFact]) -> None:
    assert files.parse(text).files == want


MALFORMED: list[tuple[str, str]] = [
    ("empty", ""),
    ("no end line", "#sha256\0"),
    ("cut in a record", "f 644 0 0 3 1.0 2.0 7\0root\0"),
    ("not a record", rec("/a", "f 644 0 0")),
    ("a mode that is not octal", rec("/a", "f 9z9 0 0 3 1.0 2.0 7") + END_OK),
    ("not a hash line", "#sha256\0nothex  /a\0#end 0 0\0"),
    ("no final NUL", "#sha256\0#end 0 0"),
    ("output after the end", END_OK + "more\0"),
    ("an end line without codes", "#sha256\0#end zero\0"),
]


@pytest.mark.parametrize("text", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        files.parse(text)


# -- gather ----------------------------------------------------------------------------------


def runner(stdout: str, rc: int = 0, stderr: str = "") -> FakeRunner:
    return FakeRunner({files.COMMAND: CommandResult(rc, stdout, stderr)})


def test_gather_passes_the_roots_as_arguments_and_tolerates_a_partial_scan() -> None:
    want = expected("files/edge-nobody.json")
    fake = runner(output("files/edge-nobody.out"), want["rc"], want["stderr"])
    found = files.gather(fake, ["/srv/edge/", "/srv/missing"], timeout=30)
    assert found["/srv/edge/secret"].sha256 is None
    assert [(c.args, c.timeout) for c in fake.calls] == [(("/srv/edge", "/srv/missing"), 30)]


@pytest.mark.parametrize(
    ("end", "culprit"), [("#end 2 0", "find"), ("#end 0 124", "sha256sum"), ("#end 0 1", "xargs")]
)
def test_gather_refuses_other_exit_codes_of_the_two_passes(end: str, culprit: str) -> None:
    fake = runner(f"#sha256\0{end}\0", stderr="find: '/etc': some error\nsha256sum: killed\n")
    with pytest.raises(CommandError) as caught:
        files.gather(fake, ["/etc"])
    assert "web-1" in caught.value.message and culprit in caught.value.message
    assert caught.value.message.endswith("sha256sum: killed")


def test_gather_without_gnu_tools_names_the_server_and_the_reason() -> None:
    reason = "phoenix needs GNU find and GNU sha256sum (coreutils) on the server"
    fake = runner("", rc=3, stderr=f"find: unrecognized: -printf\n{reason}\n")
    with pytest.raises(CommandError, match=r"web-1: `find ROOTS .*\(exit 3\): phoenix needs GNU"):
        files.gather(fake, ["/etc"])


def test_gather_turns_unreadable_output_into_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"web-1: .* cannot read: no #end line"):
        files.gather(runner("#sha256\0"), ["/etc"])


def test_gather_on_a_runner_without_target() -> None:
    with pytest.raises(CommandError, match=r"^the server: .*exit 3\): bad$"):
        files.gather(NamelessRunner(CommandResult(3, "", "bad\n")), ["/etc"])


@pytest.mark.parametrize("root", ["etc", "-delete", ""])
def test_roots_must_be_absolute(root: str) -> None:
    with pytest.raises(ValueError, match="absolute"):
        files.gather(runner(END_OK), ["/etc", root])


def test_roots_lose_trailing_slashes_but_not_the_root() -> None:
    assert files.normalize(["/etc/", "/", "//", "/usr"]) == ["/etc", "/", "/", "/usr"]


# -- the command itself, run on this machine (GNU find and coreutils, like the servers) -----


def make_tree(root: Path) -> None:
    (root / "dir with space").mkdir()
    (root / "dir with space" / "new\nline\r").write_bytes(b"one\n")
    (root / "setuid").write_bytes(b"two\n")
    (root / "setuid").chmod(0o4755)
    (root / "link").symlink_to("dir with space/new\nline\r")
    (root / "dangling").symlink_to("/nowhere")
    (Path(os.fsdecode(root)) / os.fsdecode(b"bad\xffbyte")).write_bytes(b"three\n")
    (root / "empty").write_bytes(b"")


def expected_fact(path: Path) -> FileFact:
    st = path.lstat()
    kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
    return FileFact(
        type=kind,
        mode=f"{stat.S_IMODE(st.st_mode):04o}",
        uid=st.st_uid,
        gid=st.st_gid,
        owner=_name(st.st_uid, True),
        group=_name(st.st_gid, False),
        size=st.st_size,
        mtime=st.st_mtime,
        ctime=st.st_ctime,
        inode=st.st_ino,
        target=os.readlink(path) if kind == "l" else None,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest() if kind == "f" else None,
    )


def _name(number: int, user: bool) -> str:
    try:
        return pwd.getpwuid(number).pw_name if user else grp.getgrgid(number).gr_name
    except KeyError:
        return str(number)


def test_command_on_this_machine_matches_lstat(tmp_path: Path) -> None:
    make_tree(tmp_path)
    found = files.gather(LocalRunner(), [str(tmp_path), str(tmp_path / "missing")])
    paths = [tmp_path, *tmp_path.rglob("*")]
    assert sorted(found) == sorted(str(p).replace(os.fsdecode(b"\xff"), "\ufffd") for p in paths)
    for path in paths:
        got = found[str(path).replace(os.fsdecode(b"\xff"), "\ufffd")]
        want = expected_fact(path)
        assert got.mtime == pytest.approx(want.mtime, abs=1e-6)
        assert got.ctime == pytest.approx(want.ctime, abs=1e-6)
        assert asdict(got) | {"mtime": 0, "ctime": 0} == asdict(want) | {"mtime": 0, "ctime": 0}


def test_command_on_this_machine_with_only_missing_roots(tmp_path: Path) -> None:
    assert files.gather(LocalRunner(), [str(tmp_path / "missing"), "/phoenix-no-such-root"]) == {}
    assert files.gather(LocalRunner(), []) == {}


# -- the hash cache: files unchanged since their last hash are not hashed again ----------------


def tree(root: Path) -> list[Path]:
    (root / "etc").mkdir()
    made = [root / "etc" / f"file{i}" for i in range(5)]
    for i, path in enumerate(made):
        path.write_text(f"content {i}\n")
    (root / "etc" / "with space").write_text("x\n")
    (root / "etc" / "new\nline").write_text("y\n")
    (root / "etc" / "link").symlink_to("file0")
    return made


def test_a_repeat_scan_hashes_nothing_and_gives_the_same_facts(tmp_path: Path) -> None:
    tree(tmp_path)
    cache = files.HashCache()
    full = files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    assert cache.hashed == 7 and len(cache.entries) == 7
    again = files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    assert cache.hashed == 0
    assert again == full


def test_a_rewrite_keeping_size_and_mtime_is_hashed_again(tmp_path: Path) -> None:
    made = tree(tmp_path)
    cache = files.HashCache()
    before = files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    target = made[2]
    stat = target.stat()
    target.write_text("CONTENT 2\n")  # same size
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime set back; ctime moves
    after = files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    assert cache.hashed == 1
    assert after[str(target)].mtime == before[str(target)].mtime
    assert after[str(target)].sha256 != before[str(target)].sha256
    assert (
        after[str(target)].sha256 == files.gather(LocalRunner(), [str(target)])[str(target)].sha256
    )


def test_a_file_replaced_by_another_inode_is_hashed_again(tmp_path: Path) -> None:
    made = tree(tmp_path)
    cache = files.HashCache()
    files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    spare = tmp_path / "spare"
    spare.write_text("content 9\n")
    spare.replace(made[1])
    after = files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    assert cache.hashed == 1 and str(spare) not in after
    assert str(made[1]) in cache.entries


def test_removed_files_leave_the_cache(tmp_path: Path) -> None:
    made = tree(tmp_path)
    cache = files.HashCache()
    files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    made[0].unlink()
    files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    assert str(made[0]) not in cache.entries and len(cache.entries) == 6


def test_a_cached_hash_is_used_only_for_the_same_stamp() -> None:
    text = rec("/a", "f 644 0 0 3 10.5 20.25 7") + rec("/b", "f 644 0 0 3 10.5 20.25 8") + END_OK
    cache = files.HashCache({"/a": ("7 3 10.5 20.25", HASH_A), "/b": ("8 3 10.5 99", HASH_B)})
    scan = files.parse(text, cache.entries)
    assert scan.files["/a"].sha256 == HASH_A
    assert scan.files["/b"].sha256 is None  # the command would have hashed it: it was unreadable
    cache.remember(scan)
    assert cache.entries == {"/a": ("7 3 10.5 20.25", HASH_A)}


def test_cache_payload_and_round_trip() -> None:
    cache = files.HashCache({"/a b": ("1 2 3.0 4.0", HASH_A), "/new\nline": ("5 6 7 8", HASH_B)})
    assert cache.payload() == b"1 2 3.0 4.0 /a b\x005 6 7 8 /new\nline\x00"
    stored = ScanCache(cache, ("f" * 32, "ssh.service enabled enabled"))
    assert ScanCache.from_json(stored.to_json()) == stored
    assert ScanCache.from_json("not json") == ScanCache()
    assert ScanCache.from_json('{"files": {"/a": 3}, "units": null}').files.entries == {}


def test_owner_and_group_numbers_are_named_from_the_names_section() -> None:
    names = "#names\0u 0 root\0u 33 www-data\0u 33 shadowed\0g 0 root\0g 33 www-data\0#records\0"
    record = "f 644 33 33 3 10.5 20.25 7\x0033\x0033\x00/srv/a\x00\x00"
    lost = "f 644 1234 999 3 10.5 20.25 8\x001234\x00999\x00/srv/b\x00\x00"
    scan = files.parse(names + record + lost + END_OK)
    assert (scan.files["/srv/a"].owner, scan.files["/srv/a"].group) == ("www-data", "www-data")
    assert (scan.files["/srv/b"].owner, scan.files["/srv/b"].group) == ("1234", "999")
    with pytest.raises(ValueError, match="not a name entry"):
        files.parse("#names\0x 1 y\0#records\0" + END_OK)
    with pytest.raises(ValueError, match="#records"):
        files.parse("#names\0u 0 root\0")


# -- settled files: a server never scanned takes its image's hashes for what it never wrote ------


def settled_after(paths: list[Path]) -> str:
    """A first-start time after every write to `paths`, once the clock has moved past it (file
    times come from a coarse clock: the next write must not share a tick with the last)."""
    last = max(p.lstat().st_ctime_ns for p in paths)
    deadline = time.monotonic() + 5
    while time.time_ns() < last + 30_000_000:
        assert time.monotonic() < deadline, "the clock did not move"
        time.sleep(0.005)
    return f"{last // 10**9}.{last % 10**9:09d}"


def test_a_server_never_scanned_hashes_only_what_it_wrote_since_it_started(tmp_path: Path) -> None:
    made = tree(tmp_path)
    image = files.gather(LocalRunner(), [str(tmp_path)])  # the baseline: every file hashed
    settled = settled_after([tmp_path, *tmp_path.rglob("*")])

    cache = files.HashCache.seeded(image, settled)
    first = files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    assert cache.hashed == 0 and sans_ctime(first) == sans_ctime(image)
    # what was not changed after the first start is shown so, not by its ctime (the witness
    # holds the disk to it): every entry here, files, directories and links alike
    assert {f.ctime for f in first.values()} == {files.SETTLED_CTIME}
    assert all(stamp.endswith(" settled") for stamp, _ in cache.entries.values())
    # every hash came from the image (the second witness need not read these files)
    assert cache.from_image == {p for p, f in image.items() if f.type == "f"}

    stat = made[3].stat()
    made[3].write_text("CONTENT 3\n")  # same size, same inode, mtime set back: ctime moves
    os.utime(made[3], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (tmp_path / "etc" / "added").write_text("new\n")
    seeded = files.HashCache.seeded(image, settled)
    again = files.gather(LocalRunner(), [str(tmp_path)], cache=seeded)
    assert str(made[3]) not in seeded.from_image  # rewritten since: hashed, not the image's
    assert again[str(made[3])].sha256 == hashlib.sha256(b"CONTENT 3\n").hexdigest()
    assert again[str(tmp_path / "etc" / "added")].sha256 is not None
    assert {p for p in again if sans_ctime(again)[p] != sans_ctime(image).get(p)} == {
        str(made[3]),
        str(tmp_path / "etc" / "added"),
        str(tmp_path / "etc"),
    }
    assert again[str(made[3])].ctime > float(settled)  # changed since: its ctime as it is


def sans_ctime(found: dict[str, files.FileFact]) -> dict[str, files.FileFact]:
    return {p: dataclasses.replace(f, ctime=0.0) for p, f in found.items()}


def smoked(
    tmp_path: Path,
) -> tuple[list[Path], list[str], dict[str, FileFact], str, files.HashCache]:
    """A tree of two roots (etc, srv), its facts as an image's baseline, the time its server
    first started, and the cache of its smoke scan (with its listings)."""
    made = tree(tmp_path)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "x").write_text("x\n")
    roots = [str(tmp_path / "etc"), str(tmp_path / "srv")]
    image = files.gather(LocalRunner(), roots)
    started = settled_after([tmp_path, *tmp_path.rglob("*")])
    smoke = files.HashCache.seeded(image, started)
    assert sans_ctime(files.gather(LocalRunner(), roots, cache=smoke)) == sans_ctime(image)
    return made, roots, image, started, smoke


def test_a_server_never_scanned_is_offered_the_listings_of_its_images_smoke_scan(
    tmp_path: Path,
) -> None:
    """The smoke server's listings of the roots it held as the image made them: a server of the
    image that holds a root the same prints `#listed` for it, from its very first scan."""
    made, roots, image, started, smoke = smoked(tmp_path)
    assert len(smoke.listings) == 2 and smoke.hashed == 0

    runner = Seen()
    server = files.HashCache.seeded(image, started, smoke.listings)
    made[0].write_text("changed 0\n")  # the new server writes to etc once started
    first = files.gather(runner, roots, cache=server)
    marks = [f.split(" ")[0] for f in runner.outputs[0].split("\0") if f.startswith("#list")]
    assert marks == ["#listing", "#listed"]  # srv is the image's: neither sent nor parsed
    assert str(tmp_path / "srv" / "x") not in runner.outputs[0]
    assert (
        sans_ctime(first)[str(tmp_path / "srv" / "x")]
        == sans_ctime(image)[str(tmp_path / "srv" / "x")]
    )
    assert first[str(made[0])].sha256 == hashlib.sha256(b"changed 0\n").hexdigest()
    assert server.hashed == 1


def test_a_stored_cache_names_its_images_listings_by_digest_only(tmp_path: Path) -> None:
    """A server's cache holds the image's listings of the roots it holds as the image made them:
    stored, they are their digests (a few bytes instead of ~6,000 records); loaded, they are
    the image's again; loaded without them, the cache is empty (its hashes went with them)."""
    _, roots, image, started, smoke = smoked(tmp_path)
    shared = files.offered(smoke.listings)
    assert len(shared) == 2

    (tmp_path / "etc" / "new").write_text("new\n")  # etc is the server's own from now on
    cache = ScanCache(files.HashCache.seeded(image, started, shared), image=shared)
    first = files.gather(LocalRunner(), roots, cache=cache.files)
    stored = cache.dump()
    assert stored != ScanCache(cache.files).dump()  # smaller: srv by its digest only
    [srv] = [d for d, listing in shared.items() if listing.root == str(tmp_path / "srv")]
    again = ScanCache.load(stored, shared)
    assert again.files.listings[srv] is shared[srv]
    assert again.files.entries == cache.files.entries
    again.files.settled = started  # the server's, as a scan sets it (it is not stored)
    assert files.gather(LocalRunner(), roots, cache=again.files) == first
    assert again.files.hashed == 0
    assert ScanCache.load(stored).files.entries == {}  # the image's listings are not known

    # the same records with another hash (a deep scan, the clock set back): kept whole
    x = str(tmp_path / "srv" / "x")
    own = shared[srv]
    forged = dataclasses.replace(own.facts[x], sha256="f" * 64)
    cache.files.listings[srv] = files.Listing(
        own.root, {**own.facts, x: forged}, own.stamps, own.from_image
    )
    kept = ScanCache.load(cache.dump(), shared).files.listings[srv]
    assert kept is not shared[srv] and kept.facts[x].sha256 == "f" * 64


def test_only_the_smoke_listings_settled_and_hashed_whole_are_offered() -> None:
    """A listing with a file written after the smoke server started (a stamp not SETTLED), or
    with a file it could not hash, is not offered: its stamps would not be the new server's."""
    fact = files.FileFact("f", "0644", 0, 0, "root", "root", 1, 10.0, 20.0, 7, None, "a" * 64)
    unread = dataclasses.replace(fact, sha256=None)
    settled = files.Listing("/etc", {"/etc/a": fact}, {"/etc/a": "7 1 10 settled"}, frozenset())
    written = files.Listing("/srv", {"/srv/a": fact}, {"/srv/a": "7 1 10.0 20.0"}, frozenset())
    blind = files.Listing("/opt", {"/opt/a": unread}, {"/opt/a": "7 1 10 settled"}, frozenset())
    kept = {"1" * 64: settled, "2" * 64: written, "3" * 64: blind}
    cache = files.HashCache.seeded({}, "1796315932.12", kept)
    assert list(cache.listed()) == ["1" * 64]


def test_settled_stamps_need_the_images_inode_size_and_mtime() -> None:
    text = (
        rec("/a", "f 644 0 0 3 10.5 20.25 7")  # ctime before the start: settled
        + rec("/b", "f 644 0 0 3 10.5 30.000000001 8")  # just after it: written since
        + rec("/c", "f 644 0 0 3 11.5 20.25 9")  # settled, but not the image's mtime
        + END_OK
    )
    known = {"/a": ("7 3 10 settled", HASH_A), "/b": ("8 3 10 settled", HASH_B)}
    known |= {"/c": ("9 3 10 settled", HASH_B)}
    scan = files.parse(text, known, settled="30")
    assert scan.files["/a"].sha256 == HASH_A
    assert scan.files["/b"].sha256 is None and scan.stamps["/b"] == "8 3 10.5 30.000000001"
    assert scan.files["/c"].sha256 is None and scan.stamps["/c"] == "9 3 11 settled"


def test_a_settled_time_is_a_number_of_seconds() -> None:
    with pytest.raises(ValueError, match="not a time"):
        files.HashCache(settled="1; rm -rf /")
    assert files.HashCache(settled="1796315932.12").settled == "1796315932.12"


# -- listings: a repeat scan neither receives nor parses a root whose records are unchanged ------


class Seen(LocalRunner):
    """LocalRunner that keeps what each run printed."""

    def __init__(self) -> None:
        self.outputs: list[str] = []

    def run(
        self, command: str, *args: str, timeout: float = 60, stdin: bytes = b""
    ) -> CommandResult:
        result = super().run(command, *args, timeout=timeout, stdin=stdin)
        self.outputs.append(result.stdout)
        return result


def test_a_root_listed_the_same_is_neither_sent_nor_parsed_again(tmp_path: Path) -> None:
    made = tree(tmp_path)
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "x").write_text("x\n")
    roots = [str(tmp_path / "etc"), str(tmp_path / "srv")]
    runner, cache = Seen(), files.HashCache()
    full = files.gather(runner, roots, cache=cache)
    assert runner.outputs[0].count("#listing ") == 2 and "#listed " not in runner.outputs[0]
    assert [listing.root for listing in cache.listings.values()] == roots

    again = files.gather(runner, roots, cache=cache)
    assert again == full and list(again) == sorted(again)
    assert runner.outputs[1].count("#listed ") == 2 and str(made[0]) not in runner.outputs[1]
    assert cache.hashed == 0 and len(cache.entries) == 8

    made[0].write_text("changed 0\n")  # only etc's records change: only they come again
    changed = files.gather(runner, roots, cache=cache)
    assert runner.outputs[2].count("#listing ") == 1 and runner.outputs[2].count("#listed ") == 1
    assert str(made[0]) in runner.outputs[2]
    assert str(tmp_path / "srv" / "x") not in runner.outputs[2]
    assert cache.hashed == 1
    assert changed[str(made[0])].sha256 == hashlib.sha256(b"changed 0\n").hexdigest()
    assert {p: f for p, f in changed.items() if p != str(made[0])} == {
        p: f for p, f in full.items() if p != str(made[0])
    }


def test_the_tools_are_checked_only_by_a_scan_given_no_listings(tmp_path: Path) -> None:
    """The check costs five processes: a server that showed GNU tools once (or whose image's
    smoke server did) is not asked again, and phoenix offers listings only from such a scan."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("find", "sha256sum", "sort", "comm", "xargs", "cat", "mktemp", "rm", "getent"):
        found = shutil.which(tool)
        assert found is not None
        (tools / tool).symlink_to(found)  # no sed: the check fails
    runner = LocalRunner()
    command = f"env PATH={tools} /bin/{files.CACHED_COMMAND}"
    checked = runner.run(command, "", "", str(tmp_path / "bin"))
    assert checked.rc == 3 and "phoenix needs GNU find" in checked.stderr
    trusted = runner.run(command, "", "a" * 64, str(tmp_path / "bin"))
    assert "phoenix needs GNU" not in trusted.stderr and "#listing " in trusted.stdout


def test_a_root_unchanged_is_listed_by_its_digest_and_a_changed_one_sent_again(
    tmp_path: Path,
) -> None:
    """Every root's listing is hashed by one sha256sum: each root still gets its own digest,
    in the order of the roots, and only the root that changed is sent again."""
    roots = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for root in roots:
        root.mkdir()
        (root / "file").write_text(f"{root.name}\n")
    names = [str(r) for r in roots]
    cache, runner = files.HashCache(), Seen()
    first = files.gather(runner, names, cache=cache)
    assert runner.outputs[-1].count("#listing ") == 3
    assert files.gather(runner, names, cache=cache) == first
    assert runner.outputs[-1].count("#listed ") == 3 and "#listing " not in runner.outputs[-1]
    (roots[1] / "new").write_text("new\n")
    after = files.gather(runner, names, cache=cache)
    marks = [f.split(" ")[0] for f in runner.outputs[-1].split("\0") if f.startswith("#list")]
    assert marks == ["#listed", "#listing", "#listed"]
    assert after[str(roots[1] / "new")].sha256 is not None
    same = [str(roots[0]), str(roots[0] / "file"), str(roots[2]), str(roots[2] / "file")]
    assert [after[k] for k in same] == [first[k] for k in same]  # kept from the listings


def test_a_root_with_a_file_without_hash_is_compared_again(tmp_path: Path) -> None:
    made = tree(tmp_path)
    runner, cache = Seen(), files.HashCache()
    full = files.gather(runner, [str(tmp_path)], cache=cache)
    [(digest, listing)] = cache.listings.items()
    unread = dataclasses.replace(listing.facts[str(made[1])], sha256=None)  # it could not be read
    cache.listings[digest] = files.Listing(
        listing.root, {**listing.facts, str(made[1]): unread}, listing.stamps, frozenset()
    )
    del cache.entries[str(made[1])]
    assert cache.listed() == {}  # not offered: the command lists the root and hashes that file
    again = files.gather(runner, [str(tmp_path)], cache=cache)
    assert "#listed " not in runner.outputs[1]
    assert cache.hashed == 1 and again == full
    assert str(made[1]) in cache.entries and list(cache.listed()) == [digest]


def test_listings_are_not_offered_once_the_first_start_is_another(tmp_path: Path) -> None:
    tree(tmp_path)
    runner, cache = Seen(), files.HashCache()
    files.gather(runner, [str(tmp_path)], cache=cache)
    assert cache.listed()
    cache.settled = "1796315932.12"  # the stamps kept are not the ones this scan makes
    assert cache.listed() == {}
    files.gather(runner, [str(tmp_path)], cache=cache)
    assert "#listed " not in runner.outputs[1] and cache.listed()


LISTED = rec("/etc") + rec("/etc/a", "f 644 0 0 3 10.5 20.25 7")


def test_a_server_that_names_a_listing_phoenix_has_not_is_unreadable() -> None:
    kept = files.parse(f"#listing {HASH_A}\0" + LISTED + END_OK, roots=["/etc"]).listings
    assert list(kept) == [HASH_A] and kept[HASH_A].root == "/etc"
    assert files.parse(f"#listed {HASH_A}\0" + END_OK, None, ["/etc"], None, kept).files == {
        "/etc": kept[HASH_A].facts["/etc"],
        "/etc/a": kept[HASH_A].facts["/etc/a"],
    }
    with pytest.raises(ValueError, match="names a listing phoenix has not"):
        files.parse(f"#listed {HASH_B}\0" + END_OK, None, ["/etc"], None, kept)
    with pytest.raises(ValueError, match="outside the roots"):  # a listing of another root
        files.parse(f"#listed {HASH_A}\0" + END_OK, None, ["/srv"], None, kept)
    with pytest.raises(ValueError, match="not a SHA-256"):
        files.parse("#listing ../../x\0" + LISTED + END_OK, roots=["/etc"])
    with pytest.raises(ValueError, match="not a file record"):
        files.parse("#other x\0" + LISTED + END_OK, roots=["/etc"])


def test_listings_are_kept_with_the_cache_and_dropped_if_unreadable(tmp_path: Path) -> None:
    tree(tmp_path)
    cache = files.HashCache(settled="1796315932.12")
    files.gather(LocalRunner(), [str(tmp_path)], cache=cache)
    stored = ScanCache(cache).to_json()
    back = ScanCache.from_json(stored).files
    back.settled = cache.settled
    assert back.listed_under == cache.settled and back.entries == cache.entries
    assert {d: (x.root, x.facts, x.stamps, x.from_image) for d, x in back.listed().items()} == {
        d: (x.root, x.facts, x.stamps, x.from_image) for d, x in cache.listings.items()
    }
    assert '"files":{}' in stored  # the hashes are stored once, in the listings
    broken = ScanCache.from_json(stored.replace('"root"', '"rot"')).files
    assert broken.entries == {} and broken.listings == {}  # the next scan hashes all


def test_a_cache_that_a_scan_left_as_it_was_is_stored_as_it_was_read(tmp_path: Path) -> None:
    made = tree(tmp_path)
    cache = ScanCache()
    files.gather(LocalRunner(), [str(tmp_path)], cache=cache.files)
    stored = cache.dump()
    again = ScanCache.load(stored)
    files.gather(LocalRunner(), [str(tmp_path)], cache=again.files)  # nothing changed
    assert again.dump() is stored
    made[0].write_text("changed\n")
    files.gather(LocalRunner(), [str(tmp_path)], cache=again.files)
    changed = again.dump()
    assert changed != stored and ScanCache.load(changed).files.entries == again.files.entries
    assert ScanCache.load(b"not zlib") == ScanCache()


@pytest.mark.parametrize(
    "names",
    [
        ["etc", "srv", "b*c"],  # apart: one find for all; a glob character: one find each
        ["etc", "etc/sub", "srv"],  # one under another: one find each
        ["etc", "srv", "etc"],  # twice: one find each
        ["srv", "etc"],
    ],
)
def test_every_root_is_listed_the_same_with_one_find_or_one_each(
    tmp_path: Path, names: list[str]
) -> None:
    tree(tmp_path)
    for name in ("etc/sub", "srv", "b*c"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "x").write_text(name)
    roots = [str(tmp_path / name) for name in names]
    plain = files.gather(LocalRunner(), roots)  # no listings: one find for all roots
    runner, cache = Seen(), files.HashCache()
    assert files.gather(runner, roots, cache=cache) == plain
    assert sorted(listing.root for listing in cache.listings.values()) == sorted(set(roots))
    assert files.gather(runner, roots, cache=cache) == plain
    assert "#listing " not in runner.outputs[-1] and cache.hashed == 0


def test_a_scan_of_the_same_listings_keeps_the_entries_and_what_is_sent(tmp_path: Path) -> None:
    made = tree(tmp_path)
    roots = [str(tmp_path / "etc")]
    cache = files.HashCache()
    files.gather(LocalRunner(), roots, cache=cache)
    files.gather(LocalRunner(), roots, cache=cache)
    entries, sent = cache.entries, cache.payload()
    assert files.gather(LocalRunner(), roots, cache=cache)  # every root listed: nothing remade
    assert cache.entries is entries and cache.payload() is sent
    made[1].write_text("changed\n")
    files.gather(LocalRunner(), roots, cache=cache)
    assert cache.entries is not entries and cache.payload() != sent
    assert cache.entries[str(made[1])][1] == hashlib.sha256(b"changed\n").hexdigest()
