"""A form drawn from a JSON Schema (an approval's form, a run's input): the fields a
page shows, the data a submitted form stands for, and which field each problem with
that data belongs to.

What the page draws (``templates/schema_fields.html``), the page's script
(``static/schema_form.js``) checks before the form is sent, and this module checks again
when it arrives, with the same validator the operation uses
(``keel.spec.schemas.validator_class``): the page must never let through what the
operation would refuse, and a refusal must name the field, keeping every value the
person typed.

Supported, each as its own control: strings (``minLength``/``maxLength``, ``pattern``,
``format`` date and email), numbers and integers (``minimum``/``maximum``, exclusive
too, ``multipleOf``), booleans, enums, arrays of enums (a checkbox per choice,
``minItems``/``maxItems``), nested objects (a fieldset) and optional values
(``anyOf`` with ``null``). Anything else is a JSON text area. Controls are named
``data.`` + the field's path (``data.address.city``), so no field can clash with the
form's own fields (``csrf``, ``comment``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.spec.schemas import schema_at, validator_class

Schema = dict[str, Any]
Control = Literal["text", "textarea", "number", "checkbox", "select", "choices", "fieldset",
                  "json"]  # fmt: skip
#: what a submitted form holds: every value of each control, by name
Submitted = Mapping[str, Sequence[str]]

#: a control's name starts with this, then the field's path joined by ``.``
PREFIX = "data."
#: nested objects deeper than this are one JSON text area (a schema may refer to itself)
MOST_DEPTH = 4
#: a string longer than this may be gets a text area rather than one line
LONG_TEXT = 200
#: the formats the form checks (and draws as their own input types)
FORMATS = ("date", "email")


@dataclass(frozen=True, slots=True)
class Option:
    """A choice of an enum: its value as JSON (what the form sends back) and its label."""

    value: str
    label: str


@dataclass(frozen=True, slots=True)
class Field:
    """One control of the form (or a fieldset of them)."""

    #: the control's name: ``data.`` + the path
    name: str
    path: tuple[str, ...]
    #: a DOM id for the control, unique within one form
    id: str
    label: str
    control: Control
    required: bool
    description: str
    #: HTML constraint attributes (``min``, ``maxlength``, ``pattern``, ``type`` ...)
    attrs: dict[str, str]
    #: the field's schema, resolved, for the page's script
    schema: Schema
    #: the value shown before anything was typed (from ``default``), as the form holds it
    initial: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    children: tuple[Field, ...] = ()
    #: an ``anyOf`` with ``null``: an empty required control sends null
    nullable: bool = False


@dataclass
class Reading:
    """A submitted form read back: the data, and a problem per field name (``""``: the
    form as a whole)."""

    data: Any
    errors: dict[str, str] = field(default_factory=dict)


def form_fields(schema: Schema) -> list[Field]:
    """The fields of a form (an object schema: an approval's form, a run's input); a
    schema that declares no fields is one JSON text area for the whole data."""
    resolved = schema_at(schema, (), schema) or {}
    if isinstance(resolved.get("properties"), dict):
        return _object_fields(schema, schema, (), "f", 0)
    return [Field(name="data", path=(), id="f", label="data (JSON)", control="json",
                  required=False, description=str(resolved.get("description") or ""),
                  attrs={}, schema=resolved)]  # fmt: skip


def _object_fields(
    schema: Schema, root: Schema, path: tuple[str, ...], id_prefix: str, depth: int
) -> list[Field]:
    resolved = schema_at(schema, (), root) or {}
    properties = resolved.get("properties")
    if not isinstance(properties, dict):
        return []
    required = resolved.get("required") or []
    fields = [
        _field(sub if isinstance(sub, dict) else {}, root, (*path, str(name)),
               f"{id_prefix}-{index}", name in required, depth)
        for index, (name, sub) in enumerate(properties.items())
    ]  # fmt: skip
    return sorted(fields, key=lambda item: not item.required)  # required ones first, as the CLI


def _unwrap_null(schema: Schema, root: Schema) -> tuple[Schema, bool]:
    """``anyOf: [X, {type: null}]`` (pydantic's ``X | None``) as X, nullable; the outer
    schema's title, description and default kept."""
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if not isinstance(options, list) or len(options) != 2:
            continue
        resolved = [schema_at(o, (), root) or {} if isinstance(o, dict) else {} for o in options]
        others = [o for o in resolved if o.get("type") != "null"]
        if len(others) == 1:
            outer = {k: v for k, v in schema.items() if k != key}
            return {**others[0], **outer}, True
    return schema, False


def _field(
    raw: Schema, root: Schema, path: tuple[str, ...], dom_id: str, required: bool, depth: int
) -> Field:
    schema, nullable = _unwrap_null(schema_at(raw, (), root) or {}, root)
    name = PREFIX + ".".join(_escape(part) for part in path)
    label = str(schema.get("title") or path[-1])
    common: dict[str, Any] = {
        "name": name, "path": path, "id": dom_id, "label": label, "required": required,
        "description": str(schema.get("description") or ""), "nullable": nullable,
    }  # fmt: skip
    control = _control(schema, root, depth)
    attrs: dict[str, str] = {}
    default = schema.get("default")
    has_default = "default" in schema and default is not None
    initial: tuple[str, ...] = ()
    if control == "fieldset":
        children = _object_fields(schema, root, path, dom_id, depth + 1)
        return Field(**common, control=control, attrs={}, schema={}, children=tuple(children))
    if control in ("select", "choices"):
        values = schema["enum"] if control == "select" else _item_schema(schema, root)["enum"]
        options = tuple(Option(json.dumps(v), _label(v)) for v in values)
        if control == "select":
            initial = (json.dumps(default),) if has_default else ()
            if required:
                attrs["required"] = ""
        else:
            chosen = default if has_default and isinstance(default, list) else []
            initial = tuple(json.dumps(v) for v in chosen)
        return Field(**common, control=control, attrs=attrs, schema=schema, options=options,
                     initial=initial)  # fmt: skip
    if control == "checkbox":
        return Field(**common, control=control, attrs={}, schema=schema,
                     initial=("true",) if default is True else ())  # fmt: skip
    if required:
        attrs["required"] = ""
    if control == "number":
        attrs["type"] = "number"
        attrs["step"] = "1" if _types(schema) == {"integer"} else "any"
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            if _is_number(schema.get(key)):
                attrs[attr] = _number_text(schema[key])
        if isinstance(default, int | float) and not isinstance(default, bool):
            initial = (_number_text(default),)
        return Field(**common, control=control, attrs=attrs, schema=schema, initial=initial)
    if control in ("text", "textarea"):
        if control == "text":
            fmt = schema.get("format")
            attrs["type"] = fmt if fmt in FORMATS else "text"
            if isinstance(schema.get("pattern"), str):
                # HTML anchors a pattern at both ends; JSON Schema searches for it
                attrs["pattern"] = f".*(?:{schema['pattern']}).*"
        for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(schema.get(key), int):
                attrs[attr] = str(schema[key])
        initial = (default,) if isinstance(default, str) else ()
        return Field(**common, control=control, attrs=attrs, schema=schema, initial=initial)
    initial = (json.dumps(default, indent=2),) if "default" in schema else ()
    return Field(**common, control="json", attrs=attrs, schema=schema, initial=initial)


def _control(schema: Schema, root: Schema, depth: int) -> Control:
    types = _types(schema)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return "select"
    if types == {"boolean"}:
        return "checkbox"
    if types and types <= {"number", "integer"}:
        return "number"
    if types == {"string"}:
        long = schema.get("maxLength")
        plain = "pattern" not in schema and "format" not in schema
        return "textarea" if plain and isinstance(long, int) and long > LONG_TEXT else "text"
    if types == {"array"}:
        items = _item_schema(schema, root)
        if isinstance(items.get("enum"), list) and items["enum"]:
            return "choices"
    if types == {"object"} and isinstance(schema.get("properties"), dict) and depth < MOST_DEPTH:
        return "fieldset"
    return "json"


def _types(schema: Schema) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    return set()


def _item_schema(schema: Schema, root: Schema) -> Schema:
    items = schema.get("items")
    return (schema_at(items, (), root) or {}) if isinstance(items, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _escape(part: str) -> str:
    """A path part inside a control's name: ``~`` and ``.`` escaped as JSON Pointer does."""
    return part.replace("~", "~0").replace(".", "~1")


def walk(fields: Sequence[Field]) -> list[Field]:
    """Every field, fieldsets and what they hold, depth first."""
    found: list[Field] = []
    for item in fields:
        found.append(item)
        found += walk(item.children)
    return found


# --- reading a submitted form ---------------------------------------------------------


def read_form(fields: Sequence[Field], submitted: Submitted) -> Reading:
    """The data a submitted form stands for. An empty control means "not given" (the
    schema's default applies, or ``required`` says so); a value that is not of the
    field's type (a number that is not one, JSON that does not parse) is a problem of
    that field."""
    reading = Reading({})
    if len(fields) == 1 and fields[0].path == ():  # the whole data as JSON
        given, value = _read(fields[0], submitted, reading.errors)
        reading.data = value if given else {}
    else:
        reading.data = _read_object(fields, submitted, reading.errors)
    return reading


def _read_object(fields: Sequence[Field], submitted: Submitted, errors: dict[str, str]) -> Any:
    data: dict[str, Any] = {}
    for item in fields:
        given, value = _read(item, submitted, errors)
        if given:
            data[item.path[-1]] = value
        elif item.required and item.nullable:
            data[item.path[-1]] = None
    return data


def _read(item: Field, submitted: Submitted, errors: dict[str, str]) -> tuple[bool, Any]:
    values = list(submitted.get(item.name, ()))
    text = values[0] if values else ""
    if item.control == "fieldset":
        inner = _read_object(item.children, submitted, errors)
        return bool(inner) or item.required, inner
    if item.control == "checkbox":
        return True, "true" in values
    if item.control == "choices":
        known = {option.value for option in item.options}
        if any(v not in known for v in values):
            errors[item.name] = "choose from the choices shown"
            return False, None
        chosen = [json.loads(o.value) for o in item.options if o.value in values]
        return bool(chosen) or item.required, chosen
    if text == "":
        return False, None
    if item.control == "select":
        if text not in {option.value for option in item.options}:
            errors[item.name] = "choose one of the choices shown"
            return False, None
        return True, json.loads(text)
    if item.control == "number":
        return _read_number(item, text, errors)
    if item.control == "json":
        try:
            return True, json.loads(text)
        except ValueError as exc:
            errors[item.name] = f"not valid JSON: {exc}"
            return False, None
    return True, text


def _read_number(item: Field, text: str, errors: dict[str, str]) -> tuple[bool, Any]:
    try:
        number = float(text.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        errors[item.name] = "must be a number"
        return False, None
    whole = number.is_integer() and abs(number) < 2**53
    if _types(item.schema) == {"integer"}:
        if not whole:
            errors[item.name] = "must be a whole number"
            return False, None
        return True, int(number)
    return True, int(number) if whole and "." not in text and "e" not in text.lower() else number


# --- checking the data ----------------------------------------------------------------


def check(schema: Schema, fields: Sequence[Field], data: Any) -> dict[str, str]:
    """Every way ``data`` misses the form's schema, one message per field (the first
    found), by the field's name (``""``: the form as a whole). The same validator as
    the operations (approve, start), and the formats the form draws (date, email)
    checked too."""
    from jsonschema import FormatChecker

    names = {item.path: item.name for item in walk(fields)}
    validator = validator_class(schema)(schema, format_checker=FormatChecker(FORMATS))
    found: dict[str, str] = {}
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path]):
        path = tuple(str(p) for p in _field_path(error.absolute_path))
        if error.validator == "required":
            for missing in error.validator_value:
                if isinstance(error.instance, dict) and missing not in error.instance:
                    name = _owner((*path, str(missing)), names)
                    found.setdefault(name, "this field is required" if name else
                                     _where(path, f"'{missing}' is required"))  # fmt: skip
            continue
        name = _owner(path, names)
        message = _message(error)
        found.setdefault(name, message if name else _where(path, message))
    return found


#: what the page's script says for the keywords it checks, so both say the same
_MESSAGES = {
    "minLength": "must be at least {} characters", "maxLength": "must be at most {} characters",
    "minimum": "must be at least {}", "maximum": "must be at most {}",
    "exclusiveMinimum": "must be more than {}", "exclusiveMaximum": "must be less than {}",
    "multipleOf": "must be a multiple of {}", "pattern": "must match the pattern {}",
    "minItems": "choose at least {}", "maxItems": "choose at most {}",
    "uniqueItems": "must not repeat a value",
}  # fmt: skip


def _message(error: Any) -> str:
    if error.validator == "format":
        return {"date": "must be a date (YYYY-MM-DD)", "email": "must be an email address"}.get(
            error.validator_value, f"must be a valid {error.validator_value}"
        )
    template = _MESSAGES.get(error.validator)
    in_item = any(isinstance(part, int) for part in error.absolute_path)
    if template is not None and not in_item:  # an item's problem says which item
        return template.format(error.validator_value)
    return str(error.message)


def _field_path(path: Sequence[Any]) -> list[Any]:
    """The path up to the first array index: a problem of an item is the array field's."""
    found = []
    for part in path:
        if isinstance(part, int):
            break
        found.append(part)
    return found


def _owner(path: tuple[str, ...], names: dict[tuple[str, ...], str]) -> str:
    for end in range(len(path), -1, -1):
        if path[:end] in names:
            return names[path[:end]]
    return ""


def _where(path: tuple[str, ...], message: str) -> str:
    return f"{'.'.join(path)}: {message}" if path else message
