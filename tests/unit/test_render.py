"""Rendering a spec as ascii, Mermaid, DOT and JSON: every node, edge and marker shows."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from keel.spec.model import WorkflowSpec
from keel.spec.render import (
    FORMATS,
    render,
    render_ascii,
    render_dot,
    render_json,
    render_mermaid,
)
from keel.spec.validate import parse_spec

WHEN = 'nodes.a.output == "x"'


def _spec(**changes: Any) -> WorkflowSpec:
    data: dict[str, Any] = {
        "name": "w",
        "description": "a small workflow",
        "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [
            {"id": "a", "task": "m:f", "args": {"x": "${{ input.x }}"}},
            {"id": "b", "task": "m:g", "args": {"y": "${{ nodes.a.output }}"}, "when": WHEN},
            {"id": "c", "kind": "map", "task": "m:h", "items": "nodes.a.output", "item_arg": "it"},
            {"id": "d", "task": "m:k", "after": ["b", "c"], "join": "all_done"},
        ],
        "outputs": {"result": "nodes.d.output"},
    }
    data.update(changes)
    return parse_spec(data)


EDGES = [["a", "b"], ["a", "c"], ["b", "d"], ["c", "d"]]


@pytest.fixture
def spec() -> WorkflowSpec:
    return _spec()


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_node_appears_in_every_format(spec: WorkflowSpec, fmt: str) -> None:
    text = render(spec, fmt)
    for node_id in ("a", "b", "c", "d"):
        assert node_id in text
    assert text == render(spec, fmt), "rendering must be deterministic"


def test_render_dispatches_to_the_format_functions(spec: WorkflowSpec) -> None:
    functions = (render_ascii, render_mermaid, render_dot, render_json)
    for fmt, function in zip(FORMATS, functions, strict=True):
        assert render(spec, fmt) == function(spec)


def test_unknown_format_names_the_accepted_ones(spec: WorkflowSpec) -> None:
    with pytest.raises(ValueError, match="svg") as raised:
        render(spec, "svg")
    for fmt in FORMATS:
        assert fmt in str(raised.value)


# --- ascii ------------------------------------------------------------------------------


def _row(text: str, node_id: str) -> str:
    [row] = [line for line in text.splitlines() if line.split()[1:2] == [node_id]]
    return row


def test_ascii_header_description_and_input(spec: WorkflowSpec) -> None:
    lines = render_ascii(spec).splitlines()
    assert lines[0] == f"w  version {spec.version[:12]}"
    assert lines[1] == "a small workflow"
    assert lines[2] == "input: x"
    assert lines[-1] == "outputs: result = nodes.d.output"


def test_ascii_without_input_or_outputs_says_none() -> None:
    text = render_ascii(_spec(input_schema={"type": "object"}, outputs={}))
    assert "input: (none)" in text
    assert "outputs: (none)" in text


def test_ascii_groups_nodes_by_layer_and_marks_parallel_layers(spec: WorkflowSpec) -> None:
    lines = render_ascii(spec).splitlines()
    layer_lines = [line for line in lines if line.startswith("layer")]
    assert layer_lines == ["layer 1", "layer 2   (parallel)", "layer 3"]
    position = {line: i for i, line in enumerate(lines)}
    assert position["layer 1"] < lines.index(_row("\n".join(lines), "a"))
    layer2 = position["layer 2   (parallel)"]
    assert lines.index(_row("\n".join(lines), "b")) > layer2
    assert lines.index(_row("\n".join(lines), "c")) > layer2
    assert lines.index(_row("\n".join(lines), "d")) > position["layer 3"]


def test_ascii_marks_map_condition_join_and_parents(spec: WorkflowSpec) -> None:
    text = render_ascii(spec)
    map_row = _row(text, "c")
    assert map_row.lstrip().startswith("▦ c")
    assert " map " in map_row
    assert "over nodes.a.output (item → it)" in map_row
    assert "← a" in map_row
    when_row = _row(text, "b")
    assert when_row.lstrip().startswith("◆ b")
    assert f"when: {WHEN}" in when_row
    assert _row(text, "a").lstrip().startswith("● a")
    assert "← a" not in _row(text, "a")
    assert "join: all_done" in _row(text, "d")
    assert "← b, c" in _row(text, "d")
    assert "join:" not in _row(text, "b"), "the default join rule is not shown"


def test_ascii_columns_are_aligned_and_plain(spec: WorkflowSpec) -> None:
    text = render_ascii(spec)
    rows = [_row(text, node_id) for node_id in "abcd"]
    assert len({row.index("m:") for row in rows}) == 1, "the task column lines up"
    assert len({row.index("←") for row in rows if "←" in row}) == 1
    assert "\x1b" not in text, "no colour codes"
    assert all(line == line.rstrip() for line in text.splitlines())


@pytest.mark.parametrize("width", [40, 60])
def test_ascii_fits_a_narrow_width_with_conditions_and_items_under_their_row(
    width: int,
) -> None:
    long_when = "nodes.a.output == 'a value long enough to need a line of its own'"
    spec = _spec(nodes=[
        {"id": "a", "task": "some.module.with_a_long_name:f"},
        {"id": "b", "task": "m:g", "after": ["a"], "when": long_when},
        {"id": "c", "kind": "map", "task": "m:h", "items": "nodes.a.output", "item_arg": "it"},
    ])  # fmt: skip

    lines = render_ascii(spec, width).splitlines()

    assert max(len(line) for line in lines) <= width
    joined = " ".join(" ".join(lines).split())
    assert f"when: {long_when}" in joined
    b_row = lines.index(_row("\n".join(lines), "b"))
    assert lines[b_row + 1].lstrip().startswith(("when:", "← a"))
    c_row = lines.index(_row("\n".join(lines), "c"))
    assert "over nodes.a.output (item → it)" in " ".join(lines[c_row : c_row + 3])
    assert render_ascii(spec, 500) == render_ascii(spec), "one row a node when it fits"


def test_ascii_reports_a_cycle_clearly() -> None:
    spec = _spec(
        nodes=[
            {"id": "p", "task": "m:f", "after": ["q"]},
            {"id": "q", "task": "m:g", "after": ["p"]},
        ],
        outputs={},
    )
    with pytest.raises(ValueError, match="cycle"):
        render_ascii(spec)


# --- mermaid ----------------------------------------------------------------------------


def test_mermaid_shapes_edges_and_classes(spec: WorkflowSpec) -> None:
    text = render_mermaid(spec)
    assert text.startswith("flowchart TD\n")
    for parent, child in EDGES:
        assert f"    {parent} --> {child}\n" in text
    assert text.count("-->") == len(EDGES)
    assert '    c[["c<br/>map m:h' in text
    assert '    b{{"b<br/>task m:g' in text
    assert '    a["a<br/>task m:f"]\n' in text
    assert "classDef conditional" in text
    assert "class b conditional" in text
    assert "class c mapNode" in text


def test_mermaid_escapes_quotes_in_labels(spec: WorkflowSpec) -> None:
    line = next(line for line in render_mermaid(spec).splitlines() if line.startswith("    b{{"))
    assert "when: nodes.a.output == #quot;x#quot;" in line
    label = line[line.index('"') + 1 : line.rindex('"')]
    assert '"' not in label


def test_mermaid_renames_ids_that_are_keywords() -> None:
    spec = _spec(
        nodes=[{"id": "a", "task": "m:f"}, {"id": "end", "task": "m:g", "after": ["a"]}],
        outputs={},
    )
    text = render_mermaid(spec)
    assert "    a --> end_\n" in text
    assert '    end_["end<br/>task m:g"]' in text


# --- dot --------------------------------------------------------------------------------


def test_dot_is_a_digraph_with_every_edge(spec: WorkflowSpec) -> None:
    text = render_dot(spec)
    assert text.startswith('digraph "w" {\n')
    assert "rankdir=TB;" in text
    assert text.count("{") == text.count("}")
    assert text.rstrip().endswith("}")
    for parent, child in EDGES:
        assert f'  "{parent}" -> "{child}";\n' in text
    assert text.count("->") == len(EDGES)


def test_dot_shapes_and_escaping(spec: WorkflowSpec) -> None:
    lines = render_dot(spec).splitlines()
    [map_line] = [line for line in lines if line.startswith('  "c" [')]
    assert "shape=box3d" in map_line
    [when_line] = [line for line in lines if line.startswith('  "b" [')]
    assert "style=dashed" in when_line
    assert 'when: nodes.a.output == \\"x\\"' in when_line


def test_dot_escapes_backslashes() -> None:
    spec = _spec(nodes=[{"id": "a", "task": "m:f", "when": 'input.x == "a\\\\b"'}], outputs={})
    [line] = [line for line in render_dot(spec).splitlines() if line.startswith('  "a" [')]
    assert 'input.x == \\"a\\\\\\\\b\\"' in line


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_accepts_the_output(spec: WorkflowSpec) -> None:
    result = subprocess.run(
        ["dot", "-Tsvg"], input=render_dot(spec), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


# --- json -------------------------------------------------------------------------------


def test_json_round_trips_with_exact_edges(spec: WorkflowSpec) -> None:
    data = json.loads(render_json(spec))
    assert data["name"] == "w"
    assert data["version"] == spec.version
    assert data["edges"] == EDGES
    assert data["outputs"] == {"result": "nodes.d.output"}
    assert [node["id"] for node in data["nodes"]] == ["a", "b", "c", "d"]
    by_id = {node["id"]: node for node in data["nodes"]}
    assert by_id["a"] == {
        "id": "a",
        "kind": "task",
        "task": "m:f",
        "when": None,
        "join": "none_failed",
        "parents": [],
    }
    assert by_id["b"]["when"] == WHEN
    assert by_id["c"]["kind"] == "map"
    assert by_id["c"]["items"] == "nodes.a.output"
    assert by_id["c"]["item_arg"] == "it"
    assert by_id["d"]["join"] == "all_done"
    assert by_id["d"]["parents"] == ["b", "c"]


def test_json_is_indented_and_key_sorted(spec: WorkflowSpec) -> None:
    text = render_json(spec)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def _steps() -> WorkflowSpec:
    return parse_spec({"name": "hooks", "nodes": [
        {"id": "fetch", "kind": "http", "method": "post",
         "url": "https://api.example.com/claims/${{ input.id }}",
         "headers": {"Authorization": "Bearer ${{ secrets.API_TOKEN }}"}},
        {"id": "notify", "kind": "shell", "command": ["echo", "${{ nodes.fetch.output.status }}"]},
        {"id": "save", "kind": "sql", "connection": "claims",
         "query": "insert into notes values (:s)", "params": {"s": "${{ nodes.fetch.output }}"}},
        {"id": "mail", "kind": "email", "to": ["ops@example.com"], "subject": "s",
         "after": ["save"]},
    ]})  # fmt: skip


STEP_LABELS = {
    "fetch": "http POST api.example.com/claims/${{ input.id }}",
    "notify": "shell echo ${{ nodes.fetch.output.status }}",
    "save": "sql INSERT on claims",
    "mail": "email to ops@example.com",
}


@pytest.mark.parametrize("fmt", ["ascii", "mermaid", "dot"])
def test_built_in_steps_show_their_kind_and_what_they_call(fmt: str) -> None:
    text = render(_steps(), fmt, width=100)
    assert "keel.steps" not in text
    for label in STEP_LABELS.values():
        summary = label.split(" ", 1)[1]
        assert summary in text
        if fmt != "ascii":  # ascii puts the kind in a column of its own
            assert label in text


def test_built_in_steps_keep_their_task_in_json_and_say_what_they_call() -> None:
    nodes = {node["id"]: node for node in json.loads(render_json(_steps()))["nodes"]}
    assert nodes["fetch"]["task"] == "keel.steps.http:http_step"
    assert {key: f"{node['kind']} {node['calls']}" for key, node in nodes.items()} == STEP_LABELS


def test_a_long_step_summary_is_cut_to_one_short_line() -> None:
    spec = parse_spec({"name": "w", "nodes": [
        {"id": "run", "kind": "shell", "command": ["convert", *(["--flag\nvalue"] * 30)]},
    ]})  # fmt: skip
    (row,) = [line for line in render_ascii(spec).splitlines() if "run" in line]
    assert row.rstrip().endswith("…")
    assert len(row) < 100
