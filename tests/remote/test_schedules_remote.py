"""Schedules through a keel server: ``keel.Client`` over HTTP, and ``keel schedules`` /
``keel schedule ...`` with ``KEEL_SERVER_URL``, list, pause, unpause, trigger and
backfill them in the server's store as a store client does in its own, and refuse
what the server refuses with keel's own errors and the same one line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from keel.engine.events import RunStarted
from keel.errors import ForbiddenError, InputError, KeelError, WorkflowNotFoundError
from keel.runtime.client import Client
from keel.runtime.triggers.schedule_views import MOST_SLOTS
from keel.spec import parse_spec
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok

#: two schedules without names, so the second is ``nightly#2`` (a '#' in the URL's path)
NIGHTLY = {"name": "nightly", "nodes": [{"id": "a", "task": "m:f"}], "triggers": [
    {"kind": "schedule", "cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    {"kind": "schedule", "cron": "*/15 * * * *", "timezone": "America/New_York"}]}  # fmt: skip
NAMES = ["nightly", "nightly#2", "review-daily"]


@pytest.fixture
def nightly(served: Served) -> Served:
    """The server's store with ``nightly`` deployed beside ``review`` (``review-daily``,
    06:00 UTC, input ``{"amount": 1}``)."""
    served.store.deploy([(parse_spec(NIGHTLY), None)], 1.0)
    return served


@pytest.fixture
def operator(nightly: Served) -> Iterator[Client]:
    with Client(nightly.url, token=nightly.tokens["operator"]) as client:
        yield client


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def trigger_of(served: Served, run_id: str) -> dict[str, str] | None:
    """What the run's first event says started it."""
    first = served.store.history(run_id)[0].event
    assert isinstance(first, RunStarted)
    return first.trigger


def paused(served: Served) -> dict[str, tuple[bool, str | None]]:
    return {state.name: (state.paused, state.paused_by) for state in served.store.schedules()}


def fired(served: Served) -> list[str]:
    """The ids of the runs any schedule started."""
    return [r.id for r in served.store.list_runs(limit=1000) if (r.started_by or "")
            .startswith("schedule:")]  # fmt: skip


# --- keel.Client over HTTP ------------------------------------------------------------------


def test_the_list_is_the_stores(nightly: Served, operator: Client) -> None:
    listed = operator.schedules()
    assert listed == Client(store=nightly.store).schedules()
    assert [item["name"] for item in listed] == NAMES
    (daily,) = [item for item in listed if item["name"] == "review-daily"]
    assert (daily["workflow"], daily["cron"], daily["timezone"]) == ("review", "0 6 * * *", "UTC")
    assert len(daily["next"]) == 3


def test_pause_and_unpause_record_the_tokens_name(nightly: Served, operator: Client) -> None:
    operator.pause_schedule("nightly#2")
    assert paused(nightly)["nightly#2"] == (True, "operator-1")
    assert [item["paused"] for item in operator.schedules()] == [False, True, False]
    operator.unpause_schedule("nightly#2")
    assert paused(nightly)["nightly#2"][0] is False
    assert not any(item["paused"] for item in operator.schedules())
    with pytest.raises(KeelError, match="`by` cannot be given"):
        operator.pause_schedule("nightly", by="someone")
    assert "nightly" not in paused(nightly)


def test_trigger_now_starts_a_run_of_the_schedule(nightly: Served, operator: Client) -> None:
    run_id = operator.trigger_schedule("review-daily")
    record = nightly.store.get_run(run_id)
    assert (record.workflow, record.input, record.started_by) == (
        "review", {"amount": 1}, "schedule:review-daily")  # fmt: skip
    trigger = trigger_of(nightly, run_id)
    assert trigger is not None
    assert (trigger["kind"], trigger["source"]) == ("schedule", "review-daily")
    assert trigger["key"].startswith("now:")


