"""What the run commands share: the ``--db`` option, opening the store or a client (of
the server ``KEEL_SERVER_URL`` names, else of the store), loading workflow code, parsing
``--input``/``-i``, and turning keel's errors into one-line messages."""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from keel.authoring.loading import LoadedWorkflow
    from keel.runtime.audit_key import AuditConfig
    from keel.runtime.client import Client
    from keel.runtime.worker.config import WorkerConfig
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


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, the noun with an s unless there is one: "1 run", "2 runs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def fail(message: str, code: int = 1, *, wrap: bool = False) -> typer.Exit:
    """Say why the command ends (on stderr) and the exit to raise. ``wrap``: fitted to
    stderr's width (``fitted``), for the commands whose refusals run long (keel fork,
    keel diff); the others keep their one line, which scripts and tests read."""
    typer.echo(fitted(message) if wrap else message, err=True)
    return typer.Exit(code)


#: what stands for a space inside a `command` while a message is wrapped
_KEPT_SPACE = "\x00"


def fitted(message: str, width: int | None = None) -> str:
    """A message wrapped at spaces to ``width`` (default: stderr's, from ``COLUMNS``,
    or 80 when piped), each line's continuation indented two more spaces than it. A
    `command` in backquotes is never broken (a command split over lines cannot be
    copied); a word longer than a line (a path, a URL) is left whole."""
    import textwrap

    from rich.console import Console

    width = Console(stderr=True).width if width is None else width
    kept = re.sub(r"`[^`\n]*`", lambda found: found[0].replace(" ", _KEPT_SPACE), message)
    lines = []
    for line in kept.split("\n"):
        indent = line[: len(line) - len(line.lstrip(" "))]
        lines += textwrap.wrap(line, width, subsequent_indent=indent + "  ",
                               break_long_words=False, break_on_hyphens=False,
                               drop_whitespace=True) or [line]  # fmt: skip
    return "\n".join(lines).replace(_KEPT_SPACE, " ")


@contextmanager
def reported_errors(*, wrap: bool = False) -> Iterator[None]:
    """keel's own errors end the command with their message and exit status 1; a run
    id that names no run, with where to find one (the store and the API say only that
    there is none: the hint is the CLI's). ``wrap``: as ``fail``'s."""
    from keel.errors import NO_RUN, KeelError, RunNotFoundError

    try:
        yield
    except RunNotFoundError as exc:
        said = str(exc)
        said = f"{said} (see `keel runs`)" if said.startswith(NO_RUN) else said
        raise fail(said, wrap=wrap) from None
    except KeelError as exc:
        raise fail(str(exc), wrap=wrap) from None


@contextmanager
def opened_store(
    url: str | None, *, upgrade: bool = False, create: bool = False
) -> Iterator[Store]:
    """The store ``url`` names, closed after the block. ``upgrade``: apply a shared
    database's pending migrations, as a starting worker does (for the commands that
    execute runs: they are what a new user types first on a new database). ``create``:
    create an embedded database that is not there (only commands that start work do;
    for the others a missing file is a mistyped URL, an error)."""
    from keel.runtime.stores import open_store

    with reported_errors():
        store = open_store(url, upgrade=upgrade, create=create)
    try:
        yield store
    finally:
        store.close()


#: the environment variable naming a keel server the run commands talk to instead of the
#: database (with a token in ``KEEL_TOKEN``), so an operator needs no database credentials
SERVER_ENV = "KEEL_SERVER_URL"


def server_url() -> str | None:
    """The keel server the run commands use (``KEEL_SERVER_URL``), if one is set."""
    return os.environ.get(SERVER_ENV, "").strip() or None


def needs_database(db: str | None, what: str) -> None:
    """Refuse, with what to do, a command that executes runs in this process (and so
    needs the database) when only a server is given."""
    if server_url() is not None and db is None:
        raise fail(
            f"{what} executes the run in this process, which needs the database: give --db "
            f"(or KEEL_DATABASE_URL) too; {SERVER_ENV} is only for commands that a server "
            "can do"
        )


@contextmanager
def opened_client(
    db: str | None,
    *,
    by: str | None = None,
    local: bool = False,
    upgrade: bool = False,
    create: bool = False,
    signing: bool = False,
) -> Iterator[Client]:
    """The client the run commands act through, closed after the block: of the server
    ``KEEL_SERVER_URL`` names (token from ``KEEL_TOKEN``), else of the store ``db``
    names (``upgrade``, ``create``: as ``opened_store``). ``local``: the command goes on
    to execute the run here, so it takes the store (``db`` must be given with a server).
    ``by`` is refused with a server: it records the token's name itself. ``signing``:
    the client signs the approvals it decides on the store with the configured audit
    key, if any (``keel.runtime.audit_key``; a server signs with its own)."""
    from keel.runtime.client import Client, is_server_url

    url = server_url()
    if url is None or local:
        key = None
        if signing:
            with reported_errors():  # a key file that does not read: its one-line error
                key = audit_settings().signing_key()
        with opened_store(db, upgrade=upgrade, create=create) as store:
            yield Client(store=store, signing_key=key)
        return
    if not is_server_url(url):
        raise fail(f"{SERVER_ENV}={url!r}: give the server's URL, http(s)://HOST:PORT")
    if by is not None:
        raise fail(
            f"--by: the server at {url} records the token's name as who did it; leave out "
            f"--by (or unset {SERVER_ENV} to act on the database)"
        )
    with reported_errors():
        client = Client(url)
    try:
        yield client
    finally:
        client.close()


