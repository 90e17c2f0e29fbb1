"""``keel init`` and ``keel templates`` as a user runs them: one real ``python -m keel``
subprocess per command, in a fresh folder per test.

Every template is generated, checked with ``keel validate`` and run with ``keel run`` on
its sample input, offline: the runs go to the embedded SQLite database the project's
folder gets (``.keel/keel.db``), and the ticket-routing template's model step asks keel's
stub model server (real HTTP on the loopback). The slow tests run what a user runs next:
``pytest`` inside a generated project, and mypy (strict) over each template's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keel import testing as keel_testing
from keel.llm.stub_server import StubServer

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 120
NAMES = ["onboarding", "document-intake", "nightly-report", "incident-response",
         "ticket-routing"]  # fmt: skip
#: a part of each template's output on its sample input: (output key, what it holds)
OUTPUTS: dict[str, tuple[str, Any]] = {
    "onboarding": ("message", "msg-acct-ada"),
    "document-intake": ("index_id", "idx:s3://intake/invoice-0042.txt:3"),
    "nightly-report": ("report", "2026-01-15: total 1232.50, check S-3"),
    "incident-response": ("closed", {
        "incident": "INC-7", "page": "no page: minor incident", "notice": "notice-INC-7",
        "mitigation": "rolled checkout back from checkout@1.4.2", "resolved_by": "automation",
    }),
    "ticket-routing": ("routed", {"ticket": "T-1042", "queue": "billing-team"}),
}  # fmt: skip


@dataclass(frozen=True)
class Keel:
    """``keel`` run in ``cwd``, with this checkout's keel and no database nor secrets
    set: a project gets the default database, ``.keel/keel.db`` of its folder."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "keel", *args],
            cwd=cwd or self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = self(*args, cwd=cwd)
        assert result.returncode == 0, f"keel {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def json(self, *args: str, cwd: Path | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", cwd=cwd).stdout)


@pytest.fixture
def keel(tmp_path: Path) -> Keel:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KEEL_DATABASE_URL", "KEEL_SERVER_URL", "KEEL_LLM_",
                                "KEEL_SECRET"))}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "80"
    return Keel(tmp_path, env)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def listed(keel: Keel) -> dict[str, dict[str, Any]]:
    return {template["name"]: template for template in keel.json("templates")}


def test_templates_lists_each_with_what_it_shows(keel: Keel) -> None:
    templates: list[dict[str, Any]] = keel.json("templates")

    assert [template["name"] for template in templates] == NAMES
    assert [template["default"] for template in templates] == [True] + [False] * 4
    for template in templates:
        assert template["description"], template["name"]
        assert template["features"], template["name"]
        files = set(template["files"])
        assert {"README.md", "keel.toml", "conftest.py", template["workflow"],
                template["input"]} <= files, template["name"]  # fmt: skip
        assert any(name.startswith("tests/test_") for name in files), template["name"]
        assert "template.toml" not in files
    assert any(template["workflow"].endswith(".yaml") for template in templates)


def test_templates_for_people_fits_80_columns_piped(keel: Keel) -> None:
    shown = keel.ok("templates").stdout

    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    assert shown.startswith("onboarding (default)\n")
    for name in NAMES:
        assert f"\n{name}\n" in shown or shown.startswith(name)
    assert "shows: YAML workflow, schedule trigger" in " ".join(shown.split())


@pytest.mark.parametrize("name", NAMES)
def test_a_new_project_validates_and_runs_offline(
    keel: Keel, tmp_path: Path, stub: StubServer, name: str
) -> None:
    template = listed(keel)[name]
    created = keel.json("init", "project", "--template", name)
    project = tmp_path / "project"

    assert created["template"] == name
    assert created["directory"] == str(project)
    assert sorted(created["written"]) == sorted(template["files"])
    assert created["skipped"] == []
    for file in template["files"]:
        assert (project / file).is_file(), file

    workflow, sample = template["workflow"], template["input"]
    checked = keel.ok("validate", workflow, cwd=project)
    assert "is valid" in checked.stdout
    env = {**keel.env, "KEEL_LLM_LOCAL_BASE_URL": stub.url}  # provider "local": the stub
    ran = Keel(project, env).ok("run", workflow, "--input", f"@{sample}", "--quiet")
    key, expected = OUTPUTS[name]
    output = json.loads(ran.stdout)
    if isinstance(expected, dict):
        assert {k: output[key][k] for k in expected} == expected
    else:
        assert output[key] == expected
    assert (project / ".keel" / "keel.db").is_file()  # the default database, in the project
    assert bool(stub.requests) == (name == "ticket-routing")
    if name in BUILT_IN_STEPS:
        (run_,) = keel.json("runs", cwd=project)
        history = keel.ok("history", run_["id"], "--json", cwd=project).stdout
        ended = {(e["node"], e["kind"]): e for e in map(json.loads, history.splitlines())
                 if e.get("node") and e["kind"] in ("node_succeeded", "node_failed",
                                                    "node_skipped")}  # fmt: skip
        for node, kind in BUILT_IN_STEPS[name].items():
            assert (node, kind) in ended, f"{node} {kind}: {sorted(ended)}"


