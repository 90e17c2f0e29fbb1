"""keel's built-in steps: nodes that call another system (``http``, ``shell``, ``sql``,
``email``) without a line of Python, from YAML as from Python.

Each is a node like a task (retries, timeout, circuit, concurrency, ``on_failure``) whose
function is keel's own (``STEP_TASKS``: every worker may run it). Its fields are
*templates*: JSON in which a string that is wholly one ``${{ expression }}`` stands for
the expression's value (any JSON), a string with ``${{ }}`` parts among text is text with
the values written in, and anything else is as written. The expressions read ``input``,
``nodes.<id>.output`` (which make the node's dependencies, as arguments do) and
``secrets.NAME``, which only a built-in step may read: templates are filled by the
worker when the step runs, so a secret's value is never in the spec, the history or the
arguments the engine records (``keel.runtime.secrets``).

What a step may reach is the operator's to say, not the spec's: ``shell`` runs only
programs the worker's ``keel.toml`` allows, ``sql`` only connections it names, ``http``
never a private, loopback or link-local address unless allowed there.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from keel.errors import ExpressionError
from keel.spec.email_addresses import has_line_break, parse_address
from keel.spec.expressions import analyze
from keel.spec.node_base import _NodeBase
from keel.spec.sql_text import (
    DIALECTS,
    ONE_STATEMENT,
    PARAM_NAME,
    more_than_one_statement,
    parameter_names,
    statement,
)
from keel.spec.templates import template_expressions
from keel.spec.types import JsonData, Name

#: keel's own task that runs each kind of built-in step
STEP_TASKS = {
    "http": "keel.steps.http:http_step",
    "shell": "keel.steps.shell:shell_step",
    "sql": "keel.steps.sql:sql_step",
    "email": "keel.steps.email:email_step",
}
#: the root name of secrets in a built-in step's templates
SECRETS = "secrets"


def secret_reference(source: str) -> str | None:
    """The secret a template's expression names, or None when it reads no secret.

    A secret is read whole: ``secrets.NAME`` (or ``secrets["NAME"]``) alone between the
    braces, text around it being fine. An expression that computes on a secret
    (``secrets.T.startsWith("a")``, ``size(secrets.T)``, ``secrets.T == "..."``) gives a
    value the redaction cannot recognise as the secret: a way to spell it out into the
    recorded output a piece at a time. Such an expression raises ``ValueError``."""
    try:
        info = analyze(source)  # cached: validation and the graph analysed it already
    except ExpressionError:
        return None  # not an expression: validation says so, filling fails evaluating it
    if SECRETS not in info.free_names:
        return None
    path = info.path
    if path is None or len(path) != 2 or path[0] != SECRETS or not isinstance(path[1], str):
        raise ValueError(
            f"{source!r} computes on a secret: a template reads a secret whole, "
            f"${{{{ {SECRETS}.NAME }}}} alone between the braces (text around it is fine), "
            "so that whatever echoes it can be redacted"
        )
    return path[1]


#: JSON with ``${{ expression }}`` parts, filled when the step runs (see the module)
Template = JsonData

HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MIB = 1024 * 1024
#: a variable name a shell step's program may be given (POSIX's portable names)
#: the name of a secret or of an environment variable (one rule for both, everywhere)
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: variables the dynamic loader reads (LD_PRELOAD, DYLD_INSERT_LIBRARIES...): they would
#: make any program, however allowed, run a library of the spec's choosing
_LOADER_ENV = ("LD_", "DYLD_")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _argument_list(value: Any) -> Any:
    """A shell command as YAML's author may write it by mistake (a string, an empty
    list) refused with what to write instead, as ``keel.shell`` says it."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        example = "[" + ", ".join(json.dumps(word) for word in words or ["ls", "-la", "/tmp"]) + "]"
        raise ValueError(
            "give the program and its arguments as a list, e.g. "
            f"{example}, not the text {value!r}: nothing is parsed by a shell"
        )
    if isinstance(value, list | tuple) and not value:
        raise ValueError(
            "the command is empty: give the program and its arguments as a list, e.g. "
            '["ls", "-la", "/tmp"]'
        )
    if not isinstance(value, list | tuple):
        raise ValueError(
            "give the program and its arguments as a list, e.g. "
            f'["ls", "-la", "/tmp"], not {type(value).__name__}'
        )
    return value


