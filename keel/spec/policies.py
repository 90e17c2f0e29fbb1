"""Execution policies of nodes: retry, timeout, queueing, priority, concurrency and rate
limits, circuit breakers.

They are modelled and validated here; the engine and runtime enforce them. A node's own
policy wins over the workflow's ``defaults``, which win over keel's built-in defaults
(see ``effective_policies``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from keel.spec.types import Expression, NonNegativeDuration, PositiveDuration

QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Priority = Annotated[int, Field(ge=-1000, le=1000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """How often and how soon a failed attempt is tried again.

    The wait before attempt ``n+1`` is ``initial_backoff * multiplier**(n-1)`` capped at
    ``max_backoff``, then spread by ``jitter`` (a fraction, derived deterministically from
    the run, node and attempt so that replay gives the same schedule).
    """

    max_attempts: int = Field(1, ge=1, le=10_000)
    initial_backoff: NonNegativeDuration = 1.0
    max_backoff: NonNegativeDuration = 300.0
    multiplier: float = Field(2.0, ge=1.0, le=100.0)
    jitter: float = Field(0.1, ge=0.0, le=1.0)
    #: exception type names that are retried; empty means every error except the ones below
    retry_on: tuple[str, ...] = ()
    #: exception type names that are never retried (``keel.NonRetryable`` always is)
    never_retry_on: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> RetryPolicy:
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff:g}s) is shorter than initial_backoff "
                f"({self.initial_backoff:g}s)"
            )
        both = sorted(set(self.retry_on) & set(self.never_retry_on))
        if both:
            raise ValueError(f"{', '.join(both)} cannot be in both retry_on and never_retry_on")
        return self


class ConcurrencyPolicy(_Frozen):
    """At most ``limit`` attempts at once, across all runs and workers, per value of ``key``.

    ``key`` is an expression, so the limit can be per tenant: ``"crm:" + input.tenant``.
    """

    key: Expression
    limit: int = Field(ge=1, le=1_000_000)


class RateLimitPolicy(_Frozen):
    """At most ``limit`` attempts start in any ``per`` seconds, across all runs and
    workers, per value of ``key`` (an expression, like a concurrency key): the rate a
    paid API or a partner's endpoint allows. Attempts over the rate wait on the queue,
    holding no thread."""

    key: Expression
    limit: int = Field(ge=1, le=1_000_000)
    per: PositiveDuration = 1.0


class CircuitPolicy(_Frozen):
    """A circuit breaker on a named resource that several nodes (and workflows) call.

    After ``failures`` consecutive failed attempts (errors that count as retryable: a
    ``NonRetryable`` error says the request was wrong, not the resource) the circuit
    opens for ``cooldown``: attempts that need it stay on the ready queue, holding no
    thread, instead of failing against a resource that is down. Then one attempt is let
    through as a probe; its success closes the circuit, its failure opens it again. The
    state lives in the store, so every worker on every host sees the same circuit.
    """

    name: QueueName
    failures: int = Field(5, ge=1, le=10_000)
    cooldown: PositiveDuration = 30.0


def _circuit_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


#: ``thread`` (default) runs a sync task in the worker's thread pool, where a timeout
#: cannot stop it; ``process`` runs each attempt in a child process that is killed when
#: its timeout passes
Isolation = Literal["thread", "process"]


class NodeDefaults(_Frozen):
    """Workflow-wide defaults for the policies of its nodes (each is a policy a node can
    set for itself, see ``NodePolicies``)."""

    retry: RetryPolicy | None = None
    #: per attempt
    timeout: PositiveDuration | None = None
    queue: QueueName | None = None
    priority: Priority | None = None


class NodePolicies(NodeDefaults):
    """Policy fields shared by every node kind that executes code: those a workflow can
    set defaults for, and these, which are each node's own."""

    concurrency: ConcurrencyPolicy | None = None
    rate_limit: RateLimitPolicy | None = None
    circuit: Annotated[CircuitPolicy | None, BeforeValidator(_circuit_shorthand)] = None
    isolation: Isolation | None = None


class EffectivePolicies(_Frozen):
    """The policies that apply to one node after defaults are resolved."""

    retry: RetryPolicy
    timeout: float | None
    queue: str
    priority: int
    concurrency: ConcurrencyPolicy | None
    rate_limit: RateLimitPolicy | None
    circuit: CircuitPolicy | None
    isolation: Isolation


DEFAULT_QUEUE = "default"
_T = TypeVar("_T")


def _pick(own: _T | None, default: _T | None, builtin: _T) -> _T:
    if own is not None:
        return own
    return default if default is not None else builtin


def effective_policies(node: NodePolicies, defaults: NodeDefaults) -> EffectivePolicies:
    return EffectivePolicies(
        retry=_pick(node.retry, defaults.retry, RetryPolicy()),
        timeout=node.timeout if node.timeout is not None else defaults.timeout,
        queue=_pick(node.queue, defaults.queue, DEFAULT_QUEUE),
        priority=_pick(node.priority, defaults.priority, 0),
        concurrency=node.concurrency,
        rate_limit=node.rate_limit,
        circuit=node.circuit,
        isolation=node.isolation or "thread",
    )
