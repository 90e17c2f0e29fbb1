"""Starting a run from a workflow's page: the form of a version's input (drawn from its
input schema by ``schema_form``, as an approval's form is), what a submitted form asks
for, and the run it starts.

The checks are the ones ``POST /runs`` makes (``start_once``: the input against the
schema, storable as JSON, the idempotency key), made field by field first, so that a
refusal names the field and keeps every value typed; nothing starts unless all pass.
The input may instead be given whole as JSON (what the fields cannot hold: a text of
several lines, an array of objects): then its problems are listed at that box. The run
records the signed-in name as ``started_by``, as the API records the token's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.errors import InputError
from keel.runtime.clock import Clock
from keel.runtime.operations.deployed import check_key, start_once
from keel.runtime.runs import RunCache
from keel.server.dashboard.schema_form import PREFIX, Field, check, form_fields, read_form, walk
from keel.spec.model import WorkflowSpec
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: the form's own controls (a field's control is named ``data.``...: no clash)
INPUT, KEY, VERSION = "input", "key", "version"
#: the longest whole-JSON input a form takes (more: use the API, or a file with the CLI)
MOST_INPUT = 1_000_000


@dataclass
class StartDraft:
    """What a person sent, shown again with the problems found: values by control name,
    problems by control name (``""``: the form as a whole)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    input: str = ""
    key: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, form: Mapping[str, Any], lists: Mapping[str, Sequence[Any]]) -> StartDraft:
        """From a submitted form (``form``: a value per name; ``lists``: every value)."""
        ours = PREFIX.rstrip(".")  # ``data.x``, and ``data`` when the form is one JSON box
        values = {name: [v for v in given if isinstance(v, str)]
                  for name, given in lists.items() if name.startswith(ours)}  # fmt: skip
        return cls(values, _text(form, INPUT), _text(form, KEY))


@dataclass(frozen=True, slots=True)
class StartForm:
    """The start form of one version, as the workflow page draws it."""

    version: str
    fields: list[Field]
    draft: StartDraft | None
    #: the schema declares no fields: they are one JSON box already, not offered twice
    whole_only: bool

    @property
    def whole_open(self) -> bool:
        """The whole-JSON box is shown open: it was used."""
        return self.draft is not None and bool(self.draft.input.strip())


def start_form(spec: WorkflowSpec, draft: StartDraft | None = None) -> StartForm:
    fields = form_fields(dict(spec.input_schema))
    whole_only = len(fields) == 1 and fields[0].path == ()
    return StartForm(spec.version, fields, draft, whole_only)


def read_input(spec: WorkflowSpec, fields: Sequence[Field], draft: StartDraft) -> Any:
    """The input the draft asks for; its problems go into ``draft.errors`` (the input
    is then not to be used). The whole-JSON box, when filled in, is the input."""
    schema = dict(spec.input_schema)
    if draft.key:
        try:
            check_key(draft.key)
        except InputError as exc:
            draft.errors[KEY] = str(exc)
    if len(draft.input) > MOST_INPUT:
        draft.errors[INPUT] = (f"longer than {MOST_INPUT:,} characters: start it with the "
                               "API or `keel start` instead")  # fmt: skip
        return None
    if draft.input.strip():
        try:
            data = json.loads(draft.input)
        except ValueError as exc:
            draft.errors[INPUT] = f"not valid JSON: {exc}"
            return None
        problems = check(schema, fields, data)
        if problems:
            paths = {item.name: ".".join(item.path) for item in walk(fields)}
            draft.errors[INPUT] = "\n".join(
                f"{paths[name] or 'input'}: {message}" if name else message
                for name, message in problems.items()
            )
        return data
    reading = read_form(fields, draft.values)
    draft.errors.update(reading.errors)
    if not reading.errors:
        draft.errors.update(check(schema, fields, reading.data))
    return reading.data


@dataclass(frozen=True, slots=True)
class Started:
    record: RunRecord
    #: False: the idempotency key had started this run already (none was started now)
    started: bool


def start_from_form(
    store: Store, spec: WorkflowSpec, draft: StartDraft, *, by: str, plans: RunCache,
    clock: Clock,
) -> Started | None:  # fmt: skip
    """Start the run the draft asks for, as ``by``; None (and ``draft.errors``) when it
    is refused. The operation checks everything again in its own transaction."""
    fields = form_fields(dict(spec.input_schema))
    run_input = read_input(spec, fields, draft)
    if draft.errors:
        return None
    try:
        record, started = start_once(store, spec, run_input, key=draft.key or None,
                                     started_by=by, plans=plans, clock=clock)  # fmt: skip
    except InputError as exc:  # not storable as JSON, a key used for other input
        draft.errors[""] = str(exc)
        return None
    return Started(record, started)


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
