"""The ``http`` step against a real HTTP server on the loopback: what it sends, what it
makes of the answer, which answers fail it and how, and the size limit. The loopback is
allowed by a ``keel.toml`` in the test's folder, as an operator would allow it."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keel.errors import NonRetryable, RetryLater
from keel.runtime.secrets import revealing
from keel.steps.http_body import HttpBodyError, HttpResponseTooLarge
from keel.steps.http_response import (
    QUOTED_CHARS,
    HttpRetryableStatus,
    HttpStatusError,
    retry_after,
)
from tests.steps.conftest import Step
from tests.steps.peers import Peer, Received, Reply, json_reply

Allow = Callable[..., Path]


def test_a_get_gives_status_lower_case_headers_and_the_json_body(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    peer.routes["/claims/7"] = lambda got: json_reply({"id": 7, "amount": 12.5}, **{"X-Thing": "a"})
    out = step({"url": peer.url("/claims/${{ input.id }}")}, {"input": {"id": 7}, "nodes": {}})
    assert out["status"] == 200
    assert out["body"] == {"id": 7, "amount": 12.5}
    assert out["headers"]["x-thing"] == "a"
    assert out["headers"]["content-type"] == "application/json"
    sent = peer.received[0].headers
    assert sent["user-agent"].startswith("keel/")
    assert sent["idempotency-key"] == "run1:call"


def test_a_post_sends_a_json_body_query_lists_and_headers(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    peer.routes["/items"] = lambda got: json_reply({"made": got.json()}, status=201)
    out = step(
        {
            "method": "post",
            "url": peer.url("/items?fixed=1"),
            "query": {"tag": ["a", "b c"], "n": "${{ input.n }}", "gone": None},
            "headers": {"X-Request": "r-${{ input.n }}", "user-agent": "mine/1"},
            "body": {"name": "${{ input.name }}", "n": "${{ input.n }}"},
        },
        {"input": {"name": "Ada", "n": 3}, "nodes": {}},
        attempt=2,
    )
    got = peer.received[0]
    assert got.method == "POST"
    assert got.path == "/items?fixed=1&tag=a&tag=b+c&n=3"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-request"] == "r-3"
    assert got.headers["user-agent"] == "mine/1"  # the step's own wins over keel's
    assert got.headers["idempotency-key"] == "run1:call"  # the same for every attempt
    assert got.json() == {"name": "Ada", "n": 3}  # a whole expression keeps its type
    assert out["status"] == 201
    assert out["body"] == {"made": {"name": "Ada", "n": 3}}


def test_a_form_is_sent_url_encoded(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    peer.routes["/form"] = lambda got: Reply(200, {"Content-Type": "text/plain"}, got.body)
    out = step({"method": "PUT", "url": peer.url("/form"),
                "form": {"a": "x y", "many": [1, 2], "flag": True}})  # fmt: skip
    assert peer.received[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert out["body"] == "a=x+y&many=1&many=2&flag=true"


def test_a_secret_in_a_header_reaches_the_server(
    peer: Peer, allow: Allow, step: Step, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow("127.0.0.1")
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", "tok-3f9c2a1e-secret")
    peer.routes["/me"] = lambda got: json_reply({"ok": True})
    step({"url": peer.url("/me"), "headers": {"Authorization": "Bearer ${{ secrets.API_TOKEN }}"}})
    assert peer.received[0].headers["authorization"] == "Bearer tok-3f9c2a1e-secret"


def test_text_and_json_bodies_as_the_step_asks(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    peer.routes["/plain"] = lambda got: Reply(200, {"Content-Type": "text/plain"}, b'{"a": 1}')
    peer.routes["/json"] = lambda got: json_reply({"a": 1})
    assert step({"url": peer.url("/plain")})["body"] == '{"a": 1}'
    assert step({"url": peer.url("/plain"), "response": "json"})["body"] == {"a": 1}
    assert step({"url": peer.url("/json"), "response": "text"})["body"] == '{"a": 1}'


def test_a_body_claimed_json_that_does_not_parse_fails_the_node(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    peer.routes["/bad"] = lambda got: Reply(200, {"Content-Type": "application/json"}, b"{oops")
    with pytest.raises(HttpBodyError) as caught:
        step({"url": peer.url("/bad")})
    assert isinstance(caught.value, NonRetryable)
    assert "not valid JSON" in str(caught.value)
    assert "application/json" in str(caught.value)
    assert "{oops" in str(caught.value)


def test_a_404_fails_at_once_quoting_the_body(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    with pytest.raises(HttpStatusError) as caught:
        step({"url": peer.url("/nowhere")})
    assert isinstance(caught.value, NonRetryable)
    assert "HTTP 404" in str(caught.value)
    assert "no such path" in str(caught.value)
    assert len(peer.received) == 1


def test_ok_status_makes_another_status_a_success(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    out = step({"url": peer.url("/nowhere"), "ok_status": [404]})
    assert out["status"] == 404
    assert out["body"] == "no such path"


def test_a_retry_status_is_retryable_with_its_retry_after(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    peer.routes["/busy"] = lambda got: Reply(503, {"Retry-After": "7"}, b"try later " * 200)
    with pytest.raises(HttpRetryableStatus) as caught:
        step({"url": peer.url("/busy")})
    assert isinstance(caught.value, RetryLater)
    assert not isinstance(caught.value, NonRetryable)
    assert caught.value.after == 7
    assert "HTTP 503" in str(caught.value)
    assert "try later" in str(caught.value)
    assert len(str(caught.value)) < 500  # the body is quoted, not copied whole


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("120") == 120
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0
    assert retry_after("soon") is None
    assert retry_after(None) is None


def _endless() -> Iterator[bytes]:
    chunk = b"x" * 65536
    for _ in range(100 * 16):  # 100 MB, far past any socket buffer
        yield chunk


def test_a_response_past_the_limit_stops_the_reading(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    peer.routes["/big"] = lambda got: Reply(200, {"Content-Type": "text/plain"}, stream=_endless)
    with pytest.raises(HttpResponseTooLarge) as caught:
        step({"url": peer.url("/big"), "max_response_bytes": 100_000})
    assert "max_response_bytes (100000 bytes)" in str(caught.value)
    # the client hung up: the server could not write the 100 MB
    assert peer.streamed < 50 * 1024 * 1024


def test_a_declared_length_past_the_limit_fails_before_reading(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1", max_response_bytes=10)
    peer.routes["/long"] = lambda got: Reply(200, {}, b"y" * 11)
    with pytest.raises(HttpResponseTooLarge) as caught:
        step({"url": peer.url("/long")})  # the limit of [http], the step sets none
    assert "(10 bytes)" in str(caught.value)
    assert "11 bytes" in str(caught.value)
    # a step may lower the operator's limit, never raise it
    with pytest.raises(HttpResponseTooLarge):
        step({"url": peer.url("/long"), "max_response_bytes": 11})
    peer.routes["/short"] = lambda got: Reply(200, {}, b"y" * 6)
    with pytest.raises(HttpResponseTooLarge):
        step({"url": peer.url("/short"), "max_response_bytes": 5})
    assert step({"url": peer.url("/short"), "max_response_bytes": 6})["body"] == "y" * 6


def test_redirects_are_followed(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    peer.routes["/old"] = lambda got: Reply(302, {"Location": "/new"})
    peer.routes["/new"] = lambda got: json_reply({"here": True})
    assert step({"url": peer.url("/old")})["body"] == {"here": True}
    out = step({"url": peer.url("/old"), "follow_redirects": False, "ok_status": [302]})
    assert out["status"] == 302
    assert out["headers"]["location"] == "/new"


def test_a_redirect_to_another_server_carries_no_secret(
    peer: Peer, allow: Allow, step: Step, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API the step names redirects elsewhere (an open redirect, a moved host): the
    header that holds a secret stays behind, the others go; a body holding one is not
    resent (307)."""
    allow("127.0.0.1")
    monkeypatch.setenv("KEEL_SECRET_API_TOKEN", "tok-3f9c2a1e-secret")
    headers = {"X-Api-Key": "${{ secrets.API_TOKEN }}", "X-Plain": "p"}
    with Peer() as other:
        other.routes["/there"] = lambda got: json_reply({"ok": True})
        peer.routes["/moved"] = lambda got: Reply(302, {"Location": other.url("/there")})
        peer.routes["/same"] = lambda got: Reply(302, {"Location": "/there"})
        peer.routes["/there"] = lambda got: json_reply({"ok": True})
        peer.routes["/post"] = lambda got: Reply(307, {"Location": other.url("/there")})
        with revealing():
            assert step({"url": peer.url("/moved"), "headers": headers})["status"] == 200
            step({"url": peer.url("/same"), "headers": headers})
            with pytest.raises(NonRetryable, match=r"would resend a body that holds a secret"):
                step({"method": "POST", "url": peer.url("/post"),
                      "body": {"key": "${{ secrets.API_TOKEN }}"}})  # fmt: skip

        elsewhere = other.received[0].headers
        assert "x-api-key" not in elsewhere
        assert elsewhere["x-plain"] == "p"
        assert len(other.received) == 1  # the POST was not resent there
    moved, _same, same_there = peer.received[:3]
    assert moved.headers["x-api-key"] == "tok-3f9c2a1e-secret"
    assert same_there.path == "/there"  # the same server: the secret goes along
    assert same_there.headers["x-api-key"] == "tok-3f9c2a1e-secret"