def moment(text: str, option: str, now: Callable[[], float]) -> float:
    """A time given to ``option`` as a timestamp: a duration back from ``now()`` (24h,
    7d), a date (2025-01-31) or a date and time (2025-01-31T09:00, local unless it
    says its offset: ...Z, ...+02:00); exit 2 with the forms it takes otherwise."""
    from keel.errors import KeelError
    from keel.spec.durations import parse_duration

    try:
        back = parse_duration(text)
    except (KeelError, ValueError):
        back = None
    if back is not None:
        return now() - back
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        said = (f"{option} '{text}' is neither a date (2025-01-31), a date and time "
                "(2025-01-31T09:00), nor a duration (24h, 7d)")  # fmt: skip
        raise fail(said, 2, wrap=True) from None


def client_now(client: Client) -> float:
    """The time to compare a client's times with: the store's clock (a shared
    database's), or this host's over HTTP."""
    import time

    from keel.runtime.clock import clock_for

    return time.time() if client.store is None else clock_for(client.store).now()


def load_code(target: str, *, checked: bool = False, allow: Collection[str] = ()) -> LoadedWorkflow:
    """Import a workflow (and so its tasks, and for YAML the modules its tasks name).
    ``checked``: check it as ``keel validate`` does (tasks imported, arguments against
    their signatures, each a keel task or in ``allow``) before a run is recorded."""
    from keel.authoring.loading import import_task_modules, load_workflow

    with _import_errors(target):
        loaded = load_workflow(target, resolve_tasks=checked, allow=allow)
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
    from keel.authoring.definition_errors import import_failure
    from keel.errors import KeelError

    try:
        with reported_errors():
            yield
    except (typer.Exit, KeelError):
        raise
    except Exception as exc:  # the user's module raised while importing
        raise fail(what + import_failure(target, exc)) from None


def worker_settings() -> WorkerConfig:
    """The worker settings (flags aside) that apply in this process too: ``allow`` (the
    plain functions that may run as tasks, which ``keel validate`` checks against as
    well) and ``inline``, for the worker inside ``keel run`` and ``keel resume``."""
    from keel.runtime.worker.config import WorkerConfigError, load_worker_config

    try:
        return load_worker_config()
    except WorkerConfigError as exc:
        raise fail(str(exc)) from None


def database_url(config: WorkerConfig) -> str | None:
    """The database URL of ``keel worker`` and ``keel serve``'s settings: a relative SQLite
    path in a config file is relative to that file's folder."""
    url = config.database_url
    if (
        url is None
        or config.root is None
        or not config.sources["database_url"].startswith(("keel.toml", "pyproject.toml"))
    ):
        return url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(config.root / url[len(prefix) :])
    return url


def origin_of(target: str) -> str:
    """Where a run's code comes from, so another process can load it: an absolute path
    for files (the current folder may differ later), the module name otherwise."""
    from keel.authoring.loading import split_target

    location, name = split_target(target)
    path = Path(location)
    if path.suffix in (".py", ".yaml", ".yml") or path.exists():
        location = str(path.resolve())
    return f"{location}:{name}" if name else location


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"{what}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise fail(
            f"{what}: {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None


def _checked(value: Any, what: str) -> Any:
    """``value`` if keel can store it (``keel.spec.data``), else a one-line error."""
    from keel.errors import InputError
    from keel.spec.data import check_json

    try:
        return check_json(value, what)
    except InputError as exc:
        raise fail(str(exc)) from None


def _loads(text: str, what: str) -> Any:
    """JSON text parsed and checked; ``json.JSONDecodeError`` if it is not JSON."""
    from keel.errors import InputError
    from keel.spec.data import loads

    try:
        return loads(text, what)
    except InputError as exc:
        raise fail(str(exc)) from None


def _json_or_text(text: str, what: str) -> Any:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            return _loads(_read(path, what), f"{what} ({path})")
        except json.JSONDecodeError as exc:
            raise fail(f"{what}: {path} is not JSON: {exc}") from None
    try:
        return _loads(text, what)
    except json.JSONDecodeError:
        return _checked(text, what)


def _text(text: str, what: str) -> str:
    """A value for a text field: a JSON string is the text inside its quotes (as
    everywhere else "JSON or text" is read); anything else is the text as it is."""
    if text.startswith('"'):
        try:
            value = _loads(text, what)
        except json.JSONDecodeError:
            pass
        else:
            if isinstance(value, str):
                return value
    return str(_checked(text, what))


def parse_json(text: str, what: str) -> Any:
    """A JSON value given on the command line, or ``@file.json``; anything else is an
    error naming the option (data that reaches a run must be what was meant)."""
    if text.startswith("@"):
        return _json_or_text(text, what)
    try:
        return _loads(text, what)
    except json.JSONDecodeError as exc:
        raise fail(
            f"{what} is not valid JSON ({exc.msg}): {text!r}; quote text as '\"...\"'"
        ) from None


def parse_input(
    document: str | None, pairs: list[str], schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``--input '{"a": 1}'`` (or ``@file.json``) and ``-i key=value`` (JSON or text,
    ``key=@file.json`` reads the file); pairs override keys of the document. A field the
    input schema types as a string takes the text as it is (``-i zip=02134``), or the
    string a JSON string holds (``-i 'name="123"'`` is ``123``)."""
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
            result[key] = _text(value, f"-i {key}")
        else:
            result[key] = _json_or_text(value, f"-i {key}")
    _checked(result, "the input")
    return result


def audit_settings() -> AuditConfig:
    """The audit settings of this process (``[audit]``, ``KEEL_AUDIT_KEY_FILE``); a bad
    one ends the command with what is wrong. Reading the key itself may fail too: in
    ``reported_errors`` (``AuditConfigError`` is a ``KeelError``)."""
    from keel.runtime.audit_key import AuditConfigError, load_audit_config

    try:
        return load_audit_config()
    except AuditConfigError as exc:
        raise fail(str(exc)) from None