def _one_or_list(value: Any) -> Any:
    """One item where a list is expected (``to: a@example.com``, ``ok_status: 201``)
    stands for a list of it."""
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


def _mapping(example: str) -> Any:
    """A check that a field is a mapping, saying how to write one (not pydantic's words)."""

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"write a mapping of names to values, e.g. {example}")
        return value

    return BeforeValidator(check)


def _addresses(value: Any) -> Any:
    value = _one_or_list(value)
    if isinstance(value, list | tuple) and not value:
        raise ValueError("give at least one address, e.g. [ann@example.com]")
    return value


#: one item or a list of them (a single item is a list of one)
Codes = Annotated[tuple[int, ...], BeforeValidator(_one_or_list)]


def _statuses(value: Any) -> Any:
    """HTTP statuses: one, or a list of them; a range written as text is refused saying
    how to write it (pydantic would say a string is not an integer)."""
    items = _one_or_list(value)
    if isinstance(items, list | tuple):
        for item in items:
            if isinstance(item, str) and not item.strip().isdigit():
                raise ValueError(
                    f"{item!r} is not a status: give a status or a list of them, e.g. "
                    "[200, 404] (a range is written as its statuses)"
                )
    return items


Statuses = Annotated[tuple[Annotated[int, Field(ge=100, le=599)], ...], BeforeValidator(_statuses)]
Addresses = Annotated[tuple[Template, ...], BeforeValidator(_one_or_list)]


class _StepBase(_NodeBase):
    """What every built-in step has besides a task's policies."""

    #: it changes the world: ``keel fork`` says so before running it again. Unset, the
    #: kind decides (an ``http`` GET, HEAD or OPTIONS does not; the others do)
    side_effect: bool | None = None

    @property
    def task(self) -> str:
        """keel's own task that runs the step (the worker needs no user code for it)."""
        return STEP_TASKS[self.kind]  # type: ignore[attr-defined]

    @property
    def changes_the_world(self) -> bool:
        """Whether running the step again may act twice (``side_effect``, or the kind's)."""
        if self.side_effect is not None:
            return self.side_effect
        return self._side_effect_by_kind()

    def _side_effect_by_kind(self) -> bool:
        return True

    def templates(self) -> dict[str, Any]:
        """The fields that are templates and their values (unset ones left out)."""
        fields = TEMPLATE_FIELDS[self.kind]  # type: ignore[attr-defined]
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}


class HttpNode(_StepBase):
    """Call an HTTP API. The output is ``{"status", "headers", "body"}`` (the body as JSON
    when the response says it is, else text). A status in ``retry_status`` fails the
    attempt as retryable (after ``Retry-After`` if the server sent one); any other status
    not in ``ok_status`` (default: 200-299) fails the node at once."""

    kind: Literal["http"] = "http"
    method: Annotated[HttpMethod, BeforeValidator(_upper)] = "GET"
    url: str = Field(min_length=1)
    headers: Annotated[
        dict[str, Template], _mapping('{Authorization: "Bearer ${{ secrets.TOKEN }}"}')
    ] = Field(default_factory=dict)
    #: query parameters (a list gives the parameter once per item)
    query: Annotated[dict[str, Template], _mapping('{page: 2, q: "${{ input.q }}"}')] = Field(
        default_factory=dict
    )
    #: a JSON body (``Content-Type: application/json``)
    body: Template = None
    #: a form body (``application/x-www-form-urlencoded``), instead of ``body``
    form: Annotated[dict[str, Template], _mapping('{name: "${{ input.name }}"}')] | None = None
    #: statuses that are a success (empty: 200-299)
    ok_status: Statuses = ()
    #: statuses that fail the attempt as retryable
    retry_status: Statuses = (
        408, 425, 429, 500, 502, 503, 504)  # fmt: skip
    #: a longer response fails the node
    max_response_bytes: int = Field(10 * _MIB, ge=1, le=1024 * _MIB)
    follow_redirects: bool = True
    #: how to read the response body: ``auto`` by its content type
    response: Literal["auto", "json", "text"] = "auto"

    @model_validator(mode="after")
    def _one_body(self) -> HttpNode:
        if self.body is not None and self.form is not None:
            raise ValueError("give either 'body' (JSON) or 'form', not both")
        if (self.body is not None or self.form is not None) and self.method in ("GET", "HEAD"):
            raise ValueError(f"a {self.method} request has no body: use 'query', or POST")
        return self

    def _side_effect_by_kind(self) -> bool:
        return self.method not in _SAFE_METHODS


