"""Counting tokens before a call, for budget reservations and ``keel estimate``.

By default a token is four characters, rounded up: no tokenizer is exact for every
model, and this one needs nothing. When ``tiktoken`` is installed (keel does not depend
on it) *and* the table of the model's encoding is already in tiktoken's cache, tiktoken
counts instead. It must already be there: tiktoken downloads missing tables at run time,
and keel never makes a network request to count tokens. So before asking tiktoken for an
encoding, keel looks for the file where tiktoken would (``TIKTOKEN_CACHE_DIR``, else
``DATA_GYM_CACHE_DIR``, else ``<tempdir>/data-gym-cache``; the file named by the SHA-1 of
the table's URL) and checks its SHA-256 as tiktoken does (a mismatch would make tiktoken
delete it and download again). Only a file that passes is used, and tiktoken then reads
it without fetching anything. (Were the file deleted in the instant between the check and
tiktoken's read, tiktoken would fetch it; nothing in keel deletes it.)

``token_method`` says which counter a model gets, for ``keel estimate`` to print.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from keel.llm.types import Message

#: tokens each message costs besides its text: its role and the delimiters around it
#: (OpenAI's cookbook counts 3 plus 1 for the role)
MESSAGE_OVERHEAD = 4
#: tokens that prime the reply (``<|start|>assistant<|message|>``), once per request
REPLY_OVERHEAD = 3
#: the encoding used for a model tiktoken does not know (or no model): the most common
#: one, a closer guess than four characters a token
DEFAULT_ENCODING = "cl100k_base"

#: where tiktoken 0.x fetches each encoding's table, and the table's SHA-256, as in its
#: ``tiktoken_ext.openai_public``. Should a later tiktoken move a table, the file is not
#: found here and keel falls back to chars/4: never to a download.
_TABLES: dict[str, tuple[str, str]] = {
    "r50k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    ),
    "p50k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken",
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}
#: encodings built from another's table
_TABLES["p50k_edit"] = _TABLES["p50k_base"]
_TABLES["o200k_harmony"] = _TABLES["o200k_base"]

CHARS_PER_TOKEN = 4


def count_tokens(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` for ``model``: tiktoken's count when its table is cached
    locally, else ``ceil(len(text) / 4)``."""
    if not text:
        return 0
    encoding = _encoding(model)
    if encoding is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(encoding.encode_ordinary(text))


def count_message_tokens(messages: Iterable[Message], model: str | None = None) -> int:
    """Tokens a request's messages take: each message's text (and tool calls' names and
    arguments) plus ``MESSAGE_OVERHEAD``, and ``REPLY_OVERHEAD`` once for the reply.
    An estimate (tools and output schemas sent beside the messages are not counted)."""
    total = REPLY_OVERHEAD
    for message in messages:
        total += MESSAGE_OVERHEAD
        total += count_tokens(message.content or "", model)
        for call in message.tool_calls:
            total += count_tokens(call.name, model) + count_tokens(call.arguments, model)
    return total


def token_method(model: str | None = None) -> str:
    """How ``count_tokens`` counts for ``model``: "chars/4" or "tiktoken <encoding>"."""
    name = _encoding_name(model)
    if name is not None and _load(name, _table_path(name)) is not None:
        return f"tiktoken {name}"
    return f"chars/{CHARS_PER_TOKEN}"


def _encoding(model: str | None) -> Any | None:
    name = _encoding_name(model)
    if name is None:
        return None
    return _load(name, _table_path(name))


def _encoding_name(model: str | None) -> str | None:
    """The tiktoken encoding for ``model``; None when tiktoken is not installed."""
    tiktoken = _tiktoken()
    if tiktoken is None:
        return None
    if model:
        try:
            name: str = tiktoken.encoding_name_for_model(model)
        except KeyError:
            return DEFAULT_ENCODING
        return name
    return DEFAULT_ENCODING


@functools.cache
def _tiktoken() -> Any | None:
    try:
        return importlib.import_module("tiktoken")
    except ImportError:
        return None


def _table_path(encoding: str) -> Path | None:
    """Where tiktoken caches ``encoding``'s table, as its ``load.read_file_cached``
    decides; None when tiktoken's cache is off (``TIKTOKEN_CACHE_DIR=""``) or the
    encoding is not one keel knows the table of."""
    table = _TABLES.get(encoding)
    if table is None:
        return None
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache_dir == "":
        return None
    return Path(cache_dir) / hashlib.sha1(table[0].encode()).hexdigest()


@functools.lru_cache(maxsize=32)
def _load(encoding: str, path: Path | None) -> Any | None:
    """tiktoken's encoding, when its table is at ``path`` and intact; else None.
    Cached by path: a table that appears later is seen when the cache dir changes, or
    in a new process."""
    if path is None or not _intact(path, _TABLES[encoding][1]):
        return None
    tiktoken = _tiktoken()
    if tiktoken is None:
        return None
    return tiktoken.get_encoding(encoding)


def _intact(path: Path, sha256: str) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == sha256
