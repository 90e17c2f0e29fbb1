"""The calls of one node (one map item) of one run, as a step sees them: what earlier
attempts recorded, to serve again, and each new call written before it is sent.

On its first look a step ends every call still ``sent``: a process that sent it died
before recording the answer (whatever attempt it was; this one has not sent anything
yet), so the provider may have answered and billed it. It is charged its reservation,
marked *possibly billed*, and never served: there is no answer to serve.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from keel.errors import KeelError
from keel.runtime.execution.context import StepContext
from keel.store.model_calls import (
    CallEnded,
    CallKind,
    CallSent,
    ModelCall,
    SpendLimits,
    SpendRefused,
)
from keel.store.protocol import Store


class CallBook:
    def __init__(self, ctx: StepContext) -> None:
        if ctx.store is None:
            raise KeelError("a model step runs only in a keel worker (it records its calls)")
        self.ctx = ctx
        self.store: Store = ctx.store
        mine = [c for c in self.store.model_calls(ctx.run_id, node=ctx.node) if c.item == ctx.item]
        self.calls: list[ModelCall] = []
        for call in mine:
            if call.state == "sent":
                call = self._possibly_billed(call)
            self.calls.append(call)
        #: ids of the calls recorded before this attempt began
        self.earlier = {call.id for call in self.calls}
        #: ids of recorded calls this attempt has served already
        self.served: set[str] = set()
        #: nano-dollars charged by calls of this attempt (sent or ended)
        self.charged_now = 0

    def _possibly_billed(
        self,
        call: ModelCall,
        why: str = "sent by an attempt that stopped before it recorded the answer",
    ) -> ModelCall:
        now = time.time()
        end = CallEnded(id=call.id, state="possibly_billed", cost=call.reserved,
                        price_source="its reservation: the answer was never recorded",
                        error={"type": "PossiblyBilled", "message": why}, at=now)  # fmt: skip
        self.store.end_call(end)
        self.ctx.logger.warning(
            "model call %s (attempt %d) was sent but its answer never recorded (%s): counted "
            "as possibly billed at its reservation", call.seq, call.attempt, why,
        )  # fmt: skip
        return ModelCall(**{**_fields(call), "state": "possibly_billed", "cost": call.reserved,
                            "ended_at": now})  # fmt: skip

    def broke_off(self, call_id: str, error: BaseException) -> None:
        """End a call this attempt sent and got no usable answer for, for a reason that is
        not the provider's (a fault in keel or the SDK): the provider may have answered
        and billed it."""
        for index, call in enumerate(self.calls):
            if call.id == call_id and call.state == "sent":
                why = f"{type(error).__name__} while waiting for the answer: {error}"
                # charged its reservation, as while it was sent: ``charged_now`` stays
                self.calls[index] = self._possibly_billed(call, why[:300])
                return

    def recorded(self, kind: CallKind, fingerprint: str) -> ModelCall | None:
        """The first answered call with this fingerprint not served yet this attempt."""
        for call in self.calls:
            if (call.kind == kind and call.state == "answered" and call.fingerprint == fingerprint
                    and call.id not in self.served):  # fmt: skip
                self.served.add(call.id)
                return call
        return None

    def unserved_answers(self, kind: CallKind) -> int:
        """Answered calls recorded before this attempt began that it has not served
        (yet). By when they were recorded, not by attempt number: an attempt whose
        worker died runs again under the same number."""
        return sum(
            1 for c in self.calls
            if c.kind == kind and c.state == "answered" and c.id not in self.served
            and c.id in self.earlier
        )  # fmt: skip

    @property
    def node_cost(self) -> int:
        """What this node (item) has charged over all attempts, nano-dollars."""
        return sum(call.charged for call in self.calls)

    def send(
        self,
        kind: CallKind,
        fingerprint: str,
        provider: str,
        model: str,
        request: Any,
        reserved: int,
        limits: SpendLimits | None,
    ) -> str | SpendRefused:
        """Write the call as sent (its id), or the refusal of the budget."""
        ctx = self.ctx
        sent = CallSent(id=uuid.uuid4().hex, run_id=ctx.run_id, workflow=ctx.workflow,
                        node=ctx.node, item=ctx.item, attempt=ctx.attempt, kind=kind,
                        fingerprint=fingerprint, provider=provider, model=model,
                        request=request, reserved=reserved, at=time.time())  # fmt: skip
        refused = self.store.send_call(sent, limits)
        if refused is not None:
            return refused
        self.calls.append(ModelCall(
            id=sent.id, run_id=sent.run_id, workflow=sent.workflow, node=sent.node,
            item=sent.item, attempt=sent.attempt, seq=-1, kind=kind, state="sent",
            fingerprint=fingerprint, provider=provider, model=model, request=request,
            reserved=reserved, sent_at=sent.at,
        ))  # fmt: skip
        self.served.add(sent.id)
        self.charged_now += reserved
        return sent.id

    def end(self, end: CallEnded) -> None:
        if not self.store.end_call(end):
            # another process ended it first: this attempt outlived its lease (a timeout,
            # a reclaim) and a later attempt charged the call as possibly billed
            self.ctx.logger.warning(
                "model call %s was ended by another attempt meanwhile: its answer is not "
                "recorded, the ledger keeps the reservation it was charged", end.id,
            )  # fmt: skip
            return
        for index, call in enumerate(self.calls):
            if call.id == end.id:
                self.charged_now += end.cost - call.reserved
                ended = {**_fields(call), **_fields(end), "state": end.state,
                         "ended_at": end.at}  # fmt: skip
                ended.pop("at", None)
                self.calls[index] = ModelCall(**ended)
                return


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}
