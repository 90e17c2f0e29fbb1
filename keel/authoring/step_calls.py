"""``keel.http``, ``keel.shell``, ``keel.sql`` and ``keel.email`` in a Python workflow:
each records one built-in step node (as YAML would) and returns its future output, like
a task call.

Fields that are templates in the spec (``keel.spec.step_nodes.TEMPLATE_FIELDS``) take
Python values:

- a ``Value`` (a step's output, an input field, ``keel.secrets.NAME``) becomes
  ``${{ expression }}``, whole (the field gets the value, any JSON) or inside a dict or
  a list (``body={"id": claim.id}``);
- text is a template as in YAML: ``"${{ input.id }}"`` and ``"${{ secrets.TOKEN }}"``
  stay as written, and ``${{ name }}`` parts are filled from ``values={"name": value}``
  (as ``keel.llm.step`` does): ``"Bearer ${{ token }}", values={"token":
  keel.secrets.TOKEN}``;
- constants (pydantic models dumped) as they are.

The spec is the same whichever way it was written (tests compare them with YAML's). A
field given ``None`` is left out, so the node model's default applies. Node options
(``id``, ``retries``, ``timeout``, ``when``, ``after``, ``on_failure``...) are the ones
``task.options(...)`` takes (``StepOptions``); the node's id is the kind's name
(``http``, ``http_2``...) unless ``id=`` is given.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Unpack

from pydantic import BaseModel

from keel.authoring.options import StepOptions, read_options
from keel.authoring.templating import named_parts, part_of, template
from keel.authoring.tracing import require_trace
from keel.authoring.values import Value, contains_value
from keel.errors import TracingError
from keel.spec.step_nodes import HttpMethod

#: a template field's Python value: text, a ``Value``, or JSON holding either
Template = Any


class _Fields:
    """The spec fields of one step as they are written, and the ``values`` they used."""

    def __init__(self, what: str, values: Mapping[str, Any] | None) -> None:
        self.trace = require_trace(what)  # first: outside a workflow, say only that
        self.what = what
        self.values: Mapping[str, Any] = values or {}
        self.used: set[str] = set()
        self.data: dict[str, Any] = {}

    def template(self, name: str, value: object) -> None:
        """A template field (left out when ``None``)."""
        if value is not None:
            self.data[name] = self._written(value, f"{self.what}({name}=...)")

    def constant(self, name: str, value: object) -> None:
        """A field that is not a template: it must be known when the workflow is defined."""
        if value is None:
            return
        if contains_value(value):
            raise TracingError(
                f"{self.what}({name}=...) takes a constant, not a future value: only the "
                "step's templates are filled when it runs"
            )
        self.data[name] = list(value) if isinstance(value, tuple) else value

    def _written(self, value: object, where: str) -> Any:
        if isinstance(value, Value):
            return part_of(value, where)
        if isinstance(value, str):
            self.used |= named_parts(value) & set(self.values)
            return template(value, self.values, self.what)
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            written = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TracingError(f"{where}: the keys of a mapping are text, got {key!r}")
                written[key] = self._written(item, where)
            return written
        if isinstance(value, list | tuple):
            return [self._written(item, where) for item in value]
        raise TracingError(
            f"{where}: {type(value).__name__} is not JSON; give text, numbers, lists, dicts, "
            "pydantic models or future values"
        )

    def checked(self) -> dict[str, Any]:
        """The fields, once every name of ``values`` has been used."""
        unused = sorted(set(self.values) - self.used)
        if unused:
            raise TracingError(
                f"{self.what}(values=...): names given but used by no ${{{{ name }}}} part: "
                f"{', '.join(unused)}"
            )
        return self.data


def _record(kind: str, fields: _Fields, options: Mapping[str, object]) -> Any:
    # the kind's own fields (its function's other parameters), for a typo's suggestion
    own = tuple(inspect.signature(_STEPS[kind]).parameters)[:-1]
    read = read_options(options, StepOptions, fields.what, own_fields=own)
    node = read.node(fields.trace, kind, kind)
    node.update(fields.checked())
    return fields.trace.add(node)


def _addresses(value: object, what: str) -> object:
    """One address or a list of them, as a list."""
    if value is None or isinstance(value, str | Value):
        return None if value is None else [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise TracingError(
        f"{what} takes an address or a list of addresses, not {type(value).__name__}"
    )


def http(
    url: Template,
    *,
    method: HttpMethod = "GET",
    headers: Mapping[str, Template] | None = None,
    query: Mapping[str, Template] | None = None,
    body: Template = None,
    form: Mapping[str, Template] | None = None,
    ok_status: Sequence[int] | None = None,
    retry_status: Sequence[int] | None = None,
    max_response_bytes: int | None = None,
    follow_redirects: bool | None = None,
    response: Literal["auto", "json", "text"] | None = None,
    values: Mapping[str, Any] | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """Call an HTTP API (an ``http`` node). The output is ``{"status", "headers",
    "body"}``. ``body`` is sent as JSON, ``form`` as a form; a status in
    ``retry_status`` is retried, any other outside ``ok_status`` (200-299) fails the
    node. A GET, HEAD or OPTIONS is not a side effect unless ``side_effect=True``."""
    fields = _Fields("keel.http", values)
    fields.constant("method", None if method == "GET" else method)
    for name, value in (("url", url), ("headers", headers), ("query", query), ("body", body),
                        ("form", form)):  # fmt: skip
        fields.template(name, value)
    fields.constant("ok_status", ok_status)
    fields.constant("retry_status", retry_status)
    fields.constant("max_response_bytes", max_response_bytes)
    fields.constant("follow_redirects", follow_redirects)
    fields.constant("response", response)
    return _record("http", fields, options)


def shell(
    command: Sequence[Template],
    *,
    env: Mapping[str, Template] | None = None,
    cwd: Template = None,
    stdin: Template = None,
    ok_exit_codes: Sequence[int] | None = None,
    max_output_bytes: int | None = None,
    parse: Literal["text", "json"] | None = None,
    values: Mapping[str, Any] | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """Run a program (a ``shell`` node): ``command`` is the program and its arguments,
    a list, never a shell string. The output is ``{"exit_code", "stdout", "stderr"}``.
    The worker's ``[shell] allow`` must name the program."""
    if isinstance(command, str | Value) or not isinstance(command, Sequence):
        raise TracingError(
            "keel.shell takes the program and its arguments as a list, e.g. "
            f"['convert', '${{{{ input.path }}}}', 'out.png'], not {type(command).__name__}: "
            "nothing is parsed by a shell"
        )
    fields = _Fields("keel.shell", values)
    fields.template("command", list(command))
    fields.template("env", env)
    fields.template("cwd", cwd)
    fields.template("stdin", stdin)
    fields.constant("ok_exit_codes", ok_exit_codes)
    fields.constant("max_output_bytes", max_output_bytes)
    fields.constant("parse", parse)
    return _record("shell", fields, options)


