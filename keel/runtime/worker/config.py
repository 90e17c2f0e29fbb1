"""Resolve the settings of a long-running ``keel worker`` from flags, environment and files.

A worker is started in many ways (a shell, a service manager, a container), so each
setting can come from several places. The first source that sets a key wins:

1. command-line flags;
2. environment variables ``KEEL_WORKER_MODULES``, ``KEEL_QUEUES``, ``KEEL_ALLOW`` (all
   comma-separated), ``KEEL_CONCURRENCY``, ``KEEL_CODE_WAIT``, ``KEEL_INLINE`` (true/false,
   1/0, yes/no or on/off, in any case), ``KEEL_METRICS_PORT``, ``KEEL_METRICS_HOST``,
   ``KEEL_LOG_FORMAT`` and ``KEEL_DATABASE_URL``;
3. ``keel.toml``;
4. the ``[tool.keel]`` table of ``pyproject.toml``;
5. built-in defaults (no modules, every queue, 8 attempts at once, the default store,
   no plain functions allowed, 300 s of waiting for a worker with a task's code, inline
   on, no metrics port, metrics on 127.0.0.1, text logs).

``allow`` lists plain functions (``module:function``) the worker may run besides the
``@keel.task`` functions of the code it loads (see ``keel.runtime.execution.task_access``);
``code_wait`` is how long (seconds) an attempt whose code this worker lacks is given
back for other workers before it fails; ``inline`` lets a sync task proven fast run on
the worker's own thread (``WorkerOptions.inline``): off for a worker whose tasks may block.
``metrics_port`` serves the worker's Prometheus metrics over plain HTTP, without a
token, on ``metrics_host`` (the loopback unless changed: see ``keel worker --help``).
``log_format`` is ``text`` or ``json`` (one object per line: ``keel.runtime.log_lines``).

The config file is found by walking up from the current folder to the first folder that
holds a ``keel.toml`` or a ``pyproject.toml`` with a ``[tool.keel]`` table; when that
folder holds both, ``[tool.keel]`` only fills the keys ``keel.toml`` leaves out. Files
in a config file's ``modules`` are relative to the file's folder (so the worker finds
them from any subfolder), those from flags and the environment to the current folder;
all come back absolute. Dotted module names are kept as written.

Invariants: the result says where each value came from (``sources``), so ``keel worker``
can show it; a key that is set but wrong (a typo in a key name, a bad queue name, an
empty list) raises ``WorkerConfigError`` naming the source and the key instead of being
ignored. An empty environment variable counts as unset, as ``KEEL_DATABASE_URL`` already
does for the store. This module only reads: it imports nothing and opens no store.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
D = TypeVar("D")
T_co = TypeVar("T_co", covariant=True)

DEFAULT_CONCURRENCY = 8
DEFAULT_CODE_WAIT = 300.0
DEFAULT_INLINE = True
DEFAULT_METRICS_HOST = "127.0.0.1"
DEFAULT_LOG_FORMAT = "text"
KEYS = ("modules", "queues", "concurrency", "database_url", "allow", "code_wait", "inline",
        "metrics_port", "metrics_host", "log_format")  # fmt: skip
ENVIRONMENT = {
    "modules": "KEEL_WORKER_MODULES",
    "queues": "KEEL_QUEUES",
    "concurrency": "KEEL_CONCURRENCY",
    "database_url": "KEEL_DATABASE_URL",
    "allow": "KEEL_ALLOW",
    "code_wait": "KEEL_CODE_WAIT",
    "inline": "KEEL_INLINE",
    "metrics_port": "KEEL_METRICS_PORT",
    "metrics_host": "KEEL_METRICS_HOST",
    "log_format": "KEEL_LOG_FORMAT",
}
#: the name each setting has on the command line, used in error messages
FLAGS = {
    "modules": "MODULES",
    "queues": "--queues",
    "concurrency": "--concurrency",
    "database_url": "--database-url",
    "allow": "--allow",
    "code_wait": "--code-wait",
    "inline": "--inline/--no-inline",
    "metrics_port": "--metrics-port",
    "metrics_host": "--metrics-host",
    "log_format": "--log-format",
}
#: tables of the config file that other parts of keel read (the alert rules and their
#: notifiers: ``keel.runtime.alerts.config``; LLM providers and prices:
#: ``keel.llm.config``; signing keys: ``keel.runtime.audit_key``), not worker settings
SECTIONS = ("alerts", "notifiers", "llm", "audit", "secrets", "http", "shell", "sql", "email")
#: ``package.module:function`` (the form of ``keel.spec.model.ImportPath``)
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
#: the same rule as ``keel.spec.policies.QueueName`` (a test keeps the two equal)
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
#: the words an environment variable may use for a switch (compared in lower case)
SWITCH_WORDS = {"true": True, "1": True, "yes": True, "on": True,
                "false": False, "0": False, "no": False, "off": False}  # fmt: skip
_FILE_SUFFIXES = (".py", ".yaml", ".yml")


class WorkerConfigError(ValueError):
    """A worker setting is wrong; the message names its source, the key and the fix."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The effective settings of one worker process."""

    modules: tuple[str, ...]
    queues: tuple[str, ...] | None
    concurrency: int
    database_url: str | None
    #: setting name -> where its value came from: "flag", "environment (KEEL_QUEUES)",
    #: "keel.toml (/abs/path)", "pyproject.toml [tool.keel] (/abs/path)", "default"
    sources: dict[str, str]
    #: the folder of the config file found (module paths in the file are relative to
    #: it), or None
    root: Path | None
    #: plain functions (``module:function``) this worker may run besides keel tasks
    allow: tuple[str, ...] = ()
    #: seconds an attempt whose code this worker lacks is left for other workers
    code_wait: float = DEFAULT_CODE_WAIT
    #: run a sync task proven fast on the worker's own thread (``WorkerOptions.inline``)
    inline: bool = DEFAULT_INLINE
    #: the port to serve the worker's metrics on (None: not served)
    metrics_port: int | None = None
    #: the address the metrics are served on
    metrics_host: str = DEFAULT_METRICS_HOST
    #: how the process writes its log: ``text`` or ``json`` (``keel.runtime.log_lines``)
    log_format: str = DEFAULT_LOG_FORMAT


