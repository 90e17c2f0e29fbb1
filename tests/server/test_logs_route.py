"""``GET /runs/{id}/logs``: what a run's tasks logged, in the order written, of a node and
an attempt when asked, paged by ``after``, with the run's status for a client that
follows it; readable by a viewer."""

from __future__ import annotations

from keel.store.task_logs import AttemptLines, LogLine
from tests.server.conftest import Api


def keep(api: Api, node: str, attempt: int, *messages: str, item: int | None = None) -> None:
    lines = [LogLine(100.0 + i, "INFO", m) for i, m in enumerate(messages)]
    api.store.keep_task_logs([AttemptLines(api.waiting, node, item, attempt, lines)])


def test_a_runs_lines_in_the_order_written(api: Api) -> None:
    keep(api, "book", 1, "one", "two")
    keep(api, "book", 2, "three", item=None)
    keep(api, "ping", 1, "four", item=3)

    page = api.client.get(f"/runs/{api.waiting[:8]}/logs", headers=api.auth("viewer")).json()

    assert page["run_id"] == api.waiting
    assert page["status"] == "running"
    assert page["next_after"] is None
    assert page["lines"][0] == {"seq": 1, "node": "book", "item": None, "attempt": 1,
                                "at": 100.0, "level": "INFO", "message": "one"}  # fmt: skip
    assert [(line["seq"], line["node"], line["item"], line["attempt"], line["message"])
            for line in page["lines"]] == [
        (1, "book", None, 1, "one"), (2, "book", None, 1, "two"),
        (3, "book", None, 2, "three"), (4, "ping", 3, 1, "four"),
    ]  # fmt: skip


def test_one_node_one_attempt_and_pages(api: Api) -> None:
    keep(api, "book", 1, "one", "two")
    keep(api, "book", 2, "three", "four", "five")
    viewer = api.auth("viewer")
    path = f"/runs/{api.waiting}/logs"

    second = api.client.get(path, params={"node": "book", "attempt": 2}, headers=viewer).json()
    assert [line["message"] for line in second["lines"]] == ["three", "four", "five"]

    first = api.client.get(path, params={"limit": 2}, headers=viewer).json()
    assert [line["seq"] for line in first["lines"]] == [1, 2]
    assert first["next_after"] == 2
    rest = api.client.get(path, params={"after": 2, "limit": 2}, headers=viewer).json()
    assert [line["seq"] for line in rest["lines"]] == [3, 4]
    last = api.client.get(path, params={"after": 4, "limit": 2}, headers=viewer).json()
    assert [line["seq"] for line in last["lines"]] == [5]
    assert last["next_after"] is None


def test_unknown_run_and_bad_parameters_are_refused(api: Api) -> None:
    viewer = api.auth("viewer")
    missing = api.client.get("/runs/nope/logs", headers=viewer)
    assert missing.status_code == 404
    assert "no run with id 'nope'" in missing.json()["detail"]
    for params in ({"attempt": 0}, {"after": -1}, {"limit": 0}, {"limit": 5001}):
        refused = api.client.get(f"/runs/{api.waiting}/logs", params=params, headers=viewer)
        assert refused.status_code == 422, params


def test_a_node_or_an_attempt_the_run_does_not_have_is_not_found(api: Api) -> None:
    """As ``keel logs`` says it (one check for both); a node the run has that logged
    nothing yet is an empty page."""
    viewer, path = api.auth("viewer"), f"/runs/{api.waiting}/logs"
    short = api.waiting[:8]

    node = api.client.get(path, params={"node": "zz"}, headers=viewer)
    attempt = api.client.get(path, params={"node": "book", "attempt": 9}, headers=viewer)
    quiet = api.client.get(path, params={"node": "book"}, headers=viewer)

    assert (node.status_code, node.headers["content-type"]) == (404, "application/problem+json")
    assert node.json()["detail"] == f"run {short} has no node 'zz' (nodes: check, ping, book)"
    assert attempt.status_code == 404
    assert (
        attempt.json()["detail"] == f"run {short}: node book has no attempt 9 (it has not started)"
    )
    assert (quiet.status_code, quiet.json()["lines"]) == (200, [])


def test_problems_carry_no_cli_hint(api: Api) -> None:
    for path in ("/runs/nope", "/runs/nope/logs", "/runs/nope/why"):
        missing = api.client.get(path, headers=api.auth("viewer"))
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no run with id 'nope'", path