#: how each template's built-in steps end on its sample input, offline: the report's
#: database is an SQLite file of the project and it sends no mail unless asked; the
#: incident's chat has no secrets (none set) and the run goes on without it
BUILT_IN_STEPS = {
    "nightly-report": {"prepare": "node_succeeded", "sample_sales": "node_succeeded",
                       "fetch_sales": "node_succeeded", "send_report": "node_skipped"},
    "incident-response": {"notify_chat": "node_failed"},
}  # fmt: skip


def test_init_prints_three_next_steps_at_80_columns(keel: Keel, tmp_path: Path) -> None:
    result = keel.ok("init", "my project", "-t", "document-intake")
    lines = result.stdout.splitlines()

    assert lines[0] == "Wrote 8 files of the document-intake template into my project."
    start = lines.index("Next steps:")
    assert lines[start + 1 : start + 4] == [
        "  cd 'my project'",
        "  keel run intake.py --input @input.json",
        "  python -m pytest",
    ]
    assert all(len(line) <= 80 for line in lines), result.stdout
    assert (tmp_path / "my project" / "intake.py").is_file()


def test_init_in_the_current_folder_with_the_default_template(keel: Keel, tmp_path: Path) -> None:
    folder = tmp_path / "here"
    folder.mkdir()

    result = keel.ok("init", cwd=folder)

    assert "of the onboarding template into this folder" in result.stdout
    assert "  keel validate onboarding.py\n" in result.stdout  # no cd: already there
    assert (folder / "onboarding.py").is_file()
    assert (folder / "tests" / "test_onboarding.py").is_file()


def test_a_folder_that_is_not_empty_is_refused(keel: Keel, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine", encoding="utf-8")

    result = keel("init", "project")

    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert "project is not empty (notes.txt)" in said
    assert "--force" in said
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt"]


def test_force_adds_what_is_missing_and_lists_what_it_skipped(keel: Keel, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "README.md").write_text("my own readme\n", encoding="utf-8")
    (project / "keel.toml").write_text('modules = ["mine.py"]\n', encoding="utf-8")

    created = keel.json("init", "project", "--force")

    assert created["skipped"] == ["README.md", "keel.toml"]
    assert "onboarding.py" in created["written"]
    assert "README.md" not in created["written"]
    assert (project / "README.md").read_text(encoding="utf-8") == "my own readme\n"
    assert (project / "keel.toml").read_text(encoding="utf-8") == 'modules = ["mine.py"]\n'
    assert (project / "tests" / "test_onboarding.py").is_file()

    again = keel.ok("init", "project", "--force")  # everything is there now
    said = " ".join(again.stdout.split())
    assert "Wrote 0 files of the onboarding template into project." in said
    assert "Skipped 7 files that exist (left as they were): .gitignore, README.md," in said
    assert all(len(line) <= 80 for line in again.stdout.splitlines()), again.stdout


def test_an_unknown_template_is_refused_with_the_names(keel: Keel, tmp_path: Path) -> None:
    result = keel("init", "project", "--template", "onbaording")

    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert ("no template 'onbaording' (did you mean 'onboarding'?): the templates are "
            + ", ".join(NAMES)) in said  # fmt: skip
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "project").exists()


def test_a_file_in_place_of_the_folder_is_refused(keel: Keel, tmp_path: Path) -> None:
    (tmp_path / "project").write_text("", encoding="utf-8")

    result = keel("init", "project")

    assert result.returncode == 2
    assert "project is a file: give a folder for the new project" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(
    not hasattr(keel_testing, "run"),
    reason="keel.testing.run is not there yet: the generated tests are written against it",
)
@pytest.mark.parametrize(
    ("name", "passed"), [("document-intake", 5), ("nightly-report", 6), ("incident-response", 6)]
)
def test_a_generated_projects_own_tests_pass(
    keel: Keel, tmp_path: Path, name: str, passed: int
) -> None:
    """Offline: the built-in steps that would reach another system (the incident's chat
    webhook, the report's e-mail) are stubbed; the report's sql steps run for real on an
    SQLite file of each test's own."""
    keel.ok("init", "project", "--template", name)
    project = tmp_path / "project"

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=keel.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{passed} passed" in result.stdout
    if name == "nightly-report":  # the tests used databases of their own
        assert (project / "reports.db").stat().st_size == 0


@pytest.mark.slow
@pytest.mark.timeout(900)  # mypy over keel's code once, cold: minutes on a busy machine
def test_the_templates_code_is_clean_under_mypy_strict(keel: Keel, tmp_path: Path) -> None:
    """Each template is a project of its own (keel's own mypy check leaves them out),
    checked one after the other with one cache. Their tests are checked too once
    ``keel.testing.run`` is there."""
    env = {**keel.env, "MYPYPATH": str(ROOT)}
    for name in NAMES:
        project = tmp_path / name
        keel.ok("init", name, "--template", name)
        files = [p.name for p in project.glob("*.py") if p.name != "conftest.py"]
        if hasattr(keel_testing, "run"):
            files += [f"tests/{p.name}" for p in project.glob("tests/*.py")]

        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
             "--cache-dir", str(ROOT / ".mypy_cache" / "templates"), *files],
            cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip

        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
