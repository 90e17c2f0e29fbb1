"""The providers keel can send model requests to, by the name a step gives.

``openai`` (the OpenAI API) and ``anthropic`` exist without any config; every other
name comes from ``[llm.providers.NAME]`` (``keel.llm.config``). A provider is built once
per setting and reused, so its HTTP connections are too; building one reads no key
(the key is read from the environment at each request).
"""

from __future__ import annotations

import threading

from keel.errors import KeelError
from keel.llm.config import LlmConfig, ProviderConfig
from keel.llm.types import Provider

__all__ = ["UnknownProviderError", "provider_for"]

#: the providers that exist without config
BUILT_IN = {
    "openai": ProviderConfig("openai", "openai"),
    "anthropic": ProviderConfig("anthropic", "anthropic"),
}
_built: dict[ProviderConfig, Provider] = {}
_lock = threading.Lock()


class UnknownProviderError(KeelError, LookupError):
    """A step names a provider that neither the config nor keel defines."""


def provider_for(name: str, config: LlmConfig) -> Provider:
    """The provider a step calls ``name``, as ``config`` sets it up."""
    settings = config.providers.get(name) or BUILT_IN.get(name)
    if settings is None:
        known = sorted({*config.providers, *BUILT_IN})
        where = f" in {config.source}" if config.source else ""
        raise UnknownProviderError(
            f"no LLM provider named '{name}'{where} (known: {', '.join(known)}); "
            f"define it in keel.toml as [llm.providers.{name}]"
        )
    with _lock:
        provider = _built.get(settings)
        if provider is None:
            provider = _build(settings)
            _built[settings] = provider
        return provider


def _build(settings: ProviderConfig) -> Provider:
    if settings.kind == "anthropic":
        from keel.llm.providers.anthropic_provider import Anthropic

        return Anthropic(settings)
    from keel.llm.providers.openai_compatible import OpenAICompatible

    return OpenAICompatible(settings)
