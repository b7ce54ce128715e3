"""The one-round-trip script: its sections, split out of recorded, hand-made and local outputs."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

import phoenix.facts as facts_mod
import phoenix.facts.capabilities as capabilities
import phoenix.facts.executables as executables
from phoenix.facts import cache, cron, files, ports, script, services, ssh_keys, sysctl, users
from phoenix.facts.registry import REGISTRY, Registry
from tests.unit.facts.fakes import (
    EMPTY_SECTIONS,
    RECORDED_SCRIPT,
    LocalRunner,
    cases,
    expected,
    output,
    scanning,
    script_output,
    script_stderr,
)

AREAS = {  # section -> the recording of its own command, for the same server
    "users": "users",
    "groups": "groups",
    "ssh_keys": "ssh_keys",
    "cron": "cron",
    "timers": "timers",
    "ports": "ports",
    "sysctl": "sysctl",
}


def test_sections_are_in_the_order_gather_expects() -> None:
    assert list(script.SECTIONS) == list(EMPTY_SECTIONS)
    assert script.SECTIONS["ports"] == ports.COMMAND
    assert script.SECTIONS["users"] == users.COMMAND
    assert script.SECTIONS["timers"] == cron.TIMERS_COMMAND


@pytest.mark.parametrize("case", cases("script"))
def test_recorded_run_splits_into_what_each_command_printed_alone(case: str) -> None:
    want = expected(f"script/{case}.json")
    sections = RECORDED_SCRIPT.split(output(f"script/{case}.out"), want["stderr"])
    assert {name: s.rc for name, s in sections.items()} == want["codes"]
    for name, area in AREAS.items():
        alone = output(f"{area}/{case}.out")
        # a section is captured by $(...), which drops the trailing newlines
        assert sections[name].stdout == alone.rstrip("\n"), name


def test_recorded_run_keeps_the_files_section_byte_for_byte() -> None:
    sections = RECORDED_SCRIPT.split(output("script/bookworm-minbase.out"))
    assert sections["files"].stdout == output("files/bookworm-etc.out")
    assert sections["packages"].stdout + "\n" == output("packages/bookworm-minbase.out")
    assert sections["services"].stdout + "\n" == output("services/bookworm-minbase.out")


def test_recorded_stderr_goes_to_the_section_that_wrote_it() -> None:
    want = expected("script/bookworm-minbase.json")
    sections = RECORDED_SCRIPT.split(output("script/bookworm-minbase.out"), want["stderr"])
    assert "autovt@.service" in sections["services"].stderr
    assert all(not s.stderr for name, s in sections.items() if name != "services")


def test_hand_made_sections_with_their_codes() -> None:
    stdout = script_output(
        files=(3, ""),
        packages=(127, ""),
        users=(0, "root:x:0:0:root:/root:/bin/sh"),
        ports=(127, ""),
    )
    stderr = script_stderr(
        files="phoenix needs GNU find\n", packages="sh: 1: dpkg-query: not found\n"
    )
    sections = script.split(stdout, "banner before any marker\n" + stderr)
    assert (sections["files"].rc, sections["files"].stdout) == (3, "")
    assert sections["files"].stderr == "phoenix needs GNU find\n"
    assert (sections["packages"].rc, sections["packages"].stderr) == (
        127,
        "sh: 1: dpkg-query: not found\n",
    )
    assert sections["users"].stdout == "root:x:0:0:root:/root:/bin/sh"
    assert sections["ports"].rc == 127 and sections["sysctl"].rc == 0


def test_a_link_target_that_looks_like_a_marker_stays_in_the_files_section() -> None:
    record = "l 777 0 0 16 1.0 2.0 9\0root\0root\0/etc/l\0#section files 0\0"
    files_text = record + "#sha256\0#end 0 0\0"
    sections = script.split(script_output(files=(0, files_text)))
    assert sections["files"].stdout == files_text
    assert files.parse(sections["files"].stdout).files["/etc/l"].target == "#section files 0"


def test_a_files_section_cut_short_still_splits() -> None:
    sections = script.split(script_output(files=(143, "f 644 0 0 3 1.0 2.0 7\0ro")))
    assert (sections["files"].rc, sections["files"].stdout) == (143, "f 644 0 0 3 1.0 2.0 7\0ro")


MALFORMED: list[tuple[str, str]] = [
    ("empty", ""),
    ("no final NUL", script_output()[:-1]),
    ("the last section missing", script_output().rsplit("#section sysctl", 1)[0]),
    ("only the files section", "#sha256\0#end 0 0\0\0#section files 0\0"),
    (
        "a code that is not a number",
        script_output().replace("#section ports 0", "#section ports x"),
    ),
    ("sections swapped", script_output().replace("section ports", "section timerz")),
    ("a NUL inside a section", script_output(cron=(0, "/etc/crontab\0=x"))),
]


@pytest.mark.parametrize("text", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_output_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        script.split(text)


# -- the script itself, run on this machine (dash, GNU tools, like the servers) -------------


def test_script_on_this_machine_agrees_with_each_command_run_alone(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a\n")
    run = script.of(scanning(tmp_path))  # the script, but its scans of / scan tmp_path instead
    result = LocalRunner().run(
        run.command, *script.UNCACHED, str(tmp_path), "/phoenix-no-such-root"
    )
    assert result.rc == 0, result.stderr
    sections = run.split(result.stdout, result.stderr)
    assert sections["files"].rc == 0
    assert files.parse(sections["files"].stdout).files == files.gather(
        LocalRunner(), [str(tmp_path)]
    )
    for name, command, parse in [
        ("users", users.COMMAND, users.parse),
        ("groups", users.GROUPS_COMMAND, users.parse_groups),
        ("ssh_keys", ssh_keys.COMMAND, ssh_keys.parse),
        ("cron", cron.COMMAND, cron.parse),
        ("sysctl", sysctl.COMMAND, sysctl.parse),
    ]:
        assert sections[name].rc == 0, (name, sections[name].stderr)
        assert parse(sections[name].stdout) == parse(LocalRunner().run(command).stdout), name


def test_script_without_any_tool_still_reports_every_section(tmp_path: Path) -> None:
    """With an empty PATH only the shell's builtins work: each section fails on its own."""
    result = LocalRunner().run(
        f"env PATH={tmp_path} /bin/{script.COMMAND}", *script.UNCACHED, "/etc"
    )
    assert result.rc == 0, result.stderr
    sections = script.split(result.stdout, result.stderr)
    assert sections["files"].rc == 3 and "GNU find" in sections["files"].stderr
    for name in ("packages", "services", "users", "groups", "timers", "ports", "sysctl"):
        assert sections[name].rc == 127, name
        assert "not found" in sections[name].stderr, name
    for name in ("manager_env", "mounts"):
        assert sections[name].rc == 127, name
    for name in ("transient", "processes_deleted", "processes_outside"):  # builtins, or a pipe
        assert (sections[name].rc, sections[name].stdout) == (0, ""), name


