"""Read the alert rules of ``keel.toml`` (or ``[tool.keel]`` of ``pyproject.toml``),
found as the worker's settings are (``keel.runtime.worker.config.config_tables``).

```toml
[notifiers.ops]
kind = "webhook"
url = "https://hooks.example.com/keel"

[[alerts]]
name = "claims-failing"
kind = "failure_rate"
workflow = "claim"
window = "15m"
above = 0.2
for = "5m"
notify = ["ops", { kind = "email", to = ["oncall@example.com"], sender = "keel@example.com" }]
```

``notify`` lists notifiers by name (a ``[notifiers.NAME]`` table) or written in place,
of the kinds a workflow's ``notify`` has (``callable``, ``webhook``, ``email``), without
``on``: an alert's notifiers are told when it fires and when it resolves. When both
files of the folder hold ``alerts`` (or ``notifiers``), ``keel.toml``'s are taken.

Anything wrong is a ``AlertConfigError`` of one line naming the file, the rule and the
key, never a rule quietly left out. This module only reads: it imports no notifier's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from keel.runtime.alerts.rules import KINDS, AlertRule
from keel.runtime.worker.config import WorkerConfigError, config_tables
from keel.spec.notifiers import Notifier

_NOTIFIER: TypeAdapter[Any] = TypeAdapter(Notifier)
_NAME_CHARACTERS = "letters, digits, '_', '.', ':' or '-'"


class AlertConfigError(ValueError):
    """An alert rule or notifier is wrong; the message names the file, the rule, the key."""


def load_alert_rules(cwd: Path | None = None) -> tuple[AlertRule, ...]:
    """The rules of the config file above ``cwd`` (none when it has no ``alerts``)."""
    here = (cwd if cwd is not None else Path.cwd()).resolve()
    try:
        found = config_tables(here)
    except WorkerConfigError as exc:  # unreadable, not TOML
        raise AlertConfigError(str(exc)) from None
    if found is None:
        return ()
    _, tables = found
    alerts = next(((label, t["alerts"]) for label, t in tables if "alerts" in t), None)
    if alerts is None:
        return ()
    notifiers = next(((label, t["notifiers"]) for label, t in tables if "notifiers" in t), None)
    named = _named_notifiers(*notifiers) if notifiers is not None else {}
    return parse_rules(alerts[0], alerts[1], named)


def parse_rules(label: str, raw: object, named: Mapping[str, Any]) -> tuple[AlertRule, ...]:
    """The ``alerts`` array of a file (``label`` names it in errors), its ``notify``
    names looked up in ``named`` (checked notifiers by name)."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise AlertConfigError(
            f"{label}: alerts must be an array of tables (write each rule under [[alerts]])"
        )
    rules: list[AlertRule] = []
    seen: set[str] = set()
    for index, table in enumerate(raw, start=1):
        rule = _rule(label, index, table, named)
        if rule.name in seen:
            raise AlertConfigError(f"{label}: alert '{rule.name}': the name is taken by "
                                   "another rule (each rule needs its own)")  # fmt: skip
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


def _rule(label: str, index: int, table: dict[str, Any], named: Mapping[str, Any]) -> AlertRule:
    name = table.get("name")
    where = f"{label}: alert '{name}'" if isinstance(name, str) else f"{label}: alerts[{index}]"
    kind = table.get("kind")
    if kind not in KINDS:
        got = "no kind" if kind is None else f"kind {kind!r}"
        raise AlertConfigError(f"{where}: {got}; kind must be one of {', '.join(KINDS)}")
    model = KINDS[kind]
    data = dict(table)
    if "notify" in data:
        data["notify"] = _notify(where, data["notify"], named)
    try:
        rule: AlertRule = model.model_validate(data)  # type: ignore[assignment]
    except ValidationError as exc:
        keys = sorted(field.alias or name for name, field in model.model_fields.items())
        raise AlertConfigError(f"{where}: {_first(exc, f'{kind} rule', keys)}") from None
    return rule


def _notify(where: str, value: object, named: Mapping[str, Any]) -> list[Any]:
    """The rule's notifiers: names of ``[notifiers.NAME]`` tables or tables in place."""
    if not isinstance(value, list):
        raise AlertConfigError(f"{where}: notify must be a list of notifier names or tables, "
                               f"got {value!r}")  # fmt: skip
    found: list[Any] = []
    for position, entry in enumerate(value):
        if isinstance(entry, str):
            if entry not in named:
                defined = ", ".join(sorted(named)) or "none"
                raise AlertConfigError(f"{where}: notify names '{entry}', which no "
                                       f"[notifiers.{entry}] table defines (defined: "
                                       f"{defined})")  # fmt: skip
            found.append(named[entry])
        elif isinstance(entry, dict):
            found.append(_notifier(f"{where}: notify[{position}]", entry))
        else:
            raise AlertConfigError(f"{where}: notify entries must be notifier names or tables, "
                                   f"got {entry!r}")  # fmt: skip
    return found


def _named_notifiers(label: str, raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict) or not all(isinstance(item, dict) for item in raw.values()):
        raise AlertConfigError(f"{label}: notifiers must hold one table per notifier "
                               "([notifiers.NAME] with its kind and settings)")  # fmt: skip
    named: dict[str, Any] = {}
    for name, table in raw.items():
        if not name or not all(c.isalnum() or c in "_.:-" for c in name):
            raise AlertConfigError(f"{label}: notifier name {name!r} must use {_NAME_CHARACTERS}")
        named[name] = _notifier(f"{label}: notifier '{name}'", table)
    return named


def _notifier(where: str, table: dict[str, Any]) -> Any:
    if "on" in table:
        raise AlertConfigError(f"{where}: on does not apply to an alert's notifier (it is "
                               "told when the alert fires and when it resolves): leave it "
                               "out")  # fmt: skip
    try:
        return _NOTIFIER.validate_python(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            kind = table.get("kind")
            got = "no kind" if kind is None else f"kind {kind!r}"
            raise AlertConfigError(f"{where}: {got}; kind must be one of callable, webhook, "
                                   "email") from None  # fmt: skip
        raise AlertConfigError(f"{where}: {_first(exc, 'notifier', [], skip=1)}") from None


def _first(exc: ValidationError, what: str, keys: list[str], *, skip: int = 0) -> str:
    """The first error pydantic found, on one line: the key, then what is wrong
    (``skip``: leading parts of its location that name no key, a union's tag)."""
    # a misspelt key first: it explains the "missing" one that follows from it
    error = min(exc.errors(), key=lambda found: found["type"] != "extra_forbidden")
    path = ".".join(str(part) for part in error["loc"][skip:])
    if error["type"] == "string_pattern_mismatch" and path == "name":
        return f"name {error['input']!r} must be 1-100 {_NAME_CHARACTERS}"
    if error["type"] == "extra_forbidden":
        known = f" (keys of a {what}: {', '.join(keys)})" if keys else ""
        return f"unknown key '{path}'{known}"
    if error["type"] == "missing":
        return f"{path} is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}" if path else message
