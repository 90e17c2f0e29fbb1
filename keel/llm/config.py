"""Where LLM steps find their providers and prices: the ``[llm]`` table of ``keel.toml``
(found as the worker's config is), and the environment for keys.

    [llm.providers.local]            # a step says provider="local"
    kind = "openai"                  # any OpenAI-compatible endpoint ("anthropic": Anthropic)
    base_url = "http://127.0.0.1:8080/v1"
    api_key_env = "LOCAL_LLM_KEY"    # the NAME of the variable holding the key, never the key
    output_mode = "json_object"      # what "auto" means for this endpoint

    [llm.prices."local:smollm2"]     # provider:model, or a model name alone
    input = 0.10                     # dollars per million input tokens
    output = 0.40
    cached_input = 0.05

Without a table, provider ``openai`` is the OpenAI API (``OPENAI_BASE_URL`` and
``OPENAI_API_KEY`` as the SDK reads them) and ``anthropic`` is Anthropic's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from keel.llm.types import OutputMode


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    #: "openai" (any OpenAI-compatible endpoint) or "anthropic"
    kind: str = "openai"
    base_url: str | None = None
    #: the environment variable that holds the API key
    api_key_env: str | None = None
    output_mode: OutputMode | None = None
    #: seconds to wait for an answer
    timeout: float = 600.0


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Dollars per million tokens, set in config: wins over genai-prices."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None


@dataclass(frozen=True, slots=True)
class LlmConfig:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    #: keyed "provider:model" or "model"
    prices: dict[str, PriceOverride] = field(default_factory=dict)
    #: where the config came from (a file's path), for messages
    source: str | None = None
