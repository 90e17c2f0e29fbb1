"""``keel replay``: a run's history told as a story, or checked against current code.

Without ``--code`` it prints what happened, in order: each event's time, node, attempt,
what happened, who did it (a worker, a person, a trigger; ``keel`` for what the
workflow's definition decided) and the values (arguments, outputs, errors, decisions),
and whether the run's row agrees with the state its history replays to. With ``--code``
it loads the workflow from a file and checks that it makes the same decisions as the
recording (``keel.engine.replay``): a compatibility check before deploying new code.
Exit status 1 when the code decides differently, or when the run's row disagrees with
its history.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import DbOption, JsonOption, fail, opened_client, reported_errors

if TYPE_CHECKING:
    from rich.console import Console

    from keel.authoring.loading import LoadedWorkflow
    from keel.runtime.client import Client
    from keel.store.records import RunRecord


def register(app: typer.Typer) -> None:
    app.command()(replay)


def replay(
    run_id: Annotated[str, typer.Argument(help="Run id or unique prefix")],
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="Check that the workflow in FILE[:WORKFLOW] (a .py or YAML file, or a "
            "module) makes the decisions the run recorded; exit 1 at the first that differs",
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Show whole values, not shortened")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Replay a run's history: the story of what happened (every event in order, who did
    it, inputs and outputs), or with --code, whether current code makes the same
    decisions. Exit 1 when it does not, or when the run's row disagrees with its
    history. A run still going is replayed up to its last event; a pruned run has no
    history left: it says when it was pruned, and exits 1."""
    from keel.errors import RunPrunedError

    with opened_client(db) as client, reported_errors():
        try:
            if code is None:
                _story(client, run_id, full=full, as_json=as_json)
            else:
                _check(client, run_id, code, as_json=as_json)
        except RunPrunedError:
            _pruned(client, run_id, as_json=as_json)


def _pruned(client: Client, run_id: str, *, as_json: bool) -> None:
    """A pruned run: nothing to replay; what is left of it (as ``keel show`` says:
    when, by whom, how many events were removed), and exit 1."""
    from rich.console import Console

    from keel.cli.layout import print_field
    from keel.cli.prune_commands import pruned_words

    detail = client.detail(run_id)
    pruned = detail.get("pruned") or {}
    if as_json:
        doc = {"run_id": detail["id"], "workflow": detail["workflow"],
               "status": detail["status"], "pruned": pruned}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        raise typer.Exit(1)
    console = Console(stderr=True)
    console.print(f"{detail['workflow']} · run {detail['id']} · {detail['status']}",
                  markup=False, highlight=False)  # fmt: skip
    print_field(console, "pruned", pruned_words(pruned))
    print_field(console, "replay", "its history is gone: nothing is left to replay "
                                   f"(see `keel show {detail['id'][:8]}`)")  # fmt: skip
    raise typer.Exit(1)


# --- the story ------------------------------------------------------------------------------


