"""Schedules: list them with their next fire times, pause, unpause, trigger one now,
backfill a range of slots (one run per slot, none for a slot fired already)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel

from keel.runtime.triggers import schedule_views
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.service import Service, service

router = APIRouter(tags=["schedules"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Actor = Annotated[Identity, Depends(needs(Permission.ACT))]
Served = Annotated[Service, Depends(service)]


class Backfill(BaseModel):
    start: AwareDatetime
    end: AwareDatetime


@router.get("/schedules")
def schedules(who: Reader, served: Served) -> dict[str, Any]:
    """The deployed schedules with their state and next three fire times."""
    now = served.clock.now()
    return {"schedules": schedule_views.schedule_documents(served.store, served.plans, now)}


def _pause(name: str, paused: bool, who: Identity, served: Service) -> dict[str, Any]:
    schedule_views.pause_schedule(served.store, served.plans, name, paused, served.clock.now(),
                                  who.name)  # fmt: skip
    return {"name": name, "paused": paused}


@router.post("/schedules/{name}/pause")
def pause(name: str, who: Actor, served: Served) -> dict[str, Any]:
    return _pause(name, True, who, served)


@router.post("/schedules/{name}/unpause")
def unpause(name: str, who: Actor, served: Served) -> dict[str, Any]:
    return _pause(name, False, who, served)


@router.post("/schedules/{name}/trigger", status_code=201)
def trigger(name: str, who: Actor, served: Served) -> dict[str, Any]:
    """Start a run of the schedule now, outside its slots."""
    run_id = schedule_views.trigger_now(served.store, served.plans, name, served.clock.now())
    return {"name": name, "run": run_id}


@router.post("/schedules/{name}/backfill")
def backfill(name: str, body: Backfill, who: Actor, served: Served) -> dict[str, Any]:
    """One run per slot from ``start`` to ``end`` (both included, RFC 3339 times; not
    after now)."""
    started = schedule_views.backfill(served.store, served.plans, name, body.start.timestamp(),
                                      body.end.timestamp(), served.clock.now())  # fmt: skip
    return {"name": name, "slots": started}
