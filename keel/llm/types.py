"""What a model request and its answer are, whatever the provider: the small interface
every provider implements (``Provider``), and the errors it raises, already classified.

A step never talks to an SDK: it builds a ``ModelRequest``, hands it to a provider and
gets a ``ModelResponse`` back (or a ``ProviderError`` that says whether to retry and
when). Both are plain data, so the step can record them as JSON and a replay can serve
the recorded answer without a provider at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "tool"]
#: how a provider is asked for JSON that fits a schema: OpenAI's strict ``json_schema``;
#: ``json_object`` with the schema beside it (llama.cpp, vLLM, Ollama); a forced tool
#: call whose parameters are the schema; or the schema written into the prompt. ``text``:
#: no structure asked for.
OutputMode = Literal["json_schema", "json_object", "tools", "prompted", "text"]
#: why the model stopped, normalised: ``stop`` (done), ``length`` (hit ``max_tokens``:
#: truncated), ``tool_calls``, ``refusal`` (declined, or a content filter)
FinishReason = Literal["stop", "length", "tool_calls", "refusal"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model asks for: ``arguments`` as the model wrote them (JSON text,
    perhaps not valid JSON: the caller decides)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | None = None
    #: an assistant message's tool calls
    tool_calls: tuple[ToolCall, ...] = ()
    #: a tool message: which call it answers
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: its parameters are a JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float | None = None
    #: the JSON Schema the answer must fit (None: free text)
    output_schema: dict[str, Any] | None = None
    output_mode: OutputMode = "text"
    tools: tuple[ToolSpec, ...] = ()
    #: stream the answer (``on_text`` gets each piece as it arrives)
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens, as the provider counted them; ``reported=False`` when the provider sent
    no usage and these are keel's estimate (chars/4), so the ledger can say so."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    reported: bool = True


@dataclass(frozen=True, slots=True)
class ModelResponse:
    #: the answer's text (for structured output: the JSON text, not yet validated)
    text: str | None
    finish_reason: FinishReason
    usage: Usage
    #: the model that answered, as the provider named it
    model: str
    tool_calls: tuple[ToolCall, ...] = ()
    #: the model's refusal message, when it refused
    refusal: str | None = None
    #: the provider's id of the response, for its support
    response_id: str | None = None
    #: seconds from sending to the whole answer
    latency: float = 0.0


@dataclass
class ProviderError(Exception):
    """A request that got no usable answer. ``retryable``: another attempt may get one
    (429, 5xx, a dropped connection); ``retry_after``: seconds the provider asked to wait;
    ``usage``: tokens the failed request was charged anyway, if the provider said."""

    message: str
    retryable: bool = False
    retry_after: float | None = None
    status: int | None = None
    usage: Usage | None = field(default=None)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


#: gets each piece of streamed text as it arrives
OnText = Callable[[str], None]


class Provider(Protocol):
    """One configured endpoint (OpenAI-compatible, Anthropic...). ``name`` is how specs
    refer to it (``provider="local"``); ``kind`` which family it is, for prices."""

    name: str
    kind: str
    #: the output mode used when a step says ``auto``
    default_output_mode: OutputMode

    def complete(self, request: ModelRequest, on_text: OnText | None = None) -> ModelResponse:
        """Send ``request`` and wait for the whole answer; raises ``ProviderError``."""
        ...
