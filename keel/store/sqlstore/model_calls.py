"""The ledger's table: calls steps make outward, each written when sent and when ended.

A call is recorded (``send_call``) in one write that first holds the spend locks of its
run, then of its workflow when a day's limit is checked (``Dialect.lock_key``: advisory
locks on PostgreSQL, always taken in that order, so two writers never wait for each
other in a circle; nothing on SQLite, whose write lock holds the whole database). Under
them it sums what the run (and the workflow since the day's start) has charged, refuses
the call if its reservation would pass a limit, and numbers it after its node's and
item's last call: two workers racing for the last dollar of a budget cannot both get
it, and two calls of one node never get one number. A call ends once (``end_call``):
only a call still ``sent`` is updated.

The same writes keep the ledger's sums per workflow, kind, model and state
(``model_call_sums``, what the metrics read): a call sent adds to its group's ``sent``
row; ended, it moves to its state's row, with its tokens and cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from keel.store.boundary import store_boundary
from keel.store.chain import canonical_json
from keel.store.model_calls import (
    CallEnded,
    CallSent,
    CallSums,
    ModelCall,
    Spend,
    SpendLimits,
    SpendRefused,
)
from keel.store.records import item_column, item_of
from keel.store.sqlstore.dialect import Cursor
from keel.store.sqlstore.reads import SQLReader


def run_lock(run_id: str) -> str:
    """The lock that orders the calls of one run (and their numbers)."""
    return f"keel spend of run {run_id}"


def workflow_lock(workflow: str) -> str:
    """The lock that orders the calls checked against one workflow's day."""
    return f"keel spend of workflow {workflow}"


