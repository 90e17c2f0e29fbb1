"""``keel runs``, ``keel show``, ``keel history`` and ``keel verify``: read runs back.

Everything shown is derived from the stored history (and the run's own stored
definition), so it is the same whichever process ran the run, and after a crash.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import DbOption, JsonOption, local_time, opened_client, reported_errors
from keel.cli.layout import print_wrapped

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from keel.runtime.views.activity import Activity
    from keel.runtime.views.report import NodeReport
    from keel.store.records import RunRecord, StoredEvent

RunArgument = Annotated[str, typer.Argument(help="Run id or unique prefix")]


def register(app: typer.Typer) -> None:
    app.command()(runs)
    app.command()(show)
    app.command()(history)
    app.command()(verify)


def _short(value: Any, width: int = 48) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _input_text(args: Any) -> str:
    """A node's input as ``keel show`` lists it: a built-in step's is what it does
    (``http POST api.example.com/claims/${{ input.id }}``), its templates as the spec has
    them, not the definition it was handed (``--json`` has that, and the values)."""
    if args is None:
        return ""
    step = args.get("step") if isinstance(args, dict) and set(args) == {"step", "values"} else None
    if isinstance(step, dict):
        from pydantic import ValidationError

        from keel.spec.model import STEP_TASKS, AnyNode, StepNode
        from keel.spec.partial import NODE
        from keel.spec.step_words import step_summary

        if step.get("kind") in STEP_TASKS:
            try:
                node: AnyNode = NODE.validate_python(
                    {key: value for key, value in step.items() if key != "timeout"})  # fmt: skip
            except ValidationError:
                return _short(args, 1000)
            if isinstance(node, StepNode):
                return f"{node.kind} {step_summary(node)}"
    return _short(args, 1000)


def runs(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs with this status: running, failing, paused, succeeded, failed, "
            "cancelled"
        ),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow")] = None,
    started_by: Annotated[
        str | None,
        typer.Option(
            "--started-by", help="Only runs started by this token, or trigger (schedule:NAME...)"
        ),
    ] = None,
    late: Annotated[
        bool, typer.Option("--late", help="Only runs past their workflow's expected_duration")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 20,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List runs, newest first. A run that has not ended says what it is doing: running
    on a worker, queued with no worker to take it, or waiting (for an approval...). A
    run past its workflow's expected duration is marked late."""
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.cli.progress import status_symbol
    from keel.runtime.views.documents import listed_run_document

    known = ("pending", "running", "failing", "paused", "succeeded", "failed", "cancelled")
    if status is not None and status not in known:
        typer.echo(f"unknown status '{status}': use one of {', '.join(known)}", err=True)
        raise typer.Exit(2)
    with opened_client(db) as client, reported_errors():
        found = client.runs_doing(status=status, workflow=workflow, limit=limit,
                                  started_by=started_by, late=True if late else None)  # fmt: skip
    records = [record for record, _ in found]
    doing = {record.id: activity for record, activity in found}
    if as_json:
        typer.echo(json.dumps([listed_run_document(r, a) for r, a in found], indent=2))
        return
    console = Console()
    if not records:
        console.print("no runs")
        return
    columns = [
        Column("run"), Column("workflow"), Column("status"), Column("started"),
        Column("events", role="extra", keep=1, justify="right"),
        Column("parent", role="extra", keep=2), Column("updated", role="extra"),
    ]  # fmt: skip
    table: list[list[Cell]] = []
    for record in records:
        activity = doing[record.id]
        symbol = status_symbol(_activity_symbol(record.status, activity))
        shown = symbol + f" {_status_words(record.status, activity)}"
        if record.late:
            shown.append(", late", style="yellow")
        if record.pruned_at is not None:
            shown.append(", pruned", style="dim")
        table.append([
            record.id[:8], record.workflow, shown,
            local_time(record.created_at), _events_text(record),
            record.parent_run[:8] if record.parent_run else "", local_time(record.updated_at),
        ])  # fmt: skip
    print_table(console, columns, table)


def _events_text(record: RunRecord) -> str:
    """A run's events column: how many it has, or that they were pruned (its row still
    counts the events its history had)."""
    return "pruned" if record.pruned_at is not None else str(record.last_seq)


