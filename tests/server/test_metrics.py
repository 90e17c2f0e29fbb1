"""``GET /metrics`` after a known workload: three runs of ``two_steps`` started through the
API and executed by a worker that shares the server's metrics (``keel serve
--with-worker``), plus a run started by an event and one by a schedule. Every counter is
asserted exactly; the exposition is parsed with prometheus_client's own parser, which
refuses a name Prometheus would; the store's gauges are checked over both backends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from keel.authoring.yaml_source import load_yaml_text
from keel.runtime import Worker, WorkerOptions
from keel.runtime.clock import FakeClock
from keel.runtime.metrics import Metrics
from keel.runtime.operations.control import start_run
from keel.server import create_app
from keel.server.gauges import StoreCollector
from keel.server.identities import create_token
from keel.store import Store
from keel.store.sqlite import SQLiteStore
from tests.contract.conftest import BACKENDS, raw_sql
from tests.postgres import PostgresStore
from tests.server.hookflows import deploy_hooked
from tests.server.metricflows import family as family_spec
from tests.server.metricflows import two_steps
from tests.server.serverflows import REVIEW_YAML

#: every metric a server with a worker exposes, and its type
FAMILIES = {
    "keel_runs_started": "counter",
    "keel_runs_finished": "counter",
    "keel_runs_late": "counter",
    "keel_attempts": "counter",
    "keel_attempt_failures": "counter",
    "keel_attempt_retries": "counter",
    "keel_attempt_duration_seconds": "histogram",
    "keel_queue_lag_seconds": "histogram",
    "keel_attempts_reclaimed": "counter",
    "keel_worker_slots": "gauge",
    "keel_queue_depth": "gauge",
    "keel_queue_oldest_age_seconds": "gauge",
    "keel_runs_waiting": "gauge",
    "keel_late_runs": "gauge",
    "keel_alerts_firing": "gauge",
    "keel_notifications_pending": "gauge",
    "keel_workers_live": "gauge",
    "keel_store_up": "gauge",
    "keel_llm_calls": "counter",
    "keel_llm_calls_in_flight": "gauge",
    "keel_llm_tokens": "counter",
    "keel_llm_cost_dollars": "counter",
    "keel_llm_tool_calls": "counter",
}


class Scraped:
    """One exposition, parsed: samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))
        self.samples: list[Sample] = [s for f in self.families for s in f.samples]

    def value(self, name: str, **labels: str) -> float | None:
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels)
        return found[0] if found else None

    def labelled(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in self.samples if s.name == name}


def scrape(client: TestClient, token: str) -> Scraped:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    # the format every Prometheus reads, unless asked for another
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scraped(response.text)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "keel.db")
    (review,) = load_yaml_text(REVIEW_YAML, "review.yaml")
    opened.deploy([(two_steps(), "two_steps.yaml"), (review, "review.yaml")], 1.0, by="setup")
    deploy_hooked(opened)
    yield opened
    opened.close()


