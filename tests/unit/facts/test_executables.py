"""Executables and file capabilities anywhere: parsers, drift kinds, and the commands run locally
on a temporary tree (never on this machine's /)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phoenix.drift.diff import SEVERITY, Rules, diff
from phoenix.facts import Facts, capabilities, executables
from phoenix.facts.executables import Executable
from phoenix.facts.registry import CAPABILITIES, EXECUTABLES, REGISTRY
from tests.unit.facts.fakes import LocalRunner

SHA_A = "a" * 64
SHA_B = "b" * 64
SAMPLE = (
    "755 0 0 1265648 /usr/bin/bash\n"
    "4755 0 0 59704 /usr/bin/passwd\n"
    "1 0 0 3 /srv/odd mode\n"
    "700 0 0 18 /tmp/evil\\nname\\\\x\n"
    "#sha256\n"
    f"{SHA_A}  /usr/bin/bash\n"
    f"{SHA_B}  /usr/bin/passwd\n"
    f"{SHA_A}  /tmp/evil\\nname\\\\x\n"
    f"{SHA_B}  /tmp/gone since\n"
    "#end 1 123\n"
)


def test_parse_sample() -> None:
    found = executables.parse(SAMPLE)
    assert found == {
        "/srv/odd mode": Executable("0001", 0, 0, 3, None),  # not hashed: vanished meanwhile
        "/tmp/evil\nname\\x": Executable("0700", 0, 0, 18, SHA_A),
        "/usr/bin/bash": Executable("0755", 0, 0, 1265648, SHA_A),
        "/usr/bin/passwd": Executable("4755", 0, 0, 59704, SHA_B),
    }
    assert executables.parse("#sha256\n#end 0 0\n") == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "755 0 0 1 /x\n",  # no hash section
        "#sha256\n",  # no end
        "#sha256\n#end 2 0\n",  # find failed
        "#sha256\n#end 0 127\n",  # sha256sum missing: every hash would be gone
        "#sha256\n#end 0 0\nmore\n",
        "#sha256\n#end 0\n",
        "9755 0 0 1 /x\n#sha256\n#end 0 0\n",
        "755 0 0 1 relative\n#sha256\n#end 0 0\n",
        "755 -1 0 1 /x\n#sha256\n#end 0 0\n",
        "755 0 0 1 /a/../x\n#sha256\n#end 0 0\n",
        "755 0 0 1 /x\\q\n#sha256\n#end 0 0\n",  # not an escape the command writes
        "755 0 0 1 /x\\\n#sha256\n#end 0 0\n",
        "#sha256\nXYZ  /x\n#end 0 0\n",
        f"#sha256\n{SHA_A} /x\n#end 0 0\n",
    ],
)
def test_parse_refuses_malformed_output(text: str) -> None:
    with pytest.raises(ValueError):
        executables.parse(text)


@given(st.text())
def test_parse_returns_or_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        executables.parse(text)


@given(st.text(alphabet=st.sampled_from("0123457 /\\n#sha256end\n" + "ab")))
def test_parse_of_near_miss_output_returns_or_raises_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        executables.parse(text + "#sha256\n#end 0 0\n")


CAPS_SAMPLE = (
    "/usr/bin/ping cap_net_raw=ep\n"
    "/usr/local/bin/my py cap_setuid=ep\n"
    "/srv/all =ep\n"
    "/srv/two cap_chown=p cap_net_raw=i\n"
    "/srv/new\\nline\\\\x cap_kill=ep\n"
    "#getfattr\n"
    "# file: /usr/bin/ping\n"
    "security.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=\n"
    "\n"
    "# file: /srv/ima\\\\012name\n"
    "security.ima=0sBAT/EO0=\n"
    "security.empty=0s\n"
    "\n"
    "#end\n"
)


def test_parse_capabilities_sample() -> None:
    assert capabilities.parse(CAPS_SAMPLE) == {
        "/srv/all": "=ep",
        "/srv/ima\nname": "security.ima=0sBAT/EO0= security.empty=0s",
        "/srv/new\nline\\x": "cap_kill=ep",
        "/srv/two": "cap_chown=p cap_net_raw=i",
        "/usr/bin/ping": "cap_net_raw=ep",
        "/usr/local/bin/my py": "cap_setuid=ep",
    }
    assert capabilities.parse("#getfattr missing\n#end\n") == {}


def test_a_getcap_line_for_a_path_twice_keeps_both() -> None:
    text = "/x cap_chown=ep\n/x cap_setuid=ep\n#getfattr missing\n#end\n"
    assert capabilities.parse(text) == {"/x": "cap_chown=ep | cap_setuid=ep"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/x cap_chown=ep\n",  # cut short
        "/x cap_chown=ep\n#getfattr\n",  # no end
        "/x\n#getfattr missing\n#end\n",  # no capabilities
        "cap_chown=ep\n#getfattr missing\n#end\n",  # no path
        "x cap_chown=ep\n#getfattr missing\n#end\n",
        "#getfattr\nsecurity.x=0sAA==\n#end\n",  # an attribute before any file
        "#getfattr\n# file: /x\nuser.x=0s\n#end\n",
        "#getfattr\n# file: /x\nsecurity.x=raw\n#end\n",
        "#getfattr\n# file: rel\n#end\n",
        "#getfattr\n# file: /x\\\\q\n#end\n",
        "#getfattr missing\n#end\nmore\n",
    ],
)
def test_parse_capabilities_refuses_malformed_output(text: str) -> None:
    with pytest.raises(ValueError):
        capabilities.parse(text)


@given(st.text())
def test_parse_capabilities_returns_or_raises_value_error(text: str) -> None:
    for candidate in (text, text + "\n#getfattr\n#end\n", "#getfattr\n# file: /" + text):
        with contextlib.suppress(ValueError):
            capabilities.parse(candidate)


# -- drift ------------------------------------------------------------------------------------

BASE = {
    "/usr/bin/bash": Executable("0755", 0, 0, 10, SHA_A),
    "/usr/bin/passwd": Executable("4755", 0, 0, 20, SHA_B),
}


def facts(found: dict[str, Executable], caps: dict[str, str] | None = None) -> Facts:
    return Facts({}, {}, {}, executables=found, capabilities=caps or {})


def kinds(live: Facts, baseline: Facts | None = None) -> list[tuple[str, str, str]]:
    found = diff(baseline or facts(BASE, {"/usr/bin/ping": "cap_net_raw=ep"}), live)
    return [(f.kind, f.subject, f.severity) for f in found]


def test_an_added_executable_a_changed_hash_and_a_setuid_bit_are_high() -> None:
    live = {
        **BASE,
        "/var/lib/.x/tool": Executable("0755", 0, 0, 5, SHA_A),
        "/usr/bin/bash": Executable("0755", 0, 0, 10, SHA_B),
        "/dev/shm/sh": Executable("4755", 0, 0, 10, SHA_A),
    }
    assert kinds(facts(live, {"/usr/bin/ping": "cap_net_raw=ep"})) == [
        ("executable.added", "/var/lib/.x/tool", "high"),
        ("executable.changed", "/usr/bin/bash", "high"),
        ("executable.setuid", "/dev/shm/sh", "high"),
    ]


def test_a_setuid_bit_set_on_an_executable_is_a_setuid_finding() -> None:
    live = {**BASE, "/usr/bin/bash": Executable("4755", 0, 0, 10, SHA_A)}
    [finding] = diff(facts(BASE), facts(live))
    assert (finding.kind, finding.subject) == ("executable.setuid", "/usr/bin/bash")
    assert finding.before == f"mode 0755 0:0 size 10 sha256:{SHA_A[:16]}"
    assert finding.after == f"mode 4755 0:0 size 10 sha256:{SHA_A[:16]}"


def test_a_removed_executable_is_low_and_an_unchanged_one_nothing() -> None:
    assert kinds(facts(BASE), facts(BASE)) == []
    only_bash = {"/usr/bin/bash": BASE["/usr/bin/bash"]}
    assert kinds(facts(only_bash), facts(BASE)) == [
        ("executable.removed", "/usr/bin/passwd", "low")
    ]


def test_capabilities_added_changed_removed() -> None:
    base = facts(BASE, {"/usr/bin/ping": "cap_net_raw=ep", "/usr/bin/old": "cap_chown=ep"})
    live = facts(
        BASE, {"/usr/bin/ping": "cap_net_raw,cap_sys_admin=ep", "/tmp/py": "cap_setuid=ep"}
    )
    assert kinds(live, base) == [
        ("capability.added", "/tmp/py", "high"),
        ("capability.changed", "/usr/bin/ping", "high"),
        ("capability.removed", "/usr/bin/old", "low"),
    ]


def test_noise_rules_match_the_path() -> None:
    live = facts({**BASE, "/opt/app/run": Executable("0755", 0, 0, 1, SHA_A)})
    assert diff(facts(BASE), live, Rules.with_extra(["executable:/opt/app/*"])) == []


def test_the_kinds_are_declared_with_meanings() -> None:
    severity = REGISTRY.severity()
    names = ["executable.added", "executable.changed", "executable.setuid", "capability.added"]
    assert all(severity[name] == "high" and SEVERITY[name] == "high" for name in names)
    assert severity["executable.removed"] == severity["capability.removed"] == "low"
    assert all(kind.meaning for fact in (EXECUTABLES, CAPABILITIES) for kind in fact.kinds())


def test_records_round_trip() -> None:
    gathered = facts(BASE, {"/usr/bin/ping": "cap_net_raw=ep"})
    assert Facts.from_dict(gathered.to_dict()) == gathered


# -- the commands, on this machine: a temporary tree, never / ------------------------------


def run(code: str, *roots: str) -> str:
    args = " ".join(shlex.quote(r) for r in roots)
    result = LocalRunner().run(f"sh -c {shlex.quote(code)} phoenix-test {args}")
    assert result.rc == 0, result.stderr
    return result.stdout


def test_the_executables_command_on_a_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    odd = root / "new\nline\\x"
    for path, mode in [(root / "bin/tool", 0o755), (odd, 0o711), (root / "bin/su", 0o4750)]:
        path.write_text(path.name)
        path.chmod(mode)
    (root / "data").write_text("not executable")
    (root / "bin/link").symlink_to("tool")
    inside = root / "bin"  # the same file system as the root: not scanned twice
    found = executables.parse(
        run(executables.script(str(root), (str(inside), str(tmp_path / "no"))))
    )
    assert sorted(found) == sorted(str(p) for p in (root / "bin/tool", odd, root / "bin/su"))
    assert found[str(root / "bin/su")].mode == "4750"
    assert found[str(odd)].sha256 == hashlib.sha256(odd.read_bytes()).hexdigest()


def test_executables_under_the_drift_roots_are_not_hashed_again(tmp_path: Path) -> None:
    """The files fact hashes what is under the roots (given as the section's arguments)."""
    root = tmp_path / "root"
    (root / "usr").mkdir(parents=True)
    (root / "usr/tool").write_text("tool")
    (root / "dropped").write_text("dropped")
    for path in (root / "usr/tool", root / "dropped"):
        path.chmod(0o755)
    found = executables.parse(run(executables.script(str(root), ()), str(root / "usr")))
    assert sorted(found) == [str(root / "dropped"), str(root / "usr/tool")]
    assert found[str(root / "usr/tool")].sha256 is None  # in the files fact
    assert found[str(root / "dropped")].sha256 == hashlib.sha256(b"dropped").hexdigest()


def test_the_executables_command_scans_another_file_system_given(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no /dev/shm on another file system than the temporary directory")
    other = shm / f"phoenix-test-{os.getpid()}"
    other.mkdir()
    try:
        (other / "x").write_text("x")
        (other / "x").chmod(0o700)
        found = executables.parse(run(executables.script(str(tmp_path), (str(other),))))
        assert list(found) == [str(other / "x")]
    finally:
        shutil.rmtree(other)


def test_the_capabilities_command_on_a_tree(tmp_path: Path) -> None:
    if shutil.which("getcap") is None:
        pytest.skip("getcap (libcap2-bin) is not installed here")
    (tmp_path / "plain").write_text("x")
    weird = tmp_path / "new\nline"
    weird.write_text("x")
    text = run(capabilities.script(str(tmp_path), ()))
    assert capabilities.parse(text) == {}
    setcap = shutil.which("setcap")
    granted = setcap and all(
        subprocess.run([setcap, "cap_net_raw=ep", str(p)], capture_output=True).returncode == 0
        for p in (tmp_path / "plain", weird)
    )
    if not granted:
        pytest.skip("setcap needs CAP_SETFCAP")
    found = capabilities.parse(run(capabilities.script(str(tmp_path), ())))
    assert found == {str(tmp_path / "plain"): "cap_net_raw=ep", str(weird): "cap_net_raw=ep"}


def _setcap(*paths: Path, caps: str = "cap_net_raw=ep") -> None:
    setcap = shutil.which("setcap")
    if shutil.which("getcap") is None or setcap is None:
        pytest.skip("getcap and setcap (libcap2-bin) are not installed here")
    for path in paths:
        if subprocess.run([setcap, caps, str(path)], capture_output=True).returncode != 0:
            pytest.skip("setcap needs CAP_SETFCAP")


def test_a_server_of_a_known_image_is_read_only_where_it_changed(tmp_path: Path) -> None:
    """Given the first start and the image's paths, the command reads the files changed since,
    and those of the image's paths unchanged since: the same facts as a read of every file."""
    kept, plain, gone, lost = (tmp_path / n for n in ("kept", "plain", "gone", "lost"))
    for path in (kept, plain, gone, lost):
        path.write_text("x")
    _setcap(kept, gone, lost)
    last = os.stat(lost).st_ctime_ns  # the first start: not before any of them
    settled = f"{last // 10**9}.{last % 10**9:09d}"
    added, odd = tmp_path / "added", tmp_path / "new\nline"
    for path in (added, odd):
        path.write_text("x")
    deadline = time.monotonic() + 5
    while min(os.stat(p).st_ctime_ns for p in (added, odd)) <= last:  # the clock ticks coarsely
        assert time.monotonic() < deadline, "the clock did not move"
        for path in (added, odd):
            path.chmod(0o644)
    _setcap(added, odd)
    gone.unlink()
    subprocess.run(["setcap", "-r", str(lost)], check=True)
    image = capabilities.image_paths(dict.fromkeys(map(str, (kept, gone, lost)), "cap_net_raw=ep"))
    assert image is not None
    code = capabilities.script(str(tmp_path), ())
    everything = capabilities.parse(run(code))
    assert everything == dict.fromkeys(map(str, (added, kept, odd)), "cap_net_raw=ep")
    assert capabilities.parse(run(code, settled, image)) == everything
    # a file unchanged since the first start is taken as the image's paths have it: unread
    unlisted = capabilities.image_paths({str(gone): "cap_net_raw=ep"})
    assert unlisted is not None
    changed = dict.fromkeys(map(str, (added, odd)), "cap_net_raw=ep")
    assert capabilities.parse(run(code, settled, unlisted)) == changed
    # without a first start, or in a deep scan (no image's paths), every file is read
    assert capabilities.parse(run(code, "", image)) == everything
    assert capabilities.parse(run(code, settled, "")) == everything


def test_the_image_paths_cannot_hold_a_newline() -> None:
    assert capabilities.image_paths({"/a": "x", "/b": "y"}) == "#image\n/a\n/b"
    assert capabilities.image_paths({}) == "#image"
    assert capabilities.image_paths({"/a\nb": "x"}) is None
    many = {f"/usr/bin/{i:08d}": "cap_net_raw=ep" for i in range(10_000)}  # ~190 KB
    assert capabilities.image_paths(many) is None


def test_the_capabilities_command_without_a_temporary_file_walks_twice(tmp_path: Path) -> None:
    plain, odd = tmp_path / "plain", tmp_path / "new\nline"
    for path in (plain, odd, tmp_path / "none"):
        path.write_text("x")
    _setcap(plain, odd)
    code = capabilities.script(str(tmp_path), ())
    result = LocalRunner().run(f"TMPDIR={tmp_path}/missing sh -c {shlex.quote(code)} phoenix-test")
    assert result.rc == 0, result.stderr
    assert capabilities.parse(result.stdout) == capabilities.parse(run(code))
    assert capabilities.parse(result.stdout) == dict.fromkeys(
        [str(odd), str(plain)], "cap_net_raw=ep"
    )


def test_the_capabilities_command_without_getfattr_says_so(tmp_path: Path) -> None:
    if shutil.which("getcap") is None:
        pytest.skip("getcap (libcap2-bin) is not installed here")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("find", "xargs", "getcap", "tr", "sed", "sh"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    code = capabilities.script(str(tmp_path / "bin"), ())
    result = LocalRunner().run(f"PATH={bin_dir} sh -c {shlex.quote(code)} phoenix-test")
    assert result.rc == 0, result.stderr
    assert "#getfattr missing\n" in result.stdout and "getfattr not found" in result.stderr
    assert capabilities.parse(result.stdout) == {}


def test_the_commands_scan_the_root_file_system() -> None:
    devices = "$(find / /dev/shm /run /tmp /var/tmp -maxdepth 0 -type d -printf '%D %p\\n'"
    assert executables.COMMAND.startswith("sh -c ") and devices in executables.SCRIPT
    assert "getcap" in capabilities.SCRIPT and devices in capabilities.SCRIPT


def test_the_starting_points_are_the_root_and_the_extra_roots_on_other_devices(
    tmp_path: Path,
) -> None:
    """One find reads every device: an extra root on the root's device is under the root, one
    that is missing or a link is not a starting point; a root that cannot be read is exit 3."""
    (tmp_path / "same").mkdir()
    (tmp_path / "link").symlink_to("/dev/shm")
    extra = [str(tmp_path / "same"), "/dev/shm", str(tmp_path / "link"), "/phoenix-missing"]
    shm = os.stat("/dev/shm").st_dev != os.stat(tmp_path).st_dev
    code = executables.roots(str(tmp_path), extra) + 'printf "%s" "$starts"'
    run = subprocess.run(["sh", "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == f"{tmp_path}" + (" /dev/shm" if shm else "")
    code = executables.roots(str(tmp_path / "missing"), extra)
    assert subprocess.run(["sh", "-c", code], capture_output=True).returncode == 3


def test_the_section_passes_the_drift_roots_on_to_its_shell() -> None:
    assert executables.COMMAND.endswith(' phoenix-executables "$@"')
