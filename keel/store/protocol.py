"""The ``Store`` protocol: everything the runtime and the CLI need from a database.

Written so that SQLite (embedded, one host) and PostgreSQL (many hosts) satisfy it with
the same semantics, checked by one contract test-suite. Rules every backend keeps:

- A run's events are append-only, numbered 1, 2, 3... with no gap, and each stores the
  SHA-256 of the previous one (``keel.store.chain``), starting at the run's creation.
- A value longer than the store's ``blob_threshold`` is stored once as a blob and named
  by reference where it occurs (``keel.store.blobs``); every read gives it back whole.
- ``commit`` applies each transition atomically; the transitions of one call share a
  database transaction where the backend can (group commit), but one refused transition
  never takes the others down with it.
- A ready attempt is held by at most one owner at a time; a lease is only taken over
  through ``reclaim`` (expired, or its owner known dead), which records why.
- Specs are stored by version and never change, so a run always has its own definition.
- A transition's child runs (``CreateChild``) are created with it (run row, spec, first
  transition), and its timers (``SetTimer``) may be for other runs (a child tells its
  parent it ended that way).
- A run on hold (``Hold``) has its queued attempts out of every claim's reach until the
  hold is released; an attempt reclaimed from it meanwhile goes back on hold.
- A worker is live while it is seen (``worker_seen``); a row alone proves nothing, as a
  killed worker never removes its own.
- Attempts with a concurrency key are never held more than its limit at once, and
  attempts with a rate key never start more than its limit in any window, across every
  process using the store; only ``claim`` takes them (see ``keel.store.limits``).
- A run's row changes only with its ``updated_at`` (the change feed, ``runs_changed``,
  reads by it), and a failed run's row says why it failed (``failed_node``,
  ``error_type``), written with the status.
- Alerts are evaluated by one process at a time (a lease); a rule's state and the
  notifications its change calls for are written together, only by that holder.
- A pruned run (``prune_runs``) keeps its row, head included, and its tombstone, written
  in the transaction that removed its payloads; it takes no more events. Its blobs go
  with the next ``sweep_blobs``, unless a kept event or run names them too.
- Checkpoints are kept as given (the store never signs or checks a signature); a
  checkpoint's heads read back exactly, in run id order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from keel.spec.model import WorkflowSpec
from keel.store.alerts import AlertNotice, AlertState, EndedRuns
from keel.store.chain import ChainLink
from keel.store.deployments import Deployment, StoredVersion
from keel.store.gauges import StoreGauges
from keel.store.heads import AuditKey, CheckpointSummary, RunHead, StoredCheckpoint
from keel.store.model_calls import (
    CallEnded,
    CallSent,
    CallSums,
    ModelCall,
    Spend,
    SpendLimits,
    SpendRefused,
)
from keel.store.presence import WorkerRecord
from keel.store.records import (
    CircuitState,
    Claimed,
    Lease,
    OutboxItem,
    QueuedAttempt,
    RunChange,
    RunRecord,
    StoredEvent,
    Timer,
    Wait,
)
from keel.store.schedules import ScheduleState
from keel.store.summaries import FailureGroup, Throughput
from keel.store.task_logs import AttemptLines, TaskLogLine
from keel.store.tokens import TokenRecord
from keel.store.tombstones import PruneCandidate, StoredTombstone, Tombstoned
from keel.store.wakeups import Wakeup
from keel.store.writes import Committed, Transition


class Store(Protocol):
    def save_spec(self, spec: WorkflowSpec, at: float) -> None:
        """Keep a definition under its version (a no-op if that version is stored)."""

    def load_spec(self, version: str) -> WorkflowSpec:
        """The definition stored under ``version``; ``StoreError`` if missing or altered."""

    def create_run(
        self,
        spec: WorkflowSpec,
        run_input: Any,
        first: Transition,
        *,
        origin: str | None = None,
        started_by: str | None = None,
    ) -> Committed:
        """Create run ``first.run_id`` and commit its first transition (``RunStarted``
        and what follows) with it, atomically. A ``first`` with a ``lease`` request leases its
        first attempts as ``commit`` does, so the starting worker needs no claim."""

    def commit(self, transitions: Sequence[Transition]) -> list[Committed]:
        """Apply transitions, each atomically; results in the same order."""

    def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_for: float,
        *,
        run_id: str | None = None,
        run_ids: Sequence[str] | None = None,
        queues: Sequence[str] | None = None,
        expected: bool = False,
    ) -> list[Claimed]:
        """Lease up to ``limit`` ready attempts to ``owner`` and record ``NodeStarted``.

        Only attempts of ``run_id`` (or of ``run_ids``) when given, only of ``queues``
        when given; highest priority first, then oldest. ``expected``: work is likely
        waiting (a wake-up said attempts were queued), so a store that would first look
        read-only, as most polls find nothing, goes straight to the write.
        """

    def renew(self, owner: str, now: float, lease_for: float) -> int:
        """Extend every lease ``owner`` holds; the number of leases renewed."""

    def lease_owners(self) -> list[str]:
        """Every owner holding a lease now (to find the ones whose process died)."""

    def reclaim(
        self, now: float, *, dead_owners: Sequence[str] = (), reason: str = ""
    ) -> list[StoredEvent]:
        """Put back on the queue attempts whose lease expired or whose owner is dead.

        Records a ``NodeReclaimed`` event for each; returns those events.
        """

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id or unique id prefix; ``RunNotFoundError`` otherwise."""

    def list_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        parent: str | None = None,
        limit: int = 50,
        version: str | None = None,
        started_by: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        cursor: tuple[float, str] | None = None,
        late: bool | None = None,
        error_type: str | None = None,
        node: str | None = None,
        ended_after: float | None = None,
        ended_before: float | None = None,
    ) -> list[RunRecord]:
        """Newest first (then by id); every filter given must hold. ``version``: a
        version or the first digits of one; ``parent``: only the child runs of that run;
        ``created_after`` inclusive, ``created_before`` exclusive; ``cursor``: the
        ``(created_at, id)`` of the last run of the previous page; ``late``: only runs
        that are (or are not) late; ``error_type``, ``node``: only failed runs whose
        failing node's last error has that type, and whose failing node is that one
        (``RunRecord.error_type``, ``failed_node``); ``ended_after`` inclusive,
        ``ended_before`` exclusive: only runs that ended then (``RunRecord.ended_at``;
        a run not ended is never selected by them). Each filter, and any combination,
        reads an index."""

    def count_runs(
        self,
        *,
        status: str | None = None,
        workflow: str | None = None,
        parent: str | None = None,
        version: str | None = None,
        started_by: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        late: bool | None = None,
        error_type: str | None = None,
        node: str | None = None,
        ended_after: float | None = None,
        ended_before: float | None = None,
    ) -> dict[str, int]:
        """How many runs ``list_runs`` with the same filters would list without a limit,
        by status (statuses with none left out): the same selection, never a different
        one. It reads every run selected, through a filter's index: every run when no
        filter narrows them (none, or only ``late=False``), so it costs in proportion
        to the runs it counts."""

    def runs_changed(self, after: tuple[float, str] | None, limit: int) -> list[RunChange]:
        """The change feed: up to ``limit`` runs whose row was written after the position
        ``after`` (an ``(updated_at, id)``, a ``RunChange.position``), in that order;
        each run once, as it is now. Every commit that appends to a run, or changes its
        status or late flag, sets its ``updated_at`` to the transition's time. With
        ``after`` None: the run written last only (none in an empty store), whose
        position is where a reader starts to tail from, so it reads no backlog.

        ``updated_at`` is the time the writer gave the transition, not the time it
        committed: a commit decided before a later one, or on a host whose clock is
        behind, can become visible behind a position a reader has passed. A reader that
        must see every change asks again from a little before its position (a few
        seconds) and skips what it has seen (the same ``id`` and ``last_seq``)."""

    def quiet_runs(self, before: float, limit: int) -> list[RunRecord]:
        """Up to ``limit`` runs that should move on by themselves (pending, running or
        failing) whose row has not changed since ``before`` (``updated_at <= before``),
        the quietest first (then by id), leaving out those waiting for something by
        design (an open wait: an approval, a timer, a signal, a child run): where to
        look for stuck runs. Read by the index of runs by ``updated_at``."""

    def history(
        self, run_id: str, after_seq: int = 0, before_seq: int | None = None
    ) -> list[StoredEvent]:
        """The run's events with ``seq > after_seq`` and, when given, ``seq <
        before_seq``, in order: a page of a long history reads that page only (the
        numbers have no gap, so ``before_seq = after_seq + n + 1`` gives ``n`` events
        at most)."""

    def first_event(self, run_id: str) -> StoredEvent | None:
        """The run's first event (its ``RunStarted``: what started it), None for no
        such run: one row, for a look at many runs that ``history`` would read whole."""

    def chain_links(self, run_id: str) -> list[ChainLink]:
        """The run's events exactly as stored, for ``verify_chain``: large values are
        references to blobs there (``keel.store.blobs``)."""

    def blobs(self, names: Iterable[str]) -> dict[str, str]:
        """The stored text (canonical JSON) of each of the named blobs (``sha256:<hex>``)
        that the store holds, by name; one missing is left out. What ``verify_blobs``
        checks the references of ``chain_links`` against, and what an export carries."""

    def leases(self, run_id: str) -> list[Lease]:
        """The run's attempts currently held by a worker."""

    def ready_count(self, run_id: str) -> int:
        """How many of the run's attempts wait on the ready queue, held or not."""

    # --- why a run waits (``keel why``): the queue and the limits, read only ---------------

    def ready_attempts(self, run_id: str, limit: int = 1000) -> list[QueuedAttempt]:
        """The run's attempts on the ready queue, leased or not, by node then item (at
        most ``limit``): what each needs before a claim may take it, and who holds it."""

    def limit_holders(self, key: str) -> list[Lease]:
        """The attempts of any run holding the concurrency key ``key`` now (at most its
        limit), by run, node and item."""

    def rate_starts(self, key: str, since: float) -> list[float]:
        """The start times recorded for the rate key ``key`` after ``since``, oldest
        first: the window a claim counts (``keel.store.limits.rate_free_at``)."""

    def take_notifications(
        self, owner: str, now: float, limit: int, lease_for: float
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` notifications due for delivery (``lease_for`` seconds:
        one whose deliverer died is taken again after that)."""

    def finish_notification(
        self, item_id: int, now: float, *, error: str | None = None, retry_at: float | None = None
    ) -> None:
        """Mark a notification delivered, or failed: tried again at ``retry_at``, or
        given up (kept with its error) when that is None."""

    def circuits(self) -> list[CircuitState]:
        """Circuits that counted failures since they last closed (open ones included)."""

    def waits(
        self, *, waits_for: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[Wait]:
        """Nodes waiting now (``approval``, ``timer``, ``signal``, ``subworkflow``), oldest
        first, optionally of one kind or one run."""

    def due_timers(self, now: float, limit: int) -> list[Timer]:
        """Timers due at ``now`` or earlier, earliest first."""

    def schema_version(self) -> int:
        """The newest migration applied to the database."""

    def migrations_applied(self) -> list[str]:
        """The migrations this store applied when it was opened (``NNNN_name``)."""

    def next_timer_at(self) -> float | None:
        """When the earliest timer is due (None: no timer), so a worker sleeps until then."""

    def database_time(self) -> float | None:
        """The database server's clock, for a store shared by many hosts (leases and
        timers must not depend on one host's clock); None when every user of the store
        shares this host's clock."""

    def listen(self, wake: Callable[[Wakeup], None]) -> Callable[[], None] | None:
        """Call ``wake`` (on a thread of the store's) when another process leaves work
        (``keel.store.wakeups``: attempts queued, a timer set, the outbox filled, or
        wake-ups maybe missed). Returns a function that stops listening; None when the
        backend cannot notify (then workers poll)."""

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    # --- the service: tokens, sessions and deployments (keel.store.tokens, .deployments) ---

    def add_token(self, token: TokenRecord, secret_hash: str) -> None:
        """Keep a new token (its secret's hash only); ``StoreError`` if the name is taken,
        revoked tokens included."""

    def token_by_hash(self, secret_hash: str) -> TokenRecord | None:
        """The token whose secret hashes to ``secret_hash``, revoked or not."""

    def tokens(self) -> list[TokenRecord]:
        """Every token ever created, oldest first."""

    def revoke_token(self, name: str, at: float, by: str | None = None) -> bool:
        """Revoke a token; False when no usable token has that name."""

    def add_session(
        self, secret_hash: str, token_hash: str, created_at: float, expires_at: float
    ) -> None:
        """Keep a browser's session: the hash of its secret (never the secret) and the
        secret hash of the token it stands for (``token_by_hash`` finds that token, so a
        revoked or expired token ends its sessions). ``StoreError`` if a session with
        that secret exists."""

    def session_token_hash(self, secret_hash: str, now: float) -> str | None:
        """The token hash of the session with this secret hash; None when there is no
        such session or it has expired (``now`` is at or past its ``expires_at``)."""

    def end_session(self, secret_hash: str) -> None:
        """Remove a session (signed out); nothing happens for an unknown one."""

    def forget_sessions(self, before: float) -> int:
        """Remove the sessions expired by ``before`` (``expires_at`` at or before it);
        how many were removed."""

    def deploy(
        self,
        specs: Sequence[tuple[WorkflowSpec, str | None]],
        at: float,
        *,
        by: str | None = None,
    ) -> list[Deployment]:
        """Save each definition and make it its workflow's current version, all in one
        transaction (a failure deploys none); each with where it came from (``source``)."""

    def deployments(self, workflow: str | None = None) -> list[Deployment]:
        """Every deploy (of one workflow), by workflow then oldest first."""

    def stored_versions(
        self, *, workflow: str | None = None, prefix: str = "", limit: int = 1000
    ) -> list[StoredVersion]:
        """The definitions stored (only ``workflow``'s; only those whose version begins
        with ``prefix``, lower-case hex), by version, at most ``limit``: each with how
        many runs started with it and when the first and last did. One read: the specs
        (a row per version ever stored, never per run; by their key for a prefix) and
        each one's runs through the index of runs by version, which holds their start
        times, so no run's row is read."""

    # --- schedules (see keel.store.schedules) -------------------------------------------

    def schedules(self) -> list[ScheduleState]:
        """Every schedule the store has a row for (paused, or looked at by a worker)."""

    def pause_schedule(
        self, name: str, workflow: str, paused: bool, at: float, by: str | None = None
    ) -> None:
        """Pause (or unpause) the schedule ``name`` of ``workflow``: its slots are left
        out while paused."""

    def advance_schedule(self, name: str, workflow: str, slot: float) -> None:
        """Record ``slot`` (a UTC timestamp) as fired or left out for ``name``; an older
        slot than the one recorded changes nothing (it only moves forward)."""

    # --- live workers (see keel.store.presence) -------------------------------------------

    def register_worker(self, worker: WorkerRecord) -> None:
        """Record a worker that starts (replacing any row with its owner)."""

    def worker_seen(self, owner: str, at: float) -> bool:
        """The worker's heartbeat: it was seen ``at``. False when the store does not
        know it (it was forgotten meanwhile): it should register again."""

    def unregister_worker(self, owner: str) -> None:
        """Remove a worker that stops cleanly (nothing happens for an unknown one)."""

    def live_workers(self, seen_since: float) -> list[WorkerRecord]:
        """The workers seen at ``seen_since`` or later, the longest running first."""

    def forget_workers(self, seen_before: float) -> int:
        """Remove the workers not seen since ``seen_before`` (killed ones never
        unregister); how many were removed."""

    # --- metrics (see keel.store.gauges) ----------------------------------------------------

    def gauges(self, now: float, live_since: float) -> StoreGauges:
        """What the store holds at ``now``, counted in one cheap read: ready attempts
        per queue (due, not held) and the oldest one's ready time, runs waiting per kind
        of wait, notifications not delivered yet, and workers seen since ``live_since``;
        and the LLM ledger summed per workflow, kind, model and state (a scan of every
        call recorded: see ``keel.store.gauges``)."""

    # --- summaries for people watching many runs (see keel.store.summaries) -------------

    def throughput(self, since: float, step: float, steps: int) -> Throughput:
        """Runs created, and runs ended (by final status, at their ``ended_at``), in
        each of ``steps`` steps of ``step`` seconds from ``since``: two grouped reads of
        the indexes by creation and by end time, costing the runs in the window."""

    def failure_groups(
        self, *, created_after: float | None = None, limit: int = 100
    ) -> list[FailureGroup]:
        """Failed runs (created at ``created_after`` or later) grouped by error type
        and failed node, the most runs first, then the newest (at most ``limit``
        groups): each group's count is what ``count_runs(status="failed",
        error_type=..., node=..., created_after=...)`` counts. One grouped read of the
        failed runs' index."""

    # --- what tasks logged (see keel.store.task_logs) -------------------------------------

    def keep_task_logs(self, batches: Sequence[AttemptLines]) -> None:
        """Append lines of attempts still running to their runs' (an attempt's last lines
        go in with its outcome, as a ``KeepLogs`` write), numbered after each run's last."""

    def task_logs(
        self,
        run_id: str,
        *,
        node: str | None = None,
        attempt: int | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[TaskLogLine]:
        """Up to ``limit`` of the run's lines with ``seq > after``, in order; only those
        of ``node`` and of ``attempt`` when given. A line committed after this read has
        a higher ``seq`` than every line it returned."""

    # --- alerts (see keel.store.alerts) ---------------------------------------------------

    def ended_runs(
        self,
        since: float,
        *,
        workflow: str | None = None,
        quantile: float | None = None,
        quantiles: Sequence[float] = (),
    ) -> EndedRuns:
        """The runs (of ``workflow``) that succeeded or failed at ``since`` or later, how
        many failed, and with ``quantile`` (0 to 1) the duration at that quantile (the
        nearest rank), from one aggregate on the ended runs' index; ``quantiles``: the
        durations at each (``EndedRuns.durations``), from the same one sort."""

    def overdue_approvals(self, now: float) -> int:
        """Approvals still waiting past their time (their timeout) at ``now``."""

    def hold_alert_lease(self, owner: str, now: float, lease_for: float) -> bool:
        """Take the lease of evaluating alerts for ``lease_for`` seconds when it is free,
        expired or ``owner``'s already (renewed); whether ``owner`` holds it now."""

    def release_alert_lease(self, owner: str) -> None:
        """Give the lease back, so another process takes over at once (a no-op unless
        ``owner`` holds it)."""

    def alert_states(self) -> list[AlertState]:
        """Every rule's state as its last evaluation left it, by name."""

    def record_alerts(
        self,
        owner: str,
        now: float,
        states: Sequence[AlertState],
        notices: Sequence[AlertNotice],
        *,
        forget: Sequence[str] = (),
    ) -> bool:
        """Write the rules' states and the notifications their changes call for, and
        drop the rules in ``forget``, in one transaction, only while ``owner`` holds the
        lease at ``now``: False (nothing written) when it does not."""

    def take_alert_notices(self, now: float, limit: int) -> list[OutboxItem]:
        """Up to ``limit`` alert notifications due at ``now``, counted as one more
        delivery each (their ``run_id`` is empty: an alert has no run)."""

    def finish_alert_notice(
        self, item_id: int, now: float, *, error: str | None = None, retry_at: float | None = None
    ) -> None:
        """Mark an alert notification delivered, or failed: tried again at ``retry_at``,
        or given up (kept with its error) when that is None."""

    # --- calls steps make outward: the LLM ledger (see keel.store.model_calls) ------------

    def send_call(self, call: CallSent, limits: SpendLimits | None = None) -> SpendRefused | None:
        """Record ``call`` as sent (state ``sent``, numbered after the node's and item's
        last call), unless its reservation would pass one of ``limits``: then nothing is
        written and the refusal says which limit and what was spent. The check and the
        write are one transaction (on PostgreSQL: serialised per run and per workflow)."""

    def end_call(self, end: CallEnded) -> bool:
        """Record how a sent call ended; False (and nothing written) when it is not
        ``sent`` any more (another process ended it first) or does not exist."""

    def model_calls(self, run_id: str, *, node: str | None = None) -> list[ModelCall]:
        """The run's calls (only ``node``'s when given), by node, item and ``seq``."""

    def run_spend(self, run_id: str) -> dict[str, Spend]:
        """The run's spend per node (an empty dict: no calls)."""

    def workflow_spend(
        self, since: float, *, workflow: str | None = None
    ) -> dict[tuple[str, str], Spend]:
        """Spend of calls sent at or after ``since``, per (workflow, model); only
        ``workflow``'s when given."""

    def run_call_sums(self, run_id: str) -> dict[tuple[str, int | None, str, str, str], CallSums]:
        """The run's calls summed per (node, item, kind, model, state): what its ledger
        shows, without reading any call's request or answer (an empty dict: no calls)."""

    # --- retention: pruned runs and their tombstones (see keel.store.tombstones) ----------

    def prune_candidates(
        self,
        ended_before: float,
        *,
        workflow: str | None = None,
        after: tuple[float, str] | None = None,
        limit: int = 500,
    ) -> list[PruneCandidate]:
        """Up to ``limit`` runs that ended (succeeded, failed, cancelled) before
        ``ended_before`` and are not pruned (of ``workflow`` when given), after the
        position ``after`` (an ``(ended_at, id)``), by end time then id: each with the
        counts of what pruning it removes, and ``kept_by`` when a parent or child run
        of it is still going. Read by the index of ended runs not pruned."""

    def prune_runs(self, tombstones: Sequence[Tombstoned]) -> list[str]:
        """Prune the runs of ``tombstones`` in one transaction: remove each one's events,
        task log lines, LLM calls, queue, timer, wait and outbox rows, clear its input
        and output, set its ``pruned_at`` and keep its tombstone (as ``to_data``). Only
        runs the tombstone still describes (``keel.store.tombstones.still_fits``: ended,
        not pruned, no parent or child going, same head and counts) are pruned; the
        others are left untouched. The ids pruned, sorted."""

    def sweep_blobs(self) -> tuple[int, int]:
        """Remove the blobs that no event and no run's ``input`` or ``output`` names any
        more (left so by ``prune_runs``), in one transaction that no write storing a
        blob overlaps: a reference cannot appear between the look and the delete. How
        many blobs were removed and their bytes."""

    def blobs_to_sweep(self, ignoring: Collection[str] = ()) -> tuple[int, int]:
        """What ``sweep_blobs`` would remove, if the runs ``ignoring`` named no blob
        (the runs a prune would prune): how many blobs and their bytes. Reads only."""

    def tombstone(self, run_id: str) -> StoredTombstone | None:
        """The tombstone of the run with exactly this id; None when it was not pruned."""

    def tombstones(
        self, *, after: tuple[float, str] | None = None, limit: int = 1000
    ) -> list[StoredTombstone]:
        """Up to ``limit`` tombstones after the position ``after`` (a ``(pruned_at,
        run_id)``), oldest first."""

    # --- signed checkpoints of run heads (see keel.store.heads, keel.audit) --------------

    def run_heads(self, workflow: str | None = None) -> list[RunHead]:
        """Every run's head (last sequence number and link hash), in run id order; only
        ``workflow``'s runs when given."""

    def add_checkpoint(self, checkpoint: StoredCheckpoint, public_key: str) -> int:
        """Keep a signed checkpoint as given, and ``public_key`` (text) as the key of its
        signature if that key is new; the checkpoint's id."""

    def add_periodic_checkpoint(
        self, checkpoint: StoredCheckpoint, public_key: str, since: float
    ) -> int | None:
        """``add_checkpoint``, unless a checkpoint of every run was made after
        ``since`` (another process made this period's): None then. Checked and written
        under one lock, so processes racing for a period store one."""

    def checkpoints(self, limit: int | None = 100) -> list[CheckpointSummary]:
        """Stored checkpoints without their heads, newest first (every one: ``None``)."""

    def checkpoint(self, checkpoint_id: int) -> StoredCheckpoint | None:
        """A stored checkpoint with its heads; None when there is none by that id."""

    def add_audit_key(self, key_id: str, public_key: str, at: float) -> None:
        """Remember a public key that signed something (kept with its first use)."""

    def audit_keys(self) -> list[AuditKey]:
        """The public keys that signed something here, oldest first."""
