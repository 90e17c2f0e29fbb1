"""Alerts: each rule's state as the evaluating process (a worker's or a server's) last
recorded it. The rules are in that process's ``keel.toml``; this reads the store only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from keel.runtime.views.alerts import alert_documents
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.service import Service, service

router = APIRouter(tags=["operations"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Served = Annotated[Service, Depends(service)]


@router.get("/alerts")
def alerts(who: Reader, served: Served) -> dict[str, Any]:
    """Each alert rule evaluated so far, by name: its state (ok, pending, firing), since
    when, its last value and when it was read, the incident firing, what it checks."""
    return {"alerts": alert_documents(served.store)}
