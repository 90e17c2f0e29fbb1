"""Webhooks and events: ``POST|PUT /hooks/{path}`` (signed by the sender, no token:
``keel.runtime.triggers.webhooks``) and ``POST /events/{name}`` (a token that may act).

Both answer only once the runs are recorded: 201 when this request started one, 200
when every run it names was started before (the same delivery or message again) or no
trigger took it (``runs`` is empty). A payload a workflow refuses (its input schema, a
filter or mapping that cannot be evaluated) is a 422 naming each workflow that refused,
and starts nothing, for any workflow.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel, Field, JsonValue
from starlette.concurrency import run_in_threadpool

from keel.runtime.triggers.events import Emitted, emit
from keel.runtime.triggers.webhooks import (
    DeliveryError,
    MethodError,
    SignatureError,
    deliver,
    hooked,
)
from keel.server.access_log import note
from keel.server.guard import Access, needs
from keel.server.identities import Identity
from keel.server.limits import retry_after
from keel.server.roles import Permission
from keel.server.service import Service, service

log = logging.getLogger("keel.server")
router = APIRouter(tags=["triggers"])

Actor = Annotated[Identity, Depends(needs(Permission.ACT))]
Served = Annotated[Service, Depends(service)]

_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Nothing new started: the runs this delivery or message started "
                         "before, or none (no trigger took it)"},
    201: {"description": "At least one run was started (and recorded) by this request"},
}  # fmt: skip


class Event(BaseModel):
    data: JsonValue = Field(None, description="the event's data (what filters read)")
    id: str | None = Field(None, min_length=1, max_length=255,
                           description="the message id: the same id never starts a "
                                       "workflow's run twice (default: a random one)")  # fmt: skip


def _answer(emitted: list[Emitted], response: Response, **extra: str) -> dict[str, Any]:
    response.status_code = 201 if any(e.started for e in emitted) else 200
    runs = [{"workflow": e.workflow, "id": e.run.id, "started": e.started} for e in emitted]
    return {**extra, "runs": runs}


Delivery = Annotated[
    str | None,
    Header(alias="X-Keel-Delivery", description="the delivery's id, the same on every retry"),
]
Signature = Annotated[str | None, Header(alias="X-Keel-Signature",
                                         description="t=<unix seconds>,v1=<hex HMAC-SHA256 "
                                                     "of t.delivery.body>")]  # fmt: skip


# one function, a route per method: one route for both would give both methods the same
# operationId (FastAPI derives it per route), which OpenAPI forbids and FastAPI warns of
@router.api_route("/hooks/{path:path}", methods=["PUT"], status_code=201, responses=_ANSWERS)
@router.api_route("/hooks/{path:path}", methods=["POST"], status_code=201, responses=_ANSWERS)
async def hook(
    path: str,
    request: Request,
    response: Response,
    served: Served,
    delivery: Delivery = None,
    signature: Signature = None,
) -> dict[str, Any]:
    """A signed delivery to the webhooks at ``/hooks/PATH`` that take the request's
    method (no token: the signature is the sender's credential)."""
    if delivery:
        note(request, delivery=delivery)  # for the request's log line
    access: Access = request.app.state.access
    # no token to count by: a sender is counted by its address, before any work is done
    sender = request.client.host if request.client is not None else "unknown"
    wait = access.limits.wait_for(f"hook:{sender}", access.clock())
    if wait > 0:
        raise HTTPException(429, f"{sender} is over the webhooks' rate limit",
                            headers={"Retry-After": retry_after(wait)})  # fmt: skip
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        # the path first (a lookup in memory): a path no webhook is at (404) costs nothing
        # more, not even reading its body (which the BodyLimit middleware bounds)
        armed = await run_in_threadpool(hooked, served.plans, "/" + path, request.method)
        body = await request.body()
        emitted = await run_in_threadpool(
            deliver, served.store, armed, headers, body,
            now=access.clock(), plans=served.plans, clock=served.clock,
        )  # fmt: skip
    except SignatureError as exc:
        raise HTTPException(401, str(exc)) from None
    except DeliveryError as exc:
        raise HTTPException(400, str(exc)) from None
    except MethodError as exc:
        raise HTTPException(405, str(exc)) from None
    return _answer(emitted, response, delivery=headers.get("x-keel-delivery", ""))


@router.post("/events/{name}", status_code=201, responses=_ANSWERS)
def event(name: str, body: Event, who: Actor, served: Served, response: Response) -> dict[str, Any]:
    """Start the runs of the workflows whose event triggers take this event."""
    message_id = body.id or uuid.uuid4().hex
    emitted = emit(served.store, name, body.data, message_id, served.plans, served.clock)
    return _answer(emitted, response, event=name, id=message_id)
