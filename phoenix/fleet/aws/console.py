"""A new instance's SSH host keys, read from its console output: the out-of-band channel.

At first boot cloud-init prints the host keys it made between two marker lines:

    -----BEGIN SSH HOST KEY KEYS-----
    ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... root@ip-10-0-1-23
    -----END SSH HOST KEY KEYS-----

What the console holds is written by the server: hostile input. It is read strictly: a size cap,
every line of the block a well-formed key (its base64 decodes to a blob naming the same type),
one block only (a second block, even an equal one, is a forgery), each type once.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

from phoenix.errors import OutputTooLarge, UntrustedOutput

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
MAX_CONSOLE = 128 * 1024  # characters; EC2 keeps the last 64 KiB of a console
# preferred first: the one phoenix pins
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
_LINE = re.compile(
    r"(?:ec2: )?(?P<type>[a-z0-9-]{7,32}) (?P<blob>[A-Za-z0-9+/]{20,1024}={0,2})"
    r"(?: [A-Za-z0-9@._-]{1,128})?"
)
_ED25519_BLOB = 4 + len("ssh-ed25519") + 4 + 32


def host_key(name: str, output: str) -> str | None:
    """The preferred host key of `name` in its console `output`, as "TYPE BASE64"; None while
    the block is not (wholly) there. Raises UntrustedOutput when the output is not what
    cloud-init writes (OutputTooLarge past MAX_CONSOLE)."""
    if len(output) > MAX_CONSOLE:
        raise OutputTooLarge(
            f"the console output of {name} is {len(output)} characters, more than the"
            f" {MAX_CONSOLE} phoenix reads: its host key cannot be trusted",
            hint=f"terminate {name}; phoenix replaces it at its next run",
        )
    lines = [line.rstrip("\r") for line in output.split("\n")]
    begins = [i for i, line in enumerate(lines) if _marker(line) == BEGIN]
    if not begins:
        return None
    if len(begins) > 1:
        raise _forged(name, "its console holds more than one block of host keys")
    start = begins[0] + 1
    ends = [i for i, line in enumerate(lines[start:], start) if _marker(line) == END]
    if not ends:
        return None
    keys: dict[str, str] = {}
    for line in lines[start : ends[0]]:
        key_type, blob = _key(name, line)
        if key_type in keys:
            raise _forged(name, f"its console lists two {key_type} host keys")
        keys[key_type] = blob
    for key_type in KEY_TYPES:
        if key_type in keys:
            return f"{key_type} {keys[key_type]}"
    raise _forged(name, f"its console lists no host key of a type phoenix pins ({KEY_TYPES[0]})")


def _marker(line: str) -> str:
    return line.removeprefix("ec2: ").strip()


def _key(name: str, line: str) -> tuple[str, str]:
    match = _LINE.fullmatch(line.strip())
    if not match:
        raise _forged(name, f"a line of its host key block is not a key: {line[:80]!r}")
    key_type, blob = match["type"], match["blob"]
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        named = raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        raise _forged(name, f"its {key_type} host key is not valid base64 key data") from None
    if named != key_type:
        raise _forged(name, f"its {key_type} host key's data names another type")
    if key_type == "ssh-ed25519" and len(raw) != _ED25519_BLOB:
        raise _forged(name, "its ssh-ed25519 host key is not 32 bytes")
    return key_type, blob


def _forged(name: str, why: str) -> UntrustedOutput:
    return UntrustedOutput(
        f"the console output of {name} is not what cloud-init writes: {why}",
        hint=f"terminate {name} (it may be compromised); phoenix replaces it at its next run",
    )
