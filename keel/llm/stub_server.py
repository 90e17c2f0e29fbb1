"""An OpenAI-compatible stub server on the loopback, over real HTTP: what tests and the
LLM example talk to instead of a model.

    with StubServer() as stub:                      # a free port on 127.0.0.1
        stub.script(Json({"sentiment": "negative"}), HttpError(status=429, retry_after="2"))
        ...  # point a provider at stub.url ("http://127.0.0.1:PORT/v1")
        assert len(stub.requests) == 2              # every body received, parsed

It serves ``POST /v1/chat/completions`` (whole, or as SSE chunks when the request says
``stream``; the usage chunk only with ``stream_options.include_usage``) and
``GET /v1/models``. Scripted replies (``keel.llm.stub_replies``: ``Text``, ``Json``,
``ToolCalls``, ``Truncated``, ``Refusal``, ``Malformed``, ``HttpError``, ``Raw``; each may carry a
``delay``, and ``usage=None`` for an answer without usage) are used in order; when none
is left, the ``responder`` (a function of the request's body) answers, by default
``keel.llm.stub_responder.rule_based``: JSON that fits the schema asked for, else a text.

From a shell, for a demo (stop it with Ctrl-C):

    python -m keel.llm.stub_server --port 8089
    KEEL_LLM_LOCAL_BASE_URL=http://127.0.0.1:8089/v1 keel run ...

STUB_PRICE: the stub's models are called what the request asks for, e.g. ``stub-small``
or ``stub-large`` (``/v1/models`` lists those two). genai-prices knows neither, so a
test or demo that wants a cost sets a price override (``[llm.prices."stub-small"]``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from keel.llm.stub_replies import (
    HttpError,
    Json,
    Malformed,
    Raw,
    Refusal,
    Reply,
    StubUsage,
    Text,
    ToolCalls,
    Truncated,
    Written,
    write,
)
from keel.llm.stub_responder import rule_based

__all__ = ["HttpError", "Json", "Malformed", "Raw", "Refusal", "Reply", "Responder", "StubServer",
           "StubUsage", "Text", "ToolCalls", "Truncated", "rule_based"]  # fmt: skip

Responder = Callable[[dict[str, Any]], Reply]
MODELS = ("stub-small", "stub-large")


class StubServer:
    """The server, in a thread of this process; ``close()`` (or leaving ``with``) stops it
    and cuts every pending ``delay`` short."""

    def __init__(
        self, responder: Responder = rule_based, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.responder = responder
        #: the body of every chat completion request received, in order
        self.requests: list[dict[str, Any]] = []
        #: the headers of each of those requests (``authorization`` shows the key sent)
        self.headers: list[dict[str, str]] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue ``replies``: the next requests get them, in order."""
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> StubServer:
        if self._thread is None:
            # a short poll: ``close()`` waits for the loop to notice
            self._thread = threading.Thread(
                target=self._http.serve_forever, args=(0.05,), name="keel-llm-stub", daemon=True
            )
            self._thread.start()
        return self

    def serve(self) -> None:
        """Serve in the calling thread until interrupted (the command line's way)."""
        self._http.serve_forever()

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._http.shutdown()
            self._thread = None
        self._http.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def answer(self, request: dict[str, Any], headers: dict[str, str]) -> tuple[Reply, int]:
        """Record ``request``; the reply it gets and its number (from 1)."""
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)
            number = len(self.requests)
            scripted = self._queue.popleft() if self._queue else None
        return (scripted if scripted is not None else self.responder(request)), number

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the server closes meanwhile."""
        if seconds > 0:
            self._closing.wait(seconds)


def _handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "keel-llm-stub"

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                data = [{"id": m, "object": "model", "owned_by": "keel"} for m in MODELS]
                body = json.dumps({"object": "list", "data": data}).encode()
                self._send(Written(200, {"Content-Type": "application/json"}, body))
            else:
                self._send(_error(404, f"no route {self.path}"))

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(_error(404, f"no route {self.path}"))
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                request = None
            if not isinstance(request, dict):
                self._send(_error(400, "the body must be a JSON object"))
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply, number = stub.answer(request, headers)
            stub.wait(reply.delay)
            self._send(write(reply, request, number))

        def _send(self, written: Written) -> None:
            self.send_response(written.status)
            for name, value in written.headers.items():
                self.send_header(name, value)
            if written.events is None:
                self.send_header("Content-Length", str(len(written.body)))
            self.end_headers()
            try:
                for part in written.events if written.events is not None else (written.body,):
                    self.wfile.write(part)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def _error(status: int, message: str) -> Written:
    return write(HttpError(status=status, message=message), {}, 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keel.llm.stub_server",
        description="Serve keel's OpenAI-compatible stub (rule-based answers) for demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8089, help="port (0: any free one)")
    args = parser.parse_args(argv)
    try:
        stub = StubServer(host=args.host, port=args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"keel LLM stub serving {stub.url} (Ctrl-C to stop)", flush=True)
    try:
        stub.serve()
    except KeyboardInterrupt:
        pass
    finally:
        stub.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
