"""Tokens, for admins: list them (never their secrets), create one (its secret is in
this response and nowhere else), revoke one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from keel.runtime.views.documents import token_document
from keel.server.guard import needs
from keel.server.identities import Identity, create_token
from keel.server.roles import Permission
from keel.server.service import Service, service

router = APIRouter(tags=["tokens"])

Admin = Annotated[Identity, Depends(needs(Permission.ADMIN))]
Served = Annotated[Service, Depends(service)]


class NewToken(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    role: Literal["viewer", "approver", "operator", "auditor", "admin"]
    groups: list[Annotated[str, Field(min_length=1, max_length=100)]] = []
    expires_in_days: float | None = Field(None, gt=0, le=3650)


@router.get("/tokens")
def tokens(who: Admin, served: Served) -> dict[str, Any]:
    now = served.clock.now()
    return {"tokens": [token_document(t, now) for t in served.store.tokens()]}


@router.post("/tokens", status_code=201)
def create(body: NewToken, who: Admin, served: Served) -> dict[str, Any]:
    now = served.clock.now()
    expires = None if body.expires_in_days is None else now + body.expires_in_days * 86400
    secret, record = create_token(served.store, body.name, body.role, groups=tuple(body.groups),
                                  expires_at=expires, created_by=who.name, now=now)  # fmt: skip
    return {**token_document(record, now), "token": secret}


@router.delete("/tokens/{name}")
def revoke(name: str, who: Admin, served: Served, request: Request) -> dict[str, Any]:
    """Revoke a token: this server refuses it at once, others within 2 s."""
    if not served.store.revoke_token(name, served.clock.now(), by=who.name):
        raise HTTPException(404, f"no usable token named '{name}' (unknown or revoked)")
    request.app.state.access.tokens.forget(name)
    return {"revoked": name}
