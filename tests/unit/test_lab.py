"""The lab's steps against a fake LXD: idempotence, repair, refusal, purge."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from pylxd.exceptions import LXDAPIException, NotFound

from phoenix.config import LabConfig
from phoenix.errors import LabError, LXDError, MissingPackages
from phoenix.events import Event, Outcome
from phoenix.host import process
from phoenix.image.registry import Registry
from phoenix.lab import base, project
from phoenix.lab import lab as labmod
from phoenix.lab import lxd as lxdmod
from phoenix.lab.lab import Lab
from phoenix.lab.lxd import FLEET_KEY, Image, Instance
from phoenix.state import Store
from tests.unit.fakes import FakeLXD

CFG = LabConfig()


@pytest.fixture(autouse=True)
def _packages_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "has_command", lambda name: True)


def base_image() -> Image:
    recipe = base.recipe_hash(CFG.release)
    return Image(
        fingerprint="f" * 64,
        aliases=[CFG.base_image],
        properties={"phoenix.recipe": recipe},
        size=1 << 27,
        created_at="now",
    )


def make_lab(tmp_path: Path, fake: FakeLXD, events: list[Event] | None = None) -> Lab:
    sink = events.append if events is not None else (lambda e: None)
    lab = Lab(CFG, tmp_path / "home", emit=sink, lxd=cast(Any, fake))
    lab.sysctl_root = tmp_path / "sys"
    lab.lxd_dir = tmp_path / "lxd"  # none: nothing to make traversable
    for key in labmod.HOST_LIMITS:
        path = lab.sysctl_root / key.replace(".", "/")
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("128\n")
    return lab


def test_directories_a_daemon_made_under_umask_077_are_made_traversable(tmp_path: Path) -> None:
    lxd_dir = tmp_path / "lxd"
    private = [
        lxd_dir / "containers",
        lxd_dir / "storage-pools",
        lxd_dir / "storage-pools/p/containers",
    ]
    for path in private:
        path.mkdir(parents=True, exist_ok=True)
    for path in private:
        path.chmod(0o700)
    (lxd_dir / "storage-pools/p/images").mkdir()
    (lxd_dir / "storage-pools/p/images").chmod(0o700)
    assert labmod.traversable(lxd_dir) == private
    assert all(p.stat().st_mode & 0o777 == 0o711 for p in private)
    assert (lxd_dir / "storage-pools/p/images").stat().st_mode & 0o777 == 0o700  # not on the way
    assert labmod.traversable(lxd_dir) == []  # once


def test_up_repairs_the_modes_of_a_running_daemon(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()], is_running=True)
    lab = make_lab(tmp_path, fake)
    (lab.lxd_dir / "containers").mkdir(parents=True)
    (lab.lxd_dir / "containers").chmod(0o700)
    daemon = lab.up()[0]
    assert daemon.outcome is Outcome.DONE and "made traversable" in daemon.detail


def test_a_directory_it_cannot_change_is_a_lab_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = make_lab(tmp_path, FakeLXD(image_list=[base_image()], is_running=True))
    (lab.lxd_dir / "containers").mkdir(parents=True)
    (lab.lxd_dir / "containers").chmod(0o700)

    def refused(self: Path, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "chmod", refused)
    with pytest.raises(LabError, match=r"cannot give containers access to .*containers"):
        lab.up()


def test_up_on_nothing_does_every_step_then_nothing(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    events: list[Event] = []
    first = make_lab(tmp_path, fake, events).up()
    assert [r.step for r in first if r.outcome is Outcome.DONE] == [
        "daemon", "limits", "settings", "pool", "network", "build-network", "profiles", "ssh-key",
        "project",
    ]  # fmt: skip
    assert fake.pools[CFG.pool]["driver"] == "btrfs"
    assert fake.networks[CFG.network]["ipv4.nat"] == "false"
    assert fake.networks[CFG.build_network]["ipv4.nat"] == "true"
    assert fake.profiles["default"]["eth0"]["network"] == CFG.network
    assert fake.profiles[labmod.BUILD_PROFILE]["eth0"]["network"] == CFG.build_network
    assert len(events) == 2 * len(first)

    project = (tmp_path / "home" / "lxd-project").read_text().strip()
    assert project.startswith("phoenix-")
    assert fake.in_project(project).image(CFG.base_image) == base_image()

    second = make_lab(tmp_path, fake).up()
    assert all(r.outcome is Outcome.UNCHANGED for r in second)
    assert fake.calls == [
        "start",
        f"create project {project}",
        f"copy {CFG.base_image} to {project}",
    ]


def test_each_workspace_has_its_own_project_and_the_base_image_follows(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    one = make_lab(tmp_path / "one", fake)
    two = make_lab(tmp_path / "two", fake)
    one.up()
    two.up()
    assert one.project.name != two.project.name
    assert set(fake.projects()) == {"default", one.project.name, two.project.name}
    assert make_lab(tmp_path / "one", fake).project == one.project  # kept in the state directory
    rebuilt = Image(
        fingerprint="e" * 64,
        aliases=[CFG.base_image],
        properties=base_image().properties,
        size=1 << 27,
        created_at="later",
    )
    fake.image_list = [rebuilt]  # `lab up` built a new base image
    one.up()
    assert fake.in_project(one.project.name).image(CFG.base_image) == rebuilt


def test_a_state_directory_from_before_projects_stays_in_the_default_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Store.open(home) as store:
        Registry(store).begin("web", "t", {"template": "t"}, None, "f" * 64, home / "logs")
    fake = FakeLXD(image_list=[base_image()])
    lab = make_lab(tmp_path, fake)
    assert lab.project.name == "default"
    lab.up()
    assert set(fake.projects()) == {"default"}


def test_operator_key_is_private(tmp_path: Path) -> None:
    make_lab(tmp_path, FakeLXD(image_list=[base_image()])).up()
    key = tmp_path / "home" / "ssh" / "id_ed25519"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "home" / "ssh" / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")


def test_up_repairs_only_what_is_missing(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    make_lab(tmp_path, fake).up()
    fake.is_running = False
    del fake.networks[CFG.build_network]
    fake.profiles["default"] = {}
    again = make_lab(tmp_path, fake).up()
    done = {r.step for r in again if r.outcome is Outcome.DONE}
    assert done == {"daemon", "build-network", "profiles"}


def test_network_with_another_subnet_is_refused(tmp_path: Path) -> None:
    fake = FakeLXD(is_running=True, networks={CFG.network: {"ipv4.address": "10.99.0.1/24"}})
    with pytest.raises(LabError, match=r"10\.99\.0\.1/24.*10\.213\.0\.1/24"):
        make_lab(tmp_path, fake).up()


def test_missing_packages_name_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "has_command", lambda name: name not in {"mkfs.btrfs", "lxd"})
    with pytest.raises(MissingPackages) as caught:
        make_lab(tmp_path, FakeLXD()).up()
    assert caught.value.message == "missing Debian packages: btrfs-progs, lxd"
    assert "apt-get install -y btrfs-progs lxd" in str(caught.value.hint)


def test_status_when_daemon_down(tmp_path: Path) -> None:
    report = make_lab(tmp_path, FakeLXD()).status()
    assert not report.up
    assert {c.name: c.ok for c in report.components}["daemon"] is False


def test_down_purge_removes_everything(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    the_lab = make_lab(tmp_path, fake)
    the_lab.up()
    fake.instance_list = [server("web-1", {FLEET_KEY: "web"}), server("phoenix-bake-web-v001")]
    ours = fake.in_project(the_lab.project.name)
    ours.instance_list = [server("web-g1-1", {FLEET_KEY: "web"})]
    the_lab.down(purge=True)
    assert not fake.instance_list and not fake.image_list and not ours.instance_list
    assert set(fake.projects()) == {"default"}
    assert not fake.pools and not fake.networks
    assert fake.profiles == {"default": {}}
    assert not fake.is_running
    assert not (tmp_path / "home").exists()


def server(name: str, config: dict[str, str] | None = None) -> Instance:
    return Instance(
        name=name, status="Running", address="10.213.0.5", image="x", config=config or {}
    )


def test_purge_leaves_what_is_not_phoenixs_and_the_pool_they_use(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    the_lab = make_lab(tmp_path, fake)
    the_lab.up()
    theirs = Image(fingerprint="a" * 64, aliases=["web-v001"], properties={}, size=1, created_at="")
    fake.instance_list = [server("web-1", {FLEET_KEY: "web"}), server("their-db")]
    fake.image_list.append(theirs)  # an alias like phoenix's tags, not recorded by this workspace
    fake.create_project("other-tool", "someone else's", {})
    other = fake.in_project("other-tool")
    other.instance_list = [server("web-g1-1", {FLEET_KEY: "web"})]  # looks like ours: not ours
    other.image_list = [base_image()]
    events: list[Event] = []
    the_lab.emit = events.append
    results = {r.step: r for r in the_lab.down(purge=True)}
    assert [i.name for i in fake.instance_list] == ["their-db"] and fake.image_list == [theirs]
    assert [i.name for i in other.instance_list] == ["web-g1-1"] and other.image_list
    assert set(fake.projects()) == {"default", "other-tool"}
    assert CFG.pool in fake.pools and CFG.network in fake.networks
    assert fake.profiles["default"]  # the profile their instances use is kept
    detail = results["purge"].detail
    assert "removed 1 server(s), 2 image(s)" in detail  # web-1, the base image and its copy
    assert (
        "kept pool" in detail and "default/their-db" in detail and "other-tool/web-g1-1" in detail
    )


def test_a_legacy_workspace_purges_the_servers_and_images_its_store_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Store.open(home) as store:
        Registry(store).begin("web", "t", {"template": "t"}, None, "f" * 64, home / "logs")
    fake = FakeLXD(image_list=[base_image()])
    the_lab = make_lab(tmp_path, fake)
    the_lab.up()
    assert the_lab.project.name == "default"
    tag = Image(fingerprint="b" * 64, aliases=["web-v001"], properties={}, size=1, created_at="")
    fake.image_list.append(tag)
    fake.instance_list = [server("their-db")]
    the_lab.down(purge=True)
    assert fake.image_list == [] and [i.name for i in fake.instance_list] == ["their-db"]
    assert CFG.pool in fake.pools


def test_identity_is_stripped(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc" / "ssh").mkdir(parents=True)
    (rootfs / "etc" / "ssh" / "ssh_host_ed25519_key").write_text("secret")
    (rootfs / "etc" / "hostname").write_text("buildhost\n")
    (rootfs / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    base.strip_identity(rootfs)
    assert not list((rootfs / "etc" / "ssh").glob("ssh_host_*"))
    assert not (rootfs / "etc" / "hostname").exists()
    assert (rootfs / "etc" / "machine-id").read_text() == ""
    dropin = rootfs / "etc/systemd/system/ssh.service.d/hostkeys.conf"
    assert "ssh-keygen -q -t ed25519" in dropin.read_text()
    keys = rootfs / "root" / ".ssh" / "authorized_keys"  # LXD writes the key in it: KEY_TEMPLATE
    assert keys.read_text() == "" and keys.stat().st_mode & 0o777 == 0o600
    assert keys.parent.stat().st_mode & 0o777 == 0o700


def test_the_base_image_writes_the_operators_key_from_the_instance_config(tmp_path: Path) -> None:
    """The key template is in the image's metadata, applied when an instance is created or
    copied (not `create_only`: an image built from the base holds an empty file)."""
    tarball = base.write_metadata(tmp_path, "bookworm", "r")
    listed = subprocess.run(["tar", "-xOf", str(tarball), "metadata.yaml"], capture_output=True)
    metadata = json.loads(listed.stdout)
    entry = metadata["templates"][base.AUTHORIZED_KEYS]
    assert entry == {"when": ["create", "copy"], "template": base.KEY_TEMPLATE[0]}
    name, text = base.KEY_TEMPLATE
    assert (tmp_path / "meta" / "templates" / name).read_text() == text
    assert f'config_get("{base.KEY_CONFIG}", "")' in text


def test_bridges_register_no_server_names_so_two_workspaces_may_share_one(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    make_lab(tmp_path, fake).up()
    assert fake.networks[CFG.network]["dns.mode"] == "none"
    assert fake.networks[CFG.build_network]["dns.mode"] == "none"
    del fake.networks[CFG.network]["dns.mode"]  # a lab made before workspaces had projects
    again = {r.step: r.outcome for r in make_lab(tmp_path, fake).up()}
    assert again["network"] is Outcome.DONE and again["build-network"] is Outcome.UNCHANGED
    assert fake.networks[CFG.network]["dns.mode"] == "none"


def test_status_of_a_workspace_whose_project_is_not_made_yet(tmp_path: Path) -> None:
    fake = FakeLXD(image_list=[base_image()])
    make_lab(tmp_path / "one", fake).up()
    status = make_lab(tmp_path / "new", fake).status()  # the lab is up, this workspace is new
    project = next(c for c in status.components if c.name == "project")
    assert not project.ok and "phoenix lab up" in project.detail
    assert status.servers == []


def test_two_first_commands_agree_on_one_project_name(tmp_path: Path) -> None:
    path = tmp_path / "home" / project.NAME_FILE
    project._name_once(path, "phoenix-first")
    project._name_once(path, "phoenix-second")  # a second process that also found no name
    assert path.read_text() == "phoenix-first\n"
    assert project.of(tmp_path / "home").name == "phoenix-first"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


class _Answer:
    """An LXD error answer as pylxd reads it."""

    status_code = 500
    content = b""

    def __init__(self, error: str) -> None:
        self.error = error

    def json(self) -> dict[str, str]:
        return {"type": "error", "error": self.error}


class _FlakyFiles:
    """A new instance's files API whose helper is missing for its first `misses` calls."""

    def __init__(self, misses: int) -> None:
        self.misses = misses
        self.written: list[str] = []

    def mk_dir(self, path: str, **_: object) -> None:
        self._call()
        raise LXDAPIException(_Answer("file exists"))  # every directory exists already

    def put(self, path: str, data: bytes, **_: object) -> None:
        self._call()
        self.written.append(path)

    def _call(self) -> None:
        if self.misses:
            self.misses -= 1
            raise LXDAPIException(
                _Answer(f"dial unix /proc/self/fd/87/{lxdmod.FORKFILE}: no such file")
            )


