"""Secrets by reference: a spec names a secret (``${{ secrets.NAME }}`` in a built-in
step, ``keel.secret("NAME")`` in a Python task) and the worker looks its value up when
the attempt runs, so the value is never in a spec, a history, an export or the dashboard.

Where a value comes from, first found wins:

0. the values given for the code running now (``supplying``: a test's run,
   ``keel.testing.run(..., secrets=...)``), without touching the environment;
1. the environment variable ``KEEL_SECRET_<NAME>`` (the name as written);
2. the secrets file: ``KEEL_SECRETS_FILE``, else ``[secrets] file`` of ``keel.toml``
   (relative to that file's folder): TOML, one ``NAME = "value"`` per secret. keel refuses
   a file that anyone but its owner may read or write (``chmod 600``), or that another
   user owns.

Only ``KEEL_SECRET_`` variables are secrets: a spec cannot read the worker's other
environment (``KEEL_DATABASE_URL``, a cloud key) by naming it. ``[secrets.workflows]``
says which workflows may read which secret (``NAME = ["claims", "billing_*"]``); with the
table, a secret it does not list is read by none, and a run of another workflow that asks
is refused (the spec could otherwise send any secret the worker holds anywhere).

Each value looked up during an attempt is *revealed* to that attempt (a ``ContextVar``,
as the step context is). What the attempt hands back, its output, its error and the lines
it logs, is redacted of every revealed value before keel records it: a step that echoes a
secret (a server that repeats a header, ``echo $TOKEN``) records ``[secret NAME]``
instead. Values shorter than ``MIN_REDACTED`` characters are not searched for (they would
redact ordinary words); such a secret is refused when looked up.

The file is read again at each lookup: a rotated secret needs no restart.

Invariant of ``supplying``: the values are a ``ContextVar``'s, set for the code run
inside and reset after it, so they reach neither another thread nor what runs later on
this one (a task thread sees them only while the attempt the test wrapped runs).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import stat
import threading
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from keel.errors import NonRetryable
from keel.runtime.execution.context import _current
from keel.spec.step_nodes import VARIABLE_NAME

ENV_PREFIX = "KEEL_SECRET_"
FILE_ENV = "KEEL_SECRETS_FILE"
#: the shortest value keel accepts as a secret (it must be findable to be redacted)
MIN_REDACTED = 4

#: name -> value of the secrets the current attempt looked up (None: outside an attempt)
_revealed: ContextVar[dict[str, str] | None] = ContextVar("keel_revealed_secrets", default=None)
#: name -> value of the secrets given for the code running now (``supplying``)
_supplied: ContextVar[Mapping[str, str] | None] = ContextVar("keel_supplied_secrets",
                                                             default=None)  # fmt: skip


class SecretError(NonRetryable):
    """A secret cannot be had: unknown, too short, or its file is unsafe or unreadable.
    The message names the secret and where keel looked, never a value."""


def secret(name: str) -> str:
    """The value of the secret ``name`` for this attempt (see the module). Whatever the
    attempt returns, raises or logs is redacted of it."""
    step = _current.get(None)
    supplied = _supplied.get()
    # in an attempt the settings are read once, for the file and for the scope
    checked = step is not None and not (supplied is not None and name in supplied)
    settings = secrets_settings() if checked else None
    value = lookup(name, settings=settings)
    if settings is not None:  # read only in an attempt (``step``)
        _check_scope(name, step.workflow, settings)  # type: ignore[union-attr]
    revealed = _revealed.get()
    if revealed is not None:
        revealed[name] = value
        _redact_log_records()
    return value


def lookup(name: str, *, start: Path | None = None, settings: SecretsSettings | None = None) -> str:
    """The value of ``name``: given (``supplying``), else from the environment or the
    secrets file, else ``SecretError``. ``settings``: the ``[secrets]`` table, if read
    already (else read when the file is needed)."""
    _checked_name(name)
    given = _supplied.get()
    value = given.get(name) if given is not None else None
    where = [] if given is None else ["the secrets given to this run"]
    if not value:
        value = os.environ.get(ENV_PREFIX + name)
        where.append(f"${ENV_PREFIX}{name}")
    path = None
    if not value:
        path = secrets_file(start, settings)
        if path is not None:
            where.append(str(path))
            value = _from_file(path, name)
    if not value:
        raise SecretError(
            f"secret {name!r} is not set: looked in {' and '.join(where)}; set "
            f"{ENV_PREFIX}{name} for the worker or add {name} to "
            + (f"its secrets file {path}" if path is not None else _no_file(start))
        )
    return _checked_length(name, value)


def _no_file(start: Path | None) -> str:
    """Where a secrets file would be named, when none is (for messages)."""
    from keel.runtime.worker.config_sections import config_place

    place = config_place(start or Path.cwd(), "secrets")
    return f"a secrets file (none is set: name one with ${FILE_ENV} or [secrets] file in {place})"


@dataclass(frozen=True, slots=True)
class SecretsSettings:
    """The ``[secrets]`` table of the worker's ``keel.toml``."""

    #: the secrets file (relative paths resolved against the file's folder)
    file: Path | None = None
    #: secret name -> the workflows (names or ``fnmatch`` patterns) that may read it;
    #: None: no table, every workflow may read every secret
    workflows: dict[str, tuple[str, ...]] | None = None
    #: the file the settings come from, for messages
    source: str = "keel.toml"


