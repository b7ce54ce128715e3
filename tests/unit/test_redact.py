"""Secrets found by content (detect-secrets), whatever the file's name, and redacted lines."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from phoenix import redact
from phoenix.drift.secrets import is_secret, looks_secret

AWS = "AKIAZ3MHALF6E5XGVNPQ"
TOKEN = "8f3kJ2mQ9zX7vB4nL1pR6tY0wE5sD8aGhT3k"
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"
PLAIN = "worker_processes 4;\nListenAddress 0.0.0.0\n# a comment\n\n"


@pytest.mark.parametrize(
    ("path", "text", "kind"),
    [
        ("/etc/app/settings.ini", f"[aws]\nregion = eu-west-1\naccess_key_id = {AWS}\n", "AWS"),
        ("/etc/default/worker", f"# the worker\nAPI={TOKEN}\n", "High Entropy"),
        ("/root/notes.txt", "see below\n" + KEY, "Private Key"),
        ("/etc/app/db.conf", "host = db\npassword = hunter2\n", "Secret Keyword"),
    ],
)
def test_a_secret_is_found_by_content_in_a_file_of_no_secret_name(
    path: str, text: str, kind: str
) -> None:
    assert not is_secret(path)
    found = redact.find_secrets(text)
    assert any(kind in t for _, t in found), found
    assert looks_secret(text.encode())


def test_the_line_of_a_secret_is_counted_from_one() -> None:
    assert redact.find_secrets(f"a = 1\nb = 2\nkey = {AWS}\n") == [(3, "AWS Access Key")]


def test_plain_config_and_cron_lines_hold_no_secret() -> None:
    text = PLAIN + "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n"
    text += "deb [signed-by=/usr/share/keyrings/docker-archive-keyring.gpg] https://x/ bookworm\n"
    text += "password = ${DB_PASSWORD}\n"
    assert redact.find_secrets(text) == []
    assert not looks_secret(text.encode())


def test_an_allowlist_pragma_does_not_hide_a_secret() -> None:
    assert redact.find_secrets(f"key = {AWS}  # pragma: allowlist secret\n")


def test_redact_line_replaces_the_whole_secret_the_same_way_every_time() -> None:
    line = f"0 * * * * root AWS_KEY={AWS} TOKEN={TOKEN} /usr/local/bin/sync"
    once = redact.redact_line(line)
    assert AWS not in once and TOKEN not in once
    assert once.startswith("0 * * * * root AWS_KEY=<redacted: AWS Access Key sha256:")
    assert once.endswith("> /usr/local/bin/sync") and "TOKEN=<redacted: Base64 High Entropy" in once
    assert redact.redact_line(line) == once
    other = redact.redact_line(line.replace(TOKEN, TOKEN[::-1]))
    assert other != once  # another secret, another text
    assert redact.redact_line(once) == once  # redacting again changes nothing
    github = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    assert github[4:] not in redact.redact_line(f"curl -H 'token {github}' x")
    assert redact.redact_line("17 * * * * root run-parts /etc/cron.hourly") == (
        "17 * * * * root run-parts /etc/cron.hourly"
    )


def test_redact_lines_is_redact_line_of_each() -> None:
    lines = [f"a={AWS}", "b=1", f"c='{TOKEN}'"]
    assert redact.redact_lines(lines) == [redact.redact_line(line) for line in lines]


def test_scans_from_many_threads_agree() -> None:
    texts = [f"k = {AWS}\n", PLAIN, f"T={TOKEN}\n", KEY] * 4
    alone = [redact.find_secrets(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(redact.find_secrets, texts)) == alone