class ShellNode(_StepBase):
    """Run a program with arguments (a list, never a shell string: nothing is parsed by a
    shell, so a value cannot inject a command). The output is ``{"exit_code", "stdout",
    "stderr", "truncated"}`` (``stdout`` parsed when ``parse`` is ``json``; ``truncated``
    says which of the two was cut at ``max_output_bytes``); an exit code not in
    ``ok_exit_codes`` fails the attempt, retried as the node's ``retry`` says. The
    node's ``timeout`` kills the whole process group. The program must be allowed by
    the worker's ``[shell] allow``."""

    kind: Literal["shell"] = "shell"
    #: the program and its arguments; an item that is wholly one expression giving a
    #: list adds each element as an argument
    command: Annotated[tuple[Template, ...], BeforeValidator(_argument_list)]
    #: environment of the program, besides ``PATH``, ``HOME``, ``LANG`` (the worker's
    #: own environment is not passed on: it may hold the worker's secrets)
    env: Annotated[dict[str, Template], _mapping('{LANG: C.UTF-8, TOKEN: "${{ secrets.T }}"}')] = (
        Field(default_factory=dict)
    )
    #: working folder (default: a new empty temporary folder, removed afterwards)
    cwd: Template = None
    #: text written to the program's standard input
    stdin: Template = None
    ok_exit_codes: Codes = (0,)
    #: each of stdout and stderr is kept up to this size (the rest is cut, and said)
    max_output_bytes: int = Field(_MIB, ge=1, le=64 * _MIB)
    parse: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _runnable(self) -> ShellNode:
        program = self.command[0]
        if program is None or (isinstance(program, str) and not program.strip()):
            raise ValueError("the command's first item names the program: it is empty")
        if not isinstance(program, str):
            raise ValueError(f"the command's first item names the program, got {program!r}")
        for name in self.env:
            if not VARIABLE_NAME.match(name):
                raise ValueError(
                    f"env has {name!r}, which is not a variable name (letters, digits "
                    "and '_', not starting with a digit)"
                )
            if name.upper().startswith(_LOADER_ENV):
                raise ValueError(
                    f"env has {name!r}, which makes the system load other code into "
                    "whatever program runs (an allowed one included): only the operator "
                    "may set it, under [shell] env of the worker's keel.toml"
                )
        return self