def test_backfill_starts_one_run_per_slot_once(nightly: Served, operator: Client) -> None:
    """Both ends are included (the end here is a slot itself), each run is keyed by its
    slot, and the slots are the same whichever transport fires them."""
    first, last = at("2026-01-01T00:00+00:00"), at("2026-01-02T06:00+00:00")
    slots = operator.backfill("review-daily", first, last)
    assert [(s["slot"], s["started"]) for s in slots] == [
        ("2026-01-01T06:00:00Z", True), ("2026-01-02T06:00:00Z", True)]  # fmt: skip
    for slot in slots:
        assert trigger_of(nightly, slot["run"]) == {
            "kind": "schedule", "source": "review-daily", "key": slot["slot"],
            "via": "backfill"}  # fmt: skip
    again = [{**slot, "started": False} for slot in slots]
    assert operator.backfill("review-daily", first, last) == again
    assert Client(store=nightly.store).backfill("review-daily", first, last) == again
    assert sorted(fired(nightly)) == sorted(slot["run"] for slot in slots)


@pytest.mark.parametrize("remote", [True, False])
def test_refusals_are_the_same_errors_on_either_transport(nightly: Served, remote: bool) -> None:
    client = (Client(nightly.url, token=nightly.tokens["operator"]) if remote
              else Client(store=nightly.store))  # fmt: skip
    unknown = "no deployed schedule is named 'nope'"
    acts: list[Any] = [lambda: client.pause_schedule("nope"),
                       lambda: client.unpause_schedule("nope"),
                       lambda: client.trigger_schedule("nope"),
                       lambda: client.backfill("nope", 0.0, 1.0)]  # fmt: skip
    with client:
        for act in acts:
            with pytest.raises(WorkflowNotFoundError, match=unknown):
                act()
        with pytest.raises(InputError, match="the end of a backfill is before its start"):
            client.backfill("review-daily", at("2026-01-02T00:00+00:00"),
                            at("2026-01-01T00:00+00:00"))  # fmt: skip
        with pytest.raises(InputError, match=f"more than {MOST_SLOTS} slots"):
            client.backfill("nightly#2", at("2000-01-01T00:00+00:00"),
                            at("2026-01-01T00:00+00:00"))  # fmt: skip
    assert fired(nightly) == []
    assert paused(nightly) == {}


@pytest.mark.parametrize("remote", [True, False])
def test_a_backfill_past_now_is_refused_on_either_transport(nightly: Served, remote: bool) -> None:
    client = (Client(nightly.url, token=nightly.tokens["operator"]) if remote
              else Client(store=nightly.store))  # fmt: skip
    now = time.time()
    with client, pytest.raises(InputError, match=r"after now \(.*\): a backfill starts slots"):
        client.backfill("review-daily", now - 3 * 86400, now + 86400)
    assert fired(nightly) == []


def test_a_viewer_lists_schedules_but_may_not_act_on_them(nightly: Served) -> None:
    with Client(nightly.url, token=nightly.tokens["viewer"]) as viewer:
        assert [item["name"] for item in viewer.schedules()] == NAMES
        for act in (lambda: viewer.pause_schedule("review-daily"),
                    lambda: viewer.trigger_schedule("review-daily"),
                    lambda: viewer.backfill("review-daily", 0.0, 86400.0)):  # fmt: skip
            with pytest.raises(ForbiddenError, match="role viewer"):
                act()
    assert paused(nightly) == {}
    assert fired(nightly) == []


# --- the CLI with KEEL_SERVER_URL -----------------------------------------------------------


def test_the_list_prints_what_the_database_gives(nightly: Served) -> None:
    for args in (["schedules"], ["schedules", "--json"]):
        assert ok(keel(nightly, *args, role="viewer")) == ok(keel(nightly, *args, db=True)), args
    narrow = ok(keel(nightly, "schedules", role="viewer", columns=80))
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert "nightly#2" in narrow
    assert "CET = " in narrow


