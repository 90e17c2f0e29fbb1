"""``GET /workflows/{name}/versions`` and ``GET /diff``: the views ``keel versions`` and
``keel diff`` print, as JSON, with 404 for what names nothing and 422 for what names
several things or mixes a run with a version."""

from __future__ import annotations

from typing import Any

from keel.authoring.yaml_source import load_yaml_text
from keel.errors import RunNotFoundError, WorkflowNotFoundError
from keel.runtime.operations.control import start_run
from keel.runtime.transports.problems import error_for
from tests.server.conftest import Api
from tests.server.serverflows import REVIEW_YAML


def get(api: Api, path: str, status: int = 200, role: str = "viewer") -> Any:
    response = api.client.get(path, headers=api.auth(role))
    assert response.status_code == status, response.text
    return response.json()


def deploy_second(api: Api) -> tuple[str, str]:
    """A second version of ``review``: ``book`` retried, and a new ``notify`` after it;
    one run of it. The two versions, old first."""
    old = api.store.deployments("review")[-1].version
    changed = REVIEW_YAML.replace(
        "    after: [check]\n",
        "    after: [check]\n    retry: {max_attempts: 4}\n"
        "  - {id: notify, task: 'tests.server.serverflows:book', after: [book]}\n",
    )
    (spec,) = load_yaml_text(changed, "review.yaml")
    api.store.deploy([(spec, "review-2.yaml")], 50.0, by="carol")
    start_run(api.store, spec, {"amount": 5})
    return old, spec.version


def test_versions_lists_deploys_and_runs_newest_first(api: Api) -> None:
    old, new = deploy_second(api)
    doc = get(api, "/workflows/review/versions")

    assert doc["workflow"] == "review"
    assert doc["current_version"] == new
    assert [v["version"] for v in doc["versions"]] == [new, old]
    latest, first = doc["versions"]
    assert (latest["current"], latest["runs"], latest["seen"]) == (True, 1, "deployed")
    assert latest["deployments"][0]["deployed_by"] == "carol"
    assert latest["deployments"][0]["source"] == "review-2.yaml"
    seeded = sum(api.store.count_runs(workflow="review", version=old).values())
    assert (first["current"], first["runs"]) == (False, seeded)
    assert first["first_run_at"] <= first["last_run_at"]
    get(api, "/workflows/nothing/versions", 404)


def test_diff_of_two_versions_names_the_changed_nodes_and_edges(api: Api) -> None:
    old, new = deploy_second(api)
    doc = get(api, f"/diff?a=review@{old[:10]}&b=version:{new[:10]}")

    assert doc["kind"] == "versions"
    assert (doc["a"]["version"], doc["b"]["version"]) == (old, new)
    states = {node["id"]: node["state"] for node in doc["nodes"]}
    assert states == {"check": "same", "ping": "same", "book": "changed", "notify": "added"}
    (book,) = [node for node in doc["nodes"] if node["id"] == "book"]
    assert book["changes"] == [{"path": "retry.max_attempts", "parts": ["retry", "max_attempts"],
                                "change": "added", "b": 4}]  # fmt: skip
    added = [(e["parent"], e["child"]) for e in doc["edges"] if e["state"] == "added"]
    assert added == [("book", "notify")]


def test_diff_of_two_runs_goes_node_by_node(api: Api) -> None:
    doc = get(api, f"/diff?a={api.waiting}&b={api.failed[:12]}")

    assert doc["kind"] == "runs"
    assert (doc["a"]["run_id"], doc["b"]["run_id"]) == (api.waiting, api.failed)
    changes = {c["path"]: (c.get("a"), c.get("b")) for c in doc["changes"]}
    assert changes["input.amount"] == (10, 20)
    assert changes["status"] == ("running", "failed")
    assert changes["nodes.check.status"] == ("awaiting", "failed")
    assert "check" in doc["changed_nodes"]


def test_arguments_that_name_nothing_or_several_things_are_refused(api: Api) -> None:
    version = api.store.deployments("review")[-1].version
    missing = get(api, "/diff?a=nothing&b=nothing", 404)
    assert "'nothing' is neither a run nor a stored version" in missing["detail"]
    mixed = get(api, f"/diff?a={api.waiting}&b=version:{version[:8]}", 422)
    assert "keel diff compares two runs or two versions" in mixed["detail"]
    assert (
        "no stored version begins with"
        in get(api, "/diff?a=version:000000000000&b=x", 404)["detail"]
    )
    get(api, "/diff?a=&b=x", 422)
    # the client reads a missing diff target as one, not as an unknown route
    assert isinstance(error_for(404, missing, "http://k", "/diff", has_token=True),
                      RunNotFoundError)  # fmt: skip
    assert isinstance(
        error_for(404, {"detail": "x"}, "http://k", "/workflows/x/versions", has_token=True),
        WorkflowNotFoundError,
    )
