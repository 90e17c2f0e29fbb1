"""The ``[llm]`` table of keel.toml (or ``[tool.keel.llm]``): providers and prices,
errors that name the file and the key, and ``KEEL_LLM_<NAME>_BASE_URL``."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from keel.errors import KeelError
from keel.llm.config import (
    LlmConfig,
    LlmConfigError,
    PriceOverride,
    ProviderConfig,
    load_llm_config,
)
from keel.llm.providers import UnknownProviderError, provider_for
from keel.llm.providers.openai_compatible import OpenAICompatible
from keel.runtime.worker.config import load_worker_config

GOOD = """
    modules = ["flows.py"]

    [llm.providers.local]
    kind = "openai"
    base_url = "http://127.0.0.1:8080/v1"
    api_key_env = "LOCAL_LLM_KEY"
    output_mode = "json_object"
    timeout = 30

    [llm.providers.claude]
    kind = "anthropic"

    [llm.prices."local:smollm2"]
    input = 0.10
    output = "0.40"
    cached_input = 0.05

    [llm.prices.stub-small]
    input = 1
    output = 2
"""


def write(folder: Path, text: str, name: str = "keel.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error(folder: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = write(folder, text)
    with pytest.raises(LlmConfigError) as info:
        load_llm_config(folder, environ=environ or {})
    message = str(info.value)
    assert str(path) in message or "environment" in message
    return message


def test_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "sub").mkdir()
    config = load_llm_config(tmp_path / "sub", environ={})
    assert config.providers == {
        "local": ProviderConfig("local", "openai", "http://127.0.0.1:8080/v1", "LOCAL_LLM_KEY",
                                "json_object", 30.0),
        "claude": ProviderConfig("claude", "anthropic"),
    }  # fmt: skip
    assert config.prices == {
        "local:smollm2": PriceOverride(Decimal("0.10"), Decimal("0.40"), Decimal("0.05")),
        "stub-small": PriceOverride(Decimal(1), Decimal(2)),
    }
    assert config.source is not None
    assert str(path) in config.source


def test_pyproject_tool_keel_llm(tmp_path: Path) -> None:
    write(tmp_path, '[tool.keel.llm.providers.local]\nbase_url = "http://localhost:1/v1"\n',
          "pyproject.toml")  # fmt: skip
    config = load_llm_config(tmp_path, environ={})
    assert config.providers["local"].base_url == "http://localhost:1/v1"


def test_no_file_no_table(tmp_path: Path) -> None:
    assert load_llm_config(tmp_path, environ={}) == LlmConfig()
    write(tmp_path, 'modules = ["flows.py"]\n')
    assert load_llm_config(tmp_path, environ={}) == LlmConfig()


def test_the_worker_accepts_the_llm_table(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    (tmp_path / "flows.py").write_text("", encoding="utf-8")
    assert load_worker_config(cwd=tmp_path, environ={}).modules == (str(tmp_path / "flows.py"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[llm]\nprovider = {}\n", "llm: unknown key 'provider' (known keys: providers, prices)"),
        ("[llm.providers.local]\nbase = 'x'\n", "llm.providers.local: unknown key 'base'"),
        ("[llm.providers.local]\nkind = 'gemini'\n", "llm.providers.local.kind must be one of"),
        ("[llm.providers.local]\nbase_url = '127.0.0.1:8080'\n",
         "llm.providers.local.base_url must be an http:// or https:// URL"),
        ("[llm.providers.local]\noutput_mode = 'json'\n",
         "llm.providers.local.output_mode must be one of json_schema, json_object, tools"),
        ("[llm.providers.local]\ntimeout = 'soon'\n",
         "llm.providers.local.timeout must be a number of seconds > 0, got 'soon'"),
        ("[llm.providers.local]\ntimeout = 0\n", "timeout must be a number of seconds > 0"),
        ("[llm.providers]\nlocal = 3\n", "llm.providers.local must be a table"),
        ("[llm.providers.'a b']\n", "a provider name uses"),
        ("[llm.prices.m]\ninput = 'cheap'\noutput = 1\n",
         'llm.prices."m".input must be a number of dollars per million tokens >= 0, got \'cheap\''),
        ("[llm.prices.m]\ninput = -1\noutput = 1\n", 'llm.prices."m".input must be a number'),
        ("[llm.prices.m]\ninput = 1\noutput = true\n", 'llm.prices."m".output must be a number'),
        ("[llm.prices.m]\ninput = 1\noutput = nan\n", 'llm.prices."m".output must be a number'),
        ("[llm.prices.m]\ninput = 1\n", 'llm.prices."m" needs output'),
        ("[llm.prices.m]\ninput = 1\noutput = 2\ncached = 1\n", "unknown key 'cached'"),
        ("llm = 3\n", "llm must be a table"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error(tmp_path, text)


def test_invalid_toml(tmp_path: Path) -> None:
    assert "invalid TOML" in error(tmp_path, "[llm\n")


def test_the_error_is_a_keel_error(tmp_path: Path) -> None:
    write(tmp_path, "[llm]\nx = 1\n")
    with pytest.raises(KeelError):
        load_llm_config(tmp_path, environ={})


def test_a_key_pasted_in_the_wrong_place_is_never_quoted(tmp_path: Path) -> None:
    key = "sk-proj-SECRET0123456789"
    message = error(tmp_path, f"[llm.providers.local]\napi_key_env = '{key}'\n")
    assert "api_key_env must be the NAME of an environment variable" in message
    assert "SECRET" not in message
    message = error(tmp_path, f"[llm.providers.local]\napi_key = '{key}'\n")
    assert "unknown key 'api_key'" in message
    assert "SECRET" not in message


def test_environment_overrides_a_base_url(tmp_path: Path) -> None:
    write(tmp_path, GOOD + "\n[llm.providers.my-local]\nbase_url = 'http://10.0.0.1/v1'\n")
    environ = {"KEEL_LLM_LOCAL_BASE_URL": "http://127.0.0.1:9999/v1",
               "KEEL_LLM_MY_LOCAL_BASE_URL": "http://127.0.0.1:9998/v1",
               "KEEL_LLM_CLAUDE_BASE_URL": ""}  # fmt: skip
    config = load_llm_config(tmp_path, environ=environ)
    local = config.providers["local"]
    assert local.base_url == "http://127.0.0.1:9999/v1"
    assert (local.output_mode, local.api_key_env, local.timeout) == (
        "json_object",
        "LOCAL_LLM_KEY",
        30,
    )
    assert config.providers["my-local"].base_url == "http://127.0.0.1:9998/v1"
    assert config.providers["claude"].base_url is None  # empty counts as unset


def test_environment_alone_defines_a_provider(tmp_path: Path) -> None:
    environ = {"KEEL_LLM_STUB_BASE_URL": "http://127.0.0.1:8089/v1",
               "KEEL_LLM_ANTHROPIC_BASE_URL": "http://127.0.0.1:8090"}  # fmt: skip
    config = load_llm_config(tmp_path, environ=environ)
    assert config.providers == {
        "stub": ProviderConfig("stub", "openai", "http://127.0.0.1:8089/v1"),
        "anthropic": ProviderConfig("anthropic", "anthropic", "http://127.0.0.1:8090"),
    }


def test_a_bad_environment_url_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(LlmConfigError) as info:
        load_llm_config(tmp_path, environ={"KEEL_LLM_STUB_BASE_URL": "localhost:8089"})
    assert "environment (KEEL_LLM_STUB_BASE_URL)" in str(info.value)


# --- provider_for ----------------------------------------------------------------------------


def test_built_in_providers_exist_without_config() -> None:
    openai = provider_for("openai", LlmConfig())
    assert (openai.name, openai.kind, openai.default_output_mode) == (
        "openai",
        "openai",
        "json_schema",
    )
    anthropic = provider_for("anthropic", LlmConfig())
    assert (anthropic.name, anthropic.kind, anthropic.default_output_mode) == (
        "anthropic", "anthropic", "tools")  # fmt: skip


def test_configured_providers_are_built_once() -> None:
    local = ProviderConfig("local", base_url="http://127.0.0.1:1/v1", output_mode="prompted")
    config = LlmConfig(providers={"local": local})
    provider = provider_for("local", config)
    assert isinstance(provider, OpenAICompatible)
    assert provider.default_output_mode == "prompted"
    assert provider_for("local", LlmConfig(providers={"local": local})) is provider
    other = LlmConfig(
        providers={"local": ProviderConfig("local", base_url="http://127.0.0.1:2/v1")}
    )
    assert provider_for("local", other) is not provider


def test_an_unknown_provider_lists_the_known_ones() -> None:
    config = LlmConfig(providers={"local": ProviderConfig("local")}, source="keel.toml (/x)")
    with pytest.raises(UnknownProviderError) as info:
        provider_for("lokal", config)
    assert str(info.value) == (
        "no LLM provider named 'lokal' in keel.toml (/x) (known: anthropic, local, openai); "
        "define it in keel.toml as [llm.providers.lokal]"
    )
