"""``keel estimate``: what one run of a workflow would ask of its models and cost, before
it runs (``keel.llm.estimate``). Nothing runs and no model is asked; the database, when
there is one, is only read, for the calls earlier runs recorded (calibration).

The workflow is loaded and its input parsed and checked as ``keel run`` does them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from keel.cli.common import (
    DbOption,
    JsonOption,
    fail,
    load_code,
    opened_store,
    parse_input,
    reported_errors,
)
from keel.cli.run_commands import InputOption, InputsOption

if TYPE_CHECKING:
    from rich.console import Console

    from keel.llm.calibration import Calibration
    from keel.llm.config import LlmConfig
    from keel.llm.estimate import Bounds, Estimate, NodeEstimate, PriceUsed

CalibrateOption = Annotated[
    bool,
    typer.Option(
        "--calibrate/--no-calibrate",
        help="Expected values from the calls earlier runs recorded in the database",
    ),
]


def register(app: typer.Typer) -> None:
    app.command()(estimate)


def estimate(
    target: Annotated[str, typer.Argument(help="FILE[:WORKFLOW] or MODULE[:WORKFLOW]")],
    input: InputOption = None,
    inputs: InputsOption = None,
    calibrate: CalibrateOption = True,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Estimate one run's model requests, tokens and cost, before running it: min /
    expected / max per LLM and agent node and in total, the prices and token counting
    used, what is unbounded and what is assumed.

    With the input (--input, -i), conditions, lists and prompts that read it are filled
    in; without it, what they read counts by the rules listed. Nothing is run.
    """
    from keel.llm.estimate import estimate as estimated
    from keel.runtime.operations.inputs import check_start, with_defaults

    spec = load_code(target).spec
    run_input = None
    if input is not None or inputs:
        run_input = parse_input(input, inputs or [], spec.input_schema)
        with reported_errors():
            check_start(spec, run_input)
        run_input = with_defaults(spec, run_input)
    config = _llm_config()
    calibration = _calibration(db, spec.name) if calibrate else None
    result = estimated(spec, run_input, config, calibration)
    if as_json:
        typer.echo(json.dumps(document(result), indent=2, ensure_ascii=False))
        return
    from rich.console import Console

    print_estimate(Console(), result)


def _llm_config() -> LlmConfig:
    from keel.llm.config import LlmConfigError, load_llm_config

    try:
        return load_llm_config()
    except LlmConfigError as exc:
        raise fail(f"keel estimate: {exc}") from None


def _calibration(db: str | None, workflow: str) -> Calibration | None:
    """The calls recorded for ``workflow``; None when no database is named and the
    default one does not exist (an estimate needs none)."""
    from keel.llm.calibration import calibration
    from keel.runtime.stores import DEFAULT_PATH

    if db is None and not Path(DEFAULT_PATH).exists():
        return None
    with opened_store(db) as store, reported_errors():
        return calibration(store, workflow)


def money(amount: int | None) -> str:
    """Nano-dollars as a person reads them, two significant digits below a cent."""
    if amount is None:
        return "∞"
    value = Decimal(amount) / 1_000_000_000
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    if value >= Decimal("0.01"):
        return f"${value:.4f}"
    places = min(9, 1 - value.adjusted())
    return f"${value:.{places}f}"


def count(value: int | None) -> str:
    """A count in at most five characters: 950, 12.3k, 4.5M; ∞ for unbounded."""
    if value is None:
        return "∞"
    for size, unit in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= size * 10:
            return (
                f"{value / size:.0f}{unit}" if value >= size * 100 else f"{value / size:.1f}{unit}"
            )
    return str(value)


def _three(bounds: Bounds | None, shown: Any = count) -> str:
    if bounds is None:
        return "unknown"
    return f"{shown(bounds.min)} / {shown(bounds.expected)} / {shown(bounds.max)}"


def print_estimate(console: Console, result: Estimate) -> None:
    from rich.text import Text

    from keel.cli.layout import Cell, Column, print_table

    console.print(Text(f"{result.workflow}: one run, min / expected / max", style="bold"))
    if not result.nodes:
        console.print("no llm or agent nodes: nothing to estimate")
        return
    total = Text("total", style="bold")
    columns = [Column("node"), Column("runs"), Column("requests"), Column("input tokens"),
               Column("output tokens")]  # fmt: skip
    rows: list[list[Cell]] = [
        [node.id, node.chance.runs.replace("_", " "), _three(node.calls),
         _three(node.input_tokens), _three(node.output_tokens)]
        for node in result.nodes
    ]  # fmt: skip
    rows.append([total, "", _three(result.calls), _three(result.input_tokens),
                 _three(result.output_tokens)])  # fmt: skip
    print_table(console, columns, rows)
    console.print()
    columns = [Column("node"), Column("model", role="extra"), Column("cost (USD)"),
               Column("", role="long")]  # fmt: skip
    rows = [
        [node.id, node.model, _three(node.cost, money),
         "calibrated" if node.calibrated else ""]
        for node in result.nodes
    ]  # fmt: skip
    left_out = f"without {', '.join(result.unpriced)}" if result.unpriced else ""
    rows.append([total, "", _three(result.cost, money), left_out])
    print_table(console, columns, rows)
    console.print()
    _print_summary(console, result)
    noted = [(node.id, _node_lines(node)) for node in result.nodes]
    if any(lines for _, lines in noted):
        console.print(Text("per node", style="bold"))
        for node_id, lines in noted:
            if lines:
                console.print(f"  {node_id}", soft_wrap=True)
                _bullets(console, lines, indent=4)
    console.print(Text("assumptions", style="bold"))
    _bullets(console, result.assumptions, indent=2)


