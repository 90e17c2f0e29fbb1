"""Webhook deliveries: who may deliver (an HMAC signature), and the runs a delivery
starts. The HTTP route (``keel.server.routes.hooks``) only reads the request.

A webhook is authenticated by its signature, never by a bearer token: the sender holds
a secret shared with the server (in the environment variable the trigger's
``secret_env`` names; a spec never holds it). There is no unsigned webhook: a spec
without ``secret_env`` is refused when validated (an open URL that starts runs is not
something keel offers), and a server whose environment lacks the secret refuses every
delivery (403) and says why in its log.

``X-Keel-Signature: t=<unix seconds>,v1=<hex>`` where the hex is
HMAC-SHA256(secret, ``f"{t}.{delivery}.{body}"``): the timestamp bounds replays to the
trigger's ``tolerance``, and the delivery id (``X-Keel-Delivery``) is signed too, so a
captured request cannot be replayed under a fresh id to start another run. The delivery
id is the firing's key: the same delivery, repeated or concurrent, starts one run.

What an unauthenticated request costs is bounded before it is believed. The triggers at
a path come from an in-memory index (``keel.runtime.triggers.live``), so a path with no
webhook is answered after a dict lookup: no store read, no HMAC, its body not even read.
A delivery to a live path is checked in this order, each step before the next: its id's
form, its signature (one HMAC per distinct secret at the path, whatever the number of
triggers; every candidate compared in constant time), and only then its body parsed as
JSON: a body nobody signed is never parsed.

A path with no webhook answers 404, not the 401 of a bad signature. The path is not a
credential (it is in the spec and in every sender's settings; the secret is what
authenticates), and a 401 there would hide nothing: a live path still answers 405 to
another method and does an HMAC an unknown path does not (so it is slower), and making
both look alike would mean doing work for requests nobody can sign. What senders show
the person who set a hook up (GitHub's "Recent Deliveries", Stripe's event log) is the
status: 404 says "wrong URL, or not deployed", 401 "wrong secret" -- two different
fixes. The 404 names only the path the request sent, never the paths that exist.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from keel.errors import ForbiddenError, KeelError, WorkflowNotFoundError
from keel.runtime.clock import Clock
from keel.runtime.runs import RunCache
from keel.runtime.triggers.firing import Armed, Emitted, Firing, Offer, start_all_or_none
from keel.spec.triggers import WebhookTrigger
from keel.store.protocol import Store

log = logging.getLogger("keel.triggers")

SIGNATURE = "x-keel-signature"
DELIVERY = "x-keel-delivery"
#: request headers never put in the event a filter or mapping reads (credentials): these,
#: and any whose name says it holds one (a mapping would write it into the history)
HIDDEN = frozenset({SIGNATURE, "authorization", "cookie", "proxy-authorization"})
_CREDENTIAL = re.compile(r"token|secret|signature|key|auth|cookie|session|password", re.I)
_DELIVERY_ID = re.compile(r"[A-Za-z0-9_:-]{1,200}")
#: a signature's parts: ASCII digits (``str.isdigit`` takes other scripts' digits, which
#: ``int`` refuses) and lower-case hex, as ``sign`` writes them
_STAMP = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-f]{64}")


class SignatureError(KeelError):
    """The delivery is not signed, or not by the secret, or too long ago: 401."""


class DeliveryError(KeelError):
    """The request is not a delivery keel can take (no delivery id, no JSON): 400."""


class MethodError(KeelError):
    """A webhook is at this path, but for another method: 405."""


def sign(secret: str, timestamp: int, delivery: str, body: bytes) -> str:
    """The ``X-Keel-Signature`` header a sender puts on a delivery."""
    return f"t={timestamp},v1={_digest(secret, str(timestamp), delivery, body)}"


def _digest(secret: str, timestamp: str, delivery: str, body: bytes) -> str:
    message = timestamp.encode() + b"." + delivery.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(header: str | None, secret: str, delivery: str, body: bytes, now: float,
           tolerance: float) -> None:  # fmt: skip
    """Refuse (``SignatureError``) unless ``header`` signs this delivery with ``secret``
    at a time within ``tolerance`` seconds of ``now``. Any of several ``v1`` may match
    (a sender rotating its secret signs with both)."""
    if not header:
        raise SignatureError("the delivery is not signed: send X-Keel-Signature: t=...,v1=...")
    stamp, given = _parsed(header)
    if abs(now - int(stamp)) > tolerance:
        raise SignatureError(f"the signature's time is more than {tolerance:g} s from the "
                             "server's: sign each delivery when sending it")  # fmt: skip
    expected = _digest(secret, stamp, delivery, body).encode()
    # every candidate compared, in constant time each
    if not any([hmac.compare_digest(expected, value) for value in given]):  # noqa: C419
        raise SignatureError("the signature does not match the delivery and the secret")


def _parsed(header: str) -> tuple[str, list[bytes]]:
    """The timestamp and the ``v1`` digests of a header that is exactly
    ``t=DIGITS,v1=HEX[,v1=HEX...]``; anything else (a part of another form, a timestamp
    of more than 12 digits, a digest not 64 lower-case hex digits, any other character)
    is refused as unsigned: what an unauthenticated sender wrote is never handed to
    ``int`` or ``compare_digest`` unchecked."""
    parts = [part.strip().partition("=") for part in header.split(",")]
    stamps = [value for key, _, value in parts if key == "t"]
    given = [value for key, _, value in parts if key == "v1"]
    if (len(stamps) != 1 or not given or len(stamps) + len(given) != len(parts)
            or not _STAMP.fullmatch(stamps[0])
            or not all(_HEX.fullmatch(value) for value in given)):  # fmt: skip
        raise SignatureError("X-Keel-Signature is not t=<unix seconds>,v1=<64 hex digits of "
                             "hmac-sha256>")  # fmt: skip
    return stamps[0], [value.encode() for value in given]


def hooked(plans: RunCache, path: str, method: str) -> list[Armed]:
    """The live webhook triggers at ``path`` for ``method`` (404, 405 when none): a
    lookup in ``plans.live``'s index, which reads the store at most every second."""
    at_path = plans.live.hooks(path)
    if not at_path:
        raise WorkflowNotFoundError(f"no deployed workflow has a webhook at /hooks{path}")
    armed = [a for a in at_path if isinstance(a.trigger, WebhookTrigger)
             and a.trigger.method == method]  # fmt: skip
    if not armed:
        methods = sorted(
            {a.trigger.method for a in at_path if isinstance(a.trigger, WebhookTrigger)}
        )
        raise MethodError(f"the webhook at /hooks{path} takes {', '.join(methods)}, not {method}")
    return armed


