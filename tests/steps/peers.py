"""A real HTTP server for the ``http`` step's tests: the standard library's, on a
loopback address in a thread, answering each path with what a test scripted and keeping
every request it received (method, path, headers, body), so a test can tell what was sent
and that nothing was."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    #: by lower-case name
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: sent in pieces, without a Content-Length, after ``body``: a long or endless body
    stream: Callable[[], Iterator[bytes]] | None = None


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode())


#: what a path answers, from the request (scripted per test)
Route = Callable[[Received], Reply]


class Peer:
    """The server: ``routes`` by path (without the query), ``received`` in order."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.received: list[Received] = []
        #: bytes of streamed bodies written before the client went away
        self.streamed = 0
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(self.command, self.path,
                               {k.lower(): v for k, v in self.headers.items()},
                               self.rfile.read(length))  # fmt: skip
                peer.received.append(got)
                route = peer.routes.get(self.path.split("?")[0])
                reply = route(got) if route is not None else Reply(404, body=b"no such path")
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.stream is None:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in reply.stream():
                        self.wfile.write(chunk)
                        peer.streamed += len(chunk)
                except OSError:
                    pass  # the client stopped reading: what the test wants to see

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        self.server = Server((host, 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.host = host
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/", host: str | None = None, scheme: str = "http") -> str:
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{name}:{self.port}{path}"

    def __enter__(self) -> Peer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