def _print_summary(console: Console, result: Estimate) -> None:
    methods = sorted(set(result.token_methods.values()))
    _field(console, "tokens", f"counted as {', '.join(methods)}")
    for used in result.prices:
        _field(console, "price", _price_line(used))
    if result.unpriced:
        _field(console, "unknown", f"cost of {', '.join(result.unpriced)}: no price (set "
               "one under [llm.prices] in keel.toml); the total leaves it out",
               style="yellow")  # fmt: skip
    for node_id, why in result.unbounded:
        _field(console, "unbounded", f"{node_id}: {why}", style="yellow")
    if not result.input_given and any(
        "input" in line for node in result.nodes for line in _node_lines(node)
    ):
        _field(console, "input", "not given: give --input or -i to fill in what reads it")
    calibration = result.calibration
    if calibration is not None and calibration.calls:
        _field(console, "calibrated", f"from {calibration.calls} calls in the last "
               f"{calibration.runs} runs of {result.workflow}")  # fmt: skip
    else:
        _field(console, "calibrated", "no (no calls recorded for this workflow)")
    console.print()


def _field(console: Console, label: str, value: str, *, style: str = "") -> None:
    from rich.text import Text

    from keel.cli.layout import hanging_lines

    for line in hanging_lines(console, Text(f"  {label:<12}"), value):
        if style:
            line.stylize(style)
        console.print(line, soft_wrap=True)


def _bullets(console: Console, lines: Sequence[str], *, indent: int) -> None:
    from rich.text import Text

    from keel.cli.layout import hanging_lines

    for said in lines:
        for line in hanging_lines(console, Text(" " * indent + "- "), said):
            console.print(line, soft_wrap=True)


def _node_lines(node: NodeEstimate) -> list[str]:
    lines = list(node.notes)
    if node.items is not None:
        lines.insert(0, f"items {_three(node.items)}")
    if node.calibrated:
        lines.append(f"calibrated from {node.calibrated} calls")
    return lines


def _price_line(used: PriceUsed) -> str:
    name = f"{used.provider}:{used.model}"
    price = used.price
    if price is None:
        return f"{name} unknown"
    per = f"${price.input:f} in, ${price.output:f} out per million tokens"
    matched = f", as {price.matched}" if price.matched and price.matched != name else ""
    return f"{name} {per} ({price.source}{matched})"


def _bounds(bounds: Bounds | None) -> dict[str, Any] | None:
    if bounds is None:
        return None
    return {"min": bounds.min, "expected": bounds.expected, "max": bounds.max}


def _dollars(bounds: Bounds | None) -> dict[str, Any] | None:
    if bounds is None:
        return None

    def usd(amount: float | None) -> float | None:  # a cost's bounds are whole nano-dollars
        return None if amount is None else float(Decimal(int(amount)) / 1_000_000_000)

    return {"min": usd(bounds.min), "expected": usd(bounds.expected), "max": usd(bounds.max)}


def document(result: Estimate) -> dict[str, Any]:
    """The estimate as JSON: costs in dollars (``cost_usd``) and exactly, in
    nano-dollars (``cost_nanos``); a ``max`` of null is unbounded."""
    return {
        "workflow": result.workflow,
        "version": result.version,
        "input_given": result.input_given,
        "nodes": [
            {
                "id": node.id,
                "kind": node.kind,
                "provider": node.provider,
                "model": node.model,
                "runs": node.chance.runs,
                "chance": node.chance.share,
                "items": _bounds(node.items),
                "calls": _bounds(node.calls),
                "input_tokens": _bounds(node.input_tokens),
                "output_tokens": _bounds(node.output_tokens),
                "cost_usd": _dollars(node.cost),
                "cost_nanos": _bounds(node.cost),
                "unbounded": node.unbounded,
                "calibrated_calls": node.calibrated,
                "notes": list(node.notes),
            }
            for node in result.nodes
        ],
        "total": {
            "calls": _bounds(result.calls),
            "input_tokens": _bounds(result.input_tokens),
            "output_tokens": _bounds(result.output_tokens),
            "cost_usd": _dollars(result.cost),
            "cost_nanos": _bounds(result.cost),
            "cost_leaves_out": list(result.unpriced),
            "budget_cap_usd": None
            if result.budget_cap is None
            else float(Decimal(result.budget_cap) / 1_000_000_000),
        },
        "token_methods": result.token_methods,
        "prices": [_price_document(used) for used in result.prices],
        "unbounded": [{"node": node, "reason": why} for node, why in result.unbounded],
        "assumptions": list(result.assumptions),
        "calibration": None
        if result.calibration is None
        else {"runs": result.calibration.runs, "calls": result.calibration.calls},
    }


def _price_document(used: PriceUsed) -> dict[str, Any]:
    price = used.price
    found: dict[str, Any] = {"provider": used.provider, "model": used.model,
                             "known": price is not None}  # fmt: skip
    if price is not None:
        found.update(input_per_mtok=float(price.input), output_per_mtok=float(price.output),
                     cached_input_per_mtok=float(price.cached_input), source=price.source,
                     matched=price.matched)  # fmt: skip
    return found
