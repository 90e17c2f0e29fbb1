"""What validation checks about a workflow's schedules, beyond each one's own fields.

A schedule's name is its identity: its pause, its last slot, its runs
(``schedule:NAME``) and each slot's firing key go by it. So a workflow with several
schedules names each one (a name given by position would pass to another schedule when
one is inserted before it), and no name is used twice (two schedules would share their
slots' keys: one slot's run would stand for both, a slot lost). A lone unnamed
schedule goes by the workflow's name, as it always has.

A schedule's ``input`` is plain data, so it is checked against the workflow's input
schema in full, as starting its run would: an input the workflow refuses would start
nothing, at every slot.
"""

from __future__ import annotations

from collections.abc import Iterator

from keel.errors import SpecIssue
from keel.spec.model import WorkflowSpec
from keel.spec.schemas import schema_problems, validator_class
from keel.spec.triggers import ScheduleTrigger


def schedule_issues(spec: WorkflowSpec) -> Iterator[SpecIssue]:
    """Every problem of ``spec``'s schedules as a set: names, and inputs."""
    schedules = [(index, trigger) for index, trigger in enumerate(spec.triggers)
                 if isinstance(trigger, ScheduleTrigger)]  # fmt: skip
    first: dict[str, int] = {}
    for index, trigger in schedules:
        if trigger.name is None and len(schedules) > 1:
            yield SpecIssue(
                f"this workflow has {len(schedules)} schedules: give each a name (a schedule "
                "goes by its name: its pause, its last slot, its runs)",
                loc=("triggers", index, "name"), code="unnamed_schedule",
            )  # fmt: skip
            continue
        name = trigger.name or spec.name
        if name in first:
            yield SpecIssue(
                f"two schedules are named '{name}': each schedule needs a name of its own",
                loc=("triggers", index, "name"), code="duplicate_schedule",
            )  # fmt: skip
        else:
            first[name] = index
    for index, trigger in schedules:
        yield from _input_issues(spec, index, trigger)


def _input_issues(spec: WorkflowSpec, index: int, trigger: ScheduleTrigger) -> Iterator[SpecIssue]:
    """The schedule's input against the workflow's input schema (one not valid is
    reported where the schemas are checked)."""
    schema = dict(spec.input_schema)
    if schema_problems(schema):
        return
    validator = validator_class(schema)(schema)
    for problem in sorted(validator.iter_errors(dict(trigger.input)), key=lambda e: list(e.path)):
        path = tuple(problem.absolute_path)
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
        yield SpecIssue(
            "the schedule's input does not fit the workflow's input schema: "
            + (f"input{where}: " if where else "") + problem.message,
            loc=("triggers", index, "input", *path), code="input_mismatch",
        )  # fmt: skip
