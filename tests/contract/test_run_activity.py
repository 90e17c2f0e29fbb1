"""What a run that has not ended is doing (``keel runs``, ``keel show``), read from each
store's leases, ready queue and waits: queued with no worker, running on a worker (and
no longer, once its lease expired), waiting for a person; and what holds its queued
attempts back (a retry's backoff, a full concurrency key, a rate limit, an open
circuit, a pause), at a list row's cost."""

from __future__ import annotations

from typing import Any

from keel.engine import ErrorInfo, NodeFailed, compile_plan
from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.interventions import pause_run
from keel.runtime.views.activity import Activity, clock_words, run_activity
from keel.runtime.views.documents import run_detail
from keel.runtime.views.why import run_why
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Store
from tests.contract.conftest import T0, Driver, circuit_opened, make_spec

#: a worker's lease owner as workers write it (``host:pid:start:token``)
OWNER = "h1:101:77:aa"

ONE_TASK = parse_spec({"name": "w", "nodes": [{"id": "a", "task": "json:dumps"}]})


def test_a_run_no_worker_took_is_queued(store: Store) -> None:
    clock = FakeClock()
    record = start_run(store, ONE_TASK, {}, clock=clock)
    activity = run_activity(store, record, clock.now())
    assert activity is not None
    assert (activity.kind, activity.text) == ("queued", "queued, waiting for a worker")


def test_a_run_held_by_a_worker_is_running_on_it_until_its_lease_expires(store: Store) -> None:
    clock = FakeClock()
    record = start_run(store, ONE_TASK, {}, clock=clock)
    (claimed,) = store.claim("host-1:4242:7:abc", 1, clock.now(), 30.0)
    assert claimed.lease.run_id == record.id

    activity = run_activity(store, record, clock.now())
    assert activity is not None
    assert (activity.kind, activity.text, activity.short) == (
        "running", "running on host-1:4242", "running")  # fmt: skip
    clock.advance(60)  # the holder stopped renewing its lease
    expired = run_activity(store, record, clock.now())
    assert expired is not None
    assert expired.kind == "queued"
    assert expired.text.startswith("held by a worker that stopped")


def test_a_run_waiting_for_a_person_says_so(store: Store) -> None:
    clock = FakeClock()
    spec = parse_spec({"name": "w", "nodes": [{"id": "ok", "kind": "approval", "title": "OK?"}]})
    record = start_run(store, spec, {}, clock=clock)
    activity = run_activity(store, record, clock.now())
    assert activity is not None
    assert (activity.kind, activity.text, activity.short) == (
        "waiting", "waiting for approval", "waiting for approval")  # fmt: skip


# --- what holds a queued attempt back ---------------------------------------------------------


class Counted:
    """The store, counting the calls made through it (what a list row costs)."""

    def __init__(self, store: Store) -> None:
        self.store, self.calls = store, 0

    def __getattr__(self, name: str) -> Any:
        self.calls += 1
        return getattr(self.store, name)


def one(name: str, node: dict[str, Any]) -> WorkflowSpec:
    return parse_spec({"name": name, "nodes": [{"id": "a", "task": "m:f", **node}]})


def activity_of(store: Store, run_id: str, now: float) -> Activity:
    """As ``keel runs`` finds it: from the store's rows alone."""
    found = run_activity(store, store.get_run(run_id), now)
    assert found is not None
    return found


def with_history(store: Store, run_id: str, now: float) -> tuple[str | None, str | None]:
    """As ``keel show`` (the run's detail) and ``keel why`` (its header) say it: with what
    the history adds."""
    record = store.get_run(run_id)
    plan = compile_plan(store.load_spec(record.spec_version))
    return run_detail(store, record, plan, now)["activity"], run_why(
        store, record, plan, now
    ).activity


def test_a_retry_in_its_backoff_says_when_and_which_attempt_of_how_many(store: Store) -> None:
    retry = {"max_attempts": 3, "initial_backoff": 10, "jitter": 0}
    driver = Driver(store, one("flaky", {"retry": retry}))
    driver.start()
    (claimed,) = driver.claim()
    error = ErrorInfo(type="Boom", message="flaky", retryable=True)
    driver.commit(driver.step([NodeFailed(node="a", attempt=1, error=error)], (claimed.lease,)))
    now, at = driver.now + 1, clock_words(driver.now + 10, driver.now + 1)

    listed = activity_of(store, "run-1", now)

    assert (listed.kind, listed.text, listed.short) == ("queued", f"retrying at {at}",
                                                        f"retrying at {at}")  # fmt: skip
    exact = f"retrying at {at} (attempt 2 of 3)"
    assert with_history(store, "run-1", now) == (exact, exact)
    # once its backoff passed, it waits for a worker like any other
    assert activity_of(store, "run-1", driver.now + 11).text == "queued, waiting for a worker"


