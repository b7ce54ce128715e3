r"""The public keys each user lets in: `~/.ssh/authorized_keys` and `~/.ssh/authorized_keys2`.

The command walks `getent passwd`; for every user whose home is a directory, it prints each line of
the two files (sshd's default AuthorizedKeysFile), in that order, after the user's name and a colon
(no user name holds one):

    root:# the operator key
    root:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH/gFp2WxuETlSUEBPr8LEcnNnLNMpNZu/Ly/FLu2jgl phoenix
    root:
    snow:restrict,command="/usr/bin/backup" ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 backup@ci

A key line is kept whole, options included, without the whitespace around it; blank lines and
comments are left out, as sshd does. Users without any key line are not listed. Users who share a
home (several system users live in "/") each list the keys found there: sshd would let them in.
Public keys are not secrets.
"""

from __future__ import annotations

import shlex

from phoenix.facts import fields

SCRIPT = """\
getent passwd | while IFS=: read -r user _ _ _ _ home _; do
  if [ -z "$home" ] || [ ! -d "$home" ]; then continue; fi
  for f in "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2"; do
    if [ -f "$f" ]; then
      while IFS= read -r line || [ -n "$line" ]; do printf '%s:%s\\n' "$user" "$line"; done <"$f"
    fi
  done
done
"""
COMMAND = f"sh -c {shlex.quote(SCRIPT)}"
MAX_KEY_LINE = 16384  # a line longer than this holds no key sshd reads


def parse(text: str) -> dict[str, tuple[str, ...]]:
    """User -> key lines; raise ValueError on a line without a valid user name, or a key line
    that holds control characters (a tab aside: sshd takes it for a space) or is too long."""
    found: dict[str, list[str]] = {}
    for line in fields.records(text, "\n"):
        user, sep, key = line.partition(":")
        if not sep:
            raise ValueError(f"not a `user:line` line: {fields.shown(line)}")
        fields.name(user, "user name")
        key = key.strip(" \t\r")
        if key and not key.startswith("#"):
            fields.plain(key.replace("\t", " "), "authorized key line", MAX_KEY_LINE)
            found.setdefault(user, []).append(key)
    return {user: tuple(keys) for user, keys in sorted(found.items())}
