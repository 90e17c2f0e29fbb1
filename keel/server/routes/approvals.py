"""Approvals: list what waits for a decision, approve or reject.

Who may decide is checked twice: the route needs the ``decide`` permission, and an
approval with ``assignees`` or a ``role`` can only be decided by an identity whose name,
role or one of whose groups is among them (or by an admin). The check runs inside the
decision's transaction, against the approval as it waits, so nothing is recorded when
it fails (``keel.server.policies``, which the dashboard uses too).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, JsonValue

from keel.runtime.operations.interventions import approve, reject
from keel.runtime.views.documents import run_document, wait_document
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.policies import decider_check
from keel.server.roles import Permission
from keel.server.service import Service, service
from keel.store.records import Wait

router = APIRouter(tags=["approvals"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Decider = Annotated[Identity, Depends(needs(Permission.DECIDE))]
Served = Annotated[Service, Depends(service)]


class Approve(BaseModel):
    data: JsonValue = None
    comment: str = ""


class Reject(BaseModel):
    comment: str = ""


def _assigned_to(who: Identity, wait: Wait) -> bool:
    allowed = (*(wait.details.get("assignees") or ()), *filter(None, [wait.details.get("role")]))
    return not allowed or who.matches(tuple(allowed))


#: an action's body may be left out: these are what it means then
NO_APPROVE = Approve()
NO_REJECT = Reject()


@router.get("/approvals")
def approvals(
    who: Reader,
    served: Served,
    run_id: str | None = None,
    mine: Annotated[bool, Query(description="only those this token may decide")] = False,
) -> dict[str, Any]:
    """Approvals waiting for a decision, oldest first."""
    run = served.store.get_run(run_id).id if run_id is not None else None
    found = served.store.waits(waits_for="approval", run_id=run)
    if mine:
        found = [w for w in found if who.may(Permission.DECIDE) and
                 (who.role == "admin" or _assigned_to(who, w))]  # fmt: skip
    return {"approvals": [wait_document(w) for w in found]}


@router.post("/runs/{run_id}/approvals/{node}/approve")
def approve_node(
    run_id: str, node: str, who: Decider, served: Served, body: Approve = NO_APPROVE
) -> dict[str, Any]:
    record = approve(served.store, run_id, node, data=body.data, comment=body.comment,
                     by=who.name, decider=decider_check(who), clock=served.clock,
                     signer=served.signing_key)  # fmt: skip
    return run_document(record)


@router.post("/runs/{run_id}/approvals/{node}/reject")
def reject_node(
    run_id: str, node: str, who: Decider, served: Served, body: Reject = NO_REJECT
) -> dict[str, Any]:
    record = reject(served.store, run_id, node, comment=body.comment, by=who.name,
                    decider=decider_check(who), clock=served.clock,
                    signer=served.signing_key)  # fmt: skip
    return run_document(record)
