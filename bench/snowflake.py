"""For `make demo`: make one hand edit on the first server of a fleet, as an operator might."""

from __future__ import annotations

import sys

from phoenix import fleet, hosts, keys
from phoenix.lxd import LXD
from phoenix.workspace import Workspace


def main() -> None:
    ws = Workspace.open()
    name = sys.argv[1] if len(sys.argv) > 1 else "web"
    server = fleet.status(ws, name).servers[0]
    key, _ = keys.ensure(ws.home)
    target = hosts.Target(server.name, str(server.address), LXD().host_key(server.name))
    with hosts.connect(target, key.private_path) as session:
        session.run("echo '# hot-fixed by hand' >> /etc/nginx/nginx.conf")
    print(f"edited /etc/nginx/nginx.conf on {server.name} by hand")


if __name__ == "__main__":
    main()
