"""The lab's own daemon reached as a remote LXD over HTTPS on loopback (the benchmark's and the
tests' set-up, not phoenix's: on a real remote its operator does this once on the server).

`endpoint()` makes the daemon listen on 127.0.0.1:8443 (core.https_address) if it listens
nowhere, makes a client certificate for this run, trusts it (`lxc config trust add`) and yields
the `[lxd]` section of a phoenix.toml that uses it; on the way out it removes the trust and the
address it set.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phoenix.lab.lxd import LXD
from phoenix.lab.remote import fingerprint_of

ADDRESS = "127.0.0.1:8443"


def lxc(*args: str) -> str:
    return subprocess.run(
        ["lxc", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def make_certificate(directory: Path, name: str, days: float = 30) -> tuple[Path, Path]:
    """A client certificate and key (EC P-384, as lxc makes them) valid from now for `days`
    (a negative `days` gives one that has expired)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(days=1 + max(0.0, -days))
    not_after = now + datetime.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA384())
    )
    crt, pem_key = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem_key.chmod(0o600)
    return crt, pem_key


def server_fingerprint() -> str:
    """The daemon's certificate fingerprint, as its operator reads it (`lxc info`)."""
    return str(LXD().client.host_info["environment"]["certificate_fingerprint"])


def section(url: str, crt: Path, key: Path, fingerprint: str) -> str:
    return (
        f'[lxd]\nendpoint = "{url}"\nclient_cert = "{crt}"\nclient_key = "{key}"\n'
        f'fingerprint = "{fingerprint}"\n\n'
    )


@contextmanager
def endpoint(directory: Path, name: str) -> Iterator[str]:
    """The `[lxd]` section of a phoenix.toml that reaches this host's daemon over HTTPS, with a
    client certificate `name` trusted there until the end."""
    listening = lxc("config", "get", "core.https_address")
    if listening and not listening.startswith("127."):
        raise SystemExit(f"the daemon listens on {listening}, not on loopback: not touching it")
    if not listening:
        lxc("config", "set", "core.https_address", ADDRESS)
    crt, key = make_certificate(directory, name)
    lxc("config", "trust", "add", str(crt), "--name", name)
    try:
        yield section(f"https://{listening or ADDRESS}", crt, key, server_fingerprint())
    finally:
        lxc("config", "trust", "remove", fingerprint_of(crt.read_text()))
        if not listening:
            lxc("config", "unset", "core.https_address")