def test_a_known_workload_is_counted_exactly(store: SQLiteStore) -> None:
    operator, _ = create_token(store, "operator-1", "operator")
    viewer, _ = create_token(store, "viewer-1", "viewer")
    act = {"Authorization": f"Bearer {operator}"}
    metrics = Metrics()
    with TestClient(create_app(store, rate=0, metrics=metrics)) as client:
        runs = []
        for n in range(3):
            started = client.post("/runs", json={"workflow": "two_steps", "input": {"n": n}},
                                  headers=act)  # fmt: skip
            assert started.status_code == 201, started.text
            runs.append(started.json()["id"])
        again = client.post("/runs", json={"workflow": "two_steps", "input": {"n": 0}},
                            headers={**act, "Idempotency-Key": "k"})  # fmt: skip
        repeat = client.post("/runs", json={"workflow": "two_steps", "input": {"n": 0}},
                             headers={**act, "Idempotency-Key": "k"})  # fmt: skip
        assert (again.status_code, repeat.status_code) == (201, 200)  # one start, not two
        assert client.post("/events/order", json={"data": {"amount": 3}},
                           headers=act).status_code == 201  # fmt: skip
        assert client.post("/schedules/review-daily/trigger", headers=act).status_code == 201

        worker = Worker(store, WorkerOptions(concurrency=4), metrics=metrics)
        try:
            done = worker.run_until_finished(runs)
        finally:
            worker.close()
        assert [run.status for run in done] == ["succeeded"] * 3

        scraped = scrape(client, viewer)

    two = {"workflow": "two_steps"}
    assert scraped.labelled("keel_runs_started_total") == {
        (("workflow", "two_steps"),): 4, (("workflow", "hooked"),): 1,
        (("workflow", "review"),): 1}  # fmt: skip
    assert scraped.labelled("keel_runs_finished_total") == {
        (("status", "succeeded"), ("workflow", "two_steps")): 3}  # fmt: skip
    assert scraped.value("keel_attempts_total", **two, node="fetch", outcome="succeeded") == 3
    # a node's failure series begin at its first failure
    assert scraped.value("keel_attempts_total", **two, node="fetch", outcome="failed") is None
    assert scraped.value("keel_attempts_total", **two, node="save", outcome="succeeded") == 3
    assert scraped.value("keel_attempts_total", **two, node="save", outcome="failed") == 1
    assert scraped.labelled("keel_attempt_failures_total") == {
        (("error_type", "ConnectionError"), ("node", "save"), ("workflow", "two_steps")): 1
    }
    assert scraped.value("keel_attempt_retries_total", **two, node="save") == 1
    assert scraped.value("keel_attempt_retries_total", **two, node="fetch") is None
    assert scraped.value("keel_attempt_duration_seconds_count", **two, node="fetch") == 3
    assert scraped.value("keel_attempt_duration_seconds_count", **two, node="save") == 4
    assert scraped.labelled("keel_queue_lag_seconds_count") == {
        (("queue", "default"),): 3, (("queue", "io"),): 4}  # fmt: skip
    assert scraped.value("keel_attempts_reclaimed_total") == 0
    assert scraped.labelled("keel_worker_slots") == {
        (("state", "used"),): 0, (("state", "free"),): 4}  # fmt: skip
    # from the store: the repeated start's run and the event's wait on the default queue
    # (this worker ran only the API's three); the schedule's run waits for its approval
    # and its signal; no worker announced itself (the test's is not a ``keel worker``)
    assert scraped.labelled("keel_queue_depth") == {(("queue", "default"),): 2}
    (age,) = scraped.labelled("keel_queue_oldest_age_seconds").values()
    assert age >= 0
    assert scraped.labelled("keel_runs_waiting") == {
        (("kind", "approval"),): 1, (("kind", "signal"),): 1}  # fmt: skip
    assert scraped.value("keel_notifications_pending") == 0
    assert scraped.value("keel_workers_live") == 0
    assert scraped.value("keel_store_up") == 1


def test_runs_ended_by_an_action_on_the_api_are_counted_by_the_server(
    store: SQLiteStore,
) -> None:
    operator, _ = create_token(store, "operator-1", "operator")
    approver, _ = create_token(store, "approver-1", "approver", groups=("finance",))
    viewer, _ = create_token(store, "viewer-1", "viewer")
    act, decide = ({"Authorization": f"Bearer {token}"} for token in (operator, approver))
    with TestClient(create_app(store, rate=0)) as client:
        runs = [client.post("/runs", json={"workflow": "review", "input": {"amount": n}},
                            headers=act).json()["id"] for n in (1, 2, 3)]  # fmt: skip
        assert client.post(f"/runs/{runs[0]}/cancel", headers=act).status_code == 200
        rejected = client.post(f"/runs/{runs[1]}/approvals/check/reject", headers=decide)
        assert rejected.json()["status"] == "failed"
        assert client.post(f"/runs/{runs[2]}/pause", headers=act).status_code == 200
        scraped = scrape(client, viewer)

    assert scraped.labelled("keel_runs_finished_total") == {
        (("status", "cancelled"), ("workflow", "review")): 1,
        (("status", "failed"), ("workflow", "review")): 1}  # fmt: skip
    assert scraped.value("keel_runs_started_total", workflow="review") == 3