def test_the_unit_files_used_come_last_for_the_next_scan() -> None:
    units = "ssh.service enabled enabled\napt-daily.timer enabled enabled"
    fingerprint = "0123456789abcdef0123456789abcdef"
    stdout = script_output() + f"#section units 0\0{fingerprint}\n{units}\0"
    sections = script.split(stdout)
    assert sections["units"].stdout == f"{fingerprint}\n{units}"
    assert sections["sysctl"].rc == 0
    assert facts_mod._units(sections) == (fingerprint, units)
    assert "units" not in script.split(script_output())  # an older script's output
    failed = script.split(script_output(services=(1, "")) + f"#section units 0\0{fingerprint}\n\0")
    assert facts_mod._units(failed) is None  # nothing to reuse: the next scan asks systemd


def _tools(tmp_path: Path, **scripts: str) -> str:
    """A PATH whose first directory holds these tools (name -> sh code), then this machine's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, code in scripts.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{code}\n")
        tool.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def test_sections_run_at_once_print_what_they_print_one_after_another(tmp_path: Path) -> None:
    """The sections run in the background, each into its own files, then are written in order:
    the same bytes as the sequential run (the one without mktemp), stderr and exit codes too."""
    (tmp_path / "a").write_text("a\n")
    steady = ("users", "groups", "ssh_keys", "cron", "timers")  # the same in two runs here
    run = script.of(Registry(tuple(fact for fact in REGISTRY if fact.name in steady)))
    path = _tools(tmp_path, mktemp="exit 1")
    args = (*script.UNCACHED, str(tmp_path))
    at_once = LocalRunner().run(run.command, *args)
    in_turn = LocalRunner().run(f"env PATH={path} {run.command}", *args)
    assert at_once.rc == in_turn.rc == 0, in_turn.stderr
    assert at_once.stderr == in_turn.stderr
    # the files section lists by root only with a temporary directory: the same files
    first, then = run.split(at_once.stdout), run.split(in_turn.stdout)
    assert files.parse(first["files"].stdout, roots=[str(tmp_path)]).files == (
        files.parse(then["files"].stdout, roots=[str(tmp_path)]).files
    )
    assert "#listing " in first["files"].stdout and "#listing " not in then["files"].stdout
    assert (
        at_once.stdout.partition("#section files 0")[2]
        == (in_turn.stdout.partition("#section files 0")[2])
    )
    assert list(run.split(at_once.stdout, at_once.stderr)) == [*run.sections, "units"]


def test_unit_files_are_asked_once_and_only_those_of_services_and_timers(tmp_path: Path) -> None:
    """Services and timers start once the unit file states are known, and reuse them; the name
    patterns make systemd work out the state of those units' files only."""
    log = tmp_path / "calls"
    systemctl = f"""echo "$*" >>{log}
case $1 in
  list-unit-files) printf 'ssh.service enabled enabled\\napt-daily.timer enabled enabled\\n' ;;
esac"""
    path = _tools(tmp_path, systemctl=systemctl)
    run = script.of(scanning(tmp_path))
    result = LocalRunner().run(f"env PATH={path} {run.command}", *script.UNCACHED, str(tmp_path))
    sections = run.split(result.stdout, result.stderr)
    calls = log.read_text().splitlines()
    unit_files = [call for call in calls if call.startswith("list-unit-files")]
    assert unit_files == [
        "list-unit-files --type=service,timer --no-legend --no-pager *.service *.timer"
    ]
    assert sections["timers"].stdout == "apt-daily.timer enabled enabled"
    assert sections["services"].stdout.startswith("ssh.service enabled enabled\n--\n")


