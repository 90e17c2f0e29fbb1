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

``KEEL_LLM_<NAME>_BASE_URL`` (the provider's name upper-cased, ``-`` as ``_``) points a
provider elsewhere without editing the file; for a name the file does not have, it adds
an OpenAI-compatible provider of that name (lower-cased), so a test or an operator can
aim a step at a stub or a local server with the environment alone.

Invariants: a key that is set but wrong (a typo, a bad number, an unknown mode) raises
``LlmConfigError`` naming the file and the key, never ignored; an error quotes key names,
never the value of ``api_key_env`` (someone may have pasted the key itself there).
This module only reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import cast, get_args

from keel.errors import KeelError
from keel.llm.types import OutputMode
from keel.runtime.worker.config_sections import check_keys, find_section, table_of

KINDS = ("openai", "anthropic")
PROVIDER_KEYS = ("kind", "base_url", "api_key_env", "output_mode", "timeout")
PRICE_KEYS = ("input", "output", "cached_input")
OUTPUT_MODES: tuple[str, ...] = get_args(OutputMode)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_OVERRIDE = re.compile(r"^KEEL_LLM_([A-Z0-9_]+)_BASE_URL$")


class LlmConfigError(KeelError, ValueError):
    """An ``[llm]`` setting is wrong; the message names the file (or variable) and the key."""


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


def load_llm_config(
    start: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> LlmConfig:
    """The ``[llm]`` table of the config file above ``start`` (the current folder by
    default), with the ``KEEL_LLM_<NAME>_BASE_URL`` overrides of ``environ``."""
    here = (start if start is not None else Path.cwd()).resolve()
    env = os.environ if environ is None else environ
    found = find_section(here, "llm", LlmConfigError)
    config = parse_llm_table(found[0], found[2]) if found is not None else LlmConfig()
    return _with_env_overrides(config, env)


def parse_llm_table(label: str, raw: object) -> LlmConfig:
    """The ``llm`` table of a file; ``label`` names the file in errors."""
    table = table_of(label, "llm", raw, LlmConfigError)
    check_keys(label, "llm", table, ("providers", "prices"), LlmConfigError)
    providers = table_of(label, "llm.providers", table.get("providers", {}), LlmConfigError)
    prices = table_of(label, "llm.prices", table.get("prices", {}), LlmConfigError)
    return LlmConfig(
        providers={name: _provider(label, name, value) for name, value in providers.items()},
        prices={key: _price(label, key, value) for key, value in prices.items()},
        source=label,
    )


def _provider(label: str, name: str, raw: object) -> ProviderConfig:
    where = f"llm.providers.{name}"
    if not _NAME.match(name):
        raise LlmConfigError(
            f"{label}: {where}: a provider name uses 1-100 letters, digits, '_', '.' or '-'"
        )
    table = table_of(label, where, raw, LlmConfigError)
    check_keys(label, where, table, PROVIDER_KEYS, LlmConfigError)
    kind = table.get("kind", "openai")
    if kind not in KINDS:
        raise LlmConfigError(
            f"{label}: {where}.kind must be one of {', '.join(KINDS)}, got {kind!r}"
        )
    base_url = table.get("base_url")
    if base_url is not None:
        base_url = _base_url(f"{label}: {where}.base_url", base_url)
    key_env = table.get("api_key_env")
    if key_env is not None and not (isinstance(key_env, str) and _ENV_NAME.match(key_env)):
        # the value is not quoted: it may be the key itself, pasted in the wrong place
        raise LlmConfigError(
            f"{label}: {where}.api_key_env must be the NAME of an environment variable "
            "(letters, digits and '_', e.g. LOCAL_LLM_KEY) that holds the key, not the key"
        )
    mode = table.get("output_mode")
    if mode is not None and mode not in OUTPUT_MODES:
        raise LlmConfigError(
            f"{label}: {where}.output_mode must be one of {', '.join(OUTPUT_MODES)}, got {mode!r}"
        )
    timeout = table.get("timeout", 600.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 1e6:
        raise LlmConfigError(
            f"{label}: {where}.timeout must be a number of seconds > 0, got {timeout!r}"
        )
    output_mode = cast("OutputMode | None", mode)
    return ProviderConfig(name, str(kind), base_url, key_env, output_mode, float(timeout))


def _price(label: str, key: str, raw: object) -> PriceOverride:
    where = f'llm.prices."{key}"'
    table = table_of(label, where, raw, LlmConfigError)
    check_keys(label, where, table, PRICE_KEYS, LlmConfigError)
    for required in ("input", "output"):
        if required not in table:
            raise LlmConfigError(f"{label}: {where} needs {required} (dollars per million tokens)")
    cached = table.get("cached_input")
    return PriceOverride(
        input=_dollars(label, f"{where}.input", table["input"]),
        output=_dollars(label, f"{where}.output", table["output"]),
        cached_input=None if cached is None else _dollars(label, f"{where}.cached_input", cached),
    )


def _dollars(label: str, where: str, value: object) -> Decimal:
    """A price as written: ``0.10`` and ``"0.10"`` are both exactly one tenth."""
    amount: Decimal | None = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise LlmConfigError(
            f"{label}: {where} must be a number of dollars per million tokens >= 0, got {value!r}"
        )
    return amount


def _base_url(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip().startswith(("http://", "https://")):
        raise LlmConfigError(
            f"{where} must be an http:// or https:// URL (e.g. http://127.0.0.1:8080/v1)"
        )
    return value.strip()


def env_name(provider: str) -> str:
    """The variable that overrides ``provider``'s base URL."""
    return f"KEEL_LLM_{provider.upper().replace('-', '_').replace('.', '_')}_BASE_URL"


def _with_env_overrides(config: LlmConfig, env: Mapping[str, str]) -> LlmConfig:
    providers = dict(config.providers)
    claimed: set[str] = set()
    for name, provider in config.providers.items():
        variable = env_name(name)
        claimed.add(variable)
        value = env.get(variable, "")
        if value.strip():
            url = _base_url(f"environment ({variable})", value)
            providers[name] = replace(provider, base_url=url)
    for variable, value in env.items():
        match = _ENV_OVERRIDE.match(variable)
        if match is None or variable in claimed or not value.strip():
            continue
        name = match.group(1).lower()
        url = _base_url(f"environment ({variable})", value)
        providers[name] = ProviderConfig(
            name, "anthropic" if name == "anthropic" else "openai", url
        )
    return LlmConfig(providers, dict(config.prices), config.source)
