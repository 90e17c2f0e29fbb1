"""Where an edit starts: a template (``starters/*.yaml``), or a deployed workflow's
current definition.

The store keeps a deployed definition as data, not as the text it was written in. A
workflow deployed from a YAML file that the server can still read, and that still
gives the deployed version, starts from that text (its comments kept); any other
starts from keel's YAML rendering of the definition (``dump_yaml``), used only when
it loads back to the very same version. A workflow that cannot be written as YAML
(none of today's) can only be edited where it was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from keel.authoring.yaml_source import dump_yaml, load_yaml_text
from keel.errors import KeelError, WorkflowNotFoundError
from keel.server.routes.workflows import MOST_CHARACTERS
from keel.server.service import Service
from keel.store.deployments import Deployment

#: the templates, in the order the page lists them: file stem -> what it shows
TEMPLATES = {
    "chain": "A minimal chain",
    "approval": "An approval flow",
    "fan_out": "A map (fan-out)",
    "scheduled": "A schedule-triggered job",
}
YAML_SUFFIXES = (".yaml", ".yml")
#: the sources of definitions posted as text (the API's, the editor's): YAML or JSON
TEXT_SOURCES = frozenset({"api", "editor"})


@dataclass(frozen=True, slots=True)
class Start:
    """The text an edit starts from, and what the page says about where it came from."""

    text: str
    note: str
    #: False: there is no YAML to edit (``note`` says where to edit it instead)
    editable: bool = True


@cache
def template_text(name: str) -> str:
    """A template's YAML (``KeyError`` for a name not in ``TEMPLATES``)."""
    if name not in TEMPLATES:
        raise KeyError(name)
    folder = resources.files("keel.server.dashboard") / "starters"
    return (folder / f"{name}.yaml").read_text(encoding="utf-8")


def from_template(name: str) -> Start:
    note = (f"Template: {TEMPLATES[name].lower()}. Its tasks (keel_starter:...) stand in "
            "for yours: name your own module's functions.")  # fmt: skip
    return Start(template_text(name), note)


def from_deployed(served: Service, name: str) -> Start:
    """The current definition of the deployed workflow ``name``."""
    history = served.store.deployments(name)
    if not history:
        raise WorkflowNotFoundError(f"no workflow named '{name}' is deployed")
    current = history[-1]
    spec = served.plans.plan(current.version).spec
    about = f"'{name}' version {current.version[:12]}"
    source = current.source or "an unknown source"
    original = _original_text(current)
    if original is not None:
        return Start(original, f"{about}, as written in {source}.")
    text = dump_yaml(spec)
    try:
        again = load_yaml_text(text, "rendering")
    except KeelError:
        again = []
    if [s.version for s in again] != [current.version]:
        note = (f"{about} was deployed from {source} and can only be edited there: it "
                "cannot be written as YAML that gives the same version.")  # fmt: skip
        return Start("", note, editable=False)
    if current.source and not source.endswith(YAML_SUFFIXES) and source not in TEXT_SOURCES:
        return Start(text, f"{about}, deployed from Python ({source}), written here as YAML. "
                     "Deploying makes a new version; the Python stays as it is, and "
                     "deploying it again makes its own version current.")  # fmt: skip
    return Start(text, f"{about}, deployed from {source}, as keel writes it in YAML (the "
                 "text it was deployed with, and its comments, are not kept).")  # fmt: skip


def _original_text(current: Deployment) -> str | None:
    """The YAML file ``current`` was deployed from, when this server can read it and it
    still holds that very version (and nothing else)."""
    source = current.source or ""
    if not source.endswith(YAML_SUFFIXES):
        return None
    path = Path(source)
    try:
        if not path.is_file() or path.stat().st_size > MOST_CHARACTERS:
            return None
        text = path.read_text(encoding="utf-8")
        specs = load_yaml_text(text, source)
    except (OSError, UnicodeDecodeError, KeelError):
        return None
    return text if [s.version for s in specs] == [current.version] else None
