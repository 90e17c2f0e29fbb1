"""Deployed workflow versions: which definitions a server may start by name, and every
version the store keeps, with how much it was run.

The store keeps one row per deploy, append-only, so "who made this version current, and
when" is never overwritten. A workflow's current version is the one deployed last
(deploying an older version again is the rollback). A version can also be stored without
a deploy: a run started from code saves its definition (``keel run FILE``), as a parent
run saves the children it may start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Deployment:
    id: int
    workflow: str
    version: str
    deployed_at: float
    deployed_by: str | None
    #: where the definition came from (a file, a module, ``api``), for people
    source: str | None


def deployment_of(row: Sequence[Any]) -> Deployment:
    """A deployment as both backends select it (``select_deployments``'s columns)."""
    deploy_id, workflow, version, deployed_at, deployed_by, source = row
    return Deployment(int(deploy_id), workflow, version, deployed_at, deployed_by, source)


def current_versions(deployments: Sequence[Deployment]) -> dict[str, Deployment]:
    """Each workflow's newest deployment (its current version), by workflow name."""
    current: dict[str, Deployment] = {}
    for deployment in sorted(deployments, key=lambda d: d.id):
        current[deployment.workflow] = deployment
    return current


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A definition the store keeps (``Store.stored_versions``), with its runs counted."""

    version: str
    workflow: str
    #: when the store first kept it (its first deploy or run, or a parent's run)
    stored_at: float
    #: how many runs started with it, and when the first and the last of them started
    runs: int
    first_run_at: float | None
    last_run_at: float | None


def stored_version_of(row: Sequence[Any]) -> StoredVersion:
    """A stored version as both backends select it (``select_stored_versions``)."""
    version, workflow, stored_at, runs, first, last = row
    return StoredVersion(version, workflow, float(stored_at), int(runs),
                         None if first is None else float(first),
                         None if last is None else float(last))  # fmt: skip
