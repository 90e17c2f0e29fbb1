"""Which API key a provider sends, and keeping it out of every message.

The key is read from the environment when a request is sent, never from a config file
(the file names only the variable), so it cannot land in a spec, a history or a record.
A provider on the loopback (a stub, a local llama.cpp or Ollama) often needs no key:
there a placeholder is sent. Anywhere else a missing key is a clear error naming the
variable to set, not a request that fails with 401. A key is never sent to an endpoint
the operator did not pair it with: the vendors' default variables (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``) are used only for the vendor's own endpoint or for a provider
named after the vendor.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from keel.llm.config import ProviderConfig
from keel.llm.types import ProviderError

#: sent to an endpoint on the loopback that has no key set (servers that check none
#: accept anything; the SDKs refuse an empty key)
PLACEHOLDER_KEY = "keel-no-key"
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
#: where the vendors' SDKs read a base URL when none is given
DEFAULT_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
#: things that look like keys, in case a server quotes one back (``sk-abc1***wxyz``)
_KEY_LIKE = re.compile(r"\b(?:sk|gsk|xai|pk)[-_][A-Za-z0-9_\-*.]{8,}")


def effective_base_url(config: ProviderConfig, env: Mapping[str, str]) -> str | None:
    """The URL requests go to: the configured one, or the one the SDK would read."""
    if config.base_url:
        return config.base_url
    return env.get(DEFAULT_URL_ENV.get(config.kind, ""), "").strip() or None


def key_variable(config: ProviderConfig) -> str | None:
    """The variable that holds ``config``'s key, or None when none is named."""
    if config.api_key_env:
        return config.api_key_env
    if config.base_url is None or config.name == config.kind:
        return DEFAULT_KEY_ENV.get(config.kind)
    return None


def api_key(config: ProviderConfig, env: Mapping[str, str]) -> str:
    """The key to send; raises a non-retryable ``ProviderError`` naming what to set."""
    variable = key_variable(config)
    value = env.get(variable, "").strip() if variable else ""
    if value:
        return value
    url = effective_base_url(config, env)
    if is_loopback(url):
        return PLACEHOLDER_KEY
    if variable:
        raise ProviderError(
            f"provider '{config.name}' needs an API key: set the environment variable {variable}"
        )
    raise ProviderError(
        f"provider '{config.name}' ({host_of(url)}) needs an API key: set api_key_env in "
        f"[llm.providers.{config.name}] to the name of the environment variable that holds it"
    )


def is_loopback(url: str | None) -> bool:
    host = urlsplit(url).hostname if url else None
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(url: str | None) -> str:
    """``host:port`` of ``url``, without any user or password it carries."""
    if not url:
        return "default endpoint"
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def scrub(text: str, key: str | None) -> str:
    """``text`` without ``key`` nor anything that looks like a key."""
    if key and key != PLACEHOLDER_KEY:
        text = text.replace(key, "[key]")
    return _KEY_LIKE.sub("[key]", text)
