"""What a deploy checks about triggers across workflows (one spec cannot see the
others): a schedule's name is taken once, a folder whose files are moved away is
watched by one trigger, and completion triggers form no loop. Each would otherwise
break a promise at run time: a shared pause, a file moved before its other trigger saw
it (a lost firing), runs starting each other forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keel.errors import InputError
from keel.runtime.runs import RunCache
from keel.runtime.triggers.schedules import schedule_names
from keel.spec.model import WorkflowSpec
from keel.spec.triggers import CompletionTrigger, FileTrigger
from keel.store.deployments import current_versions
from keel.store.protocol import Store


def check_deploy(store: Store, specs: Sequence[WorkflowSpec], plans: RunCache) -> None:
    """``InputError`` if deploying ``specs`` (replacing their current versions) would
    leave the triggers of the current versions in conflict."""
    deploying = {spec.name: spec for spec in specs}
    live = dict(deploying)
    for deployment in current_versions(store.deployments()).values():
        if deployment.workflow not in deploying:
            live[deployment.workflow] = plans.plan(deployment.version).spec
    _schedule_names(live)
    _moved_folders(live)
    _completion_loops(live)


def _schedule_names(live: dict[str, WorkflowSpec]) -> None:
    taken: dict[str, str] = {}
    for workflow, spec in sorted(live.items()):
        for name in schedule_names(spec).values():
            if name in taken and taken[name] != workflow:
                raise InputError(
                    f"workflows '{taken[name]}' and '{workflow}' both have a schedule named "
                    f"'{name}': a name is a schedule's identity, give one another name"
                )
            taken[name] = workflow


def _moved_folders(live: dict[str, WorkflowSpec]) -> None:
    watching: dict[Path, list[tuple[str, FileTrigger]]] = {}
    for workflow, spec in sorted(live.items()):
        for trigger in spec.triggers:
            if isinstance(trigger, FileTrigger):
                watching.setdefault(Path(trigger.folder), []).append((workflow, trigger))
    for folder, watchers in watching.items():
        moving = [workflow for workflow, trigger in watchers if trigger.move_to is not None]
        if moving and len(watchers) > 1:
            names = ", ".join(sorted({workflow for workflow, _ in watchers}))
            raise InputError(
                f"folder {folder} is watched by several file triggers ({names}) and "
                f"'{moving[0]}' moves its files away: another would never see them; "
                "watch it with one trigger, or move none"
            )


def _completion_loops(live: dict[str, WorkflowSpec]) -> None:
    follows: dict[str, set[str]] = {}
    for workflow, spec in live.items():
        for trigger in spec.triggers:
            if isinstance(trigger, CompletionTrigger):
                follows.setdefault(trigger.after, set()).add(workflow)
    for start in follows:
        seen: list[str] = [start]
        frontier = list(follows.get(start, ()))
        while frontier:
            nxt = frontier.pop()
            if nxt == start:
                raise InputError(
                    f"completion triggers loop: a run of '{start}' ending starts runs "
                    "that end by starting it again, forever"
                )
            if nxt not in seen:
                seen.append(nxt)
                frontier.extend(follows.get(nxt, ()))
