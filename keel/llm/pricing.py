"""What a model call costs: the price of a model (from ``[llm.prices]`` in config, else
from the ``genai-prices`` package) and the cost of a usage at that price, in integer
nano-dollars (``keel.store.model_calls.NANOS`` per dollar), always rounded *up*, so a
ledger never undercounts.

Token convention (OpenAI's, which genai-prices shares): ``Usage.input_tokens`` counts
*every* prompt token, cached ones included; ``cached_input_tokens`` says how many of them
were read from the provider's cache. The cached ones are billed at the cached price and
the rest at the input price, never both. (Anthropic reports ``input_tokens`` without
its cache reads: its provider adds them in before a ``Usage`` is made.)

No network, ever. genai-prices ships its price table inside the package
(``genai_prices.data``); its only network code is ``UpdatePrices``, a background thread
that fetches a newer table, started only by calling it, which keel never does. keel
does not even read the table through ``genai_prices.calc_price`` (which would use a
table such a thread had fetched, were one running in the process): it builds its own
``DataSnapshot`` from the bundled data, so every price is the installed version's, as
its ``source`` says. ``tests/llm/test_pricing.py`` runs the lookups with sockets
refused.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

from keel.llm.config import PriceOverride
from keel.llm.types import Usage

#: nano-dollars per (dollar per million tokens) per token: 1e9 / 1e6
_NANOS_PER_MTOK_DOLLAR = Decimal(1000)
_NANOS_PER_DOLLAR = Decimal(1_000_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens. ``source``: ``"config"`` or ``"genai-prices <version>"``
    (an unknown price is no ``Price`` at all: ``price_of`` returns None and ``cost_nanos``
    says "unknown price for MODEL"); ``matched``: what the lookup matched (the config key,
    or genai-prices' ``provider:model``), for ``keel estimate`` to show."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    source: str
    matched: str = ""
    #: genai-prices' own price (tiers included), used for the arithmetic when present:
    #: the per-million fields above are then its base tier, for display
    table: gp.ModelPrice | None = field(default=None, compare=False, repr=False)


def price_of(
    provider_kind: str,
    provider_name: str,
    model: str,
    overrides: Mapping[str, PriceOverride],
) -> Price | None:
    """The price of ``model`` on the provider named ``provider_name`` (of ``provider_kind``,
    "openai" or "anthropic"); None when neither config nor genai-prices knows it.

    Config wins: ``"provider_name:model"``, then ``"model"``. Then genai-prices: kind
    ``anthropic`` is Anthropic's table; a provider named as a genai-prices provider id
    ("openai", "groq", "deepseek"...) is that provider's table; any other endpoint (an
    OpenAI-compatible one of unknown vendor) is priced only when the model's name says
    whose it is (``gpt-`` OpenAI, ``claude`` Anthropic, ``gemini`` Google...), by the
    vendor's own price. A model the name does not place (a local ``llama-3.1-8b``) is
    unknown rather than priced at some reseller's rate.
    """
    for key in (f"{provider_name}:{model}", model):
        override = overrides.get(key)
        if override is not None:
            return Price(
                input=override.input,
                output=override.output,
                cached_input=override.input
                if override.cached_input is None
                else override.cached_input,
                source="config",
                matched=key,
            )
    found = _genai_model(provider_kind, provider_name, model)
    if found is None:
        return None
    provider, info = found
    # prices can change by date (and for some vendors by time of day): take today's
    table = info.get_prices(datetime.now(tz=UTC))
    input_price = _base(table.input_mtok)
    output_price = _base(table.output_mtok)
    if input_price is None and output_price is None:
        return None  # priced by something other than tokens (audio seconds, images)
    cached = _base(table.cache_read_mtok)
    return Price(
        input=input_price or Decimal(0),
        output=output_price or Decimal(0),
        cached_input=cached if cached is not None else (input_price or Decimal(0)),
        source=f"genai-prices {genai_prices.__version__}",
        matched=f"{provider.id}:{info.id}",
        table=table,
    )


def cost_nanos(usage: Usage, price: Price | None, *, model: str = "") -> tuple[int, str]:
    """What ``usage`` cost at ``price``, in nano-dollars rounded up, and where the price
    came from; (0, "unknown price for MODEL") without a price.

    Token counts are clamped to be consistent (none negative, no more cached tokens than
    input tokens): the ledger records a call the provider already answered, so an odd
    usage report must not lose the record.
    """
    if price is None:
        return 0, f"unknown price for {model}" if model else "unknown price"
    input_tokens = max(0, usage.input_tokens)
    cached = min(max(0, usage.cached_input_tokens), input_tokens)
    output_tokens = max(0, usage.output_tokens)
    if price.table is not None:
        dollars = _table_dollars(price.table, input_tokens, cached, output_tokens)
        return _ceil(dollars * _NANOS_PER_DOLLAR), price.source
    nanos = (
        (input_tokens - cached) * price.input
        + cached * price.cached_input
        + output_tokens * price.output
    ) * _NANOS_PER_MTOK_DOLLAR
    return _ceil(nanos), price.source


def reservation_nanos(input_tokens: int, max_tokens: int, price: Price | None) -> int:
    """The most a call can cost, what a budget reserves before sending it: every input
    token at the (uncached) input price and ``max_tokens`` of output, rounded up. 0 without
    a price: an unknown price reserves nothing (the ledger says the price was unknown)."""
    if price is None:
        return 0
    cost, _ = cost_nanos(Usage(input_tokens=input_tokens, output_tokens=max_tokens), price)
    return cost


def _table_dollars(table: gp.ModelPrice, input_tokens: int, cached: int, output: int) -> Decimal:
    """genai-prices' own arithmetic: it picks the tier from the input tokens and bills
    ``cache_read_tokens`` (a part of ``input_tokens``) at the cached price."""
    usage = gp.Usage(input_tokens=input_tokens, cache_read_tokens=cached, output_tokens=output)
    return table.calc_price(usage)["total_price"]


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _base(value: Decimal | gp.TieredPrices | None) -> Decimal | None:
    if isinstance(value, gp.TieredPrices):
        return value.base
    return value


@functools.cache
def _snapshot() -> data_snapshot.DataSnapshot:
    """The price table bundled with the installed genai-prices (never a fetched one)."""
    from genai_prices.data import providers

    return data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)


@functools.lru_cache(maxsize=1024)
def _genai_model(kind: str, name: str, model: str) -> tuple[gp.Provider, gp.ModelInfo] | None:
    """genai-prices' provider and model for a call, or None; cached, misses too (a miss
    walks every model of every provider)."""
    snapshot = _snapshot()
    # None: no provider says whose model it is; genai-prices then goes by the model's name
    provider = _provider(snapshot, "anthropic" if kind == "anthropic" else name)
    try:
        return snapshot.find_provider_model(model, provider, None, None)
    except LookupError:
        return None


def _provider(snapshot: data_snapshot.DataSnapshot, provider_id: str) -> gp.Provider | None:
    """The provider with exactly this id: genai-prices' own fuzzy match ("contains
    'openai'") would take a provider named "my-openai-proxy" for OpenAI's API."""
    wanted = provider_id.strip().lower()
    return next((p for p in snapshot.providers if p.id == wanted), None)
