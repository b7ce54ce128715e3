"""A remote LXD daemon over HTTPS: phoenix's client certificate and the server's pinned one.

`[lxd] endpoint` makes every part of phoenix that talks to LXD talk to that daemon instead of the
local socket: phoenix's own client (pylxd), `lxc`, Packer's `lxd` builder and Terraform's LXD
provider. The last three read an lxc client configuration (the workspace's, see
phoenix.lab.project) whose default remote, NAME, is the endpoint; `install` writes the files that
configuration needs next to it: the client certificate and key, and the server's certificate.

The server's certificate is taken only when its SHA-256 fingerprint is the pinned one
(`[lxd] fingerprint`); every later connection checks it again (pylxd through urllib3's
fingerprint check, lxc and the provider against `servercerts/NAME.crt`). Nothing falls back to the
local socket: a wrong fingerprint, an untrusted or expired certificate or an unreachable endpoint
is an error that names its fix.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from phoenix.atomic import write_atomic
from phoenix.config import LXDConfig
from phoenix.errors import LXDError

if TYPE_CHECKING:
    import pylxd
    import requests

NAME = "phoenix"  # the remote's name in the workspace's lxc client configuration
CLIENT_CERT = "client.crt"  # the names lxc and the provider look for in that configuration
CLIENT_KEY = "client.key"
SERVER_CERT = f"servercerts/{NAME}.crt"
TRUST_HINT = "on the LXD server: lxc config trust add {cert} (after copying the file there)"


@dataclass(frozen=True)
class Remote:
    url: str  # https://HOST:PORT
    cert: Path  # phoenix's client certificate (PEM) ...
    key: Path  # ... and its private key
    fingerprint: str  # the server certificate's SHA-256, 64 lower-case hex digits

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return str(parts.hostname), int(parts.port or 8443)


_installed: set[tuple[Remote, Path]] = set()  # what `install` put in place in this process


def of(cfg: LXDConfig, base: Path) -> Remote | None:
    """The remote `[lxd]` names (its paths relative to `base`, phoenix.toml's directory), or
    None: the local daemon."""
    if cfg.endpoint is None:
        return None
    assert cfg.client_cert and cfg.client_key and cfg.fingerprint  # the config requires them
    return Remote(
        url=cfg.endpoint,
        cert=base / cfg.client_cert,
        key=base / cfg.client_key,
        fingerprint=normal(cfg.fingerprint),
    )


def normal(fingerprint: str) -> str:
    return fingerprint.replace(":", "").lower()


def fingerprint_of(pem: str) -> str:
    """The SHA-256 fingerprint of a PEM certificate (of its DER bytes), as `normal` writes it."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def install(remote: Remote, conf: Path, timeout: float) -> None:
    """Put what lxc and the provider need into the lxc client configuration `conf`: phoenix's
    client certificate and key (checked first), and the server's certificate once it is proven
    to be the pinned one (fetched again only when the file there is missing or not pinned).
    Done once per process for each remote and configuration: later calls return at once."""
    if (remote, conf) in _installed:
        return
    cert_pem, key_pem = _client_files(remote)
    conf.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_if_changed(conf / CLIENT_CERT, cert_pem, 0o644)
    _write_if_changed(conf / CLIENT_KEY, key_pem, 0o600)
    server = conf / SERVER_CERT
    if not _pinned_file(server, remote.fingerprint):
        pem = server_certificate(remote, timeout)
        server.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomic(server, pem, mode=0o644)
    _installed.add((remote, conf))


def server_certificate(remote: Remote, timeout: float) -> str:
    """The certificate the server presents (PEM), refused unless it is the pinned one."""
    try:
        pem = ssl.get_server_certificate(remote.address, timeout=timeout)
    except (OSError, ssl.SSLError) as exc:
        raise unreachable(remote, str(exc)) from exc
    got = fingerprint_of(pem)
    if got != remote.fingerprint:
        raise LXDError(
            f"the LXD daemon at {remote.url} presents a certificate with SHA-256 fingerprint"
            f" {got}, not the pinned {remote.fingerprint}; phoenix did not connect",
            hint="if the server's certificate was replaced on purpose, read its fingerprint on"
            " the server (`lxc info | grep certificate_fingerprint`) and set [lxd] fingerprint;"
            " otherwise something else answers at that address",
        )
    return pem


def unreachable(remote: Remote, reason: str) -> LXDError:
    return LXDError(
        f"cannot reach the LXD daemon at {remote.url}: {reason[:200]}",
        hint="check [lxd] endpoint in phoenix.toml, and that the daemon listens there"
        " (on the server: lxc config set core.https_address HOST:PORT)",
    )


def untrusted(remote: Remote) -> LXDError:
    return LXDError(
        f"the LXD daemon at {remote.url} does not trust phoenix's client certificate {remote.cert}",
        hint=TRUST_HINT.format(cert=remote.cert),
    )


def connect(remote: Remote, conf: Path, project: str, timeout: float) -> pylxd.Client:
    """A pylxd client of the remote daemon, acting in `project`, refused unless the daemon
    trusts phoenix's client certificate. `install` must have run for `conf`. One request:
    pylxd's own `GET /1.0`, whose answer says whether the daemon trusts phoenix.

    A failed request is raised as requests raised it (pylxd wraps it in ClientConnectionFailed),
    so that the caller tells a deadline from an unreachable endpoint or a wrong certificate."""
    import pylxd
    import requests
    from pylxd import exceptions as lxd_exc

    try:
        client = pylxd.Client(
            endpoint=remote.url, session=session(remote, conf), project=project, timeout=timeout
        )
    except lxd_exc.ClientConnectionFailed as exc:
        if isinstance(exc.__context__, requests.RequestException):
            raise exc.__context__ from None
        raise
    except lxd_exc.LXDAPIException as exc:  # an answer other than HTTP 200, or not LXD's
        if _lxd_error(exc.response):
            raise  # LXD's own refusal: the caller says what LXD refused
        raise not_lxd(remote, f"HTTP {exc.response.status_code}") from exc
    except (ValueError, KeyError, TypeError) as exc:  # an answer that is not LXD's JSON
        raise not_lxd(remote, "no LXD server information") from exc
    check_trusted(remote, client.host_info)
    return client


def check_trusted(remote: Remote, host_info: object) -> None:
    """Refuse a daemon that does not trust phoenix's client certificate (LXD answers `GET /1.0`
    to anyone, with `auth: untrusted`; `host_info` is that answer's metadata), or an endpoint
    that is not LXD."""
    if not isinstance(host_info, dict) or "auth" not in host_info:
        raise not_lxd(remote, "no `auth` in its server information")
    if host_info["auth"] != "trusted":
        raise untrusted(remote)


def not_lxd(remote: Remote, reason: str) -> LXDError:
    return LXDError(
        f"{remote.url} does not answer as an LXD daemon ({reason})",
        hint="check [lxd] endpoint in phoenix.toml",
    )


def session(remote: Remote, conf: Path) -> requests.Session:
    """A requests session for pylxd: phoenix's client certificate, and the server's pinned
    certificate checked by fingerprint on every connection. It ignores REQUESTS_CA_BUNDLE and
    the like (which would replace the pinned certificate in requests' verify setting)."""
    from pylxd.client import get_session_for_url

    made: requests.Session = get_session_for_url(
        remote.url, verify=str(conf / SERVER_CERT), cert=(str(remote.cert), str(remote.key))
    )
    made.trust_env = False
    return made


def _client_files(remote: Remote) -> tuple[str, str]:
    """phoenix's client certificate and key, refused when missing, unreadable, not a
    certificate or outside its validity."""
    from cryptography import x509

    texts = []
    for what, path in (("certificate", remote.cert), ("key", remote.key)):
        try:
            texts.append(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise LXDError(
                f"cannot read phoenix's client {what} {path}: {exc}",
                hint=f"set [lxd] client_{'cert' if what == 'certificate' else 'key'} to a"
                " readable PEM file, and trust the certificate on the server",
            ) from exc
    try:
        cert = x509.load_pem_x509_certificate(texts[0].encode())
    except ValueError as exc:
        raise LXDError(
            f"{remote.cert} is not a PEM certificate",
            hint="set [lxd] client_cert to the certificate the server trusts",
        ) from exc
    now = datetime.datetime.now(datetime.UTC)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now <= end:
        raise LXDError(
            f"phoenix's client certificate {remote.cert} is valid only from"
            f" {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
            hint="make a new one (openssl req -x509 ...), set [lxd] client_cert and client_key,"
            " and " + TRUST_HINT.format(cert="NEW.crt"),
        )
    return texts[0], texts[1]


def _lxd_error(response: requests.Response) -> bool:
    """Whether `response` is an error as LXD writes it (JSON of type `error`)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == "error"


def _pinned_file(path: Path, fingerprint: str) -> bool:
    try:
        return fingerprint_of(path.read_text()) == fingerprint
    except (OSError, ValueError):
        return False


def _write_if_changed(path: Path, text: str, mode: int) -> None:
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    write_atomic(path, text, mode=mode)
