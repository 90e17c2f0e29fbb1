"""One model request, the durable way: served from the ledger when an earlier attempt
recorded its answer; else reserved against the budget, written as sent, sent, and
recorded with its usage and cost as soon as the answer is in.

The order is what makes the ledger honest. The ``sent`` record is committed before the
request leaves, so a process killed while the provider answers leaves a trace a later
attempt charges as *possibly billed* (``keel.llm.ledger``); the answer is committed
before anything is done with it, so a process killed after that is served the answer
on its next attempt instead of buying it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from keel.errors import RetryLater
from keel.llm.budget import Budget, ask_for_more, dollars, exceeded
from keel.llm.config import LlmConfig
from keel.llm.errors import BudgetExceeded, ProviderRefused
from keel.llm.ledger import CallBook
from keel.llm.pricing import Price, cost_nanos, price_of, reservation_nanos
from keel.llm.records import fingerprint, request_data, response_data, response_from
from keel.llm.tokens import count_message_tokens
from keel.llm.types import ModelRequest, ModelResponse, Provider, ProviderError, Usage
from keel.store.model_calls import CallEnded

#: characters of streamed text gathered before they are written as a log line
_STREAM_LINE = 200


@dataclass
class Asker:
    """Asks one provider for one node (item); ``model`` may change once, to the node's
    ``degrade_to``, when the budget says ``degrade``."""

    book: CallBook
    provider: Provider
    config: LlmConfig
    model: str
    budget: Budget | None
    approvals: list[dict[str, Any]]
    degrade_to: str | None = None
    #: nano-dollars this node may charge in all (an agent's ``max_cost``)
    node_limit: int | None = None
    #: how much more the node is expected to need after this request, for the question
    #: a person is asked when the budget runs out
    to_finish: int = 0
    degraded: bool = field(default=False, init=False)
    #: the attempt that recorded the last answer ``ask`` gave, when it was served from
    #: the ledger (None: asked now)
    served_from: int | None = field(default=None, init=False)

    def price(self) -> Price | None:
        return price_of(self.provider.kind, self.provider.name, self.model, self.config.prices)

    def reservation(self, request: ModelRequest) -> int:
        return reservation_nanos(
            count_message_tokens(request.messages), request.max_tokens, self.price()
        )

    def ask(self, request: ModelRequest) -> ModelResponse:
        """The answer to ``request`` (with this asker's model); raises ``ProviderError``
        turned into the step's failure (``RetryLater`` or ``ProviderRefused``)."""
        request = replace(request, model=self.model)
        mark = fingerprint(self.provider.name, request)
        recorded = self.book.recorded("model", mark)
        if recorded is None and self.degrade_to and not self.degraded:
            # an earlier attempt may have switched to the cheaper model by this turn
            cheaper = fingerprint(self.provider.name, replace(request, model=self.degrade_to))
            recorded = self.book.recorded("model", cheaper)
            if recorded is not None:
                self.model, self.degraded = self.degrade_to, True
        self.served_from = None if recorded is None else recorded.attempt
        if recorded is not None:
            self.book.ctx.logger.info(
                "model call %d: served the answer attempt %d recorded (no new request)",
                recorded.seq, recorded.attempt,
            )  # fmt: skip
            return response_from(recorded.response)
        if self.book.unserved_answers("model"):
            self.book.ctx.logger.info(
                "asking the model again: the request differs from the answer recorded by an "
                "earlier attempt (its prompt, model or schema changed)"
            )
        reserved = self.reservation(request)
        sent = self._send(request, mark, reserved)
        if isinstance(sent, tuple):  # degraded: the request is for the cheaper model
            request, mark, sent = sent
        return self._call(request, sent)

    def _send(
        self, request: ModelRequest, mark: str, reserved: int
    ) -> str | tuple[ModelRequest, str, str]:
        limits = None if self.budget is None else self.budget.limits(self.approvals, time.time())
        if self.node_limit is not None and self.book.node_cost + reserved > self.node_limit:
            raise BudgetExceeded(
                f"the next request would pass this node's max_cost of "
                f"{dollars(self.node_limit)} ({dollars(self.book.node_cost)} spent, it "
                f"reserves {dollars(reserved)})"
            )
        refused = self.book.send("model", mark, self.provider.name, request.model,
                                 request_data(request), reserved, limits)  # fmt: skip
        if isinstance(refused, str):
            return refused
        assert self.budget is not None
        if self.budget.on_exceed == "ask":
            raise ask_for_more(refused, self.budget, self.approvals, self.to_finish + reserved)
        if self.budget.on_exceed == "degrade" and self.degrade_to and not self.degraded:
            self.book.ctx.logger.warning(
                "budget: switching from %s to %s (%s)", self.model, self.degrade_to,
                exceeded(refused),
            )  # fmt: skip
            self.model, self.degraded = self.degrade_to, True
            cheaper = replace(request, model=self.model)
            cheaper_mark = fingerprint(self.provider.name, cheaper)
            sent = self._send(cheaper, cheaper_mark, self.reservation(cheaper))
            assert isinstance(sent, str)
            return cheaper, cheaper_mark, sent
        raise exceeded(refused)

    def _call(self, request: ModelRequest, call_id: str) -> ModelResponse:
        ctx = self.book.ctx
        streamed = _LogStream(ctx.logger) if request.stream else None
        started = time.monotonic()
        try:
            response = self.provider.complete(request, streamed.write if streamed else None)
        except ProviderError as exc:
            if streamed is not None:
                streamed.flush()
            self._failed(call_id, request, exc, time.monotonic() - started)
            if exc.retryable:
                raise RetryLater(f"{self.provider.name}: {exc}", after=exc.retry_after) from None
            raise ProviderRefused(f"{self.provider.name}: {exc}") from None
        except Exception as exc:  # not the provider's doing: it may have billed the answer
            self.book.broke_off(call_id, exc)
            raise
        if streamed is not None:
            streamed.flush()
        cost, source = cost_nanos(response.usage, self.price())
        usage = response.usage
        self.book.end(CallEnded(
            id=call_id, state="answered", response=response_data(response),
            finish_reason=response.finish_reason, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cached_input_tokens=usage.cached_input_tokens,
            reasoning_tokens=usage.reasoning_tokens, usage_reported=usage.reported, cost=cost,
            price_source=source, latency=response.latency, at=time.time(),
        ))  # fmt: skip
        return response

    def _failed(
        self, call_id: str, request: ModelRequest, exc: ProviderError, latency: float
    ) -> None:
        # no usage given: nothing came back to count (a refused connection, an error
        # page), so zero tokens, not an estimate
        usage = exc.usage or Usage()
        cost, source = cost_nanos(usage, self.price()) if exc.usage else (0, "no usage")
        error = {"type": "ProviderError", "message": str(exc), "status": exc.status,
                 "retryable": exc.retryable, "retry_after": exc.retry_after}  # fmt: skip
        self.book.end(CallEnded(
            id=call_id, state="failed", error=error, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, usage_reported=usage.reported,
            cost=cost, price_source=source, latency=latency, at=time.time(),
        ))  # fmt: skip


class _LogStream:
    """Streamed text written to the attempt's log a line at a time (``keel logs
    --follow`` shows it as it comes); the recorded answer, not this, is the result."""

    def __init__(self, logger: Any) -> None:
        self.logger, self.buffer = logger, ""

    def write(self, piece: str) -> None:
        self.buffer += piece
        while "\n" in self.buffer or len(self.buffer) >= _STREAM_LINE:
            cut = self.buffer.find("\n")
            cut = cut if 0 <= cut < _STREAM_LINE else _STREAM_LINE
            line, self.buffer = self.buffer[:cut], self.buffer[cut:].removeprefix("\n")
            self.logger.info("│ %s", line)

    def flush(self) -> None:
        if self.buffer:
            self.logger.info("│ %s", self.buffer)
            self.buffer = ""
