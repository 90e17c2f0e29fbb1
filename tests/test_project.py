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
#: the project templates of `keel init`: files copied into users' projects, which import
#: keel as any user's code does (``keel.testing`` in their tests)
TEMPLATES = PACKAGE / "cli" / "project_templates"

#: which keel packages each layer may import (besides itself and keel.errors); every
#: package of keel must have a rule here, including ones added later (DESIGN.md, Layers)
ALLOWED = {
    "spec": set(),
    "authoring": {"spec"},
    "engine": {"spec"},
    "store": {"spec", "engine"},
    # signatures, checkpoints, exports: over the store's records, used by the runtime
    "audit": {"spec", "engine", "store"},
    "runtime": {"spec", "engine", "store", "audit"},
    # helpers for users' tests of their workflows: ``replay``, and ``run``, which runs
    # one in memory with the real worker (runtime, store), loads YAML (authoring) and
    # answers llm nodes offline (llm); like the CLI, nothing of keel imports it
    "testing": {"spec", "authoring", "engine", "store", "runtime", "llm"},
    "llm": {"spec", "authoring", "engine", "store", "runtime", "audit"},
    # the built-in steps (http, shell, sql, email): keel's own tasks, as llm's are
    "steps": {"spec", "authoring", "runtime"},
    "server": {"spec", "authoring", "engine", "store", "runtime", "llm", "audit", "steps"},
    "cli": {"spec", "authoring", "engine", "store", "runtime", "llm", "server", "audit", "steps"},
}
#: modules at the top of the package, outside every layer
TOP_MODULES = {"__init__", "__main__", "errors"}
#: which parts of ``keel.runtime`` each of its sub-packages may import: running a task
#: body and reading runs know nothing of the worker or of operations on runs
RUNTIME_ALLOWED = {
    # OpenTelemetry around runs and attempts: what the others use, knowing none of them
    "tracing": set(),
    # an attempt redacts the secrets it looked up from what it hands back
    "execution": {"tracing", "secrets"},
    # views judge a lease holder of this host dead as workers do (``keel.runtime.owner``)
    "views": {"tracing", "owner", "audit_key"},
    "notifications": {"execution"},
    "operations": {"execution", "clock", "runs", "waiting", "notifications", "tracing"},
    "worker": {
        "execution",
        "clock",
        "runs",
        "waiting",
        "notifications",
        "operations",
        "triggers",
        "metrics",
        "tracing",
        "owner",
    },
    # what fires triggers: it starts runs through the operations (and counts them)
    "triggers": {"clock", "runs", "operations", "metrics"},
    # alert rules: read from the config file the worker reads, evaluated under the
    # store's lease, delivered through the notifiers
    "alerts": {"clock", "notifications", "worker", "owner"},
    # keel.Client's transports: the store one performs the operations and views
    "transports": {"clock", "runs", "operations", "views", "triggers", "tracing"},
}  # fmt: skip


def test_public_api_is_pinned() -> None:
    assert sorted(keel.__all__) == sorted([
        "ApprovalNeeded", "CallableNotifier", "CircuitPolicy", "Client",
        "CompletionTrigger", "ConcurrencyPolicy",
        "EmailNotifier", "EventTrigger", "ExpressionError", "FileTrigger", "InputError", "JoinRule",
        "KeelError", "LlmBudget", "NodeDefaults", "NodeOutput", "NonRetryable", "RateLimitPolicy",
        "RetryLater", "RetryPolicy",
        "ScheduleTrigger", "SpecError", "SpecIssue", "StepContext", "Task", "TracingError",
        "Value", "WebhookNotifier", "WebhookTrigger", "Workflow", "WorkflowNotFoundError",
        "WorkflowSpec",
        "__version__", "approval", "context", "email", "expr", "http", "map", "secret", "secrets",
        "shell", "signal", "sql", "task", "timer", "when", "workflow",
    ])  # fmt: skip
    for name in keel.__all__:
        assert hasattr(keel, name), name
    assert keel.llm.step is not None  # the LLM steps' package, imported on first use


def _imported(path: Path, prefix: str = "keel") -> set[str]:
    """The names right below ``prefix`` that ``path`` imports (``keel.errors`` aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = prefix.count(".") + 1
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            inside = parts[:depth] == prefix.split(".") and len(parts) > depth
            if inside and (prefix, parts[depth]) != ("keel", "errors"):
                found.add(parts[depth])
    return found


def _imported_layers(path: Path) -> set[str]:
    return _imported(path)


def test_every_package_of_keel_has_a_layer_rule() -> None:
    """A new package with no rule would be checked by nothing: it must say where it sits."""
    entries = {
        p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert entries - TOP_MODULES <= set(ALLOWED), "add a rule to ALLOWED for every new package"
    runtime = PACKAGE / "runtime"
    subpackages = {p.name for p in runtime.iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(RUNTIME_ALLOWED), "add a rule to RUNTIME_ALLOWED"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer: str) -> None:
    """Layers not written yet (``server``, ``llm``) pass until they exist, then are held
    to their rule from their first file."""
    allowed = ALLOWED[layer] | {layer}
    for path in (PACKAGE / layer).rglob("*.py"):
        if TEMPLATES in path.parents:
            continue  # a user's project, as `keel init` writes it: not a module of keel
        wrong = _imported_layers(path) - allowed
        assert not wrong, f"{path.relative_to(ROOT)} imports keel.{', keel.'.join(sorted(wrong))}"


@pytest.mark.parametrize("part", sorted(RUNTIME_ALLOWED))
def test_runtime_parts_import_only_what_their_job_needs(part: str) -> None:
    siblings = {p.stem for p in (PACKAGE / "runtime").iterdir() if p.stem != "__init__"}
    allowed = RUNTIME_ALLOWED[part] | {part}
    for path in (PACKAGE / "runtime" / part).rglob("*.py"):
        wrong = (_imported(path, "keel.runtime") & siblings) - allowed
        assert not wrong, (
            f"{path.relative_to(ROOT)} imports keel.runtime.{', '.join(sorted(wrong))}"
        )


def test_errors_module_imports_nothing_of_keel() -> None:
    assert _imported_layers(PACKAGE / "errors.py") == set()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' installs it)")
    return found


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "keel", "tests", "examples", "bench", "mkdocs_hooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    _tool("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "keel", "mkdocs_hooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
