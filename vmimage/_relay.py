"""Relay one guest connection to a host TCP port: QEMU's guestfwd ``cmd:`` runs this.

QEMU hands the guest's connection over as stdin/stdout; this copies bytes both ways
between it and ``HOST:PORT`` until either side closes. Stdlib only, nothing printed.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def _shutdown_write(fd: int) -> None:
    """Tell the guest the host is done: half-close a socket fd, or close a pipe fd."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        os.close(fd)
        return
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


def relay(host: str, port: int, fd_in: int = 0, fd_out: int = 1) -> None:
    """Copy bytes between the fds QEMU gave us and a new connection to ``host:port``."""
    upstream = socket.create_connection((host, port))
    sel = selectors.DefaultSelector()
    sel.register(fd_in, selectors.EVENT_READ, "guest")
    sel.register(upstream, selectors.EVENT_READ, "host")
    open_sides = 2
    while open_sides:
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(fd_in, 1 << 16)
                if not data:
                    sel.unregister(fd_in)
                    upstream.shutdown(socket.SHUT_WR)
                    open_sides -= 1
                else:
                    upstream.sendall(data)
            else:
                data = upstream.recv(1 << 16)
                if not data:
                    sel.unregister(upstream)
                    open_sides -= 1
                    _shutdown_write(fd_out)
                    continue
                view = memoryview(data)
                while view:
                    n = os.write(fd_out, view)
                    view = view[n:]


if __name__ == "__main__":
    try:
        relay(sys.argv[1], int(sys.argv[2]))
    except OSError:
        sys.exit(1)
