"""Alert rules: read from ``keel.toml`` (or ``[tool.keel]``) with one-line errors naming
the file, the rule and the key; how a rule's state moves at each evaluation (a pure
function: every path without a store or a clock); what a change tells its notifiers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel.runtime.alerts.config import AlertConfigError, load_alert_rules, parse_rules
from keel.runtime.alerts.rules import AlertRule, FailureRate, QueueAge, shown_value
from keel.runtime.alerts.states import evaluate, incident_id, notices
from keel.runtime.notifications.channels import email_message, idempotency_key
from keel.runtime.worker.config import load_worker_config
from keel.spec.notifiers import EmailNotifier, WebhookNotifier
from keel.store.alerts import AlertState

T0 = 1_700_000_000.0

KEEL_TOML = """
database_url = "sqlite:///keel.db"

[notifiers.ops]
kind = "webhook"
url = "https://hooks.example.com/keel?token=secret"

[[alerts]]
name = "claims-failing"
kind = "failure_rate"
workflow = "claim"
window = "15m"
above = 0.2
for = "5m"
severity = "page"
notify = ["ops", { kind = "email", to = ["oncall@example.com"], sender = "keel@example.com" }]

[[alerts]]
name = "queue-stuck"
kind = "queue_age"
queue = "default"
above = "10m"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- reading keel.toml --------------------------------------------------------------------


def test_rules_and_their_notifiers_are_read_from_keel_toml_above_the_folder(
    tmp_path: Path,
) -> None:
    write(tmp_path / "keel.toml", KEEL_TOML)
    below = tmp_path / "project" / "sub"
    below.mkdir(parents=True)

    failing, stuck = load_alert_rules(below)
    assert isinstance(failing, FailureRate)
    assert (failing.name, failing.workflow, failing.window, failing.for_) == (
        "claims-failing", "claim", 900.0, 300.0)  # fmt: skip
    assert (failing.above, failing.below, failing.min_runs, failing.severity) == (
        0.2, None, 10, "page")  # fmt: skip
    webhook, email = failing.notify
    assert isinstance(webhook, WebhookNotifier)
    assert webhook.url == "https://hooks.example.com/keel?token=secret"
    assert isinstance(email, EmailNotifier)
    assert isinstance(stuck, QueueAge)
    assert (stuck.queue, stuck.above, stuck.for_, stuck.notify) == ("default", 600.0, 0.0, ())
    # the worker reads the same file, and leaves these tables to the alerts
    assert load_worker_config(cwd=below, environ={}).database_url == "sqlite:///keel.db"


def test_a_rule_shows_what_it_checks_without_its_notifiers_secrets(tmp_path: Path) -> None:
    write(tmp_path / "keel.toml", KEEL_TOML)
    failing, stuck = load_alert_rules(tmp_path)
    assert failing.summary() == {
        "kind": "failure_rate", "workflow": "claim", "window": 900.0, "min_runs": 10,
        "above": 0.2, "for": 300.0, "severity": "page", "unit": "share",
        "condition": "failure rate of claim over 15m above 20%",
        "notify": ["webhook notifier https://hooks.example.com/keel",
                   "email notifier to oncall@example.com"],
    }  # fmt: skip
    assert stuck.condition() == "age of the oldest ready attempt on queue default above 10m"


def test_no_config_file_or_no_alerts_means_no_rules(tmp_path: Path) -> None:
    assert load_alert_rules(tmp_path) == ()
    write(tmp_path / "keel.toml", 'database_url = "sqlite:///keel.db"\n')
    assert load_alert_rules(tmp_path) == ()


def test_rules_in_pyproject_are_read_unless_keel_toml_has_its_own(tmp_path: Path) -> None:
    rule = '[[tool.keel.alerts]]\nname = "late"\nkind = "late_runs"\nabove = 0\n'
    write(tmp_path / "pyproject.toml", rule)
    assert [r.name for r in load_alert_rules(tmp_path)] == ["late"]
    write(tmp_path / "keel.toml", KEEL_TOML)
    assert [r.name for r in load_alert_rules(tmp_path)] == ["claims-failing", "queue-stuck"]


def test_a_misspelt_top_level_key_is_still_refused_by_the_worker(tmp_path: Path) -> None:
    path = write(tmp_path / "keel.toml", "alert = 1\n" + KEEL_TOML)
    with pytest.raises(ValueError, match=rf"keel.toml \({path}\): unknown key 'alert'"):
        load_worker_config(cwd=tmp_path, environ={})


