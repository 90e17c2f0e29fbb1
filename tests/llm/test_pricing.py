"""Prices from genai-prices and from config, and what a usage costs at them."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices import types as gp
from genai_prices.update_prices import UpdatePrices

from keel.llm.config import PriceOverride
from keel.llm.pricing import Price, _genai_model, cost_nanos, price_of, reservation_nanos
from keel.llm.types import Usage
from tests.llm.offline import NetworkUsedError, refuse_network

GENAI = f"genai-prices {genai_prices.__version__}"
NO_OVERRIDES: dict[str, PriceOverride] = {}


def test_openai_model_is_priced_from_genai_prices() -> None:
    price = price_of("openai", "openai", "gpt-4o-mini", NO_OVERRIDES)
    assert price is not None
    assert (price.input, price.output, price.cached_input) == (
        Decimal("0.15"),
        Decimal("0.6"),
        Decimal("0.075"),
    )
    assert price.source == GENAI
    assert price.source.startswith("genai-prices 0.")
    assert price.matched == "openai:gpt-4o-mini"


def test_anthropic_model_is_priced_from_genai_prices() -> None:
    price = price_of("anthropic", "anthropic", "claude-3-5-haiku-latest", NO_OVERRIDES)
    assert price is not None
    assert (price.input, price.output, price.cached_input) == (
        Decimal("0.8"),
        Decimal("4"),
        Decimal("0.08"),
    )
    assert price.source == GENAI


def test_a_dated_model_name_finds_its_model() -> None:
    dated = price_of("openai", "openai", "gpt-4o-mini-2024-07-18", NO_OVERRIDES)
    assert dated is not None
    assert dated == price_of("openai", "openai", "gpt-4o-mini", NO_OVERRIDES)


def test_anthropic_kind_uses_anthropic_prices_whatever_the_provider_is_called() -> None:
    price = price_of("anthropic", "claude-main", "claude-3-5-haiku-latest", NO_OVERRIDES)
    assert price is not None
    assert price.matched == "anthropic:claude-3-5-haiku-latest"


def test_an_unknown_openai_compatible_endpoint_is_priced_by_the_model_name() -> None:
    gpt = price_of("openai", "gateway", "gpt-4o-mini", NO_OVERRIDES)
    claude = price_of("openai", "gateway", "claude-3-5-haiku-latest", NO_OVERRIDES)
    assert gpt is not None
    assert gpt.matched == "openai:gpt-4o-mini"
    assert claude is not None
    assert claude.matched == "anthropic:claude-3-5-haiku-latest"


def test_a_provider_named_as_a_genai_prices_provider_uses_its_table() -> None:
    groq = price_of("openai", "groq", "llama-3.1-8b-instant", NO_OVERRIDES)
    assert groq is not None
    assert groq.matched.startswith("groq:")
    # OpenAI's API does not serve it: no price, rather than some reseller's
    assert price_of("openai", "openai", "llama-3.1-8b-instant", NO_OVERRIDES) is None


def test_a_model_no_one_knows_has_no_price_and_costs_nothing_honestly() -> None:
    assert price_of("openai", "local", "smollm2", NO_OVERRIDES) is None
    assert price_of("openai", "local", "llama-3.1-8b", NO_OVERRIDES) is None
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert cost_nanos(usage, None, model="smollm2") == (0, "unknown price for smollm2")
    assert cost_nanos(usage, None) == (0, "unknown price")
    assert reservation_nanos(1000, 500, None) == 0


def test_a_model_priced_by_something_other_than_tokens_has_no_token_price() -> None:
    assert price_of("openai", "openai", "whisper-1", NO_OVERRIDES) is None


def test_config_wins_provider_and_model_first_then_model() -> None:
    overrides = {
        "local:gpt-4o-mini": PriceOverride(input=Decimal("1"), output=Decimal("2")),
        "gpt-4o-mini": PriceOverride(
            input=Decimal("3"), output=Decimal("4"), cached_input=Decimal("0.5")
        ),
    }
    exact = price_of("openai", "local", "gpt-4o-mini", overrides)
    assert exact == Price(
        input=Decimal("1"),
        output=Decimal("2"),
        cached_input=Decimal("1"),  # no cached price set: cached tokens at the input price
        source="config",
        matched="local:gpt-4o-mini",
    )
    by_model = price_of("openai", "openai", "gpt-4o-mini", overrides)
    assert by_model is not None
    assert (by_model.input, by_model.cached_input, by_model.source) == (
        Decimal("3"),
        Decimal("0.5"),
        "config",
    )
    assert by_model.matched == "gpt-4o-mini"


def test_config_prices_a_model_genai_prices_does_not_know() -> None:
    overrides = {"local:smollm2": PriceOverride(input=Decimal("0.1"), output=Decimal("0.4"))}
    price = price_of("openai", "local", "smollm2", overrides)
    assert price is not None
    # 1000 x 0.1 + 500 x 0.4 dollars per million = 300 micro-dollars
    assert cost_nanos(Usage(input_tokens=1000, output_tokens=500), price) == (300_000, "config")


def test_cost_from_genai_prices() -> None:
    price = price_of("openai", "openai", "gpt-4o-mini", NO_OVERRIDES)
    # 1000 x 0.15 + 500 x 0.6 dollars per million tokens = 450 micro-dollars
    cost = cost_nanos(Usage(input_tokens=1000, output_tokens=500), price)
    assert cost == (450_000, GENAI)


def test_cached_input_tokens_are_billed_at_the_cached_price_only() -> None:
    """input_tokens includes the cached ones (OpenAI's convention): 1000 input of which
    400 cached is 600 x 0.15 + 400 x 0.075, not 1000 x 0.15 + 400 x 0.075."""
    price = price_of("openai", "openai", "gpt-4o-mini", NO_OVERRIDES)
    usage = Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=500)
    assert cost_nanos(usage, price) == (90_000 + 30_000 + 300_000, GENAI)
    uncached = cost_nanos(Usage(input_tokens=1000, output_tokens=500), price)[0]
    assert uncached - cost_nanos(usage, price)[0] == 400 * 75


def test_cached_tokens_at_config_prices() -> None:
    overrides = {
        "m": PriceOverride(input=Decimal("2"), output=Decimal("8"), cached_input=Decimal("1"))
    }
    price = price_of("openai", "local", "m", overrides)
    usage = Usage(input_tokens=1000, cached_input_tokens=1000, output_tokens=0)
    assert cost_nanos(usage, price) == (1_000_000, "config")


def test_genai_prices_arithmetic_agrees_with_its_per_million_prices() -> None:
    price = price_of("anthropic", "anthropic", "claude-3-5-haiku-latest", NO_OVERRIDES)
    assert price is not None
    flat = Price(price.input, price.output, price.cached_input, source="flat")
    for usage in (
        Usage(input_tokens=1, output_tokens=0),
        Usage(input_tokens=12_345, cached_input_tokens=2_345, output_tokens=678),
        Usage(input_tokens=0, output_tokens=99_999),
    ):
        assert cost_nanos(usage, price)[0] == cost_nanos(usage, flat)[0]


def test_costs_round_up_to_whole_nano_dollars() -> None:
    tiny = {"m": PriceOverride(input=Decimal("0.0001"), output=Decimal("0.0003"))}
    price = price_of("openai", "local", "m", tiny)
    # one input token at $0.0001 per million is 0.1 nano-dollar: charged as 1
    assert cost_nanos(Usage(input_tokens=1), price) == (1, "config")
    # 0.1 + 0.3 = 0.4: still 1; ten tokens each = 4 exactly, not 5
    assert cost_nanos(Usage(input_tokens=1, output_tokens=1), price)[0] == 1
    assert cost_nanos(Usage(input_tokens=10, output_tokens=10), price)[0] == 4
    assert cost_nanos(Usage(input_tokens=11, output_tokens=10), price)[0] == 5
    assert reservation_nanos(1, 0, price) == 1


def test_costs_round_up_with_genai_prices_too() -> None:
    price = price_of("openai", "groq", "openai/gpt-oss-20b", NO_OVERRIDES)
    assert price is not None
    assert price.table is not None
    usage = gp.Usage(input_tokens=3, cache_read_tokens=3, output_tokens=0)
    nanos = price.table.calc_price(usage)["total_price"] * 1_000_000_000
    assert nanos != int(nanos), "pick a model and usage that leave a fraction of a nano-dollar"
    cost = cost_nanos(Usage(input_tokens=3, cached_input_tokens=3), price)[0]
    assert cost == math.ceil(nanos)
    assert cost - 1 < nanos < cost


def test_reservation_is_every_input_token_and_max_tokens_of_output() -> None:
    price = price_of("openai", "openai", "gpt-4o-mini", NO_OVERRIDES)
    # 2000 x 0.15 + 1000 x 0.6 dollars per million = 900 micro-dollars
    assert reservation_nanos(2000, 1000, price) == 900_000
    actual = cost_nanos(Usage(input_tokens=2000, output_tokens=10), price)[0]
    assert actual < reservation_nanos(2000, 1000, price)


def test_tiered_prices_use_the_tier_the_input_reaches() -> None:
    price = price_of("anthropic", "anthropic", "claude-sonnet-4-5", NO_OVERRIDES)
    assert price is not None
    assert price.table is not None
    tiers = price.table.input_mtok
    assert isinstance(tiers, gp.TieredPrices), "genai-prices no longer tiers this model"
    start, tier_price = tiers.tiers[0].start, tiers.tiers[0].price
    assert price.input == tiers.base  # the base tier, for display
    small = cost_nanos(Usage(input_tokens=start), price)[0]
    large = cost_nanos(Usage(input_tokens=start + 1), price)[0]
    assert small == start * tiers.base * 1000
    assert large == (start + 1) * tier_price * 1000
    assert reservation_nanos(start + 1, 0, price) == large


def test_an_inconsistent_usage_is_still_costed() -> None:
    price = price_of("openai", "openai", "gpt-4o-mini", NO_OVERRIDES)
    # more cached than input tokens: all input counted as cached
    usage = Usage(input_tokens=100, cached_input_tokens=500)
    assert cost_nanos(usage, price)[0] == 100 * 75


def test_lookups_are_cached_misses_included() -> None:
    price_of("openai", "local", "no-such-model-xyz", NO_OVERRIDES)
    hits = _genai_model.cache_info().hits
    assert price_of("openai", "local", "no-such-model-xyz", NO_OVERRIDES) is None
    assert _genai_model.cache_info().hits == hits + 1


def test_the_network_guard_catches_genai_prices_own_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard below is real: genai-prices' updater, asked to fetch, hits it."""
    refuse_network(monkeypatch)
    with pytest.raises(NetworkUsedError):
        UpdatePrices().fetch()


def test_prices_never_touch_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    _genai_model.cache_clear()
    refuse_network(monkeypatch)
    for kind, name, model in [
        ("openai", "openai", "gpt-4o-mini"),
        ("anthropic", "anthropic", "claude-3-5-haiku-latest"),
        ("openai", "local", "smollm2"),
        ("openai", "local", "gemini-2.5-pro"),
    ]:
        price = price_of(kind, name, model, NO_OVERRIDES)
        cost_nanos(Usage(input_tokens=10, output_tokens=10), price, model=model)
        reservation_nanos(10, 10, price)


def test_a_fresh_process_prices_with_sockets_refused(tmp_path: Path) -> None:
    """From the first import on: importing genai-prices and keel's pricing, looking up
    and costing start no updater thread and open no connection."""
    script = tmp_path / "offline_prices.py"
    script.write_text(
        textwrap.dedent(
            """
            import socket, threading

            def refuse(*args, **kwargs):
                raise SystemExit(f"network used: {args!r}")

            socket.socket.connect = refuse
            socket.socket.connect_ex = refuse
            socket.create_connection = refuse
            socket.getaddrinfo = refuse

            from keel.llm.pricing import cost_nanos, price_of
            from keel.llm.types import Usage

            price = price_of("openai", "openai", "gpt-4o-mini", {})
            print(cost_nanos(Usage(input_tokens=1000, output_tokens=500), price)[0])
            names = [thread.name for thread in threading.enumerate()]
            assert not any("genai" in name for name in names), names
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "450000"
