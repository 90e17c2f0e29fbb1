"""The project templates of ``keel init`` and their copying (``keel.cli.scaffold``): what
each template holds, the default, and the rules of ``create``: nothing into a folder
that is not empty unless forced, never an overwrite, every refusal before any write."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from keel.cli.init_commands import next_steps
from keel.cli.scaffold import META, TEMPLATES, Template, create, find, templates
from keel.errors import InputError

ALL = templates()


def ids(template: Template) -> str:
    return template.name


def test_the_simplest_template_is_the_default() -> None:
    assert find(None).name == "onboarding"
    assert ALL[0].name == "onboarding"
    assert [t.order for t in ALL] == sorted(t.order for t in ALL)


def test_an_unknown_name_lists_every_template() -> None:
    with pytest.raises(InputError) as raised:
        find("intake")
    names = ", ".join(t.name for t in ALL)
    assert str(raised.value) == (
        f"no template 'intake': the templates are {names} (see `keel templates`)"
    )


def test_one_template_at_least_is_yaml_and_one_has_a_model_step() -> None:
    assert any(t.workflow.endswith(".yaml") for t in ALL)
    assert any("keel.llm.step(" in (t.folder / t.workflow).read_text() for t in ALL)


@pytest.mark.parametrize("template", ALL, ids=ids)
def test_a_template_holds_a_whole_project(template: Template) -> None:
    files = template.files()
    for needed in ("README.md", "keel.toml", "conftest.py", ".gitignore", template.workflow):
        assert needed in files
    assert META not in files
    tests = [name for name in files if re.fullmatch(r"tests/test_\w+\.py", name)]
    assert tests, "no tests"
    for test in tests:
        assert "from keel.testing import run" in (template.folder / test).read_text()
    sample = json.loads((template.folder / template.input).read_text(encoding="utf-8"))
    assert isinstance(sample, dict)
    toml = tomllib.loads((template.folder / "keel.toml").read_text(encoding="utf-8"))
    assert toml["modules"] == [template.workflow]


@pytest.mark.parametrize("template", ALL, ids=ids)
def test_its_readme_says_what_to_run_and_how_to_test(template: Template) -> None:
    readme = (template.folder / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# ")
    assert template.run_command() in " ".join(readme.split())
    testing = readme.split("## Test it\n", 1)[1]
    # `pip install keelflow` does not bring pytest; `python -m` runs the one beside keel
    assert "```console\npip install pytest\npython -m pytest\n```" in testing


def test_bytecode_and_the_description_are_never_copied(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    folder = root / "tiny"
    (folder / "__pycache__").mkdir(parents=True)
    (folder / "__pycache__" / "flow.cpython-311.pyc").write_bytes(b"\0")
    (folder / "flow.py").write_text("x = 1\n", encoding="utf-8")
    (folder / "in.json").write_text("{}", encoding="utf-8")
    (folder / META).write_text(
        'description = "d"\nfeatures = ["f"]\nworkflow = "flow.py"\ninput = "in.json"\n',
        encoding="utf-8",
    )

    template = find("tiny", root)
    created = create(template, tmp_path / "project")

    assert template.files() == ["flow.py", "in.json"]
    assert created.written == ("flow.py", "in.json")
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == ["flow.py", "in.json"]


def test_create_copies_the_files_byte_for_byte_into_a_new_folder(tmp_path: Path) -> None:
    template = find("incident-response")
    target = tmp_path / "a" / "b"

    created = create(template, target)

    assert list(created.written) == template.files()
    assert created.skipped == ()
    for name in template.files():
        assert (target / name).read_bytes() == (template.folder / name).read_bytes()


def test_an_empty_folder_is_fine(tmp_path: Path) -> None:
    created = create(find(None), tmp_path)
    assert "onboarding.py" in created.written


def test_a_folder_that_is_not_empty_is_refused_untouched(tmp_path: Path) -> None:
    for n in range(7):
        (tmp_path / f"f{n}.txt").write_text("", encoding="utf-8")

    said = r"is not empty \(f0.txt, f1.txt, f2.txt, f3.txt, f4.txt, \.\.\.\): give a new"
    with pytest.raises(InputError, match=said + " or empty folder, or add --force"):
        create(find(None), tmp_path)
    assert len(list(tmp_path.iterdir())) == 7


def test_force_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "onboarding.py").write_text("# mine\n", encoding="utf-8")

    created = create(find(None), tmp_path, force=True)

    assert created.skipped == ("onboarding.py",)
    assert "tests/test_onboarding.py" in created.written
    assert (tmp_path / "onboarding.py").read_text(encoding="utf-8") == "# mine\n"


def test_a_file_where_the_template_has_a_folder_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    (tmp_path / "tests").write_text("", encoding="utf-8")

    with pytest.raises(InputError, match="tests is a file, where the template has a folder"):
        create(find(None), tmp_path, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["tests"]


def test_next_steps_go_into_the_project_or_check_it_when_it_is_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    template = find("nightly-report")

    assert next_steps(template, Path("reports")) == [
        "cd reports", "keel run report.yaml --input @input.json", "python -m pytest",
    ]  # fmt: skip
    assert next_steps(template, Path(".")) == [
        "keel validate report.yaml", "keel run report.yaml --input @input.json", "python -m pytest",
    ]  # fmt: skip
    assert next_steps(template, tmp_path / "two words")[0] == "cd 'two words'"


def test_the_templates_are_package_data_of_keel() -> None:
    assert TEMPLATES.parent.name == "cli"
    assert TEMPLATES.parent.parent.name == "keel"
    assert not (TEMPLATES / "__init__.py").exists()  # data, not a package of keel


def test_the_current_folder_is_named_so_in_a_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")

    with pytest.raises(InputError, match=r"^the current folder is not empty \(notes.txt\)"):
        create(find(None), Path("."))
