"""The operator's SSH key pair, kept in the state directory (private key mode 0600)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from phoenix.atomic import write_atomic


@dataclass(frozen=True)
class OperatorKey:
    private_path: Path
    public_line: str  # "ssh-ed25519 AAAA... phoenix-operator"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_line)


def key_path(home: Path) -> Path:
    return home / "ssh" / "id_ed25519"


def load(home: Path) -> OperatorKey | None:
    path = key_path(home)
    pub = path.with_suffix(".pub")
    if not (path.exists() and pub.exists()):
        return None
    return OperatorKey(path, pub.read_text().strip())


def ensure(home: Path) -> tuple[OperatorKey, bool]:
    """Load the operator key, making it first if needed; the flag says whether it was made now."""
    existing = load(home)
    if existing:
        if existing.private_path.stat().st_mode & 0o077:
            existing.private_path.chmod(0o600)
        return existing, False
    path = key_path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    from cryptography.hazmat.primitives import serialization  # here: slow to import
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    line = public.decode() + " phoenix-operator"
    path.with_suffix(".pub").write_text(line + "\n")
    write_atomic(path, private, mode=0o600)  # the private key appears whole, after its public half
    return OperatorKey(path, line), True


def fingerprint(public_line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line."""
    blob = base64.b64decode(public_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"
