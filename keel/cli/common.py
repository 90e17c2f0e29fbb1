"""What the run commands share: the ``--db`` option, opening the store, loading workflow
code, parsing ``--input``/``-i``, and turning keel's errors into one-line messages."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from keel.authoring.loading import LoadedWorkflow
    from keel.store.protocol import Store

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="KEEL_DATABASE_URL",
        help="Database URL (default sqlite:///.keel/keel.db; env KEEL_DATABASE_URL)",
        show_default=False,
    ),
]


JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]


def local_time(at: float | None) -> str:
    """A stored time as local date and time to the second ("" for none)."""
    if at is None:
        return ""
    return datetime.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """keel's own errors end the command with their message and exit status 1."""
    from keel.errors import KeelError

    try:
        yield
    except KeelError as exc:
        raise fail(str(exc)) from None


@contextmanager
def opened_store(url: str | None) -> Iterator[Store]:
    from keel.runtime.stores import open_store

    with reported_errors():
        store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def load_code(target: str) -> LoadedWorkflow:
    """Import a workflow (and so its tasks) the way ``keel validate`` does."""
    from keel.authoring.loading import import_task_modules, load_workflow

    with _import_errors(target):
        loaded = load_workflow(target)
        import_task_modules([loaded])
        return loaded


def import_code(target: str, what: str = "") -> list[LoadedWorkflow]:
    """Import a file or module of workflow code (``FILE[:WORKFLOW]`` takes the whole
    file) for a process that executes runs: its workflows, and the modules its YAML
    workflows name for their tasks (a worker runs only tasks of modules it imported).
    ``what`` prefixes error messages."""
    from keel.authoring.loading import import_task_modules, load_all, split_target

    location = split_target(target)[0]
    with _import_errors(location, what):
        loaded = load_all(location)
        import_task_modules(loaded)
        return loaded


@contextmanager
def _import_errors(target: str, what: str = "") -> Iterator[None]:
    from keel.errors import KeelError

    try:
        with reported_errors():
            yield
    except (typer.Exit, KeelError):
        raise
    except Exception as exc:  # the user's module raised while importing
        raise fail(f"{what}importing {target} raised {type(exc).__name__}: {exc}") from None


def allowed_tasks() -> tuple[str, ...]:
    """The ``allow`` worker setting (flags aside): plain functions that may run as tasks
    in this process too (``keel run``, ``keel resume``)."""
    from keel.runtime.worker_config import WorkerConfigError, load_worker_config

    try:
        return load_worker_config().allow
    except WorkerConfigError as exc:
        raise fail(str(exc)) from None


def origin_of(target: str) -> str:
    """Where a run's code comes from, so another process can load it: an absolute path
    for files (the current folder may differ later), the module name otherwise."""
    from keel.authoring.loading import split_target

    location, name = split_target(target)
    path = Path(location)
    if path.suffix in (".py", ".yaml", ".yml") or path.exists():
        location = str(path.resolve())
    return f"{location}:{name}" if name else location


def _json_or_text(text: str, what: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise fail(f"{what}: cannot read {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise fail(f"{what}: {path} is not JSON: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_json(text: str, what: str) -> Any:
    """A JSON value given on the command line, or ``@file.json``; anything else is an
    error naming the option (data that reaches a run must be what was meant)."""
    if text.startswith("@"):
        return _json_or_text(text, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(
            f"{what} is not valid JSON ({exc.msg}): {text!r}; quote text as '\"...\"'"
        ) from None


def parse_input(
    document: str | None, pairs: list[str], schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``--input '{"a": 1}'`` (or ``@file.json``) and ``-i key=value`` (JSON or text,
    ``key=@file.json`` reads the file); pairs override keys of the document. A field the
    input schema types as a string takes the text as it is (``-i zip=02134``)."""
    properties = (schema or {}).get("properties")
    text_fields = {
        name
        for name, field in (properties if isinstance(properties, dict) else {}).items()
        if isinstance(field, dict) and field.get("type") == "string"
    }
    result: dict[str, Any] = {}
    if document is not None:
        data = _json_or_text(document, "--input")
        if not isinstance(data, dict):
            if isinstance(data, str) and not document.startswith("@"):
                raise fail(f"--input is not valid JSON: {document!r}")
            raise fail("--input must be a JSON object, e.g. '{\"claim\": {...}}'")
        result.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"-i {pair!r}: write key=value (value is JSON or text, @file reads JSON)")
        key = key.strip()
        if key in text_fields and not value.startswith("@"):
            result[key] = value
        else:
            result[key] = _json_or_text(value, f"-i {key}")
    return result
