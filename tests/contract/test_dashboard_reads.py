"""More of what the dashboard reads from the store, on both backends: the quiet runs
where stuck ones are looked for (and the attention view that explains them), runs
listed and counted by when they ended, a version's first digits read as the stored
versions they begin, and one page of a history."""

from __future__ import annotations

import pytest

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.runtime.runs import RunCache
from keel.runtime.views import attention
from keel.spec import parse_spec
from keel.spec.model import WorkflowSpec
from keel.store import Store
from keel.store.sqlstore import run_lists
from tests.contract.conftest import T0, Driver, finished_three_node_run, make_spec, roots_spec
from tests.contract.test_dashboard_store import failed_run, ids

# --- quiet runs, and the stuck ones among them ----------------------------------------------


def approval_spec() -> WorkflowSpec:
    return parse_spec({"name": "sign", "nodes": [
        {"id": "ok", "kind": "approval", "title": "Sign it"}]})  # fmt: skip


def queued(store: Store, run_id: str, at: float) -> Driver:
    """A run started ``at`` whose one task is queued (no worker takes it)."""
    driver = Driver(store, roots_spec("a"), run_id)
    driver.now = at
    driver.start()
    return driver


def waiting(store: Store, at: float) -> str:
    """A run started ``at`` that waits for an approval (by design)."""
    return start_run(store, approval_spec(), {}, clock=FakeClock(at)).id


def test_quiet_runs_are_the_quietest_runs_that_should_move_without_those_waiting(
    store: Store,
) -> None:
    queued(store, "old", T0 - 3600)
    queued(store, "newer", T0 - 600)
    queued(store, "fresh", T0 - 10)  # changed 10 s ago
    waits = waiting(store, T0 - 7200)  # quieter than any, but waits for a person
    ended = queued(store, "ended", T0 - 9000)
    ended.cancel()

    assert [r.id for r in store.quiet_runs(T0 - 300, 10)] == ["old", "newer"]
    assert [r.id for r in store.quiet_runs(T0 - 300, 1)] == ["old"]
    assert [r.id for r in store.quiet_runs(T0 - 600, 10)] == ["old", "newer"]  # at: in
    assert store.quiet_runs(T0 - 3601, 10) == []
    assert store.get_run(waits).status == "running"
    (found,) = store.quiet_runs(T0 - 3000, 10)
    assert found == store.get_run("old")


