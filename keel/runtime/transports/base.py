"""The one interface both transports implement, and what crosses it.

Runs, waits and events are the store's own values (``RunRecord``, ``Wait``,
``StoredEvent``); the read views (a run in detail, failed runs, circuits, deployments,
a verification) are the JSON documents of ``keel.runtime.views.documents``, and
schedules those of ``keel.runtime.triggers.schedule_views``, which is what the API
sends, so a view reads the same from either transport.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from keel.runtime.views.activity import Activity
from keel.runtime.views.why_reasons import RunWhy
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.records import RunRecord, StoredEvent, Wait
from keel.store.task_logs import TaskLogLine

#: a JSON document (``keel.runtime.views.documents``)
Document = dict[str, Any]


class Fired(NamedTuple):
    """A run an event started (``started``) or had started before (the same message)."""

    workflow: str
    run_id: str
    started: bool


class LogPage(NamedTuple):
    """A page of what a run's tasks logged (``Client.logs``)."""

    #: the run's whole id
    run_id: str
    #: the run's status, read before the lines: once it has ended, no later page of
    #: the run has more lines
    status: str
    lines: list[TaskLogLine]


class Transport(Protocol):
    def close(self) -> None: ...

    def start_spec(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        *,
        registry: SpecRegistry | None,
        origin: str | None,
        key: str | None,
    ) -> str: ...

    def start_deployed(
        self, workflow: str, run_input: Any, *, version: str | None, key: str | None
    ) -> str: ...

    def run(self, run_id: str) -> RunRecord: ...

    def runs(self, *, status: str | None, workflow: str | None, parent: str | None,
             limit: int, late: bool | None = None) -> list[RunRecord]: ...  # fmt: skip

    def runs_doing(self, *, status: str | None, workflow: str | None, limit: int,
                   started_by: str | None = None, late: bool | None = None,
                   ) -> list[tuple[RunRecord, Activity | None]]: ...  # fmt: skip

    def detail(self, run_id: str) -> Document: ...

    def history(self, run_id: str) -> list[StoredEvent]: ...

    def verify(self, run_id: str) -> Document: ...

    def story(self, run_id: str) -> Document:
        """``keel.runtime.views.story.story_document``: the run's history in words."""

    def llm_calls(self, run_id: str, node: str | None, full: bool) -> Document:
        """``keel.runtime.views.ledger.run_calls``: the run's calls and its ledger."""

    def llm_spend(self, since: float, workflow: str | None) -> Document:
        """``keel.runtime.views.ledger.spend_document``: spend per workflow and model."""

    def why(self, run_id: str) -> RunWhy: ...
    def logs(self, run_id: str, node: str | None, attempt: int | None, after: int,
             limit: int) -> LogPage:  # fmt: skip
        """Up to ``limit`` lines the run's tasks logged after ``after`` (a ``seq``)."""

    def act(self, action: str, run_id: str, reason: str, by: str | None) -> RunRecord:
        """``cancel``, ``pause`` or ``unpause``."""

    def retry(self, run_id: str, node: str | None, reason: str, by: str | None) -> RunRecord: ...

    def skip(self, run_id: str, node: str, output: Any, reason: str,
             by: str | None) -> RunRecord: ...  # fmt: skip

    def fork(
        self,
        run_id: str,
        node: str,
        sets: dict[str, Any],
        version: str | None,
        by: str | None,
        dry_run: bool,
    ) -> Document:
        """``keel.runtime.operations.fork.Forked.document``."""

    def approvals(self, run_id: str | None) -> list[Wait]: ...

    def waits(self, run_id: str | None) -> list[Wait]: ...

    def approve(self, run_id: str, node: str, data: Any, comment: str,
                by: str | None) -> RunRecord: ...  # fmt: skip

    def reject(self, run_id: str, node: str, comment: str, by: str | None) -> RunRecord: ...

    def signal(self, run_id: str, name: str, data: Any, by: str | None) -> RunRecord: ...

    def failed(self, workflow: str | None, limit: int) -> list[Document]: ...

    def circuits(self) -> list[Document]: ...

    def alerts(self) -> list[Document]:
        """``keel.runtime.views.alerts.alert_documents``: each alert rule's state."""

    def workflows(self, name: str | None) -> list[Document]: ...

    def versions(self, workflow: str) -> Document:
        """``keel.runtime.views.versions.versions_document``: every version known."""

    def diff(self, a: str, b: str) -> Document:
        """``keel.runtime.views.diffs.diff_document``: two runs' or versions' diff."""

    def emit(self, name: str, data: Any, message_id: str) -> list[Fired]:
        """Fire the event triggers named ``name`` (``keel.runtime.triggers.events``)."""

    def deploy(self, specs: list[tuple[WorkflowSpec, SpecRegistry | None, str | None]],
               by: str | None) -> list[Document]: ...  # fmt: skip

    def schedules(self) -> list[Document]:
        """``schedule_views.schedule_documents``, as of the store's (the server's) clock."""

    def pause_schedule(self, name: str, paused: bool, by: str | None) -> None:
        """Pause (``paused``) or unpause the schedule ``name``."""

    def trigger_schedule(self, name: str) -> str:
        """Start a run of the schedule ``name`` now, outside its slots; its id."""

    def backfill(self, name: str, first: float, last: float) -> list[Document]:
        """One run per slot of ``name`` from ``first`` to ``last`` (timestamps, both
        included): ``schedule_views.backfill``'s slots."""