def test_child_runs_the_servers_commits_start_and_end_are_counted(store: SQLiteStore) -> None:
    """A parent whose first node is a child run: the start over the API (and the one an
    event makes) creates the child in the same transaction, and the cancel of the
    parent cancels the child: the server counts both runs each time."""
    store.deploy([(family_spec(event="family-go"), "family.yaml")], 1.0, by="setup")
    operator, _ = create_token(store, "operator-1", "operator")
    viewer, _ = create_token(store, "viewer-1", "viewer")
    act = {"Authorization": f"Bearer {operator}"}
    with TestClient(create_app(store, rate=0)) as client:
        parent = client.post("/runs", json={"workflow": "family"}, headers=act).json()["id"]
        assert client.post("/events/family-go", json={"data": {}}, headers=act).status_code == 201
        assert client.post(f"/runs/{parent}/cancel", headers=act).status_code == 200
        scraped = scrape(client, viewer)

    (child,) = store.list_runs(parent=parent)
    assert (child.workflow, child.status) == ("two_steps", "cancelled")
    assert scraped.labelled("keel_runs_started_total") == {
        (("workflow", "family"),): 2, (("workflow", "two_steps"),): 2}  # fmt: skip
    assert scraped.labelled("keel_runs_finished_total") == {
        (("status", "cancelled"), ("workflow", "family")): 1,
        (("status", "cancelled"), ("workflow", "two_steps")): 1}  # fmt: skip


def test_the_metric_names_follow_prometheus_rules(store: SQLiteStore) -> None:
    viewer, _ = create_token(store, "viewer-1", "viewer")
    metrics = Metrics()
    Worker(store, WorkerOptions(concurrency=2), metrics=metrics).close()  # its slots too
    with TestClient(create_app(store, rate=0, metrics=metrics)) as client:
        families = scrape(client, viewer).families

    # the parser refused nothing; no ``_created`` series (the client's, one per counter
    # and histogram: when each series began) double the count of series
    found = {f.name: f.type for f in families}
    assert found == FAMILIES
    for family in families:
        assert re.fullmatch(r"keel_[a-z][a-z0-9_]*", family.name), family.name
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family.name
        if "seconds" in family.name:
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:  # bounded labels: names, never a run or an attempt
            assert set(sample.labels) <= {"workflow", "node", "queue", "status", "outcome",
                                          "error_type", "kind", "state", "le", "model",
                                          "tool"}  # fmt: skip


def test_a_scraper_that_asks_for_openmetrics_gets_it(store: SQLiteStore) -> None:
    viewer, _ = create_token(store, "viewer-1", "viewer")
    with TestClient(create_app(store, rate=0)) as client:
        response = client.get("/metrics", headers={
            "Authorization": f"Bearer {viewer}",
            "Accept": "application/openmetrics-text; version=1.0.0"})  # fmt: skip
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    parsed = {f.name for f in openmetrics_families(response.text)}
    assert {"keel_runs_started", "keel_queue_depth", "keel_store_up"} <= parsed
    assert "_created" not in response.text  # nor in this format


# --- the store's gauges, over both backends ------------------------------------------------


@pytest.fixture(params=sorted(BACKENDS))
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()
    if isinstance(opened, PostgresStore):
        opened.drop_schema()


class Ticks:
    """Monotonic time for the collector's cache, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def collected(collector: StoreCollector) -> Scraped:
    metrics = Metrics()
    metrics.add(collector)
    return Scraped(metrics.exposition()[0].decode())


def test_the_store_is_read_once_per_ttl_however_many_scrape(any_store: Store) -> None:
    clock, ticks = FakeClock(1_700_000_000.0), Ticks()
    spec = two_steps()
    start_run(any_store, spec, {"n": 1}, clock=clock)
    collector = StoreCollector(any_store, clock, ttl=2.0, monotonic=ticks)
    clock.advance(30)

    first = collected(collector)
    assert first.value("keel_queue_depth", queue="default") == 1
    assert first.value("keel_queue_oldest_age_seconds", queue="default") == 30

    start_run(any_store, spec, {"n": 2}, clock=clock)
    ticks.now = 1.9  # within the ttl: the same answer, the store not asked again
    assert collected(collector).value("keel_queue_depth", queue="default") == 1

    ticks.now = 2.0
    clock.advance(10)
    fresh = collected(collector)
    assert fresh.value("keel_queue_depth", queue="default") == 2
    assert fresh.value("keel_queue_oldest_age_seconds", queue="default") == 40


def test_a_store_that_fails_leaves_its_gauges_out_and_says_so(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    viewer, _ = create_token(store, "viewer-1", "viewer")
    metrics = Metrics()
    metrics.runs_started.labels("two_steps").inc()
    raw_sql(store.path, "DROP TABLE waits")  # the read for the gauges fails
    with TestClient(create_app(store, rate=0, metrics=metrics)) as client:
        scraped = scrape(client, viewer)

    assert scraped.value("keel_store_up") == 0
    assert scraped.labelled("keel_queue_depth") == {}
    assert scraped.value("keel_runs_started_total", workflow="two_steps") == 1  # still served
    assert "metrics: the store did not answer" in caplog.text
