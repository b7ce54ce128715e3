"""For `make demo`: make one hand edit on the first server of a fleet, as an operator might."""

from __future__ import annotations

import sys

from phoenix.fleet.records import Records, ServerStatus
from phoenix.host import keys, ssh
from phoenix.state import Store
from phoenix.workspace import Workspace


def main() -> None:
    ws = Workspace.open()
    name = sys.argv[1] if len(sys.argv) > 1 else "web"
    with Store.open(ws.home) as store:
        serving = [s for s in Records(store).servers(name) if s.status is ServerStatus.SERVING]
    server = serving[0]
    key, _ = keys.ensure(ws.home)
    # the host key pinned when the server was created, as every phoenix connection uses
    target = ssh.Target(
        name=server.name, address=str(server.address), host_key=str(server.host_key)
    )
    with ssh.connect(target, key.private_path) as session:
        session.run("echo '# hot-fixed by hand' >> /etc/nginx/nginx.conf")
    print(f"edited /etc/nginx/nginx.conf on {server.name} by hand")


if __name__ == "__main__":
    main()
