"""The project templates of ``keel init`` and how one is copied into a folder.

A template is a folder of ``keel/cli/project_templates/`` (package data: it ships in the
wheel). Its files are the project's files as a user gets them, byte for byte: the
workflow, its tests, ``keel.toml``, a README and sample input. Nothing is rendered into
them, so each is a real file that keel's own tests can lint and run. Beside them,
``template.toml`` says what ``keel templates`` shows (``order``, ``description``,
``features``) and which files ``keel init`` names in its next steps (``workflow``,
``input``, and an optional ``note``); it is not copied.

Invariants: ``create`` never overwrites a file, and writes nothing into a folder that
is not empty unless ``force`` is given; then it adds only the files that are not there
and says which it skipped. Every refusal is checked before the first file is written,
so a refused ``keel init`` leaves the folder as it was. Bytecode caches (a template
imported by a test) are never copied.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from keel.errors import InputError

#: where the templates are, inside the installed package
TEMPLATES = Path(__file__).resolve().with_name("project_templates")
#: the file of a template that describes it (not copied)
META = "template.toml"
#: what is never copied from a template folder
_LEFT_OUT = frozenset({META, "__pycache__", ".pytest_cache", ".mypy_cache", ".keel"})


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    description: str
    #: what of keel it shows, in a few words each
    features: tuple[str, ...]
    #: the file that holds the workflow, and the sample input (relative to the project)
    workflow: str
    input: str
    #: said after the next steps (what ``keel run`` needs first), or ""
    note: str
    folder: Path
    order: int

    def files(self) -> list[str]:
        """The files ``keel init`` writes, relative to the project, in a stable order."""
        found = []
        for path in sorted(self.folder.rglob("*")):
            relative = path.relative_to(self.folder)
            if path.is_file() and not _LEFT_OUT & set(relative.parts) and path.suffix != ".pyc":
                found.append(relative.as_posix())
        return found

    def run_command(self) -> str:
        return f"keel run {self.workflow} --input @{self.input}"


@dataclass(frozen=True, slots=True)
class Created:
    """What ``create`` did: files written and files left as they were (relative)."""

    written: tuple[str, ...]
    skipped: tuple[str, ...]


def _text(meta: dict[str, object], key: str, where: Path, default: str | None = None) -> str:
    value = meta.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{where}: '{key}' must be text")
    return value


def _read(folder: Path) -> Template:
    where = folder / META
    with where.open("rb") as handle:
        meta = tomllib.load(handle)
    features = meta.get("features", [])
    order = meta.get("order", 1000)
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ValueError(f"{where}: 'features' must be a list of text")
    if not isinstance(order, int):
        raise ValueError(f"{where}: 'order' must be a whole number")
    return Template(
        name=folder.name,
        description=_text(meta, "description", where),
        features=tuple(features),
        workflow=_text(meta, "workflow", where),
        input=_text(meta, "input", where),
        note=_text(meta, "note", where, ""),
        folder=folder,
        order=order,
    )


def templates(root: Path = TEMPLATES) -> list[Template]:
    """Every template, the simplest (the default) first."""
    found = [_read(path) for path in root.iterdir() if (path / META).is_file()]
    return sorted(found, key=lambda template: (template.order, template.name))


def find(name: str | None, root: Path = TEMPLATES) -> Template:
    """The template called ``name`` (None: the default); an unknown name is an error that
    lists the names there are."""
    known = templates(root)
    if name is None:
        return known[0]
    for template in known:
        if template.name == name:
            return template
    names = [template.name for template in known]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise InputError(f"no template '{name}'{hint}: the templates are {', '.join(names)} "
                     "(see `keel templates`)")  # fmt: skip


def _named(folder: Path) -> str:
    return "the current folder" if folder == Path() else str(folder)


def _entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def create(template: Template, target: Path, *, force: bool = False) -> Created:
    """Copy ``template``'s files into ``target`` (created if missing). A folder that is
    not empty is refused unless ``force``; with it, files that exist are skipped."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{_named(target)} is a file: give a folder for the new project")
    entries = _entries(target) if target.is_dir() else []
    if entries and not force:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise InputError(
            f"{_named(target)} is not empty ({shown}): give a new or empty folder, or add --force "
            "to add the template's files to it (no file that exists is overwritten)"
        )
    files = template.files()
    skipped = [name for name in files if (target / name).exists()]
    for name in files:  # a file where the template needs a folder: refuse before writing
        for parent in Path(name).parents:
            if (target / parent).exists() and not (target / parent).is_dir():
                raise InputError(f"{target / parent} is a file, where the template has a "
                                 "folder: move it away first")  # fmt: skip
    written = []
    for name in files:
        if name in skipped:
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        with destination.open("xb") as handle:  # "x": never overwrite, even in a race
            handle.write((template.folder / name).read_bytes())
        written.append(name)
    return Created(tuple(written), tuple(skipped))
