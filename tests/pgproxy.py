"""A TCP proxy in front of the test PostgreSQL server that can cut connections the way
a failover or a network fault does: around a ``COMMIT``, or all of them for a while."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

from tests.postgres import URL, fresh_url


class Proxy:
    """A TCP proxy to the test server. Armed (``arm``), it cuts the next connection that
    sends a ``COMMIT``: before passing it on (``"before"``: nothing was committed), or
    after the server answered it (``"after"``: committed, but the client never hears).
    Down (``down``), it cuts every connection and refuses new ones until ``up``."""

    def __init__(self) -> None:
        parts = urlsplit(URL)
        self.server = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.when: str | None = None
        self.pattern = b"COMMIT\x00"
        self.cuts = 0
        self.refusing = False
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str | None = None) -> str:
        """``url`` (default: ``fresh_url()``) through this proxy, in clear text (so a
        COMMIT can be seen)."""
        parts = urlsplit(url or fresh_url())
        netloc = f"{parts.username or 'postgres'}@127.0.0.1:{self.port}"
        query = f"{parts.query}&sslmode=disable&gssencmode=disable"
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def arm(self, when: str, on: bytes = b"COMMIT\x00") -> None:
        """Cut the next connection that sends ``on`` (a COMMIT unless told)."""
        self.when, self.pattern = when, on

    def down(self) -> None:
        with self._lock:
            self.refusing = True
            self._close(*self._open)
            self._open.clear()

    def up(self) -> None:
        self.refusing = False

    def close(self) -> None:
        self.listener.close()

    def _take(self) -> str | None:
        with self._lock:
            when, self.when = self.when, None
            if when is not None:
                self.cuts += 1
            return when

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                self._close(client)
                continue
            server = socket.create_connection(self.server)
            with self._lock:
                self._open += [client, server]
            state: dict[str, bool] = {"cut_on_answer": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, state), daemon=True).start()

    @staticmethod
    def _close(*sockets: socket.socket) -> None:
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _up(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        try:
            while data := client.recv(65536):
                when = self._take() if self.when and self.pattern in data else None
                if when == "before":
                    self._close(client, server)
                    return
                state["cut_on_answer"] = when == "after"
                server.sendall(data)
        except OSError:
            pass
        self._close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        try:
            while data := server.recv(65536):
                if state["cut_on_answer"]:  # the server committed; its answer is dropped
                    break
                client.sendall(data)
        except OSError:
            pass
        self._close(client, server)
