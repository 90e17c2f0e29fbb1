"""A run's input checked against its workflow's input schema, with defaults filled in.

Used wherever a run is created: by a client, a trigger, or a parent run starting a
child, so every run sees its input the same way.
"""

from __future__ import annotations

from typing import Any

from keel.errors import InputError
from keel.spec.data import check_json
from keel.spec.model import WorkflowSpec
from keel.spec.schemas import unknown_fields, validator_class


def with_defaults(spec: WorkflowSpec, run_input: Any) -> Any:
    """The input with the schema's top-level defaults filled in, as the run will see it
    (and as its history records it): ``input.x`` must not fail for an optional ``x``."""
    return with_schema_defaults(spec.input_schema, run_input)


def with_schema_defaults(schema: dict[str, Any], value: Any) -> Any:
    """An object with the schema's top-level defaults filled in (a run's input, an
    approver's form data), so expressions can read optional fields."""
    properties = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(properties, dict):
        return value
    filled = dict(value)
    for name, field in properties.items():
        if name not in filled and isinstance(field, dict) and "default" in field:
            filled[name] = field["default"]
    return filled


#: compiled input validators by spec version (a version is immutable, so is its schema)
_VALIDATORS: dict[str, Any] = {}


def _validator(spec: WorkflowSpec) -> Any:
    validator = _VALIDATORS.get(spec.version)
    if validator is None:
        if len(_VALIDATORS) >= 256:
            _VALIDATORS.clear()
        schema = dict(spec.input_schema)
        validator = _VALIDATORS[spec.version] = validator_class(schema)(schema)
    return validator


def _problems(validator: Any, value: Any, root: str, *, skip_extra: bool = False) -> list[str]:
    """One line per way ``value`` misses the schema; with ``skip_extra``, not the
    schema's own complaint about extra fields (they were named already)."""
    lines = []
    for problem in sorted(validator.iter_errors(value), key=lambda e: list(e.path)):
        if skip_extra and problem.validator == "additionalProperties":
            continue
        where = ".".join(str(part) for part in problem.absolute_path)
        lines.append(f"  {root}{'.' + where if where else ''}: {problem.message}")
    return lines


def check_input(spec: WorkflowSpec, run_input: Any) -> None:
    """Raise ``InputError`` listing every way the input misses the input schema."""
    lines = _problems(_validator(spec), run_input, "input")
    if lines:
        raise InputError(
            f"the input of workflow '{spec.name}' does not match its schema:\n" + "\n".join(lines)
        )


def check_start(spec: WorkflowSpec, run_input: Any) -> None:
    """Every check starting a run makes of its input (``InputError``): it can be stored
    as JSON and it matches the input schema. One place, so a trigger that checks each run
    a firing would start, before starting any, refuses exactly what a start would."""
    check_json(run_input, f"the input of workflow '{spec.name}'")
    check_input(spec, run_input)


def check_data(schema: dict[str, Any], data: Any, what: str) -> None:
    """Raise ``InputError`` listing every way ``data`` (an approver's form data, a
    signal's payload, a skipped node's output) misses the schema the workflow declares for
    it, fields the schema does not declare included: a misspelt field must not be kept
    while the one it meant stays empty."""
    unknown = [f"  {line}" for line in unknown_fields(schema, data, name="data")]
    lines = unknown + _problems(
        validator_class(schema)(schema), data, "data", skip_extra=bool(unknown)
    )
    if lines:
        raise InputError(f"the data for {what} does not match its schema:\n" + "\n".join(lines))
