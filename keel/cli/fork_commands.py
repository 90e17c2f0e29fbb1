"""``keel fork``: start a new run from a run that has ended, reusing what it recorded for
every node not after the node given (that node and what follows run again).

It first says what the fork will do: each node reused or run again, what running it
again touches (side effects, models, people, child runs) and what to know about what it
reuses (an effect the run had undone); then asks before it starts anything (``--yes``
beforehand; without a terminal, ``--yes`` is needed). Then it runs the fork here, as
``keel run`` does; ``--detach`` only records it for a ``keel resume`` (or a worker),
and with ``KEEL_SERVER_URL`` the server records it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    fail,
    needs_database,
    opened_client,
    reported_errors,
)

if TYPE_CHECKING:
    from rich.console import Console

    from keel.store.records import RunRecord


def register(app: typer.Typer) -> None:
    app.command()(fork)


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs: VALUE is JSON (or ``@file.json``), else the text as
    it is; a node's output must be JSON."""
    from keel.cli.common import parse_json
    from keel.spec.data import loads

    sets: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(
                f"--set {pair!r}: write input.FIELD=VALUE or nodes.NODE.output=JSON "
                "(VALUE is JSON, else text)",
                wrap=True,
            )
        key = key.strip()
        what = f"--set {key}"
        if key.startswith("nodes.") or value.startswith("@"):  # an output: JSON only
            sets[key] = parse_json(value, what)
            continue
        try:
            sets[key] = loads(value, what)
        except json.JSONDecodeError:
            sets[key] = value  # text, as -i takes it
    return sets


