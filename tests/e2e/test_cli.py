"""The ``keel`` command as a user runs it: a real subprocess per call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "examples").glob("*.yaml"))


def keel(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"claims.py", "document_intake.py", "onboarding.py", "onboarding.yaml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_validates(example: Path) -> None:
    result = keel("validate", str(example.relative_to(ROOT)))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout


@pytest.mark.parametrize("fmt", ["ascii", "mermaid", "dot", "json"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_renders(example: Path, fmt: str) -> None:
    from keel.authoring.loading import load_all

    names = [loaded.spec.name for loaded in load_all(str(example))]
    target = str(example.relative_to(ROOT))
    for name in names:  # a file of several workflows: each by its name
        result = keel("graph", f"{target}:{name}" if len(names) > 1 else target, "--format", fmt)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()


def test_claims_graph_shows_parallel_branches_and_the_condition() -> None:
    result = keel("graph", "examples/claims.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    layer_two = lines.index(next(line for line in lines if line.startswith("layer 1")))
    assert "(parallel)" in lines[layer_two]  # extract and coverage need nothing else
    # at 80 columns (piped) the condition goes on the line under its node
    escalate = next(i for i, line in enumerate(lines) if "claims:escalate" in line)
    assert lines[escalate + 1].strip() == "when: nodes.fraud_score.output > 0.8"


def test_graph_json_has_the_data_flow_edges() -> None:
    result = keel("graph", "examples/claims.py:claim", "-f", "json")
    data = json.loads(result.stdout)
    edges = {tuple(edge) for edge in data["edges"]}
    assert ("extract", "fraud_score") in edges
    assert ("fraud_score", "decide") in edges
    assert not {("fraud_score", "coverage"), ("coverage", "fraud_score")} & edges


def test_validate_broken_yaml_prints_positions_and_fails() -> None:
    result = keel("validate", "tests/fixtures/broken.yaml")
    assert result.returncode == 1
    assert "tests/fixtures/broken.yaml:7:14: node 'fetch', timeout" in result.stderr
    assert "tests/fixtures/broken.yaml:13:5: node 'parse', colour: unknown field" in result.stderr


def test_validate_reports_every_file_even_after_a_failure() -> None:
    result = keel("validate", "tests/fixtures/cyclic.yaml", "examples/claims.py")
    assert result.returncode == 1
    assert "dependency cycle: a -> b -> c -> a" in result.stderr
    assert "workflow 'claim' is valid" in result.stdout


def test_validate_checks_arguments_against_the_real_functions(tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(
        "import keel\n\n@keel.task\ndef add(a: int, b: int) -> int:\n    return a + b\n"
    )
    (tmp_path / "flow.yaml").write_text(
        "name: f\nnodes:\n  - id: s\n    task: steps:add\n    args:\n      a: 'one'\n      c: 3\n"
    )
    result = keel("validate", "flow.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "flow.yaml:6:10: node 's', args.a: argument 'a' gives string" in result.stderr
    assert "flow.yaml:7:10: node 's', args.c: unknown argument 'c'" in result.stderr
    assert "missing required argument 'b'" in result.stderr


@pytest.mark.parametrize("task", ["os:system", "subprocess:run", "builtins:eval", "steps:plain"])
def test_validate_says_when_a_yaml_task_is_not_a_keel_task(tmp_path: Path, task: str) -> None:
    """Workers refuse to run it (keel.runtime.execution.task_access): validation says so first,
    and how to let it run; `allow` in keel.toml lets a plain function through."""
    (tmp_path / "steps.py").write_text("def plain(cmd: str) -> str:\n    return cmd\n")
    (tmp_path / "flow.yaml").write_text(
        f"name: f\nnodes:\n  - id: s\n    task: {task}\n    args: {{}}\n"
    )
    result = keel("validate", "flow.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert f"flow.yaml:4:11: node 's', task: '{task}' is " in result.stderr
    assert "not a keel task" in result.stderr
    if task != "steps:plain":
        assert "is in the standard library" in result.stderr
    else:
        assert "decorate it with @keel.task, or allow it by name" in result.stderr
        (tmp_path / "keel.toml").write_text('allow = ["steps:plain"]\n')
        allowed = keel("validate", "flow.yaml", cwd=tmp_path)
        assert "not a keel task" not in allowed.stderr


def test_module_target_and_ambiguity(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(
        "import keel\n\n@keel.task\ndef step(x: int) -> int:\n    return x\n\n"
        "@keel.workflow\ndef one(x: int) -> int:\n    return step(x)\n\n"
        "@keel.workflow\ndef two(x: int) -> int:\n    return step(x)\n"
    )
    ambiguous = keel("graph", "flows.py", cwd=tmp_path)
    assert ambiguous.returncode == 1
    assert "several workflows (one, two)" in ambiguous.stderr
    assert keel("graph", "flows.py:two", cwd=tmp_path).returncode == 0
    missing = keel("graph", "flows.py:three", cwd=tmp_path)
    assert "has no workflow 'three' (it has: one, two)" in missing.stderr


def test_unknown_format_is_rejected() -> None:
    result = keel("graph", "examples/claims.py", "--format", "svg")
    assert result.returncode == 2
    assert "use one of ascii, mermaid, dot, json" in result.stderr


def test_help_lists_the_commands() -> None:
    result = keel("--help")
    assert result.returncode == 0
    assert "validate" in result.stdout
    assert "graph" in result.stdout


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).parent / "keel"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable} (not installed with pip?)")
    result = subprocess.run([str(script), "version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __import__("keel").__version__


def test_validate_names_the_workflow_and_counts_in_words(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: lone\nnodes:\n  - {id: pause, kind: timer, duration: 1s}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: greeting\nnodes:\n  - {id: pause, kind: timer, duration: 1s}\n"
                   "  - {id: pause, kind: timer, duration: 400d}\n")  # fmt: skip
    result = keel("validate", str(good), str(bad))
    assert result.returncode == 1
    assert "workflow 'lone' is valid (1 node, version" in result.stdout
    assert "workflow 'greeting' is invalid (2 problems):" in result.stderr
    assert "duplicate node id 'pause' (first used by the 1st node)" in result.stderr
    assert "duration '400d' is too long" in result.stderr


def test_version_as_a_flag_and_as_a_command() -> None:
    flag, command = keel("--version"), keel("version")
    assert flag.returncode == command.returncode == 0, flag.stderr + command.stderr
    assert flag.stdout.strip() == command.stdout.strip() == __import__("keel").__version__
