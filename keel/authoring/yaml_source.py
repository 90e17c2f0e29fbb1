"""Workflows written in YAML: the same ``WorkflowSpec`` data, with line and column numbers.

PyYAML's composer keeps a position for every node; we build the plain data ourselves
from that tree so each value's path (``nodes.2.args.doc``) maps to where it was written.
Errors then read ``flow.yaml:14:9: node 'extract', args.doc: ...``. Duplicate keys,
which YAML loaders silently overwrite, are errors here.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from keel.errors import SpecError, SpecIssue
from keel.spec.canonical import canonical_data
from keel.spec.data import MAX_DEPTH
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.spec.validate import parse_and_validate

Loc = tuple[str | int, ...]
#: the most values one document may hold once its aliases are expanded: a workflow has
#: hundreds; a few nested aliases ("billion laughs") would otherwise expand to billions
MAX_VALUES = 100_000


class _RefusedError(Exception):
    """A document keel will not build: too large, too deep, or an alias inside itself."""

    def __init__(self, message: str, mark: yaml.Mark) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark

    def issue(self, source: str) -> SpecIssue:
        issue = SpecIssue(self.message, code="too_large")
        return issue.located(source, self.mark.line + 1, self.mark.column + 1)


@dataclass
class Positions:
    """Where each value (and each mapping key) of a YAML document was written."""

    source: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def locate(self, issue: SpecIssue) -> SpecIssue:
        if issue.source is not None:
            return issue
        loc = issue.loc
        if issue.code == "extra_forbidden" and loc in self.keys:
            return issue.located(self.source, *self.keys[loc])
        for end in range(len(loc), -1, -1):
            found = self.values.get(loc[:end])
            if found is not None:
                return issue.located(self.source, *found)
        return issue.located(self.source, None, None)


class _Builder:
    def __init__(self, source: str) -> None:
        self.positions = Positions(source)
        self.constructor = yaml.SafeLoader("")
        self.issues: list[SpecIssue] = []

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        """The plain data of ``node`` (whose size ``check_size`` has bounded)."""
        if len(loc) > MAX_DEPTH:
            raise _RefusedError(f"values nested more than {MAX_DEPTH} levels deep", node.start_mark)
        if isinstance(node, yaml.CollectionNode):
            return self._collection(node, loc)
        self.positions.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, TypeError) as exc:  # e.g. ``!!int abc``
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {node.tag}: {exc}", node.start_mark
            ) from None

    def _collection(self, node: yaml.CollectionNode, loc: Loc) -> Any:
        self.positions.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            # keys written here may override keys merged in with ``<<: *anchor``; only
            # a key written twice here is a duplicate
            own = {id(key) for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"}
            self.constructor.flatten_mapping(node)
            result: dict[Any, Any] = {}
            written: set[Any] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, "a key must be text, not a list or mapping",
                        key_node.start_mark,
                    )  # fmt: skip
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int):
                    key = str(key)
                where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if id(key_node) in own:
                    duplicate = key in written
                    written.add(key)
                else:
                    duplicate = False
                if duplicate:
                    self.issues.append(
                        SpecIssue(
                            f"duplicate key '{key}'", loc=(*loc, key), code="duplicate_key"
                        ).located(self.positions.source, *where)
                    )
                self.positions.keys[(*loc, key)] = where
                result[key] = self.build(value_node, (*loc, key))
            return result
        return [self.build(item, (*loc, index)) for index, item in enumerate(node.value)]


def check_size(root: yaml.Node) -> None:
    """Refuse a document that would expand without end before anything expands it.

    Aliases (and ``<<`` merges) share nodes, so a few lines can stand for billions of
    values; counting each node once, with its size remembered, costs only the lines
    written. An alias inside the value it names would never end at all.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if not isinstance(node, yaml.CollectionNode):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise _RefusedError("a YAML alias refers to itself (to a value containing it)",
                                node.start_mark)  # fmt: skip
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key) + size(value) for key, value in node.value)
        else:
            total = 1 + sum(size(item) for item in node.value)
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    try:
        total = size(root)
    except RecursionError:
        raise _RefusedError(f"values nested more than {MAX_DEPTH} levels deep",
                            root.start_mark) from None  # fmt: skip
    if total > MAX_VALUES:
        raise _RefusedError(
            f"the document expands to {total:,} values (aliases of aliases?); a workflow "
            f"needs far fewer than {MAX_VALUES:,}", root.start_mark,
        )  # fmt: skip


def _yaml_issue(exc: yaml.MarkedYAMLError, source: str) -> SpecIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = " ".join(part for part in (exc.context, exc.problem) if part) or str(exc)
    issue = SpecIssue(f"YAML syntax error: {problem}", code="yaml_syntax")
    if mark is None:
        return issue.located(source, None, None)
    return issue.located(source, mark.line + 1, mark.column + 1)


@dataclass(frozen=True)
class YamlDocument:
    data: Any
    positions: Positions
    #: problems found while reading (duplicate keys), reported with validation's own
    issues: tuple[SpecIssue, ...] = ()