def test_the_aliases_are_kept_with_the_unit_files_and_not_asked_again(tmp_path: Path) -> None:
    """While the unit files' fingerprint is the same, the aliases are the ones in the last units
    record: `systemctl show` is not run again, and services print the same."""
    log = tmp_path / "calls"
    systemctl = f"""echo "$*" >>{log}
case $1 in
  list-unit-files) printf 'ssh.service enabled enabled\\nsshd.service alias -\\n' ;;
  list-units) printf 'ssh.service loaded active running OpenSSH\\n' ;;
  show) printf 'ssh.service\\n' ;;
esac"""
    path = _tools(tmp_path, systemctl=systemctl)
    run = script.of(scanning(tmp_path))
    command = f"env PATH={path} {run.command}"
    first = run.split(LocalRunner().run(command, *script.UNCACHED, str(tmp_path)).stdout)
    units = facts_mod._units(first)
    assert units is not None and units[1].endswith("\n#aliases\nsshd.service ssh.service")
    assert sum(call.startswith("show ") for call in log.read_text().splitlines()) == 1
    known = script.known_args(units)
    assert known == (units[0], "ssh.service enabled enabled\nsshd.service alias -",
                     "#aliases\nsshd.service ssh.service")  # fmt: skip
    again = run.split(LocalRunner().run(command, *known, "", "", "", str(tmp_path)).stdout)
    assert sum(call.startswith("show ") for call in log.read_text().splitlines()) == 1
    assert again["services"].stdout == first["services"].stdout
    assert services.parse(again["services"].stdout)["sshd.service"].active == "active"
    assert facts_mod._units(again) == units
    # an older record, without the aliases: they are asked of systemd
    older = run.split(LocalRunner().run(command, *known[:2], "", "", "", "", str(tmp_path)).stdout)
    assert sum(call.startswith("show ") for call in log.read_text().splitlines()) == 2
    assert older["services"].stdout == first["services"].stdout