def secrets_settings(start: Path | None = None) -> SecretsSettings:
    """The worker's ``[secrets]`` settings (none: the defaults). Read strictly: a key
    that is set but wrong raises ``SecretError`` naming the file and the key."""
    from keel.runtime.worker.config_sections import find_section

    found = find_section(start or Path.cwd(), "secrets", SecretError)
    if found is None:
        return SecretsSettings()
    label, folder, section = found
    if not isinstance(section, dict) or set(section) - {"file", "workflows"}:
        raise SecretError(
            f"{label}: [secrets] has two keys: file (the secrets file's path) and "
            "workflows (a table: NAME = [the workflows that may read it])"
        )
    file = section.get("file")
    if file is not None and (not isinstance(file, str) or not file):
        raise SecretError(f"{label}: [secrets] file must be a path")
    return SecretsSettings(
        file=None if file is None else (folder / file).expanduser(),
        workflows=_workflows(label, section.get("workflows")),
        source=label,
    )


def _workflows(label: str, table: object) -> dict[str, tuple[str, ...]] | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise SecretError(f"{label}: [secrets.workflows] must be a table: NAME = [workflows]")
    scopes: dict[str, tuple[str, ...]] = {}
    for name, names in table.items():
        if not VARIABLE_NAME.match(name):
            raise SecretError(f"{label}: [secrets.workflows] {name!r} is not a secret name")
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise SecretError(
                f"{label}: [secrets.workflows] {name} must be a list of workflow names "
                '(or patterns such as "claims_*")'
            )
        scopes[name] = tuple(names)
    return scopes


def _check_scope(name: str, workflow: str, settings: SecretsSettings) -> None:
    """Refuse ``name`` to a run of ``workflow`` that ``[secrets.workflows]`` does not list
    (a test's own values, ``keel.testing``, are not checked: no worker's secret is
    involved; ``secret`` skips them)."""
    if settings.workflows is None:
        return
    allowed = settings.workflows.get(name, ())
    if not any(fnmatch.fnmatchcase(workflow, pattern) for pattern in allowed):
        listed = f"lists {', '.join(allowed)}" if allowed else "does not list it"
        raise SecretError(
            f"workflow {workflow!r} may not read secret {name!r}: [secrets.workflows] of "
            f"{settings.source} {listed}; add {workflow!r} to {name} there if it should"
        )


def secrets_file(start: Path | None = None, settings: SecretsSettings | None = None) -> Path | None:
    """The secrets file this process reads, if one is configured."""
    named = os.environ.get(FILE_ENV)
    if named:
        return Path(named).expanduser()
    return (settings or secrets_settings(start)).file


