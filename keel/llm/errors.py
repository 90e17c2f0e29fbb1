"""How a model step fails, by kind: the engine retries only what another attempt could
mend (a rate limit, a server error); a truncated answer, a refusal, an answer that never
fitted its schema and a spent budget fail the node at once."""

from __future__ import annotations

from keel.errors import NonRetryable


class Truncated(NonRetryable):
    """The model hit ``max_tokens`` before it finished: raise ``max_tokens`` (asking
    again for the same would be cut off again)."""


class Refused(NonRetryable):
    """The model declined to answer (or a content filter stopped it)."""


class OutputInvalid(NonRetryable):
    """Every answer, re-asks included, failed to fit the output schema."""


class BudgetExceeded(NonRetryable):
    """The next request would pass the run's or the workflow's budget (or an agent's
    ``max_cost``), and the policy is to fail."""


class AgentStopped(NonRetryable):
    """An agent reached one of its bounds (turns, tool calls, repetition)."""


class ProviderRefused(NonRetryable):
    """The provider rejected the request (a 4xx other than 429): it will not do better
    on a retry."""


class NotConfigured(NonRetryable):
    """The step names a provider that is not configured, or ``[llm]`` in keel.toml is
    wrong: another attempt in the same worker reads the same settings."""


class TemplateError(NonRetryable):
    """A prompt or system template read a value this run does not have (an optional
    input left out, a field an upstream output lacks): another attempt reads the same."""
