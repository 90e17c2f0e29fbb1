"""Versions of a workflow and diffs: what the store knows of each version (deploys,
runs), and what differs between two versions or two runs (``keel versions``, ``keel
diff``), read through the same views as the CLI."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from keel.runtime.views.diffs import diff_document
from keel.runtime.views.versions import versions_document
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.service import Service, service

router = APIRouter(tags=["versions"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Served = Annotated[Service, Depends(service)]

_NAMES = ("a run's id or first characters, a version's first digits, run:ID, "
          "version:DIGITS or WORKFLOW@DIGITS")  # fmt: skip
Named = Annotated[str, Query(min_length=1, max_length=300, description=_NAMES)]


@router.get("/workflows/{name}/versions")
def versions(name: str, who: Reader, served: Served) -> dict[str, Any]:
    """Every version of the workflow the store knows, newest first: deployed (when, by
    whom, from where; ``current``) or only seen in runs, each with its runs counted and
    the first and last run's start. 404 when it was never deployed nor run."""
    return versions_document(served.store, name)


@router.get("/diff")
def diff(a: Named, b: Named, who: Reader, served: Served) -> dict[str, Any]:
    """What differs from ``a`` to ``b``: two workflow versions (``kind: versions``:
    nodes added, removed or changed with the fields that changed, edges, workflow
    policies) or two runs (``kind: runs``: every path where their input, status,
    output or a node's input, output, error or skip reason differ). 404 when an
    argument names nothing; 422 when it names several things, or a run is compared
    with a version."""
    return diff_document(served.store, a, b)
