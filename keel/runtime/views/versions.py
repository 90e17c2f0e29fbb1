"""Every version of a workflow the store knows, newest first (``keel versions``,
``GET /workflows/{name}/versions``).

A version is known from its deploys (when, by whom, from where; the one deployed last is
current) or only from runs (``keel run FILE`` stores the definition it starts, deployed
or not), or is stored for a parent run that may start it. Each comes with how many runs
started with it and when the first and last did: one read of the stored versions
(``Store.stored_versions``) and one of the workflow's deploys, whatever the runs.

"Newest" is when the store first kept the version: its first deploy or run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from keel.errors import WorkflowNotFoundError
from keel.store.deployments import Deployment, StoredVersion
from keel.store.protocol import Store

#: the most versions of one workflow listed (a workflow deployed on every commit for
#: years has a few thousand)
MOST_VERSIONS = 10_000


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    stored: StoredVersion
    #: its deploys, oldest first (none: only seen in runs, or stored for a parent)
    deployments: tuple[Deployment, ...]
    #: the version deployed last
    current: bool

    @property
    def seen(self) -> Literal["deployed", "run", "stored"]:
        """How the store came to know it: deployed, started by runs without a deploy,
        or only stored (a child workflow a parent run may start)."""
        if self.deployments:
            return "deployed"
        return "run" if self.stored.runs else "stored"


def workflow_versions(store: Store, workflow: str) -> list[WorkflowVersion]:
    """The workflow's versions, newest first; ``WorkflowNotFoundError`` when the store
    has none (no deploy and no run of that name)."""
    stored = store.stored_versions(workflow=workflow, limit=MOST_VERSIONS)
    deploys = store.deployments(workflow)
    if not stored:
        raise WorkflowNotFoundError(
            f"no version of workflow '{workflow}' is stored: it was never deployed nor run "
            "here (see `keel workflows` and `keel runs`)"
        )
    current = deploys[-1].version if deploys else None
    by_version: dict[str, list[Deployment]] = {}
    for deploy in deploys:
        by_version.setdefault(deploy.version, []).append(deploy)
    found = [WorkflowVersion(v, tuple(by_version.get(v.version, ())), v.version == current)
             for v in stored]  # fmt: skip
    return sorted(found, key=lambda v: (-v.stored.stored_at, v.stored.version))


def version_document(v: WorkflowVersion) -> dict[str, Any]:
    s = v.stored
    return {
        "version": s.version, "workflow": s.workflow, "seen": v.seen, "current": v.current,
        "stored_at": s.stored_at, "runs": s.runs, "first_run_at": s.first_run_at,
        "last_run_at": s.last_run_at,
        "deployments": [{"id": d.id, "deployed_at": d.deployed_at, "deployed_by": d.deployed_by,
                         "source": d.source} for d in v.deployments],
    }  # fmt: skip


def versions_document(store: Store, workflow: str) -> dict[str, Any]:
    """``workflow_versions`` as JSON: the ``workflow``, its ``current_version`` (None:
    never deployed) and its ``versions``, newest first, each with how it was ``seen``
    (deployed, run, stored), whether it is ``current``, when it was ``stored_at``, its
    ``runs`` with the ``first_run_at`` and ``last_run_at``, and its ``deployments``."""
    versions = workflow_versions(store, workflow)
    current = next((v.stored.version for v in versions if v.current), None)
    return {"workflow": workflow, "current_version": current,
            "versions": [version_document(v) for v in versions]}  # fmt: skip