class _Instance:
    def __init__(self, files: _FlakyFiles) -> None:
        self.files = files


def _write(inst: _Instance) -> None:
    lxdmod._mkdirs(inst, "/root/.ssh")
    inst.files.put("/root/.ssh/authorized_keys", b"key")


def test_file_calls_are_tried_again_while_lxds_file_helper_is_missing() -> None:
    files = _FlakyFiles(misses=3)
    inst = _Instance(files)
    lxdmod._again(lambda: _write(inst), timeout=10, transient=lxdmod.FORKFILE)
    assert files.written == ["/root/.ssh/authorized_keys"] and files.misses == 0


def test_file_calls_give_up_at_their_deadline_and_other_errors_at_once() -> None:
    with pytest.raises(LXDAPIException, match="forkfile"):
        lxdmod._again(
            lambda: _write(_Instance(_FlakyFiles(misses=1000))),
            timeout=0.3,
            transient=lxdmod.FORKFILE,
        )
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise LXDAPIException(_Answer("not allowed"))

    with pytest.raises(LXDAPIException, match="not allowed"):
        lxdmod._again(refused, timeout=10, transient=lxdmod.FORKFILE)
    assert calls == [1]


class _Made:
    """pylxd's instances collection, whose new instances' file helpers are missing for good in
    the first `broken` of them."""

    def __init__(self, broken: int) -> None:
        self.broken = broken
        self.made: list[Any] = []
        self.definitions: list[dict[str, Any]] = []
        self.deleted = 0
        made = self

        class Inst:
            def __init__(self, files: _FlakyFiles) -> None:
                self.files = files
                self.started = False

            def delete(self, wait: bool) -> None:
                made.deleted += 1

            def start(self, wait: bool) -> None:
                self.started = True

        self.inst_class = Inst

    def create(self, definition: dict[str, Any], wait: bool) -> Any:
        inst = self.inst_class(_FlakyFiles(misses=10**6 if len(self.made) < self.broken else 0))
        self.made.append(inst)
        self.definitions.append(definition)
        return inst