RULE: dict[str, Any] = {"name": "r", "kind": "failure_rate", "window": "15m", "above": 0.2}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": None}, "alert 'r': window is missing"),
        ({"above": 2}, "alert 'r': above: Input should be less than or equal to 1"),
        ({"below": 0.1}, "alert 'r': give exactly one of above and below (the threshold)"),
        ({"above": None}, "alert 'r': give exactly one of above and below (the threshold)"),
        ({"above": True}, "alert 'r': above: Input should be a valid number"),
        ({"for": "soon"}, "alert 'r': for: cannot read duration 'soon'"),
        ({"min_runs": 0}, "alert 'r': min_runs: Input should be greater than or equal to 1"),
        ({"kind": "nope"}, "alert 'r': kind 'nope'; kind must be one of failure_rate, "
         "p95_duration, queue_age, overdue_approvals, late_runs"),
        ({"kind": None}, "alert 'r': no kind; kind must be one of"),
        ({"name": None}, "alerts[1]: name is missing"),
        ({"name": "a b"}, "alert 'a b': name 'a b' must be 1-100 letters, digits"),
        ({"kind": "queue_age", "window": "1m", "above": "5m"},
         "alert 'r': unknown key 'window' (keys of a queue_age rule: above, below, "
         "description, for, kind, name, notify, queue, severity)"),
        ({"kind": "queue_age", "window": None, "above": "5x"},
         "alert 'r': above: cannot read duration '5x'"),
        ({"notify": ["ops"]}, "alert 'r': notify names 'ops', which no [notifiers.ops] table "
         "defines (defined: none)"),
        ({"notify": "ops"}, "alert 'r': notify must be a list of notifier names or tables"),
        ({"notify": [{"kind": "webhook", "url": "ftp://x"}]},
         "alert 'r': notify[0]: url: 'ftp://x' is not a webhook URL"),
        ({"notify": [{"kind": "webhook", "urll": "http://x"}]},
         "alert 'r': notify[0]: unknown key 'urll'"),
        ({"notify": [{"url": "http://x"}]},
         "alert 'r': notify[0]: no kind; kind must be one of callable, webhook, email"),
        ({"notify": [{"kind": "webhook", "url": "http://x", "on": ["run_failed"]}]},
         "alert 'r': notify[0]: on does not apply to an alert's notifier"),
    ],
)  # fmt: skip
def test_a_wrong_rule_is_one_line_naming_the_file_the_rule_and_the_key(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    rule = {key: value for key, value in {**RULE, **changes}.items() if value is not None}
    with pytest.raises(AlertConfigError) as raised:
        parse_rules("keel.toml (/x/keel.toml)", [rule], {})
    assert str(raised.value).startswith(f"keel.toml (/x/keel.toml): {message}")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alerts = 1\n", "alerts must be an array of tables (write each rule under [[alerts]])"),
        ('[alerts]\nname = "r"\n', "alerts must be an array of tables"),
        ('[[alerts]]\nname = "r"\nkind = "late_runs"\nabove = 1\n' * 2,
         "alert 'r': the name is taken by another rule"),
        ("notifiers = 1\n[[alerts]]\n", "notifiers must hold one table per notifier"),
        ('[notifiers.ops]\nkind = "email"\nto = ["x"]\nsender = "k@example.com"\n[[alerts]]\n',
         "notifier 'ops': to.0: 'x' is not an email address"),
        ('[notifiers."a b"]\nkind = "webhook"\nurl = "http://x"\n[[alerts]]\n',
         "notifier name 'a b' must use letters, digits"),
        ("[[alerts\n", "invalid TOML"),
    ],
)  # fmt: skip
def test_a_wrong_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "keel.toml", text)
    with pytest.raises(AlertConfigError) as raised:
        load_alert_rules(tmp_path)
    assert str(raised.value).startswith(f"keel.toml ({path}): {message}")


# --- how a state moves --------------------------------------------------------------------


def rule(**changes: Any) -> AlertRule:
    base = {**RULE, "for": "1m", "notify": [{"kind": "webhook", "url": "http://h/x"}]}
    (parsed,) = parse_rules("test", [{**base, **changes}], {})
    return parsed


def test_a_condition_held_for_its_for_fires_once_then_resolves_once() -> None:
    r = rule()
    first = evaluate(r, None, 0.1, T0)
    assert (first.state.state, first.state.since, first.change) == ("ok", T0, None)
    pending = evaluate(r, first.state, 0.5, T0 + 10)
    assert (pending.state.state, pending.state.since, pending.change) == ("pending", T0 + 10, None)
    still = evaluate(r, pending.state, 0.6, T0 + 69)
    assert (still.state.state, still.state.since, still.change) == ("pending", T0 + 10, None)
    fired = evaluate(r, still.state, 0.6, T0 + 70)
    assert (fired.state.state, fired.state.since, fired.change) == ("firing", T0 + 70,
                                                                    "alert_firing")  # fmt: skip
    assert fired.state.incident == incident_id("r", T0 + 70)
    again = evaluate(r, fired.state, 0.9, T0 + 80)
    assert (again.state.state, again.state.since, again.change) == ("firing", T0 + 70, None)
    assert (again.state.incident, again.state.value, again.state.evaluated_at) == (
        fired.state.incident, 0.9, T0 + 80)  # fmt: skip
    resolved = evaluate(r, again.state, 0.1, T0 + 90)
    assert (resolved.state.state, resolved.state.since, resolved.change) == (
        "ok", T0 + 90, "alert_resolved")  # fmt: skip
    assert resolved.state.incident is None
    calm = evaluate(r, resolved.state, 0.1, T0 + 100)
    assert (calm.state.state, calm.state.since, calm.change) == ("ok", T0 + 90, None)