def test_a_full_concurrency_key_is_said_with_the_key(store: Store) -> None:
    spec = one("crm", {"concurrency": {"key": "'tenant:acme'", "limit": 1}})
    first, second = Driver(store, spec, "r1"), Driver(store, spec, "r2")
    first.start()
    second.start()
    first.claim(OWNER)

    held = activity_of(store, "r2", T0 + 2)

    assert (held.kind, held.text, held.short) == (
        "queued", "waiting for concurrency key 'tenant:acme' (1 of 1 held)",
        "waiting for concurrency key 'tenant:acme'")  # fmt: skip
    assert with_history(store, "r2", T0 + 2) == (held.text, held.text)
    assert activity_of(store, "r1", T0 + 2).text == "running on h1:101"


def test_a_rate_limited_attempt_says_until_when(store: Store) -> None:
    spec = one("api", {"rate_limit": {"key": "'api'", "limit": 1, "per": 60}})
    first, second = Driver(store, spec, "r1"), Driver(store, spec, "r2")
    first.start()
    second.start()
    started_at = first.tick()
    assert store.claim(OWNER, 10, started_at, 30.0)  # r1 starts; r2 is over the rate

    held = activity_of(store, "r2", started_at + 1)

    until = clock_words(started_at + 60, started_at + 1)
    assert held.text == f"rate-limited by 'api' until {until} (1 per 60 s)"
    assert held.short == f"rate-limited by 'api' until {until}"


def test_an_open_circuit_says_until_when(store: Store) -> None:
    spec = one("calls", {"circuit": "crm"})
    first = circuit_opened(store, spec, OWNER)

    held = activity_of(store, "r2", first.now + 1)

    assert held.text == f"circuit 'crm' open until {clock_words(first.now + 60, first.now + 1)}"


def test_one_attempt_free_to_take_makes_the_run_wait_for_a_worker(store: Store) -> None:
    """Of two queued attempts, one under a full key and one free: a worker would take
    the free one, so the run waits for a worker, not for the key."""
    limited = {"id": "a", "task": "m:f", "concurrency": {"key": "'k'", "limit": 1}}
    spec = parse_spec({"name": "two", "nodes": [limited, {"id": "b", "task": "m:f"}]})
    holder = Driver(store, one("hold", {"concurrency": {"key": "'k'", "limit": 1}}), "r1")
    holder.start()
    holder.claim(OWNER)
    Driver(store, spec, "r2").start()

    assert activity_of(store, "r2", T0 + 2).text == "queued, waiting for a worker"


def test_a_paused_run_says_who_paused_it_where_the_history_is_read(store: Store) -> None:
    Driver(store, make_spec()).start()
    pause_run(store, "run-1", reason="checking", by="ops", clock=FakeClock(T0 + 5))

    assert run_activity(store, store.get_run("run-1"), T0 + 6) is None  # the status says it
    said = f"paused by ops since {clock_words(T0 + 5, T0 + 6)}: checking"
    assert with_history(store, "run-1", T0 + 6) == (said, said)


def test_a_list_row_costs_two_reads_and_one_per_key_its_attempts_wait_on(store: Store) -> None:
    """Every row of ``keel runs`` is worked out so: it must stay cheap, however many
    items of a map wait on the same key."""
    Driver(store, make_spec(), "plain").start()
    spec = parse_spec({"name": "fan", "nodes": [{
        "id": "fan", "kind": "map", "task": "m:g", "items": "input.items", "item_arg": "i",
        "concurrency": {"key": "'k'", "limit": 1}}]})  # fmt: skip
    holder = Driver(store, one("hold", {"concurrency": {"key": "'k'", "limit": 1}}), "r1")
    holder.start()
    holder.claim(OWNER)
    Driver(store, spec, "fan", {"items": list(range(20))}).start()

    plain, fan = Counted(store), Counted(store)
    run_activity(plain, store.get_run("plain"), T0 + 2)  # type: ignore[arg-type]
    found = run_activity(fan, store.get_run("fan"), T0 + 2)  # type: ignore[arg-type]

    assert (plain.calls, fan.calls) == (2, 3)
    assert found is not None
    assert found.text.startswith("waiting for concurrency key 'k'")