def sql(
    connection: str,
    query: str,
    *,
    params: Mapping[str, Template] | None = None,
    max_rows: int | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """Run one statement (an ``sql`` node) on a connection the worker's ``keel.toml``
    names. Values go in ``params`` and are written ``:name`` in ``query``, never into
    it. The output is ``{"rows", "row_count", "columns"}``."""
    fields = _Fields("keel.sql", None)
    fields.constant("connection", connection)
    fields.constant("query", query)
    fields.template("params", params)
    fields.constant("max_rows", max_rows)
    return _record("sql", fields, options)


def email(
    *,
    to: Template,
    subject: Template,
    body: Template = None,
    html: Template = None,
    cc: Template = None,
    bcc: Template = None,
    sender: Template = None,
    reply_to: Template = None,
    host: str | None = None,
    port: int | None = None,
    starttls: bool | None = None,
    username: Template = None,
    password: Template = None,
    values: Mapping[str, Any] | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """Send an email (an ``email`` node) through the worker's SMTP server (its
    ``[email]`` table) or the one given. ``to``, ``cc`` and ``bcc`` take an address or
    a list; ``password`` a secret (``keel.secrets.SMTP_PASSWORD``). The output is
    ``{"message_id", "to"}``."""
    fields = _Fields("keel.email", values)
    fields.template("to", _addresses(to, "keel.email(to=...)"))
    fields.template("cc", _addresses(cc, "keel.email(cc=...)"))
    fields.template("bcc", _addresses(bcc, "keel.email(bcc=...)"))
    for name, value in (("subject", subject), ("body", body), ("html", html), ("sender", sender),
                        ("reply_to", reply_to), ("username", username),
                        ("password", password)):  # fmt: skip
        fields.template(name, value)
    fields.constant("host", host)
    fields.constant("port", port)
    fields.constant("starttls", starttls)
    return _record("email", fields, options)


#: each kind's function, whose parameters are the step's fields (``_check_keywords``)
_STEPS: dict[str, Callable[..., Any]] = {"http": http, "shell": shell, "sql": sql, "email": email}
