"""The TCP connection under an SSH session (the handshake itself is tested on the lab)."""

from __future__ import annotations

import socket
import threading

from phoenix.host import ssh


def test_a_connection_sends_at_once_and_reads_what_comes() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(conn.recv(64).upper())

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with ssh._dial("127.0.0.1", port, 5) as sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert sock.gettimeout() == 5
            sock.sendall(b"ssh-2.0")
            assert sock.recv(64) == b"SSH-2.0"
        thread.join(5)
