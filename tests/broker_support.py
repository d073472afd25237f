"""Shared helpers of the broker tests: a unique topology per test, and a TCP proxy to cut."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from pipelines.stream.broker import Topology, connect, reachable


def require_broker() -> None:
    if not reachable(timeout=2.0):
        if os.environ.get("CI") == "true":
            pytest.fail(
                "RabbitMQ (ORDERTOWER_BROKER_URL, default 127.0.0.1:5672) is required under CI=true"
            )
        pytest.skip("no RabbitMQ reachable at ORDERTOWER_BROKER_URL (default 127.0.0.1:5672)")


@contextlib.contextmanager
def fresh_topology() -> Iterator[Topology]:
    """A topology with a unique prefix on the real broker, deleted afterwards."""
    require_broker()
    topo = Topology(f"ot-test-{uuid.uuid4().hex[:10]}")
    connection = connect()
    topo.declare(connection.channel())
    connection.close()
    try:
        yield topo
    finally:
        connection = connect()
        topo.delete(connection.channel())
        connection.close()


class Proxy:
    """A TCP proxy to the broker whose connections the test can cut (a dropped network)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.server.close()
