"""Definitions this process has built, by version: how a parent run finds the spec of
the child workflow it pins.

A subworkflow node names its child by version only (the version is the definition's
hash), so whoever starts the parent must be able to store the child's definition with
it. The Python decorators and the YAML loader register every spec they build here; the
store keeps them afterwards, so a resumed run does not depend on this process.
"""

from __future__ import annotations

from keel.spec.model import WorkflowSpec

_KNOWN: dict[str, WorkflowSpec] = {}


def remember(spec: WorkflowSpec) -> None:
    _KNOWN[spec.version] = spec


def known_spec(version: str) -> WorkflowSpec | None:
    return _KNOWN.get(version)
