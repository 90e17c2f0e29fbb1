"""Deployed workflow versions: which definitions a server may start by name.

The store keeps one row per deploy, append-only, so "who made this version current, and
when" is never overwritten. A workflow's current version is the one deployed last
(deploying an older version again is the rollback).
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