@pytest.mark.parametrize("broken", [1, 2])
def test_an_instance_whose_file_helper_never_comes_is_made_again_once(
    broken: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lxdmod, "FILES_TIMEOUT", 0.3)
    made = _Made(broken)
    lxd = lxdmod.LXD("p")
    lxd._client = cast(Any, type("Client", (), {"instances": made})())
    files = {"/root/.ssh/authorized_keys": (b"key", 0o600)}
    if broken < lxdmod.CREATE_TRIES:
        lxd.create("web-1", "web-v001", files=files)
        assert [i.files.written for i in made.made] == [[], ["/root/.ssh/authorized_keys"]]
        assert made.deleted == 1 and made.made[-1].started
    else:
        with pytest.raises(LXDError, match="forkfile"):
            lxd.create("web-1", "web-v001", files=files)
        assert len(made.made) == lxdmod.CREATE_TRIES and not made.made[-1].started
        assert made.deleted == lxdmod.CREATE_TRIES  # none left behind


class _Seen:
    """pylxd's instances collection, of one instance with a root disk on pool `phoenix`."""

    def __init__(self, image: str) -> None:
        self.inst = type(
            "Inst",
            (),
            {
                "expanded_devices": {"root": {"type": "disk", "path": "/", "pool": "phoenix"}},
                "config": {"volatile.base_image": image},
            },
        )()

    def exists(self, name: str) -> bool:
        return name == "web-1"

    def get(self, name: str) -> object:
        return self.inst


