"""``keel diff A B`` and ``GET /diff``: what A and B name, read from the store, and their diff.

Both are runs (an id or its first characters) or both are stored workflow versions (a
version's first hex digits, or ``WORKFLOW@DIGITS`` among one workflow's versions). A
bare argument is looked up as a run and as a version: one that names both, or neither,
or several of either, is refused with what was found and how to say which is meant
(``run:ID``, ``version:DIGITS``); so is a run compared with a version. The comparisons
themselves are pure (``keel.spec.diff``, ``keel.runtime.views.run_diff``); this module
only reads what they compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keel.engine.plan import compile_plan
from keel.errors import (
    NO_RUN,
    InputError,
    RunNotFoundError,
    VersionNotFoundError,
)
from keel.runtime.views.report import RunReport, run_report
from keel.runtime.views.run_diff import diff_runs, run_diff_document
from keel.spec.diff import diff_specs, spec_diff_document
from keel.store.deployments import StoredVersion
from keel.store.protocol import Store
from keel.store.records import RunRecord
from keel.store.tombstones import refuse_pruned

#: how many versions an ambiguous prefix's error names
_NAMED = 3
_HEX = re.compile(r"^[0-9a-f]{1,64}$")


@dataclass(frozen=True, slots=True)
class Target:
    """What one argument names: a run (``run``) or a stored version (``version``)."""

    given: str
    run: RunRecord | None = None
    version: StoredVersion | None = None

    def described(self) -> str:
        if self.run is not None:
            return f"run {self.run.id[:12]} ({self.run.workflow})"
        assert self.version is not None
        return f"version {self.version.version[:12]} ({self.version.workflow})"


def _found_run(store: Store, text: str) -> tuple[RunRecord | None, str | None]:
    """The run ``text`` names, or None with why not when it names several."""
    try:
        return store.get_run(text), None
    except RunNotFoundError as exc:
        if str(exc).startswith(NO_RUN):
            return None, None
        return None, str(exc)  # several runs begin so


def _found_versions(store: Store, digits: str, workflow: str | None = None) -> list[StoredVersion]:
    digits = digits.lower()
    if not _HEX.match(digits):
        return []
    return store.stored_versions(prefix=digits, workflow=workflow, limit=_NAMED + 1)


def _named(versions: list[StoredVersion]) -> str:
    named = ", ".join(f"{v.version[:12]} ({v.workflow})" for v in versions[:_NAMED])
    return named + (", ..." if len(versions) > _NAMED else "")


def _version(store: Store, given: str, digits: str, workflow: str | None) -> Target:
    versions = _found_versions(store, digits, workflow)
    of = f" of workflow '{workflow}'" if workflow is not None else ""
    if not versions:
        hint = f"`keel versions {workflow}`" if workflow else "`keel versions WORKFLOW`"
        raise VersionNotFoundError(f"no stored version{of} begins with '{digits}' (see {hint})")
    if len(versions) > 1:
        raise InputError(f"'{given}' matches several versions{of}: {_named(versions)}; "
                         "give more digits")  # fmt: skip
    return Target(given, version=versions[0])


def resolve_target(store: Store, given: str) -> Target:
    """The run or version ``given`` names (see the module's docstring); ``InputError``
    when it is ambiguous, ``RunNotFoundError`` (``VersionNotFoundError``) when it
    names nothing."""
    text = given.strip()
    kind, colon, rest = text.partition(":")
    forced = kind if colon and kind in ("run", "version") else None
    text = rest.strip() if forced else text
    if not text:
        raise InputError(f"'{given}': give a run id or a version's digits")
    if "@" in text:
        if forced == "run":
            raise InputError(f"'{given}': WORKFLOW@DIGITS names a version, not a run")
        workflow, _, digits = text.rpartition("@")
        return _version(store, given, digits, workflow.strip() or None)
    if forced == "version":
        return _version(store, given, text, None)
    run, several_runs = _found_run(store, text)
    if forced == "run":
        if run is None:
            raise RunNotFoundError(several_runs or f"{NO_RUN} '{text}'")
        return Target(given, run=run)
    versions = _found_versions(store, text)
    if run is not None and versions:
        also = _named(versions)
        raise InputError(f"'{text}' is both run {run.id[:12]} ({run.workflow}) and version "
                         f"{also}: write run:{text} or version:{text}")  # fmt: skip
    if run is not None:
        return Target(given, run=run)
    if several_runs is not None and versions:
        raise InputError(f"'{text}' begins several runs and version {_named(versions)}: "
                         f"give more characters, or write version:{text}")  # fmt: skip
    if several_runs is not None:
        raise RunNotFoundError(several_runs)
    if versions:
        return _version(store, given, text, None)
    raise RunNotFoundError(
        f"'{text}' is neither a run nor a stored version (see `keel runs` and "
        "`keel versions WORKFLOW`)"
    )


def _report(store: Store, run: RunRecord) -> RunReport:
    refuse_pruned(run)  # no history: its report would be a run not started
    return run_report(compile_plan(store.load_spec(run.spec_version)), store.history(run.id))


def diff_document(store: Store, a: str, b: str) -> dict[str, Any]:
    """The diff of what ``a`` and ``b`` name: ``spec_diff_document`` for two versions,
    ``run_diff_document`` for two runs. A pruned run has no history left to compare:
    ``RunPrunedError`` naming it."""
    first, second = resolve_target(store, a), resolve_target(store, b)
    if (first.run is None) != (second.run is None):
        raise InputError(f"'{a}' is {first.described()} and '{b}' is {second.described()}: "
                         "keel diff compares two runs or two versions")  # fmt: skip
    if first.run is not None and second.run is not None:
        report_a, report_b = (_report(store, run) for run in (first.run, second.run))
        return run_diff_document(diff_runs(first.run, report_a, second.run, report_b))
    assert first.version is not None
    assert second.version is not None
    spec_a = store.load_spec(first.version.version)
    spec_b = store.load_spec(second.version.version)
    return spec_diff_document(diff_specs(spec_a, spec_b))
