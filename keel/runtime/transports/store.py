"""The client's transport to a store: each call is the operation the CLI (and the
API's route) performs, run in this process against the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keel.runtime.clock import clock_for
from keel.runtime.operations.control import cancel_run, record_run, save_children
from keel.runtime.operations.deployed import deployed, start_once
from keel.runtime.operations.fork import fork_run
from keel.runtime.operations.interventions import (
    approve,
    pause_run,
    reject,
    send_signal,
    unpause_run,
)
from keel.runtime.operations.manual import retry_run, set_node_output
from keel.runtime.runs import RunCache
from keel.runtime.transports.base import Document, Fired, LogPage
from keel.runtime.triggers import schedule_views
from keel.runtime.triggers.deploying import check_deploy
from keel.runtime.triggers.events import emit
from keel.runtime.views import documents
from keel.runtime.views.activity import Activity, run_activity
from keel.runtime.views.alerts import alert_documents
from keel.runtime.views.diffs import diff_document
from keel.runtime.views.failures import failed_runs
from keel.runtime.views.ledger import run_calls, spend_document
from keel.runtime.views.story import run_story
from keel.runtime.views.task_logs import run_logs
from keel.runtime.views.versions import versions_document
from keel.runtime.views.why import run_why
from keel.runtime.views.why_reasons import RunWhy
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent, Wait

if TYPE_CHECKING:
    from keel.audit.signing import SigningKey

_ACTIONS = {"cancel": cancel_run, "pause": pause_run, "unpause": unpause_run}


class StoreTransport:
    def __init__(self, store: Store, *, owned: bool, signing_key: SigningKey | None = None) -> None:
        self.store = store
        self._owned = owned
        #: signs the approvals decided here (``keel.audit.approvals``)
        self.signing_key = signing_key
        self._verified: RunCache | None = None  # plans shared by ``verify`` calls
        self._plans: RunCache | None = None  # plans shared by ``emit`` and schedule calls

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def start_spec(self, spec: WorkflowSpec, run_input: Any, *, registry: SpecRegistry | None,
                   origin: str | None, key: str | None) -> str:  # fmt: skip
        if key is None:  # the id is all it returns: the run's record is not read back
            committed = record_run(self.store, spec, run_input, origin=origin, registry=registry)
            return committed.transition.run_id
        record, _ = start_once(self.store, spec, run_input, key=key, origin=origin,
                               registry=registry)  # fmt: skip
        return record.id

    def start_deployed(
        self, workflow: str, run_input: Any, *, version: str | None, key: str | None
    ) -> str:
        plans = RunCache(self.store, capacity=0)
        spec = plans.plan(deployed(self.store, workflow, version).version).spec
        record, _ = start_once(self.store, spec, run_input, key=key, plans=plans)
        return record.id

    def run(self, run_id: str) -> RunRecord:
        return self.store.get_run(run_id)

    def runs(self, *, status: str | None, workflow: str | None, parent: str | None,
             limit: int, late: bool | None = None) -> list[RunRecord]:  # fmt: skip
        return self.store.list_runs(status=status, workflow=workflow, parent=parent, limit=limit,
                                    late=late)  # fmt: skip

    def runs_doing(self, *, status: str | None, workflow: str | None, limit: int,
                   started_by: str | None = None, late: bool | None = None,
                   ) -> list[tuple[RunRecord, Activity | None]]:  # fmt: skip
        records = self.store.list_runs(status=status, workflow=workflow, limit=limit,
                                       started_by=started_by, late=late)  # fmt: skip
        now = clock_for(self.store).now()
        return [(record, run_activity(self.store, record, now)) for record in records]

    def detail(self, run_id: str) -> Document:
        record = self.store.get_run(run_id)
        plan = RunCache(self.store, capacity=0).plan(record.spec_version)
        return documents.run_detail(self.store, record, plan, clock_for(self.store).now())

    def history(self, run_id: str) -> list[StoredEvent]:
        return self.store.history(self.store.get_run(run_id).id)

    def logs(self, run_id: str, node: str | None, attempt: int | None, after: int,
             limit: int) -> LogPage:  # fmt: skip
        record = self.store.get_run(run_id)
        plan = RunCache(self.store, capacity=0).plan(record.spec_version)
        lines = run_logs(self.store, record, plan, node=node, attempt=attempt, after=after,
                         limit=limit)  # fmt: skip
        return LogPage(record.id, record.status, lines)

    def verify(self, run_id: str) -> Document:
        if self._verified is None:  # each state is read once; plans are shared
            self._verified = RunCache(self.store, capacity=1)
        record = self.store.get_run(run_id)
        return documents.verification_document(self.store, record, self._verified.state)

    def story(self, run_id: str) -> Document:
        record = self.store.get_run(run_id)
        plan = RunCache(self.store, capacity=0).plan(record.spec_version)
        return run_story(self.store, record, plan)

    def llm_calls(self, run_id: str, node: str | None, full: bool) -> Document:
        record = self.store.get_run(run_id)
        plan = RunCache(self.store, capacity=0).plan(record.spec_version)
        return run_calls(self.store, record, plan, node=node, full=full)

    def llm_spend(self, since: float, workflow: str | None) -> Document:
        return spend_document(self.store.workflow_spend(since, workflow=workflow), since,
                              workflow)  # fmt: skip

    def why(self, run_id: str) -> RunWhy:
        record = self.store.get_run(run_id)
        plan = RunCache(self.store, capacity=0).plan(record.spec_version)
        return run_why(self.store, record, plan, clock_for(self.store).now())

    def act(self, action: str, run_id: str, reason: str, by: str | None) -> RunRecord:
        return _ACTIONS[action](self.store, run_id, reason=reason, by=by)

    def retry(self, run_id: str, node: str | None, reason: str, by: str | None) -> RunRecord:
        return retry_run(self.store, run_id, node=node, by=by, reason=reason)

    def skip(self, run_id: str, node: str, output: Any, reason: str,
             by: str | None) -> RunRecord:  # fmt: skip
        return set_node_output(self.store, run_id, node, output, by=by, reason=reason)

    def fork(self, run_id: str, node: str, sets: dict[str, Any], version: str | None,
             by: str | None, dry_run: bool) -> Document:  # fmt: skip
        forked = fork_run(self.store, run_id, node, sets, version=version, by=by,
                          dry_run=dry_run)  # fmt: skip
        return forked.document()

    def _run_id(self, run_id: str | None) -> str | None:
        return None if run_id is None else self.store.get_run(run_id).id

    def approvals(self, run_id: str | None) -> list[Wait]:
        return self.store.waits(waits_for="approval", run_id=self._run_id(run_id))

    def waits(self, run_id: str | None) -> list[Wait]:
        return self.store.waits(run_id=self._run_id(run_id))

    def approve(self, run_id: str, node: str, data: Any, comment: str,
                by: str | None) -> RunRecord:  # fmt: skip
        return approve(self.store, run_id, node, data=data, comment=comment, by=by,
                       signer=self.signing_key)  # fmt: skip

    def reject(self, run_id: str, node: str, comment: str, by: str | None) -> RunRecord:
        return reject(self.store, run_id, node, comment=comment, by=by, signer=self.signing_key)

    def signal(self, run_id: str, name: str, data: Any, by: str | None) -> RunRecord:
        return send_signal(self.store, run_id, name, data, by=by)

    def _compiled(self) -> RunCache:
        """Plans by version, shared by this client's calls (a consumer emits many:
        each version is compiled once)."""
        if self._plans is None:
            self._plans = RunCache(self.store, capacity=0)
        return self._plans

    def emit(self, name: str, data: Any, message_id: str) -> list[Fired]:
        emitted = emit(self.store, name, data, message_id, self._compiled())
        return [Fired(e.workflow, e.run.id, e.started) for e in emitted]

    def failed(self, workflow: str | None, limit: int) -> list[Document]:
        found = failed_runs(self.store, workflow=workflow, limit=limit)
        return [documents.failed_document(item) for item in found]

    def circuits(self) -> list[Document]:
        return [documents.circuit_document(c) for c in self.store.circuits()]

    def alerts(self) -> list[Document]:
        return alert_documents(self.store)

    def workflows(self, name: str | None) -> list[Document]:
        if name is None:
            return documents.workflows_document(self.store)
        return documents.deployments_document(self.store, name)

    def versions(self, workflow: str) -> Document:
        return versions_document(self.store, workflow)

    def diff(self, a: str, b: str) -> Document:
        return diff_document(self.store, a, b)

    def deploy(self, specs: list[tuple[WorkflowSpec, SpecRegistry | None, str | None]],
               by: str | None) -> list[Document]:  # fmt: skip
        now = clock_for(self.store).now()
        plans = RunCache(self.store, capacity=0)
        check_deploy(self.store, [spec for spec, _, _ in specs], plans)
        for spec, registry, _ in specs:  # a child first: a spec refers to it by version
            save_children(self.store, plans.plan_of(spec), now, registry or SpecRegistry())
        done = self.store.deploy([(spec, source) for spec, _, source in specs], now, by=by)
        return [documents.deployment_document(d) for d in done]

    # --- schedules ------------------------------------------------------------------------

    def schedules(self) -> list[Document]:
        now = clock_for(self.store).now()
        return schedule_views.schedule_documents(self.store, self._compiled(), now)

    def pause_schedule(self, name: str, paused: bool, by: str | None) -> None:
        now = clock_for(self.store).now()
        schedule_views.pause_schedule(self.store, self._compiled(), name, paused, now, by)

    def trigger_schedule(self, name: str) -> str:
        now = clock_for(self.store).now()
        return schedule_views.trigger_now(self.store, self._compiled(), name, now)

    def backfill(self, name: str, first: float, last: float) -> list[Document]:
        now = clock_for(self.store).now()
        return schedule_views.backfill(self.store, self._compiled(), name, first, last, now)
