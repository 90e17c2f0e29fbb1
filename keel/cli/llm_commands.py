"""``keel calls`` (a run's model and tool calls, one a line) and ``keel spend`` (what
workflows spent per model), and the ledger ``keel show`` prints under a run's nodes.

All of it is the store's ledger (``keel.store.model_calls``) through the documents of
``keel.runtime.views.ledger``, so it reads the same from a store or a server.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    local_time,
    opened_client,
    plural,
    reported_errors,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def register(app: typer.Typer) -> None:
    app.command()(calls)
    app.command()(spend)


def _tokens(count: int) -> str:
    return f"{count:,}"


def _notes(row: dict[str, Any]) -> str:
    """What a ledger row's numbers alone do not say: how many map items made calls,
    the tool calls among them, and the calls that failed, are possibly billed, in
    flight or have estimated usage."""
    said = []
    if row.get("items") is not None:
        said.append(plural(row["items"], "item"))
    if row["tool_calls"]:
        said.append(plural(row["tool_calls"], "tool call"))
    if row["failed"]:
        said.append(f"{row['failed']} failed")
    if row["possibly_billed"]:
        said.append(f"{row['possibly_billed']} possibly billed")
    if row["in_flight"]:
        said.append(f"{row['in_flight']} in flight")
    if row["estimated"]:
        said.append(f"{row['estimated']} estimated")
    return ", ".join(said)


def ledger_warnings(total: dict[str, Any], *, ended: bool = False) -> list[tuple[str, str]]:
    """The run's calls that need a word, each as (text, style): possibly billed, in
    flight (of a run that ended: sent and never ended), with estimated usage."""
    from keel.runtime.views.ledger import dollars

    found = []
    billed = total["possibly_billed"]
    if billed:
        whose = "the worker died" if billed == 1 else "their workers died"
        each = "its reservation" if billed == 1 else "each its reservation"
        found.append((f"{billed} possibly billed: {whose} after sending; charged {each} "
                      f"({dollars(total['possibly_billed_cost_nanos'])})", "red"))  # fmt: skip
    flying = total["in_flight"]
    if flying and ended:  # no attempt will come to find them: they stay as they are
        found.append((f"{plural(flying, 'call')} sent and never ended: the run ended "
                      f"first; counted at {'its' if flying == 1 else 'their'} reservation "
                      f"({dollars(total['in_flight_cost_nanos'])})", "yellow"))  # fmt: skip
    elif flying:
        found.append((f"{plural(flying, 'call')} in flight: counted at "
                      f"{'its' if flying == 1 else 'their'} reservation "
                      f"({dollars(total['in_flight_cost_nanos'])}) until "
                      f"{'it ends' if flying == 1 else 'they end'}", "yellow"))  # fmt: skip
    estimated = total["estimated"]
    if estimated:
        found.append(
            (
                f"{plural(estimated, 'call')} with estimated usage: the provider "
                "reported none, so the tokens and cost are keel's count",
                "yellow",
            )
        )
    return found


def print_ledger(console: Console, ledger: dict[str, Any], *, ended: bool = False) -> None:
    """A run's ledger (``ledger_document``): a line per node and the total, then what
    needs a word (possibly billed calls first). ``ended``: the run has ended."""
    from rich.text import Text

    from keel.cli.layout import Cell, Column, hanging_lines, print_table
    from keel.runtime.views.ledger import dollars

    # the notes go under their row rather than wrap into a narrow column: a phrase
    # ("1 possibly billed") broken over two lines reads as two
    columns = [
        Column("node"), Column("model", role="extra", keep=1),
        Column("calls", justify="right"), Column("input", justify="right"),
        Column("output", justify="right"), Column("cost", justify="right"),
        Column("notes", role="long", min_width=40, label="", wrap=True),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for row in ledger["nodes"]:
        rows.append([row["node"], ", ".join(row["models"]), str(row["calls"]),
                     _tokens(row["input_tokens"]), _tokens(row["output_tokens"]),
                     dollars(row["cost_nanos"]), _notes(row)])  # fmt: skip
    total = ledger["total"]
    if len(ledger["nodes"]) > 1:  # one node's line is the total already
        rows.append([Text("total", style="bold"), "", str(total["calls"]),
                     _tokens(total["input_tokens"]), _tokens(total["output_tokens"]),
                     Text(dollars(total["cost_nanos"]), style="bold"), ""])  # fmt: skip
    console.print()
    console.print(Text("LLM calls, tokens and cost", style="bold"))
    print_table(console, columns, rows)
    for text, style in ledger_warnings(total, ended=ended):
        for line in hanging_lines(console, Text("! "), text):
            line.stylize(style)
            console.print(line, soft_wrap=True)


RunArgument = Annotated[str, typer.Argument(help="Run id or unique prefix")]


def calls(
    run_id: RunArgument,
    node: Annotated[str | None, typer.Argument(help="Only this node's calls")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """A run's model and tool calls, one a line, in the order each node (and map item)
    made them: the attempt, kind, model, how it ended (answered, failed, possibly billed:
    sent by a worker that died before recording the answer; sent: in flight), the finish
    reason, tokens in and out, cost, latency and where the price came from. Then the
    run's ledger per node. --json gives each call whole, its request and answer too."""
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.runtime.views.ledger import dollars

    with opened_client(db) as client, reported_errors():
        found = client.llm_calls(run_id, node=node, full=as_json)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    console = Console()
    if not found["calls"]:
        whose = f"node {node} of run" if node is not None else "run"
        console.print(f"{whose} {found['run_id'][:8]} made no model or tool calls")
        return
    columns = [
        Column("node"), Column("#", justify="right"), Column("att", justify="right"),
        Column("kind", role="extra", keep=2), Column("model"), Column("state"),
        Column("finish", role="extra", keep=3), Column("in", justify="right"),
        Column("out", justify="right"), Column("cost", justify="right"),
        Column("latency", role="extra", keep=4, justify="right"),
        Column("price", role="extra", keep=0), Column("error", role="under"),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for call in found["calls"]:
        where = call["node"] + ("" if call["item"] is None else f"[{call['item']}]")
        tokens_in, tokens_out = _tokens(call["input_tokens"]), _tokens(call["output_tokens"])
        if not call["usage_reported"]:
            tokens_in, tokens_out = f"~{tokens_in}", f"~{tokens_out}"
        rows.append([
            where, str(call["seq"]), str(call["attempt"]), call["kind"], call["model"],
            _state_text(call["state"]), call["finish_reason"] or "", tokens_in, tokens_out,
            dollars(call["cost_nanos"]),
            f"{call['latency']:.2f}s" if call["state"] in ("answered", "failed") else "",
            call["price_source"], _error_text(call["error"]),
        ])  # fmt: skip
    print_table(console, columns, rows)
    if any(not call["usage_reported"] for call in found["calls"]):
        console.print("~ estimated: the provider reported no usage", style="dim")
    if found["ledger"] is not None and node is None:
        print_ledger(console, found["ledger"])


def _state_text(state: str) -> Text:
    from rich.text import Text

    styles = {"failed": "red", "possibly_billed": "red", "sent": "yellow"}
    words = {"possibly_billed": "possibly billed", "sent": "in flight"}
    return Text(words.get(state, state), style=styles.get(state, ""))


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return "" if error is None else str(error)
    return f"{error.get('type', 'error')}: {error.get('message', '')}"


def spend(
    since: Annotated[
        str | None,
        typer.Option(
            help="Calls sent since: a date (2025-01-31), a date and time, or a "
            "duration back from now (24h, 7d); default: every call"
        ),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's calls")] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """What model and tool calls spent per workflow and model: calls, tokens in and out,
    cost (a call in flight at its reservation, a possibly billed one at its reservation
    for good)."""
    from rich.console import Console

    from keel.cli.layout import Cell, Column, print_table
    from keel.runtime.views.ledger import dollars

    with opened_client(db) as client, reported_errors():
        start = 0.0 if since is None else _since(since, client)
        found = client.llm_spend(since=start, workflow=workflow)
    if as_json:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))
        return
    console = Console()
    if not found["spend"]:
        console.print("no model or tool calls" + ("" if since is None else f" since {since}"))
        return
    columns = [
        Column("workflow"), Column("model"), Column("calls", justify="right"),
        Column("input", justify="right"), Column("output", justify="right"),
        Column("cost", justify="right"),
        Column("notes", role="long", min_width=40, label="", wrap=True),
    ]  # fmt: skip
    rows: list[list[Cell]] = []
    for row in [*found["spend"], {**found["total"], "workflow": "total", "model": ""}]:
        notes = []
        if row["possibly_billed"]:
            notes.append(f"{row['possibly_billed']} possibly billed")
        if row["estimated"]:
            notes.append(f"{row['estimated']} estimated")
        rows.append([row["workflow"], row["model"], str(row["calls"]),
                     _tokens(row["input_tokens"]), _tokens(row["output_tokens"]),
                     dollars(row["cost_nanos"]), ", ".join(notes)])  # fmt: skip
    if since is not None:
        console.print(f"since {local_time(found['since'])}")
    print_table(console, columns, rows)


def _since(text: str, client: Any) -> float:
    """``--since`` as a timestamp: a duration back from the store's now, or a local
    date (and time)."""
    from keel.cli.common import client_now, moment

    return moment(text, "--since", lambda: client_now(client))
