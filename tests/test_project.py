"""Project-wide rules: the public surface, the direction of imports, lint and types."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import keel

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keel"

#: which keel packages each layer may import (besides itself and keel.errors)
ALLOWED = {
    "spec": set(),
    "authoring": {"spec"},
    "engine": {"spec"},
    "store": {"spec", "engine"},
    "runtime": {"spec", "engine", "store"},
    "cli": {"spec", "authoring", "engine", "store", "runtime"},
}


def test_public_api_is_pinned() -> None:
    assert sorted(keel.__all__) == sorted([
        "CallableNotifier", "CircuitPolicy", "Client", "ConcurrencyPolicy", "EmailNotifier",
        "EventTrigger", "ExpressionError", "InputError", "JoinRule",
        "KeelError", "NodeDefaults", "NodeOutput", "NonRetryable", "RateLimitPolicy", "RetryPolicy",
        "ScheduleTrigger", "SpecError", "SpecIssue", "StepContext", "Task", "TracingError",
        "Value", "WebhookNotifier", "WebhookTrigger", "Workflow", "WorkflowNotFoundError",
        "WorkflowSpec",
        "__version__", "approval", "context", "expr", "map", "signal", "task", "timer", "when",
        "workflow",
    ])  # fmt: skip
    for name in keel.__all__:
        assert hasattr(keel, name), name


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "keel" and len(parts) > 1 and parts[1] != "errors":
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer: str) -> None:
    allowed = ALLOWED[layer] | {layer}
    for path in (PACKAGE / layer).rglob("*.py"):
        wrong = _imported_layers(path) - allowed
        assert not wrong, f"{path.relative_to(ROOT)} imports keel.{', keel.'.join(sorted(wrong))}"


def test_errors_module_imports_nothing_of_keel() -> None:
    assert _imported_layers(PACKAGE / "errors.py") == set()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return found


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "keel", "tests", "examples", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    _tool("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "keel"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