def read_documents(text: str, source: str) -> list[YamlDocument]:
    """Parse YAML text into data with positions; syntax errors become ``SpecError``."""
    try:
        roots = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        raise SpecError([_yaml_issue(exc, source)], workflow=source) from None
    except RecursionError:  # the parser recurses once per level of nesting
        issue = SpecIssue(f"values nested more than {MAX_DEPTH} levels deep", code="too_large")
        raise SpecError([issue.located(source, None, None)], workflow=source) from None
    except yaml.YAMLError as exc:  # e.g. characters YAML does not allow
        issue = SpecIssue(f"YAML error: {exc}", code="yaml_syntax")
        raise SpecError([issue.located(source, None, None)], workflow=source) from None
    documents = []
    for root in roots:
        if root is None:
            continue
        builder = _Builder(source)
        try:
            check_size(root)
            data = builder.build(root, ())
        except yaml.MarkedYAMLError as exc:
            raise SpecError([_yaml_issue(exc, source)], workflow=source) from None
        except _RefusedError as exc:
            raise SpecError([exc.issue(source)], workflow=source) from None
        documents.append(YamlDocument(data, builder.positions, tuple(builder.issues)))
    return documents


def spec_from_document(
    document: YamlDocument,
    *,
    resolve_tasks: bool = False,
    allow: Collection[str] = (),
    registry: SpecRegistry | None = None,
) -> WorkflowSpec:
    """Validate one document fully; every issue carries its file, line and column. A
    subworkflow node is checked against its child when ``registry`` has it."""
    if not isinstance(document.data, dict):
        issue = SpecIssue("a workflow document must be a mapping with 'name' and 'nodes'")
        raise SpecError([document.positions.locate(issue)], workflow=document.positions.source)
    issues = list(document.issues)
    workflow: str | None = document.positions.source
    try:
        spec = parse_and_validate(
            document.data, source=document.positions.source, resolve_tasks=resolve_tasks,
            allow=allow, registry=registry,
        )  # fmt: skip
        workflow = spec.name
    except SpecError as exc:
        issues += exc.issues
        workflow = exc.workflow
    if issues:
        located = [document.positions.locate(issue) for issue in issues]
        raise SpecError(sorted(located, key=_position), workflow=workflow)
    return spec


def _position(issue: SpecIssue) -> tuple[int, int]:
    return (issue.line or 0, issue.column or 0)


def load_yaml(
    path: Path,
    *,
    resolve_tasks: bool = False,
    allow: Collection[str] = (),
    registry: SpecRegistry | None = None,
) -> list[WorkflowSpec]:
    """Every workflow of a YAML file (one per ``---`` document). A document's
    subworkflow nodes are checked against the children that ``registry`` has and those
    that the documents before it define."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([SpecIssue(f"cannot read {path}: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        issue = SpecIssue(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8")
        raise SpecError([issue.located(str(path), None, None)]) from None
    return load_yaml_text(
        text, str(path), resolve_tasks=resolve_tasks, allow=allow, registry=registry
    )


def load_yaml_text(
    text: str,
    source: str,
    *,
    resolve_tasks: bool = False,
    allow: Collection[str] = (),
    registry: SpecRegistry | None = None,
) -> list[WorkflowSpec]:
    """``load_yaml`` of text that came from ``source`` (a file, or ``api`` for a
    definition posted to the server); JSON is YAML, so a JSON definition loads too."""
    path = source
    known = registry if registry is not None else SpecRegistry()
    specs: list[WorkflowSpec] = []
    issues: list[SpecIssue] = []
    invalid: set[str | None] = set()  # the workflows the issues belong to
    named: dict[str, tuple[int, int] | None] = {}  # where each name was first written
    for document in read_documents(text, source):
        try:
            spec = spec_from_document(
                document, resolve_tasks=resolve_tasks, allow=allow, registry=known
            )
        except SpecError as exc:
            issues.extend(exc.issues)
            invalid.add(exc.workflow)
            continue
        where = document.positions.values.get(("name",))
        if spec.name in named:
            first = named[spec.name]
            at = f"{path}:{first[0]}" if first else str(path)
            issue = SpecIssue(
                f"workflow name '{spec.name}' is used already at {at}: give each workflow "
                "its own name", loc=("name",), code="duplicate_workflow",
            )  # fmt: skip
            issues.append(document.positions.locate(issue))
            invalid.add(spec.name)
            continue
        named[spec.name] = where
        specs.append(spec)
        known = known.including(spec)
    if issues:
        # the workflow by its name when the problems are all of one (the file is shown
        # with them anyway), else the file
        (one,) = invalid if len(invalid) == 1 else (None,)
        raise SpecError(issues, workflow=one or str(path))
    return specs


def dump_yaml(spec: WorkflowSpec) -> str:
    """A spec as YAML, in the shorthand people write (``${{ }}`` for expressions)."""
    data = canonical_data(spec)
    for dumped in data["nodes"]:
        for name, arg in dumped.get("args", {}).items():
            if "expr" in arg:
                dumped["args"][name] = "${{ " + arg["expr"] + " }}"
            elif isinstance(arg["value"], str) or _ambiguous(arg["value"]):
                dumped["args"][name] = arg
            else:
                dumped["args"][name] = arg["value"]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _ambiguous(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and ("expr" in value or "value" in value)