def test_a_redirect_elsewhere_than_http_is_refused(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    peer.routes["/file"] = lambda got: Reply(302, {"Location": "file:///etc/passwd"})
    with pytest.raises(NonRetryable, match="a redirect leads elsewhere than HTTP"):
        step({"url": peer.url("/file")})


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "example.com/x",
                                 "gopher://127.0.0.1/"])  # fmt: skip
def test_only_http_and_https_urls(url: str, worker_folder: Path, step: Step) -> None:
    with pytest.raises(NonRetryable, match="http:// or https://"):
        step({"url": url})


def test_a_header_value_with_a_line_break_is_refused_without_quoting_it(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    with pytest.raises(NonRetryable) as caught:
        step({"url": peer.url("/"), "headers": {"X-Bad": "sneaky-value\r\nX-Injected: 1"}})
    assert "sneaky-value" not in str(caught.value)
    assert peer.received == []


def test_a_connection_refused_is_retryable(allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    from tests.processes import free_port

    with pytest.raises(ConnectionError) as caught:
        step({"url": f"http://me:pass-word@127.0.0.1:{free_port()}/x?api_key=k-e-y%20z"})
    assert not isinstance(caught.value, NonRetryable)
    message = str(caught.value)
    assert "/x" in message
    assert "pass-word" not in message  # neither credentials nor the query are quoted
    assert "k-e-y" not in message


def test_the_timeout_bounds_a_slow_answer(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    release = __import__("threading").Event()

    def slow(got: Received) -> Reply:
        release.wait(30)
        return json_reply({})

    peer.routes["/slow"] = slow
    try:
        with pytest.raises(TimeoutError) as caught:
            step({"url": peer.url("/slow"), "timeout": 0.3})
        assert not isinstance(caught.value, NonRetryable)
    finally:
        release.set()


def test_the_timeout_bounds_the_body_a_failure_quotes(peer: Peer, allow: Allow, step: Step) -> None:
    """A server that answers 404 and trickles its body a byte at a time: the step quotes
    what came within its timeout and fails, instead of waiting for the whole quote (a
    read may wait the whole timeout, and a quote is hundreds of reads)."""
    allow("127.0.0.1")
    gone = threading.Event()

    def trickle() -> Iterator[bytes]:
        while not gone.wait(0.05):  # far slower than a quote's 1200 bytes in the timeout
            yield b"x"

    peer.routes["/trickle"] = lambda got: Reply(404, {"Content-Type": "text/plain"},
                                                stream=trickle)  # fmt: skip
    try:
        with pytest.raises(HttpStatusError) as caught:
            step({"url": peer.url("/trickle"), "timeout": 0.5})
    finally:
        gone.set()
    said = str(caught.value)
    assert "answered HTTP 404" in said
    assert "x" * (QUOTED_CHARS - 1) not in said  # cut at the timeout, not read to its end


def test_a_gzip_body_is_read_decompressed(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    data = gzip.compress(b'{"zipped": true}')
    peer.routes["/gz"] = lambda got: Reply(
        200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, data
    )
    assert step({"url": peer.url("/gz")})["body"] == {"zipped": True}
    assert "gzip" in peer.received[0].headers["accept-encoding"]


def test_a_body_that_inflates_past_the_limit_is_stopped(
    peer: Peer, allow: Allow, step: Step
) -> None:
    allow("127.0.0.1")
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))  # 64 MiB in about 64 KiB
    assert len(bomb) < 100_000 * 2
    peer.routes["/bomb"] = lambda got: Reply(200, {"Content-Encoding": "gzip"}, bomb)
    with pytest.raises(HttpResponseTooLarge, match="inflates past"):
        step({"url": peer.url("/bomb"), "max_response_bytes": 100_000})


def test_an_encoding_keel_does_not_read_is_refused(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    peer.routes["/br"] = lambda got: Reply(200, {"Content-Encoding": "br"}, b"\x0b\x02\x80")
    with pytest.raises(HttpBodyError, match="'br'"):
        step({"url": peer.url("/br")})


def test_a_failed_compressed_answer_is_quoted(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    data = gzip.compress(b"quota exceeded for this key " * 1000)
    peer.routes["/no"] = lambda got: Reply(403, {"Content-Encoding": "gzip"}, data)
    with pytest.raises(HttpStatusError, match="HTTP 403 Forbidden: quota exceeded for this key"):
        step({"url": peer.url("/no")})


def test_a_charset_python_does_not_know_reads_as_utf8(peer: Peer, allow: Allow, step: Step) -> None:
    allow("127.0.0.1")
    body = "café".encode()
    peer.routes["/odd"] = lambda got: Reply(
        200, {"Content-Type": "text/plain; charset=x-nope"}, body
    )
    assert step({"url": peer.url("/odd")})["body"] == "café"