def _secret(trigger: WebhookTrigger) -> str:
    assert trigger.secret_env is not None  # a spec without one is refused when parsed
    secret = os.environ.get(trigger.secret_env)
    if not secret:
        # the server's setup is wrong, not the request: said in the log, not to the sender
        log.error(
            "webhook %s: the environment variable %s (its secret) is not set",
            trigger.path,
            trigger.secret_env,
        )
        raise ForbiddenError("the webhook's secret is not set on the server")
    return secret


def _signed(armed: Sequence[Armed], header: str | None, delivery: str, body: bytes,
            now: float) -> list[tuple[Armed, WebhookTrigger]]:  # fmt: skip
    """The triggers of ``armed`` the delivery is signed for; refused (the first reason)
    when none. One HMAC per distinct secret and tolerance, however many triggers share it."""
    checked: dict[tuple[str, float], SignatureError | None] = {}
    signed: list[tuple[Armed, WebhookTrigger]] = []
    refusal: KeelError | None = None
    for one in armed:
        assert isinstance(one.trigger, WebhookTrigger)
        try:
            secret = _secret(one.trigger)
        except ForbiddenError as exc:
            refusal = refusal or exc
            continue
        key = (secret, one.trigger.tolerance)
        if key not in checked:
            try:
                verify(header, secret, delivery, body, now, one.trigger.tolerance)
                checked[key] = None
            except SignatureError as exc:
                checked[key] = exc
        failed = checked[key]
        if failed is not None:
            refusal = refusal or failed
            continue
        signed.append((one, one.trigger))
    if not signed:
        assert refusal is not None
        raise refusal
    return signed


def deliver(
    store: Store,
    armed: Sequence[Armed],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    plans: RunCache,
    clock: Clock | None = None,
) -> list[Emitted]:
    """Start the run of each of ``armed`` (``hooked``: the webhooks at one path for the
    request's method) this delivery is signed for and whose filter takes it, one per
    workflow; each is recorded before this returns. When a workflow refuses it (its input
    schema, a filter or mapping that cannot be evaluated): ``InputError`` naming each that
    refused, and no run started, whatever the order the workflows were deployed in.
    ``headers``: lower-cased."""
    delivery = headers.get(DELIVERY, "")
    if not delivery:
        raise DeliveryError("a delivery needs an id (X-Keel-Delivery), the same on every retry")
    if not _DELIVERY_ID.fullmatch(delivery):  # no '.': the signed text splits one way only
        raise DeliveryError("a delivery id (X-Keel-Delivery) is 1 to 200 letters, digits, "
                            "'_', '-' or ':'")  # fmt: skip
    signed = _signed(armed, headers.get(SIGNATURE), delivery, body, now)
    path = signed[0][1].path  # every one of ``armed`` is at the one path
    try:
        payload: Any = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        raise DeliveryError("the delivery's body is not JSON") from None
    event = {"body": payload, "path": path,
             "headers": {k: v for k, v in headers.items()
                         if k not in HIDDEN and not _CREDENTIAL.search(k)}}  # fmt: skip
    offers = (Offer(one, event, payload) for one, _ in signed)
    return start_all_or_none(store, offers, "event", Firing("webhook", path, delivery),
                             f"delivery {delivery}", plans=plans, clock=clock)  # fmt: skip
