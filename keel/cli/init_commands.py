"""``keel init`` (a new project from a template) and ``keel templates`` (the templates
there are). The templates and the copying are ``keel.cli.scaffold``'s; this module
only reads the command line and says what was done, fitted to 80 columns when piped."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from keel.cli.common import JsonOption, fail, plural

if TYPE_CHECKING:
    from keel.cli.scaffold import Created, Template


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(templates)


def _shown(target: Path) -> str:
    """``target`` as the user would type it: relative to the current folder when inside
    it, else absolute."""
    absolute = target.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return str(absolute)


def next_steps(template: Template, target: Path) -> list[str]:
    """Three commands: into the project (or check it, when it is the current folder),
    run the workflow on the sample input, run its tests."""
    shown = _shown(target)
    first = f"keel validate {template.workflow}" if shown == "." else f"cd {shlex.quote(shown)}"
    # ``python -m``: the pytest of the Python keel is installed in, not another on PATH
    return [first, template.run_command(), "python -m pytest"]


def init(
    directory: Annotated[
        Path,
        typer.Argument(
            help="The project's folder (made if missing; default: this one)", show_default=False
        ),
    ] = Path("."),
    template_name: Annotated[
        str | None,
        typer.Option(
            "--template", "-t", help="The template (default: the first `keel templates` lists)"
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Add to a folder that is not empty; existing files are kept"),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a new project from a template: the workflow, its tests (pytest), keel.toml,
    a README and sample input, then print the next steps. A folder that is not empty is
    refused unless --force is given; then only the files that are not there are
    written, and the ones skipped are listed."""
    from keel.cli.common import fitted
    from keel.cli.scaffold import create, find
    from keel.errors import InputError

    try:
        template = find(template_name)
        created = create(template, directory, force=force)
    except InputError as exc:
        raise fail(str(exc), 2, wrap=True) from None
    except OSError as exc:
        raise fail(f"cannot write the project into {directory}: {exc.strerror or exc}") from None
    steps = next_steps(template, directory)
    if as_json:
        typer.echo(json.dumps(_document(template, directory, created, steps), indent=2))
        return
    shown = _shown(directory)
    written = plural(len(created.written), "file")
    typer.echo(fitted(f"Wrote {written} of the {template.name} template "
                      f"into {'this folder' if shown == '.' else shown}."))  # fmt: skip
    if created.skipped:
        skipped = plural(len(created.skipped), "file")
        typer.echo(fitted(f"Skipped {skipped} that exist (left as they "
                          "were): " + ", ".join(created.skipped)))  # fmt: skip
    typer.echo("\nNext steps:")
    for step in steps:
        typer.echo(f"  {step}")
    if template.note:
        typer.echo("\n" + fitted(template.note))
    typer.echo("\n" + fitted("README.md says what the project does, how to run it and how to "
                             "test it."))  # fmt: skip


def _document(
    template: Template, directory: Path, created: Created, steps: list[str]
) -> dict[str, object]:
    return {
        "template": template.name,
        "directory": str(directory.resolve()),
        "written": list(created.written),
        "skipped": list(created.skipped),
        "next": steps,
    }


def templates(as_json: JsonOption = False) -> None:
    """The project templates of `keel init`: name, what the project does, and what of keel
    it shows. The first is the default."""
    import textwrap

    from rich.console import Console

    from keel.cli.scaffold import templates as found

    known = found()
    if as_json:
        typer.echo(json.dumps([_template_document(t, t is known[0]) for t in known], indent=2))
        return
    width = max(Console().width, 40)
    for index, template in enumerate(known):
        if index:
            typer.echo()
        typer.echo(template.name + (" (default)" if index == 0 else ""))
        for text in (template.description, "shows: " + ", ".join(template.features)):
            typer.echo(textwrap.fill(text, width, initial_indent="  ", subsequent_indent="    "))
    typer.echo("\n" + textwrap.fill("Create one: keel init DIR --template NAME", width))


def _template_document(template: Template, default: bool) -> dict[str, object]:
    return {
        "name": template.name,
        "description": template.description,
        "features": list(template.features),
        "default": default,
        "workflow": template.workflow,
        "input": template.input,
        "files": template.files(),
    }
