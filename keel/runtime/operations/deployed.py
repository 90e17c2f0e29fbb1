"""Starting deployed workflows by name, and starting a run at most once per key.

A server has no workflow code: it starts what was deployed (``keel deploy``), by name
(the current version) or by version. An ``Idempotency-Key`` becomes the run's id (a
hash of the key), so the database's unique run id is what makes a retried request find
the first run instead of starting a second, under any concurrency and on any store.
"""

from __future__ import annotations

import hashlib
from typing import Any

from keel.errors import InputError, RunExistsError, WorkflowNotFoundError
from keel.runtime.clock import Clock
from keel.runtime.operations.control import start_run
from keel.runtime.operations.inputs import with_defaults
from keel.runtime.runs import RunCache
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.chain import canonical_json
from keel.store.deployments import Deployment
from keel.store.protocol import Store
from keel.store.records import RunRecord

#: the shortest version prefix accepted for a deployed version (hex digits)
SHORTEST_VERSION = 6


def deployed(store: Store, workflow: str, version: str | None = None) -> Deployment:
    """The deployment of ``workflow`` to start: its current one, or the (newest)
    deployment of ``version`` (a full version or a unique prefix of one)."""
    history = store.deployments(workflow)
    if not history:
        raise WorkflowNotFoundError(
            f"no workflow named '{workflow}' is deployed (see `keel workflows`)"
        )
    if version is None:
        return history[-1]
    if len(version) < SHORTEST_VERSION:
        raise InputError(f"give at least {SHORTEST_VERSION} characters of a version")
    matching = {d.version: d for d in history if d.version.startswith(version)}
    if len(matching) > 1:
        raise InputError(f"version '{version}' matches several versions of '{workflow}'")
    if not matching:
        raise WorkflowNotFoundError(
            f"workflow '{workflow}' has no deployed version '{version}' "
            f"(see `keel workflows {workflow}`)"
        )
    return next(iter(matching.values()))


def run_id_for_key(key: str) -> str:
    """The id a run started with this idempotency key gets (the same for every retry)."""
    return hashlib.sha256(b"keel-idempotency-key\0" + key.encode()).hexdigest()[:32]


def check_key(key: str) -> None:
    """Refuse (``InputError``) what cannot be an idempotency key; a form checks a key
    before it starts anything, as ``start_once`` does."""
    if not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
        raise InputError("an idempotency key is 1 to 255 printable ASCII characters")


def start_once(
    store: Store,
    spec: WorkflowSpec,
    run_input: Any,
    *,
    key: str | None = None,
    started_by: str | None = None,
    origin: str | None = None,
    plans: RunCache | None = None,
    clock: Clock | None = None,
    registry: SpecRegistry | None = None,
    trigger: dict[str, str] | None = None,
    same_input: bool = True,
) -> tuple[RunRecord, bool]:
    """Start a run; with a ``key``, only the first call with it does: the others get
    that run. Returns the run and whether this call started it. A key used before for
    another workflow or other input is refused (an ``InputError``), never answered with
    a run that is not what was asked for. (A repeat after a new version was deployed
    still gets the first run: it is the same request.) ``same_input=False``: the key
    alone names the request (a file's path and hash: where it is moved to may differ)."""
    if key is not None:
        check_key(key)
    run_id = None if key is None else run_id_for_key(key)
    try:
        record = start_run(
            store, spec, run_input, run_id=run_id, started_by=started_by, origin=origin,
            plans=plans, clock=clock, registry=registry, trigger=trigger,
        )  # fmt: skip
    except RunExistsError:
        assert run_id is not None  # a fresh random id never collides
        first = store.get_run(run_id)
        matching = canonical_json(first.input) == canonical_json(with_defaults(spec, run_input))
        if first.workflow != spec.name or (same_input and not matching):
            raise InputError(
                f"idempotency key '{key}' started run {first.id} of workflow "
                f"'{first.workflow}' with other input; a new request needs a new key"
            ) from None
        return first, False
    return record, True
