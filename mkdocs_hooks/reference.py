"""The reference pages of the documentation site, made from the code at build time.

mkdocs loads this file as a hook (``hooks:`` in mkdocs.yml). ``on_files`` adds two pages
that exist in no folder: ``reference/cli.md``, every command and subcommand of the
``keel`` typer application with its help, arguments and options, and
``reference/api.md``, every path and method of the HTTP API's OpenAPI document (the app
``keel serve`` runs, built over an empty SQLite store in a temporary folder). So the
reference cannot go stale: it is the code's own description, read again on every build,
and never committed.

Invariants: the build reads the keel of the checkout that holds mkdocs.yml (its folder
goes first on ``sys.path``), touches no network and leaves no file behind.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

CLI_PAGE = "reference/cli.md"
API_PAGE = "reference/api.md"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Put the checkout that holds mkdocs.yml first on ``sys.path``: its keel is the one
    described, whichever keel is installed."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated reference pages to the site's files."""
    for path, make in ((CLI_PAGE, cli_reference), (API_PAGE, api_reference)):
        if files.get_file_from_path(path) is not None:
            raise ValueError(f"docs/{path} is generated at build time: remove the file")
        files.append(File.generated(config, path, content=make()))
    return files


# --- the CLI -----------------------------------------------------------------------------