@dataclass(frozen=True, slots=True)
class _Found(Generic[T_co]):
    value: T_co
    source: str


@dataclass(frozen=True, slots=True)
class _Layer:
    """What one source sets; ``None`` leaves the key to the sources below it."""

    modules: _Found[tuple[str, ...]] | None = None
    queues: _Found[tuple[str, ...]] | None = None
    concurrency: _Found[int] | None = None
    database_url: _Found[str] | None = None
    allow: _Found[tuple[str, ...]] | None = None
    code_wait: _Found[float] | None = None
    inline: _Found[bool] | None = None
    metrics_port: _Found[int] | None = None
    metrics_host: _Found[str] | None = None
    log_format: _Found[str] | None = None


def load_worker_config(
    *,
    modules: Sequence[str] = (),
    queues: str | None = None,
    concurrency: int | None = None,
    database_url: str | None = None,
    allow: Sequence[str] = (),
    code_wait: float | None = None,
    inline: bool | None = None,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
    log_format: str | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkerConfig:
    """Merge flags (the arguments), ``environ``, the config file above ``cwd`` and defaults.

    ``queues`` is the raw ``--queues`` value (``"q1,q2"``); ``None`` for a flag, and an
    empty ``modules``, mean the flag was not given, so lower sources decide.
    """
    if isinstance(modules, str):
        raise TypeError("modules must be a sequence of names, not one string")
    here = (cwd if cwd is not None else Path.cwd()).resolve()
    flags: dict[str, object] = {
        "modules": list(modules) if modules else None,
        "queues": queues,
        "concurrency": concurrency,
        "database_url": database_url,
        "allow": list(allow) if allow else None,
        "code_wait": code_wait,
        "inline": inline,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        "log_format": log_format,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    labels = {key: f"flag ({FLAGS[key]})" for key in given}
    layers = [_parse_layer(given, labels, dict.fromkeys(given, "flag"), here)]
    layers.append(_env_layer(os.environ if environ is None else environ, here))
    found = _find_config(here)
    root, file_layers = found if found is not None else (None, [])
    layers += file_layers
    sources: dict[str, str] = {}
    mods, sources["modules"] = _pick(layers, lambda layer: layer.modules, ())
    qs, sources["queues"] = _pick(layers, lambda layer: layer.queues, None)
    conc, sources["concurrency"] = _pick(
        layers, lambda layer: layer.concurrency, DEFAULT_CONCURRENCY
    )
    url, sources["database_url"] = _pick(layers, lambda layer: layer.database_url, None)
    allowed, sources["allow"] = _pick(layers, lambda layer: layer.allow, ())
    wait, sources["code_wait"] = _pick(layers, lambda layer: layer.code_wait, DEFAULT_CODE_WAIT)
    runs_inline, sources["inline"] = _pick(layers, lambda layer: layer.inline, DEFAULT_INLINE)
    port, sources["metrics_port"] = _pick(layers, lambda layer: layer.metrics_port, None)
    host, sources["metrics_host"] = _pick(
        layers, lambda layer: layer.metrics_host, DEFAULT_METRICS_HOST
    )
    logs, sources["log_format"] = _pick(layers, lambda layer: layer.log_format, DEFAULT_LOG_FORMAT)
    return WorkerConfig(
        mods, qs, conc, url, sources, root, allowed, wait, runs_inline, port, host, logs
    )


def _pick(
    layers: Sequence[_Layer], get: Callable[[_Layer], _Found[T] | None], default: D
) -> tuple[T | D, str]:
    """The value of the first layer that sets it, and that layer's source."""
    for layer in layers:
        found = get(layer)
        if found is not None:
            return found.value, found.source
    return default, "default"


def _env_layer(env: Mapping[str, str], here: Path) -> _Layer:
    """The environment as the same raw shapes a config file has (lists, numbers, booleans)."""
    raw: dict[str, object] = {}
    for key, name in ENVIRONMENT.items():
        value = env.get(name, "")
        if not value.strip():
            continue
        if key in ("modules", "allow"):
            raw[key] = value.split(",")
        elif key == "concurrency" and re.fullmatch(r"\s*[0-9]+\s*", value):
            raw[key] = int(value)
        elif key == "code_wait" and re.fullmatch(r"\s*[0-9]+(\.[0-9]*)?\s*", value):
            raw[key] = float(value)
        elif key == "metrics_port" and re.fullmatch(r"\s*[0-9]+\s*", value):
            raw[key] = int(value)
        elif key == "inline":
            raw[key] = _switch(key, name, value)
        else:
            raw[key] = value
    labels = {key: f"environment ({ENVIRONMENT[key]})" for key in raw}
    return _parse_layer(raw, labels, labels, here)


def _find_config(start: Path) -> tuple[Path, list[_Layer]] | None:
    """The first folder from ``start`` upwards with keel settings, and its file layers."""
    found = config_tables(start)
    if found is None:
        return None
    folder, tables = found
    return folder, [_file_layer(label, table, folder) for label, table in tables]


def config_tables(start: Path) -> tuple[Path, list[tuple[str, Mapping[str, object]]]] | None:
    """The first folder from ``start`` upwards with keel settings, and its tables as
    (label naming the file, table): ``keel.toml`` first, then ``[tool.keel]``. Also read
    for the tables other parts of keel own (``SECTIONS``)."""
    for folder in (start, *start.parents):
        tables: list[tuple[str, Mapping[str, object]]] = []
        keel_toml = folder / "keel.toml"
        if keel_toml.is_file():
            label = f"keel.toml ({keel_toml})"
            tables.append((label, _read_toml(label, keel_toml)))
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            label = f"pyproject.toml [tool.keel] ({pyproject})"
            tool = _read_toml(f"pyproject.toml ({pyproject})", pyproject).get("tool")
            table = tool.get("keel") if isinstance(tool, dict) else None
            if table is not None:
                if not isinstance(table, dict):
                    raise WorkerConfigError(f"{label}: tool.keel must be a table, got {table!r}")
                tables.append((label, table))
        if tables:
            return folder, tables
    return None


def _read_toml(label: str, path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise WorkerConfigError(f"{label}: invalid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkerConfigError(f"{label}: cannot be read: {exc}") from exc


def _file_layer(label: str, table: Mapping[str, object], folder: Path) -> _Layer:
    unknown = sorted(set(table) - set(KEYS) - set(SECTIONS))
    if unknown:
        raise WorkerConfigError(
            f"{label}: unknown key {', '.join(repr(key) for key in unknown)} "
            f"(known keys: {', '.join(sorted(KEYS))})"
        )
    labels = dict.fromkeys(table, label)
    return _parse_layer(table, labels, labels, folder)


def _parse_layer(
    raw: Mapping[str, object], labels: Mapping[str, str], sources: Mapping[str, str], base: Path
) -> _Layer:
    """Check and convert the keys one source sets; ``labels`` name the source in errors."""

    def found(key: str, parse: Callable[[str, object], T]) -> _Found[T] | None:
        if key not in raw:
            return None
        return _Found(parse(labels[key], raw[key]), sources[key])

    return _Layer(
        modules=found("modules", lambda label, value: _modules(label, value, base)),
        queues=found("queues", _queues),
        concurrency=found("concurrency", _concurrency),
        database_url=found("database_url", _url),
        allow=found("allow", _allow),
        code_wait=found("code_wait", _code_wait),
        inline=found("inline", _inline),
        metrics_port=found("metrics_port", _metrics_port),
        metrics_host=found("metrics_host", _metrics_host),
        log_format=found("log_format", _log_format),
    )


def _modules(label: str, value: object, base: Path) -> tuple[str, ...]:
    """Stripped, non-empty entries, without repeats; file paths made absolute against ``base``."""
    if not isinstance(value, list):
        raise WorkerConfigError(f"{label}: modules must be a list of strings, got {value!r}")
    result: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            raise WorkerConfigError(f"{label}: modules entries must be strings, got {entry!r}")
        entry = entry.strip()
        if not entry:
            continue
        if entry.endswith(_FILE_SUFFIXES) or "/" in entry:
            entry = str((base / entry).resolve())
        result.append(entry)
    if not result:
        raise WorkerConfigError(
            f"{label}: modules names no file or module (name at least one, or leave it out)"
        )
    return tuple(dict.fromkeys(result))


def _queues(label: str, value: object) -> tuple[str, ...]:
    """A list or a comma-separated string of queue names; empty entries are dropped."""
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, list):
        raise WorkerConfigError(
            f"{label}: queues must be a list of strings or a comma-separated string, got {value!r}"
        )
    names: list[str] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise WorkerConfigError(f"{label}: queues entries must be strings, got {entry!r}")
        name = entry.strip()
        if not name:
            continue
        if not QUEUE_NAME.match(name):
            raise WorkerConfigError(
                f"{label}: queues has an invalid queue name {name!r} "
                "(use 1-100 letters, digits, '_', '.', ':' or '-')"
            )
        names.append(name)
    if not names:
        raise WorkerConfigError(
            f"{label}: queues names no queue (name at least one, or leave it out to take "
            "every queue)"
        )
    return tuple(dict.fromkeys(names))


def _concurrency(label: str, value: object) -> int:
    # bool is an int subclass: ``concurrency = true`` must not mean 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkerConfigError(f"{label}: concurrency must be an integer >= 1, got {value!r}")
    return value


def _url(label: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise WorkerConfigError(f"{label}: database_url must be a non-empty string, got {value!r}")
    return value.strip()


def _allow(label: str, value: object) -> tuple[str, ...]:
    """Import paths of plain functions; the list may be empty (allow nothing more)."""
    if not isinstance(value, list):
        raise WorkerConfigError(
            f"{label}: allow must be a list of 'module:function' strings, got {value!r}"
        )
    paths: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            raise WorkerConfigError(f"{label}: allow entries must be strings, got {entry!r}")
        path = entry.strip()
        if not path:
            continue
        if not IMPORT_PATH.match(path):
            raise WorkerConfigError(
                f"{label}: allow has {path!r}, which is not an import path: write "
                "'package.module:function'"
            )
        paths.append(path)
    return tuple(dict.fromkeys(paths))


def _code_wait(label: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise WorkerConfigError(
            f"{label}: code_wait must be a number of seconds >= 0, got {value!r}"
        )
    return float(value)


def _switch(key: str, name: str, value: str) -> bool:
    """An environment variable's on/off word; anything else is refused, not taken as off."""
    word = value.strip().lower()
    if word not in SWITCH_WORDS:
        raise WorkerConfigError(
            f"environment ({name}): {key} must be true or false (or 1/0, yes/no, on/off, "
            f"in any case), got {value!r}"
        )
    return SWITCH_WORDS[word]


def _inline(label: str, value: object) -> bool:
    # a string is refused: ``inline = "false"`` must not mean on, as a non-empty string would
    if not isinstance(value, bool):
        raise WorkerConfigError(
            f"{label}: inline must be a boolean (true or false, unquoted), got {value!r}"
        )
    return value


def _metrics_port(label: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise WorkerConfigError(
            f"{label}: metrics_port must be a port number from 1 to 65535, got {value!r}"
        )
    return value


def _metrics_host(label: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise WorkerConfigError(
            f"{label}: metrics_host must be an address to listen on (127.0.0.1, 0.0.0.0, "
            f"a host name), got {value!r}"
        )
    return value.strip()


def _log_format(label: str, value: object) -> str:
    word = value.strip().lower() if isinstance(value, str) else None
    if word not in ("text", "json"):
        raise WorkerConfigError(f"{label}: log_format must be text or json, got {value!r}")
    return word
