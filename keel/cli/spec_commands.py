"""``keel validate`` and ``keel graph``: check and draw workflow definitions.

Both load workflows the way ``keel run`` will (file, module, YAML) and report every
problem as ``file:line:column: message`` where the position is known.
"""

from __future__ import annotations

from typing import Annotated

import typer

FORMAT_HELP = "ascii (terminal), mermaid, dot (Graphviz) or json"


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(graph)


def validate(
    targets: Annotated[
        list[str], typer.Argument(help="FILE[:WORKFLOW] or MODULE[:WORKFLOW], .py or .yaml")
    ],
) -> None:
    """Check workflow definitions without running anything; exit 1 if any is invalid.

    Imports the task functions to check arguments and types against their signatures,
    and that each is a @keel.task (or allowed by name in the worker settings: `allow`).
    """
    from keel.authoring.definition_errors import import_failure
    from keel.authoring.loading import load_all, split_target
    from keel.cli.common import worker_settings
    from keel.errors import KeelError

    allow = worker_settings().allow  # plain functions the workers' settings let run
    failed = False
    #: each workflow name and the target that defined it, to refuse a second definition
    named: dict[str, tuple[str, str]] = {}
    for target in targets:
        location, name = split_target(target)
        try:
            loaded = load_all(location, resolve_tasks=True, allow=allow)
        except KeelError as exc:
            failed = True
            typer.echo(f"✗ {target}", err=True)
            typer.echo(_indent(str(exc)), err=True)
            continue
        except Exception as exc:  # the user's module raised while importing
            failed = True
            typer.echo(f"✗ {target}: {import_failure('it', exc)}", err=True)
            continue
        chosen = [item for item in loaded if name is None or item.answers_to(name)]
        if not chosen:
            failed = True
            wanted = f"no workflow named '{name}'" if name else "no workflow defined"
            typer.echo(f"✗ {target}: {wanted}", err=True)
        for item in chosen:
            spec = item.spec
            first, version = named.setdefault(spec.name, (location, spec.version))
            if version != spec.version:
                failed = True
                typer.echo(f"✗ {target}: workflow '{spec.name}' is defined in {first} too; "
                           "give each workflow its own name", err=True)  # fmt: skip
                continue
            count = len(spec.nodes)
            typer.echo(
                f"✓ {location}: workflow '{spec.name}' is valid "
                f"({count} node{'s' if count != 1 else ''}, version {spec.version[:12]})"
            )
    if failed:
        raise typer.Exit(1)


def graph(
    target: Annotated[str, typer.Argument(help="FILE[:WORKFLOW] or MODULE[:WORKFLOW]")],
    format: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "ascii",
) -> None:
    """Print a workflow's graph: steps, dependencies, conditions and maps."""
    from rich.console import Console

    from keel.authoring.definition_errors import import_failure
    from keel.authoring.loading import load_workflow
    from keel.errors import KeelError
    from keel.spec.render import FORMATS, render

    if format not in FORMATS:
        typer.echo(f"unknown format '{format}': use one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    try:
        loaded = load_workflow(target)
    except KeelError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except Exception as exc:  # the user's module raised while importing
        typer.echo(import_failure(target, exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(render(loaded.spec, format, width=Console().width))


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