def test_the_image_volume_a_container_was_made_from_is_found_on_its_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprint = "ab" * 32
    monkeypatch.setattr(lxdmod, "LXD_DIR", tmp_path)
    images = tmp_path / "storage-pools" / "phoenix" / "images"
    (images / fingerprint / "rootfs").mkdir(parents=True)
    (tmp_path / "storage-pools" / "phoenix" / "containers" / "p_web-1" / "rootfs").mkdir(
        parents=True
    )
    lxd = lxdmod.LXD("p")
    lxd._client = cast(Any, type("Client", (), {"instances": _Seen(fingerprint)})())
    assert lxd.image_rootfs("web-1") == images / fingerprint / "rootfs"
    assert lxd.rootfs("web-1") == tmp_path / "storage-pools/phoenix/containers/p_web-1/rootfs"
    assert lxd.image_rootfs("gone") is None
    for odd in ("", "../../etc", "AB" * 32):  # none, or not a fingerprint: no path made of it
        lxd._client = cast(Any, type("Client", (), {"instances": _Seen(odd)})())
        assert lxd.image_rootfs("web-1") is None


class _Busy:
    """pylxd's instances collection, of one stopped instance whose delete is refused while
    another operation runs on it (its first `misses` tries)."""

    def __init__(self, misses: int) -> None:
        self.misses = misses
        self.deleted = False
        busy = self

        class Inst:
            status = "Stopped"

            def delete(self, wait: bool) -> None:
                if busy.misses:
                    busy.misses -= 1
                    raise LXDAPIException(_Answer(f"{lxdmod.BUSY} an operation"))
                busy.deleted = True

        self.inst = Inst()

    def exists(self, name: str) -> bool:
        return not self.deleted

    def get(self, name: str) -> object:
        return self.inst


