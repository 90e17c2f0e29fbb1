"""A run with a known ledger, written through the store's API alone (no model is
called): ``classify`` answered once; ``draft``, a map of three items, answered five
times (one reported no usage: estimated), failed once, and left one possibly billed and
one still in flight; ``route`` made no call. And a second workflow's run, on another
model, with an agent's tool call."""

from __future__ import annotations

from dataclasses import dataclass

from keel.runtime.clock import FakeClock
from keel.runtime.operations.control import start_run
from keel.spec import parse_spec
from keel.store.model_calls import CallEnded, CallSent
from keel.store.protocol import Store

T0 = 1_700_000_000.0
SPEC = {
    "name": "tickets",
    "nodes": [
        {"id": "classify", "task": "m:f"},
        {"id": "draft", "kind": "map", "task": "m:g", "items": "input.items", "item_arg": "i",
         "after": ["classify"]},
        {"id": "route", "task": "m:f", "after": ["draft"]},
    ],
}  # fmt: skip
OTHER = {"name": "agents", "nodes": [{"id": "plan", "task": "m:f"}]}
MODEL = "gpt-4o-mini"
CHEAP = "smollm2"


@dataclass(frozen=True)
class Seeded:
    run: str
    other: str
    empty: str


def _sent(store: Store, call_id: str, run: str, workflow: str, node: str, item: int | None,
          *, attempt: int = 1, reserved: int = 0, model: str = MODEL, kind: str = "model",
          at: float = T0) -> None:  # fmt: skip
    sent = CallSent(id=call_id, run_id=run, workflow=workflow, node=node, item=item,
                    attempt=attempt, kind=kind, fingerprint=f"fp-{call_id}",  # type: ignore[arg-type]
                    provider="tool" if kind == "tool" else "openai", model=model,
                    request={"messages": [{"role": "user", "content": f"ask {call_id}"}]},
                    reserved=reserved, at=at)  # fmt: skip
    assert store.send_call(sent) is None


def _answered(store: Store, call_id: str, tokens: tuple[int, int], cost: int, *,
              reported: bool = True, cached: int = 0, reasoning: int = 0) -> None:  # fmt: skip
    assert store.end_call(CallEnded(
        call_id, "answered", response={"text": f"answer {call_id}"}, finish_reason="stop",
        input_tokens=tokens[0], output_tokens=tokens[1], cached_input_tokens=cached,
        reasoning_tokens=reasoning, usage_reported=reported, cost=cost,
        price_source="genai-prices 0.0.1", latency=0.25, at=T0 + 1))  # fmt: skip


def seed(store: Store) -> Seeded:
    clock = FakeClock(T0)
    run = start_run(store, parse_spec(SPEC), {"items": [1, 2, 3]}, clock=clock).id
    other = start_run(store, parse_spec(OTHER), {}, clock=clock).id
    empty = start_run(store, parse_spec(SPEC), {"items": []}, clock=clock).id
    w = "tickets"
    _sent(store, "c1", run, w, "classify", None, reserved=5_000)
    _answered(store, "c1", (120, 30), 42_000, cached=100)
    for item in (0, 1, 2):
        _sent(store, f"d{item}", run, w, "draft", item, reserved=2_000_000)
        _answered(store, f"d{item}", (1_000, 200), 1_000_000, reasoning=50)
    _sent(store, "d0b", run, w, "draft", 0, attempt=2, reserved=2_000_000)
    _answered(store, "d0b", (1_000, 250), 1_100_000, reported=False)
    _sent(store, "d1b", run, w, "draft", 1, attempt=2, reserved=2_000_000)
    assert store.end_call(CallEnded("d1b", "failed", error={"type": "RateLimited",
                                    "message": "429 Too Many Requests"}, finish_reason=None,
                                    latency=0.1, at=T0 + 2))  # fmt: skip
    _sent(store, "d2b", run, w, "draft", 2, attempt=2, reserved=3_000_000)
    assert store.end_call(CallEnded("d2b", "possibly_billed", cost=3_000_000,
                                    price_source="its reservation: the answer was never "
                                    "recorded", error={"type": "PossiblyBilled",
                                    "message": "sent by an attempt that stopped"},
                                    at=T0 + 3))  # fmt: skip
    _sent(store, "d1c", run, w, "draft", 1, attempt=3, reserved=2_500_000)  # in flight
    _sent(store, "a1", other, "agents", "plan", None, reserved=900, model=CHEAP)
    _answered(store, "a1", (300, 40), 700)
    _sent(store, "t1", other, "agents", "plan", None, kind="tool", model="lookup")
    assert store.end_call(CallEnded("t1", "answered", response={"found": 1}, at=T0 + 1))
    return Seeded(run, other, empty)
