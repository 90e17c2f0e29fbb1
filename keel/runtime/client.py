"""``keel.Client``: what the CLI does to runs, from Python, over either transport.

``Client("https://keel.example:8400", token=...)`` speaks to a keel server's HTTP API
(the token from ``KEEL_TOKEN`` when not given); any other URL (``KEEL_DATABASE_URL`` or
``.keel/keel.db`` by default) opens the store itself. The methods and what they return
are the same on both (``keel.runtime.transports``): start runs, read them (and what
their tasks logged), list and decide approvals, send signals, pause, unpause, cancel,
retry and skip, list, pause, trigger and backfill schedules, from any process. Starting
a run records it; a worker executes it.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import TYPE_CHECKING, Any

from keel.errors import KeelError
from keel.runtime.transports.base import Document, Fired, LogPage, Transport
from keel.runtime.transports.store import StoreTransport
from keel.runtime.views.activity import Activity
from keel.runtime.views.why_reasons import RunWhy
from keel.spec.model import WorkflowSpec
from keel.spec.registry import SpecRegistry
from keel.store.protocol import Store
from keel.store.records import RunRecord, StoredEvent, Wait

if TYPE_CHECKING:
    import ssl

    from keel.audit.signing import SigningKey


def is_server_url(url: str | None) -> bool:
    """Whether ``url`` names a keel server rather than a database. ``HOST:PORT``
    without a scheme is refused (a ``KeelError``): it is neither, and taken for a file
    name it would make an empty database of that name."""
    if url is not None and _HOST_PORT.match(url):
        raise KeelError(
            f"'{url}' is neither a server's URL (http(s)://{url}) nor a database's "
            "(sqlite:///PATH, postgresql://...)"
        )
    return url is not None and url.lower().startswith(("http://", "https://"))


_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}(/.*)?$")


class Client:
    """One connection (to a store or a server); use it as a context manager or call
    ``close``. ``by`` names who acts, for the history, on a store only: a server
    records its token's name. ``token``, ``timeout`` (seconds) and ``verify`` (the
    server's certificate: True, a CA file, an ``ssl.SSLContext``, False) are for a
    server's URL; ``signing_key`` signs the approvals decided through a store (a
    server signs with its own key)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        store: Store | None = None,
        token: str | None = None,
        timeout: float | None = None,
        verify: bool | str | ssl.SSLContext = True,
        signing_key: SigningKey | None = None,
    ) -> None:
        self.transport: Transport
        #: the store, when the client has one (None over HTTP)
        self.store: Store | None = None
        if store is None and is_server_url(url):
            from keel.runtime.transports.http import TIMEOUT, HttpTransport

            assert url is not None
            self.transport = HttpTransport(
                url, token if token is not None else os.environ.get("KEEL_TOKEN"),
                timeout=TIMEOUT if timeout is None else timeout, verify=verify,
            )  # fmt: skip
        else:
            from keel.runtime.stores import open_store

            owned = store is None
            self.store = store if store is not None else open_store(url)
            # approvals decided through a store are signed here (over HTTP, the server signs)
            self.transport = StoreTransport(self.store, owned=owned, signing_key=signing_key)

    @property
    def remote(self) -> bool:
        """Whether this client speaks to a server."""
        return self.store is None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # --- runs -----------------------------------------------------------------------------

    def start(
        self,
        workflow: Any,
        run_input: Any = None,
        *,
        origin: str | None = None,
        version: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Record a new run; its id. ``workflow``: the name of a deployed workflow (its
        current version, or ``version``), or a ``@keel.workflow`` or spec (with
        ``version``: that deployed version of its name). Over HTTP, a
        ``@keel.workflow`` or spec starts its own version, which must be deployed.
        ``idempotency_key``: however often it is called with a key, one run starts
        (the others return its id).

        A ``@keel.workflow`` brings the definitions of the child workflows it calls; a
        bare spec's children must be in the store already. The run joins the trace of the
        caller's current OpenTelemetry span, if any (sent as ``traceparent`` over HTTP)."""
        run_input = {} if run_input is None else run_input
        if isinstance(workflow, str):
            return self.transport.start_deployed(workflow, run_input, version=version,
                                                 key=idempotency_key)  # fmt: skip
        spec: WorkflowSpec = getattr(workflow, "spec", workflow)
        if version is not None:
            return self.transport.start_deployed(spec.name, run_input, version=version,
                                                 key=idempotency_key)  # fmt: skip
        registry: SpecRegistry | None = getattr(workflow, "registry", None)
        if origin is None and hasattr(workflow, "__module__"):
            origin = workflow.__module__ if workflow.__module__ != "__main__" else None
        return self.transport.start_spec(spec, run_input, registry=registry, origin=origin,
                                         key=idempotency_key)  # fmt: skip

    def run(self, run_id: str) -> RunRecord:
        return self.transport.run(run_id)

    def runs(self, *, status: str | None = None, workflow: str | None = None,
             parent: str | None = None, limit: int = 50,
             late: bool | None = None) -> list[RunRecord]:  # fmt: skip
        """Newest first. ``late``: only runs past (or not past) their expected duration."""
        return self.transport.runs(status=status, workflow=workflow, parent=parent,
                                   limit=limit, late=late)  # fmt: skip

    def runs_doing(self, *, status: str | None = None, workflow: str | None = None,
                   limit: int = 50, started_by: str | None = None, late: bool | None = None,
                   ) -> list[tuple[RunRecord, Activity | None]]:  # fmt: skip
        """Newest first, each with what it is doing if it has not ended (``keel runs``).
        ``started_by``: a token's name, or ``KIND:SOURCE`` of a trigger; ``late``: only
        runs past (or not past) their expected duration."""
        return self.transport.runs_doing(status=status, workflow=workflow, limit=limit,
                                         started_by=started_by, late=late)  # fmt: skip

    def detail(self, run_id: str) -> Document:
        """The run and each of its nodes, read from its history (``keel show --json``)."""
        return self.transport.detail(run_id)

    def history(self, run_id: str) -> list[StoredEvent]:
        return self.transport.history(run_id)

    def why(self, run_id: str) -> RunWhy:
        """Why the run has not ended: per node not ended, a reason with its data
        (waiting for its parents, an approval, a worker, a concurrency key...); no
        nodes for a run that ended (``keel why``, ``GET /runs/{id}/why``)."""
        return self.transport.why(run_id)

    def llm_calls(self, run_id: str, *, node: str | None = None,
                  full: bool = False) -> Document:  # fmt: skip
        """The run's model and tool calls (of ``node`` when given), each with its state,
        usage, cost and latency, and the run's ledger per node and in total (``keel
        calls``, ``GET /runs/{id}/llm``); with ``full``, each call's request and answer
        too. Money is in nano-dollars (``*_nanos``) and as exact decimal dollars."""
        return self.transport.llm_calls(run_id, node, full)

    def llm_spend(self, *, since: float = 0.0, workflow: str | None = None) -> Document:
        """Spend of the calls sent since ``since`` (a timestamp), per workflow and model,
        and in total (``GET /llm/spend``)."""
        return self.transport.llm_spend(since, workflow)

    def logs(self, run_id: str, *, node: str | None = None, attempt: int | None = None,
             after: int = 0, limit: int = 1000) -> LogPage:  # fmt: skip
        """A page of what the run's tasks logged through ``ctx.logger``, in the order
        written: up to ``limit`` lines after ``after`` (a line's ``seq``), of ``node``
        and ``attempt`` when given, with the run's status read before them. To follow
        a running run, ask again with the last line's ``seq`` until its status has
        ended and a page comes back short."""
        return self.transport.logs(run_id, node, attempt, after, limit)

    def verify(self, run_id: str) -> Document:
        """The run's hash chain and its row checked against its history: ``intact``,
        ``events``, ``head_hash``, ``problems``, ``mismatches``; of a pruned run, its
        tombstone checked instead (``pruned``: see ``keel.audit.pruned``)."""
        return self.transport.verify(run_id)

    def story(self, run_id: str) -> Document:
        """The run's story (``keel replay RUN``, ``GET /runs/{id}/story``): every event
        in order, in words, with who did it and its values, each marked ``decided``
        when the workflow's definition made it; and whether the run's row agrees with
        the state its history replays to (``matches``, ``mismatches``)."""
        return self.transport.story(run_id)

    def cancel(self, run_id: str, *, reason: str = "", by: str | None = None) -> RunRecord:
        return self.transport.act("cancel", run_id, reason, by)

    def pause(self, run_id: str, *, reason: str = "", by: str | None = None) -> RunRecord:
        return self.transport.act("pause", run_id, reason, by)

    def unpause(self, run_id: str, *, reason: str = "", by: str | None = None) -> RunRecord:
        return self.transport.act("unpause", run_id, reason, by)

    def retry(self, run_id: str, *, node: str | None = None, reason: str = "",
              by: str | None = None) -> RunRecord:  # fmt: skip
        """Continue a failed run from its failed nodes (or from ``node``); a worker
        executes it."""
        return self.transport.retry(run_id, node, reason, by)

    def skip(self, run_id: str, node: str, output: Any = None, *, reason: str = "",
             by: str | None = None) -> RunRecord:  # fmt: skip
        """Mark ``node`` done by hand with ``output``; the run goes on from there."""
        return self.transport.skip(run_id, node, output, reason, by)

    def fork(self, run_id: str, node: str, sets: dict[str, Any] | None = None, *,
             version: str | None = None, by: str | None = None,
             dry_run: bool = False) -> Document:  # fmt: skip
        """Start a new run from a run that has ended, reusing its recorded outputs of
        every node not after ``node`` (``node`` and what follows run again); a worker
        executes it. ``sets``: ``{"input.FIELD": value, "nodes.N.output": value}``;
        ``version``: run another version of the workflow. The document says what is
        reused and what runs again (``nodes``), with the new ``run_id`` (None with
        ``dry_run``, which records nothing)."""
        return self.transport.fork(run_id, node, dict(sets or {}), version, by, dry_run)

    # --- waiting ----------------------------------------------------------------------------

    def approvals(self, *, run_id: str | None = None) -> list[Wait]:
        """Approvals waiting for a decision, oldest first."""
        return self.transport.approvals(run_id)

    def waits(self, run_id: str | None = None) -> list[Wait]:
        """Everything waiting (approvals, timers, signals, child runs), oldest first
        (a store client only: the API lists approvals)."""
        return self.transport.waits(run_id)

    def approve(self, run_id: str, node: str, *, data: Any = None, comment: str = "",
                by: str | None = None) -> RunRecord:  # fmt: skip
        return self.transport.approve(run_id, node, data, comment, by)

    def reject(self, run_id: str, node: str, *, comment: str = "",
               by: str | None = None) -> RunRecord:  # fmt: skip
        return self.transport.reject(run_id, node, comment, by)

    def signal(self, run_id: str, name: str, data: Any = None, *,
               by: str | None = None) -> RunRecord:  # fmt: skip
        return self.transport.signal(run_id, name, data, by)

    def emit(self, name: str, data: Any = None, *, message_id: str | None = None) -> list[Fired]:
        """Send the event ``name``: each deployed workflow whose event trigger takes it
        starts a run (recorded when this returns). ``message_id``: however often the
        same id is sent, a workflow starts one run for it (default: a random id)."""
        return self.transport.emit(name, data, message_id or uuid.uuid4().hex)

    # --- operations -------------------------------------------------------------------------

    def failed(self, *, workflow: str | None = None, limit: int = 50) -> list[Document]:
        """Failed runs, newest first, with the node that failed and its error."""
        return self.transport.failed(workflow, limit)

    def circuits(self) -> list[Document]:
        """Circuit breakers that have counted failures."""
        return self.transport.circuits()

    def alerts(self) -> list[Document]:
        """The alert rules evaluated so far (``keel alerts --json``), by name: ``state``
        (ok, pending, firing) and ``since`` when, the last ``value`` read (None: too few
        runs) and when (``evaluated_at``), the ``incident`` firing, what the rule checks
        (``condition``, ``rule``)."""
        return self.transport.alerts()

    def workflows(self, name: str | None = None) -> list[Document]:
        """Deployed workflows with their current version; with ``name``, that
        workflow's every deploy, oldest first (``current`` marks the current one)."""
        return self.transport.workflows(name)

    def versions(self, workflow: str) -> Document:
        """Every version of ``workflow`` the store knows, newest first: deployed (when,
        by whom, from where; ``current``), or only seen in runs, each with its runs
        counted (``keel versions --json``, ``GET /workflows/{name}/versions``)."""
        return self.transport.versions(workflow)

    def diff(self, a: str, b: str) -> Document:
        """What differs between two runs (node by node: inputs, outputs, errors) or two
        workflow versions (nodes, edges, policies); each named by id or first digits,
        ``run:ID``, ``version:DIGITS`` or ``WORKFLOW@DIGITS`` (``keel diff --json``,
        ``GET /diff``)."""
        return self.transport.diff(a, b)

    def deploy(self, *workflows: Any, by: str | None = None,
               source: str | None = None) -> list[Document]:  # fmt: skip
        """Deploy ``@keel.workflow``s or specs: each becomes its name's current version.
        Over HTTP the child workflows they call must be deployed already."""
        specs = [(getattr(w, "spec", w), getattr(w, "registry", None), source)
                 for w in workflows]  # fmt: skip
        return self.transport.deploy(specs, by)

    # --- schedules --------------------------------------------------------------------------

    def schedules(self) -> list[Document]:
        """The deployed schedules by name (``keel schedules --json``): ``workflow``,
        ``cron``, ``timezone``, ``paused`` (and ``paused_by``), the ``last_slot`` fired
        and the ``next`` three fire times (``local`` in the zone, ``utc``)."""
        return self.transport.schedules()

    def pause_schedule(self, name: str, *, by: str | None = None) -> None:
        """Pause the schedule ``name``: its slots start nothing until it is unpaused."""
        self.transport.pause_schedule(name, True, by)

    def unpause_schedule(self, name: str, *, by: str | None = None) -> None:
        """Unpause the schedule ``name``; the slots missed while it was paused follow
        its ``catch_up`` policy."""
        self.transport.pause_schedule(name, False, by)

    def trigger_schedule(self, name: str) -> str:
        """Start a run of the schedule ``name`` now, outside its slots, with its input;
        the run's id."""
        return self.transport.trigger_schedule(name)

    def backfill(self, name: str, start: float, end: float) -> list[Document]:
        """Start one run per slot of the schedule ``name`` from ``start`` to ``end``
        (timestamps, both included), each keyed by its slot: a slot fired already (by
        the workers or an earlier backfill) starts nothing again; ``end`` may not be
        after now. Each slot (``slot``, UTC) with its ``run`` and whether this
        ``started`` it."""
        return self.transport.backfill(name, start, end)
