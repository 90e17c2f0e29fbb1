"""Deployed workflows: list them with their current version, see one's deploys, and
deploy a YAML or JSON definition (validated first: 422 with every problem located by
line and column, and nothing stored).

A posted definition names its tasks (``module:function``); the server does not import
them: workers that load that code execute the runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from keel.authoring.yaml_source import load_yaml_text
from keel.errors import SpecError, SpecIssue
from keel.runtime.triggers.deploying import check_deploy
from keel.runtime.views.documents import (
    deployment_document,
    deployments_document,
    workflows_document,
)
from keel.server.guard import needs
from keel.server.identities import Identity
from keel.server.roles import Permission
from keel.server.service import Service, service
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.deployments import Deployment, current_versions

router = APIRouter(tags=["workflows"])

Reader = Annotated[Identity, Depends(needs(Permission.READ))]
Admin = Annotated[Identity, Depends(needs(Permission.ADMIN))]
Served = Annotated[Service, Depends(service)]

#: the largest definition the API accepts (characters)
MOST_CHARACTERS = 1_000_000


class Deploy(BaseModel):
    definition: str = Field(
        min_length=1, max_length=MOST_CHARACTERS,
        description="one or more workflows in YAML (JSON is YAML too), as a file holds them",
    )  # fmt: skip


@router.get("/workflows")
def workflows(who: Reader, served: Served) -> dict[str, Any]:
    """Each deployed workflow with its current version and how many it has."""
    return {"workflows": workflows_document(served.store)}


@router.get("/workflows/{name}")
def workflow(name: str, who: Reader, served: Served) -> dict[str, Any]:
    """Every deploy of one workflow, oldest first; ``current`` marks the current one."""
    history = deployments_document(served.store, name)
    return {"workflow": name, "current_version": history[-1]["version"], "deployments": history}


@router.post("/workflows", status_code=201)
def deploy(body: Deploy, who: Admin, served: Served) -> dict[str, Any]:
    """Validate and deploy every workflow of a definition, each becoming its name's
    current version. Subworkflow nodes are checked against the deployed workflows."""
    done = deploy_definition(served, body.definition, by=who.name)
    return {"deployed": [deployment_document(d) for d in done]}


def deployed_registry(served: Service) -> SpecRegistry:
    """The current version of every deployed workflow: what a definition's subworkflow
    nodes are checked against."""
    current = current_versions(served.store.deployments()).values()
    return SpecRegistry(served.plans.plan(d.version).spec for d in current)


def checked_definition(served: Service, definition: str) -> list[WorkflowSpec]:
    """Every workflow of a definition, validated as a deploy does without storing
    anything: ``SpecError`` with every problem located, or ``InputError`` when the
    definition's triggers would conflict with the deployed workflows'."""
    specs = load_yaml_text(definition, "definition", registry=deployed_registry(served))
    if not specs:
        raise SpecError([SpecIssue("the definition holds no workflow")], workflow="definition")
    check_deploy(served.store, specs, served.plans)
    return specs


def deploy_definition(
    served: Service, definition: str, by: str | None, source: str = "api"
) -> list[Deployment]:
    """Validate a definition (``checked_definition``) and make each of its workflows
    its name's current version, recorded as deployed by ``by`` now from ``source``
    (the API and the dashboard's editor both deploy through here)."""
    specs = checked_definition(served, definition)
    now = served.clock.now()
    done = served.store.deploy([(spec, source) for spec in specs], now, by=by)
    served.plans.live.read()  # its webhooks and completion triggers are live at once here
    return done