def test_an_instance_busy_with_another_operation_is_waited_out_then_named() -> None:
    lxd = lxdmod.LXD("p", timeout=5)
    busy = _Busy(misses=2)
    lxd._client = cast(Any, type("Client", (), {"instances": busy})())
    lxd.delete("web-1")
    assert busy.deleted and busy.misses == 0

    lxd = lxdmod.LXD("p", timeout=0.3)
    lxd._client = cast(Any, type("Client", (), {"instances": _Busy(misses=1000)})())
    with pytest.raises(lxdmod.LXDError) as caught:
        lxd.delete("web-1")
    assert "still busy with another operation" in caught.value.message
    assert caught.value.hint and "lxc delete --force web-1" in caught.value.hint


class _Metadata:
    """pylxd's raw API node of an instance's metadata: its templates, and their texts."""

    def __init__(self, templates: dict[str, Any], texts: dict[str, str]) -> None:
        self.templates_seen, self.texts = templates, texts
        self.templates = self

    def get(self, params: dict[str, str] | None = None, is_api: bool = True) -> Any:
        if params is None:
            body = {"metadata": {"templates": self.templates_seen}}
            return type("R", (), {"json": lambda _: body})()
        if params["path"] not in self.texts:
            raise NotFound(_Answer("Template not found"))
        return type("R", (), {"content": self.texts[params["path"]].encode()})()


