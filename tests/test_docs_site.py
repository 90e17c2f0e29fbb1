"""The documentation site: ``mkdocs build --strict`` passes, every page is in the nav, the
generated reference pages list every command and every route, the README's links
resolve, and the tutorial's workflow runs as the tutorial says.

The build is the real one (mkdocs and its material theme, the hook in mkdocs_hooks/),
in a subprocess, offline, into a temporary folder. mkdocs.yml turns every finding of
mkdocs' validation into a warning (pages left out of the nav, links to missing pages or
anchors), and strict mode fails the build on any warning.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: pages the hook makes at build time; no file of docs/ holds them
GENERATED = {"reference/cli.md", "reference/api.md"}


@dataclass(frozen=True)
class Build:
    site: Path
    returncode: int
    output: str


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["NO_MKDOCS_2_WARNING"] = "1"  # material's notice about its successor
    return env


def _offline() -> list[str]:
    """A prefix that runs a command with no network (a network namespace of its own,
    with only a loopback that is down), where this machine allows it: the build must
    fetch nothing. Elsewhere none, and the build runs as is."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True, check=False)
    return [unshare, "-n"] if probe.returncode == 0 else []


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    import importlib.util

    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        missing = 'mkdocs is not installed (pip install -e ".[docs]")'
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    site = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict",
               "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)]  # fmt: skip
    result = subprocess.run(
        _offline() + command,
        cwd=tmp_path_factory.mktemp("cwd"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    return Build(site, result.returncode, result.stdout + result.stderr)


def test_the_site_builds_in_strict_mode(build: Build) -> None:
    assert build.returncode == 0, build.output
    assert "WARNING" not in build.output, build.output
    assert (build.site / "index.html").is_file()
    assert (build.site / "tutorial" / "first-workflow" / "index.html").is_file()
    pages = "".join(page.read_text(encoding="utf-8") for page in build.site.rglob("*.html"))
    assert "fonts.googleapis.com" not in pages  # theme.font: false


def test_code_in_tables_shows_its_pipes(build: Build) -> None:
    """`a\\|b` in a table (as GitHub needs it) shows a|b on the site, not a\\|b."""
    assert build.returncode == 0, build.output
    escaped = [
        page.relative_to(build.site).as_posix()
        for page in build.site.rglob("*.html")
        if re.search(r"<code>[^<]*\\\|", page.read_text(encoding="utf-8"))
    ]
    assert escaped == []
    workflows = (build.site / "workflows" / "index.html").read_text(encoding="utf-8")
    assert "<code>|</code>" in workflows  # "combine with &, |, ~"


def test_no_page_is_left_out_of_the_nav(build: Build) -> None:
    assert build.returncode == 0, build.output
    assert 'not included in the "nav"' not in build.output, build.output
    in_nav = set(_nav_pages(_config()["nav"]))
    on_disk = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    assert on_disk - in_nav == set(), "pages missing from the nav in mkdocs.yml"
    assert in_nav - on_disk == GENERATED, "nav entries with no page"


def test_the_reference_pages_are_not_committed() -> None:
    for page in GENERATED:
        assert not (DOCS / page).exists(), f"docs/{page} is generated at build time"


def test_the_cli_reference_lists_every_command(build: Build) -> None:
    import typer.main

    from keel.cli.app import app

    page = (build.site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "keel run" in page
    assert "keel audit export" in page
    assert "--idempotency-key" in page  # an option of keel start, with its help
    names = list(_command_names(typer.main.get_command(app), "keel"))
    assert len(names) > 40
    missing = [name for name in names if f'id="{name.replace(" ", "-")}"' not in page]
    assert missing == []


def test_the_api_reference_lists_every_route(build: Build, tmp_path: Path) -> None:
    from keel.server import create_app
    from keel.store.sqlite import SQLiteStore

    page = (build.site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "/runs/{run_id}" in page
    assert "/runs/{run_id}/approvals/{node}/approve" in page
    store = SQLiteStore(tmp_path / "keel.db")
    try:
        paths = create_app(store, rate=0).openapi()["paths"]
    finally:
        store.close()
    assert len(paths) > 30
    assert [path for path in paths if f"<code>{path}</code>" not in page] == []


def test_the_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    anchors = {_slug(title) for title in re.findall(r"^#+ (.+)$", readme, re.MULTILINE)}
    wrong = []
    for target in re.findall(r"\]\(([^)\s]+)\)", readme):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        missing = not (ROOT / path).exists() if path else anchor not in anchors
        if missing:
            wrong.append(target)
        elif path.endswith(".md") and anchor:
            text = (ROOT / path).read_text(encoding="utf-8")
            if anchor not in {_slug(t) for t in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}:
                wrong.append(target)
    assert wrong == []


def test_the_readme_keeps_its_quick_start() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e . && keel run examples/claims.py -i claim=@examples/claim.json" in readme
    assert 'pip install -e ".[test]" && python -m pytest' in readme
    assert "mkdocs serve" in readme


# --- the tutorial, as written -----------------------------------------------------------


def test_the_tutorials_first_workflow_runs(tmp_path: Path) -> None:
    (tmp_path / "orders.py").write_text(_first_workflow(), encoding="utf-8")
    validated = _keel(tmp_path, "validate", "orders.py")
    assert "workflow 'order' is valid (4 nodes" in validated.stdout
    shipped = _keel(tmp_path, "run", "orders.py", "-i", "customer=ada", "-i", "item=tea",
                    "-i", "quantity=3")  # fmt: skip
    assert json.loads(shipped.stdout)["result"].startswith("shipped 3 x tea (payment-")
    skipped = _keel(tmp_path, "run", "orders.py", "-i", "customer=bob", "-i", "item=tea",
                    "-i", "quantity=20")  # fmt: skip
    assert json.loads(skipped.stdout) == {"result": None}


def test_the_tutorials_approval_waits_for_a_decision(tmp_path: Path) -> None:
    """Step 3: the workflow of the page replaces step 1's; a small order skips the review,
    a large one waits until `keel approve`, as the page shows."""
    first = _first_workflow()
    workflow = _code_blocks(DOCS / "tutorial" / "approvals.md")[0]
    code = first[: first.index("@keel.workflow")] + workflow
    (tmp_path / "orders.py").write_text(code, encoding="utf-8")
    small = _keel(tmp_path, "run", "orders.py", "-i", "customer=eve", "-i", "item=tea",
                  "-i", "quantity=2")  # fmt: skip
    assert re.search(r"\s\W review +skipped \(when", small.stderr), small.stderr
    started = _keel(tmp_path, "run", "orders.py", "-i", "customer=fay", "-i", "item=tea",
                    "-i", "quantity=8", "--detach")  # fmt: skip
    run = started.stdout.strip()
    waiting = _wait_for(tmp_path, lambda: _approvals(tmp_path), "the approval")
    assert [(a["run_id"], a["node"], a["description"]) for a in waiting] == [
        (run, "review", "fay orders 8 x tea")
    ]
    _keel(tmp_path, "approve", run[:8], "review", "--comment", "known customer", "--by", "ann")
    shown = _wait_for(tmp_path, lambda: _ended(tmp_path, run), "the run's end")
    assert shown["status"] == "succeeded"


def _first_workflow() -> str:
    return _code_blocks(DOCS / "tutorial" / "first-workflow.md")[0]


def _code_blocks(page: Path) -> list[str]:
    """The ``python title="orders.py"`` blocks of a page, in order."""
    text = page.read_text(encoding="utf-8")
    return re.findall(r'```python title="orders.py"[^\n]*\n(.*?)```', text, re.DOTALL)


def _keel(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env()
    env.pop("KEEL_DATABASE_URL", None)
    env.pop("KEEL_SERVER_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "keel", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _approvals(folder: Path) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = json.loads(_keel(folder, "approvals", "--json").stdout)
    return found or None


def _ended(folder: Path, run: str) -> dict[str, Any] | None:
    shown: dict[str, Any] = json.loads(_keel(folder, "show", run, "--json").stdout)
    return shown if shown["status"] in ("succeeded", "failed", "cancelled") else None


def _wait_for(folder: Path, probe: Any, what: str) -> Any:
    """Poll ``probe`` until it gives something (a background process moves the run)."""
    for _ in range(200):
        found = probe()
        if found is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no sign of {what} in {folder}")


# --- helpers ----------------------------------------------------------------------------


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return loaded


def _nav_pages(entries: Any) -> Iterator[str]:
    if isinstance(entries, str):
        yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from _nav_pages(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from _nav_pages(value)


def _command_names(group: Any, prefix: str) -> Iterator[str]:
    for name, command in getattr(group, "commands", {}).items():
        if getattr(command, "hidden", False):
            continue
        if getattr(command, "commands", None):
            yield from _command_names(command, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}"


def _slug(title: str) -> str:
    """A heading's anchor as GitHub and mkdocs' toc make it (for the headings used here)."""
    text = re.sub(r"[`*]", "", title.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