def test_a_condition_that_clears_while_pending_tells_nobody() -> None:
    r = rule()
    pending = evaluate(r, None, 0.5, T0)
    assert pending.state.state == "pending"
    cleared = evaluate(r, pending.state, 0.1, T0 + 30)
    assert (cleared.state.state, cleared.state.since, cleared.change) == ("ok", T0 + 30, None)
    again = evaluate(r, cleared.state, 0.5, T0 + 40)  # the minute starts over
    assert evaluate(r, again.state, 0.5, T0 + 99).change is None
    assert evaluate(r, again.state, 0.5, T0 + 100).change == "alert_firing"


def test_without_for_it_fires_at_the_first_look_and_no_value_resolves() -> None:
    r = rule(**{"for": 0})
    fired = evaluate(r, None, 0.3, T0)
    assert (fired.state.state, fired.change) == ("firing", "alert_firing")
    assert evaluate(r, fired.state, None, T0 + 10).change == "alert_resolved"  # too few runs
    assert evaluate(r, None, None, T0).state.state == "ok"


@pytest.mark.parametrize(("threshold", "value", "holds"), [
    ({"above": 0.2}, 0.2, False), ({"above": 0.2}, 0.21, True),
    ({"below": 0.2}, 0.2, False), ({"below": 0.2}, 0.19, True), ({"below": 0.2}, None, False),
])  # fmt: skip
def test_the_threshold_is_strict(threshold: dict[str, float], value: float | None,
                                 holds: bool) -> None:  # fmt: skip
    base = {key: v for key, v in RULE.items() if key != "above"}
    (parsed,) = parse_rules("test", [{**base, **threshold}], {})
    assert parsed.holds(value) is holds


def test_a_change_is_one_notification_per_notifier_with_the_incident() -> None:
    r = rule(notify=[{"kind": "webhook", "url": "http://h/x"},
                     {"kind": "callable", "function": "hooks:page"}], severity="page",
             description="Claims fail")  # fmt: skip
    fired = evaluate(r, None, 0.5, T0)
    fired = evaluate(r, fired.state, 0.5, T0 + 60)
    told = notices(r, fired, T0 + 60)
    assert [n.notifier["kind"] for n in told] == ["webhook", "callable"]
    assert told[0].payload == told[1].payload == {
        "event": "alert_firing", "alert": "r", "incident": fired.state.incident,
        "kind": "failure_rate", "condition": "failure rate over 15m above 20%", "value": 0.5,
        "shown_value": "50%", "above": 0.2, "below": None, "severity": "page",
        "description": "Claims fail", "fired_at": "2023-11-14T22:14:20+00:00",
        "at": "2023-11-14T22:14:20+00:00",
    }  # fmt: skip
    resolved = evaluate(r, fired.state, 0.1, T0 + 100)
    (told_again, _) = notices(r, resolved, T0 + 100)
    assert told_again.payload["event"] == "alert_resolved"
    assert told_again.payload["incident"] == fired.state.incident
    assert told_again.payload["fired_at"] == "2023-11-14T22:14:20+00:00"
    assert told_again.payload["at"] == "2023-11-14T22:15:00+00:00"
    assert notices(r, evaluate(r, resolved.state, 0.1, T0 + 110), T0 + 110) == []
    # each delivery of each message is recognised by its key; each message has its own
    assert idempotency_key(told[0].payload) == idempotency_key(dict(told[0].payload))
    assert idempotency_key(told[0].payload) != idempotency_key(told_again.payload)
    other = evaluate(r, AlertState("r", {}, "pending", T0 + 200, None, 0.5, T0 + 200), 0.5,
                     T0 + 300)  # fmt: skip
    assert idempotency_key(notices(r, other, T0 + 300)[0].payload) != idempotency_key(
        told[0].payload)  # fmt: skip


def test_an_alerts_email_says_which_alert_and_what_it_checks() -> None:
    r = rule(notify=[{"kind": "email", "to": ["oncall@example.com"],
                      "sender": "keel@example.com"}])  # fmt: skip
    (told,) = notices(r, evaluate(r, evaluate(r, None, 0.25, T0 - 60).state, 0.25, T0), T0)
    message = email_message(EmailNotifier(**told.notifier), told.payload)
    assert message["Subject"] == "[keel] alert_firing: r (failure rate over 15m above 20%)"
    body = message.get_content()
    assert "Alert: r\nCondition: failure rate over 15m above 20%\nValue: 25%\n" in body


@pytest.mark.parametrize(("unit", "value", "shown"), [
    ("share", 0.25, "25%"), ("share", 1 / 3, "33.3%"), ("seconds", 90.0, "1m30s"),
    ("seconds", 0.0, "0s"), ("seconds", 0.25, "250ms"),
    ("count", 3.0, "3"), ("count", None, "-"),
])  # fmt: skip
def test_values_are_shown_in_their_unit(unit: str, value: float | None, shown: str) -> None:
    assert shown_value(unit, value) == shown
