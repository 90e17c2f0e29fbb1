"""A provider for any endpoint that speaks OpenAI's chat completions: OpenAI itself,
llama.cpp's server, vLLM, Ollama, LM Studio, gateways, keel's own stub.

The SDK client is built with ``max_retries=0`` (keel's durable retry does the retrying,
recording each attempt) and rebuilt only when the key in the environment changes. Every
failure comes out as a ``ProviderError``, classified, and never quoting the key.
OpenAI's own API gets ``max_completion_tokens`` (its reasoning models refuse
``max_tokens``); other endpoints get ``max_tokens``, which they all read.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import openai

from keel.llm.config import ProviderConfig
from keel.llm.providers.failures import status_error
from keel.llm.providers.keys import api_key, effective_base_url, host_of
from keel.llm.providers.openai_wire import (
    from_chunks,
    from_completion,
    not_a_completion,
    request_body,
    response_from,
)
from keel.llm.types import ModelRequest, ModelResponse, OnText, OutputMode, ProviderError


class OpenAICompatible:
    kind = "openai"

    def __init__(self, config: ProviderConfig, environ: Mapping[str, str] | None = None) -> None:
        self.name = config.name
        self.config = config
        #: strict JSON Schema is what OpenAI, vLLM and recent llama.cpp servers honour
        self.default_output_mode: OutputMode = config.output_mode or "json_schema"
        self._environ = environ
        self._lock = threading.Lock()
        #: the client, with the key and URL it was built for
        self._client: tuple[str, str | None, openai.OpenAI] | None = None

    def complete(self, request: ModelRequest, on_text: OnText | None = None) -> ModelResponse:
        env = os.environ if self._environ is None else self._environ
        key = api_key(self.config, env)
        client = self._client_for(key, effective_base_url(self.config, env))
        body = request_body(request, max_tokens_field=self._max_tokens_field(env))
        started = time.monotonic()
        try:
            if request.stream:
                with client.chat.completions.create(**body) as stream:
                    answer = from_chunks(iter(stream), request.model, on_text, self.name)
            else:
                answer = from_completion(client.chat.completions.create(**body), self.name)
        except openai.APIStatusError as exc:
            raise status_error(
                self.name, exc.status_code, exc.response.headers, _detail(exc), key
            ) from None
        except openai.APITimeoutError:
            raise ProviderError(
                f"provider '{self.name}' did not answer within {self.config.timeout:g} s",
                retryable=True,
            ) from None
        except openai.APIConnectionError as exc:
            where = host_of(effective_base_url(self.config, env))
            raise ProviderError(
                f"provider '{self.name}' could not be reached ({where}): {_cause(exc)}",
                retryable=True,
            ) from None
        except openai.APIError as exc:  # an error event in the middle of a stream
            raise ProviderError(
                f"provider '{self.name}' failed while answering: {exc.message}", retryable=True
            ) from None
        except ValueError:  # a body, or a chunk, that is not JSON
            raise not_a_completion(self.name) from None
        return response_from(answer, request, body, time.monotonic() - started)

    def _client_for(self, key: str, base_url: str | None) -> openai.OpenAI:
        with self._lock:
            if self._client is None or self._client[:2] != (key, base_url):
                client = openai.OpenAI(
                    api_key=key, base_url=base_url, max_retries=0, timeout=self.config.timeout
                )
                self._client = (key, base_url, client)
            return self._client[2]

    def _max_tokens_field(self, env: Mapping[str, str]) -> str:
        url = effective_base_url(self.config, env)
        if url is None or urlsplit(url).hostname == "api.openai.com":
            return "max_completion_tokens"
        return "max_tokens"


def _detail(exc: openai.APIStatusError) -> str:
    """The provider's own message: ``{"error": {"message": ...}}`` or the raw body."""
    body: Any = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(message, str):
            return message
    if isinstance(body, str):
        return body
    try:
        return exc.response.text
    except Exception:  # a body not read (a stream): the status says enough
        return ""


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__
    return str(cause) if cause is not None and str(cause) else str(exc)
