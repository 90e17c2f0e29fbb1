"""Validation of a whole spec: every problem found, never only the first.

Structure (types, ranges, unknown fields) is checked by the pydantic models when data
becomes a ``WorkflowSpec``; ``parse_spec`` turns those errors into ``SpecIssue``s. The
rules that need the whole workflow live here: unique ids, expressions that parse and
refer only to known nodes and names, acyclic dependencies (naming the cycle), join
rules that make sense, child workflows that fit the definitions of the registry given,
and, when ``resolve_tasks`` is set, arguments checked against the real function
signatures and types.
"""

from __future__ import annotations

import difflib
import typing
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from keel.errors import ExpressionError, SpecError, SpecIssue
from keel.spec.callables import (
    ImportPathError,
    Signature,
    is_keel_task,
    not_a_task_message,
    resolve,
    signature_of,
)
from keel.spec.durations import format_duration
from keel.spec.expressions import NODE_FIELDS, ROOT_NAMES, ExpressionInfo, analyze
from keel.spec.graph import (
    DependencyGraph,
    handled_by,
    node_expressions,
    safe_analyze,
    timeout_route,
)
from keel.spec.model import (
    NODE_KINDS,
    AgentNode,
    AnyNode,
    ApprovalNode,
    CallNode,
    ExprArg,
    FailureHandler,
    JoinRule,
    LiteralArg,
    LlmNode,
    MapNode,
    SignalNode,
    SubworkflowNode,
    TaskNode,
    WorkflowSpec,
)
from keel.spec.registry import SpecRegistry
from keel.spec.schedule_checks import schedule_issues
from keel.spec.schemas import (
    Schema,
    mismatch,
    missing_field,
    schema_at,
    schema_problems,
    value_mismatch,
)
from keel.spec.step_nodes import (
    SECRETS,
    TEMPLATE_FIELDS,
    StepNode,
    secret_reference,
    template_strings,
)
from keel.spec.templates import unclosed
from keel.spec.triggers import TRIGGER_VARIABLE

#: lists of discriminated unions, and the tags pydantic puts into error locations
_TAGGED = {"nodes": NODE_KINDS, "triggers": ("schedule", "event", "webhook", "file", "completion")}


def parse_spec(data: Any, *, source: str | None = None) -> WorkflowSpec:
    """Build a spec from plain data, raising ``SpecError`` with every structural issue."""
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        issues = [pydantic_issue(error, data) for error in exc.errors(include_url=False)]
        name = data.get("name") if isinstance(data, dict) else None
        raise SpecError(issues, workflow=name if isinstance(name, str) else source) from None


def parse_and_validate(
    data: Any,
    *,
    source: str | None = None,
    resolve_tasks: bool = False,
    signatures: Mapping[str, Signature] | None = None,
    allow: Collection[str] = (),
    registry: SpecRegistry | None = None,
) -> WorkflowSpec:
    """Build a spec from plain data and validate it, raising ``SpecError`` with every
    problem: the structural ones, and the semantic ones of whatever part of the spec is
    sound (``keel.spec.partial``), so one fix-and-retry shows them all."""
    from keel.spec.partial import sound_part

    try:
        spec = parse_spec(data, source=source)
    except SpecError as exc:
        issues = list(exc.issues)
        part = sound_part(data, issues)
        if part is not None:
            issues += validate(part, resolve_tasks=resolve_tasks, signatures=signatures,
                               allow=allow, registry=registry)  # fmt: skip
        raise SpecError(issues, workflow=exc.workflow) from None
    return check(
        spec, resolve_tasks=resolve_tasks, signatures=signatures, allow=allow, registry=registry
    )