def cli_reference() -> str:
    """Every command of ``keel`` as markdown: a table of them all, then one section each."""
    import typer.main

    from keel.cli.app import app

    root = typer.main.get_command(app)
    commands = list(_commands(root, ("keel",)))
    lines = [
        "# CLI reference",
        "",
        "Every command of `keel`, with its arguments and options, as `keel COMMAND --help`",
        "prints them. This page is generated from the code when the site is built.",
        "",
        _paragraphs(root.help or ""),
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for path, command in commands:
        name = " ".join(path)
        lines.append(f"| [`{name}`](#{_anchor(name)}) | {_cell(_first_line(command))} |")
    for path, command in commands:
        lines.extend(_command_section(path, command))
    return "\n".join(lines) + "\n"


def _commands(group: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The commands under ``group`` (depth first, by name), groups' subcommands included;
    hidden ones left out."""
    for name in sorted(getattr(group, "commands", {})):
        command = group.commands[name]
        if getattr(command, "hidden", False):
            continue
        if getattr(command, "commands", None):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def _command_section(path: tuple[str, ...], command: Any) -> list[str]:
    name = " ".join(path)
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    arguments = [p for p in params if not _is_option(p)]
    options = [p for p in params if _is_option(p)]
    usage = " ".join([name, *(["[OPTIONS]"] if options else []), *map(_argument_usage, arguments)])
    lines = ["", f"## {name} {{#{_anchor(name)}}}", "", "```text", usage, "```", ""]
    lines.append(_paragraphs(command.help or ""))
    if arguments:
        lines += ["", "| argument | description |", "| --- | --- |"]
        lines += [f"| `{_argument_usage(p)}` | {_cell(p.help or '')} |" for p in arguments]
    if options:
        lines += ["", "| option | description | default |", "| --- | --- | --- |"]
        lines += [_option_row(p) for p in options]
    return lines


def _is_option(param: Any) -> bool:
    return any(opt.startswith("-") for opt in param.opts)


def _argument_usage(param: Any) -> str:
    text = (param.metavar or param.name or "").upper()
    if param.nargs == -1:
        text += "..."
    return text if param.required else f"[{text}]"


def _option_row(param: Any) -> str:
    names = ", ".join([*param.opts, *param.secondary_opts])
    if not getattr(param, "is_flag", False):
        names += f" {param.metavar or _value_name(param)}"
    if param.multiple:
        names += " (repeatable)"
    default = param.default
    shown = "" if default in (None, False, (), []) or callable(default) else f"`{default}`"
    if param.required:
        shown = "required"
    help_text = getattr(param, "help", None) or ""
    envvar = param.envvar
    envvars = [envvar] if isinstance(envvar, str) else list(envvar or ())
    unsaid = [name for name in envvars if name not in help_text]
    if unsaid:
        help_text += " (env: " + ", ".join(unsaid) + ")"
    return f"| `{names}` | {_cell(help_text)} | {shown} |"


def _value_name(param: Any) -> str:
    """TEXT, INTEGER, FLOAT... as ``--help`` says it, from the option's type."""
    kind = getattr(param, "type", None)
    name = getattr(kind, "name", None)
    if isinstance(name, str) and name:
        return name.upper()
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for python, shown in ((int, "INTEGER"), (float, "FLOAT"), (Path, "PATH")):
        if annotation is python or annotation == list[python]:  # type: ignore[valid-type]
            return shown
    return "TEXT"


def _first_line(command: Any) -> str:
    return _first_sentence(command.short_help or command.help or "")


def _first_sentence(text: str) -> str:
    """The first sentence of ``text``'s first paragraph, without its full stop."""
    return _clean(text).split("\n\n")[0].split(". ")[0].rstrip(".")


# --- the HTTP API ------------------------------------------------------------------------


def api_reference() -> str:
    """Every path and method of the API's OpenAPI document, as markdown."""
    from keel.server import create_app
    from keel.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as folder:
        store = SQLiteStore(Path(folder) / "keel.db")
        try:
            document = create_app(store, rate=0).openapi()
        finally:
            store.close()
    return _api_markdown(document)


def _api_markdown(document: Mapping[str, Any]) -> str:
    info = document.get("info", {})
    lines = [
        "# HTTP API reference",
        "",
        "Every route of `keel serve`, from the OpenAPI document of the app it runs; this",
        "page is generated from the code when the site is built. The server serves the same",
        "document at `/openapi.json` (with a token).",
        "",
        _paragraphs(info.get("description", "")),
        "",
        "| method | path | what it does |",
        "| --- | --- | --- |",
    ]
    operations = [
        (path, method, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    for path, method, operation in operations:
        title = f"{method.upper()} {path}"
        lines.append(
            f"| {method.upper()} | [`{path}`](#{_anchor(title)}) | "
            f"{_cell(_first_sentence(_described(operation)))} |"
        )
    for path, method, operation in operations:
        lines.extend(_operation_section(path, method, operation, document))
    return "\n".join(lines) + "\n"


def _described(operation: Mapping[str, Any]) -> str:
    """What an operation does: its description, else its summary."""
    return str(operation.get("description") or operation.get("summary") or "")


def _operation_section(
    path: str, method: str, operation: Mapping[str, Any], document: Mapping[str, Any]
) -> list[str]:
    title = f"{method.upper()} {path}"
    lines = ["", f"## `{title}` {{#{_anchor(title)}}}", ""]
    lines.append(_paragraphs(_described(operation)))
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["", "| parameter | in | type | description |", "| --- | --- | --- | --- |"]
        for parameter in parameters:
            name = parameter["name"] + ("" if parameter.get("required") else " (optional)")
            lines.append(
                f"| `{name}` | {parameter.get('in', '')} | "
                f"{_cell(_schema_type(parameter.get('schema', {})))} | "
                f"{_cell(_clean(parameter.get('description', '')))} |"
            )
    body = operation.get("requestBody")
    if body:
        kinds = ", ".join(f"`{kind}`" for kind in body.get("content", {}))
        schemas = [c.get("schema", {}) for c in body.get("content", {}).values()]
        shape = _schema_type(schemas[0]) if schemas else ""
        lines += ["", f"Body: {kinds}" + (f", {_cell(shape)}" if shape else "") + "."]
        lines += _fields(schemas[0] if schemas else {}, document)
    responses = operation.get("responses", {})
    if responses:
        lines += ["", "| status | meaning | body |", "| --- | --- | --- |"]
        for status, response in sorted(responses.items()):
            content = response.get("content", {})
            bodies = ", ".join(
                f"{_schema_type(c.get('schema', {}))} (`{kind}`)" for kind, c in content.items()
            )
            lines.append(
                f"| {status} | {_cell(_clean(response.get('description', '')))} | {_cell(bodies)} |"
            )
    return lines


def _fields(schema: Mapping[str, Any], document: Mapping[str, Any]) -> list[str]:
    """A table of a request body's fields, when its schema is an object."""
    resolved = _resolve(schema, document)
    properties = resolved.get("properties", {})
    if not properties:
        return []
    required = set(resolved.get("required", []))
    lines = ["", "| field | type | description |", "| --- | --- | --- |"]
    for name, field in properties.items():
        shown = name if name in required else f"{name} (optional)"
        lines.append(
            f"| `{shown}` | {_cell(_schema_type(field))} | "
            f"{_cell(_clean(field.get('description', '')))} |"
        )
    return lines


def _resolve(schema: Mapping[str, Any], document: Mapping[str, Any]) -> Mapping[str, Any]:
    reference = schema.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/"):
        return schema
    found: Any = document
    for part in reference[2:].split("/"):
        found = found.get(part, {})
    return found if isinstance(found, Mapping) else {}


def _schema_type(schema: Mapping[str, Any]) -> str:
    """A JSON Schema in a few words: ``string``, ``integer[]``, ``RunStart``, ``a | b``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_schema_type(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return _schema_type(schema.get("items", {})) + "[]"
    if "enum" in schema:
        return " or ".join(f"`{value}`" for value in schema["enum"])
    if isinstance(kind, str):
        return kind + (f" ({schema['format']})" if "format" in schema else "")
    return "any"


# --- markdown ----------------------------------------------------------------------------


def _clean(text: str) -> str:
    """A docstring as markdown: reST's ``code`` as markdown's `code`, click's ``\\b``
    marks dropped, lines of a paragraph joined."""
    text = text.replace("\b\n", "").replace("\b", "")
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _paragraphs(text: str) -> str:
    return _escape(_clean(text))


def _escape(text: str) -> str:
    """Text outside code spans with ``<`` and ``*`` shown as themselves."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        part if part.startswith("`") else part.replace("<", "&lt;").replace("*", r"\*")
        for part in parts
    )


def _cell(text: str) -> str:
    """Text for one table cell: one line, ``|`` escaped outside code spans (a code span
    keeps its pipes: Python-Markdown does not split a row inside one)."""
    parts = re.split(r"(`[^`]*`)", _escape(" ".join(text.split())))
    return "".join(part if part.startswith("`") else part.replace("|", r"\|") for part in parts)


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