def _json(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _loaded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def sent_row(call: CallSent, seq: int) -> tuple[Any, ...]:
    """The row ``insert_model_call`` takes."""
    return (call.id, call.run_id, call.workflow, call.node, item_column(call.item),
            call.attempt, seq, call.kind, call.fingerprint, call.provider, call.model,
            canonical_json(call.request), call.reserved, call.at)  # fmt: skip


def ended_row(end: CallEnded) -> tuple[Any, ...]:
    """The parameters ``end_model_call`` takes."""
    return (end.state, _json(end.response), _json(end.error), end.finish_reason,
            end.input_tokens, end.output_tokens, end.cached_input_tokens,
            end.reasoning_tokens, end.usage_reported, end.cost, end.price_source,
            end.latency, end.at, end.id)  # fmt: skip


def model_call_of(row: Sequence[Any]) -> ModelCall:
    """A call from ``select_model_calls``'s columns."""
    (call_id, run_id, workflow, node, item, attempt, seq, kind, state, fingerprint, provider,
     model, request, reserved, sent_at, response, error, finish_reason, input_tokens,
     output_tokens, cached_input_tokens, reasoning_tokens, usage_reported, cost,
     price_source, latency, ended_at) = row  # fmt: skip
    return ModelCall(
        id=call_id,
        run_id=run_id,
        workflow=workflow,
        node=node,
        item=item_of(item),
        attempt=int(attempt),
        seq=int(seq),
        kind=kind,
        state=state,
        fingerprint=fingerprint,
        provider=provider,
        model=model,
        request=json.loads(request),
        reserved=int(reserved),
        sent_at=float(sent_at),
        response=_loaded(response),
        error=_loaded(error),
        finish_reason=finish_reason,
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cached_input_tokens=int(cached_input_tokens),
        reasoning_tokens=int(reasoning_tokens),
        usage_reported=bool(usage_reported),
        cost=int(cost),
        price_source=price_source,
        latency=float(latency),
        ended_at=None if ended_at is None else float(ended_at),
    )


def spend_of(sums: Sequence[Any]) -> Spend:
    """Totals from the sums ``run_spend`` and ``workflow_spend`` select after their keys
    (PostgreSQL sums big integers as decimals: exact, made ``int`` here)."""
    return Spend(*(int(value or 0) for value in sums))


def sums_of(sums: Sequence[Any]) -> CallSums:
    """Totals from the sums ``run_call_sums`` and ``llm_call_sums`` select after their
    keys."""
    return CallSums(*(int(value or 0) for value in sums))


@store_boundary
class SQLModelCalls(SQLReader):
    """Recording calls (within budgets) and reading them and their spend back."""

    def send_call(self, call: CallSent, limits: SpendLimits | None = None) -> SpendRefused | None:
        dialect = self.dialect
        day = limits is not None and limits.workflow_day is not None
        with dialect.write() as cur:
            dialect.lock_key(cur, run_lock(call.run_id))  # first the run, then the workflow
            if day:
                dialect.lock_key(cur, workflow_lock(call.workflow))
            if limits is not None:
                refused = self._refusal(cur, call, limits)
                if refused is not None:
                    return refused
            item = item_column(call.item)
            row = cur.execute(self.q["next_model_call_seq"], (call.run_id, call.node, item))
            (seq,) = row.fetchone()
            cur.execute(self.q["insert_model_call"], sent_row(call, int(seq)))
            cur.execute(self.q["add_model_call_sums"], (call.workflow, call.kind, call.model,
                                                        "sent", 1, 0, 0, 0, 0, call.reserved,
                                                        0))  # fmt: skip
        return None

    def _refusal(self, cur: Cursor, call: CallSent, limits: SpendLimits) -> SpendRefused | None:
        """Why the call may not be recorded (the run's limit first), or None; read
        holding the spend locks the limits need."""
        if limits.run is not None:
            (spent,) = cur.execute(self.q["run_spent"], (call.run_id,)).fetchone()
            if call.reserved + int(spent) > limits.run:
                return SpendRefused("run", int(spent), limits.run, call.reserved)
        if limits.workflow_day is not None:
            params = (call.workflow, limits.day_start)
            (spent,) = cur.execute(self.q["workflow_spent"], params).fetchone()
            if call.reserved + int(spent) > limits.workflow_day:
                return SpendRefused("workflow_day", int(spent), limits.workflow_day,
                                    call.reserved)  # fmt: skip
        return None

    def end_call(self, end: CallEnded) -> bool:
        with self.dialect.write() as cur:
            ended = cur.execute(self.q["end_model_call"], ended_row(end)).fetchone()
            if ended is None:
                return False
            workflow, kind, model, reserved = ended
            # out of its group's sent row first, then into its state's: the same order in
            # every writer (see model_call_sums' migration)
            cur.execute(self.q["add_model_call_sums"], (workflow, kind, model, "sent", -1, 0,
                                                        0, 0, 0, -int(reserved), 0))  # fmt: skip
            cur.execute(self.q["add_model_call_sums"], (
                workflow, kind, model, end.state, 1, end.input_tokens, end.output_tokens,
                end.cached_input_tokens, end.reasoning_tokens, end.cost,
                0 if end.usage_reported else 1))  # fmt: skip
            return True

    def model_calls(self, run_id: str, *, node: str | None = None) -> list[ModelCall]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["select_model_calls"], {"run": run_id, "node": node})
            return [model_call_of(row) for row in rows.fetchall()]

    def run_spend(self, run_id: str) -> dict[str, Spend]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["run_spend"], (run_id,)).fetchall()
        return {row[0]: spend_of(row[1:]) for row in rows}

    def workflow_spend(
        self, since: float, *, workflow: str | None = None
    ) -> dict[tuple[str, str], Spend]:
        params = {"since": since, "workflow": workflow}
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["workflow_spend"], params).fetchall()
        return {(row[0], row[1]): spend_of(row[2:]) for row in rows}

    def run_call_sums(self, run_id: str) -> dict[tuple[str, int | None, str, str, str], CallSums]:
        with self.dialect.read() as cur:
            rows = cur.execute(self.q["run_call_sums"], (run_id,)).fetchall()
        return {(row[0], item_of(row[1]), row[2], row[3], row[4]): sums_of(row[5:])
                for row in rows}  # fmt: skip
