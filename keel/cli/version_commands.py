"""``keel versions`` (every version of a workflow: deploys, runs) and ``keel diff`` (two
versions or two runs compared), through the client: a store, or a server when
``KEEL_SERVER_URL`` is set. An argument that names nothing, or several things, is a
mistake in the command line: one line saying what was found, exit status 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from keel.cli.common import DbOption, JsonOption, fail, local_time, opened_client, reported_errors

_GRAPH_HELP = "Print the graph of both versions with the changes marked: mermaid or dot"


def register(app: typer.Typer) -> None:
    app.command()(versions)
    app.command()(diff)


@contextmanager
def _argument_errors() -> Iterator[None]:
    """What the arguments name not found, or ambiguous: exit status 2, as a usage
    error (the store was read, nothing is wrong with it); wrapped at the width."""
    from keel.errors import NO_RUN, InputError, RunNotFoundError, WorkflowNotFoundError

    try:
        yield
    except (InputError, RunNotFoundError, WorkflowNotFoundError) as exc:
        said = str(exc)
        said = f"{said} (see `keel runs`)" if said.startswith(NO_RUN) else said
        raise fail(said, 2, wrap=True) from None


def versions(
    workflow: Annotated[str, typer.Argument(help="The workflow's name")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Every version of a workflow the store knows, newest first: deployed ones (when,
    by whom, from where; * marks the current one) and those only seen in runs, with
    how many runs each started and the last one's start."""
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table

    with opened_client(db) as client, reported_errors(wrap=True), _argument_errors():
        doc = client.versions(workflow)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    rows: list[list[Cell]] = []
    for v in doc["versions"]:
        last = v["deployments"][-1] if v["deployments"] else None
        deployed = "runs only" if v["seen"] == "run" else "stored only"
        rows.append([
            v["version"][:12] + (" *" if v["current"] else ""),
            local_time(last["deployed_at"]) if last else deployed,
            (last["deployed_by"] or "") if last else "",
            str(v["runs"]),
            local_time(v["last_run_at"]), local_time(v["first_run_at"]),
            (last["source"] or "") if last else "",
        ])  # fmt: skip
    columns = [Column("version"), Column("deployed"), Column("by", role="extra", keep=3),
               Column("runs", justify="right"), Column("last run", role="extra", keep=2),
               Column("first run", role="extra", keep=1),
               Column("source", role="extra")]  # fmt: skip
    count = len(doc["versions"])
    current = doc["current_version"]
    said = f"current {current[:12]}" if current else "never deployed"
    typer.echo(f"{doc['workflow']}: {count} version{'s' if count != 1 else ''}, {said}")
    print_table(Console(), columns, rows)
    if current:
        typer.echo("* current (deployed last)")


def diff(
    a: Annotated[str, typer.Argument(help="A run (id or first characters) or a version")],
    b: Annotated[str, typer.Argument(help="The run or version to compare A with")],
    graph: Annotated[str | None, typer.Option("--graph", help=_GRAPH_HELP)] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """What differs from A to B: two workflow versions (nodes added, removed or changed
    and which fields, edges, workflow policies) or two runs (node by node: inputs,
    outputs, errors, skips; and the run's input, status and output). A and B are run
    ids or versions' first digits; say which with run:ID or version:DIGITS when one
    could be both, or WORKFLOW@DIGITS for a version of that workflow."""
    from rich.console import Console

    from keel.cli.diff_text import run_diff_lines, spec_diff_lines
    from keel.spec.diff import spec_diff_of
    from keel.spec.render_diff import GRAPH_FORMATS, render_diff

    if graph is not None and graph not in GRAPH_FORMATS:
        raise fail(f"unknown graph format '{graph}': use {' or '.join(GRAPH_FORMATS)}", 2,
                   wrap=True)  # fmt: skip
    if graph is not None and as_json:
        raise fail("--graph and --json: give one of them", 2, wrap=True)
    with opened_client(db) as client, reported_errors(wrap=True), _argument_errors():
        doc = client.diff(a, b)
    if graph is not None:
        if doc["kind"] != "versions":
            raise fail(f"--graph draws two versions' graphs; '{a}' and '{b}' are runs "
                       "(compare their versions: keel diff version:V1 version:V2)", 2,
                       wrap=True)  # fmt: skip
        typer.echo(render_diff(spec_diff_of(doc), graph), nl=False)
        return
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return
    width = Console().width
    lines = spec_diff_lines(doc, width) if doc["kind"] == "versions" else run_diff_lines(doc, width)
    typer.echo("\n".join(lines))
