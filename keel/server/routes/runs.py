"""Runs: start (by deployed workflow name or version, at most once per
``Idempotency-Key``), list with server-side filters and a cursor, read one with its
nodes, its history by sequence number, what its tasks logged, verify it, and act on it.

Every action is recorded with the token's identity as ``by``; nobody can declare
another name over the API.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from keel.runtime.operations.control import cancel_run
from keel.runtime.operations.deployed import deployed, start_once
from keel.runtime.operations.fork import fork_run
from keel.runtime.operations.interventions import pause_run, send_signal, unpause_run
from keel.runtime.operations.manual import retry_run, set_node_output
from keel.runtime.runs import RunCache
from keel.runtime.views.activity import run_activity
from keel.runtime.views.documents import (
    event_document,
    listed_run_document,
    run_detail,
    run_document,
    verification_document,
)
from keel.runtime.views.story import run_story
from keel.runtime.views.task_logs import log_line_document, run_logs
from keel.runtime.views.why import run_why
from keel.runtime.views.why_reasons import RunWhy
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.policies import setting_allowed
from keel.server.roles import Permission
from keel.server.service import Service, decode_cursor, encode_cursor, service

router = APIRouter(tags=["runs"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Actor = Annotated[Identity, Depends(needs(Permission.ACT))]
Served = Annotated[Service, Depends(service)]
Status = Literal["pending", "running", "failing", "paused", "succeeded", "failed", "cancelled"]
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")


def _rfc3339(value: object) -> object:
    """Pydantic would read ``0.5`` as seconds since 1970; the schema promises an RFC 3339
    date-time, so only that is accepted (and with its offset: a bare local time would be
    read in the server's zone, which the client does not know)."""
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError("not a date-time: use RFC 3339, e.g. 2025-01-31T12:00:00Z")
    return value


DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class StartRun(BaseModel):
    workflow: str = Field(min_length=1, description="a deployed workflow's name")
    version: str | None = Field(None, description="a deployed version (default: current)")
    input: JsonValue = Field(None, description="the run's input (default: {})")


class Reason(BaseModel):
    reason: str = ""


class Retry(BaseModel):
    node: str | None = Field(None, description="re-run only this node and what depends on it")
    reason: str = ""


class Skip(BaseModel):
    output: JsonValue = None
    reason: str = ""


class Signal(BaseModel):
    data: JsonValue = None


class Fork(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from", min_length=1,
                       description="the node to run again, with every node after it")  # fmt: skip
    set: dict[str, JsonValue] = Field(
        default_factory=dict,
        description='"input.FIELD" (or "input") and "nodes.NODE.output" of a reused node, '
        "to their new values",
    )
    version: str | None = Field(None, description="another version of the workflow to run")
    dry_run: bool = Field(False, description="only say what the fork would do")


#: an action's body may be left out: these are what it means then
NO_REASON = Reason()
NO_RETRY = Retry()
NO_SKIP = Skip()
NO_SIGNAL = Signal()


@router.post("/runs", status_code=201, responses={
    200: {"description": "A run this Idempotency-Key already started (none is started)",
          "content": {"application/json": {"schema": {"type": "object"}}}},
})  # fmt: skip
def start(
    body: StartRun,
    who: Actor,
    served: Served,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> dict[str, Any]:
    """Start a run of a deployed workflow. With an ``Idempotency-Key`` header, the same
    key never starts two runs: a repeat answers 200 with the first run."""
    store = served.store
    deployment = deployed(store, body.workflow, body.version)
    spec = served.plans.plan(deployment.version).spec
    run_input = {} if body.input is None else body.input
    record, started = start_once(store, spec, run_input, key=idempotency_key,
                                 started_by=who.name, plans=served.plans,
                                 clock=served.clock)  # fmt: skip
    if not started:
        response.status_code = 200
    response.headers["Location"] = f"/runs/{record.id}"
    return run_document(record)


@router.get("/runs")
def list_runs(
    who: Reader,
    served: Served,
    status: Status | None = None,
    workflow: str | None = None,
    version: str | None = None,
    parent: str | None = None,
    started_by: str | None = None,
    late: Annotated[
        bool | None,
        Query(
            description="only runs past (true) or not past (false) their "
            "workflow's expected duration"
        ),
    ] = None,
    created_after: DateTime | None = None,
    created_before: DateTime | None = None,
    ended_after: DateTime | None = None,
    ended_before: DateTime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Newest first; every filter given must hold (a run not ended has no end: the
    ``ended_`` filters leave it out). Pass ``next_cursor`` back as ``cursor`` for the
    next page (null: this was the last)."""
    after = None if cursor is None else decode_cursor(cursor, (float, str))
    records = served.store.list_runs(
        status=status, workflow=workflow, version=version, parent=parent,
        started_by=started_by, limit=limit, late=late,
        created_after=_seconds(created_after), created_before=_seconds(created_before),
        ended_after=_seconds(ended_after), ended_before=_seconds(ended_before),
        cursor=None if after is None else (float(after[0]), str(after[1])),
    )  # fmt: skip
    last = records[-1] if len(records) == limit else None
    following = None if last is None else encode_cursor(last.created_at, last.id)
    now = served.clock.now()
    listed = [listed_run_document(r, run_activity(served.store, r, now)) for r in records]
    return {"runs": listed, "next_cursor": following}


@router.get("/runs/{run_id}")
def show(run_id: str, who: Reader, served: Served) -> dict[str, Any]:
    """The run and each of its nodes, read from its history (as ``keel show``)."""
    record = served.store.get_run(run_id)
    plan = served.plans.plan(record.spec_version)
    return run_detail(served.store, record, plan, served.clock.now())


@router.get("/runs/{run_id}/history")
def history(
    run_id: str,
    who: Reader,
    served: Served,
    after: Annotated[int, Query(ge=0, le=2**62, description="only events after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """The run's events in order with their hash chain; ``next_after`` pages on. A
    pruned run has none left (``pruned_at``: when they were removed; ``GET
    /runs/{id}`` gives its tombstone)."""
    record = served.store.get_run(run_id)
    events = served.store.history(record.id, after, before_seq=after + limit + 1)
    more = bool(events) and events[-1].seq < record.last_seq
    return {"run_id": record.id, "events": [event_document(e) for e in events],
            "next_after": events[-1].seq if more else None,
            "pruned_at": record.pruned_at}  # fmt: skip


@router.get("/runs/{run_id}/logs")
def logs(
    run_id: str,
    who: Reader,
    served: Served,
    node: Annotated[str | None, Query(description="only lines of this node")] = None,
    attempt: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="only lines of this attempt")
    ] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="only lines after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """What the run's tasks logged through ``ctx.logger``, in the order written (as
    ``keel logs``); ``next_after`` pages on. ``status`` is the run's, read before the
    lines: to follow a running run, ask again with the last line's ``seq`` until its
    status has ended and ``next_after`` is null. 404 for a node the run does not have,
    or an attempt it never started (as ``keel logs``)."""
    record = served.store.get_run(run_id)
    lines = run_logs(served.store, record, served.plans.plan(record.spec_version), node=node,
                     attempt=attempt, after=after, limit=limit)  # fmt: skip
    return {"run_id": record.id, "status": record.status,
            "lines": [log_line_document(line) for line in lines],
            "next_after": lines[-1].seq if len(lines) == limit else None}  # fmt: skip


@router.get("/runs/{run_id}/verify")
def verify(run_id: str, who: Reader, served: Served) -> dict[str, Any]:
    """The hash chain and the run's row checked against its history (``keel verify``)."""
    record = served.store.get_run(run_id)
    replay = RunCache(served.store, capacity=1)
    return verification_document(served.store, record, replay.state)


@router.get("/runs/{run_id}/story")
def story(run_id: str, who: Reader, served: Served) -> dict[str, Any]:
    """The run's story (as ``keel replay RUN --json``): every event in order, in words,
    with who did it and its values, each marked ``decided`` when the workflow's
    definition made it; and whether the run's row agrees with its replayed history."""
    record = served.store.get_run(run_id)
    return run_story(served.store, record, served.plans.plan(record.spec_version))


@router.get("/runs/{run_id}/why")
def why(run_id: str, who: Reader, served: Served) -> RunWhy:
    """Why the run has not ended: per node not ended (per item of a map), a reason with
    its data, the first thing holding it and what would hold it next (``keel why``)."""
    record = served.store.get_run(run_id)
    plan = served.plans.plan(record.spec_version)
    return run_why(served.store, record, plan, served.clock.now())


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, who: Actor, served: Served, body: Reason = NO_REASON) -> dict[str, Any]:
    return run_document(
        cancel_run(served.store, run_id, reason=body.reason, by=who.name, clock=served.clock)
    )


@router.post("/runs/{run_id}/pause")
def pause(run_id: str, who: Actor, served: Served, body: Reason = NO_REASON) -> dict[str, Any]:
    return run_document(
        pause_run(served.store, run_id, reason=body.reason, by=who.name, clock=served.clock)
    )


@router.post("/runs/{run_id}/unpause")
def unpause(run_id: str, who: Actor, served: Served, body: Reason = NO_REASON) -> dict[str, Any]:
    return run_document(
        unpause_run(served.store, run_id, reason=body.reason, by=who.name, clock=served.clock)
    )


@router.post("/runs/{run_id}/retry")
def retry(run_id: str, who: Actor, served: Served, body: Retry = NO_RETRY) -> dict[str, Any]:
    """Continue a failed run from its failed nodes (or from ``node``)."""
    record = retry_run(
        served.store, run_id, node=body.node, by=who.name, reason=body.reason, clock=served.clock
    )
    return run_document(record)


@router.post("/runs/{run_id}/fork", status_code=201, responses={
    200: {"description": "A dry run: what the fork would do (nothing is started)",
          "content": {"application/json": {"schema": {"type": "object"}}}},
})  # fmt: skip
def fork(run_id: str, body: Fork, who: Actor, served: Served, response: Response) -> dict[str, Any]:
    """Start a new run from a run that has ended (``keel fork``): every node not after
    ``from`` takes its output from the run; ``from`` and what follows run again. The
    answer says which nodes are reused and which run again (with their side effects),
    and has the new ``run``; the run forked from records who forked it."""
    forked = fork_run(served.store, run_id, body.from_, dict(body.set), version=body.version,
                      by=who.name, started_by=who.name, dry_run=body.dry_run,
                      clock=served.clock)  # fmt: skip
    if forked.run is None:
        response.status_code = 200
    else:
        response.headers["Location"] = f"/runs/{forked.run.id}"
    return {**forked.document(),
            "run": None if forked.run is None else run_document(forked.run)}  # fmt: skip


@router.post("/runs/{run_id}/nodes/{node}/skip")
def skip(
    run_id: str, node: str, who: Actor, served: Served, body: Skip = NO_SKIP
) -> dict[str, Any]:
    """Mark a node done by hand with ``output`` (checked against the task's return type,
    which needs the workflow's code loaded in the server). Setting an approval decides
    it: only its deciders may (``decide``, and its assignees); setting a child-run node
    passes over every approval inside it: only an admin may."""
    record = set_node_output(served.store, run_id, node, body.output, by=who.name,
                             reason=body.reason, clock=served.clock,
                             guard=setting_allowed(who))  # fmt: skip
    return run_document(record)


@router.post("/runs/{run_id}/signals/{name}")
def signal(
    run_id: str, name: str, who: Actor, served: Served, body: Signal = NO_SIGNAL
) -> dict[str, Any]:
    return run_document(
        send_signal(served.store, run_id, name, body.data, by=who.name, clock=served.clock)
    )
