"""A provider for Anthropic's Messages API, through the optional ``anthropic`` package
(``pip install 'keelflow[anthropic]'``): without it, building one says so.

As with OpenAI: the SDK never retries (``max_retries=0``), failures come out as
classified ``ProviderError``s that never quote the key, the key is read at each request.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from keel.llm.config import ProviderConfig
from keel.llm.providers.anthropic_wire import request_body, response_from
from keel.llm.providers.failures import status_error
from keel.llm.providers.keys import api_key, effective_base_url, host_of
from keel.llm.providers.structured import OUTPUT_TOOL
from keel.llm.types import ModelRequest, ModelResponse, OnText, OutputMode, ProviderError

INSTALL_HINT = "pip install 'keelflow[anthropic]'"


def _sdk() -> ModuleType:
    try:
        import anthropic
    except ImportError:
        raise ProviderError(
            f"provider kind 'anthropic' needs the anthropic package: {INSTALL_HINT}"
        ) from None
    return anthropic


class Anthropic:
    kind = "anthropic"

    def __init__(self, config: ProviderConfig, environ: Mapping[str, str] | None = None) -> None:
        self._sdk = _sdk()
        self.name = config.name
        self.config = config
        self.default_output_mode: OutputMode = config.output_mode or "tools"
        self._environ = environ
        self._lock = threading.Lock()
        self._client: tuple[str, str | None, Any] | None = None

    def complete(self, request: ModelRequest, on_text: OnText | None = None) -> ModelResponse:
        sdk = self._sdk
        env = os.environ if self._environ is None else self._environ
        key = api_key(self.config, env)
        client = self._client_for(key, effective_base_url(self.config, env))
        body = request_body(request)
        started = time.monotonic()
        try:
            if request.stream:
                with client.messages.stream(**body) as stream:
                    _relay(stream, on_text)
                    message = stream.get_final_message()
            else:
                message = client.messages.create(**body)
        except sdk.APIStatusError as exc:
            detail = _detail(exc.body)
            raise status_error(
                self.name, exc.status_code, exc.response.headers, detail, key
            ) from None
        except sdk.APITimeoutError:
            raise ProviderError(
                f"provider '{self.name}' did not answer within {self.config.timeout:g} s",
                retryable=True,
            ) from None
        except sdk.APIConnectionError:
            where = host_of(effective_base_url(self.config, env))
            raise ProviderError(
                f"provider '{self.name}' could not be reached ({where})", retryable=True
            ) from None
        except sdk.APIError as exc:  # an error event in the middle of a stream
            raise ProviderError(
                f"provider '{self.name}' failed while answering: {exc.message}", retryable=True
            ) from None
        data: dict[str, Any] = message.model_dump(mode="json")
        return response_from(data, request, body, time.monotonic() - started)

    def _client_for(self, key: str, base_url: str | None) -> Any:
        with self._lock:
            if self._client is None or self._client[:2] != (key, base_url):
                client = self._sdk.Anthropic(
                    api_key=key, base_url=base_url, max_retries=0, timeout=self.config.timeout
                )
                self._client = (key, base_url, client)
            return self._client[2]


def _relay(stream: Any, on_text: OnText | None) -> None:
    """Give ``on_text`` each piece of text, and of the output tool's input (the answer's
    text in structured mode), as the stream's events bring them."""
    block: str | None = None
    for event in stream:
        if on_text is None:
            continue
        if event.type == "content_block_start":
            block = getattr(event.content_block, "name", None)
        elif event.type == "text":
            on_text(event.text)
        elif event.type == "input_json" and block == OUTPUT_TOOL and event.partial_json:
            on_text(event.partial_json)


def _detail(body: object) -> str:
    """Anthropic's ``{"type": "error", "error": {"message": ...}}``, or the body."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        return message if isinstance(message, str) else ""
    return body if isinstance(body, str) else ""
