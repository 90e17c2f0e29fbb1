"""JSON Schema helpers: the schema of a value from Python type hints, the schema found
at a path inside another, and whether two schemas can possibly agree.

Type checking of data mapping is deliberately conservative: it reports a mismatch only
when both sides are known and share no JSON type (a string fed to an ``int`` parameter),
never when either side is open (``Any``, unknown fields, complex unions).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import PydanticSchemaGenerationError, PydanticUserError, TypeAdapter

Schema = dict[str, Any]


def schema_of(hint: Any) -> Schema | None:
    """JSON Schema of a Python type hint, or None when pydantic cannot describe it."""
    if hint is Any:
        return {}
    try:
        return TypeAdapter(hint).json_schema(mode="validation")
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError, ValueError):
        return None


def validator_class(schema: Schema) -> Any:
    """The jsonschema validator for the draft ``schema`` names in ``$schema`` (2020-12,
    which pydantic writes, when it names none): checking a schema and checking data
    against it must use the same draft."""
    from jsonschema import Draft202012Validator  # heavy: imported only when needed
    from jsonschema.validators import validator_for

    return validator_for(schema, default=Draft202012Validator)


_JSON_TYPES = "string, number, integer, boolean, object, array, null"


def schema_problems(schema: Schema) -> list[tuple[tuple[str | int, ...], str]]:
    """Every way ``schema`` is not a valid JSON Schema, each with where in it.

    Checked once per distinct schema: checking one against its meta-schema costs as much
    as the rest of defining a workflow, and a process defines many with the same few
    input and output schemas (a workflow module's, re-defined in tests and workers)."""
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):  # not JSON: the check itself says what is wrong
        return _schema_problems(schema)
    known = _CHECKED.get(key)
    if known is None:
        if len(_CHECKED) >= _CHECKED_MOST:
            _CHECKED.clear()
        known = _CHECKED[key] = tuple(_schema_problems(schema))
    return list(known)


#: the problems of the schemas checked so far, by their JSON (at most ``_CHECKED_MOST``)
_CHECKED: dict[str, tuple[tuple[tuple[str | int, ...], str], ...]] = {}
_CHECKED_MOST = 256


def _schema_problems(schema: Schema) -> list[tuple[tuple[str | int, ...], str]]:
    cls = validator_class(schema)
    problems = []
    for error in cls(cls.META_SCHEMA).iter_errors(schema):
        path = tuple(error.absolute_path)
        message = error.message
        if path and path[-1] == "type":
            message += f" (JSON types: {_JSON_TYPES})"
        problems.append((path, message))
    return sorted(problems, key=lambda problem: [str(part) for part in problem[0]])


def _resolve(schema: Schema, root: Schema) -> Schema:
    seen = 0
    while "$ref" in schema and seen < 32:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return {}
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = target if isinstance(target, dict) else {}
        seen += 1
    return schema


def schema_at(
    schema: Schema, path: tuple[str | int, ...], root: Schema | None = None
) -> Schema | None:
    """The schema of the value at ``path`` inside a value of ``schema``, None if unknown."""
    root = root if root is not None else schema
    current = _resolve(schema, root)
    for part in path:
        if not current:
            return None
        if isinstance(part, str):
            properties = current.get("properties", {})
            if part in properties:
                current = _resolve(properties[part], root)
                continue
            extra = current.get("additionalProperties")
            if isinstance(extra, dict):
                current = _resolve(extra, root)
                continue
            return None
        items = current.get("items")
        if isinstance(items, dict):
            current = _resolve(items, root)
            continue
        return None
    return current


def missing_field(
    schema: Schema, path: tuple[str | int, ...], *, name: str, root: Schema | None = None
) -> str | None:
    """Why ``path`` cannot exist in a value of ``schema``, or None if it may.

    A field is missing when its object schema lists ``properties`` without it and does not
    admit others (``additionalProperties`` absent or false): values keel passes between
    steps are pydantic dumps or declared inputs, which hold only declared fields.
    """
    root = root if root is not None else schema
    current = _resolve(schema, root)
    walked = name
    for part in path:
        if isinstance(part, int):
            items = current.get("items")
            if not isinstance(items, dict):
                return None
            current = _resolve(items, root)
            walked += f"[{part}]"
            continue
        properties = current.get("properties")
        if not isinstance(properties, dict):
            return None
        if part not in properties:
            extra = current.get("additionalProperties", False)
            if extra is not False:
                return None
            known = ", ".join(sorted(properties)) or "none"
            return f"{walked} has no field '{part}' (fields: {known})"
        current = _resolve(properties[part], root)
        walked += f".{part}"
    return None


def closed_object(schema: Schema) -> dict[str, Any] | None:
    """The declared fields of an object schema that admits no others, or None if it may
    hold any field: ``additionalProperties`` absent counts as false (the fields of a
    pydantic model, which ignores others, are the only ones it keeps)."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    if schema.get("additionalProperties", False) is not False or schema.get("patternProperties"):
        return None
    return properties


def unknown_fields(
    schema: Schema, value: Any, *, name: str, root: Schema | None = None
) -> list[str]:
    """Every field of ``value`` that ``schema`` does not declare and would not keep, each
    with where it is and the fields that would have been taken (``data.address has no
    field 'zip' (fields: city)``): a misspelt field must not be dropped or stored silently.
    """
    root = root if root is not None else schema
    current = _resolve(schema, root)
    found: list[str] = []
    if isinstance(value, dict):
        properties = current.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        closed = closed_object(current) is not None
        extra = current.get("additionalProperties")
        for field, item in value.items():
            inner = properties.get(field, extra if field not in properties else None)
            if field not in properties and closed:
                known = ", ".join(sorted(properties)) or "none"
                found.append(f"{name} has no field '{field}' (fields: {known})")
            elif isinstance(inner, dict):
                found += unknown_fields(inner, item, name=f"{name}.{field}", root=root)
    elif isinstance(value, list) and isinstance(current.get("items"), dict):
        for index, item in enumerate(value):
            found += unknown_fields(current["items"], item, name=f"{name}[{index}]", root=root)
    return found


def json_types(schema: Schema, root: Schema | None = None) -> frozenset[str] | None:
    """The JSON types a schema admits, or None if it admits anything (or is too complex)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "const" in schema:
        return frozenset({_type_of_value(schema["const"])})
    if "enum" in schema and isinstance(schema["enum"], list):
        return frozenset(_type_of_value(value) for value in schema["enum"])
    declared = schema.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(str(item) for item in declared)
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            collected: set[str] = set()
            for option in options:
                found = json_types(option, root) if isinstance(option, dict) else None
                if found is None:
                    return None
                collected |= found
            return frozenset(collected)
    return None


def _type_of_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def mismatch(
    source: Schema,
    target: Schema,
    *,
    source_root: Schema | None = None,
    target_root: Schema | None = None,
) -> str | None:
    """Why a value of ``source`` can never be valid for ``target``, or None if it may be."""
    have = json_types(source, source_root)
    want = json_types(target, target_root)
    if have is None or want is None:
        return None
    # integers are numbers, and an integral number (3.0) is accepted as an integer
    accepted = want | {"integer", "number"} if want & {"integer", "number"} else want
    if have & accepted:
        return None
    return f"gives {_describe(have)} but the parameter expects {_describe(want)}"


def value_mismatch(value: Any, target: Schema, target_root: Schema | None = None) -> str | None:
    return mismatch({"type": _type_of_value(value)}, target, target_root=target_root)


def _describe(types: frozenset[str]) -> str:
    shown = sorted(types)
    if len(shown) == 1:
        return shown[0]
    return " or ".join(shown)