def _clock(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _value(value: Any, full: bool) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if full or len(text) <= 60 else text[:59] + "…"


def _values(entry: dict[str, Any], full: bool) -> str:
    """The values an entry carries, as ``name value`` pairs, on the line under it."""
    return "; ".join(f"{name} {_value(value, full)}" for name, value in entry["values"].items()
                     if value not in (None, ""))  # fmt: skip


def _who(by: str | None) -> str:
    """Who, short enough for a column: a worker's id to its host and process."""
    if by is None:
        return ""
    parts = by.split(":")
    return ":".join(parts[:2]) if len(parts) > 2 else by


def _story(client: Client, run_id: str, *, full: bool, as_json: bool) -> None:
    from rich.console import Console

    from keel.cli.common import local_time
    from keel.cli.layout import Cell, Column, print_field, print_table

    doc = client.story(run_id)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        if not doc["matches"]:
            raise typer.Exit(1)
        return
    console = Console()
    entries = doc["entries"]
    started = local_time(entries[0]["at"]) if entries else ""
    console.print(f"{doc['workflow']} · run {doc['run_id']} · {doc['status']}", markup=False,
                  highlight=False)  # fmt: skip
    print_field(console, "started", f"{started}, {doc['events']} events "
                                    f"(version {doc['spec_version'][:12]})")  # fmt: skip
    if doc["matches"]:
        print_field(console, "replayed", "its history replays to what the run's row says")
    for mismatch in doc["mismatches"]:
        print_field(console, "warning", f"{mismatch}; see `keel verify`", style="red")
    columns = [
        Column("seq", justify="right"), Column("time"), Column("node"),
        Column("#", justify="right"), Column("by"),
        Column("what", role="long", min_width=20, wrap=True),
        Column("values", role="under", label="", wrap=full),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for entry in entries:
        node = entry["node"] or ""
        if entry["item"] is not None:
            node += f"[{entry['item']}]"
        attempt = "" if entry["attempt"] is None else str(entry["attempt"])
        rows.append([str(entry["seq"]), _clock(entry["at"]), node, attempt,
                     _who(entry["by"]), entry["what"], _values(entry, full)])  # fmt: skip
    console.print()
    print_table(console, columns, rows)
    if not doc["matches"]:
        raise typer.Exit(1)


# --- the check against code -----------------------------------------------------------------


def _workflow_for(code: str, record: RunRecord) -> LoadedWorkflow:
    """The workflow ``FILE[:WORKFLOW]`` names; without a name, the one named like the
    run's workflow."""
    from keel.authoring.loading import split_target
    from keel.cli.common import import_code

    location, name = split_target(code)
    loaded = import_code(location, "--code: ")
    wanted = name or record.workflow
    found = [item for item in loaded if item.answers_to(wanted)]
    if not found:
        names = ", ".join(sorted(item.spec.name for item in loaded)) or "none"
        raise fail(f"--code {code}: {location} has no workflow '{wanted}' (it has: {names})")
    return found[0]


def _check(client: Client, run_id: str, code: str, *, as_json: bool) -> None:
    from keel.engine.plan import compile_plan
    from keel.engine.replay import renamed_modules
    from keel.engine.replay import replay as replayed
    from keel.errors import RunPrunedError

    record = client.run(run_id)
    if record.pruned_at is not None:  # before its code is loaded: there is nothing to check
        raise RunPrunedError(record.id)
    workflow = _workflow_for(code, record)
    history = client.history(record.id)
    recorded = None
    renamed: dict[str, str] = {}
    if client.store is not None:  # over HTTP the history is split by kind instead
        recorded = client.store.load_spec(record.spec_version)
        # a copy of the recorded code under another file name: its tasks are the
        # recording's in another module; compared by their names in it
        renamed = renamed_modules(compile_plan(recorded), compile_plan(workflow.spec),
                                  workflow.origin)  # fmt: skip
    result = replayed(history, workflow.spec, recorded=recorded, run_id=record.id,
                      renamed=renamed)  # fmt: skip
    if as_json:
        doc = {"run_id": record.id, "code": code, "workflow": workflow.spec.name,
               "version": workflow.spec.version, "recorded_version": record.spec_version,
               "renamed_modules": renamed, **result.to_data()}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        _print_check(record, code, workflow, result, renamed)
    if not result.ok:
        raise typer.Exit(1)


def _print_check(
    record: RunRecord, code: str, workflow: LoadedWorkflow, result: Any,
    renamed: dict[str, str],
) -> None:  # fmt: skip
    from rich.console import Console

    from keel.cli.layout import print_field
    from keel.engine.replay_words import label

    console = Console()
    version = workflow.spec.version[:12]
    same = " (the version it recorded)" if workflow.spec.version == record.spec_version else ""
    for module, was in renamed.items():  # said once, not at every task
        print_field(console, "note", f"the tasks are in module {module} here and were in "
                                     f"{was} when recorded: compared by their names in "
                                     "the module")  # fmt: skip
    if result.ok:
        _say(console, f"✓ run {record.id[:8]} replays clean against {code}, version "
                      f"{version}{same}: {result.events} events, {result.decisions} "
                      f"decision{'' if result.decisions == 1 else 's'} made again")  # fmt: skip
        return
    found = result.divergence
    _say(console, f"✗ run {record.id[:8]} diverges from {code}, version {version}{same}:")
    recorded = "nothing more" if found.recorded is None else label(found.recorded)
    decided = "nothing here" if found.decided is None else label(found.decided)
    print_field(console, "event", str(found.seq))
    print_field(console, "recorded", recorded)
    print_field(console, "new code", decided)
    print_field(console, "why", found.explanation, style="red")
    made = result.decisions
    print_field(
        console, "checked", f"{made} decision{'' if made == 1 else 's'} made again before it"
    )


def _say(console: Console, text: str) -> None:
    from rich.text import Text

    from keel.cli.layout import hanging_lines

    head, _, rest = text.partition(" ")
    for line in hanging_lines(console, Text(head + " "), Text(rest)):
        console.print(line, soft_wrap=True)
