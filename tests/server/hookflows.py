"""A workflow with webhooks and an event trigger, and signed deliveries to it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime.triggers.webhooks import sign
from keel.store.protocol import Store

SECRET_ENV = "KEEL_TEST_HOOK_SECRET"
SECRET = "s3cret-for-tests"

HOOKED_YAML = f"""
name: hooked
input_schema:
  type: object
  properties:
    amount: {{type: number}}
  required: [amount]
  additionalProperties: false
nodes:
  - id: a
    task: m:f
triggers:
  - {{kind: webhook, path: /orders, secret_env: {SECRET_ENV}}}
  - {{kind: webhook, path: /orders/put, method: PUT, secret_env: {SECRET_ENV}}}
  - kind: webhook
    path: /big
    secret_env: {SECRET_ENV}
    filter: "event.body.total > 100 && event.headers['x-shop'] == 'main'"
    input: {{amount: event.body.total}}
  - {{kind: event, event: order, filter: "event.amount > 0"}}
"""


def deploy_hooked(store: Store) -> None:
    (spec,) = load_yaml_text(HOOKED_YAML, "hooked.yaml")
    store.deploy([(spec, "hooked.yaml")], 1.0, by="setup")


def signed(body: Any, *, delivery: str | None = None, at: float | None = None,
           secret: str = SECRET) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    """A delivery's body and headers, signed now (or ``at``) with a fresh id."""
    content = json.dumps(body).encode()
    delivery = delivery or uuid.uuid4().hex
    stamp = int(time.time() if at is None else at)
    return content, {"X-Keel-Delivery": delivery, "Content-Type": "application/json",
                     "X-Keel-Signature": sign(secret, stamp, delivery, content)}  # fmt: skip