def fork(
    run_id: Annotated[str, typer.Argument(help="The run to fork (id or unique prefix)")],
    from_node: Annotated[
        str,
        typer.Option("--from", help="The node to run again, with every node after it"),
    ],
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="input.FIELD=VALUE (JSON, else text) changes the input; "
            "nodes.NODE.output=JSON gives a reused node an output. Repeatable",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Run this version of the workflow (6+ characters)"),
    ] = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Start without asking, and load the code the run recorded"
        ),
    ] = False,
    code: Annotated[
        list[str] | None,
        typer.Option(
            "--code",
            help="Load this workflow code (FILE or MODULE; repeatable) to check outputs "
            "given with --set and run the fork, instead of the code the run recorded",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what the fork would do")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option("--detach", "-d", help="Only record it; a `keel resume` (or worker) runs it"),
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who forks, for the histories (default: OS user)")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Start a new run from a run that has ended: every node not after --from takes its
    output from the run; --from and what follows run again. Says first which nodes run
    again and which of them have side effects, and asks.

    Then runs it here, as `keel run` does (exit 1 if it fails). A dry run prints the
    plan on stdout; otherwise it goes to stderr, before the question."""
    from rich.console import Console

    with reported_errors(wrap=True):
        given = parse_sets(sets or [])
    executes = not (detach or dry_run)
    if executes:
        needs_database(db, "keel fork (without --detach)")
    err = Console(stderr=True)
    with opened_client(db, by=by, local=executes) as client, reported_errors(wrap=True):
        if client.store is not None and (code or any(k.startswith("nodes.") for k in given)):
            _load_code(client.run(run_id), code or [], yes=yes)
        preview = client.fork(run_id, from_node, given, version=version, by=by, dry_run=True)
        if dry_run:  # the plan is what was asked for: on stdout, to keep or to pipe
            if as_json:
                typer.echo(json.dumps(preview, indent=2, ensure_ascii=False))
            else:
                print_plan(Console(), preview)
            return
        if not as_json:
            print_plan(err, preview)
        _confirm(preview, yes=yes)
        forked = client.fork(run_id, from_node, given, version=version, by=by)
    new = str(forked["run_id"])
    if not as_json:
        err.print(f"run {new[:8]} forked from run {forked['source'][:8]} at {from_node}",
                  markup=False, highlight=False)  # fmt: skip
    if not executes:
        typer.echo(json.dumps(forked, indent=2, ensure_ascii=False) if as_json else new)
        return
    _run(forked, db, yes=yes, code=code or [], as_json=as_json)


def _load_code(record: RunRecord, code: list[str], *, yes: bool) -> None:
    """The code the fork is checked and run with: what ``--code`` names, else the code
    the run recorded, once the user confirms it (as keel skip does). An output given
    is checked against its task's return type, so without code it is refused."""
    from keel.cli.common import import_code
    from keel.cli.resume_code import load_recorded
    from keel.store.tombstones import refuse_pruned

    refuse_pruned(record)  # before any code is loaded for it
    for location in code:
        import_code(location, "--code: ")
    if code:
        return
    again = "give it to keel fork as --code {where}"
    unloaded = load_recorded(record, yes=yes, again=again)
    if unloaded:
        raise fail(f"keel fork: an output given is checked against its task's type: "
                   f"{unloaded}", wrap=True)  # fmt: skip


def _confirm(plan: dict[str, Any], *, yes: bool) -> None:
    """Ask before starting the fork (``--yes`` beforehand); refuse without a terminal."""
    if yes:
        return
    again = [n for n in plan["nodes"] if n["action"] == "run"]
    touching = [n["node"] for n in again if n["effects"]]
    said = f"{len(again)} node{' runs' if len(again) == 1 else 's run'} again"
    if touching:
        said += f", with side effects: {', '.join(touching)}"
    if not sys.stdin.isatty():
        raise fail(f"keel fork: {said}; nothing was started: pass --yes to start the fork",
                   wrap=True)  # fmt: skip
    if not typer.confirm(f"{said}. Start the fork?", default=False, err=True):
        raise fail("not forked", wrap=True)


def _run(
    forked: dict[str, Any], db: str | None, *, yes: bool, code: list[str], as_json: bool
) -> None:
    """Execute the fork here until it ends; with ``--json``, one document at the end
    (the fork, its status and output) and everything else on stderr."""
    from keel.cli.run_commands import continue_run

    new = str(forked["run_id"])
    if not as_json:
        continue_run(new, db, yes=yes, code=code)
        return
    status = 0
    with contextlib.redirect_stdout(sys.stderr):
        try:
            continue_run(new, db, yes=yes, code=code)
        except typer.Exit as exc:
            status = exc.exit_code
    with opened_client(db) as client, reported_errors(wrap=True):
        record = client.run(new)
    doc = {**forked, "status": record.status, "output": record.output, "reason": record.reason}
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    if status:
        raise typer.Exit(status)


_ACTIONS = {"reuse": "reused", "run": "runs again", "set": "set"}


def print_plan(console: Console, plan: dict[str, Any]) -> None:
    """What a fork does (``Forked.document``): the run forked, each node, the input."""
    from rich.text import Text

    from keel.cli.layout import Cell, Column, print_field, print_table

    console.print(
        Text.assemble(
            ("fork", "bold"),
            f" of run {plan['source']} ({plan['workflow']}, {plan['source_status']})"
            f" from {plan['node']}",
        )
    )
    for path, change in plan["input_changes"].items():
        before, after = (json.dumps(change[key], ensure_ascii=False) for key in ("before", "after"))
        print_field(console, "input", f"{path}: {before} → {after}")
    rows: list[list[Cell]] = []
    for node in plan["nodes"]:
        lines = [Text(node["reason"])]
        lines += [Text(f"! {said}", style="yellow") for said in (*node["effects"],
                                                                  *node["warnings"])]  # fmt: skip
        symbol = "↻" if node["action"] == "run" else "="
        rows.append([symbol, node["node"], _ACTIONS[node["action"]], Text("\n").join(lines)])
    columns = [Column(""), Column("node"), Column("does"),
               Column("why", role="long", wrap=True, min_width=24)]  # fmt: skip
    print_table(console, columns, rows)
    for note in plan["notes"]:
        print_field(console, "note", note)