def _from_file(path: Path, name: str) -> str | None:
    try:
        info = path.stat()
    except OSError as exc:
        raise SecretError(f"secrets file {path} cannot be read: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(
            f"secrets file {path} may be read or changed by others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): run chmod 600 {path}"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SecretError(f"secrets file {path} belongs to another user: keel reads only its own")
    value = _file_table(path).get(name)
    if value is not None and not isinstance(value, str):
        raise SecretError(f"secrets file {path}: {name} must be a string")
    return value


def _file_table(path: Path) -> dict[str, Any]:
    """The secrets file's TOML table (its safety is checked by the caller that needs it)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SecretError(f"secrets file {path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise SecretError(f"secrets file {path} cannot be read: {exc.strerror}") from None


def _checked_name(name: object) -> str:
    if not isinstance(name, str) or not VARIABLE_NAME.match(name):
        raise SecretError(f"{name!r} is not a secret name: letters, digits and '_'")
    return name


def _checked_length(name: str, value: str) -> str:
    if len(value) < MIN_REDACTED:
        raise SecretError(f"secret {name!r} is shorter than {MIN_REDACTED} characters: "
                          "keel could not redact it from what steps record")  # fmt: skip
    return value


def checked_values(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` as secrets (name -> value), or ``SecretError`` naming the first that
    cannot be one: a name that is not one, a value that is not text or is too short to
    be redacted."""
    if not isinstance(values, Mapping):
        raise SecretError(f"expected a mapping of secret names to values, got "
                          f"{type(values).__name__}")  # fmt: skip
    checked: dict[str, str] = {}
    for name, value in values.items():
        _checked_name(name)
        if not isinstance(value, str):
            raise SecretError(f"secret {name!r}: its value must be text, got "
                              f"{type(value).__name__}")  # fmt: skip
        checked[name] = _checked_length(name, value)
    return checked


@contextmanager
def supplying(values: Mapping[str, str]) -> Iterator[None]:
    """Inside, ``lookup`` finds these secrets before the environment and the secrets
    file (a test's run gives its steps secrets so). Looked up, they are revealed to the
    attempt and redacted from what it records, as any secret. Only for the code run
    inside, on this thread (see the module's invariant)."""
    token = _supplied.set(checked_values(values))
    try:
        yield
    finally:
        _supplied.reset(token)


@contextmanager
def revealing() -> Iterator[dict[str, str]]:
    """The secrets revealed to the attempt run inside (a fresh set per attempt)."""
    revealed: dict[str, str] = {}
    token = reveal_to(revealed)
    try:
        yield revealed
    finally:
        stop_revealing(token)


def reveal_to(revealed: dict[str, str]) -> Token[dict[str, str] | None]:
    """Start an attempt's set of revealed secrets (``revealing`` without a generator:
    the worker does this once per attempt, where a context manager's cost shows);
    ``_revealed.reset(token)`` ends it (``stop_revealing``)."""
    return _revealed.set(revealed)


def stop_revealing(token: Token[dict[str, str] | None]) -> None:
    _revealed.reset(token)


def revealed_now() -> dict[str, str]:
    """The secrets revealed to the current attempt so far (empty outside one)."""
    return dict(_revealed.get() or {})


_factory_lock = threading.Lock()
_factory_installed = False


def _redact_log_records() -> None:
    """From the first secret revealed on, every log record is made redacted of the secrets
    revealed to the attempt that logs it (in its thread), whatever the logger and the
    handler: the worker's stderr and JSON lines, a library's debug lines, the lines
    keel keeps with the attempt. One ``ContextVar`` read per record elsewhere."""
    global _factory_installed
    if _factory_installed:
        return
    with _factory_lock:
        if _factory_installed:
            return
        made = logging.getLogRecordFactory()

        def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = made(*args, **kwargs)
            revealed = _revealed.get()
            if revealed:
                _redact_record(record, revealed)
            return record

        logging.setLogRecordFactory(redacting)
        _factory_installed = True


def _redact_record(record: logging.LogRecord, revealed: dict[str, str]) -> None:
    """``record``'s message and traceback redacted, formatted now (with the values it was
    logged with) so that no handler formats the original."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit: the handler says so, as it would
        return
    record.msg, record.args = redact_text(message, revealed), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text, revealed)
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info, revealed)


def redact_text(text: str, revealed: dict[str, str]) -> str:
    """``text`` with each revealed value replaced by ``[secret NAME]``, also as it reads
    once percent-encoded (a URL's query, a form) or escaped in JSON text; longest first,
    so a secret that contains another is redacted whole."""
    return _replaced(text, _written_forms(revealed))


def _written_forms(revealed: dict[str, str]) -> list[tuple[str, str]]:
    """(form, its replacement) of every revealed value, longest form first: made once per
    ``redact`` of a whole output, not once per string in it."""
    forms = [(form, f"[secret {name}]") for name, value in revealed.items()
             for form in _forms(value)]  # fmt: skip
    return sorted(forms, key=lambda pair: -len(pair[0]))


def _replaced(text: str, forms: list[tuple[str, str]]) -> str:
    for form, replacement in forms:
        if form in text:
            text = text.replace(form, replacement)
    return text


def _forms(value: str) -> set[str]:
    """The ways a value is written where a step may echo it."""
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1]}  # fmt: skip
    return {form for form in forms if len(form) >= MIN_REDACTED}


def known_secrets(start: Path | None = None) -> dict[str, str]:
    """Every secret this process could look up (the ``KEEL_SECRET_`` variables and the
    secrets file, if it can be read), for redacting text whose attempt's revealed set is
    lost: what a child process that died wrote to its stderr."""
    found = {name.removeprefix(ENV_PREFIX): value for name, value in os.environ.items()
             if name.startswith(ENV_PREFIX) and len(value) >= MIN_REDACTED}  # fmt: skip
    try:
        path = secrets_file(start)
        if path is not None:
            for name, value in _file_table(path).items():
                if isinstance(value, str) and len(value) >= MIN_REDACTED:
                    found.setdefault(name, value)
    except SecretError:
        pass  # what can be read is redacted; an unreadable file reveals nothing either
    return found


def redact(data: Any, revealed: dict[str, str]) -> Any:
    """JSON data with every string (keys too) redacted of the revealed values."""
    return _redacted_data(data, _written_forms(revealed)) if revealed else data


def _redacted_data(data: Any, forms: list[tuple[str, str]]) -> Any:
    if isinstance(data, str):
        return _replaced(data, forms)
    if isinstance(data, list):
        return [_redacted_data(item, forms) for item in data]
    if isinstance(data, dict):
        return {_replaced(str(key), forms): _redacted_data(item, forms)
                for key, item in data.items()}  # fmt: skip
    return data