def test_the_known_arguments_of_a_units_record() -> None:
    assert script.known_args(None) == ("", "", "")
    assert script.known_args(("f" * 32, "a.service enabled -")) == (
        "f" * 32,
        "a.service enabled -",
        "",
    )
    assert script.known_args(("f" * 32, "a.service alias -\n#aliases\n")) == (
        "f" * 32, "a.service alias -", "#aliases\n"
    )  # fmt: skip


def test_capabilities_read_the_files_the_executables_walk_found_changed(tmp_path: Path) -> None:
    """Given the first start and the image's capabilities, the executables section's walk of /
    writes the files changed since, and the capabilities section, run after it, reads those
    instead of walking / again: the same facts."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "image").write_text("x")
    last = os.stat(root / "image").st_ctime_ns
    settled = f"{last // 10**9}.{last % 10**9:09d}"
    tool = root / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    deadline = time.monotonic() + 5
    while os.stat(tool).st_ctime_ns <= last:  # the kernel's clock ticks coarsely
        assert time.monotonic() < deadline, "the clock did not move"
        tool.chmod(0o755)
    setcap = shutil.which("setcap")
    capped = (
        setcap is not None
        and subprocess.run([setcap, "cap_net_raw=ep", str(tool)], capture_output=True).returncode
        == 0
    )
    walks = tmp_path / "walks"
    path = (
        _tools(tmp_path, find=f'echo "$*" >>{walks}; exec /usr/bin/find "$@"') + ":/usr/sbin:/sbin"
    )
    local = {
        "executables": f"sh -c {shlex.quote(executables.script(str(root), ()))} phoenix-test",
        "capabilities": f"sh -c {shlex.quote(capabilities.script(str(root), ()))} phoenix-test"
        + capabilities.ARGS,
    }
    both = Registry(tuple(replace(f, command=local[f.name]) for f in REGISTRY if f.name in local))
    run = script.of(both)
    image = capabilities.image_paths({})
    assert image is not None
    args = ("", "", "", settled, "", image, str(tmp_path / "none"))
    walked = run.split(LocalRunner().run(f"env PATH={path} {run.command}", *args).stdout)
    assert walked["executables"].rc == walked["capabilities"].rc == 0
    assert list(executables.parse(walked["executables"].stdout)) == [str(tool)]
    finds = [line for line in walks.read_text().splitlines() if "-newerct" in line]
    own = [line for line in finds if not line.startswith(cache.UNIT_DIRS[0])]  # not the units'
    assert len(own) == 1 and "-perm" in own[0]  # the executables walk only
    full = run.split(
        LocalRunner()
        .run(f"env PATH={path} {run.command}", *script.UNCACHED, str(tmp_path / "none"))
        .stdout
    )
    found = capabilities.parse(walked["capabilities"].stdout)
    assert found == capabilities.parse(full["capabilities"].stdout)
    assert found == ({str(tool): "cap_net_raw=ep"} if capped else {})
