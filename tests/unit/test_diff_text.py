"""``keel diff`` as text: one line per change within the console's width (a short side
stays whole, a long one is shortened with "…"), removed nodes and edges and workflow
changes listed, and "(not set)" for a field left at its default."""

from __future__ import annotations

from keel.cli.diff_text import change_line, spec_diff_lines
from keel.spec import parse_spec
from keel.spec.data_diff import MISSING, Change
from keel.spec.diff import diff_specs, spec_diff_document


def test_a_change_fits_the_width_and_keeps_a_short_side_whole() -> None:
    long = {"text": "x" * 200}
    line = change_line(Change(("nodes", "a", "output"), None, long), 80, 2, "(absent)")
    assert len(line) == 80
    assert line.startswith("  nodes.a.output: null -> {")
    assert line.endswith("…")

    both = change_line(Change(("input",), "a" * 100, "b" * 100), 80, 2, "(absent)")
    assert len(both) <= 80
    assert both.count("…") == 2
    assert change_line(Change(("x",), MISSING, 1), 80, 0, "(not set)") == "x: (not set) -> 1"


def test_removed_nodes_edges_and_workflow_changes_are_listed() -> None:
    old = parse_spec({"name": "w", "deadline": 60, "nodes": [
        {"id": "a", "task": "m:a"}, {"id": "b", "task": "m:b", "after": ["a"]}]})  # fmt: skip
    new = parse_spec({"name": "w", "nodes": [{"id": "a", "task": "m:a2"}]})
    lines = spec_diff_lines(spec_diff_document(diff_specs(old, new)), 80)

    assert lines[2:] == [
        "nodes removed (1)",
        "  - b  task m:b",
        "nodes changed (1)",
        "  ~ a  task",
        '      task: "m:a" -> "m:a2"',
        "edges removed (1)",
        "  - a -> b",
        "workflow (1)",
        "  deadline: 60 -> (not set)",
    ]
    same = spec_diff_lines(spec_diff_document(diff_specs(old, old)), 80)
    assert same[-1] == "no differences: the same definition"
