"""Running a workflow inside a test: ``run(workflow, input)`` gives a ``TestRun``.

The run is real: a SQLite store in memory (nothing on disk; with ``llm_offline=False`` a
file in a temporary folder, removed on ``close``), keel's own worker loop and
engine (``keel.runtime.worker.loop.Worker``, as ``keel run`` uses in-process), the same
events, retries, waits and failure paths as in production. Only time is fake
(``keel.runtime.clock.FakeClock``): it moves when nothing can run now and something of
the run is due by itself later (a retry's backoff, a timer; see ``keel.testing._time``),
so a two-day timer or a retry after a minute passes at once, and every recorded time
says when it would have happened. Approvals and signals wait for the test.

Invariants: one store, one worker and one clock per ``TestRun``, all on the thread that
calls it (task bodies run on the worker's task threads, as ever). Each public call
returns only once the run has ended or waits for something the test must do (a person,
a signal, or a time the clock does not jump to by itself). ``close`` (or leaving the
``with`` block) stops the worker's threads and frees the store; a run that ended has
stopped its worker already, and a ``TestRun`` garbage collected is closed then.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from keel.engine.state import is_finished
from keel.errors import InputError, KeelError
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.testing._history import NodeView, missing_events, node_mismatch

if TYPE_CHECKING:
    from keel.engine.replay import ReplayResult
    from keel.engine.state import RunState
    from keel.runtime.clock import FakeClock
    from keel.runtime.worker.loop import Worker
    from keel.store.protocol import Store

#: where the fake clock starts (2023-11-14 22:13:20 UTC), so recorded times are the same
#: on every run of a test
START = 1_700_000_000.0
#: jumps of the clock in one call before the run is taken to loop for ever
MAX_JUMPS = 10_000
#: ``assert_node`` was given no output to check
_ANY: Any = object()


def definition_of(workflow: Any) -> tuple[WorkflowSpec, SpecRegistry]:
    """The definition to run and the child workflows it may start: of a
    ``@keel.workflow``, a ``WorkflowSpec``, or a file (``flow.yaml``, ``flow.yaml:NAME``,
    a .py file) loaded as ``keel run`` loads it."""
    if isinstance(workflow, str | os.PathLike):
        from keel.authoring.loading import import_task_modules, load_workflow

        loaded = load_workflow(os.fspath(workflow))
        import_task_modules([loaded])
        return loaded.spec, loaded.registry
    spec = getattr(workflow, "spec", workflow)
    if not isinstance(spec, WorkflowSpec):
        raise InputError(f"workflow: expected a @keel.workflow, a WorkflowSpec or a file, "
                         f"got {type(workflow).__name__}")  # fmt: skip
    registry = getattr(workflow, "registry", None)
    return spec, registry if isinstance(registry, SpecRegistry) else SpecRegistry([spec])


def _checked_secrets(secrets: Mapping[str, str]) -> dict[str, str]:
    from keel.runtime.secrets import SecretError, checked_values

    try:
        return checked_values(secrets)
    except SecretError as exc:
        raise InputError(f"secrets: {exc}") from None


def seconds_of(duration: str | float | timedelta) -> float:
    from keel.spec.durations import parse_duration

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise InputError(f"advance: {exc}") from None
    if seconds < 0:
        raise InputError(f"advance: the clock does not go back ({duration!r})")
    return seconds


def _look_everywhere(worker: Worker) -> None:
    """Have the worker's next turn look at its queue and its timers both, not only when
    it would look by itself."""
    worker.claims.look_now()
    worker.timers.look_now()


class _Parts:
    """What a ``TestRun`` holds that must be let go of: closed once, by ``close`` or
    when the ``TestRun`` is garbage collected."""

    def __init__(
        self, store: Store, worker: Worker, folder: tempfile.TemporaryDirectory[str] | None
    ) -> None:
        self.store = store
        self.worker: Worker | None = worker
        self.folder = folder

    def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()
            worker.executor.shutdown(wait=True)  # the task threads end here

    def close(self) -> None:
        self.stop_worker()
        self.store.close()
        if self.folder is not None:
            self.folder.cleanup()


class TestRun:
    """A run of a workflow in a test (see ``keel.testing.run``)."""

    __test__ = False  # not a test class for pytest, whatever its name

    def __init__(
        self,
        workflow: Any,
        input: Mapping[str, Any] | None = None,
        *,
        stubs: Mapping[str, Callable[..., Any]] | None = None,
        llm_replies: Mapping[str, Any] | None = None,
        llm_offline: bool = True,
        allow: Collection[str] = (),
        secrets: Mapping[str, str] | None = None,
        start: float = START,
        run_id: str | None = None,
    ) -> None:
        """Start the run (use ``keel.testing.run``, which also runs it)."""
        from pydantic_core import to_jsonable_python

        from keel.runtime.clock import FakeClock
        from keel.runtime.execution.task_access import TaskAccess
        from keel.runtime.worker.loop import Worker, WorkerOptions
        from keel.store.sqlite import SQLiteStore
        from keel.testing._steps import forget_step_settings
        from keel.testing._stubs import Stubs, stub_catalog, stubbed_cache

        spec, registry = definition_of(workflow)
        given = Stubs([spec, *registry.values()], stubs, llm_replies, llm_offline=llm_offline)
        supplied = None if secrets is None else _checked_secrets(secrets)
        forget_step_settings()  # the steps read the keel.toml of the folder the test is in
        self.spec = spec
        self.clock: FakeClock = FakeClock(start)
        folder = None
        if llm_offline:
            store = SQLiteStore(":memory:")
        else:  # keel's model steps record in the store from their task threads: a
            # database in memory is one per thread, a file is shared by all
            folder = tempfile.TemporaryDirectory(prefix="keel-test-")
            store = SQLiteStore(Path(folder.name) / "keel.db")
        options = WorkerOptions(
            concurrency=8, late_grace=0.0, notify_grace=0.0, timers_every=0.0, poll=0.05
        )
        try:
            catalog = stub_catalog(TaskAccess.allowing(allow), given, supplied)
            worker = Worker(store, options, clock=self.clock, cache=stubbed_cache(store, given),
                            catalog=catalog)  # fmt: skip
        except BaseException:
            store.close()
            if folder is not None:
                folder.cleanup()
            raise
        self._parts = _Parts(store, worker, folder)
        self._close = weakref.finalize(self, self._parts.close)
        try:
            data = to_jsonable_python(dict(input or {}))  # pydantic models as their data
            origin = os.fspath(workflow) if isinstance(workflow, str | os.PathLike) else None
            self.id: str = worker.start_run(spec, data, origin=origin, run_id=run_id,
                                            registry=registry)  # fmt: skip
        except BaseException:
            self.close()
            raise
        self._state: tuple[int, RunState] | None = None

    # --- the run ------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The run's store (in memory), for what this class does not show."""
        return self._parts.store

    @property
    def status(self) -> str:
        """``succeeded``, ``failed``, ``cancelled``, ``paused``; ``waiting`` while it
        waits for an approval, a signal or a time (the test acts, or ``advance``s);
        ``running`` if it waits for anything else (a rate limit, an open circuit)."""
        record = self.store.get_run(self.id)
        if is_finished(record.status) or record.status == "paused":
            return record.status
        return "waiting" if self.store.waits(limit=1) else record.status

    @property
    def output(self) -> Any:
        """The run's output (None until it succeeded)."""
        return self.store.get_run(self.id).output

    @property
    def error(self) -> str | None:
        """Why the run failed or was cancelled (None otherwise)."""
        record = self.store.get_run(self.id)
        return record.reason if record.status in ("failed", "cancelled") else None

    @property
    def now(self) -> float:
        """The fake clock's time (seconds since the epoch)."""
        return self.clock.now()

    @property
    def history(self) -> list[dict[str, Any]]:
        """The run's events, as the lines ``keel history RUN --json`` prints."""
        from keel.runtime.views.documents import event_line

        return [event_line(stored) for stored in self.store.history(self.id)]

    def node(self, node_id: str) -> NodeView:
        """One node's ``status``, ``output``, ``attempts`` and last ``error``."""
        state = self._run_state()
        if node_id not in state.nodes:
            known = ", ".join(state.plan.graph_nodes)
            raise KeyError(f"workflow '{self.spec.name}' has no node {node_id!r} (nodes: {known})")
        return NodeView.of(node_id, state.nodes[node_id])

    def _run_state(self) -> RunState:
        from keel.engine.state import RunState, apply
        from keel.runtime.runs import compiled

        history = self.store.history(self.id)
        if self._state is None or self._state[0] != len(history):
            state = RunState.new(compiled(self.spec), self.id)
            for stored in history:
                apply(state, stored.event, stored.seq)
            self._state = (len(history), state)
        return self._state[1]

    # --- acting on it -------------------------------------------------------------------

    def approve(
        self, node: str, data: Any = None, by: str = "tester", comment: str = ""
    ) -> TestRun:
        """Approve the waiting approval ``node`` (``data``: its form's answers, its
        output), then run on until the run ends or waits again."""
        from keel.runtime.operations.interventions import approve

        run_id = self._waiting_run(node)
        approve(self.store, run_id, node, data=data, comment=comment, by=by, clock=self.clock)
        return self._moved(run_id)

    def reject(self, node: str, by: str = "tester", comment: str = "") -> TestRun:
        """Reject the waiting approval ``node`` (it fails: ``Rejected``), then run on."""
        from keel.runtime.operations.interventions import reject

        run_id = self._waiting_run(node)
        reject(self.store, run_id, node, comment=comment, by=by, clock=self.clock)
        return self._moved(run_id)

    def signal(self, name: str, data: Any = None, by: str = "tester") -> TestRun:
        """Send signal ``name`` with ``data`` to the run, then run on."""
        from keel.runtime.operations.interventions import send_signal

        send_signal(self.store, self.id, name, data, by=by, clock=self.clock)
        return self._moved(self.id)

    def advance(self, duration: str | float | timedelta) -> TestRun:
        """Move the clock on by ``duration`` (``"2d"``, seconds, a ``timedelta``): what
        became due meanwhile fires (an approval's timeout too), then run on."""
        self.clock.advance(seconds_of(duration))
        return self._moved(None)

    def _waiting_run(self, node: str) -> str:
        """The run whose approval ``node`` is: this one, or a child run's waiting one."""
        if any(n.id == node for n in self.spec.nodes):
            return self.id
        for wait in self.store.waits(waits_for="approval"):
            if wait.node == node:
                return wait.run_id
        return self.id  # the usual error names the nodes there are

    def _moved(self, run_id: str | None) -> TestRun:
        worker = self._parts.worker
        if worker is not None:
            if run_id is not None:  # its copy of the run is behind what was recorded
                worker.cache.drop(run_id)
            _look_everywhere(worker)
        self.settle()
        return self

    def settle(self) -> None:
        """Run what can run, jumping the clock to what is due by itself, until the run
        ended or waits for the test (``keel.testing._time``)."""
        from keel.testing._time import next_due

        worker = self._parts.worker
        if worker is None:
            return
        idle, jumps = False, 0
        while True:
            progressed = worker.step(wait=idle)
            idle = not progressed
            if progressed or self._busy(worker):
                continue
            _look_everywhere(worker)  # nothing happened: look once more
            if worker.step() or self._busy(worker):
                idle = False
                continue
            due = next_due(self.store, self.clock.now())
            if due is None:
                break
            jumps += 1
            if jumps > MAX_JUMPS:
                raise KeelError(f"run {self.id[:8]} still had something due after the clock "
                                f"jumped {MAX_JUMPS} times: does it wait in a loop?")  # fmt: skip
            self.clock.advance(due - self.clock.now())
            _look_everywhere(worker)
        if is_finished(self.store.get_run(self.id).status) and not self.store.waits(limit=1):
            self._parts.stop_worker()  # nothing more can happen: no threads left behind

    @staticmethod
    def _busy(worker: Worker) -> bool:
        """Whether attempts still run, or outcomes wait to be recorded again."""
        return bool(worker._running or worker.outcomes.retry)

    # --- checking it --------------------------------------------------------------------

    def assert_events(self, *kinds: str) -> None:
        """Assert that events of these kinds happened in this order (others may come
        between): ``"node_succeeded"``, or ``"node_succeeded:extract"`` for one node's.
        The failure lists every event of the run."""
        problem = missing_events(self.history, kinds)
        if problem is not None:
            raise AssertionError(problem)

    def assert_node(
        self,
        node_id: str,
        *,
        status: str | None = None,
        output: Any = _ANY,
        attempts: int | None = None,
        error: str | None = None,
    ) -> NodeView:
        """Assert what ``node_id`` came to: each of ``status``, ``output``, ``attempts``
        given, and ``error`` a part of its last error's ``type: message``. The failure
        says what the node shows instead and lists its events. Returns the node."""
        view = self.node(node_id)
        wanted: dict[str, Any] = {"status": status, "attempts": attempts, "error": error}
        wanted = {key: value for key, value in wanted.items() if value is not None}
        if output is not _ANY:
            wanted["output"] = output
        problem = node_mismatch(view, wanted, self.history)
        if problem is not None:
            raise AssertionError(problem)
        return view

    def replay(self, workflow: Any) -> ReplayResult:
        """Replay this run's history against ``workflow`` (``keel.testing.replay``):
        ``.ok`` when it makes the decisions this run made."""
        from keel.testing import replay

        return replay(self.history, workflow, recorded=self.spec, run_id=self.id)

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker's threads and free the store (again: nothing happens)."""
        self._close()

    def __enter__(self) -> TestRun:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TestRun {self.spec.name} {self.id[:8]}>"


def run(
    workflow: Any,
    input: Mapping[str, Any] | None = None,
    *,
    stubs: Mapping[str, Callable[..., Any]] | None = None,
    llm_replies: Mapping[str, Any] | None = None,
    llm_offline: bool = True,
    allow: Collection[str] = (),
    secrets: Mapping[str, str] | None = None,
    start: float = START,
    run_id: str | None = None,
) -> TestRun:
    """Run ``workflow`` in memory until it ends or waits for the test; see the module
    ``keel.testing`` for the options."""
    started = TestRun(workflow, input, stubs=stubs, llm_replies=llm_replies,
                      llm_offline=llm_offline, allow=allow, secrets=secrets, start=start,
                      run_id=run_id)  # fmt: skip
    try:
        started.settle()
    except BaseException:
        started.close()
        raise
    return started
