"""A signature header is parsed strictly before anything is computed from it: whatever
an unauthenticated sender writes there (a timestamp of thousands of digits, digits of
another script, a digest not hex, bytes not ASCII) is a 401 like a wrong signature,
never a 500, and starts nothing. Several ``v1`` digests may sign one delivery (a sender
rotating its secret signs with the old and the new)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from keel.runtime.triggers.webhooks import SignatureError, sign, verify
from tests.server.conftest import Api
from tests.server.hookflows import SECRET, SECRET_ENV, deploy_hooked, signed


@pytest.fixture
def hooked(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    deploy_hooked(api.store)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return api


def digest(secret: str, stamp: str, delivery: str, body: bytes) -> str:
    message = f"{stamp}.{delivery}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


GOOD = "0" * 64  # the form of a digest, if not the right one

#: header values (latin-1 bytes on the wire, as an unauthenticated sender may send)
MALFORMED = {
    "timestamp not digits": b"t=12a4,v1=" + GOOD.encode(),
    "timestamp of 5000 digits": b"t=" + b"9" * 5000 + b",v1=" + GOOD.encode(),
    "timestamp of 13 digits": b"t=1000000000000,v1=" + GOOD.encode(),
    "timestamp of other digits": "t=١٢٣,v1=".encode() + GOOD.encode(),
    "v1 not hex": b"t=1,v1=" + b"z" * 64,
    "v1 upper-case hex": b"t=1,v1=" + b"A" * 64,
    "v1 too short": b"t=1,v1=abc",
    "v1 not ASCII": "t=1,v1=é".encode(),
    "v1 of 64 chars not ASCII": b"t=1,v1=" + "é".encode("latin-1") * 64,
    "two timestamps": b"t=1,t=2,v1=" + GOOD.encode(),
    "another part": b"t=1,v1=" + GOOD.encode() + b",x=1",
    "no v1": b"t=1",
    "empty": b",",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_signature_is_a_401_and_starts_nothing(hooked: Api, case: str) -> None:
    content, headers = signed({"amount": 5})
    sent = {**{k: v.encode() for k, v in headers.items()}, "X-Keel-Signature": MALFORMED[case]}
    response = hooked.client.post("/hooks/orders", content=content, headers=sent)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "X-Keel-Signature" in response.json()["detail"]
    assert hooked.store.list_runs(workflow="hooked") == []


def test_a_right_signature_among_several_v1_is_taken(hooked: Api) -> None:
    content, headers = signed({"amount": 5})
    stamp = headers["X-Keel-Signature"].split(",")[0].removeprefix("t=")
    right = digest(SECRET, stamp, headers["X-Keel-Delivery"], content)
    old = digest("the-old-secret", stamp, headers["X-Keel-Delivery"], content)
    rotating = {**headers, "X-Keel-Signature": f"t={stamp},v1={old},v1={right}"}
    response = hooked.client.post("/hooks/orders", content=content, headers=rotating)
    assert response.status_code == 201, response.text
    assert len(hooked.store.list_runs(workflow="hooked")) == 1


@pytest.mark.parametrize(
    "header",
    ["t=1,v1=" + "é" * 64, "t=" + "9" * 5000 + ",v1=" + GOOD, "t=²,v1=" + GOOD,
     "t=1,v1=" + "AB" * 32],
)  # fmt: skip
def test_verify_refuses_what_int_and_compare_digest_would_raise_on(header: str) -> None:
    with pytest.raises(SignatureError, match="X-Keel-Signature is not"):
        verify(header, SECRET, "d-1", b"{}", time.time(), 300)


def test_verify_takes_what_sign_writes() -> None:
    now = int(time.time())
    verify(sign(SECRET, now, "d-1", b"{}"), SECRET, "d-1", b"{}", now, 300)
    with pytest.raises(SignatureError, match="does not match"):
        verify(sign("other", now, "d-1", b"{}"), SECRET, "d-1", b"{}", now, 300)
