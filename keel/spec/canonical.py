"""Canonical JSON of a spec, and the version hash derived from it.

Canonical means: fields at their default value are left out (so a future keel that adds
an optional field does not change the version of existing workflows, and writing a
default explicitly changes nothing), keys sorted, no whitespace, UTF-8, durations in
seconds. The same definition written in Python or YAML gives byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keel.spec.model import WorkflowSpec


def canonical_data(spec: WorkflowSpec) -> dict[str, Any]:
    data: dict[str, Any] = spec.model_dump(mode="json", exclude_defaults=True)
    data["nodes"] = [
        {**dumped, "kind": node.kind}
        for node, dumped in zip(spec.nodes, data.get("nodes", []), strict=True)
    ]
    if spec.triggers:  # like nodes, triggers need their default ``kind`` to be read back
        data["triggers"] = [
            {**dumped, "kind": trigger.kind}
            for trigger, dumped in zip(spec.triggers, data["triggers"], strict=True)
        ]
    return data


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, compact separators, integral floats as ints."""
    return _text(_normalise_numbers(value))


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)  # fmt: skip


_AS_IS = frozenset({str, int, bool, type(None)})


def _normalise_numbers(value: Any) -> Any:
    if type(value) in _AS_IS:  # most of a spec: returned before the checks below
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _normalise_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise_numbers(item) for item in value]
    return value


def _integral_floats_as_ints(container: dict[Any, Any] | list[Any]) -> None:
    """``_normalise_numbers`` done in place, for data this module has just built: only
    floats are replaced, and a spec (hundreds of small dicts) is not copied again."""
    items = container.items() if type(container) is dict else enumerate(container)
    for key, item in items:  # replacing a value while iterating keeps the dict's size
        kind = type(item)
        if kind is dict or kind is list:
            _integral_floats_as_ints(item)
        elif kind not in _AS_IS:  # a float, or anything else as canonical_json treats it
            container[key] = _normalise_numbers(item)


def spec_json(spec: WorkflowSpec) -> str:
    data = canonical_data(spec)  # fresh containers (a JSON-mode dump), never the spec's
    _integral_floats_as_ints(data)
    return _text(data)


def spec_version(spec: WorkflowSpec) -> str:
    return hashlib.sha256(spec_json(spec).encode("utf-8")).hexdigest()
