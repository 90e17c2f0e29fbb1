"""The LLM ledger over the API: a run's model and tool calls with its spend per node and
in total, and the spend of workflows per model since a time. Both read the store only
(``keel.runtime.views.ledger``); money is given as integer nano-dollars (``*_nanos``)
and as an exact decimal string of dollars."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from keel.runtime.views.ledger import run_calls, spend_document
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.routes.runs import DateTime
from keel.server.service import Service, service

router = APIRouter(tags=["llm"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Served = Annotated[Service, Depends(service)]


@router.get("/runs/{run_id}/llm")
def run_llm(
    run_id: str,
    who: Reader,
    served: Served,
    node: Annotated[str | None, Query(description="only this node's calls")] = None,
    full: Annotated[
        bool, Query(description="each call's request and answer too (they may be long)")
    ] = False,
) -> dict[str, Any]:
    """The run's model and tool calls in the order each node (and map item) made them:
    attempt, kind, model, state (``answered``, ``failed``, ``possibly_billed``: sent by
    a process that died before recording the answer, charged its reservation; ``sent``:
    in flight), finish reason, tokens, cost, latency, price source; and ``ledger``, the
    run's spend per node and in total (null: no calls). 404 for a node the run does not
    have (as ``keel calls``)."""
    record = served.store.get_run(run_id)
    plan = served.plans.plan(record.spec_version)
    return run_calls(served.store, record, plan, node=node, full=full)


@router.get("/llm/spend")
def llm_spend(
    who: Reader,
    served: Served,
    since: Annotated[
        DateTime | None, Query(description="calls sent at or after this time (default: all)")
    ] = None,
    workflow: Annotated[str | None, Query(description="only this workflow's calls")] = None,
) -> dict[str, Any]:
    """Calls, tokens and cost per workflow and model (a tool call's model is the tool's
    name) of the calls sent since ``since``, and their total; a call in flight counts
    at its reservation."""
    start = 0.0 if since is None else since.timestamp()
    return spend_document(served.store.workflow_spend(start, workflow=workflow), start, workflow)