def _activity_symbol(status: str, activity: Activity | None) -> str:
    if activity is None or activity.kind == "running":
        return status
    return {"waiting": "awaiting", "queued": "pending", "paused": "paused"}.get(
        activity.kind, "stalled")  # fmt: skip


def _status_words(status: str, activity: Activity | None) -> str:
    """A run's status as ``keel runs`` prints it: what it is doing, rather than a bare
    "running" (``keel show`` says it in full: ``activity_words``)."""
    if activity is None:
        return status
    return activity.short if status == "running" else f"{status}: {activity.short}"


def show(run_id: RunArgument, as_json: JsonOption = False, db: DbOption = None) -> None:
    """A run's status, input and output, and per node: status, attempts, the last
    attempt's duration, input, output or error. What a waiting run waits for comes
    first, with the command that ends the wait, then what holds each stuck node (see
    `keel why`). All of it is read from the history (and the store's queue). A run that
    called models ends with its ledger: calls, tokens and cost per node (see `keel
    calls`)."""
    from rich.console import Console
    from rich.text import Text

    from keel.cli.layout import Cell, Column, print_field, print_field_with_command, print_table
    from keel.cli.progress import retries, seconds, status_symbol
    from keel.cli.why_commands import grouped, node_text
    from keel.engine.state import is_finished
    from keel.runtime.views.report import wait_parts
    from keel.runtime.views.why_reasons import WAITS

    with opened_client(db) as client, reported_errors():
        data = client.detail(run_id)
        if as_json:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
            return
        if data.get("pruned") is not None:  # its history is gone: what is left of it
            _show_pruned(data)
            return
        children = client.runs(parent=data["id"], limit=1_000)
        found = None if is_finished(data["status"]) else client.why(data["id"])
        # which worker holds an attempt: the store knows (the API does not say)
        held = [] if client.store is None else client.store.leases(data["id"])
        leases = {(lease.node, lease.item): lease for lease in held}
    # the history is the truth (``run_detail``): the run's row is only checked against it
    status, nodes = data["status"], [_node_report(node) for node in data["nodes"]]
    console = Console()
    console.print(Text.assemble((data["workflow"], "bold"), f" · run {data['id']}"))
    took = "" if data["duration"] is None else f" in {seconds(data['duration'])}"
    if took:
        took += _since_by_hand(data["retries"], data["set_by_hand"])
    print_field(console, "status", activity_words(status, data["activity"]) + took)
    if data["late"]:
        print_field(console, "late", _late_words(data), style="yellow")
    print_field(console, "version", f"{data['spec_version'][:12]}   started "
                                    f"{local_time(data['created_at'])}")  # fmt: skip
    origin = started_by_text(data.get("trigger"), data.get("started_by"))
    if origin is not None:  # reads on from the line above's "started TIME"
        print_field(console, "by", origin)
    print_field(console, "input", _short(data["input"], 100))
    if status == "succeeded":
        print_field(console, "output", _short(data["output"], 100))
    if data["reason"]:
        print_field(console, "reason", data["reason"], style="red")
    for mismatch in data["mismatches"]:
        print_field(console, "warning", f"{mismatch}; see `keel verify`", style="red")
    if data.get("trace") is not None:  # a server older than traces sends none
        print_field(console, "trace", data["trace"]["trace_id"])
    if data["parent_run"] is not None:
        print_field(console, "parent", f"run {data['parent_run']} (node {data['parent_node']})")
    for child in children:
        print_field(console, "child", f"run {child.id} {child.workflow} ({child.status})")
    forked = data.get("forked_from")  # a server older than forks sends none
    if forked is not None:
        print_field(console, "fork of", f"run {forked['run']} from node {forked['node']}")
    for fork in data.get("forks") or ():
        into = f"into run {fork['run_id']} from node {fork['node']} by {fork['by']}"
        print_field(console, "forked", into)
    if status == "paused":  # as a wait: what ends it, and the command
        print_field_with_command(console, "waits for", "someone to unpause it",
                                 f"keel unpause {data['id'][:8]}", style="yellow")  # fmt: skip
    for node in nodes:
        if node.status == "awaiting":
            what, command = wait_parts(node, data["id"])
            if command is None:
                print_field(console, "waits for", what, style="yellow")
            else:  # the command whole, to be copied: on its own line if need be
                print_field_with_command(console, "waits for", what, command, style="yellow")
            for line in _wait_notes(node):
                print_field(console, "", line)
    for label, stuck in [] if found is None else grouped(found.nodes):
        if stuck.stuck and stuck.reason.kind not in WAITS:  # waits: said just above
            print_field(console, "stuck", f"{label}: {node_text(stuck)}", style="yellow")
    columns = [
        Column(""), Column("node"), Column("status"), Column("attempts"), Column("duration"),
        Column("input", role="long", min_width=16),
        Column("output / error", role="long", label="", min_width=24),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for node in nodes:
        shown = node.status.replace("_", " ")
        lease = leases.get((node.id, None))
        if lease is not None:
            shown += f" (on {':'.join(lease.owner.split(':')[:2])})"
        attempts = str(node.attempts or "")
        if node.items is not None and node.retries:  # a map: attempts is the highest one
            attempts += f" ({retries(node.retries)})"
        if node.reclaimed:
            attempts += f" ({node.reclaimed} reclaimed)"
        rows.append([
            status_symbol(node.status), node.id, shown, attempts, seconds(node.duration),
            _input_text(node.args), _result(node),
        ])  # fmt: skip
    console.print()
    print_table(console, columns, rows)
    if data.get("llm"):  # a server older than the ledger sends none
        from keel.cli.llm_commands import print_ledger

        print_ledger(console, data["llm"], ended=is_finished(status))


def _show_pruned(data: dict[str, Any]) -> None:
    """``keel show`` of a pruned run: its row and its tombstone (``pruned_detail``)."""
    from rich.console import Console
    from rich.text import Text

    from keel.cli.layout import print_field
    from keel.cli.progress import seconds
    from keel.cli.prune_commands import pruned_words

    console = Console()
    console.print(Text.assemble((data["workflow"], "bold"), f" · run {data['id']}"))
    took = "" if data["duration"] is None else f" in {seconds(data['duration'])}"
    print_field(console, "status", data["status"] + took)
    print_field(console, "version", f"{data['spec_version'][:12]}   started "
                                    f"{local_time(data['created_at'])}")  # fmt: skip
    pruned = data["pruned"]
    print_field(console, "pruned", pruned_words(pruned),
                style="" if pruned.get("intact") else "red")  # fmt: skip
    for problem in pruned.get("problems", []):
        print_field(console, "warning", f"{problem}; see `keel verify`", style="red")
    if data["reason"]:
        print_field(console, "reason", data["reason"], style="red")
    if data["parent_run"] is not None:
        print_field(console, "parent", f"run {data['parent_run']} (node {data['parent_node']})")
    for child in data.get("children", []):
        print_field(console, "child", f"run {child}")


def _late_words(detail: dict[str, Any]) -> str:
    """How late a late run is (``run_detail``): "expected 10m, running 14m", or once it
    ended, "finished late: expected 10m, took 14m"."""
    from keel.engine.state import is_finished
    from keel.spec.durations import format_duration

    ended = is_finished(detail["status"])
    expected, elapsed = detail["expected_duration"], detail["elapsed"]
    said = [] if expected is None else [f"expected {format_duration(expected)}"]
    if elapsed is not None:
        said.append(f"{'took' if ended else 'running'} {format_duration(elapsed)}")
    return ("finished late: " if ended else "") + ", ".join(said)


def activity_words(status: str, activity: str | None) -> str:
    """``_status_words`` in full, from the activity's text alone (a run's detail; the
    header of ``keel why``): a running or paused run's says its status in other words
    ("retrying at...", "paused by...")."""
    if activity is None:
        return status
    return activity if status in ("running", "paused") else f"{status}: {activity}"


def _node_report(doc: dict[str, Any]) -> NodeReport:
    """A node of a run's detail (``node_document``) as the report it was made from."""
    from keel.engine.events import ErrorInfo
    from keel.runtime.views.report import NodeReport

    error = doc["error"]
    return NodeReport(
        doc["id"], status=doc["status"], attempts=doc["attempts"], retries=doc["retries"],
        reclaimed=doc["reclaimed"], started_at=doc["started_at"],
        attempt_started_at=doc["attempt_started_at"], ended_at=doc["ended_at"],
        args=doc["input"], output=doc["output"],
        error=None if error is None else ErrorInfo(error["type"], error["message"]),
        reason=doc["reason"], items=doc["items"], items_done=doc["items_done"],
        retry_at=doc["retry_at"], waits_for=doc["waits_for"], wait=doc["wait"],
        until=doc["until"], decision=doc["decision"],
    )  # fmt: skip


#: how ``keel show`` names what fired a trigger, and its key
_FIRED = {"schedule": ("schedule", "slot"), "webhook": ("webhook", "delivery"),
          "event": ("event", "message")}  # fmt: skip


def started_by_text(trigger: dict[str, Any] | None, started_by: str | None) -> str | None:
    """What started a run, in words: a trigger (``run_detail``'s ``trigger``), else the
    token it was started with through the API; None for code, the CLI or a parent run."""
    if trigger is None:
        return None if started_by is None else f"token {started_by}"
    kind, source, key = trigger.get("kind"), trigger.get("source"), trigger.get("key")
    if kind == "completion":
        ended = trigger.get("status")
        return f"run {key} (workflow {source} ended{'' if ended is None else ' ' + ended})"
    if kind == "file":
        path, _, digest = str(key).rpartition(":")
        return f"file {path} in {source} (sha256 {digest[:12]})"
    via = trigger.get("via")  # a schedule's run a person asked for
    if via == "trigger-now":
        return f"schedule {source}, trigger-now at {str(key).removeprefix('now:')}"
    name, key_name = _FIRED.get(str(kind), (str(kind), "key"))
    return f"{name} {source}, {key_name} {key}" + (f" ({via})" if via else "")


def _since_by_hand(retried: int, set_by_hand: list[str]) -> str:
    """What a duration counts from when the run was changed by hand: its last
    ``keel retry`` or ``keel skip`` (a skip is not counted as a retry)."""
    said = []
    if retried:
        said.append("it was retried by hand" + ("" if retried == 1 else
                                                f" {retried} times"))  # fmt: skip
    if set_by_hand:
        nodes = list(dict.fromkeys(set_by_hand))
        said.append(f"{', '.join(nodes)} {'was' if len(nodes) == 1 else 'were'} set by hand")
    return f" (since {' and '.join(said)})" if said else ""


def _wait_notes(node: NodeReport) -> list[str]:
    """What an approver needs besides the title: the filled-in description, the form."""
    from keel.cli.forms import form_summary

    details = node.wait or {}
    notes = []
    if node.waits_for == "approval":
        if details.get("description"):
            notes.append(f"description: {details['description']}")
        form = details.get("form")
        if isinstance(form, dict) and form_summary(form):
            notes.append(f"form: {form_summary(form)} (give it with --data JSON)")
    return notes


def _result(node: NodeReport) -> Text:
    """A node's output, error, decision or what it waits for, in one cell."""
    from rich.text import Text

    from keel.cli.common import local_time

    if node.status == "awaiting":
        return Text(f"waits for {node.waits_for}: see above", style="yellow")
    if node.decision is not None and node.status in ("succeeded", "failed"):
        return Text(node.decision)
    if node.error is not None and node.status == "failed":
        # the type's own name: its module (``keel.steps.sql_errors.``) would take the room
        # of the message in a cell cut at the terminal's width (``--json`` has it whole)
        kind = node.error.type.rpartition(".")[2]
        return Text(f"{kind}: {node.error.message}", style="red")
    if node.reason:
        return Text(node.reason, style="dim")
    if node.retry_at is not None and node.error is not None:
        return Text.assemble((f"retry at {local_time(node.retry_at)}", "yellow"),
                             f" after {node.error.type}: {node.error.message}")  # fmt: skip
    if node.items is not None and node.status != "succeeded":
        return Text(f"{node.items_done}/{node.items} items")
    return Text(_short(node.output, 1000) if node.status == "succeeded" else "")


def _event_line(stored: StoredEvent) -> dict[str, Any]:
    from keel.runtime.views.documents import event_line

    return event_line(stored)


def history(
    run_id: RunArgument,
    node: Annotated[str | None, typer.Option(help="Only events of this node")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The run's events in order: the complete record of what happened and when."""
    from rich.console import Console

    from keel.cli.common import fail
    from keel.cli.layout import Cell, Column, print_table
    from keel.engine.events import node_of

    with opened_client(db) as client, reported_errors():
        events = client.history(run_id)
        pruned = None if events else client.detail(run_id).get("pruned")
        if pruned is not None:  # its events were removed: say so, where a person reads
            from keel.cli.prune_commands import pruned_words

            print_wrapped(Console(stderr=as_json), "", f"run {run_id}: {pruned_words(pruned)}")
            return
        if node is not None:
            detail = client.detail(run_id)
            nodes = [n["id"] for n in detail["nodes"]]
            if node not in nodes:
                raise fail(f"run {detail['id'][:8]} has no node '{node}' "
                           f"(nodes: {', '.join(nodes)})")  # fmt: skip
    if node is not None:
        events = [e for e in events if node_of(e.event) == node]
    if as_json:
        for stored in events:
            typer.echo(json.dumps(_event_line(stored), ensure_ascii=False))
        return
    columns = [Column("seq", justify="right"), Column("time"), Column("event"), Column("node"),
               Column("details", role="long", min_width=20, label="")]  # fmt: skip
    rows: list[list[Cell]] = []
    for stored in events:
        data = _event_line(stored)
        for key in ("run_id", "seq", "at", "prev_hash", "kind", "node"):
            data.pop(key, None)
        signature = data.pop("signature", None)  # an approval's: who signed, not the bytes
        details = ", ".join(f"{k}={_short(v, 40)}" for k, v in data.items() if v is not None)
        if isinstance(signature, dict):  # first: a narrow table shortens the details' end
            details = f"signed by key {signature.get('key_id')}, {details}"
        rows.append([
            str(stored.seq), local_time(stored.at), stored.event.kind,
            node_of(stored.event) or "", details,
        ])  # fmt: skip
    print_table(Console(), columns, rows)


def verify(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to check")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Check every run")] = False,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Check the hash chain of runs' histories, and that each run's status, output,
    reason, input and late flag in the runs table are what its history says; exit 1 if
    any event was edited, removed or reordered, or a run's summary disagrees with its
    history. Prints each run's head hash: keep it elsewhere to anchor the chain. --json:
    one list, a document per run (what GET /runs/{id}/verify answers)."""
    from rich.console import Console

    out, err = Console(), Console(stderr=True)
    if not run_ids and not all_runs:
        typer.echo("name runs to verify, or --all", err=True)
        raise typer.Exit(2)
    broken = False
    documents: list[dict[str, Any]] = []
    with opened_client(db) as client, reported_errors():
        ids = [r.id for r in client.runs(limit=10_000_000)] if all_runs else run_ids or []
        for run_id in ids:
            found = client.verify(run_id)
            if as_json:
                documents.append(found)
                broken |= not found["intact"]
                continue
            if found.get("pruned") is not None:
                broken |= not _print_pruned(out, err, found)
                continue
            if found["intact"]:
                _print_intact(out.width, found["run_id"], found["events"], found["head_hash"])
                continue
            broken = True
            if found["problems"]:
                print_wrapped(err, "✗ ", f"run {found['run_id']}: the history was altered")
            else:
                print_wrapped(err, "✗ ", f"run {found['run_id']}: the runs table disagrees "
                              "with the history (the history is intact)")  # fmt: skip
            for problem in (*found["problems"], *found["mismatches"]):
                print_wrapped(err, "  ", problem)
    if as_json:
        typer.echo(json.dumps(documents, indent=2, ensure_ascii=False))
    if broken:
        raise typer.Exit(1)


def _print_pruned(out: Console, err: Console, found: dict[str, Any]) -> bool:
    """A pruned run verified (its tombstone): whether it is intact."""
    from keel.cli.prune_commands import pruned_words

    said = pruned_words(found["pruned"])
    if found["intact"]:
        print_wrapped(out, "✓ ", f"run {found['run_id']}: {said}")
        return True
    print_wrapped(err, "✗ ", f"run {found['run_id']}: its tombstone does not match ({said})")
    for problem in found["problems"]:
        print_wrapped(err, "  ", problem)
    return False


def _print_intact(width: int, run_id: str, events: int, head: str) -> None:
    """A verified run; its head hash whole, on a line of its own when the line would be
    wider than ``width`` (the hash is copied elsewhere to anchor the chain)."""
    said = f"✓ run {run_id}: {events} events intact,"
    typer.echo(f"{said} head {head}" if len(said) + len(head) + 6 <= width
               else f"{said}\n  head {head}")  # fmt: skip
