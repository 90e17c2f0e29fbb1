"""The audit export over HTTP: ``GET /audit/export`` streams what ``keel audit export``
writes (``keel.audit.export``), for a token that may audit (the ``auditor`` role, or an
admin). The selection is checked (each named run exists) before the first byte, so a
bad request is a 4xx, never a cut-off export; after that, runs are read a page at a time
while the answer is sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse

from keel.audit.export import Selection, export_csv, export_jsonl, resolved
from keel.audit.signing import PublicKey, SigningError
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.routes.runs import DateTime
from keel.server.service import Service, service

router = APIRouter(tags=["audit"])

Auditor = Annotated[Identity, Depends(needs(Permission.AUDIT))]
Served = Annotated[Service, Depends(service)]

MEDIA = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    responses={200: {
        "description": "The export, streamed: JSON Lines (verify it with `keel audit "
                       "verify`) or CSV",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}}},
    }},
)  # fmt: skip
def export(
    who: Auditor,
    served: Served,
    run: Annotated[list[str] | None, Query(description="a run to export; repeat")] = None,
    workflow: str | None = None,
    since: Annotated[DateTime | None, Query(description="runs created at or after")] = None,
    until: Annotated[DateTime | None, Query(description="runs created before")] = None,
    format: Literal["jsonl", "csv"] = "jsonl",
    key: Annotated[
        list[str] | None, Query(description="a public key (ed25519:...) to publish in it")
    ] = None,
    checkpoints: Annotated[
        Literal["newest", "all", "none"],
        Query(
            description="signed checkpoints to carry: the newest (of every run, and of "
            "the workflow), all, or none"
        ),
    ] = "newest",
) -> StreamingResponse:
    """Every event of the selected runs (all runs without a filter) with who, what,
    when, inputs and outputs, each run's hash chain and head, and its LLM calls."""
    from keel import __version__

    try:
        keys = [PublicKey.from_text(text) for text in key or []]
    except SigningError as exc:
        raise HTTPException(422, f"key: {exc}") from None
    selection = resolved(served.store, Selection(
        runs=tuple(run or ()), workflow=workflow,
        since=None if since is None else since.timestamp(),
        until=None if until is None else until.timestamp(),
    ))  # fmt: skip
    if format == "csv":
        lines = export_csv(served.store, selection)
    else:
        lines = export_jsonl(served.store, selection, exported_at=served.clock.now(),
                             keel_version=__version__, keys=keys,
                             checkpoints=checkpoints)  # fmt: skip
    disposition = f'attachment; filename="keel-audit.{format}"'
    return StreamingResponse(lines, media_type=MEDIA[format],
                             headers={"Content-Disposition": disposition})  # fmt: skip