def _with_metadata(lxd: lxdmod.LXD, node: _Metadata, instances: Any = None) -> None:
    api = type("Api", (), {"instances": {"web-1": type("I", (), {"metadata": node})()}})()
    lxd._client = cast(Any, type("Client", (), {"api": api, "instances": instances})())


KEY_ENTRY = {"when": ["create", "copy"], "template": base.KEY_TEMPLATE[0]}


@pytest.mark.parametrize(
    ("entry", "text", "writes"),
    [
        (KEY_ENTRY, base.KEY_TEMPLATE[1], True),
        (KEY_ENTRY, "ssh-ed25519 AAAA someone-else\n", False),
        (KEY_ENTRY | {"create_only": True}, base.KEY_TEMPLATE[1], False),
        (KEY_ENTRY | {"when": ["start"]}, base.KEY_TEMPLATE[1], False),
        (None, base.KEY_TEMPLATE[1], False),
        (KEY_ENTRY, None, False),
    ],
)
def test_an_instance_writes_the_key_only_from_phoenixs_own_template(
    entry: dict[str, Any] | None, text: str | None, writes: bool
) -> None:
    lxd = lxdmod.LXD("p")
    templates = {base.AUTHORIZED_KEYS: entry} if entry else {}
    texts = {base.KEY_TEMPLATE[0]: text} if text is not None else {}
    _with_metadata(lxd, _Metadata(templates, texts))
    assert lxd.writes_key("web-1") is writes


@pytest.mark.parametrize("writes", [True, False])
def test_a_server_is_given_its_key_in_its_config_and_as_a_file_only_if_its_image_needs_it(
    writes: bool,
) -> None:
    made = _Made(0)
    lxd = lxdmod.LXD("p")
    templates = {base.AUTHORIZED_KEYS: KEY_ENTRY} if writes else {}
    _with_metadata(lxd, _Metadata(templates, {base.KEY_TEMPLATE[0]: base.KEY_TEMPLATE[1]}), made)
    lxd.create("web-1", "web-v001", key="ssh-ed25519 AAAA k")
    assert made.definitions[0]["config"] == {base.KEY_CONFIG: "ssh-ed25519 AAAA k"}
    assert made.made[0].files.written == ([] if writes else [base.AUTHORIZED_KEYS])
    assert made.made[0].started
