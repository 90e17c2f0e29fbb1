"""The workflow definitions a caller knows, by version: where validation and the start of
a run look up the child workflow that a subworkflow node pins.

A subworkflow node names its child by version only (the version is the definition's
hash), so whoever validates the parent or starts a run of it must be able to find the
child's definition. Nothing fills a registry behind anyone's back: a Python workflow
carries the definitions of the children its body calls (``Workflow.registry``), the
loader builds one from what it was told to load, and each caller passes it on. What a
spec validates to, or what a run stores, therefore depends only on the registry given,
never on what else this process happened to import. Once a run has started, the store
keeps the definitions it needs, so resuming it needs no registry at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from keel.spec.model import WorkflowSpec


class SpecRegistry(Mapping[str, WorkflowSpec]):
    """Definitions by version; immutable (``including`` gives a larger one)."""

    __slots__ = ("_specs",)

    def __init__(self, specs: Iterable[WorkflowSpec] = ()) -> None:
        self._specs: dict[str, WorkflowSpec] = {spec.version: spec for spec in specs}

    def including(self, *more: WorkflowSpec | Mapping[str, WorkflowSpec]) -> SpecRegistry:
        """These definitions and ``more`` (specs, or other registries)."""
        specs = list(self._specs.values())
        for item in more:
            specs.extend([item] if isinstance(item, WorkflowSpec) else item.values())
        return SpecRegistry(specs)

    def __getitem__(self, version: str) -> WorkflowSpec:
        return self._specs[version]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        names = ", ".join(f"{spec.name}@{version[:12]}" for version, spec in self._specs.items())
        return f"SpecRegistry({names})"
