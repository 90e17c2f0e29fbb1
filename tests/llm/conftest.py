"""Fixtures of the LLM tests: keel's stub server on the loopback and a provider aimed
at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from keel.llm.config import ProviderConfig
from keel.llm.providers.openai_compatible import OpenAICompatible
from keel.llm.stub_server import StubServer
from tests.llm.running import llm_world  # noqa: F401  (a fixture: see tests.llm.running)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture
def provider(stub: StubServer) -> OpenAICompatible:
    """A provider on the stub, with no key in its (empty) environment."""
    return OpenAICompatible(ProviderConfig("stub", base_url=stub.url, timeout=30), environ={})