class SqlNode(_StepBase):
    """Run one parameterised statement against a connection the worker's ``keel.toml``
    names (``[sql.connections.NAME] url = ...``; PostgreSQL or SQLite). Values go in
    ``params`` and are referred to as ``:name`` in the query, never written into it.
    The output is ``{"rows": [{column: value}], "row_count", "columns"}``; a query that
    gives more than ``max_rows`` rows fails the node."""

    kind: Literal["sql"] = "sql"
    #: a connection named in ``[sql.connections]`` of the worker's ``keel.toml``
    connection: Name
    #: the statement, with ``:name`` parameters (not a template: values go in ``params``)
    query: str = Field(min_length=1)
    params: Annotated[dict[str, Template], _mapping('{id: "${{ input.id }}", min: 3}')] = Field(
        default_factory=dict
    )
    max_rows: int = Field(1000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _no_text_values(self) -> SqlNode:
        if "${{" in self.query:
            raise ValueError(
                "a query must hold no ${{ }} parts (that would write values into the SQL): "
                "write :name in the query and give name under 'params'"
            )
        return self

    @model_validator(mode="after")
    def _params_match_the_query(self) -> SqlNode:
        """Each ``:name`` of the query has a value in ``params`` and each value is used.
        The two dialects read a few things apart (``[...]``, dollar quotes): a name is
        required when both see it, and refused when neither does (the step checks again
        against the connection's own dialect)."""
        for key in self.params:
            if not PARAM_NAME.fullmatch(key):
                raise ValueError(f"params: {key!r} is not a parameter name (letters, digits, '_')")
        if all(more_than_one_statement(self.query, dialect) for dialect in DIALECTS):
            raise ValueError(ONE_STATEMENT)
        pg, lite = (set(parameter_names(self.query, dialect)) for dialect in DIALECTS)
        missing = sorted((pg & lite) - set(self.params))
        unused = sorted(set(self.params) - (pg | lite))
        problems = []
        if missing:
            problems.append(
                f"the query uses {', '.join(':' + name for name in missing)} but 'params' "
                f"gives no {', '.join(missing)}"
            )
        if unused:
            problems.append(
                f"params {', '.join(unused)} not used in the query: write "
                f"{', '.join(':' + name for name in unused)} where each value goes, or remove it"
            )
        if problems:
            raise ValueError("; and ".join(problems))
        return self

    def _side_effect_by_kind(self) -> bool:
        # comments and strings skipped; a WITH clause read to the statement it leads to
        return not statement(self.query, "postgresql").reads_only


class EmailNode(_StepBase):
    """Send an email through an SMTP server. ``host``, ``port``, ``starttls``,
    ``username``, ``password`` and ``sender`` default to the worker's ``[email]`` table
    of ``keel.toml`` (where the password is named by a secret, ``password_secret``).
    ``to``, ``cc`` and ``bcc`` each give addresses (an item that is wholly one
    expression may give a list); ``bcc`` is never in the headers. The output is
    ``{"message_id", "to"}`` (every recipient the server accepted); a recipient the
    server refuses fails the node. Every attempt of the node sends the same
    ``Message-ID``, so a receiver can drop a resent duplicate."""

    kind: Literal["email"] = "email"
    to: Annotated[tuple[Template, ...], BeforeValidator(_addresses)]
    cc: Addresses = ()
    bcc: Addresses = ()
    subject: str = Field(min_length=1)
    #: the text of the message
    body: Template = ""
    #: an HTML version, sent beside the text
    html: Template = None
    sender: Template = None
    reply_to: Template = None
    host: str | None = Field(None, min_length=1)
    port: int | None = Field(None, ge=1, le=65535)
    starttls: bool | None = None
    username: Template = None
    #: a secret, e.g. ``${{ secrets.SMTP_PASSWORD }}``
    password: Template = None

    @model_validator(mode="after")
    def _literal_values_are_addresses(self) -> EmailNode:
        """What is written as it is (no ``${{ }}``) is checked now; what templates give
        is checked when the step runs."""
        fields: dict[str, tuple[Any, ...]] = {"to": self.to, "cc": self.cc, "bcc": self.bcc,
                                              "sender": (self.sender,),
                                              "reply_to": (self.reply_to,)}  # fmt: skip
        for name, items in fields.items():
            for item in items:
                if item is None or (isinstance(item, str) and "${{" in item):
                    continue
                if not isinstance(item, str):
                    raise ValueError(f"{name}: {item!r} is not an email address (write text)")
                try:
                    parse_address(item)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        if isinstance(self.subject, str) and has_line_break(self.subject):
            raise ValueError("subject: a subject is one line (it holds a line break)")
        if self.password is not None and not (
            isinstance(self.password, str) and "${{" in self.password
        ):
            raise ValueError(
                "password: name a secret, e.g. ${{ secrets.SMTP_PASSWORD }} (a password "
                "written in the spec would be stored with it)"
            )
        return self


#: the template fields of each kind, in the order they are read
TEMPLATE_FIELDS = {
    "http": ("url", "headers", "query", "body", "form"),
    "shell": ("command", "env", "cwd", "stdin"),
    "sql": ("params",),
    "email": ("to", "cc", "bcc", "subject", "body", "html", "sender", "reply_to",
                  "username", "password"),
}  # fmt: skip

StepNode = HttpNode | ShellNode | SqlNode | EmailNode


def template_strings(
    value: Any, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string in a JSON template, with where it is."""
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from template_strings(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_strings(item, (*loc, key))


def template_sites(
    value: Any, loc: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every ``${{ expression }}`` in a template value, with where it is (for errors)."""
    return [(at, source) for at, text in template_strings(value, loc)
            for source in template_expressions(text)]  # fmt: skip