def pydantic_issue(error: Any, data: Any = None) -> SpecIssue:
    """One of pydantic's errors (``ValidationError.errors()``) as a spec issue: its
    location in ``data`` without pydantic's union tags, its message without pydantic's
    prefixes; ``data``: what was validated, to name the node."""
    loc: list[str | int] = []
    raw = tuple(error["loc"])
    for position, part in enumerate(raw):
        # discriminated unions add the tag after the item's index; it is not part of the data
        # (and only the tag: a node's field ``task`` comes right after the tag ``task``)
        if (
            position == 2
            and raw[0] in _TAGGED
            and isinstance(raw[1], int)
            and part in _TAGGED[raw[0]]
        ):
            continue
        if isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        # an argument's union tag (``expr``/``value``) follows ``args.<name>``
        if position == 6 and raw[3] == "args" and part in ("expr", "value"):
            continue
        loc.append(part)
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field '{loc[-1]}'" if loc else "unknown field"
        if loc:
            message += _known_fields(raw[:-1], str(loc[-1]))
    elif error["type"] == "unknown_node_kind" and isinstance(error.get("input"), dict):
        kind = error["input"].get("kind")
        if isinstance(kind, str):
            close = difflib.get_close_matches(kind, NODE_KINDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            message = message.replace("unknown node kind:", f"unknown node kind '{kind}'{hint}:")
    elif error["type"] == "missing":
        message = f"missing required field '{loc[-1]}'" if loc else "missing required field"
    return SpecIssue(
        message=message, loc=tuple(loc), node=_node_id_at(data, loc), code=error["type"]
    )


def _known_fields(raw: tuple[Any, ...], name: str) -> str:
    """For an unknown field ``name`` of the model at pydantic's location ``raw``: the
    field it is likely a typo of, else the fields there are (a short list)."""
    model: Any = WorkflowSpec
    tagged: dict[str, Any] | None = None
    for part in raw:
        if isinstance(part, int):
            continue  # an item of a list: what it holds is known from the list's field
        if tagged is not None and part in tagged:
            model, tagged = tagged[part], None  # the kind pydantic chose for the item
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return ""
        models = _models_in(fields[part].annotation)
        tagged = _by_kind(models)
        model = models[0] if len(models) == 1 else None
        if model is None and tagged is None:
            return ""
    known = [field for field in getattr(model, "model_fields", {}) if field != "kind"]
    if not known:
        return ""
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (known: {', '.join(known)})" if len(known) <= 12 else ""


def _models_in(annotation: Any) -> list[Any]:
    """The pydantic models an annotation holds (``X | None``, ``tuple[A | B, ...]``)."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return [annotation]
    return [model for inner in typing.get_args(annotation) for model in _models_in(inner)]


def _by_kind(models: list[Any]) -> dict[str, Any] | None:
    """The models of a union told apart by their ``kind``, by kind (else None)."""
    kinds = {model.model_fields["kind"].default: model for model in models
             if "kind" in model.model_fields}  # fmt: skip
    return kinds if len(models) > 1 and len(kinds) == len(models) else None


def _node_id_at(data: Any, loc: list[str | int]) -> str | None:
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int) and isinstance(data, dict):
        nodes = data.get("nodes")
        if isinstance(nodes, list | tuple) and 0 <= loc[1] < len(nodes):
            node = nodes[loc[1]]
            node_id = node.get("id") if isinstance(node, dict) else getattr(node, "id", None)
            return node_id if isinstance(node_id, str) else None
    return None


def validate(
    spec: WorkflowSpec,
    *,
    resolve_tasks: bool = False,
    signatures: Mapping[str, Signature] | None = None,
    allow: Collection[str] = (),
    registry: SpecRegistry | None = None,
) -> list[SpecIssue]:
    """Every semantic problem of ``spec``. Empty list means the spec is valid.

    Arguments are checked against functions whose signatures are known: those given in
    ``signatures`` (authoring has the functions in hand) and, with ``resolve_tasks``,
    every other task, imported by its path; each must then be a ``@keel.task`` or named
    in ``allow`` (the worker setting of that name), as a worker will require.

    A subworkflow node is checked against its child's definition when ``registry`` has
    it (the name and the inputs must fit); a child it lacks may be in the store, which
    starting the run consults. Nothing else is consulted: the result depends only on
    the arguments.
    """
    validator = _Validator(spec, resolve_tasks, signatures or {}, allow, registry)
    return list(validator.run())


def check(
    spec: WorkflowSpec,
    *,
    resolve_tasks: bool = False,
    signatures: Mapping[str, Signature] | None = None,
    allow: Collection[str] = (),
    registry: SpecRegistry | None = None,
) -> WorkflowSpec:
    """Return ``spec`` if valid, else raise ``SpecError`` listing every problem."""
    issues = validate(spec, resolve_tasks=resolve_tasks, signatures=signatures, allow=allow,
                      registry=registry)  # fmt: skip
    if issues:
        raise SpecError(issues, workflow=spec.name)
    return spec


class _Validator:
    def __init__(
        self,
        spec: WorkflowSpec,
        resolve_tasks: bool,
        signatures: Mapping[str, Signature],
        allow: Collection[str] = (),
        registry: SpecRegistry | None = None,
    ) -> None:
        self.spec = spec
        self.registry = registry if registry is not None else SpecRegistry()
        self.resolve_tasks = resolve_tasks
        self.allow = frozenset(allow)
        self.ids = {node.id for node in spec.nodes}
        self.index = {node.id: i for i, node in reversed(list(enumerate(spec.nodes)))}
        self.signatures: dict[str, Signature | None] = dict(signatures)
        self.infos: dict[str, ExpressionInfo | None] = {}
        self.handled = handled_by(spec)
        self.handlers = set(self.handled)
        self._site_list: list[tuple[str, tuple[str | int, ...], str | None]] | None = None
        #: the input schema, and each node's output schema (None: unknown), read once
        self._input: Schema | None = None
        self._outputs: dict[str, Schema | None] = {}
        self._roots: dict[tuple[str | int, ...], tuple[Schema, tuple[str | int, ...], str] | None]
        self._roots = {}
        #: ``mismatch`` by the identities of its schemas, which the entry keeps alive (an
        #: id is unique only while its object lives): a step used 200 times hands the
        #: same pair of schemas 199 times
        self._mismatches: dict[tuple[int, ...], tuple[str | None, tuple[Schema, ...]]] = {}

    def run(self) -> Iterator[SpecIssue]:
        yield from self._duplicate_ids()
        yield from self._expressions()
        yield from self._after_lists()
        yield from self._handlers()
        yield from self._waits()
        yield from self._schemas()
        yield from self._cycle()
        yield from self._join_rules()
        yield from self._has_nodes()
        yield from self._time_limits()
        yield from self._trigger_expressions()
        yield from self._templates()
        yield from schedule_issues(self.spec)
        if self.resolve_tasks:
            # resolve every function first: argument types read upstream return types
            for index, node in enumerate(self.spec.nodes):
                if not isinstance(node, CallNode):
                    continue
                yield from self._resolve(node.task, ("nodes", index, "task"), node.id)
                if isinstance(node, TaskNode) and node.compensate is not None:
                    loc = ("nodes", index, "compensate", "task")
                    yield from self._resolve(node.compensate.task, loc, node.id)
                if isinstance(node, AgentNode):
                    for number, tool in enumerate(node.tools):
                        at: tuple[str | int, ...] = ("nodes", index, "tools", number, "task")
                        yield from self._resolve(tool.task, at, node.id)
            if self.spec.on_failure is not None:
                yield from self._resolve(self.spec.on_failure.task, ("on_failure", "task"), None)
        yield from self._paths()
        for index, node in enumerate(self.spec.nodes):
            if isinstance(node, TaskNode | MapNode):
                yield from self._arguments(index, node)
            if isinstance(node, LlmNode | AgentNode):
                yield from self._model_node(index, node)

    def _templates(self) -> Iterator[SpecIssue]:
        """Every ``${{`` of an approval's description or a built-in step's template is
        closed (an llm node's prompts: ``_model_node``)."""
        for index, node in enumerate(self.spec.nodes):
            base: tuple[str | int, ...] = ("nodes", index)
            if isinstance(node, ApprovalNode):
                yield from _unclosed(node.description, (*base, "description"), node.id)
            if isinstance(node, StepNode):
                for field_name, value in node.templates().items():
                    for loc, text in template_strings(value, (*base, field_name)):
                        yield from _unclosed(text, loc, node.id)

    def _duplicate_ids(self) -> Iterator[SpecIssue]:
        counts = Counter(node.id for node in self.spec.nodes)
        for index, node in enumerate(self.spec.nodes):
            if counts[node.id] > 1 and self.index[node.id] != index:
                first = _ordinal(self.index[node.id] + 1)
                yield SpecIssue(
                    f"duplicate node id '{node.id}' (first used by the {first} node)",
                    loc=("nodes", index, "id"),
                    node=node.id,
                    code="duplicate_id",
                )

    def _analyze(
        self,
        source: str,
        loc: tuple[str | int, ...],
        node: str | None,
        names: frozenset[str] = frozenset(),
    ) -> Iterator[SpecIssue]:
        try:
            info = analyze(source)
        except ExpressionError as exc:
            self.infos[source] = None
            message = f"{exc} in {source!r}"
            if source.lstrip().startswith("${{"):
                message = (
                    f"{source!r}: this field is already an expression; write it without ${{{{ }}}}"
                )
            yield SpecIssue(message, loc=loc, node=node, code="expression_syntax")
            return
        self.infos[source] = info
        if SECRETS in names:
            try:
                secret_reference(source)
            except ValueError as exc:
                yield SpecIssue(str(exc), loc=loc, node=node, code="secret_expression")
        for name in _in_order(info.free_names - names):
            hint = ""
            if name == "item":
                hint = " ('item' is read only by the templates of an llm node with for_each)"
            elif name == "secret" and SECRETS in names:
                hint = f" (did you mean '{SECRETS}'? write ${{{{ {SECRETS}.NAME }}}})"
            elif name == SECRETS:
                hint = (
                    " ('secrets' is read only by the fields of a built-in step: http, shell, "
                    "sql, email, filled when it runs so the value is never recorded; a Python "
                    'task calls keel.secret("NAME"))'
                )
            yield SpecIssue(
                f"unknown name '{name}' in {source!r}: expressions read 'input' (the run's "
                f"input) and 'nodes.<id>.output' (an upstream result){hint}",
                loc=loc,
                node=node,
                code="unknown_name",
            )
        if info.dynamic_node_access:
            yield SpecIssue(
                f"{source!r} reads 'nodes' without naming a node: write nodes.<id>.output so "
                "the dependency is known before the run starts",
                loc=loc,
                node=node,
                code="dynamic_reference",
            )
        for ref in _in_order(info.node_refs):
            if ref not in self.ids:
                yield SpecIssue(
                    f"{source!r} refers to unknown node '{ref}'{self._suggest(ref)}",
                    loc=loc,
                    node=node,
                    code="unknown_node",
                )
            elif ref == node:
                yield SpecIssue(
                    f"{source!r} refers to the node's own output", loc=loc, node=node, code="cycle"
                )
        for ref, field in _in_order(info.node_fields):
            if ref in self.ids and field not in NODE_FIELDS:
                shown = f"nodes.{ref}" + (f".{field}" if field else "")
                yield SpecIssue(
                    f"{source!r}: '{shown}' is not a value; use nodes.{ref}.output",
                    loc=loc,
                    node=node,
                    code="unknown_field",
                )

    def _sites(self) -> list[tuple[str, tuple[str | int, ...], str | None]]:
        """Every expression of the spec: its source, location and node (None for outputs).
        Listed once per validation: several checks walk them."""
        if self._site_list is None:
            found: list[tuple[str, tuple[str | int, ...], str | None]] = []
            for index, node in enumerate(self.spec.nodes):
                for site in node_expressions(node, index):
                    found.append((site.source, site.loc, node.id))
            for name, source in self.spec.outputs.items():
                found.append((source, ("outputs", name), None))
            self._site_list = found
        return self._site_list

    def _paths(self) -> Iterator[SpecIssue]:
        """Fields read from the input or from outputs that their schemas say do not exist."""
        for source, loc, node in self._sites():
            yield from self._path_issues(source, loc, node)

    def _path_issues(
        self, source: str, loc: tuple[str | int, ...], node: str | None
    ) -> Iterator[SpecIssue]:
        info = self.infos.get(source)
        if info is None:
            return
        for path in _in_order(info.paths, key=str):
            known = self._root_schema(path)
            if known is None:
                continue
            root, rest, where = known
            problem = missing_field(root, rest, name=where)
            if problem:
                yield SpecIssue(f"{source!r}: {problem}", loc=loc, node=node, code="unknown_field")

    def _root_schema(
        self, path: tuple[str | int, ...]
    ) -> tuple[Schema, tuple[str | int, ...], str] | None:
        """The schema a path starts from, the rest of the path, and how to name the root
        (once per path: the path check and the type check of an argument both ask)."""
        if path not in self._roots:
            self._roots[path] = self._find_root_schema(path)
        return self._roots[path]

    def _find_root_schema(
        self, path: tuple[str | int, ...]
    ) -> tuple[Schema, tuple[str | int, ...], str] | None:
        if path[0] == "input":
            if self._input is None:
                self._input = dict(self.spec.input_schema)
            return self._input, path[1:], "input"
        if len(path) < 3 or path[2] != "output" or not isinstance(path[1], str):
            return None
        if path[1] not in self._outputs:
            self._outputs[path[1]] = self._output_schema(path[1])
        root = self._outputs[path[1]]
        return (root, path[3:], f"nodes.{path[1]}.output") if root is not None else None

    def _output_schema(self, node_id: str) -> Schema | None:
        """The schema of a node's output, if known (read once per node: several checks
        and every reader of the node ask for it)."""
        upstream = self.spec.node_map.get(node_id)
        if upstream is None:
            return None
        if not isinstance(upstream, TaskNode | MapNode):
            return _declared_output(upstream) or None
        signature = self.signatures.get(upstream.task)
        if signature is None or signature.return_schema is None:
            return None
        root = signature.return_schema
        if isinstance(upstream, MapNode):  # a map's output is the list of its results
            item = {key: value for key, value in root.items() if key != "$defs"}
            root = {"type": "array", "items": item, "$defs": root.get("$defs", {})}
        return root

    def _suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, sorted(self.ids), n=1)
        return f" (did you mean '{close[0]}'?)" if close else ""

    def _expressions(self) -> Iterator[SpecIssue]:
        for source, loc, node in self._sites():
            yield from self._analyze(source, loc, node, self._item_names(loc))

    def _item_names(self, loc: tuple[str | int, ...]) -> frozenset[str]:
        """Names an expression may read besides ``input`` and ``nodes``: ``item`` in the
        templates of an ``llm`` node with ``for_each``; ``secrets`` in the templates of a
        built-in step (filled by the worker, so a secret never reaches the history)."""
        if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in ("prompt", "system"):
            node = self.spec.nodes[int(loc[1])]
            if isinstance(node, LlmNode) and node.for_each is not None:
                return frozenset({"item"})
        if len(loc) >= 3 and loc[0] == "nodes":
            node = self.spec.nodes[int(loc[1])]
            if isinstance(node, StepNode) and loc[2] in TEMPLATE_FIELDS[node.kind]:
                return frozenset({SECRETS})
        return frozenset()

    def _trigger_expressions(self) -> Iterator[SpecIssue]:
        """A trigger's filter and input mapping parse and read only its variable."""
        for index, trigger in enumerate(self.spec.triggers):
            variable = TRIGGER_VARIABLE.get(trigger.kind)
            if variable is None:
                continue
            sites: list[tuple[str, tuple[str | int, ...]]] = []
            found = getattr(trigger, "filter", None)
            if found is not None:
                sites.append((found, ("triggers", index, "filter")))
            for name, source in getattr(trigger, "input", {}).items():
                sites.append((source, ("triggers", index, "input", name)))
            yield from self._mapped_keys(index, getattr(trigger, "input", None))
            for source, loc in sites:
                try:
                    info = analyze(source)
                except ExpressionError as exc:
                    yield SpecIssue(f"{exc} in {source!r}", loc=loc, code="expression_syntax")
                    continue
                wrong = sorted(info.free_names - {variable}) + sorted(
                    {str(path[0]) for path in info.paths}
                )
                for name in wrong:
                    yield SpecIssue(
                        f"unknown name '{name}' in {source!r}: the expressions of a {trigger.kind} "
                        f"trigger read '{variable}' only",
                        loc=loc, code="unknown_name",
                    )  # fmt: skip

    def _mapped_keys(self, index: int, mapping: dict[str, str] | None) -> Iterator[SpecIssue]:
        """An input mapping gives the fields the workflow's input schema has, and the
        ones it requires (a run it maps would be refused when it fires)."""
        schema = self.spec.input_schema or {}
        properties = schema.get("properties")
        if not mapping or not isinstance(properties, dict):
            return
        if schema.get("additionalProperties") is False:
            for name in mapping:
                if name not in properties:
                    yield SpecIssue(
                        f"the input has no field '{name}' (fields: "
                        f"{', '.join(sorted(properties)) or 'none'})",
                        loc=("triggers", index, "input", name), code="unknown_field",
                    )  # fmt: skip
        required = schema.get("required")
        for field in required if isinstance(required, list) else ():
            if isinstance(field, str) and field not in mapping:
                yield SpecIssue(f"the input field '{field}' is required: map it",
                                loc=("triggers", index, "input"), code="missing_field")  # fmt: skip

    def _reference(
        self, target: str, node: str, loc: tuple[str | int, ...], unknown: str, itself: str
    ) -> Iterator[SpecIssue]:
        """A field naming another node: it must exist and not be the node itself."""
        if target not in self.ids:
            yield SpecIssue(f"{unknown} '{target}'{self._suggest(target)}", loc=loc, node=node,
                            code="unknown_node")  # fmt: skip
        elif target == node:
            yield SpecIssue(itself, loc=loc, node=node, code="cycle")

    def _after_lists(self) -> Iterator[SpecIssue]:
        for index, node in enumerate(self.spec.nodes):
            for position, parent in enumerate(node.after):
                yield from self._reference(parent, node.id, ("nodes", index, "after", position),
                                           "'after' names unknown node",
                                           "a node cannot run after itself")  # fmt: skip

    def _handlers(self) -> Iterator[SpecIssue]:
        for index, node in enumerate(self.spec.nodes):
            if isinstance(node.on_failure, FailureHandler):
                yield from self._reference(
                    node.on_failure.handler, node.id, ("nodes", index, "on_failure", "handler"),
                    "on_failure names unknown handler node", "a node cannot handle its own failure",
                )  # fmt: skip

    def _waits(self) -> Iterator[SpecIssue]:
        """Approval routes and forms, signal schemas, and pinned child workflows."""
        for index, node in enumerate(self.spec.nodes):
            route = timeout_route(node)
            if route is not None:
                yield from self._reference(
                    route, node.id, ("nodes", index, "on_timeout", "route"),
                    "on_timeout routes to unknown node",
                    "an approval cannot route its timeout to itself",
                )  # fmt: skip
            if isinstance(node, SubworkflowNode):
                yield from self._child(index, node)

    def _schemas(self) -> Iterator[SpecIssue]:
        """Every JSON Schema the spec carries must be one: the input schema, approval
        forms, signal payloads (else checking data against it crashes at run time)."""
        found: list[tuple[Schema, tuple[str | int, ...], str | None]] = [
            (dict(self.spec.input_schema), ("input_schema",), None)
        ]
        for index, node in enumerate(self.spec.nodes):
            if isinstance(node, LlmNode | AgentNode):
                if node.output is not None:
                    found.append((dict(node.output), ("nodes", index, "output"), node.id))
                for number, tool in enumerate(getattr(node, "tools", ())):
                    where: tuple[str | int, ...] = ("nodes", index, "tools", number, "parameters")
                    found.append((dict(tool.parameters), where, node.id))
                continue
            schema = _declared_output(node)
            if schema is not None:
                field = "form" if isinstance(node, ApprovalNode) else "payload_schema"
                found.append((schema, ("nodes", index, field), node.id))
        for schema, loc, node_id in found:
            for path, problem in schema_problems(schema):
                yield SpecIssue(f"{loc[-1]} is not a valid JSON Schema: {problem}",
                                loc=(*loc, *path), node=node_id,
                                code="invalid_schema")  # fmt: skip

    def _child(self, index: int, node: SubworkflowNode) -> Iterator[SpecIssue]:
        child = self.registry.get(node.version)
        if child is None:
            return  # only the store may know it; starting the run checks again
        if child.name != node.workflow:
            yield SpecIssue(
                f"version {node.version[:12]} is workflow '{child.name}', not '{node.workflow}'",
                loc=("nodes", index, "workflow"), node=node.id, code="wrong_workflow",
            )  # fmt: skip
        properties = child.input_schema.get("properties")
        if isinstance(properties, dict) and child.input_schema.get("additionalProperties") is False:
            for name in node.input:
                if name not in properties:
                    known = ", ".join(properties) or "none"
                    yield SpecIssue(
                        f"workflow '{child.name}' has no input '{name}' (inputs: {known})",
                        loc=("nodes", index, "input", name), node=node.id,
                        code="unknown_argument",
                    )  # fmt: skip
        required = child.input_schema.get("required")
        if isinstance(required, list):
            for wanted in required:
                if isinstance(wanted, str) and wanted not in node.input:
                    yield SpecIssue(
                        f"missing required input '{wanted}' of workflow '{child.name}'",
                        loc=("nodes", index, "input"), node=node.id, code="missing_argument",
                    )  # fmt: skip

    def _references(self) -> dict[int, list[str]]:
        """Node index -> the nodes its expressions read, from the sites and analyses
        this validation has made already (the graph would otherwise walk them again)."""
        found: dict[int, list[str]] = {}
        for source, loc, node in self._sites():
            index = loc[1]
            if node is None or not isinstance(index, int):
                continue  # an output: not part of the graph
            info = self.infos[source] if source in self.infos else safe_analyze(source)
            if info is not None:
                found.setdefault(index, []).extend(_in_order(info.node_refs))
        return found

    def _cycle(self) -> Iterator[SpecIssue]:
        graph = DependencyGraph.from_spec(
            self.spec, references=self._references(), handled=self.handled
        )
        cycle = graph.find_cycle()
        if cycle and len(cycle) > 2:
            yield SpecIssue(
                "dependency cycle: " + " -> ".join(cycle),
                loc=("nodes", self.index[cycle[0]]),
                node=cycle[0],
                code="cycle",
            )
        self.graph = graph

    def _join_rules(self) -> Iterator[SpecIssue]:
        for index, node in enumerate(self.spec.nodes):
            if node.join is JoinRule.ONE_FAILED and not self.graph.parents.get(node.id):
                yield SpecIssue(
                    "join 'one_failed' needs at least one parent to watch: add 'after'",
                    loc=("nodes", index, "join"),
                    node=node.id,
                    code="join_without_parents",
                )

    def _has_nodes(self) -> Iterator[SpecIssue]:
        if not self.spec.nodes:
            yield SpecIssue("a workflow needs at least one node", loc=("nodes",), code="empty")

    def _time_limits(self) -> Iterator[SpecIssue]:
        """A run is late (``expected_duration``) before it is stopped (``deadline``): an
        expected duration at or past the deadline would never mark a run late."""
        expected, deadline = self.spec.expected_duration, self.spec.deadline
        if expected is not None and deadline is not None and expected >= deadline:
            yield SpecIssue(
                f"{format_duration(expected)} must be shorter than the deadline "
                f"({format_duration(deadline)}): a run is marked late at its expected "
                "duration and stopped at its deadline",
                loc=("expected_duration",),
                code="expected_after_deadline",
            )

    # --- checks against the real functions -------------------------------------------------

    def _resolve(
        self, task: str, loc: tuple[str | int, ...], node: str | None
    ) -> Iterator[SpecIssue]:
        if task in self.signatures:
            return
        self.signatures[task] = None
        try:
            target = resolve(task)
            if not is_keel_task(target) and task not in self.allow:
                yield SpecIssue(
                    not_a_task_message(task, target), loc=loc, node=node, code="not_a_task"
                )
                return
            self.signatures[task] = signature_of(target)
        except ImportPathError as exc:
            yield SpecIssue(str(exc), loc=loc, node=node, code="unresolved_task")
        except Exception as exc:  # importing user code can raise anything
            yield SpecIssue(
                f"importing '{task}' raised {type(exc).__name__}: {exc}",
                loc=loc,
                node=node,
                code="unresolved_task",
            )

    def _model_node(self, index: int, node: LlmNode | AgentNode) -> Iterator[SpecIssue]:
        """A model step records its requests through the worker's store: it runs in
        the worker's process."""
        if node.isolation == "process":
            yield SpecIssue(
                f"an {node.kind} node runs in the worker (it records each model request as "
                "it goes): isolation 'process' is for tasks",
                loc=("nodes", index, "isolation"), node=node.id, code="isolation_model",
            )  # fmt: skip
        output = None if node.output is None else dict(node.output)
        if output is not None and output.get("type") != "object" and not schema_problems(output):
            yield SpecIssue(
                "the answer of a model is a JSON object: give output 'type: object' (put a "
                "single value in one of its properties)",
                loc=("nodes", index, "output"), node=node.id, code="output_not_object",
            )  # fmt: skip
        if isinstance(node, LlmNode) and node.for_each is None:
            for bound in ("max_items", "max_parallel"):
                if getattr(node, bound) is not None:
                    yield SpecIssue(
                        f"{bound} bounds the items of for_each, and this node has no for_each",
                        loc=("nodes", index, bound), node=node.id, code="bound_without_items",
                    )  # fmt: skip
        for field_name in ("prompt", "system"):
            yield from _unclosed(getattr(node, field_name), ("nodes", index, field_name), node.id)
        if isinstance(node, AgentNode):
            yield from self._tools(index, node)

    def _tools(self, index: int, node: AgentNode) -> Iterator[SpecIssue]:
        """An agent's tools have distinct names (the model calls them by name)."""
        seen: set[str] = set()
        for number, tool in enumerate(node.tools):
            if tool.tool_name in seen:
                yield SpecIssue(
                    f"two tools are named '{tool.tool_name}': give one a 'name'",
                    loc=("nodes", index, "tools", number), node=node.id, code="duplicate_tool",
                )  # fmt: skip
            seen.add(tool.tool_name)

    def _arguments(self, index: int, node: TaskNode | MapNode) -> Iterator[SpecIssue]:
        signature = self.signatures.get(node.task)
        if signature is None:
            return
        if signature.is_async and node.isolation == "process":
            yield SpecIssue(
                f"{node.task} is async: isolation 'process' is for sync tasks (an async "
                "task is cancelled at its timeout already)",
                loc=("nodes", index, "isolation"),
                node=node.id,
                code="isolation_async",
            )
        given = dict(node.args)
        supplied = set(given)
        if node.id in self.handlers:
            supplied.add("error")  # the engine passes the handled failure
        if isinstance(node, MapNode):
            supplied.add(node.item_arg)
            if node.item_arg not in signature.parameters and not signature.accepts_any_keyword:
                yield SpecIssue(
                    f"item_arg '{node.item_arg}' is not a parameter of {node.task}",
                    loc=("nodes", index, "item_arg"),
                    node=node.id,
                    code="unknown_argument",
                )
            if node.item_arg in given:
                yield SpecIssue(
                    f"'{node.item_arg}' receives the items; do not also pass it in args",
                    loc=("nodes", index, "args", node.item_arg),
                    node=node.id,
                    code="duplicate_argument",
                )
            yield from self._items_type(index, node, signature)
        for name, param in signature.parameters.items():
            if param.required and name not in supplied:
                yield SpecIssue(
                    f"missing required argument '{name}' of {node.task}",
                    loc=("nodes", index, "args"),
                    node=node.id,
                    code="missing_argument",
                )
        for name, arg in given.items():
            loc = ("nodes", index, "args", name)
            target = signature.parameters.get(name)
            if target is None:
                if not signature.accepts_any_keyword:
                    known = ", ".join(signature.parameters) or "none"
                    yield SpecIssue(
                        f"unknown argument '{name}' for {node.task} (parameters: {known})",
                        loc=loc,
                        node=node.id,
                        code="unknown_argument",
                    )
                continue
            if target.schema is None:
                continue
            problem = self._arg_mismatch(arg, target.schema)
            if problem:
                yield SpecIssue(
                    f"argument '{name}' {problem}", loc=loc, node=node.id, code="type_mismatch"
                )

    def _items_type(self, index: int, node: MapNode, signature: Signature) -> Iterator[SpecIssue]:
        source = self._schema_of_expression(node.items)
        if source is None:
            return
        schema, root = source
        problem = mismatch(schema, {"type": "array"}, source_root=root)
        if problem:
            yield SpecIssue(
                f"items {problem.replace('the parameter expects', 'a map needs')}",
                loc=("nodes", index, "items"),
                node=node.id,
                code="type_mismatch",
            )
            return
        param = signature.parameters.get(node.item_arg)
        item = schema_at(schema, (0,), root)
        if param is not None and param.schema is not None and item is not None:
            problem = self._mismatch(item, param.schema, root, param.schema)
            if problem:
                yield SpecIssue(
                    f"each item {problem}",
                    loc=("nodes", index, "items"),
                    node=node.id,
                    code="type_mismatch",
                )

    def _arg_mismatch(self, arg: ExprArg | LiteralArg, target: Schema) -> str | None:
        if isinstance(arg, LiteralArg):
            return value_mismatch(arg.value, target, target)
        source = self._schema_of_expression(arg.expr)
        if source is None:
            return None
        schema, root = source
        problem = self._mismatch(schema, target, root, target)
        return f"({arg.expr}) {problem}" if problem else None

    def _mismatch(
        self, source: Schema, target: Schema, source_root: Schema, target_root: Schema
    ) -> str | None:
        """``mismatch``, once per combination of schemas."""
        schemas = (source, target, source_root, target_root)
        key = tuple(map(id, schemas))
        known = self._mismatches.get(key)
        if known is None:
            problem = mismatch(source, target, source_root=source_root, target_root=target_root)
            known = self._mismatches[key] = (problem, schemas)
        return known[0]

    def _schema_of_expression(self, source: str) -> tuple[Schema, Schema] | None:
        """The schema of a plain-path expression, with the root its $refs point into."""
        info = self.infos.get(source)
        if info is None or info.path is None or info.path[0] not in ROOT_NAMES:
            return None
        known = self._root_schema(info.path)
        if known is None:
            return None
        root, rest, _ = known
        return _at(root, rest)


def _unclosed(text: str, loc: tuple[str | int, ...], node: str) -> Iterator[SpecIssue]:
    """An issue if ``text`` has a ``${{`` no ``}}`` closes, naming the field by ``loc``."""
    if unclosed(text):
        field = ".".join(str(part) for part in loc[2:])
        yield SpecIssue(
            f"{field} has a '${{{{' with no '}}}}' closing it: write ${{{{ expression }}}}",
            loc=loc, node=node, code="template_syntax",
        )  # fmt: skip


def _declared_output(node: AnyNode) -> Schema | None:
    """The schema a waiting node declares for its output (an approval's form, a
    signal's payload), if any."""
    if isinstance(node, ApprovalNode) and node.form is not None:
        return dict(node.form)
    if isinstance(node, SignalNode) and node.payload_schema is not None:
        return dict(node.payload_schema)
    if isinstance(node, LlmNode | AgentNode) and node.output is not None:
        if isinstance(node, LlmNode) and node.for_each is not None:
            return {"type": "array", "items": dict(node.output)}
        return dict(node.output)
    return None


def _at(root: Schema, path: tuple[str | int, ...]) -> tuple[Schema, Schema] | None:
    found = schema_at(root, path, root)
    return (found, root) if found is not None else None


T = TypeVar("T")


def _in_order(items: frozenset[T], key: Callable[[T], Any] | None = None) -> Iterable[T]:
    """``sorted(items)``, without sorting what holds one item or none (most expressions
    read one name; validation looks at each expression several times)."""
    return items if len(items) < 2 else sorted(items, key=key)  # type: ignore[type-var,arg-type]


def _ordinal(number: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``11th``: positions as people count them."""
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"
