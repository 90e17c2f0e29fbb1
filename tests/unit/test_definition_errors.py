"""The loader reports every invalid workflow of a Python file, each under its name, and
leaves no half-imported module behind; outside the loader ``@keel.workflow`` raises at
once, as it always did."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import keel
from keel.authoring.loading import load_all
from keel.errors import InvalidWorkflowsError, SpecError

TWO_INVALID = """\
import keel

@keel.task
def step(n: int = 0) -> int:
    return n

@keel.workflow
def a() -> None:
    step(n="x")

@keel.workflow(max_parallel=0)
def b() -> None:
    step()
"""

FIXED = TWO_INVALID.replace('n="x"', "n=1").replace("max_parallel=0", "max_parallel=2")


@keel.task
def step(n: int = 0) -> int:
    return n


def test_outside_the_loader_the_decorator_raises_at_once() -> None:
    with pytest.raises(SpecError, match="workflow 'alone' is invalid"):

        @keel.workflow(name="alone")
        def alone() -> None:
            step(n="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("package", [False, True])
def test_the_loader_reports_each_invalid_workflow_and_keeps_no_module(
    tmp_path: Path, package: bool
) -> None:
    folder = tmp_path / "flowpkg" if package else tmp_path
    folder.mkdir(exist_ok=True)
    if package:
        (folder / "__init__.py").write_text("")
    path = folder / "twoflows.py"
    path.write_text(TWO_INVALID)
    name = "flowpkg.twoflows" if package else "twoflows"
    try:
        with pytest.raises(InvalidWorkflowsError) as raised:
            load_all(str(path))
        assert [error.workflow for error in raised.value.errors] == ["a", "b"]
        assert "max_parallel" in str(raised.value.errors[1])
        assert len(raised.value.issues) == 2
        assert name not in sys.modules  # a fixed file is imported afresh
        path.write_text(FIXED)
        assert sorted(item.spec.name for item in load_all(str(path))) == ["a", "b"]
    finally:
        for module in (name, "flowpkg"):
            sys.modules.pop(module, None)