def test_an_old_stuck_run_is_found_however_many_newer_runs_wait_for_a_person(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs waiting by design (newer, and more than the runs looked at) do not hide a
    run held for a day: the quietest runs are looked at, not the newest created."""
    monkeypatch.setattr(attention, "CANDIDATES", 3)
    queued(store, "stuck", T0 - 86_400)
    for n in range(5):
        waiting(store, T0 - 3600 + n)

    stuck, quiet = attention.stuck_runs(store, RunCache(store, capacity=10).plan, T0)

    assert [s.record.id for s in stuck] == ["stuck"]
    assert stuck[0].held.node == "a"
    assert quiet == 1  # the waiting runs are not even read


# --- runs by when they ended ------------------------------------------------------------------


@pytest.fixture
def ended(store: Store) -> dict[str, float | None]:
    """``early``: created at T0, cancelled at T0 + 100; ``failed``: created at T0 + 50,
    failed at once; ``going``: created at T0 + 60, not ended. Their ``ended_at``."""
    early = Driver(store, make_spec(), "early")
    early.start()
    early.now = T0 + 100
    early.cancel()
    failed_run(store, "failed", "a", "KeyError", at=T0 + 50)
    going = Driver(store, make_spec(), "going")
    going.now = T0 + 60
    going.start()
    return {run.id: run.ended_at for run in store.list_runs()}


def test_a_run_records_when_it_ended(store: Store, ended: dict[str, float | None]) -> None:
    assert ended["early"] == T0 + 100.5  # the cancel's tick
    failed = ended["failed"]
    assert failed is not None
    assert T0 + 50 < failed < T0 + 60
    assert ended["going"] is None


def test_runs_are_listed_and_counted_by_when_they_ended(
    store: Store, ended: dict[str, float | None]
) -> None:
    end = ended["early"]
    assert end is not None
    assert ids(store, ended_after=T0) == ["failed", "early"]  # newest created first
    assert ids(store, ended_after=end) == ["early"]  # inclusive: created first, ended last
    assert ids(store, ended_before=end) == ["failed"]  # exclusive
    assert ids(store, ended_after=T0 + 60, created_after=T0 + 10) == []
    assert ids(store, ended_after=T0, status="failed", workflow="t") == ["failed"]
    assert ids(store, ended_after=end + 1) == []
    assert store.count_runs(ended_after=T0) == {"cancelled": 1, "failed": 1}
    assert store.count_runs(ended_after=T0, workflow="t", status="failed") == {"failed": 1}
    assert store.count_runs(ended_before=end, created_after=T0 + 40) == {"failed": 1}
    assert store.count_runs(ended_after=end + 1) == {}


# --- a version's first digits ------------------------------------------------------------------


def sharing_a_first_digit() -> tuple[WorkflowSpec, WorkflowSpec, WorkflowSpec]:
    """Two definitions whose versions begin with the same digit, and one that does not."""
    seen: dict[str, WorkflowSpec] = {}
    for n in range(40):
        spec = make_spec(f"w{n}")
        if spec.version[0] in seen:
            other = next(s for d, s in seen.items() if d != spec.version[0])
            return seen[spec.version[0]], spec, other
        seen[spec.version[0]] = spec
    raise AssertionError("17 versions always share a first digit")


@pytest.mark.parametrize("most", [run_lists.PREFIX_VERSIONS, 1], ids=["versions", "range"])
def test_a_version_prefix_selects_the_runs_of_every_version_it_begins(
    store: Store, monkeypatch: pytest.MonkeyPatch, most: int
) -> None:
    """Read as the versions it begins (or, past ``PREFIX_VERSIONS`` of them, as a range
    of versions): the same runs either way."""
    monkeypatch.setattr(run_lists, "PREFIX_VERSIONS", most)
    one, two, other = sharing_a_first_digit()
    for n, spec in enumerate((one, two, other, one)):
        driver = Driver(store, spec, f"r{n}")
        driver.now = T0 + n
        driver.start()

    digit = one.version[0]
    assert ids(store, version=digit) == ["r3", "r1", "r0"]
    assert store.count_runs(version=digit) == {"running": 3}
    assert ids(store, version=one.version[:12]) == ["r3", "r0"]
    assert ids(store, version=one.version[:12], cursor=(T0 + 3, "r3")) == ["r0"]
    assert ids(store, version=one.version) == ["r3", "r0"]
    assert ids(store, version=two.version[:12], status="running") == ["r1"]
    missing = "0" * 12 if not one.version.startswith("0" * 12) else "f" * 12
    assert ids(store, version=missing) == []
    assert store.count_runs(version=missing) == {}


# --- a page of a history ------------------------------------------------------------------------


def test_a_page_of_a_history_is_read_by_its_bounds(store: Store) -> None:
    finished_three_node_run(store)  # 11 events
    whole = store.history("run-1")
    assert [e.seq for e in whole] == list(range(1, 12))

    assert [e.seq for e in store.history("run-1", 3, before_seq=7)] == [4, 5, 6]
    assert [e.seq for e in store.history("run-1", 0, before_seq=3)] == [1, 2]
    assert store.history("run-1", 9, before_seq=100) == whole[9:]
    assert store.history("run-1", 5, before_seq=6) == []
    assert store.history("run-1", 2, before_seq=5) == whole[2:4]
    assert store.history("nope", 0, before_seq=5) == []
