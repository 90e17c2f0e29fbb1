"""``keel alerts`` and ``GET /alerts``: each rule's state as the evaluating process left
it in the store, the same from the database and through a real server (TCP, its routes,
its tokens), readable in 80 columns."""

from __future__ import annotations

import json
import re
import time

from keel.runtime.alerts.config import parse_rules
from keel.runtime.alerts.states import evaluate
from keel.runtime.client import Client
from keel.store.sqlite import SQLiteStore
from tests.remote.conftest import Served
from tests.remote.test_cli_remote import keel, ok

RULES = [
    {"name": "claims-failing", "kind": "failure_rate", "workflow": "claim", "window": "15m",
     "above": 0.2, "for": "5m", "severity": "page"},
    {"name": "approvals-overdue", "kind": "overdue_approvals", "above": 0, "for": "10m"},
    {"name": "queue-stuck-on-the-default-queue", "kind": "queue_age", "queue": "default",
     "above": "10m"},
]  # fmt: skip


def record_alerts(store: SQLiteStore) -> float:
    """The three rules as an evaluator leaves them: firing for 2 minutes, pending, ok."""
    now = time.time()
    failing, overdue, stuck = parse_rules("test", RULES, {})
    first = evaluate(failing, None, 0.5, now - 420)
    states = [evaluate(failing, first.state, 0.5, now - 120).state,
              evaluate(overdue, None, 2.0, now - 60).state,
              evaluate(stuck, None, 30.0, now - 5).state]  # fmt: skip
    assert [s.state for s in states] == ["firing", "pending", "ok"]
    assert store.hold_alert_lease("evaluator", now, 60)
    assert store.record_alerts("evaluator", now, states, [])
    return now


def test_keel_alerts_lists_each_rules_state_from_the_server_as_from_the_database(
    served: Served,
) -> None:
    record_alerts(served.store)
    remote = json.loads(ok(keel(served, "alerts", "--json", role="viewer")))
    assert remote == json.loads(ok(keel(served, "alerts", "--json", db=True)))
    by_name = {item["name"]: item for item in remote}
    failing = by_name["claims-failing"]
    assert (failing["state"], failing["value"], failing["kind"], failing["unit"]) == (
        "firing", 0.5, "failure_rate", "share")  # fmt: skip
    assert failing["incident"] is not None
    assert failing["condition"] == "failure rate of claim over 15m above 20%"
    assert failing["rule"]["severity"] == "page"
    assert by_name["approvals-overdue"]["state"] == "pending"
    assert by_name["queue-stuck-on-the-default-queue"]["value"] == 30.0


def test_keel_alerts_fits_80_columns_when_piped(served: Served) -> None:
    record_alerts(served.store)
    shown = ok(keel(served, "alerts", columns=80, role="viewer"))
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines), shown
    # the long name leaves no room for when it was checked (in --json and wider consoles)
    assert lines[0].split() == ["alert", "state", "value", "for", "condition"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if not line.startswith(" ")}
    # "for" is counted to when the command runs: a slow machine adds seconds ("2m1s")
    assert rows["claims-failing"][1:3] == ["firing", "50%"]
    assert re.fullmatch(r"2m(\d+s)?", rows["claims-failing"][3])
    assert rows["approvals-overdue"][1:3] == ["pending", "2"]
    assert re.fullmatch(r"1m(\d+s)?", rows["approvals-overdue"][3])
    assert rows["queue-stuck-on-the-default-queue"][1:3] == ["ok", "30s"]
    assert "failure rate of claim over 15m above 20%" in " ".join(shown.split())


def test_no_alert_evaluated_yet_says_where_rules_come_from(served: Served) -> None:
    said = ok(keel(served, "alerts", role="viewer"))
    assert said == ("no alert rule has been evaluated (rules are [[alerts]] in keel.toml, "
                    "evaluated by keel worker and keel serve)\n")  # fmt: skip
    assert json.loads(ok(keel(served, "alerts", "--json", role="viewer"))) == []


def test_the_client_reads_the_alerts_over_either_transport(served: Served) -> None:
    record_alerts(served.store)
    with Client(served.url, token=served.tokens["viewer"]) as remote:
        over_http = remote.alerts()
    with Client(store=served.store) as local:
        assert over_http == local.alerts()
    assert [item["name"] for item in over_http] == [
        "approvals-overdue", "claims-failing", "queue-stuck-on-the-default-queue"]  # fmt: skip


def test_metrics_say_which_rules_fire(served: Served) -> None:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    record_alerts(served.store)
    request = urllib.request.Request(f"{served.url}/metrics", headers={
        "Authorization": f"Bearer {served.tokens['viewer']}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "keel_alerts_firing"]
    assert {s.labels["alert"]: s.value for s in family.samples} == {
        "claims-failing": 1.0,
        "approvals-overdue": 0.0,
        "queue-stuck-on-the-default-queue": 0.0,
    }