def test_schedule_commands_act_through_the_server(nightly: Served) -> None:
    said = ok(keel(nightly, "schedule", "pause", "nightly#2", role="operator"))
    assert said == "schedule nightly#2 paused\n"
    assert paused(nightly)["nightly#2"] == (True, "operator-1")
    listed = json.loads(ok(keel(nightly, "schedules", "--json", role="viewer")))
    assert [item["paused"] for item in listed] == [False, True, False]
    ok(keel(nightly, "schedule", "unpause", "nightly#2", role="operator"))
    assert paused(nightly)["nightly#2"][0] is False

    run_id = ok(keel(nightly, "schedule", "trigger-now", "review-daily", role="operator")).strip()
    assert nightly.store.get_run(run_id).started_by == "schedule:review-daily"
    trigger = trigger_of(nightly, run_id)
    assert trigger is not None
    assert trigger["key"].startswith("now:")

    # dates without an offset are in the schedule's zone (Berlin), which the server's
    # list gives; spring-forward: 02:30 does not exist on 2026-03-29, 03:00 fires
    once = json.loads(ok(keel(nightly, "schedule", "backfill", "nightly", "--from",
                              "2026-03-28", "--to", "2026-03-29", "--json",
                              role="operator")))  # fmt: skip
    assert [s["slot"] for s in once] == ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"]
    assert [trigger_of(nightly, s["run"]) for s in once] == [
        {"kind": "schedule", "source": "nightly", "key": s["slot"], "via": "backfill"}
        for s in once]  # fmt: skip
    args = ("schedule", "backfill", "nightly", "--from", "2026-03-27", "--to", "2026-03-29")
    assert ok(keel(nightly, *args, role="operator")) == "3 slots: 1 run started, 2 fired already\n"
    assert ok(keel(nightly, *args, db=True)) == "3 slots: 0 runs started, 3 fired already\n"
    assert len(nightly.store.list_runs(started_by="schedule:nightly")) == 3


@pytest.mark.parametrize(
    ("role", "args", "said"),
    [
        ("operator", ["schedule", "pause", "nope"], "no deployed schedule is named 'nope'"),
        ("operator", ["schedule", "unpause", "nope"], "no deployed schedule is named 'nope'"),
        ("operator", ["schedule", "trigger-now", "nope"], "no deployed schedule is named"),
        ("operator", ["schedule", "backfill", "nope", "--from", "2026-01-01", "--to",
                      "2026-01-02"], "no deployed schedule is named 'nope'"),
        ("operator", ["schedule", "backfill", "review-daily", "--from", "2026-01-02", "--to",
                      "2026-01-01"], "--to (2026-01-01) is before --from (2026-01-02)"),
        ("operator", ["schedule", "backfill", "review-daily", "--from", "soon", "--to",
                      "2026-01-01"], "--from: not an ISO time: 'soon'"),
        ("operator", ["schedule", "backfill", "nightly#2", "--from", "2000-01-01", "--to",
                      "2026-01-01"], f"more than {MOST_SLOTS} slots in that range"),
        ("viewer", ["schedule", "pause", "review-daily"], "has role viewer, which may not"),
        ("viewer", ["schedule", "trigger-now", "review-daily"], "has role viewer"),
        ("viewer", ["schedule", "backfill", "review-daily", "--from", "2026-01-01", "--to",
                    "2026-01-02"], "has role viewer"),
    ],
)  # fmt: skip
def test_refusals_are_one_clear_line(
    nightly: Served, role: str, args: list[str], said: str
) -> None:
    """The same line as on the database (a viewer's aside: the database has no roles)."""
    result = keel(nightly, *args, role=role)
    assert result.exit_code == 1, result.stdout
    assert said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr + result.stdout
    if role != "viewer":
        assert keel(nightly, *args, db=True).stderr == result.stderr
    assert paused(nightly) == {}
    assert fired(nightly) == []
