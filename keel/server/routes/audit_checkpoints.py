"""Signed checkpoints of the runs' heads: make one (signed with this server's key), list
them, read one whole (its heads and signature, for an auditor to check offline).

Making one needs ``act`` (an operator, an admin): it signs in the server's name, with
the server's key (``keel serve`` reads it as every process does:
``keel.runtime.audit_key``); a server without a key answers 409 saying how to give it
one. Reading needs ``read``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel

from keel.audit.checkpoints import checkpoint_document, make_checkpoint, summary_document
from keel.runtime.audit_key import HOW_TO_CONFIGURE
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.service import Service, service

router = APIRouter(tags=["audit"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Actor = Annotated[Identity, Depends(needs(Permission.ACT))]
Served = Annotated[Service, Depends(service)]


class NewCheckpoint(BaseModel):
    #: only this workflow's runs (None: every run)
    workflow: str | None = None


NO_BODY = NewCheckpoint()


@router.post("/audit/checkpoints", status_code=201)
def create_checkpoint(who: Actor, served: Served, body: NewCheckpoint = NO_BODY) -> dict[str, Any]:
    """Sign the heads of every run (or ``workflow``'s) as they are now, with this
    server's key, and store the checkpoint; ``by`` is the token's name."""
    key = served.signing_key
    if key is None:
        raise HTTPException(409, "this server has no audit signing key, so it cannot sign a "
                            f"checkpoint: {HOW_TO_CONFIGURE}, and restart keel serve")  # fmt: skip
    made = make_checkpoint(served.store, key, at=served.clock.now(), by=who.name,
                           workflow=body.workflow)  # fmt: skip
    return summary_document(made.summary())


@router.get("/audit/checkpoints")
def list_checkpoints(
    who: Reader,
    served: Served,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """Stored checkpoints without their heads, newest first."""
    return {"checkpoints": [summary_document(c) for c in served.store.checkpoints(limit=limit)]}


@router.get("/audit/checkpoints/{checkpoint_id}")
def read_checkpoint(
    checkpoint_id: Annotated[int, Path(ge=1, le=2**63 - 1)], who: Reader, served: Served
) -> dict[str, Any]:
    """One checkpoint whole: each run's signed head (``heads``: run id -> ``seq``,
    ``head``), when, by whom, and the signature (``algorithm``, ``key_id``, ``value``)
    over ``keel.audit.records.checkpoint_signed_data``."""
    found = served.store.checkpoint(checkpoint_id)
    if found is None:
        raise HTTPException(404, f"there is no checkpoint {checkpoint_id}")
    return checkpoint_document(found)
